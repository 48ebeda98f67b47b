"""``pssr-volume evaluate``: crappified HR and real pairs, through the engine, vs baselines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import write_tiff

from pssr_volume.config import EvaluateConfig
from pssr_volume.demo import make_demo_volume
from pssr_volume.evaluate import hr_region, upsample
from pssr_volume.model import model_info
from pssr_volume.train_config import TrainConfig


@pytest.fixture(scope="module")
def hr_volume(tmp_path_factory):
    _, hr = make_demo_volume((3, 16, 20), seed=2)  # HR 3 x 64 x 80 at 4.6 nm
    return write_tiff(tmp_path_factory.mktemp("ev") / "hr.tif", hr, voxel=(50.0, 4.6, 4.6))


def test_crappified_hr_protocol_writes_sane_results(tmp_path, cli, models, hr_volume):
    out = tmp_path / "ev"
    halo = model_info(models["fast"]).default_halo  # the engine ran with the model's default
    code, _, err = cli("evaluate", "--hr", hr_volume, "--preset", "pssr-em", "--preset",
                       "pssr2", "--model", models["fast"], "--out", out, "--crop", "48,64")
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in res["cases"]] == ["hr-pssr-em", "hr-pssr2"]
    for case in res["cases"]:
        assert case["hr_shape"] == [3, 48, 64] and case["region_hr"] == [[0, 3], [8, 56],
                                                                           [8, 72]]
        methods = case["methods"]
        assert list(methods) == ["bilinear", "bicubic", "spline3", "bm3d+bicubic", "fast"]
        for m in methods.values():
            assert 5 < m["psnr"] < 60 and 0 < m["ssim"] < 1 and 5 < m["psnr_raw"] < 60
            assert len(m["sections"]) == 3 and math.isfinite(m["z_mad_ratio"])
            assert 0 < m["frc_cycles_per_px"] <= 0.5
            assert m["frc_period_nm"] == pytest.approx(4.6 / m["frc_cycles_per_px"], rel=1e-3)
        _recompute_from_the_saved_outputs(out, case, hr_volume)
        assert methods["bm3d+bicubic"]["psnr"] != methods["bicubic"]["psnr"]
        # a random network is no restoration, but it is a different one from the baselines
        assert methods["fast"]["psnr"] != methods["bilinear"]["psnr"]
        engine = case["engine"]["fast"]
        assert engine["out_mpx_per_s"] > 0 and engine["halo"][1:] == list(halo)
        assert case["pipeline"]["name"] == case["preset"]
        assert (out / "cases" / case["name"] / "fast.ome.zarr").is_dir()
        png = out / f"montage_{case['name']}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
    md = (out / "results.md").read_text()
    assert md.count("| fast |") == 2 and "## hr-pssr2" in md and "Keys" in md
    assert md.count("| bm3d+bicubic |") == 2 and "FRC" in md
    assert json.loads((out / "evaluate.json").read_text())["presets"] == ["pssr-em", "pssr2"]
    code, _, err = cli("evaluate", "--hr", hr_volume, "--model", models["fast"], "--out", out)
    assert code == 2 and "--overwrite" in err


def _recompute_from_the_saved_outputs(out, case, hr_path):
    """Every number of a case again, from the LR the case saved, the model's saved output
    and the HR file: the BM3D sigma from the LR's own noise, each method's scores."""
    import bm3d
    import tifffile
    import zarr

    from pssr_volume.baselines import BM3D_SIGMA_FACTOR, to_dtype
    from pssr_volume.frc import frc_resolution
    from pssr_volume.metrics import volume_metrics
    from pssr_volume.noise import estimate_noise

    folder = out / "cases" / case["name"]
    lr = tifffile.imread(folder / "lr.tif").astype(np.float64)
    (z0, z1), (y0, y1), (x0, x1) = case["region_hr"]
    hr = tifffile.imread(hr_path)[z0:z1, y0:y1, x0:x1]
    assert lr.shape == (hr.shape[0], hr.shape[1] // 4, hr.shape[2] // 4)
    # sigma: the factor x the fitted noise (var = a + b I, LR normalised to its 0.1-99.9
    # percentiles) at the LR's median intensity, back on the grey scale
    lo, hi = np.percentile(lr, [0.1, 99.9])
    unit = ((lr - lo) / (hi - lo)).astype(np.float32)
    fit = estimate_noise(list(unit))
    level = float(np.median(unit))
    sigma = BM3D_SIGMA_FACTOR * math.sqrt(fit.a + fit.b * level) * (hi - lo)
    given = case["bm3d"]
    assert (given["a"], given["b"], given["at_intensity"]) == pytest.approx(
        (fit.a, fit.b, level), rel=1e-9)
    assert given["sigma"] == pytest.approx(sigma, rel=1e-9) and sigma > 0
    denoised = np.stack([bm3d.bm3d(s, sigma_psd=sigma) for s in lr])
    preds = {m: to_dtype(upsample(lr, 4, m), hr.dtype) for m in ("bilinear", "bicubic",
                                                                  "spline3")}
    preds["bm3d+bicubic"] = to_dtype(upsample(denoised, 4, "bicubic"), hr.dtype)
    preds["fast"] = zarr.open_group(str(folder / "fast.ome.zarr"), mode="r")["0"][:]
    for method, pred in preds.items():
        got = case["methods"][method]
        want = {**volume_metrics(pred, hr, 255.0), **frc_resolution(pred, hr, 4.6)}
        for key in ("psnr", "ssim", "psnr_raw", "z_mad_ratio", "frc_cycles_per_px",
                    "frc_period_nm"):
            assert got[key] == pytest.approx(want[key], rel=1e-9), (method, key)
        # and raw PSNR by hand: the mean over sections of 10 log10(255^2 / MSE)
        mse = ((pred.astype(float) - hr) ** 2).mean(axis=(1, 2))
        assert got["psnr_raw"] == pytest.approx(np.mean(10 * np.log10(255.0**2 / mse)))


def test_real_pairs(tmp_path, cli, models, hr_volume):
    lr = tmp_path / "lr.tif"
    assert cli("crappify", hr_volume, lr, "--preset", "pssr2", "--seed", "4")[0] == 0
    out = tmp_path / "ev"
    code, _, err = cli("evaluate", "--lr", lr, "--hr", hr_volume, "--model", models["fast"],
                       "--out", out, "--z", "1:3", "--no-montage")
    assert code == 0, err
    (case,) = json.loads((out / "results.json").read_text())["cases"]
    assert case["name"] == "hr-real" and case["preset"] is None
    assert case["hr_shape"] == [2, 64, 80]
    # crappify and evaluate degrade identically: the pair equals the crappified case
    code, _, _ = cli("evaluate", "--hr", hr_volume, "--preset", "pssr2", "--seed", "4", "--z",
                     "1:3", "--out", tmp_path / "ev2", "--no-montage", "--model",
                     models["fast"])
    (twin,) = json.loads((tmp_path / "ev2" / "results.json").read_text())["cases"]
    assert case["methods"]["bicubic"] == twin["methods"]["bicubic"]
    assert not list(out.glob("*.png"))


def test_pairs_must_match(tmp_path, cli, hr_volume):
    code, _, err = cli("evaluate", "--lr", hr_volume, "--hr", hr_volume, "--out", tmp_path / "o")
    assert code == 2 and "not an LR/HR pair" in err
    with pytest.raises(ValueError, match="pairs"):
        EvaluateConfig(hr=(hr_volume,), lr=(hr_volume, hr_volume), out=tmp_path)


def test_baselines_and_region():
    lr = np.random.default_rng(0).random((2, 6, 5))
    for m in ("bilinear", "bicubic", "spline3"):
        up = upsample(lr, 4, m)
        assert up.shape == (2, 24, 20)
        # every baseline keeps the mean of a constant image
        np.testing.assert_allclose(upsample(np.full((1, 4, 4), 0.3), 4, m), 0.3, atol=1e-5)
    assert hr_region((5, 100, 90), 4, (1, 9), (50, 1000)) == (slice(1, 5), slice(24, 72),
                                                               slice(0, 88))


def test_training_refuses_evaluation_only_data(tmp_path):
    held = tmp_path / "holdout_stack" / "raw"
    with pytest.raises(ValueError, match="evaluation only"):
        TrainConfig(inputs=(held,), out=tmp_path / "o")
