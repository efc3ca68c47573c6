"""Integration test harness: real custosd, custos-agent and custosctl on
loopback against one private MariaDB per run.

Standard library only (Debian's /usr/bin/python3). Every test gets a Ctx: its
own directory, its own database, free ports, and a list of the processes it
started, all of which are ended in teardown. Teardown also scans every log and
every command's output for sanitizer reports, which fail the test."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
LOG_TAIL = 30


class TestFailure(Exception):
    """A test's assertion failed; the message says what was expected."""


class TestSkipped(Exception):
    """A test cannot run here; the message says why. run.py counts it as
    skipped (never as passed) and prints the reason."""


def build_dir():
    b = Path(os.environ.get("CUSTOS_BUILD", "build"))
    return b if b.is_absolute() else ROOT / b


def binary(name):
    return build_dir() / name


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_until(fn, timeout, what, interval=0.1):
    """Polls fn until it returns something truthy; returns that. Fails with
    `what` and fn's last result after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %gs waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


# NAC enforcement profiles the NAC and RADIUS tests share (nac.profiles)
NAC_PROFILES = """
  profiles = (
    { token = "Healthy";    vlan = "100"; },
    { token = "Checkup";    vlan = "100"; session_timeout = 3600; },
    { token = "Quarantine"; vlan = "666"; filter_id = "quarantine";
      url_redirect = "https://custos.example/remediate"; url_redirect_acl = "REDIRECT"; },
    { token = "Infected";   reject = true; },
    { token = "Unknown";    vlan = "999"; },
    { token = "Transition"; vlan = "999"; session_timeout = 300; }
  );
"""


def wait_synced(server, names):
    """Every named host has synced and reported its posture (no
    "no_posture" reason any more); returns the hosts by name."""
    def ok():
        hosts = server.hosts_by_name()
        if all(n in hosts and hosts[n]["last_seen"] > 0
               and not any(r["reason"] == "no_posture" for r in hosts[n]["reasons"]) for n in names):
            return hosts
        return None
    return wait_until(ok, 30, "hosts %s to sync" % ", ".join(names))


def sanitizer_lines(text):
    """Lines of a sanitizer report (not the harness's own "--- argv" and
    "$ argv" header lines)."""
    return [l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKS)
            and not l.startswith(("--- ", "$ "))]


def tail(path, n=LOG_TAIL):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return ["(cannot read %s: %s)" % (path, e)]
    return lines[-n:]


_used_ports = set()


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1, never handed out twice
    in one run."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in _used_ports:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        _used_ports.add(port)
        return port
    raise TestFailure("no free port found on 127.0.0.1")


class MariaDB:
    """The run's one private MariaDB (appliance/mariadb.sh), reached as root
    over its socket; tests each get their own database."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.socket = self.dir / "mysqld.sock"
        self.password_file = self.dir / "custos.password"
        self.script = ROOT / "appliance" / "mariadb.sh"

    def _script(self, *args, timeout=90):
        try:
            p = subprocess.run([str(self.script), *args], capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TestFailure("appliance/mariadb.sh %s did not finish within %ds" % (" ".join(args), timeout))
        return p

    def start(self):
        p = self._script("start", str(self.dir))
        if p.returncode != 0:
            raise TestFailure("cannot start the private MariaDB (appliance/mariadb.sh start %s): %s"
                              % (self.dir, (p.stderr or p.stdout).strip()[-2000:]))

    def stop(self):
        p = self._script("stop", str(self.dir))
        if p.returncode != 0:
            raise TestFailure("cannot stop MariaDB: %s" % (p.stderr or p.stdout).strip()[-2000:])

    def running(self):
        return self._script("status", str(self.dir), timeout=30).returncode == 0

    def ensure_running(self):
        if not self.running():
            self.start()

    def sql(self, query, database=None, timeout=30):
        """Runs SQL as root; returns rows as lists of strings (-N -B)."""
        argv = ["mariadb", "--no-defaults", "--socket=%s" % self.socket, "--user=root", "-N", "-B",
                "--connect-timeout=5"]
        if database:
            argv.append(database)
        argv += ["-e", query]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TestFailure("SQL did not finish within %ds: %s" % (timeout, query))
        if p.returncode != 0:
            raise TestFailure("SQL failed: %s: %s" % (query, p.stderr.strip()))
        return [line.split("\t") for line in p.stdout.splitlines()]


class Proc:
    """A background process whose stdout and stderr go to one log file.

    Teardown judges how every Proc ended (problem()): one that ended by
    itself must have exited 0, one stopped with SIGTERM must have exited 0,
    unless the test declared otherwise: expect_exit(rc) for a process meant
    to exit by itself, kill9() (or signal(SIGKILL)) for one killed on
    purpose."""

    def __init__(self, argv, log, env=None):
        self.argv = [str(a) for a in argv]
        self.log = Path(log)
        self.expected_rc = None     # expect_exit(): the status it must end with
        self.expect_any = False     # expect_exit(None): any non-zero status
        self.killed = False         # SIGKILL sent on purpose while it ran
        self.terminated = False     # SIGTERM sent while it ran (stop())
        with open(self.log, "ab") as f:
            f.write(("--- %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(self.argv))).encode())
            f.flush()
            self.p = subprocess.Popen(self.argv, stdout=f, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def expect_exit(self, rc=None):
        """This process is meant to end by itself with status rc (None: any
        non-zero status); teardown then fails the test if it did not."""
        self.expected_rc = rc
        self.expect_any = rc is None
        return self

    def signal(self, sig):
        if self.alive():
            if sig == signal.SIGKILL:
                self.killed = True
            elif sig in (signal.SIGTERM, signal.SIGINT):
                self.terminated = True
            os.kill(self.pid, sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.p.wait(timeout=10)

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL after timeout; True when it ended by itself."""
        if not self.alive():
            return True
        self.signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.p.wait(timeout=10)
            return False

    def describe(self):
        return "%s (pid %d, log %s)" % (os.path.basename(self.argv[0]), self.pid, self.log.name)

    def status_text(self):
        rc = self.p.returncode
        if rc is None:
            return "still running"
        if rc < 0:
            try:
                return "killed by %s" % signal.Signals(-rc).name
            except ValueError:
                return "killed by signal %d" % -rc
        return "exit status %d" % rc

    def problem(self):
        """None when this process ended as the test meant it to; otherwise
        what is wrong, with the last lines of its log."""
        rc = self.p.poll()
        why = None
        if rc is None:
            if self.expect_any or self.expected_rc is not None:
                why = "was expected to exit by itself (%s) but still ran at teardown" % (
                    "non-zero" if self.expect_any else "status %d" % self.expected_rc)
        elif self.killed:
            return None
        elif self.expect_any or self.expected_rc is not None:
            if (self.expect_any and rc <= 0) or (not self.expect_any and rc != self.expected_rc):
                why = "ended: %s; expected to exit by itself with %s" % (
                    self.status_text(), "a non-zero status" if self.expect_any else
                    "status %d" % self.expected_rc)
        elif self.terminated:
            if rc != 0:
                why = "on SIGTERM: %s (expected exit status 0)" % self.status_text()
        elif rc != 0:
            why = "died on its own: %s" % self.status_text()
        if why is None:
            return None
        return "%s %s; log: %s" % (self.describe(), why, " | ".join(tail(self.log, 6)))


class Ctx:
    """One test's world. Everything it starts is ended in teardown()."""

    def __init__(self, run, name):
        self.run_dir = run.tmp
        self.mariadb = run.mariadb
        self.name = name
        self.dir = run.tmp / name
        self.dir.mkdir(parents=True)
        self.procs = []
        self.logs = []
        self.problems = []      # sanitizer reports seen in command output
        self.ndb = 0

    # --- processes and commands ---

    def spawn(self, argv, log):
        p = Proc(argv, log)
        self.procs.append(p)
        if Path(log) not in self.logs:
            self.logs.append(Path(log))
        return p

    def run(self, argv, timeout=30, expect_rc=0):
        """Runs a command in the foreground; returns (rc, stdout, stderr).
        expect_rc None: any exit status is fine."""
        argv = [str(a) for a in argv]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not finish within %ds" % (" ".join(argv), timeout))
        bad = sanitizer_lines(p.stdout + p.stderr)
        if bad:
            self.problems.append("sanitizer report from %s: %s" % (" ".join(argv[:3]), bad[0]))
            with open(self.dir / "commands.log", "a") as f:
                f.write("$ %s\n%s%s\n" % (" ".join(argv), p.stdout, p.stderr))
            if self.dir / "commands.log" not in self.logs:
                self.logs.append(self.dir / "commands.log")
        if expect_rc is not None and p.returncode != expect_rc:
            raise TestFailure("%s exited %d (expected %d): %s" % (
                " ".join(argv), p.returncode, expect_rc, (p.stderr or p.stdout).strip()[-1500:]))
        return p.returncode, p.stdout, p.stderr

    # --- resources ---

    def port(self):
        return free_port()

    def database(self):
        """A fresh database for this test, owned by the custos user."""
        self.ndb += 1
        name = "t_%s_%d" % (re.sub(r"[^a-z0-9]", "_", self.name.lower())[:40], self.ndb)
        self.mariadb.sql("DROP DATABASE IF EXISTS %s; CREATE DATABASE %s CHARACTER SET utf8mb4; "
                         "GRANT ALL ON %s.* TO 'custos'@'localhost'" % (name, name, name))
        return name

    def sql(self, database, query):
        return self.mariadb.sql(query, database)

    def server(self, **kw):
        return Server(self, **kw)

    def agent(self, server, hostname, **kw):
        return Agent(self, server, hostname, **kw)

    # --- end ---

    def teardown(self):
        """Ends every process (SIGTERM so sanitizers report leaks, SIGKILL
        after a grace period), then returns a list of problems found: a
        process that died or exited non-zero (Proc.problem), one that did not
        stop on SIGTERM, a sanitizer report in any log or command output."""
        problems = list(self.problems)
        # how the ones that already ended did, before teardown stops the rest
        # (self.procs may also hold other things with alive() and stop(),
        # e.g. test_radius's network namespaces: those are only stopped)
        judged = set()
        for p in self.procs:
            if isinstance(p, Proc) and not p.alive():
                judged.add(id(p))
                bad = p.problem()
                if bad:
                    problems.append(bad)
        for p in reversed(self.procs):
            if not isinstance(p, Proc):
                if p.alive() and not p.stop(timeout=15):
                    problems.append("%s did not stop" % " ".join(p.argv))
                continue
            if id(p) in judged:
                continue
            if p.alive():
                if p.expect_any or p.expected_rc is not None:
                    problems.append(p.problem())
                    p.killed = True     # reported; its SIGTERM status is not news
                if not p.stop(timeout=15):
                    problems.append("%s did not stop within 15 s of SIGTERM" % p.describe())
                    continue
            bad = p.problem()           # also one that died since the first look
            if bad:
                problems.append(bad)
        for log in self.logs:
            try:
                text = log.read_text(errors="replace")
            except OSError:
                continue
            bad = sanitizer_lines(text)
            if bad:
                problems.append("sanitizer report in %s: %s" % (log.name, bad[0].strip()))
        return problems


def read_count(path, needle):
    try:
        return Path(path).read_text(errors="replace").count(needle)
    except OSError:
        return 0


class Server:
    """custosd with its own state directory, database, ports and config file
    (everything in the file, so SIGHUP tests can edit it). The sync settings
    are the product's (900 s + up to 90 s jitter) unless a test about them
    passes sync_interval: within a test an agent syncs at its start and when
    something a user has makes it (custosctl wake, a pushed change, a
    restart), never on a short timer."""

    def __init__(self, ctx, label="custosd", state_dir=None, database=None, listen_port=None,
                 api_port=None, sync_interval=None, extra_conf="", handshake_timeout=10,
                 declare_dir=None):
        self.ctx = ctx
        self.label = label
        self.state = Path(state_dir) if state_dir else ctx.dir / (label + "-state")
        self.db = database or ctx.database()
        self.listen_port = listen_port or ctx.port()
        self.api_port = api_port or ctx.port()
        self.sync_interval = sync_interval
        self.handshake_timeout = handshake_timeout
        # etc/custos.d: always explicit (never the machine's /etc/custos);
        # an empty directory unless the test declares something
        if declare_dir is None:
            declare_dir = ctx.dir / (label + "-custos.d")
            declare_dir.mkdir(exist_ok=True)
        self.declare_dir = Path(declare_dir)
        self.conf = ctx.dir / (label + ".conf")
        self.log = ctx.dir / (label + ".log")
        self.ctl_conf = ctx.dir / (label + "-ctl.conf")
        self.ctl_conf.write_text("# custosctl for %s: everything comes from -o\n" % label)
        self.proc = None
        self.write_conf(extra_conf)

    def conf_text(self, extra=""):
        m = self.ctx.mariadb
        return """# %(label)s, written by the integration harness
server: {
  state_dir = "%(state)s";
  name = "custos";
  san = "localhost,127.0.0.1";
  migrations_dir = "%(migr)s";
  declare_dir = "%(decl)s";
};
log: { level = "info"; target = "stderr"; };
listen: {
  address = "127.0.0.1";
  port = %(lport)d;
  handshake_timeout = %(hs)d;
};
api: { address = "127.0.0.1"; port = %(aport)d; };
database: {
  socket = "%(sock)s";
  user = "custos";
  password_file = "%(pw)s";
  name = "%(db)s";
  reconnect_max = 1;
  timeout = 5;
};
%(sync)s
%(extra)s
""" % dict(label=self.label, state=self.state, migr=ROOT / "db" / "migrations", lport=self.listen_port,
           hs=self.handshake_timeout, aport=self.api_port, decl=self.declare_dir, sock=m.socket,
           pw=m.password_file, db=self.db, extra=extra,
           # sync_interval=None: the product's defaults (900 s + up to 90 s jitter)
           sync="" if self.sync_interval is None else
           "sync: { interval = %d; jitter = 0; };" % self.sync_interval)

    def write_conf(self, extra=""):
        self.conf.write_text(self.conf_text(extra))

    # --- life cycle ---

    def start(self, timeout=30):
        check(self.proc is None or not self.proc.alive(), "%s is already running" % self.label)
        self.proc = self.ctx.spawn([binary("custosd"), "-c", self.conf], self.log)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        def ready():
            if not self.proc.alive():
                raise TestFailure("%s exited with status %s during start-up; log: %s" % (
                    self.label, self.proc.p.returncode, " | ".join(tail(self.log, 8))))
            return self.ctl_rc("status") == 0
        wait_until(ready, timeout, "%s to answer custosctl status" % self.label, interval=0.2)

    def stop(self):
        check(self.proc is not None and self.proc.alive(), "%s is not running" % self.label)
        check(self.proc.stop(timeout=15), "%s did not stop within 15 s of SIGTERM" % self.label)
        check(self.proc.p.returncode == 0, "%s exited with status %d after SIGTERM" % (
            self.label, self.proc.p.returncode))

    def kill9(self):
        self.proc.kill9()

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def hup(self):
        self.proc.signal(signal.SIGHUP)

    def log_text(self):
        return self.log.read_text(errors="replace")

    def log_count(self, needle):
        return read_count(self.log, needle)

    # --- console ---

    def ctl_argv(self, *args):
        return [binary("custosctl"), "-c", self.ctl_conf,
                "-o", "api.url=https://127.0.0.1:%d" % self.api_port,
                "-o", "api.ca_file=%s" % (self.state / "ca.pem"),
                "-o", "api.password_file=%s" % (self.state / "admin.password"), *args]

    def ctl(self, *args, expect_rc=0, timeout=30):
        return self.ctx.run(self.ctl_argv(*args), timeout=timeout, expect_rc=expect_rc)[1]

    def ctl_rc(self, *args):
        return self.ctx.run(self.ctl_argv(*args), timeout=30, expect_rc=None)[0]

    def ctl_json(self, *args):
        out = self.ctl("--json", *args)
        try:
            return json.loads(out)
        except ValueError:
            raise TestFailure("custosctl --json %s printed no JSON: %r" % (" ".join(args), out[:500]))

    def status(self):
        return self.ctl_json("status")

    def hosts(self):
        return self.ctl_json("hosts")

    def hosts_by_name(self):
        return {h["name"]: h for h in self.hosts()}

    def tokens(self):
        return {t["name"]: t for t in self.ctl_json("token", "list")}

    def wake_and_wait(self, agent, timeout=20):
        """custosctl wake for the agent's host (a signed UDP wake-up, or
        sync_now over a kept connection), then waits until the agent has
        completed a sync after it; returns the host as custosctl lists it."""
        before = agent.log_count("synced with the server")
        out = self.ctl("wake", agent.name)
        check("wake-up sent" in out, "custosctl wake %s printed %r" % (agent.name, out))
        wait_until(lambda: agent.log_count("synced with the server") > before, timeout,
                   "agent %s to sync after custosctl wake" % agent.label, interval=0.2)
        return self.hosts_by_name()[agent.name]

    def token_create(self, name, max_uses=0, days=1):
        j = self.ctl_json("token", "create", name, "--days", str(days), "--max-uses", str(max_uses))
        check(isinstance(j.get("token"), str) and len(j["token"]) >= 12,
              "token create printed no secret: %r" % j)
        return j["token"]

    def sql(self, query):
        return self.ctx.sql(self.db, query)


def clamav_header(stime, version=27000, sigs=2000000):
    """A 512-byte .cvd/.cld header whose build time is stime."""
    date = time.strftime("%d %b %Y %H-%M +0000", time.gmtime(stime))
    text = "ClamAV-VDB:%s:%d:%d:90:%s:X:integration:%d" % (date, version, sigs, "0" * 32, stime)
    return text.ljust(512).encode("ascii")


class Agent:
    """custos-agent with its own state directory, wake port, reported host
    name and ClamAV database directory. The state directory does not exist
    before enrolment. keep=False is the product's default: the agent hangs
    up once it has said what it had to say, and anything the server wants
    of it comes as a signed wake-up datagram; a test that passes keep=True
    is about the kept connection and says so."""

    def __init__(self, ctx, server, hostname, label=None, keep=False, db_age_days=None, rtp=False,
                 sync_interval=None, wake=True, extra=()):
        self.ctx = ctx
        self.server = server
        self.hostname = hostname
        self.label = label or hostname
        base = ctx.dir / ("agent-" + self.label)
        base.mkdir()
        self.state = base / "state"
        self.clamdb = base / "clamav"
        self.clamdb.mkdir()
        self.log = ctx.dir / ("agent-%s.log" % self.label)
        self.conf = base / "agent.conf"
        self.conf.write_text("# custos-agent %s: everything comes from -o\n" % self.label)
        self.wake_port = ctx.port() if wake else 0
        self.keep = keep
        self.db_time = None
        self.proc = None
        ov = ["agent.hostname=%s" % hostname,
              "agent.keep_connection=%s" % ("true" if keep else "false"),
              "agent.wake_address=127.0.0.1",
              "agent.wake_port=%d" % self.wake_port,
              "agent.timeout=5",
              "software.enabled=false",
              "clamav.database_dir=%s" % self.clamdb,
              "clamav.clamd_socket=%s" % (base / "no-clamd.sock"),
              "system.reboot_flag=%s" % (base / "no-reboot-required"),
              # policies rewrite ClamAV's files: never this machine's own
              "clamav.clamd_conf=%s" % (base / "clamd.conf"),
              "clamav.freshclam_conf=%s" % (base / "freshclam.conf"),
              "tasks.update_command=/bin/echo updated",
              "tasks.scan_command=/bin/false"]
        if rtp:
            # clamonacc "runs" when its pid file names a live process: ours
            pidfile = base / "clamonacc.pid"
            pidfile.write_text("%d\n" % os.getpid())
            ov.append("clamav.clamonacc_pidfile=%s" % pidfile)
        if sync_interval:
            ov.append("agent.sync_interval=%d" % sync_interval)
        ov += list(extra)
        self.overrides = []
        for o in ov:
            self.overrides += ["-o", o]
        if db_age_days is not None:
            self.db_time = int(time.time()) - int(db_age_days * 86400)
            (self.clamdb / "daily.cld").write_bytes(clamav_header(self.db_time))

    def argv(self, *args):
        return [binary("custos-agent"), "-c", self.conf, "--state-dir", self.state, *self.overrides, *args]

    def enroll(self, token, expect_ok=True, server_addr=None):
        """custos-agent --server --token --enroll-only; returns (rc, output)."""
        addr = server_addr or "127.0.0.1:%d" % self.server.listen_port
        rc, out, err = self.ctx.run(self.argv("--server", addr, "--token", token, "--enroll-only"),
                                    timeout=60, expect_rc=None)
        text = out + err
        with open(self.log, "a") as f:
            f.write("--- enrolment (exit %d)\n%s" % (rc, text))
        if self.log not in self.ctx.logs:
            self.ctx.logs.append(self.log)
        if expect_ok:
            check(rc == 0, "enrolment of %s failed (exit %d): %s" % (self.label, rc, text.strip()[-1000:]))
        return rc, text

    def start(self):
        check(self.proc is None or not self.proc.alive(), "agent %s already running" % self.label)
        self.proc = self.ctx.spawn(self.argv(), self.log)
        return self

    def stop(self):
        if self.proc:
            check(self.proc.stop(timeout=15), "agent %s did not stop within 15 s" % self.label)

    def event(self, message, severity="info", kind="test"):
        _, out, _ = self.ctx.run(self.argv("event", "--severity", severity, "--kind", kind,
                                           "--message", message), timeout=30)
        eid = out.strip()
        check(re.fullmatch(r"[0-9a-f]{32}", eid) is not None, "agent event printed no id: %r" % out)
        return eid

    def status(self):
        _, out, _ = self.ctx.run(self.argv("status"), timeout=30, expect_rc=None)
        try:
            return json.loads(out)
        except ValueError:
            raise TestFailure("custos-agent status printed no JSON: %r" % out[:500])

    def queued(self):
        return self.status()["queued_events"]

    def host_json(self):
        return json.loads((self.state / "host.json").read_text())

    @property
    def uid(self):
        return self.host_json()["host_id"]

    @property
    def name(self):
        return self.host_json()["name"]

    def log_count(self, needle):
        return read_count(self.log, needle)


def db_event_ids(server, uid):
    """(count, distinct count, set of event ids) stored for the host uid."""
    rows = server.sql("SELECT e.event_uid FROM events e JOIN hosts h ON h.id = e.host_id "
                      "WHERE h.uid = '%s'" % uid)
    ids = [r[0] for r in rows]
    return len(ids), len(set(ids)), set(ids)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def tls_wrap(sock, cert=None, key=None):
    """TLS over sock without checking the server (the agent port takes
    clients without a certificate for enrolment); with the agent's
    certificate and key it speaks as that agent."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if cert:
        c.load_cert_chain(cert, key)
    return c.wrap_socket(sock, server_hostname="localhost")
