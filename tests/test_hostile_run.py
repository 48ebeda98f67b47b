"""``run`` validates what it can in the driver before touching the output or starting a
cluster: the model's weights and values, absurd model headers, memory bounds of blocks,
halos and chunks, non-finite inputs, changed inputs on ``--resume``, full-range integers."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
import torch
import zarr
from conftest import digest, em_like, levels, write_tiff
from safetensors.torch import save_file

from pssr_volume.config import ModelConfig, NormalizationConfig
from pssr_volume.model import METADATA_KEY, save_model
from pssr_volume.nets.fast import FastUNet, Pointwise


def one_error(code: int, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def test_overwrite_with_an_incompatible_model_keeps_the_good_output(tmp_path, cli, models):
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 32, 32)))
    out = tmp_path / "o.ome.zarr"
    assert cli("run", inp, out, "--model", models["fast"], "--cluster", "sync",
               "--no-progress")[0] == 0
    before = digest(out)
    wrong = tmp_path / "wrong.safetensors"  # a pssr-fast header over a width-4 network's weights
    cfg = ModelConfig(name="wrong", architecture="pssr-fast", arch_args={"width": 8})
    state = {k: v.contiguous() for k, v in FastUNet(width=4).state_dict().items()}
    save_file(state, str(wrong), metadata={METADATA_KEY: cfg.model_dump_json()})
    code, _, err = cli("run", inp, out, "--model", wrong, "--overwrite", "--cluster", "sync")
    assert "weights do not match" in one_error(code, err)
    assert digest(out) == before  # nothing was deleted


def test_nan_weights_and_absurd_headers_are_refused_before_any_work(tmp_path, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 16, 16)))
    net = Pointwise()
    with torch.no_grad():
        net.gain.fill_(float("nan"))
    nan = save_model(tmp_path / "nan.safetensors", net,
                     ModelConfig(name="nan", architecture="pointwise"))
    code, _, err = cli("run", inp, tmp_path / "a.ome.zarr", "--model", nan, "--cluster", "sync")
    assert "non-finite" in one_error(code, err)
    huge = tmp_path / "huge.safetensors"
    cfg = ModelConfig(name="huge", architecture="pssr-fast", arch_args={"width": 10**12})
    save_file({"x": torch.zeros(1)}, str(huge), metadata={METADATA_KEY: cfg.model_dump_json()})
    for args in (["info", huge], ["run", inp, tmp_path / "b.ome.zarr", "--model", huge]):
        code, _, err = cli(*args)
        assert "huge" in one_error(code, err)
    assert not (tmp_path / "a.ome.zarr").exists() and not (tmp_path / "b.ome.zarr").exists()


@pytest.mark.parametrize(("flags", "words"), [
    (["--halo", "200000,200000"], "GiB"),
    (["--chunk-shape", "2,65536,65536", "--block-shape", "2,65536,65536"], "GiB a chunk"),
])
def test_halo_and_chunk_are_bounded_by_memory(tmp_path, cli, models, flags, words):
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 16, 16)))
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", models["fast"],
                       "--cluster", "sync", *flags)
    assert words in one_error(code, err)
    assert not (tmp_path / "o.ome.zarr").exists()


def test_non_finite_inputs_are_refused_or_replaced(tmp_path, cli, models):
    data = em_like((2, 32, 32)).astype(np.float32)
    data[1, 5, 7] = np.nan
    data[0, 3, 3] = np.inf
    inp = tmp_path / "f.tif"
    tifffile.imwrite(inp, data, photometric="minisblack")
    out = tmp_path / "o.ome.zarr"
    args = ["--model", models["pointwise"], "--cluster", "sync", "--no-progress"]
    code, _, err = cli("run", inp, out, *args)
    assert "NaN or infinite" in one_error(code, err) and "--nan-value" in err
    assert not out.exists()
    code, _, err = cli("run", inp, out, *args, "--nan-value", "0")
    assert code == 0, err
    restored = zarr.open_array(str(out / "0"), mode="r")[...]
    assert np.isfinite(restored).all()
    assert restored[1, 20:24, 28:32].max() == 0  # the NaN voxel became 0 (x4 pointwise)


def test_resume_refuses_a_changed_input(tmp_path, cli, models):
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 32, 32), seed=1))
    out = tmp_path / "o.ome.zarr"
    args = ["--model", models["fast"], "--cluster", "sync", "--no-progress"]
    assert cli("run", inp, out, *args)[0] == 0
    from pssr_volume.io.ome_zarr import update_provenance

    update_provenance(out, status="running")  # as if interrupted
    write_tiff(inp, em_like((2, 32, 32), seed=2))  # same shape and type, other voxels
    os.utime(inp, ns=(1, 1))
    code, _, err = cli("run", inp, out, *args, "--resume")
    assert "settings differ" in one_error(code, err) and "identity" in err


@pytest.mark.parametrize("dtype", ["uint32", "int32", "uint16"])
def test_full_range_integer_volumes_keep_their_brightest_voxels(tmp_path, cli, dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    data = rng.integers(info.min, info.max, (2, 16, 16), dtype=dtype, endpoint=True)
    data[0, 0, 0], data[0, 0, 1] = info.min, info.max
    src = zarr.create_array(tmp_path / "v.zarr", shape=data.shape, chunks=(1, 16, 16),
                            dtype=dtype, zarr_format=2)
    src[...] = data
    model = save_model(tmp_path / "id.safetensors", Pointwise(),
                       ModelConfig(name="id", architecture="pointwise",
                                   normalization=NormalizationConfig(
                                       mode="fixed", low=float(info.min),
                                       high=float(info.max))))
    out = tmp_path / "o.ome.zarr"
    code, _, err = cli("run", tmp_path / "v.zarr", out, "--model", model, "--cluster", "sync",
                       "--voxel-size", "50,8,8", "--no-progress")
    assert code == 0, err
    restored = zarr.open_array(str(out / "0"), mode="r")[...]
    expected = data.repeat(4, 1).repeat(4, 2)
    assert restored[0, 0, 0] == info.min and restored[0, 0, 4] == info.max
    bright = expected > info.min + (int(info.max) - int(info.min)) * 0.8
    assert (restored[bright] > info.min + (int(info.max) - int(info.min)) * 0.79).all()
    rel = np.abs(restored.astype(np.float64) - expected) / (float(info.max) - float(info.min))
    assert rel.max() < 1e-6
    assert levels(out)
