"""Clusters and profiles: what ``--cluster``/``--profile`` accept and refuse, the
SLURM job a profile makes, and ``--cluster cuda`` (on a GPU only).

The end-to-end SLURM runs are in test_slurm.py (a real local SLURM); faults in
test_faults.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import digest, em_like, write_tiff

from pssr_volume.cluster.profile import load_profile
from pssr_volume.cluster.slurm import slurm_cluster_kwargs
from pssr_volume.device import gpu_count
from pssr_volume.errors import PssrError

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def write_profile(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def job_script(profile_path: Path) -> str:
    """The batch script dask-jobqueue would submit for a profile (no SLURM needed)."""
    from dask_jobqueue import SLURMCluster

    kwargs = slurm_cluster_kwargs(load_profile(profile_path))
    kwargs["scheduler_options"] = {"dashboard_address": None}
    cluster = SLURMCluster(**kwargs)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def test_example_gpu_profile_makes_a_one_gpu_worker_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the profile's relative log directory is created here
    profile = load_profile(WORKFLOWS / "profiles" / "gpu.yaml")
    assert profile.device == "cuda" and profile.gpus == 1 and profile.adaptive is not None
    assert profile.max_workers == profile.adaptive.maximum and profile.threads == 8
    script = job_script(WORKFLOWS / "profiles" / "gpu.yaml")
    for line in ("#SBATCH -p gpu", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G",
                 "#SBATCH -t 04:00:00", "#SBATCH --gres=gpu:1", "module load cuda/12"):
        assert line in script, line
    # the workers' allocator setting first, so that the profile's own lines can change it
    assert script.index("export MALLOC_ARENA_MAX=1") < script.index("module load cuda/12")
    # two task threads per worker process (one computes while the other commits: the
    # compute slot); the job's cores become torch threads
    assert "--nthreads 2" in script and "--lifetime 225m" in script
    assert "--local-directory $TMPDIR" in script and "--death-timeout 120" in script


def test_example_cpu_profile_makes_four_workers_per_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = load_profile(WORKFLOWS / "profiles" / "cpu.yaml")
    assert profile.device == "cpu" and profile.n_jobs == 4 and profile.max_workers == 16
    assert profile.threads == 4
    script = job_script(WORKFLOWS / "profiles" / "cpu.yaml")
    assert "#SBATCH --cpus-per-task=16" in script and "--gres" not in script
    assert "--nthreads 2" in script and "--memory-limit 14.90GiB" in script


def test_profile_synonyms_defaults_and_gpu_type(tmp_path):
    p = load_profile(write_profile(tmp_path / "p.yaml",
                                   "queue: short\nmemory: 4GB\ngpus: 1\ngpu_type: a100\n"))
    assert p.partition == "short" and p.n_jobs == 1 and p.gres() == "gpu:a100:1"
    assert p.walltime == "01:00:00" and p.threads == 1


PROFILE_ERRORS = {
    "typo key": ("partiton: gpu\nmemory: 4GB\n",
                 "unknown key 'partiton' (did you mean 'partition'?)"),
    "nested typo": ("memory: 4GB\nadaptive: {minimum: 1, maxi: 3}\n",
                    "unknown key 'adaptive.maxi' (did you mean 'maximum'?)"),
    "zero cores": ("memory: 4GB\ncores: 0\n", "bad value for 'cores' (0)"),
    "text cores": ("memory: 4GB\ncores: many\n", "bad value for 'cores' ('many')"),
    "bad memory": ("memory: lots\n", "bad value for 'memory' ('lots')"),
    "bad walltime": ("memory: 4GB\nwalltime: 4h\n", "bad value for 'walltime' ('4h')"),
    "unquoted walltime": ("memory: 4GB\nwalltime: 4:00:00\n",
                          "bad value for 'walltime' (14400): write the walltime in quotes"),
    "two gpus": ("memory: 4GB\ngpus: 2\n", "bad value for 'gpus' (2)"),
    "no memory": ("cores: 4\n", "missing key 'memory'"),
    "jobs and adaptive": ("memory: 4GB\njobs: 2\nadaptive: {maximum: 3}\n",
                          "give 'jobs' or 'adaptive', not both"),
    "min above max": ("memory: 4GB\nadaptive: {minimum: 5, maximum: 3}\n",
                      "minimum (5) is above maximum (3)"),
    "processes above cores": ("memory: 4GB\ncores: 2\nprocesses: 4\n",
                              "processes (4) exceeds cores (2)"),
    "gpu with processes": ("memory: 4GB\ncores: 4\nprocesses: 2\ngpus: 1\n",
                           "a GPU job runs one worker process"),
    "sbatch prefix": ("memory: 4GB\njob_extra_directives: ['#SBATCH --qos=x']\n",
                      "is not an sbatch option"),
    "both partition keys": ("memory: 4GB\nqueue: a\npartition: b\n",
                            "give 'partition' or its synonym 'queue', not both"),
    "not a mapping": ("- memory: 4GB\n", "must be a mapping"),
    "bad yaml": ("memory: [4GB\n", "is not valid YAML (line 2)"),
    "empty": ("", "is empty"),
}


@pytest.mark.parametrize("case", list(PROFILE_ERRORS))
def test_bad_profiles_are_refused_naming_the_key(tmp_path, case):
    text, expected = PROFILE_ERRORS[case]
    path = write_profile(tmp_path / "site.yaml", text)
    with pytest.raises(PssrError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"profile {path}") and expected in message, message
    assert "\n" not in message


def test_missing_and_binary_profiles(tmp_path):
    with pytest.raises(PssrError, match="profile not found: .*nope.yaml"):
        load_profile(tmp_path / "nope.yaml")
    binary = tmp_path / "model.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(PssrError, match="not a text|not valid YAML"):
        load_profile(binary)


@pytest.fixture
def inp(tmp_path):
    return write_tiff(tmp_path / "in.tif", em_like((2, 24, 20)))


def cli_failure(cli, tmp_path, *args):
    """Run the CLI expecting a clean one-line failure that leaves tmp_path unchanged."""
    before = digest(tmp_path)
    code, out, err = cli("run", *args, "--no-progress")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err and digest(tmp_path) == before
    return lines[0]


def test_cli_names_the_profile_problem(tmp_path, inp, models, cli):
    out = tmp_path / "out.ome.zarr"
    inp.chmod(0o444)
    m = ["--model", models["pointwise"]]
    typo = write_profile(tmp_path / "typo.yaml", "partiton: gpu\nmemory: 4GB\n")
    line = cli_failure(cli, tmp_path, inp, out, *m, "--cluster", "slurm", "--profile", typo)
    assert f"profile {typo}: unknown key 'partiton'" in line
    bad = write_profile(tmp_path / "bad.yaml", "memory: 4GB\nwalltime: soon\n")
    line = cli_failure(cli, tmp_path, inp, out, *m, "--cluster", "slurm", "--profile", bad)
    assert "bad value for 'walltime' ('soon')" in line
    line = cli_failure(cli, tmp_path, inp, out, *m, "--cluster", "slurm")
    assert "--cluster slurm needs --profile" in line
    line = cli_failure(cli, tmp_path, inp, out, *m, "--profile", bad)
    assert "--profile is only used with --cluster slurm" in line


@pytest.mark.skipif(gpu_count() > 0, reason="a GPU is present: the no-GPU errors cannot happen")
def test_cuda_without_a_gpu_is_one_clean_line(tmp_path, inp, models, cli):
    out = tmp_path / "out.ome.zarr"
    inp.chmod(0o444)
    m = ["--model", models["pointwise"]]
    line = cli_failure(cli, tmp_path, inp, out, *m, "--cluster", "cuda")
    assert "--cluster cuda needs a CUDA GPU" in line
    line = cli_failure(cli, tmp_path, inp, out, *m, "--device", "cuda")
    assert "--device cuda needs a CUDA GPU" in line


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="needs a CUDA GPU")
def test_cuda_cluster_matches_cpu_run(tmp_path, models, cli):
    """On a GPU: --cluster cuda restores the same volume as a CPU run, within the
    blockwise tolerance of a real network (fixed algorithms, no TF32)."""
    pytest.importorskip("dask_cuda", reason='needs the cuda extra: pip install ".[cuda]"')
    inp = write_tiff(tmp_path / "in.tif", em_like((3, 64, 64), seed=8))
    outs = {}
    for name, args in (("cpu", ["--cluster", "local", "--workers", "1", "--device", "cpu"]),
                       ("cuda", ["--cluster", "cuda"])):
        out = tmp_path / f"{name}.ome.zarr"
        code, _, err = cli("run", inp, out, "--model", models["fast"], "--block-shape",
                           "1,128,128", "--no-progress", *args)
        assert code == 0, err
        outs[name] = zarr.open_group(str(out), mode="r")["0"][:].astype(int)
    assert np.abs(outs["cpu"] - outs["cuda"]).max() <= 1


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="needs a CUDA GPU")
@pytest.mark.parametrize("cluster", ["sync", "local"])
def test_device_cuda_on_a_cpu_cluster_matches_cpu_run(tmp_path, models, cli, cluster):
    """``--device cuda`` without dask-cuda: in-process (sync) and on a LocalCluster, the
    network runs on the GPU and restores what a CPU run does, within 1 grey level; the
    provenance records the device."""
    inp = write_tiff(tmp_path / "in.tif", em_like((3, 64, 64), seed=9))
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.ome.zarr"
        code, _, err = cli("run", inp, out, "--model", models["fast"], "--block-shape",
                           "1,128,128", "--no-progress", "--cluster", cluster,
                           "--device", device, *(["--workers", "1"] if cluster == "local"
                                                 else []))
        assert code == 0, err
        group = zarr.open_group(str(out), mode="r")
        assert group.attrs["pssr_volume"]["settings"]["device"].startswith(device)
        outs[device] = group["0"][:].astype(int)
    assert np.abs(outs["cpu"] - outs["cuda"]).max() <= 1
