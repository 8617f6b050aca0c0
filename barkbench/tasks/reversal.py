"""reverse: as copy (barkbench/tasks/copying.py), with the answer the n barks in reverse order.
The first answer token needs the last source token, the last the first: Sutskever et al. (2014)
reversed their sources because it shortens the paths a recurrent bottleneck must carry."""

from __future__ import annotations

from barkbench.tasks.copying import CopyConfig, task


class ReverseConfig(CopyConfig):
    name: str = "reverse"


TASK = task(reverse=True, config=ReverseConfig)
