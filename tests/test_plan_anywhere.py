"""Planning a GPU run anywhere (issue 21): on a machine without a GPU (CI, a login node),
``--dry-run`` plans for ``--device cuda`` / ``--cluster cuda`` with GPU-sized tasks; only a
real run needs the GPU."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
import zarr
from conftest import em_like, write_tiff

from pssr_volume.bundled import FACTS_FILE, bundled_models, recorded_facts
from pssr_volume.config import RunConfig
from pssr_volume.device import gpu_count
from pssr_volume.estimate import estimate
from pssr_volume.gpus import GPUS, gpu_named
from pssr_volume.model import file_sha256, measured_facts, model_info
from pssr_volume.plan import make_plan, model_cost
from pssr_volume.pyramid import cumulative
from pssr_volume.task_size import GPU_TASK_SECONDS, GPU_Z_STEP, gpu_block_sections

no_gpu = pytest.mark.skipif(gpu_count() > 0, reason="checks the refusal on a machine without GPU")


def test_gpu_names_and_rates():
    assert gpu_named(None).name == "H100" and gpu_named("A100-80GB").name == "A100"
    assert gpu_named("nvidia-h200").memory_gib == 141
    with pytest.raises(ValueError, match="unknown GPU 'tpu'.*H100"):
        gpu_named("tpu")


@pytest.mark.parametrize("gpu", sorted(GPUS))
def test_a_gpu_block_is_at_least_the_target_seconds_of_work(gpu):
    g, yx = 56.6, 4096  # the bundled model's GFLOP per output Mpx, the default block side
    z = gpu_block_sections(g, yx, GPUS[gpu])
    seconds = z * yx * yx / 1e6 * g / GPUS[gpu].gflops
    assert z % GPU_Z_STEP == 0
    assert seconds >= GPU_TASK_SECONDS or z == 128
    assert (z - GPU_Z_STEP) * yx * yx / 1e6 * g / GPUS[gpu].gflops < GPU_TASK_SECONDS or z == 8


@no_gpu
def test_dry_run_plans_for_cuda_without_a_gpu_and_a_real_run_is_refused(tmp_path, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((40, 32, 32)))
    out = tmp_path / "o.ome.zarr"
    for flags in (["--device", "cuda"], ["--cluster", "cuda"],
                  ["--device", "cuda", "--gpu", "a100"]):
        code, _, err = cli("run", inp, out, "--dry-run", *flags)
        assert code == 0, err
        gpu = "A100" if "a100" in flags else "H100"
        assert f"GPU-hours on {gpu}" in err and "device cuda" in err
        sections = int(re.search(r"blocks\s+\d+ of (\d+)x", err).group(1))
        assert sections > 2  # GPU-sized: thicker than the CPU default of 2 sections
        assert not out.exists()
    code, _, err = cli("run", inp, out, "--dry-run")  # this machine: a CPU plan
    assert code == 0 and "device cpu" in err and "of 2x" in err
    code, _, err = cli("run", inp, out, "--device", "cuda")
    assert code == 2 and "needs a CUDA GPU" in err and not out.exists()
    code, _, err = cli("run", inp, out, "--dry-run", "--device", "cuda", "--gpu", "tpu")
    assert code == 2 and "unknown GPU" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def teravoxel(tmp_path_factory) -> str:
    """The issue's example: 1000 x 32768 x 32768 uint8 (an empty array: metadata only)."""
    path = tmp_path_factory.mktemp("tvox") / "tvox.zarr"
    zarr.create_array(str(path), shape=(1000, 32768, 32768), chunks=(1, 1024, 1024),
                      dtype="uint8", fill_value=0)
    return str(path)


def test_the_teravoxel_cpu_plan_has_at_most_300000_files_with_one_writer_per_shard(
        tmp_path, teravoxel):
    cfg = RunConfig(input=teravoxel, output=str(tmp_path / "o.ome.zarr"), dry_run=True,
                    device="cpu", voxel_size=(30.0, 8.0, 8.0), cluster="sync")
    plan = make_plan(cfg)
    est = estimate(plan)
    assert plan.job.grid.block == (8, 4096, 4096)  # thickened from 2: 512,000 blocks is too many
    assert est.files <= 300_000
    # every level's shard is the region one task of its stage writes there (one writer)
    for st in plan.job.stages:
        for k in range(st.first, st.last + 1):
            f = cumulative(plan.job.levels, st.first, k)
            assert plan.layout.shards[k] == tuple(t // ff for t, ff in zip(st.task, f))
    # levels past the block tasks' first two go to later stages of fewer, larger tasks
    assert plan.job.stages[0].last == 1 and plan.job.stages[1].first == 2


def test_the_teravoxel_gpu_plan_has_at_most_64000_tasks_and_300000_files(tmp_path, teravoxel):
    cfg = RunConfig(input=teravoxel, output=str(tmp_path / "o.ome.zarr"), dry_run=True,
                    device="cuda", voxel_size=(30.0, 8.0, 8.0), cluster="sync")
    plan = make_plan(cfg)
    est = estimate(plan)
    assert plan.job.device == "cuda" and plan.gpu == gpu_named(None)
    z = plan.job.grid.block[0]
    assert z == gpu_block_sections(model_cost(plan.model), plan.job.grid.block[1], plan.gpu)
    assert est.tasks <= 64_000 and est.blocks == math.ceil(1000 / z) * 32 * 32
    assert est.files <= 300_000
    assert est.block_gpu_seconds() >= GPU_TASK_SECONDS


# Runs the CLI's dry run in a fresh interpreter and reports what it loaded: torch and the
# networks (pssr_volume.nets: a model built, probed or counted) must not be among them.
_LOADED = """
import sys
from pssr_volume.cli import main
code = main(sys.argv[1:])
nets = sorted(m for m in sys.modules if m.startswith('pssr_volume.nets'))
print(code, 'torch' in sys.modules, nets)
"""


@pytest.mark.parametrize("flags", [[], ["--device", "cuda", "--gpu", "H100"]])
def test_the_teravoxel_dry_run_loads_no_torch_and_builds_no_network(tmp_path, teravoxel, flags):
    """Planning a bundled model takes its network's facts from the record (docs/PERFORMANCE.md:
    the dry run of this example in ~4 s and ~230 MB, benchmarks/bench_plan.py)."""
    proc = subprocess.run([sys.executable, "-c", _LOADED, "run", teravoxel,
                           str(tmp_path / "o.ome.zarr"), "--voxel-size", "30,8,8", "--dry-run",
                           *flags], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().split(maxsplit=2) == ["0", "False", "[]"], proc.stderr
    assert "receptive field 49 px" in proc.stderr and "dry run: nothing was written" in proc.stderr
    assert ("device cuda" in proc.stderr) == bool(flags)


@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_the_recorded_facts_of_a_bundled_model_are_measured_again(name):
    """The record (pssr_volume/bundled/facts.json) is what measuring the file gives now; when
    a model or a network changes, rewrite the entry with pssr_volume.model.measured_facts."""
    path = bundled_models()[name]
    recorded = recorded_facts(file_sha256(path))
    assert recorded is not None, f"{name} is not in {FACTS_FILE}"
    measured = {"name": name, **measured_facts(path)}
    assert recorded == {**measured, "gflop_per_out_mpx": pytest.approx(
        measured["gflop_per_out_mpx"], rel=1e-9)}, json.dumps(measured)
    info = model_info(path)
    assert info.recorded and info.receptive_field == tuple(recorded["receptive_field"])


def test_a_model_not_recorded_is_measured(models):
    info = model_info(models["fast"])
    assert not info.recorded and info.gflop_per_out_mpx is None and info.grid == 4
