"""Tests of the project config models and validator (server/config.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.config import (
    ConfigError,
    ConfigIssue,
    EffectiveSpeech,
    LoadedConfig,
    SuperAgent,
    UtilityAgent,
    VadConfig,
    find_cycle,
    load_project_config,
    load_project_config_file,
    topological_order,
)

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "fixtures" / "configs"
TUTORIAL = CONFIGS / "bargein_flow_superagent_realtime.yaml"
PUSH_TO_TALK = CONFIGS / "pushtotalk_flow_superagent.yaml"
TWO_AGENTS = CONFIGS / "two_agents_bargein.yaml"
SPEC_TUTORIAL = Path("/work/shared/spec/configs/bargein_flow_superagent_realtime.yaml")


def tutorial_dict() -> dict[str, Any]:
    return yaml.safe_load(TUTORIAL.read_text(encoding="utf-8"))


def minimal(**overrides: Any) -> dict[str, Any]:
    """The smallest valid project: one utility agent routed to directly."""
    data: dict[str, Any] = {
        "orchestrator": {"agent_list": [{"agent_name": "A"}]},
        "utility_agents": [{"agent_class": "PlanningAgent", "agent_name": "A"}],
        "audio_config": {"asr": {"model": "Azure/AI-Transcription"}},
    }
    data.update(overrides)
    return data


def flow_project(steps: list[dict[str, Any]], utility: list[str]) -> dict[str, Any]:
    """A project with one FlowSuperAgent "Flow" over the given steps."""
    return minimal(
        orchestrator={"agent_list": [{"agent_name": "Flow"}]},
        utility_agents=[{"agent_class": "PlanningAgent", "agent_name": n} for n in utility],
        super_agents=[{"agent_class": "FlowSuperAgent", "agent_name": "Flow", "config": {"agent_list": steps}}],
    )


def issues_of(raw: object) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_project_config(raw)
    return info.value.issues


def paths(issues: list[ConfigIssue]) -> list[str]:
    return [i.path for i in issues]


# -- the tutorial and the fixtures ------------------------------------------------


def test_tutorial_fixture_is_byte_identical_to_spec() -> None:
    if not SPEC_TUTORIAL.exists():
        pytest.skip("spec directory not available")
    assert TUTORIAL.read_bytes() == SPEC_TUTORIAL.read_bytes()


def test_tutorial_loads_without_errors_or_warnings() -> None:
    loaded = load_project_config_file(TUTORIAL)
    assert isinstance(loaded, LoadedConfig)
    assert loaded.warnings == []
    cfg = loaded.config
    assert [a.agent_name for a in cfg.utility_agents] == ["Stock Planner", "Currency Planner", "Risk Assessment Planner"]
    assert cfg.audio_config.asr.model == "Azure/AI-Transcription"
    assert cfg.audio_config.asr.silence_duration_ms == 3500
    assert cfg.utility_agents[0].config == {"output_style": "conversational"}
    assert cfg.memory_config.save_config.auto_load is False


def test_tutorial_yaml_text_and_dict_give_the_same_model() -> None:
    from_text = load_project_config(TUTORIAL.read_text(encoding="utf-8")).config
    from_dict = load_project_config(tutorial_dict()).config
    from_bytes = load_project_config(TUTORIAL.read_bytes()).config
    assert from_text == from_dict == from_bytes


def test_tutorial_barge_in_values() -> None:
    vad = load_project_config_file(TUTORIAL).config.barge_in
    assert vad is not None
    assert (vad.enable_barge_in, vad.frame_ms, vad.threshold, vad.window_size) == (True, 30, 15, 24)
    assert (vad.lockout_seconds, vad.grace_period_seconds, vad.silero_min_samples_seconds) == (0.5, 1.0, 1.0)
    # Our extensions keep their defaults.
    assert (vad.frame_vad, vad.vad_mode, vad.neural_vad) == ("webrtc", 2, "silero")


def test_push_to_talk_variant_has_no_barge_in() -> None:
    loaded = load_project_config_file(PUSH_TO_TALK)
    assert loaded.warnings == []
    assert loaded.config.audio_config.vad is None
    assert loaded.config.barge_in is None
    # Everything else is the tutorial's.
    tutorial = load_project_config_file(TUTORIAL).config
    assert loaded.config.utility_agents == tutorial.utility_agents
    assert loaded.config.super_agents == tutorial.super_agents


def test_vad_block_with_barge_in_disabled_is_push_to_talk() -> None:
    data = tutorial_dict()
    data["audio_config"]["vad"]["enable_barge_in"] = False
    cfg = load_project_config(data).config
    assert cfg.audio_config.vad is not None
    assert cfg.barge_in is None


def test_two_agents_fixture() -> None:
    loaded = load_project_config_file(TWO_AGENTS)
    assert loaded.warnings == []
    cfg = loaded.config
    assert cfg.barge_in is not None and cfg.barge_in.lockout_seconds == 0.5
    (sup,) = cfg.super_agents
    assert cfg.flow_order(sup.agent_name) == ["Researcher", "Summarizer"]
    assert all(cfg.speech_for(n).enable_speech for n in cfg.flow_order(sup.agent_name))


# -- defaults -----------------------------------------------------------------


def test_defaults() -> None:
    cfg = load_project_config(minimal()).config
    assert cfg.memory_config.save_config.auto_load is False
    assert cfg.super_agents == []
    asr = cfg.audio_config.asr
    assert (asr.silence_duration_ms, asr.prefix_padding_ms, asr.language, asr.engine, asr.model_path) == (
        700, 300, None, None, None)
    tts = cfg.audio_config.tts
    assert (tts.model, tts.engine, tts.sample_rate) == ("Azure/AI-Speech", None, 16000)
    assert cfg.audio_config.vad is None and cfg.barge_in is None
    agent = cfg.utility_agents[0]
    assert (agent.agent_description, agent.config, agent.speech_config, agent.summarize_config) == ("", {}, None, None)


def test_vad_defaults() -> None:
    vad = load_project_config(minimal(audio_config={"asr": {"model": "m"}, "vad": {"enable_barge_in": True}})).config.barge_in
    assert vad == VadConfig(enable_barge_in=True)
    assert (vad.frame_ms, vad.threshold, vad.window_size) == (30, 30, 48)
    assert (vad.lockout_seconds, vad.grace_period_seconds, vad.silero_min_samples_seconds) == (1.0, 3.0, 1.5)


@pytest.mark.parametrize("value", [None, "none", "None", "off"])
def test_neural_vad_can_be_disabled(value: object) -> None:
    data = minimal(audio_config={"asr": {"model": "m"}, "vad": {"enable_barge_in": True, "neural_vad": value}})
    assert load_project_config(data).config.barge_in.neural_vad is None


def test_null_next_step_and_null_config_are_empty() -> None:
    data = flow_project([{"agent_name": "A", "next_step": None}], ["A"])
    data["utility_agents"][0]["config"] = None
    cfg = load_project_config(data).config
    assert cfg.super_agents[0].config.agent_list[0].next_step == []
    assert cfg.utility_agents[0].config == {}


# -- flow order ---------------------------------------------------------------


def test_tutorial_flow_order() -> None:
    cfg = load_project_config_file(TUTORIAL).config
    assert cfg.flow_order("Investment Strategy Advisor") == ["Stock Planner", "Currency Planner", "Risk Assessment Planner"]


def test_diamond_flow_order_follows_edges_not_listing() -> None:
    # Listed out of order on purpose: D last in the graph but first in the list.
    steps = [
        {"agent_name": "D"},
        {"agent_name": "C", "next_step": ["D"]},
        {"agent_name": "B", "next_step": ["D"]},
        {"agent_name": "A", "next_step": ["B", "C"]},
    ]
    cfg = load_project_config(flow_project(steps, ["A", "B", "C", "D"])).config
    # B and C become ready together; C is listed first, so it runs first.
    assert cfg.flow_order("Flow") == ["A", "C", "B", "D"]


def test_longer_flow_with_independent_roots() -> None:
    steps = [
        {"agent_name": "E", "next_step": ["F"]},
        {"agent_name": "A", "next_step": ["B"]},
        {"agent_name": "B", "next_step": ["C"]},
        {"agent_name": "C", "next_step": ["F"]},
        {"agent_name": "F"},
    ]
    order = load_project_config(flow_project(steps, ["A", "B", "C", "E", "F"])).config.flow_order("Flow")
    assert order == ["E", "A", "B", "C", "F"]


def test_topological_order_and_find_cycle_directly() -> None:
    edges = {"x": ["y"], "y": ["z"], "z": ["y"]}
    assert find_cycle(["x", "y", "z"], edges) == ["y", "z", "y"]
    assert find_cycle(["x", "y"], {"x": ["y"]}) is None
    with pytest.raises(ValueError, match="y -> z -> y"):
        topological_order(["x", "y", "z"], edges)


def test_flow_order_of_a_utility_agent_or_unknown_name_is_a_key_error() -> None:
    cfg = load_project_config_file(TUTORIAL).config
    with pytest.raises(KeyError, match="not a super agent"):
        cfg.flow_order("Stock Planner")
    with pytest.raises(KeyError, match="no agent named 'Nope'.*'Stock Planner'"):
        cfg.flow_order("Nope")


# -- cross-reference errors ---------------------------------------------------


def test_cycle_is_reported_with_its_path() -> None:
    steps = [
        {"agent_name": "A", "next_step": ["B"]},
        {"agent_name": "B", "next_step": ["C"]},
        {"agent_name": "C", "next_step": ["A"]},
    ]
    (issue,) = issues_of(flow_project(steps, ["A", "B", "C"]))
    assert issue.path == "super_agents[0].config.agent_list"
    assert "A -> B -> C -> A" in issue.found
    assert "acyclic" in issue.expected


def test_self_loop_is_a_cycle() -> None:
    (issue,) = issues_of(flow_project([{"agent_name": "A", "next_step": ["A"]}], ["A"]))
    assert "A -> A" in issue.found


def test_unknown_agent_names_with_exact_paths() -> None:
    data = tutorial_dict()
    data["super_agents"][0]["config"]["agent_list"][1]["agent_name"] = "Curency Planner"
    data["orchestrator"]["agent_list"][0]["agent_name"] = "Nobody"
    issues = issues_of(data)
    by_path = {i.path: i for i in issues}
    step = by_path["super_agents[0].config.agent_list[1].agent_name"]
    assert step.found == "'Curency Planner'"
    assert "utility_agents" in step.expected and "did you mean 'Currency Planner'" in step.expected
    orch = by_path["orchestrator.agent_list[0].agent_name"]
    assert orch.message == ("orchestrator.agent_list[0].agent_name: found 'Nobody', "
                            "expected an agent name defined in utility_agents or super_agents")
    # "Currency Planner" is no longer listed in the flow, so Stock Planner's edge to it dangles.
    nxt = by_path["super_agents[0].config.agent_list[0].next_step[0]"]
    assert nxt.found == "'Currency Planner'" and "this flow's agent_list" in nxt.expected
    assert len(issues) == 3


def test_duplicate_agent_names_across_sections() -> None:
    data = tutorial_dict()
    data["super_agents"][0]["agent_name"] = "Stock Planner"
    data["orchestrator"]["agent_list"][0]["agent_name"] = "Stock Planner"
    issues = issues_of(data)
    dup = [i for i in issues if i.path == "super_agents[0].agent_name"]
    assert len(dup) == 1 and "utility_agents[0].agent_name" in dup[0].expected


def test_flow_may_not_contain_a_super_agent() -> None:
    data = flow_project([{"agent_name": "A"}, {"agent_name": "Flow"}], ["A"])
    (issue,) = issues_of(data)
    assert issue.path == "super_agents[0].config.agent_list[1].agent_name"
    assert "super agent" in issue.found


def test_step_listed_twice_in_one_flow() -> None:
    (issue,) = issues_of(flow_project([{"agent_name": "A"}, {"agent_name": "A"}], ["A"]))
    assert issue.path == "super_agents[0].config.agent_list[1].agent_name"
    assert "agent_list[0]" in issue.expected


def test_super_agent_class_must_be_flow_super_agent() -> None:
    data = tutorial_dict()
    data["super_agents"][0]["agent_class"] = "GraphSuperAgent"
    (issue,) = issues_of(data)
    assert issue.path == "super_agents[0].agent_class"
    assert issue.found == "'GraphSuperAgent'" and "FlowSuperAgent" in issue.expected


def test_other_utility_agent_class_is_a_warning() -> None:
    data = tutorial_dict()
    data["utility_agents"][2]["agent_class"] = "SearchAgent"
    loaded = load_project_config(data)
    (warning,) = loaded.warnings
    assert warning.path == "utility_agents[2].agent_class"
    assert warning.found == "'SearchAgent'" and "PlanningAgent" in warning.expected
    assert loaded.config.utility_agents[2].agent_class == "SearchAgent"


def test_several_errors_reported_together() -> None:
    data = tutorial_dict()
    data["audio_config"]["vad"]["frame_ms"] = 25
    data["audio_config"]["asr"].pop("model")
    data["orchestrator"]["agent_list"][0]["agent_name"] = "Nobody"
    data["super_agents"][0]["config"]["agent_list"][2]["next_step"] = ["Stock Planner"]
    with pytest.raises(ConfigError) as info:
        load_project_config(data)
    err = info.value
    got = paths(err.issues)
    assert set(got) == {
        "audio_config.vad.frame_ms",
        "audio_config.asr.model",
        "orchestrator.agent_list[0].agent_name",
        "super_agents[0].config.agent_list",
    }
    lines = str(err).splitlines()
    assert lines[0] == "invalid project config (4 problems):"
    assert [line.strip() for line in lines[1:]] == [i.message for i in err.issues]


def test_ill_typed_agent_name_does_not_cascade() -> None:
    data = tutorial_dict()
    data["utility_agents"][0]["agent_name"] = 5
    (issue,) = issues_of(data)
    assert (issue.path, issue.found, issue.expected) == ("utility_agents[0].agent_name", "5", "a string")


# -- structural / range errors ------------------------------------------------


def test_threshold_above_window_size() -> None:
    data = tutorial_dict()
    data["audio_config"]["vad"]["threshold"] = 25
    (issue,) = issues_of(data)
    assert issue.path == "audio_config.vad.threshold"
    assert issue.found == "25"
    assert "window_size (24)" in issue.expected


def test_frame_ms_25() -> None:
    data = tutorial_dict()
    data["audio_config"]["vad"]["frame_ms"] = 25
    (issue,) = issues_of(data)
    assert issue.message == "audio_config.vad.frame_ms: found 25, expected one of 10, 20 or 30"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("threshold", 0, "a number >= 1"),
        ("lockout_seconds", -0.1, "a number >= 0"),
        ("grace_period_seconds", -1, "a number >= 0"),
        ("silero_min_samples_seconds", -2, "a number >= 0"),
        ("vad_mode", 4, "a number <= 3"),
        ("enable_barge_in", "maybe", "true or false"),
        ("window_size", "big", "an integer"),
    ],
)
def test_vad_ranges(field: str, value: object, expected: str) -> None:
    data = tutorial_dict()
    data["audio_config"]["vad"][field] = value
    issues = issues_of(data)
    assert paths(issues) == [f"audio_config.vad.{field}"]
    assert issues[0].expected.startswith(expected)
    assert issues[0].found == repr(value)


def test_missing_required_sections() -> None:
    issues = issues_of({"utility_agents": []})
    assert set(paths(issues)) == {"orchestrator", "audio_config"}
    assert all(i.found == "nothing" for i in issues)


def test_empty_orchestrator_and_flow_lists() -> None:
    data = flow_project([], ["A"])
    data["orchestrator"]["agent_list"] = []
    issues = issues_of(data)
    assert set(paths(issues)) == {"orchestrator.agent_list", "super_agents[0].config.agent_list"}


# -- unknown keys -------------------------------------------------------------


def test_unknown_keys_are_warnings_with_paths_and_kept() -> None:
    data = tutorial_dict()
    data["base_config"] = {"pii_masking": {"enable": False}}
    data["audio_config"]["vad"]["threshhold"] = 10
    data["super_agents"][0]["config"]["agent_list"][0]["retries"] = 2
    loaded = load_project_config(data)
    by_path = {w.path: w for w in loaded.warnings}
    assert set(by_path) == {
        "base_config",
        "audio_config.vad.threshhold",
        "super_agents[0].config.agent_list[0].retries",
    }
    assert "did you mean 'threshold'" in by_path["audio_config.vad.threshhold"].expected
    # Kept, not applied: the typo does not change the threshold.
    assert loaded.config.barge_in.threshold == 15
    assert loaded.config.model_extra["base_config"] == {"pii_masking": {"enable": False}}


def test_free_form_agent_config_keys_are_not_warnings() -> None:
    data = tutorial_dict()
    data["utility_agents"][0]["config"]["anything"] = {"goes": 1}
    assert load_project_config(data).warnings == []


# -- root errors --------------------------------------------------------------


def test_invalid_yaml_string_names_the_line() -> None:
    text = "orchestrator:\n  agent_list:\n    - agent_name: [oops\n"
    (issue,) = issues_of(text)
    assert issue.path == "<root>"
    assert "YAML syntax error at line" in issue.found
    line = int(issue.found.split("line ")[1].split(",")[0])
    assert 3 <= line <= 4


@pytest.mark.parametrize(("raw", "found"), [("", "nothing"), ("- a\n- b\n", "a list"), (42, "the int 42"), ("x", "the str 'x'")])
def test_not_a_mapping(raw: object, found: str) -> None:
    (issue,) = issues_of(raw)
    assert issue.path == "<root>" and issue.found.startswith(found)
    assert "mapping" in issue.expected


def test_config_error_requires_issues_and_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ConfigError([])
    assert issubclass(ConfigError, ValueError)


# -- speech inheritance -------------------------------------------------------


def test_speech_for_tutorial_agents() -> None:
    cfg = load_project_config_file(TUTORIAL).config
    stock = cfg.speech_for("Stock Planner")
    assert stock == EffectiveSpeech(model="Azure/AI-Speech", language="en-US", voice="en-US-JennyNeural",
                                    enable_speech=True, normalize_text=True, source="super_agents[0].speech_config")
    currency = cfg.speech_for("Currency Planner")
    assert (currency.language, currency.voice, currency.source) == ("en-CA", "en-CA-LiamNeural",
                                                                    "utility_agents[1].speech_config")
    assert currency.enable_speech and currency.normalize_text
    risk = cfg.speech_for("Risk Assessment Planner")
    assert (risk.enable_speech, risk.normalize_text, risk.voice) == (False, False, "en-GB-LibbyNeural")
    sup = cfg.speech_for("Investment Strategy Advisor")
    assert (sup.voice, sup.source) == ("en-US-JennyNeural", "super_agents[0].speech_config")
    orch = cfg.orchestrator_speech()
    assert (orch.language, orch.voice, orch.source) == ("en-AU", "en-AU-WilliamNeural", "orchestrator.speech_config")


def test_speech_falls_back_to_orchestrator_then_tts() -> None:
    data = tutorial_dict()
    data["orchestrator"]["speech_config"]["enable_speech"] = False
    del data["super_agents"][0]["speech_config"]
    data["utility_agents"].append({"agent_class": "PlanningAgent", "agent_name": "Loner"})
    data["audio_config"]["tts"]["model"] = "local/espeak"
    cfg = load_project_config(data).config
    stock = cfg.speech_for("Stock Planner")
    assert (stock.voice, stock.enable_speech, stock.source) == ("en-AU-WilliamNeural", False,
                                                                "orchestrator.speech_config")
    # Currency's own block leaves enable_speech unset: it comes from the orchestrator.
    assert cfg.speech_for("Currency Planner").enable_speech is False

    del data["orchestrator"]["speech_config"]
    cfg = load_project_config(data).config
    loner = cfg.speech_for("Loner")
    assert loner == EffectiveSpeech(model="local/espeak", language=None, voice=None, enable_speech=True,
                                    normalize_text=True, source="audio_config.tts")


def test_inherited_voice_must_match_the_language() -> None:
    data = tutorial_dict()
    data["utility_agents"][0]["speech_config"] = {"language": "en-GB"}
    cfg = load_project_config(data).config
    stock = cfg.speech_for("Stock Planner")
    # Neither Jenny (en-US) nor William (en-AU) may speak an en-GB agent.
    assert (stock.language, stock.voice, stock.source) == ("en-GB", None, "utility_agents[0].speech_config")

    data["utility_agents"][0]["speech_config"] = {"voice": "en-GB-RyanNeural"}
    stock = load_project_config(data).config.speech_for("Stock Planner")
    assert (stock.language, stock.voice) == ("en-GB", "en-GB-RyanNeural")


def test_agent_lookup() -> None:
    cfg = load_project_config_file(TUTORIAL).config
    assert isinstance(cfg.agent("Stock Planner"), UtilityAgent)
    assert isinstance(cfg.agent("Investment Strategy Advisor"), SuperAgent)
    assert cfg.super_agent_of("Currency Planner").agent_name == "Investment Strategy Advisor"
    assert cfg.super_agent_of("Investment Strategy Advisor") is None
    with pytest.raises(KeyError, match="known agents"):
        cfg.speech_for("Ghost")


def test_config_is_immutable() -> None:
    cfg = load_project_config_file(TUTORIAL).config
    with pytest.raises(Exception):
        cfg.audio_config.vad.threshold = 1  # type: ignore[misc]
    original = copy.deepcopy(tutorial_dict())
    load_project_config(original)
    assert original == tutorial_dict()
