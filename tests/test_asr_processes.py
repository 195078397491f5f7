"""ASR decodes in worker processes (server/asr_processes.py), against the real server.

A real ``python -m server`` with ``--asr-processes 1`` transcribes a spoken
fixture over the WebSocket with real Whisper in its worker; the worker is the
server's child at the configured niceness; a killed or hung (stopped) worker
is replaced and the next decode works; no worker outlives the server.
Assertions are on content, counts and process state, never on durations: the
waits below are caps for a loaded machine.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest
import soundfile as sf
import websockets
import yaml

from server import asr
from server.asr_processes import AsrProcesses
from tests.support.server_proc import running_server

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "fixtures/configs/short_answer_bargein.yaml").read_text())
HEADERS = {"Authorization": "Bearer asrproc"}
RATE = 16000
CHUNK = 960  # 30 ms of PCM16
NICE = 7
#: Caps on waiting for a loaded machine; never asserted on.
WAIT_S = 90.0
#: Short enough that the hung-worker test ends soon, far above a decode on a busy box.
ENGINE_TIMEOUT_S = 15


def pcm(name: str) -> bytes:
    audio, rate = sf.read(ROOT / "fixtures/speech" / f"{name}.wav", dtype="int16")
    assert rate == RATE
    return audio.tobytes()


def health(handle) -> dict:
    return httpx.get(f"{handle.url}/health", timeout=30).json()


def wait_ready(handle) -> dict:
    """/health's asr_processes once a worker serves (fails with the log after WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        info = health(handle)["asr_processes"]
        if info["ready"] >= 1:
            return info
        time.sleep(0.2)
    pytest.fail(f"no ASR worker ready\n{handle.log_tail()}")


def start(tmp_path: Path):
    return running_server(tmp_path, "--asr-processes", "1", "--asr-process-nice", str(NICE),
                          "--limit", f"engine_timeout_s={ENGINE_TIMEOUT_S}", "--no-warm-up")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start(tmp_path_factory.mktemp("asrproc")) as handle:
        resp = httpx.post(f"{handle.url}/distiller/create", headers=HEADERS, json={"project": "p", "config": CONFIG})
        assert resp.status_code == 201, resp.text
        wait_ready(handle)
        yield handle


def append(chunk: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})


async def ask(handle, uuid: str) -> list[dict]:
    """Say the stocks question, then silence (the end of turn), paced like a microphone; the
    events until the user transcript is done or an engine failed."""
    events: list[dict] = []
    url = f"{handle.ws_url}/distiller/realtime/acc/p/{uuid}"
    async with websockets.connect(url, additional_headers=HEADERS, max_size=None) as ws:
        question = pcm("question_stocks_joe")

        async def microphone() -> None:
            start_t, i = time.monotonic(), 0
            while True:
                await ws.send(append(question[i * CHUNK: (i + 1) * CHUNK].ljust(CHUNK, b"\0")))
                i += 1
                await asyncio.sleep(max(0.0, start_t + i * 0.03 - time.monotonic()))

        sender = asyncio.create_task(microphone())
        try:
            async with asyncio.timeout(WAIT_S):
                async for raw in ws:
                    event = json.loads(raw)
                    events.append(event)
                    if event["type"] == "response.audio_transcript.done" or (
                            event["type"] == "warning" and event.get("code") == "engine_failed"):
                        break
        except TimeoutError:
            pass
        finally:
            sender.cancel()
    return events


def transcript(events: list[dict]) -> str:
    done = [e for e in events if e["type"] == "response.audio_transcript.done"]
    assert done, [e["type"] for e in events if e["type"] != "response.audio.delta"]
    return done[0]["text"].lower()


def test_a_spoken_question_is_transcribed_in_the_worker_process(server):
    before = health(server)["asr_processes"]["decodes"]
    assert "stocks" in transcript(asyncio.run(ask(server, "q1")))
    assert health(server)["asr_processes"]["decodes"] > before


def test_the_worker_is_a_child_of_the_server_at_the_configured_niceness(server):
    info = wait_ready(server)
    assert len(info["pids"]) == 1 and info["nice"] == NICE
    worker = psutil.Process(info["pids"][0])
    assert worker.ppid() == server.process.pid
    assert worker.nice() == min(19, psutil.Process(server.process.pid).nice() + NICE)


def test_a_killed_worker_is_replaced_and_the_next_decode_works(server):
    info = wait_ready(server)
    os.kill(info["pids"][0], signal.SIGKILL)
    assert "stocks" in transcript(asyncio.run(ask(server, "after-kill")))
    after = health(server)["asr_processes"]
    assert after["replaced"] >= info["replaced"] + 1
    assert info["pids"][0] not in after["pids"]


def test_a_hung_worker_times_out_is_replaced_and_the_next_decode_works(server):
    info = wait_ready(server)
    hung = info["pids"][0]
    os.kill(hung, signal.SIGSTOP)  # a decode that never returns
    try:
        events = asyncio.run(ask(server, "hung"))
    finally:
        if psutil.pid_exists(hung):
            os.kill(hung, signal.SIGCONT)
    failed = [e for e in events if e["type"] == "warning" and e.get("code") == "engine_failed"]
    assert failed and "engine_timeout_s" in failed[0]["message"], [e["type"] for e in events]
    assert "stocks" in transcript(asyncio.run(ask(server, "after-hang")))
    after = health(server)["asr_processes"]
    assert hung not in after["pids"] and after["replaced"] >= info["replaced"] + 1


def test_sigterm_with_a_caller_connected_and_a_hung_worker_leaves_no_worker_behind(tmp_path):
    with start(tmp_path) as handle:
        assert httpx.post(f"{handle.url}/distiller/create", headers=HEADERS,
                          json={"project": "p", "config": CONFIG}).status_code == 201
        pids = wait_ready(handle)["pids"]

        async def connected_then_terminated() -> int | None:
            async with websockets.connect(f"{handle.ws_url}/distiller/realtime/acc/p/term", additional_headers=HEADERS,
                                          max_size=None) as ws:
                await ws.recv()  # session.created
                await ws.send(append(pcm("question_stocks_joe")[: 100 * CHUNK]))
                for pid in pids:  # a worker that hangs must not hold up the exit, nor outlive it
                    os.kill(pid, signal.SIGSTOP)
                handle.process.terminate()
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), WAIT_S)
                except websockets.ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else None

        code = asyncio.run(connected_then_terminated())
        assert handle.process.wait(timeout=WAIT_S) in (0, -15), handle.log_tail()
        assert code in (1012, None)
    left = []
    for pid in pids:
        try:
            state = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            continue
        if state != psutil.STATUS_ZOMBIE:  # a zombie is dead, only not reaped by init yet
            left.append((pid, state))
            os.kill(pid, signal.SIGKILL)
    assert not left


def test_only_engines_a_fresh_process_can_rebuild_go_to_workers():
    class Mine:
        name = "mine"
        stateless = True

        def transcribe(self, utterance_id, pcm, sample_rate, *, final):
            return ""

        def forget(self, utterance_id):
            pass

    asr.register_asr_engine("mine-for-test", lambda **_: Mine())
    processes = AsrProcesses(1, cpu_threads=1)
    assert processes.spec_for(asr.get_asr_engine("mine-for-test")) is None  # registered at run time
    assert processes.spec_for(Mine()) is None  # not built by the registry
    whisper = asr.get_asr_engine("whisper")
    assert processes.spec_for(whisper) == asr.AsrSpec("whisper", (("cpu_threads", 1),))
