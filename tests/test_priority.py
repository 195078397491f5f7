"""Engine threads run below the event loop's priority (server.priority, ``--engine-nice``).

Only the nice values are checked, never timing: what the priority buys is
measured by the bench (docs/bench.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect

from server import priority
from server.__main__ import main, parse_args, settings_from_args
from server.engine_pool import EnginePool
from tests.support.server_proc import running_server

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = yaml.safe_load((ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text())
AUTH = {"Authorization": "Bearer test-key", "sdk_version": "1.33.2"}

linux_only = pytest.mark.skipif(not priority.supported(), reason="per-thread nice is Linux only")


@pytest.fixture
def engine_nice():
    """Set the process-wide engine nice for one test; off again afterwards."""
    yield priority.set_engine_nice
    priority.set_engine_nice(0)


def _nice_in_pool(pool: EnginePool) -> int:
    async def run() -> int:
        return await pool.run(lambda _: priority.thread_nice(threading.get_native_id()), None, timeout_s=30)

    return asyncio.run(run())


@linux_only
def test_pool_threads_run_at_the_engine_nice(engine_nice):
    here = priority.thread_nice(threading.get_native_id())
    if here + 3 > priority.MAX_NICE:
        pytest.skip(f"this test runs at nice {here}: no room to lower by 3")
    assert engine_nice(3) == 3
    pool = EnginePool(workers=2, initializer=priority.lower_engine_thread)
    assert _nice_in_pool(pool) == here + 3
    assert priority.thread_nice(threading.get_native_id()) == here  # the caller is left alone


@linux_only
def test_engine_nice_zero_leaves_pool_threads_at_the_callers_priority(engine_nice):
    here = priority.thread_nice(threading.get_native_id())
    assert engine_nice(0) == 0
    assert _nice_in_pool(EnginePool(workers=2, initializer=priority.lower_engine_thread)) == here


@linux_only
def test_lowering_is_capped_at_the_weakest_nice(engine_nice):
    engine_nice(priority.MAX_NICE)
    assert _nice_in_pool(EnginePool(workers=1, initializer=priority.lower_engine_thread)) == priority.MAX_NICE


def test_engine_nice_outside_0_to_19_is_refused_with_the_range():
    with pytest.raises(ValueError, match="use 0 \\(off\\) to 19"):
        priority.set_engine_nice(20)
    with pytest.raises(ValueError, match="--engine-nice: engine nice -1 is out of range"):
        settings_from_args(parse_args(["--engine-nice", "-1"]))


def test_engine_nice_flag_parses_with_a_default():
    assert parse_args([]).engine_nice == priority.DEFAULT_ENGINE_NICE
    assert parse_args(["--engine-nice", "0"]).engine_nice == 0
    assert parse_args(["--engine-nice", "5"]).engine_nice == 5


def test_bad_engine_nice_stops_the_server_with_exit_code_2(capsys):
    assert main(["--port", "0", "--engine-nice", "30"]) == 2
    assert "--engine-nice: engine nice 30 is out of range: use 0 (off) to 19" in capsys.readouterr().err


def _thread_nices(pid: int) -> dict[int, int]:
    """tid -> nice of every thread of ``pid`` (field 19 of /proc/PID/task/TID/stat)."""
    nices = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        nices[int(task.name)] = int(stat.rsplit(")", 1)[1].split()[16])
    return nices


async def _typed_turn(ws_base: str) -> None:
    """Open a session and ask one typed question: its answer runs agent and TTS jobs in the engine pool."""
    async with connect(f"{ws_base}/distiller/realtime/acc/demo/u1", additional_headers=AUTH) as ws:
        await ws.recv()  # session.created: the session's engines were built
        await ws.send(json.dumps({"type": "input_text", "text": "What is a dividend?"}))
        async with asyncio.timeout(120):
            while json.loads(await ws.recv())["type"] != "response.done":
                pass


def _warmed_server_nices(tmp_path: Path, *args: str) -> tuple[int, dict[int, int]]:
    """Start a server, wait for its warm-up, run one typed turn; its main thread's tid and every thread's nice."""
    with running_server(tmp_path, *args) as server:
        deadline = time.monotonic() + 300
        while "warmed up" not in server.log_tail(200) and time.monotonic() < deadline:
            assert server.process.poll() is None, server.log_tail()
            time.sleep(0.5)
        assert "warmed up" in server.log_tail(200), server.log_tail()
        assert httpx.post(f"{server.url}/distiller/create", headers=AUTH,
                          json={"project": "demo", "config": TUTORIAL}).status_code == 201
        asyncio.run(_typed_turn(server.ws_url))
        return server.process.pid, _thread_nices(server.process.pid)


@linux_only
def test_threads_the_engines_create_inherit_the_engine_nice(tmp_path):
    # The warm-up loads Whisper (CTranslate2 starts its workers and OpenMP team
    # from the loading thread) and the voices; the session opens in its own
    # thread, its answer runs in the engine pool: every thread but the event
    # loop's ends up lowered. Decodes in threads (--asr-processes 0): the ASR
    # worker processes set their own nice (tests/test_asr_processes.py), and the
    # threads that feed them are not engine threads.
    base = os.getpriority(os.PRIO_PROCESS, 0)
    if base + 7 > priority.MAX_NICE:
        pytest.skip(f"tests run at nice {base}: no room to lower by 7")
    pid, nices = _warmed_server_nices(tmp_path / "lowered", "--engine-nice", "7", "--asr-processes", "0")
    assert nices.pop(pid) == base  # the event loop (main thread)
    assert len(nices) >= 3, nices  # CTranslate2's workers at least
    assert set(nices.values()) == {base + 7}, nices

    pid, nices = _warmed_server_nices(tmp_path / "off", "--engine-nice", "0", "--asr-processes", "0")
    assert set(nices.values()) == {base}, nices


def _fresh(code: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.split()


def test_openmp_is_asked_to_sleep_before_ctranslate2_loads():
    probe = "import os; from server import priority; print(priority.passive_openmp(), os.environ['OMP_WAIT_POLICY'])"
    assert _fresh(probe) == ["True", "PASSIVE"]
    assert _fresh(probe, OMP_WAIT_POLICY="ACTIVE") == ["True", "ACTIVE"]  # the user's choice stays
    too_late = "import ctranslate2, os; from server import priority; print(priority.passive_openmp())"
    assert _fresh(too_late) == ["False"]
