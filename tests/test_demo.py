"""Tests of the synthetic EM demo volume and its TIFF output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from pssr_volume.crappify.steps import Downsample
from pssr_volume.demo import make_demo_volume, write_demo_tiff
from pssr_volume.errors import PssrError

SMALL = (3, 40, 48)


@pytest.fixture(scope="module")
def demo() -> tuple[np.ndarray, np.ndarray]:
    return make_demo_volume()


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_shapes_and_dtypes(demo: tuple[np.ndarray, np.ndarray]) -> None:
    lr, hr = demo
    assert lr.shape == (4, 192, 160) and lr.dtype == np.uint8
    assert hr.shape == (4, 768, 640) and hr.dtype == np.uint8
    lr2, hr2 = make_demo_volume((2, 5, 7), seed=3)
    assert lr2.shape == (2, 5, 7) and hr2.shape == (2, 20, 28)


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a_lr, a_hr = make_demo_volume(SMALL, seed=1)
    b_lr, b_hr = make_demo_volume(SMALL, seed=1)
    c_lr, c_hr = make_demo_volume(SMALL, seed=2)
    assert a_lr.tobytes() == b_lr.tobytes() and a_hr.tobytes() == b_hr.tobytes()
    assert corr(a_hr, c_hr) < 0.3  # another seed is another scene, not a re-noised one
    assert not np.array_equal(a_lr, c_lr)


def test_lr_is_the_pssr_em_x4_degradation_of_hr(demo: tuple[np.ndarray, np.ndarray]) -> None:
    lr, hr = demo
    hr01 = hr.astype(np.float32) / 255
    down = Downsample(4, "bilinear").apply(hr01, np.random.default_rng(0))
    residual = lr / 255 - down
    assert corr(lr, down) > 0.9
    assert abs(residual.mean()) < 1 / 255  # unbiased
    # pssr-em noise: HR variance 0.05 x blurred(sigma 3) image, averaged over 4 HR pixels
    local = np.stack([ndimage.gaussian_filter(s, 3.0) for s in hr01])
    expected = 0.05 * Downsample(4, "bilinear").apply(local, np.random.default_rng(0)) / 4
    assert residual.var() == pytest.approx(expected.mean() + 1 / (12 * 255**2), rel=0.1)


def test_em_like_intensities(demo: tuple[np.ndarray, np.ndarray]) -> None:
    _, hr = demo
    dark = (hr < 90).mean()
    assert 0.05 < dark < 0.25  # membranes, mitochondria, vesicle rims
    assert 120 <= np.median(hr) <= 190  # cytoplasm
    assert 25 <= np.percentile(hr, 2) <= 75  # membrane cores
    assert hr.std() > 35  # EM-like contrast


def test_membranes_are_a_network_of_thin_dark_lines(demo: tuple[np.ndarray, np.ndarray]) -> None:
    _, hr = demo
    for section in hr[:2]:
        dark = ndimage.gaussian_filter(section.astype(float), 1.0) < 90
        # thin: three quarters of the dark pixels lie within 3 px of a bright one
        depth = ndimage.distance_transform_edt(dark)
        assert np.percentile(depth[dark], 75) <= 3.0
        # joined into a network around the cells, not isolated specks
        labels, _ = ndimage.label(dark)
        sizes = np.bincount(labels.ravel())[1:]
        assert sizes.max() > 0.6 * sizes.sum()
        assert ndimage.label(~dark)[1] > 40  # cell profiles enclosed by the network


def test_adjacent_slices_correlated_not_identical(demo: tuple[np.ndarray, np.ndarray]) -> None:
    lr, hr = demo
    for z in range(hr.shape[0] - 1):
        assert corr(hr[z], hr[z + 1]) > 0.5
        assert not np.array_equal(hr[z], hr[z + 1])
    assert corr(lr[0], lr[1]) > 0.3  # still visible through the LR noise
    assert corr(hr[0], hr[-1]) < corr(hr[0], hr[1])  # objects drift away along z


def test_tiff_round_trip_with_voxel_size(tmp_path: Path) -> None:
    lr_path, hr_path = tmp_path / "demo.tif", tmp_path / "demo_hr.tif"
    write_demo_tiff(lr_path, shape_lr=SMALL, seed=4, hr_path=hr_path)
    lr, hr = make_demo_volume(SMALL, seed=4)
    for path, data, pixel_nm in ((lr_path, lr, 18.4), (hr_path, hr, 4.6)):
        with tifffile.TiffFile(path) as tif:
            np.testing.assert_array_equal(tif.asarray(), data)
            assert tif.is_imagej
            meta = tif.imagej_metadata
            num, den = tif.pages[0].tags["XResolution"].value  # pixels per unit
            y_num, y_den = tif.pages[0].tags["YResolution"].value
        assert den / num == pytest.approx(pixel_nm, rel=1e-5)
        assert y_den / y_num == pytest.approx(pixel_nm, rel=1e-5)
        assert meta["spacing"] == pytest.approx(50.0)
        assert meta["unit"] == "nm"
        assert meta["images"] == SMALL[0]


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    existing = tmp_path / "demo.tif"
    existing.write_bytes(b"precious")
    with pytest.raises(PssrError, match="already exists"):
        write_demo_tiff(existing, shape_lr=(1, 8, 8))
    assert existing.read_bytes() == b"precious"
    fresh = tmp_path / "fresh.tif"
    with pytest.raises(PssrError, match="already exists"):
        write_demo_tiff(fresh, shape_lr=(1, 8, 8), hr_path=existing)
    assert not fresh.exists() and existing.read_bytes() == b"precious"
    with pytest.raises(PssrError, match="does not exist"):
        write_demo_tiff(tmp_path / "missing" / "demo.tif", shape_lr=(1, 8, 8))
    with pytest.raises(PssrError, match="same file"):
        write_demo_tiff(fresh, shape_lr=(1, 8, 8), hr_path=fresh)


def test_rejects_empty_shape() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_demo_volume((0, 8, 8))
