"""Run a model on batches of tiles: numpy in, numpy out, one device.

The model is loaded once per process (worker) and cached; tiles are fed to
the device in batches. Inference is deterministic: fixed convolution
algorithms and no TF32, so a recomputed block gives the same bytes.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import torch

from pssr_volume.model import load_model
from pssr_volume.precision import autocast, inference_dtype

_LOCK = threading.Lock()


class Predictor:
    """A loaded model bound to a device.

    Parameters
    ----------
    model_path : str
        Model file.
    device : str
        ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).
    sha256 : str
        The file's hash (part of the cache key of :func:`get_predictor`).
    """

    def __init__(self, model_path: str, device: str = "cpu", sha256: str = ""):
        if device.startswith("cuda"):
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.config, module = load_model(model_path, device)
        # channels-last convolutions: ~1.5x faster on CPU (oneDNN), preferred by cuDNN
        # torch's stubs omit Module.to(memory_format=...), which torch accepts at runtime
        self.module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.device = torch.device(device)
        self.autocast = inference_dtype(self.config.bf16_inference, device)

    @torch.inference_mode()
    def __call__(self, tiles: np.ndarray, batch_size: int = 8,
                 finish: Finish | None = None) -> np.ndarray:
        """Restore tiles.

        Parameters
        ----------
        tiles : numpy.ndarray
            ``(n, in_slices, h, w)`` normalised float32.
        batch_size : int
            Tiles per forward pass.
        finish : (lo, hi, dtype), optional
            Map the output back to grey levels, round and clip to ``dtype`` on the
            device, and copy only those bytes back (4x less than float32 for uint8): the
            same float32 operations, so the same bytes, as
            :func:`pssr_volume.intensity.denormalize`.

        Returns
        -------
        numpy.ndarray
            ``(n, scale*h, scale*w)``: float32, or ``dtype`` with ``finish``.
        """
        s = self.config.scale
        n, _, h, w = tiles.shape
        device_type = str(self.device)
        dtype = np.dtype(np.float32 if finish is None else finish[2])
        out: np.ndarray | None = None
        for i in range(0, n, batch_size):
            x = torch.from_numpy(np.ascontiguousarray(tiles[i : i + batch_size]))
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with autocast(device_type, self.autocast):
                y = self.module(x)[:, 0].float()
            if finish is not None:
                y = _finish_on_device(y, *finish)
            if n <= batch_size:  # one forward pass: hand its output over without a copy
                return np.ascontiguousarray(y.cpu().numpy())
            if out is None:
                out = np.empty((n, s * h, s * w), dtype)
            out[i : i + len(x)] = y.cpu().numpy()
        assert out is not None
        return out


Finish = tuple[float, float, str]  # (lo, hi, dtype) of the input's grey levels


def _finish_on_device(y: torch.Tensor, lo: float, hi: float, dtype: str) -> torch.Tensor:
    dt = np.dtype(dtype)
    y = y.mul_(np.float32(hi - lo).item()).add_(np.float32(lo).item())
    if dt.kind in "iu":
        info = np.iinfo(dt)
        y = y.round_().clamp_(float(info.min), float(info.max))
    return y.to(_TORCH_DTYPES[dt.name])


_TORCH_DTYPES = {"uint8": torch.uint8, "int8": torch.int8, "int16": torch.int16,
                 "uint16": torch.uint16, "float32": torch.float32}


def can_finish(dtype: str) -> bool:
    """Whether ``finish`` on the device supports an output ``dtype`` (else finish on the CPU)."""
    return np.dtype(dtype).name in _TORCH_DTYPES


@functools.lru_cache(maxsize=4)
def _cached(model_path: str, sha256: str, device: str) -> Predictor:
    return Predictor(model_path, device, sha256)


def get_predictor(model_path: str, sha256: str, device: str = "cpu", threads: int = 0
                  ) -> Predictor:
    """The process-wide predictor for a model (loaded on first use only).

    ``sha256`` is part of the cache key so a changed file is reloaded;
    ``threads`` > 0 sets torch's intra-op threads for this process.
    """
    with _LOCK:
        if threads > 0 and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return _cached(model_path, sha256, device)
