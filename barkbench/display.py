"""What the terminal shows: progress while training, tables of results, samples."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from barkbench.buckets import bucket_order
from barkbench.figures import CONTENT, FIGURES

CLOSED = threading.Event()  # set once the reader of stdout or stderr has gone away


class Terminal(Console):
    """A console whose reader may go away (`barkbench train ... 2>&1 | head`): the rest of its
    output is dropped, and output_closed() says so, so that a run stops at a checkpoint as it does
    on Ctrl-C, rather than dying in a print (rich's own answer is SystemExit)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        CLOSED.set()
        try:  # so that flushing the stream at exit fails no more
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.file.fileno())
        except (OSError, ValueError):
            pass


def output_closed() -> int | None:
    """SIGPIPE once stdout or stderr has been closed by its reader: a request to stop (interrupts.Stop)."""
    return signal.SIGPIPE if CLOSED.is_set() else None


def console(stderr: bool = False) -> Console:
    """A console that fits the terminal, or, piped into a file, lays tables out 160 wide rather
    than folding them into the 80 columns of a terminal that is not there."""
    stream = sys.stderr if stderr else sys.stdout
    return Terminal(stderr=stderr, width=None if stream.isatty() or "COLUMNS" in os.environ else 160)


out = console()  # results: stdout, so they can be piped
err = console(stderr=True)  # progress and messages: stderr


@contextmanager
def training_progress(name: str, steps: int, start: int = 0, content: str = "barks"):
    """Progress for one run; yields the `on_step` callback that `train` calls after every step.
    content: what the task's answer holds, for the accuracy's label."""
    with study_progress([name], [steps], [start], content) as show:
        show(0, {"status": "running"})
        yield lambda fields: show(0, fields)
        show(0, {"status": "completed"})


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def figures_table(summary: dict, content: str = "barks") -> Table:
    """A run's final figures, validation beside test, each row saying what it counts."""
    table = Table(title=summary["name"], caption=f"{summary['model']} on {summary['task']}, {summary['steps']} steps")
    for column, justify in (("figure", "left"), ("validation", "right"), ("test", "right")):
        table.add_column(column, justify=justify)

    def split(key: str) -> tuple:
        val = summary.get(f"val_{key}", summary.get(key))
        return fmt(val) if val is not None else "-", fmt(summary[f"test_{key}"]) if f"test_{key}" in summary else "-"

    for figure in FIGURES:
        table.add_row(figure.said(content), *split(figure.name))
    for key, value in summary.items():
        if key.startswith(("accuracy_by_", "exact_match_by_")):
            what = f"accuracy of {content}" if key.startswith("accuracy") else "exact match"
            test = summary.get(f"test_{key}", {})
            for label in sorted(value.keys() | test.keys(), key=bucket_order):  # a small split may miss a bucket
                shown = [fmt(v[label]) if label in v else "-" for v in (value, test)]
                table.add_row(f"{what} at {key.rsplit('_by_', 1)[1]} {label}", *shown)
    table.add_section()
    shown = {f.name for f in FIGURES} | {"name", "model", "task", "seed", "steps"}
    for key, value in summary.items():
        plain = key.removeprefix("test_").removeprefix("val_")
        if plain not in shown and not isinstance(value, dict):
            table.add_row(key.replace("_", " "), "", fmt(value))
    return table


def print_samples(samples: list[dict]) -> None:
    """One line per sample: the prompt, the answer (the words the task gave in place, dim), and
    where the task judges it, ✓ or ✗ and what the answer should have been."""
    for i, s in enumerate(samples, 1):
        end = "" if s["stopped"] else " [yellow](no <EOS>)[/yellow]"
        if "correct" in s:
            end += (
                "  [green]✓[/green]" if s["correct"] else f"  [red]✗[/red] [dim]expected: {escape(s['expected'])}[/dim]"
            )
        given = set(s.get("given", ()))
        words = [f"[dim]{escape(w)}[/dim]" if j in given else escape(w) for j, w in enumerate(s["text"].split())]
        out.print(f"[dim]{i:>2}. {escape(s['prompt'])}[/dim] {' '.join(words)}{end}", highlight=False, soft_wrap=True)


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "interrupted": "yellow",
    "failed": "red",
    "dead": "red",
    "damaged": "red",
}


def runs_table(rows: list[dict]) -> Table:
    """rows: name, model, task, status, step, steps, accuracy (or None), age_seconds."""
    table = Table(
        title="runs",
        caption="val acc: the answer's content on validation (barks; mqar's values), <EOS> and given tokens not counted",
    )
    table.add_column("name", overflow="fold")  # whole, so it can be copied into --resume
    for col, justify in (
        ("model", "left"),
        ("task", "left"),
        ("status", "left"),
        ("step", "right"),
        (f"val {CONTENT.label('content')}", "right"),
        ("age", "right"),
    ):
        table.add_column(col, justify=justify)
    for r in rows:
        style = STATUS_STYLE.get(r["status"], "dim")
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        table.add_row(
            escape(r["name"]),
            r["model"],
            r["task"],
            f"[{style}]{r['status']}[/{style}]",
            f"{r['step']}/{r['steps']}",
            acc,
            age(r["age_seconds"]),
        )
    return table


@contextmanager
def study_progress(names: list[str], steps: list[int], start: list[int], content: str = "barks"):
    """One progress display for every run of a study, one line each; yields show(index, fields),
    where fields are what `train` reports after a step, or {"status": ...}. When stderr is not a
    terminal (piped to a file), a plain line per evaluation and per change of status instead."""
    accuracy = f"val {CONTENT.label(content)}"
    if not err.is_terminal:
        yield plain_progress(names, steps, start, accuracy)
        return
    from rich.progress import (  # the live display's machinery: only for a run in a terminal
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("train loss {task.fields[loss]}"),
        TextColumn(accuracy + " {task.fields[acc]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=err,
    )
    tasks = [
        progress.add_task(n, total=s, completed=c, loss="-", acc="-", tps="-", status="[dim]queued[/dim]")
        for n, s, c in zip(names, steps, start)
    ]

    def show(i: int, f: dict):
        if "status" in f:
            style = STATUS_STYLE.get(f["status"], "dim")
            progress.update(tasks[i], status=f"[{style}]{f['status']}[/{style}]")
            return
        acc = "-" if f["val_accuracy"] is None else f"{f['val_accuracy']:.3f}"
        progress.update(
            tasks[i], completed=f["step"], loss=f"{f['loss']:.4f}", acc=acc, tps=f"{f['tokens_per_second']:,.0f}"
        )

    with progress:
        yield show


def plain_progress(names: list[str], steps: list[int], start: list[int], accuracy: str):
    """show(index, fields) as plain lines: one at each evaluation, one at each change of status."""
    began = {}

    def show(i: int, f: dict):
        if "status" in f:
            if f["status"] == "running":
                began.setdefault(i, time.monotonic())
            err.print(f"{names[i]}: {f['status']}", highlight=False, soft_wrap=True)
        elif f.get("evaluated"):
            elapsed = time.monotonic() - began.setdefault(i, time.monotonic())
            eta = elapsed / max(f["step"] - start[i], 1) * (steps[i] - f["step"])
            acc = "-" if f["val_accuracy"] is None else f"{f['val_accuracy']:.3f}"
            err.print(
                f"{names[i]}: step {f['step']}/{steps[i]}, train loss {f['loss']:.4f}, {accuracy} {acc}, "
                f"{f['tokens_per_second']:,.0f} tok/s, {clock(elapsed)} elapsed, eta {clock(eta)}",
                highlight=False,
                soft_wrap=True,
            )

    return show


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def grid_table(title: str, headers: list[str], cells: list[list[str]], left: int = 1) -> Table:
    """A table of text cells: the first `left` columns (names) to the left, the figures to the right."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < left else "right")
    for row in cells:
        table.add_row(*map(escape, row))  # cells are plain text, never markup
    return table
