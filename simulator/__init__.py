"""A client simulator for refinery-mock: does barge-in fire when the user speaks,
only then, and how fast? See ``docs/simulator.md``."""

# First, before anything imports numpy: the server package keeps numpy's BLAS
# to one thread (server.blas), which the simulated sessions need as much.
import server  # noqa: F401
