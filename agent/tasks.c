/* tasks.c — see tasks.h.
 *
 * A child's end is noticed through a pidfd (readable when it exits) and
 * reaped with waitpid(pid): never waitpid(-1), which would steal the
 * children of the posture "command" plug-in. Where pidfd_open is missing
 * the run polls waitpid every TASK_POLL_MS instead. */
#include "tasks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "agent.h"
#include "conf.h"
#include "evqueue.h"
#include "log.h"
#include "plugins.h"
#include "schedule.h"
#include "util.h"

#define TASK_NAME_MAX		128
#define TASK_HASH_MAX		128
#define TASK_LINE_MAX		8192	/* longer output lines are not parsed */
#define TASK_ARG_MAX		4096
#define TASK_THREAT_EVENTS	500	/* threat events per run; the rest are counted */
#define TASK_TICK_MAX_MS	60000	/* re-read the wall clock at least this often */
#define TASK_STATE_MAX		((size_t)16 * 1024 * 1024)
#define TASK_POLL_MS		200
#define TASK_DRAIN_MAX		((size_t)1024 * 1024)
#define TASK_FD_MAX		65536
#define TASK_DELAY_MAX		(7 * 86400)

enum task_type { TASK_UPDATE, TASK_SCAN, TASK_COMMAND, TASK_POSTURE, TASK_INVALID };

static const char *const type_names[] = { "update", "scan", "command", "posture" };

struct run;

struct task {
	int64_t id;
	char name[TASK_NAME_MAX];
	enum task_type type;
	json_t *params;			/* object or NULL */
	char sched_text[SCHEDULE_TEXT_MAX + 1];
	struct schedule sched;
	int64_t random_delay, time_limit;
	int64_t manual_seq, cancel_seq;
	char error[256];		/* why the definition is unusable; "" when fine */

	int64_t seen_manual, seen_cancel;
	int64_t next_run;		/* unix s, -1: none */
	int64_t runs;			/* run numbers handed out */
	bool booted;			/* at_start armed during this process */
	bool queued;
	struct run *run;
};

struct run {
	struct tasks *ts;
	struct task *task;		/* NULL once the task left the list */
	int64_t task_id;
	char name[TASK_NAME_MAX];
	enum task_type type;
	int64_t number;
	int64_t time_limit;
	pid_t pid;
	int out_fd, pid_fd;
	struct event *out_ev, *exit_ev, *limit_ev, *kill_ev;
	int64_t started;
	bool cancelled, timed_out;
	struct task_tail tail;
	char line[TASK_LINE_MAX];
	size_t line_len;
	bool line_long;
	uint64_t threats, threats_uncounted;
};

struct tasks {
	struct event_base *base;
	struct evq *q;
	char state_dir[4096];
	char *update_command, *scan_command, *scan_fallback, *clamd_socket;
	size_t max_concurrent;
	void (*posture_now)(void *);
	void *posture_arg;
	void (*updated)(void *);

	char hash[TASK_HASH_MAX + 1];
	json_t *list;
	struct task **tasks;
	size_t ntasks;
	struct run **runs;		/* max_concurrent slots */
	size_t nruns;
	int64_t *queue;			/* task ids waiting for a slot, oldest first */
	size_t nqueue;
	struct event *tick_ev;
};

static void tasks_save(struct tasks *ts);
static void arm_timer(struct tasks *ts);
static void dispatch_queue(struct tasks *ts);

/* ---- small pieces ---- */

/* Copies src into dst without cutting a UTF-8 sequence in two. */
static void
utf8_copy(char *dst, const char *src, size_t dstsz)
{
	size_t len = str_copy(dst, src, dstsz);
	if (len < dstsz)
		return;
	len = dstsz - 1;
	while (len > 0 && ((unsigned char)dst[len] & 0xc0) == 0x80)
		len--;
	dst[len] = '\0';
}

void
task_tail_append(struct task_tail *t, const char *data, size_t len)
{
	t->total += len;
	if (len >= TASK_TAIL_MAX) {
		memcpy(t->buf, data + len - TASK_TAIL_MAX, TASK_TAIL_MAX);
		t->len = TASK_TAIL_MAX;
		t->head = 0;
		return;
	}
	for (size_t i = 0; i < len; ) {
		if (t->len < TASK_TAIL_MAX) {
			size_t n = TASK_TAIL_MAX - t->len < len - i ? TASK_TAIL_MAX - t->len : len - i;
			memcpy(t->buf + t->len, data + i, n);
			t->len += n;
			i += n;
			continue;
		}
		/* full: overwrite the oldest bytes */
		size_t n = TASK_TAIL_MAX - t->head < len - i ? TASK_TAIL_MAX - t->head : len - i;
		memcpy(t->buf + t->head, data + i, n);
		t->head = (t->head + n) % TASK_TAIL_MAX;
		i += n;
	}
}

size_t
task_tail_copy(const struct task_tail *t, char *out)
{
	if (t->len < TASK_TAIL_MAX) {
		memcpy(out, t->buf, t->len);
		out[t->len] = '\0';
		return t->len;
	}
	memcpy(out, t->buf + t->head, TASK_TAIL_MAX - t->head);
	memcpy(out + TASK_TAIL_MAX - t->head, t->buf, t->head);
	out[TASK_TAIL_MAX] = '\0';
	return TASK_TAIL_MAX;
}

int
task_parse_found(const char *line, size_t len, char *path, size_t pathlen, char *sig, size_t siglen)
{
	static const char suffix[] = " FOUND";
	const size_t slen = sizeof(suffix) - 1;

	if (len <= slen || memcmp(line + len - slen, suffix, slen) != 0 || memchr(line, '\0', len))
		return 0;
	size_t body = len - slen, sep = 0;
	bool found = false;
	/* the path may itself contain ": "; the signature never does */
	for (size_t i = body; i >= 2; i--) {
		if (line[i - 2] == ':' && line[i - 1] == ' ') {
			sep = i - 2;
			found = true;
			break;
		}
	}
	if (!found || sep == 0 || sep + 2 >= body)
		return 0;
	size_t siglen_in = body - (sep + 2);
	if (sep >= pathlen || siglen_in >= siglen || memchr(line + sep + 2, ' ', siglen_in))
		return 0;
	memcpy(path, line, sep);
	path[sep] = '\0';
	memcpy(sig, line + sep + 2, siglen_in);
	sig[siglen_in] = '\0';
	return 1;
}

int
task_argv_push(struct task_argv *av, const char *s)
{
	if (av->n >= TASK_MAX_ARGS)
		return -1;
	if (av->n + 2 > av->cap) {
		size_t cap = av->cap ? av->cap * 2 : 8;
		char **v = realloc(av->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		av->v = v;
		av->cap = cap;
	}
	if ((av->v[av->n] = strdup(s)) == NULL)
		return -1;
	av->v[++av->n] = NULL;
	return 0;
}

int
task_argv_split(struct task_argv *av, const char *text)
{
	char word[TASK_ARG_MAX];
	const char *p = text;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return 0;
		size_t n = strcspn(p, " \t");
		if (n >= sizeof(word))
			return -1;
		memcpy(word, p, n);
		word[n] = '\0';
		if (task_argv_push(av, word) < 0)
			return -1;
		p += n;
	}
}

void
task_argv_free(struct task_argv *av)
{
	for (size_t i = 0; i < av->n; i++)
		free(av->v[i]);
	free(av->v);
	memset(av, 0, sizeof(*av));
}

int
agent_threats_update(const char *state_dir, int delta, bool reset)
{
	char path[4200], lock[4200];
	if (str_fmt(path, sizeof(path), "%s/threats_unresolved", state_dir) < 0 ||
	    str_fmt(lock, sizeof(lock), "%s/threats.lock", state_dir) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char *t = file_read(path, 64, NULL);
	long long n = reset ? 0 : (t ? strtoll(t, NULL, 10) : 0) + delta;
	free(t);
	char buf[32];
	int len = str_fmt(buf, sizeof(buf), "%lld\n", n < 0 ? 0 : n);
	int rc = len < 0 ? -1 : file_write_atomic(path, buf, (size_t)len, 0600);
	close(fd);
	return rc;
}

/* ---- child processes ---- */

/* Child side, between fork and exec: only async-signal-safe calls. Reports
 * an errno through errpipe (close-on-exec) when it cannot exec. */
static void __attribute__((noreturn))
child_exec(char *const argv[], int out, int errpipe)
{
	sigset_t none;
	int o, null, code, errfd = errpipe;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* own process group: a kill reaches the program's children too */
	setpgid(0, 0);
	/* everything above 2 first: the agent may run with 0-2 closed */
	if ((o = fcntl(out, F_DUPFD_CLOEXEC, 10)) < 0 ||
	    (errfd = fcntl(errpipe, F_DUPFD_CLOEXEC, 10)) < 0 ||
	    (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 ||
	    (null = fcntl(null, F_DUPFD_CLOEXEC, 10)) < 0)
		goto fail;
	if (dup2(null, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0 || dup2(errfd, 3) < 0 ||
	    fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		goto fail;
	errfd = 3;
	if (close_range(4, ~0U, 0) < 0)
		for (int fd = 4; fd < TASK_FD_MAX; fd++)
			close(fd);
	if (chdir("/") < 0)
		goto fail;
	execvp(argv[0], argv);
fail:
	code = errno;
	if (write(errfd, &code, sizeof(code)) < 0)
		_exit(127);
	_exit(127);
}

/* Starts argv with stdout+stderr on a non-blocking pipe (*out_fd). */
static pid_t
spawn(char *const argv[], int *out_fd, char *err, size_t errlen)
{
	int pfd[2], efd[2], code = 0;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		str_fmt(err, errlen, "cannot run %s: pipe: %s", argv[0], strerror(errno));
		return -1;
	}
	if (pipe2(efd, O_CLOEXEC) < 0) {
		str_fmt(err, errlen, "cannot run %s: pipe: %s", argv[0], strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		str_fmt(err, errlen, "cannot run %s: fork: %s", argv[0], strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		close(efd[0]);
		close(efd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		close(efd[0]);
		child_exec(argv, pfd[1], efd[1]);
	}
	close(pfd[1]);
	close(efd[1]);
	/* also here, so kill(-pid) works before the child ran setpgid */
	setpgid(pid, pid);
	/* EOF once exec succeeded (close-on-exec), else the child's errno */
	while ((n = read(efd[0], &code, sizeof(code))) < 0 && errno == EINTR)
		;
	close(efd[0]);
	if (n == (ssize_t)sizeof(code)) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		close(pfd[0]);
		str_fmt(err, errlen, "cannot run %s: %s", argv[0], strerror(code));
		return -1;
	}
	if (fcntl(pfd[0], F_SETFL, O_NONBLOCK) < 0) {
		str_fmt(err, errlen, "cannot read the output of %s: %s", argv[0], strerror(errno));
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &code, 0) < 0 && errno == EINTR)
			;
		close(pfd[0]);
		return -1;
	}
	*out_fd = pfd[0];
	return pid;
}

static int
exit_code_of(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int
task_run_wait(char *const argv[], int timeout_s, int *exit_code, char *err, size_t errlen)
{
	int64_t deadline = mono_ms() + (int64_t)timeout_s * 1000;
	int fd, status;
	char buf[4096];
	pid_t pid;

	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0') {
		str_fmt(err, errlen, "no command to run");
		return -1;
	}
	if ((pid = spawn(argv, &fd, err, errlen)) < 0)
		return -1;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			str_fmt(err, errlen, "%s: lost its exit status: %s", argv[0], strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			if (fd >= 0)
				close(fd);
			str_fmt(err, errlen, "%s did not finish within %d s and was killed", argv[0], timeout_s);
			return -1;
		}
		/* drain the output so the program never blocks on a full pipe */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, fd >= 0 ? 1 : 0, left < 20 ? (int)left : 20) > 0) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				close(fd);
				fd = -1;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	*exit_code = exit_code_of(status);
	return 0;
}

/* ---- results ---- */

static void
report(struct tasks *ts, int64_t task_id, const char *name, int64_t run, const char *state,
    const int *exit_code, const struct task_tail *tail, int64_t started, int64_t ended,
    const char *message)
{
	char text[1024], out[TASK_TAIL_MAX + 1], err[256];
	size_t outlen = tail ? task_tail_copy(tail, out) : 0;
	const char *sev = strcmp(state, "failed") == 0 ? "error" : "info";

	if (message == NULL)
		message = "";
	/* name < 128 and message < 512 bytes: always fits */
	str_fmt(text, sizeof(text), "task \"%s\" run %lld: %s%s%s", name, (long long)run, state,
	    *message ? ": " : "", message);
	/* built member by member: text from programs need not be UTF-8 */
	json_t *data = json_object();
	if (data == NULL ||
	    json_object_set_new(data, "task_id", json_integer(task_id)) < 0 ||
	    json_object_set_new(data, "name", plugin_string(name, strlen(name))) < 0 ||
	    json_object_set_new(data, "run", json_integer(run)) < 0 ||
	    json_object_set_new(data, "state", json_string(state)) < 0 ||
	    json_object_set_new(data, "exit_code", exit_code ? json_integer(*exit_code) : json_null()) < 0 ||
	    json_object_set_new(data, "output_tail", plugin_string(out, outlen)) < 0 ||
	    json_object_set_new(data, "started", json_integer(started)) < 0 ||
	    json_object_set_new(data, "ended", ended > 0 ? json_integer(ended) : json_null()) < 0 ||
	    json_object_set_new(data, "message", plugin_string(message, strlen(message))) < 0) {
		json_decref(data);
		data = NULL;
	}
	json_t *ev = data ? evq_make_event(sev, "task_result", text, data) : NULL;
	if (ev == NULL)
		log_warnx("tasks", "%s (could not build its event)", text);
	else if (evq_enqueue(ts->q, ev, err, sizeof(err)) < 0)
		log_warnx("tasks", "%s (not queued: %s)", text, err);
	else if (strcmp(sev, "error") == 0)
		log_warnx("tasks", "%s", text);
	else
		log_info("tasks", "%s", text);
	json_decref(ev);
	json_decref(data);
}

static void
report_threat(struct run *r, const char *path, const char *sig)
{
	struct tasks *ts = r->ts;
	char text[1024], err[256], p[960];

	r->threats++;
	if (r->threats > TASK_THREAT_EVENTS) {
		r->threats_uncounted++;
		return;
	}
	utf8_copy(p, path, sizeof(p));
	str_fmt(text, sizeof(text), "%.60s in %s", sig, p);
	json_t *jpath = plugin_string(path, strlen(path)), *jsig = plugin_string(sig, strlen(sig));
	json_t *data = json_pack("{s:o, s:o, s:I}", "path", jpath, "signature", jsig, "task_id",
	    (json_int_t)r->task_id);
	json_t *ev = data ? evq_make_event("critical", "threat_found", text, data) : NULL;
	if (ev == NULL || evq_enqueue(ts->q, ev, err, sizeof(err)) < 0)
		log_warnx("tasks", "threat %s not queued: %s", text, ev ? err : "no memory");
	else
		log_warnx("tasks", "task \"%s\": threat %s", r->name, text);
	json_decref(ev);
	json_decref(data);
	if (agent_threats_update(ts->state_dir, 1, false) < 0)
		log_warn("tasks", "cannot count the threat in %s/threats_unresolved", ts->state_dir);
}

static void
handle_line(struct run *r, char *line, size_t len)
{
	char path[4096], sig[256];
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (task_parse_found(line, len, path, sizeof(path), sig, sizeof(sig)))
		report_threat(r, path, sig);
}

static void
consume(struct run *r, const char *data, size_t len)
{
	task_tail_append(&r->tail, data, len);
	if (r->type != TASK_SCAN)
		return;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			if (!r->line_long)
				handle_line(r, r->line, r->line_len);
			r->line_len = 0;
			r->line_long = false;
		} else if (r->line_len + 1 < sizeof(r->line)) {
			r->line[r->line_len++] = data[i];
		} else {
			r->line_long = true;
		}
	}
}

/* ---- runs ---- */

static void
close_output(struct run *r)
{
	if (r->out_ev) {
		event_free(r->out_ev);
		r->out_ev = NULL;
	}
	if (r->out_fd >= 0) {
		close(r->out_fd);
		r->out_fd = -1;
	}
}

/* Reads what is there; returns false at EOF or a read error. */
static bool
read_output(struct run *r, size_t max)
{
	char buf[16384];
	size_t got = 0;

	while (got < max) {
		ssize_t n = read(r->out_fd, buf, sizeof(buf));
		if (n > 0) {
			consume(r, buf, (size_t)n);
			got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
	return true;
}

static void
on_output(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	(void)fd;
	(void)what;
	/* bounded per call so one chatty child cannot starve the loop */
	if (!read_output(r, (size_t)256 * 1024))
		close_output(r);
}

static void
run_signal(struct run *r, int sig)
{
	kill(-r->pid, sig);
	kill(r->pid, sig);
}

static void
run_stop(struct run *r)
{
	struct timeval tv = { TASK_KILL_GRACE_S, 0 };
	run_signal(r, SIGTERM);
	evtimer_add(r->kill_ev, &tv);
}

static void
on_kill(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	(void)fd;
	(void)what;
	log_warnx("tasks", "task \"%s\" run %lld did not stop on SIGTERM; killing it", r->name,
	    (long long)r->number);
	run_signal(r, SIGKILL);
}

static void
on_limit(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	(void)fd;
	(void)what;
	if (r->cancelled || r->timed_out)
		return;
	r->timed_out = true;
	log_warnx("tasks", "task \"%s\" run %lld exceeded its time limit of %lld s; stopping it",
	    r->name, (long long)r->number, (long long)r->time_limit);
	run_stop(r);
}

static void
run_cancel(struct run *r)
{
	if (r->cancelled || r->timed_out)
		return;
	r->cancelled = true;
	log_info("tasks", "task \"%s\" run %lld cancelled by the server; stopping it", r->name,
	    (long long)r->number);
	run_stop(r);
}

static void
run_free(struct run *r)
{
	struct tasks *ts = r->ts;

	close_output(r);
	if (r->exit_ev)
		event_free(r->exit_ev);
	if (r->limit_ev)
		event_free(r->limit_ev);
	if (r->kill_ev)
		event_free(r->kill_ev);
	if (r->pid_fd >= 0)
		close(r->pid_fd);
	for (size_t i = 0; i < ts->nruns; i++) {
		if (ts->runs[i] == r) {
			ts->runs[i] = ts->runs[--ts->nruns];
			break;
		}
	}
	if (r->task)
		r->task->run = NULL;
	free(r);
}

/* The child is gone (status valid when have_status): report and free. */
static void
run_finish(struct run *r, int status, bool have_status, const char *why)
{
	struct tasks *ts = r->ts;
	char msg[512] = "";
	const char *state;
	int code = have_status ? exit_code_of(status) : -1;

	if (r->out_fd >= 0)
		read_output(r, TASK_DRAIN_MAX);
	if (r->line_len > 0 && !r->line_long)
		handle_line(r, r->line, r->line_len);
	r->line_len = 0;
	if (r->threats_uncounted > 0 &&
	    agent_threats_update(ts->state_dir, (int)r->threats_uncounted, false) < 0)
		log_warn("tasks", "cannot count threats in %s/threats_unresolved", ts->state_dir);

	if (why) {
		state = "failed";
		str_copy(msg, why, sizeof(msg));
	} else if (r->cancelled) {
		state = "cancelled";
	} else if (r->timed_out) {
		state = "failed";
		str_fmt(msg, sizeof(msg), "time limit of %lld s exceeded", (long long)r->time_limit);
	} else if (!have_status) {
		state = "failed";
		str_copy(msg, "its exit status was lost", sizeof(msg));
	} else if (code == 0) {
		state = "succeeded";
	} else if (code == 1 && r->type == TASK_SCAN) {
		state = "succeeded";
	} else if (code == 1 && r->type == TASK_UPDATE) {
		state = "succeeded";
		str_copy(msg, "the databases are up to date", sizeof(msg));
	} else if (WIFSIGNALED(status)) {
		state = "failed";
		str_fmt(msg, sizeof(msg), "killed by signal %d", WTERMSIG(status));
	} else {
		state = "failed";
		str_fmt(msg, sizeof(msg), "exit code %d", code);
	}
	if (r->type == TASK_SCAN && r->threats > 0 && !why) {
		size_t len = strlen(msg);
		str_fmt(msg + len, sizeof(msg) - len, "%s%llu threat(s) found%s", len ? "; " : "",
		    (unsigned long long)r->threats,
		    r->threats > TASK_THREAT_EVENTS ? " (only the first ones reported one by one)" : "");
	}
	report(ts, r->task_id, r->name, r->number, state, have_status ? &code : NULL, &r->tail,
	    r->started, now_s(), msg);
	/* new databases: reported now, not at the next posture check */
	if (r->type == TASK_UPDATE && strcmp(state, "succeeded") == 0 && ts->updated)
		ts->updated(ts->posture_arg);
	run_free(r);
	dispatch_queue(ts);
}

/* Reaps r's process when it has exited: 1 with *status, 0 while it runs,
 * -1 when its status is lost. With kill_group, what is left of its process
 * group is killed first — while the zombie still holds the pid, so the
 * signal cannot reach a process that reused it. */
static int
run_reap(struct run *r, bool kill_group, int *status)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == EINTR ? 0 : -1;
	if (si.si_pid == 0)
		return 0;
	if (kill_group)
		kill(-r->pid, SIGKILL);
	while (waitpid(r->pid, status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 1;
}

static void
on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	int status = 0;
	(void)fd;
	(void)what;
	int rc = run_reap(r, r->cancelled || r->timed_out, &status);
	if (rc == 0)
		return;
	if (rc < 0)
		log_warn("tasks", "task \"%s\": waiting for process %d", r->name, (int)r->pid);
	run_finish(r, status, rc > 0, NULL);
}

static bool
is_clamdscan(const char *cmd)
{
	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	size_t n = strcspn(cmd, " \t");
	const char *base = cmd;
	for (size_t i = 0; i < n; i++)
		if (cmd[i] == '/')
			base = cmd + i + 1;
	return (size_t)(cmd + n - base) == strlen("clamdscan") && strncmp(base, "clamdscan", 9) == 0;
}

/* Appends the strings of array arr (1..TASK_MAX_ARGS of them). */
static int
push_array(struct task_argv *av, const json_t *arr, const char *what, bool paths, char *err,
    size_t errlen)
{
	size_t i;
	json_t *v;

	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > TASK_MAX_ARGS) {
		str_fmt(err, errlen, "params.%s must be a list of 1 to %d strings", what, TASK_MAX_ARGS);
		return -1;
	}
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		if (s == NULL || *s == '\0' || strlen(s) != json_string_length(v) ||
		    strlen(s) >= TASK_ARG_MAX) {
			str_fmt(err, errlen, "params.%s[%zu] must be a non-empty string without NUL, "
			    "shorter than %d bytes", what, i, TASK_ARG_MAX);
			return -1;
		}
		/* a path must not turn into an option of the scanner */
		if (paths && s[0] == '-') {
			str_fmt(err, errlen, "params.%s[%zu] starts with '-'; give the path as "
			    "./%.200s or an absolute path", what, i, s);
			return -1;
		}
		if (task_argv_push(av, s) < 0) {
			str_fmt(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

static int
build_argv(struct tasks *ts, const struct task *t, struct task_argv *av, char *err, size_t errlen)
{
	const char *cmd, *key;

	switch (t->type) {
	case TASK_UPDATE:
		cmd = ts->update_command;
		key = "tasks.update_command";
		break;
	case TASK_SCAN:
		cmd = ts->scan_command;
		key = "tasks.scan_command";
		if (ts->scan_fallback[0] && is_clamdscan(cmd) && !clamav_ping(ts->clamd_socket, 1000)) {
			log_info("tasks", "clamd does not answer on %s; scanning with %s", ts->clamd_socket,
			    ts->scan_fallback);
			cmd = ts->scan_fallback;
			key = "tasks.scan_fallback_command";
		}
		break;
	case TASK_COMMAND:
		return push_array(av, json_object_get(t->params, "argv"), "argv", false, err, errlen);
	default:
		str_fmt(err, errlen, "this agent cannot run tasks of this type");
		return -1;
	}
	if (task_argv_split(av, cmd) < 0 || av->n == 0) {
		str_fmt(err, errlen, "%s \"%.200s\" is empty or too long; set it in the agent's "
		    "configuration", key, cmd);
		return -1;
	}
	if (t->type == TASK_SCAN)
		return push_array(av, json_object_get(t->params, "paths"), "paths", true, err, errlen);
	return 0;
}

static void
run_start(struct tasks *ts, struct task *t)
{
	struct task_argv av = { 0 };
	char err[512];
	int64_t now = now_s();
	int zero = 0;

	t->runs++;
	tasks_save(ts);
	if (t->error[0]) {
		report(ts, t->id, t->name, t->runs, "failed", NULL, NULL, now, now, t->error);
		return;
	}
	if (t->type == TASK_POSTURE) {
		if (ts->posture_now)
			ts->posture_now(ts->posture_arg);
		report(ts, t->id, t->name, t->runs, "succeeded", &zero, NULL, now, now,
		    "posture sync with the server started");
		return;
	}
	if (build_argv(ts, t, &av, err, sizeof(err)) < 0) {
		task_argv_free(&av);
		report(ts, t->id, t->name, t->runs, "failed", NULL, NULL, now, now, err);
		return;
	}
	struct run *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		task_argv_free(&av);
		report(ts, t->id, t->name, t->runs, "failed", NULL, NULL, now, now, "out of memory");
		return;
	}
	r->ts = ts;
	r->task = t;
	r->task_id = t->id;
	memcpy(r->name, t->name, sizeof(r->name));
	r->type = t->type;
	r->number = t->runs;
	r->time_limit = t->time_limit;
	r->started = now;
	r->out_fd = r->pid_fd = -1;
	r->pid = spawn(av.v, &r->out_fd, err, sizeof(err));
	task_argv_free(&av);
	if (r->pid < 0) {
		free(r);
		report(ts, t->id, t->name, t->runs, "failed", NULL, NULL, now, now, err);
		return;
	}
	r->pid_fd = pidfd_open(r->pid, 0);
	struct timeval poll_tv = { 0, TASK_POLL_MS * 1000 };
	r->out_ev = event_new(ts->base, r->out_fd, EV_READ | EV_PERSIST, on_output, r);
	r->exit_ev = r->pid_fd >= 0 ? event_new(ts->base, r->pid_fd, EV_READ | EV_PERSIST, on_exit_ev, r)
	    : event_new(ts->base, -1, EV_PERSIST, on_exit_ev, r);
	r->limit_ev = evtimer_new(ts->base, on_limit, r);
	r->kill_ev = evtimer_new(ts->base, on_kill, r);
	ts->runs[ts->nruns++] = r;
	t->run = r;
	if (!r->out_ev || !r->exit_ev || !r->limit_ev || !r->kill_ev ||
	    event_add(r->out_ev, NULL) < 0 || event_add(r->exit_ev, r->pid_fd >= 0 ? NULL : &poll_tv) < 0) {
		int status = 0;
		run_signal(r, SIGKILL);
		while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
			;
		r->started = now;
		report(ts, t->id, t->name, t->runs, "running", NULL, NULL, now, 0, NULL);
		run_finish(r, status, true, "cannot watch the process (out of memory)");
		return;
	}
	if (r->time_limit > 0) {
		struct timeval tv = { (time_t)r->time_limit, 0 };
		evtimer_add(r->limit_ev, &tv);
	}
	report(ts, t->id, t->name, t->runs, "running", NULL, NULL, now, 0, NULL);
}

/* ---- scheduling ---- */

static int64_t
rand_upto(int64_t n)
{
	uint32_t r = 0;
	if (n <= 0 || random_bytes(&r, sizeof(r)) < 0)
		return 0;
	return (int64_t)(r % ((uint64_t)n + 1));
}

/* Sets t->next_run for a schedule seen now (new, changed or at start). */
static void
schedule_fresh(struct task *t, int64_t now)
{
	t->next_run = -1;
	if (t->error[0])
		return;
	if (t->sched.kind == SCHEDULE_AT_START) {
		if (!t->booted)
			t->next_run = now + rand_upto(t->random_delay);
		t->booted = true;
		return;
	}
	int64_t n = schedule_next(&t->sched, now);
	if (n >= 0)
		t->next_run = n + rand_upto(t->random_delay);
}

static struct task *
find_task(const struct tasks *ts, int64_t id)
{
	for (size_t i = 0; i < ts->ntasks; i++)
		if (ts->tasks[i]->id == id)
			return ts->tasks[i];
	return NULL;
}

static void
queue_remove(struct tasks *ts, int64_t id)
{
	size_t j = 0;
	for (size_t i = 0; i < ts->nqueue; i++)
		if (ts->queue[i] != id)
			ts->queue[j++] = ts->queue[i];
	ts->nqueue = j;
}

static void
task_request(struct tasks *ts, struct task *t, const char *why)
{
	if (t->run || t->queued) {
		log_info("tasks", "task \"%s\" is still %s; skipping its %s run", t->name,
		    t->run ? "running" : "waiting", why);
		return;
	}
	log_debug("tasks", "task \"%s\": %s run due", t->name, why);
	bool needs_slot = !t->error[0] && t->type != TASK_POSTURE;
	if (needs_slot && (ts->nruns >= ts->max_concurrent || ts->nqueue > 0)) {
		if (ts->nqueue >= TASK_MAX_TASKS)
			return;
		ts->queue[ts->nqueue++] = t->id;
		t->queued = true;
		log_info("tasks", "task \"%s\" waits: %zu run(s) at once at most (tasks.max_concurrent)",
		    t->name, ts->max_concurrent);
		return;
	}
	run_start(ts, t);
}

static void
dispatch_queue(struct tasks *ts)
{
	while (ts->nqueue > 0 && ts->nruns < ts->max_concurrent) {
		int64_t id = ts->queue[0];
		memmove(ts->queue, ts->queue + 1, (ts->nqueue - 1) * sizeof(*ts->queue));
		ts->nqueue--;
		struct task *t = find_task(ts, id);
		if (t == NULL || !t->queued)
			continue;
		t->queued = false;
		run_start(ts, t);
	}
}

static void
tick(struct tasks *ts)
{
	int64_t now = now_s();
	bool dirty = false;

	for (size_t i = 0; i < ts->ntasks; i++) {
		struct task *t = ts->tasks[i];
		if (t->next_run < 0 || t->next_run > now)
			continue;
		if (t->sched.kind == SCHEDULE_AT_START) {
			t->next_run = -1;
		} else {
			int64_t n = schedule_next(&t->sched, now);
			t->next_run = n < 0 ? -1 : n + rand_upto(t->random_delay);
		}
		dirty = true;
		task_request(ts, t, "scheduled");
	}
	if (dirty)
		tasks_save(ts);
	arm_timer(ts);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tick(arg);
}

static void
arm_timer(struct tasks *ts)
{
	int64_t next = -1, delay = TASK_TICK_MAX_MS;
	for (size_t i = 0; i < ts->ntasks; i++)
		if (ts->tasks[i]->next_run >= 0 && (next < 0 || ts->tasks[i]->next_run < next))
			next = ts->tasks[i]->next_run;
	if (next >= 0) {
		int64_t d = next * 1000 - now_ms();
		delay = d < 0 ? 0 : d < TASK_TICK_MAX_MS ? d : TASK_TICK_MAX_MS;
	}
	struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000) };
	evtimer_add(ts->tick_ev, &tv);
}

/* ---- the list ---- */

static int64_t
int_member(const json_t *o, const char *key, int64_t def, int64_t min, int64_t max, bool *bad)
{
	json_t *v = json_object_get(o, key);
	if (v == NULL || json_is_null(v))
		return def;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		*bad = true;
		return def;
	}
	return json_integer_value(v);
}

/* A task from one entry of the server's list; NULL when it has no id. */
static struct task *
task_parse(const json_t *e)
{
	json_t *id = json_object_get(e, "id");
	if (!json_is_integer(id) || json_integer_value(id) <= 0)
		return NULL;
	struct task *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->id = json_integer_value(id);
	t->next_run = -1;
	const char *name = json_string_value(json_object_get(e, "name"));
	if (name && *name)
		utf8_copy(t->name, name, sizeof(t->name));
	else
		str_fmt(t->name, sizeof(t->name), "#%lld", (long long)t->id);

	bool bad = false;
	t->random_delay = int_member(e, "random_delay", 0, 0, TASK_DELAY_MAX, &bad);
	t->time_limit = int_member(e, "time_limit", 0, 0, INT32_MAX, &bad);
	t->manual_seq = int_member(e, "manual_seq", 0, 0, INT64_MAX, &bad);
	t->cancel_seq = int_member(e, "cancel_seq", 0, 0, INT64_MAX, &bad);
	if (bad)
		str_fmt(t->error, sizeof(t->error), "random_delay (0..%d), time_limit, manual_seq and "
		    "cancel_seq must be non-negative integers", TASK_DELAY_MAX);

	const char *type = json_string_value(json_object_get(e, "type"));
	t->type = TASK_INVALID;
	for (size_t i = 0; type && i < ARRAY_LEN(type_names); i++)
		if (strcmp(type, type_names[i]) == 0)
			t->type = (enum task_type)i;
	if (t->type == TASK_INVALID && !t->error[0])
		str_fmt(t->error, sizeof(t->error), "type \"%.64s\" cannot run on an agent (update, "
		    "scan, command or posture)", type ? type : "");

	json_t *params = json_object_get(e, "params");
	if (json_is_object(params))
		t->params = json_incref(params);
	else if (params && !json_is_null(params) && !t->error[0])
		str_fmt(t->error, sizeof(t->error), "params must be an object");

	const char *sched = json_string_value(json_object_get(e, "schedule"));
	if (sched == NULL)
		sched = "manual";
	char err[256];
	if (strlen(sched) > SCHEDULE_TEXT_MAX) {
		if (!t->error[0])
			str_fmt(t->error, sizeof(t->error), "schedule is longer than %d bytes",
			    SCHEDULE_TEXT_MAX);
	} else {
		str_copy(t->sched_text, sched, sizeof(t->sched_text));
		if (schedule_parse(sched, &t->sched, err, sizeof(err)) < 0 && !t->error[0])
			str_copy(t->error, err, sizeof(t->error));
	}
	return t;
}

static void
task_free(struct task *t)
{
	if (t == NULL)
		return;
	json_decref(t->params);
	free(t);
}

static struct task *
find_in(struct task **v, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && v[i]->id == id)
			return v[i];
	return NULL;
}

static json_t *
state_for(const json_t *state, int64_t id)
{
	size_t i;
	json_t *s;
	json_array_foreach(state, i, s)
		if (json_integer_value(json_object_get(s, "id")) == id)
			return s;
	return NULL;
}

/* Replaces the list. state: persisted per-task state (loading) or NULL (a
 * list from the server: new manual_seq / cancel_seq take effect). */
static int
set_list(struct tasks *ts, json_t *list, const char *hash, const json_t *state)
{
	size_t n = json_array_size(list), i, nt = 0;
	int64_t now = now_s();
	json_t *e;

	if (!json_is_array(list)) {
		log_warnx("tasks", "the server sent a task list that is not a list; ignored");
		return -1;
	}
	if (n > TASK_MAX_TASKS) {
		log_warnx("tasks", "the server sent %zu tasks; only the first %d are used", n, TASK_MAX_TASKS);
		n = TASK_MAX_TASKS;
	}
	struct task **v = calloc(n + 1, sizeof(*v));
	struct task **manual = calloc(n + 1, sizeof(*manual));
	if (v == NULL || manual == NULL) {
		free(v);
		free(manual);
		return -1;
	}
	size_t nmanual = 0;
	json_array_foreach(list, i, e) {
		if (i >= n)
			break;
		struct task *t = task_parse(e);
		if (t == NULL) {
			log_warnx("tasks", "task %zu of the list has no valid \"id\"; skipped", i);
			continue;
		}
		if (find_in(v, nt, t->id)) {
			log_warnx("tasks", "task id %lld appears twice in the list; the first one is used",
			    (long long)t->id);
			task_free(t);
			continue;
		}
		struct task *prev = find_in(ts->tasks, ts->ntasks, t->id);
		json_t *st = state ? state_for(state, t->id) : NULL;
		bool fresh = false;
		if (prev) {
			t->seen_manual = prev->seen_manual;
			t->seen_cancel = prev->seen_cancel;
			t->next_run = prev->next_run;
			t->runs = prev->runs;
			t->booted = prev->booted;
			t->queued = prev->queued;
			t->run = prev->run;
			if (t->run)
				t->run->task = t;
			prev->queued = false;
			prev->run = NULL;
			if (strcmp(t->sched_text, prev->sched_text) != 0 ||
			    t->random_delay != prev->random_delay || strcmp(t->error, prev->error) != 0) {
				schedule_fresh(t, now);
				fresh = true;
			}
			if (t->error[0] && strcmp(t->error, prev->error) != 0)
				log_warnx("tasks", "task \"%s\" cannot run: %s", t->name, t->error);
		} else if (st) {
			t->seen_manual = json_integer_value(json_object_get(st, "seen_manual"));
			t->seen_cancel = json_integer_value(json_object_get(st, "seen_cancel"));
			t->runs = json_integer_value(json_object_get(st, "runs"));
			const char *s = json_string_value(json_object_get(st, "schedule"));
			json_t *nr = json_object_get(st, "next_run");
			if (t->sched.kind != SCHEDULE_AT_START && !t->error[0] && s &&
			    strcmp(s, t->sched_text) == 0 && json_is_integer(nr) &&
			    json_integer_value(json_object_get(st, "random_delay")) == t->random_delay)
				t->next_run = json_integer_value(nr);
			else
				schedule_fresh(t, now);
		} else {
			/* first sight: a manual start already made counts, unless it
			 * was cancelled too */
			t->seen_manual = (state || t->cancel_seq > 0) ? t->manual_seq : 0;
			t->seen_cancel = t->cancel_seq;
			schedule_fresh(t, now);
			fresh = true;
			if (t->error[0])
				log_warnx("tasks", "task \"%s\" cannot run: %s", t->name, t->error);
		}
		/* a new or changed schedule: the server learns when the next run
		 * comes (the state "scheduled"; started holds the planned time) */
		if (state == NULL && fresh && t->next_run >= 0 && t->sched.kind != SCHEDULE_AT_START) {
			char when[32], msg[64];
			time_iso(t->next_run, when);
			str_fmt(msg, sizeof(msg), "next run at %s", when);
			report(ts, t->id, t->name, t->runs + 1, "scheduled", NULL, NULL, t->next_run, 0, msg);
		}
		if (state == NULL && t->cancel_seq != t->seen_cancel) {
			t->seen_cancel = t->cancel_seq;
			if (t->manual_seq != t->seen_manual)
				t->seen_manual = t->manual_seq;	/* started and cancelled */
			if (t->run) {
				run_cancel(t->run);
			} else if (t->queued) {
				queue_remove(ts, t->id);
				t->queued = false;
				t->runs++;
				report(ts, t->id, t->name, t->runs, "cancelled", NULL, NULL, now, now,
				    "cancelled before it started");
			}
		}
		if (state == NULL && t->manual_seq != t->seen_manual) {
			t->seen_manual = t->manual_seq;
			if (t->manual_seq > 0)
				manual[nmanual++] = t;
		}
		v[nt++] = t;
	}
	/* tasks that left the list: a running run finishes and is reported */
	for (i = 0; i < ts->ntasks; i++) {
		struct task *old = ts->tasks[i];
		if (old->queued)
			queue_remove(ts, old->id);
		if (old->run)
			old->run->task = NULL;
		task_free(old);
	}
	free(ts->tasks);
	ts->tasks = v;
	ts->ntasks = nt;
	json_decref(ts->list);
	ts->list = json_incref(list);
	utf8_copy(ts->hash, hash ? hash : "", sizeof(ts->hash));
	if (state == NULL)
		tasks_save(ts);
	for (i = 0; i < nmanual; i++)
		task_request(ts, manual[i], "manual");
	free(manual);
	arm_timer(ts);
	return 0;
}

static void
tasks_save(struct tasks *ts)
{
	char path[4200];
	json_t *state = json_array();

	for (size_t i = 0; state && i < ts->ntasks; i++) {
		struct task *t = ts->tasks[i];
		json_array_append_new(state, json_pack("{s:I, s:I, s:I, s:I, s:I, s:s, s:I}", "id",
		    (json_int_t)t->id, "seen_manual", (json_int_t)t->seen_manual, "seen_cancel",
		    (json_int_t)t->seen_cancel, "next_run", (json_int_t)t->next_run, "runs",
		    (json_int_t)t->runs, "schedule", t->sched_text, "random_delay",
		    (json_int_t)t->random_delay));
	}
	json_t *doc = json_pack("{s:s, s:o, s:o}", "hash", ts->hash, "list",
	    ts->list ? json_incref(ts->list) : json_array(), "state", state);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (text == NULL || str_fmt(path, sizeof(path), "%s/tasks.json", ts->state_dir) < 0 ||
	    file_write_atomic(path, text, strlen(text), 0600) < 0)
		log_warn("tasks", "cannot save the task schedule to %s/tasks.json", ts->state_dir);
	free(text);
	json_decref(doc);
}

/* ---- life cycle ---- */

struct tasks *
tasks_new(const struct tasks_config *cfg, char *err, size_t errlen)
{
	char path[4200];
	struct tasks *ts = calloc(1, sizeof(*ts));
	if (ts == NULL) {
		str_fmt(err, errlen, "out of memory");
		return NULL;
	}
	ts->base = cfg->base;
	ts->q = cfg->q;
	ts->max_concurrent = cfg->max_concurrent > 0 ? (size_t)cfg->max_concurrent : 1;
	ts->posture_now = cfg->posture_now;
	ts->posture_arg = cfg->posture_arg;
	ts->updated = cfg->updated;
	if (str_copy(ts->state_dir, cfg->state_dir, sizeof(ts->state_dir)) >= sizeof(ts->state_dir)) {
		str_fmt(err, errlen, "tasks: state directory path too long");
		free(ts);
		return NULL;
	}
	ts->update_command = strdup(cfg->update_command ? cfg->update_command : "");
	ts->scan_command = strdup(cfg->scan_command ? cfg->scan_command : "");
	ts->scan_fallback = strdup(cfg->scan_fallback_command ? cfg->scan_fallback_command : "");
	ts->clamd_socket = strdup(cfg->clamd_socket ? cfg->clamd_socket : "");
	ts->runs = calloc(ts->max_concurrent, sizeof(*ts->runs));
	ts->queue = calloc(TASK_MAX_TASKS, sizeof(*ts->queue));
	ts->tasks = calloc(1, sizeof(*ts->tasks));
	ts->tick_ev = evtimer_new(ts->base, on_tick, ts);
	if (!ts->update_command || !ts->scan_command || !ts->scan_fallback || !ts->clamd_socket ||
	    !ts->runs || !ts->queue || !ts->tasks || !ts->tick_ev) {
		str_fmt(err, errlen, "tasks: out of memory");
		tasks_free(ts);
		return NULL;
	}

	if (str_fmt(path, sizeof(path), "%s/tasks.json", ts->state_dir) < 0) {
		str_fmt(err, errlen, "tasks: state directory path too long");
		tasks_free(ts);
		return NULL;
	}
	size_t len;
	char *text = file_read(path, TASK_STATE_MAX, &len);
	json_t *doc = NULL;
	if (text) {
		json_error_t jerr;
		doc = json_loadb(text, len, 0, &jerr);
		if (!json_is_object(doc))
			log_warnx("tasks", "%s is damaged (%s); starting with no tasks until the next sync",
			    path, jerr.text);
	} else if (errno != ENOENT) {
		log_warn("tasks", "cannot read %s; starting with no tasks until the next sync", path);
	}
	free(text);
	json_t *list = json_object_get(doc, "list");
	if (json_is_object(doc) && json_is_array(list)) {
		json_t *state = json_object_get(doc, "state");
		json_t *empty = json_array();
		set_list(ts, list, json_string_value(json_object_get(doc, "hash")),
		    json_is_array(state) ? state : empty);
		json_decref(empty);
		log_info("tasks", "%zu task(s) loaded from %s", ts->ntasks, path);
	} else {
		arm_timer(ts);
	}
	json_decref(doc);
	return ts;
}

/* Stops what runs at exit; the runs are reported failed. */
static void
kill_all(struct tasks *ts)
{
	int64_t deadline = mono_ms() + TASK_KILL_GRACE_S * 1000;
	const struct timespec pause = { 0, 20 * 1000 * 1000 };

	for (size_t i = 0; i < ts->nruns; i++)
		run_signal(ts->runs[i], SIGTERM);
	while (ts->nruns > 0) {
		bool done = false;
		for (size_t i = 0; i < ts->nruns && !done; i++) {
			struct run *r = ts->runs[i];
			int status = 0, rc = run_reap(r, true, &status);
			if (rc == 0 && mono_ms() < deadline)
				continue;
			if (rc == 0) {
				run_signal(r, SIGKILL);
				while ((rc = run_reap(r, true, &status)) == 0)
					nanosleep(&pause, NULL);
			}
			/* the array changes under us: start over */
			run_finish(r, status, rc > 0, "the agent stopped");
			done = true;
		}
		if (!done)
			nanosleep(&pause, NULL);
	}
}

void
tasks_free(struct tasks *ts)
{
	if (ts == NULL)
		return;
	if (ts->tick_ev)
		event_free(ts->tick_ev);
	ts->tick_ev = NULL;
	ts->nqueue = 0;
	if (ts->runs)
		kill_all(ts);
	for (size_t i = 0; ts->tasks && i < ts->ntasks; i++)
		task_free(ts->tasks[i]);
	free(ts->tasks);
	json_decref(ts->list);
	free(ts->runs);
	free(ts->queue);
	free(ts->update_command);
	free(ts->scan_command);
	free(ts->scan_fallback);
	free(ts->clamd_socket);
	free(ts);
}

int
tasks_set_list(struct tasks *ts, json_t *list, const char *hash)
{
	return set_list(ts, list, hash, NULL);
}

const char *
tasks_get_hash(const struct tasks *ts)
{
	return ts ? ts->hash : "";
}

size_t
tasks_active(const struct tasks *ts)
{
	return ts ? ts->nruns + ts->nqueue : 0;
}

int64_t
tasks_next_run(const struct tasks *ts, int64_t task_id)
{
	const struct task *t = ts ? find_task(ts, task_id) : NULL;
	return t ? t->next_run : -1;
}

int
tasks_run_now(struct tasks *ts, int64_t task_id)
{
	struct task *t = ts ? find_task(ts, task_id) : NULL;
	if (t == NULL)
		return -1;
	task_request(ts, t, "requested");
	return 0;
}

/* ---- the agent's side ---- */

static void
posture_now(void *arg)
{
	agent_sync_now(arg);
}

static void
posture_updated(void *arg)
{
	agent_check_posture(arg);
}

int
tasks_init(struct agent *a, char *err, size_t errlen)
{
	struct tasks_config c = {
		.base = a->base,
		.q = a->q,
		.state_dir = a->state_dir,
		.update_command = conf_str(a->cfg, "tasks.update_command"),
		.scan_command = conf_str(a->cfg, "tasks.scan_command"),
		.scan_fallback_command = conf_str(a->cfg, "tasks.scan_fallback_command"),
		.clamd_socket = conf_str(a->cfg, "clamav.clamd_socket"),
		.max_concurrent = (int)conf_int(a->cfg, "tasks.max_concurrent"),
		.posture_now = posture_now,
		.posture_arg = a,
		.updated = posture_updated,
	};
	a->tasks = tasks_new(&c, err, errlen);
	return a->tasks ? 0 : -1;
}

void
tasks_shutdown(struct agent *a)
{
	tasks_free(a->tasks);
	a->tasks = NULL;
}

int
tasks_update(struct agent *a, json_t *list, const char *hash)
{
	if (a->tasks == NULL)
		return -1;
	log_info("tasks", "new task list from the server (%zu task(s))", json_array_size(list));
	return tasks_set_list(a->tasks, list, hash);
}

const char *
tasks_hash(const struct agent *a)
{
	return tasks_get_hash(a->tasks);
}
