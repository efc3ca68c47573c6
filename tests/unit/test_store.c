/* test_store.c — the store's main-thread batching (daemon/store/store.c),
 * built alone now that it calls nothing above it: host changes reach it as
 * a registry observer (as main.c registers it), are coalesced per host and
 * wait for the database; events wait in the batch up to events_max; what
 * cannot wait is refused at once and counted. No database here: writes
 * stay pending (the DB thread's part is covered by the integration tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "daemon/store/store.h"
#include "util.h"

struct fx {
	struct server srv;
	size_t writes;            /* host changes the observer handed to the store */
	size_t others;            /* a second, fake observer after the store */
	unsigned last_what;
};

/* main.c's observer, with the count it keeps */
static void
to_store(void *arg, struct host *h, unsigned what)
{
	struct fx *x = arg;
	if (what & HOST_STORED)
		return;
	x->writes++;
	store_host_changed(x->srv.store, h);
}

static void
fake_view(void *arg, struct host *h, unsigned what)
{
	struct fx *x = arg;
	(void)h;
	x->others++;
	x->last_what = what;
}

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -1;
	status_defaults(&x->srv.thr);
	x->srv.base = event_base_new();
	x->srv.reg = registry_new();
	if (x->srv.base == NULL || x->srv.reg == NULL)
		return -1;
	x->srv.store = store_new(&x->srv, 5 /* events_max */, 100 /* batch_max */);
	if (x->srv.store == NULL)
		return -1;
	assert_int_equal(registry_observe(x->srv.reg, to_store, x), 0);
	assert_int_equal(registry_observe(x->srv.reg, fake_view, x), 0);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	store_free(x->srv.store);
	registry_free(x->srv.reg);
	event_base_free(x->srv.base);
	free(x);
	return 0;
}

static struct host *
add_host(struct fx *x, uint64_t id, const char *name)
{
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->id = id;
	str_fmt(h->uid, sizeof(h->uid), "%032llx", (unsigned long long)id + 1);
	str_copy(h->name, name, sizeof(h->name));
	assert_int_equal(registry_add_host(x->srv.reg, h), 0);
	return h;
}

static json_t *
events(size_t n, int first)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char id[33];
		str_fmt(id, sizeof(id), "%032x", first + (int)i);
		json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:s, s:s}", "id", id, "time",
		    (json_int_t)1750000000, "severity", "info", "kind", "test", "message", "m"));
	}
	return a;
}

struct acks {
	int calls, last_rc;
};

static void
acked(void *arg, int rc, const char *err)
{
	struct acks *a = arg;
	(void)err;
	a->calls++;
	a->last_rc = rc;
}

/* Many changes of one host are one row in the next write; each change is
 * told to every observer once, in order. */
static void
test_host_changes_coalesced(void **state)
{
	struct fx *x = *state;
	struct host *a = add_host(x, 1, "a"), *b = add_host(x, 2, "b");
	for (int i = 0; i < 5; i++)
		registry_host_changed(x->srv.reg, a, 0);
	assert_int_equal(x->writes, 5);
	assert_int_equal(x->others, 5);
	assert_true(a->dirty);
	assert_int_equal(store_pending_hosts(x->srv.store), 1);
	registry_host_changed(x->srv.reg, b, HOST_REEVALUATE);
	assert_int_equal(store_pending_hosts(x->srv.store), 2);
	assert_int_equal(x->last_what, HOST_REEVALUATE);
	/* the database has it (an enrolment's insert): no row write */
	struct host *c = add_host(x, 3, "c");
	registry_host_changed(x->srv.reg, c, HOST_STORED);
	assert_false(c->dirty);
	assert_int_equal(store_pending_hosts(x->srv.store), 2);
	assert_int_equal(x->others, 7);
	/* no database: the flush keeps everything pending */
	store_flush(x->srv.store);
	assert_int_equal(store_pending_hosts(x->srv.store), 2);
	assert_false(store_writing(x->srv.store));
	assert_int_equal(store_shed_count(x->srv.store), 0);
}

/* Events wait in the batch up to events_max; beyond, and for a host with
 * no row yet, they are refused at once (the agent keeps and resends them)
 * and counted; their callbacks are not called. Waiting ones are answered
 * (failed) when the store goes away. */
static void
test_events_bounded(void **state)
{
	struct fx *x = *state;
	struct host *h = add_host(x, 7, "pc");
	struct acks first = { 0, 99 }, second = { 0, 99 }, unstored = { 0, 99 };
	json_t *e3 = events(3, 1), *e2 = events(2, 10), *e1 = events(1, 20);
	assert_int_equal(store_events(x->srv.store, h, e3, acked, &first), 0);
	assert_int_equal(store_pending_events(x->srv.store), 3);
	/* 3 + 3 > 5 */
	json_t *e3b = events(3, 30);
	assert_int_equal(store_events(x->srv.store, h, e3b, acked, &second), -1);
	assert_int_equal(store_shed_count(x->srv.store), 3);
	assert_int_equal(store_events(x->srv.store, h, e2, acked, &second), 0);
	assert_int_equal(store_pending_events(x->srv.store), 5);
	/* not stored yet (id 0): refused */
	struct host *fresh = add_host(x, 0, "fresh");
	assert_int_equal(store_events(x->srv.store, fresh, e1, acked, &unstored), -1);
	assert_int_equal(store_pending_events(x->srv.store), 5);
	assert_int_equal(first.calls + second.calls + unstored.calls, 0);
	store_free(x->srv.store);
	x->srv.store = NULL;
	assert_int_equal(first.calls, 1);
	assert_int_equal(first.last_rc, -1);
	assert_int_equal(second.calls, 1);
	assert_int_equal(unstored.calls, 0);
	json_decref(e3);
	json_decref(e3b);
	json_decref(e2);
	json_decref(e1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_changes_coalesced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_bounded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
