"""Keras, imported without the optional libraries it loads for features this project never uses.

`import keras` (3.x) imports scikit-learn (for its scikit-learn wrappers), matplotlib (an image
gallery plot) and IPython (a notebook file editor) whenever they are installed, each inside a
`try: ... except ImportError`. Here that was 1.8 s of the 4.7 s of CPU the import costs, all of it
holding Python's GIL: the app's first page and first call waited for it while the network loaded.
While Keras is imported, on the importing thread only, those libraries are refused as if absent, so
Keras leaves out those features; where one of them is already loaded, or is imported later (the
lab, calibration), it is there as usual.
"""
from __future__ import annotations

import importlib.abc
import sys
import threading

OPTIONAL_EXTRAS = ("sklearn", "matplotlib", "IPython")


class _AbsentOnThisThread(importlib.abc.MetaPathFinder):
    """Refuses the first import of `names` (and their submodules) on the thread that made it."""

    def __init__(self, names: tuple[str, ...]):
        self.names, self.thread = names, threading.get_ident()

    def find_spec(self, fullname, path=None, target=None):
        package = fullname.partition(".")[0]
        if threading.get_ident() == self.thread and package in self.names and package not in sys.modules:
            raise ModuleNotFoundError(f"{package} is left out while Keras is imported", name=fullname)
        return None


def import_keras():
    """The keras module, imported (once per process) without OPTIONAL_EXTRAS."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    finder = _AbsentOnThisThread(OPTIONAL_EXTRAS)
    sys.meta_path.insert(0, finder)
    try:
        import keras
    finally:
        sys.meta_path.remove(finder)
    return keras
