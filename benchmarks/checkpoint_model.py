"""A training run's last checkpoint as a model file (the run's model.safetensors is its
validation-selected step; this is its final one), for scoring both.

    python benchmarks/checkpoint_model.py results/probes/w0.05 w0.05-final.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from pssr_volume.model import load_model, save_model
from pssr_volume.train.checkpoint import CHECKPOINT, STATE, model_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a train --out folder")
    ap.add_argument("out", type=Path, help="model file to write")
    args = ap.parse_args()
    config, module = load_model(args.run / "model.safetensors")
    tensors = load_file(str(args.run / CHECKPOINT))
    module.load_state_dict(model_weights(tensors))
    # the header's metrics: the final step's validation row (not the selected step's)
    state = json.loads((args.run / STATE).read_text())["state"]
    rows = [r for r in state["rows"] if r["step"] == state["step"]]
    metrics = {"validation": rows[-1], "selected_by": "final step"} if rows else {}
    save_model(args.out, module, config.model_copy(update={"metrics": metrics}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
