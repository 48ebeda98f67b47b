"""The finishing pass as one compiled loop (pssr_volume/fused_finish.py) makes the numpy
path's bytes: stored voxels, the first pooled level and the consistency cell sums."""

from __future__ import annotations

import numpy as np
import pytest

from pssr_volume import fused_finish
from pssr_volume import stored_voxels as stored_voxels_module
from pssr_volume.stored_voxels import stored_voxels


def _awkward(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Network outputs with what rounding and clipping must get right: values that map to
    exact halves of a grey level (lo 0, hi 2: v * 2 + 0), far out of range, NaN and
    infinities."""
    rng = np.random.default_rng(seed)
    v = rng.normal(0.5, 0.6, size=shape).astype(np.float32) * 200
    flat = v.reshape(-1)
    flat[::5] = rng.integers(-80_000, 80_000, size=flat[::5].shape) / 4  # k/4: halves after x2
    flat[::11], flat[::13], flat[::17] = np.nan, np.inf, -np.inf
    return v


def _numpy_path(values, lo, hi, dtype, factors, cell, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(fused_finish, "finish", lambda *a: None)
        return stored_voxels(values, lo, hi, dtype, factors, cell)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("factors", [None, (1, 2, 2)])
@pytest.mark.parametrize("cell", [0, 2, 4, 8])
def test_the_compiled_loop_makes_the_numpy_paths_bytes(dtype, factors, cell, monkeypatch):
    values = _awkward((3, 48, 80), len(dtype) + cell)
    # the whole array, a cropped view (rows contiguous, not the array), one section
    for view in (values, values[:, 8:40, 16:72], values[1:2, :16, :48]):
        got = fused_finish.finish(view, 0.0, 2.0, np.dtype(dtype), factors, cell)
        assert got is not None, view.shape
        want = _numpy_path(view, 0.0, 2.0, dtype, factors, cell, monkeypatch)
        for a, b in zip(got, want):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == b.dtype and np.array_equal(a, b), (view.shape, a.dtype)


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
@pytest.mark.parametrize("factors", [None, (1, 2, 2)])
@pytest.mark.parametrize("cell", [0, 2, 4])
def test_voxels_rounded_on_a_gpu_are_pooled_and_summed_as_numpy_does(dtype, factors, cell,
                                                                      monkeypatch):
    info = np.iinfo(dtype)
    voxels = np.random.default_rng(cell).integers(info.min, info.max, size=(3, 48, 80),
                                                  dtype=dtype, endpoint=True)
    for view in (voxels, voxels[:, 8:40, 16:72]):
        got = fused_finish.finish(view, 0.0, 2.0, np.dtype(dtype), factors, cell)
        if factors is None and not cell:
            assert got is None  # nothing to do: stored_voxels hands them back
            continue
        want = _numpy_path(view, 0.0, 2.0, dtype, factors, cell, monkeypatch)
        assert got is not None and np.array_equal(got[0], view)
        for a, b in zip(got, want):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize(("shape", "dtype", "factors", "cell", "why"), [
    ((2, 16, 16), "float32", (1, 2, 2), 4, "float voxels: no rounding"),
    ((2, 16, 16), "int32", (1, 2, 2), 4, "32-bit voxels: float64 arithmetic"),
    ((2, 16, 16), "uint8", (2, 2, 2), 4, "pooled in z too"),
    ((2, 18, 18), "uint8", (1, 2, 2), 3, "an odd cell"),
    ((2, 15, 16), "uint8", (1, 2, 2), 0, "an odd height: the last pooled row is padded"),
])
def test_other_cases_stay_on_the_numpy_path_with_the_same_bytes(shape, dtype, factors, cell,
                                                                 why, monkeypatch):
    values = _awkward(shape, 7)
    assert fused_finish.finish(values, 0.0, 2.0, np.dtype(dtype), factors, cell) is None, why
    got = stored_voxels(values, 0.0, 2.0, dtype, factors, cell)
    want = _numpy_path(values, 0.0, 2.0, dtype, factors, cell, monkeypatch)
    for a, b in zip(got, want):
        assert (a is None and b is None) or np.array_equal(a, b, equal_nan=True)


def test_the_default_block_takes_the_compiled_loop(monkeypatch):
    """A x4 restoration to uint8 with a 1 x 2 x 2 pyramid, what a default run finishes (its
    4096-wide blocks, here narrower), whole or cropped out of a prediction with a halo:
    stored_voxels hands it to the compiled loop, which takes it."""
    taken, finish = [], fused_finish.finish

    def spy(*args):
        taken.append(finish(*args) is not None)
        return None  # and the numpy path does the rest

    monkeypatch.setattr(stored_voxels_module.fused_finish, "finish", spy)
    values = np.random.default_rng(0).random((2, 64, 96), dtype=np.float32)
    for view in (values, values[:, 8:56, 16:80]):
        stored_voxels(view, 10.0, 200.0, "uint8", (1, 2, 2), 4)
    assert taken == [True, True]
