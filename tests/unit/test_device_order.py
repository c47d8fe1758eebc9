"""Which devices keep their service: the oldest by first_seen, and between equal times the agent's order
(newest first), since two addresses first seen in one agent round share a time."""

from control_api.services.devices import _devices


def test_equal_first_seen_times_keep_the_agents_newest_first_order():
    entry = {
        "email": "cfg-1",
        "count": 3,
        "addresses": [
            {"address": "198.51.100.3", "first_seen": 200, "last_seen": 210},  # newest
            {"address": "198.51.100.2", "first_seen": 100, "last_seen": 210},
            {"address": "198.51.100.1", "first_seen": 100, "last_seen": 210},  # listed last: the oldest
        ],
    }
    count, ordered = _devices(entry, None)
    assert count == 3
    assert [address for _first, address in ordered] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
