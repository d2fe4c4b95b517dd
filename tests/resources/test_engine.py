"""The fast insert path writes what SQLAlchemy would, so every later query sees the same rows."""

import datetime as dt

import sqlalchemy as sa

from foureyes.resources.engine import engine_for, insert_rows, write_transaction

TIMES = sa.Table("times", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("at", sa.DateTime(timezone=True)))


def test_a_whole_second_time_written_fast_is_found_by_an_ordinary_query(db_url):
    whole_second = dt.datetime(2026, 11, 20, 18, 30, tzinfo=dt.UTC)
    engine = engine_for(db_url)
    with write_transaction(engine) as conn:
        TIMES.create(conn)
        insert_rows(conn, TIMES, [{"id": 1, "at": whole_second}, {"id": 2, "at": whole_second + dt.timedelta(0, 1)}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(TIMES.c.id).where(TIMES.c.at == whole_second)).scalars().all() == [1]
        later = sa.select(TIMES.c.id).where(TIMES.c.at > whole_second)
        assert conn.execute(later).scalars().all() == [2]
