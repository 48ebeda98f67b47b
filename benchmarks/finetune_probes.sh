#!/usr/bin/env bash
# Where the bundled 2-D model's hold-out PSNR gap on `pssr-em` comes from (issue 9): short
# fine-tunes of pssr-em-x4 that each change one thing, scored on the VNC validation sections
# (drosophila_vnc_sstem_stack1 sections 18-19: the training folder's own validation split,
# whole 1024 x 1024 sections through the engine, the hold-out's protocol). Never on hold-outs.
#
#   bash benchmarks/finetune_probes.sh results/probes          # about 1.5 h on 2 cores
#   bash benchmarks/finetune_probes.sh results/probes score    # the table only
#
# Probes (from the bundled model, lr 3e-4 one-cycle, seed 2, the bundled run's other flags):
#   control     2000 steps, nothing changed (does more training alone help?)
#   sstem-only  2000 steps on the three ssTEM volumes only (is it the FIB-SEM share?)
#   w0.10       2000 steps, loss 0.10 (1 - SSIM) + 0.90 L1 (the PSNR / SSIM trade-off)
#   w0.05       2000 steps, loss 0.05 (1 - SSIM) + 0.95 L1
#   deep-w0.10  4000 steps, twice the residual blocks (--arch-arg blocks=2, 56 GFLOP per
#   deep-w0.05  output Mpx; the new blocks start as the identity), losses as above
# Two probes run side by side, one thread each. A probe that finished is not run again.
set -euo pipefail
out=${1:-results/probes}
what=${2:-all}
D=${PSSR_DATA:-../shared/data}
sstem=("$D/drosophila_vnc_sstem_stack1/raw" "$D/isbi2012_sstem/train-volume.tif"
       "$D/isbi2012_sstem/test-volume.tif")
fib=("$D/flyem_medulla_fibsem_10nm/training_sample1.tif"
     "$D/flyem_medulla_fibsem_10nm/training_sample2.tif")
common=(--init pssr-em-x4 --crappifier mix --batch-size 16 --tile 192 --lr 3e-4 --val-tiles 48
        --seed 2 --threads 1 --loss ssim --amp bf16 --no-progress --val-every 500)

probe() {  # name, then flags
  local name=$1; shift
  [ -f "$out/$name/model.safetensors" ] && return
  pssr-volume train "$@" --out "$out/$name" --name "$name" "${common[@]}" > "$out/$name.log" 2>&1
}

if [ "$what" = all ]; then
  mkdir -p "$out"
  { probe control "${sstem[@]}" "${fib[@]}" --steps 2000 --ssim-weight 0.2
    probe w0.10 "${sstem[@]}" "${fib[@]}" --steps 2000 --ssim-weight 0.1
    probe deep-w0.10 "${sstem[@]}" "${fib[@]}" --steps 4000 --ssim-weight 0.1 \
      --arch-arg blocks=2; } & a=$!
  { probe sstem-only "${sstem[@]}" --steps 2000 --ssim-weight 0.2
    probe w0.05 "${sstem[@]}" "${fib[@]}" --steps 2000 --ssim-weight 0.05
    probe deep-w0.05 "${sstem[@]}" "${fib[@]}" --steps 4000 --ssim-weight 0.05 \
      --arch-arg blocks=2; } & b=$!
  wait "$a"
  wait "$b"
fi

models=(--model pssr-em-x4)
for name in control sstem-only w0.10 w0.05 deep-w0.10 deep-w0.05; do
  [ -f "$out/$name/model.safetensors" ] && models+=(--model "$out/$name/model.safetensors")
done
pssr-volume evaluate --hr "$D/drosophila_vnc_sstem_stack1/raw" --z 18:20 --preset pssr-em \
  --preset pssr2 --preset integrate-read "${models[@]}" --no-bm3d --no-montage \
  --out "$out/vnc-validation" --overwrite > "$out/vnc-validation.log"
python benchmarks/gain_table.py "$out/vnc-validation/results.json"
