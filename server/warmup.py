"""Engines warmed at server start, so that the first caller does not pay for model loading.

Loading Whisper, Silero and the TTS voices and running each once takes
seconds on a small machine; without this, the first session of a fresh
server waits for all of it (its ``session.created`` and its first
voice-to-voice). Engines are process-wide (their registries keep one
instance), so warming the engines of one config warms every session that
uses the same ones. It runs in a background thread: the server accepts
connections at once, and a session that needs an engine still loading waits
for it as it would have anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from server import priority

log = logging.getLogger("refinery.warmup")

#: The tutorial config (what most callers run); absent when the package is installed without the repo.
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "bargein_flow_superagent_realtime.yaml"


def warm_up(config_path: Path, *, brain: str | None = None) -> float:
    """Build the engines ``config_path`` names and run each once; returns the seconds it took.

    Raises whatever loading the config or an engine raises (the caller logs it).
    """
    from server.config import load_project_config_file
    from server.engines import build_engines

    start = time.monotonic()
    config = load_project_config_file(config_path).config
    build_engines(config, brain=brain).warm_up()
    return time.monotonic() - start


def start_in_background(config_path: Path, *, brain: str | None = None) -> threading.Thread | None:
    """Warm up in a daemon thread; logs the outcome. None when the config file does not exist."""
    if not config_path.is_file():
        log.info("no engine warm-up: %s does not exist (pass --warm-up-config PATH)", config_path)
        return None

    def run() -> None:
        # The models loaded here create their threads from this one: they inherit its nice.
        priority.lower_engine_thread()
        try:
            log.info("engines of %s warmed up in %.1f s", config_path.name, warm_up(config_path, brain=brain))
        except Exception as exc:  # a broken warm-up must not stop the server: sessions load engines themselves
            log.warning("engine warm-up with %s failed (sessions will load engines themselves): %s", config_path, exc)

    thread = threading.Thread(target=run, name="refinery-warm-up", daemon=True)
    thread.start()
    return thread
