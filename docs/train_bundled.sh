#!/usr/bin/env bash
# Training of the bundled models (pssr_volume/models/), on the training folders only. On a
# 2-core CPU with native bf16 the two run side by side, one thread each (THREADS=2 for one alone;
# a resumed run may change it).
#
#   bash docs/train_bundled.sh iso      # pssr-em-x4-iso: 3 sections in, FIB-SEM (10 nm)
#   SSIM_WEIGHT=0.2 bash docs/train_bundled.sh 2d   # pssr-em-x4: 2-D, ssTEM and FIB-SEM (4-10 nm)
# The 2-D model's loss is L1-led (0.2 (1 - SSIM) + 0.8 L1: an SSIM-led loss cost about 0.4 dB
# of hold-out PSNR at equal budget, L1 alone most of the SSIM gain; benchmarks/compare_designs.sh).
# A run that was stopped continues from its checkpoint (--resume), to the same result.
set -euo pipefail
D=${PSSR_DATA:-../shared/data}
OUT=${OUT:-results/train}
which=${1:?iso or 2d}
common=(--noise-aware --crappifier mix --batch-size 16 --tile 192 --val-tiles 48
        --threads "${THREADS:-1}" --loss ssim --amp bf16 --no-progress)

train() {  # folder, then flags
  local out=$1; shift
  if [ -f "$out/checkpoint.json" ]; then
    pssr-volume train "$@" --out "$out" "${common[@]}" --resume
  else
    pssr-volume train "$@" --out "$out" "${common[@]}"
  fi
}

if [ "$which" = iso ]; then
  train "$OUT/pssr-em-x4-iso" "$D/flyem_medulla_fibsem_10nm/training_sample1.tif" \
    "$D/flyem_medulla_fibsem_10nm/training_sample2.tif" --name pssr-em-x4-iso \
    --architecture pssr-fast --in-slices 3 --steps 8000 --val-every 500 --lr 1e-3 --seed 1
else
  w=${SSIM_WEIGHT:-0.2}
  # WIDTH=64 (54 GFLOP per output Mpx, 2.5 M parameters) trains into ...-w$w-width64
  train "$OUT/pssr-em-x4-w$w${WIDTH:+-width$WIDTH}" "$D/drosophila_vnc_sstem_stack1/raw" \
    "$D/isbi2012_sstem/train-volume.tif" "$D/isbi2012_sstem/test-volume.tif" \
    "$D/flyem_medulla_fibsem_10nm/training_sample1.tif" \
    "$D/flyem_medulla_fibsem_10nm/training_sample2.tif" --name pssr-em-x4 \
    --architecture "${ARCH:-pssr-fast}" --steps "${STEPS:-30000}" --val-every 1000 \
    --ssim-weight "$w" --lr 1e-3 --seed 1 ${WIDTH:+--arch-arg "width=$WIDTH"}
fi
