"""Run directories: creating them, reading them, and writing every file so that a crash never
leaves one torn. (The checkpoints inside them: barkbench/checkpoints.py.)

Whole files (meta.json, summary.json, config.yaml) are written to a temporary name and renamed
into place; metrics.jsonl grows by one `write` of a whole line at a time. So `kill -9` at any
moment leaves a meta.json that parses and a metrics.jsonl whose every line parses.

A file damaged all the same (a full disk, a copy cut short, an editor) is said, never fatal to
the runs beside it: `problems` lists what is wrong in a run, `runs` and `report` show it, and
resuming mends it (`mend_command`): barkbench/repair.py rebuilds what can be rebuilt and sets
aside what cannot.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shlex
import socket
import struct
import time
from datetime import datetime
from pathlib import Path

from barkbench import __version__
from barkbench.errors import BarkError, Damaged
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
    """A JSON object from a run or study directory; a damaged one is an error that says what mends it."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BarkError(f"{path} is missing; is this a barkbench run directory?") from None
    except json.JSONDecodeError as err:
        why = f"is not valid JSON (it breaks off or is garbled at line {err.lineno}, column {err.colno})"
        raise damaged(path, why) from None
    except UnicodeDecodeError:
        raise damaged(path, "is not text") from None
    if not isinstance(data, dict):
        raise damaged(path, f"holds a {type(data).__name__}, not a JSON object")
    return data


def damaged(path: Path, why: str) -> Damaged:
    """The error for a damaged file (`why`: "is not valid JSON (...)"), naming what mends it."""
    directory = path.parent
    if path.name == "results.json":
        fix = f"`barkbench report {shlex.quote(str(directory))}` writes it again"
    elif (directory / "config.yaml").exists():
        fix = remedy(directory)
    else:
        fix = "the directory is damaged"
    return Damaged(f"{path} {why}; {fix}", f"{path.relative_to(directory)} {why}")


def mend_command(run: Path) -> str:
    """The command that mends a damaged run (barkbench/repair.py): resuming it, or its study."""
    if (run.parent / "study.yaml").exists():
        return f"barkbench compare --resume {shlex.quote(str(run.parent))}"
    return f"barkbench train --resume {shlex.quote(str(run))}"


def remedy(run: Path) -> str:
    """What to do about a damaged run: resume it, which mends it, unless no checkpoint of it is
    intact and there is nothing to resume from (barkbench/repair.py)."""
    checkpoints = list_checkpoints(run)
    if checkpoints and all(checkpoint_problem(c) for c in checkpoints):
        return afresh_command(run)
    return f"`{mend_command(run)}` mends it"


def afresh_command(run: Path) -> str:
    """What trains a run again from its first step (its config and seed give the same run)."""
    if (run.parent / "study.yaml").exists():
        return f"delete {run}, then `barkbench compare --resume {shlex.quote(str(run.parent))}` trains it again"
    command = f"barkbench train --config {shlex.quote(str(run / 'config.yaml'))}{runs_dir_option(run.parent)}"
    return f"`{command}` trains it again"


def runs_dir_option(directory: Path) -> str:
    """` --runs-dir DIR` for a command that must write into this directory, unless it is the default."""
    from barkbench.locate import runs_root

    return "" if directory.resolve() == runs_root().resolve() else f" --runs-dir {shlex.quote(str(directory))}"


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """A new directory `<name>-<timestamp>-<random>`; mkdir is exclusive, so two runs started
    in the same second with the same name still never share one."""
    writable(runs_dir, "--runs-dir")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        path = runs_dir / f"{name}-{stamp}-{secrets.token_hex(2)}"
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as err:  # writable a moment ago: the disk filled, or someone took it away
            raise BarkError(
                f"cannot create {path} ({err.strerror}); give --runs-dir a directory you can write to"
            ) from None


def writable(directory: Path, option: str) -> None:
    """Say why a directory that a command is to write into (making it and its parents as needed)
    cannot be, before anything is written: it, or a folder above it, is a file, or the folder it
    would be made in cannot be written to."""
    base = next(p for p in (directory, *directory.parents) if p.exists() or p == Path("."))
    if base.exists() and not base.is_dir():
        where = "is a file" if base == directory else f"is inside '{base}', which is a file"
        raise BarkError(f"{option} '{directory}' {where}, not a directory; give the path of a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        read_only = hasattr(os, "statvfs") and os.statvfs(base).f_flag & os.ST_RDONLY
        why = "is on a read-only file system" if read_only else "is not writable"
        raise BarkError(f"{option} '{directory}' cannot be written: '{base}' {why}; give a directory you can write to")


def start_run(cfg, runs_dir: Path) -> Path:
    """Create a run directory for a validated config and write its config and meta."""
    from barkbench.config import to_yaml

    run = create_run_dir(Path(runs_dir), cfg.name)
    write_atomic(run / "config.yaml", to_yaml(cfg))
    update_meta(run, status="running", **first_meta(cfg))
    return run


def first_meta(cfg) -> dict:
    """What a run's meta.json says from the start (and is rebuilt from, should it be damaged)."""
    from importlib.metadata import version

    versions = {"barkbench": __version__, "torch": version("torch"), "python": platform.python_version()}
    # what `barkbench runs` shows, so that it lists runs without parsing their config.yaml
    shown = {"model": cfg.model.name, "task": cfg.task.name, "steps": cfg.train.steps}
    return {"seed": cfg.seed, "versions": versions, "created": now(), **shown}


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
    """Refuse to resume a run that is running, or completed and sound (a damaged one: resuming mends it)."""
    try:
        meta = read_json(run / "meta.json")
    except BarkError:
        return  # damaged or missing: resuming rebuilds it
    status = shown_status(meta)
    if status == "completed" and not problems(run):
        raise BarkError(
            f"run {run} has already completed; start a new run, or train it on with "
            f"barkbench train --resume {shlex.quote(str(run))} train.steps=N (N above {meta.get('step', 0)})"
        )
    if status == "running":
        raise BarkError(
            f"run {run} is still running (pid {meta.get('pid')}); wait for it to finish, or stop it "
            f"(kill {meta.get('pid')}: it saves a checkpoint) and resume it then"
        )


def problems(run: Path) -> list[str]:
    """What is damaged in a run directory, in a few words each (none: it is sound); `remedy` says
    what mends it. A run cut off by a crash is not damaged, though the last line of its
    metrics.jsonl may be torn: resuming drops that line."""
    found = []
    try:
        meta = read_json(run / "meta.json")
    except Damaged as err:
        found.append(err.problem)
        meta = {}
    except BarkError:
        found.append("meta.json is missing")
        meta = {}
    if (run / "summary.json").exists():
        try:
            read_json(run / "summary.json")
        except Damaged as err:
            found.append(err.problem)
    elif meta.get("status") == "completed":
        found.append("summary.json is missing")
    bad, _ = bad_lines(run / "metrics.jsonl")
    if bad:
        found.append(f"metrics.jsonl {lines_are(bad)} not valid JSON")
    checkpoints = list_checkpoints(run)
    if checkpoints and (why := checkpoint_problem(checkpoints[-1])):
        found.append(why)
    return found


# ---- meta.json ------------------------------------------------------------------------------


def update_meta(run: Path, **fields) -> dict:
    path = run / "meta.json"
    meta = read_json(path) if path.exists() else {}
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
    """What `barkbench runs` shows of a run: name, model, task, status, progress, accuracy, age,
    and its problems: a damaged run is shown as `damaged`, with what could be read of it."""
    found = problems(run)
    meta, summary = (readable(run / name) for name in ("meta.json", "summary.json"))
    metrics = read_jsonl(run / "metrics.jsonl")
    if "model" not in meta:  # a run from before meta.json said, or whose meta.json is damaged
        try:
            cfg = load_yaml((run / "config.yaml").read_text())
            meta |= {"model": cfg["model"]["name"], "task": cfg["task"]["name"], "steps": cfg["train"]["steps"]}
        except Exception:  # noqa: BLE001 - whatever is wrong with it, the row shows "?"
            pass
    last = summary or (metrics[-1] if metrics else {})
    return {
        "name": str(run.relative_to(root)),
        "model": meta.get("model", "?"),
        "task": meta.get("task", "?"),
        "status": "damaged" if found else shown_status(meta),
        "step": meta.get("step", 0),
        "steps": meta.get("steps", "?"),
        "accuracy": last.get("bark_accuracy", last.get("val_accuracy")),
        "age_seconds": time.time() - (run / "meta.json").stat().st_mtime,
        "problems": found,
    }


def readable(path: Path) -> dict:
    """A JSON object of a run directory, or {} if it is missing or damaged (problems() says so)."""
    try:
        return read_json(path)
    except BarkError:
        return {}


def find_runs(root: Path) -> list[Path]:
    """Run directories under root: its children, and the runs inside study directories."""
    found = {p.parent for p in root.glob("*/meta.json")} | {p.parent for p in root.glob("*/*/meta.json")}
    return sorted(found, key=lambda run: (run / "meta.json").stat().st_mtime)


def list_checkpoints(run: Path) -> list[Path]:
    root = run / "checkpoints"
    return sorted(root.glob("step-[0-9]*")) if root.exists() else []


def checkpoint_step(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix("step-"))


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be loaded, or None. Cheap: each file's safetensors header is read and
    checked against the file's size, which finds a file cut short, missing, or of another format
    (a pickle) without reading the weights or importing torch."""
    for name in ("model.safetensors", "trainer.safetensors"):
        path = checkpoint / name
        why = safetensors_problem(path)
        if why:
            return f"{path.relative_to(checkpoint.parent.parent)} {why}"
    return None


def safetensors_problem(path: Path) -> str | None:
    """A safetensors file is 8 bytes (the header's length), a JSON header giving each tensor's byte
    range, then the tensors: intact when its size is exactly what the header adds up to."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else size
            if length > size - 8:
                return (
                    "is not an intact safetensors file (it is cut off before the end of its header, or another format)"
                )
            header = json.loads(f.read(length))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except FileNotFoundError:
        return "is missing"
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "is not a safetensors file (its header does not parse)"
    if size != 8 + length + end:
        return (
            f"is not an intact safetensors file (it has {size:,} bytes where its header promises {8 + length + end:,})"
        )
    return None


# ---- metrics.jsonl ---------------------------------------------------------------------------


def append_metrics(run: Path, row: dict) -> None:
    # One write of one whole line on an O_APPEND descriptor: a kill never leaves half a line.
    fd = os.open(run / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(row) + "\n").encode())
    finally:
        os.close(fd)


def jsonl_lines(path: Path) -> list[tuple[int, object]]:
    """(line number, the line parsed, or None where it does not parse) for every non-blank line."""
    if not path.exists():
        return []
    found = []
    for number, line in enumerate(path.read_bytes().decode(errors="replace").splitlines(), 1):
        if line.strip():
            try:
                found.append((number, json.loads(line)))
            except ValueError:
                found.append((number, None))
    return found


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file; a line that does not parse is left out (bad_lines says which)."""
    return [row for _, row in jsonl_lines(path) if isinstance(row, dict)]


def bad_lines(path: Path) -> tuple[list[int], bool]:
    """The lines of a JSON-lines file that do not parse, but a torn last one, and whether the last
    line is torn: cut off with no newline, as a crash while writing it leaves it."""
    lines = jsonl_lines(path)
    torn = bool(lines) and lines[-1][1] is None and not path.read_bytes().endswith(b"\n")
    bad = [number for number, row in lines if not isinstance(row, dict)]
    return (bad[:-1] if torn else bad), torn


def lines_are(numbers: list[int]) -> str:
    return f"line {numbers[0]} is" if len(numbers) == 1 else f"lines {', '.join(map(str, numbers))} are"


def truncate_metrics(run: Path, step: int) -> None:
    """Drop rows after `step` (and lines that do not parse), so a resumed run appends without
    repeating steps."""
    kept = [row for row in read_jsonl(run / "metrics.jsonl") if row.get("step", step + 1) <= step]
    write_atomic(run / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in kept))
