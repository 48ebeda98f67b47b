"""ONNX weights for a bioimage.io package, where torch's ONNX exporter can run.

torch's exporter needs the ``onnx`` and ``onnxscript`` packages, which pssr-volume does not
require: without them the package has no ONNX weights, and the reason is reported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

OPSET = 18


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path
                ) -> tuple[int, str | None]:
    """Export ``module`` with dynamic batch, y and x sizes; returns ``(opset, None)``, or
    ``(0, reason)`` when it cannot be exported here."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        return 0, f"the {' and '.join(missing)} package(s) are not installed"
    batch = torch.export.Dim("batch", min=1)
    names = ["raw", "noise_model"][: len(example)]
    grid_y, grid_x = (torch.export.Dim.AUTO, torch.export.Dim.AUTO)
    shapes: list[dict[int, object]] = [{0: batch, 2: grid_y, 3: grid_x}]
    if len(example) == 2:  # noise_model: raw's batch, y and x
        shapes.append({0: batch, 2: grid_y, 3: grid_x})
    try:  # the exporter prints its progress and warns about naming: neither is for users
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), \
                _quiet("torch.onnx"):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(path), input_names=names,
                              output_names=["restored", "noise_map"][: len(example)],
                              opset_version=OPSET, verbose=False, dynamic_shapes=tuple(shapes),
                              dynamo=True, external_data=False)
    except Exception as e:  # the exporter raises many kinds; the package is fine without it
        return 0, f"torch.onnx.export failed: {str(e).strip().splitlines()[0][:200]}"
    return OPSET, None
