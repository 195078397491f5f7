"""The scripted brain: deterministic agent text with no model behind it.

Text is built from the agent's description, the super agent's goal, the user's
query, what earlier agents said and the conversation so far, so that each part
of the pipeline is visible in the output (a test can see that agent 2 saw agent
1, or that turn 2 saw turn 1). The same inputs always give the same text.
Numbers, currency and percentages are included on purpose: they exercise
``normalize_text`` before synthesis.
"""

from __future__ import annotations

import hashlib
import re

from server.agents.brain import AgentOutput, AgentRequest

# "Create a detailed plan to X" -> "X"; other descriptions are used as they are.
_LEADS = re.compile(r"^(create|make|write|build)\s+an?\s+((detailed|short|simple|clear)\s+)?plan\s+to\s+", re.IGNORECASE)

_STOP = frozenset(
    "a an the and or but of to in on for with about what how should would could can i my me we our you your "
    "is are be do does it this that there please tell give some any against from at as by so if".split()
)

# Steps by topic keyword; the first keyword found in the description wins.
_STEPS: dict[str, tuple[str, ...]] = {
    "stock": (
        "set stop-loss orders about 8% below your purchase prices",
        "buy protective put options on your largest holdings, budgeting around $1,200 a quarter",
        "spread the equity part across at least 12 sectors so that no single one is more than 15% of it",
        "rebalance every 3 months back to your target mix",
    ),
    "currency": (
        "hedge about 50% of your foreign exposure with forward contracts",
        "match foreign income against foreign costs in the same currency",
        "keep roughly $5,000 of cash in your home currency for near-term needs",
        "review the hedge ratio twice a year, or when a rate moves more than 10%",
    ),
    "risk": (
        "measure the portfolio's volatility over the last 36 months",
        "check the correlation between your 5 largest positions",
        "run a stress test for a 20% market drop and a 3% rise in interest rates",
        "set a limit so that a bad month costs no more than 4.5% of the portfolio",
    ),
}
_GENERIC_STEPS = (
    "write down the goal and the amount at stake, for example $10,000",
    "list the 3 biggest risks and how likely each one is",
    "choose one action for each risk and a date to review it",
    "check the result after 6 months and adjust by no more than 25%",
)


def _focus(description: str) -> str:
    """The verb phrase of a description: 'hedge losses against stock price variance'."""
    text = description.strip().rstrip(".")
    stripped = _LEADS.sub("", text).strip() or text
    if not stripped:
        return "help with your question"
    return stripped[0].lower() + stripped[1:]


def _topic(query: str) -> str:
    """A few content words of the query, for echoing it back."""
    words = [w for w in re.findall(r"[A-Za-z']+", query.lower()) if w not in _STOP]
    return " ".join(words[:5]) or "your question"


def _pick(seed: str, items: tuple[str, ...], count: int) -> list[str]:
    """A deterministic choice of ``count`` items, in their original order."""
    digest = hashlib.sha256(seed.encode()).digest()
    start = digest[0] % len(items)
    chosen = sorted({(start + i) % len(items) for i in range(count)})
    return [items[i] for i in chosen]


def _steps_for(description: str) -> tuple[str, ...]:
    lower = description.lower()
    for keyword, steps in _STEPS.items():
        if keyword in lower:
            return steps
    return _GENERIC_STEPS


class ScriptedBrain:
    """Deterministic text for PlanningAgents and flow summaries."""

    name = "scripted"

    def respond(self, request: AgentRequest) -> AgentOutput:
        if request.task == "flow_summary":
            text = self._flow_summary(request)
            return AgentOutput(text, text)
        text = self._answer(request)
        spoken = self._summary(request, text) if request.summarize else text
        return AgentOutput(text, spoken)

    def _answer(self, req: AgentRequest) -> str:
        focus = _focus(req.description)
        steps = _pick(f"{req.agent_name}|{req.query}", _steps_for(req.description), 3)
        question = req.query.strip().rstrip("?.!")
        opening = f"You asked: {question}. Here is how I would {focus}."
        context = []
        previous_user = [turn.text for turn in req.history if turn.role == "user"]
        if previous_user:
            context.append(f"Following up on your earlier question about {_topic(previous_user[-1])}, I kept that in mind.")
        if req.earlier:
            name, _ = req.earlier[-1]
            context.append(f"Building on what the {name} said, I will add my part.")
        if req.goal:
            context.append(f"The overall goal is to {req.goal.rstrip('.').lower()}.")
        style = str(req.config.get("output_style", "conversational")).lower()
        if style in ("markdown", "bullets", "bullet", "list", "structured"):
            body = "\n".join(f"- {step[0].upper()}{step[1:]}." for step in steps)
            return f"**{focus[0].upper()}{focus[1:]}**\n\n{opening} {' '.join(context)}\n\n{body}".replace("  ", " ")
        ordinals = ("First", "Second", "Finally")
        body = " ".join(f"{ordinals[i]}, {step}." for i, step in enumerate(steps))
        return " ".join([opening, *context, body])

    def _summary(self, req: AgentRequest, text: str) -> str:
        steps = _pick(f"{req.agent_name}|{req.query}", _steps_for(req.description), 3)
        return f"In short, {steps[0]}."

    def _flow_summary(self, req: AgentRequest) -> str:
        names = [name for name, _ in req.earlier]
        if not names:
            return f"To sum up, I have no advice yet on {_topic(req.query)}."
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        goal = f" to {req.goal.rstrip('.').lower()}" if req.goal else ""
        return f"To sum up, the {listed} worked together{goal} for your question about {_topic(req.query)}."
