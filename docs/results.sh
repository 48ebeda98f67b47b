#!/usr/bin/env bash
# Every number in docs/RESULTS.md, from nothing but the package and ../shared/data.
#
#   bash docs/results.sh            # all of it: ~2.5 h on a 2-core CPU
#   STAGE=evaluate bash docs/results.sh   # only step 1 (the bundled model on the hold-outs)
#
# Then:  python docs/make_results.py results > docs/RESULTS.md
#
# Training reads the training folders only; holdout_* folders are only ever given to `evaluate`.
set -euo pipefail
D=${PSSR_DATA:-../shared/data}
OUT=${OUT:-results}
STAGE=${STAGE:-all}
PV=${PV:-pssr-volume}
VNC=$D/holdout_drosophila_vnc_sstem_stack2/raw
FIB=$D/holdout_flyem_medulla_fibsem_10nm_validation/validation_sample_z196-323.tif
TRAIN=(
  "$D/drosophila_vnc_sstem_stack1/raw"
  "$D/isbi2012_sstem/train-volume.tif" "$D/isbi2012_sstem/test-volume.tif"
  "$D/flyem_medulla_fibsem_10nm/training_sample1.tif"
  "$D/flyem_medulla_fibsem_10nm/training_sample2.tif"
)

if [[ $STAGE == all || $STAGE == bundled ]]; then
  # 0. The bundled model (pssr_volume/models/pssr-em-x4.safetensors) was trained with:
  $PV train "${TRAIN[@]}" --out "$OUT/train/bundled" --name pssr-em-x4 --arch-arg width=48 \
    --crappifier mix --steps 7000 --batch-size 16 --tile 192 --lr 1e-3 --val-every 500 \
    --val-tiles 48 --seed 1 --threads 2 --loss ssim --no-progress
fi

if [[ $STAGE == all || $STAGE == evaluate ]]; then
  # 1. The bundled model vs bilinear vs bicubic, restored through the engine (`run`).
  $PV evaluate --hr "$VNC" --preset pssr-em --preset pssr2 --out "$OUT/vnc" --overwrite
  $PV evaluate --hr "$FIB" --z 0:32 --preset pssr-em --preset pssr2 --out "$OUT/fib" --overwrite
fi

if [[ $STAGE == all || $STAGE == compare ]]; then
  # 2. Equal training budget (same data, loss, batch 8 of 128 px tiles, seed, 2 CPU threads):
  #    about 7 minutes each. pssr-resunet takes ~17x longer per step than pssr-fast here.
  common=(--crappifier mix --batch-size 8 --tile 128 --lr 1e-3 --val-tiles 32 --seed 2
          --threads 2 --loss ssim --no-progress)
  $PV train "${TRAIN[@]}" --out "$OUT/train/fast-2d" --name fast-2d \
    --steps 3000 --val-every 1000 "${common[@]}"
  $PV train "${TRAIN[@]}" --out "$OUT/train/resunet-2d" --name resunet-2d \
    --architecture pssr-resunet --steps 160 --val-every 80 "${common[@]}"
  $PV train "${TRAIN[@]}" --out "$OUT/train/fast-2d-160" --name fast-2d-160steps \
    --steps 160 --val-every 80 "${common[@]}"
  $PV train "${TRAIN[@]}" --out "$OUT/train/fast-25d" --name fast-2.5d --in-slices 3 \
    --steps 3000 --val-every 1000 "${common[@]}"
  # ...scored on hold-out crops through the engine (FIB-SEM is isotropic: z-consistency).
  models=(--model "$OUT/train/fast-2d/model.safetensors"
          --model "$OUT/train/resunet-2d/model.safetensors"
          --model "$OUT/train/fast-2d-160/model.safetensors"
          --model "$OUT/train/fast-25d/model.safetensors")
  $PV evaluate --hr "$VNC" --z 0:6 --crop 512,512 "${models[@]}" --out "$OUT/compare-vnc" \
    --overwrite --no-montage
  $PV evaluate --hr "$FIB" --z 0:16 --crop 512,512 "${models[@]}" --out "$OUT/compare-fib" \
    --overwrite --no-montage
fi
