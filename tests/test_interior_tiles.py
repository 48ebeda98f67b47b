"""Blockwise == whole-volume inference where it matters most: blocks whose tiles lie wholly
inside the volume and so read no reflect padding, for every architecture and blend mode.

Edge tiles read mirrored voxels, the same ones a whole-volume inference pads with, so a
comparison made only of edge tiles (tests/test_pipeline.py's small volumes) cannot see a
systematic error of the interior halos: a halo one pixel short, a tile off the network's
grid, a piece blended into the wrong place. Each geometry here has at least 3 blocks per
axis (z too where the model reads neighbouring sections) and a volume of at least a block
plus two halos, and asserts which tiles are interior before it compares.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from conftest import em_like, write_tiff
from whole_volume import predict_whole

from pssr_volume.blocks import BlockGrid
from pssr_volume.config import ModelConfig, RunConfig
from pssr_volume.model import model_info, save_model
from pssr_volume.nets.fast import FastUNet
from pssr_volume.nets.resunet import ResUNet
from pssr_volume.nets.span import SPAN
from pssr_volume.plan import make_plan
from pssr_volume.run import run

THIN = {"width": 1 / 32, "layers": [1, 1, 1, 1]}
ARCHS = {  # name: (network, architecture, its arguments, other model-file fields)
    "pssr-fast": (lambda: FastUNet(width=8, in_slices=3), "pssr-fast", {"width": 8},
                  {"in_slices": 3}),  # 3 sections in: a z halo, interior tiles in z too
    "pssr-span": (lambda: SPAN(width=8, blocks=2), "pssr-span", {"width": 8, "blocks": 2}, {}),
    "pssr-resunet": (lambda: ResUNet(**THIN), "pssr-resunet", THIN, {}),
    "noise-aware": (lambda: FastUNet(width=8, extra_channels=1), "pssr-fast", {"width": 8},
                    {"noise_input": True}),
}
# Grey levels (uint8) between blockwise and whole-volume output. crop differs by float
# rounding alone (max 1, on well under 1 % of voxels). Blend modes also weigh in predictions
# near tile edges, which the network's own zero padding changes; linear ramps weigh them
# most (max measured 6, for the 3-section pssr-fast: its ramp crosses the whole halo, where
# a prediction lacks part of its receptive field), cosine and gaussian max 1. The bounds are
# the measured maxima plus one level for other CPUs' kernels, as in tests/test_pipeline.py.
TOLERANCE = {"crop": 1, "linear": 7, "cosine": 2, "gaussian": 2}
FLOAT_TOLERANCE = 1e-5  # crop on a float32 volume, relative to the volume's range


# Conv weights x this in the float32 test's networks, so that input pixels at the edge of
# the receptive field move the output well above float rounding (a halo short of it shows)
LOUD = {"pssr-fast": 2.0, "pssr-span": 3.0, "noise-aware": 2.0}


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], str]:
    """A random model file per architecture with a visible response, plain (for uint8) and
    loud (``LOUD``; for the float32 test), by ``(architecture, loud)``."""
    d = tmp_path_factory.mktemp("interior")
    out = {}
    for name, (make, arch, args, extra) in ARCHS.items():
        for loud in (False, True) if name in LOUD else (False,):
            torch.manual_seed(5)
            net = make()
            with torch.no_grad():
                for m in net.modules():
                    if loud and isinstance(m, torch.nn.Conv2d):  # weight-normed: its norm
                        wn = getattr(m, "parametrizations", None)
                        (wn.weight.original0 if wn else m.weight).mul_(LOUD[name])
                if isinstance(net, ResUNet):  # its head passes the upsampled section on
                    net.head.weight.add_(0.05 * torch.randn_like(net.head.weight))
                else:  # a residual on the bilinear upsample
                    net.tail.weight.normal_(0, 0.05)
            out[name, loud] = str(save_model(d / f"{name}-{loud}.safetensors", net, ModelConfig(
                name=name, architecture=arch, arch_args=args, **extra)))
    return out


def geometry(model: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Input shape and write block for ``model``. The block's input core is the halo ``h``
    (a multiple of the network grid); the volume is ``4h`` in y, so the second and third
    blocks read only voxels inside and two interior tiles share a border, and ``3h + 3`` in
    x, a block plus two halos and an odd edge block. pssr-resunet, whose thinnest network
    still costs about a second a tile here, gets ``3h`` in y. A multi-section model gets 3
    sections, one a block; a 2-D model one (z has no halo to get wrong)."""
    info = model_info(model)
    h = info.default_halo[0]
    rows = 3 if info.config.architecture == "pssr-resunet" else 4
    nz = 3 if info.config.in_slices > 1 else 1
    return (nz, rows * h, 3 * h + 3), (1, 4 * h, 4 * h)


def interior(grid: BlockGrid) -> list[tuple[int, int, int]]:
    """Blocks whose tile lies inside the volume on every axis (reads no padding)."""
    return [b.index for b in grid
            if all(a >= 0 and z <= n for (a, z), n in zip(b.tile, grid.in_shape))]


def check_geometry(grid: BlockGrid) -> None:
    """At least 3 blocks per axis (z: where the model has a z halo), a volume of at least a
    block plus two halos, and interior tiles: the second block along y and x (and the third
    along y where there are 4), in z the middle section's."""
    core = (grid.block[0], grid.block[1] // grid.scale, grid.block[2] // grid.scale)
    assert all(n >= c + 2 * h for n, c, h in zip(grid.in_shape, core, grid.halo))
    assert min(grid.counts[1:]) >= 3, grid.counts
    z = 1 if grid.halo[0] else 0
    inside = set(interior(grid))
    assert (z, 1, 1) in inside
    assert ((z, 2, 1) in inside) == (grid.counts[1] >= 4)
    if grid.halo[0]:  # a multi-section model: the first and last sections read padding
        assert grid.counts[0] >= 3 and {i[0] for i in interior(grid)} == {1}


def restore(tmp_path, model: str, vol: np.ndarray, cluster: str,
            **kw) -> tuple[np.ndarray, np.ndarray, BlockGrid]:
    """Blockwise output (through ``cluster``), whole-volume inference and the block grid."""
    shape, block = geometry(model)
    assert vol.shape == shape
    tmp_path.mkdir(exist_ok=True)
    inp = write_tiff(tmp_path / "in.tif", vol)
    cfg = RunConfig(input=inp, output=tmp_path / "o.ome.zarr", model=model, cluster=cluster,
                    block_shape=block, progress=False, **kw)
    run(cfg)
    job = make_plan(cfg.model_copy(update={"output": tmp_path / "unused", "halo": None})).job
    return zarr.open_array(str(cfg.output / "0"), mode="r")[:], predict_whole(job), job.grid


@pytest.mark.parametrize("blend", ["crop", "linear", "cosine", "gaussian"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_interior_blocks_match_whole_volume(tmp_path, nets, scheduler, arch, blend):
    model = nets[arch, False]
    shape, _ = geometry(model)
    vol = em_like(shape, seed=7)
    got, whole, grid = restore(tmp_path, model, vol, scheduler, blend=blend)
    diff = np.abs(got.astype(int) - whole.astype(int))
    assert diff.max() <= TOLERANCE[blend], (arch, blend, diff.max())
    if blend == "crop":
        assert (diff > 0).mean() < 0.01
    check_geometry(grid)  # and the comparison had interior tiles
    # the network does something: far from a plain upsample
    assert np.abs(whole.astype(int) - vol.repeat(4, 1).repeat(4, 2)).mean() > 1


@pytest.mark.parametrize("arch", ["pssr-fast", "pssr-span", "noise-aware"])
def test_interior_crop_is_exact_and_a_short_halo_shows(tmp_path, nets, arch):
    """On a float32 volume (no rounding) crop matches whole-volume inference to float
    rounding; with the halo a step of the network grid short of the model's (a pixel for
    SPAN), interior blocks no longer match. (pssr-resunet: its uint8 crop case above; one
    grid step short, 2 pixels inside its receptive field, does not show even in float32.)"""
    model = nets[arch, True]
    shape, _ = geometry(model)
    vol = em_like(shape, seed=8).astype(np.float32) / 255
    got, whole, grid = restore(tmp_path / "full", model, vol, "sync")
    span = float(whole.max() - whole.min())
    assert np.abs(got - whole).max() <= FLOAT_TOLERANCE * span
    check_geometry(grid)
    info = model_info(model)
    short = info.default_halo[0] - info.grid
    got, _, _ = restore(tmp_path / "short", model, vol, "sync", halo=(short, short))
    assert np.abs(got - whole).max() > 10 * FLOAT_TOLERANCE * span
