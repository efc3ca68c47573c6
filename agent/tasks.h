/* tasks.h — the agent's task scheduler and runner.
 *
 * The server sends the tasks that apply to this host in sync_ok
 * ("tasks": {"hash", "list"}); tasks_update() replaces the list. Each task
 * is {id, name, type, params, schedule, random_delay, time_limit,
 * manual_seq, cancel_seq}. The agent schedules them itself (lib/schedule.h,
 * UTC, plus a random delay of 0..random_delay s per run), runs each as a
 * child process in its own process group with stdout+stderr read
 * non-blockingly on the event loop, and reports every state change
 * (running, succeeded, failed, cancelled) as a durable event of kind
 * "task_result" with data {task_id, name, run, state, exit_code,
 * output_tail, started, ended, message}.
 *
 *   update   runs tasks.update_command (freshclam; exit 1 "up to date" is
 *            success)
 *   scan     runs tasks.scan_command with params.paths appended; every
 *            "PATH: SIGNATURE FOUND" line becomes a "threat_found" event and
 *            counts an unresolved threat; exit 1 (threats found) is success
 *   command  runs params.argv directly (no shell, PATH is searched)
 *   posture  syncs posture with the server now
 *
 * A task runs once per new manual_seq (also the first time a task is seen
 * with manual_seq > 0); a changed cancel_seq kills its running run (SIGTERM
 * to the process group, SIGKILL 5 s later) and reports "cancelled"; a run
 * that outlives time_limit is killed the same way and reports "failed". At
 * most tasks.max_concurrent runs at once, the others wait in order. A task
 * does not overlap itself: a run that falls due while the previous one
 * still runs is skipped. at_start tasks run once per agent start. Missed
 * scheduled runs (the agent was down) run once soon after start.
 *
 * The list, its hash and per task the last seen manual_seq/cancel_seq, the
 * next run time and the run counter persist in STATE/tasks.json (written
 * atomically), so a restarted agent keeps its schedule and never reuses a
 * run number.
 *
 * Everything runs on the agent's event loop thread, except
 * agent_threats_update(), which any process may call (flock). */
#ifndef CUSTOS_AGENT_TASKS_H
#define CUSTOS_AGENT_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct agent;
struct evq;
struct event_base;
struct tasks;

#define TASK_TAIL_MAX		4096	/* bytes of output kept per run */
#define TASK_KILL_GRACE_S	5	/* SIGTERM .. SIGKILL */
#define TASK_MAX_ARGS		256
#define TASK_MAX_TASKS		1024

/* ---- the agent's side ---- */

/* Creates a->tasks from the agent's settings (tasks.*, clamav.clamd_socket)
 * and STATE/tasks.json, and arms the scheduler on a->base. a->q must be
 * open. 0 or -1 with err. */
int tasks_init(struct agent *a, char *err, size_t errlen);
/* Stops the scheduler, kills running runs (reported "failed": the agent
 * stopped) and frees a->tasks. Blocks up to TASK_KILL_GRACE_S. */
void tasks_shutdown(struct agent *a);
/* Replaces the task list (from sync_ok). list must be an array; entries
 * that are not valid tasks are reported and skipped. 0 or -1. */
int tasks_update(struct agent *a, json_t *list, const char *hash);
/* Hash of the list in effect ("" before the first one). */
const char *tasks_hash(const struct agent *a);

/* Adds delta to STATE/threats_unresolved, or sets it to 0 with reset.
 * Safe against concurrent processes (flock on STATE/threats.lock). */
int agent_threats_update(const char *state_dir, int delta, bool reset);

/* ---- the engine, usable without a whole agent (tests) ---- */

struct tasks_config {
	struct event_base *base;
	struct evq *q;              /* results and threats go here */
	const char *state_dir;      /* tasks.json, threats_unresolved */
	const char *update_command; /* words split on spaces */
	const char *scan_command;
	const char *scan_fallback_command; /* "" = none */
	const char *clamd_socket;   /* fallback used when this does not PING */
	int max_concurrent;
	void (*posture_now)(void *arg);
	void *posture_arg;
	void (*updated)(void *arg);	/* an update task succeeded (may be NULL) */
};

/* Loads STATE/tasks.json (a missing file is an empty list). The strings of
 * cfg are copied. NULL with err. */
struct tasks *tasks_new(const struct tasks_config *cfg, char *err, size_t errlen);
/* See tasks_shutdown(). */
void tasks_free(struct tasks *ts);
int tasks_set_list(struct tasks *ts, json_t *list, const char *hash);
const char *tasks_get_hash(const struct tasks *ts);
/* Runs that are running or waiting for a slot. */
size_t tasks_active(const struct tasks *ts);
/* Next scheduled run of a task (unix s), -1 when none or unknown. */
int64_t tasks_next_run(const struct tasks *ts, int64_t task_id);
/* Starts a task now as if it fell due (tests, local use). 0 or -1. */
int tasks_run_now(struct tasks *ts, int64_t task_id);

/* ---- pieces exposed for unit tests and policy_apply.c ---- */

/* The last TASK_TAIL_MAX bytes of a stream. */
struct task_tail {
	char buf[TASK_TAIL_MAX];
	size_t len;     /* bytes held (<= TASK_TAIL_MAX) */
	size_t head;    /* index of the oldest byte once full */
	uint64_t total; /* bytes ever appended */
};
void task_tail_append(struct task_tail *t, const char *data, size_t len);
/* Copies the held bytes, oldest first, into out (TASK_TAIL_MAX + 1 bytes,
 * NUL-terminated); returns the length. */
size_t task_tail_copy(const struct task_tail *t, char *out);

/* Parses one line of clamdscan/clamscan output, "PATH: SIGNATURE FOUND"
 * (no newline). 1 with path and signature filled, 0 when the line is not
 * such a line (or does not fit the buffers). */
int task_parse_found(const char *line, size_t len, char *path, size_t pathlen,
    char *sig, size_t siglen);

/* A growable NULL-terminated argument vector. */
struct task_argv {
	char **v;   /* v[n] == NULL */
	size_t n, cap;
};
/* Appends the words of text split on spaces and tabs (no quoting: an
 * argument cannot contain a space). 0 or -1 (no memory, too many). */
int task_argv_split(struct task_argv *av, const char *text);
int task_argv_push(struct task_argv *av, const char *s);
void task_argv_free(struct task_argv *av);

/* Runs argv (no shell) to completion, blocking, output discarded; kills its
 * process group after timeout_s. 0 with *exit_code (128+signal when killed
 * by one) or -1 with err (cannot run, timed out). */
int task_run_wait(char *const argv[], int timeout_s, int *exit_code, char *err, size_t errlen);

#endif
