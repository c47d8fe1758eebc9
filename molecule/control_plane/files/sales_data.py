"""Verify's data for the backup/restore check, run on the control plane host with the app's venv.

    python sales_data.py seed      # users, configs, payments and usage rows (once; idempotent)
    python sales_data.py digest    # JSON: per table, the row count and an md5 of every row's text

DATABASE_URL comes from the environment (rayfleet.env). The digest is computed by PostgreSQL itself
(`md5(string_agg(t::text ...))`), so the comparison is row by row and column by column.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import timedelta

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from control_api.models import Node, Payment, Plan, Usage, User, UserConfig, utcnow

TABLES = ("payments", "user_configs", "usage", "users")
USERS = 20


def seed(session: Session) -> None:
    # Once: its own plan marks the seed (the real job of verify has sold to a customer before).
    if session.scalar(select(func.count()).select_from(Plan).where(Plan.name == "backup-check")):
        return
    plan = Plan(
        name="backup-check", location_tag="any", duration_days=30, max_devices=2, data_limit_mb=10240, price_cents=500
    )
    node = Node(
        name="backup-check-node",
        region="test",
        location_tag="any",
        client_id=uuid.uuid4().hex,
        secret_hash="not-a-real-hash",  # noqa: S106 - no agent logs in to this node
    )
    session.add_all([plan, node])
    session.flush()
    now = utcnow()
    for index in range(USERS):
        user = User(telegram_id=900_000 + index, username=f"buyer{index}", subscription_token=uuid.uuid4().hex)
        session.add(user)
        session.flush()
        config = UserConfig(
            user_id=user.id,
            node_id=node.id,
            plan_id=plan.id,
            uuid=str(uuid.uuid4()),
            kind="full",
            status="active",
            data_limit_mb=10240,
            expires_at=now + timedelta(days=30),
        )
        session.add(config)
        session.flush()
        payment = Payment(
            user_id=user.id,
            plan_id=plan.id,
            amount_cents=500 + index,
            status="approved",
            evidence_file_id=f"file-{index}",
            auto_accept_at=now + timedelta(days=3),
        )
        payment.config_id = config.id
        session.add(payment)
        for hour in range(5):
            session.add(
                Usage(
                    user_id=user.id,
                    config_id=config.id,
                    bytes_in=1000 * index + hour,
                    bytes_out=7 * index + hour,
                    period_start=now - timedelta(hours=hour + 1),
                    period_end=now - timedelta(hours=hour),
                )
            )
    session.commit()


def digest(session: Session) -> dict[str, dict[str, object]]:
    result = {}
    for table in TABLES:
        count, checksum = session.execute(
            text(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t")  # noqa: S608 - fixed names
        ).one()
        result[table] = {"count": count, "md5": checksum}
    return result


def main() -> None:
    engine = create_engine(os.environ["DATABASE_URL"])
    with Session(engine) as session:
        if sys.argv[1] == "seed":
            seed(session)
        print(json.dumps(digest(session), sort_keys=True))


if __name__ == "__main__":
    main()
