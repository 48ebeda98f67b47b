"""Command-line parameter types, and defaults and choices read from the config models.

The config models (:mod:`pssr_volume.config`) hold every default and every allowed value;
the options of :mod:`pssr_volume.cli` take them from there instead of repeating them.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from pssr_volume.config import OutputConfig


class Numbers(click.ParamType):
    """``Z,Y,X``-style comma-separated numbers of a fixed count."""

    def __init__(self, count: int, kind: type, axes: str):
        self.count, self.kind, self.axes = count, kind, axes
        self.name = ",".join(axes)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = tuple(self.kind(p) for p in parts)
        except ValueError:
            noun = "integers" if self.kind is int else "numbers"
            self.fail(f"expected {self.count} comma-separated {noun} ({self.name}), got {value!r}",
                      param, ctx)
        if len(numbers) != self.count:
            self.fail(f"expected {self.count} values ({self.name}), got {value!r}", param, ctx)
        return numbers


class Ranges(click.ParamType):
    """``Z0:Z1,Y0:Y1,X0:X1`` voxel ranges."""

    name = "Z0:Z1,Y0:Y1,X0:X1"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            ranges = tuple((int(a), int(b)) for a, _, b in (p.partition(":") for p in parts))
        except ValueError:
            self.fail(f"expected Z0:Z1,Y0:Y1,X0:X1 (integers), got {value!r}", param, ctx)
        if len(ranges) != 3:
            self.fail(f"expected three ranges Z0:Z1,Y0:Y1,X0:X1, got {value!r}", param, ctx)
        return ranges


def default(model: type[BaseModel], field: str) -> Any:
    """A config model's default for ``field`` (the command line repeats none)."""
    return model.model_fields[field].default


def choices(model: type[BaseModel], field: str) -> click.Choice:
    """The values a config model's ``Literal`` field allows, as a click choice."""
    values: list[str] = []

    def collect(annotation: Any) -> None:
        origin = typing.get_origin(annotation)
        if origin is typing.Literal:
            values.extend(str(v) for v in typing.get_args(annotation))
        elif origin in (typing.Union, types.UnionType):
            for arg in typing.get_args(annotation):
                collect(arg)

    collect(model.model_fields[field].annotation)
    return click.Choice(values)


class ZRange(click.ParamType):
    """``START:STOP`` section range."""

    name = "START:STOP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        a, sep, b = str(value).partition(":")
        try:
            return int(a), int(b)
        except ValueError:
            self.fail(f"expected START:STOP (integers), got {value!r}", param, ctx)


def validation_message(e: ValidationError) -> str:
    """A pydantic error as one command-line line, naming the flag."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    msg = err["msg"].removeprefix("Value error, ")
    if field in ("input", "output"):
        return f"invalid {field.upper()}: {msg}"
    return f"invalid --{field.replace('_', '-')}: {msg}" if field else msg


def arch_args(values: tuple[str, ...]) -> dict[str, Any]:
    """``--arch-arg KEY=VALUE`` values as a dict (VALUE parsed as JSON where it is)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--arch-arg")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def output_format_options(command: Any) -> Any:
    """``--ngff-version``, ``--compression-level`` and ``--output-format``: how ``run`` and
    ``convert`` store their output (defaults from :class:`~pssr_volume.config.OutputConfig`)."""
    options = [
        click.option("--ngff-version", type=choices(OutputConfig, "ngff_version"),
                     default=default(OutputConfig, "ngff_version"), show_default=True,
                     help="0.5 writes zarr v3 (zstd, crc32c), 0.4 zarr v2 (gzip)."),
        click.option("--compression-level", type=int,
                     default=default(OutputConfig, "compression_level"), show_default=True,
                     help="Compression level of the output chunks: zstd 0-22 (NGFF 0.5), "
                          "gzip 0-9 (NGFF 0.4)."),
        click.option("--output-format", type=choices(OutputConfig, "output_format"),
                     default=default(OutputConfig, "output_format"), show_default=True,
                     help="ome-zarr, or precomputed: neuroglancer precomputed, sharded (one "
                          "shard per written region; CloudVolume, igneous)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
