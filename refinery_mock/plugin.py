"""The pytest plugin: a ``refinery_mock`` fixture, installed with the package
(``pytest11`` entry point), no conftest needed.

.. code-block:: python

    def test_my_app(refinery_mock):
        refinery_mock.create_project("demo")            # default project, or a YAML path / dict
        run_my_app(base_url=refinery_mock.url, project="demo")
        assert refinery_mock.sessions[-1].responses()[0]["status"] == "completed"

One in-process server per test session (engines warmed once); its state
(live sessions, projects, journals, run-time faults, the ``patch_env`` variables) is reset
after each test, or each module/session with ``--refinery-scope``. A test
marked ``@pytest.mark.refinery_mock_keep`` leaves the state to the next one.

Options: ``--refinery-config PATH`` (a project YAML registered as project
``default`` in every scope, and the one the engines are warmed with),
``--refinery-scope function|module|session``, ``--refinery-asr-engine``,
``--refinery-tts-engine``, ``--refinery-brain`` (engines for configs that name
none), ``--refinery-record DIR`` (record every session for replay). Nothing
global is set unless the test calls ``refinery_mock.patch_env()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the server is imported when a test uses the fixture, not when pytest starts
    from refinery_mock.service import RefineryMock

SCOPES = ("function", "module", "session")
#: The project ``--refinery-config`` is registered as.
CONFIG_PROJECT = "default"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refinery-mock", "refinery-mock fixture (docs/testing.md)")
    group.addoption("--refinery-config", metavar="PATH", default=None,
                    help=f"project YAML registered as project {CONFIG_PROJECT!r} for every test; engines are warmed with it")
    group.addoption("--refinery-scope", choices=SCOPES, default="function",
                    help="how long the refinery_mock state (projects, journals, faults) lasts before a reset (default: function)")
    group.addoption("--refinery-asr-engine", default=None, help="ASR engine for configs that name none (whisper, pocketsphinx, vosk)")
    group.addoption("--refinery-tts-engine", default=None, help="TTS engine for configs that name none (hibari, espeak)")
    group.addoption("--refinery-brain", default=None, help="agent brain: scripted (default) or openai")
    group.addoption("--refinery-record", metavar="DIR", default=None,
                    help="record every session under DIR for `python -m simulator --replay DIR/<session>`")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "refinery_mock_keep: keep the refinery_mock state (projects, journals, faults) after this test")


def _scope(fixture_name: str, config: pytest.Config) -> str:
    return config.getoption("--refinery-scope")


@pytest.fixture(scope="session")
def refinery_mock_server(pytestconfig: pytest.Config) -> Iterator[RefineryMock]:
    """The test session's one server, engines warmed; prefer ``refinery_mock``."""
    from refinery_mock.service import RefineryMock

    mock = RefineryMock(
        asr_engine=pytestconfig.getoption("--refinery-asr-engine"),
        tts_engine=pytestconfig.getoption("--refinery-tts-engine"),
        brain=pytestconfig.getoption("--refinery-brain"),
        record_dir=pytestconfig.getoption("--refinery-record"),
    )
    config = pytestconfig.getoption("--refinery-config")
    try:
        mock.warm_up(config)
        mock.start()
    except (OSError, ValueError, RuntimeError) as exc:
        mock.stop()
        pytest.fail(f"refinery-mock could not start: {exc}", pytrace=False)
    yield mock
    mock.stop()


@pytest.fixture(scope=_scope)
def refinery_mock(refinery_mock_server: RefineryMock, request: pytest.FixtureRequest) -> Iterator[RefineryMock]:
    """The refinery-mock server: ``.url``, ``.create_project()``, ``.sessions``,
    ``.set_faults()``, ``.reset()``, ``.patch_env()`` (:class:`refinery_mock.RefineryMock`)."""
    mock = refinery_mock_server
    config = request.config.getoption("--refinery-config")
    if config:
        mock.create_project(CONFIG_PROJECT, config)
    yield mock
    mock.restore_env()
    if request.node.get_closest_marker("refinery_mock_keep") is None:
        mock.reset()
