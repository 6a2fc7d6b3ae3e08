"""`python -m melanoma`: the product's commands and the lab's in one CLI, the one module that
imports both (the product never imports the lab)."""
import sys

from melanoma.cli import main
from melanoma.lab.cli import add_lab_commands

sys.exit(main(extensions=(add_lab_commands,)))
