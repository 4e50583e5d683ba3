"""Shared by the Python driver scripts of sod's compatibility suite (sod-cli/tests/drivers.rs).

Each script takes the role (`executor` or `planner`) as its argument and the demo gateway's
address and the role's token from the environment (SOD_PORT, SOD_DB, SOD_TOKEN). It runs its
steps in order and prints one JSON line per step: {"step", "ok": true, "value"} or {"step",
"ok": false, "sqlstate", "message"}. The Rust test decides what each step must give per role.
"""

import json
import os
import sys

ROLE = sys.argv[1]
PORT = os.environ["SOD_PORT"]
DB = os.environ["SOD_DB"]
TOKEN = os.environ["SOD_TOKEN"]
CONNINFO = f"host=127.0.0.1 port={PORT} dbname={DB} user=agent password={TOKEN} connect_timeout=10"


def report(step, ok, value=None, sqlstate=None, message=None):
    line = {"step": step, "ok": ok}
    if ok:
        line["value"] = value
    else:
        line["sqlstate"] = sqlstate
        line["message"] = message
    print(json.dumps(line, default=str), flush=True)


def run(step, fn, errors):
    """Runs `fn`; reports its value, or the database error it raised (any of `errors`)."""
    try:
        report(step, True, fn())
    except errors as e:
        sqlstate = getattr(e, "sqlstate", None)
        report(step, False, sqlstate=sqlstate, message=str(e).strip())
