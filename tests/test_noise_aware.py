"""Noise-aware models: the volume's noise estimate reaches the network, the run summary and
the provenance; ``--noise`` overrides it; blockwise output still matches whole-volume output;
the SPAN-style network; and training of noise-aware models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from conftest import em_like, write_tiff
from whole_volume import predict_whole

from pssr_volume.config import ModelConfig, RunConfig
from pssr_volume.errors import PssrError
from pssr_volume.model import load_model, model_info, save_model
from pssr_volume.nets.fast import FastUNet
from pssr_volume.nets.span import SPAN
from pssr_volume.noise import NOISE_GAIN, NoiseModel, estimate_noise, network_input
from pssr_volume.plan import make_plan
from pssr_volume.run import run
from pssr_volume.train_config import TrainConfig

TOLERANCE_CROP = 1  # grey levels, as for blind networks (tests/test_pipeline.py)


@pytest.fixture(scope="module")
def noise_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("noise-models")
    torch.manual_seed(1)
    out = {}
    for name, net, arch, args in (
            ("fast", FastUNet(width=8, extra_channels=1), "pssr-fast", {"width": 8}),
            ("span", SPAN(width=8, blocks=2, extra_channels=1), "pssr-span",
             {"width": 8, "blocks": 2})):
        with torch.no_grad():  # a visible response, also to the noise channel
            net.tail.weight.normal_(0, 0.05)
            net.head.weight[:, -1].normal_(0, 0.5)
        out[name] = save_model(d / f"{name}.safetensors", net, ModelConfig(
            name=name, architecture=arch, arch_args=args, noise_input=True))
    return out


def test_network_input_appends_the_scaled_noise_map():
    rng = np.random.default_rng(0)
    tiles = rng.random((2, 3, 20, 24), dtype=np.float32)
    m = NoiseModel(0.001, 0.01)
    x = network_input(tiles, m)
    assert x.shape == (2, 4, 20, 24) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, :3], tiles)
    np.testing.assert_allclose(x[1, 3], NOISE_GAIN * m.to_channels(tiles[1, 1])[0], rtol=1e-6)
    per_tile = network_input(tiles, [NoiseModel(0, 0), m])
    assert not per_tile[0, 3].any() and per_tile[1, 3].min() > 0
    with pytest.raises(ValueError, match="2 tiles"):
        network_input(tiles, [m])


@pytest.mark.parametrize("arch", ["fast", "span", "span-bf16"])
def test_noise_aware_blockwise_matches_whole(tmp_path, noise_models, arch, monkeypatch):
    """Also with bf16 inference allowed: it runs in bf16 (asserted) on any CPU, where one
    without native bf16 is told it has it (the autocast is emulated there, slower but
    the same arithmetic), and the output is not the float32 one."""
    from pssr_volume import precision
    from pssr_volume.predict import get_predictor

    model = noise_models[arch.removesuffix("-bf16")]
    bf16 = arch.endswith("-bf16")
    if bf16:
        config, module = load_model(model)
        model = save_model(tmp_path / "bf16.safetensors", module,
                           config.model_copy(update={"bf16_inference": True}))
        monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    vol = em_like((3, 70, 90), seed=5)
    inp = write_tiff(tmp_path / "in.tif", vol)
    cfg = RunConfig(input=inp, output=tmp_path / "o.ome.zarr", model=model,
                    cluster="sync", progress=False, block_shape=(2, 96, 128))
    run(cfg)
    job = make_plan(cfg.model_copy(update={"output": tmp_path / "x"})).job
    assert job.noise is not None and job.noise[0] + job.noise[1] > 0
    assert job.device == "cpu"  # the in-process (sync) run used this process's predictor
    ran = get_predictor(str(job.model_path), job.model_sha, job.device).autocast
    assert ran == (torch.bfloat16 if bf16 else None)
    whole = predict_whole(job)
    diff = np.abs(zarr.open_array(str(cfg.output / "0"))[:].astype(int) - whole.astype(int))
    assert diff.max() <= TOLERANCE_CROP and (diff > 0).mean() < 0.01
    if bf16:  # the bf16 path, not float32 under another name
        fp32 = predict_whole(make_plan(cfg.model_copy(update={
            "model": noise_models["span"], "output": tmp_path / "y"})).job)
        assert (fp32 != whole).any()


def test_estimate_reaches_network_summary_and_provenance(tmp_path, noise_models, cli):
    rng = np.random.default_rng(2)
    clean = em_like((2, 64, 64), seed=6).astype(float)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    inp = write_tiff(tmp_path / "in.tif", noisy)
    code, _, err = cli("run", inp, tmp_path / "a.ome.zarr", "--model", noise_models["fast"],
                         "--cluster", "sync", "--no-progress")
    assert code == 0, err
    line = next(s for s in err.splitlines() if s.startswith("noise"))
    assert "estimated" in line
    attrs = zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="r").attrs.asdict()
    rec = json.dumps(attrs)
    settings = next(v for k, v in _walk(attrs) if k == "noise")
    assert settings["source"] == "estimated" and settings["b"] + settings["a"] > 0, rec
    # the estimate is about the noise added: std 12 grey levels over the normalised range
    a_est = settings["a"] + settings["b"] * 0.5
    lo, hi = (next(v for k, v in _walk(attrs) if k == "intensity_range"))
    assert 0.5 < np.sqrt(a_est) * (hi - lo) / 12 < 2.0
    # --noise overrides it, is recorded as given, and changes the output
    code, _, err = cli("run", inp, tmp_path / "b.ome.zarr", "--model", noise_models["fast"],
                         "--cluster", "sync", "--no-progress", "--noise", "0.05,0")
    assert code == 0, err
    assert "given" in next(s for s in err.splitlines() if s.startswith("noise"))
    a = zarr.open_array(str(tmp_path / "a.ome.zarr" / "0"))[:]
    b = zarr.open_array(str(tmp_path / "b.ome.zarr" / "0"))[:]
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5


def _walk(obj, key=None):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)


def test_noise_flag_errors(tmp_path, models, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 32, 32)))
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", models["fast"],
                       "--noise", "0.01,0.001")
    assert code == 2 and "takes no noise input" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.ome.zarr").exists()
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--noise", "-1,0")
    assert code == 2 and "noise" in err.lower()
    assert len(err.strip().splitlines()) == 1


def test_receptive_field_counts_the_noise_map(noise_models):
    info = model_info(noise_models["fast"])
    blind = FastUNet(width=8)
    from pssr_volume.nets.receptive_field import receptive_field
    assert info.receptive_field[0] == receptive_field(blind, 1, 4, 4)[0] + 1
    span = model_info(noise_models["span"])
    # 6 block convs, head, tail, the noise map's 3x3 mean
    assert span.grid == 1 and span.receptive_field[0] == 2 * 3 + 1 + 1 + 1


def test_training_pairs_carry_the_per_tile_estimate(tmp_path):
    from pssr_volume.train.data import Sampler, open_sources, validation_set

    vol = em_like((12, 80, 80), seed=7)
    inp = write_tiff(tmp_path / "hr.tif", vol)
    cfg = TrainConfig(inputs=(inp,), out=tmp_path / "o", tile=64, batch_size=2, val_tiles=2,
                      noise_input=True)
    sampler = Sampler(open_sources(cfg.inputs, cfg.val_fraction, cfg.tile), cfg)
    lr, hr = sampler.batch(1)
    assert lr.shape == (2, 2, 16, 16) and hr.shape == (2, 1, 64, 64)
    for t in lr.numpy():
        m = estimate_noise(t[:1])
        np.testing.assert_allclose(t[1], NOISE_GAIN * m.to_channels(t[0])[0], rtol=1e-5)
    val = validation_set(sampler.sources, cfg)
    assert set(val) == {"pssr-em", "pssr2", "integrate-read"}
    assert all(v[0].shape[1] == 2 for v in val.values())


def test_span_refuses_no_blocks():
    with pytest.raises(ValueError):
        SPAN(blocks=0)


def test_blind_architecture_without_noise_support_is_refused():
    from pssr_volume.model import check_size

    with pytest.raises(PssrError, match="pssr-resunet"):
        check_size(ModelConfig(name="x", architecture="pssr-resunet", noise_input=True))
