"""A study's report: report.md, and the same tables for the terminal (barkbench/display.py prints
them). Every figure is on the test split, mean ± standard deviation over seeds."""

from __future__ import annotations

from pathlib import Path

from barkbench.figures import BY_BUCKET, CONTENT, EXACT, EXCESS, LOSS, STOP, on_test
from barkbench.rundir import write_atomic
from barkbench.study.findings import THRESHOLD, bucket_axis, short, where

REPORTED = (LOSS, EXCESS, CONTENT, STOP, EXACT)  # the figures table's, after params and state bytes


def columns(content: str) -> list[tuple[str, str, int]]:
    """The figures table's columns after the model and its runs: (header, key, digits)."""
    figures = [(f.label(content), on_test(f), f.digits) for f in REPORTED]
    return [("params", "params", 0), ("state bytes", "state_bytes", 0), *figures]


def pm(s: dict | None, digits: int) -> str:
    """mean ± std; the mean alone when the seeds agree exactly (or there is one)."""
    if s is None:
        return "-"
    mean = f"{s['mean']:,.{digits}f}"
    return mean + (f" ± {s['std']:,.{digits}f}" if s["std"] else "")


def tuned(line: dict) -> str:
    """The tune value chosen for the line: one, or each cell's."""
    values = [", ".join(short(tune)) for tune in line["tune"]]
    return " / ".join(values) or "-"


def figures_table(findings: dict) -> tuple[list[str], list[list[str]]]:
    lines = findings["models"]
    tune = any(line["tune"] for line in lines)
    extra = [(key.replace("_", " "), key, 2) for key in findings["sample_figures"]]
    shown = columns(findings["content"]) + extra
    headers = ["model", "runs"] + ["chosen"] * tune + [h for h, _, _ in shown]
    cells = []
    for line in lines:
        row = [line["name"], f"{line['completed']}/{line['runs']}"] + [tuned(line)] * tune
        row += [pm(line.get(key), digits) for _, key, digits in shown]
        cells.append(row)
    return headers, cells


def bucket_table(findings: dict) -> tuple[list[str], list[list[str]]]:
    lines = findings["models"]
    axis = bucket_axis(lines)
    headers = ["model"] + axis + ["collapse", "seeds' collapse"]
    cells = []
    for line in lines:
        marked = [b in line["by_bucket"] and b not in line["trained"] for b in axis]
        row = [line["name"]] + [pm(line["by_bucket"].get(b), 2) + "*" * m for b, m in zip(axis, marked)]
        done = bool(line["completed"])
        row += [(line["collapse"] or "none") if done else "-", where(line, axis) if done else "-"]
        cells.append(row)
    return headers, cells


def tuning_table(findings: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "cell", "value", "runs", "val acc", "val loss", "test acc", "chosen"]
    cells = []
    for entry in findings["tuning"]:
        cell = ", ".join(f"{k}={v}" for k, v in entry["sweep"].items()) or "-"
        for c in entry["candidates"]:
            value = ", ".join(f"{k}={v}" for k, v in c["tune"].items())
            cells.append(
                [entry["label"], cell, value, f"{c['completed']}/{c['runs']}"]
                + [pm(c[k], 3) for k in ("val_accuracy", "val_loss", "test_accuracy")]
                + ["✓" if c["selected"] else ""]
            )
    return headers, cells


def terminal_tables(findings: dict) -> list[tuple]:
    """(title, headers, cells) for the terminal: the figures, then accuracy by bucket."""
    tables = [(f"{findings['study']}: test figures, mean ± std over seeds", *figures_table(findings))]
    if findings["bucket"]:
        what = BY_BUCKET.said(findings["content"])
        tables.append((f"test {what} by {findings['bucket']}", *bucket_table(findings)))
    return tables


def markdown_table(headers: list[str], cells: list[list[str]], left: int = 1) -> str:
    """A table of text cells in markdown: the first `left` columns to the left, the figures to the right."""
    align = [":---" if i < left else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def write(study: Path, findings: dict, pictures: list[str], protocol: str) -> None:
    """report.md, from the findings (their sentences included) and the sentence that says how the
    runs met the x-axis (sentences.protocol_text)."""
    rows, lines = findings["runs"], findings["models"]
    seeds = sorted({r["seed"] for r in rows})
    text = [
        f"# {study.name}",
        "",
        f"{len(rows)} runs of {len(lines)} models x {len(seeds)} seeds ({', '.join(map(str, seeds))})"
        + (
            " x the tune values"
            if findings["tuning"] and any(len(t["candidates"]) > 1 for t in findings["tuning"])
            else ""
        )
        + f"; {sum(r['status'] == 'completed' for r in rows)} completed. Every figure is on the test split, which "
        "nothing was chosen on: mean ± standard deviation over seeds (a figure without ± is the same for every "
        "seed). Loss is in nats per answer token, excess loss the loss above the task's Bayes floor; "
        + ", ".join(
            f"`{f.label(findings['content'])}` is the {f.said(findings['content'])}" for f in (CONTENT, STOP, EXACT)
        )
        + "."
        + (
            f" {findings['given'].capitalize()} are given: fed to the model, never counted."
            if findings["given"]
            else ""
        ),
    ]
    if any(len(t["candidates"]) > 1 for t in findings["tuning"]):
        keys = ", ".join(findings["tuning"][0]["candidates"][0]["tune"])
        text += [
            "",
            f"{keys} was tuned: for each model and sweep cell, every seed was trained at every value and the value "
            "with the best mean validation accuracy (ties: the lower validation loss) was chosen; the tables report "
            "the chosen runs. The Tuning table below shows how every value scored (its val acc counts every answer "
            "token, <EOS> included: the figure the choice is made on).",
        ]
    if findings["bucket"]:
        text += [
            "",
            protocol
            + f" The table gives the {BY_BUCKET.said(findings['content'])} by {findings['bucket']}; the collapse "
            f"point is the first bucket whose mean falls below {THRESHOLD}, and the seeds' collapse the range of each "
            f"seed's own. Chance is {findings['chance']:.2f}."
            + " A * marks a bucket the model never trained on."
            * (findings["protocol"]["kind"] == "beyond"),
        ]
    text += ["", markdown_table(*figures_table(findings), left=2 + any(line["tune"] for line in lines)), ""]
    if findings["bucket"]:
        text += [markdown_table(*bucket_table(findings)), ""]
    text += [f"- {line['sentence']}" for line in lines]
    text += ["", findings["frontier_said"]] if findings.get("frontier_said") else []
    text += stops(findings)
    if findings["comparison"]:
        text += ["", findings["comparison"]]
    text += [""] + [f"![{name}]({name})\n" for name in pictures]
    if any(len(t["candidates"]) > 1 for t in findings["tuning"]):
        text += ["## Tuning", "", markdown_table(*tuning_table(findings), left=3), ""]
    text += ["## Runs", "", markdown_table(*runs_table(rows), left=5), ""]
    problems = [r for r in rows if r.get("message")]
    if problems:
        text += ["Runs that did not complete:", ""] + [
            f"- `{r['name']}` ({r['status']}): {r['message']}" for r in problems
        ]
        text.append("")
    write_atomic(study / "report.md", "\n".join(text))


def stops(findings: dict) -> list[str]:
    """The sentence that says which runs stopped early (train.stop_at), and where."""
    rows = findings["runs"]
    stopped = sorted(r["steps"] for r in rows if r.get("stopped_early"))
    if not findings["stop_at"]:
        return []
    at = " or ".join(map(str, findings["stop_at"]))
    where = f"step {stopped[0]}" if len(set(stopped)) == 1 else f"steps {stopped[0]} to {stopped[-1]}"
    said = f"{len(stopped)} of {len(rows)} runs stopped early, at {where}" if stopped else "No run stopped early"
    return [
        "",
        f"{said}: a run stops at its first evaluation whose validation {CONTENT.said(findings['content'])} reaches "
        f"train.stop_at ({at}), and its test figures are measured there (the Runs table's steps).",
    ]


def runs_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["run", "model", "seed", "settings", "status", "steps", "chosen", "val acc", "test acc", "wall s"]
    cells = []
    for r in rows:
        settings = ", ".join(short({**r["sweep"], **r["tune"]})) or "-"
        steps = "-" if r.get("steps") is None else f"{r['steps']}" + " (stopped early)" * bool(r.get("stopped_early"))
        cell = [r["run"] or "-", r["label"], str(r["seed"]), settings, r["status"], steps, "✓" if r["selected"] else ""]
        cell += [f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in ("val_accuracy", "test_accuracy")]
        cell.append(f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "-")
        cells.append(cell)
    return headers, cells
