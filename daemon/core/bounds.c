/* bounds.c — see bounds.h. The tables below list every field of an agent's
 * sync and events messages that is stored or kept; the sizes come from
 * the files in db/migrations. A utf8mb4 VARCHAR(N) holds N characters, so
 * those strings are cut at N characters (of up to 4 bytes; the store's row
 * buffers are sized for that); output_tail (a TEXT of which 4096 bytes are
 * kept) and the MEDIUMTEXT documents are measured in bytes, as the store
 * writes them (compact JSON). */
#include "core/bounds.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define MEDIUMTEXT_MAX 16777215u
#define LOG_EVERY_S 60

enum bound_type {
	B_STRING,       /* a string: cut at a character boundary */
	B_TAGS,         /* an array of strings: each cut, then the tags that fit */
	B_JSON,         /* a document stored as JSON text: when too large, an object
	                   is removed, a list keeps the entries that fit */
	B_INT           /* an integer for an INT column: clamped, or null */
};

enum bound_unit { U_BYTES, U_CHARS };

struct bound {
	const char *path;        /* dotted path in the message or the event */
	const char *column;      /* where it ends up, for the log line */
	enum bound_type type;
	enum bound_unit unit;    /* B_STRING, B_TAGS: what max and total count */
	size_t max;              /* a string, each tag, a document */
	size_t total;            /* B_TAGS: the list as JSON text */
	int64_t lo, hi;          /* B_INT: the column's range */
	bool to_null;            /* B_INT: out of range becomes null, else clamped */
	const char *left_out;    /* B_JSON: what a removed document means */
	const char *kind;        /* only in events of this kind (NULL: all) */
	int64_t last_log;
	uint64_t unlogged;
};

/* sync: wake_port is range-checked by the listener; agent_version,
 * queue_dropped, wake_dropped, tasks_hash and policy.hash are not kept.
 * The posture lives in memory without its package list and whole in
 * hosts.posture; the strings inside it are kept only as part of it. */
static struct bound sync_bounds[] = {
	{ .path = "tags", .column = "hosts.tags VARCHAR(1024), relocation tags VARCHAR(64)",
	  .type = B_TAGS, .unit = U_CHARS, .max = 64, .total = 1024 },
	{ .path = "posture", .column = "hosts.posture MEDIUMTEXT", .type = B_JSON, .max = MEDIUMTEXT_MAX,
	  .left_out = "the stored posture stays" },
	/* mgmt_on_sync keeps the stored list when errors is absent */
	{ .path = "policy.errors", .column = "hosts.policy_errors MEDIUMTEXT", .type = B_JSON,
	  .max = MEDIUMTEXT_MAX, .left_out = "the stored list stays" },
	{ .path = "policy.version", .column = "hosts.policy_applied_version INT", .type = B_INT,
	  .lo = INT32_MIN, .hi = INT32_MAX },
};

/* events: id, time and severity are validated by the listener (a bad one
 * refuses the message); data.state and data.task_id of a task_result are
 * checked by the store; started and ended go to BIGINT columns. output_tail,
 * run and exit_code come before data: data is measured with their bounded
 * values. */
static struct bound event_bounds[] = {
	{ .path = "kind", .column = "events.kind VARCHAR(64)", .type = B_STRING, .unit = U_CHARS, .max = 64 },
	{ .path = "message", .column = "events.message VARCHAR(1024)", .type = B_STRING, .unit = U_CHARS,
	  .max = 1024 },
	{ .path = "data.output_tail", .column = "task_results.output_tail, 4096 bytes kept", .type = B_STRING,
	  .unit = U_BYTES, .max = 4096 },
	{ .path = "data.run", .column = "task_results.run INT", .type = B_INT, .lo = INT32_MIN,
	  .hi = INT32_MAX, .kind = "task_result" },
	{ .path = "data.exit_code", .column = "task_results.exit_code INT", .type = B_INT,
	  .lo = INT32_MIN, .hi = INT32_MAX, .to_null = true, .kind = "task_result" },
	{ .path = "data", .column = "events.data MEDIUMTEXT", .type = B_JSON, .max = MEDIUMTEXT_MAX,
	  .left_out = "the event is stored without it" },
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

size_t
bounds_utf8_cut_chars(const char *s, size_t len, size_t max)
{
	size_t chars = 0;
	for (size_t i = 0; i < len; i++) {
		/* a character starts at every byte that is not a continuation */
		if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max)
			return i;
	}
	return len;
}

size_t
bounds_utf8_chars(const char *s, size_t len)
{
	size_t chars = 0;
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char)s[i] & 0xC0) != 0x80;
	return chars;
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

/* Bytes of v as the store writes it (json_dumps with JSON_COMPACT): jansson
 * may write a number longer than it was received (1e-7 becomes
 * 9.9999999999999995e-08), so a document is always measured. */
static size_t
json_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Characters of v as compact JSON text (tags go to a VARCHAR). */
static size_t
json_chars(const json_t *v)
{
	char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = t ? bounds_utf8_chars(t, strlen(t)) : SIZE_MAX / 2;
	free(t);
	return n;
}

static size_t
str_cut(const struct bound *b, const char *s, size_t len)
{
	return b->unit == U_CHARS ? bounds_utf8_cut_chars(s, len, b->max) : bounds_utf8_cut(s, len, b->max);
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
		size_t k = str_cut(b, s, len);
		json_t *nt = k < len ? json_stringn(s, k) : json_incref(t);
		cut += k < len;
		size_t add = nt ? json_chars(nt) + (kept ? 1 : 0) : 0;
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
	str_fmt(detail, sizeof(detail), "kept %zu of %zu tag(s) (%zu cut to %zu characters), %zu characters of %zu",
	    kept, n, cut, b->max, size, b->total);
	json_array_clear(v);
	json_array_extend(v, out);
	json_decref(out);
	cnt->truncated++;
	bound_log(b, what, host, detail);
}

static void
bounds_apply(struct bound *table, size_t ntable, const char *what, json_t *root, const char *host,
    struct bounds_count *cnt)
{
	char key[64], detail[160];
	for (size_t i = 0; i < ntable; i++) {
		struct bound *b = &table[i];
		json_t *parent = NULL;
		if (b->kind != NULL) {
			const char *k = json_string_value(json_object_get(root, "kind"));
			if (k == NULL || strcmp(k, b->kind) != 0)
				continue;
		}
		json_t *v = bound_lookup(root, b->path, &parent, key, sizeof(key));
		if (v == NULL)
			continue;
		switch (b->type) {
		case B_STRING: {
			const char *s = json_string_value(v);
			size_t len = json_string_length(v);
			if (s == NULL || len <= b->max)
				break;   /* a character is at least a byte */
			size_t k = str_cut(b, s, len);
			if (k == len)
				break;
			str_fmt(detail, sizeof(detail), "%zu bytes cut to %zu (%zu %s)", len, k, b->max,
			    b->unit == U_CHARS ? "characters" : "bytes");
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
		case B_INT: {
			if (!json_is_integer(v))
				break;
			json_int_t x = json_integer_value(v);
			if (x >= b->lo && x <= b->hi)
				break;
			if (b->to_null) {
				str_fmt(detail, sizeof(detail), "%lld is out of range; stored as null", (long long)x);
				json_object_set_new(parent, key, json_null());
			} else {
				json_int_t c = x < b->lo ? b->lo : b->hi;
				str_fmt(detail, sizeof(detail), "%lld is out of range; stored as %lld", (long long)x,
				    (long long)c);
				json_integer_set(v, c);
			}
			cnt->truncated++;
			bound_log(b, what, host, detail);
			break;
		}
		case B_JSON: {
			size_t size = json_size(v);
			if (size <= b->max)
				break;
			size_t n = json_array_size(v), keep = 0, sz = 2;
			if (json_is_array(v)) {
				/* a list (policy errors): the entries that fit */
				while (keep < n) {
					size_t add = json_size(json_array_get(v, keep)) + (keep ? 1 : 0);
					if (sz + add > b->max)
						break;
					sz += add;
					keep++;
				}
			}
			if (keep > 0) {
				while (json_array_size(v) > keep)
					json_array_remove(v, json_array_size(v) - 1);
				str_fmt(detail, sizeof(detail), "%zu bytes; kept the first %zu of %zu entries",
				    size, keep, n);
				cnt->truncated++;
			} else {
				/* an object, or a list whose first entry is too large */
				str_fmt(detail, sizeof(detail), "%zu bytes; left out (%s)", size, b->left_out);
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
bounds_sync(json_t *msg, const char *host, struct bounds_count *cnt)
{
	bounds_apply(sync_bounds, ARRAY_LEN(sync_bounds), "sync", msg, host, cnt);
}

void
bounds_event(json_t *ev, const char *host, struct bounds_count *cnt)
{
	bounds_apply(event_bounds, ARRAY_LEN(event_bounds), "event", ev, host, cnt);
}

void
bounds_reset_log(void)
{
	for (size_t i = 0; i < ARRAY_LEN(sync_bounds); i++)
		sync_bounds[i].last_log = 0, sync_bounds[i].unlogged = 0;
	for (size_t i = 0; i < ARRAY_LEN(event_bounds); i++)
		event_bounds[i].last_log = 0, event_bounds[i].unlogged = 0;
}
