"""Runs the query side's statements (sinks/clickhouse Reader) on chdb, on the data the
writer's scenario left, with their parameters set as the driver sends them."""

import json
import os


def check_reader(db, d, ok, fail):
    path = os.path.join(d, "reader.json")
    cases = json.load(open(path))
    passed = 0
    for c in cases:
        for k, v in (c["params"] or {}).items():
            db.q("SET param_" + k + " = '" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'")
        try:
            out = db.q(c["sql"], "TSV").strip()
        except Exception as e:
            fail(f"reader {c['name']}: {e}\n{c['sql']}")
            continue
        rows = [line.split("\t") for line in out.splitlines() if line.strip()]
        want = c["expect"] or []
        got = [r[: len(w)] for r, w in zip(rows, want)]
        if len(rows) != len(want) or got != want:
            fail(f"reader {c['name']}: got {rows}, want {want}")
        else:
            passed += 1
    if passed == len(cases):
        ok(f"reader: {len(cases)} query-API statements give the expected rows (list filters, counts, trace, span, stats)")
