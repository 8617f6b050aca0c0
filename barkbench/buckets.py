"""Bucket labels: the groups a task's results are counted in ("8-15", "1-8"), and their order.
Apart from the tasks because the study report sorts them without loading the task registry."""

from __future__ import annotations


def power_of_two_bucket(value: int) -> str:
    """Powers-of-two buckets ("8-15", "16-31", ...): the same labels whatever the task's range,
    so runs with different settings line up in a comparison, and fine where RNNs start to forget."""
    low = 1 << (max(int(value), 1).bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def bucket_order(label: str) -> int:
    return int(label.split("-")[0])
