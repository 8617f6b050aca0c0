"""What the terminal shows: progress while training, tables of results, samples."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

out = Console()  # results: stdout, so they can be piped
err = Console(stderr=True)  # progress and messages: stderr


@contextmanager
def training_progress(name: str, steps: int, start: int = 0):
    """A progress bar for one run; yields the `report` callback that `train` calls after every step."""
    with study_progress([name], [steps], [start]) as show:
        show(0, {"status": "running"})
        yield lambda fields: show(0, fields)


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def figures_table(summary: dict) -> Table:
    table = Table(title=summary["name"], caption=f"{summary['model']} on {summary['task']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key in ("name", "model", "task"):
            continue
        if isinstance(value, dict):
            for label, acc in value.items():
                table.add_row(f"accuracy at distance {label}", fmt(acc))
        else:
            table.add_row(key, fmt(value))
    return table


def print_samples(samples: list[dict]) -> None:
    for i, s in enumerate(samples, 1):
        end = "" if s["stopped"] else " [yellow](no <EOS>)[/yellow]"
        out.print(f"[dim]{i:>2}. {s['prompt']}[/dim] {s['text']}{end}", highlight=False, soft_wrap=True)


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


STATUS_STYLE = {"completed": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "dead": "red"}


def runs_table(rows: list[dict]) -> Table:
    """rows: name, model, task, status, step, steps, val_accuracy (or None), age_seconds."""
    table = Table(title="runs")
    table.add_column("name", overflow="fold")  # whole, so it can be copied into --resume
    for col, justify in (
        ("model", "left"),
        ("task", "left"),
        ("status", "left"),
        ("step", "right"),
        ("val acc", "right"),
        ("age", "right"),
    ):
        table.add_column(col, justify=justify)
    for r in rows:
        style = STATUS_STYLE.get(r["status"], "")
        acc = "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.3f}"
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
def study_progress(names: list[str], steps: list[int], start: list[int]):
    """One progress display for every run of a study, one line each; yields show(index, fields),
    where fields are what `train` reports after a step, or {"status": ...}."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val acc {task.fields[acc]}"),
        TextColumn("{task.fields[tps]} tok/s"),
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


def grid_table(title: str, headers: list[str], cells: list[list[str]], left: int = 1) -> Table:
    """A table of text cells: the first `left` columns (names) to the left, the figures to the right."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < left else "right")
    for row in cells:
        table.add_row(*map(escape, row))  # cells are plain text, never markup
    return table
