"""Integration tests of issue 4: custosd's AgentX subagent against a real
snmpd (master agentx on a temporary socket, loopback high port) and a real
snmptrapd writing to a file, with real agents reporting. Each test_NAME(ctx)
is one test; ctx is a harness.Ctx.

Needs snmpd, snmptrapd and the snmp tools (Debian: snmpd, snmptrapd, snmp)
and the SMIv2 base modules of erlang-snmp for names (MIBDIRS)."""

import glob
import os
import random
import re
import signal
import time
from pathlib import Path

from harness import ROOT, TestFailure, binary, check, db_event_ids, tail, wait_synced, wait_until, Proc

CUSTOS = ".1.3.6.1.4.1.32473.1"
OBJ = CUSTOS + ".1"
SERVER = OBJ + ".1"
FLEET = OBJ + ".2"
HOSTS = OBJ + ".3.1"
GROUPS = OBJ + ".4.1"
NAC = OBJ + ".6"
# custosNacHosts<Token>.0 = custosNac.(2 + the token's number in nac.h)
NAC_TOKENS = ("healthy", "checkup", "transition", "quarantine", "infected", "unknown")
VERSION = SERVER + ".1.0"
HOST_COLUMNS = range(2, 15)
STATUS_NAMES = {1: "OK", 2: "Warning", 3: "Critical"}
REGISTER_WITHIN = 5.0   # seconds for the subagent to be back after snmpd restarts


def mib_dirs():
    base = sorted(glob.glob("/usr/lib/erlang/lib/snmp-*/mibs"))
    check(base, "the SMIv2 base modules are missing (apt-get install erlang-snmp)")
    return "%s:%s" % (base[-1], ROOT / "snmp-mib")


class Snmp:
    """A private snmpd (master agentx) and snmptrapd for one test."""

    def __init__(self, ctx, trap_port=None):
        for tool in ("snmpd", "snmptrapd", "snmpget", "snmpbulkwalk", "snmpwalk"):
            check(any(os.access(os.path.join(d, tool), os.X_OK)
                      for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin")),
                  "%s not found (apt-get install snmpd snmptrapd snmp)" % tool)
        self.ctx = ctx
        self.dir = ctx.dir / "snmp"
        self.dir.mkdir()
        self.socket = self.dir / "agentx.sock"
        self.port = ctx.port()
        self.trap_port = trap_port or ctx.port()
        self.conf = self.dir / "snmpd.conf"
        self.conf.write_text(
            "master agentx\n"
            "agentXSocket %s\n"
            "agentaddress udp:127.0.0.1:%d\n"
            "rocommunity public 127.0.0.1\n"
            "trap2sink 127.0.0.1:%d public\n" % (self.socket, self.port, self.trap_port))
        self.trap_conf = self.dir / "snmptrapd.conf"
        self.trap_conf.write_text("disableAuthorization yes\n")
        self.traps = self.dir / "traps.log"
        self.log = self.dir / "snmpd.log"
        self.snmpd = None
        self.trapd = None
        # no root-owned paths, and no MIB noise from the default module list
        self.env = dict(os.environ, SNMP_PERSISTENT_DIR=str(self.dir / "persist"), MIBS="")

    def _spawn(self, argv, log, env):
        p = Proc(argv, log, env=env)
        self.ctx.procs.append(p)
        if Path(log) not in self.ctx.logs:
            self.ctx.logs.append(Path(log))
        return p

    def start_snmpd(self):
        self.snmpd = self._spawn(["snmpd", "-f", "-Lo", "-C", "-c", self.conf, "-I", "-smux",
                                  "-p", self.dir / "snmpd.pid"], self.log, self.env)
        wait_until(lambda: self.socket.exists() or not self.snmpd.alive(), 10, "snmpd's AgentX socket")
        check(self.snmpd.alive(), "snmpd exited at start: %s" % " | ".join(tail(self.log, 8)))
        return self

    def start_trapd(self):
        env = dict(self.env, MIBS="CUSTOS-MIB:SNMPv2-MIB", MIBDIRS=mib_dirs())
        self.trapd = self._spawn(["snmptrapd", "-f", "-Lf", self.traps, "-C", "-c", self.trap_conf,
                                  "-p", self.dir / "snmptrapd.pid", "udp:127.0.0.1:%d" % self.trap_port],
                                 self.dir / "snmptrapd.out", env)
        wait_until(lambda: self.traps.exists() and "NET-SNMP" in self.traps.read_text(errors="replace"),
                   10, "snmptrapd to start")
        return self

    def kill_snmpd(self, sig=signal.SIGKILL):
        self.snmpd.signal(sig)
        self.snmpd.p.wait(timeout=10)

    def conf_for_server(self, rate=10, burst=50):
        return ('snmp: { enabled = true; agentx_socket = "%s"; reconnect_interval = 1; '
                'trap_rate = %d; trap_burst = %d; };\n' % (self.socket, rate, burst))

    # --- manager side ---

    def cmd(self, tool, *args, names=False, expect_rc=0, timeout=30):
        fmt = ["-m", "CUSTOS-MIB", "-M", mib_dirs()] if names else ["-On", "-Oe", "-Ot", "-Oq", "-Ox"]
        argv = [tool, "-v2c", "-c", "public", "-r", "1", "-t", "2", *fmt,
                "127.0.0.1:%d" % self.port, *args]
        rc, out, err = self.ctx.run(argv, timeout=timeout, expect_rc=expect_rc)
        return rc, out, err

    def values(self, tool, *oids):
        """{oid: value} with numbers as int and strings as bytes."""
        _, out, err = self.cmd(tool, *oids)
        res = {}
        for line in out.splitlines():
            oid, _, val = line.partition(" ")
            if not oid.startswith("."):
                continue
            res[oid] = decode(val.strip())
        return res

    def get(self, *oids):
        return self.values("snmpget", *oids)

    def walk(self, oid):
        return self.values("snmpbulkwalk", oid)

    def registered(self):
        rc, out, _ = self.cmd("snmpget", VERSION, expect_rc=None)
        return rc == 0 and '"' in out

    def traps_text(self):
        try:
            return self.traps.read_text(errors="replace")
        except OSError:
            return ""


def decode(val):
    if val.startswith('"'):
        hexes = val.strip('"').split()
        try:
            return bytes(int(h, 16) for h in hexes)
        except ValueError:
            return val.strip('"').encode()
    if re.fullmatch(r"-?\d+", val):
        return int(val)
    return val


def start_all(ctx, rate=10, burst=50, extra=""):
    snmp = Snmp(ctx).start_snmpd().start_trapd()
    srv = ctx.server(extra_conf=snmp.conf_for_server(rate, burst) + extra).start()
    wait_until(snmp.registered, 10, "custosd's subagent to answer through snmpd")
    return snmp, srv


def host_rows(snmp):
    """{host id: {column: value}} from a bulk walk of custosHostTable."""
    rows = {}
    for oid, val in snmp.walk(HOSTS).items():
        parts = oid[len(HOSTS) + 1:].split(".")
        check(len(parts) == 2, "unexpected instance %s in custosHostTable" % oid)
        rows.setdefault(int(parts[1]), {})[int(parts[0])] = val
    return rows


def nac_conf(ctx):
    """nac.enabled with the built-in conditions and the query socket in the
    test directory."""
    return 'nac: { enabled = true; socket = "%s"; socket_group = ""; };\n' % (ctx.dir / "nac.sock")


def nac_oid(token):
    return "%s.%d.0" % (NAC, 2 + NAC_TOKENS.index(token))


def wait_nac(snmp, want, timeout=10):
    """Waits until custosNacEnabled is true(1) and custosNacHosts<Token>
    are the counts in want."""
    last = []
    def same():
        g = snmp.get(NAC + ".1.0", *[nac_oid(t) for t in NAC_TOKENS])
        last[:] = [g.get(NAC + ".1.0"), {t: g.get(nac_oid(t)) for t in NAC_TOKENS}]
        return last[0] == 1 and last[1] == want
    try:
        wait_until(same, timeout, "custosNac to show %s" % want)
    except TestFailure as e:
        raise TestFailure("%s; custosNacEnabled %r, counts %r" % (e, *(last or [None, None])))


def scalars_match(snmp, srv):
    """None when custosServer/custosFleet/custosNac equal the REST API's
    status, else what differs (the snapshot is at most a second old: poll)."""
    st = srv.status()
    nac = st.get("nac")
    check(isinstance(nac, dict) and sorted(nac) == sorted(NAC_TOKENS + ("enabled",)),
          "custosctl status has no nac counts: %r" % nac)
    g = snmp.get(VERSION, SERVER + ".3.0", SERVER + ".5.0", FLEET + ".1.0", FLEET + ".2.0",
                 FLEET + ".3.0", FLEET + ".4.0", SERVER + ".8.0", SERVER + ".9.0")
    g.update(snmp.get(NAC + ".1.0", *[nac_oid(t) for t in NAC_TOKENS]))
    want = {
        VERSION: st["version"].encode(),
        SERVER + ".3.0": 1 if st["database"] == "up" else 2,
        SERVER + ".5.0": st["agents_connected"],
        FLEET + ".1.0": st["hosts"]["total"],
        FLEET + ".2.0": st["hosts"]["ok"],
        FLEET + ".3.0": st["hosts"]["warning"],
        FLEET + ".4.0": st["hosts"]["critical"],
        SERVER + ".8.0": st["write_queue"]["jobs"],
        SERVER + ".9.0": st["write_queue"]["shed"],
        NAC + ".1.0": 1 if nac["enabled"] else 2,
    }
    want.update({nac_oid(t): nac[t] for t in NAC_TOKENS})
    diff = {k: (g.get(k), v) for k, v in want.items() if g.get(k) != v}
    return diff or None


# 1 -------------------------------------------------------------------------

def test_snmp_values_and_walk(ctx):
    """snmpget of the scalars equals custosctl --json status, also the hosts
    per NAC token (nac.enabled, built-in conditions); a bulk walk of
    custosHostTable lists every enrolled host with its status, also a host
    that never reported (a missing value ends no walk); a new host shows up;
    snmpwalk with the MIB loaded prints names."""
    snmp, srv = start_all(ctx, extra=nac_conf(ctx))
    token = srv.token_create("fleet", max_uses=10)
    ok = ctx.agent(srv, "alpha", db_age_days=0.1, rtp=True)
    crit = ctx.agent(srv, "gamma", db_age_days=10, rtp=True)
    silent = ctx.agent(srv, "silent")     # enrolled, never runs: no posture, no address
    for a in (ok, crit, silent):
        a.enroll(token)
    ok.start()
    crit.start()
    hosts = wait_synced(srv, ["alpha", "gamma"])
    hosts = srv.hosts_by_name()
    check(sorted(hosts) == ["alpha", "gamma", "silent"], "custosctl hosts lists %s" % sorted(hosts))

    # scalars: equal to the REST API once the snapshot caught up
    last = []
    def same():
        d = scalars_match(snmp, srv)
        last[:] = [d]
        return d is None
    wait_until(same, 10, "SNMP scalars to equal custosctl status")
    # ... and the counts are real: alpha is Healthy, gamma (databases 10
    # days old) Quarantine, silent (enrolled, no posture yet) Transition
    want_nac = {"healthy": 1, "checkup": 0, "transition": 1, "quarantine": 1, "infected": 0, "unknown": 0}
    wait_nac(snmp, want_nac)

    # the table: every host by its database id, every column for every row
    def complete():
        rows = host_rows(snmp)
        return rows if len(rows) == 3 else None
    rows = wait_until(complete, 10, "three rows in custosHostTable")
    for name, h in hosts.items():
        r = rows.get(h["id"])
        check(r is not None, "host %s (id %d) is not in custosHostTable: %s" % (name, h["id"], sorted(rows)))
        check(sorted(r) == list(HOST_COLUMNS), "host %s has columns %s" % (name, sorted(r)))
        check(r[2] == name.encode(), "custosHostName.%d is %r, expected %s" % (h["id"], r[2], name))
        check(STATUS_NAMES.get(r[7]) == h["status"], "custosHostStatus.%d is %r, REST says %s"
              % (h["id"], r[7], h["status"]))
        check(r[3] == 1 and r[4] == b"Unassigned", "host %s: group %r %r" % (name, r[3], r[4]))
    a, g, s = rows[hosts["alpha"]["id"]], rows[hosts["gamma"]["id"]], rows[hosts["silent"]["id"]]
    check(a[10] == b"clamav" and a[12] == 1, "alpha: antivirus %r, rtp %r" % (a[10], a[12]))
    check(a[5] == 1 and a[6] == bytes([127, 0, 0, 1]), "alpha: address %r %r" % (a[5], a[6]))
    check(len(a[11]) == 11 and a[11][8:9] == b"+", "alpha: database time %r is not a UTC DateAndTime"
          % a[11])
    year = a[11][0] << 8 | a[11][1]
    check(year == time.gmtime(ok.db_time).tm_year and a[11][2] == time.gmtime(ok.db_time).tm_mon,
          "alpha: database time %r, the daily.cld header says %d" % (a[11], ok.db_time))
    # gamma: databasesOutdated(3) is critical
    check(g[8][0] & 0x10 and g[9][0] & 0x10, "gamma: reasons %r critical %r" % (g[8], g[9]))
    # silent: never connected; its missing values are given, not skipped
    check(s[5] == 0 and s[6] == b"" and s[10] == b"" and s[12] == 3,
          "silent: address %r %r antivirus %r rtp %r" % (s[5], s[6], s[10], s[12]))
    check(s[13] == bytes(8) and s[11] == bytes(8), "silent: last seen %r db time %r" % (s[13], s[11]))
    check(s[8][0] & 0x02, "silent: reasons %r lack noPosture(6)" % s[8])
    st = snmp.get(FLEET + ".6.0", FLEET + ".5.0", GROUPS + ".4.1", GROUPS + ".7.1")
    check(st[FLEET + ".6.0"] == 1, "custosHostsNeverConnected is %r" % st[FLEET + ".6.0"])
    check(st[FLEET + ".5.0"] == 3 and st[GROUPS + ".4.1"] == 3, "unassigned / group hosts: %r" % st)
    check(st[GROUPS + ".7.1"] == srv.status()["hosts"]["critical"], "group critical count %r" % st)

    # a host that does not exist: no such instance, not an error
    _, out, _ = snmp.cmd("snmpget", HOSTS + ".2.999999")
    check("No Such Instance" in out, "snmpget of an unknown host printed %r" % out)

    # a new host appears by itself
    late = ctx.agent(srv, "late", db_age_days=0.1, rtp=True)
    late.enroll(token)
    late.start()
    wait_synced(srv, ["late"])
    late_id = srv.hosts_by_name()["late"]["id"]
    wait_until(lambda: host_rows(snmp).get(late_id, {}).get(2) == b"late", 5,
               "host late (id %d) in custosHostTable" % late_id)
    wait_until(lambda: scalars_match(snmp, srv) is None, 10, "scalars to count the new host")
    want_nac["healthy"] = 2
    wait_nac(snmp, want_nac)

    # names, not numbers, with the MIB loaded; no type the MIB does not expect
    _, out, err = snmp.cmd("snmpwalk", "custosMIB", names=True)
    check("CUSTOS-MIB::custosHostName.%d = STRING: late" % late_id in out,
          "snmpwalk with CUSTOS-MIB printed no names: %r" % out[:600])
    check("CUSTOS-MIB::custosHostStatus.%d = INTEGER: critical(3)" % hosts["gamma"]["id"] in out,
          "snmpwalk does not show gamma as critical(3): %r" % out[:600])
    check("Wrong Type" not in out and "Wrong Type" not in err, "a value has the wrong type: %s"
          % [l for l in out.splitlines() if "Wrong Type" in l][:3])
    check(".1.3.6.1" not in out, "snmpwalk printed numeric OIDs: %r"
          % [l for l in out.splitlines() if ".1.3.6.1" in l][:3])
    check(srv.log_count("CUSTOS-MIB registered with snmpd") == 1, "no registration line in the log")


# 2 -------------------------------------------------------------------------

def _traps(snmp, name):
    return [l for l in snmp.traps_text().splitlines() if "CUSTOS-MIB::%s" % name in l]


def _counts(lines):
    return [int(m.group(1)) for l in lines for m in [re.search(r"custosNotifyCount\.0 = \w+: (\d+)", l)] if m]


def test_snmp_threat_notifications(ctx):
    """A threat event from an agent arrives at snmptrapd as
    custosThreatDetected with the host and the message; the sync the
    threat makes the agent do at once (an unresolved threat; no timer: the
    product's 900 s sync interval) raises custosHostBecameCritical; a burst is
    rate-limited and coalesced without losing the count."""
    snmp, srv = start_all(ctx, rate=2, burst=3)
    token = srv.token_create("t", max_uses=5)
    pc = ctx.agent(srv, "pc", db_age_days=0.1, rtp=True)
    pc.enroll(token)
    pc.start()
    hosts = wait_synced(srv, ["pc"])
    check(hosts["pc"]["status"] == "OK", "pc starts %s" % hosts["pc"]["status"])
    hid = hosts["pc"]["id"]
    # nac.enabled is false here: custosNacEnabled false(2), every count 0
    g = snmp.get(NAC + ".1.0", *[nac_oid(t) for t in NAC_TOKENS])
    check(g.get(NAC + ".1.0") == 2 and all(g.get(nac_oid(t)) == 0 for t in NAC_TOKENS),
          "custosNac without NAC: %r" % g)
    wait_until(lambda: scalars_match(snmp, srv) is None, 10, "scalars to equal custosctl status")

    pc.event("Eicar-Test-Signature FOUND in /home/u/eicar.com", severity="critical", kind="threat_found")
    lines = wait_until(lambda: _traps(snmp, "custosThreatDetected"), 15, "custosThreatDetected at snmptrapd")
    t = lines[0]
    check("custosHostName.%d = STRING: pc" % hid in t, "the notification names no host: %r" % t)
    check("Eicar-Test-Signature FOUND" in t, "the notification carries no message: %r" % t)
    check("custosNotifyCount.0 = Gauge32: 1" in t or "custosNotifyCount.0 = Unsigned32: 1" in t,
          "the first notification stands for %r" % _counts([t]))
    wait_until(lambda: snmp.get(FLEET + ".10.0").get(FLEET + ".10.0") == 1, 5, "custosThreatsLastDay = 1")

    # the agent counts the threat as unresolved and syncs: the host is Critical
    crit = wait_until(lambda: _traps(snmp, "custosHostBecameCritical"), 30,
                      "custosHostBecameCritical at snmptrapd")
    check("custosHostName.%d = STRING: pc" % hid in crit[0], "critical notification: %r" % crit[0])
    check("threatsUnresolved" in crit[0], "critical notification lacks the reason: %r" % crit[0])
    check(srv.hosts_by_name()["pc"]["status"] == "Critical", "REST does not show pc Critical")

    # a burst of 20: at most burst + rate * seconds notifications, every
    # occurrence counted
    before = len(_traps(snmp, "custosThreatDetected"))
    t0 = time.monotonic()
    for i in range(20):
        pc.event("burst %d FOUND" % i, severity="critical", kind="threat_found")
    def all_counted():
        c = _counts(_traps(snmp, "custosThreatDetected")[before:])
        return c if sum(c) >= 20 else None
    counts = wait_until(all_counted, 30, "20 coalesced threat occurrences at snmptrapd")
    took = time.monotonic() - t0
    check(sum(counts) == 20, "notifications stand for %d occurrences, 20 were sent: %s" % (sum(counts), counts))
    check(len(counts) < 20 and max(counts) > 1, "the burst was not coalesced: %s" % counts)
    check(len(counts) <= 3 + 2 * (took + 1) + 1, "%d notifications in %.1f s exceed the rate limit: %s"
          % (len(counts), took, counts))
    wait_until(lambda: snmp.get(FLEET + ".10.0").get(FLEET + ".10.0") == 21, 5, "custosThreatsLastDay = 21")

    # resolved on the host: the agent syncs at once and pc is OK again
    ctx.run(pc.argv("threats", "--clear"))
    wait_until(lambda: srv.hosts_by_name()["pc"]["status"] == "OK", 15,
               "pc to be OK after custos-agent threats --clear")


# 3 -------------------------------------------------------------------------

def test_snmp_snmpd_restart(ctx):
    """snmpd killed: custosd keeps serving agents; snmpd back: the subagent
    is registered again within 5 s by itself."""
    snmp, srv = start_all(ctx)
    token = srv.token_create("r", max_uses=2)
    a = ctx.agent(srv, "steady", db_age_days=0.1, rtp=True)
    a.enroll(token)
    a.start()
    wait_synced(srv, ["steady"])

    snmp.kill_snmpd()
    wait_until(lambda: srv.log_count("lost the AgentX session") >= 1, 10, "custosd to notice snmpd is gone")
    # the agent port and the console still work while snmpd is away
    eid = a.event("while snmpd is down")
    wait_until(lambda: a.queued() == 0, 15, "the agent's event to be acknowledged")
    check(srv.ctl_rc("status") == 0, "custosctl status failed while snmpd was down")
    time.sleep(3)   # several reconnection attempts, quietly
    check(srv.log_count("lost the AgentX session") == 1, "custosd repeated the lost-session warning")
    check(srv.alive(), "custosd died without snmpd")

    try:
        snmp.socket.unlink()
    except OSError:
        pass
    t0 = time.monotonic()
    snmp.start_snmpd()
    wait_until(snmp.registered, REGISTER_WITHIN + 5, "the subagent to register again")
    took = time.monotonic() - t0
    check(took <= REGISTER_WITHIN, "registered again only after %.1f s (limit %.0f s)" % (took, REGISTER_WITHIN))
    check(srv.log_count("registered again") == 1, "no 'registered again' line in custosd's log")
    check(eid in db_event_ids(srv, a.uid)[2], "the event %s sent while snmpd was down is not stored" % eid)
    wait_until(lambda: scalars_match(snmp, srv) is None, 10, "scalars to equal custosctl status again")


# 4 -------------------------------------------------------------------------

def test_snmp_absent_at_start(ctx):
    """snmp.enabled with no snmpd: custosd starts and serves, says so once,
    and registers by itself when snmpd comes."""
    snmp = Snmp(ctx)
    srv = ctx.server(extra_conf=snmp.conf_for_server()).start()
    wait_until(lambda: srv.log_count("cannot reach snmpd") >= 1, 10, "the warning about snmpd")
    time.sleep(3)
    check(srv.log_count("cannot reach snmpd") == 1, "custosd repeated the warning")
    check(srv.ctl_rc("status") == 0, "custosctl status failed without snmpd")
    snmp.start_snmpd()
    t0 = time.monotonic()
    wait_until(snmp.registered, REGISTER_WITHIN + 5, "the subagent to register")
    check(time.monotonic() - t0 <= REGISTER_WITHIN, "registration took longer than %.0f s" % REGISTER_WITHIN)
    # snmp.enabled = false (the default): nothing is registered
    off = ctx.server(label="nosnmp").start()
    check(off.log_count(" snmp: ") == 0, "custosd without snmp.enabled logged about SNMP")


# ---- a fake AgentX master: what custosd does with a hostile or broken snmpd ----

class FakeMaster:
    """A listening AgentX socket that speaks RFC 2741 by hand."""

    def __init__(self, ctx):
        import socket
        self.path = ctx.dir / "fake-agentx.sock"
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(str(self.path))
        self.lsock.listen(4)
        self.lsock.settimeout(10)
        self.conn = None
        self.packet = 1000

    def conf(self):
        return 'snmp: { enabled = true; agentx_socket = "%s"; reconnect_interval = 1; };\n' % self.path

    @staticmethod
    def oid(parts, include=0, little=False):
        import struct
        e = "<" if little else ">"
        prefix = 0
        if len(parts) >= 5 and parts[:4] == [1, 3, 6, 1] and 0 < parts[4] < 256:
            prefix, parts = parts[4], parts[5:]
        return struct.pack("BBBB", len(parts), prefix, include, 0) + b"".join(
            struct.pack(e + "I", p) for p in parts)

    @staticmethod
    def pdu(ptype, payload, session=0, transaction=0, packet=0, flags=None, little=False):
        import struct
        e = "<" if little else ">"
        if flags is None:
            flags = 0 if little else 0x10
        return struct.pack(e + "BBBBIIII", 1, ptype, flags, 0, session, transaction, packet,
                           len(payload)) + payload

    def read_pdu(self, timeout=5, what="a PDU from the subagent"):
        """(header dict, payload) or None when the subagent closed."""
        import socket
        import struct
        self.conn.settimeout(timeout)
        def exact(n):
            buf = b""
            while len(buf) < n:
                try:
                    chunk = self.conn.recv(n - len(buf))
                except socket.timeout:
                    raise TestFailure("no %s within %d s (%d bytes of it read)" % (what, timeout, len(buf)))
                if not chunk:
                    return None
                buf += chunk
            return buf
        head = exact(20)
        if head is None:
            return None
        e = ">" if head[2] & 0x10 else "<"
        _, ptype, flags, _, session, transaction, packet, length = struct.unpack(e + "BBBBIIII", head)
        payload = exact(length) if length else b""
        return dict(type=ptype, flags=flags, session=session, transaction=transaction,
                    packet=packet, order=e), payload

    def accept_and_register(self):
        """Takes the subagent's connection, answers Open and Register. A
        connection the subagent gave up on while nobody answered (it waits
        2 s, then tries again) is skipped."""
        import socket
        import struct
        deadline = time.monotonic() + 15
        while True:
            try:
                self.conn, _ = self.lsock.accept()
            except socket.timeout:
                raise TestFailure("the subagent did not connect within 10 s")
            try:
                got = self.read_pdu(timeout=3)
                if got is not None:
                    self.conn.sendall(self.pdu(18, struct.pack(">IHH", 0, 0, 0), session=77,
                                               packet=got[0]["packet"]))
                    got2 = self.read_pdu(timeout=3)
                    if got2 is not None:
                        break
            except (TestFailure, ConnectionError):
                pass
            self.conn.close()
            check(time.monotonic() < deadline, "the subagent did not open a session")
        h, payload = got
        check(h["type"] == 1, "the subagent began with PDU type %d, not Open" % h["type"])
        h, payload = got2
        check(h["type"] == 3 and h["session"] == 77, "expected Register in session 77, got %r" % h)
        # timeout, priority, range_subid, reserved, then the subtree
        check(payload[4:] == self.oid([1, 3, 6, 1, 4, 1, 32473, 1, 1]),
              "registered subtree is not custosObjects: %r" % payload[4:])
        self.conn.sendall(self.pdu(18, struct.pack(">IHH", 0, 0, 0), session=77, packet=h["packet"]))

    def request(self, ptype, payload, little=False, flags=None):
        self.packet += 1
        self.conn.sendall(self.pdu(ptype, payload, session=77, transaction=5, packet=self.packet,
                                   little=little, flags=flags))
        return self.packet

    def response(self, packet):
        import struct
        while True:
            h, payload = self.read_pdu(what="the Response to packet %d" % packet)
            if h["type"] not in (12, 13):
                break
            # a notification or a keep-alive: answer it like snmpd does
            self.conn.sendall(self.pdu(18, struct.pack(">IHH", 0, 0, 0), session=77, packet=h["packet"]))
        check(h["type"] == 18, "expected a Response, got PDU type %d" % h["type"])
        check(h["packet"] == packet and h["transaction"] == 5 and h["session"] == 77,
              "the Response does not echo the request's ids: %r" % h)
        _, err, idx = struct.unpack(h["order"] + "IHH", payload[:8])
        return err, idx, payload[8:]

    def close(self):
        if self.conn:
            self.conn.close()
        self.lsock.close()


def test_snmp_agentx_abuse(ctx):
    """A master that sends garbage, oversized or truncated PDUs: custosd
    answers what is valid in either byte order, closes the session on what
    is not with a log line, registers again and keeps serving agents."""
    import struct
    m = FakeMaster(ctx)
    try:
        srv = ctx.server(extra_conf=m.conf()).start()
        # healthy: a host turning Critical would queue a notification (Notify
        # PDU) that arrives wherever the test expects only Close or Ping
        agent = ctx.agent(srv, "abuse-host", db_age_days=0.1, rtp=True)
        agent.enroll(srv.token_create("abuse"))
        agent.start()
        m.accept_and_register()
        custos_objects = [1, 3, 6, 1, 4, 1, 32473, 1, 1]
        version = [1, 3, 6, 1, 4, 1, 32473, 1, 1, 1, 1, 0]

        # GetNext from custosObjects, little-endian: custosServerVersion.0
        for little in (True, False):
            p = m.request(6, m.oid(custos_objects, little=little) + m.oid([], little=little), little=little)
            err, _, vbs = m.response(p)
            check(err == 0, "GetNext failed with error %d" % err)
            vtype = struct.unpack(">H", vbs[:2])[0]
            check(vtype == 4, "custosServerVersion.0 came back as type %d" % vtype)
            check(vbs[4:4 + len(m.oid(version))] == m.oid(version),
                  "GetNext did not answer custosServerVersion.0")
        # Get of a missing instance: noSuchInstance / noSuchObject, not an error
        p = m.request(5, m.oid(custos_objects + [1, 99, 0]) + m.oid([]))
        err, _, vbs = m.response(p)
        check(err == 0 and struct.unpack(">H", vbs[:2])[0] in (128, 129),
              "Get of a missing object: error %d, type %r" % (err, vbs[:2]))
        # Get past the end of the registered tree: endOfMibView from GetNext
        p = m.request(6, m.oid([1, 3, 6, 1, 4, 1, 32473, 2]) + m.oid([]))
        err, _, vbs = m.response(p)
        check(err == 0 and struct.unpack(">H", vbs[:2])[0] == 130, "expected endOfMibView")
        # GetBulk: three repetitions of one range; too many ranges get genErr, not a closed session
        p = m.request(7, struct.pack(">HH", 0, 3) + m.oid(custos_objects) + m.oid([]))
        err, _, vbs = m.response(p)
        check(err == 0 and len(vbs) > 0, "GetBulk failed with error %d" % err)
        names = []
        off = 0
        for _ in range(3):
            vtype = struct.unpack(">H", vbs[off:off + 2])[0]
            n, prefix = vbs[off + 4], vbs[off + 5]
            names.append((vtype, n, prefix))
            off += 8 + 4 * n
            if vtype == 4:
                off += 4 + (struct.unpack(">I", vbs[off:off + 4])[0] + 3) // 4 * 4
            elif vtype in (2, 66, 67):
                off += 4
            elif vtype == 70:
                off += 8
        check(len(names) == 3 and all(t in (2, 4, 66, 67, 70) for t, _, _ in names),
              "GetBulk of 3 repetitions gave %r" % names)
        p = m.request(7, struct.pack(">HH", 0, 1) + (m.oid(custos_objects) + m.oid([])) * 70)
        err, _, _ = m.response(p)
        check(err == 5, "GetBulk with 70 ranges answered error %d, not genErr" % err)
        p = m.request(6, m.oid(custos_objects) + m.oid([]))
        check(m.response(p)[0] == 0, "the session did not survive the big GetBulk")
        # the MIB is read-only
        p = m.request(8, struct.pack(">HH", 2, 0) + m.oid(version) + struct.pack(">I", 5))
        err, idx, _ = m.response(p)
        check(err == 17 and idx == 1, "TestSet answered error %d index %d, not notWritable" % (err, idx))
        # a non-default context is refused
        p = m.request(5, struct.pack(">I", 3) + b"abc\0" + m.oid(version) + m.oid([]), flags=0x18)
        err, _, _ = m.response(p)
        check(err == 262, "a non-default context got error %d, not unsupportedContext" % err)

        # a master that sends 10,000 requests and reads nothing for a while:
        # custosd stops reading when its output is full, then answers all, in order
        import threading
        first = m.packet + 1
        burst = b"".join(m.pdu(6, m.oid(custos_objects) + m.oid([]), session=77, transaction=5,
                               packet=first + k) for k in range(10000))
        m.packet += 10000
        sender = threading.Thread(target=m.conn.sendall, args=(burst,))
        sender.start()
        time.sleep(1.5)
        for k in range(10000):
            err, _, _ = m.response(first + k)
            check(err == 0, "request %d of the burst failed with error %d" % (k, err))
        sender.join(10)
        check(not sender.is_alive(), "the burst was not taken")
        status = wait_synced(srv, ["abuse-host"])["abuse-host"]["status"]
        check(status == "OK", "abuse-host is %s, not OK: its notification would cross the bad inputs" % status)

        bad = [
            (b"\x09" + b"\0" * 19, "not AgentX"),                                   # version 9
            (m.pdu(5, b"", session=77)[:16] + struct.pack(">I", 0x7ffffff0), "not AgentX"),  # oversized
            (m.pdu(5, struct.pack("BBBB", 50, 0, 0, 0) + b"\0" * 8, session=77), "malformed AgentX Get"),
            (random.Random(4).randbytes(2000), None),                                 # noise
        ]
        for i, (data, logged) in enumerate(bad):
            before = srv.log_count(logged) if logged else 0
            m.conn.sendall(data)
            # the subagent closes (after a Close-PDU at most) ...
            while True:
                got = m.read_pdu(timeout=5, what="close after bad input %d" % i)
                if got is None:
                    break
                check(got[0]["type"] in (2, 13), "after bad input %d the subagent sent PDU type %d" % (i, got[0]["type"]))
            m.conn.close()
            if logged:
                wait_until(lambda: srv.log_count(logged) > before, 5, "the log to say %r" % logged)
            # ... and comes back
            m.accept_and_register()
            p = m.request(6, m.oid(custos_objects) + m.oid([]))
            check(m.response(p)[0] == 0, "the session after bad input %d does not answer" % i)
        check(srv.alive(), "custosd died")
        check(srv.ctl_rc("status") == 0, "custosctl status failed")
        agent.event("still here", severity="info")
        wait_until(lambda: agent.queued() == 0, 15, "the agent's event to be acknowledged")
    finally:
        m.close()


def test_snmp_threats_survive_restart(ctx):
    """custosThreatsLastDay counts the day's threats from the database after
    custosd restarts, and a threat resent after the restart counts once."""
    snmp, srv = start_all(ctx)
    token = srv.token_create("t", max_uses=5)
    pc = ctx.agent(srv, "pc", db_age_days=0.1, rtp=True)
    pc.enroll(token)
    pc.start()
    wait_synced(srv, ["pc"])
    day = FLEET + ".10.0"
    # the threats wait in the stopped agent's spool, where the test keeps a
    # copy of the first one to resend it later
    pc.stop()
    ids = [pc.event("Eicar-Test-Signature FOUND in /tmp/e%d" % i, severity="critical", kind="threat_found")
           for i in range(3)]
    spool = pc.state / "spool"
    kept = {f.name: f.read_bytes() for f in spool.glob("*-%s.json" % ids[0])}
    check(len(kept) == 1, "threat %s is not one file in %s: %r" % (ids[0], spool, sorted(os.listdir(spool))))
    pc.start()
    wait_until(lambda: snmp.get(day).get(day) == 3, 15, "custosThreatsLastDay to count 3")
    wait_until(lambda: pc.queued() == 0, 15, "the agent's events to be acknowledged")
    wait_until(lambda: srv.sql("SELECT COUNT(*) FROM events WHERE kind = 'threat_found'") == [["3"]], 10,
               "the threats in the database")
    srv.restart()
    wait_until(snmp.registered, 10, "the subagent to register after the restart")
    wait_until(lambda: snmp.get(day).get(day) == 3, 10, "custosThreatsLastDay to count 3 after the restart")
    check(srv.log_count("virus outbreak") == 0, "3 threats are no outbreak (threshold 50)")
    pc.event("Eicar-Test-Signature FOUND in /tmp/e9", severity="critical", kind="threat_found")
    wait_until(lambda: snmp.get(day).get(day) == 4, 15, "custosThreatsLastDay to count the new threat")
    wait_until(lambda: pc.queued() == 0, 15, "the new threat to be acknowledged")
    # the agent resends a threat the server stored before the restart (as
    # after a crash between the server's commit and the agent's removal of
    # the file): the same event id again, which must count once
    pc.stop()
    for name, data in kept.items():
        (spool / name).write_bytes(data)
    check(pc.queued() == 1, "the copy of threat %s is not back in the agent's queue" % ids[0])
    pc.start()
    wait_until(lambda: pc.queued() == 0, 15, "the server to acknowledge the resent threat %s" % ids[0])
    for _ in range(10):   # the count must stay 4, not only be 4 once
        got = snmp.get(day).get(day)
        check(got == 4, "custosThreatsLastDay is %r after threat %s was resent, expected 4" % (got, ids[0]))
        time.sleep(0.2)
    n, distinct, stored = db_event_ids(srv, pc.uid)
    check(n == distinct and ids[0] in stored, "the resent threat %s is stored %d times (%d rows, %d ids)"
          % (ids[0], n - distinct + 1, n, distinct))
    check(srv.sql("SELECT COUNT(*) FROM events WHERE kind = 'threat_found'") == [["4"]],
          "the database holds other than 4 threats after the resend")
