"""Training data: the training volumes and their train/validation split, the sampler that
makes random crappified training pairs on the fly, and the fixed validation pairs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import imagecodecs
import numpy as np
import torch

from pssr_volume.blocks import apply_read_plan, box_slices, padded_read_plan
from pssr_volume.config import NormalizationConfig
from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.presets import (
    archive_pipeline,
    get_preset,
    pssr_pipeline,
    random_pipeline,
)
from pssr_volume.errors import PssrError
from pssr_volume.intensity import intensity_range, normalize, sample_volume
from pssr_volume.io.inputs import InputVolume, open_input
from pssr_volume.noise import estimate_noise, network_input
from pssr_volume.train_config import TrainConfig

NORMALIZATION = NormalizationConfig(mode="percentile", low=0.1, high=99.9)
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg")
"""2-D image files a training input may also be (each one section; the volume readers of
:func:`~pssr_volume.io.inputs.open_input` take the rest)."""
MIXES = {"mix": random_pipeline, "mix-pssr": pssr_pipeline, "mix-archive": archive_pipeline}
"""Random training degradations by ``--crappifier`` name: ``mix`` (with the legacy-data
degradations), ``mix-pssr`` (the PSSR/PSSR2-style mix alone: what ``mix`` was when the
earlier bundled models were trained, so their recipes still reproduce them) and
``mix-archive`` (more legacy data, more of it stored without noise: JPEG or 8-bit archives of
clean acquisitions)."""


@dataclass(frozen=True)
class ImageFile:
    """A 2-D image file (PNG, BMP, JPEG) as a one-section volume, decoded once when opened.

    It has what training reads of an :class:`~pssr_volume.io.volume.InputVolume`: ``path``,
    ``shape`` (1, y, x), ``dtype``, ``voxel_size`` (None: image files state none) and
    :meth:`read`.
    """

    path: str
    data: np.ndarray
    voxel_size: None = None

    @classmethod
    def open(cls, path: Path) -> ImageFile:
        try:
            data = np.asarray(imagecodecs.imread(str(path)))
        except Exception as exc:
            raise PssrError(f"Could not read the image {path}: {exc}") from None
        if data.ndim != 2:
            raise PssrError(f"{path}: expected a greyscale image, got shape {data.shape}")
        return cls(str(path.resolve()), data[None])

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.data.shape
        return z, y, x

    @property
    def dtype(self) -> str:
        return self.data.dtype.name

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        return np.ascontiguousarray(self.data[region])


def open_training_input(path: Path) -> InputVolume | ImageFile:
    """A training input: a 2-D image file (:data:`IMAGE_SUFFIXES`) or any input volume."""
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return ImageFile.open(Path(path))
    return open_input(path)


@dataclass(frozen=True)
class Source:
    """One training volume: its reader, intensity range and train/val split."""

    volume: InputVolume | ImageFile
    norm: tuple[float, float]
    train: tuple[tuple[int, int], ...]  # z range, y range usable for training
    val: tuple[tuple[int, int], ...]


def open_sources(paths: tuple[Path, ...], val_fraction: float, tile: int) -> list[Source]:
    """Open training volumes and split each into training and validation parts."""
    sources = []
    for p in paths:
        vol = open_training_input(p)
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


def pixel_sizes(sources: list[Source]) -> tuple[float, float] | None:
    """Smallest and largest y/x pixel size (nm) of the training volumes that state one."""
    sizes = [v for s in sources if s.volume.voxel_size for v in s.volume.voxel_size[1:]]
    return (min(sizes), max(sizes)) if sizes else None


def section_spacing(sources: list[Source]) -> float | None:
    """The largest z step (nm) of the training volumes that state one: what a
    multi-section model's neighbouring sections were apart while it learnt."""
    steps = [s.volume.voxel_size[0] for s in sources if s.volume.voxel_size]
    return max(steps) if steps else None


def read_stack(src: Source, z: int, y: int, x: int, tile: int, k: int) -> np.ndarray:
    """``k`` adjacent sections centred on ``z`` (reflected at the volume ends),
    a ``tile``-square crop at (y, x), normalised and clipped to [0, 1]."""
    box = ((z - k // 2, z + k // 2 + 1), (y, y + tile), (x, x + tile))
    read, take = padded_read_plan(box, src.volume.shape)
    region = cast(tuple[slice, slice, slice], box_slices(read))
    data = apply_read_plan(src.volume.read(region), take)
    return np.clip(normalize(data, *src.norm), 0.0, 1.0)


def make_pair(stack: np.ndarray, crappifier: Pipeline, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Degrade each section of ``stack`` independently; the target is the centre HR section,
    with the crappifier's leading tone steps (contrast processing, shading) applied
    (:meth:`~pssr_volume.crappify.pipeline.Pipeline.target`)."""
    lr = np.stack([crappifier(s, rng) for s in stack]).astype(np.float32)
    return lr, crappifier.target(stack[len(stack) // 2])[None].astype(np.float32)


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
        if self.cfg.crappifier in MIXES:
            return MIXES[self.cfg.crappifier](rng, self.cfg.scale)
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
        lr, hr = lr * gain + offset, hr * gain + offset
        if cfg.noise_input:  # the network is told the noise it sees, estimated as at inference
            lr = network_input(lr[None], estimate_noise(lr))[0]
        return lr, hr

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
        "pssr-em", "pssr2", "integrate-read")) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Fixed validation pairs per preset, from the held-back part of each volume: network
    inputs (with the noise channel of a noise-aware model) and targets."""
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
        lr = np.stack([p[0] for p in pairs])
        if cfg.noise_input:
            lr = network_input(lr, [estimate_noise(t) for t in lr])
        out[name] = (torch.from_numpy(lr), torch.from_numpy(np.stack([p[1] for p in pairs])))
    return out
