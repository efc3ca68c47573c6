"""Integration tests of issue 3: administration groups, relocation rules,
policies with locks, tasks and selections, declared in custos.d files
(server.declare_dir) or made through the API, with real agents. Each
test_NAME(ctx) is one test; ctx is a harness.Ctx.

Agents run the harness's harmless settings (their clamd.conf and
freshclam.conf are files in the test directory, updates are /bin/echo);
task commands are /bin/echo and /bin/sleep."""

import json
import re
import time

from harness import ROOT, TestFailure, check, db_event_ids, wait_until

# ---- the declared state most tests start from ------------------------------

GROUPS_CONF = """# groups and relocation rules
groups = (
  { path = "Servers"; },
  { path = "Servers/Web"; },
  { path = "Workstations"; }
);
relocation = (
  { name = "web"; group = "Servers/Web"; hostname = "web*"; },
  { name = "srv"; group = "Servers"; hostname = "srv*"; },
  { name = "far"; group = "Servers"; subnet = "198.51.100.0/24"; tag = "far"; },
  { name = "lab"; group = "Workstations"; subnet = "127.0.0.0/8"; tag = "lab"; }
);
"""

# scan_archives is locked at Servers: Servers/Web's false must lose.
# update_checks_per_day is the setting the push tests change.
POLICIES_CONF = """# policies
policies = (
  { name = "clamav-servers"; group = "Servers"; application = "clamav";
    settings = (
      { key = "scan_archives"; value = true; locked = true; },
      { key = "max_file_size_mb"; value = 25; },
      { key = "update_checks_per_day"; value = %(checks)d; }
    ); },
  { name = "clamav-web"; group = "Servers/Web"; application = "clamav";
    settings = (
      { key = "scan_archives"; value = false; },
      { key = "max_file_size_mb"; value = 50; }
    ); },
  { name = "clamav-workstations"; group = "Workstations"; application = "clamav";
    settings = ( { key = "max_file_size_mb"; value = 5; locked = true; } ); }
);
"""

TASKS_CONF = """# tasks and selections
tasks = (
  { name = "hello"; type = "command"; group = "Servers"; schedule = "manual";
    params = { argv = [ "/bin/echo", "hello-from-task" ]; }; },
  { name = "boot"; type = "command"; group = "Servers/Web"; schedule = "at_start";
    params = { argv = [ "/bin/echo", "boot-run" ]; }; },
  { name = "slow"; type = "command"; hosts = [ "ws-1" ]; schedule = "manual"; time_limit = 2;
    params = { argv = [ "/bin/sleep", "30" ]; }; },
  { name = "long"; type = "command"; hosts = [ "lone" ]; schedule = "manual"; time_limit = 120;
    params = { argv = [ "/bin/sleep", "30" ]; }; },
  { name = "nightly"; type = "update"; group = "Workstations"; schedule = "daily 02:30";
    random_delay = 600; time_limit = 1800; }
);
selections = (
  { name = "web-hosts"; filter = "group = Servers/Web"; },
  { name = "troubled"; filter = "status != OK"; }
);
"""

# the effective clamav settings of each group with the files above
EFFECTIVE = {
    "Servers": {"scan_archives": True, "max_file_size_mb": 25, "update_checks_per_day": 12},
    "Servers/Web": {"scan_archives": True, "max_file_size_mb": 50, "update_checks_per_day": 12},
    "Workstations": {"max_file_size_mb": 5},
}


def _declare(srv, files):
    """Writes {name: text} into the server's custos.d."""
    for name, text in files.items():
        (srv.declare_dir / name).write_text(text)


def _standard_files(checks=12, tasks=True):
    files = {"10-groups.conf": GROUPS_CONF, "20-policies.conf": POLICIES_CONF % {"checks": checks}}
    if tasks:
        files["30-tasks.conf"] = TASKS_CONF
    return files


def _server(ctx, files=None, **kw):
    """custosd with these custos.d files and the product's sync settings
    (every 900 s + jitter): what reaches an agent within a test was pushed
    over its kept connection (sync_now) or woken (a UDP datagram)."""
    srv = ctx.server(**kw)
    _declare(srv, files if files is not None else _standard_files())
    srv.start()
    # the declaration is applied once the database is loaded
    wait_until(lambda: srv.log_count("applied etc/custos.d") >= 1, 20, "custosd to apply custos.d")
    return srv


def _agents(ctx, srv, specs):
    """Enrolls and starts one agent per (hostname, kwargs); waits until every
    one has synced (posture known); returns them by host name."""
    token = srv.token_create("fleet", max_uses=len(specs) + 2)
    agents = {}
    for name, kw in specs:
        kw = dict(kw)
        tags = kw.pop("tags", None)
        extra = list(kw.pop("extra", ()))
        if tags:
            extra.append("agent.tags=%s" % tags)
        a = ctx.agent(srv, name, db_age_days=0.1, rtp=True, extra=extra, **kw)
        # the agent's (test) clamd.conf and freshclam.conf: policies write
        # their managed block into files that exist
        for f in ("clamd.conf", "freshclam.conf"):
            (a.conf.parent / f).write_text("# %s of the test agent %s\nLogVerbose no\n" % (f, name))
        a.enroll(token)
        a.start()
        agents[name] = a

    def synced():
        hosts = srv.hosts_by_name()
        ok = all(n in hosts and hosts[n]["last_seen"] > 0
                 and not any(r["reason"] == "no_posture" for r in hosts[n]["reasons"]) for n in agents)
        return hosts if ok else None
    wait_until(synced, 30, "hosts %s to sync" % ", ".join(agents))
    return agents


def _groups_of(srv):
    return {n: h["group"] for n, h in srv.hosts_by_name().items()}


def _wait_groups(srv, expect, timeout=15):
    def ok():
        got = _groups_of(srv)
        return got if all(got.get(n) == g for n, g in expect.items()) else None
    try:
        return wait_until(ok, timeout, "hosts in groups %r" % expect, interval=0.2)
    except TestFailure:
        raise TestFailure("hosts are in %r, expected %r" % (_groups_of(srv), expect))


def _after_second(t):
    """Sleeps until the wall clock has passed second t, so that a later
    last_seen can be told apart from t."""
    while time.time() < t + 1.05:
        time.sleep(0.05)


def _policy(srv, host):
    return srv.ctl_json("host-policy", host)


def _clamav(doc):
    return doc["document"]["applications"].get("clamav", {})


def _applied(srv, host, version, timeout=5):
    """Waits until host reports it applied policy version; returns its host-policy."""
    def ok():
        p = _policy(srv, host)
        return p if p["version"] == version and p["applied_version"] == version else None
    t0 = time.monotonic()
    try:
        p = wait_until(ok, timeout, "host %s to apply policy version %d" % (host, version), interval=0.2)
    except TestFailure:
        raise TestFailure("host %s did not apply policy version %d within %ds: %r"
                          % (host, version, timeout, _policy(srv, host)))
    return p, time.monotonic() - t0


def _results(srv, task):
    return srv.ctl_json("task", "results", task)["results"]


def _wait_results(srv, task, want, timeout=20):
    """Waits until the task's results, as {host: [states by run]}, satisfy
    want(results); returns the result rows."""
    last = [None]

    def ok():
        rows = _results(srv, task)
        last[0] = rows
        return rows if want(rows) else None
    try:
        return wait_until(ok, timeout, "results of task %s" % task, interval=0.25)
    except TestFailure:
        raise TestFailure("task %s: results %s did not become what was expected within %ds"
                          % (task, json.dumps(last[0]), timeout))


def _states(rows):
    return sorted((r["host"], r["run"], r["state"]) for r in rows)


def _reload_refused(srv, count):
    wait_until(lambda: srv.log_count("etc/custos.d refused") >= count, 10,
               "custosd to log that custos.d was refused (#%d)" % count)


def _snapshot(srv):
    """What the files declare, as the API lists it."""
    return {
        "groups": sorted((g["path"], g["source"], g["id"]) for g in srv.ctl_json("groups")),
        "policies": sorted(json.dumps(p, sort_keys=True) for p in srv.ctl_json("policies")),
        "tasks": sorted(json.dumps(t, sort_keys=True) for t in srv.ctl_json("tasks")),
        "selections": sorted(json.dumps(s, sort_keys=True) for s in srv.ctl_json("selections")),
        "rules": srv.ctl_json("rules"),
    }


# 1 -------------------------------------------------------------------------

def test_mgmt_declared_state(ctx):
    """Groups, rules, policies, tasks and selections declared in custos.d
    appear after start with source "config", exactly as written; a restart
    applies them again without duplicates or new ids."""
    srv = _server(ctx)
    groups = srv.ctl_json("groups")
    check(sorted((g["path"], g["source"]) for g in groups) ==
          [("Servers", "config"), ("Servers/Web", "config"), ("Workstations", "config")],
          "custosctl groups: %r" % groups)
    by_path = {g["path"]: g for g in groups}
    check(by_path["Servers/Web"]["parent"] == "Servers" and by_path["Servers/Web"]["name"] == "Web"
          and by_path["Servers"]["parent"] == "", "group parents: %r" % groups)

    rules = srv.ctl_json("rules")
    check([(r["name"], r["group"], r["source"]) for r in rules] ==
          [("web", "Servers/Web", "config"), ("srv", "Servers", "config"), ("far", "Servers", "config"),
           ("lab", "Workstations", "config")], "custosctl rules: %r" % rules)
    check(rules[3]["subnet"] == "127.0.0.0/8" and rules[3]["tag"] == "lab" and rules[0]["hostname"] == "web*",
          "rule criteria: %r" % rules)

    pols = {p["name"]: p for p in srv.ctl_json("policies")}
    check(sorted(pols) == ["clamav-servers", "clamav-web", "clamav-workstations"], "policies: %r" % sorted(pols))
    p = pols["clamav-servers"]
    check(p["source"] == "config" and p["group"] == "Servers" and p["application"] == "clamav"
          and p["kind"] == "normal" and p["active"] is True and p["inherit"] is True,
          "policy clamav-servers: %r" % p)
    check(p["settings"] == [{"key": "scan_archives", "value": True, "locked": True},
                            {"key": "max_file_size_mb", "value": 25, "locked": False},
                            {"key": "update_checks_per_day", "value": 12, "locked": False}],
          "settings of clamav-servers: %r" % p["settings"])
    check(all(x["source"] == "config" for x in pols.values()), "policy sources: %r" % pols)
    check([p["name"] for p in srv.ctl_json("policies", "--group", "Servers/Web")] == ["clamav-web"],
          "policies --group Servers/Web")

    tasks = {t["name"]: t for t in srv.ctl_json("tasks")}
    check(sorted(tasks) == ["boot", "hello", "long", "nightly", "slow"], "tasks: %r" % sorted(tasks))
    check(all(t["source"] == "config" for t in tasks.values()), "task sources: %r" % tasks)
    h = tasks["hello"]
    check(h["type"] == "command" and h["scope"] == {"group": "Servers"} and h["schedule"] == "manual"
          and h["params"] == {"argv": ["/bin/echo", "hello-from-task"]}, "task hello: %r" % h)
    check(tasks["slow"]["scope"] == {"hosts": ["ws-1"]} and tasks["slow"]["time_limit"] == 2,
          "task slow: %r" % tasks["slow"])
    n = tasks["nightly"]
    check(n["type"] == "update" and n["schedule"] == "daily 02:30" and n["random_delay"] == 600
          and n["time_limit"] == 1800 and n["scope"] == {"group": "Workstations"}, "task nightly: %r" % n)
    check(tasks["boot"]["schedule"] == "at_start", "task boot: %r" % tasks["boot"])

    sels = srv.ctl_json("selections")
    check(sorted((s["name"], s["filter"], s["source"]) for s in sels) ==
          [("troubled", "status != OK", "config"), ("web-hosts", "group = Servers/Web", "config")],
          "selections: %r" % sels)

    # in the database too
    check(srv.sql("SELECT COUNT(*) FROM policies WHERE source = 'config'") == [["3"]], "policies table")
    check(srv.sql("SELECT COUNT(*) FROM tasks WHERE source = 'config'") == [["5"]], "tasks table")

    # a restart applies the same files again: same objects, same ids
    before = _snapshot(srv)
    srv.restart()
    wait_until(lambda: srv.log_count("applied etc/custos.d") >= 2, 20, "custos.d applied after the restart")
    after = _snapshot(srv)
    check(after == before, "the declared state changed over a restart:\n%r\n%r" % (before, after))
    check(srv.sql("SELECT COUNT(*) FROM `groups`") == [["3"]], "groups table after the restart")


def test_mgmt_example_conf(ctx):
    """The example set shipped in etc/custos.d (the one make run uses) is
    valid and applies."""
    srv = ctx.server(declare_dir=ROOT / "etc" / "custos.d").start()
    wait_until(lambda: srv.log_count("applied etc/custos.d") >= 1, 20, "custosd to apply etc/custos.d")
    groups = sorted(g["path"] for g in srv.ctl_json("groups"))
    check(groups == ["Servers", "Servers/Web", "Workstations"], "groups of the example: %r" % groups)
    kinds = sorted((p["name"], p["kind"]) for p in srv.ctl_json("policies"))
    check(("clamav-servers-outbreak", "outbreak") in kinds and len(kinds) == 4,
          "policies of the example: %r" % kinds)
    check(len(srv.ctl_json("tasks")) == 4 and len(srv.ctl_json("rules")) == 3
          and [s["name"] for s in srv.ctl_json("selections")] == ["stale"],
          "tasks, rules or selections of the example")
    check(srv.log_count("etc/custos.d refused") == 0 and srv.log_count("not applied") == 0,
          "custosd refused the example set")


# 2 -------------------------------------------------------------------------

def test_mgmt_relocation(ctx):
    """Relocation rules place agents enrolled after start at their first
    sync: by host-name glob, by subnet and tag; others stay Unassigned; a
    host moved by hand stays where it was put."""
    srv = _server(ctx, files={"10-groups.conf": GROUPS_CONF})
    agents = _agents(ctx, srv, [
        ("web-1", {}),
        ("srv-1", {}),
        ("desk-1", {"tags": "office,lab"}),   # 127.0.0.1 and tag lab
        ("far-1", {"tags": "far"}),           # tag far, but not in 198.51.100.0/24
        ("other", {}),
    ])
    expect = {"web-1": "Servers/Web", "srv-1": "Servers", "desk-1": "Workstations", "far-1": "",
              "other": ""}
    _wait_groups(srv, expect, timeout=5)
    for name, group in expect.items():
        if group:
            check("host %s placed in group %s by a relocation rule" % (name, group) in srv.log_text(),
                  "the log does not say where %s was placed" % name)
    # written through to the database (the hosts table names the group)
    stored = {"web-1": "Web", "srv-1": "Servers", "desk-1": "Workstations", "far-1": "", "other": ""}
    wait_until(lambda: dict(srv.sql("SELECT h.name, COALESCE(g.name, '') FROM hosts h LEFT JOIN `groups` g "
                                    "ON g.id = h.group_id")) == stored,
               10, "the placements %r in the hosts table" % stored)
    counts = {g["path"]: g["hosts"]["total"] for g in srv.ctl_json("groups")}
    check(counts == {"Servers": 2, "Servers/Web": 1, "Workstations": 1}, "group counts %r" % counts)
    check(sorted(h["name"] for h in srv.ctl_json("hosts", "--group", "Servers")) == ["srv-1", "web-1"],
          "hosts --group Servers includes the child group's host")

    # placement happens once: a later sync does not move a host back, and a
    # forced relocation applies the rules again
    srv.ctl("move", "web-1", "Workstations")
    check(_groups_of(srv)["web-1"] == "Workstations", "custosctl move did not move web-1")
    seen = srv.hosts_by_name()["web-1"]["last_seen"]
    _after_second(seen)
    agents["web-1"].stop()
    agents["web-1"].start()
    wait_until(lambda: srv.hosts_by_name()["web-1"]["last_seen"] > seen or None, 15,
               "web-1 to sync again after its restart")
    check(_groups_of(srv)["web-1"] == "Workstations", "a sync undid the manual move of web-1")
    out = srv.ctl_json("relocate", "--force")
    check(out["moved"] == 1, "relocate --force moved %r hosts, expected 1 (web-1)" % out)
    _wait_groups(srv, expect, timeout=2)


# 3 -------------------------------------------------------------------------

def test_mgmt_policy_push(ctx):
    """A policy change in the files (SIGHUP) and through the API reaches the
    agents, which report the applied version within seconds: web-1 (the
    product default, no kept connection) by a signed wake-up datagram, srv-1
    over its kept connection (sync_now); a locked setting of a parent group
    wins over a child's value, also with inherit off."""
    srv = _server(ctx, files=_standard_files(tasks=False))
    # srv-1 is about agent.keep_connection: the push over a kept connection
    agents = _agents(ctx, srv, [("web-1", {}), ("srv-1", {"keep": True})])
    _wait_groups(srv, {"web-1": "Servers/Web", "srv-1": "Servers"}, timeout=5)
    wait_until(lambda: srv.hosts_by_name()["srv-1"]["connected"], 15, "srv-1's kept connection")

    versions = {}
    for name, group in (("web-1", "Servers/Web"), ("srv-1", "Servers")):
        p = wait_until(lambda: (lambda p: p if p["applied_version"] == p["version"] > 0 else None)(
            _policy(srv, name)), 15, "%s to apply its first policy" % name, interval=0.2)
        check(p["group"] == group, "host-policy of %s names group %r" % (name, p["group"]))
        check(_clamav(p) == EFFECTIVE[group], "effective clamav settings of %s: %r, expected %r"
              % (name, _clamav(p), EFFECTIVE[group]))
        check(re.fullmatch(r"[0-9a-f]{64}", p["hash"]) is not None, "policy hash %r" % p["hash"])
        versions[name] = p["version"]
    # the agent really applied it: its (test) clamd.conf has the managed block
    clamd = (agents["web-1"].conf.parent / "clamd.conf")
    wait_until(lambda: clamd.exists() and "MaxFileSize 50M" in clamd.read_text(), 10,
               "web-1's clamd.conf to hold MaxFileSize 50M")
    check("ScanArchive yes" in clamd.read_text(), "web-1's clamd.conf: %r" % clamd.read_text())

    # 1. the files change; SIGHUP
    _declare(srv, {"20-policies.conf": POLICIES_CONF % {"checks": 6}})
    srv.hup()
    timings = []
    for name in ("web-1", "srv-1"):
        p, took = _applied(srv, name, versions[name] + 1)
        timings.append(took)
        check(_clamav(p)["update_checks_per_day"] == 6, "%s: %r after the reload" % (name, _clamav(p)))
        versions[name] += 1
    # each by its own way: web-1 (no connection held) by a datagram
    check(agents["web-1"].log_count("genuine wake-up") >= 1,
          "web-1 (no kept connection) applied the change without a wake-up datagram")
    check(agents["srv-1"].log_count("server asked for a sync") >= 1,
          "srv-1 was not asked over its kept connection")
    fresh = agents["web-1"].conf.parent / "freshclam.conf"
    wait_until(lambda: fresh.exists() and "Checks 6" in fresh.read_text(), 10,
               "web-1's freshclam.conf to hold Checks 6")

    # 2. through the API: an api-owned group and policy below Servers/Web,
    # inherit off; the lock of Servers still wins
    srv.ctl("group", "create", "Servers/Web/Canary")
    srv.ctl("move", "web-1", "Servers/Web/Canary")
    body = {"name": "canary", "group": "Servers/Web/Canary", "application": "clamav", "inherit": False,
            "settings": [{"key": "scan_archives", "value": False},
                         {"key": "max_file_size_mb", "value": 75}]}
    f = ctx.dir / "canary.json"
    f.write_text(json.dumps(body))
    out = srv.ctl_json("policy", "put", str(f))
    check(out["source"] == "api" and out["name"] == "canary", "policy put replied %r" % out)
    # moving changed nothing effective (Web's settings apply to Canary too);
    # the api policy is the change
    p, took = _applied(srv, "web-1", versions["web-1"] + 1)
    timings.append(took)
    check(_clamav(p) == {"scan_archives": True, "max_file_size_mb": 75},
          "web-1 with inherit off below a lock: %r (expected the locked scan_archives and 75 only)"
          % _clamav(p))
    versions["web-1"] += 1
    body["settings"][1]["value"] = 80
    f.write_text(json.dumps(body))
    srv.ctl("policy", "put", str(f))
    p, took = _applied(srv, "web-1", versions["web-1"] + 1)
    timings.append(took)
    check(_clamav(p)["max_file_size_mb"] == 80, "web-1 after the second put: %r" % _clamav(p))
    check(_policy(srv, "srv-1")["version"] == versions["srv-1"], "srv-1's policy changed with Canary's")
    check(max(timings) < 5, "applying took %s s" % ["%.1f" % t for t in timings])
    wait_until(lambda: srv.sql("SELECT policy_version, policy_applied_version FROM hosts WHERE name = 'web-1'")
               == [[str(versions["web-1"] + 1)] * 2], 10, "web-1's applied version in the hosts table")


# 4 -------------------------------------------------------------------------

def test_mgmt_local_settings(ctx):
    """A host's local settings override unlocked values of its policies but
    never a locked one; clearing them restores the group's values."""
    srv = _server(ctx, files=_standard_files(tasks=False))
    _agents(ctx, srv, [("web-1", {}), ("ws-1", {"tags": "lab"})])
    _wait_groups(srv, {"web-1": "Servers/Web", "ws-1": "Workstations"}, timeout=5)
    p = wait_until(lambda: (lambda p: p if p["applied_version"] == p["version"] > 0 else None)(
        _policy(srv, "web-1")), 15, "web-1 to apply its first policy", interval=0.2)
    v = p["version"]

    out = srv.ctl_json("host-settings", "web-1",
                       '{"clamav": {"max_file_size_mb": 99, "scan_archives": false, "onaccess_prevention": true}}')
    check(out["local_settings"]["clamav"]["max_file_size_mb"] == 99, "host-settings replied %r" % out)
    p, _ = _applied(srv, "web-1", v + 1)
    check(_clamav(p) == {"scan_archives": True, "max_file_size_mb": 99, "update_checks_per_day": 12,
                         "onaccess_prevention": True},
          "web-1 with local settings: %r (locked scan_archives must stay true)" % _clamav(p))
    check(p["local_settings"] == {"clamav": {"max_file_size_mb": 99, "scan_archives": False,
                                             "onaccess_prevention": True}},
          "host-policy local_settings %r" % p.get("local_settings"))

    # ws-1: max_file_size_mb is locked at Workstations
    before = _policy(srv, "ws-1")
    srv.ctl("host-settings", "ws-1", '{"clamav": {"max_file_size_mb": 1000, "scan_archives": true}}')
    p = _policy(srv, "ws-1")
    check(_clamav(p) == {"max_file_size_mb": 5, "scan_archives": True},
          "ws-1 with local settings against a lock: %r" % _clamav(p))
    check(p["version"] == before["version"] + 1, "ws-1 version %d after %d" % (p["version"], before["version"]))

    # bad input is refused and changes nothing
    rc = srv.ctl_rc("host-settings", "web-1", '{"clamav": 5}')
    check(rc != 0, "host-settings with a non-object application exited 0")
    check(_policy(srv, "web-1")["version"] == v + 1, "a refused host-settings changed the policy")

    # clearing them
    srv.ctl("host-settings", "web-1", "{}")
    p, _ = _applied(srv, "web-1", v + 2)
    check(_clamav(p) == EFFECTIVE["Servers/Web"], "web-1 after clearing its local settings: %r" % _clamav(p))
    check(p.get("local_settings") is None, "local settings after clearing: %r" % p.get("local_settings"))


# 5 -------------------------------------------------------------------------

def test_mgmt_tasks(ctx):
    """A group task runs on the group's hosts and its child groups' only; an
    at_start task runs at every agent start; results are stored with state,
    exit code and output; a run over its time limit fails; a running task is
    cancelled."""
    srv = _server(ctx)
    agents = _agents(ctx, srv, [
        ("srv-1", {}),                              # woken by UDP (the product default)
        ("web-1", {"keep": True}),                  # about agent.keep_connection: sync_now over it
        ("ws-1", {"tags": "lab"}),
        ("lone", {}),                               # Unassigned
    ])
    _wait_groups(srv, {"srv-1": "Servers", "web-1": "Servers/Web", "ws-1": "Workstations", "lone": ""},
                 timeout=5)

    # at_start: web-1 ran it after its first sync (placed, then the list)
    rows = _wait_results(srv, "boot", lambda r: _states(r) == [("web-1", 1, "succeeded")], timeout=15)
    check("boot-run" in rows[0]["output_tail"] and rows[0]["exit_code"] == 0, "boot run 1: %r" % rows[0])

    # manual: every host of Servers and Servers/Web, nobody else
    out = srv.ctl("task", "start", "hello")
    check("started" in out, "task start printed %r" % out)
    t0 = time.monotonic()
    rows = _wait_results(srv, "hello", lambda r: sorted((x["host"], x["state"]) for x in r) ==
                         [("srv-1", "succeeded"), ("web-1", "succeeded")], timeout=20)
    took = time.monotonic() - t0
    for r in rows:
        check(r["run"] == 1 and r["exit_code"] == 0 and "hello-from-task" in r["output_tail"],
              "result of hello: %r" % r)
        check(r["started"] > 0 and r["ended"] >= r["started"], "hello times: %r" % r)
    check(srv.ctl_json("task", "hello")["manual_seq"] == 1, "manual_seq after one start")
    check(agents["srv-1"].log_count("genuine wake-up") >= 1, "srv-1 ran hello without a wake-up datagram")

    # the time limit and a cancel, at the same time
    srv.ctl("task", "start", "slow")
    srv.ctl("task", "start", "long")
    _wait_results(srv, "long", lambda r: _states(r) == [("lone", 1, "running")], timeout=15)
    srv.ctl("task", "cancel", "long")
    rows = _wait_results(srv, "long", lambda r: _states(r) == [("lone", 1, "cancelled")], timeout=15)
    check(rows[0]["ended"] - rows[0]["started"] < 20, "the cancelled run lasted %r" % rows[0])
    rows = _wait_results(srv, "slow", lambda r: _states(r) == [("ws-1", 1, "failed")], timeout=20)
    check(rows[0]["ended"] - rows[0]["started"] <= 10, "the timed-out run lasted %r" % rows[0])
    msgs = [e["message"] for e in srv.ctl_json("events", "--host", "ws-1") if e["kind"] == "task_result"]
    check(any("time limit of 2 s exceeded" in m for m in msgs), "ws-1's task events: %r" % msgs)
    check(agents["lone"].log_count("cancelled by the server") == 1, "lone did not log the cancel")

    # the other hosts ran nothing; hello ran once per host
    check(sorted((x["host"], x["run"]) for x in _results(srv, "hello")) == [("srv-1", 1), ("web-1", 1)],
          "hello results after all: %r" % _results(srv, "hello"))
    for task, host in (("hello", "ws-1"), ("hello", "lone"), ("slow", "web-1"), ("boot", "srv-1")):
        check(not any(r["host"] == host for r in _results(srv, task)), "task %s ran on %s" % (task, host))
    rows = srv.sql("SELECT t.name, h.name, r.state FROM task_results r JOIN tasks t ON t.id = r.task_id "
                   "JOIN hosts h ON h.id = r.host_id ORDER BY t.name, h.name, r.run")
    check(rows == [["boot", "web-1", "succeeded"], ["hello", "srv-1", "succeeded"],
                   ["hello", "web-1", "succeeded"], ["long", "lone", "cancelled"],
                   ["nightly", "ws-1", "scheduled"], ["slow", "ws-1", "failed"]],
          "task_results table: %r" % rows)
    # the daily task was not due: ws-1 said when it will run
    nightly = _results(srv, "nightly")
    now = time.time()
    check(len(nightly) == 1 and nightly[0]["run"] == 1 and now < nightly[0]["started"] <= now + 86400 + 3600,
          "nightly on ws-1 should be scheduled within a day: %r" % nightly)

    # at_start again: a restarted agent runs it once more, as run 2
    agents["web-1"].stop()
    agents["web-1"].start()
    _wait_results(srv, "boot", lambda r: _states(r) == [("web-1", 1, "succeeded"), ("web-1", 2, "succeeded")],
                  timeout=15)
    check(took < 5, "the manual task took %.1fs to run everywhere" % took)


# 6 -------------------------------------------------------------------------

def test_mgmt_reload_broken(ctx):
    """A reload (SIGHUP or custosctl reload) with a broken custos.d file
    changes nothing: the log and custosctl say FILE:LINE, custosctl exits
    non-zero, every object stays as it was."""
    srv = _server(ctx)
    before = _snapshot(srv)
    good = POLICIES_CONF % {"checks": 12}
    pfile = srv.declare_dir / "20-policies.conf"
    # a new group in a valid file must not be applied either
    _declare(srv, {"05-more.conf": 'groups = ( { path = "Lab"; } );\n'})
    lines = good.splitlines()
    n = next(i for i, l in enumerate(lines) if "max_file_size_mb" in l) + 1
    syntax = "\n".join(lines[:n - 1] + ['      { key = "max_file_size_mb"; value = ; },'] + lines[n:]) + "\n"
    unknown = good.replace('group = "Servers/Web";', 'group = "Nowhere";')
    for i, (what, text, line) in enumerate((("syntax error", syntax, n), ("unknown group", unknown, None)), 1):
        pfile.write_text(text)
        srv.hup()
        _reload_refused(srv, i)
        check(srv.alive(), "custosd died on a broken custos.d (%s)" % what)
        check(_snapshot(srv) == before, "a refused reload (%s) changed the state" % what)
        rc, out, err = ctx.run(srv.ctl_argv("reload"), expect_rc=None)
        check(rc == 1, "custosctl reload with a %s exited %d: %r" % (what, rc, out + err))
        text_out = out + err
        m = re.search(r"%s:(\d+)" % re.escape(str(pfile)), text_out)
        check(m is not None, "custosctl reload does not name %s:LINE for the %s: %r" % (pfile, what, text_out))
        if line:
            check(int(m.group(1)) == line, "the %s is on line %d, custosctl says %s" % (what, line, m.group(1)))
        else:
            check("Nowhere" in text_out, "the unknown group is not named: %r" % text_out)
        # --json: the errors one per line
        rc, out, _ = ctx.run(srv.ctl_argv("--json", "reload"), expect_rc=None)
        j = json.loads(out) if out.strip().startswith("{") else {}
        check(rc == 1 and any(str(pfile) in e for e in j.get("errors", [j.get("error", "")])),
              "custosctl --json reload: exit %d, %r" % (rc, out))
        check(_snapshot(srv) == before, "a refused custosctl reload (%s) changed the state" % what)
    log = srv.log_text()
    check(re.search(r"%s:%d" % (re.escape(str(pfile)), n), log) is not None,
          "the server log does not name %s:%d" % (pfile, n))

    # fixed: everything applies, the new group too
    pfile.write_text(good)
    out = srv.ctl("reload")
    check("applied" in out, "custosctl reload printed %r" % out)
    paths = sorted(g["path"] for g in srv.ctl_json("groups"))
    check(paths == ["Lab", "Servers", "Servers/Web", "Workstations"], "groups after the fix: %r" % paths)


# 7 -------------------------------------------------------------------------

def test_mgmt_reload_removes(ctx):
    """Removing a policy, a group, a task and a selection from the files and
    reloading removes them; objects made through the API stay; the API
    refuses to change or delete what the files own, naming the file."""
    srv = _server(ctx, files=_standard_files())
    _agents(ctx, srv, [("ws-1", {"tags": "lab"})])
    _wait_groups(srv, {"ws-1": "Workstations"}, timeout=5)

    # objects of the API
    srv.ctl("group", "create", "Servers/Api")
    f = ctx.dir / "api-policy.json"
    f.write_text(json.dumps({"name": "api-pol", "group": "Servers/Api", "application": "clamav",
                             "settings": [{"key": "max_file_size_mb", "value": 7, "locked": True}]}))
    srv.ctl("policy", "put", str(f))
    f = ctx.dir / "api-task.json"
    f.write_text(json.dumps({"name": "api-task", "type": "command", "group": "Workstations",
                             "params": {"argv": ["/bin/echo", "api"]}, "schedule": "every 4h"}))
    srv.ctl("task", "put", str(f))
    srv.ctl("selection", "put", "api-sel", "db_age_days > 3")

    # the files' objects are refused, with the file named
    pfile = srv.declare_dir / "20-policies.conf"
    tfile = srv.declare_dir / "30-tasks.conf"
    gfile = srv.declare_dir / "10-groups.conf"
    f = ctx.dir / "override.json"
    f.write_text(json.dumps({"name": "clamav-web", "group": "Servers/Web", "application": "clamav",
                             "settings": []}))
    for argv, file in ((("policy", "put", str(f)), pfile), (("policy", "delete", "clamav-servers"), pfile),
                       (("task", "delete", "hello"), tfile), (("selection", "delete", "web-hosts"), tfile),
                       (("selection", "put", "troubled", "status = OK"), tfile),
                       (("group", "delete", "Workstations"), gfile)):
        rc, out, err = ctx.run(srv.ctl_argv(*argv), expect_rc=None)
        check(rc == 1 and "HTTP 409" in err, "custosctl %s exited %d: %r" % (" ".join(argv), rc, out + err))
        check(("declared in %s" % file) in out + err and "reload" in out + err,
              "custosctl %s does not say the object is declared in %s: %r" % (" ".join(argv), file, out + err))
    check(_clamav(_policy(srv, "ws-1")) == EFFECTIVE["Workstations"], "refused changes changed ws-1's policy")

    # remove clamav-workstations, the group Workstations (ws-1's), the task
    # nightly and the selection troubled
    v = _policy(srv, "ws-1")["version"]
    text = POLICIES_CONF % {"checks": 12}
    start = text.index('  { name = "clamav-workstations"')
    text = text[:start].rstrip().rstrip(",") + "\n);\n"
    pfile.write_text(text)
    gfile.write_text(GROUPS_CONF.replace(',\n  { path = "Workstations"; }', "")
                     .replace(',\n  { name = "lab"; group = "Workstations"; subnet = "127.0.0.0/8"; tag = "lab"; }',
                              ""))
    ttext = TASKS_CONF
    start = ttext.index('  { name = "nightly"')
    end = ttext.index(");\nselections")
    ttext = ttext[:start].rstrip().rstrip(",") + "\n" + ttext[end:]
    ttext = ttext.replace(',\n  { name = "troubled"; filter = "status != OK"; }', "")
    check("nightly" not in ttext and "troubled" not in ttext, "could not edit the tasks file")
    tfile.write_text(ttext)
    out = srv.ctl("reload")
    check("applied" in out, "custosctl reload printed %r" % out)

    groups = sorted((g["path"], g["source"]) for g in srv.ctl_json("groups"))
    check(groups == [("Servers", "config"), ("Servers/Api", "api"), ("Servers/Web", "config")],
          "groups after the reload: %r" % groups)
    pols = sorted((p["name"], p["source"]) for p in srv.ctl_json("policies"))
    check(pols == [("api-pol", "api"), ("clamav-servers", "config"), ("clamav-web", "config")],
          "policies after the reload: %r" % pols)
    tasks = sorted((t["name"], t["source"]) for t in srv.ctl_json("tasks"))
    check(tasks == [("api-task", "api"), ("boot", "config"), ("hello", "config"), ("long", "config"),
                    ("slow", "config")], "tasks after the reload: %r" % tasks)
    sels = sorted((s["name"], s["source"]) for s in srv.ctl_json("selections"))
    check(sels == [("api-sel", "api"), ("web-hosts", "config")], "selections after the reload: %r" % sels)
    check([r["name"] for r in srv.ctl_json("rules")] == ["web", "srv", "far"], "rules after the reload")
    # in the database too
    check(srv.sql("SELECT name FROM policies ORDER BY name") == [["api-pol"], ["clamav-servers"], ["clamav-web"]],
          "policies table after the reload")
    check(srv.sql("SELECT COUNT(*) FROM tasks WHERE name = 'nightly'") == [["0"]], "nightly still in the table")
    check(srv.sql("SELECT COUNT(*) FROM `groups` WHERE name = 'Workstations'") == [["0"]],
          "Workstations still in the groups table")
    # ws-1's group is gone: it is Unassigned, with no policy left
    check(_groups_of(srv)["ws-1"] == "", "ws-1 is in %r after its group was removed" % _groups_of(srv)["ws-1"])
    p, _ = _applied(srv, "ws-1", v + 1)
    check(_clamav(p) == {}, "ws-1's settings after its group went: %r" % _clamav(p))
    # the api-task whose group is gone stays (it is the API's)
    check(srv.ctl_json("task", "api-task")["source"] == "api", "api-task")


# 8 -------------------------------------------------------------------------

OUTBREAK_CONF = """policies = (
  { name = "servers-outbreak"; group = "Servers"; application = "clamav"; kind = "outbreak";
    threshold = 3; window = 10;
    settings = (
      { key = "max_file_size_mb"; value = 10; locked = true; },
      { key = "onaccess_prevention"; value = true; locked = true; }
    ); }
);
"""


def test_mgmt_outbreak(ctx):
    """Three threat_found events within the window from hosts of a group
    with an outbreak policy (threshold 3, window 10) switch the group and its
    child groups to the outbreak settings; other groups keep theirs."""
    files = _standard_files(tasks=False)
    files["25-outbreak.conf"] = OUTBREAK_CONF
    srv = _server(ctx, files=files)
    agents = _agents(ctx, srv, [("srv-1", {}), ("web-1", {}), ("ws-1", {"tags": "lab"})])
    _wait_groups(srv, {"srv-1": "Servers", "web-1": "Servers/Web", "ws-1": "Workstations"}, timeout=5)
    ob = {p["name"]: p for p in srv.ctl_json("policies")}["servers-outbreak"]
    check(ob["kind"] == "outbreak" and ob["threshold"] == 3 and ob["window"] == 10 and ob["outbreak_now"] is False,
          "the outbreak policy: %r" % ob)
    before = {n: _policy(srv, n) for n in agents}
    for n in ("srv-1", "web-1"):
        check(_clamav(before[n])["max_file_size_mb"] != 10, "%s has the outbreak settings already" % n)

    # two threats (one from the child group): no outbreak yet
    ids = [agents["srv-1"].event("EICAR found in /tmp/a", severity="warning", kind="threat_found"),
           agents["web-1"].event("EICAR found in /tmp/b", severity="warning", kind="threat_found")]
    wait_until(lambda: srv.sql("SELECT COUNT(*) FROM events WHERE kind = 'threat_found'") == [["2"]], 15,
               "two threat events stored")
    check(srv.log_count("virus outbreak") == 0, "an outbreak after two threats (threshold 3)")
    check(_clamav(_policy(srv, "srv-1")) == _clamav(before["srv-1"]), "srv-1's settings changed after 2 threats")

    # a threat from Workstations does not count for Servers
    agents["ws-1"].event("EICAR found in /tmp/c", severity="warning", kind="threat_found")
    wait_until(lambda: srv.sql("SELECT COUNT(*) FROM events WHERE kind = 'threat_found'") == [["3"]], 15,
               "the third threat event stored")
    check(srv.log_count("virus outbreak") == 0, "a threat in Workstations started an outbreak in Servers")

    ids.append(agents["srv-1"].event("EICAR found in /tmp/d", severity="warning", kind="threat_found"))
    wait_until(lambda: srv.log_count("virus outbreak in group Servers") == 1, 15, "\"virus outbreak\" in the log")
    for n in ("srv-1", "web-1"):
        p, _ = _applied(srv, n, before[n]["version"] + 1)
        c = _clamav(p)
        check(c["max_file_size_mb"] == 10 and c["onaccess_prevention"] is True,
              "%s during the outbreak: %r" % (n, c))
    # at Servers the outbreak policy replaces the normal one
    check(_clamav(_policy(srv, "srv-1")) == {"max_file_size_mb": 10, "onaccess_prevention": True},
          "srv-1 during the outbreak: %r" % _clamav(_policy(srv, "srv-1")))
    ws = _policy(srv, "ws-1")
    check(ws["version"] == before["ws-1"]["version"] and _clamav(ws) == EFFECTIVE["Workstations"],
          "ws-1's policy changed with the outbreak in Servers: %r" % ws)
    ob = {p["name"]: p for p in srv.ctl_json("policies")}["servers-outbreak"]
    check(ob["outbreak_now"] is True, "outbreak_now after the outbreak: %r" % ob)


def test_mgmt_outbreak_resend(ctx):
    """A batch of threats the server could not store (nack) and the agent
    sends again counts once toward a group's outbreak policy (threshold 3):
    two threats resent twice are two, not four; a third new one starts the
    outbreak."""
    files = _standard_files(tasks=False)
    files["25-outbreak.conf"] = OUTBREAK_CONF
    srv = _server(ctx, files=files)
    agents = _agents(ctx, srv, [("srv-1", {})])
    _wait_groups(srv, {"srv-1": "Servers"}, timeout=5)
    a = agents["srv-1"]
    # both threats wait in the stopped agent's queue, so that they go in one
    # batch, which the trigger makes MariaDB refuse as a whole: nack, resend
    a.stop()
    ids = [a.event("EICAR found in /tmp/r%d" % i, severity="warning", kind="threat_found") for i in range(2)]
    srv.sql("CREATE TRIGGER block_events BEFORE INSERT ON events FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are blocked'")
    a.start()
    nack = "server could not store events yet"
    wait_until(lambda: a.log_count(nack) >= 2, 30, "the agent to send its threats twice and be told to retry")
    check(a.queued() == 2, "the agent has %d event(s) queued, not 2" % a.queued())
    check(srv.log_count("virus outbreak") == 0,
          "two threats sent twice started an outbreak (threshold 3): %r"
          % [l for l in srv.log_text().splitlines() if "outbreak" in l])
    srv.sql("DROP TRIGGER block_events")
    wait_until(lambda: a.queued() == 0 and all(i in db_event_ids(srv, a.uid)[2] for i in ids), 30,
               "the two threats stored once the trigger is gone")
    check(srv.log_count("virus outbreak") == 0, "an outbreak after two threats, resent (threshold 3)")
    ob = {p["name"]: p for p in srv.ctl_json("policies")}["servers-outbreak"]
    check(ob["outbreak_now"] is False, "outbreak_now after two resent threats: %r" % ob)
    a.event("EICAR found in /tmp/r2", severity="warning", kind="threat_found")
    wait_until(lambda: srv.log_count("virus outbreak in group Servers") == 1, 15,
               "the third threat to start the outbreak")
