/* test_mgmt.c — the administration model's change handling
 * (daemon/mgmt/mgmt.c), built alone now that it reaches the listener,
 * the wake-ups and the fleet only through struct mgmt_hooks and the other
 * views of a host only through the registry's observers: here fakes that
 * record what they are told. The model comes in as the DB thread's
 * read-back of the management tables (mgmt_tables_loaded). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "daemon/mgmt/mgmt.h"
#include "util.h"

#define MAX_SEEN 64

struct fx {
	struct server srv;
	struct mgmt *mg;
	const char *notified[MAX_SEEN];   /* hooks.notify, in order */
	size_t nnotified;
	const char *changed[MAX_SEEN];    /* registry observer, in order */
	size_t nchanged;
	int groups_changed;
};

static void
fake_notify(void *arg, struct host *h)
{
	struct fx *x = arg;
	assert_true(x->nnotified < MAX_SEEN);
	x->notified[x->nnotified++] = h->name;
}

static int
fake_wake(void *arg, struct host *h)
{
	(void)arg;
	(void)h;
	return 0;
}

static void
fake_groups_changed(void *arg)
{
	struct fx *x = arg;
	x->groups_changed++;
}

static void
fake_view(void *arg, struct host *h, unsigned what)
{
	struct fx *x = arg;
	(void)what;
	assert_true(x->nchanged < MAX_SEEN);
	x->changed[x->nchanged++] = h->name;
}

static const struct status_thresholds *
thresholds(void *arg, const struct host *h)
{
	return mgmt_host_thresholds(arg, h);
}

static size_t
count(const char *const *list, size_t n, const char *name)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += strcmp(list[i], name) == 0;
	return k;
}

static void
reset(struct fx *x)
{
	x->nnotified = x->nchanged = 0;
	x->groups_changed = 0;
}

static struct host *
add_host(struct fx *x, int i, const char *name, uint64_t group, int64_t last_seen)
{
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->id = (uint64_t)i;
	str_fmt(h->uid, sizeof(h->uid), "%032x", i);
	str_copy(h->name, name, sizeof(h->name));
	h->group_id = group;
	h->placed = true;
	h->last_seen = last_seen;
	host_evaluate(h, &x->srv.thr, now_s());
	assert_int_equal(registry_add_host(x->srv.reg, h), 0);
	return h;
}

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -1;
	status_defaults(&x->srv.thr);
	x->srv.reg = registry_new();
	x->mg = x->srv.mgmt = mgmt_new(&x->srv);
	if (x->srv.reg == NULL || x->mg == NULL)
		return -1;
	mgmt_set_hooks(x->mg, &(struct mgmt_hooks){ .notify = fake_notify, .wake = fake_wake,
	    .groups_changed = fake_groups_changed, .arg = x });
	registry_set_thresholds(x->srv.reg, thresholds, &x->srv);
	assert_int_equal(registry_observe(x->srv.reg, fake_view, x), 0);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	mgmt_free(x->mg);
	registry_free(x->srv.reg);
	free(x);
	return 0;
}

/* groups Servers (1) and Servers/Web (2); a policy for Servers; an
 * outbreak policy for Servers (2 threats in 10 minutes); Web says "not
 * connected" after one day */
static json_t *
tables(bool with_web)
{
	json_t *t = json_pack("{s:[[i,s,i,s]], s:[[i,s,i,s,s,i,i,s,i,i,i,s], [i,s,i,s,s,i,i,s,i,i,i,s]],"
	    " s:[], s:[], s:[], s:[]}",
	    "groups", 1, "Servers", 0, "config",
	    "policies",
	    10, "servers", 1, "clamav", "normal", 1, 1,
	    "[{\"key\": \"max_file_size_mb\", \"value\": 20, \"locked\": false}]", 0, 0, 0, "config",
	    11, "servers-outbreak", 1, "clamav", "outbreak", 1, 1,
	    "[{\"key\": \"max_file_size_mb\", \"value\": 10, \"locked\": true}]", 2, 10, 0, "config",
	    "rules", "tasks", "selections", "thresholds");
	assert_non_null(t);
	if (with_web) {
		json_array_append_new(json_object_get(t, "groups"), json_pack("[i,s,i,s]", 2, "Web", 1, "config"));
		json_array_append_new(json_object_get(t, "thresholds"),
		    json_pack("[i,i,i,i,i,s]", 2, 0, 0, 1, 0, "config"));
	}
	return t;
}

/* A change reaches each host whose document, group or status changed once
 * (registry observers) and the agents whose document changed (notify);
 * the same tables again change nothing and tell no one. */
static void
test_change_handling(void **state)
{
	struct fx *x = *state;
	int64_t now = now_s();
	struct host *a = add_host(x, 1, "a", 1, now);
	struct host *b = add_host(x, 2, "b", 2, now - 36 * 3600);   /* 1.5 days */
	json_t *t = tables(true);

	mgmt_tables_loaded(x->mg, t);
	assert_int_equal(x->groups_changed, 1);
	assert_int_equal(count(x->notified, x->nnotified, "a"), 1);
	assert_int_equal(count(x->notified, x->nnotified, "b"), 1);
	assert_int_equal(count(x->changed, x->nchanged, "a"), 1);
	assert_int_equal(count(x->changed, x->nchanged, "b"), 1);
	/* Web's threshold (1 day) applies to b */
	assert_true(b->st.reasons & REASON_NOT_CONNECTED);
	assert_false(a->st.reasons & REASON_NOT_CONNECTED);
	json_t *doc = mgmt_host_policy_json(x->mg, a);
	assert_non_null(doc);
	json_decref(doc);

	/* the same tables (a reload that changed nothing) */
	reset(x);
	mgmt_tables_loaded(x->mg, t);
	assert_int_equal(x->nnotified, 0);
	assert_int_equal(x->nchanged, 0);
	json_decref(t);

	/* Web is gone: b goes to Unassigned, once, with the global thresholds
	 * and a new (empty) document; a is not touched */
	reset(x);
	t = tables(false);
	mgmt_tables_loaded(x->mg, t);
	json_decref(t);
	assert_int_equal(b->group_id, 0);
	assert_false(b->st.reasons & REASON_NOT_CONNECTED);
	assert_int_equal(count(x->changed, x->nchanged, "b"), 1);
	assert_int_equal(count(x->notified, x->nnotified, "b"), 1);
	assert_int_equal(count(x->changed, x->nchanged, "a"), 0);
	assert_int_equal(count(x->notified, x->nnotified, "a"), 0);
}

/* Is the outbreak policy of Servers in force? */
static bool
servers_outbreak_on(struct fx *x)
{
	json_t *pols = mgmt_policies_json(x->mg, 0);
	size_t i;
	json_t *p;
	bool on = false;
	json_array_foreach(pols, i, p)
		if (strcmp(json_string_value(json_object_get(p, "name")), "servers-outbreak") == 0)
			on = json_is_true(json_object_get(p, "outbreak_now"));
	json_decref(pols);
	return on;
}

/* New threats from a host of Servers count toward its outbreak policy;
 * at the threshold the hosts of the subtree are notified (their document
 * is the outbreak one now); hosts in Unassigned count for no group. */
static void
test_outbreak_notifies(void **state)
{
	struct fx *x = *state;
	int64_t now = now_s();
	struct host *a = add_host(x, 1, "a", 1, now);
	struct host *c = add_host(x, 3, "c", 0, now);
	json_t *t = tables(true);
	mgmt_tables_loaded(x->mg, t);
	json_decref(t);
	reset(x);
	mgmt_on_threats(x->mg, c, 5);
	mgmt_on_threats(x->mg, a, 0);
	mgmt_on_threats(x->mg, a, 1);
	assert_int_equal(x->nnotified, 0);
	mgmt_on_threats(x->mg, a, 1);      /* the second: threshold 2 */
	assert_int_equal(count(x->notified, x->nnotified, "a"), 1);
	assert_int_equal(count(x->notified, x->nnotified, "c"), 0);
	assert_true(servers_outbreak_on(x));
}

/* Threats that came before the model was loaded (the database away at
 * start: the fleet has seen their ids, so their resend will not count) are
 * counted toward the outbreak policy once the model is there. */
static void
test_outbreak_threats_before_load(void **state)
{
	struct fx *x = *state;
	int64_t now = now_s();
	struct host *a = add_host(x, 1, "a", 1, now);
	mgmt_on_threats(x->mg, a, 2);
	assert_int_equal(x->nnotified, 0);
	json_t *t = tables(true);
	mgmt_tables_loaded(x->mg, t);
	json_decref(t);
	assert_int_equal(a->threats_uncounted, 0);
	assert_true(servers_outbreak_on(x));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_change_handling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbreak_notifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbreak_threats_before_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
