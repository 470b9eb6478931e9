"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN/`` holding
``trainable.safetensors`` (what the method trains), ``optimizer.safetensors`` +
``optimizer.json``, ``state.json`` (position in the data, early-stopping state, scheduler,
Python and NumPy RNG states) and ``rng.safetensors`` (torch RNG). It is written into a
temporary folder and renamed, so a crash leaves either a whole checkpoint or none.
No pickle is used: tensors go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..core.io import staged_folder

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint"]

KEEP = 2


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _optimizer_to_files(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, slots in opt_state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return {"torch": torch.get_rng_state()}, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(folder: Path, step: int, trainable: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: dict) -> Path:
    """Write checkpoint ``step`` under ``folder`` atomically and keep only the last two."""
    final = folder / f"step-{step:08d}"
    with staged_folder(final) as tmp:
        save_file(_tensors(trainable), str(tmp / "trainable.safetensors"))
        opt_tensors, opt_meta = _optimizer_to_files(optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(opt_meta), encoding="utf-8")
        rng_tensors, rng_meta = _rng_state()
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        payload = dict(state, step=step, scheduler=scheduler.state_dict(), rng=rng_meta)
        (tmp / "state.json").write_text(json.dumps(payload), encoding="utf-8")
    for old in sorted(folder.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder``, or None."""
    done = [p for p in sorted(folder.glob("step-*")) if (p / "state.json").is_file()]
    return done[-1] if done else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict:
    """Restore weights, optimizer, scheduler and RNG states; return the saved run state."""
    trainable = load_file(str(path / "trainable.safetensors"))
    missing = [k for k in trainable if k not in dict(model.named_parameters()) and k not in dict(model.named_buffers())]
    if missing:
        raise RuntimeError(f"checkpoint {path} does not match the model (e.g. {missing[:3]})")
    model.load_state_dict(trainable, strict=False)
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    optimizer.load_state_dict(_optimizer_from_files(load_file(str(path / "optimizer.safetensors")), meta))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    scheduler.load_state_dict(state.pop("scheduler"))
    _set_rng_state(load_file(str(path / "rng.safetensors")), state.pop("rng"))
    return state
