"""Training: random high-resolution tiles, crappified on the fly, L1 loss, AdamW + one-cycle.

No Dask here. Inputs are any volumes :func:`~pssr_volume.io.inputs.open_input`
reads; each is normalised with the same global percentile range the engine
uses at inference. The last ``val_fraction`` of each volume (by z, or by y for
a single section) is held back for validation, with fixed tiles and fixed
degradations, so validation PSNR is comparable across steps.

Batch ``k`` depends only on ``(seed, k)``, so batches can be made ahead in worker
processes (``workers``) and a resumed run sees the same data. On CUDA the forward pass
runs under autocast (``amp``: bf16 where supported, else fp16 with loss scaling). At
every validation the run writes a checkpoint (safetensors + JSON, no pickle), the
metrics (CSV and JSON) and a plot (``training.png``).
"""

from __future__ import annotations

from pssr_volume.train.loop import train

__all__ = ["train"]
