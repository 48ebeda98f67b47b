"""The test tensors and the cover image of a bioimage.io package, made by pssr_volume's own
inference.

The test input is a tile of adjacent sections of the demo volume; its restoration comes from
the same functions a ``run`` of that tile uses: the intensity range from the model's
normalisation over :func:`~pssr_volume.intensity.sample_volume`, the noise model from
:func:`~pssr_volume.noise.estimate_volume_noise`, the network input from
:func:`~pssr_volume.noise.network_input`, the network through
:class:`~pssr_volume.predict.Predictor`, in float32 (the package's weights are float32, and
``bioimageio test`` reproduces the test output to 1e-3). The tile has the model's halo on every
side plus a core of :data:`CORE` pixels, so that the test output's core does not depend on how
the tile's border is padded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pssr_volume.demo import make_demo_volume
from pssr_volume.intensity import denormalize, intensity_range, normalize, sample_volume
from pssr_volume.model import ModelInfo
from pssr_volume.noise import NoiseModel, estimate_volume_noise, network_input
from pssr_volume.predict import Predictor

CORE = 32
"""Input pixels (y, x) of the test tile beyond the halo on each side."""
DEMO_SEED = 0


@dataclass(frozen=True)
class TestSample:
    """A test input and its restoration.

    Attributes
    ----------
    raw : numpy.ndarray
        ``(in_slices, size, size)`` grey levels (uint8, from the demo volume).
    lo, hi : float
        The intensity range the model's normalisation gives ``raw`` (mapped to 0 and 1).
    noise : (a, b) or None
        The noise model estimated from ``raw`` (a noise-aware model), in normalised units.
    restored : numpy.ndarray
        ``(scale * size, scale * size)`` float32: the network's output for the centre
        section, in normalised units.
    noise_channel : numpy.ndarray or None
        ``(size, size)`` float32: the noise map the network was given (a noise-aware model).
    """

    raw: np.ndarray
    lo: float
    hi: float
    noise: tuple[float, float] | None
    restored: np.ndarray
    noise_channel: np.ndarray | None = None

    def noise_images(self) -> np.ndarray:
        """The package's ``noise_model`` input for this tile: ``(1, 2, size, size)`` float32,
        constant images of ``a`` and ``b``."""
        assert self.noise is not None  # only for a noise-aware model
        shape = (1, 1, *self.raw.shape[1:])
        return np.concatenate([np.full(shape, v, np.float32) for v in self.noise], axis=1)

    @property
    def restored_grey(self) -> np.ndarray:
        """The restoration in ``raw``'s grey levels (rounded, clipped), as ``run`` writes it."""
        return denormalize(self.restored, self.lo, self.hi, self.raw.dtype)


def tile_size(info: ModelInfo) -> int:
    """The test tile's edge: the halo on both sides plus :data:`CORE`, rounded up to a
    multiple of ``scale`` x the model's grid, so that the tile reduced by ``scale`` (``run``'s
    scale check restores such a copy) is on the grid too."""
    step = info.grid * info.config.scale
    return math.ceil((2 * max(info.default_halo) + CORE) / step) * step


def make_test_sample(info: ModelInfo) -> TestSample:
    """The demo volume's first ``in_slices`` sections, :func:`tile_size` square, restored."""
    config = info.config
    size = tile_size(info)
    raw, _ = make_demo_volume((config.in_slices, size, size), seed=DEMO_SEED)

    def read(box: tuple[slice, slice, slice]) -> np.ndarray:
        return raw[box]

    percentile = config.normalization.mode == "percentile"
    lo, hi = intensity_range(config.normalization,
                             sample_volume(read, raw.shape) if percentile else None)
    noise = None
    tiles = normalize(raw, lo, hi)[None]
    if config.noise_input:
        model = estimate_volume_noise(read, raw.shape, lo, hi)
        noise = (model.a, model.b)
        tiles = network_input(tiles, NoiseModel(*noise))
    predictor = Predictor(info.path, "cpu", info.sha256)
    predictor.autocast = None  # float32, whatever the model file allows on this CPU
    restored = predictor(tiles, batch_size=1)[0]
    channel = np.ascontiguousarray(tiles[0, -1]) if noise is not None else None
    return TestSample(raw, lo, hi, noise, np.ascontiguousarray(restored, dtype=np.float32),
                      channel)


def write_cover(sample: TestSample, scale: int, path: Path) -> Path:
    """A 2:1 PNG: the centre input section (each pixel ``scale`` x ``scale``, as acquired)
    beside its restoration, both in the input's grey levels."""
    from PIL import Image  # pillow: a dependency of matplotlib

    centre = sample.raw[sample.raw.shape[0] // 2]
    before = np.repeat(np.repeat(centre, scale, axis=0), scale, axis=1)
    after = sample.restored_grey
    pair = np.concatenate([before, after], axis=1)
    if pair.dtype != np.uint8:  # 16-bit or float inputs: shown over the normalised range
        pair = np.clip((pair.astype(np.float64) - sample.lo) / (sample.hi - sample.lo) * 255,
                       0, 255).astype(np.uint8)
    Image.fromarray(pair, mode="L").save(path)
    return path
