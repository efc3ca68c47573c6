/* plugin_command.c — the "command" section: runs the administrator's
 * program (no shell) and reports the JSON object it prints on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugins.h"
#include "util.h"

#define CMD_OUTPUT_MAX		((size_t)1024 * 1024)
#define CMD_TIMEOUT_DEFAULT	10
#define CMD_FD_MAX		65536	/* close loop bound when close_range fails */

/* Child side: only async-signal-safe calls between fork and exec. */
static void __attribute__((noreturn))
child_exec(const char *path, int out)
{
	char *const argv[] = { (char *)path, NULL };
	sigset_t none;
	int null, hi;

	/* The agent's signal setup must not leak into the program. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* Own process group, so a timeout kills its children too. */
	setpgid(0, 0);

	/* Move both ends above 2 first: the agent may run with 0-2 closed. */
	hi = fcntl(out, F_DUPFD_CLOEXEC, 3);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (hi < 0 || null < 0)
		_exit(126);
	if (null < 3 && (null = fcntl(null, F_DUPFD_CLOEXEC, 3)) < 0)
		_exit(126);
	if (dup2(null, 0) < 0 || dup2(hi, 1) < 0 || dup2(null, 2) < 0)
		_exit(126);
	if (close_range(3, ~0U, 0) < 0)
		for (int fd = 3; fd < CMD_FD_MAX; fd++)
			close(fd);
	execv(path, argv);
	_exit(127);
}

/* Reads the child's stdout until EOF, the deadline or the size cap.
 * Returns 0 at EOF, 1 on timeout, 2 when the output is too large, -1 on
 * error (errno). */
static int
read_output(int fd, int64_t deadline, char **bufp, size_t *lenp)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	*bufp = buf;
	*lenp = 0;
	if (buf == NULL)
		return -1;
	for (;;) {
		int64_t left = deadline - mono_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (left <= 0)
			return 1;
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		if (len == cap) {
			if (cap > CMD_OUTPUT_MAX)
				return 2;
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL)
				return -1;
			*bufp = buf = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		len += (size_t)n;
		*lenp = len;
		if (len > CMD_OUTPUT_MAX)
			return 2;
	}
}

/* Waits for pid until the deadline; 0 with *status, 1 on timeout, -1 on
 * error. The program may close stdout and keep running. */
static int
wait_child(pid_t pid, int64_t deadline, int *status)
{
	const struct timespec tick = { 0, 5 * 1000 * 1000 };

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		if (mono_ms() >= deadline)
			return 1;
		nanosleep(&tick, NULL);
	}
}

static void
kill_child(pid_t pid)
{
	int status;

	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* Runs path; on success *out is its stdout (NUL-terminated, caller frees). */
static int
run_command(const char *path, int timeout, char **out, size_t *outlen, json_t *errors)
{
	int64_t deadline = mono_ms() + (int64_t)timeout * 1000;
	int pfd[2], status = 0, rc, saved;
	pid_t pid;

	*out = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		plugin_error(errors, "command: pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		plugin_error(errors, "command: cannot start %s: fork: %s", path, strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0)
		child_exec(path, pfd[1]);
	close(pfd[1]);
	/* Also here, so kill(-pid) works even before the child ran setpgid. */
	setpgid(pid, pid);

	rc = read_output(pfd[0], deadline, out, outlen);
	saved = errno;
	close(pfd[0]);
	if (rc == 0 && (rc = wait_child(pid, deadline, &status)) < 0) {
		/* Reaped elsewhere: the pid (and group) may be reused, kill nothing. */
		plugin_error(errors, "command: lost the exit status of %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (rc != 0) {
		kill_child(pid);
		if (rc == 1)
			plugin_error(errors, "command: %s timed out after %d s", path, timeout);
		else if (rc == 2)
			plugin_error(errors, "command: %s printed more than %zu bytes; it must "
			    "print one small JSON object", path, CMD_OUTPUT_MAX);
		else
			plugin_error(errors, "command: reading from %s: %s", path,
			    strerror(saved));
		goto fail;
	}
	if (WIFSIGNALED(status)) {
		plugin_error(errors, "command: %s killed by signal %d", path, WTERMSIG(status));
		goto fail;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		plugin_error(errors, "command: %s exited with status %d", path,
		    WEXITSTATUS(status));
		goto fail;
	}
	return 0;
fail:
	free(*out);
	*out = NULL;
	return -1;
}

json_t *
plugin_command(const struct posture_config *cfg, json_t *errors)
{
	const char *path = plugin_path(cfg->command_path, "");
	int timeout = cfg->command_timeout > 0 ? cfg->command_timeout : CMD_TIMEOUT_DEFAULT;
	json_error_t jerr;
	json_t *obj;
	size_t len;
	char *out;

	if (path[0] != '/') {
		plugin_error(errors, "command: command_path \"%s\" is not an absolute path; set "
		    "it to the program to run", path);
		return NULL;
	}
	if (access(path, X_OK) < 0) {
		plugin_error(errors, "command: %s cannot be run: %s; check command_path and "
		    "the file's permissions", path, strerror(errno));
		return NULL;
	}
	if (run_command(path, timeout, &out, &len, errors) < 0)
		return NULL;
	obj = json_loadb(out, len, 0, &jerr);
	free(out);
	if (obj == NULL) {
		plugin_error(errors, "command: %s printed invalid JSON (%s at line %d); it must "
		    "print one JSON object", path, jerr.text, jerr.line);
		return NULL;
	}
	if (!json_is_object(obj)) {
		plugin_error(errors, "command: %s printed JSON that is not an object; it must "
		    "print one JSON object", path);
		json_decref(obj);
		return NULL;
	}
	return obj;
}
