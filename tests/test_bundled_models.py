"""Bundled models by name (``--model NAME``, ``info --models``) and the pixel-size warning."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import em_like, write_tiff

from pssr_volume.bundled import BUNDLED, DEFAULT_MODEL, bundled_models, resolve_model
from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError
from pssr_volume.model import save_model
from pssr_volume.model_fit import pixel_size_warning
from pssr_volume.nets.fast import FastUNet


def test_resolve_model_files_names_and_unknowns(tmp_path, models):
    assert resolve_model(models["fast"]) == models["fast"]
    for name, path in bundled_models().items():
        assert resolve_model(name) == path and path.name == f"{name}.safetensors"
    if DEFAULT_MODEL in bundled_models():
        assert resolve_model(None) == bundled_models()[DEFAULT_MODEL]
    with pytest.raises(PssrError, match="model not found: nonsense"):
        resolve_model("nonsense")


def test_info_lists_the_bundled_models(cli):
    code, out, err = cli("info", "--models", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list(BUNDLED)
    assert sum(r["default"] for r in rows) == 1
    for r in rows:
        assert r["installed"] == (r["name"] in bundled_models())
        if r["installed"]:
            assert r["megabytes"] <= 20
    code, out, _ = cli("info")
    assert code == 0 and all(name in out for name in BUNDLED)


def test_run_takes_a_bundled_name(tmp_path, cli):
    if DEFAULT_MODEL not in bundled_models():
        pytest.skip("bundled model not built")
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 24, 24)))
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", DEFAULT_MODEL,
                       "--dry-run")
    assert code == 0, err
    assert f"model   {DEFAULT_MODEL}" in err
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", "pssr-nope", "--dry-run")
    assert code == 2 and "model not found: pssr-nope" in err
    assert len(err.strip().splitlines()) == 1


def test_pixel_size_warning_rule():
    cfg = ModelConfig(name="m", architecture="pssr-fast", pixel_size_nm=(4.0, 10.0))
    assert pixel_size_warning(cfg, 4.0) == [] and pixel_size_warning(cfg, 15.0) == []
    assert pixel_size_warning(cfg, 2.7) == [] and pixel_size_warning(cfg, 14.9) == []
    low, high = pixel_size_warning(cfg, 2.6), pixel_size_warning(cfg, 15.1)
    assert len(low) == len(high) == 1 and "4-10 nm" in low[0] and "15.1 nm" in high[0]
    assert pixel_size_warning(cfg.model_copy(update={"pixel_size_nm": None}), 100.0) == []


def test_run_warns_in_one_line_outside_the_trained_pixel_sizes(tmp_path, cli):
    torch.manual_seed(0)
    model = save_model(tmp_path / "m.safetensors", FastUNet(width=4), ModelConfig(
        name="m", architecture="pssr-fast", arch_args={"width": 4}, pixel_size_nm=(4.0, 5.0)))
    vol = em_like((1, 24, 24))
    far = write_tiff(tmp_path / "far.tif", vol, voxel=(50.0, 100.0, 100.0))  # 25 nm out
    near = write_tiff(tmp_path / "near.tif", vol, voxel=(50.0, 18.4, 18.4))  # 4.6 nm out
    code, _, err = cli("run", far, tmp_path / "a.ome.zarr", "--model", model, "--dry-run")
    warnings = [s for s in err.splitlines() if s.startswith("warning:")]
    assert code == 0 and len(warnings) == 1 and "25 nm" in warnings[0]
    code, _, err = cli("run", near, tmp_path / "b.ome.zarr", "--model", model, "--dry-run")
    assert code == 0 and "warning:" not in err
