"""Conversation history of a session, what of a response goes into it, and its store.

The session (sans-I/O) owns a :class:`ConversationHistory`; the driver saves
it through :class:`HistoryStore` when the session asks (``PersistHistory``).
:func:`heard_turns` is the one rule for what of a response the user heard,
however it ended (docs/bargein.md, "What the history keeps").
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from server.agents.brain import PriorTurn

#: Time comparisons tolerate 1 ns (times are sums of float durations).
EPS = 1e-9
#: A completed response whose playback stopped less than this before the end
#: of its audio counts as heard to the end: a client reports the end of its
#: playback a little early or late (network, buffer granularity); ~one word.
END_TOLERANCE_S = 0.3


@dataclass(frozen=True)
class PlayedSentence:
    """Audio sent for one sentence: its spoken text, from ``start_s`` to ``end_s``
    seconds of the response's audio (the position the client plays it at)."""

    text: str
    start_s: float
    end_s: float


@dataclass
class ResponsePart:
    """One agent's output in a response, placed in playback order.

    ``text`` is the full text shown (``response.text.delta``); ``start_s`` the
    response audio sent before it, i.e. where the client's playback reaches it;
    ``sentences`` the audio sent for it (none for a text-only agent, or while
    its first sentence is still being synthesized); ``finished`` once its
    ``response.text.done`` went out (all its audio was sent).
    """

    agent: str
    text: str
    start_s: float
    sentences: list[PlayedSentence] = field(default_factory=list)
    finished: bool = False

    @property
    def end_s(self) -> float:
        """Where its audio ends in the response (``start_s`` when it has none)."""
        return self.sentences[-1].end_s if self.sentences else self.start_s


def heard_turns(parts: Sequence[ResponsePart], played_s: float | None, *, complete: bool) -> list[PriorTurn]:
    """The assistant turns a response leaves in the history when the user had
    heard ``played_s`` seconds of its audio (None: all of it).

    ``parts`` in the order they were sent; ``complete``: every agent of the
    response ran (it closed ``completed``). Rule, per part:

    - heard to its end (``finished`` and ``played_s >= end_s``): its full
      shown text. A text-only part (no audio) has ``end_s == start_s``: it
      counts once playback reached its place between the audio before and
      after it; shown but not reached, it is not kept.
    - cut inside its audio: the spoken words of the sentences played, and of
      the sentence being played the share of its words equal to the share of
      its duration played (spoken form: normalized, or the spoken summary).
    - not reached: not kept.

    A complete response played to within :data:`END_TOLERANCE_S` of its end is
    kept whole. When anything was lost (a part cut or not reached, or agents
    that never ran) the last turn kept gets ``interrupted=True``.
    """
    total_s = max((part.end_s for part in parts), default=0.0)
    if played_s is None or (complete and played_s + END_TOLERANCE_S >= total_s):
        return [PriorTurn("assistant", part.text, part.agent) for part in parts]
    turns: list[PriorTurn] = []
    lost = not complete
    for part in parts:
        if part.finished and played_s + EPS >= part.end_s:
            turns.append(PriorTurn("assistant", part.text, part.agent))
            continue
        lost = True
        words = _words_played(part.sentences, played_s)
        if words:
            turns.append(PriorTurn("assistant", words, part.agent))
    if lost and turns:
        last = turns[-1]
        turns[-1] = PriorTurn(last.role, last.text, last.agent, interrupted=True)
    return turns


def _words_played(sentences: Sequence[PlayedSentence], played_s: float) -> str:
    heard: list[str] = []
    for sentence in sentences:
        if sentence.start_s + EPS >= played_s:
            break
        words = sentence.text.split()
        if sentence.end_s <= played_s + EPS:
            heard.extend(words)
        else:
            share = (played_s - sentence.start_s) / max(sentence.end_s - sentence.start_s, EPS)
            heard.extend(words[: int(len(words) * share)])
    return " ".join(heard)


class ConversationHistory:
    """The turns so far: user turns and one assistant turn per agent that spoke."""

    def __init__(self, turns: list[PriorTurn] | None = None) -> None:
        self.turns: list[PriorTurn] = list(turns or [])

    def add(self, turn: PriorTurn) -> None:
        self.turns.append(turn)

    def snapshot(self) -> tuple[PriorTurn, ...]:
        return tuple(self.turns)

    def to_json(self) -> list[dict]:
        return [asdict(t) for t in self.turns]

    @classmethod
    def from_json(cls, data: object) -> "ConversationHistory":
        if not isinstance(data, list):
            raise ValueError("history must be a JSON list of turns")
        turns = []
        for item in data:
            if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
                raise ValueError(f"bad history turn: {item!r:.80}")
            turns.append(
                PriorTurn(item["role"], str(item.get("text", "")), item.get("agent"), bool(item.get("interrupted", False)))
            )
        return cls(turns)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class HistoryStore:
    """Histories on disk: ``DATA/history/{project}/{uuid}.json``."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "history"

    def _path(self, project: str, uuid: str) -> Path:
        return self.root / project / f"{uuid}.json"

    def load(self, project: str, uuid: str) -> ConversationHistory:
        path = self._path(project, uuid)
        if not path.exists():
            return ConversationHistory()
        try:
            return ConversationHistory.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, OSError) as exc:
            raise ValueError(f"saved history {path} is unreadable ({exc}); delete it to start fresh") from exc

    def save(self, project: str, uuid: str, history: ConversationHistory) -> None:
        atomic_write_text(self._path(project, uuid), json.dumps(history.to_json(), indent=1))
