"""One lifecycle for every output (pssr_volume.lifecycle): its rules exist once, and hold for
the library as for the command line."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
from conftest import em_like, write_tiff

import pssr_volume
from pssr_volume.config import ConvertConfig, RunConfig
from pssr_volume.convert import convert
from pssr_volume.errors import PssrError
from pssr_volume.run import run

PACKAGE = Path(pssr_volume.__file__).parent
STORAGE = PACKAGE / "io"


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}


def _calls(tree: ast.Module, name: str) -> int:
    """Calls of ``name(...)`` or ``x.name(...)`` in ``tree``."""
    return sum(1 for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == name)
        or (isinstance(node.func, ast.Attribute) and node.func.attr == name)))


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_the_lease_is_taken_in_one_module_only():
    holders = sorted(m for m, tree in _modules().items() if _calls(tree, "hold"))
    assert holders == ["lifecycle.py"]


def test_the_commands_only_plan_and_summarise():
    for command in ("run.py", "convert.py"):
        imported = _imports(_modules()[command])
        storage_state = {i for i in imported
                         if i.startswith(("pssr_volume.io.lease", "pssr_volume.io.journal"))}
        assert not storage_state, (command, storage_state)
        assert "pssr_volume.lifecycle.drive" in imported, command


def test_only_the_storage_package_branches_on_urls():
    outside = sorted(m for m, tree in _modules().items()
                     if _calls(tree, "is_url") and not m.startswith("io/") and m != "urls.py")
    assert outside == []


def _listing(folder: Path) -> list[tuple[str, str]]:
    return sorted((str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest())
                  for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    return write_tiff(tmp_path_factory.mktemp("lifecycle") / "stack.tif", em_like((3, 40, 36)))


@pytest.fixture(scope="module")
def image(stack: Path) -> Path:
    """A small OME-Zarr image (written by convert) that serves as an input."""
    out = stack.parent / "img.ome.zarr"
    convert(ConvertConfig(input=stack, output=out, cluster="sync", progress=False))
    return out


def test_the_library_refuses_an_output_inside_the_inputs_image(image: Path, models):
    before = _listing(image)
    for config in (RunConfig(input=image / "0", output=image / "restored", cluster="sync",
                             model=models["pointwise"]),
                   ConvertConfig(input=image / "0", output=image / "copy", cluster="sync")):
        with pytest.raises(PssrError, match="lies inside the input"):
            (run if isinstance(config, RunConfig) else convert)(config)  # type: ignore[operator]
    assert _listing(image) == before


def test_a_dry_run_on_an_existing_output_writes_nothing(image: Path, stack: Path, models):
    before = _listing(image)
    lines: list[str] = []
    stats = run(RunConfig(input=stack, output=image, cluster="sync", dry_run=True,
                          model=models["pointwise"]), log=lines.append)
    assert stats.blocks_total > 0 and stats.blocks_done == 0
    assert any("a real run would stop: output exists" in line for line in lines)
    assert _listing(image) == before


def test_a_dry_run_says_a_finished_output_is_complete(image: Path, stack: Path):
    lines: list[str] = []
    convert(ConvertConfig(input=stack, output=image, cluster="sync", dry_run=True,
                          resume=True), log=lines.append)
    assert any("is complete: a real run has nothing to do" in line for line in lines)


@pytest.mark.parametrize("command", ["run", "convert"])
def test_the_dry_run_flag_on_an_existing_output_exits_0_and_writes_nothing(
        image: Path, stack: Path, models, cli, command):
    before = _listing(image)
    extra = ["--model", models["pointwise"]] if command == "run" else []
    code, _, err = cli(command, stack, image, "--dry-run", "--cluster", "sync", *extra)
    assert code == 0, err
    assert "a real run would stop: output exists" in err and "dry run: nothing was written" in err
    assert "data file(s)" in err  # the plan's tasks, levels and files
    assert _listing(image) == before


def test_no_module_is_named_after_a_step_instead_of_what_it_holds():
    """The bundled model files live in ``bundled/``; a block's stored voxels in
    ``stored_voxels``."""
    assert (PACKAGE / "bundled" / "pssr-em-x4.safetensors").is_file()
    assert not (PACKAGE / "models").exists() and not (PACKAGE / "finish.py").exists()
