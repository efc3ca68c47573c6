"""Issue 16, item 5: fields an agent sends are bounded on arrival, and a row
MariaDB still refuses is stored alone, so that no other agent's writes fail
with it. Product defaults (sync every 900 s): the agents sync when they
start and when they have events to send."""

import json
import re
import subprocess
import time

from harness import check, db_event_ids, wait_synced, wait_until

NACK_LINE = "server could not store events yet"


def _posture_stored(srv, name):
    rows = srv.sql("SELECT posture IS NOT NULL, tags FROM hosts WHERE name = '%s'" % name)
    return rows[0] if rows and rows[0][0] == "1" else None


def _acked(agent, eid, srv):
    """The agent's queue is empty and its event is in the events table."""
    return agent.queued() == 0 and eid in db_event_ids(srv, agent.uid)[2]


def test_long_tags_stored(ctx):
    """An agent whose agent.tags (about 5,000 characters) is far longer than
    hosts.tags (VARCHAR(1024)): the server cuts the list (at a character
    boundary, logged once, counted), the host row with its posture IS stored
    and survives a restart, and the events of another agent that arrive
    with it are acknowledged at once (no nack, no retry)."""
    srv = ctx.server(sync_interval=None).start()
    token = srv.token_create("fleet", max_uses=2)
    umlauts = "\u00fc" * 100                      # 200 bytes, 2 per character
    tags = "dmz," + umlauts + "," + ",".join("t%04d" % i for i in range(900))
    check(len(tags) > 5000, "the tag list is only %d characters" % len(tags))
    long_ = ctx.agent(srv, "longtags", keep=False, db_age_days=0.1, rtp=True,
                      extra=["agent.tags=" + tags])
    normal = ctx.agent(srv, "normal", keep=False, db_age_days=0.1, rtp=True)
    for a in (long_, normal):
        a.enroll(token)
    # events wait in both spools; both agents start together, so their syncs
    # and events reach the server in the same writes
    e_long = long_.event("from the long-tag host")
    e_norm = normal.event("from the normal host")
    long_.start()
    normal.start()
    start = time.monotonic()
    wait_until(lambda: _acked(normal, e_norm, srv), 10, "the normal agent's event acknowledged and stored")
    took = time.monotonic() - start
    wait_until(lambda: _acked(long_, e_long, srv), 10, "the long-tag agent's event acknowledged and stored")
    check(normal.log_count(NACK_LINE) == 0 and long_.log_count(NACK_LINE) == 0,
          "an agent was told to retry its events (nack): normal %d, long-tag %d"
          % (normal.log_count(NACK_LINE), long_.log_count(NACK_LINE)))
    # the agents start, sync and send within about a second; a nack would
    # have made the normal agent wait 5 s
    check(took < 4.5, "the normal agent's event took %.1f s to be acknowledged" % took)

    wait_synced(srv, ["longtags", "normal"])
    row = wait_until(lambda: _posture_stored(srv, "longtags"), 10, "the long-tag host's row with its posture")
    stored = json.loads(row[1])
    # VARCHAR(1024) and the relocation tags' VARCHAR(64) count characters
    check(1000 < len(row[1]) <= 1024 and len(row[1].encode()) > 1024,
          "hosts.tags holds %d characters, %d bytes" % (len(row[1]), len(row[1].encode())))
    check(stored[:2] == ["dmz", "\u00fc" * 64] and len(stored) > 10
          and all(t == "t%04d" % i for i, t in enumerate(stored[2:])),
          "hosts.tags holds %r" % stored[:5])
    check(_posture_stored(srv, "normal"), "the normal host's row has no posture")
    check("Data too long" not in srv.log_text(), "MariaDB still refused a value: %s"
          % [l for l in srv.log_text().splitlines() if "Data too long" in l][:1])
    lines = [l for l in srv.log_text().splitlines() if "field tags is larger than its column" in l]
    check(len(lines) == 1 and "host longtags" in lines[0],
          "expected one log line naming longtags and the field tags, got %r" % lines)
    counters = srv.status()["counters"]
    check(counters.get("fields_truncated", 0) >= 1, "status counters: %r" % counters)

    # the stored row is what a restart loads: the posture is there at once
    srv.restart()
    h = srv.hosts_by_name()["longtags"]
    check(not any(r["reason"] == "no_posture" for r in h["reasons"]),
          "after a restart longtags has reasons %r" % h["reasons"])
    check(h["status"] == "OK", "after a restart longtags is %s" % h["status"])


class TableLock:
    """A MariaDB session holding LOCK TABLES table WRITE in the test's
    database until release(): the server's write of that table waits, so
    everything arriving meanwhile goes into the server's next write."""

    def __init__(self, srv, table):
        m = srv.ctx.mariadb
        self.proc = subprocess.Popen(
            ["mariadb", "--no-defaults", "--socket=%s" % m.socket, "--user=root", "-N", "-B", "-n", srv.db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.proc.stdin.write("LOCK TABLES %s WRITE; SELECT 'locked';\n" % table)
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        check(line == "locked", "LOCK TABLES %s: %r" % (table, line))

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("UNLOCK TABLES;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _write_queue(srv):
    return srv.status()["write_queue"]


def test_refused_row_alone(ctx):
    """A row MariaDB refuses for a reason the bounds do not know (here a
    CHECK constraint the administrator added to hosts) is retried alone,
    logged with the host and MariaDB's error and left out; a task result it
    refuses is left out and its event stored without it. The other agent's
    host row and both agents' events go into the same write (made certain:
    a third agent's write holds the queue until all of theirs have arrived)
    and are stored and acknowledged."""
    srv = ctx.server(sync_interval=None).start()
    token = srv.token_create("fleet", max_uses=3)
    victim = ctx.agent(srv, "victim", keep=False, db_age_days=0.1, rtp=True, extra=["agent.tags=refuse-me"])
    other = ctx.agent(srv, "other", keep=False, db_age_days=0.1, rtp=True)
    blocker = ctx.agent(srv, "blocker", keep=False, db_age_days=0.1, rtp=True)
    for a in (victim, other, blocker):
        a.enroll(token)
    srv.sql("ALTER TABLE hosts ADD CONSTRAINT refuse_tag CHECK (tags NOT LIKE '%refuse-me%')")
    srv.sql("ALTER TABLE task_results ADD CONSTRAINT refuse_output CHECK (output_tail NOT LIKE '%refuse-me%')")
    e_victim = victim.event("from the refused host")
    # one event of the same message carries a task result MariaDB refuses:
    # the event is stored without it
    _, out, _ = ctx.run(victim.argv("event", "--severity", "info", "--kind", "task_result", "--message",
                                    "scan finished", "--data", json.dumps(
                                        {"task_id": 4242, "run": 1, "state": "succeeded", "exit_code": 0,
                                         "output_tail": "refuse-me", "started": 1, "ended": 2})))
    e_task = out.strip()
    e_victim2 = victim.event("after the refused one")
    e_other = other.event("from the other host")

    # the blocker's host row is the write in flight, waiting for the lock
    lock = TableLock(srv, "hosts")
    try:
        blocker.start()
        wait_until(lambda: srv.status()["counters"]["syncs"] >= 1 and _write_queue(srv)["writing"], 5,
                   "the blocker's host row being written (and waiting for the lock)")
        victim.start()
        other.start()
        wait_until(lambda: _write_queue(srv)["hosts"] >= 2 and _write_queue(srv)["events"] >= 4, 10,
                   "both agents' host rows and events waiting for the next write")
        start = time.monotonic()
    finally:
        lock.release()
    wait_until(lambda: _acked(other, e_other, srv), 10, "the other agent's event acknowledged and stored")
    took = time.monotonic() - start
    wait_until(lambda: _acked(victim, e_victim, srv), 10, "the refused host's event acknowledged and stored")
    ids = db_event_ids(srv, victim.uid)[2]
    check({e_victim, e_task, e_victim2} <= ids,
          "the victim's events in the table: %s (the one with the refused task result %s)" % (sorted(ids), e_task))
    check(srv.sql("SELECT COUNT(*) FROM task_results") == [["0"]], "a refused task result was stored")
    check(other.log_count(NACK_LINE) == 0 and victim.log_count(NACK_LINE) == 0,
          "an agent was told to retry its events (nack): other %d, victim %d"
          % (other.log_count(NACK_LINE), victim.log_count(NACK_LINE)))
    check(took < 4.5, "the other agent's event took %.1f s to be acknowledged" % took)
    wait_until(lambda: _posture_stored(srv, "other"), 10, "the other host's row with its posture")
    check(srv.sql("SELECT posture IS NULL FROM hosts WHERE name = 'victim'") == [["1"]],
          "the refused host row was written anyway")
    lines = [l for l in srv.log_text().splitlines() if "MariaDB refused its host row" in l]
    check(lines and all("host victim" in l and "refuse_tag" in l for l in lines),
          "expected log lines naming host victim and the constraint, got %r" % lines[:3])
    # the write that refused the victim's row stored the other agent's rows:
    # the victim has at most 3 rows to store, the blocker (synced once,
    # already written) none
    others = [int(m.group(1)) for m in (re.search(r"the (\d+) other row\(s\) of the write were stored", l)
                                         for l in lines) if m]
    check(others and max(others) >= 5, "rows stored with the victim's refused row: %r in %r" % (others, lines[:3]))
    lines = [l for l in srv.log_text().splitlines() if "MariaDB refused the task result" in l]
    check(len(lines) == 1 and "host victim" in lines[0] and e_task in lines[0] and "refuse_output" in lines[0]
          and "stored without it" in lines[0],
          "expected one log line naming host victim, the event and the constraint, got %r" % lines)
    check("MariaDB refused event" not in srv.log_text(), "an event was refused")
    check(srv.status()["write_queue"]["refused"] >= 2, "status write_queue: %r" % srv.status()["write_queue"])
    check(srv.log_count("failed:") == 0, "a whole write failed: %r"
          % [l for l in srv.log_text().splitlines() if "failed:" in l][:2])


def test_every_row_refused_nacked(ctx):
    """A problem that refuses every row (here a trigger an administrator
    put on events) is not taken for bad rows: the write fails, the agent is
    told to send its events again (nack) and keeps them; once the trigger
    is gone they are stored. A task result whose exit code does not fit
    task_results.exit_code (INT) is stored with a NULL exit code."""
    srv = ctx.server(sync_interval=None).start()
    token = srv.token_create("fleet", max_uses=1)
    agent = ctx.agent(srv, "blocked", keep=False, db_age_days=0.1, rtp=True)
    agent.enroll(token)
    srv.sql("CREATE TRIGGER block_events BEFORE INSERT ON events FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are blocked'")
    e1 = agent.event("first")
    _, out, _ = ctx.run(agent.argv("event", "--severity", "info", "--kind", "task_result", "--message",
                                   "command finished", "--data", json.dumps(
                                       {"task_id": 77, "run": 3, "state": "failed", "exit_code": 2 ** 32 + 5,
                                        "output_tail": "done", "started": 1, "ended": 2})))
    e2 = out.strip()
    agent.start()
    wait_until(lambda: agent.log_count(NACK_LINE) >= 1, 15, "the agent told to send its events again")
    check(agent.queued() == 2, "the agent has %d event(s) queued, not 2" % agent.queued())
    check(srv.log_count("MariaDB refused every") >= 1 and "events are blocked" in srv.log_text(),
          "no log line for the refused write: %r" % srv.log_text().splitlines()[-5:])
    check("it was dropped" not in srv.log_text(), "an event was dropped")
    check(srv.sql("SELECT COUNT(*) FROM events") == [["0"]], "events were stored past the trigger")
    srv.sql("DROP TRIGGER block_events")
    wait_until(lambda: _acked(agent, e1, srv) and e2 in db_event_ids(srv, agent.uid)[2], 30,
               "the events stored once the trigger is gone")
    rows = srv.sql("SELECT run, state, exit_code IS NULL FROM task_results WHERE task_id = 77")
    check(rows == [["3", "failed", "1"]], "task_results: %r" % rows)
    check("exit_code is larger than its column" in srv.log_text(), "no log line for the exit code")


def test_packet_limit(ctx):
    """MariaDB's max_allowed_packet (here 32 KiB, set before the server
    connects) bounds what one statement may send: a write whose events add
    up to more is sent in parts, and an event larger than a packet alone is
    left out and logged, instead of the connection being dropped and the
    write retried for ever."""
    before = ctx.mariadb.sql("SELECT @@GLOBAL.max_allowed_packet")[0][0]
    ctx.mariadb.sql("SET GLOBAL max_allowed_packet = 32768")
    try:
        srv = ctx.server(sync_interval=None).start()
        token = srv.token_create("fleet", max_uses=1)
        agent = ctx.agent(srv, "bulky", keep=False, db_age_days=0.1, rtp=True)
        agent.enroll(token)
        ids = []
        for i in range(6):   # about 60 KiB together
            _, out, _ = ctx.run(agent.argv("event", "--severity", "info", "--kind", "report", "--message",
                                           "part %d" % i, "--data", json.dumps({"blob": "%d" % i * 10000})))
            ids.append(out.strip())
        _, out, _ = ctx.run(agent.argv("event", "--severity", "info", "--kind", "report", "--message",
                                       "too big", "--data", json.dumps({"blob": "b" * 40000})))
        big = out.strip()
        agent.start()
        wait_until(lambda: agent.queued() == 0, 15, "the agent's events acknowledged")
        stored = db_event_ids(srv, agent.uid)[2]
        check(set(ids) <= stored and big not in stored, "stored %d of the 6 events; the big one: %s"
              % (len(set(ids) & stored), big in stored))
        lines = [l for l in srv.log_text().splitlines() if "exceeds max_allowed_packet" in l]
        check(len(lines) == 1 and big in lines[0] and "host bulky" in lines[0], "log lines: %r" % lines)
        check(srv.log_count("database down") == 0, "the connection was dropped: %r"
              % [l for l in srv.log_text().splitlines() if "database down" in l][:2])
    finally:
        ctx.mariadb.sql("SET GLOBAL max_allowed_packet = %s" % before)
