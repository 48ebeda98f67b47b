"""Training: random high-resolution tiles, crappified on the fly, L1 loss, AdamW + one-cycle.

No Dask here. Inputs are any volumes :func:`~pssr_volume.io.inputs.open_input`
reads; each is normalised with the same global percentile range the engine
uses at inference. The last ``val_fraction`` of each volume (by z, or by y for
a single section) is held back for validation, with fixed tiles and fixed
degradations, so validation PSNR is comparable across steps.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pssr_volume.blocks import apply_read_plan, box_slices, padded_read_plan
from pssr_volume.config import ModelConfig, NormalizationConfig, TrainConfig
from pssr_volume.crappify import Pipeline, get_preset, random_pipeline
from pssr_volume.errors import PssrError
from pssr_volume.intensity import intensity_range, normalize, sample_volume
from pssr_volume.io.inputs import InputVolume, open_input
from pssr_volume.model import build, save_model

NORMALIZATION = NormalizationConfig(mode="percentile", low=0.1, high=99.9)


@dataclass(frozen=True)
class Source:
    """One training volume: its reader, intensity range and train/val split."""

    volume: InputVolume
    norm: tuple[float, float]
    train: tuple[tuple[int, int], ...]  # z range, y range usable for training
    val: tuple[tuple[int, int], ...]


def open_sources(paths: tuple[Path, ...], val_fraction: float, tile: int) -> list[Source]:
    """Open training volumes and split each into training and validation parts."""
    sources = []
    for p in paths:
        vol = open_input(p)
        z, y, x = vol.shape
        if min(y, x) < tile:
            raise PssrError(f"{p}: sections ({y}x{x}) are smaller than the tile ({tile})")
        norm = intensity_range(NORMALIZATION, sample_volume(vol.read, vol.shape))
        if z >= 10:
            cut = z - max(1, round(z * val_fraction))
            train, val = ((0, cut), (0, y)), ((cut, z), (0, y))
        else:
            cut = y - max(tile, round(y * val_fraction))
            train, val = ((0, z), (0, cut)), ((0, z), (cut, y))
        if train[1][1] - train[1][0] < tile:
            raise PssrError(f"{p}: too small to split off validation data with tile {tile}")
        sources.append(Source(vol, norm, train, val))
    return sources


def read_stack(src: Source, z: int, y: int, x: int, tile: int, k: int) -> np.ndarray:
    """``k`` adjacent sections centred on ``z`` (reflected at the volume ends),
    a ``tile``-square crop at (y, x), normalised and clipped to [0, 1]."""
    box = ((z - k // 2, z + k // 2 + 1), (y, y + tile), (x, x + tile))
    read, take = padded_read_plan(box, src.volume.shape)
    data = apply_read_plan(src.volume.read(box_slices(read)), take)
    return np.clip(normalize(data, *src.norm), 0.0, 1.0)


def make_pair(stack: np.ndarray, crappifier: Pipeline, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Degrade each section of ``stack`` independently; the target is the centre HR section."""
    lr = np.stack([crappifier(s, rng) for s in stack]).astype(np.float32)
    return lr, stack[len(stack) // 2][None].astype(np.float32)


def _dihedral(a: np.ndarray, t: int) -> np.ndarray:
    a = np.rot90(a, t % 4, axes=(-2, -1))
    return a[..., ::-1] if t >= 4 else a


class Sampler:
    """Random training pairs: tile position, content filter, degradation, dihedral
    augmentation and an intensity jitter applied to input and target alike."""

    def __init__(self, sources: list[Source], cfg: TrainConfig, rng: np.random.Generator):
        self.sources, self.cfg, self.rng = sources, cfg, rng
        sizes = np.array([np.prod([b - a for a, b in s.train]) for s in sources], float)
        self.p = sizes / sizes.sum()

    def crappifier(self) -> Pipeline:
        if self.cfg.crappifier == "mix":
            return random_pipeline(self.rng, self.cfg.scale)
        return get_preset(self.cfg.crappifier, self.cfg.scale)

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, rng = self.cfg, self.rng
        src = self.sources[rng.choice(len(self.sources), p=self.p)]
        (z0, z1), (y0, y1) = src.train
        x1 = src.volume.shape[2]
        for _ in range(10):  # content filter: skip nearly blank tiles
            z = int(rng.integers(z0, z1))
            y = int(rng.integers(y0, y1 - cfg.tile + 1))
            x = int(rng.integers(0, x1 - cfg.tile + 1))
            stack = read_stack(src, z, y, x, cfg.tile, cfg.in_slices)
            if stack.std() > 0.03:
                break
        stack = np.ascontiguousarray(_dihedral(stack, int(rng.integers(8))))
        lr, hr = make_pair(stack, self.crappifier(), rng)
        gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.1, 0.1)
        return lr * gain + offset, hr * gain + offset

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.pair() for _ in range(self.cfg.batch_size)]
        return (torch.from_numpy(np.stack([p[0] for p in pairs])),
                torch.from_numpy(np.stack([p[1] for p in pairs])))


def validation_set(sources: list[Source], cfg: TrainConfig, presets: tuple[str, ...] = (
        "pssr-em", "pssr2")) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Fixed validation pairs per preset, from the held-back part of each volume."""
    rng = np.random.default_rng(12345)
    stacks = []
    for i in range(cfg.val_tiles):
        src = sources[i % len(sources)]
        (z0, z1), (y0, y1) = src.val
        z = int(rng.integers(z0, z1))
        y = int(rng.integers(y0, max(y0 + 1, y1 - cfg.tile + 1)))
        x = int(rng.integers(0, src.volume.shape[2] - cfg.tile + 1))
        stacks.append(read_stack(src, z, y, x, cfg.tile, cfg.in_slices))
    out = {}
    for name in presets:
        crap = get_preset(name, cfg.scale)
        prng = np.random.default_rng(7)
        pairs = [make_pair(s, crap, prng) for s in stacks]
        out[name] = (torch.from_numpy(np.stack([p[0] for p in pairs])),
                     torch.from_numpy(np.stack([p[1] for p in pairs])))
    return out


@torch.inference_mode()
def psnr(module: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, device: str,
         batch: int = 8) -> float:
    """Mean PSNR (data range 1) of ``module`` on validation pairs."""
    values = []
    for i in range(0, len(lr), batch):
        pred = module(lr[i : i + batch].to(device)).float().cpu().clamp(0, 1)
        mse = ((pred - hr[i : i + batch]) ** 2).mean(dim=(1, 2, 3))
        values.extend((10 * torch.log10(1 / mse.clamp_min(1e-10))).tolist())
    return float(np.mean(values))


def bicubic_psnr(lr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """Validation PSNR of bicubic upsampling (the baseline to beat)."""
    c = lr.shape[1] // 2
    up = F.interpolate(lr[:, c : c + 1], scale_factor=scale, mode="bicubic", align_corners=False)
    mse = ((up.clamp(0, 1) - hr) ** 2).mean(dim=(1, 2, 3))
    return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())


def train(cfg: TrainConfig, log: Callable[[str], None] = lambda s: None,
          progress: bool = True) -> Path:
    """Train a model; write ``model.safetensors``, ``train.json`` and ``metrics.csv``
    into ``cfg.out``. Returns the model path."""
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sources = open_sources(cfg.inputs, cfg.val_fraction, cfg.tile)
    model_cfg = ModelConfig(
        name=cfg.name, architecture=cfg.architecture, arch_args=cfg.arch_args, scale=cfg.scale,
        in_slices=cfg.in_slices, normalization=NORMALIZATION,
    )
    module = build(model_cfg).to(device)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.15)
    sampler = Sampler(sources, cfg, rng)
    val = validation_set(sources, cfg)
    base = {k: bicubic_psnr(lr, hr, cfg.scale) for k, (lr, hr) in val.items()}
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "train.json").write_text(cfg.model_dump_json(indent=2))
    rows, best, t0 = [], -math.inf, time.perf_counter()
    running = None
    bar = tqdm(range(1, cfg.steps + 1), desc="training", disable=not progress, unit="step")
    for step in bar:
        module.train()
        lr_t, hr_t = sampler.batch()
        loss = F.l1_loss(module(lr_t.to(device)), hr_t.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            module.eval()
            scores = {k: psnr(module, lr, hr, device) for k, (lr, hr) in val.items()}
            row = {"step": step, "seconds": round(time.perf_counter() - t0, 1),
                   "train_l1": round(running, 5),
                   **{f"val_psnr_{k}": round(v, 3) for k, v in scores.items()},
                   **{f"bicubic_psnr_{k}": round(v, 3) for k, v in base.items()}}
            rows.append(row)
            log(json.dumps(row))
            mean = float(np.mean(list(scores.values())))
            if mean > best:
                best = mean
                metrics = {"validation": row, "selected_by": "mean validation PSNR"}
                final_cfg = model_cfg.model_copy(update={
                    "training": {**json.loads(cfg.model_dump_json()), "device": device},
                    "metrics": metrics,
                })
                save_model(cfg.out / "model.safetensors", module, final_cfg)
            with open(cfg.out / "metrics.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[-1]))
                w.writeheader()
                w.writerows(rows)
    return cfg.out / "model.safetensors"
