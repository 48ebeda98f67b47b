"""napari opens an anisotropic restored volume (50 nm sections, 2 nm pixels, 7 levels, z halved
only at the last) through napari-ome-zarr: every level where our metadata puts it, and what the
screen shows is the stored data at that place.

napari reads only level 0's scale and translation and derives each other level from the ratio of
the level shapes: level ``k``, pooled by ``F`` (per axis), has voxel size ``scale * F`` and, as it
draws the pooled pixels, its first voxel centred at ``translate + scale * (F - 1) / 2``. Our levels
must agree with that (they do: mean pooling of aligned blocks, voxel centres). The screenshots
check it on screen: level 0 (the translation, -3 nm), level 3 and the z-pooled level 6, each at
zero offset within a screen pixel, and the section napari shows for each z of level 6. napari
picks level ``k``'s z index as ``round(i / F)`` instead of the voxel that holds section ``i``, so on
odd sections of a z-pooled level it shows the next slab (its limit, docs/FORMATS.md).

napari runs in a child process (this file as a script) on a private Xvfb display with Qt's ``xcb``
platform: Qt's ``offscreen`` platform draws napari's OpenGL canvas black (PyQt5 and PyQt6 alike,
with Mesa), so a real X server without a screen it is. Needs napari, napari-ome-zarr and PyQt5
(the ``dev`` extra) and Debian's ``xvfb``, Mesa and Qt's xcb libraries (``.ci/run`` installs
them); it fails, never skips, without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CANVAS = 128  # screenshot size (pixels, square)
CENTRE = (508.0, 508.0)  # nm (y, x): the centre of the 1024 x 1024 nm section
# name: (level napari is held at, section shown, zoom in screen pixels per nm)
VIEWS = {"level0": (0, 5, 1.0), "level3": (3, 5, 0.25)} | {
    f"level6-z{i}": (6, i, 0.125) for i in range(8)}


def restored(tmp_path: Path, cli, models: dict[str, Path]) -> Path:
    from conftest import anisotropic_restoration

    return anisotropic_restoration(tmp_path, cli, models, seed=5)


def levels_of(output: Path) -> list[dict]:
    """Each level's path, voxel size and translation (z, y, x, nm) from the NGFF metadata."""
    meta = json.loads((output / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    return [{"path": d["path"], "scale": np.array(d["coordinateTransformations"][0]["scale"]),
             "translation": np.array(d["coordinateTransformations"][1]["translation"])}
            for d in meta["datasets"]]


def rendered(level: np.ndarray, scale: np.ndarray, translation: np.ndarray, z_nm: float,
             zoom: float, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """What a CANVAS x CANVAS view centred on CENTRE at ``zoom`` shows of a level drawn at
    ``scale``/``translation`` with nearest-neighbour sampling, moved by ``shift`` pixels."""
    k = int(np.floor((z_nm - translation[0]) / scale[0] + 0.5))
    idx = []
    for axis, centre, d in ((1, CENTRE[0], shift[0]), (2, CENTRE[1], shift[1])):
        world = centre + (np.arange(CANVAS) + 0.5 - CANVAS / 2 + d) / zoom
        j = np.floor((world - translation[axis]) / scale[axis] + 0.5).astype(int)
        idx.append(np.clip(j, 0, level.shape[axis] - 1))
    return level[k][np.ix_(*idx)].astype(float)


def best_shift(shot: np.ndarray, level: np.ndarray, scale: np.ndarray, translation: np.ndarray,
               z_nm: float, zoom: float, reach: int = 6) -> tuple[float, tuple[int, int]]:
    """The correlation of the screenshot with the level as our metadata places it, at the best
    screen shift within ``reach`` pixels, and that shift."""
    best = (-1.0, (0, 0))
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            ref = rendered(level, scale, translation, z_nm, zoom, (dy, dx))
            corr = float(np.corrcoef(shot.ravel(), ref.ravel())[0, 1]) if ref.std() else -1.0
            best = max(best, (corr, (dy, dx)), key=lambda b: b[0])
    return best


@contextmanager
def xvfb_display() -> Iterator[str]:
    """A private X server without a screen (Xvfb); its display name."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "640x480x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()
        assert number, "Xvfb did not start (Debian: apt-get install xvfb)"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def view_in_napari(output: Path, results: Path) -> dict:
    """Run this file as a script: napari opens ``output`` and records what it sees."""
    results.mkdir()
    with xvfb_display() as display:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb",
               "XDG_RUNTIME_DIR": str(results), "NAPARI_CONFIG": str(results / "napari.yaml")}
        proc = subprocess.run([sys.executable, __file__, str(output), str(results)], env=env,
                              capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((results / "seen.json").read_text())


def test_napari_shows_every_level_where_our_metadata_puts_it(tmp_path, cli, models):
    import zarr

    output = restored(tmp_path, cli, models)
    ours = levels_of(output)
    arrays = {lv["path"]: zarr.open_array(str(output / lv["path"]), mode="r")[...] for lv in ours}
    assert [a.shape for a in arrays.values()][::6] == [(8, 512, 512), (4, 8, 8)]
    seen = view_in_napari(output, tmp_path / "napari")

    # the levels as napari places them, from level 0's transform and the shape ratios
    assert seen["multiscale"] and len(seen["level_shapes"]) == len(ours) == 7
    scale, translate = np.array(seen["scale"]), np.array(seen["translate"])
    for lv, factors in zip(ours, np.array(seen["downsample_factors"])):
        np.testing.assert_allclose(scale * factors, lv["scale"], err_msg=lv["path"])
        np.testing.assert_allclose(translate + scale * (factors - 1) / 2, lv["translation"],
                                   atol=1e-6, err_msg=lv["path"])
    assert list(seen["downsample_factors"][6]) == [2, 64, 64]  # z pooled once, at level 6
    assert list(translate) == [0, -3, -3]  # -(4 - 1) / 2 output voxels of 2 nm

    # on screen: each view is the stored level at our metadata's place, to the pixel
    for name, (level, section, zoom) in VIEWS.items():
        assert seen["shown_level"][name] == level, name
        shot = np.load(tmp_path / "napari" / f"{name}.npy")
        lv = ours[level]
        if level < 6 or section % 2 == 0:  # where napari's z pick holds the section
            assert shot.std() > 5, f"{name}: a blank screenshot"
            corr, shift = best_shift(shot, arrays[lv["path"]], lv["scale"], lv["translation"],
                                     section * 50.0, zoom)
            assert corr > 0.99 and shift == (0, 0), (name, corr, shift)
    # level 6: the 50 nm section i lies in slab i // 2; napari shows slab round(i / 2)
    slabs = []
    for i in range(8):
        shot = np.load(tmp_path / "napari" / f"level6-z{i}.npy")
        fits = [best_shift(shot, arrays["6"], ours[6]["scale"], ours[6]["translation"],
                           25.0 + 100 * s, 0.125, reach=1)[0] for s in range(4)]
        slabs.append(int(np.argmax(fits)))
    assert slabs[::2] == [0, 1, 2, 3]  # even sections: the right slab
    assert all(s in (i // 2, min(round(i / 2), 3)) for i, s in enumerate(slabs)), slabs
    # the measure tells a misplaced picture: the translation dropped (napari-ome-zarr 0.9-0.10)
    dropped = rendered(arrays["0"], ours[0]["scale"], np.zeros(3), 250.0, 1.0)
    assert best_shift(dropped, arrays["0"], ours[0]["scale"], ours[0]["translation"], 250.0,
                      1.0)[1] == (-3, -3)


def _view(output: str, results: Path) -> None:
    """In the child: napari opens ``output`` with napari-ome-zarr; record the multiscale layer's
    geometry and a screenshot of each view in VIEWS (grey values, .npy)."""
    import napari

    viewer = napari.Viewer(show=True)
    layer = viewer.open(output, plugin="napari-ome-zarr")[0]
    seen = {"multiscale": layer.multiscale, "scale": list(layer.scale),
            "translate": list(layer.translate),
            "level_shapes": np.asarray(layer.level_shapes).tolist(),
            "downsample_factors": np.asarray(layer.downsample_factors).tolist(),
            "shown_level": {}}
    for name, (level, section, zoom) in VIEWS.items():
        layer.locked_data_level = level
        viewer.dims.set_point(0, section * 50.0)
        viewer.camera.center = CENTRE
        viewer.camera.zoom = zoom
        shot = viewer.screenshot(size=(CANVAS, CANVAS), canvas_only=True, flash=False)
        np.save(results / f"{name}.npy", shot[..., :3].astype(float).mean(axis=2))
        seen["shown_level"][name] = int(layer.data_level)
    (results / "seen.json").write_text(json.dumps(seen))
    viewer.close()


if __name__ == "__main__":
    _view(sys.argv[1], Path(sys.argv[2]))
