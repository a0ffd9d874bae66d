#!/usr/bin/env bash
# Issue 14's GPU checks as one prepared command, sized for one device call (< 10 min on one H100/H200).
#
#   here (a CPU machine with the project installed):
#     scripts/gpu_check.sh --prepare          # .gpu/: wheels the device image lacks + Fashion-MNIST (git-ignored)
#     GPU_CHECK_TINY=1 scripts/gpu_check.sh   # the same steps at CPU size, into ./gpu_check_out (plumbing check)
#   on the device (the device tool's `run`, carry [".gpu"], timeout_s 600):
#     bash scripts/gpu_check.sh               # writes its results and a log under $OUT
#
# Steps: the 2:4 semi-structured bench (flowprune bench semi), the training-step bench of dense / masked / Hyperflows
# at paper scale (flowprune bench gpu), Hyperflows' step and memory on ResNet-50-CIFAR (flowprune bench hyperflows),
# and a CIFAR-shaped smoke run (fashion_mnist32, ResNet-18-CIFAR): dense, Hyperflows and AGF structured pruning, whose
# records come back. Each step runs even if an earlier one failed; the script's status is the number that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  mkdir -p .gpu/wheels .gpu/data/FashionMNIST/raw
  # pure-Python wheels of the project's dependencies that the device image does not hold, at the versions here
  pkgs=()
  for p in hydra-core omegaconf antlr4-python3-runtime torch-pruning tabulate; do
    v=$(python3 -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p')
    pkgs+=("$p${v:+==$v}")
  done
  python3 -m pip wheel -q --no-deps -w .gpu/wheels "${pkgs[@]}"   # wheels, sdists built here (antlr4)
  cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .gpu/data/FashionMNIST/raw/
  du -sh .gpu
  exit 0
fi

OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
TINY=${GPU_CHECK_TINY:-0}
PY=python3
export PYTHONPATH=$ROOT FLOWPRUNE_DATA=${FLOWPRUNE_DATA:-$ROOT/.gpu/data} WANDB_MODE=disabled
SMOKE=$(mktemp -d)
failed=0
step() {   # step <name> <command...>: run, time and report one step
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name: $*"
  if "$@"; then echo "=== $name: ok in $((SECONDS - t0)) s"; else echo "=== $name: FAILED ($?) after $((SECONDS - t0)) s"; failed=$((failed + 1)); fi
}

if [[ -d .gpu/wheels ]]; then
  $PY -m pip install -q --no-index --find-links .gpu/wheels hydra-core omegaconf torch-pruning tabulate 2>&1 | tail -2
fi
$PY - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true

if [[ $TINY == 1 ]]; then
  step bench_gpu $PY -m flowprune bench gpu --tiny --repeats 1 --out "$OUT"
  step bench_hyperflows $PY -m flowprune bench hyperflows --models lenet300 --steps 5 --repeats 1 --out "$OUT/hf"
  SMALL=(dataset.train_subset=512 dataset.test_subset=256 dataset.val_size=256 trainer.max_steps_per_epoch=2
         model=resnet8 trainer.batch_size=32)
else
  step bench_semi $PY -m flowprune bench semi --out "$OUT"
  step bench_gpu $PY -m flowprune bench gpu --out "$OUT"
  step bench_hyperflows $PY -m flowprune bench hyperflows --models resnet50_cifar --batch-size 128 --repeats 3 \
    --out "$OUT/hf"
  SMALL=(model=resnet18_cifar dataset.train_subset=20000)
fi
RUN=($PY run.py dataset=fashion_mnist32 results_dir="$SMOKE" logger=disabled trainer.progress=false
     trainer.pretrain.epochs=2 "${SMALL[@]}")
step smoke_dense "${RUN[@]}" method=dense "stages=[pretrain,evaluate]"
step smoke_hyperflows "${RUN[@]}" method=hyperflows sparsity=90 trainer.epochs=2 method.figures=false
step smoke_agf "${RUN[@]}" method=structured scorer=agf sparsity=50 trainer.epochs=1
cp "$SMOKE/runs/records.jsonl" "$OUT/smoke_records.jsonl" 2>/dev/null || echo "no smoke records"
$PY - "$OUT/smoke_records.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line); m = r.get("metrics") or {}
    print(f"{(r.get('config') or {}).get('method', {}).get('name'):12s} {r.get('status'):7s} "
          f"test_acc {m.get('test_acc')} sparsity {m.get('sparsity')} speedup_bs64 {m.get('speedup_bs64')} "
          f"({m.get('speedup_form_bs64')}) {r.get('error') or ''}")
EOF
# the device tool brings back at most 8 files: every result in one archive, beside the tables to read at once
tar czf "$SMOKE/results.tar.gz" -C "$OUT" --exclude=gpu_check.log . && mv "$SMOKE/results.tar.gz" "$OUT/gpu_check_results.tar.gz" \
  && find "$OUT" \( -name '*.json' -o -name '*.csv' -o -name '*.tex' \) -delete
find "$OUT" -type f | sort
echo "=== $failed step(s) failed"
exit $failed
