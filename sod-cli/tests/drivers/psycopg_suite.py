"""psycopg 3 through the sod demo gateway: parameters, binary results, prepared statements,
named (server-side) cursors, pipeline mode, COPY out and in, SHOW and search_path."""

import io

import psycopg

from common import CONNINFO, ROLE, run

conn = psycopg.connect(CONNINFO, autocommit=True)
errors = (psycopg.Error,)


def query(sql, params=None, binary=False, prepare=None):
    with conn.cursor(binary=binary) as cur:
        cur.execute(sql, params, prepare=prepare)
        return cur.fetchall()


run("parameters", lambda: query("SELECT id, name, email FROM customers WHERE id = %s", (7,)), errors)
run("binary", lambda: query("SELECT id, name, email, created_at FROM customers WHERE id = %s", (7,), binary=True), errors)
run("prepared", lambda: [query("SELECT id, email FROM customers WHERE id = %s", (i,), prepare=True) for i in (1, 2, 3)], errors)


def named_cursor(name, sql):
    def go():
        with conn.transaction():
            with conn.cursor(name) as cur:
                cur.execute(sql)
                first = cur.fetchmany(3)
                rest = cur.fetchall()
                return [first, len(rest), [d.name for d in cur.description]]
    return go


run("named-cursor", named_cursor("cur1", "SELECT id, name FROM customers ORDER BY id"), errors)
run("named-cursor-sensitive", named_cursor("cur2", "SELECT id, email FROM customers ORDER BY id LIMIT 5"), errors)


def pipeline():
    with conn.pipeline():
        with conn.cursor() as a, conn.cursor() as b:
            a.execute("SELECT count(*) FROM orders WHERE status = %s", ("paid",))
            b.execute("SELECT id, phone FROM customers WHERE id = %s", (3,))
            return [a.fetchall(), b.fetchall()]


run("pipeline", pipeline, errors)


def copy_out(sql):
    def go():
        with conn.cursor() as cur:
            with cur.copy(sql) as copy:
                return [tuple(r) for r in copy.rows()]
    return go


run("copy-out", copy_out("COPY (SELECT orders.id, name, status FROM customers JOIN orders ON orders.customer_id = customers.id ORDER BY orders.id LIMIT 5) TO STDOUT"), errors)
run("copy-out-table-columns", copy_out("COPY orders (id, status) TO STDOUT"), errors)
run("copy-out-sensitive", copy_out("COPY (SELECT id, email FROM customers ORDER BY id LIMIT 5) TO STDOUT"), errors)


def copy_in():
    # Written and rolled back: the demo data stays as it is.
    with conn.transaction(force_rollback=True):
        with conn.cursor() as cur:
            with cur.copy("COPY orders (id, customer_id, amount, status) FROM STDIN") as copy:
                copy.write_row((100001, 1, "12.50", "new"))
                copy.write_row((100002, 2, "7.25", "new"))
            cur.execute("SELECT count(*) FROM orders WHERE id > 100000")
            return cur.fetchall()


run("copy-in", copy_in, errors)
run("show-search-path", lambda: query("SHOW search_path"), errors)


def search_path():
    with conn.cursor() as cur:
        cur.execute("SET search_path = pg_catalog, public")
        cur.execute("SELECT count(*) FROM orders")
        n = cur.fetchall()
        cur.execute("RESET search_path")
        return n


run("search-path", search_path, errors)
conn.close()
