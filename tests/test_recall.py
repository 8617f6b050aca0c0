"""The recall tasks (mqar, selective_copy, induction): their layouts, given tokens in training,
evaluation and generation, every model family on every task, and the CLI on a run of its own
vocabulary."""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers import PNG, SMALL, model_config

from barkbench.cli import app
from barkbench.config import SampleConfig
from barkbench.evaluate import answer_loss, evaluate, to_batch
from barkbench.models import MODELS, build_model
from barkbench.sample import draw_samples
from barkbench.tasks import TASKS, sample_prompts, stream
from barkbench.vocab import ASSISTANT, BARKS, EOS, PAD, SPEAK, USER, VOCAB


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mqar_lays_out_distinct_keys_then_queries_with_their_values():
    task = TASKS["mqar"]
    cfg = task.config(num_keys=10, num_values=5, num_pairs=6, num_queries=4)
    words = task.vocab(cfg)
    assert words[len(VOCAB) :] == tuple(f"k{i}" for i in range(10)) + tuple(f"v{i}" for i in range(5))
    data = task.make(cfg, 500, gen(0))
    assert data.tokens.shape[1] == task.longest(cfg) == 2 * 6 + 2 * 4 + 4
    asked = set()
    for row, start, given in zip(data.tokens.tolist(), data.answer_start.tolist(), data.given.tolist()):
        keys, values = row[1:13:2], row[2:13:2]
        assert row[0] == USER and row[13] == SPEAK and row[14] == ASSISTANT and start == 15
        assert len(set(keys)) == 6 and all(words[k].startswith("k") for k in keys)
        assert all(words[v].startswith("v") for v in values)
        pairs = dict(zip(keys, values))
        queries, answers = row[15:23:2], row[16:23:2]
        assert len(set(queries)) == 4 and set(queries) <= set(keys)
        assert answers == [pairs[q] for q in queries]  # each value right after the key it answers
        assert row[23] == EOS
        assert [i for i, g in enumerate(given) if g] == [15, 17, 19, 21]  # the query keys are given
        asked |= {keys.index(q) for q in queries}
    assert asked == set(range(6))  # every pair gets asked
    assert len({tuple(r[1:13]) for r in data.tokens.tolist()}) == 500  # the prompts differ


def test_selective_copy_spans_hold_the_barks_in_order_among_blanks():
    task = TASKS["selective_copy"]
    cfg = task.config(length=20, num_tokens=5)
    blank = task.vocab(cfg).index("_")
    data = task.make(cfg, 500, gen(1))
    assert data.tokens.shape[1] == task.longest(cfg) == 20 + 5 + 4
    places = set()
    for row, start in zip(data.tokens.tolist(), data.answer_start.tolist()):
        span = row[1:21]
        barks = [t for t in span if t != blank]
        assert len(barks) == 5 and all(t in BARKS for t in barks) and span.count(blank) == 15
        assert row[21] == SPEAK and row[22] == ASSISTANT and start == 23
        assert row[23:28] == barks and row[28] == EOS
        places |= {i for i, t in enumerate(span) if t != blank}
    assert places == set(range(20))  # the barks sit anywhere in the span


def test_induction_answers_what_followed_the_trigger():
    task = TASKS["induction"]
    cfg = task.config(min_length=4, max_length=12)
    data = task.make(cfg, 2000, gen(2))
    lengths, places = set(), set()
    for row, start in zip(data.tokens.tolist(), data.answer_start.tolist()):
        L = start - 3
        body = row[1 : L + 1]
        assert row[0] == USER and body.count(SPEAK) == 1 and row[L + 1] == SPEAK and row[L + 2] == ASSISTANT
        at = body.index(SPEAK)
        assert at <= L - 2 and body[at + 1] in BARKS  # the trigger is followed by x inside the body
        assert all(t in BARKS for i, t in enumerate(body) if i != at)
        assert row[start] == body[at + 1] and row[start + 1] == EOS and all(t == PAD for t in row[start + 2 :])
        lengths.add(L)
        places.add(at)
    assert lengths == set(range(4, 13)) and places == set(range(11))


def tiny_model(name: str, vocab_size: int):
    torch.manual_seed(0)
    cfg = model_config(task={"name": "mqar"}, **{**SMALL, "name": name, "context_length": 128})
    return build_model(cfg, vocab_size).eval()


SETTINGS = {  # every task small enough to train a step of every model on
    "mqar": {"num_keys": 6, "num_values": 5, "num_pairs": 4, "num_queries": 3},
    "selective_copy": {"length": 10, "num_tokens": 3},
    "induction": {"min_length": 3, "max_length": 9},
    "echo": {"message_length": 2, "max_gap": 6},
    "copy": {"max_length": 5},
    "reverse": {"max_length": 5},
    "cycle": {"min_barks": 3, "max_barks": 8},
    "barks": {},
}


def test_settings_cover_every_task():
    assert set(SETTINGS) == set(TASKS)


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_model_family_trains_evaluates_and_samples_every_task(task_name, model_name):
    """A training step, evaluation and the end-of-run samples, on the task's own vocabulary; the
    samples hold the task's given tokens in place."""
    task = TASKS[task_name]
    cfg = task.config(name=task_name, **SETTINGS[task_name])
    words = task.vocab(cfg)
    model = tiny_model(model_name, len(words))
    data = task.make(cfg, 16, gen(3))
    model.train()
    x, y, mask, start = to_batch(data, "cpu")
    loss = answer_loss(model.teacher_forcing(x, start), y, mask)
    loss.backward()
    assert torch.isfinite(loss)
    label = task.buckets.label if task.buckets else None
    figures = evaluate(model, data, 5, "cpu", label)
    assert 0 <= figures["bark_accuracy"] <= 1 and ("by_bucket" in figures) == bool(task.buckets)
    rows, _ = draw_samples(model, cfg, SampleConfig(num_samples=3, max_new_tokens=30), 0, stream(0, "sampling"))
    assert len(rows) == 3
    if data.given is not None:
        truth = [answer for _, answer, _ in sample_prompts(cfg, 3, 0)]
        for row, answer in zip(rows, truth):
            said = row["text"].split()
            assert row["given"] == list(range(0, min(len(said), 2 * cfg.num_queries), 2))
            assert all(said[i] == words[answer[i]] for i in row["given"])


def write(path, data: dict):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


MQAR_RUN = {
    "name": "mqar-tiny",
    "task": {"name": "mqar", "num_keys": 8, "num_values": 8, "num_pairs": 4, "train_size": 64, "val_size": 16},
    "model": {"name": "gpt", "embedding_dim": 16, "layers": 1, "heads": 2, "context_length": 32},
    "train": {"steps": 3, "batch_size": 8, "eval_every": 3},
    "sample": {"num_samples": 2, "max_new_tokens": 12},
}


@pytest.fixture(scope="module")
def mqar_run(tmp_path_factory, runner):
    root = tmp_path_factory.mktemp("mqar")
    result = runner.invoke(app, ["train", "--config", str(write(root / "c.yaml", MQAR_RUN)), "--runs-dir", str(root)])
    assert result.exit_code == 0, result.output
    return next(p for p in root.iterdir() if p.is_dir()), result


def test_an_mqar_run_labels_its_figures_by_values_and_shows_given_keys(mqar_run):
    run, result = mqar_run
    assert "accuracy of the answer's values" in result.stdout and "val acc (values)" in result.stderr
    samples = [yaml.safe_load(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    for s in samples:
        said = s["text"].split()
        assert s["given"] == [0, 2, 4, 6][: len(range(0, len(said), 2))] and all(said[i][0] == "k" for i in s["given"])
        assert s["expected"].split()[::2] == said[::2][:4]  # the given keys are the expected ones, in place


def test_generate_on_an_mqar_run_puts_the_query_keys_in_place(mqar_run, runner):
    run, _ = mqar_run
    result = runner.invoke(app, ["generate", str(run), "-n", "3", "--temperature", "0"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "Assistant:" in line]
    assert len(lines) == 3
    for line in lines:
        answer = line.split("Assistant:")[1].split("✓")[0].split("✗")[0].split()[:8]  # 4 queries: 8 words
        expected = line.split("expected:")[1].split() if "expected:" in line else answer
        keys = answer[::2]
        assert keys == expected[::2][: len(keys)] and all(w[0] == "k" for w in keys)


def test_a_prompt_outside_the_run_s_vocabulary_lists_its_shape(mqar_run, runner):
    run, _ = mqar_run
    result = runner.invoke(app, ["generate", str(run), "--prompt", "User: k9 v1 speak Assistant:"])
    assert result.exit_code == 2
    assert "'k9'" in result.stderr and "k0..k7 v0..v7" in result.stderr and "Traceback" not in result.output


def test_inspect_labels_an_mqar_run_with_its_own_words(mqar_run, runner, tmp_path):
    run, _ = mqar_run
    result = runner.invoke(app, ["inspect", str(run), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "attention-layer1.png").read_bytes()[:8] == PNG


def test_an_eval_that_changes_the_vocabulary_is_refused(runner, tmp_path):
    data = {**MQAR_RUN, "eval": {"num_keys": 16}}
    result = runner.invoke(app, ["validate", "--config", str(write(tmp_path / "c.yaml", data))])
    assert result.exit_code == 2
    assert "eval" in result.stderr and "vocabulary" in result.stderr
