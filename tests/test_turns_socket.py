"""Adjacent questions over the real WebSocket, paced in real time (issue #10).

The server process transcribes on worker threads at whatever speed the
machine has, so where the second question starts relative to the first one's
transcript is not fixed: every ordering must keep both. Nothing here asserts
a wall-clock bound; the run takes about as long as the audio (~10 s).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import websockets
import yaml

from server import protocol as proto

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "fixtures" / "speech"
HEADERS = {"Authorization": "Bearer turns-socket"}
RATE = 16000
CHUNK_S = 0.04
TAIL_S = 15.0  # silence streamed after the last question while transcripts come in


def speech_of(name: str) -> np.ndarray:
    """A fixture clip cut to its labelled speech."""
    audio, rate = sf.read(SPEECH / f"{name}.wav", dtype="int16")
    assert rate == RATE
    seg = json.loads((SPEECH / f"{name}.json").read_text())["speech"][0]
    return audio[int(seg["onset_s"] * RATE) : int(seg["offset_s"] * RATE)]


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), dtype=np.int16)


async def talk(url: str, mic: np.ndarray, wanted: int) -> list[dict]:
    """Stream ``mic`` at real-time pace, then silence, acting like the tutorial page
    (``playback.started`` at a response's first audio, ``response.cancel`` on an
    interrupt), until ``wanted`` final transcripts came or the tail ran out."""
    events: list[dict] = []
    async with websockets.connect(url, additional_headers=HEADERS, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"

        async def listen() -> None:
            playing: set[str] = set()
            async for frame in ws:
                event = json.loads(frame)
                events.append(event)
                kind = event["type"]
                if kind == "response.audio.delta" and event["response_id"] not in playing:
                    playing.add(event["response_id"])
                    await ws.send(proto.encode_client_message(proto.PlaybackStarted()))
                elif kind == "response.interrupted":
                    await ws.send(proto.encode_client_message(proto.ResponseCancel()))

        listener = asyncio.create_task(listen())
        loop = asyncio.get_running_loop()
        step = int(CHUNK_S * RATE)
        stream = np.concatenate([mic, quiet(TAIL_S)])
        start = loop.time()
        for k, i in enumerate(range(0, len(stream), step)):
            # Paced against the start, so a late wake-up does not push the rest back.
            await asyncio.sleep(max(0.0, start + k * CHUNK_S - loop.time()))
            await ws.send(proto.encode_client_message(proto.AudioAppend(stream[i : i + step].tobytes())))
            past_mic = i >= len(mic)
            finals = sum(e["type"] == "response.audio_transcript.done" for e in events)
            if past_mic and finals >= wanted and events[-1]["type"] == "response.done":
                break
        listener.cancel()
    return events


def test_questions_asked_0_8_and_0_9_s_apart_are_all_transcribed(server) -> None:
    config = yaml.safe_load((ROOT / "fixtures/configs/two_agents_bargein.yaml").read_text())
    created = httpx.post(f"{server.url}/distiller/create", headers=HEADERS, json={"project": "turns", "config": config})
    assert created.status_code == 201, created.text
    mic = np.concatenate([
        quiet(0.5), speech_of("question_stocks_joe"),
        quiet(0.8), speech_of("interrupt_gold_heart"),
        quiet(0.9), speech_of("question_inflation_espeak_gb"),
        quiet(0.5),
    ])
    events = asyncio.run(talk(f"{server.ws_url}/distiller/realtime/acc/turns/sock", mic, wanted=3))
    finals = [e["text"].lower() for e in events if e["type"] == "response.audio_transcript.done"]
    heard = " | ".join(finals)
    positions = [heard.find(words) for words in ("stocks", "gold", "inflation")]
    assert -1 not in positions and positions == sorted(positions), (heard, server.log_tail())
    assert [e for e in events if e["type"] == "warning"] == []
    # The last question is answered (alone or merged with the ones before).
    last_final = max(i for i, e in enumerate(events) if e["type"] == "response.audio_transcript.done")
    assert any(e["type"] == "response.created" for e in events[last_final:])
