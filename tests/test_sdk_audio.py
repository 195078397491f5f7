"""Spoken turns and barge-in through the unmodified airefinery-sdk (issue 3).

tests/sdk/sdk_audio.py streams fixture WAVs with ``send_audio_chunk`` in 30 ms
chunks at real-time pace (the real-time path: pacing is the point). The
assertions are on content and order, never on wall-clock time.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.sdk_trace import (
    BYTES_PER_SECOND,
    Event,
    format_trace,
    parse_response,
    server_events,
    split_responses,
    vad_block,
)
from tests.support.text_metrics import normalize_words, word_error_rate

pytestmark = pytest.mark.sdk

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEECH_DIR = REPO_ROOT / "fixtures" / "speech"
# A whole interrupt session; its sidecar names the question and barge-in clips.
INTERRUPT_WAV = REPO_ROOT / "fixtures" / "interrupt.wav"
MAX_WER = 0.1
# Share of the interrupting utterance's words the new turn must contain: the
# interrupt's first syllables can fall before the detector's prefix padding.
MIN_INTERRUPT_RECALL = 0.6


def _question_fixtures() -> list[Path]:
    """Speech fixtures whose sidecar says ``"kind": "question"``."""
    found = []
    for wav in sorted(SPEECH_DIR.glob("*.wav")):
        sidecar = wav.with_suffix(".json")
        if sidecar.is_file() and json.loads(sidecar.read_text()).get("kind") == "question":
            found.append(wav)
    return found


def _barge_in_pair() -> tuple[Path, Path]:
    """(question, interrupting utterance) named by fixtures/interrupt.json's speech list."""
    session = _require(INTERRUPT_WAV.with_suffix(".json"), "the interrupt session sidecar")
    by_role = {seg.get("role"): seg.get("source") for seg in json.loads(session.read_text()).get("speech", [])}
    if not by_role.get("question") or not by_role.get("barge_in"):
        pytest.fail(f"{session} must list speech segments with role 'question' and 'barge_in' and their source", pytrace=False)
    base = INTERRUPT_WAV.parent
    return _require(base / by_role["question"], "the question"), _require(base / by_role["barge_in"], "the barge-in")


def sidecar_text(wav: Path) -> str:
    """The reference transcript from ``<wav>.json`` (``{"text": ...}``)."""
    sidecar = wav.with_suffix(".json")
    if not sidecar.is_file():
        pytest.fail(f"{wav} has no sidecar {sidecar.name} with the reference text", pytrace=False)
    text = json.loads(sidecar.read_text()).get("text", "")
    if not text.strip():
        pytest.fail(f"{sidecar} has an empty 'text'", pytrace=False)
    return text


def _require(path: Path | None, what: str) -> Path:
    if path is None or not path.is_file():
        pytest.fail(f"{what} is missing ({path}); generate the speech fixtures first (see Makefile)", pytrace=False)
    return path


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _run_audio(run_sdk_script: Any, server: Any, config: Path, mode: str, wav: Path, **extra: Any) -> dict[str, Any]:
    args = ["--base-url", server.url, "--config", str(config), "--mode", mode, "--wav", str(wav)]
    args += ["--project", _name(f"audio_{mode}"), "--uuid", _name("u")]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return run_sdk_script("sdk_audio.py", *args, server=server)


def _msg(result: dict[str, Any], what: str) -> str:
    return f"{what}\nevent trace:\n{format_trace(result['events'])}"


def _index(events: list[Event], kind: str, start: int = 0) -> int | None:
    return next((i for i in range(start, len(events)) if events[i]["type"] == kind), None)


def _transcripts(events: list[Event]) -> list[tuple[int, str]]:
    return [(i, e.get("text", "")) for i, e in enumerate(events) if e["type"] == "response.audio_transcript.done"]


@pytest.mark.parametrize("wav", _question_fixtures() or [None], ids=lambda p: p.stem if p else "missing")
def test_spoken_turn(run_sdk_script: Any, server: Any, tutorial_config: Path, wav: Path | None) -> None:
    wav = _require(wav, f"a speech fixture in {SPEECH_DIR}")
    reference = sidecar_text(wav)
    result = _run_audio(run_sdk_script, server, tutorial_config, "speak", wav)
    events = result["events"]
    assert result.get("completed"), _msg(result, "no response.done before the wait cap")
    transcripts = _transcripts(events)
    assert len(transcripts) == 1, _msg(result, "one utterance, one final transcript (commits must not end a turn)")
    done_at, transcript = transcripts[0]
    created_at = _index(events, "response.created")
    assert created_at is not None and done_at < created_at, _msg(result, "transcript.done must precede response.created")
    deltas = [i for i, e in enumerate(events) if e["type"] == "response.audio_transcript.delta"]
    assert all(i < done_at for i in deltas), _msg(result, "transcript deltas must precede transcript.done")
    wer = word_error_rate(reference, transcript)
    assert wer <= MAX_WER, f"WER {wer:.2f} > {MAX_WER}: heard {transcript!r}, said {reference!r}"
    responses = split_responses(server_events(result))
    assert len(responses) == 1, _msg(result, "one turn, one response")
    response = parse_response(responses[0])
    assert response.problems == [] and response.status == "completed", _msg(result, "; ".join(response.problems))
    assert sum(s.audio_bytes for s in response.segments) > 0, _msg(result, "the response has no audio")


def test_barge_in_interrupts_and_starts_new_turn(run_sdk_script: Any, server: Any, tutorial_config: Path) -> None:
    wav, interrupt = _barge_in_pair()
    interrupt_text = sidecar_text(interrupt)
    vad = vad_block(tutorial_config)
    assert vad and vad.get("enable_barge_in"), "the tutorial config must enable barge-in"
    lockout_s = float(vad.get("lockout_seconds", 1.0))
    result = _run_audio(run_sdk_script, server, tutorial_config, "bargein", wav, interrupt_wav=interrupt, lockout_s=lockout_s)
    events = result["events"]

    intr_start = _index(events, "client:interrupt_start")
    interrupted_at = _index(events, "response.interrupted")
    assert intr_start is not None, _msg(result, "the script never reached the interrupt (no response audio?)")
    assert interrupted_at is not None, _msg(result, "speaking over the response must give response.interrupted")
    assert interrupted_at > intr_start, _msg(result, "response.interrupted before the user spoke over the response")
    first_created = _index(events, "response.created")
    assert first_created is not None
    first_id = events[first_created].get("response_id")
    interrupted = events[interrupted_at]
    assert interrupted.get("response_id") == first_id, _msg(result, "response.interrupted must name the response it cut")

    # The server must not send more audio of the cut response.
    late = [i for i in range(interrupted_at + 1, len(events))
            if events[i]["type"] == "response.audio.delta" and events[i].get("response_id") == first_id]
    assert not late, _msg(result, f"{len(late)} audio deltas of {first_id} after response.interrupted")
    # Exactly one response.done for it; if it came after the interrupt, it says so.
    dones = [i for i, e in enumerate(events) if e["type"] == "response.done" and e.get("response_id") == first_id]
    assert len(dones) == 1, _msg(result, f"{first_id} must end with exactly one response.done")
    if dones[0] > interrupted_at:
        assert events[dones[0]].get("status") == "interrupted", _msg(result, "status of the interrupted response")

    # audio_end_ms: played time, at least the lockout, at most the audio sent.
    sent_ms = 1000 * sum(e.get("audio_bytes", 0) for e in events[:interrupted_at]
                         if e["type"] == "response.audio.delta" and e.get("response_id") == first_id) / BYTES_PER_SECOND
    end_ms = interrupted.get("audio_end_ms")
    assert isinstance(end_ms, (int, float)), _msg(result, "response.interrupted needs a numeric audio_end_ms")
    assert 1000 * lockout_s <= end_ms <= sent_ms + 1, _msg(result, f"audio_end_ms {end_ms} outside [lockout, {sent_ms:.0f}]")

    # The interrupting speech starts the next turn.
    later = [(i, text) for i, text in _transcripts(events) if i > interrupted_at]
    assert later, _msg(result, "no transcript for the interrupting speech")
    heard = normalize_words(later[0][1])
    said = normalize_words(interrupt_text)
    recall = sum(1 for w in said if w in heard) / len(said)
    assert recall >= MIN_INTERRUPT_RECALL, _msg(result, f"new turn heard {later[0][1]!r}, interrupt said {interrupt_text!r}")
    new_created = _index(events, "response.created", later[0][0])
    assert new_created is not None and events[new_created].get("response_id") != first_id, _msg(
        result, "the interrupting turn must get a new response"
    )
    assert result.get("completed"), _msg(result, "the new turn's response did not finish")


def test_push_to_talk_ignores_audio_during_response(run_sdk_script: Any, server: Any, ptt_config: Path) -> None:
    assert vad_block(ptt_config) is None, f"{ptt_config} must have no vad block (push-to-talk)"
    wav, interrupt = _barge_in_pair()
    result = _run_audio(run_sdk_script, server, ptt_config, "ptt", wav, interrupt_wav=interrupt)
    events = result["events"]
    created = server_events(result)[0]
    assert created["type"] == "session.created" and created.get("capabilities", {}).get("vad_enabled") is False, _msg(
        result, "push-to-talk sessions must report vad_enabled: false"
    )
    intr_start = _index(events, "client:interrupt_start")
    assert intr_start is not None, _msg(result, "the script never reached the interrupt (no response audio?)")
    sent_s = events[_index(events, "client:interrupt_end")]["sent_during_response_s"]
    assert sent_s >= 0.6, _msg(result, f"only {sent_s} s of speech went out while the response was active; nothing tested")
    assert _index(events, "response.interrupted") is None, _msg(result, "push-to-talk must not barge in")
    assert result.get("completed"), _msg(result, "the response did not finish")
    responses = split_responses(server_events(result))
    assert len(responses) == 1, _msg(result, "audio sent during the response must not start another turn")
    response = parse_response(responses[0])
    assert response.problems == [] and response.status == "completed", _msg(result, "; ".join(response.problems))
    assert len(_transcripts(events)) == 1, _msg(result, "only the first utterance may be transcribed")
