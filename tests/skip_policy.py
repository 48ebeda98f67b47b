"""CI's rule on skipped tests: with ``PSSR_NO_SKIPS=1`` in the environment (``.ci/run`` sets
it), a session that skipped anything other than a GPU test fails, naming each such skip
and its reason.

A GPU test is one marked ``gpu`` (it needs a CUDA device this machine may lack); on a
machine that has a GPU, a test that skips because one is present (its reason names the
GPU) is allowed too. Every other skip, a test's or a whole module's (a missing optional
dependency, a data folder not found, a server that cannot start), means that part of the
suite did not run: without the variable it is only listed, like ``-rs`` does.
"""

from __future__ import annotations

import os

import pytest

from pssr_volume.device import gpu_count

ENV = "PSSR_NO_SKIPS"


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


class SkipPolicy:
    """Collects the skips that are not GPU ones; fails the session on them if enforced."""

    def __init__(self, enforce: bool):
        self.enforce = enforce
        self.refused: list[tuple[str, str]] = []  # (test or module, reason)
        self.gpu_tests: set[str] = set()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.gpu_tests |= {item.nodeid for item in items if item.get_closest_marker("gpu")}

    def allowed(self, report: pytest.TestReport | pytest.CollectReport) -> bool:
        if report.nodeid in self.gpu_tests:
            return True
        return "GPU" in _reason(report) and gpu_count() > 0

    def note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail") and not self.allowed(report):
            self.refused.append((report.nodeid, _reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.note(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.enforce and self.refused and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.refused:
            return
        verdict = "the run fails" if self.enforce else f"allowed: {ENV} is not set"
        terminalreporter.section(f"skips other than GPU ones ({verdict})", sep="=",
                                 red=self.enforce, yellow=not self.enforce)
        for where, reason in self.refused:
            terminalreporter.line(f"{where}: {reason}")


def register(config: pytest.Config) -> None:
    """Install the policy (from conftest's ``pytest_configure``)."""
    config.pluginmanager.register(SkipPolicy(os.environ.get(ENV) == "1"), "pssr-skip-policy")
