#!/usr/bin/env python3
"""Runs the ClickHouse sink's SQL on a real ClickHouse engine (chdb, in-process).

Usage: chdb_check.py DIR, where DIR holds manifest.json and the Native-format insert
files written by the Go test TestRenderSQLForChdb (see chdb_check.sh).

Checks, in order:
  1. the bootstrap and migration DDL runs; the migration is recorded and read back;
     running everything again is harmless (idempotent statements);
  2. the tables have exactly the columns and types the writer inserts;
  3. TTL clauses appear in system.tables.engine_full as the migrator expects, and
     the migrator's ALTER ... MODIFY/REMOVE TTL statements work;
  4. the writer's inserts (the Go driver's own Native encoding) are accepted, with
     their settings; a retried batch (same insert_deduplication_token) is not
     inserted twice, a redelivered one (other token) is, and FINAL collapses it;
  5. every read query of the writer, and of the query side (chdb_reader.py), gives the expected rows: FINAL returns the newest
     version of a span, the materialized view fills trace_roots;
  6. a trace lookup uses the primary key (EXPLAIN indexes = 1 on 300k rows); without
     non_replicated_deduplication_window the token does nothing; the engine raises
     the error codes classify() sorts as permanent for unknown table/database/column,
     unparsable values and too many partitions;
  7. cluster-mode and replicated DDL parses (formatQuery): chdb has no cluster and
     no Keeper to run it.
Exits non-zero on the first failure.
"""

import json
import os
import re
import sys
import tempfile

import chdb
from chdb import session

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def ok(msg):
    print("ok:  ", msg)


def lit(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


class DB:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="spanpipe-chdb-")
        self.s = session.Session(self.dir)

    def q(self, sql, fmt="TSV"):
        return str(self.s.query(sql, fmt))

    def rows(self, sql):
        out = self.q(sql, "JSONEachRow").strip()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def scalar(self, sql):
        return self.q(sql, "TSV").strip()


def upgrade_check(db, m, migrate, run_migration):
    """0002_span_rank on tables written by the 0001 schema: the rows survive with a
    rank taken from what they hold, trace_roots is refilled, writes go on through the
    swap, and running the migration again changes nothing. The database is dropped
    afterwards (chdb has one engine per process)."""
    name = m["database"]
    migrate(record=True, db=db, upto=1)
    t = "'" + "a" * 32 + "'"
    # A span's start never changes; recent, so that the tables' TTL keeps it.
    at = "toDateTime64('" + db.scalar("SELECT toStartOfHour(now())") + "', 9, 'UTC')"
    cols = "(trace_id, span_id, version, parent_span_id, name, started_at, ended_at, is_event)"
    db.q(f"""INSERT INTO {name}.spans {cols} VALUES
        ({t}, '01', 3, '', 'old ended root', {at}, {at}, 0),
        ({t}, '02', 2, '01', 'old running child', {at}, NULL, 0),
        ({t}, '03', 1, '01', 'old event', {at}, NULL, 1)""")
    db.q(f"""INSERT INTO {name}.scores (score_id, timestamp, scorer_id, score) VALUES
        ('s', {at}, 'r', 0.9), ('s', {at} - toIntervalDay(2), 'r', 0.1)""")
    db.q(f"""INSERT INTO {name}.feedback (feedback_id, timestamp, feedback_type, value, value_string, value_number) VALUES
        ('text', {at}, 'label', '"wrong tool"', 'wrong tool', NULL), ('number', {at}, 'rating', '4', '', 4)""")
    later = [mg for mg in m["migrations"] if mg["version"] > 1]
    for mg in later:
        run_migration(db, mg)
    rows = db.rows(f"SELECT span_id, version, rank, name FROM {name}.spans FINAL ORDER BY span_id")
    want = [("01", 3, 3, "old ended root"), ("02", 2, 1, "old running child"), ("03", 1, 3, "old event")]
    got = [(r["span_id"], int(r["version"]), int(r["rank"]), r["name"]) for r in rows]
    if got != want:
        fail(f"upgrade: spans after 0002: got {got}, want {want}")
    roots = db.rows(f"SELECT span_id, rank FROM {name}.trace_roots FINAL")
    if [(r["span_id"], int(r["rank"])) for r in roots] != [("01", 3)]:
        fail(f"upgrade: trace_roots after 0002: {roots}")
    sc = db.rows(f"SELECT score FROM {name}.scores FINAL")
    if [float(r["score"]) for r in sc] != [0.9]:
        fail(f"upgrade: scores of one id at two times after 0003: {sc}, want the latest only")
    fv = db.scalar(f"SELECT groupArray(value) FROM (SELECT value FROM {name}.feedback FINAL ORDER BY feedback_id)")
    if fv != "['4','wrong tool']":
        fail(f"upgrade: feedback values after 0003: {fv}, want the string itself and the number's text")
    left = db.scalar(f"SELECT count() FROM system.tables WHERE database = '{name}' AND name LIKE '%_swap'")
    if left != "0":
        fail(f"upgrade: {left} _swap tables left")
    # A started snapshot of the old ended root's version does not replace it; a
    # higher version does, and the view feeds trace_roots.
    ins = f"INSERT INTO {name}.spans (trace_id, span_id, version, rank, parent_span_id, name, started_at) VALUES"
    db.q(f"{ins} ({t}, '01', 3, 1, '', 'late started', {at})")
    db.q(f"{ins} ({t}, '02', 3, 1, '01', 'child v3', {at})")
    got = db.rows(f"SELECT span_id, name FROM {name}.spans FINAL ORDER BY span_id")
    if [r["name"] for r in got] != ["old ended root", "child v3", "old event"]:
        fail(f"upgrade: writes after 0002: {got}")
    db.q(f"OPTIMIZE TABLE {name}.spans FINAL")
    db.q(f"OPTIMIZE TABLE {name}.trace_roots FINAL")
    merged = db.rows(f"SELECT span_id, name FROM {name}.spans ORDER BY span_id")
    rname = db.scalar(f"SELECT name FROM {name}.trace_roots FINAL")
    if [r["name"] for r in merged] != ["old ended root", "child v3", "old event"] or rname != "old ended root":
        fail(f"upgrade: after merging parts: spans {merged}, trace root {rname!r}")
    skipped = []
    for mg in later:  # as after a failure: the guards skip what is done
        skipped += run_migration(db, mg)
    again = db.rows(f"SELECT span_id, name FROM {name}.spans FINAL ORDER BY span_id")
    if again != merged or not skipped:
        fail(f"upgrade: running 0002 again changed spans {merged} -> {again} (skipped {skipped})")
    db.q(f"DROP DATABASE {name} SYNC")
    if not failures:
        ok(f"0002_span_rank and 0003 on 0001 tables: rows kept with their rank, trace_roots refilled, ended wins "
           f"a version tie after merges, a score id is one row (the latest); a second run skips {len(skipped)} "
           f"guarded statements")


def main(d):
    m = json.load(open(os.path.join(d, "manifest.json")))
    db = DB()
    name = m["database"]
    print("chdb", chdb.__version__, "ClickHouse", db.scalar("SELECT version()"))

    # 1. Migrations, as migrate.go runs them: a statement whose guard ("unless")
    # returns non-zero is skipped.
    def run_migration(db, mg):
        skipped = []
        for st in mg["statements"]:
            if st.get("unless") and int(db.scalar(st["unless"])) != 0:
                skipped.append(st["name"])
                continue
            try:
                db.q(st["sql"])
            except Exception as e:
                raise SystemExit(f"FAIL: migration {mg['name']} statement {st['name']}: {e}")
        return skipped

    def migrate(record, db=db, upto=None):
        for st in m["bootstrap"]:
            db.q(st["sql"])
        for mg in m["migrations"]:
            if upto is not None and mg["version"] > upto:
                break
            run_migration(db, mg)
            if record:
                db.q(mg["record"])

    upgrade_check(db, m, migrate, run_migration)
    migrate(record=True)
    applied = [int(r["version"]) for r in db.rows(m["applied_query"])]
    want = [mg["version"] for mg in m["migrations"]]
    if sorted(applied) == sorted(want):
        ok(f"{sum(len(mg['statements']) for mg in m['migrations']) + len(m['bootstrap'])} DDL statements ran; migrations recorded {applied}")
    else:
        fail(f"applied migrations: got {applied}, want {want}")
    migrate(record=False)
    ok("all DDL ran a second time without error (idempotent)")

    # 2. Columns.
    for table, cols in m["columns"].items():
        got = {r["name"]: r["type"] for r in db.rows(
            f"SELECT name, type FROM system.columns WHERE database = {lit(name)} AND table = {lit(table)}")}
        bad = [(c, t, got.get(c)) for c, t in cols if got.get(c) != t]
        if bad:
            fail(f"{table}: writer column types differ from the table: {bad}")
        else:
            ok(f"{table}: {len(cols)} inserted columns match system.columns")

    # 3. TTL.
    def engine_full(t):
        return db.scalar(f"SELECT engine_full FROM system.tables WHERE database = {lit(name)} AND name = {lit(t)}")

    def check_ttl(expect, none, when):
        for t, clause in expect.items():
            full = engine_full(t)
            if (" " + clause + " ") not in (full + " "):
                fail(f"TTL {when}: {t}: {clause!r} not in engine_full {full!r}")
        for t in none:
            full = engine_full(t)
            if " TTL " in full:
                fail(f"TTL {when}: {t} should have no TTL: {full!r}")
        ok(f"TTL {when}: engine_full as the migrator expects ({len(expect)} with TTL, {len(none)} without)")

    check_ttl(m["ttl"]["expect"], m["ttl"]["none"], "as created")
    full = engine_full("spans")
    if "ttl_only_drop_parts = 1" in full and "non_replicated_deduplication_window = 1000" in full:
        ok("spans SETTINGS: ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000")
    else:
        fail(f"spans settings missing: {full}")

    # 4. Inserts, step by step, counting raw (unmerged) rows after each.
    def raw_counts():
        return {t: int(db.scalar(f"SELECT count() FROM {name}.{t}")) for t in
                ["spans", "trace_roots", "logs", "metrics", "scores", "feedback"]}

    after = {}
    for step in m["steps"]:
        for ins in step["inserts"]:
            settings = ", ".join(f"{k} = {lit(v)}" for k, v in sorted(ins["settings"].items()))
            sql = (f"INSERT INTO {name}.{ins['table']} ({ins['columns']}) "
                   f"SELECT * FROM file({lit(ins['file'])}, 'Native') SETTINGS {settings}")
            try:
                db.q(sql)
            except Exception as e:
                fail(f"step {step['label']}: insert into {ins['table']}: {e}")
        after[step["label"]] = raw_counts()
        parts = {}
        for ins in step["inserts"]:
            parts[ins["table"]] = parts.get(ins["table"], 0) + 1
        ok(f"step {step['label']}: {len(step['inserts'])} inserts {parts}; raw rows now {after[step['label']]}")

    if after["b1_retry"] == after["b1"]:
        ok("retried batch (same insert_deduplication_token) was not inserted again: dedup works on "
           "non-replicated MergeTree with non_replicated_deduplication_window")
    else:
        fail(f"retried batch inserted again: raw rows {after['b1']} -> {after['b1_retry']}")
    if after["b3"]["spans"] == after["b2"]["spans"] + 2:
        ok("redelivered rows in another batch (other token) were inserted; FINAL must collapse them")
    else:
        fail(f"redelivery: spans raw rows {after['b2']['spans']} -> {after['b3']['spans']}, want +2")
    logs_inserts = [i for i in m["steps"][0]["inserts"] if i["table"] == "logs"]
    if len(logs_inserts) == 3:
        ok("logs over 5 days split into 3 inserts of at most 2 partitions (max_partitions_per_insert_block = 2 accepted them)")
    else:
        fail(f"logs inserts: got {len(logs_inserts)}, want 3")

    # 5. Reads.
    for t, want in m["expect"]["counts"].items():
        got = int(db.scalar(m["reads"]["count"][t]))
        if got != want:
            fail(f"count {t} FINAL: got {got}, want {want}")
    ok(f"counts with FINAL: {m['expect']['counts']}")

    db.q(f"SET param_trace_id = {lit(m['expect']['trace_id'])}")
    trace = db.rows(m["reads"]["trace"])
    if trace and list(trace[0].keys()) != m["reads"]["trace_cols"]:
        fail(f"trace query columns: got {list(trace[0].keys())}, want {m['reads']['trace_cols']}")
    if len(trace) != len(m["expect"]["trace"]):
        fail(f"trace: got {len(trace)} spans, want {len(m['expect']['trace'])}: {trace}")
    for got, want in zip(trace, m["expect"]["trace"]):
        for k, v in want.items():
            g = got.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                g = int(g)
            if g != v:
                fail(f"trace span {want['span_id']}: {k}: got {g!r}, want {v!r}")
    ok("Trace query (FINAL): newest version of each span (root ended in b2 wins over its running snapshot "
       "and over a started snapshot of its version inserted later; the older snapshot of the child in b2 "
       "loses to its ended snapshot)")

    db.q("SET param_limit = 10")
    recent = db.rows(m["reads"]["recent"])
    if len(recent) != len(m["expect"]["recent"]):
        fail(f"recent traces: got {len(recent)}, want {len(m['expect']['recent'])}: {recent}")
    for got, want in zip(recent, m["expect"]["recent"]):
        for k, v in want.items():
            g = got.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                g = int(g)
            if g != v:
                fail(f"recent trace {want['trace_id']}: {k}: got {g!r}, want {v!r}")
    ok("RecentTraces query: trace_roots filled by the materialized view, newest root snapshot, newest first")

    for c in m["expect"]["checks"]:
        got = db.scalar(c["sql"])
        if got != c["want"]:
            fail(f"{c['sql']}: got {got!r}, want {c['want']!r}")
    ok(f"{len(m['expect']['checks'])} checks: a replayed older score or feedback does not replace the newer one "
       "of its id (another day included); a newer one does")

    got = int(db.scalar(m["expect"]["metadata_search"]))
    if got == m["expect"]["metadata_search_count"]:
        ok(f"metadata_search['customer'] = 'acme' finds {got} spans")
    else:
        fail(f"metadata_search: got {got}, want {m['expect']['metadata_search_count']}")

    # 3b. TTL changes made by the migrator.
    for st in m["ttl"]["changes"]:
        try:
            db.q(st["sql"])
        except Exception as e:
            fail(f"TTL change {st['name']}: {e}")
    check_ttl(m["ttl"]["expect_after"], m["ttl"]["none_after"], "after ALTER")

    # The query side's statements, on the same data (before the probe rows below).
    from chdb_reader import check_reader
    check_reader(db, d, ok, fail)

    # 6. The sort key serves a trace lookup.
    db.q(f"""INSERT INTO {name}.spans (trace_id, span_id, version, parent_span_id, started_at)
             SELECT lower(hex(cityHash64(intDiv(number, 10)))), toString(number), 1, '',
                    now64(9) - toIntervalSecond(number % 3600)
             FROM numbers(300000) SETTINGS async_insert = 0""")
    probe = db.scalar(f"SELECT lower(hex(cityHash64(toUInt64(12345))))")
    plan = db.scalar(f"EXPLAIN indexes = 1 SELECT * FROM {name}.spans WHERE trace_id = {lit(probe)}")
    plan = plan.replace("\\n", "\n")
    m_pk = re.search(r"PrimaryKey.*?Granules: (\d+)/(\d+)", plan, re.S)
    if m_pk and int(m_pk.group(1)) <= max(2, int(m_pk.group(2)) // 10):
        ok(f"trace lookup on 300k rows reads {m_pk.group(1)}/{m_pk.group(2)} granules through the primary key")
    else:
        fail(f"trace lookup does not use the primary key:\n{plan}")

    # 6b. Without non_replicated_deduplication_window a plain MergeTree ignores the
    # token: the reason the tables set it.
    db.q(f"CREATE TABLE {name}.dedup_probe (x String) ENGINE = MergeTree ORDER BY x")
    for _ in range(2):
        db.q(f"INSERT INTO {name}.dedup_probe SELECT 'a' SETTINGS insert_deduplication_token = 'same', async_insert = 0")
    n = int(db.scalar(f"SELECT count() FROM {name}.dedup_probe"))
    if n == 2:
        ok("without non_replicated_deduplication_window the same token is inserted twice (as documented)")
    else:
        fail(f"dedup probe without window: got {n} rows, expected 2")
    db.q(f"DROP TABLE {name}.dedup_probe")

    # 6c. Error codes the engine raises in situations the writer meets, sorted the way
    # classify() does (the rule is mirrored here: a permanent code, or TOO_MANY_PARTS
    # for "too many partitions").
    permanent = {int(k): v for k, v in m["errors"]["permanent_codes"].items()}
    for case in m["errors"]["cases"]:
        try:
            db.q(case["sql"])
            fail(f"error case {case['name']}: no error")
            continue
        except Exception as e:
            msg = str(e)
        mc = re.search(r"Code: (\d+)", msg)
        if not mc:
            fail(f"error case {case['name']}: no code in {msg!r}")
            continue
        code = int(mc.group(1))
        perm = code in permanent or (code == 252 and "too many partitions" in msg.lower())
        if perm != case["permanent"]:
            fail(f"error case {case['name']}: code {code} classified permanent={perm}, want {case['permanent']}: {msg[:200]}")
        else:
            ok(f"error case {case['name']}: code {code} ({permanent.get(code, 'TOO_MANY_PARTS' if code == 252 else '?')}) -> "
               f"{'permanent' if perm else 'transient'}")

    # 7. Parse-only DDL.
    bad = 0
    for st in m["parse_only"]:
        try:
            db.scalar(f"SELECT formatQuery({lit(st['sql'])})")
        except Exception as e:
            bad += 1
            fail(f"parse {st['name']}: {e}")
    variants = sorted({st["name"].split("/")[0] for st in m["parse_only"]})
    if not bad:
        ok(f"{len(m['parse_only'])} cluster/replicated statements parse ({', '.join(variants)}); "
           "not executed: chdb has no cluster and no Keeper")

    if failures:
        print(f"\n{len(failures)} failure(s)")
        return 1
    print("\nchdb check passed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1]))
