"""Shared fixtures: tiny model files, a real Dask cluster, TIFF writers, the CLI."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skip_policy
import tifffile
import torch

from pssr_volume.config import ModelConfig, NormalizationConfig
from pssr_volume.io.journal import Journal
from pssr_volume.model import save_model
from pssr_volume.nets.fast import FastUNet, Pointwise

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")


def pytest_configure(config: pytest.Config) -> None:
    """CI's rule on skips: with PSSR_NO_SKIPS=1 only GPU tests may skip (skip_policy.py)."""
    skip_policy.register(config)


def write_tiff(path: Path, data: np.ndarray, voxel: tuple[float, float, float] | None = (
        50.0, 18.4, 18.4)) -> Path:
    """An ImageJ TIFF stack with a voxel size (z, y, x) in nm, like a microscope writes."""
    if voxel is None:
        tifffile.imwrite(path, data, photometric="minisblack")
    else:
        tifffile.imwrite(path, data, imagej=True, resolution=(1 / voxel[2], 1 / voxel[1]),
                         metadata={"spacing": voxel[0], "unit": "nm", "axes": "ZYX"})
    return path



def assert_radius_is_exact(net: torch.nn.Module, radius: int, grid: int,
                           dtype: torch.dtype = torch.float32) -> None:
    """Perturbing the input ``radius`` pixels outside a grid cell changes the cell's x4
    output; perturbing it one pixel further out changes nothing."""
    n = 2 * radius + 4 * grid
    c0 = (n // 2 // grid) * grid
    x = torch.rand(1, 1, n, n, dtype=dtype)

    def cell(inp: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(inp)[..., c0 * 4:(c0 + grid) * 4, c0 * 4:(c0 + grid) * 4]

    base = cell(x)
    for d, changes in [(radius, True), (radius + 1, False)]:
        y = x.clone()
        y[..., c0 - d, :] += 1
        y[..., c0 + grid - 1 + d, :] += 1
        y[..., :, c0 - d] += 1
        y[..., :, c0 + grid - 1 + d] += 1
        assert bool((cell(y) != base).any()) is changes

def em_like(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Smooth random structure plus noise, uint8: enough texture for a network to
    react to, cheap to make."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(0.5, 2.0, 2.0))
    field = (field - field.mean()) / (field.std() + 1e-9)
    noisy = 128 + 40 * field + rng.normal(0, 8, size=shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def digest(path: Path) -> str:
    """SHA-256 over every file below ``path`` (or of the file), with names."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def blocks_done(output: Path) -> int:
    """Blocks the output's journal records as done."""
    return sum(k.startswith("block ") for k in Journal(output).done())


def levels(output: Path) -> dict[str, str]:
    """Digest of each pyramid level's chunk files: identical bytes, not just values."""
    names = sorted(p.name for p in output.iterdir() if p.name.isdigit())
    assert names, f"no levels in {output}"
    return {name: digest(output / name) for name in names}


def wait_for(predicate, what: str, timeout: float = 120.0, step: float = 0.005) -> None:
    """Poll ``predicate`` every ``step`` s; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


# a Dask server's periodic work under pssr_volume.cluster.settings: no statistical profiler,
# the latency tick every second and the system monitor every 2 s (milliseconds)
QUIET = {"profile": None, "tick": 1000, "monitor": 2000}


def periodic_work(dask_worker=None, dask_scheduler=None) -> dict:
    """What a Dask worker or scheduler runs periodically (``client.run`` and
    ``run_on_scheduler`` pass it in): the callbacks :data:`QUIET` names, and their periods."""
    server = dask_worker or dask_scheduler
    found = {name: server.periodic_callbacks.get(name) for name in QUIET}
    return {name: getattr(pc, "callback_time", None) for name, pc in found.items()}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model files: ``pointwise`` (exact stand-in), ``fast`` and ``fast3`` (random
    initialised pssr-fast, 1 and 3 input sections)."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    out = {
        "pointwise": save_model(
            d / "pointwise.safetensors", Pointwise(),
            ModelConfig(name="pointwise", architecture="pointwise",
                        normalization=NormalizationConfig(mode="fixed", low=0, high=255))),
    }
    for name, slices in (("fast", 1), ("fast3", 3)):
        net = FastUNet(in_slices=slices, width=8)
        with torch.no_grad():  # a random network with a visible, non-trivial response
            net.tail.weight.normal_(0, 0.05)
        out[name] = save_model(
            d / f"{name}.safetensors", net,
            ModelConfig(name=name, architecture="pssr-fast", arch_args={"width": 8},
                        in_slices=slices))
    return out


@pytest.fixture(scope="session")
def scheduler() -> Iterator[str]:
    """Address of a real dask.distributed LocalCluster (2 worker processes),
    shared by the tests that pass ``--cluster tcp://...``."""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``pssr-volume`` in-process; returns (exit status, stdout, stderr)."""
    from pssr_volume.cli import main

    def call(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def check_journal_round_trip(out: str) -> None:
    """The journal of an output on an object store: marks, reads back, replaces, removes."""
    from pssr_volume.io import objects
    from pssr_volume.io.journal import Journal

    journal = Journal(out)
    for k in ("block 0 0 0", "block 0 0 1", "pyramid 1 0:1,0:8,0:8"):
        journal.mark(k)
    assert journal.done() == {"block 0 0 0", "block 0 0 1", "pyramid 1 0:1,0:8,0:8"}
    journal.replace({"block 0 0 1"})
    assert journal.done() == {"block 0 0 1"}
    journal.remove()
    assert journal.done() == set() and not objects.names(f"{out}/.pssr-volume")


CLI = str(Path(sys.executable).with_name("pssr-volume"))


def start(*args: object, cwd: Path, env: dict[str, str] | None = None
          ) -> tuple[subprocess.Popen[str], float]:
    """Start ``pssr-volume ARGS`` as a process (so that a hang cannot hang the tests), with
    ``env`` added to the environment."""
    proc = subprocess.Popen([CLI, *map(str, args)], cwd=cwd, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    return proc, time.monotonic()


def finish(started: tuple[subprocess.Popen[str], float], timeout: float) -> tuple[int, str, float]:
    """Exit status, stderr and seconds of a started process; fail (killing it) after
    ``timeout`` s."""
    proc, t0 = started
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"pssr-volume {proc.args[1:]} still running after {timeout} s")
    return proc.returncode, err, time.monotonic() - t0


def anisotropic_restoration(tmp_path: Path, cli, models: dict[str, Path], seed: int) -> Path:
    """A x4 restoration (the pointwise model: exact) of an 8 x 128 x 128 input at 50 x 8 x 8 nm:
    8 x 512 x 512 voxels of 50 x 2 x 2 nm, levels 0-6; only level 6 is pooled in z (the
    napari and webKnossos tests)."""
    inp = write_tiff(tmp_path / "in.tif", em_like((8, 128, 128), seed=seed), voxel=None)
    out = tmp_path / "restored.ome.zarr"
    code, _, err = cli("run", inp, out, "--model", models["pointwise"], "--voxel-size", "50,8,8",
                       "--levels", "7", "--cluster", "sync", "--no-progress")
    assert code == 0, err
    return out
