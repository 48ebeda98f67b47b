"""Checkpoints: the resume state of a run and saving/loading it as safetensors + JSON,
with no pickle."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pssr_volume.errors import PssrError
from pssr_volume.train_config import TrainConfig

CHECKPOINT = "checkpoint.safetensors"
STATE = "checkpoint.json"
RESUME_MAY_DIFFER = ("device", "threads", "workers")


@dataclass
class State:
    """Everything besides tensors that a resumed run needs (saved as JSON)."""

    step: int = 0
    best: float = -math.inf
    running: float | None = None
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def save_checkpoint(out: Path, cfg: TrainConfig, state: State, module: torch.nn.Module,
                    opt: torch.optim.Optimizer, sched: Any, scaler: Any) -> None:
    """Write ``checkpoint.safetensors`` (weights, optimizer moments, torch RNG) and
    ``checkpoint.json`` (step, schedules, metrics so far). No pickle anywhere; each file
    is replaced atomically, the JSON last (it names the step the tensors belong to)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in module.state_dict().items()}
    opt_state = opt.state_dict()
    for idx, entry in opt_state["state"].items():
        for key, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {key!r} is not a tensor")
            tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, r in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = r
    tmp = out / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(state.step)})
    os.replace(tmp, out / CHECKPOINT)
    doc = {
        "format": 1, "step": state.step, "config": json.loads(cfg.model_dump_json()),
        "state": asdict(state), "optimizer_param_groups": opt_state["param_groups"],
        "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
    }
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, out / STATE)


def _saved(saved: dict[str, Any], key: str) -> Any:
    """A saved setting; one that a checkpoint from an older version lacks had its default."""
    if key in saved:
        return saved[key]
    field = TrainConfig.model_fields.get(key)
    if field is None or field.is_required():
        return None
    return json.loads(json.dumps(field.get_default(call_default_factory=True), default=str))


def model_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's state dict among a checkpoint's tensors (its ``model.*`` entries)."""
    return {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}


def load_checkpoint(out: Path, cfg: TrainConfig, module: torch.nn.Module,
                    opt: torch.optim.Optimizer, sched: Any, scaler: Any) -> State:
    """Restore a run from :func:`save_checkpoint`'s files (``weights_only`` semantics:
    safetensors and JSON only). Settings that change the result must be unchanged."""
    if not (out / STATE).is_file() or not (out / CHECKPOINT).is_file():
        raise PssrError(f"--resume: no checkpoint in {out}")
    doc = json.loads((out / STATE).read_text())
    saved, now = doc["config"], json.loads(cfg.model_dump_json())
    diff = [k for k in sorted(set(saved) | set(now))
            if k not in RESUME_MAY_DIFFER and _saved(saved, k) != now.get(k)]
    if diff:
        k = diff[0]
        raise PssrError(f"--resume with different settings: {k} was {_saved(saved, k)!r}, "
                        f"now {now.get(k)!r}")
    tensors = load_file(str(out / CHECKPOINT))
    with safe_open(str(out / CHECKPOINT), "pt") as f:
        step = int((f.metadata() or {}).get("step", -1))
    if tensors.get("rng.torch") is None or int(doc["step"]) != step:
        raise PssrError(f"--resume: {out / CHECKPOINT} (step {step}) does not match "
                        f"{out / STATE} (step {doc['step']})")
    module.load_state_dict(model_weights(tensors))
    opt_state: dict[str, Any] = {"state": {}, "param_groups": doc["optimizer_param_groups"]}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            opt_state["state"].setdefault(int(idx), {})[key] = v
    opt.load_state_dict(opt_state)
    sched.load_state_dict(doc["scheduler"])
    scaler.load_state_dict(doc["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count())
            if f"rng.cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return State(**doc["state"])
