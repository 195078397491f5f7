"""``python -m server`` as started: engines warmed in the background, no
permessage-deflate on the realtime WebSocket unless ``--ws-deflate``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import yaml
from websockets.asyncio.client import connect

from tests.support.server_proc import running_server

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = yaml.safe_load((ROOT / "fixtures/configs/bargein_flow_superagent_realtime.yaml").read_text())
AUTH = {"Authorization": "Bearer test-key", "sdk_version": "1.33.2"}


async def _extensions(ws_base: str) -> list[str]:
    async with connect(f"{ws_base}/distiller/realtime/acc/demo/u1", additional_headers=AUTH, compression="deflate") as ws:
        await ws.recv()  # session.created
        return [type(e).__name__ for e in ws.protocol.extensions]


def test_engines_warm_at_start_and_audio_is_not_deflated(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        deadline = time.monotonic() + 300
        while "warmed up" not in server.log_tail(200) and time.monotonic() < deadline:
            assert server.process.poll() is None, server.log_tail()
            time.sleep(0.5)
        assert "engines of bargein_flow_superagent_realtime.yaml warmed up" in server.log_tail(200), server.log_tail()
        created = httpx.post(f"{server.url}/distiller/create", headers=AUTH, json={"project": "demo", "config": TUTORIAL})
        assert created.status_code == 201
        # The client offers deflate (as the SDK's websockets does); the server declines.
        assert asyncio.run(_extensions(server.ws_url)) == [], server.log_tail()
    with running_server(tmp_path / "deflate", "--ws-deflate", "--no-warm-up") as server:
        assert httpx.post(f"{server.url}/distiller/create", headers=AUTH, json={"project": "demo", "config": TUTORIAL}).status_code == 201
        assert asyncio.run(_extensions(server.ws_url)) == ["PerMessageDeflate"]
        assert "warmed up" not in server.log_tail(200)
