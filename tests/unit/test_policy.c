/* test_policy.c — unit tests for daemon/policy.c: the effective-settings
 * algorithm (table-driven), documents and hashes, the store and its
 * per-group cache and change tracking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/model/groups.h"
#include "daemon/model/policy.h"
#include "util.h"

#define MOBILE_AFTER 3600

/*
 * A case: levels[0] is the top-level group, the host sits in the last one.
 * A level spec is policies separated by ';', each "KIND key=JSON[!] ...":
 *   KIND  N normal, O outbreak, M mobile; suffixes: '-' inherit off,
 *         'x' inactive, '@app' another application than clamav.
 *   '!'   after a value: locked.
 * A level spec starting with '*' has its group's outbreak on.
 * Policy ids are 10 * level (1-based) + position in the spec (1-based).
 */
struct eff_case {
	const char *name;
	const char *levels[5];
	const char *local;         /* JSON or NULL */
	const char *apps;          /* expected "applications" */
	const char *mobile;        /* expected "mobile" ("{}" when NULL) */
	const char *meta;          /* expected clamav meta, or NULL (not checked) */
};

static const struct eff_case eff_cases[] = {
	{ "empty chain", { NULL }, NULL, "{}", NULL, "{}" },
	{ "empty chain with local settings", { NULL }, "{\"clamav\": {\"a\": 1}}",
	    "{\"clamav\": {\"a\": 1}}", NULL, "{\"a\": {\"locked\": false, \"origin\": \"local\"}}" },
	{ "one level", { "N a=1 b=2!" }, NULL, "{\"clamav\": {\"a\": 1, \"b\": 2}}", NULL,
	    "{\"a\": {\"locked\": false, \"origin\": 11}, \"b\": {\"locked\": true, \"origin\": 11}}" },
	{ "locks at several levels", { "N a=1! b=1", "N b=2! c=2", "N a=3 b=3 c=3 d=3" }, NULL,
	    "{\"clamav\": {\"a\": 1, \"b\": 2, \"c\": 3, \"d\": 3}}", NULL,
	    "{\"a\": {\"locked\": true, \"origin\": 11}, \"b\": {\"locked\": true, \"origin\": 21},"
	    " \"c\": {\"locked\": false, \"origin\": 31}, \"d\": {\"locked\": false, \"origin\": 31}}" },
	{ "locked above, overridden and locked below: the top lock wins",
	    { "N rtp=true!", "N rtp=false!", "N rtp=false" }, NULL,
	    "{\"clamav\": {\"rtp\": true}}", NULL,
	    "{\"rtp\": {\"locked\": true, \"origin\": 11}}" },
	{ "unlocked values are replaced level by level", { "N a=1", "N a=2", "N a=3" }, NULL,
	    "{\"clamav\": {\"a\": 3}}", NULL, "{\"a\": {\"locked\": false, \"origin\": 31}}" },
	{ "a lower lock binds the levels below it", { "N a=1", "N a=2!", "N a=3" }, NULL,
	    "{\"clamav\": {\"a\": 2}}", NULL, "{\"a\": {\"locked\": true, \"origin\": 21}}" },
	{ "inherit off in the middle drops unlocked values, keeps locked ones",
	    { "N a=1! b=1 c=1", "N- d=2", "N e=3" }, NULL,
	    "{\"clamav\": {\"a\": 1, \"d\": 2, \"e\": 3}}", NULL, NULL },
	{ "inherit off cannot replace a locked value", { "N a=1 b=1!", "N- a=2 b=2" }, NULL,
	    "{\"clamav\": {\"a\": 2, \"b\": 1}}", NULL,
	    "{\"a\": {\"locked\": false, \"origin\": 21}, \"b\": {\"locked\": true, \"origin\": 11}}" },
	{ "inherit off at the top has nothing to drop", { "N- a=1", "N b=2" }, NULL,
	    "{\"clamav\": {\"a\": 1, \"b\": 2}}", NULL, NULL },
	{ "inherit off with no settings of its own", { "N a=1 b=2!", "N-" }, NULL,
	    "{\"clamav\": {\"b\": 2}}", NULL, NULL },
	{ "local settings replace unlocked values only", { "N a=1! b=1" },
	    "{\"clamav\": {\"a\": 9, \"b\": 9, \"z\": 9}}",
	    "{\"clamav\": {\"a\": 1, \"b\": 9, \"z\": 9}}", NULL,
	    "{\"a\": {\"locked\": true, \"origin\": 11}, \"b\": {\"locked\": false, \"origin\": \"local\"},"
	    " \"z\": {\"locked\": false, \"origin\": \"local\"}}" },
	{ "local settings cannot beat a lock kept through inherit off", { "N a=1!", "N-" },
	    "{\"clamav\": {\"a\": 2}}", "{\"clamav\": {\"a\": 1}}", NULL, NULL },
	{ "local settings of an application without policy", { "N a=1" },
	    "{\"agent\": {\"x\": 1}, \"clamav\": {}}",
	    "{\"clamav\": {\"a\": 1}, \"agent\": {\"x\": 1}}", NULL, NULL },
	{ "outbreak policy replaces the normal one at its level while on",
	    { "N a=1 b=1", "*N a=2 q=2;O a=5! c=5", "N a=6 c=6" }, NULL,
	    "{\"clamav\": {\"a\": 5, \"b\": 1, \"c\": 6}}", NULL,
	    "{\"a\": {\"locked\": true, \"origin\": 22}, \"b\": {\"locked\": false, \"origin\": 11},"
	    " \"c\": {\"locked\": false, \"origin\": 31}}" },
	{ "outbreak policy is ignored while the outbreak is off",
	    { "N a=1 b=1", "N a=2 q=2;O a=5! c=5", "N a=6 c=6" }, NULL,
	    "{\"clamav\": {\"a\": 6, \"b\": 1, \"q\": 2, \"c\": 6}}", NULL, NULL },
	{ "outbreak policy with inherit off", { "N a=1 b=1!", "*N a=2;O- c=5" }, NULL,
	    "{\"clamav\": {\"b\": 1, \"c\": 5}}", NULL, NULL },
	{ "outbreak on without an outbreak policy for the application", { "*N a=1;O@agent z=1" },
	    NULL, "{\"clamav\": {\"a\": 1}, \"agent\": {\"z\": 1}}", NULL, NULL },
	{ "outbreak in a group below does not affect the level above",
	    { "N a=1;O a=9", "*N b=2" }, NULL, "{\"clamav\": {\"a\": 1, \"b\": 2}}", NULL, NULL },
	{ "inactive outbreak policy is not used", { "*N a=1;Ox a=9" }, NULL,
	    "{\"clamav\": {\"a\": 1}}", NULL, NULL },
	{ "mobile section from the mobile policies of the chain",
	    { "N a=1;M m=1! n=1", "M n=2 m=2", "N a=3" }, NULL,
	    "{\"clamav\": {\"a\": 3}}", "{\"clamav\": {\"m\": 1, \"n\": 2}}", NULL },
	{ "local settings apply to the mobile section too, locks hold",
	    { "N a=1;M m=1! n=1" }, "{\"clamav\": {\"n\": 7, \"m\": 7}, \"agent\": {\"k\": 1}}",
	    "{\"clamav\": {\"a\": 1, \"n\": 7, \"m\": 7}, \"agent\": {\"k\": 1}}",
	    "{\"clamav\": {\"m\": 1, \"n\": 7}}", NULL },
	{ "mobile policy with inherit off", { "M a=1 b=1!", "M- c=1" }, NULL, "{}",
	    "{\"clamav\": {\"b\": 1, \"c\": 1}}", "{}" },
	{ "inactive policies are ignored", { "Nx a=1;N b=2", "Nx c=3" }, NULL,
	    "{\"clamav\": {\"b\": 2}}", NULL, NULL },
	{ "several applications", { "N a=1;N@agent sync=900!", "N@agent sync=60 x=1" }, NULL,
	    "{\"clamav\": {\"a\": 1}, \"agent\": {\"sync\": 900, \"x\": 1}}", NULL, NULL },
	{ "an active policy without settings still lists the application", { "N" }, NULL,
	    "{\"clamav\": {}}", NULL, "{}" },
	{ "structured values pass through",
	    { "N paths=[\"/a\",\"/b\"]! opts={\"x\":1} s=\"txt\" r=2.5 n=null" }, NULL,
	    "{\"clamav\": {\"paths\": [\"/a\", \"/b\"], \"opts\": {\"x\": 1}, \"s\": \"txt\","
	    " \"r\": 2.5, \"n\": null}}", NULL, NULL },
	{ "deep chain", { "N a=1!", "N b=2", "N- c=3", "N b=4! a=4", "N b=5 d=5" },
	    "{\"clamav\": {\"b\": 6, \"d\": 6, \"e\": 6}}",
	    "{\"clamav\": {\"a\": 1, \"b\": 4, \"c\": 3, \"d\": 6, \"e\": 6}}", NULL, NULL },
};

static void
build_policy(struct policy *p, uint64_t id, uint64_t group, const char *spec)
{
	char buf[512], err[256];
	char *save = NULL;

	policy_init(p);
	p->id = id;
	p->group_id = group;
	str_copy(p->source, "config", sizeof(p->source));
	str_copy(p->application, "clamav", sizeof(p->application));
	(void)snprintf(p->name, sizeof(p->name), "p%llu", (unsigned long long)id);
	assert_true(str_copy(buf, spec, sizeof(buf)) < sizeof(buf));

	char *tok = strtok_r(buf, " ", &save);
	assert_non_null(tok);
	switch (tok[0]) {
	case 'N': p->kind = POLICY_NORMAL; break;
	case 'O': p->kind = POLICY_OUTBREAK; p->threshold = 3; p->window_min = 10; break;
	case 'M': p->kind = POLICY_MOBILE; break;
	default: fail_msg("bad kind in \"%s\"", spec);
	}
	for (char *f = tok + 1; *f; f++) {
		if (*f == '-')
			p->inherit = false;
		else if (*f == 'x')
			p->active = false;
		else if (*f == '@') {
			str_copy(p->application, f + 1, sizeof(p->application));
			break;
		} else
			fail_msg("bad flag in \"%s\"", spec);
	}
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		char *eq = strchr(tok, '=');
		assert_non_null(eq);
		*eq = '\0';
		char *val = eq + 1;
		size_t vl = strlen(val);
		bool locked = vl > 0 && val[vl - 1] == '!';
		if (locked)
			val[vl - 1] = '\0';
		json_error_t je;
		json_t *v = json_loads(val, JSON_DECODE_ANY, &je);
		if (v == NULL)
			fail_msg("bad value %s in \"%s\": %s", val, spec, je.text);
		if (policy_set(p, tok, v, locked, err, sizeof(err)) != 0)
			fail_msg("policy_set: %s", err);
		json_decref(v);
	}
}

static json_t *
json_of(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	if (j == NULL)
		fail_msg("bad JSON %s: %s", text, je.text);
	return j;
}

static void
expect_json(const char *what, const json_t *got, const json_t *want)
{
	if (!json_equal((json_t *)got, (json_t *)want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
		fail_msg("%s:\n got  %s\n want %s", what, g, w);
	}
}

/* A chain of groups 1 .. n (each the child of the one before) with the
 * policies and outbreak flags of the case. */
static void
load_case(const struct eff_case *c, struct group_tree *t, struct policy_store *s, size_t *depth)
{
	char err[256];
	size_t n = 0;
	for (; n < 5 && c->levels[n] != NULL; n++) {
		char name[16];
		(void)snprintf(name, sizeof(name), "L%zu", n + 1);
		if (groups_add(t, n + 1, name, n, "config", err, sizeof(err)) != 0)
			fail_msg("groups_add: %s", err);
		const char *spec = c->levels[n];
		if (*spec == '*') {
			assert_int_equal(policy_set_outbreak(s, n + 1, true), 1);
			spec++;
		}
		char buf[512];
		str_copy(buf, spec, sizeof(buf));
		char *save = NULL, *one = strtok_r(buf, ";", &save);
		for (int k = 1; one != NULL; k++, one = strtok_r(NULL, ";", &save)) {
			struct policy p;
			build_policy(&p, (n + 1) * 10 + (uint64_t)k, n + 1, one);
			if (policy_put(s, &p, err, sizeof(err)) != 0)
				fail_msg("%s: policy_put: %s", c->name, err);
			policy_clear(&p);
		}
	}
	policy_set_mobile_after(s, MOBILE_AFTER);
	*depth = n;
}

static void
test_effective_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(eff_cases) / sizeof(eff_cases[0]); i++) {
		const struct eff_case *c = &eff_cases[i];
		struct group_tree *t = groups_new();
		struct policy_store *s = policy_store_new();
		char err[256], what[300], hash[65], want_hash[65];
		size_t depth;

		load_case(c, t, s, &depth);
		json_t *local = c->local != NULL ? json_of(c->local) : NULL;
		assert_int_equal(policy_local_check(local, err, sizeof(err)), 0);
		json_t *want = json_pack("{s:o, s:o, s:i}", "applications", json_of(c->apps),
		    "mobile", json_of(c->mobile != NULL ? c->mobile : "{}"), "mobile_after", MOBILE_AFTER);
		assert_int_equal(policy_hash(want, want_hash), 0);

		/* from scratch */
		json_t *doc = policy_document(s, t, depth, local, err, sizeof(err));
		if (doc == NULL)
			fail_msg("%s: %s", c->name, err);
		(void)snprintf(what, sizeof(what), "%s (policy_document)", c->name);
		expect_json(what, doc, want);
		json_decref(doc);

		/* through the cache, twice */
		for (int round = 0; round < 2; round++) {
			doc = NULL;
			if (policy_host_document(s, t, depth, local, &doc, hash, err, sizeof(err)) != 0)
				fail_msg("%s: %s", c->name, err);
			(void)snprintf(what, sizeof(what), "%s (policy_host_document)", c->name);
			expect_json(what, doc, want);
			assert_string_equal(hash, want_hash);
			json_decref(doc);
		}

		/* the per-application algorithm agrees, with the expected meta */
		struct policy_level lv[GROUP_DEPTH_MAX];
		assert_int_equal(policy_levels(s, t, depth, "clamav", false, lv), (int)depth);
		json_t *vals = NULL, *meta = NULL;
		assert_int_equal(policy_effective(lv, depth, local, "clamav", &vals, &meta), 0);
		json_t *want_app = json_object_get(json_object_get(want, "applications"), "clamav");
		json_t *empty = json_object();
		(void)snprintf(what, sizeof(what), "%s (policy_effective)", c->name);
		expect_json(what, vals, want_app != NULL ? want_app : empty);
		if (c->meta != NULL) {
			json_t *wm = json_of(c->meta);
			(void)snprintf(what, sizeof(what), "%s (meta)", c->name);
			expect_json(what, meta, wm);
			json_decref(wm);
		}
		json_decref(vals);
		json_decref(meta);

		/* mobile through policy_levels as well */
		assert_int_equal(policy_levels(s, t, depth, "clamav", true, lv), (int)depth);
		assert_int_equal(policy_effective(lv, depth, NULL, "clamav", &vals, NULL), 0);
		json_t *want_mob = json_object_get(json_object_get(want, "mobile"), "clamav");
		if (want_mob != NULL && local == NULL) {
			(void)snprintf(what, sizeof(what), "%s (mobile effective)", c->name);
			expect_json(what, vals, want_mob);
		}
		json_decref(vals);

		json_decref(empty);
		json_decref(want);
		json_decref(local);
		policy_store_free(s);
		groups_free(t);
	}
}

static void
test_hash(void **state)
{
	(void)state;
	char h1[65], h2[65];
	json_t *a = json_of("{\"a\": 1, \"b\": [true, null, \"x\"], \"c\": {\"d\": 1.5, \"e\": \"\xc3\xa9\"}}");
	json_t *b = json_object();
	/* the same content built in another order */
	json_object_set_new(b, "c", json_pack("{s:s, s:f}", "e", "\xc3\xa9", "d", 1.5));
	json_object_set_new(b, "b", json_pack("[b, n, s]", 1, "x"));
	json_object_set_new(b, "a", json_integer(1));
	assert_int_equal(policy_hash(a, h1), 0);
	assert_int_equal(policy_hash(b, h2), 0);
	assert_string_equal(h1, h2);
	/* sha256 of {"a":1,"b":[true,null,"x"],"c":{"d":1.5,"e":"é"}} */
	assert_string_equal(h1, "b4f941e99493585b57cc8935ad9562a621a18dd8c2e0cdf4d57d7217c8a89d72");
	json_object_set_new(b, "a", json_integer(2));
	assert_int_equal(policy_hash(b, h2), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(strlen(h2), 64);
	json_decref(a);
	json_decref(b);
}

static struct policy
mk(uint64_t id, const char *name, uint64_t group, const char *app, enum policy_kind kind,
    bool active)
{
	struct policy p;
	policy_init(&p);
	p.id = id;
	str_copy(p.name, name, sizeof(p.name));
	p.group_id = group;
	str_copy(p.application, app, sizeof(p.application));
	p.kind = kind;
	p.active = active;
	str_copy(p.source, "api", sizeof(p.source));
	if (kind == POLICY_OUTBREAK) {
		p.threshold = 5;
		p.window_min = 10;
	}
	return p;
}

static void
put_fails(struct policy_store *s, struct policy *p, const char *want)
{
	char err[256] = "";
	size_t before = policy_count(s);
	assert_int_equal(policy_put(s, p, err, sizeof(err)), -1);
	if (strcmp(err, want) != 0)
		fail_msg("got '%s', want '%s'", err, want);
	assert_int_equal(policy_count(s), before);
	policy_clear(p);
}

static void
test_store_rules(void **state)
{
	(void)state;
	struct policy_store *s = policy_store_new();
	char err[256];
	struct policy p = mk(1, "clamav-servers", 1, "clamav", POLICY_NORMAL, true);
	json_t *v = json_pack("[i]", 1);

	assert_int_equal(policy_set(&p, "rtp", v, true, err, sizeof(err)), 0);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	/* the store holds a deep copy */
	json_t *mine = p.settings[0].value;
	assert_ptr_not_equal(policy_get(s, 1)->settings[0].value, mine);
	policy_clear(&p);
	assert_int_equal(policy_count(s), 1);
	assert_ptr_equal(policy_find(s, "clamav-servers"), policy_get(s, 1));
	assert_null(policy_find(s, "nope"));
	assert_null(policy_find(s, NULL));

	p = mk(2, "clamav-servers", 2, "clamav", POLICY_NORMAL, true);
	put_fails(s, &p, "policy \"clamav-servers\": the name is already used by policy id 1; choose another");
	p = mk(2, "second", 1, "clamav", POLICY_NORMAL, true);
	put_fails(s, &p, "policy \"second\": policy \"clamav-servers\" is already the active normal "
	    "clamav policy of this group; deactivate it first");
	p = mk(2, "x", 0, "clamav", POLICY_NORMAL, true);
	put_fails(s, &p, "policy \"x\": a policy belongs to a group; give one");
	p = mk(0, "x", 1, "clamav", POLICY_NORMAL, false);
	put_fails(s, &p, "policy \"x\": id 0 is not a valid id");
	p = mk(2, "", 1, "clamav", POLICY_NORMAL, false);
	put_fails(s, &p, "a policy needs a name of 1-127 characters");
	p = mk(2, "x", 1, "ClamAV", POLICY_NORMAL, false);
	put_fails(s, &p, "policy \"x\": application \"ClamAV\" must be 1-31 characters of a-z 0-9 _ -");
	p = mk(2, "x", 1, "clamav", POLICY_OUTBREAK, false);
	p.threshold = 0;
	put_fails(s, &p, "policy \"x\": an outbreak policy needs threshold >= 1 and window >= 1 "
	    "minute (quiet >= 0)");
	p = mk(2, "x", 1, "clamav", (enum policy_kind)7, false);
	put_fails(s, &p, "policy \"x\": kind must be normal, outbreak or mobile");
	p = mk(2, "x", 1, "clamav", POLICY_NORMAL, false);
	str_copy(p.source, "file", sizeof(p.source));
	put_fails(s, &p, "policy \"x\": source must be \"config\" or \"api\"");
	p = mk(2, "x", 1, "clamav", POLICY_NORMAL, false);
	assert_int_equal(policy_set(&p, "bad key", v, false, err, sizeof(err)), -1);
	assert_string_equal(err, "policy \"x\": setting key \"bad key\" must be 1-63 characters of "
	    "A-Z a-z 0-9 _ . -");
	assert_int_equal(policy_set(&p, "k", NULL, false, err, sizeof(err)), -1);
	assert_int_equal(policy_set(&p, "k", v, false, err, sizeof(err)), 0);
	/* a duplicate key smuggled into the array */
	struct policy_setting *ns = realloc(p.settings, 2 * sizeof(*ns));
	assert_non_null(ns);
	p.settings = ns;
	p.settings[1] = p.settings[0];
	json_incref(p.settings[1].value);
	p.nsettings = 2;
	put_fails(s, &p, "policy \"x\": setting \"k\" is given twice");

	/* policy_set replaces value and lock */
	p = mk(2, "x", 1, "clamav", POLICY_NORMAL, false);
	json_t *one = json_integer(1), *two = json_integer(2);
	assert_int_equal(policy_set(&p, "k", one, false, err, sizeof(err)), 0);
	assert_int_equal(policy_set(&p, "k", two, true, err, sizeof(err)), 0);
	assert_int_equal(p.nsettings, 1);
	assert_true(p.settings[0].locked);
	assert_int_equal(json_integer_value(p.settings[0].value), 2);
	json_decref(one);
	json_decref(two);

	/* an inactive second policy is fine; activating it deactivates the first */
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	assert_int_equal(policy_activate(s, 2, true), 0);
	assert_true(policy_get(s, 2)->active);
	assert_false(policy_get(s, 1)->active);
	assert_int_equal(policy_activate(s, 99, true), -1);
	/* other kinds and applications are independent */
	p = mk(3, "outbreak", 1, "clamav", POLICY_OUTBREAK, true);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	p = mk(4, "agent", 1, "agent", POLICY_NORMAL, true);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	assert_true(policy_get(s, 2)->active);

	/* replace by id, renaming it */
	p = mk(4, "agent-renamed", 2, "agent", POLICY_NORMAL, true);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	assert_null(policy_find(s, "agent"));
	assert_int_equal(policy_find(s, "agent-renamed")->group_id, 2);
	assert_int_equal(policy_count(s), 4);

	size_t n;
	const struct policy **all = policy_list(s, 0, &n);
	assert_int_equal(n, 4);
	assert_string_equal(all[0]->name, "agent-renamed");
	assert_string_equal(all[1]->name, "clamav-servers");
	assert_string_equal(all[2]->name, "outbreak");
	assert_string_equal(all[3]->name, "x");
	free(all);
	all = policy_list(s, 1, &n);
	assert_int_equal(n, 3);
	free(all);

	assert_int_equal(policy_remove(s, 1), 0);
	assert_int_equal(policy_remove(s, 1), -1);
	assert_null(policy_get(s, 1));
	assert_null(policy_find(s, "clamav-servers"));
	assert_int_equal(policy_count(s), 3);
	/* the name is free again */
	p = mk(9, "clamav-servers", 5, "clamav", POLICY_NORMAL, true);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);

	assert_string_equal(policy_kind_name(POLICY_MOBILE), "mobile");
	assert_int_equal(policy_kind_parse("outbreak"), POLICY_OUTBREAK);
	assert_int_equal(policy_kind_parse("Normal"), -1);
	assert_int_equal(policy_kind_parse(NULL), -1);
	json_decref(v);
	policy_store_free(s);
	policy_store_free(NULL);
}

static void
test_many_policies_map(void **state)
{
	(void)state;
	/* enough ids to grow and shrink the id map, removing in a scattered order */
	struct policy_store *s = policy_store_new();
	char err[256], name[32];
	for (uint64_t id = 1; id <= 3000; id++) {
		(void)snprintf(name, sizeof(name), "p%llu", (unsigned long long)id);
		struct policy p = mk(id * 7919, name, id % 50 + 1, "clamav", POLICY_NORMAL, false);
		assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
		policy_clear(&p);
	}
	for (uint64_t id = 1; id <= 3000; id += 2)
		assert_int_equal(policy_remove(s, id * 7919), 0);
	assert_int_equal(policy_count(s), 1500);
	for (uint64_t id = 1; id <= 3000; id++) {
		const struct policy *p = policy_get(s, id * 7919);
		if (id % 2) {
			assert_null(p);
		} else {
			assert_non_null(p);
			assert_int_equal(p->id, id * 7919);
		}
	}
	policy_store_free(s);
}

static void
test_settings_json(void **state)
{
	(void)state;
	struct policy p;
	char err[256];
	policy_init(&p);
	str_copy(p.name, "x", sizeof(p.name));
	json_t *in = json_of("[{\"key\": \"rtp\", \"value\": true, \"locked\": true},"
	    " {\"key\": \"hours\", \"value\": 4}, {\"key\": \"paths\", \"value\": [\"/a\"], \"locked\": false}]");
	assert_int_equal(policy_settings_from_json(&p, in, err, sizeof(err)), 0);
	assert_int_equal(p.nsettings, 3);
	assert_string_equal(p.settings[1].key, "hours");
	assert_false(p.settings[1].locked);
	assert_true(p.settings[0].locked);
	json_t *out = policy_settings_json(&p);
	json_t *want = json_of("[{\"key\": \"rtp\", \"value\": true, \"locked\": true},"
	    " {\"key\": \"hours\", \"value\": 4, \"locked\": false},"
	    " {\"key\": \"paths\", \"value\": [\"/a\"], \"locked\": false}]");
	expect_json("settings round trip", out, want);
	json_decref(out);
	json_decref(want);
	json_decref(in);

	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ "{}", "policy \"x\": settings must be a list of {key, value, locked}" },
		{ "[1]", "policy \"x\": settings[0] must be {\"key\": string, \"value\": any, \"locked\": bool}" },
		{ "[{\"key\": \"a\", \"value\": 1}, {\"key\": \"b\"}]",
		    "policy \"x\": settings[1] must be {\"key\": string, \"value\": any, \"locked\": bool}" },
		{ "[{\"key\": \"a\", \"value\": 1, \"locked\": 1}]",
		    "policy \"x\": settings[0] must be {\"key\": string, \"value\": any, \"locked\": bool}" },
		{ "[{\"key\": \"a\", \"value\": 1}, {\"key\": \"a\", \"value\": 2}]",
		    "policy \"x\": setting \"a\" is given twice" },
		{ "[{\"key\": \"a b\", \"value\": 1}]",
		    "policy \"x\": setting key \"a b\" must be 1-63 characters of A-Z a-z 0-9 _ . -" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_of(bad[i].json);
		assert_int_equal(policy_settings_from_json(&p, j, err, sizeof(err)), -1);
		assert_string_equal(err, bad[i].msg);
		assert_int_equal(p.nsettings, 3);   /* unchanged on error */
		json_decref(j);
	}

	struct policy c;
	assert_int_equal(policy_copy(&c, &p), 0);
	assert_int_equal(c.nsettings, 3);
	assert_ptr_not_equal(c.settings, p.settings);
	assert_true(json_equal(c.settings[2].value, p.settings[2].value));
	assert_ptr_not_equal(c.settings[2].value, p.settings[2].value);
	policy_clear(&c);
	policy_clear(&p);
	assert_int_equal(p.nsettings, 0);
}

static void
test_local_check(void **state)
{
	(void)state;
	static const struct {
		const char *json, *msg;
	} c[] = {
		{ "{\"clamav\": {\"a\": 1}, \"agent\": {}}", NULL },
		{ "null", NULL },
		{ "[]", "local settings must be an object {application: {key: value}}" },
		{ "{\"clamav\": 1}", "local settings: \"clamav\" must be an object {key: value}" },
		{ "{\"Clam AV\": {}}", "local settings: application \"Clam AV\" must be 1-31 characters of a-z 0-9 _ -" },
		{ "{\"clamav\": {\"a/b\": 1}}", "local settings: \"clamav\" key \"a/b\" must be 1-63 characters of A-Z a-z 0-9 _ . -" },
	};
	char err[256];
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		json_t *j = json_of(c[i].json);
		int rc = policy_local_check(j, err, sizeof(err));
		if (c[i].msg == NULL)
			assert_int_equal(rc, 0);
		else {
			assert_int_equal(rc, -1);
			assert_string_equal(err, c[i].msg);
		}
		json_decref(j);
	}
	assert_int_equal(policy_local_check(NULL, err, sizeof(err)), 0);
}

/* Tree: 1 / {2 / {4}, 3}; 5 */
static void
small_world(struct group_tree **tp, struct policy_store **sp)
{
	struct group_tree *t = groups_new();
	struct policy_store *s = policy_store_new();
	char err[256];
	assert_int_equal(groups_add(t, 1, "A", 0, "api", err, sizeof(err)), 0);
	assert_int_equal(groups_add(t, 2, "B", 1, "api", err, sizeof(err)), 0);
	assert_int_equal(groups_add(t, 3, "C", 1, "api", err, sizeof(err)), 0);
	assert_int_equal(groups_add(t, 4, "D", 2, "api", err, sizeof(err)), 0);
	assert_int_equal(groups_add(t, 5, "E", 0, "api", err, sizeof(err)), 0);
	*tp = t;
	*sp = s;
}

static void
ids_are(uint64_t *ids, size_t n, const uint64_t *want, size_t nwant)
{
	if (nwant > 0)
		assert_non_null(ids);
	if (n != nwant)
		fail_msg("got %zu ids, want %zu", n, nwant);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], want[i]);
	free(ids);
}

static void
changed_are(struct policy_store *s, struct group_tree *t, const uint64_t *want, size_t nwant)
{
	size_t n = 99;
	uint64_t *ids = policy_changed_groups(s, t, &n);
	ids_are(ids, n, want, nwant);
}

static json_t *
host_doc(struct policy_store *s, struct group_tree *t, uint64_t g, const json_t *local,
    char hash[65])
{
	json_t *doc = NULL;
	char err[256];
	if (policy_host_document(s, t, g, local, &doc, hash, err, sizeof(err)) != 0)
		fail_msg("host document of group %llu: %s", (unsigned long long)g, err);
	json_decref(doc);          /* the cache keeps its own reference */
	return doc;
}

static void
test_changes_and_cache(void **state)
{
	(void)state;
	struct group_tree *t;
	struct policy_store *s;
	char err[256], h[65], h2[65];
	size_t n;
	small_world(&t, &s);

	/* nothing changed yet */
	assert_null(policy_changed_groups(s, t, &n));
	assert_int_equal(n, 0);

	/* one group's policy: its subtree only */
	struct policy p = mk(1, "b", 2, "clamav", POLICY_NORMAL, true);
	json_t *v1 = json_integer(1);
	assert_int_equal(policy_set(&p, "a", v1, false, err, sizeof(err)), 0);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	changed_are(s, t, (const uint64_t[]){ 2, 4 }, 2);
	assert_null(policy_changed_groups(s, t, &n));
	uint64_t *aff = policy_affected_groups(s, t, 1, &n);
	ids_are(aff, n, (const uint64_t[]){ 2, 4 }, 2);
	assert_null(policy_affected_groups(s, t, 99, &n));

	/* documents are shared per group and cached */
	json_t *d4 = host_doc(s, t, 4, NULL, h);
	assert_ptr_equal(host_doc(s, t, 4, NULL, h2), d4);
	assert_string_equal(h, h2);
	json_t *d3 = host_doc(s, t, 3, NULL, h);
	json_t *d5 = host_doc(s, t, 5, NULL, h);
	json_t *d0 = host_doc(s, t, 0, NULL, h);
	assert_non_null(json_object_get(json_object_get(d4, "applications"), "clamav"));
	assert_null(json_object_get(json_object_get(d3, "applications"), "clamav"));

	/* an inactive policy changes nothing */
	p = mk(2, "b-draft", 2, "clamav", POLICY_NORMAL, false);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	assert_null(policy_changed_groups(s, t, &n));
	assert_ptr_equal(host_doc(s, t, 4, NULL, h), d4);

	/* changing group 2's policy recomputes 2 and 4 only */
	p = mk(1, "b", 2, "clamav", POLICY_NORMAL, true);
	json_t *v2 = json_integer(2);
	assert_int_equal(policy_set(&p, "a", v2, false, err, sizeof(err)), 0);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	changed_are(s, t, (const uint64_t[]){ 2, 4 }, 2);
	json_t *d4b = host_doc(s, t, 4, NULL, h2);
	assert_ptr_not_equal(d4b, d4);
	assert_string_not_equal(h, h2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(d4b,
	    "applications"), "clamav"), "a")), 2);
	assert_ptr_equal(host_doc(s, t, 3, NULL, h), d3);
	assert_ptr_equal(host_doc(s, t, 5, NULL, h), d5);
	assert_ptr_equal(host_doc(s, t, 0, NULL, h), d0);

	/* an outbreak at the top changes its whole subtree */
	assert_int_equal(policy_set_outbreak(s, 1, true), 1);
	assert_int_equal(policy_set_outbreak(s, 1, true), 0);
	assert_true(policy_outbreak(s, 1));
	assert_false(policy_outbreak(s, 2));
	assert_int_equal(policy_set_outbreak(s, 3, false), 0);
	changed_are(s, t, (const uint64_t[]){ 1, 2, 3, 4 }, 4);

	/* mobile_after changes every document, the unassigned hosts' too */
	policy_set_mobile_after(s, 600);
	changed_are(s, t, (const uint64_t[]){ 0, 1, 2, 3, 4, 5 }, 6);
	json_t *d5b = host_doc(s, t, 5, NULL, h);
	assert_ptr_not_equal(d5b, d5);
	assert_int_equal(json_integer_value(json_object_get(d5b, "mobile_after")), 600);
	d5 = d5b;
	d4 = host_doc(s, t, 4, NULL, h);
	d3 = host_doc(s, t, 3, NULL, h);

	/* moving group 4 below 3: its chain changed, the cache notices */
	assert_int_equal(groups_update(t, 4, "D", 3, NULL, err, sizeof(err)), 0);
	policy_mark_group(s, 4);
	changed_are(s, t, (const uint64_t[]){ 4 }, 1);
	json_t *d4c = host_doc(s, t, 4, NULL, h);
	assert_ptr_not_equal(d4c, d4);
	assert_null(json_object_get(json_object_get(d4c, "applications"), "clamav"));
	assert_ptr_equal(host_doc(s, t, 3, NULL, h), d3);
	/* an unrelated new group leaves the other documents alone */
	assert_int_equal(groups_add(t, 6, "F", 5, "api", err, sizeof(err)), 0);
	assert_ptr_equal(host_doc(s, t, 3, NULL, h), d3);
	assert_ptr_equal(host_doc(s, t, 5, NULL, h), d5);

	/* local settings: a host's own document; empty ones share the group's */
	assert_int_equal(groups_update(t, 4, "D", 2, NULL, err, sizeof(err)), 0);
	json_t *local = json_of("{\"clamav\": {\"a\": 7}}");
	json_t *empty_local = json_of("{\"clamav\": {}}");
	char hg[65], hl[65];
	json_t *dg = host_doc(s, t, 4, NULL, hg);
	assert_ptr_equal(host_doc(s, t, 4, empty_local, h), dg);
	json_t *dl = NULL;
	assert_int_equal(policy_host_document(s, t, 4, local, &dl, hl, err, sizeof(err)), 0);
	assert_ptr_not_equal(dl, dg);
	assert_string_not_equal(hl, hg);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(dl,
	    "applications"), "clamav"), "a")), 7);
	/* the group's document is untouched by the host's overlay */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(dg,
	    "applications"), "clamav"), "a")), 2);
	json_decref(dl);

	/* removing the active policy changes the subtree again */
	(void)policy_changed_groups(s, t, &n);
	assert_int_equal(policy_remove(s, 1), 0);
	changed_are(s, t, (const uint64_t[]){ 2, 4 }, 2);
	json_t *d4d = host_doc(s, t, 4, NULL, h);
	assert_null(json_object_get(json_object_get(d4d, "applications"), "clamav"));

	/* unknown group */
	json_t *doc = NULL;
	assert_int_equal(policy_host_document(s, t, 77, NULL, &doc, h, err, sizeof(err)), -1);
	assert_string_equal(err, "group id 77 does not exist");
	assert_null(policy_document(s, t, 77, NULL, err, sizeof(err)));
	struct policy_level lv[GROUP_DEPTH_MAX];
	assert_int_equal(policy_levels(s, t, 77, "clamav", false, lv), -1);

	/* a removed group with pending changes is skipped */
	p = mk(5, "f", 6, "clamav", POLICY_NORMAL, true);
	assert_int_equal(policy_put(s, &p, err, sizeof(err)), 0);
	policy_clear(&p);
	assert_int_equal(policy_remove(s, 5), 0);
	assert_int_equal(groups_remove(t, 6, err, sizeof(err)), 0);
	assert_null(policy_changed_groups(s, t, &n));
	assert_int_equal(n, 0);

	/* mark all */
	policy_mark_group(s, 0);
	changed_are(s, t, (const uint64_t[]){ 0, 1, 2, 3, 4, 5 }, 6);

	json_decref(local);
	json_decref(empty_local);
	json_decref(v1);
	json_decref(v2);
	policy_store_free(s);
	groups_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_effective_table),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_store_rules),
		cmocka_unit_test(test_many_policies_map),
		cmocka_unit_test(test_settings_json),
		cmocka_unit_test(test_local_check),
		cmocka_unit_test(test_changes_and_cache),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
