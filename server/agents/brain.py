"""The agent "brain" interface and its registry.

A brain writes one agent's text. The default brain is scripted (deterministic,
offline); :mod:`server.agents.openai_chat` plugs in any OpenAI-compatible chat
endpoint a user runs. Brains are called from worker threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol


@dataclass(frozen=True)
class PriorTurn:
    """One earlier turn of the conversation, as an agent sees it."""

    role: Literal["user", "assistant"]
    text: str
    agent: str | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class AgentRequest:
    """Everything an agent may look at to write its text.

    ``task`` is ``"answer"`` for a utility agent's own output and
    ``"flow_summary"`` for a FlowSuperAgent's closing summary of its flow.
    ``earlier`` holds (agent name, text) of the agents that ran before it in
    this turn; ``history`` the conversation before this turn.
    """

    agent_name: str
    agent_class: str
    description: str
    query: str
    task: Literal["answer", "flow_summary"] = "answer"
    goal: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    earlier: tuple[tuple[str, str], ...] = ()
    history: tuple[PriorTurn, ...] = ()
    summarize: bool = False


@dataclass(frozen=True)
class AgentOutput:
    """``text`` goes out as text; ``spoken`` is what is synthesized (a short
    summary when the agent's ``summarize_config`` asks for one)."""

    text: str
    spoken: str


class Brain(Protocol):
    name: str

    def respond(self, request: AgentRequest) -> AgentOutput:
        ...


_FACTORIES: dict[str, Callable[[], Brain]] = {}
_INSTANCES: dict[str, Brain] = {}
_LOCK = threading.Lock()


def register_brain(name: str, factory: Callable[[], Brain]) -> None:
    """Make a brain selectable by name (``REFINERY_BRAIN`` or the server's ``--brain``)."""
    _FACTORIES[name] = factory


def get_brain(name: str = "scripted") -> Brain:
    """The shared instance of the named brain."""
    _ensure_builtin()
    with _LOCK:
        if name not in _INSTANCES:
            if name not in _FACTORIES:
                raise ValueError(f"unknown agent brain {name!r}; known: {', '.join(sorted(_FACTORIES))}")
            _INSTANCES[name] = _FACTORIES[name]()
        return _INSTANCES[name]


def _ensure_builtin() -> None:
    if "scripted" not in _FACTORIES:
        from server.agents.openai_chat import OpenAIChatBrain
        from server.agents.scripted import ScriptedBrain

        register_brain("scripted", ScriptedBrain)
        register_brain("openai", OpenAIChatBrain.from_env)
