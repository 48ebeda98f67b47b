"""The words of a bioimage.io package: its one-paragraph description, each tensor's
description, and the documentation (a preamble on using the package, then the model card)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from pssr_volume import __version__
from pssr_volume.bioimage.provenance import model_license, training_datasets
from pssr_volume.bioimage.tensors import TestSample
from pssr_volume.bundled import BUNDLED, bundled_model_path
from pssr_volume.model import ModelInfo
from pssr_volume.noise import NOISE_GAIN


def _inputs(info: ModelInfo) -> str:
    k = info.config.in_slices
    return "one section" if k == 1 else f"{k} adjacent sections (the centre one is restored)"


def summary(info: ModelInfo) -> str:
    """The rdf's ``description`` (under 512 characters)."""
    c = info.config
    px = c.pixel_size_nm
    at = f", trained at {px[0]:g}-{px[1]:g} nm output pixels" if px else ""
    noise = "; noise-aware: give the input's noise model (a, b)" if c.noise_input else ""
    return (f"x{c.scale} super-resolution (y, x) of electron micrographs, PSSR-style "
            f"({c.architecture}): {_inputs(info)} in{at}{noise}. Exported by pssr-volume "
            f"{__version__}.")[:500]


def tensor_text(info: ModelInfo) -> dict[str, str]:
    """Each tensor's ``description`` (at most 128 characters each)."""
    norm = info.config.normalization
    scaled = (f"percentiles {norm.low:g}/{norm.high:g} -> 0/1" if norm.mode == "percentile"
              else f"{norm.low:g}/{norm.high:g} -> 0/1")
    return {
        "raw": f"low-resolution EM, {_inputs(info)}; grey levels, normalised in preprocessing "
               f"({scaled})"[:128],
        "noise": "per pixel, noise variance a + b*I of raw at normalised intensity I (0..1): "
                 "a, b >= 0; constant images of the estimate"[:128],
        "noise_map": f"the noise map the network was given: {NOISE_GAIN:g} x noise std of the "
                     "normalised centre section"[:128],
        "restored": f"x{info.config.scale} restoration of the centre section, normalised like "
                    "raw: grey = restored * (hi - lo) + lo"[:128],
    }


def model_card(info: ModelInfo, path: Path) -> str | None:
    """The bundled model card of a bundled model file, else None."""
    name = info.config.name
    if name not in BUNDLED or path.resolve() != bundled_model_path(name).resolve():
        return None
    return files("pssr_volume.bundled").joinpath(f"{name}.md").read_text()


def _noise_section(info: ModelInfo, sample: TestSample) -> str:
    if not info.config.noise_input:
        return ""
    a, b = sample.noise or (0.0, 0.0)
    return f"""
### The noise model (`noise_model`) and the noise map (`noise_map`)

The network is noise-aware: besides the sections it takes their noise level, as the noise
variance `a + b * I` at intensity `I` (intensities normalised like `raw`: the percentiles above
map to 0 and 1). `noise_model` holds `a` and `b` as two channels of images the size of `raw`
(per pixel; for one volume's estimate, constant images: `np.full`). The network makes its noise
map from them itself, `{NOISE_GAIN:g} * sqrt(a + b * m)` with `m` the 3x3 mean of the normalised
centre section (the function `noise_map` in `pssr_network.py`), and returns it as the second
output, `noise_map`. (Images rather than two numbers, and the second output, are there so that
bioimageio.core's blockwise prediction cuts both inputs into the same blocks with the same halo.)

`pssr-volume run` estimates `a, b` once per volume and prints them (`pssr-volume info OUTPUT`
shows them later); `pssr_volume.noise.estimate_noise` does it for one image. For the test input,
`a = {a:.6g}`, `b = {b:.6g}`. `0, 0` tells the network that the input is noise-free: it then
restores without denoising.
"""


def documentation(info: ModelInfo, sample: TestSample, path: Path) -> str:
    """The package's ``README.md``."""
    c = info.config
    halo = max(info.default_halo)
    known, unknown = training_datasets(c)
    data = "\n".join(f"- {d.name}: {d.terms}. Cite: {d.citation}, doi:{d.doi}." for d in known)
    data += "".join(f"\n- `{u}` (as the model file names it)" for u in unknown)
    licence = model_license(c)
    card = model_card(info, path)
    z = ("" if c.in_slices == 1 else
         f" The `z` axis holds {c.in_slices} adjacent sections; give a volume's sections "
         "in a sliding window to restore all of them.")
    return f"""# {c.name}: a pssr-volume model as a bioimage.io package

{summary(info)}

Made by `pssr-volume export-model {c.name} OUT.zip` (pssr-volume {__version__}). The weights are
those of the model file (sha256 `{info.sha256}`); `pssr_network.py` is the network's own source
in one file (it needs torch only).

## Inputs and outputs

- `raw`: {_inputs(info)}, grey levels. Preprocessing normalises them as the model was trained:
  {tensor_text(info)["raw"].split("(")[-1].rstrip(")")} over the whole image.{z}
- `restored`: the centre section, x{c.scale} in y and x, float32 in normalised units: multiply
  by `hi - lo` and add `lo` (the intensities the normalisation mapped to 1 and 0) to get grey
  levels.
- Tiling: the output halo is {halo * c.scale} pixels ({halo} input pixels, the network's
  receptive field rounded up to its grid of {info.grid}); inputs are padded by reflection at
  the image border, as `pssr-volume run` pads a volume. y and x are multiples of {info.grid}.
{_noise_section(info, sample)}
## Validation

`bioimageio test` reproduces the test output from the test input (pssr-volume's own inference
in float32 made them, from a synthetic demo tile). On the tile's core, beyond the halo, that
output equals `pssr-volume run` of the test input within 1 grey level (a test of pssr-volume
checks it). Quality on real hold-out data: the model card below (hold-out metrics).

## Training data and licence

{data or "- not recorded in the model file"}

Licence of this package: {licence or "not stated (see the training data above)"}; the training
data's terms apply to the model. pssr-volume's code is BSD-3-Clause.

---

{card or c.description or "(no model card)"}
"""
