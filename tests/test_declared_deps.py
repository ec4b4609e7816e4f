"""Every third-party module that src/ and stages/ import is a declared dependency in pyproject.toml (issue 18
item 5: sklearn, threadpoolctl and psutil were imported but not declared)."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
OURS = {"advaudio", "_checkout"}  # the package, and stages/_checkout.py imported by the stage scripts
# Modules of an optional extra (``pip install 'advaudio[ray]'``): allowed only in the files named here, which
# import them inside a function and turn an ImportError into a message naming the extra.
OPTIONAL = {"ray": ("ray", {"src/advaudio/grid/processes.py"})}


def third_party_imports(files: list[Path], *, root: Path = ROOT) -> dict[str, set[str]]:
    """``{top-level module: files importing it}`` for every import in ``files`` that is neither the standard
    library nor ours (function-level imports included)."""
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top not in sys.stdlib_module_names and top not in OURS:
                    found.setdefault(top, set()).add(path.relative_to(root).as_posix())
    return found


def _normalised(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``PyYAML`` and ``pyyaml`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies(pyproject: Path) -> set[str]:
    """Normalised names of ``[project] dependencies`` (extras are not what the package itself may import)."""
    requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return {_normalised(re.match(r"[A-Za-z0-9._-]+", req).group()) for req in requirements}


def _sources() -> list[Path]:
    return sorted(ROOT.joinpath("src").rglob("*.py")) + sorted(ROOT.joinpath("stages").glob("*.py"))


def test_every_third_party_import_is_a_declared_dependency():
    # The module -> distribution map comes from the installed packages (sklearn -> scikit-learn); a module that
    # no installed distribution provides is reported as undeclared too.
    providers = metadata.packages_distributions()
    declared = declared_dependencies(ROOT / "pyproject.toml")
    undeclared = {module: sorted(files) for module, files in third_party_imports(_sources()).items()
                  if not {_normalised(d) for d in providers.get(module, [])} & declared
                  and not (module in OPTIONAL and files <= OPTIONAL[module][1])}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_optional_modules_are_declared_extras_and_imported_behind_a_message():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, (extra, files) in OPTIONAL.items():
        assert any(_normalised(re.match(r"[A-Za-z0-9._-]+", r).group()) == _normalised(module) for r in extras[extra])
        for file in files:
            text = (ROOT / file).read_text()
            assert "except ImportError" in text and f"advaudio[{extra}]" in text


def test_the_import_reader_sees_function_level_imports_and_skips_the_standard_library(tmp_path):
    (tmp_path / "m.py").write_text("import os\nfrom advaudio import io\n\ndef f():\n    from sklearn.metrics import f1_score\n")
    assert third_party_imports([tmp_path / "m.py"], root=tmp_path) == {"sklearn": {"m.py"}}
    assert metadata.packages_distributions()["sklearn"] == ["scikit-learn"]
