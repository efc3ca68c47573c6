/* snapshot.c — see snapshot.h. */
#include "store/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <event2/event.h>

#include "hmap.h"
#include "log.h"
#include "core/naming.h"
#include "core/registry.h"
#include "core/server.h"
#include "util.h"

#define SNAPSHOT_FORMAT "custos-snapshot"
#define SNAPSHOT_VERSION 1
#define TICK_MS 1000

/* ---- the compact posture ---- */

/* The scalar members of an object (strings, numbers, booleans, null). */
static json_t *
scalars_of(const json_t *obj)
{
	json_t *out = json_object();
	const char *k;
	json_t *v;
	if (out == NULL)
		return NULL;
	json_object_foreach((json_t *)obj, k, v) {
		if (!json_is_object(v) && !json_is_array(v))
			json_object_set_new(out, k, json_deep_copy(v));
	}
	return out;
}

/* A string array's strings (the addresses of an interface). */
static json_t *
strings_of(const json_t *arr)
{
	json_t *out = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (json_is_string(v))
			json_array_append_new(out, json_string(json_string_value(v)));
	}
	return out;
}

/* Status reads antivirus[].{installed, rtp, db_time}, threats.unresolved
 * and system.reboot_required; NAC also system.interfaces[].{mac, ipv4,
 * ipv6}; the host listing the anti-virus scalars and the package count.
 * Everything is copied (the source may be read by other threads). */
json_t *
snapshot_compact_posture(const json_t *posture)
{
	if (!json_is_object(posture))
		return NULL;
	json_t *out = json_object();
	size_t i;
	json_t *v;
	if (out == NULL)
		return NULL;
	json_t *av = json_object_get(posture, "antivirus");
	if (json_is_array(av)) {
		json_t *list = json_array();
		json_array_foreach(av, i, v) {
			if (json_is_object(v))
				json_array_append_new(list, scalars_of(v));
		}
		json_object_set_new(out, "antivirus", list);
	}
	json_t *threats = json_object_get(posture, "threats");
	if (json_is_object(threats))
		json_object_set_new(out, "threats", scalars_of(threats));
	json_t *sys = json_object_get(posture, "system");
	if (json_is_object(sys)) {
		json_t *csys = scalars_of(sys);
		json_t *ifs = json_object_get(sys, "interfaces");
		if (csys && json_is_array(ifs)) {
			json_t *list = json_array();
			json_array_foreach(ifs, i, v) {
				if (!json_is_object(v))
					continue;
				json_t *e = json_object();
				static const char *const names[] = { "name", "mac" };
				for (size_t k = 0; k < ARRAY_LEN(names); k++) {
					json_t *s = json_object_get(v, names[k]);
					if (json_is_string(s))
						json_object_set_new(e, names[k], json_string(json_string_value(s)));
				}
				json_object_set_new(e, "ipv4", strings_of(json_object_get(v, "ipv4")));
				json_object_set_new(e, "ipv6", strings_of(json_object_get(v, "ipv6")));
				json_array_append_new(list, e);
			}
			json_object_set_new(csys, "interfaces", list);
		}
		json_object_set_new(out, "system", csys);
	}
	json_t *count = json_object_get(json_object_get(posture, "software"), "packages_count");
	if (json_is_integer(count))
		json_object_set_new(out, "software", json_pack("{s:I}", "packages_count",
		    json_integer_value(count)));
	return out;
}

/* ---- the file ---- */

static int
write_fail(char *err, size_t errlen, const char *what, const char *path)
{
	str_fmt(err, errlen, "%s %s: %s", what, path, strerror(errno));
	return -1;
}

/* One element of an array: ",\n" before every element but the first.
 * Serialised into memory first (json_dumpf writes token by token). */
static int
dump_item(FILE *f, json_t *j, size_t i)
{
	char buf[16384];
	if (j == NULL)
		return -1;
	int rc = 0;
	size_t n = json_dumpb(j, buf, sizeof(buf), JSON_COMPACT);
	if ((i > 0 && fputs(",\n", f) == EOF) || n == 0)
		rc = -1;
	else if (n <= sizeof(buf))
		rc = fwrite(buf, 1, n, f) == n ? 0 : -1;
	else
		rc = json_dumpf(j, f, JSON_COMPACT);
	json_decref(j);
	return rc;
}

/* Streamed host by host, so that 100,000 hosts never exist as one JSON
 * tree: at most one host's objects at a time. */
static int
write_body(FILE *f, const struct snapshot_data *d)
{
	if (fprintf(f, "{\"format\":\"%s\",\"version\":%d,\"time\":%lld,\"hosts_count\":%zu,\n\"admins\":[\n",
	    SNAPSHOT_FORMAT, SNAPSHOT_VERSION, (long long)d->time, d->nhosts) < 0)
		return -1;
	for (size_t i = 0; i < d->nadmins; i++) {
		const struct snapshot_admin *a = &d->admins[i];
		if (dump_item(f, json_pack("{s:s, s:s, s:s, s:i}", "name", a->name, "pw_hash", a->pw_hash,
		    "salt", a->salt, "iterations", a->iterations), i) < 0)
			return -1;
	}
	if (fputs("],\n\"hosts\":[\n", f) == EOF)
		return -1;
	for (size_t i = 0; i < d->nhosts; i++) {
		const struct snapshot_host *h = &d->hosts[i];
		json_t *posture = snapshot_compact_posture(h->posture);
		if (dump_item(f, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:i, s:o}",
		    "uid", h->uid, "name", h->name, "group_id", (json_int_t)h->group_id,
		    "enrolled_at", (json_int_t)h->enrolled_at, "last_seen", (json_int_t)h->last_seen,
		    "posture_time", (json_int_t)h->posture_time, "last_ip", h->last_ip,
		    "wake_port", h->wake_port, "posture", posture ? posture : json_null()), i) < 0)
			return -1;
	}
	return fputs("]}\n", f) == EOF ? -1 : 0;
}

int
snapshot_write_file(const char *path, const struct snapshot_data *d, char *err, size_t errlen)
{
	char tmp[4096];
	if (str_fmt(tmp, sizeof(tmp), "%s.tmp", path) < 0) {
		str_fmt(err, errlen, "path too long: %s", path);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return write_fail(err, errlen, "cannot create", tmp);
	/* an old temporary file keeps its mode through O_TRUNC */
	FILE *f = fchmod(fd, 0600) == 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		write_fail(err, errlen, "cannot open", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (write_body(f, d) < 0 || fflush(f) == EOF) {
		write_fail(err, errlen, "cannot write", tmp);
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fsync(fileno(f)) < 0) {
		write_fail(err, errlen, "cannot fsync", tmp);
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) == EOF) {
		write_fail(err, errlen, "cannot close", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		write_fail(err, errlen, "cannot rename to", path);
		unlink(tmp);
		return -1;
	}
	/* the new file is in place: only its durability across a power loss
	 * is in doubt, which is a warning, not a failed write */
	if (fsync_parent(path) < 0) {
		write_fail(err, errlen, "written, but cannot fsync the directory of", path);
		return 1;
	}
	return 0;
}

void
snapshot_data_free(struct snapshot_data *d)
{
	for (size_t i = 0; i < d->nhosts; i++)
		json_decref(d->hosts[i].posture);
	free(d->hosts);
	free(d->admins);
	memset(d, 0, sizeof(*d));
}

static bool
is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

/* A string member into dst (1..dstsz-1 bytes, or 0.. with empty_ok). */
static bool
take_str(char *dst, size_t dstsz, const char *src, bool empty_ok)
{
	size_t n = strlen(src);
	if ((n == 0 && !empty_ok) || n >= dstsz)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

static int
read_admin(json_t *j, struct snapshot_admin *a, char *why, size_t whylen)
{
	const char *name, *hash, *salt;
	json_error_t jerr;
	memset(a, 0, sizeof(*a));
	if (json_unpack_ex(j, &jerr, 0, "{s:s, s:s, s:s, s:i}", "name", &name, "pw_hash", &hash,
	    "salt", &salt, "iterations", &a->iterations) < 0) {
		str_fmt(why, whylen, "%s", jerr.text);
		return -1;
	}
	if (!take_str(a->name, sizeof(a->name), name, false) || strlen(hash) != 64 ||
	    !is_hex(hash, 64) || !take_str(a->salt, sizeof(a->salt), salt, false) || a->iterations <= 0 ||
	    a->iterations > SNAPSHOT_MAX_ITERATIONS) {
		str_fmt(why, whylen, "bad name, hash, salt or iteration count");
		return -1;
	}
	str_copy(a->pw_hash, hash, sizeof(a->pw_hash));
	return 0;
}

static int
read_host(json_t *j, struct snapshot_host *h, char *why, size_t whylen)
{
	const char *uid, *name, *ip;
	json_int_t group, enrolled, seen, ptime;
	json_t *posture;
	json_error_t jerr;
	memset(h, 0, sizeof(*h));
	if (json_unpack_ex(j, &jerr, 0, "{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:i, s:o}", "uid", &uid,
	    "name", &name, "group_id", &group, "enrolled_at", &enrolled, "last_seen", &seen,
	    "posture_time", &ptime, "last_ip", &ip, "wake_port", &h->wake_port, "posture", &posture) < 0) {
		str_fmt(why, whylen, "%s", jerr.text);
		return -1;
	}
	/* a uid is a certificate CN as enrolment issues it (32 lower-case hex
	 * digits); a name is cleaned as enrolment cleans the reported one */
	if (strlen(uid) != 32 || !is_hex(uid, 32) || name[0] == '\0' ||
	    !take_str(h->last_ip, sizeof(h->last_ip), ip, true)) {
		str_fmt(why, whylen, "a uid that is not 32 lower-case hex digits, an empty name or an overlong last_ip");
		return -1;
	}
	str_copy(h->uid, uid, sizeof(h->uid));
	naming_clean(name, h->name, sizeof(h->name));
	if (group < 0 || enrolled < 0 || seen < 0 || ptime < 0 || h->wake_port < 0 || h->wake_port > 65535 ||
	    (!json_is_object(posture) && !json_is_null(posture))) {
		str_fmt(why, whylen, "a negative time, id or port, or a posture that is no object");
		return -1;
	}
	h->group_id = (uint64_t)group;
	h->enrolled_at = enrolled;
	h->last_seen = seen;
	h->posture_time = ptime;
	h->posture = json_is_object(posture) ? json_incref(posture) : NULL;
	return 0;
}

static int
read_fail(char *err, size_t errlen, const char *fmt, const char *what)
{
	str_fmt(err, errlen, fmt, what);
	errno = EINVAL;
	return -1;
}

int
snapshot_read_file(const char *path, struct snapshot_data *d, char *err, size_t errlen)
{
	size_t len;
	char why[256];
	memset(d, 0, sizeof(*d));
	struct stat sb;
	/* refused before it is read: the parse needs several times the text */
	if (stat(path, &sb) == 0 && (uint64_t)sb.st_size > SNAPSHOT_MAX_BYTES) {
		str_fmt(err, errlen, "%s is %lld bytes, more than the %zu a snapshot may have", path,
		    (long long)sb.st_size, SNAPSHOT_MAX_BYTES);
		errno = EFBIG;
		return -1;
	}
	char *text = file_read(path, SNAPSHOT_MAX_BYTES, &len);
	if (text == NULL) {
		int e = errno;
		str_fmt(err, errlen, "cannot read %s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (root == NULL) {
		str_fmt(why, sizeof(why), "line %d: %s", jerr.line, jerr.text);
		return read_fail(err, errlen, "not a complete JSON document (%s)", why);
	}
	const char *format = "";
	int version = 0;
	json_int_t when = 0, count = -1;
	json_t *admins = NULL, *hosts = NULL;
	int rc = -1;
	if (json_unpack_ex(root, &jerr, 0, "{s:s, s:i, s:I, s:I, s:o, s:o}", "format", &format,
	    "version", &version, "time", &when, "hosts_count", &count, "admins", &admins,
	    "hosts", &hosts) < 0) {
		read_fail(err, errlen, "not a snapshot: %s", jerr.text);
		goto out;
	}
	if (strcmp(format, SNAPSHOT_FORMAT) != 0 || version != SNAPSHOT_VERSION) {
		read_fail(err, errlen, "format %s is not this version's", format);
		goto out;
	}
	if (when <= 0 || !json_is_array(admins) || !json_is_array(hosts) ||
	    (json_int_t)json_array_size(hosts) != count || count > SNAPSHOT_MAX_HOSTS) {
		read_fail(err, errlen, "%s", "a bad time, no admins or hosts array, or a host count that "
		    "does not match the list or is over SNAPSHOT_MAX_HOSTS");
		goto out;
	}
	d->time = when;
	size_t na = json_array_size(admins), nh = json_array_size(hosts);
	d->admins = calloc(na ? na : 1, sizeof(*d->admins));
	d->hosts = calloc(nh ? nh : 1, sizeof(*d->hosts));
	if (d->admins == NULL || d->hosts == NULL) {
		read_fail(err, errlen, "%s", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < na; i++, d->nadmins++) {
		if (read_admin(json_array_get(admins, i), &d->admins[i], why, sizeof(why)) < 0) {
			str_fmt(err, errlen, "administrator %zu: %s", i, why);
			errno = EINVAL;
			goto out;
		}
	}
	for (size_t i = 0; i < nh; i++, d->nhosts++) {
		if (read_host(json_array_get(hosts, i), &d->hosts[i], why, sizeof(why)) < 0) {
			str_fmt(err, errlen, "host %zu: %s", i, why);
			errno = EINVAL;
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(root);
	if (rc < 0) {
		int e = errno;
		snapshot_data_free(d);
		errno = e;
	}
	return rc;
}

/* ---- in the daemon ---- */

struct snapshot {
	struct server *srv;
	struct snapshot_hooks hooks; /* main.c's: served, hosts_reshaped, host_dropped, admins */
	char path[4096];
	struct event *tick, *done_ev;
	bool dirty;               /* something changed since the last collection */
	bool soon;                /* write at the next tick (after a load) */
	bool tried;               /* the file was read (at most once) */
	bool serving;             /* the registry came from the file */
	/* the read at start (its thread owns rd until read_ev) */
	bool reading;
	pthread_t reader;
	struct event *read_ev;
	struct snapshot_data rd;
	int rd_rc, rd_errno;
	char rd_err[768];
	char why[512];            /* why the database is unavailable */
	int64_t served_time;      /* the time of that snapshot */
	int64_t last_start_ms;    /* mono_ms of the last write's start */
	/* the write in flight (its thread owns job until done_ev) */
	bool writing;
	pthread_t thread;
	struct snapshot_data job;
	int job_rc;
	int64_t job_ms;
	char job_err[512];
	/* the last finished write */
	int64_t written;
	size_t written_hosts;
	int64_t write_ms;
	char error[512];
	uint64_t writes;
	/* snapshot hosts the database load did not have */
	size_t dropped, closed;
};

static bool
eligible(const struct snapshot *s)
{
	/* never replace a snapshot with less than it held: only a registry
	 * loaded from the database or from the snapshot itself is written */
	return s->srv->loaded || s->serving;
}

/* Main thread: the job's copy of what is written. */
static int
collect(struct snapshot *s, struct snapshot_data *d)
{
	struct server *srv = s->srv;
	size_t n;
	memset(d, 0, sizeof(*d));
	d->time = now_s();
	d->nadmins = s->hooks.admins_export ? s->hooks.admins_export(s->hooks.arg, &d->admins) : 0;
	struct host **all = registry_hosts(srv->reg, &n);
	if (all == NULL && n > 0)
		return -1;
	d->hosts = calloc(n ? n : 1, sizeof(*d->hosts));
	if (d->hosts == NULL) {
		free(all);
		free(d->admins);
		d->admins = NULL;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct host *h = all[i];
		struct snapshot_host *o = &d->hosts[d->nhosts++];
		str_copy(o->uid, h->uid, sizeof(o->uid));
		str_copy(o->name, h->name, sizeof(o->name));
		str_copy(o->last_ip, h->last_ip, sizeof(o->last_ip));
		o->group_id = h->group_id;
		o->enrolled_at = h->enrolled_at;
		o->last_seen = h->last_seen;
		o->posture_time = h->posture_time;
		o->wake_port = h->wake_port;
		/* postures are replaced, never edited; reference counts are atomic */
		o->posture = json_incref(h->posture);
	}
	free(all);
	return 0;
}

static void
finished(struct snapshot *s, int rc, const char *err, int64_t ms, size_t nhosts, size_t nadmins)
{
	if (rc >= 0) {
		if (rc > 0)
			log_warnx("snapshot", "%s", err);
		s->written = s->job.time;
		s->written_hosts = nhosts;
		s->write_ms = ms;
		if (s->error[0] || s->writes == 0)
			log_info("snapshot", "%zu host(s) and %zu administrator(s) written to %s in %lld ms",
			    nhosts, nadmins, s->path, (long long)ms);
		else
			log_debug("snapshot", "%zu host(s) written in %lld ms", nhosts, (long long)ms);
		s->error[0] = '\0';
		s->writes++;
	} else {
		if (strcmp(s->error, err) != 0)
			log_warnx("snapshot", "writing the snapshot failed: %s (the previous one stays)", err);
		str_copy(s->error, err, sizeof(s->error));
		s->dirty = true;
	}
}

static void *
write_thread(void *arg)
{
	struct snapshot *s = arg;
	/* a background chore: agents and NAC queries come first */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
		log_debug("snapshot", "could not lower the writer thread's priority");
	int64_t t0 = mono_ms();
	s->job_rc = snapshot_write_file(s->path, &s->job, s->job_err, sizeof(s->job_err));
	s->job_ms = mono_ms() - t0;
	event_active(s->done_ev, 0, 0);
	return NULL;
}

static void
job_end(struct snapshot *s)
{
	pthread_join(s->thread, NULL);
	s->writing = false;
	finished(s, s->job_rc, s->job_err, s->job_ms, s->job.nhosts, s->job.nadmins);
	snapshot_data_free(&s->job);
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	struct snapshot *s = arg;
	(void)fd;
	(void)what;
	if (s->writing)
		job_end(s);
}

static void
start_write(struct snapshot *s)
{
	s->dirty = s->soon = false;
	s->last_start_ms = mono_ms();
	if (collect(s, &s->job) < 0) {
		finished(s, -1, "out of memory", 0, 0, 0);
		return;
	}
	s->job_err[0] = '\0';
	s->writing = true;
	int e = pthread_create(&s->thread, NULL, write_thread, s);
	if (e != 0) {
		s->writing = false;
		char err[128];
		str_fmt(err, sizeof(err), "cannot start the writer thread: %s", strerror(e));
		finished(s, -1, err, 0, 0, 0);
		snapshot_data_free(&s->job);
	}
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct snapshot *s = arg;
	(void)fd;
	(void)what;
	if (s->writing || !s->dirty || !eligible(s))
		return;
	/* at most one write per interval, and a big fleet's write (about 2 s
	 * of CPU for 100,000 hosts) takes at most a twentieth of the time */
	int64_t gap = SNAPSHOT_INTERVAL_S * 1000;
	if (s->write_ms * 20 > gap)
		gap = s->write_ms * 20;
	if (!s->soon && s->writes > 0 && mono_ms() - s->last_start_ms < gap)
		return;
	start_write(s);
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void read_end(struct snapshot *s, bool apply);

void
snapshot_set_hooks(struct snapshot *s, const struct snapshot_hooks *hooks)
{
	s->hooks = *hooks;
}

struct snapshot *
snapshot_new(struct server *srv, const char *path, char *err, size_t errlen)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		str_fmt(err, errlen, "snapshot: out of memory");
		return NULL;
	}
	s->srv = srv;
	if (str_copy(s->path, path, sizeof(s->path)) >= sizeof(s->path)) {
		str_fmt(err, errlen, "snapshot: path too long: %s", path);
		free(s);
		return NULL;
	}
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	s->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, s);
	s->done_ev = event_new(srv->base, -1, 0, on_done, s);
	s->read_ev = event_new(srv->base, -1, 0, on_read, s);
	if (s->tick == NULL || s->done_ev == NULL || s->read_ev == NULL || event_add(s->tick, &tv) < 0) {
		str_fmt(err, errlen, "snapshot: cannot add its timers");
		snapshot_free(s);
		return NULL;
	}
	return s;
}

void
snapshot_free(struct snapshot *s)
{
	if (s == NULL)
		return;
	if (s->reading)
		read_end(s, false);
	if (s->writing)
		job_end(s);
	if (s->dirty && eligible(s) && s->srv->reg) {
		char err[512];
		int64_t t0 = mono_ms();
		if (collect(s, &s->job) < 0) {
			finished(s, -1, "out of memory", 0, 0, 0);
		} else {
			int rc = snapshot_write_file(s->path, &s->job, err, sizeof(err));
			s->writes = 0;     /* say it at stop */
			finished(s, rc, err, mono_ms() - t0, s->job.nhosts, s->job.nadmins);
			snapshot_data_free(&s->job);
		}
	}
	if (s->tick)
		event_free(s->tick);
	if (s->done_ev)
		event_free(s->done_ev);
	if (s->read_ev)
		event_free(s->read_ev);
	free(s);
}

void
snapshot_changed(struct server *srv)
{
	if (srv->snap)
		srv->snap->dirty = true;
}

/* Main thread: the read is in (rc, err, errno e); the hosts and the
 * administrators enter unless the database load came first. */
static void
apply_read(struct snapshot *s, int rc, const char *err, int e)
{
	struct server *srv = s->srv;
	struct snapshot_data *d = &s->rd;
	char when[32];
	if (rc < 0) {
		if (e == ENOENT)
			log_warnx("snapshot", "the database is unavailable (%s) and there is no snapshot %s: "
			    "starting empty until the database is back", s->why, s->path);
		else
			log_warnx("snapshot", "the database is unavailable (%s) and the snapshot is unusable: "
			    "%s; starting empty until the database is back", s->why, err);
		return;
	}
	if (srv->loaded) {
		log_info("snapshot", "the database load came in while the snapshot was read; not using it");
		snapshot_data_free(d);
		return;
	}
	int64_t now = now_s();
	size_t added = 0;
	size_t named = 0;
	for (size_t i = 0; i < d->nhosts; i++) {
		const struct snapshot_host *sh = &d->hosts[i];
		struct host *h = registry_host_by_uid(srv->reg, sh->uid);
		if (h != NULL) {
			/* an agent came first: its own report, contact and address
			 * are newer, but it has a made-up name and no group */
			if (h->id == 0 && !h->from_snapshot && strncmp(h->name, "pending-", 8) == 0) {
				if (registry_rename_host(srv->reg, h, sh->name) < 0) {
					log_warnx("snapshot", "host %s: name %s is taken; keeping %s", sh->uid, sh->name,
					    h->name);
				} else {
					h->group_id = sh->group_id;
					h->enrolled_at = sh->enrolled_at;
					if (h->posture == NULL && sh->posture) {
						h->posture = json_incref(sh->posture);
						h->posture_time = sh->posture_time;
					}
					if (h->last_ip[0] == '\0')
						str_copy(h->last_ip, sh->last_ip, sizeof(h->last_ip));
					if (h->wake_port == 0)
						h->wake_port = sh->wake_port;
					h->from_snapshot = true;
					host_evaluate(h, registry_thresholds(srv->reg, h), now);
					named++;
				}
			}
			continue;
		}
		h = calloc(1, sizeof(*h));
		if (h == NULL)
			break;
		str_copy(h->uid, sh->uid, sizeof(h->uid));
		str_copy(h->name, sh->name, sizeof(h->name));
		str_copy(h->last_ip, sh->last_ip, sizeof(h->last_ip));
		h->group_id = sh->group_id;
		h->enrolled_at = sh->enrolled_at;
		h->last_seen = sh->last_seen;
		h->posture_time = sh->posture_time;
		h->wake_port = sh->wake_port;
		h->posture = json_incref(sh->posture);
		h->from_snapshot = true;
		host_evaluate(h, registry_thresholds(srv->reg, h), now);
		if (registry_add_host(srv->reg, h) < 0) {
			log_warnx("snapshot", "host %s (%s): name or uid taken; not served from the snapshot",
			    sh->name, sh->uid);
			host_free(h);
			continue;
		}
		added++;
	}
	if (s->hooks.admins_seed)
		s->hooks.admins_seed(s->hooks.arg, d->admins, d->nadmins);
	s->serving = true;
	s->served_time = d->time;
	time_iso(d->time, when);
	log_warnx("snapshot", "serving from the snapshot of %s because the database is unavailable: %s "
	    "(%zu host(s), %zu administrator(s) from %s; nothing is written to the database until it "
	    "is back)", when, s->why, added + named, d->nadmins, s->path);
	if (named)
		log_info("snapshot", "%zu host(s) whose agents connected before the read took their names and "
		    "groups from the snapshot", named);
	snapshot_data_free(d);
	if (s->hooks.served)
		s->hooks.served(s->hooks.arg, now);
	if (s->hooks.hosts_reshaped)
		s->hooks.hosts_reshaped(s->hooks.arg);
}

/* Parsing 100,000 hosts takes seconds: off the main loop, which keeps
 * answering agents and NAC (Unknown until the hosts are in). */
static void *
read_thread(void *arg)
{
	struct snapshot *s = arg;
	s->rd_rc = snapshot_read_file(s->path, &s->rd, s->rd_err, sizeof(s->rd_err));
	s->rd_errno = s->rd_rc < 0 ? errno : 0;
	event_active(s->read_ev, 0, 0);
	return NULL;
}

static void
read_end(struct snapshot *s, bool apply)
{
	pthread_join(s->reader, NULL);
	s->reading = false;
	if (apply)
		apply_read(s, s->rd_rc, s->rd_err, s->rd_errno);
	snapshot_data_free(&s->rd);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct snapshot *s = arg;
	(void)fd;
	(void)what;
	if (s->reading)
		read_end(s, true);
}

void
snapshot_fallback(struct server *srv, const char *why)
{
	struct snapshot *s = srv->snap;
	if (s == NULL || srv->loaded || s->tried)
		return;
	s->tried = true;
	str_copy(s->why, why, sizeof(s->why));
	s->reading = true;
	int e = pthread_create(&s->reader, NULL, read_thread, s);
	if (e != 0) {
		log_warnx("snapshot", "cannot start the reader thread (%s); reading on the main thread",
		    strerror(e));
		s->reading = false;
		s->rd_rc = snapshot_read_file(s->path, &s->rd, s->rd_err, sizeof(s->rd_err));
		s->rd_errno = s->rd_rc < 0 ? errno : 0;
		apply_read(s, s->rd_rc, s->rd_err, s->rd_errno);
		snapshot_data_free(&s->rd);
	}
}

bool
snapshot_merge_host(struct host *mem, struct host *db, const struct status_thresholds *t, int64_t now)
{
	json_t *tmp;
	mem->from_snapshot = false;
	/* the agent reported (sync or events) while we served from the snapshot */
	bool live = mem->last_seen > db->last_seen;
	/* administration is the database's */
	mem->group_id = db->group_id;
	mem->placed = db->placed;
	mem->policy_version = db->policy_version;
	str_copy(mem->policy_hash, db->policy_hash, sizeof(mem->policy_hash));
	tmp = mem->local_settings;
	mem->local_settings = db->local_settings;
	db->local_settings = tmp;
	/* what the agent reports: the newer one */
	if (mem->tags == NULL) {
		mem->tags = db->tags;
		db->tags = NULL;
	}
	if (!live || mem->policy_applied == 0) {
		/* no report of the agent's (mgmt answers syncs only once loaded) */
		mem->policy_applied = db->policy_applied;
		tmp = mem->policy_errors;
		mem->policy_errors = db->policy_errors;
		db->policy_errors = tmp;
	}
	if (!live) {
		mem->last_seen = db->last_seen;
		str_copy(mem->last_ip, db->last_ip, sizeof(mem->last_ip));
		mem->wake_port = db->wake_port;
	}
	if (mem->posture == NULL || (db->posture && db->posture_time >= mem->posture_time)) {
		tmp = mem->posture;
		mem->posture = db->posture;
		db->posture = tmp;
		mem->posture_time = db->posture_time;
	}
	host_evaluate(mem, t, now);
	return live;
}

void
snapshot_db_loading(struct server *srv, struct host *const *rows, size_t nrows)
{
	struct snapshot *s = srv->snap;
	size_t n;
	if (s == NULL)
		return;
	s->dropped = s->closed = 0;
	struct hmap *loaded = hmap_new();
	struct host **all = registry_hosts(srv->reg, &n);
	for (size_t i = 0; loaded && i < nrows; i++)
		if (hmap_put(loaded, rows[i]->uid, rows[i], NULL) < 0) {
			hmap_free(loaded);
			loaded = NULL;
		}
	if (loaded == NULL || (all == NULL && n > 0)) {
		log_warnx("snapshot", "out of memory: snapshot hosts the database does not have stay for now");
		hmap_free(loaded);
		free(all);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct host *h = all[i];
		if (!h->from_snapshot || hmap_get(loaded, h->uid) != NULL)
			continue;
		/* in the snapshot, not in the database (deleted, or an older
		 * database restored): gone, as a deleted host, even while its
		 * agent is connected */
		if (h->connected)
			s->closed++;
		/* main.c's: the listener closes its connection (unknown_host),
		 * the store forgets it in the next write batch */
		if (s->hooks.host_dropped)
			s->hooks.host_dropped(s->hooks.arg, h);
		registry_remove_host(srv->reg, h);
		s->dropped++;
	}
	free(all);
	hmap_free(loaded);
	/* NAC's entries of the dropped hosts go */
	if (s->dropped && s->hooks.served)
		s->hooks.served(s->hooks.arg, now_s());
}

void
snapshot_db_loaded(struct server *srv)
{
	struct snapshot *s = srv->snap;
	if (s == NULL)
		return;
	size_t dropped = s->dropped, closed = s->closed;
	if (s->serving) {
		char when[32];
		time_iso(s->served_time, when);
		log_info("snapshot", "the database is back and loaded: no longer serving from the snapshot "
		    "of %s", when);
		if (dropped)
			log_warnx("snapshot", "%zu host(s) of the snapshot are not in the database: dropped "
			    "(%zu connected agent(s) closed with unknown_host)", dropped, closed);
		if (s->hooks.hosts_reshaped)
			s->hooks.hosts_reshaped(s->hooks.arg);
	}
	s->serving = false;
	s->dirty = s->soon = true;
}

void
snapshot_status(const struct server *srv, json_t *status)
{
	const struct snapshot *s = srv->snap;
	bool serving = s && s->serving && !srv->loaded;
	json_object_set_new(status, "source", json_string(srv->loaded ? "database" : serving ? "snapshot" : "none"));
	json_object_set_new(status, "snapshot_time", serving ? json_integer((json_int_t)s->served_time) : json_null());
	if (s == NULL)
		return;
	json_object_set_new(status, "snapshot", json_pack("{s:s, s:o, s:I, s:I, s:o}", "file", s->path,
	    "written", s->written ? json_integer((json_int_t)s->written) : json_null(),
	    "hosts", (json_int_t)s->written_hosts, "write_ms", (json_int_t)s->write_ms,
	    "error", s->error[0] ? json_string(s->error) : json_null()));
}
