"""Integration tests of issue 5, the daemon's side: custosd's NAC query
socket with real agents of different postures. Queries by MAC, IP, user name
and certificate CN; tokens from real ClamAV database ages, real-time
protection and a reported threat; a SIGHUP that changes a condition; the
socket's mode, group, stale-file and in-use handling; malformed, oversized
and pipelined lines; and the round-trip time of 1000 queries (printed, not
asserted). Each test_NAME(ctx) is one test; ctx is a harness.Ctx."""

import grp
import json
import os
import socket
import stat
import time

from harness import NAC_PROFILES, TestFailure, binary, check, wait_synced, wait_until

LINE_MAX = 65536

CONDITIONS = """
  conditions = (
    { token = "Infected";   when = "threats > 0"; },
    { token = "Quarantine"; when = "rtp = false or db_age_days > 7 or no_antivirus"; },
    { token = "Checkup";    when = "db_age_days > %(checkup_days)d or reboot_required"; },
    { token = "Healthy";    when = "status != Critical"; }
  );"""

NAC_CONF = """
nac: {
  enabled = true;
  socket = "%(sock)s";
  socket_group = "%(group)s";
  stale_after = 86400;
%(conditions)s%(profiles)s};
"""

VLAN = [["Tunnel-Type", "VLAN"], ["Tunnel-Medium-Type", "IEEE-802"]]
REPLIES = {
    "Healthy": VLAN + [["Tunnel-Private-Group-Id", "100"]],
    "Checkup": VLAN + [["Tunnel-Private-Group-Id", "100"], ["Session-Timeout", "3600"],
                       ["Termination-Action", "RADIUS-Request"]],
    "Quarantine": VLAN + [["Tunnel-Private-Group-Id", "666"], ["Filter-Id", "quarantine"],
                          ["Cisco-AVPair", "url-redirect=https://custos.example/remediate"],
                          ["Cisco-AVPair", "url-redirect-acl=REDIRECT"]],
    "Infected": [],
    "Unknown": VLAN + [["Tunnel-Private-Group-Id", "999"]],
    "Transition": VLAN + [["Tunnel-Private-Group-Id", "999"], ["Session-Timeout", "300"],
                          ["Termination-Action", "RADIUS-Request"]],
}


def nac_conf(sock, group, checkup_days=1):
    return NAC_CONF % dict(sock=sock, group=group, profiles=NAC_PROFILES,
                           conditions=CONDITIONS % dict(checkup_days=checkup_days))


class Nac:
    """One connection to the query socket: a request line, a reply line."""

    def __init__(self, path, timeout=5):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(str(path))
        self.f = self.s.makefile("rb")

    def send_raw(self, data):
        self.s.sendall(data)

    def read_reply(self):
        line = self.f.readline(4 * LINE_MAX)
        check(line.endswith(b"\n"), "the socket closed or sent no full line (got %r)" % line[:200])
        try:
            return json.loads(line)
        except ValueError:
            raise TestFailure("the socket answered no JSON: %r" % line[:200])

    def ask(self, req):
        self.send_raw(json.dumps(req).encode() + b"\n")
        return self.read_reply()

    def closed_by_peer(self):
        """True when the daemon has closed the connection."""
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.f.close()
        self.s.close()


def machine_mac():
    """A MAC of this machine as custos-agent reports it (a non-loopback
    interface with a hardware address)."""
    for name in sorted(os.listdir("/sys/class/net")):
        try:
            with open("/sys/class/net/%s/address" % name) as f:
                mac = f.read().strip()
            with open("/sys/class/net/%s/flags" % name) as f:
                loopback = int(f.read().strip(), 16) & 0x8
        except OSError:
            continue
        if not loopback and len(mac) == 17 and mac != "00:00:00:00:00:00":
            return mac
    raise TestFailure("this machine has no network interface with a MAC; the MAC lookup cannot be shown")


def other_group():
    """(name, gid) of a group the socket can be given: another one when we
    are root, else our own."""
    if os.geteuid() == 0:
        for name in ("daemon", "nogroup", "adm"):
            try:
                g = grp.getgrnam(name)
            except KeyError:
                continue
            if g.gr_gid != os.getegid():
                return name, g.gr_gid
    g = grp.getgrgid(os.getegid())
    return g.gr_name, g.gr_gid


def stale_socket(path):
    """A socket file nobody listens on, as a killed daemon leaves it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    check(stat.S_ISSOCK(os.lstat(path).st_mode), "could not leave a stale socket at %s" % path)


def start(ctx, group):
    sock = ctx.dir / "nac.sock"
    stale_socket(sock)
    srv = ctx.server(extra_conf=nac_conf(sock, group)).start()
    check(srv.log_count("removed the stale query socket") == 1,
          "the stale socket was not reported as removed: %s" % srv.log_text()[-1500:])
    return srv, sock


def expect(reply, token, host=None):
    check(reply.get("token") == token, "expected token %s, got %r" % (token, reply))
    check(reply.get("reply") == REPLIES[token], "token %s: reply attributes %r, expected %r"
          % (token, reply.get("reply"), REPLIES[token]))
    check(reply.get("reject") is (token == "Infected"), "reject flag wrong: %r" % reply)
    if host is not None:
        check(reply.get("host") == host, "expected host %r, got %r" % (host, reply))


def test_nac_tokens(ctx):
    """Agents with a fresh, a 3-day-old and a 10-day-old ClamAV database, one
    that reports a threat and one enrolled but never started get Healthy,
    Checkup, Quarantine, Infected and Transition with their profiles' exact
    attributes, by CN, by user name (RADIUS spellings), by this machine's MAC
    in every notation and by IP; an unknown MAC gets Unknown; a SIGHUP that
    raises the Checkup threshold turns the Checkup host Healthy."""
    group, _ = other_group()
    srv, sock = start(ctx, group)
    token = srv.token_create("nac", max_uses=10)
    agents = {
        "healthy": ctx.agent(srv, "healthy", db_age_days=0.1, rtp=True),
        "checkup": ctx.agent(srv, "checkup", db_age_days=3, rtp=True),
        "quarantine": ctx.agent(srv, "quarantine", db_age_days=10, rtp=True),
        "infected": ctx.agent(srv, "infected", db_age_days=0.1, rtp=True),
        "pending": ctx.agent(srv, "pending", db_age_days=0.1, rtp=True),
    }
    for a in agents.values():
        a.enroll(token)
    for name, a in agents.items():
        if name != "pending":
            a.start()
    # the threat is found while the agent runs (after its first sync): the
    # agent syncs because of it, no timer does
    wait_synced(srv, [n for n in agents if n != "pending"])
    agents["infected"].event("Eicar-Test-Signature FOUND in /tmp/eicar.com", severity="critical",
                             kind="threat_found")
    want = {"healthy": "Healthy", "checkup": "Checkup", "quarantine": "Quarantine",
            "infected": "Infected", "pending": "Transition"}
    nac = Nac(sock)

    def all_tokens():
        got = {n: nac.ask({"cn": a.uid, "phase": "authorize"}) for n, a in agents.items()}
        return got if all(got[n].get("token") == want[n] for n in want) else None
    try:
        got = wait_until(all_tokens, 60, "every host's token")
    except TestFailure:
        raise TestFailure("tokens by CN: %s" % {n: nac.ask({"cn": a.uid}).get("token")
                                               for n, a in agents.items()})
    for n, r in got.items():
        expect(r, want[n], host=agents[n].name)
        check(r.get("by") == "cn", "%s found by %r, not by cn" % (n, r.get("by")))

    # user names as RADIUS carries them
    for n, a in agents.items():
        for user in (a.name, "host/%s.example.com" % a.name, "%s@EXAMPLE.COM" % a.name):
            r = nac.ask({"user": user})
            expect(r, want[n], host=a.name)
            check(r.get("by") == "user", "%s: found by %r" % (user, r.get("by")))

    # the MAC: every agent here reports this machine's interfaces, so the
    # host that synced last answers; whichever it is, its token must be its own
    mac = machine_mac()
    digits = mac.replace(":", "")
    names = {a.name: n for n, a in agents.items()}
    seen = set()
    for notation in (mac, mac.upper(), mac.replace(":", "-"), digits,
                     "%s.%s.%s" % (digits[0:4], digits[4:8], digits[8:12])):
        r = nac.ask({"mac": notation, "nas_ip": "127.0.0.1", "phase": "authorize"})
        check(r.get("by") == "mac" and r.get("host") in names,
              "MAC %s did not find an agent's host: %r" % (notation, r))
        expect(r, want[names[r["host"]]])
        seen.add(r["host"])
    # and by IP: every agent connects from 127.0.0.1
    r = nac.ask({"ip": "127.0.0.1"})
    check(r.get("by") == "ip" and r.get("host") in names, "IP 127.0.0.1 found no host: %r" % r)
    expect(r, want[names[r["host"]]])

    # unknown
    expect(nac.ask({"mac": "02:00:5e:10:00:01"}), "Unknown", host=None)
    expect(nac.ask({"user": "nobody-here", "ip": "192.0.2.99"}), "Unknown", host=None)

    # SIGHUP: Checkup only beyond 5 days now
    srv.write_conf(nac_conf(sock, group, checkup_days=5))
    srv.hup()
    wait_until(lambda: nac.ask({"cn": agents["checkup"].uid}).get("token") == "Healthy", 15,
               "the Checkup host to be Healthy after the reload")
    check(srv.log_count("checkup: Checkup -> Healthy") == 1,
          "the change was not logged: %s" % srv.log_text()[-1500:])
    nac.close()

    # a restart with every agent stopped: the tokens come back from the
    # database load alone, and the MAC index with them
    want["checkup"] = "Healthy"
    for a in agents.values():
        a.stop()
    srv.restart()
    nac = Nac(sock)

    def reloaded():
        got = {n: nac.ask({"cn": a.uid}).get("token") for n, a in agents.items()}
        return got if got == want else None
    wait_until(reloaded, 10, "the tokens after the restart (want %s)" % want)
    r = nac.ask({"mac": mac})
    check(r.get("by") == "mac" and r.get("host") in names, "MAC lookup after the restart: %r" % r)
    expect(r, want[names[r["host"]]])
    nac.close()


def test_nac_socket_protocol(ctx):
    """The query socket: mode 0660 and the configured group, a stale socket
    replaced and a live one refused, many requests per connection and
    pipelined, malformed lines answered with an error on a connection that
    stays usable, a line of exactly 65536 bytes served and a longer one
    closing the connection (logged), the socket removed at stop; and the
    round-trip time of 1000 queries."""
    group, gid = other_group()
    srv, sock = start(ctx, group)
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % sock)
    check(stat.S_IMODE(st.st_mode) == 0o660, "socket mode %o, expected 660" % stat.S_IMODE(st.st_mode))
    check(st.st_gid == gid, "socket group %d, expected %d (%s)" % (st.st_gid, gid, group))

    token = srv.token_create("nac", max_uses=2)
    a = ctx.agent(srv, "web", db_age_days=0.1, rtp=True)
    a.enroll(token)
    a.start()
    nac = Nac(sock)
    wait_until(lambda: nac.ask({"user": "web"}).get("token") == "Healthy", 30, "web to be Healthy")

    # a second daemon must not take the socket of a running one
    other = ctx.server(label="second", extra_conf=nac_conf(sock, group))
    p = ctx.spawn([binary("custosd"), "-c", other.conf], other.log)
    p.expect_exit()  # refused: the socket belongs to the running daemon
    try:
        p.p.wait(timeout=20)
    except Exception:
        raise TestFailure("a second custosd with the same nac.socket kept running")
    check(p.p.returncode != 0, "the second custosd exited with status 0")
    check("is in use by another process" in other.log_text(),
          "the second custosd did not say the socket is in use: %s" % other.log_text()[-800:])
    expect(nac.ask({"user": "web"}), "Healthy", host="web")

    # malformed lines: an error each, the connection stays
    for bad in (b"this is not json", b'{"mac": 5}', b'{"phase": "accounting"}', b"[]", b""):
        nac.send_raw(bad + b"\n")
        r = nac.read_reply()
        check(isinstance(r.get("error"), str) and "token" not in r, "%r answered %r" % (bad, r))
    expect(nac.ask({"user": "web"}), "Healthy", host="web")

    # pipelined: 200 requests in one write, 200 replies in order
    reqs = [{"user": "web"} if i % 2 == 0 else {"mac": "02:00:5e:10:00:%02x" % (i % 256)}
            for i in range(200)]
    nac.send_raw(b"".join(json.dumps(q).encode() + b"\n" for q in reqs))
    for i in range(200):
        r = nac.read_reply()
        check(r.get("token") == ("Healthy" if i % 2 == 0 else "Unknown"),
              "pipelined reply %d out of order: %r" % (i, r))

    # exactly LINE_MAX bytes: served
    head = b'{"user": "web"'
    line = head + b" " * (LINE_MAX - len(head) - 1) + b"}"
    check(len(line) == LINE_MAX, "test line has %d bytes" % len(line))
    nac.send_raw(line + b"\n")
    expect(nac.read_reply(), "Healthy", host="web")

    # one byte more: the connection is closed and the daemon says why
    big = Nac(sock)
    big.send_raw(b"x" * (LINE_MAX + 1))
    wait_until(big.closed_by_peer, 5, "the daemon to close the oversized connection")
    big.close()
    big = Nac(sock)
    try:
        big.send_raw(b'{"user": "web"' + b" " * (3 * LINE_MAX) + b"}\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    wait_until(big.closed_by_peer, 5, "the daemon to close the second oversized connection")
    big.close()
    check(srv.log_count("request line over 65536 bytes; closing") == 2,
          "oversized lines were not logged twice: %s" % srv.log_text()[-1500:])
    expect(nac.ask({"user": "web"}), "Healthy", host="web")

    # round-trip time, one query after another over one connection
    kinds = [{"user": "web"}, {"cn": a.uid}, {"ip": "127.0.0.1"}, {"mac": machine_mac()},
             {"mac": "02:00:5e:10:00:01"}]
    times = []
    for i in range(1000):
        q = json.dumps(kinds[i % len(kinds)]).encode() + b"\n"
        t0 = time.perf_counter()
        nac.send_raw(q)
        r = nac.read_reply()
        times.append(time.perf_counter() - t0)
        check("token" in r, "query %d failed: %r" % (i, r))
    times.sort()
    print("  nac query socket: 1000 queries (by user, cn, ip, mac, unknown mac), round trip "
          "p50 %.0f us, p99 %.0f us, max %.0f us (Python client)"
          % (times[499] * 1e6, times[989] * 1e6, times[-1] * 1e6))
    nac.close()

    srv.stop()
    check(not os.path.exists(sock), "the socket %s is left after the stop" % sock)


def test_nac_threat_while_database_down(ctx):
    """With MariaDB stopped, an agent (product defaults: 900 s syncs, no kept
    connection) reports a threat: the events cannot be stored (nack), yet
    the host's NAC token turns Infected within seconds, because custosd asks
    the agent for a sync before the nack; once MariaDB is back the threat is
    stored."""
    group, _ = other_group()
    sock = ctx.dir / "nac.sock"
    srv = ctx.server(sync_interval=None, extra_conf=nac_conf(sock, group)).start()
    token = srv.token_create("nac", max_uses=1)
    a = ctx.agent(srv, "victim", keep=False, db_age_days=0.1, rtp=True)
    a.enroll(token)
    a.start()
    nac = Nac(sock)
    wait_until(lambda: nac.ask({"cn": a.uid}).get("token") == "Healthy", 30, "the host to be Healthy")
    ctx.mariadb.stop()
    try:
        wait_until(lambda: srv.status()["database"] != "up", 30, "custosd to notice the database is down")
        t0 = time.monotonic()
        eid = a.event("Eicar-Test-Signature FOUND in /tmp/eicar.com", severity="critical", kind="threat_found")
        r = wait_until(lambda: (lambda r: r if r.get("token") == "Infected" else None)(
            nac.ask({"cn": a.uid})), 15, "the token to turn Infected while the database is down")
        took = time.monotonic() - t0
        expect(r, "Infected", host=a.name)
        check(took < 10, "the threat reached NAC %.1f s after it was reported" % took)
        check(a.log_count("could not store events yet") > 0 or a.queued() > 0,
              "the event was not held back while the database was down")
    finally:
        ctx.mariadb.start()
    wait_until(lambda: srv.status()["database"] == "up", 30, "custosd to report the database up")
    wait_until(lambda: srv.sql("SELECT COUNT(*) FROM events WHERE event_uid = '%s'" % eid) == [["1"]],
               30, "the threat to be stored once the database is back")
    nac.close()
