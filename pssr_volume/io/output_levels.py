"""An output's levels, whatever its format: the one place that picks OME-Zarr arrays
(:mod:`pssr_volume.io.levels`) or the scales of a neuroglancer precomputed volume
(:mod:`pssr_volume.io.precomputed`). Tasks name the format (the job knows it); ``verify``
asks the output (:func:`is_precomputed`) and then its levels' layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from pssr_volume.io import levels, precomputed_chunks
from pssr_volume.io.levels import LevelLayout
from pssr_volume.io.precomputed import is_precomputed
from pssr_volume.io.precomputed_chunks import ShardLayout
from pssr_volume.io.stores import Location

__all__ = ["Pending", "check_region", "is_precomputed", "level_layout", "level_paths",
           "read_region", "start_write", "write_all"]

Box = tuple[tuple[int, int], ...]
PRECOMPUTED = "precomputed"


class Pending(Protocol):
    """A write in progress; ``result()`` waits until it is stored."""

    def result(self) -> Any: ...


def start_write(fmt: str, path: str, level: str, region: Box, data: np.ndarray) -> Pending:
    """Begin writing ``data`` at ``region`` of a level of a ``fmt`` output."""
    if fmt == PRECOMPUTED:
        return precomputed_chunks.start_write(path, level, region, data)
    return levels.start_write(path, level, region, data)


def write_all(writes: Sequence[Pending]) -> None:
    """Wait for every write in ``writes`` to be stored (raises the first failure)."""
    for w in writes:
        w.result()


def read_region(fmt: str, path: str, level: str, region: Box) -> np.ndarray:
    """The voxels of ``region`` of a level of a ``fmt`` output."""
    if fmt == PRECOMPUTED:
        return precomputed_chunks.read_region(path, level, region)
    return levels.read_region(path, level, region)


def level_paths(path: Location) -> list[str]:
    """The levels of an output, finest first."""
    if is_precomputed(path):
        return precomputed_chunks.level_paths(path)
    from pssr_volume.io.ome_zarr import level_paths as zarr_levels

    return zarr_levels(path)


def level_layout(path: Location, level: str) -> LevelLayout:
    """How a level of an output is stored."""
    if is_precomputed(path):
        return precomputed_chunks.level_layout(path, level)
    return levels.level_layout(path, level)


def check_region(path: Location, layout: LevelLayout, region: Box, strict: bool) -> str | None:
    """Read ``region`` of a level and discard it: ``None`` when every chunk decodes and its
    checksum matches, else the error; with ``strict`` a missing chunk is an error too."""
    if isinstance(layout, ShardLayout):
        return precomputed_chunks.check_region(path, layout, region, strict)
    return levels.check_region(path, layout.level, region, strict)
