"""The engines of a simulator command: loaded side by side as it starts, then warmed.

Apart from :mod:`simulator.fast` (the driver) so that a command can start the
loading before importing the driver and its session code: this module imports
only the config loader and the engine registries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from server.config import load_project_config_file
from server.engines import build_engines, preload_engines


def start_loading(config_paths: Iterable[Path]) -> Callable[[], None]:
    """Start loading the engines of these configs on threads; returns a function that waits for them.

    :func:`server.engines.preload_engines`: the caller's thread goes on (imports,
    rendering) while the models load. A config that does not load is skipped
    here; :func:`warm_up` reports it.
    """
    configs = []
    for path in config_paths:
        try:
            configs.append(load_project_config_file(Path(path)).config)
        except Exception:  # noqa: BLE001 - warm_up raises it with its message
            pass
    return preload_engines(configs)


def warm_up(config_path: Path) -> float:
    """Load and first-run the engines ``config_path`` selects (cached per process); returns seconds taken.

    Lets a caller time runs without the one-time model loading and first
    inferences in them (:meth:`server.engines.EngineSet.warm_up`), with the
    recogniser's light warm-up (``light_asr``: one short Whisper pass instead of
    a whole final decode).
    """
    import time

    t0 = time.perf_counter()
    build_engines(load_project_config_file(Path(config_path)).config).warm_up(light_asr=True)
    return time.perf_counter() - t0
