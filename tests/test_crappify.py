"""Tests of the crappifiers: real noise statistics, exact resampling, order, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.transform import rescale

from pssr_volume.crappify.pipeline import Pipeline, crop_to_multiple
from pssr_volume.crappify.presets import PRESETS, get_preset, random_pipeline
from pssr_volume.crappify.steps import (
    Blur,
    Downsample,
    GaussianNoise,
    LocalVarNoise,
    PoissonNoise,
    SaltPepper,
    step_from_dict,
)

C = 0.5  # grey level of the constant test images


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def const(shape: tuple[int, ...], c: float = C) -> np.ndarray:
    return np.full(shape, c, dtype=np.float32)


def textured(shape: tuple[int, ...] = (64, 48), seed: int = 1) -> np.ndarray:
    return rng(seed).random(shape).astype(np.float32)


# --- shapes, dtypes, determinism ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("scale", [2, 4])
def test_preset_output_shape_dtype_range(name: str, scale: int) -> None:
    out = get_preset(name, scale)(textured((64, 48)), rng())
    assert out.shape == (64 // scale, 48 // scale)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert get_preset(name, scale).scale == scale


def test_presets_match_design() -> None:
    em, fluo, p2 = PRESETS["pssr-em"], PRESETS["pssr-fluo"], PRESETS["pssr2"]
    assert em.steps == (LocalVarNoise(0.05, 3.0), Downsample(4, "bilinear"))
    assert fluo.steps == (LocalVarNoise(0.5, 5.0), SaltPepper(0.005, 0.005), Downsample(4))
    assert p2.steps == (Downsample(4, "bilinear"), PoissonNoise(255.0))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_same_seed_same_bytes_other_seed_differs(name: str) -> None:
    img, p = textured(), PRESETS[name]
    a, b, c = p(img, rng(7)), p(img, rng(7)), p(img, rng(8))
    assert a.tobytes() == b.tobytes()
    if name == "jpeg":  # no noise: downsampling and JPEG are deterministic
        assert a.tobytes() == c.tobytes()
    else:
        assert not np.array_equal(a, c)


def test_pure_input_not_modified() -> None:
    img = textured()
    before = img.copy()
    PRESETS["pssr-fluo"](img, rng())
    np.testing.assert_array_equal(img, before)


# --- noise statistics on constant images ----------------------------------------------------


def test_local_var_noise_variance_and_mean() -> None:
    factor = 0.02
    out = LocalVarNoise(factor, 3.0).apply(const((512, 512)), rng())
    assert out.var() == pytest.approx(factor * C, rel=0.03)
    assert out.mean() == pytest.approx(C, abs=0.002)


def test_local_var_noise_follows_local_signal() -> None:
    img = np.concatenate([const((256, 512), 0.2), const((256, 512), 0.6)])
    out = LocalVarNoise(0.01, 1.0).apply(img, rng())
    assert out[16:240].var() == pytest.approx(0.01 * 0.2, rel=0.05)
    assert out[272:496].var() == pytest.approx(0.01 * 0.6, rel=0.05)


def test_gaussian_noise_std() -> None:
    out = GaussianNoise(0.05).apply(const((512, 512)), rng())
    assert out.std() == pytest.approx(0.05, rel=0.02)
    assert out.mean() == pytest.approx(C, abs=0.001)


def test_poisson_noise_variance_is_signal_over_peak() -> None:
    peak = 100.0
    out = PoissonNoise(peak).apply(const((512, 512)), rng())
    assert out.var() == pytest.approx(C / peak, rel=0.03)
    assert out.mean() == pytest.approx(C, abs=0.001)
    assert np.allclose(out * peak, np.round(out * peak), atol=1e-4)  # whole counts


def test_salt_and_pepper_fractions() -> None:
    out = SaltPepper(0.01, 0.02).apply(const((512, 512)), rng())
    assert (out == 1.0).mean() == pytest.approx(0.01, rel=0.1)
    assert (out == 0.0).mean() == pytest.approx(0.02, rel=0.1)
    assert ((out == 1.0) | (out == 0.0) | (out == np.float32(C))).all()


def test_noise_clips_to_unit_range() -> None:
    out = GaussianNoise(0.5).apply(const((128, 128), 0.9), rng())
    assert out.min() >= 0.0 and out.max() == 1.0


def test_blur_keeps_mean_and_smooths() -> None:
    img = textured((64, 64))
    out = Blur(2.0).apply(img, rng())
    assert out.mean() == pytest.approx(img.mean(), abs=1e-3)
    assert out.std() < 0.3 * img.std()


# --- resampling -----------------------------------------------------------------------------


def cells(img: np.ndarray, f: int) -> np.ndarray:
    """(y/f, f, x/f, f) view of the f x f cells."""
    h, w = img.shape
    return img.reshape(h // f, f, w // f, f)


def test_bilinear_x4_is_mean_of_central_2x2() -> None:
    y, x = np.mgrid[0:32, 0:48].astype(np.float32)
    for img in (textured((32, 48)), (y + 2 * x) / 200, ((y + x) % 2).astype(np.float32)):
        out = Downsample(4, "bilinear").apply(img, rng())
        np.testing.assert_allclose(out, cells(img, 4)[:, 1:3, :, 1:3].mean(axis=(1, 3)), atol=1e-6)
    ramp = Downsample(4, "bilinear").apply(x, rng())
    np.testing.assert_allclose(ramp[0], 4 * np.arange(12) + 1.5)  # LR centres at 4i + 1.5


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("method,order", [("bilinear", 1), ("bicubic", 3)])
def test_interpolating_methods_match_skimage_rescale(factor: int, method: str, order: int) -> None:
    img = textured((48, 36))
    out = Downsample(factor, method).apply(img, rng())
    want = rescale(img.astype(np.float64), 1 / factor, order=order, anti_aliasing=False)
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_area_is_cell_mean() -> None:
    img = textured((32, 48))
    out = Downsample(4, "area").apply(img, rng())
    np.testing.assert_allclose(out, cells(img, 4).mean(axis=(1, 3)), atol=1e-6)
    checker = ((np.indices((32, 48)).sum(axis=0)) % 2).astype(np.float32)
    np.testing.assert_allclose(Downsample(4, "area").apply(checker, rng()), 0.5)


@pytest.mark.parametrize("method", ["bilinear", "area", "bicubic"])
def test_downsample_rejects_non_multiple(method: str) -> None:
    with pytest.raises(ValueError, match="multiple"):
        Downsample(4, method).apply(np.zeros((30, 32), np.float32), rng())
    with pytest.raises(ValueError, match="multiple"):
        PRESETS["pssr-em"](np.zeros((2, 32, 33), np.float32), rng())


def test_crop_to_multiple() -> None:
    assert crop_to_multiple(np.zeros((33, 30)), 4).shape == (32, 28)
    assert crop_to_multiple(np.zeros((2, 32, 31)), 4).shape == (2, 32, 28)
    out = PRESETS["pssr-em"](crop_to_multiple(textured((35, 42)), 4), rng())
    assert out.shape == (8, 10)


# --- order of noise and downsampling --------------------------------------------------------


def test_order_signature_pssr_em_vs_pssr2() -> None:
    hr = const((1024, 1024))
    # pssr-em: noise of variance 0.05*C per HR pixel, then each LR pixel averages 4 of them.
    em = PRESETS["pssr-em"](hr, rng())
    assert em.var() == pytest.approx(0.05 * C / 4, rel=0.05)
    # pssr2: the LR pixel is downsampled first, then gets the full Poisson variance C/255.
    p2 = PRESETS["pssr2"](hr, rng())
    assert p2.var() == pytest.approx(C / 255, rel=0.05)
    # the reversed order would average the noise: a quarter of that variance
    reversed_p2 = Pipeline((PoissonNoise(255.0), Downsample(4)))(hr, rng())
    assert reversed_p2.var() == pytest.approx(C / 255 / 4, rel=0.05)


# --- stacks ---------------------------------------------------------------------------------


def test_stack_is_degraded_slice_by_slice() -> None:
    vol = np.stack([textured((32, 32), s) for s in range(3)])
    p = PRESETS["pssr-fluo"]
    out = p(vol, rng(5))
    assert out.shape == (3, 8, 8) and out.dtype == np.float32
    stream = rng(5)
    np.testing.assert_array_equal(out, np.stack([p(s, stream) for s in vol]))
    same = p(np.stack([vol[0]] * 3), rng(5))
    assert not np.array_equal(same[0], same[1])  # independent noise per slice


def test_rejects_bad_dimensionality() -> None:
    with pytest.raises(ValueError, match="shape"):
        PRESETS["pssr2"](np.zeros((1, 2, 8, 8)), rng())


# --- configuration as data ------------------------------------------------------------------


def pipelines_to_round_trip() -> list[Pipeline]:
    return [*PRESETS.values(), get_preset("pssr2", 2), *(random_pipeline(rng(s)) for s in range(6))]


@pytest.mark.parametrize("pipe", pipelines_to_round_trip(), ids=lambda p: p.name)
def test_json_round_trip_gives_equal_pipeline_and_output(pipe: Pipeline) -> None:
    again = Pipeline.from_json(pipe.to_json())
    also = Pipeline.from_dict(json.loads(json.dumps(pipe.to_dict())))
    assert again == pipe and also == pipe
    img = textured((32, 32))
    assert again(img, rng(3)).tobytes() == pipe(img, rng(3)).tobytes()


def test_step_round_trip_and_validation() -> None:
    for step in (Blur(0.5), GaussianNoise(0.1), LocalVarNoise(0.05, 3.0), PoissonNoise(30.0),
                 SaltPepper(0.01, 0.0), Downsample(4, "area")):
        assert step_from_dict(step.to_dict()) == step
    with pytest.raises(ValueError):
        Pipeline.from_dict({"steps": [{"kind": "blur", "sigma": 1.0, "radius": 2}]})
    with pytest.raises(ValueError):
        Blur(-1.0)
    with pytest.raises(ValueError):
        SaltPepper(0.7, 0.7)
    with pytest.raises(ValueError):
        Downsample(4, "lanczos")


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="pssr-em.*pssr-fluo.*pssr2"):
        get_preset("pssr3")


def test_describe_lists_steps_in_order() -> None:
    text = PRESETS["pssr2"].describe()
    assert "x4" in text
    assert text.index("downsample 1/4 (bilinear)") < text.index("Poisson")


# --- random pipelines -----------------------------------------------------------------------


def test_random_pipeline_is_seeded_and_covers_the_mix() -> None:
    assert random_pipeline(rng(11)) == random_pipeline(rng(11))
    pipes = [random_pipeline(rng(s), scale=4) for s in range(200)]
    assert len({p.to_json() for p in pipes}) > 180  # only plain downsamplings repeat
    seen = set()
    for p in pipes:
        assert p.scale == 4
        kinds = [s.kind for s in p.steps]
        down = kinds.index("downsample")
        seen.add(next(s for s in p.steps if isinstance(s, Downsample)).method)
        if "local_var_noise" in kinds:
            assert kinds.index("local_var_noise") < down
            lv = next(s for s in p.steps if isinstance(s, LocalVarNoise))
            assert 0.003 <= lv.factor <= 0.15
            seen.add("noise-then-downsample")
        if "poisson_noise" in kinds:
            pn = next(s for s in p.steps if isinstance(s, PoissonNoise))
            before = kinds.index("poisson_noise") < down
            assert (5 <= pn.peak <= 500) if before else (20 <= pn.peak <= 2000)
            seen.add("poisson-hr" if before else "downsample-then-noise")
        if not {"local_var_noise", "poisson_noise", "gaussian_noise"} & set(kinds):
            seen.add("clean")
        if "gaussian_noise" in kinds:
            assert kinds.index("gaussian_noise") > down
            seen.add("gaussian")
    assert seen == {"bilinear", "area", "noise-then-downsample", "poisson-hr",
                    "downsample-then-noise", "clean", "gaussian"}
    assert random_pipeline(rng(0), scale=2).scale == 2
