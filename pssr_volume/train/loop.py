"""The training loop: :func:`train` builds the model, optimizer and data, runs the steps,
validates, and writes the best model, checkpoints and reports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from pssr_volume.config import ModelConfig
from pssr_volume.device import choose_device
from pssr_volume.errors import PssrError
from pssr_volume.model import save_model
from pssr_volume.nets.registry import build
from pssr_volume.precision import amp_dtype, autocast
from pssr_volume.train.checkpoint import STATE, State, load_checkpoint, save_checkpoint
from pssr_volume.train.data import (
    NORMALIZATION,
    Sampler,
    batches,
    open_sources,
    pixel_sizes,
    section_spacing,
    validation_set,
)
from pssr_volume.train.init import adopt, initial_model, load_initial_weights
from pssr_volume.train.losses import loss_fn
from pssr_volume.train.reports import write_reports
from pssr_volume.train.validation import (
    SELECTION,
    bicubic_tiles,
    predict_tiles,
    selection_score,
    val_scores,
)
from pssr_volume.train_config import TrainConfig


def train(cfg: TrainConfig, log: Callable[[str], None] = lambda s: None,
          progress: bool = True, resume: bool = False, stop_after: int | None = None) -> Path:
    """Train a model; returns the path of the best model.

    Writes into ``cfg.out``: ``model.safetensors`` (best mean validation PSNR),
    ``train.json`` (settings), ``metrics.csv``/``metrics.json``, ``training.png``, and a
    checkpoint (``checkpoint.safetensors`` + ``checkpoint.json``) at every validation.
    ``resume=True`` continues from the checkpoint; on CPU the result is identical to an
    uninterrupted run. ``stop_after`` ends the run after that step, with a checkpoint
    (for time-limited jobs, and tests). Mixed precision (``cfg.amp``): bf16 or fp16 on CUDA,
    bf16 on CPUs that compute it natively. ``cfg.init`` starts from a model's weights, with
    its architecture and inputs (:mod:`pssr_volume.train.init`).
    """
    device = choose_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not resume and (cfg.out / STATE).exists():
        raise PssrError(f"{cfg.out} holds a checkpoint of an earlier run; pass --resume to "
                        "continue it, or choose another --out")
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    amp = amp_dtype(cfg.amp, device)
    torch.manual_seed(cfg.seed)
    init = None
    if cfg.init is not None:
        init = initial_model(cfg.init)
        cfg = adopt(cfg, init[0])
    sources = open_sources(cfg.inputs, cfg.val_fraction, cfg.tile)
    model_cfg = ModelConfig(
        name=cfg.name, architecture=cfg.architecture, arch_args=cfg.arch_args, scale=cfg.scale,
        in_slices=cfg.in_slices, noise_input=cfg.noise_input, normalization=NORMALIZATION,
        pixel_size_nm=pixel_sizes(sources),
        section_spacing_nm=section_spacing(sources) if cfg.in_slices > 1 else None,
    )
    module = build(model_cfg)
    if init is not None:
        load_initial_weights(module, init[1])
    # channels-last: oneDNN's (and cuDNN's) fast convolution layout, ~10 % a step on CPU
    module = module.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.15)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    state = State()
    if resume:
        state = load_checkpoint(cfg.out, cfg, module, opt, sched, scaler)
        log(f"resuming at step {state.step} of {cfg.steps}")
    sampler = Sampler(sources, cfg)
    val = validation_set(sources, cfg)
    base_scores = {k: val_scores(bicubic_tiles(lr, cfg.scale, cfg.in_slices), hr)
                   for k, (lr, hr) in val.items()}
    base = {k: v["psnr"] for k, v in base_scores.items()}
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "train.json").write_text(cfg.model_dump_json(indent=2))
    t0 = time.perf_counter() - state.seconds
    bar = tqdm(total=cfg.steps, initial=state.step, desc="training", disable=not progress,
               unit="step")
    data = batches(sampler, state.step + 1, cfg.steps, cfg.workers, device.startswith("cuda"))
    for step, (lr_t, hr_t) in enumerate(data, start=state.step + 1):
        module.train()
        with autocast(device, amp):
            x = lr_t.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            pred = module(x)
        loss = loss_fn(cfg.loss, pred.float(), hr_t.to(device, non_blocking=True),
                       cfg.ssim_weight)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        value = loss.item()
        state.step = step
        state.losses.append(value)
        state.running = value if state.running is None else 0.95 * state.running + 0.05 * value
        bar.update(1)
        bar.set_postfix(loss=f"{state.running:.4f}")
        validate = step % cfg.val_every == 0 or step == cfg.steps
        if validate:
            module.eval()
            scores = {k: val_scores(predict_tiles(module, lr, device, amp=amp), hr)
                      for k, (lr, hr) in val.items()}
            state.seconds = time.perf_counter() - t0
            row = {"step": step, "seconds": round(state.seconds, 1),
                   "train_loss": round(state.running, 5),
                   **{f"val_{m}_{k}": round(v[m], 4) for k, v in scores.items()
                      for m in ("psnr", "ssim")},
                   **{f"bicubic_{m}_{k}": round(v[m], 4) for k, v in base_scores.items()
                      for m in ("psnr", "ssim")}}
            state.rows.append(row)
            log(json.dumps(row))
            score = selection_score(row)
            if score > state.best:
                state.best = score
                metrics = {"validation": row, "selected_by": SELECTION}
                final_cfg = model_cfg.model_copy(update={
                    "training": {**json.loads(cfg.model_dump_json()), "device": device},
                    "metrics": metrics,
                })
                save_model(cfg.out / "model.safetensors", module, final_cfg)
            write_reports(cfg.out, state, base)
        if validate or step == stop_after:
            state.seconds = time.perf_counter() - t0
            save_checkpoint(cfg.out, cfg, state, module, opt, sched, scaler)
        if step == stop_after:
            log(f"stopped after step {step}; continue with --resume")
            break
    bar.close()
    return cfg.out / "model.safetensors"
