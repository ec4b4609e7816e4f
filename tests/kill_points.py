"""Run a stage script that kills itself with SIGKILL at a chosen point: a real ``kill -9``, at a known moment.

Polling a running stage from outside and killing it once some file appears races the stage: a stage that
writes its shards in a burst can finish them all between two polls (seen in CI). Here the stage's own process
sends itself SIGKILL right after the N-th call of a function that matches a predicate, so the point of the
kill is the same on every machine, and nothing after it (no ``finally``, no atexit) runs.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROGRAM = '''
import importlib, os, runpy, signal, sys
sys.path.insert(0, {stages!r})
sys.argv = {argv!r}


def _install():
    _owner = importlib.import_module({module!r})
    for _part in {qualname!r}.split(".")[:-1]:
        _owner = getattr(_owner, _part)
    _name = {qualname!r}.split(".")[-1]
    _real = getattr(_owner, _name)
    _seen = []

    def _killing(*args, **kwargs):
        out = _real(*args, **kwargs)
        _key = ({key})
        if _key is not None:
            _seen.append(_key)
            _counted = len(set(_seen)) if {distinct!r} else len(_seen)
            if _counted >= {after}:
                os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(_owner, _name, _killing)


# The audio stages pin numpy's kernels before anything imports numpy (src/advaudio/simd.py); importing the
# wrapped module now would import numpy first, so for them the kill point is installed right after the pin.
if "pin_numpy_to_baseline()" in open(sys.argv[0]).read():
    import advaudio.simd as _simd
    _pin = _simd.pin_numpy_to_baseline

    def _pin_then_install():
        _pin()
        _install()

    _simd.pin_numpy_to_baseline = _pin_then_install
else:
    _install()
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def start_stage_killed_after(script: str, args: list[str], *, cwd: Path, module: str, qualname: str, key: str,
                             after: int, distinct: bool = False, env: dict | None = None,
                             stages: Path = REPO / "stages") -> subprocess.Popen:
    """Start ``stages/<script>`` so that it SIGKILLs itself after ``after`` matching calls of a function.

    Parameters
    ----------
    script, args
        The stage file under ``stages/`` and its command-line arguments.
    cwd
        The stage's working directory (a project tree with params.yaml).
    module, qualname
        Where the wrapped function lives (``"advaudio.features.shards"``, ``"write_npy"``; a method as
        ``"ResumeStore.save"``). Wrap the attribute the caller looks up at call time.
    key
        A Python expression over ``args`` (the call's positional arguments) giving the call's key, or ``None``
        for a call that does not count.
    after
        Kill once this many calls (``distinct``: distinct keys) have counted; the triggering call completes first.
    stages
        The ``stages/`` folder to run from (another checkout's: give its ``src/`` in ``PYTHONPATH`` too, so the
        wrapped module is that checkout's).
    """
    program = _PROGRAM.format(stages=str(stages), argv=[str(stages / script), *args],
                              module=module, qualname=qualname, key=key, after=after, distinct=distinct)
    return subprocess.Popen([sys.executable, "-c", program], cwd=cwd, env=env or dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
