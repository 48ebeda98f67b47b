"""``pssr-volume export-model``: write a model as a bioimage.io model package (a zip).

Steps, in order:

1. check OUTPUT (a ``.zip``; an existing one only with ``--overwrite`` and only if it is a
   bioimage.io package; its folder must exist and be writable) and load the model;
2. write the network's standalone source (:mod:`.source`), import it apart from pssr_volume,
   load the model's weights into it (strict) and save its state dict and TorchScript (and
   ONNX where the exporter is installed) from that very module;
3. make the test tensors and the cover with pssr_volume's own inference (:mod:`.tensors`);
4. write the documentation (a preamble on the tensors, then the model card), describe it all
   with bioimageio.spec's models (:mod:`.describe`), and let bioimageio.spec write the zip next
   to OUTPUT, then move it into place: OUTPUT is whole or untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch

from pssr_volume.bioimage.checks import check_export
from pssr_volume.bioimage.config import ExportModelConfig
from pssr_volume.bioimage.describe import PackageFiles, TensorFiles, WeightFiles
from pssr_volume.bioimage.documentation import documentation, summary, tensor_text
from pssr_volume.bioimage.onnx_export import export_onnx
from pssr_volume.bioimage.source import load_packaged, standalone_source
from pssr_volume.bioimage.tensors import TestSample, make_test_sample, write_cover
from pssr_volume.errors import PssrError
from pssr_volume.model import ModelInfo, load_model, model_info


@dataclass(frozen=True)
class ExportSummary:
    """What was written: the package, its weight formats and the test tile's shape."""

    output: Path
    weight_formats: tuple[str, ...]
    test_shape: tuple[int, ...]
    megabytes: float

    def line(self) -> str:
        """What the command prints when it is done."""
        return (f"wrote {self.output}: {', '.join(self.weight_formats)}, test tile "
                f"{'x'.join(map(str, self.test_shape))}, {self.megabytes} MB")


def _example(packaged: torch.nn.Module, sample: TestSample) -> tuple[torch.Tensor, ...]:
    raw = torch.from_numpy(((sample.raw.astype(np.float32) - np.float32(sample.lo))
                            / np.float32(sample.hi - sample.lo))[None])
    if sample.noise is None:
        return (raw,)
    return raw, torch.from_numpy(sample.noise_images())


def _write_weights(info: ModelInfo, sample: TestSample, tmp: Path, onnx: bool,
                   log: Callable[[str], None]) -> tuple[WeightFiles, int]:
    """Source, state dict, TorchScript and (optionally) ONNX, all from the packaged module;
    and its number of parameters."""
    _, module = load_model(info.path)
    source = standalone_source(info.config)
    (tmp / "pssr_network.py").write_text(source)
    packaged = load_packaged(source, info.config)
    packaged.load_state_dict(module.state_dict(), strict=True)
    packaged.eval()
    torch.save(packaged.state_dict(), tmp / "weights.pt")
    example = _example(packaged, sample)
    with torch.no_grad():
        traced = torch.jit.trace(packaged, example, check_trace=False)
    traced.save(str(tmp / "weights_torchscript.pt"))
    files = WeightFiles("pssr_network.py", "weights.pt", "weights_torchscript.pt")
    if onnx:
        opset, reason = export_onnx(packaged, example, tmp / "weights.onnx")
        if reason is None:
            files = dataclasses.replace(files, onnx="weights.onnx", onnx_opset=opset)
        else:
            log(f"note: no ONNX weights: {reason}")
    return files, sum(p.numel() for p in packaged.parameters())


def _test_tensors(sample: TestSample, tmp: Path) -> TensorFiles:
    """The test tensors (.npy, as the tensors are) and the sample tensors (TIFF: the test
    input and its restoration in grey levels, for people and viewers)."""
    np.save(tmp / "test_raw.npy", sample.raw.astype(np.float32)[None])
    np.save(tmp / "test_restored.npy", sample.restored[None, None])
    tifffile.imwrite(tmp / "sample_raw.tif", np.squeeze(sample.raw))
    tifffile.imwrite(tmp / "sample_restored.tif", sample.restored_grey)
    files = TensorFiles("test_raw.npy", "test_restored.npy", "sample_raw.tif",
                        "sample_restored.tif")
    if sample.noise is None or sample.noise_channel is None:
        return files
    np.save(tmp / "test_noise_model.npy", sample.noise_images())
    np.save(tmp / "test_noise_map.npy", sample.noise_channel[None, None])
    tifffile.imwrite(tmp / "sample_noise_model.tif", sample.noise_images()[0])
    tifffile.imwrite(tmp / "sample_noise_map.tif", sample.noise_channel)
    return dataclasses.replace(files, test_noise="test_noise_model.npy",
                               test_noise_map="test_noise_map.npy",
                               sample_noise="sample_noise_model.tif",
                               sample_noise_map="sample_noise_map.tif")


@contextlib.contextmanager
def _quiet_loguru() -> Iterator[None]:
    """bioimageio.spec logs through loguru to stderr; one line per error is ours to print."""
    from loguru import logger

    logger.disable("bioimageio")
    try:
        yield
    finally:
        logger.enable("bioimageio")


def export_model(config: ExportModelConfig, log: Callable[[str], None] = lambda s: None
                 ) -> ExportSummary:
    """Write MODEL as a bioimage.io package at OUTPUT (module docstring: the steps)."""
    out, path = check_export(config)
    info = model_info(path)
    from bioimageio.spec import ValidationContext, save_bioimageio_package
    from pydantic import ValidationError

    from pssr_volume.bioimage.describe import model_description

    log(f"making the test tensors of {info.config.name} with pssr_volume's inference")
    sample = make_test_sample(info)
    with tempfile.TemporaryDirectory(prefix="pssr-export-") as folder:
        tmp = Path(folder)
        weight_files, n_params = _write_weights(info, sample, tmp, config.onnx, log)
        write_cover(sample, info.config.scale, tmp / "cover.png")
        (tmp / "README.md").write_text(documentation(info, sample, path))
        files = PackageFiles(weight_files, _test_tensors(sample, tmp), "cover.png", "README.md")
        extra = {"parameters": n_params, "pssr_volume": _record(info, sample)}
        partial = out.with_name(f".{out.name}.partial")
        try:
            with _quiet_loguru(), ValidationContext(root=tmp, perform_io_checks=True):
                descr = model_description(info, files, summary(info), tensor_text(info), extra)
                save_bioimageio_package(descr, output_path=partial)
            os.replace(partial, out)
        except ValidationError as e:
            first = e.errors()[0]
            raise PssrError(f"the bioimage.io description of {info.config.name} is invalid: "
                            f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        except OSError as e:
            raise PssrError(f"cannot write {out}: {e.strerror or e}") from None
        finally:
            partial.unlink(missing_ok=True)
    formats = ("pytorch_state_dict", "torchscript") + (("onnx",) if weight_files.onnx else ())
    return ExportSummary(out, formats, sample.raw.shape, round(out.stat().st_size / 1e6, 1))


def _record(info: ModelInfo, sample: TestSample) -> dict[str, object]:
    """``config.pssr_volume``: the model file's header and what the test tensors were made
    with, so the package can be traced back and its test reproduced with ``run``."""
    from pssr_volume.bioimage.provenance import training_record
    from pssr_volume.model import describe

    return {
        "model": describe(info),
        "training": training_record(info.config),
        "validation": info.config.metrics,
        "test_tensors": {"source": "pssr-volume demo (synthetic neuropil, seed 0)",
                         "intensity_range": [sample.lo, sample.hi],
                         "noise_model": None if sample.noise is None else list(sample.noise),
                         "halo": list(info.default_halo), "precision": "float32"},
    }
