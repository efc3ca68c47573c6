/* policy_apply.c — see policy_apply.h. */
#include "policy_apply.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>

#include "agent.h"
#include "conf.h"
#include "log.h"
#include "plugins.h"
#include "tasks.h"
#include "util.h"

#define POLICY_HASH_MAX		128
#define POLICY_FILE_MAX		((size_t)1024 * 1024)	/* clamd.conf, freshclam.conf */
#define POLICY_DOC_MAX		((size_t)16 * 1024 * 1024)
#define POLICY_PATH_MAX		400	/* clamd reads lines of at most 512 bytes */
#define POLICY_PATHS_MAX	64
#define POLICY_CONTACT_WRITE_S	60	/* STATE/last_contact written at most this often */

struct policy_apply_state {
	json_t *document;		/* NULL before the first one */
	int64_t version;
	char hash[POLICY_HASH_MAX + 1];
	json_t *errors;
	bool mobile;
	int64_t last_contact, contact_written;
	struct policy_apply_agent agent;
	struct event *timer;
};

void
policy_apply_error(json_t *errors, const char *app, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *e = json_object();
	if (e == NULL)
		return;
	/* keys come from the server and may be anything: lenient strings */
	json_object_set_new(e, "application", plugin_string(app, strlen(app)));
	json_object_set_new(e, "key", plugin_string(key, strlen(key)));
	json_object_set_new(e, "message", plugin_string(msg, strlen(msg)));
	json_array_append_new(errors, e);
}

/* ---- the managed block ---- */

/* Start of the first line at or after from that reads marker (trailing
 * blanks allowed), -1 if none; *next is the start of the following line. */
static ssize_t
find_marker(const char *text, size_t len, size_t from, const char *marker, size_t *next)
{
	size_t mlen = strlen(marker), i = from;

	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len, e = end;
		while (e > i && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r'))
			e--;
		if (e - i == mlen && memcmp(text + i, marker, mlen) == 0) {
			*next = nl ? end + 1 : end;
			return (ssize_t)i;
		}
		i = nl ? end + 1 : len;
	}
	return -1;
}

int
policy_apply_block_replace(const char *text, size_t len, const char *body, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	size_t nb = 0, ne = 0, x;
	ssize_t b = find_marker(text, len, 0, POLICY_APPLY_BEGIN, &nb);
	ssize_t e = find_marker(text, len, 0, POLICY_APPLY_END, &ne);
	size_t keep_from, keep_to;	/* the block: [keep_from, keep_to) is replaced */

	if (b < 0 && e < 0) {
		keep_from = keep_to = 0;	/* new block at the top */
	} else if (b < 0 || e < 0 || e < b || find_marker(text, len, nb, POLICY_APPLY_BEGIN, &x) >= 0 ||
	    find_marker(text, len, ne, POLICY_APPLY_END, &x) >= 0) {
		str_fmt(err, errlen, "the managed block is broken: \"%s\" and \"%s\" must each appear "
		    "once, in that order; fix the file by hand", POLICY_APPLY_BEGIN, POLICY_APPLY_END);
		return -1;
	} else {
		keep_from = (size_t)b;
		keep_to = ne;
	}
	size_t blen = strlen(body);
	size_t block = blen ? strlen(POLICY_APPLY_BEGIN) + 1 + blen + strlen(POLICY_APPLY_END) + 1 : 0;
	size_t total = keep_from + block + (len - keep_to);
	char *o = malloc(total + 1), *p = o;
	if (o == NULL) {
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	memcpy(p, text, keep_from);
	p += keep_from;
	if (blen) {
		memcpy(p, POLICY_APPLY_BEGIN "\n", strlen(POLICY_APPLY_BEGIN) + 1);
		p += strlen(POLICY_APPLY_BEGIN) + 1;
		memcpy(p, body, blen);
		p += blen;
		memcpy(p, POLICY_APPLY_END "\n", strlen(POLICY_APPLY_END) + 1);
		p += strlen(POLICY_APPLY_END) + 1;
	}
	memcpy(p, text + keep_to, len - keep_to);
	p += len - keep_to;
	*p = '\0';
	*out = o;
	*outlen = total;
	return 0;
}

int
policy_apply_file_update(const char *path, const char *body, bool *changed, char *err, size_t errlen)
{
	char real[PATH_MAX], berr[256];
	struct stat st;
	size_t len, outlen;
	char *text, *out;

	*changed = false;
	if (realpath(path, real) == NULL) {
		if (errno == ENOENT && body[0] == '\0')
			return 0;
		str_fmt(err, errlen, "cannot apply: %s: %s (is ClamAV installed? see clamav.clamd_conf "
		    "and clamav.freshclam_conf)", path, strerror(errno));
		return -1;
	}
	if (stat(real, &st) < 0 || (text = file_read(real, POLICY_FILE_MAX, &len)) == NULL) {
		str_fmt(err, errlen, "cannot apply: cannot read %s: %s", real, strerror(errno));
		return -1;
	}
	if (policy_apply_block_replace(text, len, body, &out, &outlen, berr, sizeof(berr)) < 0) {
		str_fmt(err, errlen, "cannot apply: %s: %s", real, berr);
		free(text);
		return -1;
	}
	bool same = outlen == len && memcmp(out, text, len) == 0;
	free(text);
	if (same) {
		free(out);
		return 0;
	}
	int rc = file_write_atomic(real, out, outlen, (int)(st.st_mode & 07777));
	free(out);
	if (rc < 0) {
		str_fmt(err, errlen, "cannot apply: cannot write %s: %s", real, strerror(errno));
		return -1;
	}
	/* the new file must look like the old one to clamd (mode, owner) */
	if (chmod(real, st.st_mode & 07777) < 0 || chown(real, st.st_uid, st.st_gid) < 0)
		log_warn("policy", "%s rewritten, but its mode or owner could not be restored", real);
	*changed = true;
	return 0;
}

/* ---- clamav settings ---- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void __attribute__((format(printf, 2, 3)))
sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	size_t need = b->len + (size_t)n + 1;
	if (need > b->cap) {
		char *s = realloc(b->s, need * 2);
		if (s == NULL) {
			b->failed = true;
			return;
		}
		b->s = s;
		b->cap = need * 2;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static bool
int_in(const json_t *v, int64_t min, int64_t max)
{
	return json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max;
}

static bool
path_ok(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (s == NULL || len == 0 || len > POLICY_PATH_MAX || strlen(s) != len || s[0] != '/' ||
	    s[len - 1] == ' ' || s[len - 1] == '\t')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static const char *const clamav_keys[] = {
	"max_file_size_mb", "scan_archives", "onaccess_paths", "onaccess_prevention",
	"update_checks_per_day", "update_interval_hours", "rtp",
};

static void
push_key(json_t *keys, const char *key)
{
	if (keys)
		json_array_append_new(keys, json_string(key));
}

int
policy_apply_clamav_render(const json_t *settings, char **clamd_body, char **freshclam_body,
    json_t *errors, json_t *clamd_keys, json_t *freshclam_keys)
{
	struct sbuf c = { 0 }, f = { 0 };
	const char *key;
	json_t *v;

	*clamd_body = *freshclam_body = NULL;
	json_object_foreach((json_t *)settings, key, v) {
		bool known = false;
		for (size_t i = 0; i < ARRAY_LEN(clamav_keys) && !known; i++)
			known = strcmp(key, clamav_keys[i]) == 0;
		if (!known)
			policy_apply_error(errors, "clamav", key, "unknown setting; this agent does not apply it");
	}
	sb_add(&c, "%s", "");
	sb_add(&f, "%s", "");

	if ((v = json_object_get(settings, "max_file_size_mb")) != NULL) {
		if (int_in(v, 1, 4095)) {
			sb_add(&c, "MaxFileSize %lldM\n", (long long)json_integer_value(v));
			push_key(clamd_keys, "max_file_size_mb");
		} else {
			policy_apply_error(errors, "clamav", "max_file_size_mb", "must be a whole number of "
			    "megabytes from 1 to 4095");
		}
	}
	if ((v = json_object_get(settings, "scan_archives")) != NULL) {
		if (json_is_boolean(v)) {
			sb_add(&c, "ScanArchive %s\n", json_is_true(v) ? "yes" : "no");
			push_key(clamd_keys, "scan_archives");
		} else {
			policy_apply_error(errors, "clamav", "scan_archives", "must be true or false");
		}
	}
	if ((v = json_object_get(settings, "onaccess_paths")) != NULL) {
		size_t i, bad = 0;
		json_t *p;
		if (!json_is_array(v) || json_array_size(v) > POLICY_PATHS_MAX) {
			policy_apply_error(errors, "clamav", "onaccess_paths", "must be a list of at most %d "
			    "absolute paths", POLICY_PATHS_MAX);
		} else {
			json_array_foreach(v, i, p)
				if (!path_ok(p))
					bad++;
			if (bad) {
				policy_apply_error(errors, "clamav", "onaccess_paths", "%zu entr%s not an absolute "
				    "path of at most %d bytes without control characters", bad,
				    bad == 1 ? "y is" : "ies are", POLICY_PATH_MAX);
			} else {
				json_array_foreach(v, i, p)
					sb_add(&c, "OnAccessIncludePath %s\n", json_string_value(p));
				push_key(clamd_keys, "onaccess_paths");
			}
		}
	}
	if ((v = json_object_get(settings, "onaccess_prevention")) != NULL) {
		if (json_is_boolean(v)) {
			sb_add(&c, "OnAccessPrevention %s\n", json_is_true(v) ? "yes" : "no");
			push_key(clamd_keys, "onaccess_prevention");
		} else {
			policy_apply_error(errors, "clamav", "onaccess_prevention", "must be true or false");
		}
	}
	json_t *per_day = json_object_get(settings, "update_checks_per_day");
	if (per_day != NULL) {
		if (int_in(per_day, 1, 50)) {
			sb_add(&f, "Checks %lld\n", (long long)json_integer_value(per_day));
			push_key(freshclam_keys, "update_checks_per_day");
		} else {
			policy_apply_error(errors, "clamav", "update_checks_per_day", "must be a whole number "
			    "from 1 to 50");
			per_day = NULL;
		}
	}
	if ((v = json_object_get(settings, "update_interval_hours")) != NULL) {
		if (per_day) {
			policy_apply_error(errors, "clamav", "update_interval_hours", "ignored: "
			    "update_checks_per_day is set too and wins");
		} else if (int_in(v, 1, 24)) {
			sb_add(&f, "Checks %lld\n", 24 / (long long)json_integer_value(v));
			push_key(freshclam_keys, "update_interval_hours");
		} else {
			policy_apply_error(errors, "clamav", "update_interval_hours", "must be a whole number "
			    "from 1 to 24");
		}
	}
	if ((v = json_object_get(settings, "rtp")) != NULL && !json_is_boolean(v))
		policy_apply_error(errors, "clamav", "rtp", "must be true or false");

	if (c.failed || f.failed) {
		free(c.s);
		free(f.s);
		return -1;
	}
	*clamd_body = c.s;
	*freshclam_body = f.s;
	return 0;
}

/* ---- the agent's own settings ---- */

void
policy_apply_agent_settings(const json_t *settings, struct policy_apply_agent *out, json_t *errors)
{
	const char *key;
	json_t *v;

	out->sync_interval = out->mobile_after = -1;
	out->keep_connection = -1;
	json_object_foreach((json_t *)settings, key, v) {
		if (strcmp(key, "sync_interval") == 0) {
			if (int_in(v, 10, 86400))
				out->sync_interval = json_integer_value(v);
			else
				policy_apply_error(errors, "agent", key, "must be a whole number of seconds from "
				    "10 to 86400");
		} else if (strcmp(key, "keep_connection") == 0) {
			if (json_is_boolean(v))
				out->keep_connection = json_is_true(v);
			else
				policy_apply_error(errors, "agent", key, "must be true or false");
		} else if (strcmp(key, "mobile_after") == 0) {
			if (int_in(v, 0, 31536000))
				out->mobile_after = json_integer_value(v);
			else
				policy_apply_error(errors, "agent", key, "must be a whole number of seconds from "
				    "0 to 31536000");
		} else {
			policy_apply_error(errors, "agent", key, "unknown setting; this agent does not apply it");
		}
	}
}

bool
policy_apply_mobile_due(int64_t now, int64_t last_contact, int64_t mobile_after)
{
	return mobile_after > 0 && last_contact > 0 && now - last_contact > mobile_after;
}

json_t *
policy_apply_effective(const json_t *document, bool mobile)
{
	json_t *apps = json_object_get(document, "applications");
	json_t *out = json_is_object(apps) ? json_deep_copy(apps) : json_object();
	json_t *mob = json_object_get(document, "mobile");
	const char *app;
	json_t *v;

	if (out == NULL || !mobile || !json_is_object(mob))
		return out;
	json_object_foreach(mob, app, v) {
		json_t *base = json_object_get(out, app);
		if (!json_is_object(v))
			continue;
		if (json_is_object(base))
			json_object_update(base, v);
		else
			json_object_set_new(out, app, json_deep_copy(v));
	}
	return out;
}

/* ---- applying ---- */

/* Runs a configured command line; 0 or -1 with err. */
static int
run_configured(const char *cmdline, char *err, size_t errlen)
{
	struct task_argv av = { 0 };
	int code = 0, rc;

	if (task_argv_split(&av, cmdline) < 0 || av.n == 0) {
		task_argv_free(&av);
		str_fmt(err, errlen, "the command \"%.200s\" is empty or too long", cmdline);
		return -1;
	}
	rc = task_run_wait(av.v, POLICY_APPLY_COMMAND_TIMEOUT, &code, err, errlen);
	if (rc == 0 && code != 0) {
		str_fmt(err, errlen, "%.200s exited with status %d", av.v[0], code);
		rc = -1;
	}
	task_argv_free(&av);
	return rc;
}

/* Sends RELOAD over clamd's socket: 1 reloading, 0 clamd not running, -1
 * with err. */
static int
clamd_reload(const char *socket_path, char *err, size_t errlen)
{
	static const char cmd[] = "zRELOAD";	/* sent with its NUL */
	struct timeval tv = { 2, 0 };
	struct sockaddr_un sun;
	char reply[64];
	size_t sent = 0, got = 0;

	if (socket_path == NULL || socket_path[0] == '\0')
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, socket_path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path)) {
		str_fmt(err, errlen, "clamd socket path %s is too long", socket_path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		str_fmt(err, errlen, "cannot reach clamd: socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return 0;
		str_fmt(err, errlen, "cannot reach clamd at %s: %s", socket_path, strerror(e));
		return -1;
	}
	while (sent < sizeof(cmd)) {
		ssize_t n = send(fd, cmd + sent, sizeof(cmd) - sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			str_fmt(err, errlen, "cannot send RELOAD to clamd at %s: %s", socket_path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		sent += (size_t)n;
	}
	while (got + 1 < sizeof(reply)) {
		ssize_t n = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(reply, '\0', got) || memchr(reply, '\n', got))
			break;
	}
	close(fd);
	reply[got] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	if (strncmp(reply, "RELOADING", 9) != 0) {
		str_fmt(err, errlen, "clamd at %s answered \"%.40s\" to RELOAD", socket_path, reply);
		return -1;
	}
	return 1;
}

static void
reload_clamav(struct agent *a, bool clamd_changed, json_t *errors)
{
	const char *cmd = conf_str(a->cfg, "clamav.reload_command");
	char err[512];

	if (cmd[0]) {
		if (run_configured(cmd, err, sizeof(err)) < 0)
			policy_apply_error(errors, "clamav", "", "settings written, but clamav.reload_command "
			    "failed: %s", err);
		else
			log_info("policy", "ClamAV settings changed; ran %s", cmd);
		return;
	}
	if (!clamd_changed) {
		log_info("policy", "freshclam.conf changed; freshclam reads it when it starts (set "
		    "clamav.reload_command to restart it)");
		return;
	}
	switch (clamd_reload(conf_str(a->cfg, "clamav.clamd_socket"), err, sizeof(err))) {
	case 1:
		log_warnx("policy", "clamd.conf changed and clamd reloads its databases, but it reads "
		    "clamd.conf only when it starts; set clamav.reload_command to restart it");
		break;
	case 0:
		log_info("policy", "clamd.conf changed; clamd is not running and reads it when it starts");
		break;
	default:
		policy_apply_error(errors, "clamav", "", "settings written, but clamd was not reloaded: %s", err);
		break;
	}
}

static void
apply_rtp(struct agent *a, bool want, json_t *errors)
{
	bool running = clamav_onacc_running(conf_str(a->cfg, "clamav.clamonacc_pidfile"), "/proc");
	const char *key = want ? "clamav.rtp_start_command" : "clamav.rtp_stop_command";
	const char *cmd = conf_str(a->cfg, key);
	char err[512];

	if (running == want)
		return;
	if (cmd[0] == '\0') {
		policy_apply_error(errors, "clamav", "rtp", "cannot apply rtp: no command configured (set %s "
		    "in the agent's configuration)", key);
		return;
	}
	if (run_configured(cmd, err, sizeof(err)) < 0)
		policy_apply_error(errors, "clamav", "rtp", "cannot %s on-access scanning: %s",
		    want ? "start" : "stop", err);
	else
		log_info("policy", "on-access scanning %s (%s)", want ? "started" : "stopped", cmd);
}

/* One error per key that went into a file that could not be written. */
static void
keys_error(json_t *errors, json_t *keys, const char *msg)
{
	size_t i;
	json_t *k;
	if (json_array_size(keys) == 0)
		policy_apply_error(errors, "clamav", "", "%s", msg);
	json_array_foreach(keys, i, k)
		policy_apply_error(errors, "clamav", json_string_value(k), "%s", msg);
}

static void
apply_clamav(struct agent *a, const json_t *settings, json_t *errors)
{
	json_t *ck = json_array(), *fk = json_array();
	char *cb = NULL, *fb = NULL, err[768];
	bool c1 = false, c2 = false;

	if (ck == NULL || fk == NULL ||
	    policy_apply_clamav_render(settings, &cb, &fb, errors, ck, fk) < 0) {
		policy_apply_error(errors, "clamav", "", "out of memory");
		goto out;
	}
	if (policy_apply_file_update(conf_str(a->cfg, "clamav.clamd_conf"), cb, &c1, err, sizeof(err)) < 0)
		keys_error(errors, ck, err);
	if (policy_apply_file_update(conf_str(a->cfg, "clamav.freshclam_conf"), fb, &c2, err, sizeof(err)) < 0)
		keys_error(errors, fk, err);
	if (c1 || c2)
		reload_clamav(a, c1, errors);
	json_t *rtp = json_object_get(settings, "rtp");
	if (json_is_boolean(rtp))
		apply_rtp(a, json_is_true(rtp), errors);
out:
	free(cb);
	free(fb);
	json_decref(ck);
	json_decref(fk);
}

static void
apply_effective(struct agent *a)
{
	struct policy_apply_state *ps = a->policy;
	json_t *errors = json_array(), *apps, *v;
	struct policy_apply_agent ag = { -1, -1, -1 };
	const char *app;

	if (errors == NULL)
		return;
	if (ps->document && !json_is_object(ps->document))
		policy_apply_error(errors, "", "", "the policy document is not a JSON object");
	if ((apps = policy_apply_effective(ps->document, ps->mobile)) == NULL) {
		json_decref(errors);
		return;
	}
	json_object_foreach(apps, app, v) {
		if (!json_is_object(v))
			policy_apply_error(errors, app, "", "the settings of an application must be an object");
		else if (strcmp(app, "agent") == 0)
			policy_apply_agent_settings(v, &ag, errors);
		else if (strcmp(app, "clamav") != 0)
			policy_apply_error(errors, app, "", "this agent has no plug-in for this application; "
			    "its settings are not applied");
	}
	v = json_object_get(apps, "clamav");
	apply_clamav(a, json_is_object(v) ? v : NULL, errors);
	ps->agent = ag;
	if (ag.sync_interval > 0)
		a->sync_interval = ag.sync_interval;
	json_decref(ps->errors);
	ps->errors = errors;
	json_decref(apps);
	if (json_array_size(errors) > 0)
		log_warnx("policy", "policy version %lld applied%s with %zu setting(s) not applied",
		    (long long)ps->version, ps->mobile ? " (mobile)" : "", json_array_size(errors));
	else
		log_info("policy", "policy version %lld applied%s", (long long)ps->version,
		    ps->mobile ? " (mobile)" : "");
}

static int64_t
mobile_after(const struct agent *a)
{
	const json_t *doc = a->policy->document;
	json_t *v = json_object_get(doc, "mobile_after");
	if (int_in(v, 0, INT64_MAX))
		return json_integer_value(v);
	v = json_object_get(json_object_get(json_object_get(doc, "applications"), "agent"),
	    "mobile_after");
	if (int_in(v, 0, 31536000))
		return json_integer_value(v);
	return conf_int(a->cfg, "agent.mobile_after");
}

static bool
has_mobile(const json_t *doc)
{
	return json_object_size(json_object_get(doc, "mobile")) > 0;
}

void
policy_apply_check_mobile(struct agent *a)
{
	struct policy_apply_state *ps = a->policy;
	if (ps == NULL || ps->mobile || !has_mobile(ps->document))
		return;
	int64_t after = mobile_after(a), now = now_s();
	if (!policy_apply_mobile_due(now, ps->last_contact, after))
		return;
	ps->mobile = true;
	log_warnx("policy", "no contact with the server for %lld s (more than %lld s): applying the "
	    "mobile policy", (long long)(now - ps->last_contact), (long long)after);
	apply_effective(a);
}

bool
policy_apply_is_mobile(const struct agent *a)
{
	return a->policy && a->policy->mobile;
}

void
policy_apply_contact(struct agent *a)
{
	struct policy_apply_state *ps = a->policy;
	char path[4200], buf[32];
	if (ps == NULL)
		return;
	ps->last_contact = now_s();
	if (ps->last_contact - ps->contact_written >= POLICY_CONTACT_WRITE_S &&
	    agent_path(a, "last_contact", path, sizeof(path)) == 0) {
		int len = str_fmt(buf, sizeof(buf), "%lld\n", (long long)ps->last_contact);
		if (len < 0 || file_write_atomic(path, buf, (size_t)len, 0600) < 0)
			log_warn("policy", "cannot write %s", path);
		else
			ps->contact_written = ps->last_contact;
	}
	if (ps->mobile) {
		ps->mobile = false;
		log_info("policy", "the server is reachable again: applying the normal policy");
		apply_effective(a);
	}
}

int
policy_apply(struct agent *a, json_t *document, int64_t version, const char *hash)
{
	struct policy_apply_state *ps = a->policy;
	char path[4200];
	int rc = 0;

	if (ps == NULL)
		return -1;
	json_decref(ps->document);
	ps->document = document ? json_incref(document) : json_object();
	ps->version = version;
	str_copy(ps->hash, hash ? hash : "", sizeof(ps->hash));
	json_t *saved = json_pack("{s:I, s:s, s:O}", "version", (json_int_t)version, "hash", ps->hash,
	    "document", ps->document);
	char *text = saved ? json_dumps(saved, JSON_COMPACT) : NULL;
	if (text == NULL || agent_path(a, "policy.json", path, sizeof(path)) < 0 ||
	    file_write_atomic(path, text, strlen(text), 0600) < 0) {
		log_warn("policy", "cannot save the policy to %s/policy.json", a->state_dir);
		rc = -1;
	}
	free(text);
	json_decref(saved);
	log_info("policy", "new policy from the server: version %lld", (long long)version);
	ps->mobile = has_mobile(ps->document) &&
	    policy_apply_mobile_due(now_s(), ps->last_contact, mobile_after(a));
	apply_effective(a);
	return rc;
}

json_t *
policy_apply_report(const struct agent *a)
{
	const struct policy_apply_state *ps = a->policy;
	if (ps == NULL)
		return json_pack("{s:i, s:s, s:[]}", "version", 0, "hash", "", "errors");
	return json_pack("{s:I, s:s, s:O}", "version", (json_int_t)ps->version, "hash", ps->hash,
	    "errors", ps->errors);
}

bool
policy_apply_keep_connection(const struct agent *a)
{
	if (a->policy && a->policy->agent.keep_connection >= 0)
		return a->policy->agent.keep_connection == 1;
	return conf_bool(a->cfg, "agent.keep_connection");
}

int64_t
policy_apply_sync_interval(const struct agent *a, int64_t fallback)
{
	if (a->policy && a->policy->agent.sync_interval > 0)
		return a->policy->agent.sync_interval;
	return fallback;
}

static void
on_mobile_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	policy_apply_check_mobile(arg);
}

int
policy_apply_init(struct agent *a, char *err, size_t errlen)
{
	struct policy_apply_state *ps = calloc(1, sizeof(*ps));
	char path[4200];
	size_t len;

	if (ps == NULL || (ps->errors = json_array()) == NULL) {
		free(ps);
		str_fmt(err, errlen, "policy: out of memory");
		return -1;
	}
	ps->agent = (struct policy_apply_agent){ -1, -1, -1 };
	a->policy = ps;
	ps->last_contact = now_s();
	if (agent_path(a, "last_contact", path, sizeof(path)) == 0) {
		char *t = file_read(path, 64, NULL);
		long long v = t ? strtoll(t, NULL, 10) : 0;
		if (v > 0 && v <= ps->last_contact)
			ps->last_contact = ps->contact_written = v;
		free(t);
	}
	if (agent_path(a, "policy.json", path, sizeof(path)) < 0) {
		str_fmt(err, errlen, "policy: state directory path too long");
		policy_apply_free(a);
		return -1;
	}
	char *text = file_read(path, POLICY_DOC_MAX, &len);
	if (text) {
		json_error_t jerr;
		json_t *doc = json_loadb(text, len, 0, &jerr);
		json_t *d = json_object_get(doc, "document");
		if (json_is_object(d)) {
			ps->document = json_incref(d);
			ps->version = json_integer_value(json_object_get(doc, "version"));
			str_copy(ps->hash, json_string_value(json_object_get(doc, "hash")) ?: "",
			    sizeof(ps->hash));
		} else {
			log_warnx("policy", "%s is damaged; waiting for the server to send the policy "
			    "again", path);
		}
		json_decref(doc);
		free(text);
	} else if (errno != ENOENT) {
		log_warn("policy", "cannot read %s", path);
	}
	if (ps->document) {
		ps->mobile = has_mobile(ps->document) &&
		    policy_apply_mobile_due(now_s(), ps->last_contact, mobile_after(a));
		if (ps->mobile)
			log_warnx("policy", "no contact with the server since %lld: applying the mobile "
			    "policy", (long long)ps->last_contact);
		apply_effective(a);
	}
	if (a->base) {
		struct timeval tv = { POLICY_APPLY_MOBILE_CHECK_S, 0 };
		ps->timer = event_new(a->base, -1, EV_PERSIST, on_mobile_timer, a);
		if (ps->timer == NULL || event_add(ps->timer, &tv) < 0) {
			str_fmt(err, errlen, "policy: cannot arm the mobile policy timer");
			policy_apply_free(a);
			return -1;
		}
	}
	return 0;
}

void
policy_apply_free(struct agent *a)
{
	struct policy_apply_state *ps = a->policy;
	if (ps == NULL)
		return;
	if (ps->timer)
		event_free(ps->timer);
	json_decref(ps->document);
	json_decref(ps->errors);
	free(ps);
	a->policy = NULL;
}
