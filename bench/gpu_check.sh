#!/usr/bin/env bash
# The GPU check of issue 27: on a CUDA machine, from a checkout with the project installed (pip install -e ".[dev]"
# after the CUDA build of torch), in under 8 minutes (the timeout stops it at 480 s):
#   ca-s16 inference images/s in bf16, a g8 training step on a few blocks (bf16, flash SDPA, activation
#   checkpointing off and on) with MFU against the GPU's bf16 peak, all in one JSON file.
#
#   bench/gpu_check.sh [OUT_JSON] [extra options of python -m bench.gpu_check]
#   bench/gpu_check.sh /tmp/gpu_check.json --device cpu --dry-run      # the code path on tiny sizes, any machine
# PYTHON names the interpreter (default: python on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/gpu_check.json}
shift || true
python=${PYTHON:-python}
"$python" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
PY
timeout 480 "$python" -m bench.gpu_check --out "$out" "$@"
