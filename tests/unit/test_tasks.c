/* test_tasks.c — the agent's task runner: output parsing, the output tail,
 * argument splitting, persistence, and real child processes (sh -c) run on
 * a libevent loop with their results landing in a temporary event queue. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <event2/event.h>

#include "agent/evqueue.h"
#include "agent/tasks.h"
#include "log.h"
#include "util.h"

struct fx {
	char dir[PATH_MAX];
	char spool[PATH_MAX];
	struct event_base *base;
	struct evq *q;
	struct tasks *ts;
	struct tasks_config cfg;
	char scan_command[PATH_MAX + 64];
	int postures;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
count_posture(void *arg)
{
	((struct fx *)arg)->postures++;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	if (f == NULL)
		return -1;
	str_copy(f->dir, "/tmp/custos-tasks-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	str_fmt(f->spool, sizeof(f->spool), "%s/spool", f->dir);
	f->base = event_base_new();
	f->q = evq_open(f->spool, 10000, err, sizeof(err));
	if (f->base == NULL || f->q == NULL)
		return -1;
	str_fmt(f->scan_command, sizeof(f->scan_command), "/bin/sh %s/scanner.sh", f->dir);
	f->cfg = (struct tasks_config){
		.base = f->base, .q = f->q, .state_dir = f->dir,
		.update_command = "/bin/false",
		.scan_command = f->scan_command,
		.scan_fallback_command = "",
		.clamd_socket = "",
		.max_concurrent = 2,
		.posture_now = count_posture, .posture_arg = f,
	};
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	tasks_free(f->ts);
	evq_close(f->q);
	event_base_free(f->base);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct tasks *
open_tasks(struct fx *f)
{
	char err[256];
	f->ts = tasks_new(&f->cfg, err, sizeof(err));
	if (f->ts == NULL)
		fail_msg("tasks_new: %s", err);
	return f->ts;
}

static void
set_list(struct fx *f, const char *json, const char *hash)
{
	json_error_t jerr;
	json_t *list = json_loads(json, 0, &jerr);
	if (list == NULL)
		fail_msg("bad test JSON: %s", jerr.text);
	assert_int_equal(tasks_set_list(f->ts, list, hash), 0);
	json_decref(list);
}

/* Runs the loop until no run is active (or the deadline). */
static void
run_until_idle(struct fx *f, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	while (tasks_active(f->ts) > 0 && mono_ms() < deadline) {
		struct timeval tv = { 0, 20 * 1000 };
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	assert_int_equal(tasks_active(f->ts), 0);
}

static void
run_for(struct fx *f, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

/* Events of one kind now queued, oldest first (new reference). */
static json_t *
events_of(struct fx *f, const char *kind)
{
	json_t *all = evq_peek(f->q, 10000), *out = json_array(), *ev;
	size_t i;
	json_array_foreach(all, i, ev)
		if (strcmp(json_string_value(json_object_get(ev, "kind")), kind) == 0)
			json_array_append(out, ev);
	json_decref(all);
	return out;
}

static const char *
data_str(json_t *ev, const char *key)
{
	return json_string_value(json_object_get(json_object_get(ev, "data"), key));
}

static json_int_t
data_int(json_t *ev, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(ev, "data"), key));
}

static void
no_children_left(void)
{
	int status;
	errno = 0;
	assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* ---- pure pieces ---- */

static void
test_found_lines(void **state)
{
	char path[64], sig[32];
	static const char *const not_found[] = {
		"/tmp/x: OK",
		"/tmp/x: Access denied. ERROR",
		" FOUND",
		"FOUND",
		": Eicar FOUND",
		"/tmp/x:  FOUND",
		"/tmp/x: two words FOUND",
		"/tmp/x Eicar FOUND",
		"/tmp/x: Eicar FOUND trailing",
		"----------- SCAN SUMMARY -----------",
		"",
	};
	(void)state;

#define FOUND(l) task_parse_found(l, strlen(l), path, sizeof(path), sig, sizeof(sig))
	assert_int_equal(FOUND("/tmp/eicar.com: Win.Test.EICAR_HDB-1 FOUND"), 1);
	assert_string_equal(path, "/tmp/eicar.com");
	assert_string_equal(sig, "Win.Test.EICAR_HDB-1");
	/* a path with ": " in it: the last separator splits */
	assert_int_equal(FOUND("/srv/a: b/c d.txt: Eicar-Signature FOUND"), 1);
	assert_string_equal(path, "/srv/a: b/c d.txt");
	assert_string_equal(sig, "Eicar-Signature");
	for (size_t i = 0; i < ARRAY_LEN(not_found); i++)
		if (FOUND(not_found[i]) != 0)
			fail_msg("\"%s\" parsed as a FOUND line", not_found[i]);
#undef FOUND
	/* does not fit the caller's buffers */
	char longp[200];
	memset(longp, 'a', sizeof(longp));
	memcpy(longp + 150, ": Sig FOUND", 12);
	assert_int_equal(task_parse_found(longp, strlen(longp), path, sizeof(path), sig, sizeof(sig)), 0);
	assert_int_equal(task_parse_found("/x: Sig FOUND", 13, path, sizeof(path), sig, 3), 0);
	/* an embedded NUL is refused */
	assert_int_equal(task_parse_found("/x\0y: Sig FOUND", 15, path, sizeof(path), sig, sizeof(sig)), 0);
}

static void
test_tail_ring(void **state)
{
	static struct task_tail t;
	static char out[TASK_TAIL_MAX + 1], all[3 * TASK_TAIL_MAX];
	(void)state;

	memset(&t, 0, sizeof(t));
	assert_int_equal(task_tail_copy(&t, out), 0);
	assert_string_equal(out, "");
	task_tail_append(&t, "abc", 3);
	assert_int_equal(task_tail_copy(&t, out), 3);
	assert_string_equal(out, "abc");

	/* many small odd-sized chunks wrap around the ring */
	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (char)('a' + (i * 7) % 26);
	for (size_t i = 0; i < sizeof(all); i += 7)
		task_tail_append(&t, all + i, sizeof(all) - i < 7 ? sizeof(all) - i : 7);
	assert_int_equal(t.total, sizeof(all));
	assert_int_equal(task_tail_copy(&t, out), TASK_TAIL_MAX);
	assert_memory_equal(out, all + sizeof(all) - TASK_TAIL_MAX, TASK_TAIL_MAX);

	/* one chunk larger than the ring, then a small one */
	memset(&t, 0, sizeof(t));
	task_tail_append(&t, "xyz", 3);
	task_tail_append(&t, all, sizeof(all));
	task_tail_append(&t, "END", 3);
	assert_int_equal(task_tail_copy(&t, out), TASK_TAIL_MAX);
	assert_memory_equal(out, all + sizeof(all) - TASK_TAIL_MAX + 3, TASK_TAIL_MAX - 3);
	assert_memory_equal(out + TASK_TAIL_MAX - 3, "END", 3);

	/* exactly full */
	memset(&t, 0, sizeof(t));
	task_tail_append(&t, all, TASK_TAIL_MAX);
	assert_int_equal(task_tail_copy(&t, out), TASK_TAIL_MAX);
	assert_memory_equal(out, all, TASK_TAIL_MAX);
}

static void
test_argv_split(void **state)
{
	struct task_argv av = { 0 };
	static char big[8192];
	(void)state;

	assert_int_equal(task_argv_split(&av, "/usr/bin/clamdscan  --fdpass\t--no-summary --infected "), 0);
	assert_int_equal(av.n, 4);
	assert_string_equal(av.v[0], "/usr/bin/clamdscan");
	assert_string_equal(av.v[1], "--fdpass");
	assert_string_equal(av.v[3], "--infected");
	assert_null(av.v[4]);
	assert_int_equal(task_argv_push(&av, "/srv/a b"), 0);
	assert_int_equal(av.n, 5);
	assert_string_equal(av.v[4], "/srv/a b");
	assert_null(av.v[5]);
	task_argv_free(&av);
	assert_int_equal(av.n, 0);

	assert_int_equal(task_argv_split(&av, ""), 0);
	assert_int_equal(task_argv_split(&av, " \t "), 0);
	assert_int_equal(av.n, 0);
	task_argv_free(&av);

	/* a word longer than any argument we accept */
	memset(big, 'x', sizeof(big) - 1);
	assert_int_equal(task_argv_split(&av, big), -1);
	task_argv_free(&av);
	/* too many words */
	char many[TASK_MAX_ARGS * 2 + 8];
	for (size_t i = 0; i < sizeof(many) - 1; i++)
		many[i] = i % 2 ? ' ' : 'a';
	many[sizeof(many) - 1] = '\0';
	assert_int_equal(task_argv_split(&av, many), -1);
	assert_true(av.n <= TASK_MAX_ARGS);
	task_argv_free(&av);
}

static void
test_threat_counter(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];
	str_fmt(path, sizeof(path), "%s/threats_unresolved", f->dir);

	assert_int_equal(agent_threats_update(f->dir, 2, false), 0);
	assert_int_equal(agent_threats_update(f->dir, 1, false), 0);
	char *t = file_read(path, 64, NULL);
	assert_non_null(t);
	assert_string_equal(t, "3\n");
	free(t);
	assert_int_equal(agent_threats_update(f->dir, -10, false), 0);
	t = file_read(path, 64, NULL);
	assert_string_equal(t, "0\n");
	free(t);
	assert_int_equal(agent_threats_update(f->dir, 5, false), 0);
	assert_int_equal(agent_threats_update(f->dir, 0, true), 0);
	t = file_read(path, 64, NULL);
	assert_string_equal(t, "0\n");
	free(t);
	assert_int_equal(agent_threats_update("/nonexistent/dir", 1, false), -1);
}

static void
test_run_wait(void **state)
{
	char *const ok[] = { "/bin/sh", "-c", "echo noise; exit 4", NULL };
	char *const slow[] = { "/bin/sleep", "5", NULL };
	char *const missing[] = { "/nonexistent/prog", NULL };
	char err[256];
	int code = -1;
	(void)state;

	assert_int_equal(task_run_wait(ok, 5, &code, err, sizeof(err)), 0);
	assert_int_equal(code, 4);
	int64_t t0 = mono_ms();
	assert_int_equal(task_run_wait(slow, 1, &code, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "did not finish within 1 s"));
	assert_true(mono_ms() - t0 < 3000);
	assert_int_equal(task_run_wait(missing, 5, &code, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	no_children_left();
}

/* ---- the engine ---- */

static void
test_command_success(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	set_list(f, "[{\"id\": 7, \"name\": \"hello\", \"type\": \"command\", \"schedule\": \"manual\","
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"echo hello; echo oops >&2; exit 0\"]},"
	    "\"manual_seq\": 1, \"cancel_seq\": 0}]", "h1");
	assert_string_equal(tasks_get_hash(f->ts), "h1");
	run_until_idle(f, 5000);

	json_t *ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 2);
	json_t *r0 = json_array_get(ev, 0), *r1 = json_array_get(ev, 1);
	assert_string_equal(data_str(r0, "state"), "running");
	assert_true(json_is_null(json_object_get(json_object_get(r0, "data"), "exit_code")));
	assert_true(json_is_null(json_object_get(json_object_get(r0, "data"), "ended")));
	assert_string_equal(data_str(r1, "state"), "succeeded");
	assert_string_equal(json_string_value(json_object_get(r1, "severity")), "info");
	assert_int_equal(data_int(r1, "task_id"), 7);
	assert_int_equal(data_int(r1, "run"), 1);
	assert_int_equal(data_int(r1, "exit_code"), 0);
	assert_string_equal(data_str(r1, "name"), "hello");
	assert_non_null(strstr(data_str(r1, "output_tail"), "hello\n"));
	assert_non_null(strstr(data_str(r1, "output_tail"), "oops\n"));
	assert_true(data_int(r1, "ended") >= data_int(r1, "started"));
	json_decref(ev);

	/* the same list again: manual_seq unchanged, nothing runs */
	set_list(f, "[{\"id\": 7, \"name\": \"hello\", \"type\": \"command\", \"schedule\": \"manual\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}, \"manual_seq\": 1, \"cancel_seq\": 0}]", "h2");
	assert_int_equal(tasks_active(f->ts), 0);
	ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 2);
	json_decref(ev);
	no_children_left();
}

static void
test_command_failures(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	set_list(f, "[{\"id\": 1, \"name\": \"three\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"exit 3\"]}, \"manual_seq\": 1},"
	    "{\"id\": 2, \"name\": \"missing\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/nonexistent/prog\"]}, \"manual_seq\": 1},"
	    "{\"id\": 3, \"name\": \"noargv\", \"type\": \"command\", \"params\": {}, \"manual_seq\": 1},"
	    "{\"id\": 4, \"name\": \"server\", \"type\": \"server_purge_events\", \"manual_seq\": 1},"
	    "{\"id\": 5, \"name\": \"badsched\", \"type\": \"command\", \"schedule\": \"sometimes\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}, \"manual_seq\": 1},"
	    "{\"name\": \"no id\", \"type\": \"command\", \"manual_seq\": 1}]", "h");
	run_until_idle(f, 5000);

	json_t *ev = events_of(f, "task_result"), *e;
	size_t i;
	int seen = 0;
	json_array_foreach(ev, i, e) {
		const char *st = data_str(e, "state"), *msg = data_str(e, "message");
		switch (data_int(e, "task_id")) {
		case 1:
			if (strcmp(st, "failed") == 0) {
				assert_int_equal(data_int(e, "exit_code"), 3);
				assert_string_equal(msg, "exit code 3");
				assert_string_equal(json_string_value(json_object_get(e, "severity")), "error");
				seen |= 1;
			}
			break;
		case 2:
			assert_string_equal(st, "failed");
			assert_non_null(strstr(msg, "cannot run /nonexistent/prog"));
			seen |= 2;
			break;
		case 3:
			assert_string_equal(st, "failed");
			assert_non_null(strstr(msg, "params.argv"));
			seen |= 4;
			break;
		case 4:
			assert_string_equal(st, "failed");
			assert_non_null(strstr(msg, "server_purge_events"));
			seen |= 8;
			break;
		case 5:
			assert_string_equal(st, "failed");
			assert_non_null(strstr(msg, "sometimes"));
			seen |= 16;
			break;
		default:
			fail_msg("unexpected task id %lld", (long long)data_int(e, "task_id"));
		}
	}
	assert_int_equal(seen, 31);
	json_decref(ev);
	no_children_left();
}

static void
test_time_limit(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	int64_t t0 = mono_ms();
	set_list(f, "[{\"id\": 9, \"name\": \"slow\", \"type\": \"command\", \"time_limit\": 1,"
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"echo started; sleep 30\"]},"
	    "\"manual_seq\": 1}]", "h");
	run_until_idle(f, 5000);
	assert_true(mono_ms() - t0 < 4000);	/* SIGTERM was enough */

	json_t *ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 2);
	json_t *r = json_array_get(ev, 1);
	assert_string_equal(data_str(r, "state"), "failed");
	assert_string_equal(data_str(r, "message"), "time limit of 1 s exceeded");
	assert_int_equal(data_int(r, "exit_code"), 128 + 15);
	assert_non_null(strstr(data_str(r, "output_tail"), "started"));
	json_decref(ev);
	no_children_left();
}

static void
test_time_limit_sigkill(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	int64_t t0 = mono_ms();
	/* ignores SIGTERM (and so does its sleep): only SIGKILL ends it */
	set_list(f, "[{\"id\": 9, \"name\": \"stubborn\", \"type\": \"command\", \"time_limit\": 1,"
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"trap '' TERM; sleep 30\"]},"
	    "\"manual_seq\": 1}]", "h");
	run_until_idle(f, 10000);
	int64_t took = mono_ms() - t0;
	assert_true(took >= (1 + TASK_KILL_GRACE_S) * 1000 - 200);
	assert_true(took < (1 + TASK_KILL_GRACE_S) * 1000 + 3000);

	json_t *ev = events_of(f, "task_result");
	json_t *r = json_array_get(ev, 1);
	assert_string_equal(data_str(r, "state"), "failed");
	assert_int_equal(data_int(r, "exit_code"), 128 + 9);
	json_decref(ev);
	no_children_left();
}

static void
test_cancel(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	set_list(f, "[{\"id\": 4, \"name\": \"long\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"sleep 30 & sleep 30; wait\"]},"
	    "\"manual_seq\": 1, \"cancel_seq\": 0}]", "h1");
	run_for(f, 200);
	assert_int_equal(tasks_active(f->ts), 1);
	int64_t t0 = mono_ms();
	set_list(f, "[{\"id\": 4, \"name\": \"long\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"sleep 30 & sleep 30; wait\"]},"
	    "\"manual_seq\": 1, \"cancel_seq\": 1}]", "h2");
	run_until_idle(f, 8000);
	assert_true(mono_ms() - t0 < 3000);

	json_t *ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 2);
	assert_string_equal(data_str(json_array_get(ev, 0), "state"), "running");
	assert_string_equal(data_str(json_array_get(ev, 1), "state"), "cancelled");
	assert_int_equal(data_int(json_array_get(ev, 1), "run"), 1);
	json_decref(ev);
	no_children_left();

	/* a new manual start runs again with the next run number */
	set_list(f, "[{\"id\": 4, \"name\": \"long\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}, \"manual_seq\": 2, \"cancel_seq\": 1}]", "h3");
	run_until_idle(f, 5000);
	ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 4);
	assert_string_equal(data_str(json_array_get(ev, 3), "state"), "succeeded");
	assert_int_equal(data_int(json_array_get(ev, 3), "run"), 2);
	json_decref(ev);
}

static void
test_first_sight(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	/* started and cancelled before this agent saw it: nothing runs */
	set_list(f, "[{\"id\": 1, \"name\": \"x\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}, \"manual_seq\": 3, \"cancel_seq\": 1},"
	    "{\"id\": 2, \"name\": \"y\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}, \"manual_seq\": 0, \"cancel_seq\": 0}]", "h");
	run_for(f, 100);
	assert_int_equal(tasks_active(f->ts), 0);
	json_t *ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 0);
	json_decref(ev);
}

static void
test_max_concurrent(void **state)
{
	struct fx *f = *state;
	f->cfg.max_concurrent = 1;
	open_tasks(f);
	set_list(f, "[{\"id\": 1, \"name\": \"a\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"sleep 0.3\"]}, \"manual_seq\": 1},"
	    "{\"id\": 2, \"name\": \"b\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/sh\", \"-c\", \"exit 0\"]}, \"manual_seq\": 1}]", "h");
	assert_int_equal(tasks_active(f->ts), 2);	/* one runs, one waits */
	run_until_idle(f, 5000);

	json_t *ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 4);
	static const struct { int id; const char *state; } want[] = {
		{ 1, "running" }, { 1, "succeeded" }, { 2, "running" }, { 2, "succeeded" },
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		assert_int_equal(data_int(json_array_get(ev, i), "task_id"), want[i].id);
		assert_string_equal(data_str(json_array_get(ev, i), "state"), want[i].state);
	}
	json_decref(ev);
}

static void
write_scanner(struct fx *f, const char *body)
{
	char path[PATH_MAX];
	str_fmt(path, sizeof(path), "%s/scanner.sh", f->dir);
	assert_int_equal(file_write_atomic(path, body, strlen(body), 0700), 0);
}

static void
test_scan_threats(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];
	/* prints what clamdscan --infected prints, exits 1 = threats found */
	write_scanner(f, "for p in \"$@\"; do echo \"$p: Eicar-Test-Signature FOUND\"; done\n"
	    "echo '/srv/clean: OK'\nprintf '/srv/last: Win.Test.EICAR_HDB-1 FOUND'\nexit 1\n");
	open_tasks(f);
	set_list(f, "[{\"id\": 11, \"name\": \"scan-web\", \"type\": \"scan\","
	    "\"params\": {\"paths\": [\"/srv/a b/x.com\", \"/srv/y: z.com\"]}, \"manual_seq\": 1}]", "h");
	run_until_idle(f, 5000);

	json_t *ev = events_of(f, "threat_found");
	assert_int_equal(json_array_size(ev), 3);
	json_t *t0 = json_array_get(ev, 0);
	assert_string_equal(json_string_value(json_object_get(t0, "severity")), "critical");
	assert_string_equal(json_string_value(json_object_get(t0, "message")),
	    "Eicar-Test-Signature in /srv/a b/x.com");
	assert_string_equal(data_str(t0, "path"), "/srv/a b/x.com");
	assert_string_equal(data_str(t0, "signature"), "Eicar-Test-Signature");
	assert_int_equal(data_int(t0, "task_id"), 11);
	assert_string_equal(data_str(json_array_get(ev, 1), "path"), "/srv/y: z.com");
	/* the last line had no newline: still parsed at the end */
	assert_string_equal(data_str(json_array_get(ev, 2), "signature"), "Win.Test.EICAR_HDB-1");
	json_decref(ev);

	ev = events_of(f, "task_result");
	json_t *r = json_array_get(ev, 1);
	assert_string_equal(data_str(r, "state"), "succeeded");
	assert_int_equal(data_int(r, "exit_code"), 1);
	assert_non_null(strstr(data_str(r, "message"), "3 threat(s) found"));
	json_decref(ev);

	str_fmt(path, sizeof(path), "%s/threats_unresolved", f->dir);
	char *t = file_read(path, 64, NULL);
	assert_non_null(t);
	assert_string_equal(t, "3\n");
	free(t);
}

static void
test_scan_refusals(void **state)
{
	struct fx *f = *state;
	write_scanner(f, "echo \"scanner: $*\"; exit 2\n");
	open_tasks(f);
	set_list(f, "[{\"id\": 1, \"name\": \"opt\", \"type\": \"scan\","
	    "\"params\": {\"paths\": [\"--remove=yes\"]}, \"manual_seq\": 1},"
	    "{\"id\": 2, \"name\": \"nopaths\", \"type\": \"scan\", \"manual_seq\": 1},"
	    "{\"id\": 3, \"name\": \"err\", \"type\": \"scan\","
	    "\"params\": {\"paths\": [\"/srv\"]}, \"manual_seq\": 1}]", "h");
	run_until_idle(f, 5000);
	json_t *ev = events_of(f, "task_result"), *e;
	size_t i;
	int seen = 0;
	json_array_foreach(ev, i, e) {
		if (strcmp(data_str(e, "state"), "running") == 0)
			continue;
		assert_string_equal(data_str(e, "state"), "failed");
		switch (data_int(e, "task_id")) {
		case 1:
			assert_non_null(strstr(data_str(e, "message"), "starts with '-'"));
			seen |= 1;
			break;
		case 2:
			assert_non_null(strstr(data_str(e, "message"), "params.paths"));
			seen |= 2;
			break;
		case 3:
			/* exit 2 of a scanner is an error, and the output shows the argv */
			assert_int_equal(data_int(e, "exit_code"), 2);
			assert_non_null(strstr(data_str(e, "output_tail"), "scanner: /srv"));
			seen |= 4;
			break;
		}
	}
	assert_int_equal(seen, 7);
	json_decref(ev);
}

static void
test_update_and_posture(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	/* update_command is /bin/false: exit 1 is freshclam's "up to date" */
	set_list(f, "[{\"id\": 1, \"name\": \"update\", \"type\": \"update\", \"manual_seq\": 1},"
	    "{\"id\": 2, \"name\": \"posture\", \"type\": \"posture\", \"manual_seq\": 1}]", "h");
	run_until_idle(f, 5000);
	assert_int_equal(f->postures, 1);
	json_t *ev = events_of(f, "task_result"), *e;
	size_t i;
	int seen = 0;
	json_array_foreach(ev, i, e) {
		if (strcmp(data_str(e, "state"), "running") == 0)
			continue;
		assert_string_equal(data_str(e, "state"), "succeeded");
		seen |= 1 << data_int(e, "task_id");
		if (data_int(e, "task_id") == 1) {
			assert_int_equal(data_int(e, "exit_code"), 1);
			assert_string_equal(data_str(e, "message"), "the databases are up to date");
		}
	}
	assert_int_equal(seen, 6);
	json_decref(ev);
}

static void
test_persistence(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];
	static const char list[] = "[{\"id\": 1, \"name\": \"hourly\", \"type\": \"command\","
	    "\"schedule\": \"every 1h\", \"random_delay\": 3000, \"params\": {\"argv\": [\"/bin/true\"]}},"
	    "{\"id\": 2, \"name\": \"manual\", \"type\": \"command\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}, \"manual_seq\": 5}]";

	open_tasks(f);
	int64_t now = now_s();
	set_list(f, list, "hash-1");
	run_until_idle(f, 5000);
	int64_t next = tasks_next_run(f->ts, 1);
	assert_true(next >= now + 3600 && next <= now + 3600 + 3000 + 2);
	assert_int_equal(tasks_next_run(f->ts, 2), -1);

	str_fmt(path, sizeof(path), "%s/tasks.json", f->dir);
	json_t *saved = json_load_file(path, 0, NULL);
	assert_non_null(saved);
	assert_string_equal(json_string_value(json_object_get(saved, "hash")), "hash-1");
	assert_int_equal(json_array_size(json_object_get(saved, "list")), 2);
	json_decref(saved);

	/* a restarted agent: same hash, same next run, run numbers go on, and
	 * the manual start it already ran does not run again */
	tasks_free(f->ts);
	f->ts = NULL;
	open_tasks(f);
	assert_string_equal(tasks_get_hash(f->ts), "hash-1");
	assert_int_equal(tasks_next_run(f->ts, 1), next);
	set_list(f, list, "hash-1");
	assert_int_equal(tasks_active(f->ts), 0);
	assert_int_equal(tasks_run_now(f->ts, 2), 0);
	run_until_idle(f, 5000);
	json_t *ev = events_of(f, "task_result");
	/* hourly: scheduled (once, not again after the restart); manual: two runs */
	assert_int_equal(json_array_size(ev), 5);
	assert_string_equal(data_str(json_array_get(ev, 0), "state"), "scheduled");
	assert_int_equal(data_int(json_array_get(ev, 0), "task_id"), 1);
	assert_int_equal(data_int(json_array_get(ev, 0), "run"), 1);
	assert_int_equal(data_int(json_array_get(ev, 0), "started"), next);
	assert_int_equal(data_int(json_array_get(ev, 4), "run"), 2);
	json_decref(ev);
	assert_int_equal(tasks_run_now(f->ts, 99), -1);

	/* a changed schedule is scheduled afresh, and says so */
	set_list(f, "[{\"id\": 1, \"name\": \"hourly\", \"type\": \"command\","
	    "\"schedule\": \"every 2h\", \"params\": {\"argv\": [\"/bin/true\"]}}]", "hash-2");
	assert_true(tasks_next_run(f->ts, 1) >= now + 7200);
	assert_int_equal(tasks_next_run(f->ts, 2), -1);	/* gone */
	ev = events_of(f, "task_result");
	assert_int_equal(json_array_size(ev), 6);
	assert_string_equal(data_str(json_array_get(ev, 5), "state"), "scheduled");
	assert_int_equal(data_int(json_array_get(ev, 5), "started"), tasks_next_run(f->ts, 1));
	json_decref(ev);

	/* a damaged file: the agent starts with no tasks */
	tasks_free(f->ts);
	f->ts = NULL;
	assert_int_equal(file_write_atomic(path, "{nope", 5, 0600), 0);
	open_tasks(f);
	assert_string_equal(tasks_get_hash(f->ts), "");
	assert_int_equal(tasks_next_run(f->ts, 1), -1);
}

static void
test_at_start(void **state)
{
	struct fx *f = *state;
	static const char list[] = "[{\"id\": 3, \"name\": \"boot\", \"type\": \"command\","
	    "\"schedule\": \"at_start\", \"params\": {\"argv\": [\"/bin/true\"]}}]";

	for (int boot = 1; boot <= 2; boot++) {
		open_tasks(f);
		if (boot == 1)
			set_list(f, list, "h");
		int64_t deadline = mono_ms() + 3000;
		json_t *ev = NULL;
		while (mono_ms() < deadline) {
			run_for(f, 50);
			json_decref(ev);
			ev = events_of(f, "task_result");
			if (json_array_size(ev) == (size_t)boot * 2)
				break;
		}
		assert_int_equal(json_array_size(ev), (size_t)boot * 2);
		assert_string_equal(data_str(json_array_get(ev, boot * 2 - 1), "state"), "succeeded");
		assert_int_equal(data_int(json_array_get(ev, boot * 2 - 1), "run"), boot);
		json_decref(ev);
		/* once per start: not again while this "agent" runs */
		run_for(f, 300);
		ev = events_of(f, "task_result");
		assert_int_equal(json_array_size(ev), (size_t)boot * 2);
		json_decref(ev);
		tasks_free(f->ts);
		f->ts = NULL;
	}
}

static void
test_bad_lists(void **state)
{
	struct fx *f = *state;
	open_tasks(f);
	set_list(f, "[{\"id\": 1, \"name\": \"a\", \"type\": \"command\", \"schedule\": \"every 1h\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}}]", "good");
	json_t *notlist = json_object();
	assert_int_equal(tasks_set_list(f->ts, notlist, "bad"), -1);
	json_decref(notlist);
	assert_string_equal(tasks_get_hash(f->ts), "good");
	assert_true(tasks_next_run(f->ts, 1) > 0);
	/* duplicate ids: the first wins */
	set_list(f, "[{\"id\": 1, \"name\": \"a\", \"type\": \"command\", \"schedule\": \"manual\","
	    "\"params\": {\"argv\": [\"/bin/true\"]}},"
	    "{\"id\": 1, \"name\": \"b\", \"type\": \"command\", \"schedule\": \"every 1h\"}]", "dup");
	assert_int_equal(tasks_next_run(f->ts, 1), -1);
	/* a negative random delay makes the task unusable, not the list */
	set_list(f, "[{\"id\": 1, \"name\": \"a\", \"type\": \"command\", \"schedule\": \"every 1h\","
	    "\"random_delay\": -5, \"params\": {\"argv\": [\"/bin/true\"]}, \"manual_seq\": 1}]", "neg");
	run_until_idle(f, 5000);
	assert_int_equal(tasks_next_run(f->ts, 1), -1);
	json_t *ev = events_of(f, "task_result");
	/* the first list's hourly task was scheduled; the unusable one failed */
	assert_int_equal(json_array_size(ev), 2);
	assert_string_equal(data_str(json_array_get(ev, 0), "state"), "scheduled");
	assert_string_equal(data_str(json_array_get(ev, 1), "state"), "failed");
	json_decref(ev);
}

int
main(void)
{
	log_init("test_tasks", "stderr", LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_found_lines),
		cmocka_unit_test(test_tail_ring),
		cmocka_unit_test(test_argv_split),
		cmocka_unit_test_setup_teardown(test_threat_counter, setup, teardown),
		cmocka_unit_test(test_run_wait),
		cmocka_unit_test_setup_teardown(test_command_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_limit_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_sight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_threats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_and_posture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lists, setup, teardown),
	};
	return cmocka_run_group_tests_name("tasks", tests, NULL, NULL);
}
