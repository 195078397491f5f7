"""The project configuration: pydantic models of the project YAML and its validator.

Users register a project with the YAML they give the real AI Refinery service
(see ``docs/config.md``). :func:`load_project_config` turns it (a parsed mapping,
or YAML text) into a :class:`ProjectConfig`, or raises :class:`ConfigError`
listing *every* problem found, each with the YAML path of the field, what was
found and what was expected. Keys we do not model are kept and reported as
warnings, never errors: the real service accepts more than we do.

Validation runs in two passes that never stop at the first problem:

1. structure (types, ranges, required fields), by pydantic, whose errors are
   converted to :class:`ConfigIssue` with ``a.b[0].c`` paths;
2. cross references (unique agent names, known names in the orchestrator and in
   flows, acyclic flows, agent classes), on the raw mapping, tolerantly, so they
   are reported even when pass 1 found problems elsewhere.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

__all__ = [
    "AsrConfig",
    "AudioConfig",
    "ConfigError",
    "ConfigIssue",
    "EffectiveSpeech",
    "FlowStep",
    "LoadedConfig",
    "MemoryConfig",
    "Orchestrator",
    "OrchestratorAgentRef",
    "ProjectConfig",
    "SaveConfig",
    "SpeechConfig",
    "SummarizeConfig",
    "SuperAgent",
    "SuperAgentConfig",
    "TtsConfig",
    "UtilityAgent",
    "VadConfig",
    "find_cycle",
    "load_project_config",
    "load_project_config_file",
    "topological_order",
]

#: The utility agent class we implement; others are accepted and run as this one.
PLANNING_AGENT = "PlanningAgent"
#: The only super agent class we implement.
FLOW_SUPER_AGENT = "FlowSuperAgent"
#: Path used for problems with the document as a whole.
ROOT_PATH = "<root>"

_FOUND_MAX = 60


# -- issues and errors --------------------------------------------------------


@dataclass(frozen=True)
class ConfigIssue:
    """One problem (or warning) in a project config, located by its YAML path."""

    path: str
    found: str
    expected: str

    @property
    def message(self) -> str:
        """``path: found X, expected Y``: one line a user can act on."""
        return f"{self.path}: found {self.found}, expected {self.expected}"

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form (for the 422 body of the HTTP API)."""
        return {"path": self.path, "found": self.found, "expected": self.expected, "message": self.message}


class ConfigError(ValueError):
    """An invalid project config; :attr:`issues` holds every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        if not issues:
            raise ValueError("ConfigError needs at least one ConfigIssue")
        self.issues: list[ConfigIssue] = list(issues)
        count = len(self.issues)
        header = f"invalid project config ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  {issue.message}" for issue in self.issues)]))


def _short_repr(value: Any) -> str:
    # Whole sub-trees would drown the message; their kind is what matters.
    if isinstance(value, Mapping):
        text = "a mapping" if value else "an empty mapping"
        return text
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    text = repr(value)
    if len(text) > _FOUND_MAX:
        text = text[: _FOUND_MAX - 3] + "..."
    return text


def _join_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or ROOT_PATH


# -- models -------------------------------------------------------------------


class _Model(BaseModel):
    # extra="allow": unknown keys are kept (and reported as warnings).
    # protected_namespaces=(): `model`, `model_path` are real YAML field names.
    # frozen: one loaded config is shared by every session of a project.
    model_config = ConfigDict(extra="allow", protected_namespaces=(), frozen=True)


class VadConfig(_Model):
    """``audio_config.vad``: server-side barge-in detection (present = barge-in mode).

    ``frame_vad``, ``vad_mode`` and ``neural_vad`` are refinery-mock extensions.
    """

    enable_barge_in: bool = False
    frame_ms: Literal[10, 20, 30] = 30
    # window_size is declared before threshold so that threshold's validator can
    # compare against it; field order is not significant in YAML.
    window_size: int = Field(48, ge=1)
    threshold: int = Field(30, ge=1)
    lockout_seconds: float = Field(1.0, ge=0)
    grace_period_seconds: float = Field(3.0, ge=0)
    silero_min_samples_seconds: float = Field(1.5, ge=0)
    #: ours: name of the frame VAD engine (registry key).
    frame_vad: str = "webrtc"
    #: ours: WebRTC VAD aggressiveness, 0 (least) .. 3 (most aggressive).
    vad_mode: int = Field(2, ge=0, le=3)
    #: ours: neural VAD that confirms candidates; None (or "none") disables confirmation.
    neural_vad: str | None = "silero"
    #: ours: echo gate (server/echo.py): the server measures the echo path (delay,
    #: coupling) against the audio it sent; a mic frame at most this many dB above
    #: the echo that path predicts is echo, not user speech: not counted, and
    #: silenced for the neural confirmation. No measurable echo = nothing gated.
    #: None (or "none") turns the gate off.
    echo_margin_db: float | None = Field(6.0, ge=0)
    #: ours, replaced by ``echo_margin_db`` (it was a margin below the far-end
    #: level, a different quantity): ``none`` still turns the gate off; a number
    #: is ignored with a warning.
    echo_gate_margin_db: float | None = Field(None, ge=0)

    @field_validator("threshold")
    @classmethod
    def _threshold_within_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("window_size")
        if window is not None and value > window:
            raise ValueError(f"a number of speech frames from 1 to window_size ({window})")
        return value

    @field_validator("neural_vad", "echo_margin_db", "echo_gate_margin_db", mode="before")
    @classmethod
    def _none_disables(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"none", "off", ""}:
            return None
        if value is False:  # YAML reads a bare `off` as false
            return None
        return value

    @property
    def echo_gate_margin(self) -> float | None:
        """The echo gate's margin in dB, or None when the gate is off (either knob set to none)."""
        if "echo_gate_margin_db" in self.model_fields_set and self.echo_gate_margin_db is None:
            return None
        return self.echo_margin_db


class AsrConfig(_Model):
    """``audio_config.asr``: speech recognition and end-of-turn detection."""

    model: str
    silence_duration_ms: int = Field(700, ge=1)
    prefix_padding_ms: int = Field(300, ge=0)
    language: str | None = None
    #: ours: explicit local engine name, overriding the mapping from ``model``.
    engine: str | None = None
    #: ours: model directory for engines that need one (vosk).
    model_path: str | None = None


class TtsConfig(_Model):
    """``audio_config.tts``: the default speech synthesis model."""

    model: str = "Azure/AI-Speech"
    #: ours: explicit local engine name, overriding the mapping from ``model``.
    engine: str | None = None
    #: ours: sample rate of response audio (Hz).
    sample_rate: int = Field(16000, ge=8000, le=48000)


class AudioConfig(_Model):
    """``audio_config``: input recognition, output synthesis, optional barge-in VAD."""

    asr: AsrConfig
    tts: TtsConfig = TtsConfig()
    vad: VadConfig | None = None


class SpeechConfig(_Model):
    """``speech_config`` of the orchestrator, a super agent or a utility agent."""

    model: str | None = None
    language: str | None = None
    voice: str | None = None
    enable_speech: bool = True
    normalize_text: bool = True


class SummarizeConfig(_Model):
    """``summarize_config``: speak a short summary instead of the whole output."""

    enable_summarize: bool = False


class UtilityAgent(_Model):
    """``utility_agents[*]``: an agent that answers (we run every class as PlanningAgent)."""

    agent_class: str
    agent_name: str
    agent_description: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    speech_config: SpeechConfig | None = None
    summarize_config: SummarizeConfig | None = None

    @field_validator("config", mode="before")
    @classmethod
    def _null_config_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class FlowStep(_Model):
    """One node of a FlowSuperAgent's graph and its outgoing edges."""

    agent_name: str
    next_step: list[str] = Field(default_factory=list)

    @field_validator("next_step", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # `next_step:` with nothing after it parses as None in YAML.
        return [] if value is None else value


class SuperAgentConfig(_Model):
    """``super_agents[*].config``: the flow's goal and its graph."""

    goal: str = ""
    agent_list: list[FlowStep] = Field(min_length=1)


class SuperAgent(_Model):
    """``super_agents[*]``: a FlowSuperAgent running utility agents in graph order."""

    agent_class: str
    agent_name: str
    agent_description: str = ""
    config: SuperAgentConfig
    speech_config: SpeechConfig | None = None
    summarize_config: SummarizeConfig | None = None


class OrchestratorAgentRef(_Model):
    """``orchestrator.agent_list[*]``: an agent a user's turn can be routed to."""

    agent_name: str


class Orchestrator(_Model):
    """``orchestrator``: routing targets and the default voice."""

    agent_list: list[OrchestratorAgentRef] = Field(min_length=1)
    speech_config: SpeechConfig | None = None


class SaveConfig(_Model):
    """``memory_config.save_config``."""

    #: ours: resume the history saved for the same project and session uuid.
    auto_load: bool = False


class MemoryConfig(_Model):
    """``memory_config``."""

    save_config: SaveConfig = SaveConfig()


@dataclass(frozen=True)
class EffectiveSpeech:
    """The speech settings an agent actually uses, after inheritance.

    ``source`` is the YAML path of the nearest ``speech_config`` that applied
    (e.g. ``super_agents[0].speech_config``), or ``audio_config.tts`` when no
    level had one.
    """

    model: str
    language: str | None
    voice: str | None
    enable_speech: bool
    normalize_text: bool
    source: str


class ProjectConfig(_Model):
    """The whole project YAML."""

    memory_config: MemoryConfig = MemoryConfig()
    orchestrator: Orchestrator
    utility_agents: list[UtilityAgent] = Field(default_factory=list)
    super_agents: list[SuperAgent] = Field(default_factory=list)
    audio_config: AudioConfig

    @field_validator("utility_agents", "super_agents", mode="before")
    @classmethod
    def _null_list_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def barge_in(self) -> VadConfig | None:
        """The vad block when present and enabled; None means push-to-talk mode."""
        vad = self.audio_config.vad
        return vad if vad is not None and vad.enable_barge_in else None

    def agent(self, name: str) -> UtilityAgent | SuperAgent:
        """The utility or super agent called ``name``; KeyError naming the known ones."""
        for candidate in [*self.utility_agents, *self.super_agents]:
            if candidate.agent_name == name:
                return candidate
        known = ", ".join(repr(n) for n in self._agent_names()) or "none"
        raise KeyError(f"no agent named {name!r} in this project; known agents: {known}")

    def super_agent_of(self, agent_name: str) -> SuperAgent | None:
        """The first super agent whose flow lists ``agent_name``, or None."""
        for sup in self.super_agents:
            if any(step.agent_name == agent_name for step in sup.config.agent_list):
                return sup
        return None

    def flow_order(self, super_agent_name: str) -> list[str]:
        """Agent names of a super agent's flow in the order they run.

        Topological order of ``next_step``; among agents that are ready at the
        same time, the one listed first in ``agent_list`` runs first.
        """
        sup = self.agent(super_agent_name)
        if not isinstance(sup, SuperAgent):
            raise KeyError(f"{super_agent_name!r} is a utility agent, not a super agent; it has no flow")
        nodes, edges = _flow_graph(sup.config.agent_list)
        return topological_order(nodes, edges)

    def orchestrator_speech(self) -> EffectiveSpeech:
        """Speech settings at orchestrator level (for messages not from an agent)."""
        levels: list[tuple[str, SpeechConfig]] = []
        if self.orchestrator.speech_config is not None:
            levels.append(("orchestrator.speech_config", self.orchestrator.speech_config))
        return self._resolve_speech(levels)

    def speech_for(self, agent_name: str) -> EffectiveSpeech:
        """The speech settings ``agent_name`` speaks with.

        The nearest ``speech_config`` wins: the agent's own, then its super
        agent's, then the orchestrator's, then ``audio_config.tts`` (model only).
        Fields the nearest one leaves unset are taken from the next level that
        sets them (then the defaults), except that a ``voice`` is only inherited
        from a level whose language matches the resolved language, so that an
        agent that asks for ``en-CA`` never speaks with an inherited en-US voice.
        """
        target = self.agent(agent_name)
        levels: list[tuple[str, SpeechConfig]] = []
        if target.speech_config is not None:
            levels.append((f"{self._agent_path(target)}.speech_config", target.speech_config))
        if isinstance(target, UtilityAgent):
            sup = self.super_agent_of(agent_name)
            if sup is not None and sup.speech_config is not None:
                levels.append((f"{self._agent_path(sup)}.speech_config", sup.speech_config))
        if self.orchestrator.speech_config is not None:
            levels.append(("orchestrator.speech_config", self.orchestrator.speech_config))
        return self._resolve_speech(levels)

    def _resolve_speech(self, levels: list[tuple[str, SpeechConfig]]) -> EffectiveSpeech:
        def first_set(name: str) -> Any:
            for _, level in levels:
                if name in level.model_fields_set and getattr(level, name) is not None:
                    return getattr(level, name)
            return None

        # Language and voice travel together: the nearest level that names either
        # decides the language (a voice such as en-GB-LibbyNeural implies en-GB).
        language: str | None = None
        for _, level in levels:
            if level.language:
                language = level.language
                break
            if level.voice and (language := _language_of_voice(level.voice)):
                break
        voice: str | None = None
        for _, level in levels:
            if level.voice and (language is None or _voice_matches_language(level.voice, level.language, language)):
                voice = level.voice
                break
        enable = first_set("enable_speech")
        normalize = first_set("normalize_text")
        return EffectiveSpeech(
            model=first_set("model") or self.audio_config.tts.model,
            language=language,
            voice=voice,
            enable_speech=True if enable is None else bool(enable),
            normalize_text=True if normalize is None else bool(normalize),
            source=levels[0][0] if levels else "audio_config.tts",
        )

    def _agent_names(self) -> list[str]:
        return [a.agent_name for a in self.utility_agents] + [a.agent_name for a in self.super_agents]

    def _agent_path(self, target: UtilityAgent | SuperAgent) -> str:
        if isinstance(target, SuperAgent):
            return f"super_agents[{self.super_agents.index(target)}]"
        return f"utility_agents[{self.utility_agents.index(target)}]"


def _language_of_voice(voice: str) -> str | None:
    # Cloud voice names are "<lang>-<REGION>-<Name>", e.g. en-GB-LibbyNeural.
    parts = voice.split("-")
    if len(parts) >= 3 and len(parts[0]) in (2, 3) and parts[0].isalpha():
        return f"{parts[0]}-{parts[1]}"
    return None


def _voice_matches_language(voice: str, level_language: str | None, language: str) -> bool:
    voice_language = _language_of_voice(voice) or level_language
    return voice_language is None or voice_language.lower() == language.lower()


# -- flow graphs --------------------------------------------------------------


def _flow_graph(steps: Sequence[FlowStep]) -> tuple[list[str], dict[str, list[str]]]:
    nodes = [s.agent_name for s in steps]
    edges = {s.agent_name: list(s.next_step) for s in steps}
    return nodes, edges


def topological_order(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's order of ``nodes``; ties go to the node listed first in ``nodes``.

    Edges to names outside ``nodes`` are ignored. Raises ValueError naming the
    cycle if the graph has one.
    """
    known = set(nodes)
    indegree = {n: 0 for n in nodes}
    for src in nodes:
        for dst in dict.fromkeys(edges.get(src, ())):
            if dst in known:
                indegree[dst] += 1
    order: list[str] = []
    ready = [n for n in nodes if indegree[n] == 0]
    position = {n: i for i, n in enumerate(nodes)}
    while ready:
        ready.sort(key=position.__getitem__)
        current = ready.pop(0)
        order.append(current)
        for dst in dict.fromkeys(edges.get(current, ())):
            if dst in known:
                indegree[dst] -= 1
                if indegree[dst] == 0:
                    ready.append(dst)
    if len(order) != len(nodes):
        cycle = find_cycle(nodes, edges)
        raise ValueError(f"flow graph has a cycle: {' -> '.join(cycle or [])}")
    return order


def find_cycle(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first cycle found, as a closed path ``[A, B, A]``; None if acyclic.

    Deterministic: starts from nodes in list order and follows edges in order.
    """
    known = set(nodes)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dst in edges.get(node, ()):
            if dst not in known:
                continue
            if state.get(dst) == 1:
                return [*path[path.index(dst):], dst]
            if dst not in state:
                found = visit(dst)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in nodes:
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


# -- loading ------------------------------------------------------------------


@dataclass
class LoadedConfig:
    """A valid project config and the warnings (unknown keys, agent classes) it raised.

    ``document`` is the config as parsed (YAML text becomes a mapping), before
    validation filled in defaults: what a project store keeps.
    """

    config: ProjectConfig
    warnings: list[ConfigIssue] = field(default_factory=list)
    document: Mapping[str, Any] = field(default_factory=dict)


def load_project_config(raw: object) -> LoadedConfig:
    """Validate a project config given as a mapping (parsed YAML/JSON) or as YAML text.

    Returns the model and its warnings; raises :class:`ConfigError` listing
    every problem when the config is invalid.
    """
    data = _parse_raw(raw)
    issues: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    model: ProjectConfig | None = None
    try:
        model = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        issues.extend(_issues_from_pydantic(exc))
    semantic_errors, semantic_warnings = _check_references(data)
    issues.extend(semantic_errors)
    if issues:
        raise ConfigError(issues)
    assert model is not None
    warnings.extend(_unknown_keys(model, ()))
    warnings.extend(semantic_warnings)
    return LoadedConfig(config=model, warnings=warnings, document=data)


def load_project_config_file(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and validate a project YAML file (OSError if it cannot be read)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    return load_project_config(text)


#: libyaml's loader when PyYAML was built with it (~10x faster), else the pure-Python one.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_raw(raw: object) -> Mapping[str, Any]:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError([ConfigIssue(ROOT_PATH, f"bytes that are not UTF-8 ({exc.reason} at byte {exc.start})",
                                           "UTF-8 YAML text")]) from None
    if isinstance(raw, str):
        try:
            raw = yaml.load(raw, Loader=_YAML_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown position"
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError([ConfigIssue(ROOT_PATH, f"a YAML syntax error at {where} ({problem})",
                                           "valid YAML text; fix the line named")]) from None
        except yaml.YAMLError as exc:
            raise ConfigError([ConfigIssue(ROOT_PATH, f"a YAML error ({exc})", "valid YAML text")]) from None
    if not isinstance(raw, Mapping):
        if raw is None:
            kind = "nothing (empty document)"
        elif isinstance(raw, list):
            kind = _short_repr(raw)
        else:
            kind = f"the {type(raw).__name__} {_short_repr(raw)}"
        raise ConfigError([ConfigIssue(ROOT_PATH, kind,
                                       "a mapping with orchestrator, utility_agents, super_agents, audio_config")])
    return raw


_EXPECTED_BY_TYPE = {
    "missing": "a value (this field is required)",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value pairs)",
    "model_type": "a mapping (key: value pairs)",
    "model_attributes_type": "a mapping (key: value pairs)",
}


def _issues_from_pydantic(exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        ctx = err.get("ctx") or {}
        path = _join_path(err["loc"])
        if kind == "missing":
            found = "nothing"
        else:
            found = _short_repr(err.get("input"))
        if kind in _EXPECTED_BY_TYPE:
            expected = _EXPECTED_BY_TYPE[kind]
        elif kind == "literal_error":
            expected = f"one of {ctx.get('expected')}"
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
            bound = next(iter(ctx.values()), "?")
            expected = f"a number {op} {bound}"
        elif kind == "too_short":
            expected = f"at least {ctx.get('min_length', 1)} item(s)"
        elif kind == "value_error":
            expected = str(ctx.get("error", err["msg"]))
        else:
            expected = err["msg"].removeprefix("Input should be ")
        issues.append(ConfigIssue(path, found, expected))
    return issues


def _unknown_keys(node: BaseModel, where: tuple[str | int, ...]) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    known = list(type(node).model_fields)
    for key, value in (node.model_extra or {}).items():
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        out.append(ConfigIssue(
            _join_path((*where, str(key))),
            f"unknown key {key!r} = {_short_repr(value)}",
            f"one of the known keys ({hint}known: {', '.join(known)}); unknown keys are kept but ignored",
        ))
    for name in type(node).model_fields:
        value = getattr(node, name)
        if isinstance(value, BaseModel):
            out.extend(_unknown_keys(value, (*where, name)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    out.extend(_unknown_keys(item, (*where, name, index)))
    return out


def _mappings(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def _names_complete(section: Any) -> bool:
    if section is None:
        return True
    return isinstance(section, list) and all(isinstance(i, Mapping) and _name(i) is not None for i in section)


def _name(item: Mapping[str, Any]) -> str | None:
    name = item.get("agent_name")
    return name if isinstance(name, str) else None


def _check_references(data: Mapping[str, Any]) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Cross-reference checks on the raw mapping; ill-typed parts are skipped
    (pydantic reports them), so these run even when the structure is broken."""
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    utility = _mappings(data.get("utility_agents"))
    supers = _mappings(data.get("super_agents"))

    first_path: dict[str, str] = {}
    for section, items in (("utility_agents", utility), ("super_agents", supers)):
        for index, item in items:
            name = _name(item)
            if name is None:
                continue
            path = f"{section}[{index}].agent_name"
            if name in first_path:
                errors.append(ConfigIssue(path, repr(name),
                                          f"a unique agent name (already used at {first_path[name]})"))
            else:
                first_path[name] = path
    utility_names = {n for _, item in utility if (n := _name(item)) is not None}
    # A utility agent whose name is missing or ill-typed (pydantic reports it)
    # would make every flow step naming it look unknown: skip that check then.
    utility_names_complete = _names_complete(data.get("utility_agents"))
    all_names_complete = utility_names_complete and _names_complete(data.get("super_agents"))
    all_names = set(first_path)

    for index, item in utility:
        cls = item.get("agent_class")
        if isinstance(cls, str) and cls != PLANNING_AGENT:
            warnings.append(ConfigIssue(f"utility_agents[{index}].agent_class", repr(cls),
                                        f"{PLANNING_AGENT!r} (refinery-mock runs other classes as {PLANNING_AGENT})"))

    vad = data.get("audio_config", {}).get("vad") if isinstance(data.get("audio_config"), Mapping) else None
    if isinstance(vad, Mapping) and isinstance(vad.get("echo_gate_margin_db"), (int, float)):
        warnings.append(ConfigIssue("audio_config.vad.echo_gate_margin_db", repr(vad["echo_gate_margin_db"]),
                                    "none or nothing: replaced by echo_margin_db (dB above the measured echo, "
                                    "default 6); this value is ignored (docs/bargein.md, \"The echo gate\")"))

    orchestrator = data.get("orchestrator")
    if isinstance(orchestrator, Mapping):
        for index, ref in _mappings(orchestrator.get("agent_list")):
            name = _name(ref)
            if name is not None and name not in all_names and all_names_complete:
                errors.append(ConfigIssue(f"orchestrator.agent_list[{index}].agent_name", repr(name),
                                          "an agent name defined in utility_agents or super_agents"
                                          + _did_you_mean(name, all_names)))

    for s_index, sup in supers:
        base = f"super_agents[{s_index}]"
        cls = sup.get("agent_class")
        if isinstance(cls, str) and cls != FLOW_SUPER_AGENT:
            errors.append(ConfigIssue(f"{base}.agent_class", repr(cls),
                                      f"{FLOW_SUPER_AGENT!r} (the only super agent class supported)"))
        cfg = sup.get("config")
        if not isinstance(cfg, Mapping):
            continue
        steps = _mappings(cfg.get("agent_list"))
        listed: dict[str, int] = {}
        for index, step in steps:
            name = _name(step)
            if name is None:
                continue
            path = f"{base}.config.agent_list[{index}].agent_name"
            if name in listed:
                errors.append(ConfigIssue(path, repr(name),
                                          f"each agent once per flow (already listed at agent_list[{listed[name]}])"))
                continue
            listed[name] = index
            if name in all_names and name not in utility_names:
                errors.append(ConfigIssue(path, f"{name!r} (a super agent)",
                                          "an agent name defined in utility_agents (flows cannot nest super agents)"))
            elif name not in utility_names and utility_names_complete:
                hint = _did_you_mean(name, utility_names)
                errors.append(ConfigIssue(path, repr(name), f"an agent name defined in utility_agents{hint}"))
        edges: dict[str, list[str]] = {}
        for index, step in steps:
            name = _name(step)
            nexts = step.get("next_step")
            if name is None or not isinstance(nexts, list):
                continue
            for n_index, target in enumerate(nexts):
                if not isinstance(target, str):
                    continue
                if target not in listed:
                    errors.append(ConfigIssue(f"{base}.config.agent_list[{index}].next_step[{n_index}]", repr(target),
                                              "an agent name listed in this flow's agent_list"
                                              + _did_you_mean(target, listed)))
                    continue
                edges.setdefault(name, []).append(target)
        cycle = find_cycle(list(listed), edges)
        if cycle:
            errors.append(ConfigIssue(f"{base}.config.agent_list", f"the cycle {' -> '.join(cycle)}",
                                      "an acyclic flow: remove one of these next_step links"))
    return errors, warnings


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
