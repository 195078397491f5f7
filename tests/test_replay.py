"""Record and replay (issue #13): a barge-in over a real socket, recorded by the
server, reruns on the virtual clock with the same interrupt within one frame."""

from __future__ import annotations

import asyncio
import base64
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import websockets

from refinery_mock import RefineryMock
from server import protocol as proto
from simulator import cli
from simulator.replay import load_recording, replay

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
CHUNK = 480  # 30 ms at 16 kHz


def clip(name: str) -> np.ndarray:
    audio, rate = sf.read(FIX / f"{name}.wav", dtype="int16")
    assert rate == 16000
    return audio


async def _barge_in_call(ws_url: str) -> list[dict]:
    """Stream the mic in real time: a question, silence until the answer plays
    for 0.6 s, an interruption, then silence until the next answer starts."""
    got: list[dict] = []
    mic = [clip("question_currency_heart")]
    async with websockets.connect(f"{ws_url}/distiller/realtime/acct/rec/caller", additional_headers={"Authorization": "Bearer k"}) as ws:

        async def receive() -> None:
            async for frame in ws:
                event = json.loads(frame)
                got.append(event)
                if event["type"] == "response.interrupted":
                    await ws.send(json.dumps({"type": "response.cancel"}))

        reader = asyncio.create_task(receive())
        loop = asyncio.get_running_loop()
        start, sent, first_audio, interrupting = loop.time(), 0, None, False
        while loop.time() - start < 40:
            kinds = [e["type"] for e in got]
            if first_audio is None and "response.audio.delta" in kinds:
                first_audio = sent
            if first_audio is not None and not interrupting and sent - first_audio >= 20:  # 0.6 s of answer
                mic, interrupting = [clip("interrupt_bonds_joe")], True
            if kinds.count("response.created") == 2:
                break
            pcm = np.zeros(CHUNK, dtype=np.int16)
            if mic and len(mic[-1]):
                take = mic[-1][:CHUNK]
                pcm[: len(take)] = take
                mic[-1] = mic[-1][CHUNK:]
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm.tobytes()).decode()}))
            sent += 1
            # Paced to real time from the start, so arrival times are a microphone's.
            await asyncio.sleep(max(0.0, start + sent * 0.03 - loop.time()))
        reader.cancel()
    return got


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    with RefineryMock(record_dir=root) as mock:
        mock.create_project("rec")
        got = asyncio.run(_barge_in_call(mock.ws_url))
        assert "response.interrupted" in [e["type"] for e in got], [e["type"] for e in got]
    [session] = list(root.iterdir())
    return session


def test_a_recording_holds_the_mic_the_control_events_the_config_and_the_journal(recording: Path):
    with wave.open(str(recording / "mic.wav"), "rb") as mic:
        assert (mic.getframerate(), mic.getnchannels(), mic.getsampwidth()) == (16000, 1, 2)
        samples = mic.getnframes()
    lines = [json.loads(line) for line in (recording / "events.jsonl").read_text().splitlines()]
    appends = [line for line in lines if line.get("type") == "input_audio_buffer.append"]
    assert sum(a["samples"] for a in appends) == samples and all(a["samples"] == CHUNK for a in appends)
    assert [line["message"]["type"] for line in lines if "message" in line] == ["response.cancel"]
    assert [line["t"] for line in lines] == sorted(line["t"] for line in lines)
    meta = json.loads((recording / "config.json").read_text())
    assert meta["project"] == "rec" and meta["uuid"] == "caller" and "audio_config" in meta["config"]
    journal = json.loads((recording / "journal.json").read_text())
    assert journal["ended"] and [e["type"] for e in journal["entries"] if e["type"] == "interrupt"] == ["interrupt"]


def test_the_replay_reproduces_the_interrupt_within_one_frame(recording: Path):
    result = replay(load_recording(recording))
    assert result.differences == []
    [recorded] = [e for e in result.recorded if e["type"] == "interrupt"]
    [replayed] = [e for e in result.replayed if e["type"] == "interrupt"]
    assert abs(recorded["t"] - replayed["t"]) <= 0.030 + 1e-6
    assert abs(recorded["audio_end_ms"] - replayed["audio_end_ms"]) <= 30
    assert cli.main(["--replay", str(recording)]) == 0


def test_a_replay_that_decides_otherwise_is_reported(recording: Path):
    changed = load_recording(recording)
    # The interruption never reaches the replay: the mic is silent after the question.
    answer_t = next(e["t"] for e in changed.journal if e["type"] == "response.created")
    changed.messages = [(t, m) for t, m in changed.messages if t < answer_t or not isinstance(m, proto.AudioAppend)]
    result = replay(changed)
    assert [d.what for d in result.differences][:1] == ["interrupt 1"]
    assert result.differences[0].replayed is None


def test_a_directory_that_is_no_recording_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--replay", str(tmp_path)]) == 2
    assert "config.json is missing" in capsys.readouterr().out
