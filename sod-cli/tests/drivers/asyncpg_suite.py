"""asyncpg through the sod demo gateway: connecting (asyncpg sends client_encoding 'utf-8'),
parameters, prepared statements and the type introspection they trigger, cursors, COPY."""

import asyncio
import io

import asyncpg

from common import DB, PORT, ROLE, TOKEN, report

errors = (asyncpg.PostgresError, asyncpg.InterfaceError)


async def run(step, coro):
    try:
        report(step, True, await coro)
    except errors as e:
        report(step, False, sqlstate=getattr(e, "sqlstate", None), message=str(e).strip())


async def main():
    try:
        conn = await asyncpg.connect(host="127.0.0.1", port=int(PORT), database=DB, user="agent", password=TOKEN, timeout=10)
    except errors as e:
        report("connect", False, sqlstate=getattr(e, "sqlstate", None), message=str(e).strip())
        return
    report("connect", True, "connected")

    async def rows(sql, *args):
        return [tuple(r) for r in await conn.fetch(sql, *args)]

    await run("parameters", rows("SELECT id, name, email FROM customers WHERE id = $1", 7))

    async def prepared():
        # information_schema's columns are of domain types: asyncpg introspects them.
        stmt = await conn.prepare("SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position")
        return [tuple(r) for r in await stmt.fetch("customers")]

    await run("prepared-introspection", prepared())

    async def cursor(sql):
        async with conn.transaction():
            cur = await conn.cursor(sql)
            first = await cur.fetch(3)
            return [tuple(r) for r in first]

    await run("cursor", cursor("SELECT id, name FROM customers ORDER BY id"))
    await run("cursor-sensitive", cursor("SELECT id, ssn FROM customers ORDER BY id"))

    async def copy_out(query):
        buf = io.BytesIO()
        await conn.copy_from_query(query, output=buf)
        return buf.getvalue().decode()

    await run("copy-out", copy_out("SELECT id, status FROM orders ORDER BY id LIMIT 5"))
    await run("copy-out-sensitive", copy_out("SELECT id, card_number FROM customers ORDER BY id LIMIT 5"))

    async def copy_in():
        tr = conn.transaction()
        await tr.start()
        try:
            await conn.copy_records_to_table("orders", records=[(100001, 1, 12.5, "new")], columns=["id", "customer_id", "amount", "status"])
            return await conn.fetchval("SELECT count(*) FROM orders WHERE id > 100000")
        finally:
            await tr.rollback()

    await run("copy-in", copy_in())
    await conn.close()


asyncio.run(main())
