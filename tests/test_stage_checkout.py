"""Stages import the library of their own checkout, not the editable install's (queued DVC experiments)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STAGES = Path(__file__).resolve().parent.parent / "stages"
STAGE_SCRIPTS = sorted(p for p in STAGES.glob("*.py") if p.name != "_checkout.py")


def test_a_copied_checkout_runs_its_own_src(tmp_path):
    # A copy of the repository, as DVC makes for a queued experiment, with a marker in its library.
    copy = tmp_path / "exp-copy"
    (copy / "stages").mkdir(parents=True)
    shutil.copy(STAGES / "_checkout.py", copy / "stages" / "_checkout.py")
    (copy / "src" / "advaudio").mkdir(parents=True)
    (copy / "src" / "advaudio" / "__init__.py").write_text("COPY_MARKER = True\n")
    probe = copy / "stages" / "probe.py"
    probe.write_text("import _checkout\nimport advaudio\nprint(advaudio.__file__)\n")
    out = subprocess.run([sys.executable, str(probe)], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).resolve() == (copy / "src" / "advaudio" / "__init__.py").resolve()


@pytest.mark.parametrize("script", STAGE_SCRIPTS, ids=lambda p: p.name)
def test_every_stage_imports_checkout_before_advaudio(script):
    tree = ast.parse(script.read_text())
    order = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            order += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            order.append(node.module.split(".")[0])
    assert "_checkout" in order, f"{script.name} does not import _checkout"
    assert "advaudio" in order, f"{script.name} does not import advaudio"
    assert order.index("_checkout") < order.index("advaudio"), f"{script.name} imports advaudio first"
