"""Typed configuration: every setting is validated once, here, and saved with outputs.

The command line only parses flags into these models; the library only reads
them. All models forbid unknown keys, so a typo in a saved file or a profile
is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import math
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pssr_volume.gpus import gpu_named
from pssr_volume.ngff import NgffFormat, ngff_format
from pssr_volume.types import Shape3
from pssr_volume.urls import Url, check_url, scheme_of

BlendMode = Literal["crop", "linear", "cosine", "gaussian"]
Device = Literal["cpu", "cuda"]
NgffVersion = Literal["0.4", "0.5"]
OutputFormat = Literal["ome-zarr", "precomputed"]  # neuroglancer precomputed, sharded
CLUSTERS = ("local", "cuda", "slurm", "sync")
PRESET_NAMES = ("pssr-em", "pssr-fluo", "pssr2", "integrate-read", "mix")


def _positive_shape(v: Shape3) -> Shape3:
    if min(v) < 1:
        raise ValueError(f"every entry must be a positive integer, got {','.join(map(str, v))}")
    return v


def _positive_voxels(v: tuple[float, float, float]) -> tuple[float, float, float]:
    if not all(0 < x < math.inf for x in v):
        raise ValueError(f"voxel sizes must be positive numbers, got {v}")
    return v


def _non_negative_halo(v: tuple[int, int]) -> tuple[int, int]:
    if min(v) < 0:
        raise ValueError(f"halo must not be negative, got {','.join(map(str, v))}")
    return v


def _local_path(v: Any) -> Any:
    """Refuse a URL before it becomes a local path ("s3://b/x" would be the folder "s3:/b/x")."""
    text = str(v)
    scheme, sep, _ = text.partition("://")
    if sep and scheme and scheme[0].isalpha() and all(c.isalnum() or c in "+.-" for c in scheme):
        raise ValueError(f"{text}: {scheme}:// URLs are not supported; use a local or mounted "
                         "path (object storage is not supported yet)")
    return v


def _location(write: bool) -> Any:
    def check(v: Any) -> Any:
        if isinstance(v, str) and scheme_of(v) is not None:
            return check_url(v, write=write)  # a Url: kept a string, never a Path
        return v
    return check


LocalPath = Annotated[Path, BeforeValidator(_local_path)]
# a local path, or an s3:// or gs:// URL (and http(s):// for inputs): pssr_volume.urls
InputLocation = Annotated[Path | Url, BeforeValidator(_location(write=False))]
OutputLocation = Annotated[Path | Url, BeforeValidator(_location(write=True))]
PositiveShape3 = Annotated[Shape3, AfterValidator(_positive_shape)]
VoxelSize = Annotated[tuple[float, float, float], AfterValidator(_positive_voxels)]
Halo = Annotated[tuple[int, int], AfterValidator(_non_negative_halo)]


class Strict(BaseModel):
    """Base of every configuration model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputConfig(Strict):
    """How a multiscale OME-Zarr output is laid out (shared by ``run`` and ``convert``)."""

    chunk_shape: PositiveShape3 | None = None
    shard_shape: PositiveShape3 | None = None
    levels: int | None = Field(None, ge=1, le=16)
    ngff_version: NgffVersion = "0.5"
    compression_level: int = Field(1, ge=0, le=22)
    voxel_size: VoxelSize | None = None
    overwrite: bool = False
    progress: bool = True
    output_format: OutputFormat = "ome-zarr"

    @property
    def ngff(self) -> NgffFormat:
        """The format object of ``ngff_version`` (what the version implies)."""
        return ngff_format(self.ngff_version)

    @model_validator(mode="after")
    def _version_limits(self) -> OutputConfig:
        if self.output_format == "precomputed":  # its chunks are gzip (CRC-32), its own shards
            for flag, value, default in (("--ngff-version", self.ngff_version, "0.5"),
                                         ("--compression-level", self.compression_level, 1)):
                if value != default:
                    raise ValueError(f"{flag} is an OME-Zarr setting; a precomputed output's "
                                     "chunks are gzip at tensorstore's level")
            return self
        fmt = self.ngff
        if self.shard_shape is not None and not fmt.sharding:
            raise ValueError(f"--shard-shape needs NGFF 0.5 (zarr v3); NGFF {fmt.version} is "
                             "unsharded")
        low, high = fmt.compression_levels
        if not low <= self.compression_level <= high:
            raise ValueError(f"--compression-level {self.compression_level}: NGFF "
                             f"{fmt.version} chunks are {fmt.codec}, whose levels are "
                             f"{low}-{high}")
        return self


class NormalizationConfig(Strict):
    """Global intensity normalisation a model expects.

    ``percentile``: ``low``/``high`` are percentiles (0-100) of the whole input
    volume, estimated once per run from a fixed, evenly spread sample.
    ``fixed``: ``low``/``high`` are intensity values. Either way the input is
    mapped to ``(x - lo) / (hi - lo)`` and the output mapped back with the same
    affine, so a restored volume keeps the input's grey levels.
    """

    mode: Literal["percentile", "fixed"] = "percentile"
    low: float = 0.1
    high: float = 99.9

    @model_validator(mode="after")
    def _ordered(self) -> NormalizationConfig:
        if not self.low < self.high:
            raise ValueError(f"normalization low ({self.low}) must be below high ({self.high})")
        if self.mode == "percentile" and not (self.low >= 0 and self.high <= 100):
            raise ValueError("percentiles must lie in [0, 100]")
        return self


class ModelConfig(Strict):
    """What a model file says about itself (stored as JSON in its safetensors header)."""

    name: str
    architecture: str
    arch_args: dict[str, Any] = Field(default_factory=dict)
    scale: int = Field(4, ge=1, le=16)
    in_slices: int = Field(1, ge=1, le=9)
    noise_input: bool = False  # a noise map (pssr_volume.noise) is an extra input channel
    # the output (high-resolution) pixel sizes of the training data, nm: smallest, largest
    pixel_size_nm: tuple[float, float] | None = None
    # a multi-section model: the largest z step (nm) of its training data; ``run`` refuses
    # inputs whose sections are more than 2x as far apart (``--force`` overrides)
    section_spacing_nm: float | None = None
    # restore in bf16 where the device computes it natively: set only after measuring that
    # blockwise == whole stays within 1 grey level and hold-out PSNR within 0.05 dB of fp32
    bf16_inference: bool = False
    normalization: NormalizationConfig = NormalizationConfig()
    description: str = ""
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    format_version: Literal[1] = 1

    @field_validator("in_slices")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 != 1:
            raise ValueError("in_slices must be odd (the centre section is restored)")
        return v

    @property
    def in_channels(self) -> int:
        """Input channels of the network: the sections, then the noise map if any."""
        return self.in_slices + int(self.noise_input)


def check_scheduler_address(address: str) -> None:
    """Refuse a ``tcp://`` address without a host or a valid port (ValueError)."""
    try:
        parts = urllib.parse.urlsplit(address)
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port is None or not 0 < port < 65536 or parts.path:
        raise ValueError(f"{address} is not a scheduler address: use tcp://HOST:PORT "
                         "(dask scheduler listens on port 8786 by default)")


class ExecutionConfig(Strict):
    """Where the block tasks run (shared by ``run`` and ``convert``)."""

    cluster: str = "local"
    workers: int | None = Field(None, ge=1)
    profile: Path | None = None
    device: Device | None = None
    resume: bool = False

    @field_validator("cluster")
    @classmethod
    def _known_cluster(cls, v: str) -> str:
        if v.startswith("tcp://") and len(v) > len("tcp://"):
            check_scheduler_address(v)
            return v
        if v in CLUSTERS:
            return v
        raise ValueError(f"unknown cluster {v!r}: use {', '.join(CLUSTERS)} or tcp://HOST:PORT")


class JobConfig(OutputConfig, ExecutionConfig):
    """A volume written blockwise by the engine into a multiscale OME-Zarr."""

    input: InputLocation
    output: OutputLocation
    block_shape: PositiveShape3 | None = None
    dry_run: bool = False  # plan and print; write nothing (an existing output is allowed)

    @model_validator(mode="after")
    def _exclusive(self) -> JobConfig:
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite exclude each other")
        return self


class RunConfig(JobConfig):
    """Everything ``pssr-volume run`` needs. ``None`` means "derive a default"."""

    model: Path | None = None
    halo: Halo | None = None
    blend: BlendMode = "crop"
    batch_size: int = Field(8, ge=1)
    roi: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None
    nan_value: float | None = None
    noise: tuple[float, float] | None = None  # (a, b) of var = a + b I; None: estimated
    force: bool = False  # run a multi-section model on sections further apart than it knows

    @field_validator("model", mode="before")
    @classmethod
    def _named_model(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            raise ValueError("it is empty; give a model file or a bundled model name "
                             "(pssr-volume info --models lists them)")
        return v
    consistency_map: bool = False  # also write each block's data-consistency figure
    gpu: str | None = None  # the GPU model a cuda run is planned for (pssr_volume.gpus)

    @model_validator(mode="after")
    def _map_needs_zarr(self) -> RunConfig:
        if self.consistency_map and self.output_format == "precomputed":
            raise ValueError("--consistency-map writes a Zarr array beside the levels: it needs "
                             "--output-format ome-zarr (the volume's figure is recorded either "
                             "way)")
        return self

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, v: str | None) -> str | None:
        if v is not None:
            gpu_named(v)  # ValueError names the known ones
        return v

    @field_validator("noise")
    @classmethod
    def _valid_noise(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(math.isfinite(x) and x >= 0 for x in v):
            raise ValueError(f"A and B must be finite and >= 0, got {v[0]},{v[1]}")
        return v

    @field_validator("nan_value")
    @classmethod
    def _finite_nan_value(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v

    @field_validator("roi")
    @classmethod
    def _ordered_roi(cls, v: tuple[tuple[int, int], ...] | None
                     ) -> tuple[tuple[int, int], ...] | None:
        if v is not None and any(not 0 <= a < b for a, b in v):
            raise ValueError("each range must be START:STOP with 0 <= START < STOP, got "
                             + ",".join(f"{a}:{b}" for a, b in v))
        return v


class EvaluateConfig(Strict):
    """Everything ``pssr-volume evaluate`` needs; saved as ``evaluate.json`` with the results.

    With ``lr`` empty, each ``hr`` volume is degraded with each preset (seeded) and restored;
    otherwise ``lr[i]`` and ``hr[i]`` are a real pair of acquisitions.
    """

    hr: tuple[Path, ...]
    lr: tuple[Path, ...] = ()
    presets: tuple[str, ...] = ("pssr-em", "pssr2")
    models: tuple[Path, ...] = ()
    out: Path
    scale: int = Field(4, ge=1, le=16)
    seed: int = 0
    z: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    cluster: str = "sync"
    workers: int | None = Field(None, ge=1)
    device: Device | None = None
    batch_size: int = Field(8, ge=1)
    block_shape: PositiveShape3 | None = None
    halo: Halo | None = None
    montage: bool = True
    bm3d: bool = True  # the BM3D + bicubic baseline (seconds per LR megapixel)
    overwrite: bool = False

    @model_validator(mode="after")
    def _pairs(self) -> EvaluateConfig:
        if not self.hr:
            raise ValueError("at least one --hr volume is needed")
        if self.lr and len(self.lr) != len(self.hr):
            raise ValueError(f"{len(self.lr)} --lr but {len(self.hr)} --hr volumes: give pairs")
        if not self.lr and not self.presets:
            raise ValueError("give --preset (to degrade --hr) or --lr (real pairs)")
        if self.z is not None and not 0 <= self.z[0] < self.z[1]:
            raise ValueError(f"z range must be START:STOP with 0 <= START < STOP, got {self.z}")
        if self.crop is not None and min(self.crop) < 1:
            raise ValueError(f"crop must be positive, got {self.crop}")
        return self


class ConvertConfig(JobConfig):
    """Everything ``pssr-volume convert`` needs (any input to a multiscale OME-Zarr, on the
    block engine: the same clusters, ``--resume`` and shards as ``run``). ``downsample``
    ``None``: ``mode`` for 32- and 64-bit integer volumes (labels), else ``mean``."""

    downsample: Literal["mean", "mode", "nearest"] | None = None


class CrappifyConfig(Strict):
    """Everything ``pssr-volume crappify`` needs (degrade a high-resolution volume)."""

    input: LocalPath
    output: LocalPath
    preset: str = "pssr-em"
    scale: int = Field(4, ge=1, le=16)
    seed: int = 0
    voxel_size: VoxelSize | None = None


class DemoConfig(Strict):
    """Everything ``pssr-volume demo`` needs (the synthetic EM-like stack)."""

    output: Path
    shape: PositiveShape3 = (4, 192, 160)
    seed: int = 0
    hr_path: Path | None = None
