/* evqueue.c — see evqueue.h.
 *
 * Every operation re-scans the directory: it is the only state shared with
 * other processes, and a scan of ~10,000 names is cheap next to the fsyncs.
 * An enqueue holds flock(2) on "<dir>/lock" from the scan to the rename, so
 * concurrent writers neither overshoot the bound nor reorder names.
 * An id that is already queued is rejected, so ids stay unique and an ack
 * removes exactly one event. */
#include "evqueue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "util.h"

#define EVQ_MAX_SIZE	(64 * 1024)	/* serialized event, bytes */
#define EVQ_MAX_MESSAGE	1024		/* "message", bytes */
#define EVQ_MAX_KIND	64
#define EVQ_ID_LEN	32
#define EVQ_TMP_MAX_AGE	3600		/* seconds before a tmp file is stale */
#define EVQ_SEQ_MOD	1000000u	/* "%06u" */
#define EVQ_MS_LIMIT	10000000000000000LL	/* "%016lld" */

/* "<16 digits>-<6 digits>-<32 hex>.json" */
#define EVQ_TS_LEN	16
#define EVQ_SEQ_OFF	(EVQ_TS_LEN + 1)
#define EVQ_SEQ_LEN	6
#define EVQ_ID_OFF	(EVQ_SEQ_OFF + EVQ_SEQ_LEN + 1)
#define EVQ_SUFFIX	".json"
#define EVQ_NAME_LEN	(EVQ_ID_OFF + EVQ_ID_LEN + 5)

/* Room for "<dir>/corrupt/<name>.tmp.<pid>" in every path we build. */
#define EVQ_DIR_MAX	(PATH_MAX - EVQ_NAME_LEN - 64)

/* Ids this process leaves out of batches (evq_hold), oldest overwritten. */
#define EVQ_HELD_MAX	256

struct evq {
	char	 dir[PATH_MAX];
	size_t	 max_events;
	char	 held[EVQ_HELD_MAX][EVQ_ID_LEN];
	size_t	 nheld, held_next;
};

struct evq_name {
	char	 s[EVQ_NAME_LEN + 1];
};

static unsigned evq_seq;	/* per-process sequence, shared by all queues */

static bool
is_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool
is_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool
id_valid(const char *id)
{
	return strlen(id) == EVQ_ID_LEN && is_lower_hex(id, EVQ_ID_LEN);
}

/* True only for final event file names: tmp files and anything else in the
 * directory are never treated as events. */
static bool
name_valid(const char *s)
{
	if (strlen(s) != EVQ_NAME_LEN)
		return false;
	return is_digits(s, EVQ_TS_LEN) && s[EVQ_TS_LEN] == '-' &&
	    is_digits(s + EVQ_SEQ_OFF, EVQ_SEQ_LEN) && s[EVQ_ID_OFF - 1] == '-' &&
	    is_lower_hex(s + EVQ_ID_OFF, EVQ_ID_LEN) &&
	    strcmp(s + EVQ_ID_OFF + EVQ_ID_LEN, EVQ_SUFFIX) == 0;
}

static bool
name_has_id(const char *name, const char *id)
{
	return memcmp(name + EVQ_ID_OFF, id, EVQ_ID_LEN) == 0;
}

static void
name_parse(const char *name, int64_t *ms, unsigned *seq)
{
	int64_t v = 0;
	unsigned q = 0;
	for (size_t i = 0; i < EVQ_TS_LEN; i++)
		v = v * 10 + (name[i] - '0');
	for (size_t i = 0; i < EVQ_SEQ_LEN; i++)
		q = q * 10 + (unsigned)(name[EVQ_SEQ_OFF + i] - '0');
	*ms = v;
	*seq = q;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct evq_name *)a)->s, ((const struct evq_name *)b)->s);
}

static bool
name_held(const struct evq *q, const char *name)
{
	for (size_t i = 0; i < q->nheld; i++)
		if (memcmp(q->held[i], name + EVQ_ID_OFF, EVQ_ID_LEN) == 0)
			return true;
	return false;
}

bool
evq_is_held(const struct evq *q, const char *id)
{
	if (id == NULL || strlen(id) != EVQ_ID_LEN)
		return false;
	for (size_t i = 0; i < q->nheld; i++)
		if (memcmp(q->held[i], id, EVQ_ID_LEN) == 0)
			return true;
	return false;
}

void
evq_hold(struct evq *q, const char *id)
{
	if (id == NULL || !id_valid(id) || evq_is_held(q, id))
		return;
	memcpy(q->held[q->held_next], id, EVQ_ID_LEN);
	q->held_next = (q->held_next + 1) % EVQ_HELD_MAX;
	if (q->nheld < EVQ_HELD_MAX)
		q->nheld++;
}

static int
evq_path(const struct evq *q, const char *name, char *out, size_t outsz)
{
	if (str_fmt(out, outsz, "%s/%s", q->dir, name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
evq_fsync_dir(const struct evq *q)
{
	int fd, rc;

	if ((fd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Lists the event files, oldest first if sorted. Returns -1 with errno set. */
static int
evq_scan(const struct evq *q, struct evq_name **out, size_t *np, bool sorted)
{
	struct evq_name *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	if ((d = opendir(q->dir)) == NULL)
		return -1;
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				goto fail;
			break;
		}
		if (!name_valid(de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct evq_name *nv = reallocarray(v, ncap, sizeof(*v));
			if (nv == NULL)
				goto fail;
			v = nv;
			cap = ncap;
		}
		memcpy(v[n].s, de->d_name, EVQ_NAME_LEN + 1);
		n++;
	}
	closedir(d);
	if (sorted && n > 1)
		qsort(v, n, sizeof(*v), name_cmp);
	*out = v;
	*np = n;
	return 0;
fail:;
	int saved = errno;
	closedir(d);
	free(v);
	errno = saved;
	return -1;
}

/* Takes the writers' lock; returns its fd or -1 (errno set). The file is
 * opened each time so that a fork()ed child never shares the parent's lock. */
static int
evq_lock(const struct evq *q)
{
	char path[PATH_MAX];
	int fd;

	if (evq_path(q, "lock", path, sizeof(path)) < 0)
		return -1;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -1;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	return fd;
}

static void
evq_unlock(const struct evq *q, int fd)
{
	/* close() releases the lock; still say if unlocking failed. */
	if (flock(fd, LOCK_UN) < 0)
		log_warn("evqueue", "%s: cannot unlock", q->dir);
	close(fd);
}

/* Removes "*.tmp.*" left behind by a writer that died more than an hour ago;
 * younger ones may belong to a writer still at work. */
static void
evq_clean_tmp(const struct evq *q)
{
	int64_t cutoff = now_s() - EVQ_TMP_MAX_AGE;
	struct dirent *de;
	struct stat st;
	DIR *d;

	if ((d = opendir(q->dir)) == NULL) {
		log_warn("evqueue", "%s: cannot list for stale tmp files", q->dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".tmp.") == NULL)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || (int64_t)st.st_mtime >= cutoff)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0)
			log_warn("evqueue", "%s/%s: cannot remove stale tmp file",
			    q->dir, de->d_name);
		else
			log_info("evqueue", "removed stale tmp file %s/%s", q->dir,
			    de->d_name);
	}
	closedir(d);
}

struct evq *
evq_open(const char *dir, size_t max_events, char *err, size_t errlen)
{
	struct stat st;
	struct evq *q;
	size_t len;
	int fd;

	if (dir == NULL || *dir == '\0') {
		snprintf(err, errlen, "event queue: no spool directory given; "
		    "set one in the agent configuration");
		return NULL;
	}
	if ((len = strlen(dir)) >= EVQ_DIR_MAX) {
		snprintf(err, errlen, "event queue %.64s...: path longer than %d "
		    "bytes; choose a shorter spool directory", dir, EVQ_DIR_MAX);
		return NULL;
	}
	if (max_events == 0) {
		snprintf(err, errlen, "event queue %s: max events must be at "
		    "least 1", dir);
		return NULL;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errlen, "event queue %s: out of memory", dir);
		return NULL;
	}
	q->max_events = max_events;
	str_copy(q->dir, dir, sizeof(q->dir));
	while (len > 1 && q->dir[len - 1] == '/')
		q->dir[--len] = '\0';

	if (mkdir_p(q->dir, 0700) < 0) {
		snprintf(err, errlen, "event queue %s: cannot create directory: %s; "
		    "check the path and its parent's permissions", q->dir,
		    strerror(errno));
		goto fail;
	}
	if (stat(q->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "event queue %s: not a directory; remove it "
		    "or choose another spool directory", q->dir);
		goto fail;
	}
	if ((fd = evq_lock(q)) < 0) {
		snprintf(err, errlen, "event queue %s: cannot open lock file: %s; "
		    "check the directory's owner and permissions", q->dir,
		    strerror(errno));
		goto fail;
	}
	evq_unlock(q, fd);
	evq_clean_tmp(q);
	return q;
fail:
	evq_close(q);
	return NULL;
}

void
evq_close(struct evq *q)
{
	free(q);
}

/* A json_string() that never fails on bad UTF-8 (file names in clamd
 * messages need not be UTF-8): such bytes become '?'. */
static json_t *
string_lenient(const char *s)
{
	json_t *j = json_string(s);
	if (j != NULL || s == NULL)
		return j;
	size_t len = strlen(s);
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
	copy[len] = '\0';
	j = json_string(copy);
	free(copy);
	return j;
}

json_t *
evq_make_event(const char *severity, const char *kind, const char *message,
    json_t *data)
{
	char id[EVQ_ID_LEN + 1];
	json_t *ev;

	if (severity == NULL || kind == NULL || message == NULL ||
	    random_id(id) < 0)
		return NULL;
	if ((ev = json_object()) == NULL)
		return NULL;
	if (json_object_set_new(ev, "id", json_string(id)) < 0 ||
	    json_object_set_new(ev, "time", json_integer(now_s())) < 0 ||
	    json_object_set_new(ev, "severity", string_lenient(severity)) < 0 ||
	    json_object_set_new(ev, "kind", string_lenient(kind)) < 0 ||
	    json_object_set_new(ev, "message", string_lenient(message)) < 0 ||
	    (data != NULL && json_object_set(ev, "data", data) < 0)) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

static bool
kind_valid(const char *s, size_t len)
{
	if (len < 1 || len > EVQ_MAX_KIND)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* Checks the fields of an event; "id" and "time" may be absent. */
static int
ev_validate(const json_t *ev, char *err, size_t errlen)
{
	static const char *severities[] = { "critical", "error", "warning", "info" };
	json_t *v;
	size_t i;

	if (!json_is_object(ev)) {
		snprintf(err, errlen, "event: must be a JSON object");
		return -1;
	}
	v = json_object_get(ev, "severity");
	for (i = 0; json_is_string(v) && i < ARRAY_LEN(severities); i++)
		if (strcmp(json_string_value(v), severities[i]) == 0)
			break;
	if (!json_is_string(v) || i == ARRAY_LEN(severities) ||
	    json_string_length(v) != strlen(severities[i])) {
		snprintf(err, errlen, "event: \"severity\" must be one of critical, "
		    "error, warning, info");
		return -1;
	}
	v = json_object_get(ev, "kind");
	if (!json_is_string(v) || !kind_valid(json_string_value(v),
	    json_string_length(v))) {
		snprintf(err, errlen, "event: \"kind\" must be 1-%d characters of "
		    "a-z, 0-9, '_', '.', '-'", EVQ_MAX_KIND);
		return -1;
	}
	v = json_object_get(ev, "message");
	if (!json_is_string(v)) {
		snprintf(err, errlen, "event %s: \"message\" must be a string",
		    json_string_value(json_object_get(ev, "kind")));
		return -1;
	}
	if (json_string_length(v) > EVQ_MAX_MESSAGE) {
		snprintf(err, errlen, "event %s: \"message\" is %zu bytes, longer "
		    "than %d; shorten it and put details in \"data\"",
		    json_string_value(json_object_get(ev, "kind")),
		    json_string_length(v), EVQ_MAX_MESSAGE);
		return -1;
	}
	v = json_object_get(ev, "data");
	if (v != NULL && !json_is_object(v)) {
		snprintf(err, errlen, "event %s: \"data\" must be a JSON object",
		    json_string_value(json_object_get(ev, "kind")));
		return -1;
	}
	v = json_object_get(ev, "id");
	if (v != NULL && (!json_is_string(v) || json_string_length(v) !=
	    EVQ_ID_LEN || !id_valid(json_string_value(v)))) {
		snprintf(err, errlen, "event %s: \"id\" must be %d lower-case hex "
		    "characters; omit it to get a fresh one",
		    json_string_value(json_object_get(ev, "kind")), EVQ_ID_LEN);
		return -1;
	}
	v = json_object_get(ev, "time");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0)) {
		snprintf(err, errlen, "event %s: \"time\" must be unix seconds "
		    "(a non-negative integer); omit it for now",
		    json_string_value(json_object_get(ev, "kind")));
		return -1;
	}
	return 0;
}

/* A persistent counter, file "<dir>/<name>" holding a decimal number. */
static uint64_t
counter_read(const struct evq *q, const char *name)
{
	char path[PATH_MAX], *buf, *end;
	unsigned long long v;
	size_t len;

	if (evq_path(q, name, path, sizeof(path)) < 0)
		return 0;
	if ((buf = file_read(path, 64, &len)) == NULL) {
		if (errno != ENOENT)
			log_warn("evqueue", "%s: cannot read counter", path);
		return 0;
	}
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\0' && *end != '\n') ||
	    buf[0] == '-') {
		log_warnx("evqueue", "%s: counter is not a number; "
		    "restarting it from 0", path);
		v = 0;
	}
	free(buf);
	return (uint64_t)v;
}

/* Caller holds the lock. */
static uint64_t
counter_add(const struct evq *q, const char *name, uint64_t n)
{
	char path[PATH_MAX], buf[32];
	uint64_t total = counter_read(q, name) + n;
	int len;

	if (evq_path(q, name, path, sizeof(path)) < 0 ||
	    (len = str_fmt(buf, sizeof(buf), "%llu\n",
	    (unsigned long long)total)) < 0 ||
	    file_write_atomic(path, buf, (size_t)len, 0600) < 0)
		log_warn("evqueue", "%s/%s: cannot update the counter", q->dir, name);
	return total;
}


/* Deletes the oldest events so that one more fits; names sorted. Caller
 * holds the lock. */
static int
evq_make_room(struct evq *q, const struct evq_name *names, size_t n,
    char *err, size_t errlen)
{
	char path[PATH_MAX];
	uint64_t dropped = 0, total;
	size_t want, i;
	int rc = 0;

	if (n < q->max_events)
		return 0;
	want = n - q->max_events + 1;
	for (i = 0; i < want; i++) {
		if (evq_path(q, names[i].s, path, sizeof(path)) == 0 &&
		    unlink(path) == 0) {
			dropped++;
			continue;
		}
		if (errno == ENOENT)	/* acked meanwhile: room made anyway */
			continue;
		snprintf(err, errlen, "event queue %s: full (%zu events) and "
		    "cannot drop %s: %s; check the directory's permissions",
		    q->dir, q->max_events, names[i].s, strerror(errno));
		rc = -1;
		break;
	}
	if (dropped > 0) {
		total = counter_add(q, "dropped", dropped);
		log_warnx("evqueue", "%s: queue full (%zu events), dropped %llu "
		    "oldest event(s), %llu dropped in total", q->dir, q->max_events,
		    (unsigned long long)dropped, (unsigned long long)total);
	}
	return rc;
}

/* A name that sorts after every queued one even if the clock went back. */
static int
evq_new_name(const struct evq_name *newest, const char *id, char *out,
    size_t outsz)
{
	int64_t ms = now_ms(), nms;
	unsigned seq = __atomic_fetch_add(&evq_seq, 1, __ATOMIC_RELAXED) % EVQ_SEQ_MOD;
	unsigned nseq;

	if (ms < 0)
		ms = 0;
	if (newest != NULL) {
		name_parse(newest->s, &nms, &nseq);
		if (ms < nms || (ms == nms && seq <= nseq)) {
			ms = nms;
			seq = nseq + 1;
			if (seq == EVQ_SEQ_MOD) {
				ms++;
				seq = 0;
			}
		}
	}
	if (ms >= EVQ_MS_LIMIT)
		return -1;
	return str_fmt(out, outsz, "%016lld-%06u-%s" EVQ_SUFFIX, (long long)ms,
	    seq, id);
}

/* Stores text under a fresh name. Caller holds the lock. */
static int
evq_store(struct evq *q, const char *id, const char *text, size_t len,
    char *err, size_t errlen)
{
	struct evq_name *names = NULL, *newest = NULL;
	char name[EVQ_NAME_LEN + 1], path[PATH_MAX];
	size_t n = 0;
	int rc = -1;

	/* Unsorted: a full sort is needed only when something must go. */
	if (evq_scan(q, &names, &n, false) < 0) {
		snprintf(err, errlen, "event queue %s: cannot list: %s", q->dir,
		    strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (name_has_id(names[i].s, id)) {
			snprintf(err, errlen, "event %s: already queued in %s; "
			    "an id must be unique", id, q->dir);
			goto out;
		}
		if (newest == NULL || strcmp(names[i].s, newest->s) > 0)
			newest = &names[i];
	}
	if (n >= q->max_events) {
		qsort(names, n, sizeof(*names), name_cmp);
		newest = &names[n - 1];
		if (evq_make_room(q, names, n, err, errlen) < 0)
			goto out;
	}
	if (evq_new_name(newest, id, name, sizeof(name)) < 0 ||
	    evq_path(q, name, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "event queue %s: cannot name event %s; "
		    "check the system clock", q->dir, id);
		goto out;
	}
	if (file_write_atomic(path, text, len, 0600) < 0) {
		snprintf(err, errlen, "event queue %s: cannot write event %s: %s; "
		    "check free space and permissions", q->dir, id, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(names);
	return rc;
}

int
evq_enqueue(struct evq *q, json_t *ev, char *err, size_t errlen)
{
	char idbuf[EVQ_ID_LEN + 1];
	const char *id;
	json_t *copy = NULL;
	char *text = NULL;
	size_t len;
	int fd, rc = -1;

	if (ev_validate(ev, err, errlen) < 0)
		return -1;
	/* Fill id/time on a shallow copy so ev is untouched on failure. */
	if ((copy = json_copy(ev)) == NULL)
		goto nomem;
	if ((id = json_string_value(json_object_get(ev, "id"))) == NULL) {
		if (random_id(idbuf) < 0) {
			snprintf(err, errlen, "event queue %s: no randomness for an "
			    "event id: %s", q->dir, strerror(errno));
			goto out;
		}
		if (json_object_set_new(copy, "id", json_string(idbuf)) < 0)
			goto nomem;
		id = idbuf;
	}
	if (json_object_get(ev, "time") == NULL &&
	    json_object_set_new(copy, "time", json_integer(now_s())) < 0)
		goto nomem;
	if ((text = json_dumps(copy, JSON_COMPACT)) == NULL)
		goto nomem;
	if ((len = strlen(text)) > EVQ_MAX_SIZE) {
		snprintf(err, errlen, "event %s: %zu bytes serialized, more than "
		    "%d; put less in \"data\"", json_string_value(json_object_get(ev,
		    "kind")), len, EVQ_MAX_SIZE);
		goto out;
	}
	if ((fd = evq_lock(q)) < 0) {
		snprintf(err, errlen, "event queue %s: cannot lock: %s; check the "
		    "directory's owner and permissions", q->dir, strerror(errno));
		goto out;
	}
	rc = evq_store(q, id, text, len, err, errlen);
	evq_unlock(q, fd);
	if (rc == 0 && (json_object_update_missing(ev, copy) < 0)) {
		/* Stored; only the caller's view lacks id/time. */
		log_warnx("evqueue", "%s: event %s stored but not updated in memory",
		    q->dir, id);
	}
	goto out;
nomem:
	snprintf(err, errlen, "event queue %s: out of memory", q->dir);
out:
	free(text);
	json_decref(copy);
	return rc;
}

/* Moves a bad file to "<dir>/corrupt/" so it never blocks the queue. */
static void
evq_quarantine(const struct evq *q, const char *name, const char *why)
{
	char from[PATH_MAX], cdir[PATH_MAX], to[PATH_MAX];

	if (evq_path(q, name, from, sizeof(from)) < 0 ||
	    evq_path(q, "corrupt", cdir, sizeof(cdir)) < 0 ||
	    str_fmt(to, sizeof(to), "%s/%s", cdir, name) < 0)
		return;
	if (mkdir(cdir, 0700) < 0 && errno != EEXIST) {
		log_warn("evqueue", "%s: cannot create; corrupt event %s (%s) "
		    "left in place", cdir, name, why);
		return;
	}
	if (rename(from, to) < 0) {
		if (errno != ENOENT)
			log_warn("evqueue", "%s: corrupt event (%s), cannot move "
			    "it to %s", from, why, cdir);
		return;
	}
	if (evq_fsync_dir(q) < 0)
		log_warn("evqueue", "%s: cannot fsync", q->dir);
	log_warnx("evqueue", "%s: corrupt event (%s), moved to %s", from, why, to);
}

/* Reads one event file; NULL when it is gone (ENOENT) or was quarantined. */
static json_t *
evq_load(const struct evq *q, const char *name)
{
	char path[PATH_MAX], why[256], *buf;
	json_error_t jerr;
	json_t *ev, *id;
	size_t len;

	if (evq_path(q, name, path, sizeof(path)) < 0)
		return NULL;
	if ((buf = file_read(path, EVQ_MAX_SIZE, &len)) == NULL) {
		if (errno == ENOENT)
			return NULL;
		snprintf(why, sizeof(why), "unreadable: %s", strerror(errno));
		evq_quarantine(q, name, why);
		return NULL;
	}
	ev = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (ev == NULL) {
		snprintf(why, sizeof(why), "bad JSON: %s", jerr.text);
		evq_quarantine(q, name, why);
		return NULL;
	}
	id = json_object_get(ev, "id");
	if (ev_validate(ev, why, sizeof(why)) < 0) {
		evq_quarantine(q, name, why);
	} else if (!json_is_string(id) || !name_has_id(name, json_string_value(id)) ||
	    !json_is_integer(json_object_get(ev, "time"))) {
		evq_quarantine(q, name, "id or time does not match the file");
	} else
		return ev;
	json_decref(ev);
	return NULL;
}

json_t *
evq_peek(struct evq *q, size_t max)
{
	return evq_peek_batch(q, max, 0);
}

/* Keeps the newest EVQ_REJECTED_KEEP events in rdir (names sort by age). */
static void
evq_trim_rejected(const char *rdir)
{
	struct evq_name *names = NULL;
	struct evq *r;
	char path[PATH_MAX];
	size_t n = 0;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return;
	str_copy(r->dir, rdir, sizeof(r->dir));
	if (evq_scan(r, &names, &n, true) < 0) {
		log_warn("evqueue", "%s: cannot list", rdir);
		free(r);
		return;
	}
	for (size_t i = 0; n > EVQ_REJECTED_KEEP && i < n - EVQ_REJECTED_KEEP; i++) {
		if (evq_path(r, names[i].s, path, sizeof(path)) == 0 && unlink(path) < 0 &&
		    errno != ENOENT)
			log_warn("evqueue", "%s: cannot remove an old rejected event", path);
	}
	free(names);
	free(r);
}

static int
fsync_path(const char *dir)
{
	int fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Moves name to "<dir>/rejected/" (created 0700), then makes both
 * directories durable (the new name first: a crash leaves the event in one
 * of them, never in none). 0 or -1 (logged). */
static int
evq_move_rejected(struct evq *q, const char *name, char *rdir, size_t rdirlen)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (evq_path(q, name, from, sizeof(from)) < 0 ||
	    evq_path(q, "rejected", rdir, rdirlen) < 0 ||
	    str_fmt(to, sizeof(to), "%s/%s", rdir, name) < 0)
		return -1;
	if (mkdir(rdir, 0700) == 0) {
		if (evq_fsync_dir(q) < 0)
			log_warn("evqueue", "%s: cannot fsync", q->dir);
	} else if (errno != EEXIST) {
		log_warn("evqueue", "%s: cannot create; event %s left in place", rdir, name);
		return -1;
	}
	if (rename(from, to) < 0) {
		if (errno != ENOENT)
			log_warn("evqueue", "%s: cannot move it to %s", from, rdir);
		return -1;
	}
	if (fsync_path(rdir) < 0)
		log_warn("evqueue", "%s: cannot fsync", rdir);
	if (evq_fsync_dir(q) < 0)
		log_warn("evqueue", "%s: cannot fsync", q->dir);
	return 0;
}

int
evq_reject_id(struct evq *q, const char *id, const char *why)
{
	struct evq_name *names = NULL;
	char rdir[PATH_MAX];
	size_t n = 0;
	int rc = -1;

	if (id == NULL || !id_valid(id))
		return -1;
	if (evq_scan(q, &names, &n, false) < 0) {
		log_warn("evqueue", "%s: cannot list", q->dir);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!name_has_id(names[i].s, id))
			continue;
		if ((rc = evq_move_rejected(q, names[i].s, rdir, sizeof(rdir))) == 0) {
			log_warnx("evqueue", "event %s: %s; moved to %s", id, why, rdir);
			evq_trim_rejected(rdir);
		}
		break;
	}
	free(names);
	return rc;
}

/* The id of the event_too_large report of event id: derived from it, so
 * that the report queued again after a crash (before the event was moved)
 * is the same event, recognised as a resend by the queue and the server. */
static int
report_id(const char *id, char out[EVQ_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char in[64];

	if (str_fmt(in, sizeof(in), "event_too_large:%s", id) < 0 ||
	    EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < EVQ_ID_LEN / 2)
		return -1;
	for (size_t i = 0; i < EVQ_ID_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[EVQ_ID_LEN] = '\0';
	return 0;
}

static bool
evq_has_id(const struct evq *q, const char *id)
{
	struct evq_name *names = NULL;
	size_t n = 0;
	bool found = false;

	if (evq_scan(q, &names, &n, false) < 0)
		return false;
	for (size_t i = 0; i < n && !found; i++)
		found = name_has_id(names[i].s, id);
	free(names);
	return found;
}

/* An event too large for any message: reported by a small event that says
 * so (queued first: a crash before the move queues the same report again,
 * recognised by its id), moved to "<dir>/rejected/" and counted. When it
 * cannot be moved it stays in the spool, held out of batches for this run:
 * reported and counted once all the same. */
static void
evq_reject(struct evq *q, const char *name, const json_t *ev, size_t size, size_t limit)
{
	char rdir[PATH_MAX], to[PATH_MAX], msg[512], err[256], rid[EVQ_ID_LEN + 1];
	const char *id = json_string_value(json_object_get(ev, "id"));
	const char *kind = json_string_value(json_object_get(ev, "kind"));
	bool moved, reported = true, again = false;
	uint64_t total = 0;
	int fd;

	if (evq_path(q, "rejected", rdir, sizeof(rdir)) < 0 ||
	    str_fmt(to, sizeof(to), "%s/%s", rdir, name) < 0)
		return;
	if (kind != NULL && strcmp(kind, "event_too_large") != 0) {
		str_fmt(msg, sizeof(msg), "event %s of kind %s (%zu bytes) was larger "
		    "than a message may be (%zu bytes); the agent kept it in %s", id,
		    kind, size, limit, rdir);
		json_t *data = json_pack("{s:s, s:s, s:I, s:I}", "id", id, "kind",
		    kind, "size", (json_int_t)size, "limit", (json_int_t)limit);
		json_t *rep = data ? evq_make_event("error", "event_too_large", msg,
		    data) : NULL;
		if (rep == NULL || report_id(id, rid) < 0 ||
		    json_object_set_new(rep, "id", json_string(rid)) < 0) {
			reported = false;
			str_copy(err, "out of memory", sizeof(err));
		} else if ((again = evq_has_id(q, rid)))
			;	/* queued before a crash: counted then */
		else if (evq_enqueue(q, rep, err, sizeof(err)) < 0)
			reported = false;
		if (!reported)
			log_warnx("evqueue", "%s: cannot queue the report of oversized "
			    "event %s: %s", q->dir, id, err);
		json_decref(rep);
		json_decref(data);
	}
	/* without its report the event stays (a later run reports it) */
	moved = reported && evq_move_rejected(q, name, rdir, sizeof(rdir)) == 0;
	if (!moved)
		evq_hold(q, id);
	if ((fd = evq_lock(q)) >= 0) {
		total = again ? counter_read(q, "oversized") : counter_add(q, "oversized", 1);
		evq_unlock(q, fd);
	}
	log_warnx("evqueue", "event %s (kind %s) is %zu bytes, more than the %zu "
	    "bytes a message to the server may carry; %s%s (%llu such event(s) so "
	    "far). Put less in its \"data\" or raise agent.max_frame and the "
	    "server's listen.max_frame", id, kind, size, limit,
	    moved ? "moved to " : "cannot be set aside: left in the spool and "
	    "not sent again until the agent restarts", moved ? to : "",
	    (unsigned long long)total);
	if (moved)
		evq_trim_rejected(rdir);
}

json_t *
evq_peek_batch(struct evq *q, size_t max, size_t max_bytes)
{
	struct evq_name *names = NULL;
	json_t *out, *ev;
	size_t n = 0, used = 0;

	if ((out = json_array()) == NULL)
		return NULL;
	if (max == 0)
		return out;
	if (evq_scan(q, &names, &n, true) < 0) {
		log_warn("evqueue", "%s: cannot list", q->dir);
		json_decref(out);
		return NULL;
	}
	for (size_t i = 0; i < n && json_array_size(out) < max; i++) {
		if (name_held(q, names[i].s) || (ev = evq_load(q, names[i].s)) == NULL)
			continue;
		size_t size = json_dumpb(ev, NULL, 0, JSON_COMPACT) + 1;
		if (max_bytes > 0 && size > max_bytes) {
			evq_reject(q, names[i].s, ev, size, max_bytes);
			json_decref(ev);
			continue;
		}
		if (max_bytes > 0 && used + size > max_bytes) {
			/* the next batch starts with it: order is kept */
			json_decref(ev);
			break;
		}
		used += size;
		if (json_array_append_new(out, ev) < 0) {
			json_decref(out);
			out = NULL;
			break;
		}
	}
	free(names);
	return out;
}

static int
id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, EVQ_ID_LEN);
}

size_t
evq_ack(struct evq *q, const char *const *ids, size_t n)
{
	struct evq_name *names = NULL;
	char (*want)[EVQ_ID_LEN] = NULL;
	char path[PATH_MAX];
	size_t nwant = 0, nnames = 0, removed = 0;

	if (ids == NULL || n == 0)
		return 0;
	if ((want = calloc(n, sizeof(*want))) == NULL) {
		log_warn("evqueue", "%s: ack of %zu events", q->dir, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (ids[i] != NULL && id_valid(ids[i]))
			memcpy(want[nwant++], ids[i], EVQ_ID_LEN);
	if (nwant == 0)
		goto out;
	qsort(want, nwant, sizeof(*want), id_cmp);
	if (evq_scan(q, &names, &nnames, false) < 0) {
		log_warn("evqueue", "%s: cannot list for ack", q->dir);
		goto out;
	}
	for (size_t i = 0; i < nnames; i++) {
		if (bsearch(names[i].s + EVQ_ID_OFF, want, nwant, sizeof(*want),
		    id_cmp) == NULL)
			continue;
		if (evq_path(q, names[i].s, path, sizeof(path)) < 0)
			continue;
		if (unlink(path) == 0)
			removed++;
		else if (errno != ENOENT)
			log_warn("evqueue", "%s: cannot remove acked event", path);
	}
	if (removed > 0 && evq_fsync_dir(q) < 0)
		log_warn("evqueue", "%s: cannot fsync after ack", q->dir);
out:
	free(names);
	free(want);
	return removed;
}

size_t
evq_count(struct evq *q)
{
	struct evq_name *names = NULL;
	size_t n = 0, held = 0;

	if (evq_scan(q, &names, &n, false) < 0) {
		log_warn("evqueue", "%s: cannot list", q->dir);
		return 0;
	}
	for (size_t i = 0; q->nheld > 0 && i < n; i++)
		held += name_held(q, names[i].s);
	free(names);
	return n - held;
}

uint64_t
evq_dropped(struct evq *q)
{
	return counter_read(q, "dropped");
}

uint64_t
evq_oversized(struct evq *q)
{
	return counter_read(q, "oversized");
}

const char *
evq_dir(const struct evq *q)
{
	return q->dir;
}
