/* test_registry.c — unit tests for daemon/registry.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/naming.h"
#include "daemon/core/registry.h"
#include "util.h"

#define NOW ((int64_t)1750000000)

static struct host *
mkhost(const char *uid, const char *name)
{
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	str_copy(h->uid, uid, sizeof(h->uid));
	str_copy(h->name, name, sizeof(h->name));
	return h;
}

static void
uid_of(int i, char out[33])
{
	assert_true(str_fmt(out, 33, "%032x", i) == 32);
}

static int
setup(void **state)
{
	struct registry *r = registry_new();
	*state = r;
	return r != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	registry_free(*state);
	return 0;
}

static void
test_add_find(void **state)
{
	struct registry *r = *state;
	char uid[33];

	assert_int_equal(registry_host_count(r), 0);
	assert_null(registry_host_by_uid(r, "nope"));
	assert_null(registry_host_by_name(r, "nope"));

	for (int i = 0; i < 3; i++) {
		char name[16];
		uid_of(i, uid);
		assert_true(str_fmt(name, sizeof(name), "web-%d", i) > 0);
		assert_int_equal(registry_add_host(r, mkhost(uid, name)), 0);
	}
	assert_int_equal(registry_host_count(r), 3);
	uid_of(1, uid);
	struct host *h = registry_host_by_uid(r, uid);
	assert_non_null(h);
	assert_string_equal(h->name, "web-1");
	assert_ptr_equal(registry_host_by_name(r, "web-1"), h);
	assert_true(registry_name_taken("web-1", r));
	assert_false(registry_name_taken("web-9", r));
	assert_false(registry_name_taken("WEB-1", r));

	/* remove: gone from both indexes, the others stay */
	registry_remove_host(r, h);
	assert_int_equal(registry_host_count(r), 2);
	assert_null(registry_host_by_uid(r, uid));
	assert_null(registry_host_by_name(r, "web-1"));
	assert_false(registry_name_taken("web-1", r));
	assert_non_null(registry_host_by_name(r, "web-0"));
	assert_non_null(registry_host_by_name(r, "web-2"));
	/* its uid and name are free again */
	assert_int_equal(registry_add_host(r, mkhost(uid, "web-1")), 0);
	assert_int_equal(registry_host_count(r), 3);
}

static void
test_duplicates(void **state)
{
	struct registry *r = *state;
	char uid1[33], uid2[33], uid3[33];
	uid_of(1, uid1);
	uid_of(2, uid2);
	uid_of(3, uid3);

	struct host *a = mkhost(uid1, "alpha");
	assert_int_equal(registry_add_host(r, a), 0);

	/* same uid, other name */
	struct host *b = mkhost(uid1, "beta");
	assert_int_equal(registry_add_host(r, b), -1);
	host_free(b);
	/* other uid, same name */
	struct host *c = mkhost(uid2, "alpha");
	assert_int_equal(registry_add_host(r, c), -1);
	host_free(c);
	/* the same host twice */
	assert_int_equal(registry_add_host(r, a), -1);

	/* nothing changed */
	assert_int_equal(registry_host_count(r), 1);
	assert_ptr_equal(registry_host_by_uid(r, uid1), a);
	assert_ptr_equal(registry_host_by_name(r, "alpha"), a);
	assert_null(registry_host_by_name(r, "beta"));
	assert_null(registry_host_by_uid(r, uid2));

	struct host *d = mkhost(uid3, "beta");
	assert_int_equal(registry_add_host(r, d), 0);
	assert_int_equal(registry_host_count(r), 2);
}

static void
test_rename(void **state)
{
	struct registry *r = *state;
	char uid1[33], uid2[33];
	uid_of(1, uid1);
	uid_of(2, uid2);
	struct host *a = mkhost(uid1, "alpha"), *b = mkhost(uid2, "beta");
	assert_int_equal(registry_add_host(r, a), 0);
	assert_int_equal(registry_add_host(r, b), 0);

	assert_int_equal(registry_rename_host(r, a, "gamma"), 0);
	assert_string_equal(a->name, "gamma");
	assert_ptr_equal(registry_host_by_name(r, "gamma"), a);
	assert_null(registry_host_by_name(r, "alpha"));
	assert_ptr_equal(registry_host_by_uid(r, uid1), a);

	/* to its own name: no-op */
	assert_int_equal(registry_rename_host(r, a, "gamma"), 0);
	assert_ptr_equal(registry_host_by_name(r, "gamma"), a);

	/* to a taken name: refused, nothing changes */
	assert_int_equal(registry_rename_host(r, a, "beta"), -1);
	assert_string_equal(a->name, "gamma");
	assert_ptr_equal(registry_host_by_name(r, "beta"), b);
	assert_ptr_equal(registry_host_by_name(r, "gamma"), a);

	/* the old name can be taken by someone else now */
	assert_int_equal(registry_rename_host(r, b, "alpha"), 0);
	assert_ptr_equal(registry_host_by_name(r, "alpha"), b);
	assert_null(registry_host_by_name(r, "beta"));
	assert_int_equal(registry_host_count(r), 2);
}

/* A name longer than a host's name field must not be cut into another
 * host's name behind the uniqueness check. */
static void
test_rename_long(void **state)
{
	struct registry *r = *state;
	char uid1[33], uid2[33], long_name[80], base[64];
	uid_of(1, uid1);
	uid_of(2, uid2);
	memset(base, 'n', 63);
	base[63] = '\0';
	assert_true(str_fmt(long_name, sizeof(long_name), "%s-extra", base) > 0);

	struct host *a = mkhost(uid1, base), *b = mkhost(uid2, "short");
	assert_string_equal(a->name, base);
	assert_int_equal(registry_add_host(r, a), 0);
	assert_int_equal(registry_add_host(r, b), 0);

	(void)registry_rename_host(r, b, long_name);
	/* whatever happened, the indexes still agree with the hosts */
	assert_ptr_equal(registry_host_by_name(r, a->name), a);
	assert_ptr_equal(registry_host_by_name(r, b->name), b);
	assert_string_not_equal(a->name, b->name);
	assert_int_equal(registry_rename_host(r, b, long_name), -1);
	assert_string_equal(b->name, "short");
}

static void
test_hosts_sorted(void **state)
{
	struct registry *r = *state;
	static const char *const names[] = { "mail", "Zeta", "db-10", "db-2", "alpha", "db-1", "web" };
	size_t n = 99;

	struct host **none = registry_hosts_sorted(r, &n);
	assert_int_equal(n, 0);
	free(none);

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		char uid[33];
		uid_of((int)i + 100, uid);
		assert_int_equal(registry_add_host(r, mkhost(uid, names[i])), 0);
	}
	struct host **v = registry_hosts_sorted(r, &n);
	assert_non_null(v);
	assert_int_equal(n, ARRAY_LEN(names));
	/* byte order: upper case first, "db-10" before "db-2" */
	static const char *const want[] = { "Zeta", "alpha", "db-1", "db-10", "db-2", "mail", "web" };
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i]->name, want[i]);
	free(v);

	/* many hosts: strictly increasing, each once */
	for (int i = 0; i < 2000; i++) {
		char uid[33], name[32];
		uid_of(1000 + i, uid);
		assert_true(str_fmt(name, sizeof(name), "h%05d", (i * 7919) % 2000) > 0);
		assert_int_equal(registry_add_host(r, mkhost(uid, name)), 0);
	}
	v = registry_hosts_sorted(r, &n);
	assert_int_equal(n, ARRAY_LEN(names) + 2000);
	assert_int_equal(registry_host_count(r), n);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(v[i - 1]->name, v[i]->name) < 0);
	free(v);
}

/* registry_name_taken works as naming_unique's callback. */
static void
test_naming_with_registry(void **state)
{
	struct registry *r = *state;
	char out[64], uid[33];

	assert_int_equal(naming_unique("web", registry_name_taken, r, out, sizeof(out)), 0);
	assert_string_equal(out, "web");
	for (int i = 0; i < 4; i++) {
		assert_int_equal(naming_unique("web", registry_name_taken, r, out, sizeof(out)), 0);
		uid_of(i, uid);
		assert_int_equal(registry_add_host(r, mkhost(uid, out)), 0);
	}
	assert_string_equal(out, "web-3");
	assert_non_null(registry_host_by_name(r, "web"));
	assert_non_null(registry_host_by_name(r, "web-1"));
}

static void
test_posture(void **state)
{
	struct registry *r = *state;
	struct status_thresholds t;
	char uid[33];
	status_defaults(&t);
	uid_of(7, uid);
	struct host *h = mkhost(uid, "ws");
	h->last_seen = NOW - 10;
	assert_int_equal(registry_add_host(r, h), 0);

	host_evaluate(h, &t, NOW);
	assert_int_equal(h->st.status, STATUS_WARNING);
	assert_int_equal(h->st.reasons, REASON_NO_POSTURE);

	json_t *p = json_pack("{s:[{s:s, s:b, s:b, s:I}], s:{s:i}, s:{s:b}}",
	    "antivirus", "name", "clamav", "installed", 1, "rtp", 1, "db_time", (json_int_t)(NOW - 100),
	    "threats", "unresolved", 0, "system", "reboot_required", 0);
	assert_non_null(p);
	host_set_posture(h, p, NOW - 5, &t, NOW);
	assert_ptr_equal(h->posture, p);
	assert_int_equal(h->posture_time, NOW - 5);
	assert_int_equal(h->st.status, STATUS_OK);
	assert_int_equal(h->st.reasons, 0);
	assert_true(h->sin.av_installed);

	/* replacing the posture frees the old one (ASan would tell) */
	json_t *p2 = json_pack("{s:[], s:{s:i}}", "antivirus", "threats", "unresolved", 2);
	host_set_posture(h, p2, NOW, &t, NOW);
	assert_int_equal(h->st.status, STATUS_CRITICAL);
	assert_int_equal(h->st.reasons, REASON_NO_AV | REASON_THREATS);
	/* registry_free (teardown) frees the host and its posture */
}

/* ---- the package list stays out of memory ---- */

static json_t *
pkgs(int n)
{
	json_t *a = json_array();
	assert_non_null(a);
	for (int i = 0; i < n; i++) {
		char name[32];
		str_fmt(name, sizeof(name), "pkg%d", i);
		assert_int_equal(json_array_append_new(a, json_pack("{s:s, s:s}", "name", name,
		    "version", "1.0-1")), 0);
	}
	return a;
}

static void
test_strip_array(void **state)
{
	(void)state;
	/* the agent's form: "software" is the package array */
	json_t *full = json_pack("{s:{s:s}, s:[{s:s}], s:o, s:{s:i}}", "system", "kernel", "6.1",
	    "antivirus", "name", "clamav", "software", pkgs(3), "threats", "unresolved", 1);
	assert_non_null(full);
	json_t *before = json_deep_copy(full);
	json_t *s = posture_strip_packages(full);
	assert_non_null(s);
	assert_ptr_not_equal(s, full);
	assert_null(posture_packages(s));
	json_t *sw = json_object_get(s, "software");
	assert_true(json_is_object(sw));
	assert_int_equal(json_object_size(sw), 1);
	assert_int_equal(json_integer_value(json_object_get(sw, "packages_count")), 3);
	/* the other members are the very same (shared, not copied) */
	assert_int_equal(json_object_size(s), 4);
	assert_ptr_equal(json_object_get(s, "system"), json_object_get(full, "system"));
	assert_ptr_equal(json_object_get(s, "antivirus"), json_object_get(full, "antivirus"));
	assert_ptr_equal(json_object_get(s, "threats"), json_object_get(full, "threats"));
	/* the full document is left as it was */
	assert_true(json_equal(full, before));
	assert_int_equal(json_array_size(posture_packages(full)), 3);
	json_decref(full);
	/* the stripped copy outlives the full one */
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "system"), "kernel")), "6.1");
	/* stripping a stripped posture changes nothing */
	json_t *again = posture_strip_packages(s);
	assert_ptr_equal(again, s);
	json_decref(again);
	json_decref(s);
	json_decref(before);
}

static void
test_strip_object(void **state)
{
	(void)state;
	/* an object with a "packages" array keeps its other members */
	json_t *full = json_pack("{s:{s:o, s:s, s:i}, s:{s:i}}", "software", "packages", pkgs(2),
	    "source", "dpkg", "packages_count", 99, "threats", "unresolved", 0);
	assert_non_null(full);
	json_t *s = posture_strip_packages(full);
	json_t *sw = json_object_get(s, "software");
	assert_null(json_object_get(sw, "packages"));
	assert_int_equal(json_integer_value(json_object_get(sw, "packages_count")), 2);
	assert_string_equal(json_string_value(json_object_get(sw, "source")), "dpkg");
	assert_int_equal(json_object_size(sw), 2);
	assert_ptr_equal(json_object_get(s, "threats"), json_object_get(full, "threats"));
	/* the original software object still has its list */
	assert_int_equal(json_array_size(json_object_get(json_object_get(full, "software"), "packages")), 2);
	assert_ptr_equal(posture_packages(full), json_object_get(json_object_get(full, "software"), "packages"));
	json_decref(s);
	json_decref(full);

	/* an empty list is stripped too: count 0 */
	full = json_pack("{s:[]}", "software");
	s = posture_strip_packages(full);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "software"), "packages_count")), 0);
	json_decref(s);
	json_decref(full);
}

static void
test_strip_untouched(void **state)
{
	(void)state;
	const char *docs[] = {
		"{\"system\": {\"kernel\": \"6.1\"}, \"threats\": {\"unresolved\": 0}}", /* no software */
		"{\"software\": \"dpkg is broken\"}",                  /* not an array or object */
		"{\"software\": 42}",
		"{\"software\": null}",
		"{\"software\": {\"packages\": \"none\"}}",              /* packages not an array */
		"{\"software\": {\"packages\": {\"a\": 1}}}",
		"{\"software\": {\"packages_count\": 5}}",              /* already stripped */
		"[{\"software\": []}]",                                  /* not an object */
		"\"posture\"",
	};
	for (size_t i = 0; i < ARRAY_LEN(docs); i++) {
		json_t *p = json_loads(docs[i], JSON_DECODE_ANY, NULL);
		assert_non_null(p);
		json_t *before = json_deep_copy(p);
		size_t refs = p->refcount;
		json_t *s = posture_strip_packages(p);
		assert_ptr_equal(s, p);
		assert_int_equal(p->refcount, refs + 1);
		assert_true(json_equal(p, before));
		assert_null(posture_packages(p));
		json_decref(s);
		json_decref(p);
		json_decref(before);
	}
	assert_null(posture_strip_packages(NULL));
	assert_null(posture_packages(NULL));
}

static void
test_set_posture_strips(void **state)
{
	struct registry *r = *state;
	struct status_thresholds t;
	char uid[33];
	status_defaults(&t);
	uid_of(8, uid);
	struct host *h = mkhost(uid, "pk");
	assert_int_equal(registry_add_host(r, h), 0);
	json_t *p = json_pack("{s:[{s:s, s:b, s:b, s:I}], s:{s:i}, s:o}",
	    "antivirus", "name", "clamav", "installed", 1, "rtp", 1, "db_time", (json_int_t)(NOW - 100),
	    "threats", "unresolved", 0, "software", pkgs(1500));
	assert_non_null(p);
	host_set_posture(h, p, NOW - 5, &t, NOW);
	/* the full document waits for the store; memory has the count */
	assert_ptr_equal(h->posture_full, p);
	assert_ptr_not_equal(h->posture, p);
	assert_null(posture_packages(h->posture));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(h->posture, "software"),
	    "packages_count")), 1500);
	assert_int_equal(h->st.status, STATUS_OK);
	assert_true(h->sin.av_installed);
	/* a newer posture replaces the waiting one (ASan would tell of a leak) */
	json_t *p2 = json_pack("{s:[], s:{s:i}}", "antivirus", "threats", "unresolved", 0);
	host_set_posture(h, p2, NOW, &t, NOW);
	assert_ptr_equal(h->posture_full, p2);
	assert_ptr_equal(h->posture, p2);
	assert_int_equal(h->st.reasons & REASON_NO_AV, REASON_NO_AV);
}

static struct token
mktoken(const char *name, const char *secret, int max_uses)
{
	struct token t;
	memset(&t, 0, sizeof(t));
	str_copy(t.name, name, sizeof(t.name));
	token_hash(secret, t.secret_hash);
	t.max_uses = max_uses;
	str_copy(t.source, "config", sizeof(t.source));
	t.created_at = NOW;
	return t;
}

static void
test_tokens(void **state)
{
	struct registry *r = *state;
	size_t n = 99;

	assert_null(registry_token(r, "lab"));
	struct token **none = registry_tokens_sorted(r, &n);
	assert_int_equal(n, 0);
	free(none);

	struct token t = mktoken("lab", "secret-lab", 5);
	assert_int_equal(registry_put_token(r, &t), 0);
	/* the registry keeps a copy */
	memset(&t, 0, sizeof(t));
	struct token *got = registry_token(r, "lab");
	assert_non_null(got);
	assert_string_equal(got->name, "lab");
	assert_int_equal(got->max_uses, 5);
	assert_string_equal(got->source, "config");

	/* replace by name */
	t = mktoken("lab", "secret-lab-2", 9);
	assert_int_equal(registry_put_token(r, &t), 0);
	got = registry_token(r, "lab");
	assert_int_equal(got->max_uses, 9);
	assert_ptr_equal(registry_token_by_secret(r, "secret-lab-2"), got);
	assert_null(registry_token_by_secret(r, "secret-lab"));

	t = mktoken("ops", "secret-ops", 0);
	assert_int_equal(registry_put_token(r, &t), 0);
	t = mktoken("alpha", "secret-alpha", 1);
	assert_int_equal(registry_put_token(r, &t), 0);

	struct token **v = registry_tokens_sorted(r, &n);
	assert_int_equal(n, 3);
	assert_string_equal(v[0]->name, "alpha");
	assert_string_equal(v[1]->name, "lab");
	assert_string_equal(v[2]->name, "ops");
	free(v);

	registry_del_token(r, "lab");
	assert_null(registry_token(r, "lab"));
	assert_null(registry_token_by_secret(r, "secret-lab-2"));
	registry_del_token(r, "lab");     /* absent: harmless */
	registry_del_token(r, "missing");
	v = registry_tokens_sorted(r, &n);
	assert_int_equal(n, 2);
	free(v);
}

static void
test_token_by_secret(void **state)
{
	struct registry *r = *state;
	static const char *const names[] = { "a", "b", "c", "d" };
	static const char *const secrets[] = { "alpha-secret", "beta-secret", "gamma-secret", "" };

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		struct token t = mktoken(names[i], secrets[i], 0);
		assert_int_equal(registry_put_token(r, &t), 0);
	}
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		struct token *t = registry_token_by_secret(r, secrets[i]);
		assert_non_null(t);
		assert_string_equal(t->name, names[i]);
	}
	assert_null(registry_token_by_secret(r, "alpha-secreT"));
	assert_null(registry_token_by_secret(r, "alpha-secret "));
	assert_null(registry_token_by_secret(r, "alpha"));
	/* the hash itself is not a secret that works */
	char h[65];
	token_hash("beta-secret", h);
	assert_null(registry_token_by_secret(r, h));
	/* near misses in the first and the last hex digit match nothing */
	struct token near = mktoken("near-last", "never-used", 0);
	token_hash("alpha-secret", near.secret_hash);
	near.secret_hash[63] = near.secret_hash[63] == '0' ? '1' : '0';
	assert_int_equal(registry_put_token(r, &near), 0);
	near = mktoken("near-first", "never-used", 0);
	token_hash("alpha-secret", near.secret_hash);
	near.secret_hash[0] = near.secret_hash[0] == '0' ? '1' : '0';
	assert_int_equal(registry_put_token(r, &near), 0);
	for (int i = 0; i < 3; i++) {
		struct token *t = registry_token_by_secret(r, "alpha-secret");
		assert_non_null(t);
		assert_string_equal(t->name, "a");
		registry_del_token(r, "a");
		assert_null(registry_token_by_secret(r, "alpha-secret"));
		struct token a = mktoken("a", "alpha-secret", 0);
		assert_int_equal(registry_put_token(r, &a), 0);
	}
	/* a token whose hash field is empty matches nothing */
	struct token e = mktoken("empty", "x", 0);
	e.secret_hash[0] = '\0';
	assert_int_equal(registry_put_token(r, &e), 0);
	assert_string_equal(registry_token_by_secret(r, "x") ? "found" : "none", "none");
}

static void
test_token_hash(void **state)
{
	(void)state;
	char h[65];
	/* SHA-256("abc") */
	token_hash("abc", h);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	token_hash("", h);
	assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(strlen(h), 64);
}

/* ---- registry_host_changed: one writer, observers in a fixed order ---- */

struct seen {
	int who[16];
	unsigned what[16];
	struct host *h[16];
	uint32_t reasons_seen[16];   /* the host's reasons when the observer ran */
	size_t n;
};
static struct seen seen;

static void
observer(int who, struct host *h, unsigned what)
{
	assert_true(seen.n < 16);
	seen.who[seen.n] = who;
	seen.what[seen.n] = what;
	seen.h[seen.n] = h;
	seen.reasons_seen[seen.n] = h->st.reasons;
	seen.n++;
}
static void obs_a(void *arg, struct host *h, unsigned what) { assert_ptr_equal(arg, &seen); observer(1, h, what); }
static void obs_b(void *arg, struct host *h, unsigned what) { (void)arg; observer(2, h, what); }
static void obs_c(void *arg, struct host *h, unsigned what) { (void)arg; observer(3, h, what); }

static const struct status_thresholds *
one_day(void *arg, const struct host *h)
{
	static struct status_thresholds t;
	(void)arg;
	status_defaults(&t);
	t.not_connected_warning_days = 1;
	return strcmp(h->name, "strict") == 0 ? &t : NULL;   /* NULL: the defaults */
}

static void
test_host_changed_observers(void **state)
{
	struct registry *r = *state;
	struct host *h = mkhost("00000000000000000000000000000001", "strict");
	assert_int_equal(registry_add_host(r, h), 0);
	h->last_seen = now_s() - 36 * 3600;     /* 1.5 days */
	h->posture = json_pack("{s:[{s:s, s:b, s:b}]}", "antivirus", "name", "clamav", "installed", 1,
	    "rtp", 1);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(registry_observe(r, obs_a, &seen), 0);
	assert_int_equal(registry_observe(r, obs_b, NULL), 0);
	assert_int_equal(registry_observe(r, obs_c, NULL), 0);

	/* without HOST_REEVALUATE the status is left as the caller set it */
	registry_host_changed(r, h, HOST_STORED);
	assert_int_equal(seen.n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(seen.who[i], (int)i + 1);   /* in the order of registration */
		assert_int_equal(seen.what[i], HOST_STORED);
		assert_ptr_equal(seen.h[i], h);
		assert_false(seen.reasons_seen[i] & REASON_NOT_CONNECTED);
	}
	/* defaults (2 days): not yet "not connected"; evaluated before any
	 * observer hears of it */
	seen.n = 0;
	registry_host_changed(r, h, HOST_REEVALUATE);
	assert_false(h->st.reasons & REASON_NOT_CONNECTED);
	/* the thresholds provider (main.c: the host's group) says 1 day */
	registry_set_thresholds(r, one_day, NULL);
	seen.n = 0;
	registry_host_changed(r, h, HOST_REEVALUATE);
	assert_int_equal(seen.n, 3);
	assert_true(h->st.reasons & REASON_NOT_CONNECTED);
	for (size_t i = 0; i < 3; i++)
		assert_true(seen.reasons_seen[i] & REASON_NOT_CONNECTED);
	assert_int_equal(registry_thresholds(r, h)->not_connected_warning_days, 1);
	/* NULL host: nothing happens; the observer table is bounded */
	seen.n = 0;
	registry_host_changed(r, NULL, 0);
	assert_int_equal(seen.n, 0);
	for (int i = 3; i < REGISTRY_OBSERVERS_MAX; i++)
		assert_int_equal(registry_observe(r, obs_c, NULL), 0);
	assert_int_equal(registry_observe(r, obs_c, NULL), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hosts_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_naming_with_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_posture, setup, teardown),
		cmocka_unit_test(test_strip_array),
		cmocka_unit_test(test_strip_object),
		cmocka_unit_test(test_strip_untouched),
		cmocka_unit_test_setup_teardown(test_set_posture_strips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_by_secret, setup, teardown),
		cmocka_unit_test(test_token_hash),
		cmocka_unit_test_setup_teardown(test_host_changed_observers, setup, teardown),
	};
	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
