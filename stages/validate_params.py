"""Stage `validate_params`: fail fast, before any work, on a bad value in params.yaml, or on a FIFO, socket,
device or dangling link in `data/` or `dataset_dir` (DVC would hang hashing it, with no output).

Writes a constant file that the first stages depend on, so a valid change of params reruns only the
stages that read the changed keys.
"""

import argparse
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's src/ first on sys.path)
from advaudio.config import load_params
from advaudio.data.listing import non_regular_files
from advaudio.errors import DataError
from advaudio.stage_log import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the file written when params.yaml is valid")
    out = parser.parse_args(argv).out
    params = load_params("params.yaml")
    for folder in sorted({Path("data"), Path(params.dataset_dir)}):
        odd = non_regular_files(folder) if folder.is_dir() else []
        if odd:
            raise DataError(f"{odd[0]} is not a regular file ({len(odd)} such under {folder}/); DVC hangs hashing "
                            "a FIFO and cannot track sockets, devices or dangling links: remove them")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("params.yaml is valid\n")
    print("validate_params: params.yaml is valid")
    return 0


if __name__ == "__main__":
    run_stage("validate_params", main)
