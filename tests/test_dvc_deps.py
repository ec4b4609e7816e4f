"""Each DVC stage depends on exactly the advaudio modules its script imports (issue 18 item 2).

The import graph is read from the source with ``ast`` (no module is imported): ``import advaudio.x`` and
``from advaudio.x import y`` at any depth, inside functions included, plus the package ``__init__.py`` files
that Python runs on the way. Stages and their deps come from DVC itself, so ``foreach`` entries and
``${...}`` are resolved as ``dvc repro`` resolves them.
"""

from __future__ import annotations

import ast
import functools
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Imported by stages, deliberately not deps (dvc.yaml's header): none of them can change an output.
NOT_DEPS = {
    "src/advaudio/errors.py": "exception classes: only the wording of a refusal",
    "src/advaudio/stage_log.py": "the one-line summary and the refusal format",
    "src/advaudio/runtime.py": "re-executes under tcmalloc when present: speed only",
    "src/advaudio/__init__.py": "the package docstring and __version__, which no stage writes",
    # stages/_checkout.py is imported as `_checkout`, not from the package: it puts this checkout's src/ first
    # on sys.path, which decides which code runs but is itself no part of any result.
}
# Functions whose own imports are not followed, (module, function) -> why.
UNFOLLOWED = {
    ("advaudio.config", "validate_choices"):
        "imports every registry to check names and ladder rungs, then raises or returns: it shapes no output. "
        "validate_params runs it before any stage (all depend on build/params.ok); the code a stage's output "
        "depends on is imported by the modules that use it, and is a dep through them",
}


def _module_file(name: str, *, src: Path = SRC) -> Path | None:
    """The source file of module ``name`` under ``src`` (a package's ``__init__.py``), or None."""
    path = src.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _nodes(tree: ast.AST, *, module: str):
    """Every node of ``tree``, except inside the functions of ``module`` listed in :data:`UNFOLLOWED` and inside
    ``if TYPE_CHECKING:`` blocks (imports for annotations only, never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (module, node.name) in UNFOLLOWED:
            continue
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def direct_imports(path: Path, *, module: str, package: str = "advaudio", src: Path = SRC) -> set[str]:
    """Modules of ``package`` that the file ``path`` (module ``module``) imports, with their parent packages.

    ``from a.b import c`` counts ``a.b`` and, when ``c`` is a module, ``a.b.c`` too; relative imports are
    refused, since the package uses none and this reader would miss them.
    """
    names = set()
    for node in _nodes(ast.parse(path.read_text(), filename=str(path)), module=module):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; use `from {package}.… import …`")
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if _module_file(f"{node.module}.{alias.name}", src=src))
    ours = {n for n in names if n.split(".")[0] == package}
    return {".".join(n.split(".")[:i]) for n in ours for i in range(1, n.count(".") + 2)}


def imported_files(script: Path, *, package: str = "advaudio", src: Path = SRC) -> set[Path]:
    """Source files of every ``package`` module that running ``script`` imports, transitively."""
    seen: set[str] = set()
    todo = sorted(direct_imports(script, module="__main__", package=package, src=src))
    while todo:
        name = todo.pop()
        path = _module_file(name, src=src)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(direct_imports(path, module=name, package=package, src=src))
    return {_module_file(name, src=src) for name in seen} - {None}


def _docstring_only(path: Path) -> bool:
    """A file that holds nothing but a docstring (the empty ``__init__.py`` files): importing it does nothing."""
    return all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
               for s in ast.parse(path.read_text()).body)


@functools.cache
def dvc_stages() -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{stage name: (cmd, dep paths)}`` for every stage of dvc.yaml, resolved by DVC."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return {stage.addressing: (stage.cmd, tuple(dep.def_path for dep in stage.deps))
                for stage in repo.index.stages if getattr(stage, "cmd", None)}


def _script(cmd: str) -> str:
    """The stage script of a command ``python stages/<name>.py [args]``."""
    words = shlex.split(cmd)
    assert words[0] == "python" and words[1].startswith("stages/"), f"unexpected stage command {cmd!r}"
    return words[1]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _covers(dep: str, file: str) -> bool:
    return file == dep or file.startswith(dep.rstrip("/") + "/")


def _modules_under(dep: str) -> set[str]:
    path = ROOT / dep
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.suffix == ".py" else []
    return {_rel(f) for f in files if "__pycache__" not in f.parts}


STAGES = sorted(dvc_stages())


@pytest.mark.parametrize("stage", STAGES)
def test_every_module_a_stage_imports_is_a_dep(stage):
    cmd, deps = dvc_stages()[stage]
    assert _script(cmd) in deps, f"{stage}: its script {_script(cmd)} is not a dep"
    imported = {_rel(p) for p in imported_files(ROOT / _script(cmd))}
    missing = sorted(f for f in imported if f not in NOT_DEPS and not _docstring_only(ROOT / f)
                     and not any(_covers(d, f) for d in deps))
    assert not missing, f"{stage} imports {missing} but does not list them in dvc.yaml"


@pytest.mark.parametrize("stage", STAGES)
def test_every_src_dep_of_a_stage_is_imported_whole(stage):
    """A file dep must be imported; a folder dep stands for all its modules, so every one must be imported."""
    cmd, deps = dvc_stages()[stage]
    imported = {_rel(p) for p in imported_files(ROOT / _script(cmd))}
    for dep in (d for d in deps if d.startswith("src/")):
        unused = sorted(_modules_under(dep) - imported)
        assert not unused, f"{stage} lists {dep} but does not import {unused}: list the files it imports"


def test_deliberate_non_deps_are_listed_by_no_stage():
    for stage, (_, deps) in dvc_stages().items():
        listed = sorted(set(deps) & (set(NOT_DEPS) | {"stages/_checkout.py"}))
        assert not listed, f"{stage} lists {listed}, which dvc.yaml's header says are deliberately not deps"


def test_retraining_imports_no_attack_and_the_attack_stage_all_six():
    """Known answers of the import reader on this repo: the issue's case, and the registry import that
    pulls every attack in through ``advaudio/attacks/__init__.py``."""
    retrain = {_rel(p) for p in imported_files(ROOT / "stages/fgsm_retrain.py")}
    attack = {_rel(p) for p in imported_files(ROOT / "stages/attack.py")}
    assert "src/advaudio/training/fgsm_retrain.py" in retrain
    assert not any(f.startswith("src/advaudio/attacks/") for f in retrain)
    assert {f"src/advaudio/attacks/{a}.py" for a in ("bim", "cw", "deepfool", "fgsm", "jsma", "pia")} <= attack


def test_the_import_reader_follows_function_imports_submodules_and_parent_packages(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg import base\n")
    (pkg / "base.py").write_text("")
    (pkg / "lazy.py").write_text("")
    (pkg / "leaf.py").write_text("")
    (pkg / "unused.py").write_text("")
    (pkg / "top.py").write_text("def f():\n    import pkg.lazy\n")
    (pkg / "sub" / "mod.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("import os\nfrom pkg import top, leaf\nfrom pkg.sub.mod import anything\n")
    got = {p.relative_to(tmp_path).as_posix() for p in imported_files(script, package="pkg", src=tmp_path)}
    assert got == {"pkg/__init__.py", "pkg/top.py", "pkg/lazy.py", "pkg/leaf.py", "pkg/sub/__init__.py",
                   "pkg/base.py", "pkg/sub/mod.py"}


def test_the_attack_stages_are_one_foreach_entry_that_matches_the_modes():
    """dvc.yaml generates attack@<mode> from one block (issue 18 item 3); each stage gets its paths on the command
    line (the checkpoint it also depends on, the victims stage's victims) and the modes are the ones the tables
    stage reads."""
    import shlex

    import yaml

    from advaudio.report.inputs import MODES as REPORTED_MODES

    written = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    items = written["attack"]["foreach"]
    assert not [name for name in written if name.startswith("attack_")]  # no hand-written attack block left
    tables = shlex.split(written["tables"]["cmd"])
    pgd_mode = tables[tables.index("--pgd-mode") + 1]  # the PGD-retrained model's attack stage, beyond the study
    assert set(items) == {*REPORTED_MODES, pgd_mode, f"{pgd_mode}_bounded"}
    stages = dvc_stages()
    assert sorted(s for s in stages if s.startswith("attack")) == sorted(f"attack@{m}" for m in items)
    for mode, item in items.items():
        cmd, deps = stages[f"attack@{mode}"]
        words = shlex.split(cmd)
        options = dict(zip(words[2::2], words[3::2]))
        assert words[:2] == ["python", "stages/attack.py"] and len(words) % 2 == 0, cmd
        assert options["--mode"] == mode
        assert options["--checkpoint"] == f"build/model/{item['checkpoint']}" and options["--checkpoint"] in deps
        assert options["--bounded"] == str(item["bounded"]).lower()
        assert options["--victims"] == "build/victims/victims.npz" and "build/victims" in deps
        assert options["--features"] in deps
    assert stages["victims"][0].split()[1] == "stages/victims.py"


def test_every_attack_stage_writes_the_metrics_the_tables_stage_reads():
    from dvc.repo import Repo

    from advaudio.report.inputs import MODES

    with Repo(str(ROOT)) as repo:
        declared = {out.def_path for stage in repo.index.stages for out in stage.outs}
    assert {f"metrics/attack_{m}.json" for m in MODES} <= declared
    assert {f"metrics/curves/attack_{m}" for m in MODES} <= declared
