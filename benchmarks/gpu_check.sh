#!/usr/bin/env bash
# GPU check for issue 9, for a machine with one CUDA GPU: the CUDA tests of the input pipeline, then
# benchmarks/gpu_train.py (ResNet-50, bf16, channels_last; eager and compiled; synthetic data, the decoded
# cache and GPU JPEG decoding). Meant to finish within 10 minutes; results go to $OUT (default ./gpu-check).
#
#     bash benchmarks/gpu_check.sh            # PYTHON=... to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: nothing to check')" || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

status=0
# 1. the CUDA paths (skipped on a CPU machine): batched augmentation on the GPU vs the CPU, nvJPEG decoding,
#    DeviceBatches decoding on the GPU, vectorised random erasing on the GPU
timeout 180 "$PY" -m pytest -p no:xdist -q tests/test_device_pipeline.py tests/test_batch_augment.py \
    tests/test_cache.py 2>&1 | tee "$OUT/tests.txt" | tail -5 || status=1

# 2. ResNet-50 training speed, eager (fast to start) then compiled; 224 px as NVIDIA's reference measures
timeout 420 "$PY" benchmarks/gpu_train.py --img-size 224 --batch-size 256 --steps 40 --warmup 10 --json \
    > "$OUT/gpu_train.json" 2> "$OUT/gpu_train.log" || status=1
cat "$OUT/gpu_train.json"
exit $status
