"""Training: one run, one directory, the loop written out top to bottom in `train`."""

from __future__ import annotations

import json
import math
import os
import platform
import random
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import torch

from barkbench import __version__
from barkbench.config import RunConfig, pick_device, read_yaml, to_yaml, validate
from barkbench.errors import BarkError
from barkbench.evaluate import answer_batch, answer_loss, evaluate
from barkbench.models import build_model, count_params
from barkbench.rundir import (
    append_metrics,
    create_run_dir,
    host_fields,
    latest_checkpoint,
    load_trainer_state,
    load_weights,
    now,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_json,
    save_checkpoint,
    shown_status,
    truncate_metrics,
    update_meta,
    write_atomic,
    write_json,
)
from barkbench.sample import generate
from barkbench.tasks import EOS, PAD, TASKS, decode, encode, judge_samples, make_splits, sample_prompts, stream

EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def lr_at(step: int, cfg) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def start_run(cfg: RunConfig, runs_dir: Path) -> Path:
    """Create a run directory for a validated config and write its config and meta."""
    run = create_run_dir(Path(runs_dir), cfg.name)
    write_atomic(run / "config.yaml", to_yaml(cfg))
    versions = {"barkbench": __version__, "torch": torch.__version__, "python": platform.python_version()}
    update_meta(run, status="running", seed=cfg.seed, versions=versions, created=now())
    return run


def load_run_config(run: Path) -> RunConfig:
    if not (run / "config.yaml").exists():
        raise BarkError(
            f"{run} is not a barkbench run directory (it has no config.yaml); give the path of one under runs/"
        )
    return validate(read_yaml(run / "config.yaml"), str(run / "config.yaml"))


def load_completed(run: Path, device: torch.device | None = None) -> tuple[RunConfig, torch.nn.Module]:
    """The config and trained model of a completed run; a clear error for anything else."""
    if not run.is_dir():
        raise BarkError(f"run directory '{run}' does not exist; give the path of a run under runs/")
    cfg = load_run_config(run)
    status = shown_status(read_json(run / "meta.json"))
    if status != "completed":
        raise BarkError(f"run {run} is {status}, not completed; finish it with `barkbench train --resume {run}` first")
    model = build_model(cfg.model).to(device or pick_device(cfg.device))
    load_weights(model, latest_checkpoint(run))
    return cfg, model


def check_resumable(run: Path) -> None:
    meta = read_json(run / "meta.json")
    status = shown_status(meta)
    if status == "completed":
        raise BarkError(f"run {run} has already completed; start a new run instead of resuming it")
    if status == "running":
        raise BarkError(f"run {run} is still running (pid {meta.get('pid')}); wait for it or stop it first")


def train(run: Path, cfg: RunConfig, resume: bool = False, report: Callable[[dict], None] | None = None) -> dict:
    """Train the run's model to cfg.train.steps, evaluating and checkpointing on the way.

    Returns the summary (also written to summary.json). `report`, if given, is called after
    every step with the figures a progress display shows.
    """
    device = pick_device(cfg.device)
    tc = cfg.train

    # Everything random comes from the seed: the data from their own named streams, the
    # weights and dropout from torch's global generator, the batch order from `batches`.
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train_set, val_set = make_splits(cfg.task, cfg.seed, cfg.val_task)
    floor = TASKS[cfg.val_task.name].floor(cfg.val_task)  # the loss reported is the validation set's
    model = build_model(cfg.model).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # biases and norm gains
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr,
        betas=(0.9, 0.95),
    )
    batches = stream(cfg.seed, "batches")
    params, state_bytes = count_params(model), model.state_bytes()

    step, seen_tokens, train_seconds, wall_before = 0, 0, 0.0, 0.0
    loss_sum, loss_steps = 0.0, 0  # train loss since the last evaluation
    if resume:
        checkpoint = latest_checkpoint(run)
        load_weights(model, checkpoint)
        tensors, saved = load_trainer_state(checkpoint)
        optimizer_from_tensors(optimizer, tensors, saved["param_groups"])
        torch.set_rng_state(tensors["rng.torch"])
        batches.set_state(tensors["rng.batches"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        random.setstate((saved["python_random"][0], tuple(saved["python_random"][1]), saved["python_random"][2]))
        step, seen_tokens, train_seconds = saved["step"], saved["seen_tokens"], saved["train_seconds"]
        loss_sum, loss_steps, wall_before = saved["loss_sum"], saved["loss_steps"], saved["wall_seconds"]
        truncate_metrics(run, step)
    update_meta(
        run,
        status="running",
        device=str(device),
        params=params,
        state_bytes=state_bytes,
        started=now(),
        step=step,
        **host_fields(),
    )

    def checkpoint_now():
        tensors, groups = optimizer_to_tensors(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.batches"] = batches.get_state()
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        saved = {
            "step": step,
            "param_groups": groups,
            "python_random": random.getstate(),
            "seen_tokens": seen_tokens,
            "train_seconds": train_seconds,
            "loss_sum": loss_sum,
            "loss_steps": loss_steps,
            "wall_seconds": wall_before + time.time() - t_start,
        }
        save_checkpoint(run, step, model, tensors, saved, keep=tc.keep_checkpoints)
        update_meta(run, step=step)

    # Ctrl-C / SIGTERM: finish the current step, checkpoint, exit. A second one exits at once;
    # the last checkpoint is intact because checkpoints are renamed into place whole.
    stop: list[int] = []

    def on_signal(signum, frame):
        if stop:
            update_meta(run, status="interrupted", ended=now())
            os._exit(EXIT_ON_SIGNAL[signum])
        stop.append(signum)

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, on_signal) for s in EXIT_ON_SIGNAL}

    t_start = time.time()
    result: dict = {}
    try:
        model.train()
        while step < tc.steps:
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, tc)
            idx = torch.randint(len(train_set), (tc.batch_size,), generator=batches)
            x, y, mask = answer_batch(train_set.tokens[idx].to(device), train_set.answer_start[idx].to(device))
            logits, _ = model(x)
            loss = answer_loss(logits, y, mask)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise BarkError(
                    f"the training loss became {loss_value} at step {step + 1}; lower train.lr "
                    f"(now {tc.lr}) and train again. The last good checkpoint is kept",
                    code=1,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()

            step += 1
            loss_sum, loss_steps = loss_sum + loss_value, loss_steps + 1
            seen_tokens += int((x != PAD).sum())
            train_seconds += time.perf_counter() - t0
            tokens_per_second = seen_tokens / max(train_seconds, 1e-9)

            if step % tc.eval_every == 0 or step == tc.steps:
                result = evaluate(model, val_set, tc.eval_batch_size, device)
                result = {
                    "step": step,
                    "train_loss": loss_sum / loss_steps,
                    **result,
                    "excess_loss": result["val_loss"] - floor,
                    "lr": lr_at(step - 1, tc),
                    "tokens_per_second": tokens_per_second,
                    "wall_seconds": wall_before + time.time() - t_start,
                }
                append_metrics(run, result)
                loss_sum, loss_steps = 0.0, 0
            if report:  # before the checkpoint: a signal that lands while the display redraws still gets one
                report(
                    {
                        "step": step,
                        "steps": tc.steps,
                        "loss": loss_value,
                        "tokens_per_second": tokens_per_second,
                        "val_accuracy": result.get("val_accuracy"),
                    }
                )
            if step % tc.checkpoint_every == 0 or step == tc.steps or stop:
                checkpoint_now()
            if stop and step < tc.steps:
                update_meta(run, status="interrupted", ended=now())
                raise BarkError(
                    f"interrupted at step {step} of {tc.steps}; a checkpoint is saved. "
                    f"Resume with: barkbench train --resume {run}",
                    code=EXIT_ON_SIGNAL[stop[0]],
                )
        if not result:  # resumed from the final checkpoint of a run killed while it sampled
            result = {"step": step, **evaluate(model, val_set, tc.eval_batch_size, device)}
        summary = sample_and_summarize(run, cfg, model, result, floor)
        summary.update(
            params=params,
            state_bytes=state_bytes,
            tokens_per_second=seen_tokens / max(train_seconds, 1e-9),
            wall_seconds=wall_before + time.time() - t_start,
        )
        write_json(run / "summary.json", summary)
        update_meta(run, status="completed", ended=now())
        return summary
    except BarkError as err:
        if err.code == 1:
            update_meta(run, status="failed", ended=now(), message=str(err))
        raise
    except BaseException as err:
        update_meta(run, status="failed", ended=now(), message=f"{type(err).__name__}: {err}")
        raise
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def sample_and_summarize(run: Path, cfg: RunConfig, model, final: dict, floor: float) -> dict:
    """Samples at the end of training (samples.jsonl) and the summary figures."""
    sc = cfg.sample
    prompts = [sc.prompt] * sc.num_samples if sc.prompt else sample_prompts(cfg.val_task, sc.num_samples, cfg.seed)
    generator = stream(cfg.seed, "sampling")
    prompt_ids = [encode(p) for p in prompts]
    args = (sc.max_new_tokens, sc.temperature, sc.top_k, generator)
    if len(set(prompts)) == 1:  # one prompt: sample all at once as a batch
        answers = generate(model, prompt_ids[0], len(prompts), *args)
    else:
        answers = [generate(model, ids, 1, *args)[0] for ids in prompt_ids]
    verdicts, sample_summary = judge_samples(cfg.val_task, prompt_ids, answers)
    lines = []
    for prompt, answer, verdict in zip(prompts, answers, verdicts):
        stopped = answer[-1:] == [EOS]
        row = {"prompt": prompt, "text": decode(answer[:-1] if stopped else answer), "stopped": stopped, **verdict}
        lines.append(json.dumps(row) + "\n")
    write_atomic(run / "samples.jsonl", "".join(lines))
    summary = {
        "name": run.name,
        "model": cfg.model.name,
        "task": cfg.task.name,
        "seed": cfg.seed,
        "steps": final["step"],
        "val_loss": final["val_loss"],
        "val_accuracy": final["val_accuracy"],
        "floor_loss": floor,
        "excess_loss": final["val_loss"] - floor,
    }
    if "accuracy_by_distance" in final:
        summary["accuracy_by_distance"] = final["accuracy_by_distance"]
    return {**summary, **sample_summary}
