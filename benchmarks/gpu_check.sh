#!/usr/bin/env bash
# One call on a lent GPU machine: install what the box lacks from carried wheels, run the GPU tests
# and the CUDA benchmarks, and leave the results under $OUT.
#
# Here, once (.whl/ is git-ignored; the abi3 wheel serves the box's Python 3.12):
#              python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                  --platform manylinux2014_x86_64 -d .whl SimpleITK
# Then:        device run, carry [".whl"], command "bash benchmarks/gpu_check.sh", timeout ~540 s.
#
# Sections (arguments; default "tests throughput", about 7 minutes with a cold torch.compile cache):
#   tests       the GPU-marked tests and the training/distributed tests on CUDA
#   throughput  nnU-Net's ACDC plan: every step option on, then each one off in turn (ablation),
#               a profile and the host-device syncs per step      -> $OUT/throughput.md, *.json, profile.txt
#   autotune    the same plan with torch.compile mode max-autotune (compiles for minutes)
#   memory      the planner's memory estimate against the measured peak
#   predict     prediction speed on the GPU
# e.g. a second call: "bash benchmarks/gpu_check.sh autotune memory".
set -uo pipefail
OUT="${OUT:-/tmp/lgeseg_gpu_out}"
mkdir -p "$OUT"
SECTIONS="${*:-tests throughput}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

# nnU-Net's 2D plan for ACDC: patch 256x192, batch 44, 6 stages to 512 features; 2 loader threads.
ACDC="--device cuda --patch 256 192 --batch 44 --stages 6 --max-features 512 --num-workers 2 --iterations 60"

throughput() {  # name, seconds, extra options: one row of $OUT/throughput.md and $OUT/throughput_<name>.json
    local name="$1" limit="$2"
    shift 2
    echo "== throughput $name: $*"
    timeout "$limit" python3 benchmarks/train_throughput.py $ACDC --warmup 10 --no-header \
        --json "$OUT/throughput_$name.json" "$@" 2>"$OUT/throughput_$name.err" | tee -a "$OUT/throughput.md" \
        || echo "| $name: failed or timed out after $limit s (see throughput_$name.err) |" | tee -a "$OUT/throughput.md"
}

for section in $SECTIONS; do
    case "$section" in
    tests)
        timeout 150 python3 -m pytest -q -x -m gpu tests 2>&1 | tail -15 | tee "$OUT/tests_gpu.txt"
        timeout 150 python3 -m pytest -q -x tests/test_training.py tests/test_step_options.py \
            tests/test_distributed.py 2>&1 | tail -15 | tee "$OUT/tests_training.txt"
        ;;
    throughput)
        python3 benchmarks/train_throughput.py --help >/dev/null || exit 1
        python3 - <<'EOF' | tee "$OUT/throughput.md"
from benchmarks.train_throughput import HEADER
print(HEADER)
EOF
        throughput all_on 150                                 # compile (default), bf16, channels-last, overlap, sync/10
        throughput reduce_overhead 180 --compile-mode reduce-overhead   # + CUDA graphs of the network
        throughput eager 60 --no-compile
        throughput eager_sync_every_step 60 --no-compile --log-every 1
        throughput eager_no_overlap 60 --no-compile --no-overlap-copies
        throughput eager_fp32 60 --no-compile --no-bf16
        throughput eager_nchw 60 --no-compile --no-channels-last
        throughput eager_profiled 90 --no-compile --iterations 20 --sync-debug --profile "$OUT/profile_eager.txt"
        ;;
    autotune)
        throughput max_autotune 420 --compile-mode max-autotune --warmup 5
        ;;
    memory)
        timeout 90 python3 benchmarks/plan_memory.py 2>&1 | tail -20 | tee "$OUT/plan_memory.txt"
        ;;
    predict)
        timeout 120 python3 benchmarks/predict_speed.py --repeats 2 --no-write 2>&1 | tail -16 \
            | tee "$OUT/predict_speed.txt"
        ;;
    *)
        echo "unknown section $section (tests, throughput, autotune, memory, predict)" | tee -a "$OUT/errors.txt"
        ;;
    esac
done
