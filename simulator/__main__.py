"""``python -m simulator``: see ``simulator.cli``."""

import gc
import sys

# Start-up makes objects that live to the end (modules, engines): no cyclic collection while
# it runs; ``simulator.cli.main`` freezes them and turns the collector back on.
gc.disable()

from simulator.cli import main  # noqa: E402

sys.exit(main())
