"""webKnossos reads an anisotropic restored volume (50 nm sections, 2 nm pixels, 7 levels, z
halved only at the last) with the right voxel size, magnifications, bounding box and translation.

webKnossos opens an OME-Zarr image through its datastore's explorer ("Add remote dataset"),
which turns the NGFF metadata into a datasource (NgffExplorationUtils.scala in webknossos): the
voxel size is the finest level's scale, each level's magnification is its scale over that (it
must be a power of two per axis), the bounding box is level 0's shape, and level 0's translation
becomes an affine transformation in level-0 voxels. A magnification ``m`` puts its voxel ``j`` over
level-0 voxels ``[j m, (j + 1) m)``: our levels' translations must agree with that. ``explore``
below makes the same datasource from our metadata and the ``webknossos`` Python library
(``Dataset.open``) opens it, reading every level where it lies; the library's own OME-Zarr reader
(``Dataset.from_images``) converts the image too, picking level 0 by its scale.

webknossos pins click<8.2, rich, typer, psutil and others below what pssr-volume and napari use,
so it lives in its own virtual environment, ``.venv-wk`` (``.ci/run`` creates it); the library
runs in a child process (this file as a script). The test fails, never skips, without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

WK_PYTHON = Path(__file__).resolve().parents[1] / ".venv-wk" / "bin" / "python"
# (mag, absolute offset x, y, z in level-0 voxels, size): regions read through webknossos
REGIONS = [((1, 1, 1), (100, 40, 3), (64, 32, 4)), ((4, 4, 1), (128, 64, 0), (256, 128, 8)),
           ((64, 64, 2), (0, 0, 2), (512, 512, 6))]


def restored(tmp_path: Path, cli, models: dict[str, Path]) -> Path:
    from conftest import anisotropic_restoration

    return anisotropic_restoration(tmp_path, cli, models, seed=6)


def test_webknossos_reads_the_restored_volume(tmp_path, cli, models):
    import zarr

    output = restored(tmp_path, cli, models)
    assert WK_PYTHON.is_file(), (
        f"{WK_PYTHON} missing: .ci/run creates it (python3 -m venv .venv-wk; "
        ".venv-wk/bin/pip install webknossos)")
    results = tmp_path / "wk"
    proc = subprocess.run([str(WK_PYTHON), __file__, str(output), str(results)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads((results / "seen.json").read_text())

    assert seen["voxel_size"] == [2.0, 2.0, 50.0] and seen["unit"] == "nanometer"  # x, y, z
    assert seen["mags"] == [[1, 1, 1], [2, 2, 1], [4, 4, 1], [8, 8, 1], [16, 16, 1], [32, 32, 1],
                            [64, 64, 2]]  # x, y, z
    assert seen["bounding_box"] == {"topleft": [0, 0, 0], "size": [512, 512, 8]}
    # level 0's -3 nm (-(4 - 1) / 2 output voxels) in y and x, as webKnossos applies it
    assert np.allclose(seen["transform"], [[1, 0, 0, -1.5], [0, 1, 0, -1.5], [0, 0, 1, 0],
                                           [0, 0, 0, 1]])
    # a magnification's voxel j covers level-0 voxels [j m, (j + 1) m): our translations agree
    meta = json.loads((output / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    t0 = np.array(meta["datasets"][0]["coordinateTransformations"][1]["translation"])
    for mag, d in zip(seen["mags"], meta["datasets"]):
        m = np.array(mag[::-1])  # z, y, x
        scale, translation = (np.array(t[k]) for t, k in zip(
            d["coordinateTransformations"], ("scale", "translation")))
        np.testing.assert_allclose(translation, t0 + (m - 1) / 2 * np.array([50, 2, 2]))
        np.testing.assert_allclose(scale, m * np.array([50, 2, 2]))

    arrays = {d["path"]: zarr.open_array(str(output / d["path"]), mode="r")[...]
              for d in meta["datasets"]}
    for k, path in enumerate(arrays):  # every level, read whole
        np.testing.assert_array_equal(np.load(results / f"mag-{k}.npy"), arrays[path],
                                      err_msg=path)
    for i, (mag, offset, size) in enumerate(REGIONS):  # regions, in level-0 voxels (x, y, z)
        path = str(seen["mags"].index(list(mag)))
        box = tuple(slice(o // m, (o + s) // m) for o, s, m in zip(offset, size, mag))[::-1]
        region = np.load(results / f"region-{i}.npy")
        assert region.size and region.std() > 0
        np.testing.assert_array_equal(region, arrays[path][box], err_msg=str(mag))
    # the library's own OME-Zarr reader converts level 0 (the finest by its scale)
    np.testing.assert_array_equal(np.load(results / "converted.npy"), arrays["0"])
    assert seen["converted_bounding_box"] == {"topleft": [0, 0, 0], "size": [512, 512, 8]}


def explore(output: Path) -> dict:
    """The datasource webKnossos' explorer makes of an NGFF 0.5 image (z, y, x; one channel)."""
    meta = json.loads((output / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    scales = [np.array(d["coordinateTransformations"][0]["scale"])[::-1]
              for d in meta["datasets"]]  # x, y, z
    voxel = min(scales, key=lambda s: s[0])
    translation = [np.array(t["translation"])[::-1] / voxel
                   for t in meta["datasets"][0]["coordinateTransformations"]
                   if t["type"] == "translation"][0]
    level0 = json.loads((output / meta["datasets"][0]["path"] / "zarr.json").read_text())
    x, y, z = level0["shape"][::-1]
    mags = []
    for s, d in zip(scales, meta["datasets"]):
        mag = [round(float(f)) for f in s / voxel]
        assert all(m > 0 and m & (m - 1) == 0 for m in mag), f"invalid mag {mag}"
        mags.append({"mag": mag, "path": str(output / d["path"]),
                     "axisOrder": {"x": 2, "y": 1, "z": 0}})
    return {"id": {"name": output.name, "team": ""},
            "scale": {"factor": voxel.tolist(), "unit": meta["axes"][-1]["unit"]},
            "dataLayers": [{
                "name": "restored", "category": "color", "elementClass": level0["data_type"],
                "dataFormat": "zarr3", "numChannels": 1, "mags": mags,
                "boundingBox": {"topLeft": [0, 0, 0], "width": x, "height": y, "depth": z},
                "coordinateTransformations": [{"type": "affine", "matrix": [
                    [1, 0, 0, translation[0]], [0, 1, 0, translation[1]],
                    [0, 0, 1, translation[2]], [0, 0, 0, 1]]}]}]}


def _read(output: Path, results: Path) -> None:
    """In the child (.venv-wk): open the explored datasource with webknossos, read every mag
    and REGIONS; convert the image with ``Dataset.from_images``; record what it says."""
    import warnings

    warnings.simplefilter("ignore")  # webknossos warns about each optional reader it lacks
    import webknossos as wk
    from cluster_tools import SequentialExecutor

    results.mkdir()
    datasource = results / "explored"
    datasource.mkdir()
    (datasource / "datasource-properties.json").write_text(json.dumps(explore(output)))
    layer = wk.Dataset.open(datasource, read_only=True).get_layer("restored")
    box = layer.bounding_box
    seen = {"voxel_size": list(layer.dataset.voxel_size),
            "unit": layer.dataset.voxel_size_with_unit.unit.value,
            "mags": [mag.to_list() for mag in layer.mags],
            "bounding_box": {"topleft": [box.topleft_xyz.x, box.topleft_xyz.y, box.topleft_xyz.z],
                             "size": [box.size_xyz.x, box.size_xyz.y, box.size_xyz.z]},
            "transform": np.asarray(layer.coordinate_transformations[0].matrix).tolist()}
    for k, view in enumerate(layer.mags.values()):
        np.save(results / f"mag-{k}.npy", view.read())
    for i, (mag, offset, size) in enumerate(REGIONS):
        view = layer.get_mag(wk.Mag(mag))
        np.save(results / f"region-{i}.npy", view.read(absolute_offset=offset, size=size))
    with SequentialExecutor() as executor:  # its default, a process pool, takes 15 s to start
        converted = wk.Dataset.from_images(output, results / "converted", voxel_size=(2, 2, 50),
                                           layer_name="restored", executor=executor,
                                           compress=False, chunk_shape=(128, 128, 8),
                                           shard_shape=(512, 512, 8))
    converted = converted.get_layer("restored")
    box = converted.bounding_box
    seen["converted_bounding_box"] = {
        "topleft": [box.topleft_xyz.x, box.topleft_xyz.y, box.topleft_xyz.z],
        "size": [box.size_xyz.x, box.size_xyz.y, box.size_xyz.z]}
    data = converted.get_finest_mag().read()  # (x, y, z) or (channel, x, y, z)
    np.save(results / "converted.npy", data.reshape(data.shape[-3:]).transpose(2, 1, 0))
    (results / "seen.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    _read(Path(sys.argv[1]), Path(sys.argv[2]))
