"""Shared fixtures: one thread for torch, a writer for config files, a CliRunner.

Tests that start processes or send signals are marked `slow`: `pytest -m "not slow"` leaves
them out, `make test` runs everything.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers import RUNNER


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts processes or sends signals (deselect with -m 'not slow')")


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # Test models are tiny and gain nothing from intra-op threads; on a busy 2-core machine
    # a second thread that has to be woken for every small op makes a step many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    return RUNNER
