"""Issue 16, item 5: fields an agent sends are bounded on arrival, and a row
MariaDB still refuses is stored alone, so that no other agent's writes fail
with it. Product defaults (sync every 900 s): the agents sync when they
start and when they have events to send."""

import json
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
    check(len(row[1].encode()) <= 1024, "hosts.tags holds %d bytes" % len(row[1].encode()))
    check(stored[:2] == ["dmz", "\u00fc" * 32] and len(stored) > 10
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


def test_refused_row_alone(ctx):
    """A row MariaDB refuses for a reason the bounds do not know (here a
    CHECK constraint the administrator added to hosts) is retried alone,
    logged with the host and MariaDB's error and left out: the other
    agent's host row and both agents' events in the same writes are stored
    and acknowledged."""
    srv = ctx.server(sync_interval=None).start()
    token = srv.token_create("fleet", max_uses=2)
    victim = ctx.agent(srv, "victim", keep=False, db_age_days=0.1, rtp=True, extra=["agent.tags=refuse-me"])
    other = ctx.agent(srv, "other", keep=False, db_age_days=0.1, rtp=True)
    for a in (victim, other):
        a.enroll(token)
    srv.sql("ALTER TABLE hosts ADD CONSTRAINT refuse_tag CHECK (tags NOT LIKE '%refuse-me%')")
    srv.sql("ALTER TABLE task_results ADD CONSTRAINT refuse_output CHECK (output_tail NOT LIKE '%refuse-me%')")
    e_victim = victim.event("from the refused host")
    # one event of the same message carries a task result MariaDB refuses:
    # that event alone is left out, the ones around it are stored
    _, out, _ = ctx.run(victim.argv("event", "--severity", "info", "--kind", "task_result", "--message",
                                    "scan finished", "--data", json.dumps(
                                        {"task_id": 4242, "run": 1, "state": "succeeded", "exit_code": 0,
                                         "output_tail": "refuse-me", "started": 1, "ended": 2})))
    e_refused = out.strip()
    e_victim2 = victim.event("after the refused one")
    e_other = other.event("from the other host")
    victim.start()
    other.start()
    start = time.monotonic()
    wait_until(lambda: _acked(other, e_other, srv), 10, "the other agent's event acknowledged and stored")
    took = time.monotonic() - start
    wait_until(lambda: _acked(victim, e_victim, srv), 10, "the refused host's event acknowledged and stored")
    ids = db_event_ids(srv, victim.uid)[2]
    check(e_victim2 in ids and e_refused not in ids,
          "the victim's events in the table: %s (refused one %s)" % (sorted(ids), e_refused))
    check(srv.sql("SELECT COUNT(*) FROM task_results") == [["0"]], "a refused task result was stored")
    check(other.log_count(NACK_LINE) == 0 and victim.log_count(NACK_LINE) == 0,
          "an agent was told to retry its events (nack): other %d, victim %d"
          % (other.log_count(NACK_LINE), victim.log_count(NACK_LINE)))
    check(took < 4.5, "the other agent's event took %.1f s to be acknowledged" % took)
    wait_until(lambda: _posture_stored(srv, "other"), 10, "the other host's row with its posture")
    check(srv.sql("SELECT posture IS NULL FROM hosts WHERE name = 'victim'") == [["1"]],
          "the refused host row was written anyway")
    lines = [l for l in srv.log_text().splitlines() if "MariaDB refused its host row" in l]
    check(lines and "host victim" in lines[0] and "refuse_tag" in lines[0] and
          all("host victim" in l for l in lines),
          "expected log lines naming host victim and the constraint, got %r" % lines[:3])
    lines = [l for l in srv.log_text().splitlines() if "MariaDB refused event" in l]
    check(len(lines) == 1 and "host victim" in lines[0] and e_refused in lines[0] and "refuse_output" in lines[0],
          "expected one log line naming host victim, the event and the constraint, got %r" % lines)
    check(srv.status()["write_queue"]["refused"] >= 2, "status write_queue: %r" % srv.status()["write_queue"])
    check(srv.log_count("failed:") == 0, "a whole write failed: %r"
          % [l for l in srv.log_text().splitlines() if "failed:" in l][:2])
