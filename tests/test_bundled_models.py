"""Bundled models by name (``--model NAME``, ``info --models``) and the pixel-size warning."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import em_like, write_tiff

from pssr_volume.bundled import (
    BUNDLED,
    DEFAULT_MODEL,
    bundled_model_path,
    bundled_models,
    resolve_model,
)
from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError
from pssr_volume.model import save_model
from pssr_volume.model_fit import pixel_size_warning
from pssr_volume.model_header import read_config
from pssr_volume.nets.fast import FastUNet


def test_every_bundled_model_is_committed_and_installed():
    """The model files are part of the package: a lost one fails here (and every test
    that uses one fails with it), it is not skipped."""
    assert set(bundled_models()) == set(BUNDLED)
    for name in BUNDLED:
        path = bundled_model_path(name)
        assert path.is_file(), f"bundled model {name} missing: {path}"
        assert read_config(path).name == name
        assert path.with_suffix(".md").is_file()  # its model card


def test_resolve_model_files_names_and_unknowns(tmp_path, models):
    assert resolve_model(models["fast"]) == models["fast"]
    for name in BUNDLED:
        path = resolve_model(name)
        assert path == bundled_model_path(name) and path.name == f"{name}.safetensors"
    assert resolve_model(None) == bundled_model_path(DEFAULT_MODEL)
    with pytest.raises(PssrError, match="model not found: nonsense"):
        resolve_model("nonsense")


def test_info_lists_the_bundled_models(cli):
    code, out, err = cli("info", "--models", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list(BUNDLED)
    assert [r["name"] for r in rows if r["default"]] == [DEFAULT_MODEL]
    for r in rows:
        path = bundled_model_path(r["name"])
        assert r["installed"] is True and r["file"] == str(path)
        assert r["megabytes"] == round(path.stat().st_size / 1e6, 1) <= 20
        header = read_config(path)
        assert (r["architecture"], r["in_slices"]) == (header.architecture, header.in_slices)
    code, out, _ = cli("info")
    assert code == 0 and all(name in out for name in BUNDLED)


def test_run_takes_a_bundled_name(tmp_path, cli):
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


def test_iso_model_blockwise_equals_whole_volume_with_z_borders(tmp_path, scheduler):
    """``pssr-em-x4-iso`` (3 sections in: a z halo of 1) on a real cluster, one section a
    block: the first and last sections read reflected neighbours, the middle ones only
    real ones, and the y-x geometry has 3 blocks per axis with an interior tile. It matches
    one whole-volume inference (reflect padding at every border, z included) within the
    crop tolerance of tests/test_pipeline.py."""
    import numpy as np
    import zarr
    from whole_volume import predict_whole

    from pssr_volume.config import RunConfig
    from pssr_volume.plan import make_plan
    from pssr_volume.run import run

    h = 28  # the model's halo: asserted below
    vol = em_like((5, 3 * h, 3 * h + 3), seed=12)
    inp = write_tiff(tmp_path / "in.tif", vol, voxel=(10.0, 10.0, 10.0))
    cfg = RunConfig(input=inp, output=tmp_path / "o.ome.zarr", model="pssr-em-x4-iso",
                    cluster=scheduler, block_shape=(1, 4 * h, 4 * h), progress=False)
    run(cfg)
    job = make_plan(cfg.model_copy(update={"output": tmp_path / "unused"})).job
    g = job.grid
    assert g.halo == (1, h, h) and g.counts == (5, 3, 4) and job.noise is not None
    tiles = {b.index: b.tile for b in g}
    assert tiles[0, 1, 1][0] == (-1, 2) and tiles[4, 1, 1][0] == (3, 6)  # z borders: padding
    assert all(a >= 0 and b <= n for (a, b), n in zip(tiles[2, 1, 1], g.in_shape))  # interior
    whole = predict_whole(job)
    got = zarr.open_array(str(cfg.output / "0"), mode="r")[:]
    diff = np.abs(got.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert max(diff[0].max(), diff[4].max()) <= 1  # the z borders match too
