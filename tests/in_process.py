"""`python -m melanoma ...` run inside the test process: the same parser, commands, output and exit
status, without a fresh interpreter's TensorFlow import (4-5 s of CPU a call, the bulk of a short
command's cost). Some tests still run the real `python -m melanoma` in a child process, as a user
does: test_cli's `as_a_user_runs_it`, test_dicom's and test_api's `predict`, and the training tests."""
from __future__ import annotations

import io
import subprocess
from contextlib import redirect_stderr, redirect_stdout


def run_melanoma(*args) -> subprocess.CompletedProcess:
    from melanoma.cli import main
    from melanoma.lab.cli import add_lab_commands

    argv = [str(arg) for arg in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            status = main(argv, extensions=(add_lab_commands,))
        except SystemExit as leaving:  # argparse's refusals and sys.exit(message) leave this way
            status = leaving.code
            if isinstance(status, str):
                print(status, file=stderr)
                status = 1
    return subprocess.CompletedProcess(["python", "-m", "melanoma", *argv], status or 0, stdout.getvalue(),
                                       stderr.getvalue())
