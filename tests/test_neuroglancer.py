"""A real browser: the restored OME-Zarr (and the same restoration as neuroglancer
precomputed), served over HTTP on localhost with CORS, opened in neuroglancer in headless
Chromium; the screenshot must show the data, not a blank page.

Needs ``neuroglancer`` and ``selenium`` (the ``dev`` extra) and Debian's ``chromium`` and
``chromium-driver`` (installed by ``.ci/run``). This test does not skip without them: it fails.
"""

from __future__ import annotations

import numpy as np
import zarr
from conftest import em_like, write_tiff
from neuroglancer_viewer import NeuroglancerBrowser, serve_directory

from pssr_volume.config import ConvertConfig
from pssr_volume.convert import convert

SIZE = (256, 192)  # screenshot (width, height): the whole level-0 section at zoom 1


def match(shot: np.ndarray, volume: np.ndarray) -> tuple[float, int]:
    """Best correlation of the screenshot's grey values with a section of `volume`, over
    every z and small shifts (voxel-centre conventions differ by up to a pixel); and its z."""
    grey = shot.astype(float).mean(axis=2)[8:-8, 8:-8]
    best = (-1.0, -1)
    for z, section in enumerate(volume.astype(float)):
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                ref = section[8 + dy: 8 + dy + grey.shape[0], 8 + dx: 8 + dx + grey.shape[1]]
                if ref.shape == grey.shape and grey.std() > 0:
                    best = max(best, (float(np.corrcoef(grey.ravel(), ref.ravel())[0, 1]), z))
    return best


def test_neuroglancer_renders_the_restored_volume(tmp_path, cli, models, scheduler):
    data = em_like((2, 48, 64), seed=7)
    data[1] = 255 - data[1]  # sections unlike each other: the shown one is identifiable
    inp = write_tiff(tmp_path / "in.tif", data, voxel=(50.0, 18.4, 18.4))
    code, _, err = cli("run", inp, tmp_path / "restored.ome.zarr", "--model", models["fast"],
                       "--cluster", scheduler, "--no-progress", "--levels", "2")
    assert code == 0, err
    convert(ConvertConfig(input=inp, output=tmp_path / "input-v2.ome.zarr", ngff_version="0.4",
                          progress=False, cluster="sync"))
    restored = zarr.open_array(str(tmp_path / "restored.ome.zarr" / "0"), mode="r")[...]
    assert restored.shape == (2, 192, 256)
    # the same restoration as neuroglancer precomputed (sharded), its layer precomputed://
    code, _, err = cli("run", inp, tmp_path / "restored.precomputed", "--model", models["fast"],
                       "--cluster", scheduler, "--no-progress", "--levels", "2",
                       "--output-format", "precomputed")
    assert code == 0, err
    with serve_directory(tmp_path) as base, NeuroglancerBrowser() as ng:
        # the same physical field of view, 4.6 nm per screen pixel, in both volumes
        center = (50.0, 4.6 * 96, 4.6 * 128)  # section 1, the middle of the restored section
        ng.show({"restored": f"{base}/restored.ome.zarr"}, center_nm=center, pixel_nm=4.6)
        shot = ng.screenshot(SIZE)
        ng.show({"input": f"{base}/input-v2.ome.zarr"}, center_nm=center, pixel_nm=4.6)
        shot_v2 = ng.screenshot(SIZE)
        ng.show({"precomputed": f"precomputed://{base}/restored.precomputed"},
                center_nm=center, pixel_nm=4.6)
        shot_precomputed = ng.screenshot(SIZE)
    assert shot.shape == (192, 256, 3) and shot.std() > 10  # not blank
    corr, z = match(shot, restored)
    assert corr > 0.95 and z == 1, (corr, z)
    # the 18.4 nm input (NGFF 0.4) at 4.6 nm per screen pixel: each voxel is 4 x 4 pixels
    corr_v2, z_v2 = match(shot_v2, data.repeat(4, 1).repeat(4, 2))
    assert corr_v2 > 0.95 and z_v2 == 1, (corr_v2, z_v2)
    # precomputed: the same section, placed within the measure's shift of the OME-Zarr one
    corr_pc, z_pc = match(shot_precomputed, restored)
    assert corr_pc > 0.95 and z_pc == 1, (corr_pc, z_pc)
    # the measure rejects what a failed load looks like: a uniform or unrelated picture
    assert match(np.full_like(shot, 128), restored)[0] < 0.5
    assert match(np.ascontiguousarray(shot[::-1]), restored)[0] < 0.5
