"""SQLAlchemy 2 (psycopg 3 dialect) through the sod demo gateway: the reflection LangChain-style
SQL agents run (table names, columns, primary and foreign keys) and the sample rows they show."""

import sqlalchemy
from sqlalchemy import MetaData, Table, inspect, select

from common import DB, PORT, TOKEN, report

engine = sqlalchemy.create_engine(
    f"postgresql+psycopg://agent:{TOKEN}@127.0.0.1:{PORT}/{DB}", connect_args={"connect_timeout": 10}
)


def run(step, fn):
    try:
        report(step, True, fn())
    except sqlalchemy.exc.DBAPIError as e:
        report(step, False, sqlstate=getattr(e.orig, "sqlstate", None), message=str(e.orig).strip())


insp = inspect(engine)
run("table-names", lambda: sorted(insp.get_table_names()))
run("columns", lambda: [c["name"] for c in insp.get_columns("customers")])
run("primary-key", lambda: insp.get_pk_constraint("orders")["constrained_columns"])
run("foreign-keys", lambda: [(f["constrained_columns"], f["referred_table"]) for f in insp.get_foreign_keys("orders")])


def sample_rows():
    table = Table("customers", MetaData(), autoload_with=engine)
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(select(table).limit(3))]


run("sample-rows", sample_rows)
