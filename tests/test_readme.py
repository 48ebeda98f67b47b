"""The README's quick start works as written (on a fresh machine: no ../shared needed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import zarr

from pssr_volume.models import bundled_model_path

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start_commands() -> list[list[str]]:
    """The commands of the first shell block that runs ``pssr-volume demo``."""
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        if "pssr-volume demo" in block:
            line = " ".join(block.replace("\\\n", " ").split())
            return [shlex.split(part.strip()) for part in line.split("&&")]
    raise AssertionError("README has no quick start")


@pytest.mark.skipif(not bundled_model_path().is_file(), reason="bundled model not built")
def test_readme_quick_start(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    commands = quick_start_commands()
    assert [c[1] for c in commands] == ["demo", "run"]
    for argv in commands:
        assert argv[0].endswith("pssr-volume")
        code, _, err = cli(*argv[1:], "--no-progress" if argv[1] == "run" else "--seed=0")
        assert code == 0, err
    group = zarr.open_group("demo.ome.zarr", mode="r")
    # what the README promises about the result
    assert group["0"].shape == (4, 768, 640)
    ms = group.attrs["ome"]["multiscales"][0]
    assert len(ms["datasets"]) == 3
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx(
        [50, 4.6, 4.6])
