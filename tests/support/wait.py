"""Waiting on a condition instead of a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    produce: Callable[[], T | None], *, timeout: float = 120.0, interval: float = 0.1, what: str = "condition"
) -> T:
    """Polls until `produce` returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = produce()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)
