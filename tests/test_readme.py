"""The README's quick start works as written (on a fresh machine: no ../shared needed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import zarr

from pssr_volume.bundled import BUNDLED, DEFAULT_MODEL, bundled_model_path
from pssr_volume.model import model_info

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start_commands() -> list[list[str]]:
    """The commands of the first shell block that runs ``pssr-volume demo``."""
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        if "pssr-volume demo" in block:
            line = " ".join(block.replace("\\\n", " ").split())
            return [shlex.split(part.strip()) for part in line.split("&&")]
    raise AssertionError("README has no quick start")


def test_readme_quick_start(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    commands = quick_start_commands()
    assert [c[1] for c in commands] == ["demo", "run"]
    for argv in commands:
        assert argv[0].endswith("pssr-volume")
        code, _, err = cli(*argv[1:], "--no-progress" if argv[1] == "run" else "--seed=0")
        assert code == 0, err
        # the demo input fits the bundled model: a new user's first run raises no alarm (the
        # synthetic scene once looked 4x finer than declared to the scale check: +0.31 dB)
        assert "warning" not in err, err
    group = zarr.open_group("demo.ome.zarr", mode="r")
    # what the README promises about the result
    assert group["0"].shape == (4, 768, 640)
    ms = group.attrs["ome"]["multiscales"][0]
    assert len(ms["datasets"]) == 3
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx(
        [50, 4.6, 4.6])


def run_flag_row(flag: str) -> str:
    """The README's table row of a ``run`` flag."""
    for line in README.read_text().splitlines():
        if line.startswith(f"| `{flag} "):
            return line
    raise AssertionError(f"README has no row for {flag}")


def test_readme_halo_and_grid_are_the_bundled_models():
    """The default halo the README states for each bundled model is the one ``run`` uses,
    and the block grid it states is the default model's scale x network grid."""
    stated = {name: int(n) for n, name in
              re.findall(r"(\d+) for (?:the default )?`([\w-]+)`", run_flag_row("--halo"))}
    assert set(stated) == set(BUNDLED)
    for name, halo in stated.items():
        assert model_info(bundled_model_path(name)).default_halo == (halo, halo), name
    grid = re.search(r"scale x network grid \((\d+) for the bundled model\)",
                     run_flag_row("--block-shape"))
    assert grid is not None
    info = model_info(bundled_model_path(DEFAULT_MODEL))
    assert info.config.scale * info.grid == int(grid.group(1))
