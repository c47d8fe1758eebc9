"""The web console at /admin: server-rendered pages over the same services the API routes call.

Routes parse a form or a query string, call one service as the logged-in admin, and render a template
(templates/console/*.html, autoescaped). Authentication, CSRF and the security headers live in session.py.
"""

from __future__ import annotations

from flask import Flask

from .session import bp, init_session


def init_console(app: Flask) -> None:
    from . import (  # noqa: F401 - they add their routes to bp
        views_auth,
        views_fleet,
        views_payments,
        views_records,
        views_webhooks,
    )

    init_session(app)
    app.register_blueprint(bp)
