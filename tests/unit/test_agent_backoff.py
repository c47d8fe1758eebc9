"""agent.backoff: exponential ceiling, capped, full jitter in [0, ceiling)."""

from __future__ import annotations

import pytest

from agent.backoff import backoff_ceiling, backoff_delay


def test_the_ceiling_doubles_from_base_until_the_cap():
    assert [backoff_ceiling(n, base=1, cap=60) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_ceiling(0, base=0.5, cap=10) == 0.5
    assert backoff_ceiling(10**6, base=1, cap=300) == 300  # no overflow for absurd attempt counts


def test_full_jitter_spans_zero_to_the_ceiling():
    assert backoff_delay(3, base=1, cap=60, rand=lambda: 0.0) == 0
    assert backoff_delay(3, base=1, cap=60, rand=lambda: 0.5) == 4
    assert backoff_delay(20, base=1, cap=60, rand=lambda: 0.999) == pytest.approx(59.94)


def test_real_randomness_stays_in_bounds_and_varies():
    delays = [backoff_delay(5, base=1, cap=20) for _ in range(500)]
    assert all(0 <= delay < 20 for delay in delays)
    assert len(set(delays)) > 400
    assert min(delays) < 5 < max(delays)  # jitter covers the whole range, not just near the ceiling


@pytest.mark.parametrize(("attempt", "base", "cap"), [(-1, 1, 10), (0, 0, 10), (0, 1, 0), (0, -1, 10)])
def test_nonsense_arguments_are_refused(attempt, base, cap):
    with pytest.raises(ValueError, match="must be"):
        backoff_ceiling(attempt, base, cap)
