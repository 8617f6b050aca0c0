"""Training: one run, one directory, the loop written out top to bottom in `train`.

Beside it: TrainerState (barkbench/trainer.py), what a checkpoint saves and resuming restores;
interrupts (barkbench/interrupts.py), Ctrl-C as a request to stop at the end of a step.
"""

from __future__ import annotations

import json
import math
import shlex
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Callable

import torch

from barkbench.checkpoints import latest_checkpoint, pick_device
from barkbench.errors import Interrupted, RunFailed
from barkbench.evaluate import answer_loss, evaluate, to_batch
from barkbench.figures import CONTENT, split_figures
from barkbench.interrupts import interrupts
from barkbench.models import count_params
from barkbench.rundir import (
    host_fields,
    mend_command,
    now,
    runs_dir_option,
    truncate_metrics,
    update_meta,
    write_atomic,
    write_json,
)
from barkbench.sample import draw_samples
from barkbench.scalars import Scalars
from barkbench.tasks import make_splits, stream, task_of
from barkbench.trainer import TrainerState, lr_at
from barkbench.vocab import PAD


def train(run: Path, cfg, resume: bool = False, on_step: Callable[[dict], None] | None = None, stop_requested=None):
    """Train the run's model to cfg.train.steps, evaluating and checkpointing on the way; return
    the summary (also written to summary.json).

    on_step, if given, is called after every step with what a progress display shows;
    stop_requested, if given, is asked after every step whether to stop as Ctrl-C would.
    """
    tc, device = cfg.train, pick_device(cfg.device)
    train_set, val_set, test_set = make_splits(cfg.task, cfg.seed, cfg.val_task)
    state = TrainerState.start(cfg, device)
    if resume:
        state.restore(latest_checkpoint(run))
        truncate_metrics(run, state.step)
        if state.stopped != tc.steps:  # trained on to more steps: the rule applies again from here
            state.stopped = 0
    model, optimizer = state.model, state.optimizer
    meta = {
        "params": count_params(model),
        "state_bytes": model.state_bytes(),
        "device": str(device),
        "threads": cfg.threads,
    }
    update_meta(run, status="running", started=now(), step=state.step, message=None, **meta, **host_fields())

    figures: dict = {}
    with (
        outcome_recorded(run),
        closing(Scalars(run, cfg.log.tensorboard, state.step)) as scalars,
        torch_threads(cfg.threads),
        interrupts(lambda signum: mark(run, "interrupted"), stop_requested) as stop,
    ):
        model.train()
        while state.step < tc.steps and not state.stopped:
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state.step, tc)
            idx = torch.randint(len(train_set), (tc.batch_size,), generator=state.batches)
            x, y, mask, start = to_batch(train_set[idx], device)
            loss = answer_loss(model.teacher_forcing(x, start), y, mask)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise RunFailed(diverged(run, state.step + 1, loss_value, tc.lr))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            state.count(loss_value, int((x != PAD).sum()), time.perf_counter() - t0)

            evaluated = state.step % tc.eval_every == 0 or state.step == tc.steps
            shown_loss = state.mean_loss()  # before an evaluation starts the next window
            if evaluated:
                figures = measure(cfg, model, val_set, device, "val")
                scalars.append(
                    {"step": state.step, "train_loss": state.train_loss(), **figures, "lr": lr_at(state.step - 1, tc)}
                    | {"tokens_per_second": state.tokens_per_second(), "wall_seconds": state.wall_seconds()},
                )
                if tc.stop_at is not None and figures[CONTENT.name] >= tc.stop_at and state.step < tc.steps:
                    state.stopped = tc.steps  # learned: the test is measured here (train.stop_at)
            if on_step:  # before the checkpoint: a signal that lands while the display redraws still gets one
                shown = {"loss": shown_loss, "tokens_per_second": state.tokens_per_second(), "evaluated": evaluated}
                on_step({"step": state.step, "steps": tc.steps, **shown, "val_accuracy": figures.get("bark_accuracy")})
            if state.step % tc.checkpoint_every == 0 or state.step == tc.steps or stop.requested or state.stopped:
                state.save(run, tc.keep_checkpoints)
            if stop.requested and state.step < tc.steps and not state.stopped:
                raise Interrupted(
                    f"interrupted at step {state.step} of {tc.steps}; a checkpoint is saved. "
                    f"Resume with: {mend_command(run)}",
                    stop.signum,
                )
        # resumed from the final checkpoint of a run killed while it sampled: measure again
        figures = figures or measure(cfg, model, val_set, device, "val")
        test = measure(cfg, model, test_set, device, "test")
        scalars.to_tensorboard({"step": state.step, **test})
        return finish(run, cfg, model, state, figures | test)


def diverged(run: Path, step: int, loss: float, lr: float) -> str:
    """What to say of a loss that is no longer finite. Resuming would only repeat it (the same
    steps give the same nan), so the advice is a command that trains it again at a lower rate: a
    tenth of it, and no more than the default rate."""
    from barkbench.config import TrainConfig

    lower = min(lr / 10, TrainConfig.model_fields["lr"].default)
    study = run.parent if (run.parent / "study.yaml").exists() else None
    config, command = (study / "study.yaml", "compare") if study else (run / "config.yaml", "train")
    again = f"barkbench {command} --config {shlex.quote(str(config))} train.lr={lower:g}"
    return (
        f"the training loss became {loss} at step {step} with train.lr={lr:g}; resuming would repeat it, "
        f"so lower train.lr and train again: {again}{runs_dir_option((study or run).parent)}"
    )


def measure(cfg, model, data, device, split: str) -> dict:
    """The figures of the model now on one split ("val" or "test"), under their summary.json
    names, with the excess over the floor of the task the split was drawn from."""
    task = task_of(cfg.val_task)
    label, name = (task.buckets.label, task.buckets.name) if task.buckets else (None, None)
    figures = evaluate(model, data, cfg.train.eval_batch_size, device, label)
    figures["excess_loss"] = figures["loss"] - task.floor(cfg.val_task)
    return split_figures(figures, split, name)


def finish(run: Path, cfg, model, state: TrainerState, figures: dict) -> dict:
    """Samples at the end of training (samples.jsonl), then the summary (summary.json)."""
    rows, judged = draw_samples(model, cfg.val_task, cfg.sample, cfg.seed, stream(cfg.seed, "sampling"))
    write_atomic(run / "samples.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    summary = {"name": run.name, "model": cfg.model.name, "task": cfg.task.name, "seed": cfg.seed, "steps": state.step}
    summary["stopped_early"] = bool(state.stopped)  # at `steps`, where validation reached train.stop_at
    summary |= figures | {"floor_loss": task_of(cfg.val_task).floor(cfg.val_task)} | judged
    summary |= {"params": count_params(model), "state_bytes": model.state_bytes()}
    # and at the run's longest sequence, which an attention cache need not outgrow: the frontier's x
    longest = cfg.longest_sequence()
    summary |= {"sequence_length": longest, "sequence_state_bytes": model.state_bytes(longest)}
    summary |= {"tokens_per_second": state.tokens_per_second(), "wall_seconds": state.wall_seconds()}
    write_json(run / "summary.json", summary)
    from barkbench.plots import run_curves  # matplotlib: only now that there is something to draw

    stopped = state.step if state.stopped else None
    run_curves(run, f"{run.name}: {cfg.model.name} on {cfg.task.name}", task_of(cfg.task).content, stopped)
    mark(run, "completed")
    return summary


def mark(run: Path, status: str, **fields) -> None:
    update_meta(run, status=status, ended=now(), **fields)


@contextmanager
def torch_threads(threads: int):
    """The run's own thread count while it computes, and the caller's again after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def outcome_recorded(run: Path):
    """Whatever stops a run early is written into its meta.json before it goes on up."""
    try:
        yield
    except Interrupted as err:
        mark(run, "interrupted", message=str(err))  # which says how to resume it
        raise
    except RunFailed as err:
        mark(run, "failed", message=str(err))
        raise
    except BaseException as err:
        mark(run, "failed", message=f"{type(err).__name__}: {err}")
        raise
