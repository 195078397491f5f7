"""``python -m simulator``: see ``simulator.cli``."""

import sys

from server.blas import limit_blas_threads

limit_blas_threads()  # before anything imports numpy

from simulator.cli import main  # noqa: E402

sys.exit(main())
