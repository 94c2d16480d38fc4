#!/usr/bin/env bash
# The GPU checks, run on a lent GPU machine by the device tool from the repository root:
#
#   make gpu-bundle                       # here, once: .gpu/ (wheels, tokenizer; ~40 MB)
#   run(command="bash bench/gpu.sh kernels", carry=[".gpu"])
#   run(command="bash bench/gpu.sh trainer --steps 30", carry=[".gpu"])
#
# Stages (each fits the device's 10-minute command limit):
#   check    versions, the GPU, and that shardforge imports
#   kernels  tests/test_kernels.py on the GPU (bf16 included), then bench/kernels.py
#   trainer  bench/trainer_gpu.py: shardforge's trainer against torchtitan, ~1B model
# Arguments after the stage go to the stage's script. Logs and CSVs land in $OUT.
set -euo pipefail

stage=${1:?usage: bash bench/gpu.sh check|kernels|trainer [script args...]}
shift
out=${OUT:-bench/out}
mkdir -p "$out" bench/out
py=${PYTHON:-python3}

# The machine has torch, triton, numpy, pyarrow, tokenizers; the rest comes from .gpu/ into a
# private site directory, so the image's own packages stay untouched.
site=/tmp/shardforge-site
if [ ! -d "$site/shardforge" ]; then
    $py -m pip install -q --no-index --no-deps --target "$site" .gpu/*.whl
fi
# The working tree's Python sources over the wheel's: edits made since `make gpu-bundle` run
# without rebuilding the extension.
cp -r python/shardforge/. "$site/shardforge/"
export PYTHONPATH=$site
tokenizer=/tmp/tokenizer.json
[ -f $tokenizer ] || gunzip -c .gpu/tokenizer.json.gz >$tokenizer

versions() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
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
*)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
