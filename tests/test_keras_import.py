"""Keras imported without the optional libraries it would load for features the project never uses
(melanoma/keras_import.py): less work, under the GIL, before the app's first call."""
from __future__ import annotations

import subprocess
import sys
import threading

from tests.app_server import ROOT


def test_keras_comes_without_its_optional_extras_which_still_import_afterwards():
    probe = ("import sys\n"
             "import melanoma.model  # what the app's model loader imports\n"
             "from melanoma.keras_import import OPTIONAL_EXTRAS\n"
             "print(sorted(name for name in OPTIONAL_EXTRAS if name in sys.modules))\n"
             "import sklearn.linear_model, matplotlib\n"
             "print(melanoma.model.keras.__version__ == __import__('keras').__version__)\n")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[:2] == ["[]", "True"]


def test_only_the_importing_thread_is_refused_and_only_while_it_imports():
    """Another thread importing the same library meanwhile gets it (the app's pages run beside the
    loader); one already loaded is left alone."""
    from melanoma.keras_import import _AbsentOnThisThread

    name = "colorsys"  # a small standard module nothing here has imported
    sys.modules.pop(name, None)
    finder = _AbsentOnThisThread((name, "json"))
    sys.meta_path.insert(0, finder)
    try:
        other = {}
        thread = threading.Thread(target=lambda: other.setdefault("module", __import__(name)))
        try:
            __import__(name)
            refused_here = False
        except ModuleNotFoundError:
            refused_here = True
        import json  # already loaded: untouched

        assert json.dumps([]) == "[]"
        sys.modules.pop(name, None)
        thread.start()
        thread.join()
    finally:
        sys.meta_path.remove(finder)
    assert refused_here and other["module"].__name__ == name
    assert __import__(name).__name__ == name  # afterwards, on this thread too
