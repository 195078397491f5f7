"""An agent answering in markdown is heard without the markup (issue #10, part 6).

The case of shared/cases/tts-text-edge, on the virtual clock with the real
brain, TTS and session: what the session hands to TTS has no markup, the
answer's audio is exactly the synthesis of the plain words, and the text
events keep the original markdown.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from server import protocol as proto
from server.config import load_project_config
from server.engines import build_engines
from server.session import Session, StartJob
from server.virtual import open_virtual_session
from server.work import SpeechJob, run_job

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "fixtures/configs/one_agent_markdown.yaml"
AGENT = "Stock Planner"
QUERY = "How do I hedge my stocks?"
TITLE = "Hedge losses against stock price variance"
MARKUP = set("*_#`|>[]")


def _config(normalize: bool = True):
    raw = CONFIG.read_text()
    if not normalize:
        raw = raw.replace("    voice: 'en-US-GuyNeural'\n", "    voice: 'en-US-GuyNeural'\n    normalize_text: false\n")
        assert "normalize_text: false" in raw
    return load_project_config(raw).config


def _handed_to_tts(config) -> list[str]:
    """The text of every SpeechJob of a typed turn, in order (engines run inline)."""
    session = Session(config, build_engines(config), session_id="s")
    pending = session.receive(0.0, proto.TextInput(QUERY))
    texts = []
    while pending:
        out = pending.pop(0)
        if isinstance(out, StartJob):
            if isinstance(out.job, SpeechJob):
                texts.append(out.job.text)
            pending += session.job_done(0.0, run_job(out.job))
    return texts


@pytest.mark.parametrize("normalize", [True, False], ids=["normalize_text", "no_normalize_text"])
def test_markup_is_never_handed_to_tts(normalize: bool) -> None:
    texts = _handed_to_tts(_config(normalize))
    assert texts[0] == TITLE
    assert len(texts) >= 4  # title, paragraph, one sentence per bullet
    assert not [t for t in texts if MARKUP & set(t)], texts
    # Numbers follow the knob; markup stripping does not.
    assert any(ch.isdigit() for t in texts for ch in t) is not normalize


def test_the_answer_sounds_like_its_plain_words_and_the_text_keeps_the_markdown() -> None:
    config = _config()
    vs = open_virtual_session(config)
    vs.start()
    events = [e.event for e in vs.deliver(0.0, proto.TextInput(QUERY)) + vs.advance(120.0)]
    (text,) = [e["content"] for e in events if e["type"] == "response.text.delta"]
    assert text.startswith(f"**{TITLE}**\n\n") and "\n- " in text  # the text event is the original
    audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta")
    engines = build_engines(config)
    voice = engines.voices[AGENT]
    plain = engines.tts_for(voice).synthesize(TITLE, voice, 16000)
    with_markup = engines.tts_for(voice).synthesize(f"**{TITLE}**", voice, 16000)
    # eSpeak says "asterisk asterisk" (~2 s more): the answer must start with the plain words' audio.
    assert len(with_markup) - len(plain) > 0.3 * 2 * 16000
    assert audio[: len(plain)] == plain
    assert events[-1]["type"] == "response.done" and events[-1]["status"] == "completed"
