"""``pssr-volume export-model``: bioimage.io packages of the bundled models.

Both bundled models are exported once (the iso one over a copy of the other's package, with
--overwrite); bioimageio.core's own test passes on each (every weight format: the state dict
with the network's source, TorchScript, ONNX), the test output matches ``pssr-volume run`` of
the test input, and the network's source rebuilds the network without pssr_volume."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import write_tiff

from pssr_volume.bioimage.provenance import training_datasets
from pssr_volume.bioimage.source import noise_map
from pssr_volume.bundled import BUNDLED, bundled_model_path
from pssr_volume.cli import main
from pssr_volume.model import model_info
from pssr_volume.model_header import read_config
from pssr_volume.noise import NoiseModel, network_input

MODELS = ("pssr-em-x4", "pssr-em-x4-iso")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each bundled model's package; the iso one replaces (--overwrite) a copy of the other's."""
    folder = tmp_path_factory.mktemp("packages")
    first, second = folder / "m.zip", folder / "iso.zip"
    assert main(["export-model", MODELS[0], str(first)]) == 0
    shutil.copy(first, second)
    assert main(["export-model", MODELS[1], str(second), "--overwrite"]) == 0
    return {MODELS[0]: first, MODELS[1]: second}


def _member(package: Path, name: str) -> np.ndarray:
    with zipfile.ZipFile(package) as z:
        return np.load(io.BytesIO(z.read(name)))


@pytest.mark.parametrize("name", MODELS)
def test_bioimageio_test_passes(packages: dict[str, Path], name: str) -> None:
    """`bioimageio test` (bioimageio.core's test_model): the description is valid and every
    weight format reproduces the test output and runs at each parametrised size."""
    from bioimageio.core import test_model

    summary = test_model(packages[name])
    assert summary.status == "passed", summary.format()
    tested = {d.loc[1] for d in summary.details if len(d.loc) == 2 and d.loc[0] == "weights"}
    assert tested == {"pytorch_state_dict", "torchscript", "onnx"}


@pytest.mark.parametrize("name", MODELS)
def test_description(packages: dict[str, Path], name: str) -> None:
    """What the rdf says: the model's preprocessing, halo, pixel sizes, noise input, licence,
    weights identity and documentation, as the model file and its card say them."""
    from bioimageio.spec import load_model_description

    descr = load_model_description(packages[name], perform_io_checks=False)
    path = bundled_model_path(name)
    info, config = model_info(path), read_config(path)
    assert descr.format_version.startswith("0.5") and descr.name == name
    raw = descr.inputs[0]
    assert [t.id for t in descr.inputs] == ["raw", "noise_model"]  # both models are noise-aware
    scale_range = [p for p in raw.preprocessing if p.id == "scale_range"]
    assert len(scale_range) == 1
    kwargs = scale_range[0].kwargs
    assert (kwargs.min_percentile, kwargs.max_percentile) == (config.normalization.low,
                                                               config.normalization.high)
    axes = {a.id: a for a in raw.axes}
    out = {a.id: a for a in descr.outputs[0].axes}
    assert out["y"].halo == out["x"].halo == max(info.default_halo) * config.scale
    assert axes["y"].scale == config.scale * out["y"].scale and out["y"].unit == "nanometer"
    assert config.pixel_size_nm[0] <= out["y"].scale <= config.pixel_size_nm[1]
    assert axes["y"].size.step == info.grid and raw.pad.mode == "reflect"
    if config.in_slices > 1:
        assert axes["z"].size == config.in_slices and axes["z"].scale == config.section_spacing_nm
    noise = descr.inputs[1]
    assert [a.id for a in noise.axes] == ["batch", "channel", "y", "x"]
    assert noise.axes[1].channel_names == ["a", "b"] and noise.axes[2].size == axes["y"].size
    assert [t.id for t in descr.outputs] == ["restored", "noise_map"]
    assert {a.id: a for a in descr.outputs[1].axes}["y"].halo == max(info.default_halo)
    record = descr.config.model_extra["pssr_volume"]
    assert record["model"]["sha256"] == info.sha256
    expected = "CC-BY-NC-SA-3.0" if name == "pssr-em-x4" else "CC-BY-3.0"
    assert descr.license == expected
    with zipfile.ZipFile(packages[name]) as z:
        readme = z.read("README.md").decode()
        assert {"cover.png", "pssr_network.py", "weights.pt", "weights_torchscript.pt",
                "weights.onnx"} <= set(z.namelist())
    card = (path.parent / f"{name}.md").read_text()
    assert card in readme and "## Validation" in readme
    kw = descr.weights.pytorch_state_dict.architecture.kwargs
    assert kw["noise_input"] is True and kw["in_slices"] == config.in_slices


@pytest.mark.parametrize("name", MODELS)
def test_test_output_equals_run(packages: dict[str, Path], name: str, tmp_path: Path,
                                cli) -> None:
    """The package's test output, mapped back to grey levels, equals `pssr-volume run` of its
    test input within 1 grey level beyond the halo (where the result does not depend on how
    the tile's border is padded: run reflect-pads a volume, the network alone zero-pads).
    run may restore in bf16 (on CPUs that compute it), the test output is float32.
    (bioimageio.core's blockwise prediction, which reflect-pads like run, matches run on whole
    sections: benchmarks/bioimage_vs_run.py.)"""
    raw = _member(packages[name], "test_raw.npy")[0]
    restored = _member(packages[name], "test_restored.npy")[0, 0]
    k = raw.shape[0]
    voxel = (50.0, 18.4, 18.4) if k == 1 else (10.0, 40.0, 40.0)
    inp = write_tiff(tmp_path / "in.tif", raw.astype(np.uint8), voxel=voxel)
    out = tmp_path / "out.ome.zarr"
    code, _, err = cli("run", inp, out, "--model", name, "--cluster", "sync", "--no-progress")
    assert code == 0, err
    got = zarr.open_array(str(out / "0"), mode="r")[k // 2].astype(int)
    lo, hi = np.percentile(raw, [0.1, 99.9])  # the normalisation of a volume this small
    package = np.clip(np.rint(restored * np.float32(hi - lo) + np.float32(lo)), 0, 255)
    h = max(model_info(bundled_model_path(name)).default_halo) * 4
    core = np.abs(got - package.astype(int))[h:-h, h:-h]
    assert core.size >= 64 * 64 and core.max() <= 1 and (core > 0).mean() < 0.2



STANDALONE = """
import importlib.abc, io, json, runpy, sys, zipfile
import numpy as np, torch

class NoPssrVolume(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "pssr_volume":
            raise ImportError("pssr_volume is not available here")

sys.meta_path.insert(0, NoPssrVolume())
folder, kwargs = sys.argv[1], json.loads(sys.argv[2])
net = runpy.run_path(folder + "/pssr_network.py")["PackagedNetwork"](**kwargs)
net.load_state_dict(torch.load(folder + "/weights.pt", weights_only=True), strict=True)
raw = np.load(folder + "/test_raw.npy")
lo, hi = np.percentile(raw, [0.1, 99.9])
x = torch.from_numpy(((raw - lo) / (hi - lo)).astype(np.float32))
noise = torch.from_numpy(np.load(folder + "/test_noise_model.npy"))
with torch.no_grad():
    y, noise_map = (t.numpy() for t in net.eval()(x, noise))
print(max(float(np.abs(y - np.load(folder + "/test_restored.npy")).max()),
          float(np.abs(noise_map - np.load(folder + "/test_noise_map.npy")).max())))
print("pssr_volume" in sys.modules)
"""


def test_source_needs_no_pssr_volume(packages: dict[str, Path], tmp_path: Path) -> None:
    """The package's network source builds the network, loads its state dict (strict) and
    reproduces the test outputs in a process that cannot import pssr_volume."""
    import json

    from bioimageio.spec import load_model_description

    with zipfile.ZipFile(packages["pssr-em-x4-iso"]) as z:
        z.extractall(tmp_path)
    descr = load_model_description(packages["pssr-em-x4-iso"], perform_io_checks=False)
    kwargs = json.dumps(descr.weights.pytorch_state_dict.architecture.kwargs)
    done = subprocess.run([sys.executable, "-c", STANDALONE, str(tmp_path), kwargs],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    max_diff, imported = done.stdout.split()
    assert float(max_diff) < 1e-4 and imported == "False"


def test_noise_map_equals_the_engines() -> None:
    """The noise map the packaged network makes from images of (a, b) is the engine's noise
    channel (bioimageio test checks it on the test tile too: the output noise_map)."""
    rng = np.random.default_rng(3)
    x = rng.random((2, 3, 21, 26), dtype=np.float32)
    models = [NoiseModel(0.004, 0.02), NoiseModel(0.0, 0.0)]
    want = network_input(x, models)[:, -1:]
    images = np.stack([np.stack([np.full(x.shape[2:], v, np.float32) for v in (m.a, m.b)])
                       for m in models])
    got = noise_map(torch.from_numpy(x), torch.from_numpy(images), 3)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    assert want[0].min() > 0 and want[1].max() == 0


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_training_data_is_known_and_in_the_card(name: str) -> None:
    """Every training input of a bundled model is a known dataset, named with its terms in
    the model card."""
    known, unknown = training_datasets(read_config(bundled_model_path(name)))
    card = bundled_model_path(name).with_suffix(".md").read_text()
    assert known and not unknown
    for d in known:
        assert d.name.split(",")[0] in card and d.terms.split(" (")[0] in card


def test_bad_arguments(tmp_path: Path, cli) -> None:
    """Each refusal is one line and exit 2, before any work; existing files stay as they were."""
    existing = tmp_path / "exists.zip"
    existing.write_bytes(b"not a package")
    cases = {
        ("no-such-model", tmp_path / "a.zip"): "model not found: no-such-model",
        ("", tmp_path / "a.zip"): "MODEL is empty",
        ("pssr-em-x4", existing): "output exists",
        ("pssr-em-x4", existing, "--overwrite"): "it is not a bioimage.io package",
        ("pssr-em-x4", tmp_path / "a.tar"): "is a .zip file",
        ("pssr-em-x4", tmp_path / "missing" / "a.zip"): "does not exist",
        ("pssr-em-x4", existing / "a.zip"): "is not a folder",
        ("pssr-em-x4", "s3://bucket/a.zip"): "URLs are not supported",
        (str(bundled_model_path().with_suffix(".md")), tmp_path / "a.zip"):
            "not a pssr-volume model file",
    }
    if Path("/proc").is_dir():
        cases["pssr-em-x4", Path("/proc/a.zip")] = "is not writable"
    for args, expected in cases.items():
        code, out, err = cli("export-model", *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expected in lines[0], (args, err)
        assert "Traceback" not in err and not (tmp_path / "a.zip").exists()
    assert existing.read_bytes() == b"not a package"
