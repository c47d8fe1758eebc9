"""Handlers, registered in order: admin commands (silent for others) and broadcasts (so an admin's text or file
for a broadcast is never taken for anything else), customer commands, support and help (before the purchase flow
and receipts, so a screenshot for support is not taken for a receipt), the purchase flow, renewals and extra data,
the top-up flow and the auto-renewal button, receipts sent outside an order (passed to the admins), then the
fallbacks (unknown commands, stray input)."""

from __future__ import annotations

from ..context import Shop
from . import admin, auto_renew, broadcast, common, customer, purchase, receipts, renewals, support, topup


def register(shop: Shop) -> None:
    admin.register(shop)
    broadcast.register(shop)
    common.register(shop)
    support.register(shop)
    customer.register(shop)
    purchase.register(shop)
    renewals.register(shop)
    topup.register(shop)
    auto_renew.register(shop)
    receipts.register(shop)
    common.register_fallbacks(shop)
