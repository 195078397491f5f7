"""Build (once) the Python 3.12 virtualenv that runs the real ``airefinery-sdk``.

The SDK needs Python >= 3.12 while the project runs on 3.11, so SDK scripts run
in a separate interpreter. The venv lives at the repo root as ``.venv-sdk`` and
is keyed by a stamp file holding the pinned requirements: change the pin and
the next run rebuilds it. A file lock keeps parallel pytest processes (xdist,
several engineers) from building it twice.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: The SDK release whose source docs/sdk-notes.md was written from.
SDK_VERSION = "1.33.2"
#: numpy comes with the SDK (its realtime helper imports it); the scripts need
#: nothing else.
SDK_REQUIREMENTS: tuple[str, ...] = (f"airefinery-sdk=={SDK_VERSION}",)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV_DIR = REPO_ROOT / ".venv-sdk"
STAMP_NAME = ".refinery-sdk-stamp"
#: Set to an interpreter path to skip the search (e.g. on a machine where
#: Python 3.12 lives somewhere unusual).
PYTHON_ENV_VAR = "REFINERY_SDK_PYTHON"


class SdkVenvError(RuntimeError):
    """The SDK virtualenv cannot be built; the message says what to install."""


def _python_version(exe: str) -> tuple[int, int] | None:
    # pyenv shims exist on PATH even when the version is not selected and then
    # fail at run time, so a candidate counts only if it actually runs.
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _pyenv_root() -> str | None:
    try:
        return subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def find_python312() -> Path | None:
    """Locate a working Python 3.12 interpreter, or return None.

    Order: ``$REFINERY_SDK_PYTHON``, ``python3.12`` on PATH,
    ``$(pyenv root)/versions/3.12.*/bin/python``, ``/root/.pyenv/versions/3.12.*``.
    """
    candidates: list[str] = []
    if os.environ.get(PYTHON_ENV_VAR):
        candidates.append(os.environ[PYTHON_ENV_VAR])
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    roots = [r for r in (_pyenv_root(), "/root/.pyenv") if r]
    for root in dict.fromkeys(roots):
        # Newest patch release first.
        candidates.extend(sorted(glob.glob(f"{root}/versions/3.12.*/bin/python"), reverse=True))
    for exe in candidates:
        if _python_version(exe) == (3, 12):
            return Path(exe)
    return None


def _stamp_text(python: Path) -> str:
    return "\n".join([*SDK_REQUIREMENTS, f"base-python={python}"]) + "\n"


def venv_python(venv_dir: Path = DEFAULT_VENV_DIR) -> Path:
    """Path of the interpreter inside ``venv_dir``."""
    return venv_dir / "bin" / "python"


def _is_current(venv_dir: Path) -> bool:
    stamp = venv_dir / STAMP_NAME
    if not stamp.is_file() or not venv_python(venv_dir).exists():
        return False
    wanted = stamp.read_text().splitlines()
    return all(req in wanted for req in SDK_REQUIREMENTS)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise SdkVenvError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def ensure_sdk_venv(venv_dir: Path = DEFAULT_VENV_DIR) -> Path:
    """Return the interpreter of a Python 3.12 venv with the pinned SDK, building it if needed.

    Raises:
        SdkVenvError: no Python 3.12 was found, or venv creation / pip failed.
    """
    if _is_current(venv_dir):
        return venv_python(venv_dir)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv_dir.with_name(venv_dir.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # Another process may have finished the build while we waited.
            if _is_current(venv_dir):
                return venv_python(venv_dir)
            python = find_python312()
            if python is None:
                raise SdkVenvError(
                    "The SDK tests need Python 3.12 (airefinery-sdk requires >= 3.12) and none was found. "
                    "Install it (e.g. `pyenv install 3.12` or `apt-get install python3.12 python3.12-venv`) "
                    f"or set {PYTHON_ENV_VAR}=/path/to/python3.12."
                )
            if venv_dir.exists():
                shutil.rmtree(venv_dir)
            _run([str(python), "-m", "venv", str(venv_dir)], f"creating the SDK venv with {python}")
            _run(
                [str(venv_python(venv_dir)), "-m", "pip", "install", "--quiet", *SDK_REQUIREMENTS],
                f"installing {' '.join(SDK_REQUIREMENTS)} into {venv_dir}",
            )
            # Written last: a half-built venv has no stamp and is rebuilt.
            (venv_dir / STAMP_NAME).write_text(_stamp_text(python))
            return venv_python(venv_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


if __name__ == "__main__":  # `python -m tests.support.sdk_venv` prebuilds it (Makefile).
    try:
        print(ensure_sdk_venv())
    except SdkVenvError as exc:
        sys.exit(str(exc))
