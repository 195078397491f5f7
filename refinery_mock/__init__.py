"""refinery-mock for your own test suite.

- :class:`RefineryMock`: the server in your process, on a free 127.0.0.1 port,
  with its session journals (:class:`Journal`) and faults on demand.
- the ``refinery_mock`` pytest fixture (:mod:`refinery_mock.plugin`),
  installed with the package: no conftest needed.

See docs/testing.md.
"""

from server.config import FaultsConfig
from server.journal import Journal
from refinery_mock.service import API_KEY, DEFAULT_CONFIG, RefineryMock

__all__ = ["API_KEY", "DEFAULT_CONFIG", "FaultsConfig", "Journal", "RefineryMock"]
