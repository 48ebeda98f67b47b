"""The scale check (pssr_volume.cross_scale): pure numpy, tiny arrays, the network a function."""

from __future__ import annotations

import numpy as np
import pytest

from pssr_volume.consistency import area_mean
from pssr_volume.cross_scale import (
    MIN_LIMIT_DB,
    SLACK_DB,
    cross_scale_gain,
    describe,
    gain_limit,
    sample_box,
    spline_upsample,
)


def _texture(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Smooth random structure in [0, 1]: something a spline cannot recover exactly."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random(shape), (0, 1.5, 1.5))
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32)


def test_a_spline_network_gains_nothing() -> None:
    sample = _texture((3, 64, 64))
    gain = cross_scale_gain(sample, lambda r: spline_upsample(r, 4), 4, 0)
    assert gain == pytest.approx(0.0, abs=1e-9)


def test_a_network_that_recovers_the_input_gains_a_lot() -> None:
    """The oracle (a network that knows the input) beats the spline by many dB; one that
    returns the spline plus noise loses."""
    sample = _texture((3, 64, 64))
    assert cross_scale_gain(sample, lambda r: sample, 4, 0) > 20
    rng = np.random.default_rng(1)
    noisy = cross_scale_gain(
        sample, lambda r: spline_upsample(r, 4) + rng.normal(0, 0.05, sample.shape), 4, 0)
    assert noisy < -1


def test_z_context_restores_only_the_inner_sections() -> None:
    """A 2.5D network (z halo 1) gets the reduced stack and returns its inner sections."""
    sample = _texture((5, 64, 64))
    seen: list[tuple[int, ...]] = []

    def restore(reduced: np.ndarray) -> np.ndarray:
        seen.append(reduced.shape)
        np.testing.assert_allclose(reduced, area_mean(sample, 4), atol=1e-6)
        return sample[1:-1]

    assert cross_scale_gain(sample, restore, 4, 1) > 20
    assert seen == [(5, 16, 16)]
    with pytest.raises(ValueError, match="does not match"):
        cross_scale_gain(sample, lambda r: sample, 4, 1)  # all five sections: wrong


def test_blank_sections_are_skipped() -> None:
    sample = _texture((2, 64, 64))
    sample[0] = 0.5
    assert cross_scale_gain(sample, lambda r: sample, 4, 0) > 20
    blank = np.full((2, 64, 64), 0.5, np.float32)
    assert cross_scale_gain(blank, lambda r: spline_upsample(r, 4), 4, 0) == 0.0


@pytest.mark.parametrize(("shape", "halo", "box"), [
    ((10, 1000, 700), 0, ((3, 6), (244, 756), (94, 606))),  # centred, 512 square
    ((10, 1000, 700), 1, ((2, 7), (244, 756), (94, 606))),  # z context either side
    ((2, 130, 300), 0, ((0, 2), (1, 129), (86, 214))),  # 128: a multiple of the scale
    ((1, 127, 900), 0, None),  # reduced copy under 32 px
    ((2, 512, 512), 1, None),  # too few sections for the z context
])
def test_sample_box(shape: tuple[int, int, int], halo: int, box: tuple | None) -> None:
    assert sample_box(shape, 4, halo) == box


def test_the_limit_and_the_warning() -> None:
    assert gain_limit(None) == MIN_LIMIT_DB
    assert gain_limit(0.05) == MIN_LIMIT_DB
    assert gain_limit(0.4) == pytest.approx(0.4 + SLACK_DB)
    quiet = describe(0.1, 0.16, 4, 18.4, "pssr-em-x4")
    assert len(quiet) == 1 and "+0.10 dB" in quiet[0] and "+0.16" in quiet[0]
    loud = describe(0.6, 0.16, 4, 18.4, "pssr-em-x4")
    assert len(loud) == 2
    assert loud[1].startswith("warning: the model may not fit this data")
    assert "18.4 nm" in loud[1] and "4x finer" in loud[1]


def test_a_run_reports_the_figure_and_records_it(tmp_path):
    """A pointwise (nearest-neighbour) model: the run logs the scale check before its blocks
    and records its figure, which is what the check computes on the same sample; an input too
    small to reduce gets no check."""
    from conftest import em_like, write_tiff

    from pssr_volume.config import ModelConfig, NormalizationConfig, RunConfig
    from pssr_volume.io.ome_zarr import read_provenance
    from pssr_volume.model import save_model
    from pssr_volume.nets.fast import Pointwise
    from pssr_volume.run import run

    model = save_model(tmp_path / "pw.safetensors", Pointwise(gain=1.0, bias=0.0),
                       ModelConfig(name="pw", architecture="pointwise",
                                   arch_args={"gain": 1.0, "bias": 0.0},
                                   normalization=NormalizationConfig(mode="fixed", low=0,
                                                                     high=255)))
    vol = em_like((4, 150, 170), seed=3)
    lines: list[str] = []
    out = tmp_path / "o.ome.zarr"
    run(RunConfig(input=write_tiff(tmp_path / "in.tif", vol), output=out, model=model,
                  cluster="sync", progress=False), log=lines.append)
    check = [line for line in lines if line.startswith("scale check:")]
    assert len(check) == 1 and lines.index(check[0]) < len(lines) - 1
    box = sample_box(vol.shape, 4, 0)
    assert box == ((0, 3), (1, 149), (11, 159))
    sample = vol[tuple(slice(a, b) for a, b in box)].astype(np.float32) / 255
    expected = cross_scale_gain(sample, lambda r: np.kron(r, np.ones((1, 4, 4))), 4, 0)
    assert expected < -0.5  # nearest neighbour loses to a spline
    recorded = read_provenance(out)["scale_check"]["cross_scale_gain_db"]
    assert recorded == pytest.approx(expected, abs=2e-3)
    small: list[str] = []
    run(RunConfig(input=write_tiff(tmp_path / "small.tif", vol[:, :100, :100]),
                  output=tmp_path / "s.ome.zarr", model=model, cluster="sync", progress=False),
        log=small.append)
    assert not any(line.startswith("scale check:") for line in small)
    assert "scale_check" not in read_provenance(tmp_path / "s.ome.zarr")


@pytest.mark.parametrize(("side", "name"), [(136, "fast"), (150, "fast3")])
def test_the_reduced_copy_fits_the_network_grid(tmp_path, models, side, name):
    """A 136 px input reduced 4x is 34 px, off pssr-fast's grid of 4: the sample is cut to a
    multiple of scale x grid (128 px), so the check runs (it crashed the run before); with z
    context too (3 sections in)."""
    from conftest import em_like, write_tiff

    from pssr_volume.config import RunConfig
    from pssr_volume.io.ome_zarr import read_provenance
    from pssr_volume.run import run

    box = sample_box((5, side, side), 4, 1 if name == "fast3" else 0, 4)
    assert box is not None and box[1][1] - box[1][0] == side // 16 * 16  # 128, 144
    inp = write_tiff(tmp_path / "in.tif", em_like((5, side, side), seed=4))
    out = tmp_path / "o.ome.zarr"
    lines: list[str] = []
    run(RunConfig(input=inp, output=out, model=models[name], cluster="sync", progress=False),
        log=lines.append)
    assert any(line.startswith("scale check:") for line in lines)
    assert np.isfinite(read_provenance(out)["scale_check"]["cross_scale_gain_db"])
