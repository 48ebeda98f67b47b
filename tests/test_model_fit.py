"""Whether a model fits its input: the section-spacing guard of multi-section models (and the
pixel-size rule next to it, in tests/test_bundled_models.py)."""

from __future__ import annotations

import pytest
from conftest import em_like, write_tiff

from pssr_volume.config import ModelConfig
from pssr_volume.demo import make_demo_volume
from pssr_volume.errors import PssrError
from pssr_volume.model_fit import SPACING_SLACK, check_section_spacing, spacing_fits
from pssr_volume.model_header import read_config

ISO = ModelConfig(name="iso", architecture="pssr-fast", in_slices=3, section_spacing_nm=10.0)
FLAT = ModelConfig(name="flat", architecture="pssr-fast")


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def candidates() -> dict[str, ModelConfig]:
    return {"iso": ISO, "flat": FLAT}


def test_a_multi_section_model_fits_up_to_twice_its_training_spacing():
    assert SPACING_SLACK == 2.0
    assert spacing_fits(ISO, 10.0) and spacing_fits(ISO, 20.0) and not spacing_fits(ISO, 20.5)
    assert spacing_fits(FLAT, 500.0)  # one section: nothing is blended
    unrecorded = ISO.model_copy(update={"section_spacing_nm": None})
    assert spacing_fits(unrecorded, 500.0)  # an older file: nothing to judge by
    assert check_section_spacing(ISO, None, False, candidates) == []  # voxel size unknown


def test_too_far_apart_is_refused_naming_the_models_that_fit_and_force_overrides():
    with pytest.raises(PssrError) as e:
        check_section_spacing(ISO, 120.0, False, candidates)
    msg = str(e.value)
    assert "10 nm apart" in msg and "120 nm apart" in msg and "--model flat" in msg
    assert "--force" in msg and "\n" not in msg
    (warning,) = check_section_spacing(ISO, 120.0, True, candidates)
    assert warning.startswith("warning:") and "--force" in warning


def test_the_bundled_iso_model_records_its_spacing_and_is_refused_on_serial_sections(
        tmp_path, cli):
    from pssr_volume.bundled import bundled_model_path

    assert read_config(bundled_model_path("pssr-em-x4-iso")).section_spacing_nm == 10.0
    assert read_config(bundled_model_path("pssr-em-x4")).in_slices == 1
    inp = write_tiff(tmp_path / "sections.tif", em_like((3, 32, 32)), voxel=(120.0, 24.0, 24.0))
    out = tmp_path / "o.ome.zarr"
    code, _, err = cli("run", inp, out, "--model", "pssr-em-x4-iso", "--cluster", "sync")
    assert code == 2 and "Traceback" not in err
    line = one_line(err)
    assert "120 nm apart" in line and "--model pssr-em-x4" in line and not out.exists()
    code, _, err = cli("run", inp, out, "--model", "pssr-em-x4-iso", "--cluster", "sync",
                       "--force", "--dry-run")
    assert code == 0, err
    assert "--force: restoring anyway" in err and not out.exists()
    # isotropic sections at the model's own spacing pass
    iso = write_tiff(tmp_path / "iso.tif", em_like((3, 32, 32)), voxel=(10.0, 40.0, 40.0))
    code, _, err = cli("run", iso, out, "--model", "pssr-em-x4-iso", "--cluster", "sync",
                       "--dry-run")
    assert code == 0 and "apart" not in err


def test_training_records_the_section_spacing_of_a_multi_section_model(tmp_path, cli):
    _, hr = make_demo_volume((12, 16, 16), seed=3)
    inp = write_tiff(tmp_path / "hr.tif", hr, voxel=(30.0, 4.6, 4.6))
    for slices, expected in ((3, 30.0), (1, None)):
        out = tmp_path / f"m{slices}"
        code, _, err = cli("train", inp, "--out", out, "--arch-arg", "width=4",
                           "--in-slices", slices, "--steps", "1", "--batch-size", "2",
                           "--tile", "48", "--val-every", "1", "--val-tiles", "2",
                           "--threads", "1", "--no-progress")
        assert code == 0, err
        assert read_config(out / "model.safetensors").section_spacing_nm == expected
