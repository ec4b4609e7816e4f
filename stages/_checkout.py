"""Put this checkout's ``src/`` first on ``sys.path``, so that a stage runs the library it is versioned with.

DVC runs queued experiments (``dvc exp run --queue``, the grid) in temporary copies of the repository. The
editable install in ``.venv`` points at the original working tree, so without this a queued stage would run
that tree's code, uncommitted edits included, under the dependency hashes of the experiment's own copy.
Every stage script imports this module before ``advaudio``.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
if not sys.path or sys.path[0] != SRC:
    sys.path.insert(0, SRC)
