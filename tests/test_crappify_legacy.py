"""Tests of the legacy-data crappifier steps: seeded, shape and dtype kept, each statistic in
its range; the legacy training mix; 16-bit inputs; training targets that share tone steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from scipy.fft import dctn

from pssr_volume.crappify.acquisition import airy_kernel
from pssr_volume.crappify.pipeline import Pipeline
from pssr_volume.crappify.presets import (
    LEGACY_ODDS,
    PRESETS,
    archive_pipeline,
    get_preset,
    legacy_pipeline,
    pssr_pipeline,
    random_pipeline,
)
from pssr_volume.crappify.steps import (
    Clahe,
    Downsample,
    Gamma,
    Jpeg,
    PoissonGaussian,
    PsfBlur,
    Quantize,
    Shading,
    Stretch,
    Stripes,
    step_from_dict,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def smooth(shape: tuple[int, ...] = (64, 64), seed: int = 1) -> np.ndarray:
    """A smooth textured image spanning [0, 1]."""
    img = ndimage.gaussian_filter(rng(seed).random(shape), 2.0)
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def high_frequency_power(img: np.ndarray) -> float:
    """Power of the spectrum beyond a quarter of the sampling frequency."""
    f = np.fft.fftfreq(img.shape[0])[:, None] ** 2 + np.fft.fftfreq(img.shape[1])[None] ** 2
    return float((np.abs(np.fft.fft2(img - img.mean())) ** 2)[np.sqrt(f) > 0.25].sum())


STEPS = [
    Gamma(0.7), Stretch(1.0, 99.0), Clahe(0.02, 32), Jpeg(80), Quantize(8, 0.2, 0.6),
    PsfBlur(2.0), PsfBlur(2.0, "airy"), PoissonGaussian(100.0, 0.01), Stripes(0.01, 0.02, 6.0),
    Shading(0.2, 2, "multiplicative", 3), Shading(0.1, 3, "additive", 4),
]


# --- every step: seeded, shape and dtype kept, range, serialisation --------------------------


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.describe())
def test_step_is_seeded_and_keeps_shape_dtype_and_range(step) -> None:
    img = smooth((40, 48))
    a, b = step.apply(img, rng(5)), step.apply(img, rng(5))
    assert a.tobytes() == b.tobytes()
    assert a.shape == img.shape and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.array_equal(a, img)
    assert step_from_dict(json.loads(json.dumps(step.to_dict()))) == step
    stack = np.stack([img, img[::-1]])
    out = step.apply(stack, rng(5))
    assert out.shape == stack.shape and out.dtype == np.float32
    np.testing.assert_array_equal(img, smooth((40, 48)))  # input not modified


def test_random_steps_differ_with_the_seed() -> None:
    img = smooth()
    for step in (PoissonGaussian(50.0, 0.01), Stripes(0.02, 0.02, 5.0)):
        assert not np.array_equal(step.apply(img, rng(1)), step.apply(img, rng(2)))


def test_bad_settings_are_refused() -> None:
    for make in (lambda: Gamma(0.0), lambda: Stretch(60.0, 99.0), lambda: Jpeg(0),
                 lambda: Jpeg(101), lambda: Quantize(8, 0.5, 0.4), lambda: Quantize(17),
                 lambda: PsfBlur(1.0, "lorentz"), lambda: Stripes(0.01, 0.0, 1.0),
                 lambda: Shading(0.1, 2, "both")):
        with pytest.raises(ValueError):
            make()


# --- contrast processing ---------------------------------------------------------------------


def test_gamma_moves_the_histogram_as_the_power_law_says() -> None:
    img = smooth()
    np.testing.assert_allclose(Gamma(0.5).apply(img, rng()), np.sqrt(img), rtol=1e-6)
    assert np.median(Gamma(0.6).apply(img, rng())) > np.median(img)
    assert np.median(Gamma(1.6).apply(img, rng())) < np.median(img)


def test_stretch_maps_percentiles_to_the_full_range_and_saturates_the_tails() -> None:
    img = 0.3 + 0.4 * smooth()  # low contrast: [0.3, 0.7]
    out = Stretch(2.0, 98.0).apply(img, rng())
    assert out.min() == 0.0 and out.max() == 1.0
    assert 0.015 < (out == 0).mean() < 0.03 and 0.015 < (out == 1).mean() < 0.03
    flat = np.full((16, 16), 0.4, np.float32)
    np.testing.assert_array_equal(Stretch(1.0, 99.0).apply(flat, rng()), flat)


def test_clahe_raises_local_contrast_and_flattens_the_histogram() -> None:
    img = 0.4 + 0.2 * smooth((96, 96))
    out = Clahe(0.03, 32).apply(img, rng())
    local = lambda a: ndimage.generic_filter(a, np.std, size=8)[::8, ::8].mean()  # noqa: E731
    assert local(out) > 2 * local(img)
    hist = lambda a: np.histogram(a, bins=16, range=(0, 1))[0]  # noqa: E731
    assert np.count_nonzero(hist(out)) == 16 > np.count_nonzero(hist(img))
    assert Clahe(0.005, 32).apply(img, rng()).std() < out.std()  # the clip limits it


# --- storage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("quality", [70, 80, 95])
def test_jpeg_lowers_psnr_within_a_band_and_makes_8x8_blocks(quality: int) -> None:
    img = smooth()
    out = Jpeg(quality).apply(img, rng())
    assert 38.0 < psnr(out, img) < 55.0
    err = np.abs(np.diff(out - img, axis=1))
    at_edges, inside = err[:, 7::8].mean(), np.delete(err, np.s_[7::8], axis=1).mean()
    assert at_edges > 1.08 * inside  # block boundaries every 8 pixels
    assert np.all(np.rint(out * 255) == out * np.float32(255))  # 8-bit grey levels


def test_jpeg_quality_orders_the_error() -> None:
    img = smooth()
    scores = [psnr(Jpeg(q).apply(img, rng()), img) for q in (70, 80, 90, 95)]
    assert scores == sorted(scores)
    assert scores[-1] - scores[0] > 4.0


def test_quantize_posterises_8_bit_windows_and_keeps_16_bit_detail() -> None:
    img = smooth()
    coarse = Quantize(8, 0.25, 0.5).apply(img, rng())
    assert len(np.unique(coarse)) <= 65
    assert np.abs(coarse - img).max() <= 0.5 / 255 / 0.25 + 1e-6
    fine = Quantize(16).apply(img, rng())
    assert np.abs(fine - img).max() <= 0.5 / 65535 + 1e-7


# --- acquisition -------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["gaussian", "airy"])
def test_psf_blur_removes_high_frequencies_and_keeps_the_mean(profile: str) -> None:
    img = rng(3).random((64, 64)).astype(np.float32)
    out = PsfBlur(2.5, profile).apply(img, rng())
    assert high_frequency_power(out) < 0.05 * high_frequency_power(img)
    assert abs(float(out.mean()) - float(img.mean())) < 1e-3
    assert high_frequency_power(PsfBlur(1.0, profile).apply(img, rng())) > \
        high_frequency_power(out)


def test_airy_kernel_has_the_stated_width() -> None:
    k = airy_kernel(4.0)
    assert k.sum() == pytest.approx(1.0)
    centre = k.shape[0] // 2
    profile = k[centre] / k[centre, centre]
    above = np.flatnonzero(profile >= 0.5)
    assert above[-1] - above[0] + 1 in (3, 4, 5)  # FWHM 4 px, sampled at pixels


@pytest.mark.parametrize("dose", [10.0, 100.0, 1000.0])
def test_poisson_gaussian_variance_matches_the_dose(dose: float) -> None:
    c, read = 0.5, 0.01
    out = PoissonGaussian(dose, read).apply(np.full((128, 128), c, np.float32), rng(2))
    assert out.mean() == pytest.approx(c, abs=0.01)
    assert out.var() == pytest.approx(c / dose + read**2, rel=0.06)


def test_stripes_put_the_noise_energy_in_rows() -> None:
    img = 0.2 + 0.6 * smooth((64, 64))  # no clipping
    lines = Stripes(0.02).apply(img, rng(1)) - img
    row_means = lines.mean(axis=1)
    assert row_means.var() > 0.95 * lines.var()  # each row one offset
    assert np.abs(lines - row_means[:, None]).max() < 1e-6
    assert lines.mean(axis=0).var() < 0.05 * row_means.var()
    periodic = Stripes(0.0, 0.03, 8.0).apply(np.full((64, 64), 0.5, np.float32), rng(1))
    spectrum = np.abs(np.fft.rfft(periodic.mean(axis=1) - 0.5))
    assert int(np.argmax(spectrum)) == 64 // 8  # one cycle every 8 rows


def test_shading_is_low_frequency_and_seeded_by_its_own_seed() -> None:
    step = Shading(0.2, 2, "multiplicative", 7)
    field = step.field((64, 80))
    assert abs(float(field.mean())) < 1e-6 and np.abs(field).max() == pytest.approx(1.0)
    power = dctn(field, norm="ortho") ** 2
    assert power[:8, :8].sum() > 0.99 * power.sum()  # a few cycles per image at most
    img = np.full((64, 80), 0.5, np.float32)
    out = step.apply(img, rng(1))
    np.testing.assert_allclose(out, 0.5 * (1 + 0.2 * field), rtol=1e-5)
    np.testing.assert_array_equal(out, step.apply(img, rng(2)))  # the generator is not used
    assert not np.array_equal(out, Shading(0.2, 2, "multiplicative", 8).apply(img, rng(1)))


# --- 16-bit inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_images_are_degraded_into_their_own_dtype(dtype) -> None:
    top = np.iinfo(dtype).max
    img = np.rint(smooth((32, 32)) * top).astype(dtype)
    pipe = Pipeline(steps=(Gamma(0.8), Downsample(4, "area"), PoissonGaussian(200.0, 0.01)))
    out = pipe.degrade_integer(img, rng(4))
    assert out.dtype == dtype and out.shape == (8, 8)
    expected = pipe(img.astype(np.float64) / top, rng(4))
    np.testing.assert_array_equal(out, np.rint(expected.astype(np.float64) * top))
    if dtype == np.uint16:
        assert len(np.unique(out)) > 50  # finer than 8 bits
    with pytest.raises(ValueError, match="unsigned"):
        pipe.degrade_integer(img.astype(np.float32), rng())


# --- presets, targets and the training mix ------------------------------------------------


def test_jpeg_preset_is_area_integration_then_jpeg_75() -> None:
    p = PRESETS["jpeg"]
    assert p.steps == (Downsample(4, "area"), Jpeg(75)) and p.scale == 4
    img = smooth((64, 64))
    assert get_preset("jpeg", 2)(img, rng()).shape == (32, 32)
    lr = p(img, rng())
    area = Downsample(4, "area").apply(img, rng())
    assert 25.0 < psnr(lr, area) < 45.0


def test_the_target_shares_leading_tone_steps_only() -> None:
    img = smooth((32, 32))
    pipe = Pipeline(steps=(Gamma(0.8), Shading(0.1, 2, seed=1), PsfBlur(2.0), Downsample(4),
                           Gamma(1.2)))
    assert pipe.tone_steps == pipe.steps[:2]
    expected = Shading(0.1, 2, seed=1).apply(Gamma(0.8).apply(img, rng()), rng())
    np.testing.assert_array_equal(pipe.target(img), expected)
    plain = get_preset("pssr-em")
    assert plain.tone_steps == () and plain.target(img).tobytes() == img.tobytes()


def test_mix_draws_legacy_degradations_for_a_minority() -> None:
    assert random_pipeline(rng(3)) == random_pipeline(rng(3))
    pipes = [random_pipeline(rng(s)) for s in range(400)]
    legacy = {"gamma", "stretch", "clahe", "shading", "psf_blur", "poisson_gaussian", "stripes",
              "jpeg", "quantize"}
    drawn = [{s.kind for s in p.steps} for p in pipes]
    share = np.mean([bool(k & legacy) for k in drawn])
    assert 0.2 < share < 0.45  # most tiles get the PSSR/PSSR2 mix
    assert set().union(*drawn) >= legacy
    for p in (legacy_pipeline(rng(s)) for s in range(200)):
        kinds = [s.kind for s in p.steps]
        down = kinds.index("downsample")
        assert p.scale == 4 and kinds.count("downsample") == 1
        assert all(s.tone for s in p.steps[: len(p.tone_steps)])
        assert all(k in ("gamma", "stretch", "clahe", "shading", "psf_blur") for k in kinds[:down])
        for late in ("jpeg", "quantize", "poisson_gaussian", "stripes"):
            assert late not in kinds or kinds.index(late) > down  # the low-resolution grid
        if "jpeg" in kinds:
            assert kinds[-1] == "jpeg" and 70 <= p.steps[-1].quality <= 95
        assert Pipeline.from_json(p.to_json()) == p
    assert legacy_pipeline(rng(0), scale=2).scale == 2


def test_legacy_pipelines_run_on_training_tiles_quickly() -> None:
    img = smooth((64, 64))
    for s in range(30):
        p = legacy_pipeline(rng(s))
        out, target = p(img, rng(s)), p.target(img)
        assert out.shape == (16, 16) and out.dtype == np.float32
        assert target.shape == img.shape and out.min() >= 0 and out.max() <= 1


def test_pssr_mix_is_unchanged_by_the_legacy_steps() -> None:
    # the pipelines of the PSSR/PSSR2 mix (mix-pssr) draw as before the legacy steps came
    p = pssr_pipeline(rng(11))
    assert {s.kind for s in p.steps} <= {"blur", "downsample", "local_var_noise",
                                          "poisson_noise", "gaussian_noise"}


def test_the_archive_mix_stores_clean_sections_more_often() -> None:
    """``mix-archive`` draws the same kinds of steps as ``mix``; JPEG or 8-bit storage with no
    noise added before it becomes several times more frequent (the JPEG cells of the
    leave-one-dataset-out table, docs/RESULTS.md section 7)."""
    noise = {"poisson_gaussian", "gaussian_noise", "poisson_noise", "local_var_noise",
             "stripes"}

    def clean_storage(draw) -> float:
        kinds = [{s.kind for s in draw(rng(s)).steps} for s in range(1500)]
        return float(np.mean([bool(k & {"jpeg", "quantize"}) and not k & noise
                              for k in kinds]))

    assert archive_pipeline(rng(5)) == archive_pipeline(rng(5))
    assert random_pipeline(rng(5)) == random_pipeline(rng(5), 4, LEGACY_ODDS, 0.75)  # unchanged
    mix, archive = clean_storage(random_pipeline), clean_storage(archive_pipeline)
    assert 0.02 < mix < 0.07 and archive > 2.5 * mix, (mix, archive)
