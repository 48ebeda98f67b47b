"""What a user reads: ``info``'s short summary and its ``--json`` record, the command list
of ``--help``, and the ``done:`` line of a run."""

from __future__ import annotations

import json
import re

import pytest
from conftest import em_like, write_tiff

from pssr_volume.cli import cli as group
from pssr_volume.engine import RunStats
from pssr_volume.run import run_summary


@pytest.fixture(scope="module")
def restored(tmp_path_factory, models):
    """A run with the default settings whose 2-level pyramid is written in the block tasks,
    and its ``done:`` line."""
    from pssr_volume.cli import main

    d = tmp_path_factory.mktemp("restored")
    inp = write_tiff(d / "in.tif", em_like((2, 80, 72)))
    out = d / "out.ome.zarr"
    code = main(["run", str(inp), str(out), "--model", str(models["fast"]), "--cluster", "sync",
                 "--no-progress"])
    assert code == 0
    return inp, out


def test_info_prints_a_short_summary(restored, cli):
    inp, out = restored
    code, text, err = cli("info", out)
    assert code == 0, err
    lines = text.splitlines()
    assert len(lines) < 30, text
    assert "chunks    2x256x256, shards 2x4096x4096" in lines
    assert "status    complete" in lines
    # the voxel size of each level
    assert re.search(r"^ +0 +shape 2x320x288 .* scale 50x4.6x4.6 nanometer$", text, re.M), text
    assert re.search(r"^ +1 +shape 2x160x144 .* scale 50x9.2x9.2 nanometer$", text, re.M), text
    assert "format    OME-Zarr NGFF 0.5 (zarr v3)" in text
    sha = json.loads(cli("info", out, "--json")[1])["provenance"]["model"]["sha256"]
    assert f"model     fast (pssr-fast, x4, sha256 {sha[:12]})" in lines
    assert any(line.startswith("blend     crop, halo ") for line in lines)
    assert f"input     {inp}: tiff 2x80x72 uint8" in lines
    assert any(line.startswith("finished  20") for line in lines)
    assert "{" not in text  # no JSON


def test_info_json_is_the_full_record(restored, cli):
    _, out = restored
    code, text, err = cli("info", out, "--json")
    assert code == 0, err
    record = json.loads(text)  # stdout holds the JSON document and nothing else
    prov = record["provenance"]
    for key in ("software", "version", "model", "input", "settings", "fingerprint", "command",
                "status", "completed"):
        assert key in prov, key
    assert prov["settings"]["blend"] == "crop" and prov["status"] == "complete"
    assert [lv["shards"] for lv in record["levels"]][0] == [2, 4096, 4096]
    assert [x for lv in record["levels"] for x in lv["scale"]] == pytest.approx([50, 4.6, 4.6,
                                                                           50, 9.2, 9.2])


def test_info_of_a_model_is_short_unless_json(models, cli):
    code, text, err = cli("info", models["fast"])
    assert code == 0, err
    assert len(text.splitlines()) < 20 and "{" not in text
    assert "network   pssr-fast (width=8), x4, 1 section(s) in" in text
    assert re.search(r"^halo      \d+,\d+ px \(y, x\) by default", text, re.M), text
    code, text, err = cli("info", models["fast"], "--json")
    assert code == 0, err
    desc = json.loads(text)
    assert desc["name"] == "fast" and desc["arch_args"] == {"width": 8}
    assert f"sha256    {desc['sha256']}" in cli("info", models["fast"])[1]


def test_help_lists_every_command_in_full(cli):
    code, text, _ = cli("--help")
    assert code == 0
    listed = text.split("Commands:\n", 1)[1]
    names = sorted(group.commands)
    assert [line.split()[0] for line in listed.splitlines() if line.strip()] == names
    assert "..." not in listed
    for name in names:
        command = group.commands[name]
        short = command.get_short_help_str(limit=45)
        assert short == command.short_help and not short.endswith("..."), name
        assert short in listed, name
        code, text, _ = cli(name, "--help")
        described = text.split("\n", 1)[1]  # below "Usage: ... HR_INPUTS..."
        assert code == 0 and "..." not in described, name


def test_done_line_names_the_levels_written_in_the_block_tasks(tmp_path, models, cli):
    inp = write_tiff(tmp_path / "in.tif", em_like((2, 80, 72)))
    code, _, err = cli("run", inp, tmp_path / "a.ome.zarr", "--model", models["fast"],
                       "--cluster", "sync", "--no-progress")
    assert code == 0, err
    done = next(line for line in err.splitlines() if line.startswith("done: "))
    assert "pyramid level 1 written in the block tasks;" in done, done
    assert "pyramid task" not in done, done
    assert re.search(r"; \d+\.\d s: \d+\.\d s start-up, then \d+\.\d\d output Mvoxel/s$",
                     done), done
    # blocks smaller than a level-1 chunk: the level is written by later pyramid tasks
    code, _, err = cli("run", inp, tmp_path / "b.ome.zarr", "--model", models["fast"],
                       "--cluster", "sync", "--no-progress", "--block-shape", "2,128,128")
    assert code == 0, err
    done = next(line for line in err.splitlines() if line.startswith("done: "))
    assert re.search(r"; pyramid level 1 by [1-9]\d* later pyramid task\(s\);", done), done


def test_done_line_wording():
    stats = RunStats(blocks_total=8, blocks_done=6, blocks_skipped=2, pyramid_tasks=3,
                     voxels_written=12_000_000, seconds=10.0, levels=4, block_levels=1,
                     startup_seconds=4.0)
    assert run_summary(stats) == (
        "done: 6 block(s) restored, 2 already done; pyramid level 1 written in the block "
        "tasks, levels 2-3 by 3 later pyramid task(s); 10.0 s: 4.0 s start-up, then "
        "2.00 output Mvoxel/s")
    stats = RunStats(blocks_total=2, blocks_done=2, voxels_written=1, seconds=1.0, levels=3,
                     block_levels=2, startup_seconds=0.5)
    assert "; pyramid levels 1-2 written in the block tasks; 1.0 s: 0.5 s start-up" in (
        run_summary(stats))
    # nothing ran (the output was complete): no rate, no pyramid claim
    assert run_summary(RunStats(blocks_total=3, blocks_skipped=3)) == (
        "done: 0 block(s) restored, 3 already done; 0.0 s")
