"""Type names shared across the package."""

from __future__ import annotations

Shape3 = tuple[int, int, int]  # (z, y, x) sizes or block/chunk shapes, in voxels
