"""Statements marked PREPARED run as server-side prepared statements on a real PostgreSQL: prepared once per
connection, with the same results as when sent as text, and anything the rewrite cannot type runs as sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import ARRAY, BigInteger, Integer, any_, bindparam, literal_column, select

from control_api.database import make_engine
from control_api.models import Node
from control_api.models.base import UTCDateTime
from control_api.prepared_statements import PREPARED

pytestmark = pytest.mark.postgres
NODES = Node.__table__


def prepared_here(connection) -> list[str]:
    """The statements this database session has prepared (PostgreSQL's own view)."""
    return connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()


@pytest.fixture
def engine(settings):
    engine = make_engine(settings.database_url)  # a database the settings fixture has just emptied
    with engine.begin() as connection:
        for number in (1, 2, 3):
            connection.execute(
                NODES.insert().values(
                    id=number,
                    name=f"prep-{number}",
                    region="r",
                    location_tag="t",
                    public_ip=f"198.18.0.{number}",
                    client_id=f"prep-client-{number}",
                    jwt_secret="x",
                    status="active" if number != 2 else "offline",
                )
            )
    yield engine
    engine.dispose()


def test_a_marked_statement_is_prepared_once_per_connection_and_answers_as_text_does(engine):
    ids = bindparam("ids", type_=ARRAY(BigInteger))
    plain = (
        select(NODES.c.id, NODES.c.name)
        .where(NODES.c.id == any_(ids), NODES.c.status.in_(["active", "offline"]))
        .order_by(NODES.c.id)
    )
    marked = plain.execution_options(**PREPARED)
    with engine.connect() as connection:
        expected = connection.execute(plain, {"ids": [1, 2, 3]}).all()
        assert not prepared_here(connection)
        assert connection.execute(marked, {"ids": [1, 2, 3]}).all() == expected
        assert connection.execute(marked, {"ids": []}).all() == []
        assert connection.execute(marked, {"ids": [3]}).all() == [(3, "prep-3")]
        statements = prepared_here(connection)
        assert len(statements) == 1 and statements[0].startswith("PREPARE rf_"), statements
        assert "$1" in statements[0] and "%(" not in statements[0]
        connection.rollback()  # a prepared statement outlives the transaction that prepared it
        assert connection.execute(marked, {"ids": [2]}).all() == [(2, "prep-2")]
        assert len(prepared_here(connection)) == 1


def test_typed_writes_and_returning_rows_read_as_before(engine):
    seen = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    statement = (
        NODES.update()
        .where(NODES.c.id == bindparam("node_id", type_=Integer))
        .values(last_seen_at=bindparam("now", type_=UTCDateTime()), last_cpu=bindparam("cpu"))
        .returning(NODES.c.id, NODES.c.last_seen_at, NODES.c.last_cpu)
        .execution_options(**PREPARED)
    )
    with engine.begin() as connection:
        first = connection.execute(statement, {"node_id": 1, "now": seen, "cpu": 12.5}).one()
        again = connection.execute(statement, {"node_id": 1, "now": seen, "cpu": None}).one()
        assert len(prepared_here(connection)) == 1
    assert first == (1, seen, 12.5)
    assert again == (1, seen, None)
    assert first.last_seen_at.tzinfo is not None  # the column type's result processing still runs


def test_what_the_rewrite_cannot_type_runs_as_sent(engine):
    untyped = select(literal_column("1"), bindparam("anything")).execution_options(**PREPARED)
    with engine.connect() as connection:
        assert connection.execute(untyped, {"anything": "x"}).one() == (1, "x")
        assert not prepared_here(connection)


def test_a_replaced_connection_prepares_again(engine):
    statement = select(NODES.c.name).where(NODES.c.id == bindparam("id", type_=Integer)).execution_options(**PREPARED)
    with engine.connect() as connection:
        assert connection.execute(statement, {"id": 1}).scalar() == "prep-1"
        connection.invalidate()  # as after a lost connection: the pool hands out a new one
        connection.rollback()
        assert connection.execute(statement, {"id": 3}).scalar() == "prep-3"
        assert len(prepared_here(connection)) == 1
