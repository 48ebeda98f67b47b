"""The done-journal: append-only, per process, torn lines ignored."""

import pytest

from pssr_volume.io.journal import Journal


def test_marks_are_seen_by_a_fresh_reader(tmp_path):
    j = Journal(tmp_path)
    assert j.done() == set()
    j.mark("block 0.0.0")
    j.mark("block 0.0.1")
    assert Journal(tmp_path).done() == {"block 0.0.0", "block 0.0.1"}


def test_torn_last_line_and_other_processes(tmp_path):
    j = Journal(tmp_path)
    j.mark("block 1.2.3")
    (j.dir / "other-host-99-abc.log").write_text("block 9.9.9\nblock 9.9")  # killed mid-write
    assert j.done() == {"block 1.2.3", "block 9.9.9"}


def test_keys_are_single_lines(tmp_path):
    with pytest.raises(ValueError):
        Journal(tmp_path).mark("a\nb")
