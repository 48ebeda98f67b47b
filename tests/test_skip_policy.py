"""CI's rule on skips (tests/skip_policy.py), on a small suite run by a real pytest process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SUITE = {
    "conftest.py": "import skip_policy\n\n\ndef pytest_configure(config):\n"
                   "    skip_policy.register(config)\n",
    "test_gpu.py": "import pytest\n\n\n@pytest.mark.gpu\n"
                   "def test_on_a_gpu():\n    pytest.skip('needs a CUDA GPU')\n",
    "test_runs.py": "def test_runs():\n    assert True\n",
}
OTHERS = {
    "test_missing.py": "import pytest\n\n\ndef test_needs_a_server():\n"
                       "    pytest.skip('no widget server here')\n",
    "test_module.py": "import pytest\n\npytest.importorskip('no_such_module_pssr')\n\n\n"
                      "def test_never_collected():\n    pass\n",
    "test_marked.py": "import pytest\n\n\n@pytest.mark.skipif(True, reason='data not present')\n"
                      "def test_data():\n    pass\n",
}


def run_suite(folder: Path, files: dict[str, str], enforce: bool
              ) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a CUDA device\n")
    env = {k: v for k, v in os.environ.items() if k != "PSSR_NO_SKIPS"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent)])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the policy alone, no installed plugins
    if enforce:
        env["PSSR_NO_SKIPS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(folder)], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)


def test_gpu_skips_pass_under_the_policy(tmp_path):
    done = run_suite(tmp_path, SUITE, enforce=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED [1] test_gpu.py" in done.stdout and "other than GPU" not in done.stdout


@pytest.mark.parametrize("enforce", [True, False])
def test_other_skips_fail_the_session_only_under_the_policy(tmp_path, enforce):
    done = run_suite(tmp_path, {**SUITE, **OTHERS}, enforce)
    out = done.stdout
    assert done.returncode == (1 if enforce else 0), out + done.stderr
    listed = out[out.index("skips other than GPU ones"):].splitlines()[1:4]
    assert sorted(line.split(":")[0].split("::")[0] for line in listed) == [
        "test_marked.py", "test_missing.py", "test_module.py"]
    assert any("no widget server here" in line for line in listed)
    assert any("could not import 'no_such_module_pssr'" in line for line in listed)
    assert not any("test_gpu" in line for line in listed)
    assert ("the run fails" in out) is enforce
    assert "3 passed" not in out and "1 passed, 4 skipped" in out
