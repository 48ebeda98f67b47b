#!/usr/bin/env bash
# Self-supervised adaptation probe (issue 20 item 7): does fine-tuning a model on its own input,
# degraded once more, help on data the model never saw?
#
#   OUT=results/lodo bash docs/adapt_probe.sh       # after docs/lodo.sh (its left-out models)
#   python docs/make_lodo_table.py --adapt results/lodo
#
# For each left-out source and degradation of docs/lodo.sh: the evaluation sections are degraded
# once (`pssr-volume crappify`, seed 0): that low-resolution stack is all a lab would have. The
# model trained without the source is then fine-tuned on that stack alone, treated as
# high-resolution data and degraded again on the fly (`train LR --init MODEL --crappifier mix`:
# the lab does not know which degradation its data went through), and both models restore the
# same stack (`evaluate --hr HR --lr LR`). Ground truth is read only by `evaluate`, never by
# the fine-tune; it picks its checkpoint on tiles of the low-resolution stack itself.
set -euo pipefail
D=${PSSR_DATA:-../shared/data}
OUT=${OUT:-results/lodo}
STEPS=${STEPS:-300}
PV=${PV:-pssr-volume}
SOURCES=${SOURCES:-vnc fib sbem mussel}
PRESETS=${PRESETS:-pssr-em pssr2 integrate-read jpeg}
mkdir -p "$OUT/data"

declare -A hr=(
  [vnc]="$D/holdout_drosophila_vnc_sstem_stack2/raw"
  [fib]="$D/holdout_flyem_medulla_fibsem_10nm_validation/validation_sample_z196-323.tif"
  [sbem]="$D/sbem_cdeep3m_mito_testsample/testset_z081-085.tif"
  [mussel]="$OUT/data/mussel_sample3_crops.tif"
  [hela]="$OUT/data/hela_z146-154_crops.tif"  # made by docs/lodo.sh with HELA=DIR
)
declare -A z=([vnc]=0:10 [fib]=0:16 [sbem]=0:5 [mussel]=0:9 [hela]=0:5)

for left in $SOURCES; do
  base="$OUT/without-$left/model.safetensors"
  if [ "$left" = hela ]; then base="$OUT/all-sources/model.safetensors"; fi  # never trained on
  stack="$OUT/data/hr-$left.tif"
  if [ ! -f "$stack" ]; then  # the evaluated sections of the source, as one TIFF
    python - "${hr[$left]}" "${z[$left]}" "$stack" <<'EOF'
import sys
from pathlib import Path

from pssr_volume.io.inputs import open_input
from pssr_volume.io.tiff import write_tiff_stack

volume = open_input(sys.argv[1])
start, stop = (int(v) for v in sys.argv[2].split(":"))
data = volume.read((slice(start, stop), slice(None), slice(None)))
write_tiff_stack(Path(sys.argv[3]), iter(data), data.shape, str(data.dtype), volume.voxel_size)
EOF
  fi
  for preset in $PRESETS; do
    lr="$OUT/data/lr-$left-$preset.tif" run="$OUT/adapt-$left-$preset"
    [ -f "$lr" ] || $PV crappify "$stack" "$lr" --preset "$preset" --seed 0
    if [ ! -f "$run/model.safetensors" ]; then
      $PV train "$lr" --init "$base" --name "adapted-$left" \
        --crappifier mix --steps "$STEPS" --val-every "$STEPS" --val-tiles 8 --tile 128 \
        --batch-size 8 --lr 1e-4 --loss mse-ssim --ssim-weight 0.01 --amp bf16 \
        --threads "${THREADS:-1}" --seed 1 --no-progress --out "$run"
    fi
    $PV evaluate --hr "$stack" --lr "$lr" --model "$base" \
      --model "$run/model.safetensors" --no-bm3d --no-montage \
      --out "$OUT/eval-adapt-$left-$preset" --overwrite
  done
done
