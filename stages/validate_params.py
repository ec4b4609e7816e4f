"""Stage `validate_params`: fail fast, before any work, on a bad value in params.yaml.

Writes a constant file that the first stages depend on, so a valid change of params reruns only the
stages that read the changed keys.
"""

from pathlib import Path

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.stage_log import run_stage


def main() -> int:
    load_params("params.yaml")
    out = Path("build/params.ok")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("params.yaml is valid\n")
    print("validate_params: params.yaml is valid")
    return 0


if __name__ == "__main__":
    run_stage("validate_params", main)
