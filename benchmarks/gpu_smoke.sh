#!/usr/bin/env bash
# GPU smoke run at the study profile's sizes (benchmarks/gpu_smoke.py): every stage on a few synth clips,
# 1 epoch, 4 victims, the first rung of each ladder, CUDA + bf16 autocast, then a CPU re-check of the GPU's
# adversarials. Results in $OUT/gpu_smoke.json (the device tool's output folder) or build/gpu_smoke/.
#
# Through the device tool (no registry there: the few packages its image lacks travel as wheels in .whl/,
# see /work/.library/device/README.md):
#   run(command="bash benchmarks/gpu_smoke.sh", carry=[".whl"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/build/gpu_smoke}"
mkdir -p "$OUT"
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" 2>/dev/null || true
timeout 470 "$PY" benchmarks/gpu_smoke.py --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
