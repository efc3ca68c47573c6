/* bounds.c — see bounds.h. The tables below list every field of an agent's
 * sync and events messages that is stored or kept; the sizes come from
 * the files in db/migrations. Limits are in bytes: a utf8mb4 VARCHAR(N) holds N
 * characters, so N bytes always fit, and the store's fixed row buffers
 * (event kind and message) are sized in bytes. */
#include "bounds.h"

#include <stdbool.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define MEDIUMTEXT_MAX 16777215u
#define LOG_EVERY_S 60

enum bound_type {
	B_STRING,       /* a string: cut at a character boundary */
	B_TAGS,         /* an array of strings: each cut, then the tags that fit */
	B_JSON          /* a document stored as JSON text: when too large, an object
	                   is removed, a list keeps the entries that fit */
};

struct bound {
	const char *path;        /* dotted path in the message or the event */
	const char *column;      /* where it ends up, for the log line */
	enum bound_type type;
	size_t max;              /* bytes of a string, of each tag, of a document */
	size_t total;            /* B_TAGS: bytes of the list as JSON text */
	int64_t last_log;
	uint64_t unlogged;
};

/* sync: wake_port is range-checked by the listener; agent_version,
 * queue_dropped, wake_dropped, tasks_hash and policy.hash are not kept.
 * The posture lives in memory without its package list and whole in
 * hosts.posture; the strings inside it are kept only as part of it. */
static struct bound sync_bounds[] = {
	{ "tags", "hosts.tags VARCHAR(1024), relocation tags 64", B_TAGS, 64, 1024, 0, 0 },
	{ "posture", "hosts.posture MEDIUMTEXT", B_JSON, MEDIUMTEXT_MAX, 0, 0, 0 },
	{ "policy.errors", "hosts.policy_errors MEDIUMTEXT", B_JSON, MEDIUMTEXT_MAX, 0, 0, 0 },
};

/* events: id, time and severity are validated by the listener (a bad one
 * refuses the message); data.state of a task_result is checked against the
 * known states by the store. output_tail comes before data: data is
 * measured with the cut tail. */
static struct bound event_bounds[] = {
	{ "kind", "events.kind VARCHAR(64)", B_STRING, 64, 0, 0, 0 },
	{ "message", "events.message VARCHAR(1024)", B_STRING, 1024, 0, 0, 0 },
	{ "data.output_tail", "task_results.output_tail, 4096 bytes kept", B_STRING, 4096, 0, 0, 0 },
	{ "data", "events.data MEDIUMTEXT", B_JSON, MEDIUMTEXT_MAX, 0, 0, 0 },
};

size_t
bounds_utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	/* s[n] is the first byte left out: never the middle of a character */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* The value at path and the object holding it (NULL when absent). */
static json_t *
bound_lookup(json_t *root, const char *path, json_t **parent, char *key, size_t keylen)
{
	json_t *obj = root;
	const char *p = path;
	for (;;) {
		size_t n = strcspn(p, ".");
		if (n >= keylen || !json_is_object(obj))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		json_t *v = json_object_get(obj, key);
		if (p[n] == '\0') {
			*parent = obj;
			return v;
		}
		obj = v;
		p += n + 1;
	}
}

static void
bound_log(struct bound *b, const char *what, const char *host, const char *detail)
{
	int64_t now = now_s();
	if (b->last_log != 0 && now - b->last_log < LOG_EVERY_S) {
		b->unlogged++;
		return;
	}
	char more[64] = "";
	if (b->unlogged > 0)
		str_fmt(more, sizeof(more), " (and %llu more in this field since the last line)",
		    (unsigned long long)b->unlogged);
	log_warnx("agent", "host %s: %s field %s is larger than its column (%s): %s%s", host, what,
	    b->path, b->column, detail, more);
	b->last_log = now;
	b->unlogged = 0;
}

static size_t
json_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void
bound_tags(struct bound *b, const char *what, json_t *v, const char *host, struct bounds_count *cnt)
{
	size_t n = json_array_size(v), kept = 0, size = 2, cut = 0;
	bool changed = false;
	json_t *out = json_array();
	if (out == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(v, i);
		const char *s = json_string_value(t);
		if (s == NULL) {
			changed = true;
			continue;
		}
		size_t len = json_string_length(t);
		size_t k = bounds_utf8_cut(s, len, b->max);
		json_t *nt = k < len ? json_stringn(s, k) : json_incref(t);
		cut += k < len;
		size_t add = json_size(nt) + (kept ? 1 : 0);
		if (nt == NULL || size + add > b->total) {
			json_decref(nt);
			changed = true;
			break;
		}
		size += add;
		json_array_append_new(out, nt);
		kept++;
	}
	if (!changed && cut == 0) {
		json_decref(out);
		return;
	}
	char detail[160];
	str_fmt(detail, sizeof(detail), "kept %zu of %zu tag(s) (%zu cut to %zu bytes), %zu bytes of %zu",
	    kept, n, cut, b->max, size, b->total);
	json_array_clear(v);
	json_array_extend(v, out);
	json_decref(out);
	cnt->truncated++;
	bound_log(b, what, host, detail);
}

static void
bounds_apply(struct bound *table, size_t ntable, const char *what, json_t *root, const char *host,
    size_t max_frame, struct bounds_count *cnt)
{
	char key[64], detail[160];
	for (size_t i = 0; i < ntable; i++) {
		struct bound *b = &table[i];
		json_t *parent = NULL;
		json_t *v = bound_lookup(root, b->path, &parent, key, sizeof(key));
		if (v == NULL)
			continue;
		switch (b->type) {
		case B_STRING: {
			const char *s = json_string_value(v);
			size_t len = json_string_length(v);
			if (s == NULL || len <= b->max)
				break;
			size_t k = bounds_utf8_cut(s, len, b->max);
			str_fmt(detail, sizeof(detail), "%zu bytes cut to %zu", len, k);
			if (json_string_setn(v, s, k) < 0)
				break;
			cnt->truncated++;
			bound_log(b, what, host, detail);
			break;
		}
		case B_TAGS:
			if (json_is_array(v))
				bound_tags(b, what, v, host, cnt);
			break;
		case B_JSON: {
			/* a frame smaller than the column cannot hold a larger
			 * document: measuring would only cost time */
			if (max_frame <= b->max)
				break;
			size_t size = json_size(v);
			if (size <= b->max)
				break;
			if (json_is_array(v)) {
				/* a list (policy errors): the entries that fit */
				size_t n = json_array_size(v), keep = 0, sz = 2;
				while (keep < n) {
					size_t add = json_size(json_array_get(v, keep)) + (keep ? 1 : 0);
					if (sz + add > b->max)
						break;
					sz += add;
					keep++;
				}
				while (json_array_size(v) > keep)
					json_array_remove(v, json_array_size(v) - 1);
				str_fmt(detail, sizeof(detail), "%zu bytes; kept the first %zu of %zu entries",
				    size, keep, n);
				cnt->truncated++;
			} else {
				str_fmt(detail, sizeof(detail), "%zu bytes; left out (the stored value stays)", size);
				json_object_del(parent, key);
				cnt->dropped++;
			}
			bound_log(b, what, host, detail);
			break;
		}
		}
	}
}

void
bounds_sync(json_t *msg, const char *host, size_t max_frame, struct bounds_count *cnt)
{
	bounds_apply(sync_bounds, ARRAY_LEN(sync_bounds), "sync", msg, host, max_frame, cnt);
}

void
bounds_event(json_t *ev, const char *host, size_t max_frame, struct bounds_count *cnt)
{
	bounds_apply(event_bounds, ARRAY_LEN(event_bounds), "event", ev, host, max_frame, cnt);
}

void
bounds_reset_log(void)
{
	for (size_t i = 0; i < ARRAY_LEN(sync_bounds); i++)
		sync_bounds[i].last_log = 0, sync_bounds[i].unlogged = 0;
	for (size_t i = 0; i < ARRAY_LEN(event_bounds); i++)
		event_bounds[i].last_log = 0, event_bounds[i].unlogged = 0;
}
