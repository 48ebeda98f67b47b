"""Cluster profiles: the YAML file behind ``--cluster slurm --profile FILE``.

A profile says what one SLURM worker job asks for (partition, cores, memory,
GPUs, walltime, extra ``#SBATCH`` lines, environment set-up) and how many jobs
to run (a fixed number, or adaptive bounds). It is validated here, once, before
any work: an unknown key or a bad value is refused with the key named, e.g.
``profile gpu.yaml: unknown key 'partiton' (did you mean 'partition'?)``.

Examples with every key explained are in ``workflows/profiles/``. This module
only reads and checks files; :mod:`pssr_volume.cluster.slurm` turns a profile
into running worker jobs.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pssr_volume.config import Strict
from pssr_volume.errors import PssrError

# SLURM time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds.
_WALLTIME = re.compile(r"^(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2})$")
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")


class Adaptive(Strict):
    """Bounds on the number of worker jobs; Dask adds and removes jobs between them."""

    minimum: int = Field(1, ge=1)
    maximum: int = Field(..., ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Adaptive:
        if self.minimum > self.maximum:
            raise ValueError(f"minimum ({self.minimum}) is above maximum ({self.maximum})")
        return self


class SlurmProfile(Strict):
    """One SLURM worker job and how many of them run.

    Attributes
    ----------
    partition : str or None
        SLURM partition (``#SBATCH -p``); ``queue`` is accepted as its synonym.
    account : str or None
        Account charged (``#SBATCH -A``).
    cores : int
        CPU cores reserved per job (``--cpus-per-task``).
    processes : int
        Dask worker processes per job; each runs one block at a time with
        ``cores // processes`` torch threads.
    memory : str
        Memory per job, e.g. ``"32GB"`` (``--mem``); split evenly between processes.
    gpus : int
        GPUs per job (``--gres=gpu:N``); 0 or 1 (scale out with more jobs).
    gpu_type : str or None
        GPU model in the gres, e.g. ``a100`` gives ``--gres=gpu:a100:1``.
    walltime : str
        Time limit of each worker job (``-t``), SLURM format, e.g. ``"04:00:00"``.
    jobs : int or None
        A fixed number of worker jobs (default 1 when ``adaptive`` is not set).
    adaptive : Adaptive or None
        ``{minimum, maximum}`` jobs instead of a fixed number.
    job_extra_directives : list of str
        More ``#SBATCH`` options, written without the prefix, e.g. ``"--constraint=a100"``.
    job_directives_skip : list of str
        Generated directives to leave out (e.g. ``"--mem"`` where a site forbids it).
    job_script_prologue : list of str
        Shell lines run before the worker starts (``module load``, activating an environment).
    worker_extra_args : list of str
        More ``dask worker`` options, e.g. ``["--lifetime", "55m", "--lifetime-stagger", "4m"]``.
    local_directory : str or None
        Node-local scratch for worker spill files, e.g. ``"$TMPDIR"``.
    log_directory : str or None
        Where the worker jobs' stdout/stderr files go (default: the current directory).
    interface : str or None
        Network interface for the scheduler and workers, e.g. ``ib0``.
    python : str or None
        Python executable in the jobs (default: the one running ``pssr-volume``).
    job_name : str
        Name of the worker jobs in ``squeue``.
    death_timeout : float
        Seconds a worker waits for a lost scheduler before exiting (ends its job).
    startup_timeout : float
        Seconds to wait for the first worker before giving up (queue waits count).
    dashboard_address : str
        Where the dashboard listens on the node running ``pssr-volume``.
    """

    partition: str | None = Field(None, validation_alias=AliasChoices("partition", "queue"))
    account: str | None = None
    cores: int = Field(1, ge=1, le=1024)
    processes: int = Field(1, ge=1, le=256)
    memory: str
    gpus: int = Field(0, ge=0, le=1)
    gpu_type: str | None = None
    walltime: str = "01:00:00"
    jobs: int | None = Field(None, ge=1)
    adaptive: Adaptive | None = None
    job_extra_directives: list[str] = Field(default_factory=list)
    job_directives_skip: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    python: str | None = None
    job_name: str = Field("pssr-worker", pattern=r"^[A-Za-z0-9_.-]+$")
    death_timeout: float = Field(60.0, gt=0)
    startup_timeout: float = Field(600.0, gt=0)
    dashboard_address: str = ":8787"

    @model_validator(mode="before")
    @classmethod
    def _one_partition_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "partition" in data and "queue" in data:
            raise ValueError("give 'partition' or its synonym 'queue', not both")
        return data

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        from dask.utils import parse_bytes

        if not _MEMORY.match(v) or parse_bytes(v) < 2**20:
            raise ValueError(f"{v!r} is not an amount of memory like '16GB' (at least 1 MB)")
        return v.strip()

    @field_validator("walltime", mode="before")
    @classmethod
    def _quoted_walltime(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            raise ValueError("write the walltime in quotes, e.g. \"4:00:00\" (unquoted, YAML "
                             "reads 4:00:00 as the number 14400)")
        return v

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, v: str) -> str:
        if not _WALLTIME.match(v.strip()):
            raise ValueError(f"{v!r} is not a SLURM time like '04:00:00' or '1-12:00:00'")
        return v.strip()

    @field_validator("job_extra_directives", "job_directives_skip")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        for d in v:
            if not d.strip().startswith("-"):
                raise ValueError(f"{d!r} is not an sbatch option; write it like '--constraint=a100'"
                                 " (without '#SBATCH')")
        return [d.strip() for d in v]

    @model_validator(mode="after")
    def _consistent(self) -> SlurmProfile:
        if self.jobs is not None and self.adaptive is not None:
            raise ValueError("give 'jobs' or 'adaptive', not both")
        if self.processes > self.cores:
            raise ValueError(f"processes ({self.processes}) exceeds cores ({self.cores}): "
                             "each worker process needs at least one core")
        if self.gpus and self.processes != 1:
            raise ValueError("a GPU job runs one worker process: set processes: 1")
        if self.gpu_type and not self.gpus:
            raise ValueError("gpu_type is set but gpus is 0")
        return self

    @property
    def threads(self) -> int:
        """Torch threads per worker process."""
        return self.cores // self.processes

    @property
    def n_jobs(self) -> int:
        """Worker jobs to start: ``jobs``, else ``adaptive.minimum``, else 1."""
        if self.adaptive is not None:
            return self.adaptive.minimum
        return self.jobs or 1

    @property
    def max_workers(self) -> int:
        """The most worker processes this profile can have at once."""
        jobs = self.adaptive.maximum if self.adaptive is not None else self.n_jobs
        return jobs * self.processes

    @property
    def device(self) -> str:
        """The device a run on these jobs uses unless ``--device`` says otherwise."""
        return "cuda" if self.gpus else "cpu"

    def gres(self) -> str | None:
        """The ``--gres`` value, or None without GPUs."""
        if not self.gpus:
            return None
        return f"gpu:{self.gpu_type}:{self.gpus}" if self.gpu_type else f"gpu:{self.gpus}"


def _describe(e: ValidationError) -> str:
    errors = e.errors()
    # a misspelt key also makes the real one "missing": report the misspelling
    err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        known = list(SlurmProfile.model_fields) + ["queue"]
        if len(err["loc"]) > 1 and err["loc"][0] == "adaptive":
            known = list(Adaptive.model_fields)
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{loc}'{hint}"
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:
        return msg
    return f"bad value for '{loc}' ({err['input']!r}): {msg}"


def load_profile(path: str | Path) -> SlurmProfile:
    """Read and validate a SLURM profile.

    Parameters
    ----------
    path : str or Path
        The YAML file.

    Returns
    -------
    SlurmProfile
        The validated profile.

    Raises
    ------
    PssrError
        One line naming the file and the offending key, for a missing or
        unreadable file, invalid YAML, an unknown key or a bad value.
    """
    p = Path(path)
    if not p.is_file():
        raise PssrError(f"profile not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise PssrError(f"profile {p} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise PssrError(f"profile {p} is not a text (YAML) file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise PssrError(f"profile {p} is not valid YAML{where}: {problem}") from None
    if data is None:
        raise PssrError(f"profile {p} is empty: it needs at least 'memory' "
                        "(see workflows/profiles/)")
    if not isinstance(data, dict):
        raise PssrError(f"profile {p} must be a mapping of keys to values, "
                        f"not a {type(data).__name__}")
    try:
        return SlurmProfile.model_validate(data)
    except ValidationError as e:
        raise PssrError(f"profile {p}: {_describe(e)}") from None
