#!/usr/bin/env bash
# Leave-one-dataset-out (issue 20): for each source dataset, a model trained without it and
# scored on it, next to the bundled model and the baselines, under the three degradations of
# docs/RESULTS.md section 1 plus JPEG-compressed input. It shows whether the gain carries to
# data of a kind the network never saw.
#
#   bash docs/lodo.sh               # train the four left-out models, then evaluate (~2 h, 2 cores)
#   STAGE=train bash docs/lodo.sh   # four runs at equal budget, one after the other
#   STAGE=evaluate bash docs/lodo.sh
#   python docs/make_lodo_table.py results/lodo     # the Markdown table of RESULTS.md
#   HELA=DIR STAGE=evaluate bash docs/lodo.sh       # also the HeLa SBEM sections (DIR: fetched by
#                                                   # docs/fetch_training_data.py)
#
# A fifth run, "all", trains on every source at the same budget: the difference between it and
# the left-out model on a source is what leaving that source out costs.
#
# Each left-out model is the broad recipe (docs/train_bundled.sh broad: noise-aware pssr-fast,
# two residual blocks per level, `mix` with legacy-data degradations, loss 0.01 (1 - SSIM) +
# 0.99 MSE) trained from scratch at an equal budget (STEPS, default 2000: about 20 minutes of one
# core here) on every training source but one. "Dataset" means a source: the two Drosophila
# larval VNC ssTEM sets (Gerhard et al. stack 1 and ISBI 2012) are one source, as they share
# the tissue, the microscope and the preparation. Evaluation data: the hold-outs where the
# source has one; the SBEM run's test file (z 81-85, a z-run no training ever reads); the
# mussel SEM tiles of sample 3 (central 1024 px crops, stacked by this script into a TIFF:
# evaluate reads volumes, and the tiles are 2-D sections of one slide).
# A stopped run continues from its checkpoint (--resume). LEFT="vnc fib" trains only those
# (and "all" the all-sources run).
set -euo pipefail
D=${PSSR_DATA:-../shared/data}
OUT=${OUT:-results/lodo}
STAGE=${STAGE:-all}
STEPS=${STEPS:-2000}
PV=${PV:-pssr-volume}
M="$D/mussel_tissue_sem_tiles_vemstitch"
VNC=("$D/drosophila_vnc_sstem_stack1/raw" "$D/isbi2012_sstem/train-volume.tif"
     "$D/isbi2012_sstem/test-volume.tif")
FIB=("$D/flyem_medulla_fibsem_10nm/training_sample1.tif"
     "$D/flyem_medulla_fibsem_10nm/training_sample2.tif")
SBEM=("$D/sbem_cdeep3m_mito_testsample/training_z010-029.tif")
MUSSEL=("$M"/sample_2/*.png "$M"/sample_3/*.png)
PRESETS=(--preset pssr-em --preset pssr2 --preset integrate-read --preset jpeg)

inputs_without() {  # the training inputs of every source but $1
  local s
  for s in vnc fib sbem mussel; do
    [ "$s" = "$1" ] && continue
    case $s in
      vnc) printf '%s\n' "${VNC[@]}" ;; fib) printf '%s\n' "${FIB[@]}" ;;
      sbem) printf '%s\n' "${SBEM[@]}" ;; mussel) printf '%s\n' "${MUSSEL[@]}" ;;
    esac
  done
}

if [[ $STAGE == all || $STAGE == train ]]; then
  for left in ${LEFT:-all sbem mussel vnc fib}; do
    name="pssr-em-x4-without-$left" run="$OUT/without-$left"
    if [ "$left" = all ]; then name="pssr-em-x4-all-sources" run="$OUT/all-sources"; fi
    mapfile -t inputs < <(inputs_without "$left")
    flags=(--name "$name" --architecture pssr-fast --arch-arg blocks=2
           --noise-aware --crappifier mix --batch-size 16 --tile 192 --val-tiles 48 --amp bf16
           --no-progress --steps "$STEPS" --val-every "${VAL_EVERY:-500}" --threads "${THREADS:-1}"
           --loss mse-ssim --ssim-weight 0.01 --lr 1e-3 --seed 1 --out "$run")
    if [ -f "$run/checkpoint.json" ]; then flags+=(--resume); fi
    $PV train "${inputs[@]}" "${flags[@]}"
  done
fi

if [[ $STAGE == all || $STAGE == evaluate ]]; then
  mkdir -p "$OUT/data"
  mussel="$OUT/data/mussel_sample3_crops.tif"
  if [ ! -f "$mussel" ]; then  # the nine tiles of sample 3, central 1024 x 1024 crops
    python - "$mussel" "$M"/sample_3/*.png <<'EOF'
import sys

import numpy as np
import tifffile
from PIL import Image

crops = []
for name in sys.argv[2:]:
    tile = np.asarray(Image.open(name).convert("L"))
    y, x = (tile.shape[0] - 1024) // 2, (tile.shape[1] - 1024) // 2
    crops.append(tile[y : y + 1024, x : x + 1024])
tifffile.imwrite(sys.argv[1], np.stack(crops), photometric="minisblack")
EOF
  fi
  declare -A hr=(
    [vnc]="$D/holdout_drosophila_vnc_sstem_stack2/raw"
    [fib]="$D/holdout_flyem_medulla_fibsem_10nm_validation/validation_sample_z196-323.tif"
    [sbem]="$D/sbem_cdeep3m_mito_testsample/testset_z081-085.tif"
    [mussel]="$mussel"
  )
  declare -A z=([vnc]=0:10 [fib]=0:16 [sbem]=0:5 [mussel]=0:9)
  # HeLa SBEM (docs/training_data/hela_sbem_empiar10094.json, fetched into $HELA): no model of
  # this script trains on it, so the all-sources model is its left-out model. Its evaluation
  # sections (z 146-154, central 1024 px) are never trained on by any recipe.
  if [ -n "${HELA:-}" ]; then
    hr[hela]="$OUT/data/hela_z146-154_crops.tif" z[hela]=0:5
    if [ ! -f "${hr[hela]}" ]; then
      python - "${hr[hela]}" "$HELA"/ROI_6005_4739_81_z01[45]*.tif <<'EOF2'
import sys
from pathlib import Path

import numpy as np
import tifffile

from pssr_volume.io.tiff import write_tiff_stack

crops = []
for name in sys.argv[2:]:
    section = tifffile.imread(name)
    y, x = (section.shape[0] - 1024) // 2, (section.shape[1] - 1024) // 2
    crops.append(section[y : y + 1024, x : x + 1024])
stack = np.stack(crops)
write_tiff_stack(Path(sys.argv[1]), iter(stack), stack.shape, str(stack.dtype), (50.0, 10.0, 10.0))
EOF2
    fi
    $PV evaluate --hr "${hr[hela]}" --z "${z[hela]}" "${PRESETS[@]}" \
      --model "$OUT/all-sources/model.safetensors" --model pssr-em-x4 --no-bm3d --no-montage \
      --out "$OUT/eval-hela" --overwrite
  fi
  for left in vnc fib sbem mussel; do
    [ -f "$OUT/eval-$left/results.json" ] && [ -n "${SKIP_DONE:-}" ] && continue
    $PV evaluate --hr "${hr[$left]}" --z "${z[$left]}" "${PRESETS[@]}" \
      --model "$OUT/without-$left/model.safetensors" --model "$OUT/all-sources/model.safetensors" \
      --model pssr-em-x4 --no-bm3d --no-montage \
      --out "$OUT/eval-$left" --overwrite
  done
fi
