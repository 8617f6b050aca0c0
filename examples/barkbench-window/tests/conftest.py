import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # The models here are tiny: a second thread that has to be woken for every small op only slows them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
