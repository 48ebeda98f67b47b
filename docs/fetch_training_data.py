"""Download the extra training data named by the manifests in docs/training_data/.

    python docs/fetch_training_data.py docs/training_data/hela_sbem_empiar10094.json DIR

Each manifest names a public repository at a fixed commit, the files taken from it with their
SHA-256, the license and the pixel size (docs/training_data/README.md). The files are
downloaded from GitHub at that commit into ``DIR/<manifest name>/`` and checked against their
hashes; a file already there with the right hash is kept. Nothing of the data is in this
repository, and the package never reads it: only `pssr-volume train` does, when given it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(manifest: Path, into: Path) -> Path:
    spec = json.loads(manifest.read_text())
    folder = into / spec["name"]
    folder.mkdir(parents=True, exist_ok=True)
    source = spec["source"]
    for entry in spec["files"]:
        target = folder / Path(entry["path"]).name
        if target.is_file() and _sha256(target) == entry["sha256"]:
            continue
        url = RAW.format(repo=source["repo"], commit=source["commit"], path=entry["path"])
        part = target.with_suffix(target.suffix + ".part")
        with urllib.request.urlopen(url, timeout=60) as response:
            part.write_bytes(response.read())
        if _sha256(part) != entry["sha256"]:
            part.unlink()
            raise SystemExit(f"error: {url} does not have the manifest's SHA-256")
        part.replace(target)
    (folder / "MANIFEST.json").write_text(json.dumps(spec, indent=1) + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("into", type=Path)
    args = parser.parse_args()
    try:
        folder = fetch(args.manifest, args.into)
    except OSError as e:
        sys.exit(f"error: {e}")
    print(f"{folder}: {len(json.loads(args.manifest.read_text())['files'])} file(s), checked")


if __name__ == "__main__":
    main()
