// node-postgres (npm `pg`) through the sod demo gateway: parameters, named prepared statements,
// several statements in one query. Prints one JSON line per step, as the Python scripts do.

const { Client } = require('pg');

const role = process.argv[2];

async function run(step, fn) {
  try {
    console.log(JSON.stringify({ step, ok: true, value: await fn() }));
  } catch (e) {
    console.log(JSON.stringify({ step, ok: false, sqlstate: e.code ?? null, message: String(e.message) }));
  }
}

async function main() {
  const client = new Client({
    host: '127.0.0.1',
    port: Number(process.env.SOD_PORT),
    database: process.env.SOD_DB,
    user: 'agent',
    password: process.env.SOD_TOKEN,
    connectionTimeoutMillis: 10000,
  });
  await client.connect();
  await run('parameters', async () => (await client.query('SELECT id, name, email FROM customers WHERE id = $1', [7])).rows);
  await run('named-prepared', async () => {
    const out = [];
    for (const id of [1, 2, 3]) {
      const r = await client.query({ name: 'customer-by-id', text: 'SELECT id, phone FROM customers WHERE id = $1', values: [id] });
      out.push(r.rows);
    }
    return out;
  });
  await run('multi-statement', async () => {
    const r = await client.query("SELECT count(*) AS n FROM orders; SELECT id, ssn FROM customers WHERE id = 1");
    return r.map((x) => x.rows);
  });
  await client.end();
}

main().catch((e) => {
  console.log(JSON.stringify({ step: 'connect', ok: false, sqlstate: e.code ?? null, message: String(e.message) }));
});
