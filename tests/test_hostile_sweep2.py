"""The second hostile sweep (issue 23): silent endpoints, zero-length axes, tiny sections,
operating-system errors on the output path, damaged metadata, deleted outputs, refused
resumes, HTML for every path, dataset paths that leave the image. Each ends as one line and
a non-zero exit, within bounded time, with nothing written on refusal."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLI, em_like, finish, start, write_tiff


def error_line(code: int, err: str, expected: int = 2) -> str:
    """The one ``Error:`` line of a refused command (other lines: the run's summary)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert code == expected and len(errors) == 1 and errors[0] == lines[-1], (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    return errors[0]


@pytest.fixture
def silent() -> Iterator[int]:
    """The port of a TCP listener that accepts connections and never says a word."""
    sock = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conns.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        for c in [*conns, sock]:
            c.close()


def test_a_silent_endpoint_fails_with_one_line_within_the_timeout(tmp_path, silent):
    """HTTP inputs, S3 and GCS inputs and outputs at a server that accepts and never answers:
    one line naming the timeout, in about PSSR_VOLUME_NETWORK_TIMEOUT seconds."""
    write_tiff(tmp_path / "vol.tif", em_like((2, 16, 16)))
    env = {"PSSR_VOLUME_NETWORK_TIMEOUT": "2", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent}",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1",
           "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{silent}"}
    web = f"http://127.0.0.1:{silent}/img.ome.zarr"
    cases = [("info", web), ("run", web, "a.ome.zarr", "--cluster", "sync"),
             ("run", "s3://b/img.ome.zarr", "b.ome.zarr", "--cluster", "sync"),
             ("run", "vol.tif", "s3://b/out.ome.zarr", "--cluster", "sync"),
             ("verify", "s3://b/out.ome.zarr"),
             ("info", "gs://b/img.ome.zarr"),  # gcsfs: two tries, not six (was ~100 s)
             ("run", "vol.tif", "gs://b/out.ome.zarr", "--cluster", "sync")]
    procs = [start(*args, cwd=tmp_path, env=env) for args in cases]
    for args, proc in zip(cases, procs):
        code, err, seconds = finish(proc, timeout=60)
        assert "no answer within 2 s" in error_line(code, err), (args, err)
        assert seconds < 30, (args, seconds)  # ~2-5 s alone; the machine may be busy
    assert sorted(os.listdir(tmp_path)) == ["vol.tif"]


def test_the_network_timeout_must_be_a_positive_number(tmp_path):
    code, err, _ = finish(start("info", "http://127.0.0.1:9/x.zarr", cwd=tmp_path,
                                env={"PSSR_VOLUME_NETWORK_TIMEOUT": "soon"}), timeout=30)
    assert "PSSR_VOLUME_NETWORK_TIMEOUT='soon'" in error_line(code, err)


def test_a_zero_length_axis_is_one_line_in_every_command(tmp_path, cli):
    import h5py
    import zarr

    zarr.create_array(tmp_path / "z.zarr", shape=(0, 16, 16), chunks=(1, 16, 16), dtype="uint8")
    zarr.create_array(tmp_path / "y.zarr", shape=(2, 0, 16), chunks=(1, 16, 16), dtype="uint8",
                      zarr_format=2)
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f.create_dataset("raw", shape=(0, 16, 16), dtype="uint8")
    for inp, shape in [("z.zarr", "0x16x16"), ("y.zarr", "2x0x16"), ("e.h5:/raw", "0x16x16")]:
        for args in [("info", tmp_path / inp),
                     ("run", tmp_path / inp, tmp_path / "o.ome.zarr", "--cluster", "sync"),
                     ("convert", tmp_path / inp, tmp_path / "o.ome.zarr"),
                     ("crappify", tmp_path / inp, tmp_path / "lr.tif")]:
            code, _, err = cli(*args)
            assert f"is empty: its shape is {shape}" in error_line(code, err), (args, err)
    assert sorted(os.listdir(tmp_path)) == ["e.h5", "y.zarr", "z.zarr"]


def test_sections_too_small_for_the_noise_estimate_ask_for_noise(tmp_path, cli):
    import torch

    from pssr_volume.config import ModelConfig
    from pssr_volume.model import save_model
    from pssr_volume.nets.fast import FastUNet

    torch.manual_seed(0)
    model = save_model(tmp_path / "n.safetensors", FastUNet(width=8, extra_channels=1),
                       ModelConfig(name="n", architecture="pssr-fast", arch_args={"width": 8},
                                   noise_input=True))
    write_tiff(tmp_path / "t.tif", em_like((2, 8, 10)))
    args = ["run", tmp_path / "t.tif", tmp_path / "o.ome.zarr", "--model", model,
            "--cluster", "sync", "--no-progress"]
    code, _, err = cli(*args)
    assert "sections of 8x10 pixels are too small" in error_line(code, err)
    assert "--noise A,B" in err and not (tmp_path / "o.ome.zarr").exists()
    code, _, err = cli(*args, "--noise", "0.01,0.02")  # what the line asks for works
    assert code == 0, err


def test_output_paths_the_system_refuses_are_one_line_before_planning(tmp_path, cli):
    """Too long a name or path, a symbolic-link loop, a file above the output, a place
    where nothing can be created: one line, at once, in run, convert and crappify."""
    vol = write_tiff(tmp_path / "vol.tif", em_like((2, 16, 16)))
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    deep = tmp_path.joinpath(*["d" * 200] * 20)
    cases = [(tmp_path / ("a" * 300 + ".ome.zarr"), "bytes long; the file system allows 255"),
             (deep / "o.ome.zarr", "bytes long, and the files inside it add up"),
             (tmp_path / "loop" / "o.ome.zarr", "is a symbolic-link loop"),
             (tmp_path / "file" / "sub" / "o.ome.zarr", "file is a file, not a folder")]
    if sys.platform.startswith("linux"):
        cases.append((Path("/proc/pssr-test.ome.zarr"), "cannot create anything in /proc"))
    for out, words in cases:
        for args in [("run", vol, out, "--cluster", "sync"), ("convert", vol, out),
                     ("crappify", vol, out.with_suffix(".tif"))]:
            t0 = time.monotonic()
            code, _, err = cli(*args)
            line = error_line(code, err)
            assert words in line and "cannot write output" in line, (args, err)
            assert len(line) < 400 and time.monotonic() - t0 < 10, line
    assert sorted(os.listdir(tmp_path)) == ["file", "loop", "vol.tif"]


@pytest.fixture
def converted(tmp_path, cli) -> Path:
    """A finished two-level OME-Zarr written by convert (sharded, NGFF 0.5)."""
    vol = write_tiff(tmp_path / "vol.tif", em_like((2, 32, 32)))
    out = tmp_path / "v.ome.zarr"
    code, _, err = cli("convert", vol, out, "--levels", "2", "--cluster", "sync", "--no-progress")
    assert code == 0, err
    return out


def test_damaged_level_metadata_is_one_line_in_verify_and_resume(converted, cli):
    for level, text in [("0", "{broken"), ("1", '{"zarr_format": 3, "node_type": "array"}')]:
        meta = converted / level / "zarr.json"
        good = meta.read_bytes()
        meta.write_text(text)
        for args in [("verify", converted),
                     ("convert", converted.with_name("vol.tif"), converted, "--levels", "2",
                      "--cluster", "sync", "--no-progress", "--resume", "--verify")]:
            code, _, err = cli(*args)
            line = error_line(code, err)
            assert f"the metadata of level {level} " in line and "is damaged" in line, err
        assert meta.read_text() == text  # refused: nothing was rewritten
        meta.write_bytes(good)


def test_a_folder_in_a_shards_place_is_damage_that_resume_verify_repairs(converted, cli):
    from conftest import digest

    before = digest(converted / "0")
    shard = next(p for p in (converted / "0" / "c").rglob("*") if p.is_file())
    shard.unlink()
    shard.mkdir()
    (shard / "x").write_text("not a shard")
    code, out, err = cli("verify", converted)
    assert code == 1 and "a folder, not a file" in out, (out, err)
    code, _, err = cli("convert", converted.with_name("vol.tif"), converted, "--levels", "2",
                       "--cluster", "sync", "--no-progress", "--resume", "--verify")
    assert code == 0, err
    assert shard.is_file() and digest(converted / "0") == before


def test_a_deleted_output_is_named_as_deleted_not_taken_over(tmp_path):
    import shutil

    from pssr_volume.errors import RunFailed
    from pssr_volume.io.lease import Lease, hold

    out = tmp_path / "o.ome.zarr"
    lease = Lease(out, "pssr-volume run")
    lease.take()
    try:
        shutil.rmtree(out)  # what the heartbeat finds
        assert lease.refresh() is False and lease.gone
        assert "o.ome.zarr was deleted while this run wrote it; nothing of it is kept" in (
            lease.lost_message())
    finally:
        lease.release()
    lease = Lease(out, "pssr-volume run")
    lease.take()
    try:
        lease.path.unlink()  # only the lease file went: the output and its blocks stay
        assert lease.refresh() is False and not lease.gone
        message = lease.lost_message()
        assert "lease file of" in message and "no other run holds it" in message
        assert "taken over" not in message
    finally:
        lease.release()
    deleted = "was deleted while this run wrote it"
    with pytest.raises(RunFailed, match=deleted), hold(out, "pssr-volume run"):
        shutil.rmtree(out)  # and a task fails on the deleted output first
        raise RunFailed("block (0, 0, 0) failed: FileNotFoundError: 0/zarr.json")
    assert not out.exists()


def test_a_refused_resume_names_the_writer_and_at_most_three_settings(converted, cli, models):
    from conftest import digest

    before = digest(converted)
    vol = converted.with_name("vol.tif")
    code, _, err = cli("run", vol, converted, "--model", models["pointwise"], "--resume",
                       "--cluster", "sync", "--no-progress")
    line = error_line(code, err)
    assert "written by `pssr-volume convert`" in line and "this is `pssr-volume run`" in line
    assert len(line) < 300 and "identity" not in line, line
    code, _, err = cli("convert", vol, converted, "--resume", "--chunk-shape", "1,16,16",
                       "--levels", "3", "--cluster", "sync", "--no-progress")
    line = error_line(code, err)
    assert "settings differ from the first run (" in line and "chunk_shape: [2, 32, 32] -> " \
        "[1, 16, 16]" in line and "more)" in line
    assert line.count(" -> ") == 3 and len(line) < 600, line
    assert digest(converted) == before


@contextlib.contextmanager
def web_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real http.server on localhost in a thread; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Html(http.server.BaseHTTPRequestHandler):
    """A web server that answers every path with 200 and a web page."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><html><body>Welcome</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


def test_a_web_page_for_every_path_is_not_a_zarr_store(tmp_path, cli):
    with web_server(_Html) as url:
        for name in ("img.ome.zarr", "v.n5/s0"):
            for args in [("info", f"{url}/{name}"),
                         ("run", f"{url}/{name}", tmp_path / "o.ome.zarr", "--cluster", "sync")]:
                code, _, err = cli(*args)
                line = error_line(code, err)
                assert "is not a Zarr, OME-Zarr or N5 store" in line and "a web page" in line
                assert "Warning" not in err, err
    assert not (tmp_path / "o.ome.zarr").exists()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_dataset_paths_may_not_leave_the_image(converted, cli):
    """A dataset path ``../other`` is refused, locally and over HTTP, in every command;
    NGFF's rarer length units are read, not taken for 1 nm."""
    root = converted.parent
    shutil.copytree(converted, root / "other.ome.zarr")
    meta = converted / "zarr.json"
    good = json.loads(meta.read_text())
    for bad in ("../other.ome.zarr/0", "/etc", "0/../../other.ome.zarr/0", "s3://x/0"):
        doc = json.loads(meta.read_text())
        doc["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = bad
        meta.write_text(json.dumps(doc))
        handler = functools.partial(_Quiet, directory=str(root))
        with web_server(handler) as url:  # type: ignore[arg-type]
            for where in (converted, f"{url}/v.ome.zarr"):
                for args in [("info", where), ("verify", where),
                             ("run", where, root / "o.ome.zarr", "--cluster", "sync")]:
                    if args[0] == "verify" and str(where).startswith("http"):
                        continue  # verify reads outputs: local or object storage
                    code, _, err = cli(*args)
                    assert "refusing to read outside it" in error_line(code, err), (args, err)
    assert not (root / "o.ome.zarr").exists()
    for unit, nm in [("femtometer", 1e-6), ("kilometer", 1e12), ("inch", 2.54e7),
                     ("parsec", 3.0856775814913673e25)]:
        doc = json.loads(json.dumps(good))
        for axis in doc["attributes"]["ome"]["multiscales"][0]["axes"]:
            axis["unit"] = unit
        meta.write_text(json.dumps(doc))
        from pssr_volume.io.inputs import open_input

        vol = open_input(converted)
        assert vol.voxel_size is not None and vol.voxel_size[2] == pytest.approx(
            good["attributes"]["ome"]["multiscales"][0]["datasets"][0][
                "coordinateTransformations"][0]["scale"][-1] * nm), unit


def test_a_killed_scheduler_is_one_line_with_the_tracebacks_in_the_log(tmp_path, models):
    import signal

    import numpy as np
    import tifffile

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    dask = str(Path(sys.executable).with_name("dask"))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sched = subprocess.Popen([dask, "scheduler", "--port", str(port), "--no-dashboard"], **quiet)
    worker = subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                               "--no-dashboard", "--no-nanny"], **quiet)
    try:
        vol = np.random.default_rng(0).integers(0, 255, (16, 256, 256), dtype=np.uint8)
        tifffile.imwrite(tmp_path / "in.tif", vol)
        run = subprocess.Popen(
            [CLI, "run", "in.tif", "o.ome.zarr", "--cluster", f"tcp://127.0.0.1:{port}",
             "--model", str(models["pointwise"]), "--block-shape", "1,256,256",
             "--voxel-size", "50,8,8", "--no-progress"],
            cwd=tmp_path, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        assert run.stderr is not None
        lines = []
        for line in run.stderr:  # the run connected and submits its tasks: kill the scheduler
            lines.append(line)
            if line.startswith("cluster tcp://"):
                sched.send_signal(signal.SIGKILL)
                break
        watchdog = threading.Timer(120, run.kill)  # a hang ends the test, not the suite
        watchdog.start()
        lines += run.stderr.readlines()
        run.wait()
        watchdog.cancel()
        err = "".join(lines)
        line = error_line(run.returncode, err, expected=1)
        assert "o.ome.zarr.log" in line, err
        assert "distributed.client" in (tmp_path / "o.ome.zarr.log").read_text()  # not stderr
    finally:
        for proc in (sched, worker):
            proc.kill()
            proc.wait()


def test_resume_without_an_output_to_resume_is_refused(tmp_path, cli, models):
    vol = write_tiff(tmp_path / "vol.tif", em_like((2, 16, 16)))
    args = ["--model", models["pointwise"], "--cluster", "sync", "--no-progress"]
    for command in (["run", vol, tmp_path / "typo.ome.zarr", *args, "--resume"],
                    ["convert", vol, tmp_path / "typo.ome.zarr", "--cluster", "sync",
                     "--resume", "--verify"]):
        code, _, err = cli(*command)
        assert "nothing to resume: " in error_line(code, err) and "typo.ome.zarr" in err
    assert sorted(os.listdir(tmp_path)) == ["vol.tif"]
    from pssr_volume.io.lease import lease_path

    lease_path(tmp_path / "o.ome.zarr").parent.mkdir(parents=True)  # a run killed at start
    code, _, err = cli("run", vol, tmp_path / "o.ome.zarr", *args, "--resume")
    assert code == 0, err


def test_a_one_voxel_tiff_is_read_as_one_voxel(tmp_path, cli):
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "one.tif", np.full((1, 1, 1), 9, np.uint8),
                     photometric="minisblack")  # tifffile calls its axes 'XYX'
    code, out, err = cli("info", tmp_path / "one.tif")
    assert code == 0 and "(z, y, x) = (1, 1, 1)" in out, err


def test_an_empty_model_name_is_named_as_empty(tmp_path, cli):
    inp = write_tiff(tmp_path / "vol.tif", em_like((2, 16, 16)))
    code, _, err = cli("run", inp, tmp_path / "o.ome.zarr", "--model", "", "--dry-run")
    line = error_line(code, err)
    assert "--model: it is empty" in line and "model not found: ." not in line
