"""The integration tests of issue 2. Each test_NAME(ctx) is one test; the
runner (run.py) runs them in this order. ctx is a harness.Ctx."""

import json
import os
import re
import socket
import ssl
import struct
import time

from harness import (TestFailure, binary, check, clamav_header, db_event_ids, tls_wrap, wait_synced,
                     wait_until)


def _onacc_running():
    """clamav falls back to looking for a clamonacc process: a machine that
    runs one reports real-time protection on."""
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() == "clamonacc":
                    return True
        except OSError:
            continue
    return False


def _reasons(host):
    return sorted((r["reason"], r["severity"]) for r in host["reasons"])


# 1 -------------------------------------------------------------------------

def test_enroll_and_report(ctx):
    """Agents enroll and report; a name clash gets -1; ClamAV database age
    and real-time protection give the documented statuses."""
    srv = ctx.server().start()
    token = srv.token_create("fleet", max_uses=10)
    now = int(time.time())
    fresh = ctx.agent(srv, "alpha", db_age_days=0.1, rtp=True)
    warn = ctx.agent(srv, "alpha", label="alpha-twin", db_age_days=4, rtp=True)
    crit = ctx.agent(srv, "gamma", db_age_days=10, rtp=True)
    no_rtp = ctx.agent(srv, "delta", db_age_days=0.1, rtp=False)
    agents = [fresh, warn, crit, no_rtp]
    for a in agents:
        _, out = a.enroll(token)
        check("enrolled as %s " % ("alpha-1" if a is warn else a.hostname) in out,
              "enrolment of %s printed %r" % (a.label, out.strip()))
        a.start()
    check(warn.name == "alpha-1", "second 'alpha' stored name %r in host.json, expected alpha-1" % warn.name)
    hosts = wait_synced(srv, ["alpha", "alpha-1", "gamma", "delta"])
    check(sorted(hosts) == ["alpha", "alpha-1", "delta", "gamma"],
          "custosctl hosts lists %s" % sorted(hosts))

    expect = {
        "alpha": ("OK", []),
        "alpha-1": ("Warning", [("databases_outdated", "Warning")]),
        "gamma": ("Critical", [("databases_outdated", "Critical")]),
        "delta": ("OK", []) if _onacc_running() else ("Critical", [("rtp_off", "Critical")]),
    }
    by_name = {"alpha": fresh, "alpha-1": warn, "gamma": crit, "delta": no_rtp}
    for name, (status, reasons) in expect.items():
        h = hosts[name]
        a = by_name[name]
        for key in ("name", "status", "reasons", "last_seen", "antivirus", "uid", "hostname"):
            check(key in h, "host %s has no %r in --json hosts: %s" % (name, key, json.dumps(h)))
        check(h["uid"] == a.uid, "host %s has uid %s, the agent has %s" % (name, h["uid"], a.uid))
        check(h["hostname"] == a.hostname, "host %s reports hostname %r" % (name, h["hostname"]))
        check(h["status"] == status and _reasons(h) == reasons,
              "host %s: expected %s %s, got %s %s" % (name, status, reasons, h["status"], _reasons(h)))
        check(now - 5 <= h["last_seen"] <= time.time() + 5,
              "host %s: last_seen %s is not about now (%d)" % (name, h["last_seen"], now))
        av = h["antivirus"]
        check(isinstance(av, list) and len(av) == 1, "host %s: antivirus is %r" % (name, av))
        for key in ("db_time", "rtp", "installed"):
            check(key in av[0], "host %s: antivirus[0] has no %r: %r" % (name, key, av[0]))
        check(av[0]["installed"] is True, "host %s: ClamAV not installed? %r" % (name, av[0]))
        check(av[0]["db_time"] == a.db_time, "host %s: antivirus[0].db_time %r, the daily.cld header says %d"
              % (name, av[0]["db_time"], a.db_time))
        if a is not no_rtp:
            check(av[0]["rtp"] is True, "host %s: rtp %r with a live clamonacc pid file" % (name, av[0]["rtp"]))
    for r in hosts["gamma"]["reasons"]:
        check("10 days" in r["text"], "gamma's reason text %r does not say 10 days" % r["text"])

    # they report events too, and the database holds the same fleet
    ids = {a.label: a.event("hello from %s" % a.label) for a in agents}
    for a in agents:
        wait_until(lambda: ids[a.label] in db_event_ids(srv, a.uid)[2], 20,
                   "the event of %s in the events table" % a.label)
    rows = srv.sql("SELECT name, uid, status FROM hosts ORDER BY name")
    check([r[0] for r in rows] == ["alpha", "alpha-1", "delta", "gamma"], "hosts table holds %s" % rows)
    codes = {"OK": "0", "Warning": "1", "Critical": "2"}
    for name, uid, st in rows:
        check(uid == by_name[name].uid and st == codes[expect[name][0]],
              "hosts row %s: uid %s status %s" % (name, uid, st))


# 2 -------------------------------------------------------------------------

def test_restart_keeps_hosts(ctx):
    """A server restart keeps every host; agents that keep their connection
    reconnect and sync again by themselves."""
    srv = ctx.server().start()
    token = srv.token_create("fleet", max_uses=3)
    # about agent.keep_connection: these agents hold their connection
    agents = [ctx.agent(srv, n, keep=True, db_age_days=0.1, rtp=True) for n in ("web", "db", "mail")]
    for a in agents:
        a.enroll(token)
        a.start()
    wait_synced(srv, ["web", "db", "mail"])
    wait_until(lambda: srv.status()["agents_connected"] == 3, 20, "3 agents connected")

    def snapshot():
        return {h["name"]: (h["uid"], h["id"], h["hostname"], h["enrolled_at"], h["status"])
                for h in srv.hosts()}
    before = snapshot()
    # the reconnection's sync can come before restart() returns: take the
    # time first, once the clock has left the second of the last sync
    _after_second(max(h["last_seen"] for h in srv.hosts()))
    restarted = int(time.time())
    srv.restart()
    after = snapshot()
    check(after == before, "hosts before the restart %s, after %s" % (before, after))
    check(srv.status()["hosts"]["total"] == 3, "status counts %r hosts" % srv.status()["hosts"])

    # nobody touches the agents: they reconnect and sync on their own
    wait_until(lambda: srv.status()["agents_connected"] == 3, 30, "3 agents to reconnect after the restart")
    def all_seen():
        hosts = srv.hosts()
        return all(h["last_seen"] >= restarted and h["connected"] for h in hosts) and hosts
    wait_until(all_seen, 30, "every host's last_seen to advance past the restart at %d" % restarted,
               interval=0.5)
    st = srv.status()
    check(st["counters"]["connections"] >= 3 and st["counters"]["syncs"] >= 3,
          "counters after the restart: %r" % st["counters"])
    check(after == snapshot(), "the hosts changed identity after reconnecting: %s" % snapshot())
    rows = srv.sql("SELECT COUNT(*) FROM hosts")
    check(rows == [["3"]], "hosts table holds %s rows" % rows)


# 2b ------------------------------------------------------------------------

def _dpkg_status(path, n):
    """A dpkg status file with n installed packages pkg0000.. (and one
    removed package that is not reported)."""
    paras = ["Package: pkg%04d\nStatus: install ok installed\nArchitecture: amd64\n"
             "Version: 1.%d-1\nDescription: package %d\n continued\n" % (i, i, i) for i in range(n)]
    paras.append("Package: gone\nStatus: deinstall ok config-files\nVersion: 9\n")
    path.write_text("\n".join(paras))


def _db_packages(srv, name):
    """How many packages the hosts row's posture holds (a string, as SQL
    rows come back; "NULL" without a posture)."""
    rows = srv.sql("SELECT IFNULL(JSON_LENGTH(posture, '$.software'), 'NULL') FROM hosts "
                   "WHERE name = '%s'" % name)
    return rows[0][0] if rows else None


def test_software_in_database(ctx):
    """The package list lives in MariaDB only: the host detail counts the
    packages (software.packages_count), GET /hosts/NAME/software lists them
    from the database, also after a restart; writes without a new posture
    (a move, a sync after the restart) keep them in the database; an
    unknown host is a 404 and a database that is down a 503."""
    srv = ctx.server().start()
    token = srv.token_create("fleet", max_uses=1)
    status = ctx.dir / "dpkg-status"
    _dpkg_status(status, 1200)
    agent = ctx.agent(srv, "pkghost", db_age_days=0.1, rtp=True,
                      extra=("software.enabled=true", "software.dpkg_status=%s" % status))
    agent.enroll(token)
    agent.start()
    wait_synced(srv, ["pkghost"])

    def counted(n):
        sw = srv.ctl_json("host", "pkghost")["posture"].get("software")
        return sw if sw == {"packages_count": n} else None
    sw = wait_until(lambda: counted(1200), 10, "the host detail to count 1200 packages")
    check("pkg0000" not in json.dumps(srv.ctl_json("host", "pkghost")),
          "the host detail still holds package names: %r" % sw)
    wait_until(lambda: _db_packages(srv, "pkghost") == "1200", 10, "the hosts row to hold 1200 packages")

    def listed(n):
        j = srv.ctl_json("host-software", "pkghost")
        check(set(j) == {"host", "packages", "packages_count", "posture_time"},
              "host-software answered the members %s" % sorted(j))
        check(j["host"] == "pkghost" and j["packages_count"] == n and len(j["packages"]) == n,
              "host-software: host %r, packages_count %r, %d packages; expected %d" % (
                  j["host"], j["packages_count"], len(j["packages"]), n))
        names = {p["name"]: p["version"] for p in j["packages"]}
        check(names == {"pkg%04d" % i: "1.%d-1" % i for i in range(n)},
              "host-software lists other packages: %r..." % sorted(names)[:5])
        check(j["posture_time"] > 0, "host-software: posture_time %r" % j["posture_time"])
        return j
    listed(1200)
    out = srv.ctl("host-software", "pkghost")
    check("1200 package(s) on pkghost" in out and "pkg0007" in out,
          "custosctl host-software printed %r" % out[-300:])
    rc, out, _ = ctx.run(srv.ctl_argv("--json", "host-software", "nosuch"), expect_rc=1)
    check("no host named" in out, "host-software of an unknown host answered %r" % out)

    # a new package list reaches memory (the count) and the database
    _dpkg_status(status, 1201)
    srv.wake_and_wait(agent)
    wait_until(lambda: counted(1201), 20, "the host detail to count 1201 packages after a wake-up")
    wait_until(lambda: _db_packages(srv, "pkghost") == "1201", 10, "the hosts row to hold 1201 packages")
    listed(1201)

    # a restart loads the posture without the list; the endpoint reads it
    agent.stop()
    srv.restart()
    wait_until(lambda: "pkghost" in srv.hosts_by_name(), 10, "the hosts to load after the restart")
    check(counted(1201), "after the restart the host detail shows %r"
          % srv.ctl_json("host", "pkghost")["posture"].get("software"))
    listed(1201)

    # a row written without a new posture keeps the stored list
    srv.ctl("group", "create", "Servers")
    srv.ctl("move", "pkghost", "Servers")
    wait_until(lambda: srv.sql("SELECT group_id FROM hosts WHERE name = 'pkghost'")[0][0] != "0", 10,
               "the move to reach the hosts row")
    check(_db_packages(srv, "pkghost") == "1201", "a move left %s packages in the hosts row"
          % _db_packages(srv, "pkghost"))

    # and so does the next sync (same packages)
    restarted = int(time.time())
    agent.start()
    wait_until(lambda: srv.hosts_by_name()["pkghost"]["last_seen"] >= restarted, 30,
               "the agent to sync after the restart")
    wait_until(lambda: srv.status()["write_queue"]["hosts"] == 0, 10, "the host write to finish")
    check(_db_packages(srv, "pkghost") == "1201", "a sync left %s packages in the hosts row"
          % _db_packages(srv, "pkghost"))
    listed(1201)

    # without the database: 503 (the agent is stopped: no posture waits in memory)
    agent.stop()
    wait_until(lambda: srv.status()["write_queue"]["hosts"] == 0 and srv.status()["write_queue"]["jobs"] == 0,
               10, "the writes to finish")
    ctx.mariadb.stop()
    try:
        rc, out, err = ctx.run(srv.ctl_argv("--json", "host-software", "pkghost"), expect_rc=1)
        check("HTTP 503" in err and "database" in json.loads(out)["error"],
              "host-software without the database: %r %r" % (out, err))
    finally:
        ctx.mariadb.start()
    wait_until(lambda: srv.status()["database"] == "up", 30, "custosd to report the database up")
    listed(1201)


# 3 -------------------------------------------------------------------------

EVENTS_PER_AGENT = 100


def _stream_with_outage(ctx, outage_start, outage_end):
    """Three agents (two keep their connection, one does not) stream
    EVENTS_PER_AGENT events each; outage_start() runs after 40% of them,
    outage_end() after 70%. Then every event must be stored exactly once and
    every spool must drain."""
    srv = ctx.server().start()
    token = srv.token_create("fleet", max_uses=3)
    # both connection modes on purpose: a kept connection and one per batch
    agents = [ctx.agent(srv, "load%d" % i, keep=(i != 2), db_age_days=0.1, rtp=True) for i in range(3)]
    for a in agents:
        a.enroll(token)
        a.start()
    wait_synced(srv, [a.hostname for a in agents])
    injected = {a.label: [] for a in agents}
    for i in range(EVENTS_PER_AGENT):
        if i == EVENTS_PER_AGENT * 4 // 10:
            outage_start(srv)
        if i == EVENTS_PER_AGENT * 7 // 10:
            backlog = sum(a.queued() for a in agents)
            check(backlog > 0, "no event waited in a spool during the outage")
            outage_end(srv)
        for a in agents:
            injected[a.label].append(a.event("event %d of %s" % (i, a.label), severity="warning"))
    for a in agents:
        check(len(set(injected[a.label])) == EVENTS_PER_AGENT, "agent %s returned duplicate event ids" % a.label)

    def converged():
        for a in agents:
            n, distinct, ids = db_event_ids(srv, a.uid)
            if n != EVENTS_PER_AGENT or a.queued() != 0:
                return None
        return True
    try:
        wait_until(converged, 60, "every event stored and every spool empty", interval=0.5)
    except TestFailure:
        report = []
        for a in agents:
            n, distinct, ids = db_event_ids(srv, a.uid)
            report.append("%s: %d rows (%d distinct), %d missing, queued %d" % (
                a.label, n, distinct, len(set(injected[a.label]) - ids), a.queued()))
        raise TestFailure("no convergence within 60 s: " + "; ".join(report))
    for a in agents:
        rows = srv.sql("SELECT COUNT(*), COUNT(DISTINCT e.event_uid) FROM events e JOIN hosts h "
                       "ON h.id = e.host_id WHERE h.uid = '%s'" % a.uid)
        check(rows == [[str(EVENTS_PER_AGENT), str(EVENTS_PER_AGENT)]],
              "agent %s: COUNT(*), COUNT(DISTINCT event_uid) = %s, expected %d each"
              % (a.label, rows, EVENTS_PER_AGENT))
        _, _, ids = db_event_ids(srv, a.uid)
        check(ids == set(injected[a.label]), "agent %s: stored ids differ from the injected ones "
              "(%d missing, %d unknown)" % (a.label, len(set(injected[a.label]) - ids),
                                            len(ids - set(injected[a.label]))))
        st = a.status()
        check(st["queued_events"] == 0 and st["dropped_events"] == 0, "agent %s status %r" % (a.label, st))
    total = srv.sql("SELECT COUNT(*) FROM events")
    check(total == [[str(3 * EVENTS_PER_AGENT)]], "events table holds %s rows" % total)
    return srv


def test_kill9_server_under_load(ctx):
    """kill -9 of the server while three agents stream events: after a
    restart every event is stored exactly once and the spools drain."""
    def kill(srv):
        srv.kill9()
    def restart(srv):
        srv.start()
    srv = _stream_with_outage(ctx, kill, restart)
    check(srv.alive(), "custosd died after the restart")


def test_mariadb_restart_under_load(ctx):
    """MariaDB stopped and started again while three agents stream events:
    every event is stored exactly once and the spools drain."""
    def stop_db(srv):
        ctx.mariadb.stop()
    def start_db(srv):
        ctx.mariadb.start()
    srv = _stream_with_outage(ctx, stop_db, start_db)
    check(srv.alive(), "custosd died while MariaDB was away")
    check(re.search(r"database (down|unavailable)", srv.log_text()) is not None,
          "custosd never logged that the database was down")
    wait_until(lambda: srv.status()["database"] == "up", 20, "custosd to report the database up")


# 4 -------------------------------------------------------------------------

def test_pinned_server_refuses_impostor(ctx):
    """An enrolled agent refuses a server with another certificate on the
    same address; its events stay queued and reach the real server later."""
    real = ctx.server(label="real").start()
    token = real.token_create("fleet", max_uses=1)
    agent = ctx.agent(real, "web", db_age_days=0.1, rtp=True)
    agent.enroll(token)
    agent.start()
    wait_synced(real, ["web"])
    first = agent.event("before the impostor")
    wait_until(lambda: first in db_event_ids(real, agent.uid)[2], 20, "the first event stored")

    real.stop()
    impostor = ctx.server(label="impostor", listen_port=real.listen_port, api_port=real.api_port).start()
    pinned = agent.log_count("is pinned; refusing")
    second = agent.event("while the impostor listens")
    wait_until(lambda: agent.log_count("is pinned; refusing") >= pinned + 2, 20,
               "the agent to refuse the impostor twice (\"is pinned; refusing\")")
    check(impostor.hosts() == [], "the impostor lists hosts: %r" % impostor.hosts())
    check(impostor.ctl_json("events") == [], "the impostor has events: %r" % impostor.ctl_json("events"))
    check(impostor.sql("SELECT COUNT(*) FROM events") == [["0"]], "the impostor's events table is not empty")
    c = impostor.status()["counters"]
    check(c["events_received"] == 0 and c["syncs"] == 0 and c["enrolled"] == 0,
          "the impostor's counters show agent traffic: %r" % c)
    st = agent.status()
    check(st["queued_events"] == 1, "the agent's queue holds %d events, expected the 1 refused one"
          % st["queued_events"])
    check(st["server_fingerprint"] != impostor.status()["server_fingerprint"],
          "the agent pinned the impostor's certificate")

    # the real server back: the queued event arrives
    impostor.stop()
    real.start()
    wait_until(lambda: second in db_event_ids(real, agent.uid)[2] and agent.queued() == 0, 45,
               "the queued event to reach the real server", interval=0.5)


# 5 -------------------------------------------------------------------------

def _refused(agent, token, needle):
    rc, out = agent.enroll(token, expect_ok=False)
    check(rc != 0, "enrolment with a bad token (%s) exited 0: %s" % (needle, out.strip()))
    check(needle in out, "enrolment refused without saying %r: %s" % (needle, out.strip()))
    check("refused enrolment" in out, "the agent does not say the server refused: %s" % out.strip())
    leftovers = sorted(p.name for p in agent.state.iterdir()) if agent.state.exists() else []
    check(leftovers == [], "a refused enrolment left files in the state dir: %s" % leftovers)
    check(not (agent.state / "host.json").exists(), "a refused enrolment wrote host.json")


def test_enrolment_refused(ctx):
    """Wrong, expired and used-up tokens are refused with a clear message,
    custos-agent exits non-zero, and nothing is written to its state dir."""
    expired_secret = "expired-secret-0123456789"
    srv = ctx.server(extra_conf="""enroll: {
  tokens = (
    { name = "old"; secret = "%s"; expires = %d; max_uses = 0; }
  );
};""" % (expired_secret, int(time.time()) - 3600)).start()
    wait_until(lambda: "old" in srv.tokens(), 10, "the configured token to be listed")
    once = srv.token_create("once", max_uses=1)

    _refused(ctx.agent(srv, "wrong"), "this-token-does-not-exist-42", "not valid")
    _refused(ctx.agent(srv, "late"), expired_secret, "expired")
    ok = ctx.agent(srv, "first")
    ok.enroll(once)
    check((ok.state / "host.json").exists(), "the first enrolment with token once wrote no host.json")
    _refused(ctx.agent(srv, "second"), once, "used up")

    check(sorted(srv.hosts_by_name()) == ["first"], "hosts after the refusals: %s" % sorted(srv.hosts_by_name()))
    c = srv.status()["counters"]
    check(c["enroll_refused"] == 3 and c["enrolled"] == 1, "enrolment counters %r" % c)
    t = srv.tokens()
    check(t["once"]["uses"] == 1 and t["old"]["uses"] == 0, "token uses after the refusals: %r" % t)
    check(srv.sql("SELECT uses FROM enroll_tokens WHERE name = 'once'") == [["1"]],
          "the used-up token's uses in the database are not 1")
    for needle in ("unknown enrolment token", "expired on", "is used up"):
        check(needle in srv.log_text(), "the server log does not say %r" % needle)


# 6 -------------------------------------------------------------------------

def _wait_closed(sock, timeout):
    """Reads until the peer closes; returns the seconds it took. Fails when
    the connection is still open after timeout seconds."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            data = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ssl.SSLError, ConnectionError, OSError):
            return time.monotonic() - t0
        if not data:
            return time.monotonic() - t0
    raise TestFailure("the server kept the connection open for %gs" % timeout)


def _foreign_client_cert(ctx):
    """A client certificate for a plausible host id, signed by a CA the
    server has never seen (made with the openssl CLI)."""
    d = ctx.dir / "foreign-ca"
    d.mkdir()
    uid = os.urandom(16).hex()
    (d / "ext.cnf").write_text("extendedKeyUsage = clientAuth\n")
    steps = [
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", d / "ca.key"],
        ["openssl", "req", "-x509", "-new", "-key", d / "ca.key", "-subj", "/CN=Foreign CA", "-days", "2",
         "-out", d / "ca.pem"],
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", d / "client.key"],
        ["openssl", "req", "-new", "-key", d / "client.key", "-subj", "/CN=" + uid, "-out", d / "client.csr"],
        ["openssl", "x509", "-req", "-in", d / "client.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", d / "ext.cnf", "-out", d / "client.pem"],
    ]
    for argv in steps:
        ctx.run(argv, timeout=30)
    return d / "client.pem", d / "client.key"


def test_agent_port_abuse(ctx):
    """Garbage, HTTP, a truncated frame, an oversized frame, a foreign client
    certificate and a silent client are each closed by the server with a log
    line, while a real agent with a kept connection goes on being served."""
    srv = ctx.server(handshake_timeout=2).start()
    token = srv.token_create("fleet", max_uses=2)
    # about a kept connection (agent.keep_connection) surviving the abuse;
    # "casual" (the product default) connects anew for its event afterwards
    agent = ctx.agent(srv, "steady", keep=True, db_age_days=0.1, rtp=True)
    casual = ctx.agent(srv, "casual", db_age_days=0.1, rtp=True)
    for a in (agent, casual):
        a.enroll(token)
        a.start()
    wait_synced(srv, ["steady", "casual"])
    wait_until(lambda: srv.hosts_by_name()["steady"]["connected"], 10, "the agent's kept connection")
    cert, key = _foreign_client_cert(ctx)
    port = srv.listen_port
    logged = {}

    # the silent one first: its handshake timeout runs while the others go on
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    silent_port = silent.getsockname()[1]
    silent_t0 = time.monotonic()

    def abuse(what, send, tls=False, cert=None, key=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        logged[what] = s.getsockname()[1]
        try:
            if tls:
                s = tls_wrap(s, cert, key)
            send(s)
        except (ConnectionError, ssl.SSLError, OSError):
            pass  # the server may be closing already: that is the point
        _wait_closed(s, 10)
        s.close()

    def truncated(s):
        # the header promises 100 bytes, 14 come, then the client stops
        # sending (FIN); the server must notice and close its side too
        s.sendall(struct.pack(">I", 100) + b'{"type":"ping"')
        time.sleep(0.2)
        s.shutdown(socket.SHUT_WR)

    abuse("garbage", lambda s: s.sendall(b"\x00\xff\x13\x37 this is not TLS \x00" * 40))
    abuse("http", lambda s: s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    abuse("oversized", lambda s: s.sendall(struct.pack(">I", 0x7fffffff) + b"{" * 64), tls=True)
    abuse("truncated", truncated, tls=True)
    # TLS 1.3: the client finishes its handshake first; the server's verdict
    # on the certificate follows
    abuse("foreign certificate", lambda s: s.sendall(struct.pack(">I", 16) + b'{"type": "ping"}'),
          tls=True, cert=cert, key=key)

    _wait_closed(silent, 10)
    waited = time.monotonic() - silent_t0
    silent.close()
    logged["silent"] = silent_port
    check(1.5 <= waited <= 6, "the silent connection was closed after %.1fs, expected the 2 s "
          "handshake timeout" % waited)

    def line_for(p):
        return [l for l in srv.log_text().splitlines() if "127.0.0.1:%d:" % p in l]
    for what, p in logged.items():
        lines = wait_until(lambda: line_for(p), 5, "a server log line about the %s connection "
                           "(127.0.0.1:%d)" % (what, p))
        logged[what] = (p, lines[0])
    expect = {
        "garbage": "TLS handshake failed",
        "http": "TLS handshake failed",
        "oversized": "closing",
        "truncated": "middle of a frame",
        "foreign certificate": "TLS handshake failed",
        "silent": "TLS handshake timeout",
    }
    for what, needle in expect.items():
        check(needle in logged[what][1], "the %s connection was logged as %r, expected %r"
              % (what, logged[what][1], needle))

    check(srv.alive(), "custosd died under abuse")
    c = srv.status()["counters"]
    check(c["tls_failures"] >= 3 and c["bad_frames"] >= 2, "abuse counters %r" % c)
    # the real agent is still served over its kept connection
    eid = agent.event("after the abuse")
    wait_until(lambda: eid in db_event_ids(srv, agent.uid)[2] and agent.queued() == 0, 20,
               "the agent's event after the abuse to be stored")
    check(agent.log_count("connection to the server closed") == 0,
          "the agent's kept connection was dropped during the abuse")
    # and an agent that connects anew is served too
    eid = casual.event("after the abuse")
    wait_until(lambda: eid in db_event_ids(srv, casual.uid)[2] and casual.queued() == 0, 20,
               "the event of an agent connecting after the abuse to be stored")


# 7 -------------------------------------------------------------------------

def _after_second(t):
    """Sleeps until the wall clock has passed second t, so that a later
    last_seen can be told apart from t."""
    while time.time() < t + 1.05:
        time.sleep(0.05)


def test_wakeups(ctx):
    """Forged, replayed, stale and misaddressed wake-ups are dropped and
    logged; a genuine one (custosctl wake) makes the agent sync."""
    srv = ctx.server().start()
    token = srv.token_create("fleet", max_uses=1)
    agent = ctx.agent(srv, "sleepy", db_age_days=0.1, rtp=True)
    agent.enroll(token)
    agent.start()
    wait_synced(srv, ["sleepy"])
    tool = binary("tests/tools/wake_tool")
    foreign = ctx.dir / "foreign.key"
    ctx.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", foreign])
    server_key = srv.state / "server.key"
    uid = agent.uid

    def idle_host():
        """The host once its agent has hung up (a wake-up over an open
        connection would not be a datagram)."""
        h = srv.hosts_by_name()["sleepy"]
        return h if not h["connected"] else None

    def send(key, target_uid, *extra):
        ctx.run([tool, key, target_uid, "127.0.0.1", agent.wake_port, *extra])

    def dropped(reason, count_before):
        wait_until(lambda: agent.log_count("dropped a wake-up") >= count_before + 1, 10,
                   "the agent to drop the %s wake-up" % reason)
        lines = [l for l in agent.log.read_text().splitlines() if "dropped a wake-up" in l]
        check(reason in lines[-1], "the wake-up was dropped as %r, expected %r" % (lines[-1], reason))

    seen = wait_until(idle_host, 15, "the agent to hang up after its first sync")["last_seen"]
    _after_second(seen)
    genuine = agent.log_count("genuine wake-up")

    for what, key, target, extra, reason in (
            ("forged", foreign, uid, (), "bad signature"),
            ("stale", server_key, uid, ("--ts", str(int(time.time()) - 3600)), "outside the allowed window"),
            ("misaddressed", server_key, os.urandom(16).hex(), (), "another host")):
        n = agent.log_count("dropped a wake-up")
        send(key, target, *extra)
        dropped(reason, n)
    check(agent.log_count("genuine wake-up") == genuine, "a bad wake-up was taken as genuine")
    check(srv.hosts_by_name()["sleepy"]["last_seen"] == seen, "a dropped wake-up made the agent sync")

    # replayed: the first copy wakes the agent, the second is dropped
    n = agent.log_count("dropped a wake-up")
    send(server_key, uid, "--count", "2")
    dropped("replayed", n)
    wait_until(lambda: agent.log_count("genuine wake-up") == genuine + 1, 10,
               "the first copy of the datagram to wake the agent")
    woken = wait_until(lambda: idle_host() and idle_host()["last_seen"] > seen and idle_host(), 15,
                       "the woken agent to sync and hang up")["last_seen"]
    check(agent.log_count("genuine wake-up") == genuine + 1, "the replayed copy woke the agent again")

    # genuine, through the console
    _after_second(woken)
    out = srv.ctl("wake", "sleepy")
    check("wake-up sent" in out, "custosctl wake printed %r" % out)
    wait_until(lambda: agent.log_count("genuine wake-up") == genuine + 2, 10,
               "the agent to log a genuine wake-up from custosctl wake")
    wait_until(lambda: srv.hosts_by_name()["sleepy"]["last_seen"] > woken, 10,
               "last_seen to advance after custosctl wake")
    check("sent a signed wake-up to sleepy" in srv.log_text(), "the server did not log the wake-up it sent")
    check(agent.log_count("dropped a wake-up") == 4, "the agent dropped %d wake-ups, expected 4"
          % agent.log_count("dropped a wake-up"))


# 8 -------------------------------------------------------------------------

TOKEN_CONF = """enroll: {
  tokens = (
%s
  );
};"""
TOKEN_ENTRY = '    { name = "%s"; secret = "%s"; expires = 0; max_uses = 0; }'


def test_sighup_reload(ctx):
    """SIGHUP with a broken file keeps the running configuration ("reload
    refused"); a valid change (a new enrolment token) takes effect."""
    first = ("lab", "lab-secret-0123456789")
    second = ("branch", "branch-secret-0123456789")
    entries = lambda *toks: TOKEN_CONF % ",\n".join(TOKEN_ENTRY % t for t in toks)
    srv = ctx.server(extra_conf=entries(first)).start()
    wait_until(lambda: "lab" in srv.tokens(), 10, "the configured token lab")
    good = srv.conf.read_text()

    # a syntax error, then a file that parses but breaks a rule
    broken = [
        good.replace("log: {", "log: { level = ;", 1),
        good.replace("log: {", "status: { db_warning_days = 9; db_critical_days = 2; };\nlog: {", 1),
    ]
    for n, text in enumerate(broken, 1):
        check(text != good, "could not break the configuration file")
        srv.conf.write_text(text)
        srv.hup()
        wait_until(lambda: srv.log_count("reload refused") == n, 10, "\"reload refused\" #%d in the log" % n)
        check(srv.alive(), "custosd died on SIGHUP with a broken configuration")
        check(srv.ctl_rc("status") == 0, "custosd stopped answering after a refused reload")
        toks = srv.tokens()
        check(sorted(toks) == ["lab"] and toks["lab"]["source"] == "config",
              "tokens after a refused reload: %r" % toks)
    refused = srv.log_text()[srv.log_text().index("reload refused"):]
    check(str(srv.conf) in refused, "the refusal does not name the configuration file")
    # the rule broken across two keys is reported at the line that set it
    line = broken[1].splitlines().index(next(l for l in broken[1].splitlines() if "db_warning_days = 9" in l)) + 1
    check("%s:%d: status.db_warning_days (9) must not exceed status.db_critical_days (2, %s:%d)"
          % (srv.conf, line, srv.conf, line) in refused,
          "the refusal of warning > critical days does not give FILE:LINE: %r" % refused[-600:])

    # a valid change: a second token, usable at once
    srv.write_conf(entries(first, second))
    srv.hup()
    wait_until(lambda: srv.log_count("configuration reloaded") == 1, 10, "\"configuration reloaded\"")
    toks = wait_until(lambda: (lambda t: t if "branch" in t else None)(srv.tokens()), 10,
                      "token branch in custosctl token list")
    check(sorted(toks) == ["branch", "lab"] and toks["branch"]["source"] == "config",
          "tokens after the reload: %r" % toks)
    wait_until(lambda: srv.sql("SELECT name FROM enroll_tokens WHERE name = 'branch'") == [["branch"]], 10,
               "token branch in the database")
    agent = ctx.agent(srv, "newcomer")
    agent.enroll(second[1])
    check(srv.tokens()["branch"]["uses"] == 1, "the reloaded token's use was not counted")
    # the broken files never applied
    check(srv.log_count("reload refused") == 2 and srv.alive(), "custosd state after the reloads")


# 9 -------------------------------------------------------------------------

def test_config_check(ctx):
    """custosd -t: FILE:LINE: what is wrong and exit 1 for a broken file,
    "configuration OK" and exit 0 for a good one."""
    srv = ctx.server()
    good = srv.conf.read_text()
    custosd = binary("custosd")
    rc, out, err = ctx.run([custosd, "-t", "-c", srv.conf], expect_rc=None)
    check(rc == 0 and "configuration OK" in out, "custosd -t on a good file: exit %d, %r" % (rc, out + err))

    lines = good.splitlines()
    cases = []
    # a syntax error on a known line
    n = next(i for i, l in enumerate(lines) if l.startswith("log:")) + 1
    cases.append(("syntax", lines[:n - 1] + ["log: { level = ; };"] + lines[n:], n, None))
    # a value out of range
    n = next(i for i, l in enumerate(lines) if "port = %d;" % srv.listen_port in l) + 1
    cases.append(("range", lines[:n - 1] + ["  port = 70000;"] + lines[n:], n, "listen.port"))
    # a key that does not exist
    cases.append(("unknown key", lines + ["bogus: { nonsense = 1; };"], len(lines) + 1, "bogus"))
    # a wrong type (the harness writes no sync section: the product's defaults)
    check(not any(l.startswith("sync:") for l in lines), "the harness wrote a sync section")
    cases.append(("type", lines + ['sync: { interval = "often"; };'], len(lines) + 1, "sync.interval"))
    for what, text, line, needle in cases:
        path = ctx.dir / ("broken-%s.conf" % what.replace(" ", "-"))
        path.write_text("\n".join(text) + "\n")
        rc, out, err = ctx.run([custosd, "-t", "-c", path], expect_rc=None)
        both = out + err
        check(rc == 1, "custosd -t on a file with a %s error exited %d: %r" % (what, rc, both))
        check("configuration OK" not in both, "custosd -t said OK to a %s error" % what)
        m = re.search(r"^%s:(\d+): \S" % re.escape(str(path)), both, re.M)
        check(m is not None, "custosd -t on a %s error printed no %s:LINE: message: %r" % (what, path, both))
        check(int(m.group(1)) == line, "custosd -t put the %s error on line %s, it is on line %d: %r"
              % (what, m.group(1), line, both))
        if needle:
            check(needle in both, "custosd -t does not name %r for the %s error: %r" % (needle, what, both))
    rc, out, err = ctx.run([custosd, "-t", "-c", ctx.dir / "missing.conf"], expect_rc=None)
    check(rc == 1 and "missing.conf" in out + err, "custosd -t on a missing file: exit %d, %r" % (rc, out + err))


# large events --------------------------------------------------------------

def _queue_events(ctx, agent, n, size, kind="bulk"):
    """n events of kind with about size bytes in "data"; their ids."""
    ids = []
    for i in range(n):
        _, out, _ = ctx.run(agent.argv("event", "--severity", "info", "--kind", kind, "--message",
                                       "%s %d" % (kind, i), "--data", json.dumps({"blob": "x" * size})),
                            timeout=30)
        ids.append(out.strip())
    return ids


def test_large_events_batched(ctx):
    """30 events of 60 KB (1.8 MB, more than one 1 MiB message) queued, then
    a threat, at the product defaults: the agent sends them in batches that
    fit a message, all 31 are stored once within a bounded time, the spool
    drains and the threat reaches the host's status."""
    srv = ctx.server(sync_interval=None).start()
    a = ctx.agent(srv, "bulky", keep=False, db_age_days=0, rtp=True)
    a.enroll(srv.token_create("fleet"))
    ids = _queue_events(ctx, a, 30, 60000)
    ids.append(a.event("EICAR-Test-File found in /tmp/z", severity="critical", kind="threat_found"))
    check(a.queued() == 31, "expected 31 queued events, the queue holds %d" % a.queued())
    t0 = time.monotonic()
    a.start()
    wait_until(lambda: db_event_ids(srv, a.uid)[1] == 31 or None, 60, "all 31 events stored")
    took = time.monotonic() - t0
    n, distinct, stored = db_event_ids(srv, a.uid)
    check(stored == set(ids) and n == 31, "stored %d rows, %d distinct, missing %r" % (
        n, distinct, set(ids) - stored))
    rows = srv.sql("SELECT LENGTH(e.data) FROM events e JOIN hosts h ON h.id = e.host_id "
                   "WHERE h.uid = '%s' AND e.kind = 'bulk'" % a.uid)
    check(len(rows) == 30 and all(int(r[0]) > 60000 for r in rows), "bulk event data cut: %r" % rows[:3])
    wait_until(lambda: a.queued() == 0 or None, 20, "the agent's spool to drain")
    h = wait_until(lambda: srv.hosts_by_name().get("bulky") if any(
        r["reason"] == "threats_unresolved" for r in srv.hosts_by_name().get("bulky", {}).get("reasons", []))
        else None, 10, "the threat behind the large events to reach the status")
    check(h["status"] == "Critical", "host status %s after the threat" % h["status"])
    check(a.log_count("message not sent") == 0, "the agent could not send a message")
    check(a.log_count("did not answer in time") == 0 and srv.log_count("closing:") == 0,
          "a connection was broken on the way")
    print("    31 events (1.8 MB) stored in %.1f s" % took)
    check(took < 30, "31 events took %.1f s" % took)


def test_event_larger_than_frame(ctx):
    """The server's listen.max_frame (128 KiB) is smaller than the agent's
    (1 MiB): the agent learns it from sync_ok and batches to it. An agent
    whose agent.max_frame (32 KiB) is smaller than one of its events sets
    that event aside in spool/rejected/, reports it as event_too_large, and
    the events around it are stored."""
    srv = ctx.server(sync_interval=None)
    text = srv.conf.read_text()
    old = "  handshake_timeout = 10;\n"
    check(old in text, "harness config layout changed: no %r" % old)
    srv.conf.write_text(text.replace(old, old + "  max_frame = 131072;\n"))
    srv.start()
    token = srv.token_create("fleet")
    a = ctx.agent(srv, "learns", keep=False, db_age_days=0, rtp=True)
    b = ctx.agent(srv, "small-frame", keep=False, db_age_days=0, rtp=True, extra=["agent.max_frame=32768"])
    a.enroll(token)
    b.enroll(token)
    ids_a = _queue_events(ctx, a, 6, 50000)
    before = b.event("before the big one")
    big = _queue_events(ctx, b, 1, 60000)[0]
    after = b.event("after the big one")
    a.start()
    b.start()
    wait_until(lambda: db_event_ids(srv, a.uid)[2] == set(ids_a) or None, 30,
               "the 6 events of 50 KB stored through 128 KiB messages")
    check(srv.log_count("outside 1..131072") == 0, "the agent sent a message larger than the server takes")

    def b_done():
        _, _, s = db_event_ids(srv, b.uid)
        return s if {before, after} <= s and len(s) == 3 else None
    stored = wait_until(b_done, 30, "the small events and the report of the big one stored")
    check(big not in stored, "the oversized event was stored")
    rows = srv.sql("SELECT e.kind, e.severity, e.data FROM events e JOIN hosts h ON h.id = e.host_id "
                   "WHERE h.uid = '%s' AND e.kind = 'event_too_large'" % b.uid)
    check(len(rows) == 1, "expected one event_too_large, got %r" % rows)
    data = json.loads(rows[0][2])
    check(data.get("id") == big and data.get("kind") == "bulk" and data.get("size", 0) > 60000
          and data.get("limit", 0) < 32768, "event_too_large data: %r" % data)
    rejected = list((b.state / "spool" / "rejected").glob("*%s.json" % big))
    check(len(rejected) == 1, "the big event is not kept in spool/rejected: %r" % rejected)
    check(b.log_count("more than the") == 1, "the agent did not log the oversized event once")
    wait_until(lambda: b.queued() == 0 and a.queued() == 0 or None, 20, "the spools to drain")


def test_max_frame_relearned(ctx):
    """custosd restarts with a smaller listen.max_frame (256 KiB -> 128 KiB)
    while the agent runs and four events of 50 KB (one message under the old
    limit, two under the new one) wait in its spool: the agent learns the new
    limit from this connection's sync_ok before it sends, and the spool
    drains. Then custosd restarts with a larger one (32 KiB -> 128 KiB) while
    an event of 50 KB waits: it is stored, not set aside against the old
    limit."""
    srv = ctx.server(sync_interval=None)
    text = srv.conf.read_text()
    old = "  handshake_timeout = 10;\n"
    check(old in text, "harness config layout changed: no %r" % old)

    def restart_with(limit, queue=None):
        if srv.alive():
            srv.stop()
        srv.conf.write_text(text.replace(old, old + "  max_frame = %d;\n" % limit))
        ids = queue() if queue else []     # while custosd is away: one batch
        srv.start()
        return ids

    restart_with(262144)
    a = ctx.agent(srv, "relearns", keep=False, db_age_days=0, rtp=True)
    a.enroll(srv.token_create("fleet"))
    a.start()
    wait_synced(srv, ["relearns"])
    ids = restart_with(131072, lambda: _queue_events(ctx, a, 4, 50000))
    wait_until(lambda: db_event_ids(srv, a.uid)[2] == set(ids) or None, 40,
               "the 4 events of 50 KB stored after custosd lowered listen.max_frame")
    check(srv.log_count("outside 1..131072") == 0, "the agent sent a message larger than the new limit")
    wait_until(lambda: a.queued() == 0 or None, 20, "the agent's spool to drain")

    # the agent learns a small limit, then custosd raises it
    restart_with(32768)
    small = a.event("learning the small limit")
    wait_until(lambda: small in db_event_ids(srv, a.uid)[2] or None, 40, "a small event stored")
    big = restart_with(131072, lambda: _queue_events(ctx, a, 1, 50000))[0]
    wait_until(lambda: big in db_event_ids(srv, a.uid)[2] or None, 40,
               "the 50 KB event stored after custosd raised listen.max_frame")
    check(a.log_count("more than the") == 0, "the agent set an event aside: %d" % a.log_count("more than the"))
    check(not list((a.state / "spool" / "rejected").glob("*.json")), "an event is in spool/rejected")
    wait_until(lambda: a.queued() == 0 or None, 20, "the agent's spool to drain")


def test_posture_sync_not_repeated(ctx):
    """While MariaDB is down an agent (product defaults) reports a threat:
    custosd cannot store the batch and the agent sends it again every few
    seconds (after a nack or its timeout); custosd asks for a sync when the
    threat first arrives, not with every resend (syncs counted by custosd
    over 22 s stay at most 2)."""
    srv = ctx.server(sync_interval=None).start()
    a = ctx.agent(srv, "patient", keep=False, db_age_days=0, rtp=True)
    a.enroll(srv.token_create("fleet"))
    a.start()
    wait_synced(srv, ["patient"])
    ctx.mariadb.stop()
    try:
        wait_until(lambda: srv.status()["database"] != "up", 30, "custosd to notice the database is down")
        c0 = srv.status()["counters"]
        eid = a.event("Eicar-Test-Signature FOUND in /tmp/eicar.com", severity="critical", kind="threat_found")
        time.sleep(22)
        c1 = srv.status()["counters"]
        syncs = c1["syncs"] - c0["syncs"]
        sent = c1["events_received"] - c0["events_received"]
        print("    22 s with the database down: the threat sent %d times, %d sync(s)" % (sent, syncs))
        check(sent >= 3, "the agent sent the threat only %d time(s)" % sent)
        check(1 <= syncs <= 2, "%d syncs while the threat was sent %d times" % (syncs, sent))
    finally:
        ctx.mariadb.start()
    wait_until(lambda: srv.status()["database"] == "up", 30, "custosd to report the database up")
    wait_until(lambda: eid in db_event_ids(srv, a.uid)[2] or None, 30, "the threat stored once the database is back")


def test_posture_readings_confirmed(ctx):
    """A reading that does not last is no posture change (checks every
    second): the databases' header unreadable for a check now and then
    (freshclam replacing the file) gives no databases_updated "to -1" and
    back; clamonacc gone for about a second, four times (crash-looping),
    gives no rtp_stopped; clamonacc gone for good is reported once."""
    import subprocess
    srv = ctx.server(sync_interval=None).start()
    a = ctx.agent(srv, "steady", keep=False, db_age_days=0.1, rtp=True,
                  extra=["agent.posture_check_interval=1"])
    a.enroll(srv.token_create("fleet"))
    a.start()
    wait_synced(srv, ["steady"])

    def kinds():
        rows = srv.sql("SELECT e.kind FROM events e JOIN hosts h ON h.id = e.host_id WHERE h.uid = '%s'" % a.uid)
        return [r[0] for r in rows]

    daily = a.clamdb / "daily.cld"
    good = daily.read_bytes()
    for _ in range(3):
        daily.write_bytes(b"not a database header")
        time.sleep(1.5)
        daily.write_bytes(good)
        time.sleep(1.5)
    pidfile = a.state.parent / "clamonacc.pid"
    gone = subprocess.Popen(["true"])
    gone.wait()
    for _ in range(4):
        pidfile.write_text("%d\n" % gone.pid)
        time.sleep(1.0)
        pidfile.write_text("%d\n" % os.getpid())
        time.sleep(2.5)
    time.sleep(2)
    check(kinds() == [], "events for readings that did not last: %r" % kinds())
    pidfile.write_text("%d\n" % gone.pid)
    wait_until(lambda: "rtp_stopped" in kinds() or None, 15, "rtp_stopped once clamonacc stayed away")
    time.sleep(2)
    check(kinds() == ["rtp_stopped"], "events: %r" % kinds())


def test_posture_changes_reported(ctx):
    """At the product defaults (sync every 900 s, no kept connection): real-time
    protection stopping and starting and new databases are noticed by the
    running agent (agent.posture_check_interval, 10 s), reported as events
    (rtp_stopped, rtp_started, databases_updated), and the host's status
    follows within seconds of the change being noticed."""
    import subprocess
    srv = ctx.server(sync_interval=None).start()
    a = ctx.agent(srv, "watched", keep=False, db_age_days=5, rtp=True)
    a.enroll(srv.token_create("fleet"))
    a.start()
    h = wait_synced(srv, ["watched"])["watched"]
    check(h["status"] == "Warning" and [r["reason"] for r in h["reasons"]] == ["databases_outdated"],
          "before: %s %r" % (h["status"], h["reasons"]))
    pidfile = a.state.parent / "clamonacc.pid"
    check(pidfile.exists(), "the harness has no clamonacc pid file at %s" % pidfile)

    def kinds():
        rows = srv.sql("SELECT e.kind FROM events e JOIN hosts h ON h.id = e.host_id WHERE h.uid = '%s'" % a.uid)
        return [r[0] for r in rows]

    def reasons():
        return [r["reason"] for r in srv.hosts_by_name()["watched"]["reasons"]]

    # clamonacc stops: a pid file naming a process that is gone
    gone = subprocess.Popen(["true"])
    gone.wait()
    t0 = time.monotonic()
    pidfile.write_text("%d\n" % gone.pid)
    wait_until(lambda: "rtp_off" in reasons() or None, 25, "rtp_off after clamonacc stopped")
    took = time.monotonic() - t0
    # the status follows when the batch arrives, the row when it is committed
    wait_until(lambda: "rtp_stopped" in kinds() or None, 30, "the rtp_stopped event stored")
    check(srv.hosts_by_name()["watched"]["status"] == "Critical", "rtp off is not Critical")
    print("    clamonacc stopped -> rtp_off: %.1f s" % took)

    pidfile.write_text("%d\n" % os.getpid())
    wait_until(lambda: "rtp_off" not in reasons() or None, 25, "rtp_off gone after clamonacc started")
    wait_until(lambda: "rtp_started" in kinds() or None, 30, "the rtp_started event stored")

    # freshclam brought new databases
    t0 = time.monotonic()
    (a.clamdb / "daily.cld").write_bytes(clamav_header(int(time.time()), version=27001))
    wait_until(lambda: srv.hosts_by_name()["watched"]["status"] == "OK" or None, 25,
               "status OK after the databases were updated")
    print("    databases updated -> OK: %.1f s" % (time.monotonic() - t0))
    wait_until(lambda: "databases_updated" in kinds() or None, 30, "the databases_updated event stored")
    av = srv.hosts_by_name()["watched"]["antivirus"][0]
    check(av["db_version"] == 27001, "db_version after the update: %r" % av)
    check(a.log_count("synced with the server") >= 4, "the agent did not sync after each change")


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise TestFailure("the server closed the connection")
        buf += chunk
    return buf


def test_event_refused_alone(ctx):
    """An events message (from a client speaking the protocol itself) with
    an event the server cannot take (severity "urgent") next to a
    good one of 60 KB: the good one is stored and acknowledged, the bad one
    is named with its reason in the ack's "refused" and logged, and nothing
    else of the message is lost."""
    srv = ctx.server(sync_interval=None).start()
    a = ctx.agent(srv, "raw", keep=False)
    a.enroll(srv.token_create("fleet"))
    now = int(time.time())
    good = {"id": os.urandom(16).hex(), "time": now, "severity": "info", "kind": "test",
            "message": "good", "data": {"blob": "y" * 60000}}
    bad = dict(good, id=os.urandom(16).hex(), severity="urgent", data={})
    raw = socket.create_connection(("127.0.0.1", srv.listen_port), timeout=10)
    s = tls_wrap(raw, str(a.state / "agent.pem"), str(a.state / "agent.key"))
    try:
        body = json.dumps({"type": "events", "events": [bad, good]}).encode()
        s.sendall(struct.pack(">I", len(body)) + body)
        deadline = time.monotonic() + 20
        ack = None
        while ack is None and time.monotonic() < deadline:
            (n,) = struct.unpack(">I", _recv_exact(s, 4))
            msg = json.loads(_recv_exact(s, n))
            check(msg.get("type") in ("ack", "sync_now"), "unexpected reply %r" % msg)
            if msg["type"] == "ack":
                ack = msg
    finally:
        s.close()
    check(ack is not None, "no ack within 20 s")
    check(ack["ids"] == [good["id"]], "ack ids %r, expected only the good event" % ack["ids"])
    refused = ack.get("refused", [])
    check(len(refused) == 1 and refused[0]["id"] == bad["id"] and "severity" in refused[0]["reason"],
          "ack refused %r" % refused)
    _, _, stored = db_event_ids(srv, a.uid)
    check(stored == {good["id"]}, "stored %r" % stored)
    check(srv.log_count("(%s) refused: event severity must" % bad["id"]) == 1, "custosd did not log the refusal")


def test_wake_request_lost_on_close(ctx):
    """The server asks a connected agent to sync (sync_now) just as the
    agent, which keeps no connection (the default), closes it without
    reading the request: the server must ask again by a signed wake-up
    datagram instead of losing the request until the next regular sync."""
    srv = ctx.server(sync_interval=None).start()
    a = ctx.agent(srv, "closer", keep=False, wake=False)
    a.enroll(srv.token_create("fleet"))
    wake_port = ctx.port()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", wake_port))
    udp.settimeout(10)
    raw = socket.create_connection(("127.0.0.1", srv.listen_port), timeout=10)
    s = tls_wrap(raw, str(a.state / "agent.pem"), str(a.state / "agent.key"))
    try:
        body = json.dumps({"type": "sync", "posture": {}, "wake_port": wake_port}).encode()
        s.sendall(struct.pack(">I", len(body)) + body)
        (n,) = struct.unpack(">I", _recv_exact(s, 4))
        msg = json.loads(_recv_exact(s, n))
        check(msg.get("type") == "sync_ok", "expected sync_ok, got %r" % msg)
        srv.ctl("wake", a.name)     # goes over the open connection as sync_now
    finally:
        s.close()                   # unread
    try:
        data, _ = udp.recvfrom(2048)
    except socket.timeout:
        raise TestFailure("no wake-up datagram within 10 s after the agent closed with the "
                          "sync request unread")
    finally:
        udp.close()
    check(data[:4] == b"CWK1", "the datagram is not a wake-up: %r" % data[:16])
