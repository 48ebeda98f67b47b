"""The command line: the main job as a user types it, and every bad input.

Each bad input must give one line on stderr, a non-zero exit status, no
traceback, no output written, and an unchanged input.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import zarr
from conftest import digest, em_like, write_tiff


@pytest.fixture
def inp(tmp_path):
    return write_tiff(tmp_path / "in.tif", em_like((2, 24, 20)))


def assert_clean_failure(code, out, err, output=None):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ") and "Traceback" not in err
    if output is not None:
        assert not output.exists()


def bad_cases(tmp_path, inp, models):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i in range(3):
        write_tiff(folder / f"{i}.tif", em_like((1, 16, 16), seed=i)[0], voxel=None)
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(inp.read_bytes()[:300])
    garbage_model = tmp_path / "garbage.safetensors"
    garbage_model.write_bytes(b"not a model at all" * 10)
    pickled_model = tmp_path / "model.pt"
    pickled_model.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    out = tmp_path / "out.ome.zarr"
    m = ["--model", models["fast"]]
    typo_profile = tmp_path / "typo.yaml"
    typo_profile.write_text("partiton: gpu\nmemory: 16GB\n")
    bad_profile = tmp_path / "bad.yaml"
    bad_profile.write_text("partition: gpu\nmemory: 16GB\ncores: -4\n")
    slurm = ["--cluster", "slurm", "--profile"]
    return {
        "missing input": [tmp_path / "nope.tif", out, *m],
        "corrupt tiff": [corrupt, out, *m],
        "output is input": [inp, inp, *m],
        "output inside input": [folder, folder / "out.ome.zarr", *m],
        "zero block": [inp, out, *m, "--block-shape", "0,64,64"],
        "negative block": [inp, out, *m, "--block-shape", "1,-64,64"],
        "garbage block": [inp, out, *m, "--block-shape", "a,b,c"],
        "two-value block": [inp, out, *m, "--block-shape", "64,64"],
        "off-grid block": [inp, out, *m, "--block-shape", "1,60,64"],
        "block not a multiple of chunk": [inp, out, *m, "--block-shape", "2,64,64",
                                          "--chunk-shape", "2,48,64"],
        "negative halo": [inp, out, *m, "--halo", "-4,8"],
        "garbage halo": [inp, out, *m, "--halo", "x"],
        "zero voxel size": [inp, out, *m, "--voxel-size", "0,4,4"],
        "garbage voxel size": [inp, out, *m, "--voxel-size", "50,nm,4"],
        "missing model": [inp, out, "--model", tmp_path / "missing.safetensors"],
        "garbage model": [inp, out, "--model", garbage_model],
        "pickle model": [inp, out, "--model", pickled_model],
        "unknown cluster": [inp, out, *m, "--cluster", "kubernetes"],
        "resume and overwrite": [inp, out, *m, "--resume", "--overwrite"],
        "zero workers": [inp, out, *m, "--workers", "0"],
        "bad profile key": [inp, out, *m, *slurm, typo_profile],
        "bad profile value": [inp, out, *m, *slurm, bad_profile],
        "missing profile": [inp, out, *m, *slurm, tmp_path / "none.yaml"],
        "slurm without profile": [inp, out, *m, "--cluster", "slurm"],
        "profile without slurm": [inp, out, *m, "--profile", typo_profile],
        "cuda cluster without gpu": [inp, out, *m, "--cluster", "cuda"],
        "cuda device without gpu": [inp, out, *m, "--device", "cuda"],
    }


CASES = ["missing input", "corrupt tiff", "output is input", "output inside input",
         "zero block", "negative block", "garbage block", "two-value block", "off-grid block",
         "block not a multiple of chunk", "negative halo", "garbage halo", "zero voxel size",
         "garbage voxel size", "missing model", "garbage model", "pickle model",
         "unknown cluster", "resume and overwrite", "zero workers", "bad profile key",
         "bad profile value", "missing profile", "slurm without profile", "profile without slurm",
         "cuda cluster without gpu", "cuda device without gpu"]
NEEDS_NO_GPU = {"cuda cluster without gpu", "cuda device without gpu"}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_clean_line(tmp_path, inp, models, cli, case):
    if case in NEEDS_NO_GPU:
        from pssr_volume.device import gpu_count

        if gpu_count():
            pytest.skip("a GPU is present here")
    args = bad_cases(tmp_path, inp, models)[case]
    inp.chmod(0o444)
    before = digest(tmp_path)
    code, out, err = cli("run", *args, "--no-progress")
    assert_clean_failure(code, out, err)
    assert digest(tmp_path) == before  # nothing written, input unchanged


def test_existing_output_is_refused_and_kept(tmp_path, inp, models, cli, scheduler):
    out = tmp_path / "out.ome.zarr"
    args = ["run", inp, out, "--model", models["pointwise"], "--cluster", scheduler,
            "--no-progress"]
    assert cli(*args)[0] == 0
    before = digest(out)
    code, _, err = cli(*args)
    assert_clean_failure(code, "", err)
    assert "output exists" in err and digest(out) == before
    not_zarr = tmp_path / "precious"
    not_zarr.mkdir()
    (not_zarr / "thesis.txt").write_text("do not delete")
    code, _, err = cli("run", inp, not_zarr, "--model", models["pointwise"], "--overwrite")
    assert_clean_failure(code, "", err)
    assert (not_zarr / "thesis.txt").read_text() == "do not delete"


def test_run_reports_and_info_describes(tmp_path, inp, models, cli, scheduler):
    out = tmp_path / "out.ome.zarr"
    code, _, err = cli("run", inp, out, "--model", models["fast"], "--cluster", scheduler,
                       "--block-shape", "2,64,64", "--no-progress")
    assert code == 0, err
    assert "done: 4 block(s) restored" in err and "receptive field 26 px" in err
    code, text, _ = cli("info", models["fast"])
    assert code == 0 and "network   pssr-fast" in text and "px (y, x) by default" in text
    code, text, _ = cli("info", models["fast"], "--json")
    assert code == 0 and json.loads(text)["architecture"] == "pssr-fast"
    code, text, _ = cli("info", out)
    assert code == 0 and "shape (z, y, x) = (2, 96, 80)" in text and "model     fast" in text
    code, text, _ = cli("info", out, "--json")
    assert code == 0 and json.loads(text)["provenance"]["fingerprint"]
    assert cli("info", tmp_path / "missing")[0] != 0


def test_no_voxel_size_warns_and_uses_1nm(tmp_path, models, cli, scheduler):
    inp = write_tiff(tmp_path / "raw.tif", em_like((1, 16, 16)), voxel=None)
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", models["pointwise"],
                       "--cluster", scheduler, "--no-progress")
    assert code == 0 and "no voxel size" in err
    scale = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r").attrs["ome"][
        "multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.25, 0.25]
    code, _, err = cli("run", inp, tmp_path / "o2.ome.zarr", "--model", models["pointwise"],
                       "--cluster", scheduler, "--no-progress", "--voxel-size", "30,8,8")
    assert code == 0 and "no voxel size" not in err


def test_demo_command(tmp_path, cli):
    from pssr_volume.demo import make_demo_volume
    from pssr_volume.io.inputs import open_input

    code, out, err = cli("demo", tmp_path / "demo.tif", "--shape", "2,64,48", "--seed", "3",
                         "--hr", tmp_path / "hr.tif")
    assert code == 0, err
    assert f"wrote {tmp_path / 'demo.tif'}: 2x64x48 uint8, voxel 50x18.4x18.4 nm" in out + err
    # --shape is the LR shape; the HR truth is 4x finer in y and x; both as the library makes them
    lr, hr = make_demo_volume((2, 64, 48), seed=3)
    for name, shape, voxel, want in (("demo.tif", (2, 64, 48), (50.0, 18.4, 18.4), lr),
                                     ("hr.tif", (2, 256, 192), (50.0, 4.6, 4.6), hr)):
        vol = open_input(tmp_path / name)
        assert (vol.shape, vol.dtype) == (shape, "uint8")
        assert vol.voxel_size == pytest.approx(voxel, rel=1e-5)
        np.testing.assert_array_equal(vol.read((slice(None),) * 3), want)
    code, _, err = cli("demo", tmp_path / "demo.tif")
    assert_clean_failure(code, "", err)


def test_issue_example_block_shapes_agree(tmp_path, cli):
    """The documented acceptance run: a 4 x 192 x 160 uint8 TIFF at 18.4 nm restored
    with the bundled model on a local cluster, with two block shapes."""
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 192, 160), seed=11), voxel=(50, 18.4, 18.4))
    results = []
    for block in ("4,256,256", "4,1024,1024"):
        out = tmp_path / f"out-{block.replace(',', 'x')}.ome.zarr"
        code, _, err = cli("run", inp, out, "--block-shape", block, "--workers", "2",
                           "--no-progress")
        assert code == 0, err
        group = zarr.open_group(str(out), mode="r")
        ds = group.attrs["ome"]["multiscales"][0]["datasets"][0]
        assert group["0"].shape == (4, 768, 640)
        assert ds["coordinateTransformations"][0]["scale"] == pytest.approx([50, 4.6, 4.6])
        results.append(group["0"][:].astype(int))
    assert np.abs(results[0] - results[1]).max() <= 2


def test_resume_with_another_thread_count_is_refused(tmp_path, models, cli):
    """CPU results can differ by a grey level with the torch thread count: a resume
    must use the same workers as the first run (here 2 workers x 1 thread on 2 cores)."""
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores to give the two runs different thread counts")
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 16, 16)))
    out = tmp_path / "o.ome.zarr"
    args = ["run", inp, out, "--model", models["pointwise"], "--no-progress"]
    assert cli(*args, "--workers", "2")[0] == 0
    from pssr_volume.io.ome_zarr import update_provenance

    update_provenance(out, status="running")  # as if interrupted (a finished one needs nothing)
    code, _, err = cli(*args, "--workers", "1", "--resume")
    assert_clean_failure(code, "", err)
    assert "torch thread(s) per worker" in err
    assert cli(*args, "--workers", "2", "--resume")[0] == 0


@pytest.mark.parametrize(("command", "url"), [  # run and convert read and write s3:// and
    *[(c, "ftp://host/out.ome.zarr") for c in ("run", "convert", "crappify")],  # gs://:
    ("crappify", "s3://bucket/out.ome.zarr"), ("crappify", "gs://bucket/x.tif"),  # see
])  # tests/test_object_storage.py
def test_urls_are_refused_and_never_become_local_folders(tmp_path, cli, monkeypatch, command,
                                                         url):
    monkeypatch.chdir(tmp_path)
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 16, 16)))
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in ([inp, url], [url, tmp_path / "o.ome.zarr"]):
        code, out, err = cli(command, *args)
        assert_clean_failure(code, out, err)
        assert url.split("://")[0] + "://" in err and "not supported" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
