"""Integration tests of issue 16 item 7: custosd started while MariaDB is
down serves the console and NAC from its local snapshot
(STATE_DIR/snapshot.json), says so in the log and the status, and goes back
to the database when it returns. Each test_NAME(ctx) is one test; ctx is a
harness.Ctx."""

import errno
import json
import os
import stat
import time

from harness import TestFailure, binary, check, wait_synced, wait_until
from test_nac_socket import Nac, expect, machine_mac, nac_conf, other_group


def reported_mac(srv, agent):
    """A MAC the agent reported (this machine's, read from its posture: on
    a shared test machine interfaces come and go)."""
    ifs = srv.ctl_json("host", agent.name)["posture"]["system"]["interfaces"]
    macs = [i["mac"] for i in ifs if i.get("mac") and i["mac"] != "00:00:00:00:00:00"]
    check(macs, "the agent reported no MAC: %r" % ifs)
    return macs[0]


def nac_answers(nac, agents, mac):
    """Every way RADIUS identifies the hosts: certificate CN and user name
    per host, the machine's MAC and 127.0.0.1 (both agents report them)."""
    got = {}
    for n, a in agents.items():
        got["cn:" + n] = nac.ask({"cn": a.uid, "phase": "authorize"})
        got["user:" + n] = nac.ask({"user": "host/%s.example.com" % a.name})
    got["mac"] = nac.ask({"mac": mac, "nas_ip": "127.0.0.1", "phase": "authorize"})
    got["ip"] = nac.ask({"ip": "127.0.0.1"})
    return got


def check_answers(got, agents, want, phase):
    """By CN and user name: the host's own token and profile; by the shared
    MAC and IP: one of the hosts, with its own token."""
    names = {a.name: n for n, a in agents.items()}
    for n, a in agents.items():
        for how in ("cn", "user"):
            r = got["%s:%s" % (how, n)]
            try:
                expect(r, want[n], host=a.name)
            except TestFailure as e:
                raise TestFailure("%s, %s by %s: %s" % (phase, n, how, e))
    for how in ("mac", "ip"):
        r = got[how]
        check(r.get("host") in names, "%s: the %s found no agent's host: %r" % (phase, how, r))
        try:
            expect(r, want[names[r["host"]]])
        except TestFailure as e:
            raise TestFailure("%s, by %s: %s" % (phase, how, e))


def db_last_seen(srv, agent):
    return int(srv.sql("SELECT last_seen FROM hosts WHERE uid = '%s'" % agent.uid)[0][0])


def test_snapshot_without_database(ctx):
    """An Infected host (threat_found event, then a wake-up and its sync) and
    a Healthy one; custosd stopped, MariaDB stopped, custosd started: the
    console logs in (custosctl status answers with "source": "snapshot" and
    the snapshot's time), the log says it serves from the snapshot and why,
    NAC answers by CN and user name exactly as before the restart (Infected
    rejected, Healthy admitted), by the shared MAC and IP with the answering
    host's own token, and the host list has both with their status; the
    healthy agent syncs meanwhile. MariaDB started again: custosd loads it,
    the status says "database", NAC answers the same, no host is doubled
    and the sync made during the outage reaches the host's row."""
    group, _ = other_group()
    sock = ctx.dir / "nac.sock"
    srv = ctx.server(sync_interval=None, extra_conf=nac_conf(sock, group)).start()
    check(srv.status().get("source") == "database", "source is not the database: %r" % srv.status())
    token = srv.token_create("snap", max_uses=2)
    agents = {
        "infected": ctx.agent(srv, "infected", keep=False, db_age_days=0.1, rtp=True),
        "healthy": ctx.agent(srv, "healthy", keep=False, db_age_days=0.1, rtp=True),
    }
    infected, healthy = agents["infected"], agents["healthy"]
    for a in agents.values():
        a.enroll(token)
        a.start()
    wait_synced(srv, list(agents))
    want = {"infected": "Infected", "healthy": "Healthy"}
    # the threat, then a sync the way an administrator asks for one
    infected.event("Eicar-Test-Signature FOUND in /tmp/eicar.com", severity="critical",
                   kind="threat_found")

    def event_stored_and_idle():
        # the agent sent the event and hung up (a wake-up pushed over a
        # connection the agent is closing can be lost; not what this tests)
        n = srv.sql("SELECT COUNT(*) FROM events e JOIN hosts h ON h.id = e.host_id WHERE h.uid = '%s'"
                    " AND e.kind = 'threat_found'" % infected.uid)[0][0]
        return n == "1" and not srv.hosts_by_name()[infected.name]["connected"]
    wait_until(event_stored_and_idle, 30, "the threat event to be stored and the agent to hang up")
    srv.ctl("wake", infected.name)
    nac = Nac(sock)
    wait_until(lambda: nac.ask({"cn": infected.uid}).get("token") == "Infected", 30,
               "the infected host's token to be Infected")
    mac = reported_mac(srv, infected)
    before = nac_answers(nac, agents, mac)
    check_answers(before, agents, want, "with the database")
    nac.close()
    hosts_before = {n: (h["status"], h["last_seen"]) for n, h in srv.hosts_by_name().items()}
    check(hosts_before[infected.name][0] == "Critical", "hosts: %r" % hosts_before)
    for a in agents.values():
        a.stop()

    snap = srv.state / "snapshot.json"
    srv.stop()     # a clean stop writes the newest state
    check(snap.exists(), "no snapshot at %s after a clean stop" % snap)
    mode = stat.S_IMODE(os.stat(snap).st_mode)
    check(mode == 0o600, "snapshot mode %o, expected 600" % mode)
    written = os.stat(snap).st_mtime
    db_seen = db_last_seen(srv, healthy)

    ctx.mariadb.stop()
    try:
        t0 = time.time()
        srv.start()        # waits until custosctl status answers: the login works
        st = srv.status()
        check(st.get("source") == "snapshot", "status source %r, expected snapshot: %r"
              % (st.get("source"), st))
        check(st.get("database") != "up", "the database is %r while MariaDB is stopped" % st.get("database"))
        check(isinstance(st.get("snapshot_time"), int) and written - 5 <= st["snapshot_time"] <= t0,
              "snapshot_time %r is not the snapshot's (written %d)" % (st.get("snapshot_time"), written))
        check(st["hosts"]["total"] == 2 and st["hosts"]["critical"] == 1,
              "hosts in the status: %r" % st["hosts"])
        log = srv.log_text().split("--- ")[-1]
        check("serving from the snapshot of " in log and "because the database is unavailable: " in log,
              "the log does not say it serves from the snapshot: %s" % log[-1500:])
        hosts = {n: (h["status"], h["last_seen"]) for n, h in srv.hosts_by_name().items()}
        check(hosts == hosts_before, "hosts from the snapshot %r, before %r" % (hosts, hosts_before))
        nac = Nac(sock)
        during = nac_answers(nac, agents, mac)
        check_answers(during, agents, want, "from the snapshot")
        for k in before:
            if k.startswith(("cn:", "user:")):
                check(during[k] == before[k], "%s answered %r from the snapshot, %r before"
                      % (k, during[k], before[k]))
        nac.close()
        # an agent that syncs now is served by its snapshot host
        time.sleep(1.1)   # last_seen counts seconds
        healthy.start()
        wait_until(lambda: srv.hosts_by_name()[healthy.name]["last_seen"] > hosts_before[healthy.name][1],
                   30, "the healthy agent's sync to be served")
        check(srv.status().get("source") == "snapshot", "source changed: %r" % srv.status())
    finally:
        ctx.mariadb.ensure_running()

    # the database is back: the load replaces the snapshot's hosts
    wait_until(lambda: srv.status().get("source") == "database", 30, "the status to say the database")
    st = srv.status()
    check(st.get("database") == "up" and st.get("snapshot_time") is None, "status after the load: %r" % st)
    check(st["hosts"]["total"] == 2, "hosts after the load: %r" % st["hosts"])
    check(srv.log_count("no longer serving from the snapshot") == 1,
          "the log does not say the snapshot was replaced: %s" % srv.log_text()[-1500:])
    nac = Nac(sock)
    check_answers(nac_answers(nac, agents, mac), agents, want, "after the database came back")
    nac.close()
    # the sync taken while the database was away reaches the host's row
    wait_until(lambda: db_last_seen(srv, healthy) > db_seen, 30,
               "the healthy host's sync during the outage to reach the database")


def test_snapshot_unusable(ctx):
    """A damaged snapshot while MariaDB is down: custosd says so in one
    line, starts empty (the console cannot log in: 401) and loads the
    database when it comes back."""
    srv = ctx.server(sync_interval=None).start()
    srv.stop()
    snap = srv.state / "snapshot.json"
    check(snap.exists(), "no snapshot after a clean stop")
    text = snap.read_bytes()
    snap.write_bytes(text[: len(text) // 2])
    ctx.mariadb.stop()
    try:
        srv.proc = ctx.spawn([binary("custosd"), "-c", srv.conf], srv.log)
        wait_until(lambda: "the snapshot is unusable" in srv.log_text(), 20,
                   "custosd to say the snapshot is unusable")
        check(srv.alive(), "custosd exited with a damaged snapshot")
        check("not a complete JSON document" in srv.log_text(), "the reason is not given: %s"
              % srv.log_text()[-1000:])
        rc, _, err = ctx.run(srv.ctl_argv("status"), expect_rc=None)
        check(rc != 0 and "401" in err, "custosctl status without a database or snapshot: rc %d %s" % (rc, err))
    finally:
        ctx.mariadb.ensure_running()
    wait_until(lambda: srv.ctl_rc("status") == 0, 30, "the console to log in once the database is back")
    check(srv.status().get("source") == "database", "source after the load: %r" % srv.status())


def test_outage_sync_keeps_settings(ctx):
    """A host moved to a group and given local settings whose agent syncs
    while custosd runs without its database (and without a snapshot, so
    the host starts as a pending one): when MariaDB comes back the load
    merges the sync without wiping the host's group and local settings."""
    srv = ctx.server(sync_interval=None).start()
    token = srv.token_create("keep", max_uses=1)
    agent = ctx.agent(srv, "web", keep=False, db_age_days=0.1, rtp=True)
    agent.enroll(token)
    agent.start()
    wait_synced(srv, ["web"])
    srv.ctl("group", "create", "Servers")
    srv.ctl("move", "web", "Servers")
    srv.ctl("host-settings", "web", '{"clamav": {"update_interval_hours": 2}}')

    def row():
        r = srv.sql("SELECT g.name, h.local_settings, h.last_seen FROM hosts h LEFT JOIN `groups` g"
                    " ON g.id = h.group_id WHERE h.uid = '%s'" % agent.uid)
        return r[0] if r else None
    wait_until(lambda: row() and row()[0] == "Servers" and row()[1] != "NULL", 15,
               "the move and the settings to reach the database")
    seen = int(row()[2])
    agent.stop()
    srv.stop()
    (srv.state / "snapshot.json").unlink()
    ctx.mariadb.stop()
    try:
        srv.proc = ctx.spawn([binary("custosd"), "-c", srv.conf], srv.log)
        wait_until(lambda: "there is no snapshot" in srv.log_text(), 20,
                   "custosd to say there is no snapshot")
        time.sleep(1.1)   # last_seen counts seconds
        synced = agent.log_count("synced with the server")
        agent.start()
        wait_until(lambda: agent.log_count("synced with the server") > synced, 30,
                   "the agent to sync while the database is away")
    finally:
        ctx.mariadb.ensure_running()
    wait_until(lambda: srv.ctl_rc("status") == 0, 30, "the database load")
    wait_until(lambda: int(row()[2]) > seen, 30, "the outage sync to reach the host's row")
    name, settings, _ = row()
    check(name == "Servers", "the host's group in the database is %r after the merge, not Servers" % name)
    check(settings != "NULL" and "update_interval_hours" in settings,
          "the host's local settings in the database are %r after the merge" % settings)
    h = srv.hosts_by_name()
    check(list(h) == ["web"] and h["web"]["group"] == "Servers", "hosts after the merge: %r" % h)


def test_snapshot_stale_host(ctx):
    """A snapshot host the database no longer has (deleted, its name "web"
    reused by a host enrolled after the snapshot) whose agent is connected
    while custosd serves from the snapshot: when MariaDB comes back the
    database's "web" is loaded (was: refused as "in the database twice",
    its agent unknown), the stale host leaves memory and its agent is told
    unknown_host (was: kept for ever while connected)."""
    srv = ctx.server(sync_interval=None).start()
    token = srv.token_create("stale", max_uses=2)
    old = ctx.agent(srv, "web", keep=True, db_age_days=0.1, rtp=True)
    new = ctx.agent(srv, "other", keep=False, db_age_days=0.1, rtp=True)
    for a in (old, new):
        a.enroll(token)
        a.start()
    wait_synced(srv, ["web", "other"])
    for a in (old, new):
        a.stop()
    srv.stop()
    snap = srv.state / "snapshot.json"
    doc = json.loads(snap.read_text())
    # the new host came after this snapshot
    doc["hosts"] = [h for h in doc["hosts"] if h["uid"] != new.uid]
    doc["hosts_count"] = len(doc["hosts"])
    snap.write_text(json.dumps(doc))
    # in the database the old host is deleted and its name reused
    srv.sql("DELETE FROM hosts WHERE uid = '%s'" % old.uid)
    srv.sql("UPDATE hosts SET name = 'web' WHERE uid = '%s'" % new.uid)
    ctx.mariadb.stop()
    try:
        srv.start()
        check(srv.status().get("source") == "snapshot", "source: %r" % srv.status())
        hosts = srv.hosts_by_name()
        check(list(hosts) == ["web"] and hosts["web"]["uid"] == old.uid, "hosts from the snapshot: %r" % hosts)
        old.start()
        wait_until(lambda: srv.hosts_by_name()["web"]["connected"], 30,
                   "the deleted host's agent to connect while serving from the snapshot")
    finally:
        ctx.mariadb.ensure_running()
    wait_until(lambda: srv.status().get("source") == "database", 30, "the status to say the database")
    hosts = srv.hosts_by_name()
    check(list(hosts) == ["web"] and hosts["web"]["uid"] == new.uid,
          "hosts after the load (the database's web is %s): %r" % (new.uid, hosts))
    check(srv.log_count("in the database twice") == 0, "a database host was refused: %s"
          % srv.log_text()[-1500:])
    wait_until(lambda: old.log_count("unknown_host") >= 1, 20,
               "the deleted host's agent to be told unknown_host")
    check(srv.log_count("connected agent(s) closed with unknown_host") == 1,
          "the log does not say the stale host was dropped: %s" % srv.log_text()[-1500:])
    # the database's web is served
    synced = new.log_count("synced with the server")
    new.start()
    wait_until(lambda: new.log_count("synced with the server") > synced, 30, "the database's web to sync")
    check(new.log_count("unknown_host") == 0, "the database's web was told unknown_host")


def test_snapshot_agent_first(ctx):
    """An agent that syncs before the snapshot read is in (held back here:
    the snapshot is a FIFO fed only after the sync) is first a pending-
    host; the read gives it its snapshot name and group (was:
    pending-XXXXXXXX for the whole outage, then written into the next
    snapshot)."""
    srv = ctx.server(sync_interval=None).start()
    token = srv.token_create("first", max_uses=1)
    agent = ctx.agent(srv, "web", keep=True, db_age_days=0.1, rtp=True)
    agent.enroll(token)
    agent.start()
    wait_synced(srv, ["web"])
    srv.ctl("group", "create", "Servers")
    srv.ctl("move", "web", "Servers")
    agent.stop()
    srv.stop()
    snap = srv.state / "snapshot.json"
    doc = json.loads(snap.read_text())
    mine = [h for h in doc["hosts"] if h["uid"] == agent.uid]
    check(len(mine) == 1 and mine[0]["group_id"] > 0, "the host in the snapshot: %r" % mine)
    # the agent comes first: the snapshot is a FIFO that custosd's reader
    # (its own thread) blocks on until the test feeds it, after the sync
    text = json.dumps(doc).encode()
    snap.unlink()
    os.mkfifo(str(snap), 0o600)
    fed = []

    def feed():
        """Writes the snapshot into the FIFO once custosd has it open."""
        try:
            fd = os.open(str(snap), os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ENXIO:      # no reader yet
                return False
            raise
        try:
            os.set_blocking(fd, True)
            os.write(fd, text)
        finally:
            os.close(fd)
        fed.append(True)
        return True
    ctx.mariadb.stop()
    try:
        srv.proc = ctx.spawn([binary("custosd"), "-c", srv.conf], srv.log)
        synced = agent.log_count("synced with the server")
        agent.start()
        wait_until(lambda: agent.log_count("synced with the server") > synced, 30,
                   "the agent to sync while the database is away")
        check("serving from the snapshot" not in srv.log_text(),
              "the snapshot was read before it was fed")
        wait_until(feed, 30, "custosd to open the snapshot for reading")
        wait_until(lambda: "serving from the snapshot" in srv.log_text(), 60, "the snapshot read")
        wait_until(lambda: srv.ctl_rc("status") == 0, 30, "the console to log in from the snapshot")
        h = {x["uid"]: x for x in srv.hosts()}[agent.uid]
        check(h["name"] == "web", "the agent's host is named %r from the snapshot, not web" % h["name"])
        check(srv.log_count("took their names and groups from the snapshot") == 1,
              "the log does not say the pending host was named: %s" % srv.log_text()[-1500:])
        check(srv.hosts_by_name().get("web", {}).get("connected"), "the agent's host is not connected")
    finally:
        if not fed:
            try:
                feed()      # never leave custosd's reader blocked on the FIFO
            except OSError:
                pass
        ctx.mariadb.ensure_running()
    wait_until(lambda: srv.status().get("source") == "database", 60, "the status to say the database")
    h = {x["uid"]: x for x in srv.hosts()}[agent.uid]
    check(h["name"] == "web" and h["group"] == "Servers", "the host after the load: %r" % h)
