"""The burst-clock-offset case against the real server process (issue 10).

A client sends its first 4.8 s of audio (the question plus 1 s of silence) as
160 ordinary 30 ms appends back to back, as a client catching up on buffered
audio does, then streams its microphone in real time; 1.0 s after the answer
starts playing the user says "Wait, what about gold?". Before the input clock
(server/inputclock.py) every later frame was stamped ~4.7 s ahead of the
session clock and this barge-in was never detected: the user's words became a
second answer over the first. Assertions are on order and content only; the
pacing is wall-clock because the server's is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import websockets
import yaml

from tests.support.server_proc import running_server

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "fixtures/configs/short_answer_bargein.yaml").read_text())
HEADERS = {"Authorization": "Bearer burst"}
RATE = 16000
CHUNK = 960  # 30 ms of PCM16
#: Caps on waiting for the server (a loaded machine is slow); never asserted on.
WAIT_S = 60.0


def pcm(name: str) -> bytes:
    audio, rate = sf.read(ROOT / "fixtures/speech" / f"{name}.wav", dtype="int16")
    assert rate == RATE
    return audio.tobytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("burst")) as handle:
        resp = httpx.post(f"{handle.url}/distiller/create", headers=HEADERS, json={"project": "p", "config": CONFIG})
        assert resp.status_code == 201, resp.text
        yield handle


def append(chunk: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})


async def burst_then_live(server) -> list[dict]:
    events: list[dict] = []
    lead = pcm("question_stocks_joe") + bytes(2 * RATE)
    gold = bytearray()
    async with websockets.connect(f"{server.ws_url}/distiller/realtime/acc/p/burst", additional_headers=HEADERS, max_size=None) as ws:

        async def read() -> None:
            async for raw in ws:
                events.append(json.loads(raw))

        reader = asyncio.create_task(read())

        async def seen(pred) -> bool:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                if any(pred(e) for e in events):
                    return True
                await asyncio.sleep(0.01)
            return False

        assert await seen(lambda e: e["type"] == "session.created")
        for off in range(0, len(lead), CHUNK):  # the buffered burst, back to back
            await ws.send(append(lead[off : off + CHUNK]))
        stop = asyncio.Event()

        async def mic() -> None:  # then a live microphone: 30 ms every 30 ms
            start, i = time.monotonic(), 0
            while not stop.is_set():
                chunk = bytes(gold[:CHUNK]).ljust(CHUNK, b"\0")
                del gold[:CHUNK]
                await ws.send(append(chunk))
                i += 1
                await asyncio.sleep(max(0.0, start + i * 0.03 - time.monotonic()))

        sender = asyncio.create_task(mic())
        assert await seen(lambda e: e["type"] == "response.audio.delta"), "no answer audio"
        await ws.send(json.dumps({"type": "playback.started"}))
        await asyncio.sleep(1.0)
        gold.extend(pcm("interrupt_gold_heart"))
        if await seen(lambda e: e["type"] == "response.interrupted"):
            await ws.send(json.dumps({"type": "response.cancel"}))
        await seen(lambda e: e["type"] == "response.audio_transcript.done" and "gold" in e.get("text", "").lower())
        await seen(lambda e: e["type"] == "response.created" and sum(x["type"] == "response.created" for x in events) >= 2)
        stop.set()
        await sender
        reader.cancel()
    return events


def test_a_start_up_burst_does_not_disable_barge_in(server) -> None:
    events = asyncio.run(burst_then_live(server))
    kinds = [e["type"] for e in events]
    assert "response.interrupted" in kinds, f"the user's speech did not interrupt the answer: {kinds}"
    created = [i for i, k in enumerate(kinds) if k == "response.created"]
    interrupted = kinds.index("response.interrupted")
    first_id = events[created[0]]["response_id"]
    assert events[interrupted]["response_id"] == first_id
    assert len(created) == 2 and created[0] < interrupted < created[1], "a second answer started over the first"
    heard = [e["text"] for e in events if e["type"] == "response.audio_transcript.done"]
    assert len(heard) == 2 and "gold" in heard[1].lower(), heard
