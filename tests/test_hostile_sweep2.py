"""The second hostile sweep (issue 23): silent endpoints, zero-length axes, tiny sections,
operating-system errors on the output path, damaged metadata, deleted outputs, refused
resumes, HTML for every path, dataset paths that leave the image. Each ends as one line and
a non-zero exit, within bounded time, with nothing written on refusal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import em_like, write_tiff

CLI = str(Path(sys.executable).with_name("pssr-volume"))


def start(*args: object, cwd: Path, env: dict[str, str] | None = None
          ) -> tuple[subprocess.Popen[str], float]:
    """``pssr-volume ARGS`` as a process (a hang cannot hang the tests)."""
    proc = subprocess.Popen([CLI, *map(str, args)], cwd=cwd, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    return proc, time.monotonic()


def finish(started: tuple[subprocess.Popen[str], float], timeout: float) -> tuple[int, str, float]:
    """Exit status, stderr and seconds of a started process; fail after ``timeout`` s."""
    proc, t0 = started
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"pssr-volume {proc.args[1:]} still running after {timeout} s")
    return proc.returncode, err, time.monotonic() - t0


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
    """HTTP inputs and S3 inputs and outputs at a server that accepts and never answers:
    one line naming the timeout, in about PSSR_VOLUME_NETWORK_TIMEOUT seconds."""
    write_tiff(tmp_path / "vol.tif", em_like((2, 16, 16)))
    env = {"PSSR_VOLUME_NETWORK_TIMEOUT": "2", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent}",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}
    web = f"http://127.0.0.1:{silent}/img.ome.zarr"
    cases = [("info", web), ("run", web, "a.ome.zarr", "--cluster", "sync"),
             ("run", "s3://b/img.ome.zarr", "b.ome.zarr", "--cluster", "sync"),
             ("run", "vol.tif", "s3://b/out.ome.zarr", "--cluster", "sync"),
             ("verify", "s3://b/out.ome.zarr")]
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
