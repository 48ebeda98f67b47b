#!/usr/bin/env bash
# Where the previous bundled 2-D model's hold-out PSNR gap on `pssr-em` came from (issue 9):
# short fine-tunes of that pssr-em-x4 (L1-led, one residual block per level; the file of
# commit 228777f, taken from git) that each change one thing, scored on the VNC validation sections
# (drosophila_vnc_sstem_stack1 sections 18-19: the training folder's own validation split,
# whole 1024 x 1024 sections through the engine, the hold-out's protocol). Never on hold-outs.
#
#   bash benchmarks/finetune_probes.sh results/probes          # about 1.2 h on 2 cores
#   bash benchmarks/finetune_probes.sh results/probes score    # the table only
#
# Probes (from that model, lr 3e-4 one-cycle, seed 2, the bundled run's other flags):
#   control     2000 steps, nothing changed (does more training alone help?)
#   sstem-only  2000 steps on the three ssTEM volumes only (is it the FIB-SEM share?)
#   w0.10       2000 steps, loss 0.10 (1 - SSIM) + 0.90 L1 (the PSNR / SSIM trade-off)
#   w0.05       2000 steps, loss 0.05 (1 - SSIM) + 0.95 L1
#   mse         2000 steps, loss MSE (what PSNR measures) instead of 0.2 (1 - SSIM) + 0.8 L1
#   deep-w0.05  4000 steps, twice the residual blocks (--arch-arg blocks=2, 56 GFLOP per
#               output Mpx; the new blocks start as the identity), loss as w0.05
#   deep-mse-w0.01, deep-mse-w0.02  3000 steps, twice the blocks, loss --loss mse-ssim:
#               w (1 - SSIM) + (1 - w) MSE
# Two probes run side by side, one thread each. A probe that finished is not run again.
set -euo pipefail
out=${1:-results/probes}
what=${2:-all}
D=${PSSR_DATA:-../shared/data}
sstem=("$D/drosophila_vnc_sstem_stack1/raw" "$D/isbi2012_sstem/train-volume.tif"
       "$D/isbi2012_sstem/test-volume.tif")
fib=("$D/flyem_medulla_fibsem_10nm/training_sample1.tif"
     "$D/flyem_medulla_fibsem_10nm/training_sample2.tif")
mkdir -p "$out"
base="$out/base-pssr-em-x4.safetensors"  # the model the probes start from
[ -f "$base" ] || git show 228777f:pssr_volume/models/pssr-em-x4.safetensors > "$base"
common=(--init "$base" --crappifier mix --batch-size 16 --tile 192 --lr 3e-4 --val-tiles 48
        --seed 2 --threads 1 --loss ssim --amp bf16 --no-progress --val-every 500)

probe() {  # name, then flags
  local name=$1; shift
  [ -f "$out/$name/model.safetensors" ] && return
  # flags after common: the probe's own win (click takes the last value)
  pssr-volume train "${common[@]}" "$@" --out "$out/$name" --name "$name" > "$out/$name.log" 2>&1
}

mkdir -p "$out/vnc-validation"
if [ "$what" = all ]; then
  { probe control "${sstem[@]}" "${fib[@]}" --steps 2000 --ssim-weight 0.2
    probe w0.10 "${sstem[@]}" "${fib[@]}" --steps 2000 --ssim-weight 0.1
    probe deep-mse-w0.01 "${sstem[@]}" "${fib[@]}" --steps 3000 --loss mse-ssim \
      --ssim-weight 0.01 --arch-arg blocks=2; } & a=$!
  { probe sstem-only "${sstem[@]}" --steps 2000 --ssim-weight 0.2
    probe w0.05 "${sstem[@]}" "${fib[@]}" --steps 2000 --ssim-weight 0.05
    probe mse "${sstem[@]}" "${fib[@]}" --steps 2000 --loss mse
    probe deep-w0.05 "${sstem[@]}" "${fib[@]}" --steps 4000 --ssim-weight 0.05 \
      --arch-arg blocks=2
    probe deep-mse-w0.02 "${sstem[@]}" "${fib[@]}" --steps 3000 --loss mse-ssim \
      --ssim-weight 0.02 --arch-arg blocks=2; } & b=$!
  wait "$a"
  wait "$b"
fi

# each model scored by its own evaluate call:
# a probe's validation-selected model (its model.safetensors), then its last step ("@final")
score() {  # label, model
  pssr-volume evaluate --hr "$D/drosophila_vnc_sstem_stack1/raw" --z 18:20 --preset pssr-em \
    --preset pssr2 --preset integrate-read --model "$2" --no-bm3d --no-montage \
    --out "$out/vnc-validation/$1" --overwrite > "$out/vnc-validation/$1.log"
}
score bundled "$base"
for name in control sstem-only w0.10 w0.05 mse deep-w0.05 deep-mse-w0.01 deep-mse-w0.02; do
  [ -f "$out/$name/model.safetensors" ] || continue
  score "$name" "$out/$name/model.safetensors"
  python benchmarks/checkpoint_model.py "$out/$name" "$out/$name-final.safetensors" > /dev/null
  score "$name@final" "$out/$name-final.safetensors"
done
python docs/make_probe_table.py "$out"
