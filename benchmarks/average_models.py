"""Interpolate the weights of a model and a fine-tune of it (WiSE-FT, Wortsman et al. 2022):
``(1 - alpha) * base + alpha * tuned``, written as a model file with the fine-tune's header.

Fine-tuning on broader data moves a model away from what it did well; the weight average of
the two often keeps most of both. ``alpha`` is fixed before scoring (0.5 by default), never
chosen on a hold-out.

    python benchmarks/average_models.py pssr-em-x4 RUN/model.safetensors OUT.safetensors

``--alpha 1 --bf16-inference`` writes the fine-tune itself, marked to restore in bf16 like the
bundled model (a fine-tune's header does not carry the flag: it is set only after measuring).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from pssr_volume.bundled import resolve_model
from pssr_volume.model import load_model, save_model


def average(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float
            ) -> dict[str, torch.Tensor]:
    """The weight interpolation of two state dicts with the same keys and shapes."""
    if base.keys() != tuned.keys():
        raise SystemExit("the two models have different parameters")
    return {k: torch.lerp(base[k].float(), tuned[k].float(), alpha) for k in base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="the model that was fine-tuned (a bundled name or a file)")
    ap.add_argument("tuned", type=Path, help="its fine-tune (a model file)")
    ap.add_argument("out", type=Path, help="model file to write")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the fine-tune")
    ap.add_argument("--bf16-inference", action="store_true",
                    help="restore in bf16 as the bundled model does (compare like with like)")
    args = ap.parse_args()
    base_cfg, base = load_model(resolve_model(args.base))
    cfg, tuned = load_model(args.tuned)
    if (base_cfg.architecture, base_cfg.arch_args) != (cfg.architecture, cfg.arch_args):
        raise SystemExit("the two models have different architectures")
    tuned.load_state_dict(average(base.state_dict(), tuned.state_dict(), args.alpha))
    training = {**cfg.training, "weight_average": {
        "base": str(args.base), "tuned": str(args.tuned), "alpha": args.alpha}}
    update: dict[str, Any] = {"training": training, "metrics": {}}
    if args.bf16_inference:
        update["bf16_inference"] = True
    save_model(args.out, tuned, cfg.model_copy(update=update))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
