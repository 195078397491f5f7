"""Scenario files: YAML describing one simulated conversation and what must happen.

A scenario places user utterances (WAV clips) and client actions on the
timeline, either at absolute times or relative to events seen at run time
("1.5 s after playback starts"), sets the echo, AEC and noise of the acoustic
path, and lists expectations. See ``docs/simulator.md`` for the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml"

#: Events a timing can be anchored to. Server events are counted as the client
#: receives them; ``playback.*`` are the simulated speaker's own transitions
#: (sent to the server unless ``client.send_playback_events`` is false).
SERVER_ANCHORS = (
    "session.created",
    "response.audio_transcript.done",
    "response.created",
    "response.text.delta",
    "response.audio.delta",
    "response.audio.done",
    "response.done",
    "response.interrupted",
)
CLIENT_ANCHORS = (
    "playback.started",  # the speaker started playing (after being idle)
    "playback.stopped",  # the speaker ran dry or was stopped
    "playback.agent_started",  # the speaker started playing audio of agent `role`
    "playback.expected_end",  # when the speaker will drain the response (known at response.audio.done)
    "utterance.end",  # end of speech of the nth utterance of this scenario
)
ANCHORS = SERVER_ANCHORS + CLIENT_ANCHORS


class ScenarioError(ValueError):
    """A scenario file is invalid; the message names the file, the field path and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Model):
    """When something happens: ``at`` seconds, or ``delay_s`` after the ``nth`` ``after`` event."""

    at: float | None = Field(None, ge=0)
    after: str | None = None
    nth: int = Field(1, ge=1)
    role: str | None = None
    delay_s: float = 0.0

    @model_validator(mode="after")
    def _one_anchor(self) -> "Timing":
        if (self.at is None) == (self.after is None):
            raise ValueError("give exactly one of `at` (seconds from the start) or `after` (an event name)")
        if self.after is not None and self.after not in ANCHORS:
            raise ValueError(f"unknown event {self.after!r} in `after`; use one of: {', '.join(ANCHORS)}")
        if self.after == "playback.agent_started" and not self.role:
            raise ValueError("`after: playback.agent_started` needs `role` (the agent name)")
        if self.at is not None and (self.delay_s or self.role):
            raise ValueError("`delay_s` and `role` only apply with `after`")
        return self

    def describe(self) -> str:
        """The timing in words, for warnings and reports (e.g. ``+1.5 s after playback.started#1``)."""
        if self.at is not None:
            return f"at {self.at:g} s"
        who = f" of {self.role}" if self.role else ""
        return f"{self.delay_s:+g} s after {self.after}#{self.nth}{who}"


class Utterance(Timing):
    """User speech: a WAV clip (16 kHz mono preferred) placed in the microphone."""

    wav: Path
    text: str | None = None
    gain_db: float = 0.0
    #: Should this speech interrupt? None = decide from the config and timing (see metrics).
    expect_interrupt: bool | None = None


class Action(Timing):
    """A client action: send a typed query (``text``) or press skip (``cancel``)."""

    type: Literal["text", "cancel"]
    text: str | None = None

    @model_validator(mode="after")
    def _text_needs_text(self) -> "Action":
        if self.type == "text" and not (self.text and self.text.strip()):
            raise ValueError("an action of type `text` needs a non-empty `text`")
        return self


class ClientSettings(_Model):
    """How the simulated client behaves (defaults: the tutorial page)."""

    chunk_ms: int = Field(30, ge=10, le=300)
    send_playback_events: bool = True
    cancel_on_interrupt: bool = True

    @model_validator(mode="after")
    def _whole_ms(self) -> "ClientSettings":
        if self.chunk_ms % 10:
            raise ValueError(f"chunk_ms must be a multiple of 10, got {self.chunk_ms}")
        return self


class EchoModel(_Model):
    """Echo path: speaker -> delay -> gain -> (room) -> AEC (ERLE dB; null = no AEC)."""

    delay_ms: float = Field(40.0, ge=0)
    gain: float = Field(0.5, ge=0)
    aec_erle_db: float | None = Field(30.0, ge=0)
    room_rt60_ms: float | None = Field(None, gt=0, le=1000)


class NoiseModel(_Model):
    """Background noise at ``db`` dBFS RMS; ``file`` = a WAV to loop, else pink noise.

    ``seed``: None = the fixed default noise (pink noise seed 11, a file from its
    start); an integer draws another pink noise, or starts the file at another
    point of its loop (used by repeats, :mod:`simulator.variation`).
    """

    db: float | None = Field(None, le=0)
    file: Path | None = None
    seed: int | None = Field(None, ge=0)


class NetworkModel(_Model):
    """Network jitter on the virtual clock (``--fast`` only), both directions.

    Each client message and each server event is delivered ``U(0, jitter_ms)``
    later than sent, in order (a WebSocket is one ordered TCP stream: a message
    never overtakes the one before it). Seeded: the same seed, the same delays.
    """

    jitter_ms: float = Field(0.0, ge=0, le=2000)
    seed: int = Field(0, ge=0)


class Expect(_Model):
    """What must hold after the run. Unset fields are not checked."""

    interrupt: bool | None = None
    #: Absolute bound, onset -> response.interrupted: a product requirement ("within 1 s").
    max_latency_ms: float | None = Field(None, gt=0)
    #: Bound on latency - floor: what the acoustic path and confirmation may add to
    #: what the config's window rule allows at best (the floor, see docs/simulator.md).
    max_overhead_ms: float | None = Field(None, ge=0)
    transcript_contains: list[str] = Field(default_factory=list)
    #: Words or phrases that must appear in no final transcript (e.g. a TV's words).
    transcript_excludes: list[str] = Field(default_factory=list)
    #: Exact number of user turns the server recognised (``response.audio_transcript.done``);
    #: 0 = nothing the user did not say became a turn.
    user_turns: int | None = Field(None, ge=0)
    #: Bound on every answered utterance's voice-to-voice time (end of its speech ->
    #: the answer plays): the config's silence_duration_ms plus what the server adds.
    max_voice_to_voice_ms: float | None = Field(None, gt=0)
    max_audio_after_interrupt_ms: float | None = Field(None, ge=0)
    max_talk_over_ms: float | None = Field(None, ge=0)
    max_truncation_error_ms: float | None = Field(None, ge=0)
    false_interrupts: int | None = Field(None, ge=0)
    missed_interrupts: int | None = Field(None, ge=0)
    statuses_include: list[Literal["completed", "cancelled", "interrupted"]] = Field(default_factory=list)


class Scenario(_Model):
    """One simulated conversation."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    config: Path | None = None
    utterances: list[Utterance] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    echo: EchoModel = EchoModel()
    noise: NoiseModel = NoiseModel()
    network: NetworkModel = NetworkModel()
    client: ClientSettings = ClientSettings()
    expect: Expect = Expect()
    max_duration_s: float = Field(120.0, gt=0, le=600)
    tail_s: float = Field(1.5, ge=0)

    @model_validator(mode="after")
    def _something_happens(self) -> "Scenario":
        if not self.utterances and not self.actions:
            raise ValueError("a scenario needs at least one utterance or action")
        for i, u in enumerate(self.utterances):
            if u.after == "utterance.end" and u.nth > i:
                raise ValueError(
                    f"utterances[{i}] is anchored to the end of utterance {u.nth}, which is not before it"
                )
        return self

    @property
    def config_path(self) -> Path:
        """The project config to run: the scenario's, else the tutorial's default."""
        return self.config or DEFAULT_CONFIG


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "model-")):
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def scenario_from_dict(data: Any, *, source: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate a parsed scenario; relative paths are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a YAML mapping, got {type(data).__name__}")
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid scenario:"]
        for err in exc.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {_loc(err['loc'])}: {msg} (found {err.get('input')!r})")
        raise ScenarioError("\n".join(lines)) from None
    if base_dir is None:
        return sc
    return _resolve_paths(sc, base_dir)


def _resolve(p: Path | None, base: Path) -> Path | None:
    if p is None or p.is_absolute():
        return p
    return (base / p).resolve()


def _resolve_paths(sc: Scenario, base: Path) -> Scenario:
    return sc.model_copy(
        update={
            "config": _resolve(sc.config, base),
            "utterances": [u.model_copy(update={"wav": _resolve(u.wav, base)}) for u in sc.utterances],
            "noise": sc.noise.model_copy(update={"file": _resolve(sc.noise.file, base)}),
        }
    )


def load_scenario(path: Path | str) -> Scenario:
    """Read a scenario YAML file; paths inside it are relative to the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    sc = scenario_from_dict(data, source=str(path), base_dir=path.parent)
    missing = [str(u.wav) for u in sc.utterances if not u.wav.is_file()]
    if sc.config is not None and not sc.config.is_file():
        missing.append(str(sc.config))
    if sc.noise.file is not None and not sc.noise.file.is_file():
        missing.append(str(sc.noise.file))
    if missing:
        raise ScenarioError(
            f"{path}: files not found: {', '.join(missing)} (paths are relative to the scenario's folder; "
            "speech fixtures come from `make fixtures`)"
        )
    return sc


def load_suite(directory: Path | str) -> list[tuple[Path, Scenario]]:
    """Every ``*.yaml`` scenario in ``directory``, sorted by file name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(f"suite directory not found: {directory}")
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ScenarioError(f"no *.yaml scenarios in {directory}")
    return [(f, load_scenario(f)) for f in files]
