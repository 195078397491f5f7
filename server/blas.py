"""Keep numpy's BLAS (OpenBLAS) to one thread in our processes.

The only BLAS work here is tiny (Whisper's mel filterbank, a few vector
products), but a multi-threaded OpenBLAS keeps its worker spinning for a while
after each call. On a 2-core machine that spinning thread took a core from
Whisper's encoder for ~0.1 s per simulated session (encoder pass 134 ms
instead of ~95 ms, measured per thread with /proc). The engines that need
threads (CTranslate2, onnxruntime) set their own counts.

OpenBLAS reads its thread count once, when numpy is first imported, so
:func:`limit_blas_threads` must run before that: importing the ``server``
package calls it, and every entry point imports that package first.
"""

from __future__ import annotations

import os
import sys

#: What the OpenBLAS in numpy's wheels reads. Not MKL_NUM_THREADS: numpy's
#: wheels have no MKL, and CTranslate2 uses MKL for its own threads on Intel CPUs.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS",)


def limit_blas_threads() -> bool:
    """Ask BLAS for one thread unless the user chose a count; False if numpy was already imported (too late)."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    return "numpy" not in sys.modules
