"""Run the SDK's own ``RealtimeVoiceBridge`` against our server (Python 3.12 SDK venv).

Used by tests/test_bridge.py: registers the project with ``create_project``
exactly as the SDK's docstring shows, then serves the bridge on the given port
until killed. Prints ``SDK bridge serving on PORT`` just before serving.
"""

from __future__ import annotations

import argparse
import asyncio

from air import AsyncAIRefinery
from air.distiller.utils.realtime_helper import RealtimeVoiceBridge


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--project", default="sdk_bridge")
    p.add_argument("--uuid", default="sdk_bridge_user")
    p.add_argument("--api-key", default="test-key")
    args = p.parse_args()
    client = AsyncAIRefinery(api_key=args.api_key, base_url=args.base_url)
    client.realtime_distiller.create_project(config_path=args.config, project=args.project)
    bridge = RealtimeVoiceBridge(client.realtime_distiller, project=args.project, uuid=args.uuid)
    print(f"SDK bridge serving on {args.port}", flush=True)
    asyncio.run(bridge.serve(host="127.0.0.1", port=args.port))


if __name__ == "__main__":
    main()
