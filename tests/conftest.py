"""Shared fixtures: a server subprocess, the SDK's Python 3.12 venv, SDK script runner.

Other tests can start their own server with
``from tests.support.server_proc import running_server``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `tests.support` must import however pytest was started
    sys.path.insert(0, str(REPO_ROOT))

# As in the entry points, the server package comes first: it keeps numpy's
# BLAS to one thread (server.blas) for the in-process simulations and engines.
import server  # noqa: E402, F401

from tests.support.sdk_venv import SdkVenvError, ensure_sdk_venv  # noqa: E402
from tests.support.server_proc import ServerHandle, ServerStartError, running_server  # noqa: E402

SDK_SCRIPTS_DIR = REPO_ROOT / "tests" / "sdk"
CONFIGS_DIR = REPO_ROOT / "fixtures" / "configs"
SDK_SCRIPT_TIMEOUT_S = 420.0

RunSdkScript = Callable[..., dict[str, Any]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress-scale", choices=("smoke", "full"), default="smoke",
        help="size of tests/stress: 'smoke' (default, part of make test) or 'full' (make test-stress: "
        "10,000 frames, 1,000 dropped sessions, a 500-turn soak, 100 concurrent sessions)",
    )


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        pytest.fail(f"{what} is missing: {path} (it belongs in the repo; see docs/ or the Makefile)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def tutorial_config() -> Path:
    """The barge-in tutorial's project YAML, unchanged."""
    return _existing(CONFIGS_DIR / "bargein_flow_superagent_realtime.yaml", "barge-in tutorial config")


@pytest.fixture(scope="session")
def ptt_config() -> Path:
    """The push-to-talk variant of the tutorial config (no `vad` block)."""
    return _existing(CONFIGS_DIR / "pushtotalk_flow_superagent.yaml", "push-to-talk config")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One ``python -m server`` for the session, on a free port with a fresh data dir."""
    data_dir = tmp_path_factory.mktemp("server-data")
    try:
        with running_server(data_dir) as handle:
            yield handle
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """Interpreter of the Python 3.12 venv holding the pinned ``airefinery-sdk``."""
    try:
        return ensure_sdk_venv()
    except SdkVenvError as exc:
        pytest.fail(str(exc), pytrace=False)


def _last_json_line(stdout: str) -> dict[str, Any] | None:
    # The SDK prints banners and progress on stdout; our result is the last line.
    for line in reversed(stdout.splitlines()):
        if line.strip():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


@pytest.fixture(scope="session")
def run_sdk_script(sdk_python: Path) -> RunSdkScript:
    """Run ``tests/sdk/<script>`` with the SDK venv and return the JSON dict it prints last.

    Call as ``run_sdk_script("sdk_text.py", "--base-url", url, env={...}, server=handle)``;
    ``server`` only adds its log tail to failure messages.
    """

    def run(
        script_name: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        server: ServerHandle | None = None,
        timeout_s: float = SDK_SCRIPT_TIMEOUT_S,
    ) -> dict[str, Any]:
        script = SDK_SCRIPTS_DIR / script_name
        if not script.is_file():
            pytest.fail(f"no SDK script {script}", pytrace=False)
        cmd = [str(sdk_python), str(script), *map(str, args)]
        proc_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        # The project's venv must not leak into the 3.12 interpreter.
        proc_env.pop("PYTHONPATH", None)
        proc_env.pop("VIRTUAL_ENV", None)

        def failure(reason: str, stdout: str, stderr: str) -> None:
            parts = [f"{reason}: {' '.join(cmd)}", "--- stderr (tail) ---", _tail(stderr), "--- stdout (tail) ---", _tail(stdout)]
            if server is not None:
                parts += [f"--- server log {server.log_path} (tail) ---", server.log_tail()]
            pytest.fail("\n".join(parts), pytrace=False)

        try:
            proc = subprocess.run(cmd, cwd=SDK_SCRIPTS_DIR, env=proc_env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            failure(f"SDK script timed out after {timeout_s:.0f} s", _text(exc.stdout), _text(exc.stderr))
            raise AssertionError("unreachable")  # pytest.fail raised
        result = _last_json_line(proc.stdout)
        if proc.returncode != 0 or result is None:
            failure(f"SDK script exited {proc.returncode} without a JSON result line", proc.stdout, proc.stderr)
            raise AssertionError("unreachable")
        result.setdefault("_stderr_tail", _tail(proc.stderr, 40))
        return result

    return run


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])
