"""HTTP layer: one blueprint per resource; handlers parse, call one service, serialise."""

from __future__ import annotations

from apiflask import APIFlask

from ..request_body import check_request_body
from . import (
    auth,
    configs,
    dashboard,
    discounts,
    health,
    locations,
    nodes,
    notifications,
    payments,
    plans,
    principals,
    subscriptions,
    users,
    wallet,
    webhooks,
)


def register_blueprints(app: APIFlask) -> None:
    app.before_request(check_request_body)
    for module in (
        auth,
        plans,
        locations,
        users,
        wallet,
        configs,
        payments,
        discounts,
        notifications,
        nodes,
        principals,
        dashboard,
        health,
        subscriptions,
        webhooks,
    ):
        app.register_blueprint(module.bp)
