"""Why ``--resume`` refuses an output: which command wrote it, and the few settings that
differ from the first run, each named by its dotted key and shown short."""

from __future__ import annotations

from typing import Any

__all__ = ["resume_refusal"]

SHOWN = 3  # settings named in the line; the rest are counted
WIDTH = 60  # characters of a value shown
# what a user chose comes first, in this order; what follows from it (levels, shards, the
# intensity range, the input's identity) after
FIRST = ("output_format", "model_sha256", "input.path", "input.array", "roi", "scale",
         "block_shape", "chunk_shape", "halo", "blend", "voxel_size_nm", "input_voxel_size_nm",
         "dtype", "noise", "ngff_version", "compression", "downsample")


def _rank(line: str) -> int:
    key = line.partition(":")[0]
    return next((i for i, k in enumerate(FIRST) if key == k or key.startswith(k + ".")),
                len(FIRST))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."


def _differences(old: Any, new: Any, key: str = "") -> list[str]:
    """``key: old -> new`` of every leaf that differs (dicts compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{key}.{k}" if key else str(k))
        return out
    return [] if old == new else [f"{key}: {_short(old)} -> {_short(new)}"]


def writer(provenance: dict[str, Any]) -> str:
    """The command that wrote an output: ``convert`` or ``run``."""
    return str(provenance.get("operation") or "run")


def resume_refusal(path: object, provenance: dict[str, Any], settings: dict[str, Any]) -> str:
    """The one line that refuses to resume ``path`` with ``settings``: another command
    wrote it, or at most :data:`SHOWN` settings differ (and how many more)."""
    was, now = writer(provenance), str(settings.get("operation") or "run")
    if was != now:
        return (f"cannot resume {path}: it was written by `pssr-volume {was}`, and this is "
                f"`pssr-volume {now}`; finish it with `pssr-volume {was} --resume`, or "
                "replace it with --overwrite")
    changes = sorted(_differences(provenance.get("settings", {}), settings),
                     key=_rank) or ["unknown"]
    more = len(changes) - SHOWN
    shown = "; ".join(changes[:SHOWN]) + (f"; and {more} more" if more > 0 else "")
    return (f"cannot resume {path}: settings differ from the first run ({shown}); use the "
            "first run's settings, or --overwrite")
