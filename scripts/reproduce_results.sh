#!/usr/bin/env bash
# Reproduce the results gallery (docs/results/STUDY/, indexed by RESULTS.md): each study is one
# sweep on the real data, over seeds, whose generated report is written into the gallery.
#
#   DATA=path/to/data scripts/reproduce_results.sh [STUDY ...]     # default: every study below
#
# DATA holds MNIST/raw/, eecs-binary/data.pkl and cifar10-jpeg.tar.gz (docs/catalogue.md#data).
# Sweeps land in outputs/studies/STUDY; two jobs run at a time with one thread each (a 2-core
# machine); set JOBS=N to change that. Compute on a 2-core CPU is noted per study.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to the folder that holds the data sets (docs/catalogue.md#data)}"
JOBS=${JOBS:-2}
TRAIN=.venv/bin/dlhw-train
CIFAR=(data=cifar10_jpeg "data.archive=$DATA/cifar10-jpeg.tar.gz" "data.root=$DATA")
PARALLEL=(hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS" threads=1 callbacks.progress_bar=null)

study() {  # study NAME OVERRIDES...: run the sweep, then write its report into the gallery
  local name=$1
  shift
  local sweep=outputs/studies/$name
  if [ -e "$sweep/multirun.yaml" ]; then
    "$TRAIN" -m "resume=$sweep"  # finished jobs are skipped
  else
    "$TRAIN" -m "$@" "hydra.sweep.dir=$sweep"
  fi
  .venv/bin/dlhw-report "$sweep" --out "docs/results/$name" --title "$name"
  rm -f "docs/results/$name/report.html"  # the gallery keeps the Markdown and its figures
}

run_one() {
  case $1 in
    # LeNet on CIFAR-10: He vs Gaussian 0.01 x mean-only vs standardised inputs (~40 min)
    lenet_cifar10_init) study "$1" experiment=lenet_cifar10_init "${CIFAR[@]}" seed=0,1 "${PARALLEL[@]}" ;;
    # LeNet with and without BatchNorm (~15 min)
    lenet_cifar10_bn) study "$1" experiment=lenet_cifar10_bn "${CIFAR[@]}" seed=0,1 "${PARALLEL[@]}" ;;
    # weight decay x dropout, at 30 epochs so that the unregularised net can overfit (~2.5 h)
    lenet_cifar10_regularization) study "$1" experiment=lenet_cifar10_regularization_30ep "${CIFAR[@]}" \
        seed=0,1 "${PARALLEL[@]}" ;;
    # the baseline against augmentation, Adam and RMSprop written in the project, 30 epochs (~40 min)
    lenet_cifar10_extras) study "$1" experiment=lenet_cifar10_extras_30ep "${CIFAR[@]}" \
        seed=0,1 "${PARALLEL[@]}" ;;
    # time per epoch against width: one job at a time on both cores, one epoch per width (~5 min)
    lenet_cifar10_width) study "$1" experiment=lenet_cifar10_width "${CIFAR[@]}" trainer.max_epochs=1 \
        seed=0 callbacks.progress_bar=null ;;
    # the small VGG11 plan, the preset's 10 epochs (~10 min)
    vgg11_small_cifar10) study "$1" experiment=vgg11_small_cifar10 "${CIFAR[@]}" seed=0,1 "${PARALLEL[@]}" ;;
    # the standard VGG11 plan: 20 training steps to measure its cost (a full run does not fit a CPU)
    vgg11_cifar10_timing) study "$1" experiment=vgg11_cifar10 "${CIFAR[@]}" trainer.max_epochs=1 \
        trainer.limit_train_batches=20 trainer.limit_val_batches=5 trainer.limit_test_batches=5 \
        seed=0 callbacks.progress_bar=null ;;
    # logistic regression, linear SVM and their 2-layer versions over hidden sizes (~5 min)
    binary_classifiers) study "$1" experiment=binary_classifiers "data.path=$DATA/eecs-binary/data.pkl" \
        seed=0,1,2 "${PARALLEL[@]}" ;;
    # softmax regression and the 2-layer nets on MNIST, 10 epochs (~10 min)
    mnist_mlps) study "$1" experiment=mnist_mlps "data.root=$DATA" seed=0,1 "${PARALLEL[@]}" ;;
    # the CNNs on MNIST over filter and hidden sizes, with dropout + BatchNorm (~50 min)
    mnist_cnns) study "$1" experiment=mnist_cnns "data.root=$DATA" seed=0,1 "${PARALLEL[@]}" ;;
    # the six recurrent networks reading MNIST rows (~8 min)
    rnn_rows_mnist_variants) study "$1" experiment=rnn_rows_mnist_variants "data.root=$DATA" seed=0,1 \
        "${PARALLEL[@]}" ;;
    # ReLU RNN vs LSTM on the easy temporal-order level (~5 min)
    temporal_order_rnn_vs_lstm) study "$1" experiment=temporal_order_rnn_vs_lstm seed=0,1,2 "${PARALLEL[@]}" ;;
    # the same one level up (normal: t1 25-38 steps before the end), where the lag defeats the RNN (~5 min)
    temporal_order_rnn_vs_lstm_normal) study "$1" experiment=temporal_order_rnn_vs_lstm data.level=normal \
        seed=0,1,2 "${PARALLEL[@]}" ;;
    # loss spikes of an LSTM 12 on the moderate level, then the fix by the training procedure (~15 min)
    temporal_order_spikes) study "$1" experiment=temporal_order_spikes seed=0,1 "${PARALLEL[@]}" ;;
    # the GRU echo task, variable delay (~15 min)
    echo) study "$1" experiment=echo seed=0,1 "${PARALLEL[@]}" ;;
    *) echo "unknown study: $1" >&2; exit 2 ;;
  esac
}

STUDIES=("$@")
[ ${#STUDIES[@]} -gt 0 ] || STUDIES=(binary_classifiers temporal_order_rnn_vs_lstm temporal_order_rnn_vs_lstm_normal mnist_mlps
  temporal_order_spikes echo lenet_cifar10_init lenet_cifar10_bn lenet_cifar10_width vgg11_small_cifar10
  lenet_cifar10_regularization lenet_cifar10_extras mnist_cnns rnn_rows_mnist_variants)
for s in "${STUDIES[@]}"; do
  run_one "$s"
done
