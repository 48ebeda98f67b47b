"""Which task of a run wrote which region of which level, and the journal key of each: what
``--resume --verify`` needs to turn damaged chunks into the tasks to redo
(:func:`pssr_volume.verify.verify_for_resume`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pssr_volume.pyramid import (
    Level,
    Stage,
    child_region,
    cumulative,
    parent_region,
    plan_stages,
    shard_shapes,
)
from pssr_volume.tasks import block_key, pyramid_key

Box = tuple[tuple[int, int], ...]


def unit_ranges(shape: Sequence[int], unit: Sequence[int]) -> list[range]:
    """Index ranges of the ``unit``-shaped pieces (chunks, shards, tasks) tiling ``shape``."""
    return [range(math.ceil(n / u)) for n, u in zip(shape, unit)]


def unit_box(index: Sequence[int], unit: Sequence[int], shape: Sequence[int]) -> Box:
    """The box of piece ``index`` of ``unit`` in ``shape`` (clipped at its end)."""
    return tuple((i * u, min((i + 1) * u, n)) for i, u, n in zip(index, unit, shape))


@dataclass(frozen=True)
class TaskMap:
    """Which task of a run wrote which region of which level (the engine's task layout:
    block tasks write levels ``0..stages[0].last``, each later stage's tasks the levels of
    their stage), and the journal key of each."""

    levels: tuple[Level, ...]
    stages: tuple[Stage, ...]

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> TaskMap | None:
        """Rebuild the task layout from an output's recorded settings (``None`` if they
        lack what it needs)."""
        try:
            levels: list[Level] = []
            for d in settings["levels"]:
                z, y, x = (float(v) for v in d["voxel_size_nm"])
                pz, py, px = levels[-1].voxel_size if levels else (z, y, x)
                nz, ny, nx = (int(n) for n in d["shape"])
                levels.append(Level(str(d["path"]), (nz, ny, nx), (z, y, x),
                                    (max(1, round(z / pz)), max(1, round(y / py)),
                                     max(1, round(x / px)))))
            bz, by, bx = (int(n) for n in settings["block_shape"])
            cz, cy, cx = (int(n) for n in settings["chunk_shape"])
            lv = tuple(levels)
            block, chunk = (bz, by, bx), (cz, cy, cx)
            stages = plan_stages(lv, block, chunk)
            recorded = settings.get("shard_shapes")
            asked = None if not recorded or recorded[0] == list(block) else tuple(recorded[0])
            if recorded and [list(s) for s in shard_shapes(lv, stages, chunk, asked)] != recorded:
                stages = plan_stages(lv, block, chunk, cap=False)  # written before the cap
            return cls(lv, stages)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

    def level_index(self, name: str) -> int:
        return next(i for i, lv in enumerate(self.levels) if lv.path == name)

    def _stage_of(self, k: int) -> int:
        return next(s for s, st in enumerate(self.stages) if st.first <= k <= st.last)

    def _tile(self, s: int, k: int) -> tuple[int, ...]:
        st = self.stages[s]
        f = cumulative(self.levels, st.first, k)
        return tuple(t // ff for t, ff in zip(st.task, f))

    def _key(self, s: int, index: tuple[int, ...]) -> str:
        if s == 0:
            return block_key((index[0], index[1], index[2]))
        st = self.stages[s]
        return pyramid_key(st.first, unit_box(index, st.task, self.levels[st.first].shape))

    def _regions(self, s: int, index: tuple[int, ...]) -> dict[int, Box]:
        st = self.stages[s]
        region = unit_box(index, st.task, self.levels[st.first].shape)
        out = {st.first: region}
        for k in range(st.first + 1, st.last + 1):
            region = child_region(region, self.levels[k].factors, self.levels[k].shape)
            out[k] = region
        return out

    def _indices(self, s: int) -> Iterator[tuple[int, ...]]:
        st = self.stages[s]
        return itertools.product(*unit_ranges(self.levels[st.first].shape, st.task))

    def owner(self, k: int, box: Box) -> str:
        """The journal key of the task that writes ``box`` (inside one task's region)."""
        s = self._stage_of(k)
        return self._key(s, tuple(a // t for (a, _), t in zip(box, self._tile(s, k))))

    def all_keys(self) -> set[str]:
        """Every task's key: what a finished output's journal would hold."""
        return {self._key(s, i) for s in range(len(self.stages)) for i in self._indices(s)}

    def redo(self, damaged: Sequence[tuple[int, Box]]) -> set[str]:
        """Keys of the tasks that wrote the damaged ``(level, box)`` regions, and of every
        later pyramid task that reads what those tasks write."""
        keys: set[str] = set()
        written: dict[int, list[Box]] = {}

        def add(s: int, index: tuple[int, ...]) -> None:
            keys.add(self._key(s, index))
            for k, region in self._regions(s, index).items():
                written.setdefault(k, []).append(region)

        for k, box in damaged:
            s = self._stage_of(k)
            tile = self._tile(s, k)
            spans = [range(a // t, math.ceil(b / t)) for (a, b), t in zip(box, tile)]
            for index in itertools.product(*spans):
                add(s, index)
        for s in range(1, len(self.stages)):
            st = self.stages[s]
            assert st.source is not None  # later stages read a level
            f = cumulative(self.levels, st.source, st.first)
            for index in self._indices(s):
                region = unit_box(index, st.task, self.levels[st.first].shape)
                read = parent_region(region, f, self.levels[st.source].shape)
                if any(_overlap(read, w) for w in written.get(st.source, [])):
                    add(s, index)
        return keys


def _overlap(a: Box, b: Box) -> bool:
    return all(a0 < b1 and b0 < a1 for (a0, a1), (b0, b1) in zip(a, b))


# --------------------------------------------------------------------------- entry points
