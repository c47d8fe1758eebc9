"""rayfleet control API. Everything is built in create_app(); importing this module does nothing else."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from werkzeug.exceptions import NotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, ValidationError

from .config import Settings
from .log_redaction import install_request_log_filter

__version__ = "0.1.0"


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` that refuses ids no BIGINT column can hold (a 404, not a database error)."""

    # ASCII digits only: werkzeug's \d also matches fullwidth or Arabic-Indic digits, which int() accepts,
    # so /plans/\uff11 would alias /plans/1.
    regex = r"[0-9]+"

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)

    def to_python(self, value: str) -> int:
        try:
            return super().to_python(value)
        except ValidationError:
            # werkzeug would report the path's other methods as a 405; no such id exists, so say 404.
            raise NotFound() from None


def create_app(settings: Settings | None = None) -> APIFlask:
    from .openapi import RayfleetAPIFlask

    app = RayfleetAPIFlask(
        __name__,
        title="rayfleet control API",
        version=__version__,
        spec_path="/openapi.json",
        docs_path="/docs",
        instance_relative_config=True,
    )
    settings = settings or Settings.from_env(instance_path=app.instance_path)
    if not settings.proof_storage_dir:  # Settings built in code (tests): proofs in the instance folder
        settings = replace(settings, proof_storage_dir=str(Path(app.instance_path) / "proofs"))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    install_request_log_filter()
    app.url_map.converters["int"] = BoundedIntConverter
    _configure(app, settings)

    from . import cli, extensions, metrics, security
    from .api import register_blueprints
    from .console import init_console
    from .http_errors import register_error_handlers
    from .jobs.dispatch import init_embedded_sweep, init_webhook_dispatch
    from .openapi import init_openapi

    extensions.init_extensions(app, settings.database_url, settings.redis_url)
    init_webhook_dispatch(app)
    security.init_security(app)
    register_error_handlers(app)
    register_blueprints(app)
    init_console(app)
    init_openapi(app)
    metrics.init_metrics(app, app.extensions["rayfleet.db"], settings)
    cli.register_commands(app)
    init_embedded_sweep(app)
    return app


def _configure(app: APIFlask, settings: Settings) -> None:
    from .schemas.common import ErrorOut

    app.extensions["rayfleet.settings"] = settings
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ALGORITHM="HS256",
        MAX_CONTENT_LENGTH=settings.max_content_length,
        JSON_SORT_KEYS=False,
        HTTP_ERROR_SCHEMA=ErrorOut,
        VALIDATION_ERROR_SCHEMA=ErrorOut,
        VALIDATION_ERROR_STATUS_CODE=422,
        VALIDATION_ERROR_DESCRIPTION="The request does not match the schema",
        SPEC_FORMAT="json",
        DOCS_UI="redoc",
    )
    if settings.trusted_proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count, x_proto=1)  # type: ignore[method-assign]
