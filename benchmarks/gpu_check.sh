#!/usr/bin/env bash
# One call on a lent GPU machine measures issue 17's "one GPU at 2x nnU-Net" (>= 1940 samples/s on an
# H200 at nnU-Net's ACDC plan) and what bounds it; results come back as $OUT/summary.md (everything
# readable, also printed at the end) and $OUT/results.tar.gz (JSON rows, logs, profiles, trace).
#
# Before the call, once, in the repository root (.whl/ is git-ignored; the box has no SimpleITK and
# no network; the abi3 wheel, ~50 MiB, serves its Python 3.12 and fits the 64 MiB carry limit):
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux2014_x86_64 -d .whl SimpleITK      # or copy a wheel already downloaded
# The call (device tool): run, carry [".whl"], command "bash benchmarks/gpu_check.sh", timeout_s 600.
#
# Sections (arguments; default "tests throughput"), in the order given, each cut off by a deadline
# GPU_CHECK_SECONDS (default 500) after the start, so the call ends inside its 600 s:
#   tests       the gpu-marked tests: no host-device sync in a training step (sync debug mode
#               "error"), the whole-step CUDA graph against eager steps, compiled training, ...
#   throughput  nnU-Net's ACDC plan (patch 256x192, batch 44, 6 stages to 512 features, 2 loader
#               threads): every step option on, with syncs per step and a profile; the whole-step
#               CUDA graph; compile reduce-overhead; then eager rows: graph, cudnn.benchmark, and
#               ablations with one option off at a time
#   cputests    the training and distributed tests (CPU code paths) on that machine
#   autotune    the same plan with torch.compile mode max-autotune (compiles for minutes)
#   memory      the planner's memory estimate against the measured peak
#   predict     prediction speed on the GPU
# e.g. a second call: "bash benchmarks/gpu_check.sh autotune memory".
#
# Dry run without a GPU (checks this script and the benchmark's plumbing, measures nothing):
#     GPU_CHECK_DRY_RUN=1 PYTHON=.venv/bin/python OUT=/tmp/gpu_dry bash benchmarks/gpu_check.sh
# Without CUDA and without GPU_CHECK_DRY_RUN the script stops at once with exit code 2.
set -uo pipefail
OUT="${OUT:-/tmp/lgeseg_gpu_out}"
PY="${PYTHON:-python3}"
DRY="${GPU_CHECK_DRY_RUN:-0}"
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-500}))
SECTIONS="${*:-tests throughput}"
WORK="$(mktemp -d /tmp/gpu_check.XXXX)"
mkdir -p "$OUT"

pack() {  # summary.md and results.tar.gz under $OUT (at most 8 files come back), summary printed (its end
          # is what the device tool's output_tail shows: the tables last)
    {
        echo "# benchmarks/gpu_check.sh $SECTIONS ($(date -u +%FT%TZ), ${SECONDS} s)"
        [ "$DRY" = 1 ] && echo "**DRY RUN on the CPU: tiny plan, no number here is a GPU figure.**"
        for f in gpu.txt profile_all_on.txt profile_cuda_graph.txt tests_cpu.txt plan_memory.txt predict_speed.txt \
                 tests_gpu.txt throughput.md syncs.txt skipped.txt; do
            [ -s "$WORK/$f" ] && printf '\n## %s\n\n```\n%s\n```\n' "$f" "$(cat "$WORK/$f")"
        done
    } >"$OUT/summary.md"
    tar -czf "$OUT/results.tar.gz" -C "$WORK" .
    cat "$OUT/summary.md"
}
trap pack EXIT

left() { echo $((DEADLINE - SECONDS)); }

cap() {  # seconds, margin: the smaller of the seconds and what is left before the deadline less the margin
    local rest=$(($(left) - $2))
    echo $(($1 < rest ? $1 : rest))
}

fits() {  # name, seconds it needs at least: true if that much is left, else noted in skipped.txt
    if [ "$(left)" -lt "$2" ]; then
        echo "$1: skipped, $(left) s left before the deadline, needs $2 s" | tee -a "$WORK/skipped.txt"
        return 1
    fi
}

if ! "$PY" -c "import SimpleITK" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu_check.sh: no SimpleITK and no wheels in .whl/ (see the header)"; exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" \
    | tee "$WORK/gpu.txt"
if [ "$DRY" = 1 ]; then
    ACDC="--device cpu --patch 32 32 --batch 2 --stages 3 --max-features 16 --num-workers 1 --iterations 2 --cases 2"
    WARMUP=1
elif "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.max.sm --format=csv | tee -a "$WORK/gpu.txt"
    # nnU-Net's 2D plan for ACDC: patch 256x192, batch 44, 6 stages to 512 features; 2 loader threads.
    ACDC="--device cuda --patch 256 192 --batch 44 --stages 6 --max-features 512 --num-workers 2 --iterations 60"
    WARMUP=10
else
    echo "gpu_check.sh: torch sees no CUDA device: nothing measured (GPU_CHECK_DRY_RUN=1 checks the script on a CPU)" \
        | tee -a "$WORK/skipped.txt"
    exit 2
fi

header() {  # the table header of benchmarks/train_throughput.py with a first column: the row's name
    "$PY" -c "from benchmarks.train_throughput import HEADER; a, b = HEADER.splitlines(); print('| row ' + a); print('|---' + b)"
}

throughput() {  # name, seconds at most, options: one row of throughput.md, throughput_<name>.json
    local name="$1" limit="$2"
    shift 2
    fits "throughput $name" 30 || return 0
    limit="$(cap "$limit" 0)"
    echo "== throughput $name: $*"
    timeout "$limit" "$PY" benchmarks/train_throughput.py $ACDC --warmup "$WARMUP" --no-header \
        --json "$WORK/throughput_$name.json" "$@" 2>"$WORK/throughput_$name.err" | sed "s/^| /| $name | /" \
        | tee -a "$WORK/throughput.md" || echo "| $name: failed or cut after $limit s, see throughput_$name.err: $(tail -c 300 "$WORK/throughput_$name.err" | tr '\n' ' ') |" \
            | tee -a "$WORK/throughput.md"
}

for section in $SECTIONS; do
    case "$section" in
    tests)
        fits tests 60 || continue
        timeout "$(cap 180 20)" "$PY" -m pytest -q -rfEs -m gpu -p no:cacheprovider tests 2>&1 | tail -60 \
            | tee "$WORK/tests_gpu.txt"
        ;;
    throughput)
        header >>"$WORK/throughput.md" || exit 1
        throughput all_on 150 --sync-debug --profile "$WORK/profile_all_on.txt"   # compile, bf16, NHWC, overlap, sync/10
        throughput cuda_graph 150 --cuda-graph --sync-debug --profile "$WORK/profile_cuda_graph.txt"  # whole step, one graph
        throughput reduce_overhead 150 --compile-mode reduce-overhead          # network's own CUDA graphs instead
        throughput eager 60 --no-compile --sync-debug
        throughput eager_cuda_graph 60 --no-compile --cuda-graph
        throughput eager_cudnn_benchmark 60 --no-compile --cudnn-benchmark  # cuDNN picks algorithms by timing
        throughput eager_gather_rows 60 --no-compile --gather-rows --sync-debug  # augmentation with a sync per step
        throughput eager_sync_every_step 60 --no-compile --log-every 1
        throughput eager_no_overlap 60 --no-compile --no-overlap-copies
        throughput eager_fp32 60 --no-compile --no-bf16
        throughput eager_nchw 60 --no-compile --no-channels-last
        "$PY" - "$WORK" >"$WORK/syncs.txt" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("throughput_*.json")):
    row = json.loads(path.read_text())
    if row.get("syncs_per_step") is not None:
        print(f"{path.stem[11:]}: {row['syncs_per_step']:g} host-device syncs per step, "
              f"{row['syncs_per_epoch']:g} per epoch, {row['samples_per_s']:.0f} samples/s")
EOF
        ;;
    cputests)
        fits cputests 90 || continue
        timeout "$(cap 300 10)" "$PY" -m pytest -q -x -p no:cacheprovider tests/test_training.py \
            tests/test_step_options.py tests/test_distributed.py 2>&1 | tail -15 | tee "$WORK/tests_cpu.txt"
        ;;
    autotune)
        header >>"$WORK/throughput.md" || exit 1
        throughput max_autotune 420 --compile-mode max-autotune --warmup 5
        ;;
    memory)
        fits memory 60 && timeout "$(cap 90 0)" "$PY" benchmarks/plan_memory.py 2>&1 | tail -20 | tee "$WORK/plan_memory.txt"
        ;;
    predict)
        fits predict 60 && timeout "$(cap 120 0)" "$PY" benchmarks/predict_speed.py --repeats 2 --no-write 2>&1 | tail -16 \
            | tee "$WORK/predict_speed.txt"
        ;;
    *)
        echo "unknown section $section (tests, throughput, cputests, autotune, memory, predict)" | tee -a "$WORK/skipped.txt"
        ;;
    esac
done
