#!/usr/bin/env bash
# The GPU checks, run on a lent GPU machine by the device tool from the repository root:
#
#   make gpu-bundle                       # here, once: .gpu/ (wheels, tokenizer; ~40 MB)
#   run(command="bash bench/gpu.sh kernels", carry=[".gpu"])
#   run(command="bash bench/gpu.sh trainer --steps 30", carry=[".gpu"])
#   run(command="BUDGET=480 bash bench/gpu.sh all", carry=[".gpu"], timeout_s=540)
#
# Stages (each fits the device's 10-minute command limit):
#   check    versions, the GPU, and that shardforge imports
#   kernels  tests/test_kernels.py on the GPU (bf16 included), then bench/kernels.py
#   trainer  bench/trainer_gpu.py: shardforge's trainer against torchtitan, ~1B model
#   all      the open GPU checks in one call, most wanted first, each given what is left of
#            BUDGET seconds (default 480) up to its own cap, and skipped when less than its
#            minimum is left; TRAINER_ARGS go to both trainer parts, and PARTS (names, space
#            separated) runs only those parts
# Arguments after the stage go to the stage's script. Logs and CSVs land in $OUT.
#
# A task's device time is 15 minutes in all, a machine's start (a minute or more) included, so
# `all` is meant to be the session's one call. Check the flow here on CPU first, after `make
# gpu-bundle`: `OUT=/tmp/x PYTHON=.venv/bin/python BUDGET=200 TRAINER_ARGS="--size debug
# --seq-len 128 --skip torchtitan" bash bench/gpu.sh all` (the kernel parts exit at once there).
set -euo pipefail

stage=${1:?usage: bash bench/gpu.sh check|kernels|trainer|all [script args...]}
shift
out=${OUT:-bench/out}
mkdir -p "$out" bench/out
py=${PYTHON:-python3}
# A part cut off by its time limit still leaves what it printed.
export PYTHONUNBUFFERED=1

# The machine has torch, triton, numpy, pyarrow, tokenizers; the rest comes from .gpu/ into a
# private site directory, so the image's own packages stay untouched. A development install (the
# CPU check of the flow, with PYTHON=.venv/bin/python) is used as it is.
if ! $py -c 'import shardforge._core' 2>/dev/null; then
    site=/tmp/shardforge-site
    if [ ! -d "$site/shardforge" ]; then
        $py -m pip install -q --no-index --no-deps --target "$site" .gpu/*.whl
    fi
    # The working tree's Python sources over the wheel's: edits made since `make gpu-bundle` run
    # without rebuilding the extension.
    cp -r python/shardforge/. "$site/shardforge/"
    export PYTHONPATH=$site
fi
tokenizer=/tmp/tokenizer.json
[ -f $tokenizer ] || gunzip -c .gpu/tokenizer.json.gz >$tokenizer

versions() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
    $py -c 'import sys, torch, triton, shardforge
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "torch sees no GPU"
print(sys.version.split()[0], "torch", torch.__version__, "triton", triton.__version__, "cuda", torch.version.cuda, gpu)'
}

case $stage in
check)
    versions 2>&1 | tee "$out/check.log"
    ;;
kernels)
    versions >"$out/kernels.log" 2>&1
    # -W default: a deprecation warning from this image's versions is reported, not a failure.
    TRITON_INTERPRET=0 $py -m pytest -q -W default -p no:cacheprovider tests/test_kernels.py \
        >>"$out/kernels.log" 2>&1 || echo "kernel tests FAILED" >>"$out/kernels.log"
    tail -5 "$out/kernels.log"
    $py bench/kernels.py "$@" 2>&1 | tee "$out/kernels-bench.log"
    cp bench/out/kernels*.csv "$out/"
    ;;
trainer)
    versions >"$out/trainer.log" 2>&1
    $py bench/trainer_gpu.py --tokenizer $tokenizer "$@" 2>&1 | tee -a "$out/trainer.log"
    cp bench/out/trainer_gpu.csv "$out/"
    ;;
all)
    budget=${BUDGET:-480}
    deadline=$((SECONDS + budget))
    # part NAME MIN MAX COMMAND...: run for at most MAX seconds and what is left of the budget,
    # or say why not when less than MIN is left. MAX keeps a slow part from starving the rest.
    part() {
        local name=$1 min=$2 max=$3 left=$((deadline - SECONDS))
        shift 3
        if [ -n "${PARTS:-}" ] && [[ " $PARTS " != *" $name "* ]]; then
            return 0
        fi
        if [ "$left" -lt "$min" ]; then
            echo "== $name: skipped, ${left}s left of ${budget}s (needs ${min}s)" | tee -a "$out/all.log"
            return 0
        fi
        [ "$left" -gt "$max" ] && left=$max
        echo "== $name: up to ${left}s" | tee -a "$out/all.log"
        local start=$SECONDS rc=0
        timeout --kill-after=10 "$left" "$@" >"$out/$name.log" 2>&1 || rc=$?
        echo "== $name: rc $rc after $((SECONDS - start))s" | tee -a "$out/all.log"
        tail -4 "$out/$name.log"
    }
    versions 2>&1 | tee "$out/all.log"
    # Issue 7 (open): bf16 correctness, every op with the device's own busy time, then the sweeps
    # behind the fused loss's chunk and RMSNorm's backward defaults.
    part kernel-tests 40 90 env TRITON_INTERPRET=0 $py -m pytest -q -W default -p no:cacheprovider tests/test_kernels.py
    part kernels 60 150 $py bench/kernels.py
    part ce-sweep 40 150 $py bench/kernels.py --ce-sweep
    part rms-sweep 40 90 $py bench/kernels.py --rms-sweep
    cp bench/out/kernels.csv "$out/" 2>/dev/null || true
    # Issue 6 (met on an H200, 2026-12-04): Llama 3's aligned 128,256-token vocabulary, against
    # torchtitan, at batch 4 and 8.
    # The device tool returns at most 8 files: seven logs and kernels.csv. The trainer's CSV stays
    # behind; its rows are in the trainer logs' tables.
    part trainer-b4 150 300 $py bench/trainer_gpu.py --tokenizer $tokenizer --steps 15 --batch 4 --work /tmp/b4 ${TRAINER_ARGS:-}
    part trainer-b8 150 600 $py bench/trainer_gpu.py --tokenizer $tokenizer --steps 15 --batch 8 --work /tmp/b8 ${TRAINER_ARGS:-}
    ;;
*)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
