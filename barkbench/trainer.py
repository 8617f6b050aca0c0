"""What a run carries from one step to the next, saved and restored as one object
(TrainerState), the optimiser it trains with, and the learning-rate schedule."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from barkbench.checkpoints import load_trainer_state, load_weights, save_checkpoint
from barkbench.models import build_model
from barkbench.rundir import update_meta
from barkbench.tasks import stream

# The scalars of TrainerState that a checkpoint keeps beside the tensors.
COUNTERS = ("step", "seen_tokens", "train_seconds", "loss_sum", "loss_steps", "wall_before", "stopped")


def lr_at(step: int, cfg) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_optimizer(model: torch.nn.Module, tc) -> torch.optim.Optimizer:
    """AdamW with weight decay on every parameter but those the model keeps out of it (by default
    biases and norm gains; Mamba's A_log too: barkbench/models/protocol.py); fused (one kernel for
    every parameter: half the optimiser's time on these small models, and as deterministic) where
    this torch and device have the fused kernel."""
    kept = {id(p) for p in model.no_decay_parameters()}
    decay = [p for p in model.parameters() if id(p) not in kept]
    no_decay = [p for p in model.parameters() if id(p) in kept]
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.95), fused=True)
    except (RuntimeError, TypeError):  # a torch without the fused kernel for this device
        return torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.95))


@dataclass
class TrainerState:
    """The model, its optimiser, the batch-order generator and the counters: everything that
    resuming must restore, bit for bit, for a run to end as if it had never stopped."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batches: torch.Generator
    device: torch.device
    step: int = 0
    seen_tokens: int = 0
    train_seconds: float = 0.0  # time inside training steps, for tokens/s
    loss_sum: float = 0.0  # train loss since the last evaluation ...
    loss_steps: int = 0  # ... over this many steps
    wall_before: float = 0.0  # wall time of the sessions before this one
    stopped: int = 0  # when it stopped early (train.stop_at): the train.steps it was heading for
    started: float = field(default_factory=time.time)

    @classmethod
    def start(cls, cfg, device: torch.device) -> TrainerState:
        # Everything random comes from the seed: the data from their own named streams, the
        # weights and dropout from torch's global generator, the batch order from `batches`.
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, len(cfg.vocab)).to(device)
        return cls(model, build_optimizer(model, cfg.train), stream(cfg.seed, "batches"), device)

    def count(self, loss: float, tokens: int, seconds: float) -> None:
        """Book one finished step."""
        self.step += 1
        self.loss_sum, self.loss_steps = self.loss_sum + loss, self.loss_steps + 1
        self.seen_tokens += tokens
        self.train_seconds += seconds

    def mean_loss(self) -> float:
        """The mean train loss since the last evaluation: what metrics.jsonl and progress show."""
        return self.loss_sum / max(self.loss_steps, 1)

    def train_loss(self) -> float:
        """The mean train loss since the last call, which starts a new window."""
        mean = self.mean_loss()
        self.loss_sum, self.loss_steps = 0.0, 0
        return mean

    def tokens_per_second(self) -> float:
        return self.seen_tokens / max(self.train_seconds, 1e-9)

    def wall_seconds(self) -> float:
        return self.wall_before + time.time() - self.started

    def save(self, run: Path, keep: int) -> None:
        sd = self.optimizer.state_dict()
        tensors = {f"optim.{i}.{name}": t for i, state in sd["state"].items() for name, t in state.items()}
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.batches"] = self.batches.get_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        scalars = {k: getattr(self, k) for k in COUNTERS} | {"wall_before": self.wall_seconds()}
        scalars |= {"param_groups": sd["param_groups"], "python_random": random.getstate()}
        save_checkpoint(run, self.step, self.model, tensors, scalars, keep=keep)
        update_meta(run, step=self.step)

    def restore(self, checkpoint: Path) -> None:
        load_weights(self.model, checkpoint)
        tensors, scalars = load_trainer_state(checkpoint)
        state: dict[int, dict] = {}
        for key, t in tensors.items():
            if key.startswith("optim."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = t
        groups = [{**g, "betas": tuple(g["betas"])} for g in scalars["param_groups"]]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        torch.set_rng_state(tensors["rng.torch"])
        self.batches.set_state(tensors["rng.batches"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        version, internal, gauss = scalars["python_random"]
        random.setstate((version, tuple(internal), gauss))
        for k in COUNTERS:
            setattr(self, k, scalars.get(k, getattr(self, k)))  # a checkpoint from before a counter: its start
        self.started = time.time()
