"""agent.core_api: counter names parsed robustly (the live read is in tests/integration/test_agent_stats.py)."""

from __future__ import annotations

from agent.core_api import parse_user_stats


def test_counters_become_one_entry_per_user_sorted_and_zeros_left_out():
    stats = {
        "user>>>cfg-2>>>traffic>>>downlink": 500,
        "user>>>cfg-2>>>traffic>>>uplink": 40,
        "user>>>cfg-1>>>traffic>>>downlink": 7,
        "user>>>cfg-3>>>traffic>>>uplink": 0,
        "user>>>cfg-3>>>traffic>>>downlink": 0,
    }
    assert parse_user_stats(stats) == [
        {"email": "cfg-1", "uplink": 0, "downlink": 7},
        {"email": "cfg-2", "uplink": 40, "downlink": 500},
    ]


def test_odd_counters_are_skipped_without_costing_the_others():
    stats = {
        "inbound>>>api>>>traffic>>>downlink": 10,  # not per user
        "user>>>>>>traffic>>>uplink": 10,  # empty email
        "user>>>cfg-1>>>traffic>>>sideways": 10,
        "user>>>cfg-1>>>traffic": 10,
        "user>>>cfg-1>>>traffic>>>uplink": -5,
        "user>>>cfg-1>>>traffic>>>downlink": "12",
        "user>>>a>>>b>>>traffic>>>downlink": 3,  # an email containing the separator is kept whole
        "": 1,
        "user>>>cfg-9>>>traffic>>>uplink": 9,
    }
    assert parse_user_stats(stats) == [
        {"email": "a>>>b", "uplink": 0, "downlink": 3},
        {"email": "cfg-9", "uplink": 9, "downlink": 0},
    ]
