"""The demo catalogue for first runs: constant-IP vs dynamic, local vs abroad."""

from __future__ import annotations

DEMO_PLANS = [
    {
        "name": "Local dynamic 30d 50GB",
        "location_tag": "local",
        "region": None,
        "duration_days": 30,
        "max_devices": 2,
        "data_limit_mb": 50 * 1024,
        "is_constant_ip": False,
        "price_cents": 500,
    },
    {
        "name": "Local constant-IP 30d 100GB",
        "location_tag": "local",
        "region": None,
        "duration_days": 30,
        "max_devices": 3,
        "data_limit_mb": 100 * 1024,
        "is_constant_ip": True,
        "price_cents": 1200,
    },
    {
        "name": "Abroad dynamic 30d 50GB",
        "location_tag": "abroad",
        "region": None,
        "duration_days": 30,
        "max_devices": 2,
        "data_limit_mb": 50 * 1024,
        "is_constant_ip": False,
        "price_cents": 700,
    },
    {
        "name": "Abroad constant-IP 90d 300GB",
        "location_tag": "abroad",
        "region": "eu-central-1",
        "duration_days": 90,
        "max_devices": 5,
        "data_limit_mb": 300 * 1024,
        "is_constant_ip": True,
        "price_cents": 3900,
    },
]

# Catalog entries for the demo plans' location tags (what customers read instead of the tags).
DEMO_LOCATIONS = [
    {"tag": "local", "name": "Local", "name_fa": "داخلی", "sort_order": 10},
    {"tag": "abroad", "name": "Abroad", "name_fa": "خارجی", "sort_order": 20},
]
