"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

delay(n) = uniform(0, min(cap, base * 2**n)): retries of many nodes after a control-plane outage
spread out instead of arriving in waves.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_SYSTEM_RANDOM = random.SystemRandom()


def backoff_ceiling(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """The upper bound of the delay before retry ATTEMPT (0 = the first retry): min(cap, base * 2**attempt)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if base <= 0 or cap <= 0:
        raise ValueError(f"base and cap must be positive, got base={base} cap={cap}")
    if attempt >= 64:  # 2**64 * base is past any sane cap; avoid float overflow for huge attempts
        return cap
    return min(cap, base * 2**attempt)


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 300.0, rand: Callable[[], float] = _SYSTEM_RANDOM.random
) -> float:
    """Seconds to wait before retry ATTEMPT: full jitter, uniform in [0, backoff_ceiling(attempt)).

    RAND returns a float in [0, 1); pass a fixed one in tests.
    """
    return backoff_ceiling(attempt, base, cap) * rand()
