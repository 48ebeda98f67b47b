"""``pssr-volume verify``: re-read every chunk of every level and name the damaged or missing.

Every chunk of an output carries a checksum (NGFF 0.5: crc32c; NGFF 0.4: gzip's CRC-32), and
every chunk is stored (also one whose voxels equal the fill value; see
:mod:`pssr_volume.io.levels`), so a chunk that was zeroed, truncated, altered or deleted
after it was written is found:

* *damaged*: it does not decode, or its checksum does not match;
* *missing*: it does not exist where data was written. In a finished output that is every
  chunk; in an unfinished one, the chunks of the tasks its journal records as done. An
  output written before chunks were always stored (its provenance lacks
  ``storage.every_chunk_stored``), or not by pssr-volume, may lack chunks that were all
  fill value: there a missing chunk reads as the fill value and is not reported.

Levels are read region by region (at most :data:`READ_VOXELS` voxels at a time, whole files);
only a region that fails is re-read file by file, and a failing shard chunk by chunk, so
memory stays bounded and the common case is one pass at tensorstore's speed.

``run --resume --verify`` (and ``convert`` with ``verify=True``) first verifies, then makes
the journal forget the tasks that wrote damaged chunks, and the pyramid tasks that read what
those tasks wrote, so the resume rewrites exactly them (:func:`verify_for_resume`).
"""

from __future__ import annotations

__all__ = ["Damage", "DamageFound", "TaskMap", "VerifyReport", "verify", "verify_for_resume",
           "verify_output"]

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pssr_volume.errors import PssrError, RunFailed
from pssr_volume.io import stores
from pssr_volume.io.journal import Journal
from pssr_volume.io.lease import check_not_leased
from pssr_volume.io.levels import LevelLayout, is_missing
from pssr_volume.io.ome_zarr import read_provenance, reopen_output, storage_of
from pssr_volume.io.output_levels import check_region, level_layout, level_paths
from pssr_volume.io.stores import Location
from pssr_volume.task_map import Box, TaskMap, unit_box, unit_ranges

READ_VOXELS = 16 << 20  # voxels per read: 16 MiB of uint8, 64 MiB of float32


class DamageFound(RunFailed):
    """``pssr-volume verify`` found damaged or missing chunks: exit status 1."""


@dataclass(frozen=True)
class Damage:
    """One damaged or missing file (a chunk, or a whole shard) of a level."""

    level: str
    kind: str  # "damaged" or "missing"
    unit: str  # "chunk" or "shard"
    index: tuple[int, ...]  # its position in the level's chunk (or shard) grid
    box: Box  # the voxels it holds
    file: str  # relative to the output
    chunks: int  # chunks it holds
    detail: str = ""

    def line(self) -> str:
        """One line: what, where, which voxels and why."""
        voxels = ",".join(f"{a}:{b}" for a, b in self.box)
        text = (f"{self.kind}: level {self.level} {self.unit} "
                f"{','.join(map(str, self.index))} ({self.file}, voxels {voxels})")
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class VerifyReport:
    """What :func:`verify_output` found."""

    output: str
    levels: int = 0
    chunks: int = 0
    files: int = 0
    missing_checked: bool = True  # whether a missing chunk counts as damage everywhere
    damage: list[Damage] = field(default_factory=list)

    def summary(self) -> str:
        """The last line of ``pssr-volume verify``."""
        what = f"{self.chunks} chunk(s) in {self.files} file(s), {self.levels} level(s)"
        note = "" if self.missing_checked else (
            " (missing chunks count only where data was recorded as written)")
        if not self.damage:
            return f"verified {self.output}: {what}: no damage{note}"
        bad = sum(d.chunks for d in self.damage if d.kind == "damaged")
        gone = sum(d.chunks for d in self.damage if d.kind == "missing")
        return (f"{self.output}: {bad} damaged and {gone} missing chunk(s) of {what}{note}; "
                "rerun the command that wrote it with --resume --verify to rewrite them")


def _short(error: str) -> str:
    text = error.split(" [tensorstore_spec=")[0].strip()
    return text if len(text) <= 240 else text[:237] + "..."


def _read_shape(layout: LevelLayout) -> tuple[int, ...]:
    """Whole files per read, growing x, then y, then z, within :data:`READ_VOXELS`."""
    shape = list(layout.unit)
    for axis in (2, 1, 0):
        full = math.ceil(layout.shape[axis] / layout.unit[axis]) * layout.unit[axis]
        while shape[axis] < full and math.prod(shape) * 2 <= READ_VOXELS:
            shape[axis] = min(full, shape[axis] * 2)
    return tuple(shape)


def _units(region_index: Sequence[int], per: Sequence[int],
           counts: Sequence[int]) -> Iterator[tuple[int, ...]]:
    ranges = [range(r * p, min((r + 1) * p, c)) for r, p, c in zip(region_index, per, counts)]
    return itertools.product(*ranges)


def _check_level(output: Location, layout: LevelLayout, expected: Callable[[Box], bool],
                 report: Callable[[Damage], None]) -> tuple[int, int]:
    """Check one level; returns (chunks, files)."""
    unit, shape = layout.unit, layout.shape
    counts = [len(r) for r in unit_ranges(shape, unit)]
    folders = _folders(output, layout, counts, report)
    read = _read_shape(layout)
    per = [r // u for r, u in zip(read, unit)]
    for region_index in itertools.product(*unit_ranges(counts, per)):
        units = list(_units(region_index, per, counts))
        modes = [expected(unit_box(u, unit, shape)) for u in units]
        if all(modes) or not any(modes):  # one read for the region (read = per * unit)
            box = unit_box(region_index, read, shape)
            if check_region(output, layout, box, modes[0]) is None:
                continue
        for u, strict in zip(units, modes):
            if u not in folders:
                _check_unit(output, layout, u, strict, report)
    chunks = math.prod(math.ceil(n / c) for n, c in zip(shape, layout.chunk))
    return chunks, math.prod(counts)


def _folders(output: Location, layout: LevelLayout, counts: Sequence[int],
             report: Callable[[Damage], None]) -> set[tuple[int, ...]]:
    """Report, and return, the files of a local level that are folders: damage whether or
    not data was recorded there (a task could not write its file)."""
    if not isinstance(output, Path):  # an object store has no folders in files' places
        return set()
    found = set()
    for index in itertools.product(*map(range, counts)):
        name = f"{layout.level}/{layout.file(index)}"
        path = stores.child(output, name)
        if isinstance(path, Path) and path.is_dir() and not path.is_symlink():
            box = unit_box(index, layout.unit, layout.shape)
            chunks = math.prod(math.ceil((b - a) / c) for (a, b), c in zip(box, layout.chunk))
            report(Damage(layout.level, "damaged", "shard" if layout.shard else "chunk", index,
                          box, name, chunks, "a folder, not a file"))
            found.add(index)
    return found


def _check_unit(output: Location, layout: LevelLayout, index: tuple[int, ...], strict: bool,
                report: Callable[[Damage], None]) -> None:
    box = unit_box(index, layout.unit, layout.shape)
    error = check_region(output, layout, box, strict)
    if error is None:
        return
    name = f"{layout.level}/{layout.file(index)}"
    per_file = math.prod(math.ceil((b - a) / c) for (a, b), c in zip(box, layout.chunk))
    if layout.shard is None or not stores.is_file(stores.child(output, name)):
        kind = ("missing" if is_missing(error) or not stores.exists(stores.child(output, name))
                else "damaged")
        report(Damage(layout.level, kind, "shard" if layout.shard else "chunk", index, box,
                      name, per_file, "" if kind == "missing" else _short(error)))
        return
    bad: list[Damage] = []
    origin = [a for a, _ in box]
    inner = [range(math.ceil((b - a) / c)) for (a, b), c in zip(box, layout.chunk)]
    for j in itertools.product(*inner):
        cbox = tuple((o + k * c, min(o + (k + 1) * c, b))
                     for o, k, c, (_, b) in zip(origin, j, layout.chunk, box))
        e = check_region(output, layout, cbox, strict)
        if e is not None:
            cindex = tuple(a // c for (a, _), c in zip(cbox, layout.chunk))
            kind = "missing" if is_missing(e) else "damaged"
            bad.append(Damage(layout.level, kind, "chunk", cindex, cbox, name, 1,
                              "" if kind == "missing" else _short(e)))
    if len(bad) == per_file and len({d.kind for d in bad}) == 1:  # the whole shard
        report(Damage(layout.level, bad[0].kind, "shard", index, box, name, per_file,
                      "" if bad[0].kind == "missing" else _short(error)))
    else:
        for d in bad:
            report(d)


def verify_output(output: Location, tasks: TaskMap | None = None,
                  on_damage: Callable[[Damage], None] = lambda d: None) -> VerifyReport:
    """Re-read every chunk of every level of ``output`` (see the module docstring).

    ``tasks`` (else rebuilt from the provenance) tells which chunks an unfinished output
    must hold; ``on_damage`` receives each finding as it is made.
    """
    out = stores.location(output)
    prov = read_provenance(out)
    names = level_paths(out)
    stored_all = bool(storage_of(prov).get("every_chunk_stored"))
    complete = prov is not None and prov.get("status") == "complete"
    if tasks is None and prov is not None and isinstance(prov.get("settings"), dict):
        tasks = TaskMap.from_settings(prov["settings"])
    done = Journal(out).done() if stored_all and not complete and tasks is not None else set()
    report = VerifyReport(str(output), missing_checked=stored_all and complete)

    def found(d: Damage) -> None:
        report.damage.append(d)
        on_damage(d)

    def expectation(name: str) -> Callable[[Box], bool]:
        if stored_all and complete:
            return lambda box: True
        if not done or tasks is None or name not in {lv.path for lv in tasks.levels}:
            return lambda box: False
        k, owner = tasks.level_index(name), tasks.owner
        return lambda box: owner(k, box) in done

    for name in names:
        layout = level_layout(out, name)
        chunks, files = _check_level(out, layout, expectation(name), found)
        report.levels += 1
        report.chunks += chunks
        report.files += files
    return report


def verify(output: Location, on_damage: Callable[[Damage], None] = lambda d: None
           ) -> VerifyReport:
    """``pssr-volume verify OUTPUT``: refuse an output another run is writing, then
    :func:`verify_output`.

    Raises
    ------
    PssrError
        A missing output, one being written, or one that is no OME-Zarr image.
    """
    out = stores.location(output)
    if not stores.exists(out):
        raise PssrError(f"not found: {output}")
    check_not_leased(out)
    return verify_output(out, on_damage=on_damage)


def verify_for_resume(output: Location, tasks: TaskMap, log: Callable[[str], None]) -> bool:
    """``--resume --verify``, holding the output's lease before any task runs: verify the
    output, then make its journal forget the tasks whose data is damaged or missing (and
    the pyramid tasks above them), and delete the damaged files: the tasks that own them
    write them whole again (a shard lies inside one task's region). Returns whether
    anything is left to do; a finished output with damage goes back to ``running``."""
    prov = read_provenance(output)
    if prov is None:  # no store yet (a --resume that starts afresh): nothing to check
        return True
    complete = prov.get("status") == "complete"
    report = verify_output(output, tasks, on_damage=lambda d: log(d.line()))
    if not report.damage:
        log(report.summary())
        return not complete
    redo = tasks.redo([(tasks.level_index(d.level), d.box) for d in report.damage])
    done = tasks.all_keys() if complete else Journal(output).done()
    if complete:
        reopen_output(output, done - redo)
    else:
        Journal(output).replace(done - redo)
    for d in report.damage:  # only then: a rewrite of a partial edge shard reads the old file
        stores.remove_tree(stores.child(output, d.file))  # a folder in a file's place too
    bad = sum(d.chunks for d in report.damage)
    log(f"verify: {bad} damaged or missing chunk(s) in {len(report.damage)} file(s); "
        f"{len(redo)} task(s) will be redone")
    return True
