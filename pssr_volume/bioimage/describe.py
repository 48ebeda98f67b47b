"""The bioimage.io model description (spec format 0.5) of a pssr-volume model, as
bioimageio.spec's own models.

Tensors (``docs/FORMATS.md``, section "bioimage.io"):

* ``raw``: the low-resolution sections, ``(batch, channel, y, x)`` for a one-section model,
  ``(batch, z, y, x)`` with ``z`` = ``in_slices`` adjacent sections for a 2.5-D one; y and x
  on the network's grid, at least twice the halo plus one grid step. Preprocessing: the
  model's normalisation in the spec's terms (``scale_range`` over the percentiles, or
  ``scale_linear`` for a fixed range); padding ``reflect``, as ``run`` pads a volume's border.
* ``noise_model`` (noise-aware models only): ``(batch, channel, y, x)``, y and x as
  ``raw``'s (the spec lets an output refer only to an axis of its own size), channels ``a,
  b``, the noise variance ``a + b * I`` of ``raw`` at normalised intensity ``I`` per pixel
  (constant images of a volume's estimate); the network makes its noise map from it
  (:func:`pssr_volume.bioimage.source.noise_map`). Images rather than two numbers, so that
  bioimageio.core can cut it into blocks with ``raw`` (it does not repeat an unsplit input).
* ``noise_map`` (noise-aware models only): the noise channel the network was given, at the
  input's size. It is there so that bioimageio.core's blockwise prediction gives
  ``noise_model`` the same halo as ``raw``: core derives an input's halo only from an output
  whose size refers to it (bioimageio.core 0.11), and without it the two inputs' blocks differ.
* ``restored``: ``(batch, channel, scale * y, scale * x)`` float32 in normalised units, with
  the halo (``scale`` x the input halo) to crop when tiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from bioimageio.spec.model.v0_5 import (
    ArchitectureFromFileDescr,
    Author,
    AxisId,
    BatchAxis,
    BioimageioConfig,
    ChannelAxis,
    CiteEntry,
    Config,
    Doi,
    EnsureDtypeDescr,
    EnsureDtypeKwargs,
    FileDescr,
    InputTensorDescr,
    IntervalOrRatioDataDescr,
    ModelDescr,
    OnnxWeightsDescr,
    OutputTensorDescr,
    ParameterizedSize,
    PytorchStateDictWeightsDescr,
    ReflectPadding,
    ScaleLinearDescr,
    ScaleLinearKwargs,
    ScaleRangeDescr,
    ScaleRangeKwargs,
    SizeReference,
    SpaceInputAxis,
    SpaceOutputAxisWithHalo,
    TensorId,
    TorchscriptWeightsDescr,
    TrainingDetails,
    Version,
    WeightsDescr,
)

from pssr_volume import __version__
from pssr_volume.bioimage.provenance import PSSR_CITATION, model_license, training_datasets
from pssr_volume.bioimage.source import CALLABLE, network_kwargs
from pssr_volume.model import ModelInfo

RAW, NOISE, RESTORED = TensorId("raw"), TensorId("noise_model"), TensorId("restored")
NOISE_MAP = TensorId("noise_map")
Y, X = AxisId("y"), AxisId("x")


@dataclass(frozen=True)
class WeightFiles:
    """The weights' files: the network's source, state dict, TorchScript and ONNX (if made)."""

    source: str
    state_dict: str
    torchscript: str
    onnx: str | None = None
    onnx_opset: int = 0


@dataclass(frozen=True)
class TensorFiles:
    """The test tensors (.npy) and the sample tensors (TIFF) of each tensor; the noise ones
    for noise-aware models only."""

    test_raw: str
    test_restored: str
    sample_raw: str
    sample_restored: str
    test_noise: str | None = None
    test_noise_map: str | None = None
    sample_noise: str | None = None
    sample_noise_map: str | None = None


@dataclass(frozen=True)
class PackageFiles:
    """The files of a package, relative to the folder the description is validated in."""

    weights: WeightFiles
    tensors: TensorFiles
    cover: str
    documentation: str


def pixel_size_nm(info: ModelInfo) -> float | None:
    """The output pixel size the rdf states: the geometric mean of the trained range, to a
    quarter nanometre (a binary fraction: the spec's halo check divides scales exactly)."""
    px = info.config.pixel_size_nm
    return None if px is None else max(0.25, round(4 * math.sqrt(px[0] * px[1])) / 4)


def _file(name: str | None) -> FileDescr | None:
    return None if name is None else FileDescr(source=Path(name))


def _space(scale: float | None) -> dict[str, Any]:
    return {} if scale is None else {"scale": scale, "unit": "nanometer"}


def _preprocessing(info: ModelInfo, axes: list[AxisId]) -> list[Any]:
    norm = info.config.normalization
    f32 = EnsureDtypeDescr(kwargs=EnsureDtypeKwargs(dtype="float32"))
    if norm.mode == "percentile":
        op: Any = ScaleRangeDescr(kwargs=ScaleRangeKwargs(
            axes=axes, min_percentile=norm.low, max_percentile=norm.high, eps=1e-6))
    else:
        gain = 1.0 / (norm.high - norm.low)
        op = ScaleLinearDescr(kwargs=ScaleLinearKwargs(gain=gain, offset=-norm.low * gain))
    return [f32, op, f32]


def tensors(info: ModelInfo, files: PackageFiles, description: dict[str, str]
            ) -> tuple[list[InputTensorDescr], list[OutputTensorDescr]]:
    """The input and output tensor descriptions (module docstring)."""
    c = info.config
    halo = max(info.default_halo)
    px = pixel_size_nm(info)
    in_px = None if px is None else px * c.scale
    size = ParameterizedSize(min=2 * halo + info.grid, step=info.grid)
    # the output's first axis is a channel even for a 2.5-D model: bioimageio.core 0.11's
    # blockwise prediction drops an output without a channel axis (get_block_transform)
    lead_out = ChannelAxis(channel_names=["restored"])
    if c.in_slices == 1:
        lead_in: Any = ChannelAxis(channel_names=["section"])
    else:
        z = {} if c.section_spacing_nm is None else _space(c.section_spacing_nm)
        lead_in = SpaceInputAxis(id=AxisId("z"), size=c.in_slices, **z,
                                 description="adjacent sections; the centre one is restored")
    raw_axes = [BatchAxis(), lead_in, SpaceInputAxis(id=Y, size=size, **_space(in_px)),
                SpaceInputAxis(id=X, size=size, **_space(in_px))]
    f32 = IntervalOrRatioDataDescr(type="float32")
    inputs = [InputTensorDescr(
        id=RAW, description=description["raw"], axes=raw_axes, data=f32,
        test_tensor=FileDescr(source=Path(files.tensors.test_raw)),
        sample_tensor=FileDescr(source=Path(files.tensors.sample_raw)),
        pad=ReflectPadding(mode="reflect"),
        preprocessing=_preprocessing(info, [a.id for a in raw_axes[1:]]))]
    if c.noise_input:
        assert files.tensors.test_noise is not None  # written for every noise-aware model
        inputs.append(InputTensorDescr(
            id=NOISE, description=description["noise"],
            axes=[BatchAxis(), ChannelAxis(channel_names=["a", "b"])] + [
                SpaceInputAxis(id=a, size=size, **_space(in_px)) for a in (Y, X)],
            data=f32, pad=ReflectPadding(mode="reflect"),
            test_tensor=FileDescr(source=Path(files.tensors.test_noise)),
            sample_tensor=_file(files.tensors.sample_noise)))
    out_halo = halo * c.scale
    outputs = [OutputTensorDescr(
        id=RESTORED, description=description["restored"], data=f32,
        test_tensor=FileDescr(source=Path(files.tensors.test_restored)),
        sample_tensor=FileDescr(source=Path(files.tensors.sample_restored)),
        axes=[BatchAxis(), lead_out] + [
            SpaceOutputAxisWithHalo(id=a, size=SizeReference(tensor_id=RAW, axis_id=a),
                                    halo=out_halo, **_space(px)) for a in (Y, X)])]
    if c.noise_input:
        assert files.tensors.test_noise_map is not None  # written for every noise-aware model
        outputs.append(OutputTensorDescr(
            id=NOISE_MAP, description=description["noise_map"], data=f32,
            test_tensor=FileDescr(source=Path(files.tensors.test_noise_map)),
            sample_tensor=_file(files.tensors.sample_noise_map),
            axes=[BatchAxis(), ChannelAxis(channel_names=["noise"])] + [
                SpaceOutputAxisWithHalo(id=a, size=SizeReference(tensor_id=NOISE, axis_id=a),
                                        halo=halo, **_space(in_px)) for a in (Y, X)]))
    return inputs, outputs


def weights(info: ModelInfo, files: WeightFiles) -> WeightsDescr:
    """The state dict with its architecture's source, TorchScript and, if made, ONNX."""
    torch_version = Version(torch.__version__.split("+")[0])
    arch = ArchitectureFromFileDescr(source=Path(files.source), callable=CALLABLE,
                                     kwargs=network_kwargs(info.config))
    onnx = None
    if files.onnx is not None:
        onnx = OnnxWeightsDescr(source=Path(files.onnx), opset_version=files.onnx_opset,
                                parent="pytorch_state_dict")
    return WeightsDescr(
        pytorch_state_dict=PytorchStateDictWeightsDescr(
            source=Path(files.state_dict), architecture=arch, pytorch_version=torch_version),
        torchscript=TorchscriptWeightsDescr(source=Path(files.torchscript),
                                            pytorch_version=torch_version,
                                            parent="pytorch_state_dict"),
        onnx=onnx)


def _cite(info: ModelInfo) -> list[CiteEntry]:
    known, _ = training_datasets(info.config)
    entries = [PSSR_CITATION] + [(d.citation, d.doi) for d in known]
    return [CiteEntry(text=text, doi=Doi(doi)) for text, doi in entries]


def model_description(info: ModelInfo, files: PackageFiles, summary: str,
                      tensor_text: dict[str, str], extra: dict[str, Any]) -> ModelDescr:
    """The whole description. Validate it inside a ``ValidationContext`` rooted at the folder
    that holds ``files``."""
    c = info.config
    inputs, outputs = tensors(info, files, tensor_text)
    training = c.training
    n_params = extra.get("parameters")
    name = c.name if len(c.name) >= 5 else f"pssr-volume {c.name}"
    return ModelDescr(
        name=name[:64],
        description=summary,
        authors=[Author(name="pssr-volume developers")],
        packaged_by=[Author(name=f"pssr-volume {__version__} export-model")],
        cite=_cite(info),
        license=model_license(c),
        tags=["super-resolution", "electron-microscopy", "pssr", "pytorch", "denoising",
              "2d" if c.in_slices == 1 else "2.5d"],
        documentation=FileDescr(source=Path(files.documentation)),
        covers=[FileDescr(source=Path(files.cover))],
        inputs=inputs,
        outputs=outputs,
        weights=weights(info, files.weights),
        config=Config(
            bioimageio=BioimageioConfig(
                architecture_type=c.architecture,
                modality="electron microscopy",
                task="super-resolution",
                model_parameter_count=n_params,
                training=TrainingDetails(
                    training_batch_size=training.get("batch_size"),
                    initial_learning_rate=training.get("lr"),
                    loss_function=training.get("loss"),
                    optimizer="torch.optim.AdamW",
                    training_preprocessing="crappified on the fly (pssr_volume.crappify)",
                )),
            pssr_volume=extra["pssr_volume"]),
    )
