"""What the tests share: tiny configs, model builders, and readers of a run directory's files."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from barkbench.cli import app
from barkbench.config import RunConfig, validate
from barkbench.models import build_model
from barkbench.rundir import read_jsonl, start_run
from barkbench.train import train
from barkbench.vocab import VOCAB
from barkbench.yamlfile import read_yaml

V = len(VOCAB)
RUNNER = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
SMOKE = Path(__file__).resolve().parent.parent / "configs" / "compare" / "smoke.yaml"
TIMING = {"tokens_per_second", "wall_seconds"}  # the figures no two runs share
# Same threads in every process that is compared, and no fight over 2 cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

# A run that trains in well under a second: 3 steps, evaluated after each.
TINY = {
    "name": "tiny",
    "seed": 0,
    "task": {"name": "barks", "train_size": 64, "val_size": 16},
    "model": {"name": "gpt", "embedding_dim": 8, "layers": 1, "heads": 2, "context_length": 32},
    "train": {"steps": 3, "batch_size": 8, "eval_every": 1, "eval_batch_size": 16},
    "sample": {"num_samples": 2, "max_new_tokens": 8},
}
# A run long enough to checkpoint and evaluate a few times (30 steps), on the CPU so that two
# runs can be compared bit for bit.
SHORT = {
    "name": "tiny",
    "seed": 0,
    "device": "cpu",
    "task": {"name": "barks", "train_size": 256, "val_size": 32},
    "model": {"name": "gpt", "embedding_dim": 16, "layers": 1, "heads": 2, "context_length": 64},
    "train": {"steps": 30, "batch_size": 8, "eval_every": 6, "checkpoint_every": 10},
    "sample": {"num_samples": 1, "max_new_tokens": 5},
}
# Model sizes small enough for any test, and a task whose sequences fit any context here.
SMALL = {"embedding_dim": 16, "hidden_size": 12, "layers": 2, "heads": 2, "ffn_dim": 24, "context_length": 64}
TINY_TASK = {"name": "barks", "min_barks": 1, "max_barks": 2}


def tiny() -> dict:
    """A fresh copy of TINY, to change as a test likes."""
    return copy.deepcopy(TINY)


def model_config(task: dict = TINY_TASK, **model):
    """The validated model section of a config with this model section."""
    return RunConfig.model_validate({"task": task, "model": model}).model


def small_model(name: str, seed: int = 0, **overrides):
    """A seeded, untrained model of SMALL's sizes (overrides on top), in eval mode."""
    torch.manual_seed(seed)
    model = build_model(model_config(**{**SMALL, "name": name, **overrides}), V)
    return model.eval()


def lively(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights far from the small GPT-2 init, so one token's influence on another is
    large enough to see (with the default init, attention starts out nearly uniform and a
    change can hide under float32 noise). Returns the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 1.5 / p.shape[1] ** 0.5)
            else:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.eval()


def random_tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Real tokens only (ids 1..8), so nothing depends on how <PAD> is treated."""
    return torch.randint(1, V, (batch, length), generator=torch.Generator().manual_seed(seed))


def state_size(state) -> int:
    """Bytes of every tensor in a model's (nested) state."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, (tuple, list)):
        return sum(state_size(s) for s in state)
    return 0  # None, or the GPT's position counter


def train_config(data: dict, runs_dir: Path) -> Path:
    """Train a config mapping in this process; its run directory."""
    cfg = validate(data, "test config")
    run = start_run(cfg, runs_dir)
    train(run, cfg)
    return run


def only_run(runs_dir: Path) -> Path:
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run


def meta(run: Path) -> dict:
    return json.loads((run / "meta.json").read_text())


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def metrics(run: Path) -> list[dict]:
    return read_jsonl(run / "metrics.jsonl")


def figures(run: Path) -> list[dict]:
    """metrics.jsonl without the timing keys."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in metrics(run)]


def all_figures(run: Path) -> tuple[list[dict], dict, list[dict]]:
    """metrics.jsonl, summary.json and samples.jsonl, without timing keys or the run's own name."""
    final = {k: v for k, v in summary(run).items() if k not in TIMING | {"name"}}
    return figures(run), final, read_jsonl(run / "samples.jsonl")


def runs_by_name(study: Path) -> dict[str, Path]:
    """A study's run directories by their config name."""
    return {read_yaml(p / "config.yaml")["name"]: p for p in study.iterdir() if p.is_dir()}


def results(study: Path) -> dict:
    return json.loads((study / "results.json").read_text())


def result_figures(study: Path) -> dict:
    """results.json's rows by name, without what differs from one training of them to the next."""
    return {r["name"]: {k: v for k, v in r.items() if k not in TIMING | {"run"}} for r in results(study)["runs"]}


def cli(*args):
    """`barkbench ARGS` through typer's CliRunner; paths may be given as Path objects."""
    return RUNNER.invoke(app, [str(a) for a in args])


HEAVY = ("torch", "matplotlib", "pydantic")  # each costs a noticeable share of a second to import


def heavy_imports(*args, status: int = 0) -> set[str]:
    """Which of HEAVY `barkbench ARGS` imports, run in a fresh interpreter (it must exit with status)."""
    code = (
        "import sys\nfrom barkbench.cli import main\nsys.argv = ['barkbench', *sys.argv[1:]]\n"
        f"try:\n    main()\nexcept SystemExit as stop:\n    assert (stop.code or 0) == {status}, stop.code\n"
        f"print('imported:', *[m for m in {HEAVY!r} if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.rsplit("imported:", 1)[1].split())


class Proc:
    """`python -m barkbench ARGS` in the background, its output in files (no pipe to fill up)."""

    def __init__(self, args, cwd: Path, name: str, env: dict = ENV):
        self.out, self.err = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "barkbench", *map(str, args)], cwd=cwd, env=env, stdout=out, stderr=err
            )

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    def kill_if_running(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def wait_for(predicate, proc: Proc, timeout: float = 60, what: str = "") -> None:
    """Poll until predicate() holds; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.popen.poll() is not None:
            pytest.fail(f"the process ended (status {proc.popen.returncode}) before {what}:\n{proc.stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)
