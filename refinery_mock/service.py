"""refinery-mock in your process: the server on a free loopback port, its
journals and faults at hand.

>>> with RefineryMock() as mock:                       # doctest: +SKIP
...     mock.create_project("demo")                     # the default project
...     # point the SDK at mock.url, talk to it, then:
...     mock.sessions[-1].events(type="response.audio.delta")

The pytest plugin (:mod:`refinery_mock.plugin`) wraps this as the
``refinery_mock`` fixture.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import httpx
import uvicorn
import yaml

from server.app import ServerSettings, create_app
from server.config import FaultsConfig, load_project_config
from server.engines import build_engines
from server.journal import Journal
from server.protocol import MAX_CLIENT_FRAME_BYTES

#: The project :meth:`RefineryMock.create_project` registers when given no config.
DEFAULT_CONFIG = Path(__file__).with_name("default_project.yaml")
#: Any non-empty key works unless the server has an allow-list; this is the one we send.
API_KEY = "refinery-mock-test-key"
STARTUP_TIMEOUT_S = 60.0


class RefineryMock:
    """One in-process refinery-mock server.

    ``data_dir``: where projects and histories go (default: a fresh temporary
    directory, removed on :meth:`stop`). ``asr_engine`` / ``tts_engine`` /
    ``brain``: engines for configs that name none (``server.asr``,
    ``server.tts`` registries; brain ``scripted`` or ``openai``).
    ``record_dir``: record every session there for replay (server/recording.py).
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, asr_engine: str | None = None,
                 tts_engine: str | None = None, brain: str | None = None,
                 record_dir: str | os.PathLike[str] | None = None) -> None:
        self._tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="refinery-mock-")
        self.data_dir = Path(data_dir) if data_dir is not None else Path(self._tmp.name)
        overrides = {k: v for k, v in (("asr_engine", asr_engine), ("tts_engine", tts_engine)) if v}
        self.settings = ServerSettings(data_dir=self.data_dir, brain=brain, engine_overrides=overrides,
                                       record_dir=Path(record_dir) if record_dir is not None else None)
        self.app = create_app(self.settings)
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> RefineryMock:
        """Serve on 127.0.0.1, a free port; returns when it accepts connections.
        Raises RuntimeError with the reason if it does not start."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", ws_max_size=4 * MAX_CLIENT_FRAME_BYTES, ws_ping_interval=None)
        # Run off the main thread, uvicorn installs no signal handlers: Ctrl-C stays pytest's.
        self._server = uvicorn.Server(config)
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                self._server.run(sockets=[sock])
            except BaseException as exc:  # reported by start(), not lost in a thread
                failure.append(exc)

        self._thread = threading.Thread(target=serve, name="refinery-mock-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if failure or not self._thread.is_alive():
                raise RuntimeError(f"refinery-mock did not start: {failure[0] if failure else 'the server thread ended'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"refinery-mock did not start within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop serving (live sessions are closed) and undo :meth:`patch_env`."""
        self.restore_env()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RefineryMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def warm_up(self, config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> None:
        """Load and run once every engine ``config`` (default: :data:`DEFAULT_CONFIG`)
        uses, so that the first session of a test does not pay for it."""
        loaded = load_project_config(_config_document(config))
        build_engines(loaded.config, brain=self.settings.brain, **self.settings.engine_overrides).warm_up()

    # -- the service --------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def create_project(self, name: str, config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register ``config`` (a YAML file path, YAML text or a mapping; default
        :data:`DEFAULT_CONFIG`) as project ``name``, as the SDK's
        ``create_project`` does. Returns the server's answer (``project_version``,
        ``warnings``); raises ValueError with the server's message on a 4xx."""
        answer = httpx.post(f"{self.url}/distiller/create", json={"project": name, "config": _config_document(config)},
                            headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        if answer.status_code >= 400:
            raise ValueError(f"create_project({name!r}) refused ({answer.status_code}): {answer.json().get('detail')}")
        return answer.json()

    def patch_env(self) -> None:
        """Point the SDK at this server through the environment (``AIR_BASE_URL``,
        and ``API_KEY`` if unset); undone by :meth:`restore_env` / :meth:`stop`
        (the fixture does it after each test)."""
        for name, value in (("AIR_BASE_URL", self.url), ("API_KEY", os.environ.get("API_KEY") or API_KEY)):
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def restore_env(self) -> None:
        """Undo :meth:`patch_env`."""
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def reset(self, *, keep_projects: bool = False) -> None:
        """Close live sessions (code 1001), forget journals and run-time faults
        and (unless ``keep_projects``) projects and saved histories: the admin
        API's ``POST /_admin/reset``."""
        answer = httpx.post(f"{self.url}/_admin/reset", json={"keep_projects": keep_projects}, timeout=30)
        answer.raise_for_status()

    # -- journals -----------------------------------------------------------

    @property
    def sessions(self) -> list[Journal]:
        """Journals of the sessions kept (live and recently ended), oldest first."""
        return self.app.state.journals.sessions()

    def project_sessions(self, project: str) -> list[Journal]:
        """Journals of ``project``'s sessions, oldest first."""
        return self.app.state.journals.sessions(project)

    def wait_for(self, type: str, *, count: int = 1, session: int = -1, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until session ``session`` (index in :attr:`sessions`) has
        ``count`` journal entries of ``type``; returns them. Raises
        AssertionError naming what was seen on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            journals = self.sessions
            found = journals[session].events(type=type) if journals else []
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = sorted({e["type"] for e in journals[session].entries()}) if journals else []
                raise AssertionError(f"waited {timeout:.0f} s for {count} {type!r} entries, got {len(found)}; "
                                     f"entry types seen: {seen}")
            time.sleep(0.02)

    # -- faults -------------------------------------------------------------

    def set_faults(self, project: str | None = None, faults: Mapping[str, Any] | FaultsConfig | None = None,
                   **block: Any) -> FaultsConfig:
        """Inject faults into sessions of ``project`` (None: every project)
        opened from now on; ``faults`` or keyword arguments form a ``faults``
        block (docs/testing.md), e.g. ``set_faults(tts={"latency_ms": 300},
        audio_stall={"after_ms": 400, "stall_ms": 2000}, seed=1)``."""
        spec = faults if isinstance(faults, FaultsConfig) else FaultsConfig.model_validate({**(faults or {}), **block})
        self.app.state.faults.set(project or "*", spec)
        return spec

    def clear_faults(self, project: str | None = None) -> None:
        """Remove the run-time faults of ``project`` (None: the all-projects ones)."""
        self.app.state.faults.set(project or "*", None)


def _config_document(config: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """A project config as the JSON object the SDK sends."""
    if config is None:
        config = DEFAULT_CONFIG
    if isinstance(config, Mapping):
        return dict(config)
    text = str(config)
    if isinstance(config, os.PathLike) or ("\n" not in text and Path(text).suffix in (".yaml", ".yml", ".json")):
        text = Path(config).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        raise ValueError(f"a project config must be a YAML mapping, got {type(document).__name__}")
    return document
