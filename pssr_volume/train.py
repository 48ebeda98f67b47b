"""Training: random high-resolution tiles, crappified on the fly, L1 loss, AdamW + one-cycle.

No Dask here. Inputs are any volumes :func:`~pssr_volume.io.inputs.open_input`
reads; each is normalised with the same global percentile range the engine
uses at inference. The last ``val_fraction`` of each volume (by z, or by y for
a single section) is held back for validation, with fixed tiles and fixed
degradations, so validation PSNR is comparable across steps.

Batch ``k`` depends only on ``(seed, k)``, so batches can be made ahead in worker
processes (``workers``) and a resumed run sees the same data. On CUDA the forward pass
runs under autocast (``amp``: bf16 where supported, else fp16 with loss scaling). At
every validation the run writes a checkpoint (safetensors + JSON, no pickle), the
metrics (CSV and JSON) and a plot (``training.png``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from pssr_volume.blocks import apply_read_plan, box_slices, padded_read_plan
from pssr_volume.config import ModelConfig, NormalizationConfig, TrainConfig
from pssr_volume.crappify.steps import Pipeline, get_preset, random_pipeline
from pssr_volume.device import choose_device
from pssr_volume.errors import PssrError
from pssr_volume.intensity import intensity_range, normalize, sample_volume
from pssr_volume.io.inputs import InputVolume, open_input
from pssr_volume.metrics import care_normalize
from pssr_volume.metrics import psnr as psnr_metric
from pssr_volume.metrics import ssim as ssim_metric
from pssr_volume.model import save_model
from pssr_volume.nets.registry import build

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
    augmentation and an intensity jitter applied to input and target alike.

    Batch ``step`` is drawn from its own generator, ``default_rng([seed, step])``, so a
    batch depends only on the seed and the step: batches can be made ahead in worker
    processes, and a resumed run sees exactly the batches an uninterrupted run would.
    """

    def __init__(self, sources: list[Source], cfg: TrainConfig):
        self.sources, self.cfg = sources, cfg
        sizes = np.array([np.prod([b - a for a, b in s.train]) for s in sources], float)
        self.p = sizes / sizes.sum()

    def crappifier(self, rng: np.random.Generator) -> Pipeline:
        if self.cfg.crappifier == "mix":
            return random_pipeline(rng, self.cfg.scale)
        return get_preset(self.cfg.crappifier, self.cfg.scale)

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
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
        lr, hr = make_pair(stack, self.crappifier(rng), rng)
        gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.1, 0.1)
        return lr * gain + offset, hr * gain + offset

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of ``step`` (1-based): ``(lr, hr)`` float32 tensors."""
        rng = np.random.default_rng([self.cfg.seed, step])
        pairs = [self.pair(rng) for _ in range(self.cfg.batch_size)]
        return (torch.from_numpy(np.stack([p[0] for p in pairs])),
                torch.from_numpy(np.stack([p[1] for p in pairs])))


class _Batches(torch.utils.data.Dataset):
    """Batches by step number, for a DataLoader that makes them ahead in workers."""

    def __init__(self, sampler: Sampler, steps: range):
        self.sampler, self.steps = sampler, steps

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sampler.batch(self.steps[i])


def batches(sampler: Sampler, first: int, last: int, workers: int, pin: bool = False
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches of steps ``first..last`` in order; made in ``workers`` processes
    (0: in this one). The batches are the same either way."""
    steps = range(first, last + 1)
    if workers == 0:
        return (sampler.batch(s) for s in steps)
    loader = torch.utils.data.DataLoader(
        _Batches(sampler, steps), batch_size=None, shuffle=False, num_workers=workers,
        prefetch_factor=4, pin_memory=pin, persistent_workers=False)
    return iter(loader)


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
def predict_tiles(module: torch.nn.Module, lr: torch.Tensor, device: str, batch: int = 8,
                  amp: torch.dtype | None = None) -> np.ndarray:
    """``module`` on validation inputs: (n, H, W) float32 numpy."""
    out = []
    for i in range(0, len(lr), batch):
        with _autocast(device, amp):
            pred = module(lr[i : i + batch].to(device))
        out.append(pred.float().cpu()[:, 0].numpy())
    return np.concatenate(out)


def bicubic_tiles(lr: torch.Tensor, scale: int) -> np.ndarray:
    """Bicubic (Keys, a = -0.75) upsampling of the centre sections: the baseline to beat."""
    c = lr.shape[1] // 2
    up = F.interpolate(lr[:, c : c + 1], scale_factor=scale, mode="bicubic", align_corners=False)
    return up[:, 0].numpy()


def val_scores(pred: np.ndarray, hr: torch.Tensor) -> dict[str, float]:
    """Mean CARE-normalised PSNR and SSIM (the evaluation protocol) over validation tiles."""
    ps, ss = [], []
    for p, g in zip(pred, hr[:, 0].numpy()):
        q, t = care_normalize(p, g)
        ps.append(min(psnr_metric(q, t, 1.0), 100.0))
        ss.append(ssim_metric(q, t, 1.0))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}


SELECTION = ("mean over presets of (PSNR gain over bicubic / 1.5 dB + SSIM gain over "
             "bicubic / 0.05), CARE-normalised, on the validation tiles")


def selection_score(row: dict[str, Any]) -> float:
    """How a validation row ranks checkpoints (see :data:`SELECTION`)."""
    presets = [k.removeprefix("val_psnr_") for k in row if k.startswith("val_psnr_")]
    return float(np.mean([
        (row[f"val_psnr_{p}"] - row[f"bicubic_psnr_{p}"]) / 1.5
        + (row[f"val_ssim_{p}"] - row[f"bicubic_ssim_{p}"]) / 0.05 for p in presets]))


def ssim_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win: int = 7
               ) -> torch.Tensor:
    """Mean SSIM of (N, 1, H, W) images, differentiable: the definition of skimage's
    ``structural_similarity`` defaults (7 x 7 uniform window, sample covariance, K1 = 0.01,
    K2 = 0.03, borders cropped), i.e. what :func:`pssr_volume.metrics.ssim` reports."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = win * win
    cov = n / (n - 1)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean()


def loss_fn(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Training loss: ``l1``, ``mse``, or ``ssim`` = 0.8 (1 - SSIM) + 0.2 L1 (the PSSR2
    mix, with the evaluation's SSIM window)."""
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "ssim":
        return 0.8 * (1 - ssim_torch(pred, target)) + 0.2 * F.l1_loss(pred, target)
    return F.l1_loss(pred, target)


def amp_dtype(setting: str, device: str) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device``: never on CPU; ``auto`` is bf16
    where the GPU supports it, else fp16."""
    if not device.startswith("cuda") or setting == "off":
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def _autocast(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


# ----------------------------------------------------------------------------- checkpoints

CHECKPOINT = "checkpoint.safetensors"
STATE = "checkpoint.json"
RESUME_MAY_DIFFER = ("device", "threads", "workers")


@dataclass
class State:
    """Everything besides tensors that a resumed run needs (saved as JSON)."""

    step: int = 0
    best: float = -math.inf
    running: float | None = None
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def save_checkpoint(out: Path, cfg: TrainConfig, state: State, module: torch.nn.Module,
                    opt: torch.optim.Optimizer, sched: Any, scaler: Any) -> None:
    """Write ``checkpoint.safetensors`` (weights, optimizer moments, torch RNG) and
    ``checkpoint.json`` (step, schedules, metrics so far). No pickle anywhere; each file
    is replaced atomically, the JSON last (it names the step the tensors belong to)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in module.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, entry in opt_state["state"].items():
        for key, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {key!r} is not a tensor")
            tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, r in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = r
    tmp = out / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(state.step)})
    os.replace(tmp, out / CHECKPOINT)
    doc = {
        "format": 1, "step": state.step, "config": json.loads(cfg.model_dump_json()),
        "state": asdict(state), "optimizer_param_groups": opt_state["param_groups"],
        "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
    }
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, out / STATE)


def load_checkpoint(out: Path, cfg: TrainConfig, module: torch.nn.Module,
                    opt: torch.optim.Optimizer, sched: Any, scaler: Any) -> State:
    """Restore a run from :func:`save_checkpoint`'s files (``weights_only`` semantics:
    safetensors and JSON only). Settings that change the result must be unchanged."""
    if not (out / STATE).is_file() or not (out / CHECKPOINT).is_file():
        raise PssrError(f"--resume: no checkpoint in {out}")
    doc = json.loads((out / STATE).read_text())
    saved, now = doc["config"], json.loads(cfg.model_dump_json())
    diff = [k for k in sorted(set(saved) | set(now))
            if k not in RESUME_MAY_DIFFER and saved.get(k) != now.get(k)]
    if diff:
        k = diff[0]
        raise PssrError(f"--resume with different settings: {k} was {saved.get(k)!r}, "
                        f"now {now.get(k)!r}")
    tensors = load_file(str(out / CHECKPOINT))
    with safe_open(str(out / CHECKPOINT), "pt") as f:
        step = int((f.metadata() or {}).get("step", -1))
    if tensors.get("rng.torch") is None or int(doc["step"]) != step:
        raise PssrError(f"--resume: {out / CHECKPOINT} (step {step}) does not match "
                        f"{out / STATE} (step {doc['step']})")
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[str, Any] = {"state": {}, "param_groups": doc["optimizer_param_groups"]}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            opt_state["state"].setdefault(int(idx), {})[key] = v
    opt.load_state_dict(opt_state)
    sched.load_state_dict(doc["scheduler"])
    scaler.load_state_dict(doc["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count())
            if f"rng.cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return State(**doc["state"])


# ----------------------------------------------------------------------------- reports


def write_reports(out: Path, state: State, base: dict[str, float]) -> None:
    """``metrics.csv``, ``metrics.json`` and the ``training.png`` plot of the run so far."""
    if state.rows:
        with open(out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(state.rows[-1]))
            w.writeheader()
            w.writerows(state.rows)
    best = max(state.rows, key=selection_score, default=None)
    (out / "metrics.json").write_text(json.dumps({
        "validation": state.rows, "bicubic_psnr": base, "best": best,
        "selected_by": SELECTION, "train_loss_per_step": state.losses,
    }, indent=1))
    plot_training(out / "training.png", state, base)


def plot_training(path: Path, state: State, base: dict[str, float]) -> None:
    """Training loss (per step and smoothed) and validation PSNR per preset, vs step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    if state.losses:
        steps = np.arange(1, len(state.losses) + 1)
        ax1.plot(steps, state.losses, color="0.75", lw=0.5, label="loss per step")
        k = max(1, len(state.losses) // 50)
        smooth = np.convolve(state.losses, np.ones(k) / k, mode="valid")
        ax1.plot(steps[k - 1 :], smooth, color="C0", label=f"mean of {k}")
        ax1.set_yscale("log")
    ax1.set_ylabel("training loss")
    ax1.legend(loc="upper right")
    rows = state.rows
    for i, name in enumerate(base):
        if rows:
            ax2.plot([r["step"] for r in rows], [r[f"val_psnr_{name}"] for r in rows],
                     "o-", color=f"C{i}", label=f"model, {name}")
        ax2.axhline(base[name], color=f"C{i}", ls="--", lw=1, label=f"bicubic, {name}")
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation PSNR (dB, CARE-normalised)")
    ax2.legend(loc="lower right", fontsize="small")
    fig.savefig(path, dpi=100)


# ----------------------------------------------------------------------------- training


def train(cfg: TrainConfig, log: Callable[[str], None] = lambda s: None,
          progress: bool = True, resume: bool = False, stop_after: int | None = None) -> Path:
    """Train a model; returns the path of the best model.

    Writes into ``cfg.out``: ``model.safetensors`` (best mean validation PSNR),
    ``train.json`` (settings), ``metrics.csv``/``metrics.json``, ``training.png``, and a
    checkpoint (``checkpoint.safetensors`` + ``checkpoint.json``) at every validation.
    ``resume=True`` continues from the checkpoint; on CPU the result is identical to an
    uninterrupted run. ``stop_after`` ends the run after that step, with a checkpoint
    (for time-limited jobs, and tests). Mixed precision (``cfg.amp``) is used on CUDA only.
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
    sources = open_sources(cfg.inputs, cfg.val_fraction, cfg.tile)
    model_cfg = ModelConfig(
        name=cfg.name, architecture=cfg.architecture, arch_args=cfg.arch_args, scale=cfg.scale,
        in_slices=cfg.in_slices, normalization=NORMALIZATION,
    )
    module = build(model_cfg).to(device)
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
    base_scores = {k: val_scores(bicubic_tiles(lr, cfg.scale), hr) for k, (lr, hr) in val.items()}
    base = {k: v["psnr"] for k, v in base_scores.items()}
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "train.json").write_text(cfg.model_dump_json(indent=2))
    t0 = time.perf_counter() - state.seconds
    bar = tqdm(total=cfg.steps, initial=state.step, desc="training", disable=not progress,
               unit="step")
    data = batches(sampler, state.step + 1, cfg.steps, cfg.workers, device.startswith("cuda"))
    for step, (lr_t, hr_t) in enumerate(data, start=state.step + 1):
        module.train()
        with _autocast(device, amp):
            pred = module(lr_t.to(device, non_blocking=True))
        loss = loss_fn(cfg.loss, pred.float(), hr_t.to(device, non_blocking=True))
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
