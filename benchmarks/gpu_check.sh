#!/usr/bin/env bash
# The one check to run when a GPU is lent (under 8 minutes on one GPU): the CUDA tests, then the
# preprocess / threshold / rembg / mask benchmarks on cuda, then one summary. Its figures go into README.
# Usage, from the project root, with the venv built by README's test command:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${OUT:-gpu_check_out}
mkdir -p "$out"
started=$(date +%s)
"$py" - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
try:
    import onnxruntime as ort
    print("onnxruntime", ort.__version__, ort.get_available_providers())
except ImportError as exc:
    print("onnxruntime missing:", exc)
PY
step() {  # name, timeout in seconds, command...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  printf '%-22s rc=%-3s %4ss  %s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$(tail -n 1 "$out/$name.txt")" >> "$out/summary.txt"
}
: > "$out/summary.txt"
step pytest_gpu 180 "$py" -m pytest -q -m gpu -p no:cacheprovider
step bench_preprocess 90 "$py" benchmarks/bench_preprocess.py --device cuda --repeat 2
step bench_threshold 60 "$py" benchmarks/bench_threshold.py --device cuda --repeat 2
step bench_rembg 120 "$py" benchmarks/bench_rembg.py --device cuda --repeat 2
step bench_masks 90 "$py" benchmarks/bench_masks.py --device cuda --repeat 2
echo "== gpu_check summary ($(( $(date +%s) - started )) s) =="
cat "$out/summary.txt"
for f in bench_preprocess bench_threshold bench_rembg bench_masks; do echo "== $f"; grep '^|' "$out/$f.txt"; done
