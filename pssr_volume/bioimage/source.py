"""A network's Python source as one standalone file, for a bioimage.io package.

A bioimage.io ``pytorch_state_dict`` weights entry names one source file, a callable in it and
its keyword arguments; bioimageio.core imports that file on a machine without pssr_volume. The
file is written from the real sources, not retyped:

1. the architecture's module of :mod:`pssr_volume.nets` (e.g. ``nets/fast.py``), verbatim,
   except that its imports from :mod:`pssr_volume.nets.registry` are replaced, in place, by the
   source of the registry helpers it uses (``conv``, ``icnr_``, ``centre_slice``; verbatim, by
   :func:`inspect.getsource`) and a no-op ``register`` decorator;
2. :func:`noise_map` (verbatim): the noise channel of a noise-aware model in torch, the same
   numbers as :func:`pssr_volume.noise.network_input` makes for the engine;
3. ``PackagedNetwork``: the architecture's class with the package's inputs, ``forward(raw,
   noise_model)``, returning the restoration and (noise-aware) the noise map it made; it adds
   no parameters, so its state dict is the model file's.

An architecture that imports anything else of pssr_volume cannot be packaged (one error line).
"""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pssr_volume.config import ModelConfig
from pssr_volume.errors import PssrError
from pssr_volume.nets import registry
from pssr_volume.nets.registry import architectures
from pssr_volume.noise import NOISE_GAIN

CALLABLE = "PackagedNetwork"
"""The name of the packaged network class in the source file (the rdf's ``callable``)."""


def noise_map(raw: torch.Tensor, noise_model: torch.Tensor, in_slices: int) -> torch.Tensor:
    """The noise channel of a noise-aware network, made inside the network.

    ``NOISE_GAIN * sqrt(max(a + b * m, 0))``, where ``m`` is the 3x3 mean (edge-padded) of the
    centre section of the normalised input ``raw`` ``(n, in_slices, y, x)`` and ``a, b`` are
    the channels of ``noise_model`` ``(n, 2, y, x)``: the noise variance ``a + b * I`` at
    normalised intensity ``I``, per pixel (constant images for a volume's estimate). Returns
    ``(n, 1, y, x)``.
    """
    c = in_slices // 2
    centre = raw[:, c : c + 1]
    mean = F.avg_pool2d(F.pad(centre, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    a, b = noise_model[:, 0:1].to(raw.dtype), noise_model[:, 1:2].to(raw.dtype)
    return NOISE_GAIN * torch.sqrt(torch.clamp(a + b * mean, min=0.0))


_WRAPPER = '''
import torch  # noqa: E402 (what the wrapper uses, whatever the module above imported)
import torch.nn.functional as F  # noqa: E402

NOISE_GAIN = {gain!r}


{noise_map}

class {callable}({base}):
    """``{base}`` with the inputs of the bioimage.io package: ``raw``, the normalised sections
    ``(n, in_slices, y, x)``, and for a noise-aware network ``noise_model``, ``(n, 2, y, x)``:
    the noise variance ``a + b * I`` of the input at normalised intensity ``I``, whose noise
    map becomes the network's last input channel (:func:`noise_map`) and its second output."""

    def __init__(self, noise_input: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.noise_input = noise_input

    def forward(self, raw, noise_model=None):
        if not self.noise_input:
            return super().forward(raw)
        noise = noise_map(raw, noise_model, self.in_slices)
        return super().forward(torch.cat([raw, noise], dim=1)), noise
'''

_REGISTER = '''def register(name):
    """pssr_volume's architecture registry: a no-op in this standalone file."""
    return lambda cls: cls
'''


def _helper_source(name: str, alias: str | None) -> str:
    if name == "register":
        text = _REGISTER
    else:
        helper = getattr(registry, name, None)
        if not inspect.isfunction(helper) or helper.__module__ != registry.__name__ or name in (
                "architectures", "build"):
            raise PssrError(f"pssr_volume.nets.registry.{name} cannot be packaged standalone")
        text = inspect.getsource(helper)
    return text + (f"\n{alias} = {name}\n" if alias and alias != name else "")


def standalone_source(config: ModelConfig) -> str:
    """The standalone source file of ``config``'s architecture (module docstring)."""
    cls = architectures()[config.architecture]
    module_file = Path(inspect.getfile(cls))
    text = module_file.read_text()
    lines = text.splitlines(keepends=True)
    replaced: dict[int, tuple[int, str]] = {}  # first line -> (last line, replacement)
    for node in ast.parse(text).body:
        if isinstance(node, ast.Import) and any(a.name.startswith("pssr_volume")
                                                  for a in node.names):
            raise PssrError(f"{module_file.name} imports pssr_volume; {config.architecture!r} "
                            "cannot be packaged standalone")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pssr_volume"):
            if node.module != registry.__name__:
                raise PssrError(f"{module_file.name} imports {node.module}; "
                                f"{config.architecture!r} cannot be packaged standalone")
            body = "\n".join(_helper_source(a.name, a.asname) for a in node.names)
            assert node.end_lineno is not None  # ast sets it on every statement
            replaced[node.lineno - 1] = (node.end_lineno, body + "\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i in replaced:
            end, body = replaced[i]
            out.append(body)
            i = end
        else:
            out.append(lines[i])
            i += 1
    header = (f"# Generated by `pssr-volume export-model` for the model {config.name!r} from\n"
              f"# pssr_volume/nets/{module_file.name} and pssr_volume/nets/registry.py (helpers), "
              "verbatim,\n# and pssr_volume/bioimage/source.py (noise_map, PackagedNetwork). "
              "It needs torch only.\n")
    wrapper = _WRAPPER.format(gain=float(NOISE_GAIN), noise_map=inspect.getsource(noise_map),
                              callable=CALLABLE, base=cls.__name__)
    return header + "".join(out).rstrip("\n") + "\n" + wrapper


def network_kwargs(config: ModelConfig) -> dict[str, object]:
    """The keyword arguments of ``PackagedNetwork`` for ``config`` (the rdf's ``kwargs``):
    those :func:`pssr_volume.nets.registry.build` gives the architecture, and ``noise_input``."""
    extra = {"extra_channels": 1} if config.noise_input else {}
    return {"scale": config.scale, "in_slices": config.in_slices, **extra, **config.arch_args,
            "noise_input": config.noise_input}


def load_packaged(source: str, config: ModelConfig) -> nn.Module:
    """Import ``source`` as a fresh module (not through pssr_volume) and build its
    ``PackagedNetwork`` with :func:`network_kwargs`: the network bioimageio.core will build."""
    module = types.ModuleType("pssr_volume_packaged_network")
    exec(compile(source, "<packaged network>", "exec"), module.__dict__)  # noqa: S102
    return getattr(module, CALLABLE)(**network_kwargs(config))
