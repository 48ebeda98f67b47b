"""The data-consistency check (pssr_volume.consistency): a restoration, degraded back to the
input grid by the model's own forward operator (area mean), against the input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import zarr
from conftest import write_tiff

from pssr_volume.config import ModelConfig, NormalizationConfig, RunConfig
from pssr_volume.consistency import (
    MISFIT_RATIO,
    NOISE_FLOOR,
    Residual,
    area_mean,
    block_residual,
    describe,
    misfit_limit,
)
from pssr_volume.io.journal import Journal
from pssr_volume.model import save_model
from pssr_volume.nets.fast import Pointwise
from pssr_volume.run import run


def test_the_journal_keeps_notes_through_a_verified_resume(tmp_path):
    journal = Journal(tmp_path)
    journal.mark("block 0.0.0", Residual(1.0, 2.0, 3).note())
    journal.mark("block 0.0.1", Residual(4.0, 5.0, 6).note())
    journal.mark("level 1 0.0.0")
    assert journal.done() == {"block 0.0.0", "block 0.0.1", "level 1 0.0.0"}
    journal.replace({"block 0.0.1", "level 1 0.0.0"})  # block 0.0.0 found damaged
    assert journal.notes() == {"block 0.0.1": Residual(4.0, 5.0, 6).note()}
    with pytest.raises(ValueError):
        journal.mark("block\t0", None)


def test_area_mean_is_the_mean_of_each_cell():
    a = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    m = area_mean(a, 2)
    assert m.shape == (2, 2, 3) and m[1, 1, 2] == a[1, 2:4, 4:6].mean()
    with pytest.raises(ValueError, match="multiple of the scale"):
        area_mean(a[:, :3], 2)


def test_a_restoration_that_degrades_back_to_its_input_has_no_residual():
    rng = np.random.default_rng(0)
    observed = rng.random((2, 5, 7))
    restored = np.repeat(np.repeat(observed, 4, axis=1), 4, axis=2)
    # zero-mean detail inside each cell is invisible to the forward operator
    detail = np.tile(np.array([[1.0, -1.0], [-1.0, 1.0]]), (2, 10, 14)) * 0.2
    r = block_residual(restored + detail, observed, 4, None)
    assert r.count == 70 and r.rms == pytest.approx(0.0, abs=1e-12)
    assert r.ratio is None  # blind: no noise to compare with
    exact = block_residual(restored, observed, 4, (0.01, 0.0))
    assert exact.sum_sq == pytest.approx(0.0, abs=1e-20) and exact.ratio == pytest.approx(0.0)


def test_the_ratio_is_the_residual_over_the_noise_model():
    observed = np.full((1, 4, 4), 0.5)
    restored = np.full((1, 16, 16), 0.6)  # off by 0.1 everywhere
    a, b = 0.001, 0.002
    r = block_residual(restored, observed, 4, (a, b))
    noise = a + b * 0.5 + NOISE_FLOOR**2
    assert r.rms == pytest.approx(0.1) and r.ratio == pytest.approx(0.1 / math.sqrt(noise))
    # sums add over blocks, and survive the journal's one-line note
    both = r + r
    assert both.ratio == pytest.approx(r.ratio) and both.count == 2 * r.count
    assert Residual.from_note(r.note()) == r and Residual.from_note("junk") is None


def test_the_misfit_limit_and_warning():
    assert misfit_limit(None) == MISFIT_RATIO == misfit_limit(0.5)
    assert misfit_limit(1.2) == pytest.approx(1.5)
    fit = Residual(sum_sq=0.5, sum_var=1.0, count=10)  # ratio 0.71
    misfit = Residual(sum_sq=4.0, sum_var=1.0, count=10)  # ratio 2
    assert len(describe(fit, 3, 0.6, "m")) == 1
    line, warning = describe(misfit, 3, 0.6, "m")
    assert "2.00x the input's noise" in line and "0.60 on its validation data" in line
    assert warning.startswith("warning: the model may not fit this data")


def _pointwise(path, bias: float, noise_aware: bool = False, gain: float = 1.0):
    return save_model(path, Pointwise(gain=gain, bias=bias, extra_channels=int(noise_aware)),
                      ModelConfig(name="pw", architecture="pointwise", noise_input=noise_aware,
                                  arch_args={"gain": gain, "bias": bias},
                                  normalization=NormalizationConfig(mode="fixed", low=0,
                                                                    high=255)))


def test_a_pointwise_model_gives_the_exact_figure_per_block_and_for_the_volume(tmp_path):
    """A constant offset of 25 grey levels: every block's RMS residual is exactly 25/255;
    the map has one value per block and the provenance the volume's figure."""
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 200, (3, 40, 52), dtype=np.uint8)
    inp = write_tiff(tmp_path / "in.tif", vol)
    model = _pointwise(tmp_path / "pw.safetensors", 25 / 255)
    out = tmp_path / "o.ome.zarr"
    lines: list[str] = []
    stats = run(RunConfig(input=inp, output=out, model=model, cluster="sync", progress=False,
                          block_shape=(2, 64, 64), consistency_map=True), log=lines.append)
    assert len(stats.residuals) == stats.blocks_total == 2 * 3 * 4
    for r in stats.residuals.values():
        assert r.rms == pytest.approx(25 / 255, abs=1e-6) and r.ratio is None
    g = zarr.open_group(str(out), mode="r")
    figure = g.attrs["pssr_volume"]["consistency"]
    assert figure["rms"] == pytest.approx(25 / 255, abs=1e-6) and figure["blocks"] == 24
    cmap = g["consistency"][:]
    assert cmap.shape == (2, 3, 4) and np.allclose(cmap, 25 / 255, atol=1e-6)
    assert any("RMS 0.0980" in line and "blind model" in line for line in lines)
    assert not Journal(out).done()  # completed: the journal (and its notes) are gone


def test_a_misfit_warns_and_a_fit_does_not(tmp_path, cli):
    """A noise-aware stand-in that inverts contrast (a model that cannot fit) against one that
    keeps it, on a noisy volume."""
    rng = np.random.default_rng(2)
    clean = np.kron(rng.integers(40, 200, (2, 6, 6)), np.ones((1, 8, 8))).astype(float)
    vol = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    inp = write_tiff(tmp_path / "in.tif", vol)
    fit = _pointwise(tmp_path / "fit.safetensors", 0.0, noise_aware=True)
    misfit = _pointwise(tmp_path / "misfit.safetensors", 1.0, noise_aware=True, gain=-1.0)
    code, _, err = cli("run", inp, tmp_path / "fit.ome.zarr", "--model", fit, "--cluster",
                       "sync", "--no-progress")
    assert code == 0, err
    assert "consistency:" in err and "may not fit" not in err
    code, _, err = cli("run", inp, tmp_path / "misfit.ome.zarr", "--model", misfit,
                       "--cluster", "sync", "--no-progress")
    assert code == 0, err
    assert "warning: the model may not fit this data" in err
    assert not (tmp_path / "misfit.ome.zarr" / "consistency").exists()  # no map unless asked
