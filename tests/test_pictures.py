"""What a study's report and pictures show, read from the drawn matplotlib figures rather than from
the PNG files: the Runs table's accuracy headers and the run count, the axis labels that claim a
spread over seeds, curves.png's colours, legends and shared scales, collapse.png's lines at 1.00,
and gradients.png's floor. Nothing is trained: the studies' rows are made up from their planned
combinations, and the pictures are kept as Figure objects instead of being saved."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from test_study import frontier_line, memory_map_lines, study_config  # noqa: E402

from barkbench import inspection_plots, plots  # noqa: E402
from barkbench.figures import CONTENT  # noqa: E402
from barkbench.study import findings, outputs, plan, report_file  # noqa: E402
from barkbench.tasks import TASKS  # noqa: E402

HIDDEN = (4, 8, 16)  # three model entries with three state sizes: the study draws a frontier too
GAPS = [[8, 8], [16, 16]]
RATES = [0.001, 0.003, 0.01]


def keep_figures(monkeypatch) -> dict[str, Figure]:
    """Figures by the file name they would be saved as; nothing is rendered or written."""
    drawn = {}
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: drawn.__setitem__(Path(path).name, fig))
    return drawn


def made_up_collect(study: Path, combos: list[dict], task) -> tuple[list[dict], dict]:
    """outputs.collect for a study that trained nothing: every run completed, every model at 1.00
    on every bucket, the all-token accuracy (what tuning chooses on) apart from the barks' own, and
    a validation loss on a scale of its own for each model entry. Each run gets a metrics.jsonl."""
    rows, trained = [], {}
    labels = list(dict.fromkeys(c["label"] for c in combos))
    for combo in combos:
        cfg = combo["config"]
        buckets = sorted({task.buckets.label(v) for v in task.buckets.values(cfg.task)})
        scale = 10.0 ** labels.index(combo["label"])
        lr = RATES.index(combo["tune"]["train.lr"])
        state = 4 * cfg.model.hidden_size
        rows.append(
            {
                "run": combo["name"],
                "name": combo["name"],
                "model": cfg.model.name,
                "label": combo["label"],
                "group": combo["group"],
                "seed": combo["seed"],
                "sweep": combo["sweep"],
                "tune": combo["tune"],
                "status": "completed",
                "params": 100 * cfg.model.hidden_size,
                "state_bytes": state,
                "sequence_state_bytes": state,
                "steps": 3,
                "wall_seconds": 1.0,
                "val_accuracy": 0.6 + 0.1 * lr,
                "val_loss": scale,
                "bark_accuracy": 0.99,
                "test_accuracy": 0.7,
                "test_loss": scale,
                "test_excess_loss": scale / 2,
                "test_bark_accuracy": 0.98,
                "test_stop_accuracy": 1.0,
                "test_exact_match": 1.0,
                "test_accuracy_by_distance": dict.fromkeys(buckets, 1.0),
                "test_exact_match_by_distance": dict.fromkeys(buckets, 1.0),
            }
        )
        trained[combo["name"]] = set(buckets)
        (study / combo["name"]).mkdir()
        losses = [3 * scale, 2 * scale, scale]
        metrics = [{"step": s, "val_loss": loss, "bark_accuracy": 0.99} for s, loss in enumerate(losses, 1)]
        (study / combo["name"] / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return rows, trained


def drawn_study(tmp_path: Path, seeds: list[int]) -> SimpleNamespace:
    """An echo study of three rnn entries x seeds x a joint gap sweep x three tuned learning rates,
    its outputs written from made-up rows: report.md's text, its rows and its figures by file name."""
    data = study_config(
        models=[{"name": "rnn", "hidden_size": h} for h in HIDDEN],
        seeds=seeds,
        sweep={"task.min_gap,task.max_gap": GAPS},
        tune={"train.lr": RATES},
    )
    with pytest.MonkeyPatch.context() as patch:
        figures = keep_figures(patch)
        patch.setattr(outputs, "collect", made_up_collect)
        study = plan.start_study(data, ["model.context_length=32"], tmp_path / "runs")
        written = outputs.write_outputs(study, force=True)
    return SimpleNamespace(
        report=(study / "report.md").read_text(), rows=written["rows"], findings=written["findings"], figures=figures
    )


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    return drawn_study(tmp_path_factory.mktemp("one-seed"), seeds=[0])


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    return drawn_study(tmp_path_factory.mktemp("two-seeds"), seeds=[0, 1])


def markdown_rows(text: str, header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the markdown table in text whose header line starts with header_start."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table[0], table[2:]


def drawn_lines(ax, start: str) -> dict[str, object]:
    """An axes' lines whose label starts with start (not chance, the threshold or a stop mark), by label."""
    return {line.get_label(): line for line in ax.get_lines() if line.get_label().startswith(start)}


def loss_and_accuracy_rows(fig: Figure) -> tuple[list, list]:
    """curves.png's panels: the loss panels and the accuracy panels (loss above accuracy, a pair per
    model, row by row), each in reading order."""
    rows = {0: [], 1: []}
    for ax in fig.axes:
        if ax.get_visible():
            rows[ax.get_subplotspec().rowspan.start % 2].append(ax)
    return rows[0], rows[1]


# ---- report.md ---------------------------------------------------------------------------------


def test_the_runs_table_labels_its_accuracies_by_the_barks_they_count_and_shows_those(two_seeds):
    headers, cells = markdown_rows(two_seeds.report.split("## Runs", 1)[1], "| run |")
    assert headers[-3:] == ["val acc (barks)", "test acc (barks)", "wall s"]
    rows = {r["run"]: r for r in two_seeds.rows}
    for cell in cells:
        row = rows[cell[0]]
        # the content's figures, not the all-token accuracy (val_accuracy) that the Tuning table shows
        assert cell[-3:-1] == [f"{row['bark_accuracy']:.3f}", f"{row['test_bark_accuracy']:.3f}"]
    assert {cell[3] for cell in cells} == {f"gap={g[0]}, lr={lr}" for g in GAPS for lr in RATES}


def test_the_runs_table_of_an_mqar_study_counts_values():
    rows = [
        {"run": None, "label": "gpt", "seed": 0, "sweep": {}, "tune": {}, "status": "not started", "selected": True}
    ]
    headers, _ = report_file.runs_table(rows, TASKS["mqar"].content)
    assert "val acc (values)" in headers and "test acc (values)" in headers
    assert not any("barks" in h for h in headers)


def test_the_report_counts_the_swept_and_tuned_values_it_multiplies(one_seed, two_seeds):
    assert (
        "36 runs: 3 model entries x 2 seeds (0, 1) x 2 values of min_gap,max_gap (swept) x 3 values of lr (tuned); "
        "36 completed" in two_seeds.report
    )
    assert (
        "18 runs: 3 model entries x 1 seed (0) x 2 values of min_gap,max_gap (swept) x 3 values of lr (tuned); "
        "18 completed" in one_seed.report
    )


def test_the_count_names_every_swept_and_tuned_key_and_none_when_there_are_none():
    rows = [
        {"label": label, "seed": 0, "sweep": {"task.message_length": m, "model.hidden_size": h}, "tune": {}}
        for label in ("rnn", "gpt")
        for m in (1, 2, 3)
        for h in (8, 16)
    ]
    assert report_file.counted(rows) == (
        "12 runs: 2 model entries x 1 seed (0) x 3 values of message_length (swept) x 2 values of hidden_size (swept)"
    )
    assert report_file.counted([{"label": "rnn", "seed": 3, "sweep": {}, "tune": {}}]) == (
        "1 run: 1 model entry x 1 seed (3)"
    )


# ---- "± std over seeds" on the axes --------------------------------------------------------------


def ylabels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]


def test_no_picture_of_a_one_seed_study_claims_a_spread_over_seeds(one_seed):
    assert set(one_seed.figures) == {"collapse.png", "frontier.png", "curves.png"}
    for name, fig in one_seed.figures.items():
        for label in ylabels(fig):
            assert "±" not in label and "seeds" not in label, (name, label)
    assert ylabels(one_seed.figures["collapse.png"]) == [
        "test accuracy of the answer's barks",
        "test exact match of each answer",
    ]
    assert ylabels(one_seed.figures["frontier.png"]) == ["test accuracy of the answer's barks"]


def test_the_collapse_and_frontier_axes_of_a_two_seed_study_say_mean_and_std_over_seeds(two_seeds):
    for name in ("collapse.png", "frontier.png"):
        labels = ylabels(two_seeds.figures[name])
        assert labels and all(label.endswith(" (mean ± std over seeds)") for label in labels), (name, labels)


def test_the_frontier_says_std_over_seeds_when_any_line_has_two_seeds_not_only_the_first(monkeypatch, tmp_path):
    drawn = keep_figures(monkeypatch)
    lines = [
        {**frontier_line("gru", f"gru-hidden_size{h}", 4 * h, 4 * h, 0.9, std), "seeds": seeds}
        for h, seeds, std in ((4, [0], 0.0), (8, [0, 1], 0.05), (16, [0, 1], 0.02))  # seed 1 of the first failed
    ]
    study = {"models": lines, "chance": 0.25, "content": "barks"}
    plots.frontier(findings.frontier(lines), tmp_path / "frontier.png", "study", study)
    assert ylabels(drawn["frontier.png"]) == ["test accuracy of the answer's barks (mean ± std over seeds)"]
    for line in lines:
        line["seeds"] = [0]
    plots.frontier(findings.frontier(lines), tmp_path / "frontier.png", "study", study)
    assert ylabels(drawn["frontier.png"]) == ["test accuracy of the answer's barks"]


def test_the_frontier_draws_a_line_per_family_and_swept_cell_never_across_cells(monkeypatch, tmp_path):
    """memory_map's rnn holds 256 bytes at every message length: joined across cells its points made
    a vertical line through three tasks. Each family now has a line per cell, a marker each."""
    drawn = keep_figures(monkeypatch)
    lines = memory_map_lines()
    study = {"models": lines, "chance": 0.25, "content": "barks"}
    plots.frontier(findings.frontier(lines), tmp_path / "frontier.png", "study", study)
    state_panel = drawn["frontier.png"].axes[0]
    drawn_lines = {bars.get_label(): bars.lines[0] for bars in state_panel.containers}  # errorbars: line, caps, bars
    assert set(drawn_lines) == {
        f"{m} at message_length={n}" + " (a cache: grows with the sequence)" * (m == "gpt")
        for m in ("rnn", "lstm", "gru", "gpt")
        for n in (2, 4)
    }
    for line in drawn_lines.values():
        assert len(line.get_xdata()) == 1  # one point a cell here: nothing joins two tasks
    markers = {label: line.get_marker() for label, line in drawn_lines.items()}
    assert markers["rnn at message_length=2"] != markers["rnn at message_length=4"]


def test_the_frontiers_tick_labels_over_three_decades_of_state_stay_apart(monkeypatch, tmp_path):
    """From a GRU's 256 bytes to a cache of 256 KB (induction's span), each tick written short."""
    drawn = keep_figures(monkeypatch)
    lines = [frontier_line("gru", f"gru-hidden_size{h}", 4 * h, 4 * h, 0.9) for h in (64, 128)]
    lines += [frontier_line("gpt", f"gpt-embedding_dim{e}", 4 * e, 4096 * e, 1.0) for e in (16, 64)]
    for line in lines:
        line["seeds"] = [0]
    study = {"models": lines, "chance": 0.25, "content": "barks"}
    plots.frontier(findings.frontier(lines), tmp_path / "frontier.png", "study", study)
    fig = drawn["frontier.png"]
    fig.canvas.draw()
    low, high = fig.axes[0].get_xlim()
    inside = [t for t in fig.axes[0].get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]
    assert {"500", "1k", "20k", "100k"} <= {t.get_text() for t in inside}
    boxes = sorted((t.get_window_extent() for t in inside), key=lambda box: box.x0)
    assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:]))


# ---- curves.png --------------------------------------------------------------------------------


def test_study_curves_colour_runs_that_differ_only_in_a_swept_value_apart(two_seeds):
    loss_row, accuracy_row = loss_and_accuracy_rows(two_seeds.figures["curves.png"])
    assert [ax.get_title() for ax in loss_row] == [f"rnn-hidden_size{h}" for h in HIDDEN]
    for ax in loss_row:
        lines = drawn_lines(ax, "seed ")
        assert len(lines) == 2 * len(GAPS) * len(RATES)
        for lr in RATES:
            for seed in (0, 1):
                at = [lines[f"seed {seed}, gap={g[0]}, lr={lr}"] for g in GAPS]
                assert to_hex(at[0].get_color()) != to_hex(at[1].get_color()), lr
        # a colour per swept and tuned value, a line style per seed
        colours = {to_hex(line.get_color()) for line in lines.values()}
        assert len(colours) == len(GAPS) * len(RATES)
        for g in GAPS:
            seeds = [lines[f"seed {s}, gap={g[0]}, lr={RATES[0]}"] for s in (0, 1)]
            assert to_hex(seeds[0].get_color()) == to_hex(seeds[1].get_color())
            assert seeds[0].get_linestyle() != seeds[1].get_linestyle()


def test_study_curves_legends_write_a_joint_gap_key_as_gap_once(two_seeds):
    loss_row, _ = loss_and_accuracy_rows(two_seeds.figures["curves.png"])
    for ax in loss_row:
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "seed 0, gap=8, lr=0.001" in legend and "seed 1, gap=16, lr=0.01" in legend
        assert not any("max_gap" in text or "[" in text for text in legend), legend


def test_settings_set_together_to_one_value_are_named_by_what_their_keys_share():
    assert findings.short({"task.min_gap,task.max_gap": [8, 8]}) == ["gap=8"]
    assert findings.short({"task.min_gap,task.max_gap": [4, 8]}) == ["min_gap=4", "max_gap=8"]
    assert findings.short({"task.min_gap,task.max_gap": [8, 8], "train.lr": 0.01}) == ["gap=8", "lr=0.01"]
    assert findings.shared_suffix(["min_gap", "max_gap"]) == "gap"
    # a shared end inside a word names nothing: each key is written out
    assert findings.shared_suffix(["hidden", "forgotten"]) == ""
    assert findings.short({"model.hidden,model.forgotten": [2, 2]}) == ["hidden=2", "forgotten=2"]


def test_study_curves_loss_panels_share_one_y_scale(two_seeds):
    loss_row, accuracy_row = loss_and_accuracy_rows(two_seeds.figures["curves.png"])
    # each model's losses sit a decade above the last one's: panels of their own would differ
    highest = [max(max(line.get_ydata()) for line in drawn_lines(ax, "seed ").values()) for ax in loss_row]
    assert highest == [3.0, 30.0, 300.0]
    assert len({ax.get_ylim() for ax in loss_row}) == 1 and loss_row[0].get_ylim()[1] >= 300.0
    assert len({ax.get_ylim() for ax in accuracy_row}) == 1


def test_study_curves_of_many_models_wrap_into_rows_on_one_scale_each(tmp_path, monkeypatch):
    """mqar's 27 models in one row made a picture 13,000 pixels wide: past CURVE_COLUMNS models the
    panel pairs go on to further rows, and every loss panel keeps one scale, every accuracy panel another."""
    drawn = keep_figures(monkeypatch)
    models = 4 * plots.CURVE_COLUMNS + 3  # as many as mqar's
    rows = []
    for i in range(models):
        run = tmp_path / f"m{i}"
        run.mkdir()
        metrics = [{"step": s, "val_loss": 10.0**i / s, CONTENT.name: s / 300} for s in (100, 200, 300)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
        rows.append({"label": f"model{i}", "run": run.name, "sweep": {}, "tune": {}, "seed": 0})
    plots.study_curves(tmp_path, rows, tmp_path / "curves.png", "many", "barks")
    fig = drawn["curves.png"]
    loss_row, accuracy_row = loss_and_accuracy_rows(fig)
    assert [ax.get_title() for ax in loss_row] == [f"model{i}" for i in range(models)]
    assert fig.get_size_inches()[0] <= 4 * plots.CURVE_COLUMNS + 1
    assert {ax.get_subplotspec().rowspan.start for ax in loss_row} == {0, 2, 4, 6, 8}  # five rows of pairs
    assert len({ax.get_ylim() for ax in loss_row}) == 1 and loss_row[0].get_ylim()[1] >= 10.0 ** (models - 1) / 100
    assert len({ax.get_ylim() for ax in accuracy_row}) == 1
    # the title above them all clears the first row's titles (tight_layout alone let them run into it)
    renderer = FigureCanvasAgg(fig).get_renderer()  # as savefig would draw it
    title = next(t for t in fig.texts if t.get_text() == fig.get_suptitle())
    assert title.get_window_extent(renderer).y0 > max(ax.title.get_window_extent(renderer).y1 for ax in loss_row)


# ---- collapse.png ------------------------------------------------------------------------------


def test_collapse_lines_all_at_one_each_have_a_marker_and_sit_apart_at_every_bucket(two_seeds):
    collapse = two_seeds.figures["collapse.png"]
    axis = findings.bucket_axis(two_seeds.findings["models"])
    assert len(axis) == len(GAPS)
    for ax in collapse.axes:
        lines = list(drawn_lines(ax, "rnn-").values())
        assert [line.get_label() for line in lines] == [f"rnn-hidden_size{h} (2 seeds)" for h in HIDDEN]
        assert all(list(line.get_ydata()) == [1.0] * len(axis) for line in lines)
        markers = [line.get_marker() for line in lines]
        assert len(set(markers)) == len(lines) and "None" not in markers and "" not in markers
        for i in range(len(axis)):
            xs = sorted(float(line.get_xdata()[i]) for line in lines)
            assert all(b - a >= 0.05 for a, b in zip(xs, xs[1:])), xs  # apart by more than a marker's wobble
            assert all(abs(x - i) < 0.5 for x in xs), xs  # still over their own bucket


# ---- gradients.png -----------------------------------------------------------------------------


def test_gradients_span_six_decades_below_the_largest_norm_and_smaller_ones_sit_at_the_floor(monkeypatch, tmp_path):
    drawn = keep_figures(monkeypatch)
    top = 200.0
    norms = {
        "layer 1": torch.tensor([top * 1e-9, 3.0, top, 5.0, 0.0]),  # the last state: no gradient, left out
        "layer 2": torch.tensor([1.0, top * 1e-8, 2.0, 1.0, 0.0]),
    }
    labels = ["a", "b", "c", "d", "<EOS>"]
    inspection_plots.gradient_norms(norms, labels, 3, (1, 2), "run", tmp_path / "gradients.png")
    (ax,) = drawn["gradients.png"].axes
    low, high = ax.get_ylim()
    assert low == pytest.approx(top * 1e-6) and high > top
    assert math.log10(high / low) <= 6.5
    at_floor = {
        int(x): y
        for line in ax.get_lines()
        if line.get_marker() == "v" and not line.get_label().startswith("below")
        for x, y in zip(line.get_xdata(), line.get_ydata())
    }
    assert set(at_floor) == {0, 1}  # the two norms below 1e-6 of the largest, one per layer
    assert all(low <= y < 10 * low for y in at_floor.values())
    assert any(text.get_text().startswith("below 1e-6 of the largest") for text in ax.get_legend().get_texts())
