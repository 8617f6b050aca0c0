"""Shared fixtures: a tiny config (trains in well under a second), a writer for config files, a CliRunner."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from typer.testing import CliRunner

TINY = {
    "name": "tiny",
    "seed": 0,
    "task": {"name": "barks", "train_size": 64, "val_size": 16},
    "model": {"name": "gpt", "embedding_dim": 8, "layers": 1, "heads": 2, "context_length": 32},
    "train": {"steps": 3, "batch_size": 8, "eval_every": 1, "eval_batch_size": 16},
    "sample": {"num_samples": 2, "max_new_tokens": 8},
}


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # Test models are tiny and gain nothing from intra-op threads; on a busy 2-core machine
    # a second thread that has to be woken for every small op makes a step many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny():
    """A function returning a fresh copy of the tiny config mapping, to change as a test likes."""
    return lambda: copy.deepcopy(TINY)


@pytest.fixture
def write_config(tmp_path):
    """write_config(mapping or YAML text, name="config.yaml") -> the path of the file in tmp_path."""

    def write(data, name: str = "config.yaml"):
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def runner():
    return CliRunner()
