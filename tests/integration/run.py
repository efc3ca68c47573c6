"""Runs the integration tests (all, or those named on the command line) and
prints one PASS/FAIL/SKIP line per test and the closing line
"integration: N passed, M failed, K skipped". Appends "N M K" to
$CUSTOS_RESULTS when set, and one line "skipped integration/NAME: WHY" per
skipped test (a test skips by raising harness.TestSkipped(WHY)). Exits 1 on
any failure."""

import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import tests  # noqa: E402
import test_snmp  # noqa: E402
import test_mgmt  # noqa: E402
import test_nac_socket  # noqa: E402
import test_radius  # noqa: E402
import test_fields  # noqa: E402
import test_limits  # noqa: E402
import test_snapshot  # noqa: E402

# every module whose test_* functions are integration tests
MODULES = (tests, test_snmp, test_mgmt, test_nac_socket, test_radius, test_fields, test_limits,
           test_snapshot)

TEST_TIME_LIMIT = 150  # seconds; a hung test fails instead of stalling the run
KEEP = os.environ.get("CUSTOS_KEEP") == "1"  # keep every test's directory


class Run:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="custos-it-"))
        self.mariadb = harness.MariaDB(self.tmp / "mariadb")


def all_tests():
    return [(n[len("test_"):], f) for mod in MODULES for n, f in vars(mod).items()
            if n.startswith("test_") and callable(f)]


def prerequisites():
    """What the whole run needs; a list of messages, empty when all is there."""
    missing = []
    for name in ("custosd", "custos-agent", "custosctl", "tests/tools/wake_tool"):
        p = harness.binary(name)
        if not os.access(p, os.X_OK):
            missing.append("%s is missing (build it: make all units, or make asan for build/asan)" % p)
    for tool in ("mariadb", "mariadbd", "mariadb-install-db", "mariadb-admin", "openssl"):
        if shutil.which(tool) is None and not os.access("/usr/sbin/" + tool, os.X_OK):
            missing.append("%s not found (apt-get install mariadb-server mariadb-client openssl)" % tool)
    return missing


def on_alarm(signum, frame):
    raise harness.TestFailure("test exceeded its time limit of %d s" % TEST_TIME_LIMIT)


def run_one(run, name, fn):
    ctx = harness.Ctx(run, name)
    reason = None
    skipped = None
    t0 = time.monotonic()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIME_LIMIT)
    try:
        run.mariadb.ensure_running()
        fn(ctx)
    except harness.TestSkipped as e:
        skipped = str(e) or "(no reason given)"
    except harness.TestFailure as e:
        reason = str(e)
    except Exception as e:  # a broken test is a failed test
        reason = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=6))
    except BaseException:  # interrupted: leave no process behind
        signal.alarm(0)
        ctx.teardown()
        raise
    finally:
        signal.alarm(0)
    try:
        problems = ctx.teardown()
    except Exception as e:
        problems = ["teardown failed: %s: %s" % (type(e).__name__, e)]
    if problems:
        reason = "; ".join(([reason] if reason else []) + problems)
    took = time.monotonic() - t0
    if reason is None and skipped is not None:
        print("SKIP %s (%.1fs): %s" % (name, took, skipped), flush=True)
        if not KEEP:
            harness.remove_tree(ctx.dir)
        return skipped
    if reason is None:
        print("PASS %s (%.1fs)" % (name, took), flush=True)
        if not KEEP:
            harness.remove_tree(ctx.dir)
        return True
    print("FAIL %s (%.1fs): %s" % (name, took, reason), flush=True)
    print("  kept: %s" % ctx.dir, flush=True)
    for log in ctx.logs:
        print("  --- last %d lines of %s" % (harness.LOG_TAIL, log), flush=True)
        for line in harness.tail(log):
            print("  | " + line, flush=True)
    return False


def on_term(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv):
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    available = all_tests()
    names = [a[len("test_"):] if a.startswith("test_") else a for a in argv]
    known = dict(available)
    unknown = [n for n in names if n not in known]
    if unknown:
        print("unknown test(s): %s; known: %s" % (", ".join(unknown), ", ".join(n for n, _ in available)))
        finish(0, len(unknown))
        return 1
    selected = [(n, known[n]) for n in names] if names else available
    print("integration tests against %s" % harness.build_dir(), flush=True)
    missing = prerequisites()
    if missing:
        for n, _ in selected:
            print("FAIL %s: missing prerequisite: %s" % (n, "; ".join(missing)), flush=True)
        finish(0, len(selected))
        return 1
    run = Run()
    passed = failed = 0
    skips = []  # (name, why)
    t0 = time.monotonic()
    try:
        try:
            run.mariadb.start()
        except harness.TestFailure as e:
            for n, _ in selected:
                print("FAIL %s: %s" % (n, e), flush=True)
            failed = len(selected)  # keeps the MariaDB logs the message names
            finish(0, failed)
            return 1
        for n, fn in selected:
            try:
                ok = run_one(run, n, fn)
            except KeyboardInterrupt as e:
                print("FAIL %s: interrupted (%s); the remaining tests did not run" % (n, e), flush=True)
                failed += 1
                break
            if isinstance(ok, str):
                skips.append((n, ok))
            elif ok:
                passed += 1
            else:
                failed += 1
    finally:
        try:
            run.mariadb.stop()
        except harness.TestFailure as e:
            print("warning: %s" % e, flush=True)
        if failed == 0 and not KEEP:
            harness.remove_tree(run.tmp)
        elif failed == 0:
            print("files kept under %s" % run.tmp, flush=True)
        else:
            print("failed tests' files are kept under %s" % run.tmp, flush=True)
    print("(%.0f s)" % (time.monotonic() - t0))
    finish(passed, failed, skips)
    return 0 if failed == 0 and passed > 0 else 1


def finish(passed, failed, skips=()):
    for n, why in skips:
        print("SKIPPED integration/%s: %s" % (n, why), flush=True)
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, len(skips)), flush=True)
    results = os.environ.get("CUSTOS_RESULTS")
    if results:
        with open(results, "a") as f:
            f.write("%d %d %d\n" % (passed, failed, len(skips)))
            for n, why in skips:
                f.write("skipped integration/%s: %s\n" % (n, why.replace("\n", " ")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
