"""Routing a user's turn and planning which agents speak, in which order.

The orchestrator routes a query to one of its agents; a FlowSuperAgent expands
into its utility agents in topological order of ``next_step``, followed by its
own closing summary when its ``summarize_config`` asks for one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.config import EffectiveSpeech, ProjectConfig, SuperAgent

_WORD = re.compile(r"[a-z]+")
_STOP = frozenset("a an the and or of to in on for with about what how is are be my your our i me".split())


def _terms(text: str) -> set[str]:
    # A crude stem (drop a plural s) is enough to match "stocks" with "stock".
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


@dataclass(frozen=True)
class AgentStep:
    """One agent's part of a response."""

    name: str
    agent_class: str
    description: str
    task: str  # "answer" or "flow_summary"
    goal: str
    config: dict
    speech: EffectiveSpeech
    summarize: bool


def route(config: ProjectConfig, query: str) -> str:
    """The orchestrator agent a query goes to: the best lexical match of the
    query against each agent's description (ties: the first listed)."""
    names = [ref.agent_name for ref in config.orchestrator.agent_list]
    if len(names) == 1:
        return names[0]
    query_terms = _terms(query)
    best, best_score = names[0], -1
    for name in names:
        agent = config.agent(name)
        score = len(query_terms & _terms(f"{agent.agent_name} {agent.agent_description}"))
        if score > best_score:
            best, best_score = name, score
    return best


def _summarize(agent) -> bool:
    return bool(agent.summarize_config and agent.summarize_config.enable_summarize)


def plan_turn(config: ProjectConfig, query: str) -> list[AgentStep]:
    """The agents that run for ``query``, in order."""
    target = config.agent(route(config, query))
    if not isinstance(target, SuperAgent):
        return [
            AgentStep(
                target.agent_name, target.agent_class, target.agent_description, "answer", "",
                dict(target.config or {}), config.speech_for(target.agent_name), _summarize(target),
            )
        ]
    goal = target.config.goal or ""
    steps = []
    for name in config.flow_order(target.agent_name):
        agent = config.agent(name)
        steps.append(
            AgentStep(
                name, agent.agent_class, agent.agent_description, "answer", goal,
                dict(getattr(agent, "config", None) or {}), config.speech_for(name), _summarize(agent),
            )
        )
    if _summarize(target):
        steps.append(
            AgentStep(
                target.agent_name, target.agent_class, target.agent_description, "flow_summary", goal, {},
                config.speech_for(target.agent_name), False,
            )
        )
    return steps
