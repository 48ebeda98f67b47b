"""Every manifest of extra training data (docs/training_data/) says where its files are, at a
fixed commit, with their hashes, license and pixel size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

MANIFESTS = sorted((Path(__file__).resolve().parents[1] / "docs" / "training_data").glob("*.json"))


def test_there_is_at_least_one_manifest() -> None:
    assert MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_a_manifest_is_complete(path: Path) -> None:
    spec = json.loads(path.read_text())
    assert spec["name"] == path.stem
    for key in ("what", "original_data", "license", "modality", "caveats", "pixel_size_note"):
        assert isinstance(spec[key], str) and spec[key].strip(), key
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", spec["source"]["repo"])
    assert re.fullmatch(r"[0-9a-f]{40}", spec["source"]["commit"])
    size = spec["pixel_size_nm"]
    assert len(size) == 3 and all(isinstance(v, (int, float)) and v > 0 for v in size)
    files = spec["files"]
    assert files and len({f["path"] for f in files}) == len(files)
    for f in files:
        assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) and f["bytes"] > 0
        assert not Path(f["path"]).is_absolute() and ".." not in Path(f["path"]).parts
