"""Object storage: s3:// inputs and outputs against a real S3 server (moto's server mode on
localhost, not a mock of the client), http(s):// inputs from a real local http.server, and
the URL routing (gs:// against a real GCS server: tests/test_gcs.py).

A run or conversion to ``s3://`` writes the same level bytes as one to a local folder; the
lease is a conditional put (a second writer is refused), the journal one object per task
(an interrupted run resumes to the same bytes, a finished one keeps no journal)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import zarr
from conftest import check_journal_round_trip, em_like, write_tiff

from pssr_volume.io import objects
from pssr_volume.io.filesystems import filesystem
from pssr_volume.io.journal import Journal
from pssr_volume.io.kvstores import kvstore_spec
from pssr_volume.io.lease import Lease, hold, read_holder
from pssr_volume.urls import check_url

BUCKET = "pssr"
ARGS = ["--voxel-size", "50,18.4,18.4", "--cluster", "sync", "--no-progress"]


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A real S3-compatible server (moto) on localhost, with credentials and endpoint in the
    environment as a user would set them; yields the bucket's URL."""
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        with contextlib.suppress(FileExistsError):  # moto's store outlives a server in-process
            filesystem(f"s3://{BUCKET}").mkdir(BUCKET)
        try:
            yield f"s3://{BUCKET}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder served by a real http.server on localhost: (folder, its URL)."""
    root = tmp_path_factory.mktemp("www")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        """http.server with byte ranges (sharded zarr reads a shard's index and chunks by
        range, as every object store and web server serves them)."""

        def log_message(self, *args: object) -> None:
            pass

        def send_head(self):  # type: ignore[no-untyped-def]
            spec = self.headers.get("Range", "")
            path = Path(self.translate_path(self.path))
            if not spec.startswith("bytes=") or not path.is_file():
                return super().send_head()
            data = path.read_bytes()
            first, _, last = spec[6:].partition("-")
            start = len(data) - int(last) if not first else int(first)
            stop = len(data) if not first or not last else int(last) + 1
            start, stop = max(0, start), min(len(data), stop)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            self.send_header("Content-Length", str(stop - start))
            self.end_headers()
            return io.BytesIO(data[start:stop])

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def upload(local: Path, url: str) -> None:
    fs = filesystem(url)
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.pipe_file(f"{url[5:]}/{f.relative_to(local).as_posix()}", f.read_bytes())


def keys(url: str) -> dict[str, bytes]:
    """Every object below ``url``, by name relative to it."""
    names = objects.names(url)
    return objects.read_all(url, names)


def level_bytes(where: Path | str) -> dict[str, bytes]:
    """The bytes of every file of every level array (metadata and chunks)."""
    if isinstance(where, Path):
        files = {p.relative_to(where).as_posix(): p.read_bytes()
                 for p in where.rglob("*") if p.is_file()}
    else:
        files = keys(where)
    found = {k: v for k, v in files.items() if k.split("/")[0].isdigit()}
    assert found, f"no levels in {where}"
    return found


def ok(cli, *args: object) -> str:
    code, _, err = cli(*args)
    assert code == 0, err
    return err


def one_line(cli, *args: object) -> str:
    code, out, err = cli(*args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    return lines[0]


def test_run_from_tiff_to_s3_equals_the_local_run_and_verifies(tmp_path, models, s3, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((3, 40, 50), seed=3))
    args = ["--model", models["pointwise"], "--block-shape", "1,64,64", "--chunk-shape",
            "1,32,32", "--levels", "2", *ARGS]
    ok(cli, "run", inp, f"{s3}/run.ome.zarr", *args)
    ok(cli, "run", inp, tmp_path / "run.ome.zarr", *args)
    remote = level_bytes(f"{s3}/run.ome.zarr")
    assert remote == level_bytes(tmp_path / "run.ome.zarr")
    assert not [k for k in keys(f"{s3}/run.ome.zarr") if k.startswith(".pssr-volume")]
    group = zarr.open_group(str(tmp_path / "run.ome.zarr"), mode="r")
    attrs = json.loads(keys(f"{s3}/run.ome.zarr")["zarr.json"])["attributes"]
    assert attrs["pssr_volume"]["status"] == "complete"
    assert attrs["ome"]["multiscales"] == group.attrs["ome"]["multiscales"]

    _, out, _ = cli("info", f"{s3}/run.ome.zarr")
    assert "status    complete" in out and "levels    2" in out
    _, out, err = cli("verify", f"{s3}/run.ome.zarr")
    assert "no damage" in out, err
    # --resume of a finished output says so and exits 0
    err = ok(cli, "run", inp, f"{s3}/run.ome.zarr", *args, "--resume")
    assert "is complete: nothing to resume" in err
    # a damaged chunk is found, and --resume --verify rewrites it to the same bytes
    damaged = next(k for k in sorted(remote) if k.startswith("0/c/"))
    objects.write(f"{s3}/run.ome.zarr/{damaged}", b"garbage")
    code, out, _ = cli("verify", f"{s3}/run.ome.zarr")
    assert code == 1 and "damaged: level 0" in out
    ok(cli, "run", inp, f"{s3}/run.ome.zarr", *args, "--resume", "--verify")
    assert level_bytes(f"{s3}/run.ome.zarr") == remote
    # --overwrite replaces it (a pssr-volume output)
    ok(cli, "run", inp, f"{s3}/run.ome.zarr", *args, "--overwrite")
    assert level_bytes(f"{s3}/run.ome.zarr") == remote


def _inputs(tmp_path: Path, vol: np.ndarray) -> Path:
    """The same volume as an OME-Zarr (via convert), a zarr v2 array and an N5 dataset."""
    root = tmp_path / "inputs"
    root.mkdir()
    inp = write_tiff(tmp_path / "vol.tif", vol)
    from pssr_volume.cli import main

    assert main(["convert", str(inp), str(root / "img.ome.zarr"), "--chunk-shape", "1,32,32",
                 *ARGS]) == 0
    arr = zarr.create_array(str(root / "plain.zarr"), shape=vol.shape, chunks=(1, 32, 32),
                            dtype="uint8", zarr_format=2)
    arr[:] = vol
    n5 = ts.open({"driver": "n5", "kvstore": {"driver": "file", "path": str(root / "v.n5/s0")},
                  "metadata": {"dimensions": list(vol.shape[::-1]), "blockSize": [32, 32, 1],
                               "dataType": "uint8", "compression": {"type": "gzip"}}},
                 create=True).result()
    n5.T.write(vol).result()
    b2r = zarr.open_group(str(root / "b2r.zarr"), mode="w", zarr_format=2)
    b2r.attrs["bioformats2raw.layout"] = 3
    for f in (root / "img.ome.zarr").rglob("*"):  # its image "0": the OME-Zarr above
        if f.is_file():
            to = root / "b2r.zarr" / "0" / f.relative_to(root / "img.ome.zarr")
            to.parent.mkdir(parents=True, exist_ok=True)
            to.write_bytes(f.read_bytes())
    return root


def test_inputs_at_s3_and_http_equal_the_local_inputs(tmp_path, models, s3, served, cli):
    vol = em_like((2, 40, 48), seed=8)
    root = _inputs(tmp_path, vol)
    upload(root, f"{s3}/inputs")
    www, base = served
    upload_to = www / "inputs"
    for f in root.rglob("*"):
        if f.is_file():
            (upload_to / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            (upload_to / f.relative_to(root)).write_bytes(f.read_bytes())
    args = ["--model", models["pointwise"], "--block-shape", "1,64,64", "--chunk-shape",
            "1,32,32", "--levels", "1", *ARGS]
    for name in ("img.ome.zarr", "img.ome.zarr/0", "plain.zarr", "v.n5", "b2r.zarr"):
        local = tmp_path / f"local-{name.replace('/', '_')}"
        ok(cli, "run", root / name, local, *args)
        expected = level_bytes(local)
        for url in (f"{s3}/inputs/{name}", f"{base}/inputs/{name}"):
            out = tmp_path / f"from-{url.split(':')[0]}-{name.replace('/', '_')}"
            ok(cli, "run", url, out, *args)
            assert level_bytes(out) == expected, url
    # info over HTTP; convert from S3 to S3 keeps the voxels
    _, out, err = cli("info", f"{base}/inputs/img.ome.zarr")
    assert "ome-zarr" in out and "levels    1" in out, err
    ok(cli, "convert", f"{s3}/inputs/v.n5", f"{s3}/conv.ome.zarr", *ARGS)
    got = zarr.open_group(store=zarr.storage.FsspecStore.from_url(
        f"{s3}/conv.ome.zarr", read_only=True), mode="r")["0"][:]
    np.testing.assert_array_equal(got, vol)


def test_interrupted_run_on_s3_resumes_to_the_same_bytes(tmp_path, models, s3, cli):
    """A zarr input on S3 with one corrupt chunk: the run stops with one line, the finished
    blocks are kept (journal objects), and after the repair --resume completes the same
    bytes as an uninterrupted run, leaving no journal."""
    vol = em_like((6, 48, 48), seed=33)
    local = tmp_path / "in.zarr"
    zarr.create_array(str(local), shape=vol.shape, chunks=(1, 48, 48), dtype="uint8")[:] = vol
    upload(local, f"{s3}/poisoned.zarr")
    chunk = f"{s3}/poisoned.zarr/c/4/0/0"
    good = (local / "c" / "4" / "0" / "0").read_bytes()
    objects.write(chunk, b"\x00garbage, not zstd\xff" * 8)
    out = f"{s3}/resumed.ome.zarr"
    args = ["--model", models["pointwise"], "--block-shape", "1,192,192", *ARGS]
    code, _, err = cli("run", f"{s3}/poisoned.zarr", out, *args)
    assert code == 2 and "Traceback" not in err and "block (4, 0, 0)" in err, err
    kept = sum(k.startswith("block ") for k in Journal(out).done())
    assert 0 < kept < 6
    assert [k for k in keys(out) if k.startswith(".pssr-volume/journal/")]
    assert read_holder(out) is None  # the lease was released
    _, info, _ = cli("info", out)
    assert "status    running (unfinished" in info

    objects.write(chunk, good)
    err = ok(cli, "run", f"{s3}/poisoned.zarr", out, *args, "--resume")
    assert f"done: {6 - kept} block(s) restored, {kept} already done" in err
    ok(cli, "run", local, tmp_path / "ref.ome.zarr", *args)
    assert level_bytes(out) == level_bytes(tmp_path / "ref.ome.zarr")
    assert not [k for k in keys(out) if k.startswith(".pssr-volume")]
    err = ok(cli, "run", f"{s3}/poisoned.zarr", out, *args, "--resume")
    assert "is complete: nothing to resume" in err


def test_a_second_writer_on_an_s3_output_is_refused(tmp_path, models, s3, cli):
    out = f"{s3}/leased.ome.zarr"
    now = time.time()
    other = {"host": "elsewhere", "pid": 4242, "token": "t" * 32, "command": "pssr-volume run",
             "started": now, "heartbeat": now}
    objects.write(f"{out}/.pssr-volume/lease.json", json.dumps(other).encode())
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 32, 32)))
    line = one_line(cli, "run", inp, out, "--model", models["pointwise"], *ARGS)
    assert "is being written by pssr-volume run (pid 4242 on elsewhere)" in line
    assert line.startswith("Error: output") and keys(out).keys() == {".pssr-volume/lease.json"}
    # a stale lease (no heartbeat for minutes) is broken, and the run goes ahead
    other["heartbeat"] = other["started"] = now - 3600
    objects.write(f"{out}/.pssr-volume/lease.json", json.dumps(other).encode())
    ok(cli, "run", inp, out, "--model", models["pointwise"], *ARGS)
    assert not [k for k in keys(out) if k.startswith(".pssr-volume")]


def test_lease_and_journal_objects(s3):
    out = f"{s3}/state.ome.zarr"
    # of four processes creating the lease at once (a barrier releases them together),
    # exactly one gets it and the object holds its bytes
    results: list[tuple[int, str | None]] = []
    go = threading.Barrier(4)

    def create(i: int) -> None:
        go.wait()
        results.append((i, objects.create(f"{out}/race", str(i).encode())))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [(i, v) for i, v in results if v is not None]
    assert len(results) == 4 and len(won) == 1, results
    assert objects.read(f"{out}/race")[:2] == (str(won[0][0]).encode(), won[0][1])
    objects.delete(f"{out}/race")
    with hold(out, "pssr-volume run") as lease:
        with pytest.raises(Exception, match="is being written by pssr-volume run"):
            Lease(out, "pssr-volume convert").take()
        assert lease.refresh()  # the heartbeat: a conditional put on our version
        # a breaker replaced our lease (we were paused past the stale timeout): we notice
        holder = read_holder(out)
        assert holder is not None and objects.replace(
            f"{out}/.pssr-volume/lease.json", b'{"host": "x"}', holder.version)
        assert not lease.refresh() and lease.lost is not None
        objects.delete(f"{out}/.pssr-volume/lease.json")
    check_journal_round_trip(out)


def test_unsupported_urls_missing_inputs_and_unreachable_stores_are_one_line(
        tmp_path, models, s3, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 32, 32)))
    model = ["--model", models["pointwise"]]
    assert "ftp:// URLs are not supported" in one_line(cli, "run", "ftp://h/x.zarr", "o.zarr",
                                                       *model, *ARGS)
    assert "foo:// URLs are not supported" in one_line(cli, "convert", inp, "foo://b/o.zarr",
                                                       *ARGS)
    assert "https:// is read-only" in one_line(cli, "run", inp, "https://h/o.zarr", *model,
                                               *ARGS)
    assert "ftp:// URLs are not supported" in one_line(cli, "info", "ftp://h/x.zarr")
    assert "https:// is read-only" in one_line(cli, "verify", "https://h/o.zarr")
    assert one_line(cli, "run", f"{s3}/nothing.zarr", "o.zarr", *model, *ARGS) == (
        f"Error: input not found: {s3}/nothing.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]  # no "s3:" or "foo:"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    for args in (["run", f"{s3}/x.zarr", "o.zarr"], ["run", inp, f"{s3}/o.ome.zarr"]):
        started = time.monotonic()
        line = one_line(cli, *args, *model, *ARGS)
        assert line.startswith(f"Error: cannot reach {s3}/") and time.monotonic() - started < 20


def test_gs_routing():
    """The URL checks and the tensorstore specs (the gcs one with short retries)."""
    assert check_url("gcs://bucket/a/b/") == "gs://bucket/a/b"
    spec = kvstore_spec("gs://bucket/a/b")
    assert (spec["driver"], spec["bucket"], spec["path"]) == ("gcs", "bucket", "a/b/")
    assert spec["context"]["gcs_request_retries"]["max_retries"] == 5
    assert kvstore_spec("https://h/x.zarr")["base_url"] == "https://h/x.zarr/"


def test_two_worker_processes_write_one_s3_output_equal_to_the_local_run(tmp_path, models, s3,
                                                                         cli):
    """Shards and journal objects written to S3 by two worker processes of a real
    LocalCluster at once (issue 25): the same bytes as an in-process local run."""
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 40, 50), seed=5))
    args = ["--model", models["pointwise"], "--block-shape", "1,64,64", "--chunk-shape",
            "1,32,32", "--levels", "2", "--voxel-size", "50,18.4,18.4", "--no-progress"]
    err = ok(cli, "run", inp, f"{s3}/two.ome.zarr", *args, "--cluster", "local", "--workers",
             "2")
    assert "cluster local: 2 worker(s)" in err and "done: 48 block(s) restored" in err
    ok(cli, "run", inp, tmp_path / "one.ome.zarr", *args, "--cluster", "sync")
    assert level_bytes(f"{s3}/two.ome.zarr") == level_bytes(tmp_path / "one.ome.zarr")
    assert not [k for k in keys(f"{s3}/two.ome.zarr") if k.startswith(".pssr-volume")]
    _, out, err = cli("verify", f"{s3}/two.ome.zarr")
    assert "no damage" in out, err
