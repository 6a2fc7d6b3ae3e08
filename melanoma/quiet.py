"""TensorFlow's C++ start-up lines (absl, oneDNN, "could not find cuda drivers") kept off a user's
terminal.

TF_CPP_MIN_LOG_LEVEL no longer silences them: TensorFlow logs them through absl before absl's
logging is initialised, straight to file descriptor 2. So TensorFlow is imported once, up front,
with that descriptor pointed at /dev/null; Python's own errors are raised afterwards as usual.
"""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """File descriptor 2 goes to /dev/null inside the block (C++ writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow without its start-up lines, unless Keras runs on another backend (JAX on
    a lent GPU machine, where TensorFlow may be absent)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    with native_stderr_silenced(), contextlib.suppress(ImportError):
        import tensorflow  # noqa: F401
