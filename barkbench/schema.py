"""What every config section is built from: a pydantic model that refuses unknown keys, and
the checks that relate several keys, which run outside pydantic so that they are reported
together with every other problem (see barkbench/config.py)."""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, ConfigDict

# A check: (the dotted keys it reads, check(run config) -> a sentence, or None when all is well).
# It is skipped when one of its keys is already reported as wrong, so each problem is said once.
Check = tuple[tuple[str, ...], Callable]


class Section(BaseModel):
    # No inf or nan: `sample.temperature=inf` or `train.lr=nan` passes every bound and breaks later.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def ordered(section: str, low: str, high: str, why: str = "", fix: str = "swap them") -> Check:
    """The check that section.low is not above section.high (min_gap and max_gap; mqar's
    num_pairs and num_keys, with why the order matters and how to fix it)."""

    def check(cfg):
        lo, hi = getattr(getattr(cfg, section), low), getattr(getattr(cfg, section), high)
        if lo > hi:
            return f"{section}.{low} ({lo}) is above {section}.{high} ({hi}){why}; {fix}"

    return (f"{section}.{low}", f"{section}.{high}"), check
