"""The shipped studies' outputs as measured (studies/<name>/, made by `make studies`): every
sentence of a report is the one its results.json holds, is what barkbench says of those numbers
today, and names no number that is not in the results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from barkbench.figures import FIGURES, on_test
from barkbench.study import sentences
from barkbench.tasks import TASKS

STUDIES = sorted((Path(__file__).resolve().parent.parent / "studies").glob("*/results.json"))
DECIMAL = re.compile(r"(?<![\w.-])\d+\.\d+(?![\w.])")
BUCKET = re.compile(r"\b\d+-\d+\b")
SIZE = re.compile(r"\b\d[\d,.]* (?:KB|MB|bytes)\b")  # a state's size, as sentences.size writes it


def test_there_are_shipped_study_outputs():
    assert len(STUDIES) >= 3


def figures_of(line: dict, results: dict) -> set[str]:
    """Every number the line's sentence may name, written as a sentence writes it."""
    values = [results["chance"], results["threshold"]]
    for key in [on_test(f) for f in FIGURES] + list(results["sample_figures"]):
        if line.get(key):
            values += [line[key]["mean"], line[key]["std"]]
    for curve in ("by_bucket", "exact_by_bucket"):
        for spread in line.get(curve, {}).values():
            values += [spread["mean"], spread["std"]]
    written = set()
    for value in values:
        written |= {f"{value:.{digits}f}" for digits in range(1, 7)}
    return written


def said_numbers_hold(text: str, allowed: set[str], buckets: set[str]) -> None:
    for number in DECIMAL.findall(text):
        assert number in allowed, f"{number} in {text!r} is not in the results"
    for bucket in BUCKET.findall(text):
        assert bucket in buckets, f"bucket {bucket} in {text!r} is not one the results measured"


@pytest.mark.parametrize("path", STUDIES, ids=[p.parent.name for p in STUDIES])
def test_every_sentence_of_a_shipped_report_names_the_numbers_in_its_results(path):
    results = json.loads(path.read_text())
    report = (path.parent / "report.md").read_text()
    task = TASKS[results["task"]]
    buckets = {b for line in results["models"] for b in line.get("by_bucket", {})}
    for line in results["models"]:
        assert f"- {line['sentence']}\n" in report
        assert sentences.describe(line, task, results["protocol"], results["chance"]) == line["sentence"]
        said_numbers_hold(line["sentence"], figures_of(line, results), buckets)
    if results["comparison"]:
        assert results["comparison"] in report
        said_numbers_hold(results["comparison"], {str(results["threshold"])}, buckets)
    if results.get("frontier"):
        said = sentences.frontier_said(results["frontier"], results["content"])
        assert said == results["frontier_said"] and said in report
        sizes = {sentences.size(p["state_bytes"]) for p in results["frontier"]}
        for named in SIZE.findall(said.replace("KB = 1,024 bytes", "")):
            assert named in sizes, f"{named} in {said!r} is no model's state"
        allowed = {f"{p['accuracy'][k]:.2f}" for p in results["frontier"] for k in ("mean", "std")}
        said_numbers_hold(SIZE.sub("", said.replace("KB = 1,024 bytes", "")), allowed, buckets)


@pytest.mark.parametrize("path", STUDIES, ids=[p.parent.name for p in STUDIES])
def test_a_shipped_study_kept_its_pictures_and_its_time(path):
    kept = path.parent
    report = (kept / "report.md").read_text()
    for picture in re.findall(r"!\[([\w.]+)\]", report):
        assert (kept / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
    timing = json.loads((kept / "timing.json").read_text())
    assert timing["study"] == kept.name and timing["seconds"] > 0
