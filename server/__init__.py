"""refinery-mock: an offline stand-in for the AI Refinery realtime voice service.

Importing this package keeps numpy's OpenBLAS to one thread (:mod:`server.blas`):
that has to happen before numpy is imported, and every entry point
(``python -m server``, ``-m server.tts``, ``-m server.asr.bench``, and
``-m simulator`` through :mod:`simulator`) imports this package first.
"""

from server.blas import limit_blas_threads

limit_blas_threads()

__version__ = "0.1.0"

#: What ``python -m server`` prints once its socket is bound, followed by the
#: URL: launchers and tests wait for this line instead of probing a port.
LISTENING_PREFIX = "refinery-mock listening on "
