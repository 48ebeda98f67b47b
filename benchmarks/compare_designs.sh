#!/usr/bin/env bash
# Equal-budget training comparisons of issue 9 (docs/RESULTS.md, "Designs at equal budget"):
# blind vs noise-aware pssr-fast, per-preset blind models, and a SPAN-style network, each for
# about 20 minutes of one CPU core (bf16 autocast), on the training folders only. Steps per
# design = 20 min x its measured step rate (benchmarks/bench_train.py --threads 1: pssr-fast
# 4.7 network steps/s, pssr-span 3.2; batches about 0.035 s each on top).
# Designs are compared on each run's own validation split (metrics.csv): never on hold-outs.
#
#   bash benchmarks/compare_designs.sh results/issue9 a   # queue a: fast-blind, fast-noise, span-noise
#   bash benchmarks/compare_designs.sh results/issue9 b   # queue b: the per-preset models
#   bash benchmarks/compare_designs.sh results/issue9 l1  # the loss: L1 alone
#   bash benchmarks/compare_designs.sh results/issue9 w02 # the loss: 0.2 (1 - SSIM) + 0.8 L1
# A queue that was stopped continues where it stopped (--resume).
# Then, for the record (never to choose): the hold-out, and the table of docs/RESULTS.md:
#   R=results/issue9; pssr-volume evaluate --hr ../shared/data/holdout_drosophila_vnc_sstem_stack2/raw \
#     --preset pssr-em --preset pssr2 --preset integrate-read --out $R/eval-vnc-all --overwrite \
#     $(for m in fast-blind fast-noise fast-noise-l1 fast-pssr-em fast-pssr2 span-noise; do
#       echo --model $R/$m/model.safetensors; done) --model pssr-em-x4
#   python docs/make_design_table.py --runs $R --eval $R/eval-vnc-all
set -euo pipefail
out=${1:-results/issue9}
queue=${2:-a}
data=../shared/data
inputs=("$data/drosophila_vnc_sstem_stack1/raw" "$data/isbi2012_sstem/train-volume.tif"
        "$data/isbi2012_sstem/test-volume.tif"
        "$data/flyem_medulla_fibsem_10nm/training_sample1.tif"
        "$data/flyem_medulla_fibsem_10nm/training_sample2.tif")
common=(--batch-size 16 --tile 192 --lr 1e-3 --val-every 500 --val-tiles 48 --seed 1
        --threads 1 --loss ssim --amp bf16 --no-progress)

train() {  # name, then flags
  local name=$1; shift
  if [ -f "$out/$name/checkpoint.json" ]; then
    if [ -f "$out/$name/done" ]; then return; fi
    pssr-volume train "${inputs[@]}" --out "$out/$name" --name "$name" "${common[@]}" "$@" --resume
  else
    pssr-volume train "${inputs[@]}" --out "$out/$name" --name "$name" "${common[@]}" "$@"
  fi
  touch "$out/$name/done"
}

if [ "$queue" = a ]; then
  train fast-noise --architecture pssr-fast --noise-aware --crappifier mix --steps 4800
  train fast-blind --architecture pssr-fast --blind --crappifier mix --steps 4800
  train span-noise --architecture pssr-span --noise-aware --crappifier mix --steps 3400
elif [ "$queue" = l1 ]; then
  train fast-noise-l1 --architecture pssr-fast --noise-aware --crappifier mix --steps 4800 --loss l1
elif [ "$queue" = w02 ]; then
  train fast-noise-w02 --architecture pssr-fast --noise-aware --crappifier mix --steps 4800 \
    --ssim-weight 0.2
else
  train fast-pssr-em --architecture pssr-fast --blind --crappifier pssr-em --steps 4800
  train fast-pssr2 --architecture pssr-fast --blind --crappifier pssr2 --steps 4800
fi
