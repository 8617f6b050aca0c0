"""Run directories: creating them, reading them, and writing every file so that a crash never
leaves one torn. (The checkpoints inside them: barkbench/checkpoints.py.)

Whole files (meta.json, summary.json, config.yaml) are written to a temporary name and renamed
into place; metrics.jsonl grows by one `write` of a whole line at a time. So `kill -9` at any
moment leaves a meta.json that parses and a metrics.jsonl whose every line parses.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import time
from datetime import datetime
from pathlib import Path

from barkbench import __version__
from barkbench.errors import BarkError
from barkbench.yamlfile import load_yaml

STALE_SECONDS = 120  # a `running` run whose heartbeat is older than this, on another host, is dead


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def temp_name(path: Path) -> Path:
    # Unique per writer, so a signal handler and the main loop never share a temporary file.
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_atomic(path: Path, text: str) -> None:
    tmp = temp_name(path)
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


def start_run(cfg, runs_dir: Path) -> Path:
    """Create a run directory for a validated config and write its config and meta."""
    from importlib.metadata import version

    from barkbench.config import to_yaml

    run = create_run_dir(Path(runs_dir), cfg.name)
    write_atomic(run / "config.yaml", to_yaml(cfg))
    versions = {"barkbench": __version__, "torch": version("torch"), "python": platform.python_version()}
    # what `barkbench runs` shows, so that it lists runs without parsing their config.yaml
    shown = {"model": cfg.model.name, "task": cfg.task.name, "steps": cfg.train.steps}
    update_meta(run, status="running", seed=cfg.seed, versions=versions, created=now(), **shown)
    return run


def load_run_config(run: Path):
    """A run directory's config, validated."""
    from barkbench.config import validate  # pydantic: only for the commands that read configs
    from barkbench.yamlfile import read_yaml

    if not (run / "config.yaml").exists():
        raise BarkError(
            f"{run} is not a barkbench run directory (it has no config.yaml); give the path of one under runs/"
        )
    return validate(read_yaml(run / "config.yaml"), str(run / "config.yaml"))


def check_resumable(run: Path) -> None:
    meta = read_json(run / "meta.json")
    status = shown_status(meta)
    if status == "completed":
        raise BarkError(f"run {run} has already completed; start a new run instead of resuming it")
    if status == "running":
        raise BarkError(f"run {run} is still running (pid {meta.get('pid')}); wait for it or stop it first")


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


def run_row(run: Path, root: Path) -> dict:
    """What `barkbench runs` shows of a run: name, model, task, status, progress, accuracy, age."""
    meta = read_json(run / "meta.json")
    summary = read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    metrics = read_jsonl(run / "metrics.jsonl")
    if "model" not in meta and (run / "config.yaml").exists():  # a run from before meta.json said
        cfg = load_yaml((run / "config.yaml").read_text())
        meta |= {"model": cfg["model"]["name"], "task": cfg["task"]["name"], "steps": cfg["train"]["steps"]}
    last = summary or (metrics[-1] if metrics else {})
    return {
        "name": str(run.relative_to(root)),
        "model": meta.get("model", "?"),
        "task": meta.get("task", "?"),
        "status": shown_status(meta),
        "step": meta.get("step", 0),
        "steps": meta.get("steps", "?"),
        "accuracy": last.get("bark_accuracy", last.get("val_accuracy")),
        "age_seconds": time.time() - (run / "meta.json").stat().st_mtime,
    }


def find_runs(root: Path) -> list[Path]:
    """Run directories under root: its children, and the runs inside study directories."""
    found = {p.parent for p in root.glob("*/meta.json")} | {p.parent for p in root.glob("*/*/meta.json")}
    return sorted(found, key=lambda run: (run / "meta.json").stat().st_mtime)


def list_checkpoints(run: Path) -> list[Path]:
    root = run / "checkpoints"
    return sorted(root.glob("step-[0-9]*")) if root.exists() else []


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
