"""The pytest plugin (issue #13): a user's project, outside this repo, with no
conftest, gets the ``refinery_mock`` fixture from the installed package.

Each test writes a user's test file into a temporary directory (pytest's
``pytester``) and runs pytest on it in a subprocess. The plugin is found the
way an installed package's is: through the ``pytest11`` entry point, read
here from this repo's pyproject.toml into a ``dist-info`` on the subprocess's
path (the shared venv's install of the package may predate the entry point).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A directory with nothing of ours but the package on the path, as installed."""
    site = pytester.mkdir("site-packages")
    dist = site / "refinery_mock-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: refinery-mock\nVersion: 0.1.0\n")
    entry_points = PYPROJECT["project"]["entry-points"]["pytest11"]
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{ROOT}")
    monkeypatch.delenv("AIR_BASE_URL", raising=False)
    return pytester


def test_the_plugin_ships_with_the_package():
    assert PYPROJECT["project"]["entry-points"]["pytest11"] == {"refinery_mock": "refinery_mock.plugin"}
    assert "refinery_mock*" in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "*.yaml" in PYPROJECT["tool"]["setuptools"]["package-data"]["refinery_mock"]


def test_state_is_reset_between_tests_unless_kept_and_env_is_opt_in(user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    config = ROOT / "fixtures" / "configs" / "one_agent_markdown.yaml"
    user_project.makepyfile(test_user="""
        import os
        import httpx
        import pytest
        import yaml

        def exists(mock, name):
            answer = httpx.post(mock.url + "/distiller/download", json={"project": name}, headers={"Authorization": "Bearer k"})
            return answer.status_code == 200

        def test_a(refinery_mock):
            assert "AIR_BASE_URL" not in os.environ
            refinery_mock.create_project("demo")
            refinery_mock.patch_env()
            assert os.environ["AIR_BASE_URL"] == refinery_mock.url
            assert exists(refinery_mock, "default")  # --refinery-config

        def test_b_is_fresh(refinery_mock):
            assert "AIR_BASE_URL" not in os.environ
            assert not exists(refinery_mock, "demo") and exists(refinery_mock, "default")

        @pytest.mark.refinery_mock_keep
        def test_c_keeps(refinery_mock):
            refinery_mock.create_project("kept", yaml.safe_load(open(os.environ["CFG"])))

        def test_d_sees_it(refinery_mock):
            assert exists(refinery_mock, "kept")
    """)
    monkeypatch.setenv("CFG", str(ROOT / "refinery_mock" / "default_project.yaml"))
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", f"--refinery-config={config}",
                                               "--refinery-tts-engine=espeak")
    result.assert_outcomes(passed=4)
    user_project.makepyfile(test_scoped="""
        import httpx

        def test_one(refinery_mock):
            refinery_mock.create_project("shared")

        def test_two(refinery_mock):
            answer = httpx.post(refinery_mock.url + "/distiller/download", json={"project": "shared"}, headers={"Authorization": "Bearer k"})
            assert answer.status_code == 200
    """)
    # One state per module keeps test_one's project for test_two; per test (the default) does not.
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "--refinery-scope=module", "test_scoped.py").assert_outcomes(passed=2)
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "test_scoped.py").assert_outcomes(passed=1, failed=1)


@pytest.mark.sdk
def test_a_users_ten_line_test_runs_the_sdk_against_the_fixture(user_project: pytest.Pytester, sdk_python: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    # The user's voice app: the unmodified airefinery-sdk, in its own Python 3.12.
    user_project.makepyfile(voice_app="""
        import asyncio, sys
        from air import AsyncAIRefinery

        async def main(base_url, project):
            client = AsyncAIRefinery(api_key="my-key", base_url=base_url)
            async with client.realtime_distiller(project=project, uuid="caller-1") as session:
                await session.send_text_query("How should I hedge my portfolio?")
                kinds = [msg.model_dump().get("type") async for msg in session.get_responses()]
            print(kinds.count("response.audio.delta"), kinds[-1])

        asyncio.run(main(*sys.argv[1:]))
    """)
    # The user's test, as the README shows it.
    user_project.makepyfile(test_voice_app="""
        import os, subprocess

        def test_app_copes_with_a_tts_stall(refinery_mock):
            refinery_mock.create_project("demo")
            refinery_mock.set_faults("demo", audio_stall={"after_ms": 400, "stall_ms": 1500})
            app = subprocess.run([os.environ["SDK_PYTHON"], "voice_app.py", refinery_mock.url, "demo"], capture_output=True, text=True)
            assert app.returncode == 0 and app.stdout.split()[-1] == "response.done", app.stderr
            journal = refinery_mock.sessions[-1]
            assert journal.events(type="fault.stall") and journal.responses()[0]["status"] == "completed"
            journal.assert_no_audio_after_interrupt()
    """)
    monkeypatch.setenv("SDK_PYTHON", str(sdk_python))
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
