"""Architectures, receptive field, and the safetensors model-file format."""

import pickle

import numpy as np
import pytest
import torch
from conftest import assert_radius_is_exact

from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError
from pssr_volume.model import load_model, model_info, read_config, save_model
from pssr_volume.nets.fast import FastUNet, Pointwise
from pssr_volume.nets.receptive_field import receptive_field


@pytest.mark.parametrize("slices", [1, 3, 5])
@pytest.mark.parametrize(("h", "w"), [(8, 12), (20, 16), (4, 4)])
def test_fast_net_upsamples_any_size_on_its_grid(slices, h, w):
    net = FastUNet(in_slices=slices, width=8).eval()
    with torch.inference_mode():
        assert net(torch.rand(2, slices, h, w)).shape == (2, 1, 4 * h, 4 * w)


def test_fresh_fast_net_starts_close_to_bilinear():
    torch.manual_seed(0)
    net = FastUNet(width=8).eval()
    x = torch.rand(1, 1, 16, 16)
    base = torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear")
    with torch.inference_mode():
        assert (net(x) - base).abs().mean() < 0.1


@pytest.mark.parametrize("kwargs", [{}, {"depth": 1, "width": 8}, {"blocks": 2, "width": 8}])
def test_receptive_field_is_exact(kwargs):
    """Perturbing inputs at the measured radius changes a grid cell's output;
    perturbing them one pixel further out changes nothing at all."""
    torch.manual_seed(0)
    net = FastUNet(**kwargs).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    g = net.downsampling
    ry, rx = receptive_field(net, 1, 4, g)
    assert ry == rx and ry > 0
    assert_radius_is_exact(net, ry, g)


@pytest.mark.parametrize(("arch", "args", "noise"), [
    ("pssr-fast", {"width": 16, "blocks": 2}, True), ("pssr-fast", {"width": 12, "depth": 1}, 0),
    ("pssr-span", {"width": 12, "blocks": 2}, True),
])
def test_the_narrow_probe_measures_the_receptive_field_of_the_full_width_network(arch, args,
                                                                                 noise):
    """model_info measures on a width-4 copy (fast, small): the same radius as the network
    at its own width, for every architecture that takes a width."""
    from pssr_volume.nets.receptive_field import PROBE_WIDTH, probe_config, receptive_field_of
    from pssr_volume.nets.registry import build

    cfg = ModelConfig(name="m", architecture=arch, arch_args=args, noise_input=bool(noise))
    assert probe_config(cfg).arch_args["width"] == PROBE_WIDTH
    net = build(cfg)
    full = receptive_field(net, cfg.in_channels, cfg.scale, net.downsampling)
    extra = int(bool(noise))  # the noise map: 3x3 means of the section
    assert receptive_field_of(cfg.model_dump_json()) == (full[0] + extra, full[1] + extra)


def test_a_width_multiplier_is_not_narrowed():
    from pssr_volume.nets.receptive_field import probe_config

    cfg = ModelConfig(name="m", architecture="pssr-resunet", arch_args={"width": 0.125})
    assert probe_config(cfg) == cfg


def test_pointwise_has_no_context():
    assert receptive_field(Pointwise(), 1, 4, 1) == (0, 0)


def test_round_trip(tmp_path):
    torch.manual_seed(1)
    net = FastUNet(width=8)
    cfg = ModelConfig(name="t", architecture="pssr-fast", arch_args={"width": 8},
                      metrics={"psnr": 30.0})
    path = save_model(tmp_path / "m.safetensors", net, cfg)
    loaded_cfg, loaded = load_model(path)
    assert loaded_cfg == cfg
    x = torch.rand(1, 1, 12, 12)
    with torch.inference_mode():
        np.testing.assert_array_equal(net.eval()(x).numpy(), loaded(x).numpy())
    info = model_info(path)
    assert info.receptive_field == (26, 26) and info.default_halo == (28, 28) and info.grid == 4
    with torch.no_grad():
        net.head.bias.add_(1)
    other = save_model(tmp_path / "m2.safetensors", net, cfg)
    assert model_info(other).sha256 != info.sha256


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    torch.save({"state": _Payload(marker)}, tmp_path / "evil.pt")
    for path in (evil, tmp_path / "evil.pt"):
        with pytest.raises(PssrError, match="not a pssr-volume model file"):
            load_model(path)
    assert not marker.exists()


def test_bad_model_files(tmp_path):
    with pytest.raises(PssrError, match="not found"):
        read_config(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(PssrError, match="not a pssr-volume model file"):
        read_config(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(PssrError, match="without pssr-volume model metadata"):
        read_config(tmp_path / "plain.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "arch.safetensors"), metadata={
        "pssr_volume": ModelConfig(name="x", architecture="nope").model_dump_json()})
    with pytest.raises(PssrError, match="unknown architecture 'nope'"):
        load_model(tmp_path / "arch.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "w.safetensors"), metadata={
        "pssr_volume": ModelConfig(name="x", architecture="pssr-fast").model_dump_json()})
    with pytest.raises(PssrError, match="weights do not match"):
        load_model(tmp_path / "w.safetensors")
    good = save_model(tmp_path / "good.safetensors", FastUNet(width=8),
                      ModelConfig(name="x", architecture="pssr-fast", arch_args={"width": 8}))
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:5000])
    with pytest.raises(PssrError):
        load_model(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "float32"])
def test_finishing_in_torch_gives_the_bytes_of_the_numpy_path(tmp_path, dtype):
    """What a GPU does with ``finish`` (map back, round, clip, cast in torch), run here on
    the CPU: the same bytes as the CPU path's :func:`denormalize`."""
    from pssr_volume.intensity import denormalize
    from pssr_volume.predict import Predictor

    torch.manual_seed(1)
    net = FastUNet(width=8)
    with torch.no_grad():
        net.tail.weight.normal_(0, 0.3)
    path = save_model(tmp_path / "m.safetensors", net,
                      ModelConfig(name="m", architecture="pssr-fast", arch_args={"width": 8}))
    predictor = Predictor(str(path))
    tiles = np.random.default_rng(0).random((3, 1, 24, 20), dtype=np.float32)
    lo, hi = (3.0, 250.0) if dtype != "int16" else (-900.0, 31000.0)
    for batch in (2, 8):
        floats = predictor(tiles, batch)
        done = predictor(tiles, batch, (lo, hi, dtype))
        assert done.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(done, denormalize(floats, lo, hi, dtype))
