"""Training data for the broader mix: 2-D image files and 16-bit volumes as training inputs,
targets that share a pipeline's contrast processing, and the two random mixes by name."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
from conftest import write_tiff

from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.presets import archive_pipeline, pssr_pipeline, random_pipeline
from pssr_volume.crappify.steps import Downsample, Gamma, Jpeg
from pssr_volume.demo import make_demo_volume
from pssr_volume.errors import PssrError
from pssr_volume.train.data import Sampler, make_pair, open_sources, read_stack
from pssr_volume.train_config import TrainConfig


def _config(tmp_path, inputs, **kw):
    args = {"inputs": tuple(inputs), "out": tmp_path / "o", "steps": 2, "batch_size": 2,
            "tile": 32, "val_tiles": 2, "threads": 1, **kw}
    return TrainConfig(**args)


def test_a_png_image_is_a_one_section_training_input(tmp_path):
    _, hr = make_demo_volume((1, 30, 24), seed=2)  # 1 x 120 x 96, uint8
    png = tmp_path / "tile.png"
    png.write_bytes(imagecodecs.png_encode(hr[0]))
    (src,) = open_sources((png,), 0.1, 48)
    assert src.volume.shape == (1, 120, 96) and src.volume.voxel_size is None
    assert src.train == ((0, 1), (0, 72)) and src.val == ((0, 1), (72, 120))
    stack = read_stack(src, 0, 8, 8, 48, 1)
    assert stack.shape == (1, 48, 48) and stack.min() >= 0 and stack.max() <= 1
    cfg = _config(tmp_path, [png], noise_input=True, tile=48)
    lr, target = Sampler([src], cfg).batch(1)
    assert tuple(lr.shape) == (2, 2, 12, 12) and tuple(target.shape) == (2, 1, 48, 48)
    rgb = tmp_path / "rgb.png"
    rgb.write_bytes(imagecodecs.png_encode(np.zeros((40, 40, 3), np.uint8)))
    with pytest.raises(PssrError, match="greyscale"):
        open_sources((rgb,), 0.1, 32)


def test_a_16_bit_volume_trains_like_its_8_bit_original(tmp_path):
    _, hr = make_demo_volume((12, 16, 16), seed=5)
    a = write_tiff(tmp_path / "a8.tif", hr, voxel=(50.0, 4.6, 4.6))
    b = write_tiff(tmp_path / "a16.tif", hr.astype(np.uint16) * 257, voxel=(50.0, 4.6, 4.6))
    (s8,), (s16,) = open_sources((a,), 0.1, 32), open_sources((b,), 0.1, 32)
    np.testing.assert_allclose(read_stack(s16, 3, 5, 7, 32, 1), read_stack(s8, 3, 5, 7, 32, 1),
                               atol=1e-6)


def test_the_target_gets_the_contrast_processing_not_the_degradation():
    stack = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    pipe = Pipeline(steps=(Gamma(0.5), Downsample(4, "area"), Jpeg(80)))
    lr, target = make_pair(stack, pipe, np.random.default_rng(1))
    assert lr.shape == (3, 4, 4) and target.shape == (1, 16, 16)
    np.testing.assert_allclose(target[0], np.sqrt(stack[1]), rtol=1e-6)
    plain = Pipeline(steps=(Downsample(4, "area"),))
    assert make_pair(stack, plain, np.random.default_rng(1))[1].tobytes() == stack[1:2].tobytes()


@pytest.mark.parametrize(("name", "draw"), [("mix", random_pipeline), ("mix-pssr", pssr_pipeline),
                                           ("mix-archive", archive_pipeline)])
def test_the_mixes_by_name(tmp_path, name, draw):
    _, hr = make_demo_volume((12, 16, 16), seed=5)
    inp = write_tiff(tmp_path / "hr.tif", hr, voxel=(50.0, 4.6, 4.6))
    cfg = _config(tmp_path, [inp], crappifier=name)
    sampler = Sampler(open_sources(cfg.inputs, cfg.val_fraction, cfg.tile), cfg)
    assert sampler.crappifier(np.random.default_rng(4)) == draw(np.random.default_rng(4), 4)
