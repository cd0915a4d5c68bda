#!/usr/bin/env bash
# One call on a lent GPU machine: install what the box lacks from carried wheels, run the GPU tests
# and the CUDA benchmarks, and leave the results under $OUT.
#
# Here, once:  echo /.whl/ >> .git/info/exclude
#              python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                  --platform manylinux2014_x86_64 -d .whl SimpleITK
# Then:        device run, carry [".whl"], command "bash benchmarks/gpu_check.sh", timeout ~480 s.
set -uo pipefail
OUT="${OUT:-/tmp/lgeseg_gpu_out}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT/gpu.txt"
# 1. the GPU tests (AMP, planner memory fit by measurement) and the whole suite on CUDA
timeout 180 python3 -m pytest -q -x tests 2>&1 | tail -15 | tee "$OUT/tests.txt"
# 2. training throughput at nnU-Net's ACDC 2D plan (patch 256x192, batch 44, 6 stages to 512), 2 workers
timeout 200 python3 benchmarks/train_throughput.py --device cuda --patch 256 192 --batch 44 --stages 6 \
    --max-features 512 --num-workers 2 --iterations 60 --warmup 10 --json "$OUT/throughput.json" \
    2>&1 | tail -8 | tee "$OUT/throughput.txt"
# 3. the planner's memory estimate against the measured peak
timeout 90 python3 benchmarks/plan_memory.py 2>&1 | tail -20 | tee "$OUT/plan_memory.txt"
# 4. prediction speed on the GPU (and its CPU rows on 2 pinned cores)
timeout 120 python3 benchmarks/predict_speed.py --repeats 2 --no-write 2>&1 | tail -16 | tee "$OUT/predict_speed.txt"
