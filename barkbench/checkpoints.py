"""Checkpoints: checkpoints/step-NNNNNNN/{model,trainer}.safetensors inside a run directory,
each written to a temporary name and renamed into place whole, so the last one always loads.

Checkpoints hold no pickle: weights, optimiser moments and random states are safetensors, and
the few scalars beside them are JSON in the safetensors header. So a run directory from
someone else cannot run code on load.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from barkbench.errors import BarkError, RunFailed
from barkbench.models import build_model
from barkbench.rundir import (
    afresh_command,
    checkpoint_problem,
    checkpoint_step,
    list_checkpoints,
    load_run_config,
    mend_command,
    read_json,
    shown_status,
    temp_name,
)


def save_checkpoint(run: Path, step: int, model, trainer_tensors: dict, trainer_meta: dict, keep: int) -> Path:
    root = run / "checkpoints"
    root.mkdir(exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = temp_name(final)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    save_file(
        {k: v.contiguous().cpu() for k, v in trainer_tensors.items()},
        tmp / "trainer.safetensors",
        metadata={"trainer": json.dumps(trainer_meta)},
    )
    if final.exists():  # the same step saved again (an interrupt right after a save)
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in list_checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run: Path) -> Path:
    found = list_checkpoints(run)
    if not found:
        raise RunFailed(f"run {run} has no checkpoint (its checkpoints/ is empty or gone); {afresh_command(run)}")
    return found[-1]


def intact_checkpoint(run: Path) -> Path:
    """The run's last checkpoint, or an error that says what is wrong with it and what mends it:
    resuming, from the intact one before it, trains the same steps again to the same weights."""
    last = latest_checkpoint(run)
    why = checkpoint_problem(last)
    if why is None:
        return last
    older = next((c for c in reversed(list_checkpoints(run)[:-1]) if checkpoint_problem(c) is None), None)
    if older is None:
        raise RunFailed(f"{run}: {why}, and no older checkpoint is intact; {afresh_command(run)}")
    raise RunFailed(
        f"{run}: {why}; `{mend_command(run)}` trains it again from step {checkpoint_step(older)}, the intact "
        "checkpoint before it, to the same weights"
    )


def _load_safetensors(path: Path) -> dict:
    if not path.exists():
        raise RunFailed(f"{path} is missing; the checkpoint is incomplete")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise RunFailed(
            f"{path} is not a valid safetensors file ({err}); barkbench loads no other format, "
            "so the file was damaged or replaced"
        ) from None


def load_weights(model, checkpoint: Path) -> None:
    state = _load_safetensors(checkpoint / "model.safetensors")
    expected = model.state_dict()
    problems = [f"{k} is missing" for k in expected if k not in state]
    problems += [f"{k} is unexpected" for k in state if k not in expected]
    problems += [
        f"{k} has shape {tuple(state[k].shape)} where the config builds {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if problems:
        raise RunFailed(
            f"checkpoint {checkpoint} does not match its run's config.yaml ({'; '.join(problems[:3])}); "
            "the config was edited after training, so restore it or train a new run"
        )
    model.load_state_dict(state)


def load_trainer_state(checkpoint: Path) -> tuple[dict, dict]:
    path = checkpoint / "trainer.safetensors"
    tensors = _load_safetensors(path)
    with safe_open(path, framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("trainer", "{}"))
    return tensors, meta


def pick_device(name: str) -> torch.device:
    """auto: CUDA if present, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    return torch.device(name)


def load_trained(run: Path, device: torch.device | None = None):
    """The config and trained model of a completed run; a clear error for anything else."""
    if not run.is_dir():
        raise BarkError(f"run directory '{run}' does not exist; give the path of a run under runs/")
    cfg = load_run_config(run)
    meta = read_json(run / "meta.json")
    status = shown_status(meta)
    if status == "running":
        raise BarkError(
            f"run {run} is still training (pid {meta.get('pid')}, step {meta.get('step', 0)} of "
            f"{meta.get('steps', cfg.train.steps)}); wait for it to finish, then use it"
        )
    if status == "failed":
        raise BarkError(f"run {run} failed, so it has no final weights: {meta.get('message', 'see its meta.json')}")
    if status != "completed":
        raise BarkError(f"run {run} is {status}, not completed; finish it with `{mend_command(run)}` first")
    model = build_model(cfg.model, len(cfg.vocab)).to(device or pick_device(cfg.device))
    load_weights(model, intact_checkpoint(run))
    return cfg, model
