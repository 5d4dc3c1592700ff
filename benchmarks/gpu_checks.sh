#!/usr/bin/env bash
# Every GPU check in one call (a lent GPU machine gives minutes, not hours):
#   1. the CUDA tests (tests/test_cuda.py: AMP fit, resume, checkpoints, inference; color on CUDA)
#   2. DDColor inference, ours vs the authors' formulation, at 256/512/1024, and the training
#      step at batch 16, 256 px: fp32 / checkpointing / fp16 AMP / both (time and peak memory)
#   3. fit() against a bare loop for the pix2pix U-Net, the ResNet U-Net and DDColor-tiny at the
#      gpu profile's 256 px, batch 16, in fp32 and in fp16 AMP + channels-last
# Results (JSON + logs) go to $OUT, else benchmarks/results/; the Performance chapter reads
# benchmarks/results/*.json.   Usage: bash benchmarks/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_info.txt"
$PY -c "import torch, torchvision; print('torch', torch.__version__, torchvision.__version__)" \
  | tee -a "$OUT/gpu_info.txt"
timeout 150 $PY -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py tests/test_color.py \
  2>&1 | tail -n 25 | tee "$OUT/cuda_tests.txt"
timeout 170 $PY benchmarks/ddcolor_bench.py --device cuda --sizes 256 512 1024 --iters 20 \
  --batch-size 16 --steps 10 --json "$OUT/ddcolor_cuda.json" 2>&1 | tee "$OUT/ddcolor_cuda.txt"
timeout 170 $PY benchmarks/train_bench.py --device cuda --models unet resnet-unet ddcolor \
  --sizes 256 --steps 20 --repeats 2 --json "$OUT/train_cuda.json" 2>&1 | tee "$OUT/train_cuda.txt"
