"""pssr-resunet: shapes, exact receptive field, blockwise == whole-image, attention, cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from conftest import assert_radius_is_exact, em_like, write_tiff
from torch import nn
from whole_volume import predict_whole

from pssr_volume.config import ModelConfig, RunConfig
from pssr_volume.errors import PssrError
from pssr_volume.model import describe, load_model, model_info, save_model
from pssr_volume.nets.fast import FastUNet
from pssr_volume.nets.receptive_field import receptive_field
from pssr_volume.nets.registry import architectures
from pssr_volume.nets.resunet import ResUNet
from pssr_volume.plan import make_plan
from pssr_volume.run import run

TINY = {"width": 0.125, "layers": [1, 1, 1, 1]}
THIN = {"width": 1 / 32, "layers": [1, 1, 1, 1]}  # same topology, cheaper still


@pytest.fixture(scope="module")
def thin_model(tmp_path_factory):
    """A random THIN pssr-resunet file with a visible response, and its ModelInfo (the
    receptive-field probe runs once; model_info caches it per configuration)."""
    torch.manual_seed(2)
    net = ResUNet(**THIN)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.2)
    path = save_model(tmp_path_factory.mktemp("resunet") / "r.safetensors", net,
                      ModelConfig(name="r", architecture="pssr-resunet", arch_args=THIN))
    return path, model_info(path)


def test_registered_and_built_from_a_config():
    assert architectures()["pssr-resunet"] is ResUNet
    net = ResUNet(**TINY)
    assert net.downsampling == 8 and not net.global_context
    assert ResUNet(scale=2, **TINY).downsampling == 16
    assert ResUNet(scale=3, **TINY).downsampling == 32


@pytest.mark.parametrize("in_slices", [1, 3, 5])
def test_shapes_for_any_size_on_the_grid(in_slices):
    net = ResUNet(in_slices=in_slices, **THIN).eval()
    with torch.inference_mode():
        for h, w in [(8, 8), (16, 40), (24, 8)]:
            assert net(torch.rand(2, in_slices, h, w)).shape == (2, 1, 4 * h, 4 * w)
        assert net(torch.rand(1, in_slices, 13, 7)).shape == (1, 1, 52, 28)  # padded inside


def test_starts_as_bilinear_upsampling_of_the_centre_section():
    torch.manual_seed(4)
    net = ResUNet(in_slices=3, **TINY).eval()
    x = torch.rand(1, 3, 16, 16)
    base = nn.functional.interpolate(x[:, 1:2], scale_factor=4, mode="bilinear")
    other = nn.functional.interpolate(x[:, :1], scale_factor=4, mode="bilinear")
    with torch.inference_mode():
        y = net(x)
    assert (y - base).abs().mean() < 0.05 < (y - other).abs().mean()


def test_receptive_field_is_exact(thin_model):
    """In float64, perturbing inputs at the measured radius changes a grid cell's
    output; one pixel further out changes nothing (max-pooling included)."""
    path, info = thin_model
    _, net = load_model(path)
    net = net.double()
    with torch.no_grad():  # no dead paths: small positive biases
        for m in net.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.fill_(0.01)
    g = net.downsampling
    ry, rx = info.receptive_field
    assert ry == rx == 66 and info.grid == g == 8
    assert_radius_is_exact(net, ry, g, torch.float64)


def test_blockwise_matches_whole_within_tolerance(tmp_path, thin_model):
    vol = em_like((2, 24, 32), seed=5)
    inp = write_tiff(tmp_path / "in.tif", vol)
    cfg = RunConfig(input=inp, output=tmp_path / "o.ome.zarr", model=thin_model[0],
                    cluster="sync", block_shape=(1, 64, 64), progress=False)
    run(cfg)
    out = zarr.open_group(str(cfg.output), mode="r")["0"][:]
    job = make_plan(cfg.model_copy(update={"output": tmp_path / "x"})).job
    assert job.grid.halo[1:] == (72, 72)  # the receptive field (66) rounded up to the grid
    whole = predict_whole(job)
    diff = np.abs(out.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert np.abs(whole.astype(int) - vol.repeat(4, 1).repeat(4, 2)).mean() > 1


def test_self_attention_declares_global_context(tmp_path):
    args = {**TINY, "self_attention": True}
    net = ResUNet(**args)
    assert net.global_context
    path = save_model(tmp_path / "sa.safetensors", net,
                      ModelConfig(name="sa", architecture="pssr-resunet", arch_args=args))
    info = model_info(path)  # no "larger than 8192" failure: the conv path's field
    assert info.global_context and info.receptive_field == (66, 66)
    assert describe(info)["global_context"] is True and info.default_halo == (72, 72)

    class Global(FastUNet):
        global_context = True

    with pytest.raises(PssrError, match="unbounded"):
        receptive_field(Global(width=4), 1, 4, 4)


def test_weight_normed_model_file_round_trip(tmp_path):
    torch.manual_seed(3)
    net = ResUNet(in_slices=3, **TINY).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    cfg = ModelConfig(name="t", architecture="pssr-resunet", arch_args=TINY, in_slices=3)
    _, loaded = load_model(save_model(tmp_path / "m.safetensors", net, cfg))
    x = torch.rand(1, 3, 16, 8)
    with torch.inference_mode():
        assert torch.equal(net(x), loaded(x))


def test_cost_full_size():
    from benchmarks.flops import count_params, gflop_per_out_mpx, make

    res = make("pssr-resunet")
    assert 40e6 < count_params(res) < 42e6  # ResNet-34 U-Net (fastai's PSSR net: 41.1 M)
    g_res = gflop_per_out_mpx(res, 1, 4, 16)
    g_fast = gflop_per_out_mpx(make("pssr-fast"), 1, 4, 16)
    assert 700 < g_res < 900 and g_res > 20 * g_fast
