"""Run directories: creating them, and writing every file so that a crash never leaves one torn.

Whole files (meta.json, summary.json, config.yaml, checkpoints) are written to a temporary
name and renamed into place; metrics.jsonl grows by one `write` of a whole line at a time.
So `kill -9` at any moment leaves a meta.json that parses, a metrics.jsonl whose every line
parses, and a last checkpoint that loads.

Checkpoints hold no pickle: weights, optimiser moments and random states are safetensors,
and the few scalars beside them are JSON in the safetensors header.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from datetime import datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from barkbench.errors import BarkError

STALE_SECONDS = 120  # a `running` run whose heartbeat is older than this, on another host, is dead


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _temp_name(path: Path) -> Path:
    # Unique per writer, so a signal handler and the main loop never share a temporary file.
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_atomic(path: Path, text: str) -> None:
    tmp = _temp_name(path)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BarkError(f"{path} is missing; is this a barkbench run directory?") from None
    except json.JSONDecodeError:
        raise BarkError(f"{path} is not valid JSON; the run directory is damaged") from None


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """A new directory `<name>-<timestamp>-<random>`; mkdir is exclusive, so two runs started
    in the same second with the same name still never share one."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        path = runs_dir / f"{name}-{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


# ---- meta.json ------------------------------------------------------------------------------


def update_meta(run: Path, **fields) -> dict:
    path = run / "meta.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.update(fields, heartbeat=time.time())
    write_json(path, meta)
    return meta


def host_fields() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def is_alive(meta: dict) -> bool:
    """Whether a run marked `running` still has a process behind it."""
    if meta.get("host") == socket.gethostname() and meta.get("pid"):
        try:
            os.kill(meta["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - meta.get("heartbeat", 0) < STALE_SECONDS


def shown_status(meta: dict) -> str:
    """The status as a user should read it: a `running` run with no live process is `dead`."""
    status = meta.get("status", "unknown")
    return "dead" if status == "running" and not is_alive(meta) else status


def find_runs(root: Path) -> list[Path]:
    """Run directories under root: its children, and the runs inside study directories."""
    found = {p.parent for p in root.glob("*/meta.json")} | {p.parent for p in root.glob("*/*/meta.json")}
    return sorted(found, key=lambda run: (run / "meta.json").stat().st_mtime)


# ---- metrics.jsonl ---------------------------------------------------------------------------


def append_metrics(run: Path, row: dict) -> None:
    # One write of one whole line on an O_APPEND descriptor: a kill never leaves half a line.
    fd = os.open(run / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(run: Path, step: int) -> None:
    """Drop rows after `step`, so a resumed run appends without repeating steps."""
    kept = [row for row in read_jsonl(run / "metrics.jsonl") if row["step"] <= step]
    write_atomic(run / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in kept))


# ---- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(run: Path, step: int, model, trainer_tensors: dict, trainer_meta: dict, keep: int) -> Path:
    """checkpoints/step-NNNNNNN/{model,trainer}.safetensors, written whole or not at all."""
    root = run / "checkpoints"
    root.mkdir(exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = _temp_name(final)
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


def list_checkpoints(run: Path) -> list[Path]:
    root = run / "checkpoints"
    return sorted(root.glob("step-[0-9]*")) if root.exists() else []


def latest_checkpoint(run: Path) -> Path:
    found = list_checkpoints(run)
    if not found:
        raise BarkError(f"run {run} has no checkpoint yet; train it (or resume it) before using it", code=1)
    return found[-1]


def _load_safetensors(path: Path) -> dict:
    if not path.exists():
        raise BarkError(f"{path} is missing; the checkpoint is incomplete", code=1)
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise BarkError(
            f"{path} is not a valid safetensors file ({err}); barkbench loads no other format, "
            "so the file was damaged or replaced",
            code=1,
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
        raise BarkError(
            f"checkpoint {checkpoint} does not match its run's config.yaml ({'; '.join(problems[:3])}); "
            "the config was edited after training, so restore it or train a new run",
            code=1,
        )
    model.load_state_dict(state)


def load_trainer_state(checkpoint: Path) -> tuple[dict, dict]:
    path = checkpoint / "trainer.safetensors"
    tensors = _load_safetensors(path)
    with safe_open(path, framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("trainer", "{}"))
    return tensors, meta


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    """An optimiser's state as flat tensors (safetensors) plus its param groups (JSON)."""
    sd = optimizer.state_dict()
    tensors = {f"optim.{i}.{name}": t for i, state in sd["state"].items() for name, t in state.items()}
    return tensors, sd["param_groups"]


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict[int, dict] = {}
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = t
    for g in groups:
        g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
