"""A real one-node SLURM on localhost for the tests of ``--cluster slurm``.

The session fixture :func:`local_slurm` writes a one-node ``slurm.conf`` in a
temporary directory, starts ``munged`` (as user munge, with its own key and socket),
``slurmctld`` and ``slurmd`` (in the foreground, so their pids are known),
waits until the node is idle, exports ``SLURM_CONF``, and at the end cancels
what is left in its partition and stops the three daemons by pid.

It needs the Debian packages ``slurmctld slurmd slurm-client munge`` (``.ci/run``
installs them) and root (munged runs as munge, slurmd starts jobs). Without
the binaries it fails with the install command; it skips, visibly, only where
they are missing and apt-get is not there to install them, or without root.

Run standalone to get a SLURM to try things against::

    .venv/bin/python tests/slurm_fixture.py   # prints SLURM_CONF; Ctrl-C stops it
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
PACKAGES = "slurmctld slurmd slurm-client munge"
PARTITION = "pssrtest"


@dataclass
class LocalSlurm:
    """A running one-node SLURM: its config, partition and daemons."""

    root: Path
    conf: Path
    node: str
    cpus: int
    partition: str = PARTITION
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM commands (and ``pssr-volume``) talking to this SLURM."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM command (``squeue``, ``sbatch``, ...) against this SLURM."""
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=60, check=check)

    def jobs(self) -> list[str]:
        """Ids of the jobs in the partition that are pending or running."""
        out = self.run("squeue", "-h", "-p", self.partition, "-o", "%i %T", check=False).stdout
        return [ln.split()[0] for ln in out.splitlines()
                if ln.split() and ln.split()[1] in ("PENDING", "RUNNING", "CONFIGURING")]

    def suspend(self, *jobs: str, timeout: float = 30.0) -> None:
        """``scontrol suspend`` the jobs and return once each of their processes is
        stopped (SIGSTOP reaches them asynchronously)."""
        import psutil

        self.run("scontrol", "suspend", *jobs)
        deadline = time.monotonic() + timeout
        for job in jobs:
            out = self.run("scontrol", "listpids", job, check=False).stdout.splitlines()[1:]
            for pid in (int(line.split()[0]) for line in out if line.split()):
                while True:
                    try:
                        status = psutil.Process(pid).status()
                    except psutil.NoSuchProcess:
                        break
                    if status in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"process {pid} of job {job} did not stop")
                    time.sleep(0.01)

    def log_tail(self, lines: int = 15) -> str:
        """The end of each daemon log (for failure messages)."""
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            log = self.root / ("munge" if name == "munged" else "") / f"{name}.log"
            text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
            parts.append(f"--- {name}.log\n" + "\n".join(text))
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def _conf(root: Path, node: str, cpus: int, memory_mb: int, socket_path: Path) -> str:
    ports = _free_port(), _free_port()
    return f"""\
ClusterName=pssrtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=5
MinJobAge=300
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _wait(what: str, ok, slurm: LocalSlurm, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        for name, p in slurm.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited ({p.returncode}) while waiting for "
                                   f"{what}\n{slurm.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}\n{slurm.log_tail()}")
        time.sleep(0.2)


def start_local_slurm() -> LocalSlurm:
    """Start munged, slurmctld and slurmd for a one-node SLURM; returns once the node is idle.

    Raises
    ------
    RuntimeError
        If a daemon exits or the node does not become idle (daemon logs attached).
    """
    root = Path(tempfile.mkdtemp(prefix="pssr-slurm-"))
    root.chmod(0o755)  # munged (user munge) must reach its directory
    munge = pwd.getpwnam("munge")
    mdir = root / "munge"
    mdir.mkdir(mode=0o755)
    os.chown(mdir, munge.pw_uid, munge.pw_gid)
    key = mdir / "munge.key"  # a key of its own: nothing depends on /etc/munge
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    os.chown(key, munge.pw_uid, munge.pw_gid)
    for d in ("state", "spool"):
        (root / d).mkdir()
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    sock = mdir / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(_conf(root, node, cpus, int(_memory_mb() * 0.8), sock))
    slurm = LocalSlurm(root=root, conf=conf, node=node, cpus=cpus)
    try:
        with open(root / "munged.stderr", "wb") as log:
            slurm.procs["munged"] = subprocess.Popen(
                ["munged", "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                 f"--pid-file={mdir / 'munged.pid'}", f"--seed-file={mdir / 'munged.seed'}",
                 f"--log-file={mdir / 'munged.log'}"],
                user="munge", stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        _wait("the munge socket", sock.exists, slurm)
        for daemon in ("slurmctld", "slurmd"):
            with open(root / f"{daemon}.stderr", "wb") as log:
                slurm.procs[daemon] = subprocess.Popen(
                    [daemon, "-D", "-f", str(conf)], env=slurm.env, stdout=subprocess.DEVNULL,
                    stderr=log, start_new_session=True)
            if daemon == "slurmctld":
                _wait("slurmctld", lambda: slurm.run("sinfo", "-h", check=False).returncode == 0,
                      slurm)

        def idle() -> bool:
            r = slurm.run("sinfo", "-h", "-n", node, "-o", "%T", check=False)
            return r.stdout.strip() == "idle"

        _wait("the node to be idle", idle, slurm)
    except BaseException:
        stop_local_slurm(slurm)
        raise
    return slurm


def stop_local_slurm(slurm: LocalSlurm) -> None:
    """Cancel the partition's jobs, stop the daemons by pid, remove the directory."""
    if "slurmctld" in slurm.procs and slurm.procs["slurmctld"].poll() is None:
        slurm.run("scancel", "-p", slurm.partition, check=False)
        deadline = time.monotonic() + 15
        while slurm.jobs() and time.monotonic() < deadline:
            time.sleep(0.2)
    for name in ("slurmd", "slurmctld", "munged"):
        p = slurm.procs.get(name)
        if p is None or p.poll() is not None:
            continue
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)
    shutil.rmtree(slurm.root, ignore_errors=True)


def slurm_unavailable() -> str | None:
    """Why a local SLURM cannot be started here, or None. Fails (not skips) where
    apt-get could install the missing packages."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        if shutil.which("apt-get") is None:
            return f"SLURM binaries missing ({', '.join(missing)}) and no apt-get to install them"
        pytest.fail(f"SLURM binaries missing ({', '.join(missing)}): run `apt-get update && "
                    f"apt-get install -y --no-install-recommends {PACKAGES}` (as .ci/run does)",
                    pytrace=False)
    if os.geteuid() != 0:
        return "starting munged/slurmctld/slurmd needs root"
    return None


@pytest.fixture(scope="session", name="local_slurm")
def local_slurm_fixture() -> Iterator[LocalSlurm]:
    """A running one-node SLURM; ``SLURM_CONF`` points at it while the session lasts."""
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    slurm = start_local_slurm()
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(slurm.conf)
    try:
        yield slurm
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        stop_local_slurm(slurm)


if __name__ == "__main__":  # pragma: no cover - a manual helper
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on kill PID too
    s = start_local_slurm()
    print(f"export SLURM_CONF={s.conf}   (partition {s.partition}; Ctrl-C or kill {os.getpid()}"
          " stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop_local_slurm(s)
