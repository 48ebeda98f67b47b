#!/usr/bin/env bash
# Every number in docs/RESULTS.md, from nothing but the package and ../shared/data.
#
#   bash docs/results.sh                  # all stages below, in order (about 6 h on 2 cores)
#   STAGE=train bash docs/results.sh      # the bundled models' training runs (~3.6 h)
#   STAGE=compare bash docs/results.sh    # section 0: issue-9 designs at equal budget (~1.7 h)
#   STAGE=evaluate bash docs/results.sh   # section 1: the bundled models on both hold-outs (~15 min)
#   STAGE=segment bash docs/results.sh    # section 2: segmentation of the ssTEM hold-out (~2 min)
#
# Then:  python docs/make_results.py results > docs/RESULTS.md
# (section 3, headroom, is computed by make_results.py itself: docs/ceiling_probe.py, seconds;
# section 4 quotes the JSON files an earlier version of this script left in docs/results/.)
#
# Training and design choices read the training folders only; holdout_* folders are only ever
# given to `evaluate` and to the segmentation example.
set -euo pipefail
D=${PSSR_DATA:-../shared/data}
OUT=${OUT:-results}
STAGE=${STAGE:-all}
PV=${PV:-pssr-volume}
VNC=$D/holdout_drosophila_vnc_sstem_stack2/raw
FIB=$D/holdout_flyem_medulla_fibsem_10nm_validation/validation_sample_z196-323.tif
PRESETS=(--preset pssr-em --preset pssr2 --preset integrate-read)

if [[ $STAGE == all || $STAGE == train ]]; then
  # The two bundled models, one after the other (flags in docs/train_bundled.sh):
  # $OUT/train/pssr-em-x4-deep-mse-w0.01 (2-D, 30000 steps, two threads) and
  # $OUT/train/pssr-em-x4-iso (3 sections in, 8000 steps, one thread).
  # pssr_volume/bundled/<name>.safetensors is a run's validation-selected model.safetensors or
  # its final weights (benchmarks/checkpoint_model.py); RESULTS.md says which.
  OUT="$OUT/train" bash docs/train_bundled.sh 2d
  OUT="$OUT/train" bash docs/train_bundled.sh iso
fi

if [[ $STAGE == all || $STAGE == compare ]]; then
  # 0. Designs at equal budget (about 20 min of one core each), two queues side by side, then
  #    their hold-out scores for the record (designs are chosen on validation only). The
  #    BM3D + bicubic row of that table comes from the evaluation of section 1.
  #    (benchmarks/compare_designs.sh reads ../shared/data and calls pssr-volume on PATH.)
  bash benchmarks/compare_designs.sh "$OUT/issue9" a & pa=$!
  { bash benchmarks/compare_designs.sh "$OUT/issue9" b
    bash benchmarks/compare_designs.sh "$OUT/issue9" l1; } & pb=$!
  wait "$pa"
  wait "$pb"
  designs=()
  for m in fast-blind fast-noise fast-noise-l1 fast-pssr-em fast-pssr2 span-noise; do
    designs+=(--model "$OUT/issue9/$m/model.safetensors")
  done
  $PV evaluate --hr "$VNC" "${PRESETS[@]}" "${designs[@]}" --no-bm3d --no-montage \
    --out "$OUT/issue9/eval-vnc-all" --overwrite
fi

if [[ $STAGE == all || $STAGE == evaluate ]]; then
  # 1. The bundled models vs bilinear, bicubic, spline and BM3D + bicubic, restored through
  #    the engine (`run`'s code path), three degradations, FRC: the ssTEM hold-out (all 20
  #    sections, 2-D model) ~8 min, the FIB-SEM hold-out (sections 0-31, both models) ~5 min.
  $PV evaluate --hr "$VNC" "${PRESETS[@]}" --model pssr-em-x4 --out "$OUT/vnc" --overwrite
  $PV evaluate --hr "$FIB" --z 0:32 "${PRESETS[@]}" --model pssr-em-x4-iso --model pssr-em-x4 \
    --out "$OUT/fib" --overwrite
fi

if [[ $STAGE == all || $STAGE == segment ]]; then
  # 2. Membrane + watershed segmentation of the restored ssTEM hold-out vs of its bicubic
  #    upsampling, both against the segmentation of the real 4.6 nm sections (all 20).
  python examples/restore_and_segment.py --hr "$VNC" --sections 20 --side 1024 \
    --model pssr-em-x4 --json "$OUT/segment-vnc.json"
fi
