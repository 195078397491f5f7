"""numpy's BLAS runs single-threaded in our entry points (server.blas)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Runs in a fresh interpreter: import what ``main`` names, then report how
#: many threads numpy's OpenBLAS will use (None if this numpy has no OpenBLAS).
PROBE = """
import ctypes, json, os, runpy, sys
{prelude}
import numpy
count = None
for line in open("/proc/self/maps"):
    if "openblas" in line.lower():
        lib = ctypes.CDLL(line.split()[-1])
        for symbol in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, symbol):
                count = getattr(lib, symbol)()
                break
        break
print(json.dumps({{"env": os.environ.get("OPENBLAS_NUM_THREADS"), "threads": count}}))
"""


def _probe(prelude: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(prelude=prelude)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenBLAS is single-threaded anyway")
def test_limit_blas_threads_before_numpy_gives_one_blas_thread():
    default = _probe("")
    if default["threads"] is None:
        pytest.skip("this numpy does not use OpenBLAS")
    assert default["threads"] >= 2  # the default this module exists to avoid
    limited = _probe("from server.blas import limit_blas_threads; assert limit_blas_threads()")
    assert limited == {"env": "1", "threads": 1}


def test_limit_blas_threads_reports_when_it_is_too_late():
    result = subprocess.run(
        [sys.executable, "-c", "import numpy; from server.blas import limit_blas_threads; print(limit_blas_threads())"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("module", ["simulator", "server", "server.tts", "server.asr.bench"])
def test_entry_points_limit_blas_threads_before_numpy(module):
    # Run the entry module with --help: it imports everything, then exits.
    prelude = (
        f"sys.argv = [{module!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass"
    )
    probed = _probe(prelude)
    assert probed["env"] == "1"
    if probed["threads"] is not None:
        assert probed["threads"] == 1
