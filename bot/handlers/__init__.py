"""Handlers, registered in order: admin commands (silent for others), customer commands, the purchase flow,
then the fallbacks (unknown commands, stray input)."""

from __future__ import annotations

from ..context import Shop
from . import admin, common, customer, purchase


def register(shop: Shop) -> None:
    admin.register(shop)
    common.register(shop)
    customer.register(shop)
    purchase.register(shop)
    common.register_fallbacks(shop)
