"""What a simulator command does besides its runs (#11, "simulator speed as a user sees it"):
it imports only what the run needs, loads only the engines its configs name (side by
side, on threads), warms them without a Whisper decode, draws a suite's timelines in
another process pixel for pixel as in this one, and reports its wall time by phase.

No wall-clock bound is asserted anywhere: what is checked is which modules and engines
were loaded, what was decoded, which pixels were drawn, and how the phases add up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml"
SHORT = REPO / "fixtures" / "scenarios" / "client_cancel.yaml"  # 4.8 s simulated, the suite's shortest

# Run the real CLI in a fresh interpreter, then report what it imported (no debug output in the CLI).
_RUN_AND_LIST_MODULES = """
import json, runpy, sys
sys.argv = ["simulator", *sys.argv[1:]]
try:
    runpy.run_module("simulator", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("MODULES " + json.dumps(sorted(sys.modules)))
sys.exit(code)
"""

#: Imported only by what a fast single run without a picture does not do.
NOT_FOR_A_FAST_RUN = ("matplotlib", "dask", "distributed", "jinja2", "hypothesis", "simulator.live", "websockets", "httpx")


def _cli_modules(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str], str]:
    """The CLI's process, the modules it imported, and its last line of its own output."""
    proc = subprocess.run([sys.executable, "-c", _RUN_AND_LIST_MODULES, *args, "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    *own, modules = proc.stdout.strip().splitlines()
    assert modules.startswith("MODULES "), proc.stdout + proc.stderr
    return proc, set(json.loads(modules[len("MODULES "):])), own[-1]


def test_a_fast_run_without_png_imports_neither_matplotlib_nor_what_only_other_modes_use(tmp_path: Path) -> None:
    proc, modules, last = _cli_modules(tmp_path / "nopng", "--scenario", str(SHORT), "--no-png")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(m for m in NOT_FOR_A_FAST_RUN if m in modules) == []
    assert last.startswith("wall time as waited")
    for phase in ("start-up", "engines", "runs", "json"):
        assert f" {phase} " in last
    # With its picture, matplotlib is imported, and the picture's time is reported.
    proc, modules, last = _cli_modules(tmp_path / "png", "--scenario", str(SHORT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matplotlib" in modules and "matplotlib.pyplot" not in modules
    assert " png " in last
    assert (tmp_path / "png" / "client_cancel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


_PRELOAD = """
import json, sys
from pathlib import Path
import server
from server import asr, tts
from server.config import load_project_config_file
from server.engines import build_engines, preload_engines
config = load_project_config_file(Path(sys.argv[1])).config
preload_engines([config])()
loaded = {"asr": sorted(k[0] for k in asr._instances), "tts": sorted(tts._instances),
          "modules": sorted(m for m in ("faster_whisper", "pocketsphinx", "vosk", "hibari", "onnxruntime")
                            if m in sys.modules)}
engines = build_engines(config)
loaded["reused"] = engines.asr is next(iter(asr._instances.values()))
print(json.dumps(loaded))
"""


def _preload(config: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PRELOAD, str(config)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_preloading_loads_the_engines_the_config_names_and_no_other(tmp_path: Path) -> None:
    loaded = _preload(TUTORIAL)
    assert loaded["asr"] == ["whisper"] and loaded["tts"] == ["espeak"]
    assert loaded["modules"] == ["faster_whisper", "onnxruntime"]  # Silero: the confirmer and the turn gate
    assert loaded["reused"]  # build_engines found the preloaded recogniser
    # The same config on PocketSphinx: Whisper is never loaded.
    text = TUTORIAL.read_text().replace('  asr:\n    model: "Azure/AI-Transcription"\n',
                                        '  asr:\n    model: "Azure/AI-Transcription"\n    engine: pocketsphinx\n')
    assert "engine: pocketsphinx" in text
    config = tmp_path / "pocketsphinx.yaml"
    config.write_text(text)
    loaded = _preload(config)
    assert loaded["asr"] == ["pocketsphinx"] and "faster_whisper" not in loaded["modules"]
    assert "pocketsphinx" in loaded["modules"] and loaded["reused"]


_WARM_UPS = """
import json
from pathlib import Path
import server
from server.config import load_project_config_file
from server.engines import build_engines
from simulator.engines import warm_up
config = Path(__import__("sys").argv[1])
engines = build_engines(load_project_config_file(config).config)
counts = [dict(engines.asr.decode_counts)]
for _ in range(2):  # the simulator's, twice (a suite warms each config)
    warm_up(config)
    counts.append(dict(engines.asr.decode_counts))
engines.warm_up()  # the server's
counts.append(dict(engines.asr.decode_counts))
print(json.dumps(counts))
"""


def test_the_simulators_warm_up_primes_whisper_with_one_short_pass_once() -> None:
    proc = subprocess.run([sys.executable, "-c", _WARM_UPS, str(TUTORIAL)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    start, first, second, server = json.loads(proc.stdout.strip().splitlines()[-1])
    assert start == {"quick": 0, "quick_kept": 0, "window": 0, "stock": 0}
    assert first == {"quick": 0, "quick_kept": 0, "window": 1, "stock": 0}  # one pass, no quick pass, no phase pair
    assert second == first  # once per engine
    # The server's warm-up decodes a whole final: the quick pass at both phases, at least.
    assert server["quick"] - first["quick"] == 2


def test_a_renderer_process_draws_the_same_pixels_as_this_process(tmp_path: Path) -> None:
    from PIL import Image

    from simulator.fast import run_fast
    from simulator.scenario import load_scenario
    from simulator.timeline import Renderer, write_png

    result = run_fast(load_scenario(SHORT))
    here = write_png(result, tmp_path / "here.png")
    with Renderer() as renderer:
        there = renderer.submit(result, tmp_path / "sub" / "there.png")
    a, b = (np.asarray(Image.open(p).convert("RGB")) for p in (here, there))
    assert a.shape == b.shape == (810, 1260, 3)
    assert np.array_equal(a, b)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 20  # a picture, not a blank canvas


def test_a_drawing_error_in_the_renderer_reaches_the_caller(tmp_path: Path) -> None:
    from simulator.fast import run_fast
    from simulator.scenario import load_scenario
    from simulator.timeline import Renderer

    result = run_fast(load_scenario(SHORT))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    renderer = Renderer()
    renderer.submit(result, blocker / "x.png")  # its folder cannot be created
    with pytest.raises(OSError):
        renderer.close()


def test_timings_add_up_and_count_start_up_from_the_origin() -> None:
    from simulator.timings import Timings, process_age_s

    age = process_age_s()
    assert age is not None and age > 0  # Linux: /proc/self/stat
    t = Timings(origin=time.perf_counter() - 1.0)  # as if the process had started 1 s ago
    with t.span("engines"):
        pass
    with t.span("runs"):
        pass
    with t.span("runs"):
        pass
    d = t.as_dict()
    assert list(d) == ["start-up", "engines", "runs", "other", "total"]
    assert d["start-up"] >= 1.0
    assert sum(v for k, v in d.items() if k != "total") == pytest.approx(d["total"], abs=0.005)
    assert t.line().startswith("wall time as waited ") and "start-up" in t.line()
