#!/usr/bin/env bash
# The GPU checks in one call on one GPU, under 8 minutes, with nothing that cannot travel (no Ray):
#   1. a 16-run LeNet CIFAR-10 study (4 seeds x 4 learning rates, one epoch each) packed against
#      one run after another (scripts/bench_pack.py --gpu; target: packed >= 8x the throughput);
#   2. GPU epoch times of LeNet CIFAR-10, VGG11 (bf16, channels_last) and LSTM-64 on rows
#      (scripts/bench_gpu.py);
#   3. vgg11_cifar10 at its full recipe (30 epochs) on the real CIFAR-10 JPEG archive, with its report;
#   4. one packed training step against one run's step, with the pack's top GPU operators, and the
#      LSTM pack with each run's cuDNN kernel instead of matrix-product cells
#      (scripts/bench_pack_step.py --gpu; where the pack's time goes).
# Every figure goes to a file under $OUT (or ./gpu-checks). A failing step fails the script (exit 1)
# after the others ran; without a CUDA device or the CIFAR-10 archive it stops at once.
# Measured: 435 s on one H200 for steps 1-3 with 20,000 samples in step 1 (BENCHMARKS.md, section 5);
# step 4 adds about a minute, the 15,000 samples of step 1 take about half a minute less.
#
# Prepare the wheels the device lacks, here, in .whl/ (git-ignored), then carry .whl and the data:
#   python -m pip wheel --no-deps -w .whl . hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3
#   mkdir -p .gpu-data && cp DATA/cifar10-jpeg.tar.gz .gpu-data/
#   device run (carry .whl and .gpu-data):  DATA=.gpu-data bash scripts/gpu_checks.sh
set -uo pipefail
out=${OUT:-gpu-checks}
data=${DATA:-.gpu-data}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_checks: no CUDA device')" || exit 1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)"
} 2>&1 | tee "$out/gpu.txt"
[ -f "$data/cifar10-jpeg.tar.gz" ] || { echo "gpu_checks: $data/cifar10-jpeg.tar.gz is missing"; exit 1; }
failed=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.txt
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$out/$name.txt"
    [ "$rc" -eq 0 ] || failed=1
}
step bench_pack_gpu "${PACK_S:-200}" python3 scripts/bench_pack.py --gpu --studies lenet --repeats 1 \
    --epochs 1 --train-samples "${PACK_SAMPLES:-15000}" --json "$out/bench_pack_gpu.json"
step bench_gpu "${EPOCH_S:-90}" python3 scripts/bench_gpu.py --epochs 3
step vgg11_cifar10 "${VGG_S:-240}" python3 -m dlhw.cli.train experiment=vgg11_cifar10 trainer=gpu \
    trainer.precision=bf16-mixed channels_last=true data=cifar10_jpeg \
    "data.archive=$data/cifar10-jpeg.tar.gz" data.root=/tmp/cifar10 hydra.run.dir=/tmp/vgg11 \
    callbacks.progress_bar=null
if [ -f /tmp/vgg11/results.json ]; then
    python3 -m dlhw.cli.report /tmp/vgg11 > "$out/vgg11_report_cli.txt" 2>&1 || failed=1
    cp /tmp/vgg11/results.json "$out/vgg11_results.json"
    tar -czf "$out/vgg11_report.tgz" -C /tmp/vgg11 --exclude=checkpoints --exclude=tensorboard . || failed=1
fi
step pack_step_gpu "${STEP_S:-90}" python3 scripts/bench_pack_step.py --gpu --profile \
    --json "$out/pack_step_gpu.json"
step pack_step_gpu_lstm_each_run "${STEP_S:-90}" python3 scripts/bench_pack_step.py --gpu --cases lstm \
    --rnn-kernel each-run --json "$out/pack_step_gpu_lstm_each_run.json"
grep -h -E "ratio|gap|s/epoch|Test accuracy|throughput" "$out"/*.txt
exit $failed
