"""A study's report: report.md, and the same tables for the terminal (barkbench/display.py prints
them). Every figure is on the test split, mean ± standard deviation over seeds."""

from __future__ import annotations

import json
from pathlib import Path

from barkbench.figures import ACCURACY, BY_BUCKET, CONTENT, EXACT, EXCESS, LOSS, STOP, on_test
from barkbench.rundir import write_atomic
from barkbench.study.findings import NEVER, NOT_LEARNED, THRESHOLD, bucket_axis, learned, short, shown, where

REPORTED = (LOSS, EXCESS, CONTENT, STOP, EXACT)  # the figures table's, after params and state bytes


def columns(content: str) -> list[tuple[str, str, int]]:
    """The figures table's columns after the model and its runs: (header, key, digits)."""
    figures = [(f.label(content), on_test(f), f.digits) for f in REPORTED]
    return [("params", "params", 0), ("state bytes", "state_bytes", 0), *figures]


def pm(s: dict | None, digits: int, mean_shown=None) -> str:
    """mean ± std; the mean alone when the seeds agree exactly (or there is one). mean_shown, if
    given, writes the mean (findings.shown: never rounded across the threshold)."""
    if s is None:
        return "-"
    mean = mean_shown(s["mean"], digits) if mean_shown else f"{s['mean']:,.{digits}f}"
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
        row = [line["name"]] + [pm(line["by_bucket"].get(b), 2, shown) + "*" * m for b, m in zip(axis, marked)]
        collapsed = (line["collapse"] or NEVER) if learned(line) else NOT_LEARNED
        row += [collapsed, where(line, axis)] if line["completed"] else ["-", "-"]
        cells.append(row)
    return headers, cells


def tuning_table(findings: dict) -> tuple[list[str], list[list[str]]]:
    every = ACCURACY.label()  # the choice is made on every answer token's accuracy (findings.select)
    headers = ["model", "cell", "value", "runs", f"val {every}", "val loss", f"test {every}", "chosen"]
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
    spread = ", mean ± std over seeds" if several_seeds(findings) else ""
    tables = [(f"{findings['study']}: test figures{spread}", *figures_table(findings))]
    if findings["bucket"]:
        what = BY_BUCKET.said(findings["content"])
        tables.append((f"test {what} by {findings['bucket']}", *bucket_table(findings)))
    return tables


def several_seeds(findings: dict) -> bool:
    """Whether there is a spread over seeds to show: a line with more than one seed."""
    return any(len(line["seeds"]) > 1 for line in findings["models"])


def counted(rows: list[dict]) -> str:
    """How many runs, and what multiplies into them: "48 runs: 4 model entries x 3 seeds (0, 1, 2)
    x 4 values of min_gap,max_gap (swept)", and x the values of each tuned key."""
    labels, seeds = {r["label"] for r in rows}, sorted({r["seed"] for r in rows})
    factors = [f"{len(labels)} model entr{'ies' if len(labels) > 1 else 'y'}"]
    factors.append(f"{len(seeds)} seed{'s' * (len(seeds) > 1)} ({', '.join(map(str, seeds))})")
    for part, done in (("sweep", "swept"), ("tune", "tuned")):
        for key in dict.fromkeys(k for r in rows for k in r[part]):
            values = {json.dumps(r[part].get(key)) for r in rows}
            leaves = ",".join(k.rsplit(".", 1)[-1] for k in key.split(","))
            factors.append(f"{len(values)} values of {leaves} ({done})")
    return f"{len(rows)} run{'s' * (len(rows) != 1)}: {' x '.join(factors)}"


def markdown_table(headers: list[str], cells: list[list[str]], left: int = 1) -> str:
    """A table of text cells in markdown: the first `left` columns to the left, the figures to the right."""
    align = [":---" if i < left else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def write(study: Path, findings: dict, pictures: list[str], protocol: str) -> None:
    """report.md, from the findings (their sentences included) and the sentence that says how the
    runs met the x-axis (sentences.protocol_text)."""
    rows, lines = findings["runs"], findings["models"]
    spread = (
        "mean ± standard deviation over seeds (a figure without ± is the same for every seed)"
        if several_seeds(findings)
        else "one seed's figures"
    )
    text = [
        f"# {study.name}",
        "",
        f"{counted(rows)}; {sum(r['status'] == 'completed' for r in rows)} completed. Every figure is on the test "
        f"split, which nothing was chosen on: {spread}. Loss is in nats per answer token, excess loss the loss "
        "above the task's Bayes floor; "
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
            "the chosen runs. The Tuning table below shows how every value scored (its accuracies count every answer "
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
    text += ["## Runs", "", markdown_table(*runs_table(rows, findings["content"]), left=5), ""]
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
    if not stopped:
        said = "No run stopped early"
    else:
        where = f"step {stopped[0]}" if len(set(stopped)) == 1 else f"steps {stopped[0]} to {stopped[-1]}"
        said = f"{len(stopped)} of {len(rows)} runs stopped early, at {where}"
    return [
        "",
        f"{said}: a run stops at its first evaluation whose validation {CONTENT.said(findings['content'])} reaches "
        f"train.stop_at ({at}), and its test figures are measured there (the Runs table's steps).",
    ]


def runs_table(rows: list[dict], content: str) -> tuple[list[str], list[list[str]]]:
    accuracy = CONTENT.label(content)
    headers = ["run", "model", "seed", "settings", "status", "steps", "chosen", f"val {accuracy}", f"test {accuracy}"]
    headers.append("wall s")
    cells = []
    for r in rows:
        settings = ", ".join(short({**r["sweep"], **r["tune"]})) or "-"
        steps = "-" if r.get("steps") is None else f"{r['steps']}" + " (stopped early)" * bool(r.get("stopped_early"))
        cell = [r["run"] or "-", r["label"], str(r["seed"]), settings, r["status"], steps, "✓" if r["selected"] else ""]
        cell += [f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in (CONTENT.name, on_test(CONTENT))]
        cell.append(f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "-")
        cells.append(cell)
    return headers, cells
