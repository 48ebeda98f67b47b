"""Input translations (offsets) and units, from inputs written the way each tool writes them:
ome-zarr-py and hand-written NGFF 0.4/0.5, Paintera and BigDataViewer N5, CREMI HDF5,
daisy/funlib zarr, mrcfile, and bioformats2raw roots."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import zarr
from test_io_formats import _set_attrs, write_h5, write_n5
from test_io_inputs import _axes, _check_reads, _ome_by_hand, _volume

from pssr_volume.io.inputs import open_input


def _approx(value: tuple[float, ...] | None, expected: tuple[float, ...]) -> bool:
    return value is not None and np.allclose(value, expected, rtol=0, atol=1e-6)


# --- OME-Zarr ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # coordinate_transformations
def test_ome_zarr_04_translation_written_by_ome_zarr(tmp_path: Path) -> None:
    from ome_zarr.writer import write_image, write_multiscale

    data = _volume((4, 10, 12), "uint8")
    path = tmp_path / "t.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2)
    write_multiscale(
        [data, data[:, ::2, ::2]], group, axes="zyx",
        axes_units=dict.fromkeys("zyx", "micrometer"),
        coordinate_transformations=[
            [{"type": "scale", "scale": [0.05, 0.004, 0.004]},
             {"type": "translation", "translation": [1.0, 2.0, 3.0]}],
            [{"type": "scale", "scale": [0.05, 0.008, 0.008]},
             {"type": "translation", "translation": [1.0, 2.002, 3.002]}],
        ],
    )
    assert "multiscales" in dict(zarr.open_group(path, mode="r").attrs)  # NGFF 0.4
    vol = open_input(path)
    assert (vol.array_path, vol.voxel_size) == ("s0", (50.0, 4.0, 4.0))
    assert _approx(vol.translation, (1000.0, 2000.0, 3000.0))
    _check_reads(vol, data)
    level = open_input(path / "s1")  # the level actually opened
    assert level.voxel_size == (50.0, 8.0, 8.0)
    assert _approx(level.translation, (1000.0, 2002.0, 3002.0))
    # ome-zarr-py's own pyramid: a zero translation at s0, half a voxel further at s1
    plain = tmp_path / "p.ome.zarr"
    write_image(data, zarr.open_group(plain, mode="w", zarr_format=2), axes="zyx",
                scale={"z": 0.05, "y": 0.004, "x": 0.004}, scale_factors=[2],
                axes_units=dict.fromkeys("zyx", "micrometer"))
    assert open_input(plain).translation == (0.0, 0.0, 0.0)
    assert _approx(open_input(plain / "s1").translation, (0.0, 2.0, 2.0))


def test_ome_zarr_05_translation_with_multiscale_transformation(tmp_path: Path) -> None:
    data = _volume((1, 3, 4, 5))
    path = tmp_path / "t5.zarr"
    _ome_by_hand(path, data, _axes("tzyx", "nanometer"), 3, scale=[1, 10, 2, 2],
                 ms={"coordinateTransformations": [
                     {"type": "scale", "scale": [1, 2, 2, 2]},
                     {"type": "translation", "translation": [0, 1000, 2000, 3000]}]})
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    datasets = attrs["ome"]["multiscales"][0]["datasets"]
    datasets[0]["coordinateTransformations"].append(
        {"type": "translation", "translation": [0, 5, 1, 0.5]})
    zarr.open_group(path, mode="r+").attrs["ome"] = attrs["ome"]
    vol = open_input(path)
    assert vol.voxel_size == (20.0, 4.0, 4.0)
    # level translation scaled by the multiscale scale, then the multiscale translation
    assert _approx(vol.translation, (1010.0, 2002.0, 3001.0))
    _check_reads(vol, data[0])


def test_ome_zarr_without_translation_has_none(tmp_path: Path) -> None:
    _ome_by_hand(tmp_path / "n.zarr", _volume((2, 3, 4)), _axes("zyx", "nm"), 2, scale=[1, 1, 1])
    vol = open_input(tmp_path / "n.zarr")
    assert vol.translation is None and vol.voxel_size == (1.0, 1.0, 1.0)


# --- N5: Paintera and BigDataViewer ------------------------------------------------------


def test_n5_paintera_offset(tmp_path: Path) -> None:
    data = _volume((5, 12, 16), "uint8")
    root = tmp_path / "paintera.n5"
    _set_attrs(root, n5="2.0.0")
    write_n5(root / "raw" / "data" / "s0", data)
    write_n5(root / "raw" / "data" / "s1", data[:, ::2, ::2])
    _set_attrs(root / "raw", painteraData={"type": "raw"})
    _set_attrs(root / "raw" / "data", multiScale=True, resolution=[4.0, 4.0, 40.0],
               offset=[3000.0, 2000.0, 1000.0])  # x, y, z in world units (nm)
    _set_attrs(root / "raw" / "data" / "s1", downsamplingFactors=[2, 2, 1])
    vol = open_input(root / "raw" / "data")
    assert vol.voxel_size == (40.0, 4.0, 4.0)
    assert _approx(vol.translation, (1000.0, 2000.0, 3000.0))
    _check_reads(vol, data)
    level = open_input(root / "raw" / "data" / "s1")
    assert level.voxel_size == (40.0, 8.0, 8.0)
    # Paintera's level transform: (f - 1) / 2 full-resolution voxels further on
    assert _approx(level.translation, (1000.0, 2002.0, 3002.0))


def _bdv_export(tmp_path: Path, data: np.ndarray, unit: str, size: str,
                transforms: list[str] | None = None, **timepoint_attrs: object) -> Path:
    """An N5 export as BigDataViewer writes it, with its XML beside the root."""
    root = tmp_path / "export.n5"
    _set_attrs(root, n5="2.2.0")
    _set_attrs(root / "setup0", downsamplingFactors=[[1, 1, 1], [2, 2, 1]], dataType="uint8")
    write_n5(root / "setup0" / "timepoint0" / "s0", data)
    write_n5(root / "setup0" / "timepoint0" / "s1", data[:, ::2, ::2])
    _set_attrs(root / "setup0" / "timepoint0" / "s1", downsamplingFactors=[2, 2, 1])
    if timepoint_attrs:
        _set_attrs(root / "setup0" / "timepoint0", **timepoint_attrs)
    registration = ""
    if transforms is not None:
        registration = ('<ViewRegistrations><ViewRegistration timepoint="0" setup="0">'
                        + "".join(f'<ViewTransform type="affine"><affine>{t}</affine>'
                                  "</ViewTransform>" for t in transforms)
                        + "</ViewRegistration></ViewRegistrations>")
    (tmp_path / "export.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><SpimData version="0.2"><BasePath type="relative">'
        '.</BasePath><SequenceDescription><ImageLoader format="bdv.n5" version="1.0">'
        '<n5 type="relative">export.n5</n5></ImageLoader><ViewSetups><ViewSetup><id>0</id>'
        f"<name>em</name><size>16 12 4</size><voxelSize><unit>{unit}</unit><size>{size}</size>"
        "</voxelSize></ViewSetup></ViewSetups><Timepoints type=\"range\"><first>0</first>"
        f"<last>0</last></Timepoints></SequenceDescription>{registration}</SpimData>",
        encoding="utf-8")
    return root / "setup0" / "timepoint0"


def test_bdv_micrometre_xml_governs_unitless_resolution(tmp_path: Path) -> None:
    data = _volume((4, 12, 16), "uint8")
    affine = "0.0184 0.0 0.0 3.0 0.0 0.0184 0.0 2.0 0.0 0.0 0.05 1.0"  # Fiji export: µm
    where = _bdv_export(tmp_path, data, "µm", "0.0184 0.0184 0.05", [affine],
                        multiScale=True, resolution=[0.0184, 0.0184, 0.05])  # for Paintera
    vol = open_input(where)
    assert vol.voxel_size == (50.0, 18.4, 18.4)  # not 0.0184 nm
    assert _approx(vol.translation, (1000.0, 2000.0, 3000.0))
    assert any("no unit" in n and "µm" in n for n in vol.notes)
    _check_reads(vol, data)
    level = open_input(where / "s1")
    assert level.voxel_size == (50.0, 36.8, 36.8)
    assert _approx(level.translation, (1000.0, 2009.2, 3009.2))


def test_bdv_bigstitcher_normalised_affine_composed(tmp_path: Path) -> None:
    data = _volume((4, 12, 16), "uint8")
    shift = "1.0 0.0 0.0 100.0 0.0 1.0 0.0 50.0 0.0 0.0 1.0 10.0"  # listed first: applied last
    calibration = f"1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 {50 / 18.4!r} 0.0"
    where = _bdv_export(tmp_path, data, "nm", "18.4 18.4 50", [shift, calibration])
    vol = open_input(where)
    assert vol.voxel_size == (50.0, 18.4, 18.4) and vol.notes == ()
    # one world unit is one x pixel (18.4 nm)
    assert _approx(vol.translation, (184.0, 920.0, 1840.0))


def test_bdv_rotated_registration_gives_no_translation(tmp_path: Path) -> None:
    rotated = "0.0 1.0 0.0 5.0 -1.0 0.0 0.0 5.0 0.0 0.0 1.0 0.0"
    where = _bdv_export(tmp_path, _volume((4, 12, 16), "uint8"), "nm", "4 4 40", [rotated])
    vol = open_input(where)
    assert vol.voxel_size == (40.0, 4.0, 4.0) and vol.translation is None
    assert any("rotated" in n for n in vol.notes)


def test_bdv_without_registration_has_no_translation(tmp_path: Path) -> None:
    vol = open_input(_bdv_export(tmp_path, _volume((4, 12, 16), "uint8"), "nm", "4 4 40"))
    assert vol.voxel_size == (40.0, 4.0, 4.0) and vol.translation is None


def test_bdv_missing_unit_warns(tmp_path: Path) -> None:
    where = _bdv_export(tmp_path, _volume((4, 12, 16), "uint8"), "pixel", "1 1 1",
                        multiScale=True, resolution=[1.0, 1.0, 1.0])
    vol = open_input(where)
    assert vol.voxel_size is None
    assert any("without a length unit" in n and "export.xml" in n for n in vol.notes)


def test_bdv_missing_xml_unit_uses_n5_unit_with_a_note(tmp_path: Path) -> None:
    where = _bdv_export(tmp_path, _volume((4, 12, 16), "uint8"), "", "1 1 1",
                        pixelResolution={"dimensions": [4.0, 4.0, 40.0], "unit": "nm"})
    vol = open_input(where)
    assert vol.voxel_size == (40.0, 4.0, 4.0)
    assert any("without a length unit" in n for n in vol.notes)


def test_bdv_units_disagree_warns_and_xml_wins(tmp_path: Path) -> None:
    where = _bdv_export(tmp_path, _volume((4, 12, 16), "uint8"), "µm", "0.004 0.004 0.04",
                        pixelResolution={"dimensions": [4.0, 4.0, 40.0], "unit": "um"})
    vol = open_input(where)
    assert vol.voxel_size == (40.0, 4.0, 4.0)
    assert any("disagrees" in n and "using the XML" in n for n in vol.notes)


# --- CREMI HDF5, daisy/funlib zarr -------------------------------------------------------


def test_cremi_hdf5_offset(tmp_path: Path) -> None:
    data = _volume((3, 10, 12), "uint64")
    write_h5(tmp_path / "sample_A.hdf", _volume((3, 10, 12), "uint8"), "/volumes/raw",
             resolution=[40.0, 4.0, 4.0])
    source = write_h5(tmp_path / "sample_A.hdf", data, "/volumes/labels/neuron_ids",
                      resolution=[40.0, 4.0, 4.0], offset=[1480.0, 3644.0, 3644.0])
    vol = open_input(source)
    assert vol.voxel_size == (40.0, 4.0, 4.0)
    assert _approx(vol.translation, (1480.0, 3644.0, 3644.0))
    _check_reads(vol, data)
    roi = vol.with_roi(((1, 3), (2, 10), (0, 12)))  # the file array's position is kept
    assert (roi.origin, roi.translation) == ((1, 2, 0), vol.translation)
    assert open_input(f"{tmp_path / 'sample_A.hdf'}:/volumes/raw").translation is None


@pytest.mark.parametrize(("attrs", "voxel", "offset"), [
    ({"resolution": [40, 4, 4], "offset": [1000, 2000, 3000]},  # daisy
     (40.0, 4.0, 4.0), (1000.0, 2000.0, 3000.0)),
    ({"voxel_size": [40, 4, 4], "offset": [1000, 2000, 3000],  # funlib.persistence
      "axis_names": ["z", "y", "x"], "units": ["nm", "nm", "nm"]},
     (40.0, 4.0, 4.0), (1000.0, 2000.0, 3000.0)),
    ({"voxel_size": [0.04, 0.004, 0.004], "offset": [1, 2, 3], "units": ["um", "um", "um"]},
     (40.0, 4.0, 4.0), (1000.0, 2000.0, 3000.0)),
    ({"voxel_size": [40, 4, 4], "offset": [1000, 2000, 3000], "units": ["", "", ""]},
     (40.0, 4.0, 4.0), (1000.0, 2000.0, 3000.0)),
])
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_funlib_daisy_zarr_offset(tmp_path: Path, attrs: dict, voxel: tuple, offset: tuple,
                                  zarr_format: int) -> None:
    data = _volume((3, 10, 12), "uint8")
    arr = zarr.create_array(tmp_path / "d.zarr", shape=data.shape, chunks=(1, 8, 8),
                            dtype="uint8", zarr_format=zarr_format)
    arr[...] = data
    arr.attrs.update(attrs)
    vol = open_input(tmp_path / "d.zarr")
    assert vol.kind == "zarr" and vol.voxel_size == voxel
    assert _approx(vol.translation, offset)
    _check_reads(vol, data)


def test_bad_offset_is_a_note(tmp_path: Path) -> None:
    arr = zarr.create_array(tmp_path / "b.zarr", shape=(2, 3, 4), dtype="uint8", zarr_format=2)
    arr.attrs.update({"resolution": [40, 4, 4], "offset": "here"})
    vol = open_input(tmp_path / "b.zarr")
    assert vol.translation is None and any("offset" in n for n in vol.notes)


# --- MRC ---------------------------------------------------------------------------------


def _mrc(path: Path, data: np.ndarray, voxel_nm: tuple[float, ...]) -> mrcfile.mrcfile.MrcFile:
    """A new MRC file (close it to write), voxel size given in nm (z, y, x)."""
    mrc = mrcfile.new(path)
    mrc.set_data(data)
    mrc.voxel_size = tuple(10 * v for v in voxel_nm[::-1])
    return mrc


def test_mrc_origin_in_angstrom(tmp_path: Path) -> None:
    data = _volume((3, 10, 12), "int16")
    with _mrc(tmp_path / "o.mrc", data, (50.0, 18.4, 18.4)) as mrc:
        mrc.header.origin = (30000.0, 20000.0, 10000.0)  # x, y, z in Å
        mrc.header.nxstart = 7  # ignored: the origin wins
    vol = open_input(tmp_path / "o.mrc")
    assert vol.voxel_size == (50.0, 18.4, 18.4)
    assert _approx(vol.translation, (1000.0, 2000.0, 3000.0))
    _check_reads(vol, data)


def test_mrc_start_when_origin_is_zero(tmp_path: Path) -> None:
    with _mrc(tmp_path / "s.mrc", _volume((3, 10, 12), "int16"), (50.0, 18.4, 18.4)) as mrc:
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 10, 20, 5
    vol = open_input(tmp_path / "s.mrc")
    assert _approx(vol.translation, (250.0, 368.0, 184.0))
    with _mrc(tmp_path / "z.mrc", _volume((3, 10, 12), "int16"), (50.0, 18.4, 18.4)):
        pass
    assert open_input(tmp_path / "z.mrc").translation is None


# --- bioformats2raw ----------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_bioformats2raw_root_opens_its_first_image(tmp_path: Path, zarr_format: int) -> None:
    root = tmp_path / "x.zarr"
    group = zarr.open_group(root, mode="w", zarr_format=zarr_format)
    layout = {"bioformats2raw.layout": 3}
    if zarr_format == 3:
        group.attrs["ome"] = {"version": "0.5", **layout}
    else:
        group.attrs.update(layout)
    images = [_volume((2, 6, 7)), _volume((3, 5, 4))]
    for i, data in enumerate(images):
        _ome_by_hand(root / str(i), data, _axes("zyx", "micrometer"), zarr_format,
                     scale=[0.05, 0.01, 0.01])
    ome = zarr.open_group(root / "OME", mode="w", zarr_format=zarr_format)
    series = {"series": ["0", "1"]}
    if zarr_format == 3:
        ome.attrs["ome"] = {"version": "0.5", **series}
    else:
        ome.attrs.update(series)
    (root / "OME" / "METADATA.ome.xml").write_text("<OME/>")
    vol = open_input(root)
    assert (vol.kind, vol.path, vol.array_path) == ("ome-zarr", str(root / "0"), "0")
    assert vol.voxel_size == (50.0, 10.0, 10.0)
    assert "'0'" in vol.notes[0] and "2 images" in vol.notes[0] and str(root / "1") in vol.notes[0]
    _check_reads(vol, images[0])


def test_bioformats2raw_single_image_without_series(tmp_path: Path) -> None:
    root = tmp_path / "one.zarr"
    zarr.open_group(root, mode="w", zarr_format=2).attrs["bioformats2raw.layout"] = 3
    _ome_by_hand(root / "0", _volume((2, 6, 7)), _axes("zyx", "nanometer"), 2, scale=[40, 4, 4])
    vol = open_input(root)
    assert vol.path == str(root / "0") and vol.voxel_size == (40.0, 4.0, 4.0)
    assert len(vol.notes) == 1 and "opened its image '0'" in vol.notes[0]
    assert "images" not in vol.notes[0]


# --- info --------------------------------------------------------------------------------


def test_info_prints_the_offset(tmp_path: Path, cli) -> None:
    source = write_h5(tmp_path / "c.hdf", _volume((2, 8, 9), "uint8"), "/volumes/raw",
                      resolution=[40.0, 4.0, 4.0], offset=[1000.0, 2000.0, 3000.5])
    code, text, err = cli("info", source)
    assert code == 0, err
    assert "offset    1000x2000x3000.5 nm (z, y, x)" in text
    code, text, err = cli("info", "--json", source)
    assert code == 0, err
    assert json.loads(text)["translation_nm"] == [1000.0, 2000.0, 3000.5]
    plain = write_h5(tmp_path / "p.hdf", _volume((2, 8, 9), "uint8"), "/raw",
                     resolution=[40.0, 4.0, 4.0])
    code, text, _ = cli("info", plain)
    assert code == 0 and "offset " not in text


def _level0_translation(out: Path) -> list[float]:
    ms = zarr.open_group(str(out), mode="r").attrs["ome"]["multiscales"][0]
    ds = next(d for d in ms["datasets"] if d["path"] == "0")
    return next(t["translation"] for t in ds["coordinateTransformations"]
                if t["type"] == "translation")


def _ome_04_at_offset(tmp_path: Path) -> tuple[Path, np.ndarray]:
    from ome_zarr.writer import write_multiscale

    data = _volume((3, 32, 40), "uint8")
    path = tmp_path / "in.ome.zarr"
    write_multiscale(
        [data], zarr.open_group(path, mode="w", zarr_format=2), axes="zyx",
        axes_units=dict.fromkeys("zyx", "nanometer"),
        coordinate_transformations=[[{"type": "scale", "scale": [50.0, 18.4, 18.4]},
                                     {"type": "translation",
                                      "translation": [1000.0, 2000.0, 3000.0]}]],
    )
    return path, data


def _paintera_at_offset(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = _volume((3, 32, 40), "uint8")
    root = tmp_path / "paintera.n5"
    _set_attrs(root, n5="2.0.0")
    write_n5(root / "raw" / "data" / "s0", data)
    _set_attrs(root / "raw", painteraData={"type": "raw"})
    _set_attrs(root / "raw" / "data", multiScale=True, resolution=[18.4, 18.4, 50.0],
               offset=[3000.0, 2000.0, 1000.0])
    return root / "raw" / "data", data


@pytest.mark.parametrize("make", [_ome_04_at_offset, _paintera_at_offset])
def test_offsets_reach_run_and_convert_outputs(tmp_path: Path, cli, models, make) -> None:
    """The issue's check: restored at (1000, 2000 - 6.9, 3000 - 6.9) nm (the x4 voxel-centre
    shift), converted at (1000, 2000, 3000) nm: both overlay their source in a viewer."""
    source, _ = make(tmp_path)
    restored, converted = tmp_path / "r.ome.zarr", tmp_path / "c.ome.zarr"
    code, _, err = cli("run", source, restored, "--model", models["pointwise"], "--cluster",
                       "sync", "--no-progress")
    assert code == 0, err
    assert _level0_translation(restored) == pytest.approx([1000.0, 1993.1, 2993.1])
    code, _, err = cli("convert", source, converted, "--cluster", "sync", "--no-progress")
    assert code == 0, err
    assert _level0_translation(converted) == pytest.approx([1000.0, 2000.0, 3000.0])
    code, out, _ = cli("info", converted)
    assert code == 0 and "offset    1000x2000x3000 nm" in out
