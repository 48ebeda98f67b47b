"""The OME-Zarr output store: the one owner of checking, creating and finishing it.

Every command that writes an OME-Zarr (``run``, ``convert``, ``crappify``) goes through
here: :func:`check_output` refuses an existing output unless it is resumed with the same
settings or replaced with ``--overwrite`` (only a pssr-volume output or an empty folder
is ever deleted); :func:`open_output` creates the store (or reuses it on resume);
:func:`complete_output` marks it finished; :func:`write_image` writes a one-level image
section by section (``crappify``). The only module that turns an NGFF version into arrays
and metadata, from its format object (:mod:`pssr_volume.ngff`): 0.5 on zarr v3 (default,
sharded) or 0.4 on zarr v2. Arrays are created once by the driver; tasks write whole
chunks or shards of them through :mod:`pssr_volume.io.levels`.
The metadata itself is written by ome-zarr-py, the reference implementation.

One run at a time: the driver holds the output's lease (:mod:`pssr_volume.io.lease`, a file in
the state folder ``.pssr-volume``) from before the store is created or reused until it is
finished; :func:`check_output` and :func:`remove_output` refuse an output whose lease another
live process holds, and the state folder never counts as content of the output.

An output may be a local folder or an ``s3://`` / ``gs://`` URL (:mod:`pssr_volume.io.stores`):
the same checks, lease and journal hold there (:mod:`pssr_volume.io.objects`). A neuroglancer
precomputed output (:mod:`pssr_volume.io.precomputed`) is checked, created and finished here too.

Every chunk carries a checksum and every chunk is stored, also one equal to the fill value
(:mod:`pssr_volume.io.levels`), so ``pssr-volume verify`` can tell a damaged or missing
chunk from an empty one: NGFF 0.5 chunks are zstd then ``crc32c``; NGFF 0.4 (zarr v2) chunks
gzip, whose trailer holds the CRC-32 (zarr v2 has no checksum codec tensorstore reads, and a
flipped bit in a zstd v2 chunk decodes silently to wrong voxels; docs/FORMATS.md).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numcodecs
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from pssr_volume.errors import PssrError
from pssr_volume.io import precomputed, stores
from pssr_volume.io.journal import Journal
from pssr_volume.io.lease import check_not_leased, held_token
from pssr_volume.io.stores import STATE_DIR, Location
from pssr_volume.ngff import NgffFormat, ngff_format
from pssr_volume.pyramid import Level
from pssr_volume.urls import contains, is_url

PROVENANCE_KEY = "pssr_volume"
STORAGE_KEY = "storage"  # provenance: how chunks are stored (what verify may expect)
AXES = [{"name": n, "type": "space", "unit": "nanometer"} for n in ("z", "y", "x")]


def is_zarr_store(path: Location) -> bool:
    """Whether ``path`` holds zarr group or array metadata (v2 or v3)."""
    return any(stores.is_file(stores.child(path, name))
               for name in ("zarr.json", ".zgroup", ".zarray"))


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_paths(input_path: Location, output: Location) -> None:
    """Refuse an output that is, lies inside, or contains the input."""
    if is_url(input_path) or is_url(output):
        i_url, o_url = str(input_path).rstrip("/"), str(output).rstrip("/")
        same, o_in_i, i_in_o = (i_url == o_url, contains(i_url, o_url),
                                contains(o_url, i_url))
    else:
        i, o = Path(input_path).resolve(), Path(output).resolve()
        same, o_in_i, i_in_o = i == o, _is_within(o, i), _is_within(i, o)
    if same:
        raise PssrError(f"output {output} is the input; choose another output path")
    if o_in_i:
        raise PssrError(f"output {output} lies inside the input {input_path}")
    if i_in_o:
        raise PssrError(f"output {output} contains the input {input_path}")


def _hierarchy_node(path: Location) -> bool:
    """Whether ``path`` is a node of a Zarr (v2, v3) or N5 hierarchy: it holds its metadata."""
    return any(stores.is_file(stores.child(path, name))
               for name in ("zarr.json", ".zgroup", ".zarray", "attributes.json"))


def _container(path: Location) -> Location:
    """The outermost folder of the Zarr or N5 hierarchy that ``path`` lies in (an OME-Zarr
    level's image group, an N5 dataset's container), or ``path`` itself."""
    top, up = path, stores.parent(path)
    while up is not None and _hierarchy_node(up):
        top, up = up, stores.parent(up)
    return top


def check_placement(input_path: str | Path, output: Location) -> None:
    """The one rule of where an output may go: it may not be the input, lie inside it or
    contain it, nor lie inside the Zarr or N5 hierarchy the input belongs to (for the input
    ``img.ome.zarr/0``, ``img.ome.zarr/restored`` would write into the input's image).
    ``file.h5:/dataset`` is the file ``file.h5``.

    Raises
    ------
    PssrError
        For an output that breaks the rule.
    """
    from pssr_volume.io.inputs import input_location
    from pssr_volume.io.output_path import check_output_path

    check_output_path(output)  # too long, a loop, read-only: before anything else
    location = input_location(input_path)
    check_paths(location, output)
    container = _container(location)
    if str(container) != str(location):
        check_paths(container, output)


def chunk_codec(ngff_version: str) -> str:
    """The compressor of an output's chunks: ``"zstd"`` (then crc32c) for NGFF 0.5 on zarr
    v3, ``"gzip"`` (CRC-32 in its trailer) for NGFF 0.4 on zarr v2."""
    return ngff_format(ngff_version).codec


def _compressors(fmt: NgffFormat, level: int) -> Any:
    """The codecs of every chunk of a ``fmt`` array: its compressor, then its checksum."""
    if fmt.zarr_format == 2:  # a numcodecs compressor; gzip's trailer holds the CRC-32
        return numcodecs.get_codec({"id": fmt.codec, "level": level})
    return (ZstdCodec(level=level), Crc32cCodec())  # zarr v3: fmt.codec, then fmt.checksum


def create_output(path: Location, levels: tuple[Level, ...], chunk: tuple[int, int, int],
                  dtype: str, ngff_version: str = "0.5", compression_level: int = 1,
                  name: str = "restored", provenance: dict[str, Any] | None = None,
                  shards: tuple[tuple[int, int, int], ...] | None = None,
                  downsample: str = "mean") -> None:
    """Create an empty multiscale OME-Zarr image with one array per level.

    Every level uses ``chunk`` and :func:`chunk_codec` at ``compression_level``; the metadata
    gives each level its scale in nanometres. With ``shards`` (NGFF 0.5 only, one
    shape per level) the chunks of a level are stored in shard files of that
    shape: one file per shard instead of one per chunk. ``provenance`` goes into
    the group attributes under ``"pssr_volume"``.
    """
    fmt = ngff_format(ngff_version)
    if shards is not None and not fmt.sharding:
        raise PssrError(f"sharding needs NGFF 0.5 (zarr v3); NGFF {fmt.version} outputs are "
                        "unsharded")
    # an output folder that holds only our state folder (the lease) is new: "a" creates it
    fresh = stores.is_dir(path) and not _contents(path)
    group = image_group(path, "a" if fresh else "w-", zarr_format=fmt.zarr_format)
    for k, lv in enumerate(levels):
        layout: dict[str, Any] = (
            {"shards": None if shards is None else shards[k], "dimension_names": ["z", "y", "x"]}
            if fmt.zarr_format == 3 else {"chunk_key_encoding": {"name": "v2", "separator": "/"}})
        group.create_array(lv.path, shape=lv.shape, chunks=chunk, dtype=dtype, fill_value=0,
                           compressors=_compressors(fmt, compression_level), **layout)
    datasets = [
        {"path": lv.path,
         "coordinateTransformations": [
             {"type": "scale", "scale": list(lv.voxel_size)},
             {"type": "translation", "translation": [round(t, 6) for t in lv.translation]},
         ]}
        for lv in levels
    ]
    # ome-zarr-py (it imports dask: about 1.5 s) only here, so that the checks above stay fast
    from ome_zarr.format import format_from_version
    from ome_zarr.writer import write_multiscales_metadata

    write_multiscales_metadata(
        group, datasets, fmt=format_from_version(fmt.version), axes=AXES, name=name,
        metadata={"method": f"pssr_volume.pyramid.downsample ({downsample})",
                  "kwargs": {"method": downsample}},
    )
    if provenance is not None:
        storage = {"every_chunk_stored": True, "checksum": fmt.checksum}
        group.attrs[PROVENANCE_KEY] = json.loads(json.dumps({**provenance,
                                                             STORAGE_KEY: storage}))


def image_group(path: Location, mode: str, **kwargs: Any) -> zarr.Group:
    """The zarr group at ``path``: a local folder (as before) or a URL's FsspecStore."""
    if not is_url(path):
        return zarr.open_group(str(path), mode=mode, **kwargs)  # type: ignore[arg-type]
    with stores.remote_errors(str(path), None):
        store = stores.zarr_store(path, read_only=mode == "r")
        return zarr.open_group(store=store, mode=mode, **kwargs)  # type: ignore[arg-type]


def write_image(path: Location, sections: Iterable[np.ndarray], level: Level,
                chunk: tuple[int, int, int], dtype: str, *, name: str,
                provenance: dict[str, Any], ngff_version: str = "0.5",
                compression_level: int = 1) -> None:
    """Write a one-level OME-Zarr image from its z sections, in order (``crappify``).

    ``path`` does not exist yet (or is an empty folder): :func:`check_output` refused
    anything else. The store is made by :func:`create_output` (the codecs, checksums,
    metadata and provenance of every output), filled one section at a time with every
    chunk stored, also one equal to the fill value (``verify`` then knows a missing chunk
    is damage), and marked complete. Sections are consumed lazily, so a volume larger
    than memory is written as it is produced. On any failure, Ctrl-C included, what was
    written is removed again.
    """
    existed = stores.exists(path)
    try:
        create_output(path, (level,), chunk, dtype, ngff_version, compression_level,
                      name=name, provenance={**provenance, "status": "running"})
        array = cast(zarr.Array, image_group(path, "r+")[level.path])
        array = array.with_config({"write_empty_chunks": True})
        for z, section in enumerate(sections):
            array[z] = section
        complete_output(path)
    except BaseException:
        if existed:  # the empty folder it was given stays
            for part in _contents(path):
                stores.remove_tree(stores.child(path, part))
        elif stores.exists(path):
            stores.remove_tree(path)
        raise


def read_provenance(path: Location) -> dict[str, Any] | None:
    """The ``pssr_volume`` attributes of an output, or ``None`` if it has none."""
    try:
        group = image_group(path, "r")
    except (FileNotFoundError, ValueError, TypeError, zarr.errors.NodeTypeValidationError,
            zarr.errors.GroupNotFoundError):
        return precomputed.read_provenance(path)  # or a neuroglancer precomputed output's
    value = group.attrs.get(PROVENANCE_KEY)
    return dict(value) if isinstance(value, dict) else None


def level_paths(path: Location) -> list[str]:
    """The array paths of an OME-Zarr image's levels, highest resolution first (from its
    multiscales metadata, NGFF 0.4 or 0.5).

    Raises
    ------
    PssrError
        When ``path`` is no OME-Zarr image.
    """
    from pssr_volume.io.zarr_input import dataset_path, multiscales

    try:
        group = image_group(path, "r")
    except (FileNotFoundError, ValueError, TypeError, zarr.errors.NodeTypeValidationError,
            zarr.errors.GroupNotFoundError):
        raise PssrError(f"{path} is not an OME-Zarr image (no Zarr group there)") from None
    found = multiscales(group.attrs.asdict())
    datasets = found[0].get("datasets") if found else None
    paths = [dataset_path(str(path), d) for d in datasets or [] if isinstance(d, dict)]
    if not paths:
        raise PssrError(f"{path} is not an OME-Zarr image (no multiscales metadata)")
    return paths


def update_provenance(path: Location, **updates: Any) -> None:
    """Merge ``updates`` into the output's ``pssr_volume`` attributes (driver only)."""
    if precomputed.is_precomputed(path):
        return precomputed.update_provenance(path, **updates)  # its provenance file
    group = image_group(path, "r+")
    current = dict(cast(dict[str, Any], group.attrs.get(PROVENANCE_KEY, {})))  # written as a dict
    current.update(json.loads(json.dumps(updates)))
    group.attrs[PROVENANCE_KEY] = current


def _contents(path: Location) -> list[str]:
    """What a folder holds, apart from our state folder (journal, lease)."""
    return stores.contents(path, skip=STATE_DIR)


def remove_output(path: Location) -> None:
    """Delete an existing output for ``--overwrite``: only a pssr-volume output (a Zarr
    store with its provenance) or an empty directory is ever deleted, and never one whose
    lease another live process holds. The lease this process holds on it is kept."""
    check_not_leased(path)
    if _deletable(path):
        if held_token(path) is None:
            stores.remove_tree(path)
            return
        for name in _contents(path):
            stores.remove_tree(stores.child(path, name))
        Journal(path).remove()  # the old run's journal; our lease stays
        return
    raise PssrError(f"refusing to delete {path}: it is {_what(path, 'not a Zarr store')}")


def _deletable(path: Location) -> bool:
    """Only a pssr-volume output or an empty folder (but for our state) is ever deleted."""
    return stores.is_dir(path) and (not _contents(path) or read_provenance(path) is not None)


def _what(path: Location, otherwise: str) -> str:
    return "a Zarr store written by another tool" if is_zarr_store(path) else otherwise


def check_output(path: Location, *, resume: bool, overwrite: bool, fingerprint: str,
                 settings: dict[str, Any], hint: str = "--resume to finish it or --overwrite "
                 "to replace it") -> bool:
    """Refuse an existing output unless ``resume`` (same fingerprint) or ``overwrite``.

    Writes nothing; run it before any work starts, and again once the output's lease is
    held. Returns whether the output is a finished one that ``resume`` asked for: nothing
    is left to do then. An output another live process holds the lease of is refused,
    whatever the flags (``--overwrite`` included).
    """
    if not stores.exists(path):
        if resume:  # a typo would start a second output
            raise PssrError(f"nothing to resume: {path} does not exist (check the path; "
                            "without --resume a new output is started)")
        return False
    check_not_leased(path)
    if stores.is_dir(path) and not _contents(path):  # empty but for a lease: new, also on resume
        return False
    if overwrite:
        if not _deletable(path):
            raise PssrError(f"refusing to overwrite {path}: it is "
                            f"{_what(path, 'not a pssr-volume output')}")
        return False
    if not resume:
        raise PssrError(f"output exists: {path} (use {hint})")
    prov = read_provenance(path)
    if prov is None or "fingerprint" not in prov:
        raise PssrError(f"cannot resume: {path} is not a pssr-volume output")
    if prov["fingerprint"] != fingerprint:
        from pssr_volume.io.differences import resume_refusal

        raise PssrError(resume_refusal(path, prov, settings))
    return prov.get("status") == "complete"


@dataclass(frozen=True)
class OutputLayout:
    """What an output store holds: its levels and how they are stored."""

    levels: tuple[Level, ...]
    chunk: tuple[int, int, int]
    shards: tuple[tuple[int, int, int], ...] | None
    dtype: str
    ngff_version: str = "0.5"
    compression_level: int = 1
    name: str = "image"
    downsample: str = "mean"
    precomputed: tuple[precomputed.Scale, ...] | None = None  # a precomputed output's scales


def open_output(path: Location, layout: OutputLayout, provenance: dict[str, Any],
                overwrite: bool = False) -> dict[str, Any] | None:
    """Create the output store, after removing the old one for ``overwrite``; or, when it
    exists with provenance (a resume that :func:`check_output` allowed), leave it as it is.

    Returns the provenance of the first run when resuming, else ``None``.
    """
    if overwrite and stores.exists(path):
        remove_output(path)
    prov = read_provenance(path)
    if prov is not None:
        return prov
    if stores.is_dir(path) and not _contents(path) and held_token(path) is None:
        stores.remove_tree(path)  # an empty directory (anything else was refused by check_output)
    Journal(path).remove()  # a new store: no journal of an earlier store may count
    provenance = {**provenance, "status": "running"}
    if layout.precomputed is not None:  # a neuroglancer precomputed output
        precomputed.create_volume(path, layout, provenance)
    else:
        create_output(path, layout.levels, layout.chunk, layout.dtype, layout.ngff_version,
                      layout.compression_level, name=layout.name, provenance=provenance,
                      shards=layout.shards, downsample=layout.downsample)
    return None


def complete_output(path: Location) -> None:
    """Mark an output finished in its provenance, then delete its journal (no folder of
    ours is left inside a finished output once its lease is released too)."""
    update_provenance(path, status="complete",
                      completed=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    Journal(path).remove()


def reopen_output(path: Location, done: set[str]) -> None:
    """Make a finished (or interrupted) output resumable with only the tasks ``done``
    counted as done: ``--resume --verify`` after damage was found. The status goes back
    to ``running`` first, then the journal is replaced: a crash in between leaves an
    output whose every task is redone, never one that skips damaged ones."""
    update_provenance(path, status="running")
    Journal(path).replace(done)


def storage_of(prov: dict[str, Any] | None) -> dict[str, Any]:
    """How an output's chunks are stored: ``every_chunk_stored`` (a missing chunk is
    damage, not an empty one) and ``checksum``; older outputs record neither."""
    value = (prov or {}).get(STORAGE_KEY)
    return dict(value) if isinstance(value, dict) else {}
