/* test_fleet.c — unit tests for daemon/fleet.c: the snapshot's counts and
 * order, copy-on-write publishing with reference counts, Critical
 * transitions, threats, outbreaks, the bounded notification queue and the
 * hosts per NAC token. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "daemon/core/config.h"
#include "daemon/fleet/fleet.h"
#include "daemon/nacd/nac.h"
#include "db.h"
#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "util.h"

#define NOW ((int64_t)1750000000)
#define DAY 86400

enum kind { K_OK, K_WARNING, K_CRITICAL, K_RTP_OFF, K_NEW, K_INFECTED };

struct fx {
	struct server srv;
	struct fleet *f;
};

static json_t *
posture(enum kind k, int64_t now)
{
	if (k == K_NEW)
		return NULL;
	json_t *av = json_array();
	if (k != K_CRITICAL)
		json_array_append_new(av, json_pack("{s:s, s:b, s:b, s:I}", "name", "clamav",
		    "installed", 1, "rtp", k != K_RTP_OFF,
		    "db_time", (json_int_t)(k == K_WARNING ? now - 4 * DAY : now - 3600)));
	return json_pack("{s:o, s:{s:i}}", "antivirus", av, "threats", "unresolved", k == K_INFECTED);
}

static struct host *
add_host(struct fx *x, uint64_t id, const char *name, enum kind k)
{
	static unsigned serial;
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->id = id;
	assert_true(str_fmt(h->uid, sizeof(h->uid), "%032x", ++serial) == 32);
	str_copy(h->name, name, sizeof(h->name));
	str_copy(h->last_ip, "192.0.2.7", sizeof(h->last_ip));
	h->last_seen = k == K_NEW ? 0 : NOW;
	host_set_posture(h, posture(k, NOW), NOW, &x->srv.thr, NOW);
	assert_int_equal(registry_add_host(x->srv.reg, h), 0);
	return h;
}

static void
set_kind(struct fx *x, struct host *h, enum kind k)
{
	h->last_seen = NOW;
	host_set_posture(h, posture(k, NOW), NOW, &x->srv.thr, NOW);
	fleet_host_changed(&x->srv, h);
}

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct fleet_params p = { .outbreak_threshold = 4, .outbreak_window = 600, .notice_max = 16 };
	char err[256];
	if (x == NULL)
		return -1;
	status_defaults(&x->srv.thr);
	x->srv.reg = registry_new();
	x->srv.started = NOW - 100;
	x->srv.loaded = true;
	x->f = fleet_new(&x->srv, &p, err, sizeof(err));
	if (x->srv.reg == NULL || x->f == NULL)
		return -1;
	x->srv.fleet = x->f;
	fleet_attach(x->f, true);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	fleet_free(x->f);
	registry_free(x->srv.reg);
	free(x);
	return 0;
}

static size_t
take(struct fx *x, struct fleet_notice *out, size_t max, uint64_t dropped[FLEET_NOTICE_KINDS])
{
	uint64_t d[FLEET_NOTICE_KINDS] = { 0 };
	size_t n = fleet_notices_take(x->f, out, max, dropped ? dropped : d);
	return n;
}

static void
test_empty(void **state)
{
	struct fx *x = *state;
	const struct fleet_snapshot *s = fleet_acquire(x->f);
	assert_int_equal(s->nhosts, 0);
	assert_int_equal(s->counts.total, 0);
	assert_int_equal(s->ngroups, 1);
	assert_int_equal(s->groups[0].index, FLEET_UNASSIGNED);
	assert_int_equal(s->groups[0].parent, 0);
	assert_string_equal(s->groups[0].name, "Unassigned");
	assert_int_equal(fleet_host_lower_bound(s, 1), 0);
	fleet_release(x->f, s);

	fleet_update(x->f, NOW);
	s = fleet_acquire(x->f);
	assert_int_equal(s->nhosts, 0);
	assert_int_equal(s->db_state, FLEET_DB_CONNECTING);
	assert_int_equal(s->started, NOW - 100);
	/* NAC off (srv->nac NULL): not enabled, no host in any token */
	assert_false(s->nac_enabled);
	for (size_t i = 0; i < FLEET_NAC_TOKENS; i++)
		assert_int_equal(s->nac_hosts[i], 0);
	fleet_release(x->f, s);
}

static void
test_counts_and_order(void **state)
{
	struct fx *x = *state;
	add_host(x, 30, "c", K_CRITICAL);
	add_host(x, 10, "a", K_OK);
	add_host(x, 20, "b", K_WARNING);
	add_host(x, 40, "d", K_RTP_OFF);
	add_host(x, 50, "e", K_NEW);
	add_host(x, 0, "pending", K_OK);                     /* not stored yet */
	add_host(x, (uint64_t)UINT32_MAX + 1, "huge", K_OK);  /* beyond Unsigned32 */
	fleet_update(x->f, NOW);

	const struct fleet_snapshot *s = fleet_acquire(x->f);
	assert_int_equal(s->nhosts, 5);
	uint64_t want[] = { 10, 20, 30, 40, 50 };
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(fleet_host_at(s, i)->id, want[i]);
	assert_int_equal(fleet_host_lower_bound(s, 0), 0);
	assert_int_equal(fleet_host_lower_bound(s, 20), 1);
	assert_int_equal(fleet_host_lower_bound(s, 21), 2);
	assert_int_equal(fleet_host_lower_bound(s, 51), 5);

	/* hosts without a row (not stored, id too large) are not counted */
	assert_int_equal(s->counts.total, 5);
	assert_int_equal(s->counts.ok, 1);
	assert_int_equal(s->counts.warning, 2);   /* b (old databases), e (no posture) */
	assert_int_equal(s->counts.critical, 2);  /* c (no AV), d (rtp off) */
	assert_int_equal(s->counts.unassigned, 5);
	assert_int_equal(s->counts.never_connected, 1);
	assert_int_equal(s->counts.db_outdated, 1);
	assert_int_equal(s->counts.rtp_off, 1);
	assert_int_equal(s->counts.no_av, 1);
	assert_int_equal(s->groups[0].hosts, 5);
	assert_int_equal(s->groups[0].critical, 2);

	const struct fleet_host *a = fleet_host_at(s, 0), *c = fleet_host_at(s, 2), *d = fleet_host_at(s, 3);
	const struct fleet_host *e = fleet_host_at(s, 4);
	assert_string_equal(a->name, "a");
	assert_string_equal(a->av, "clamav");
	assert_string_equal(a->ip, "192.0.2.7");
	assert_int_equal(a->rtp, FLEET_RTP_ON);
	assert_int_equal(a->db_time, NOW - 3600);
	assert_int_equal(a->group, FLEET_UNASSIGNED);
	assert_int_equal(c->status, STATUS_CRITICAL);
	assert_true(c->reasons & REASON_NO_AV);
	assert_true(c->critical & REASON_NO_AV);
	assert_string_equal(c->av, "");
	assert_int_equal(c->rtp, FLEET_RTP_UNKNOWN);
	assert_int_equal(d->rtp, FLEET_RTP_OFF);
	assert_int_equal(e->last_seen, 0);
	assert_int_equal(e->reasons, REASON_NO_POSTURE);
	fleet_release(x->f, s);
}

static void
test_patch_keeps_held_snapshot(void **state)
{
	struct fx *x = *state;
	struct host *hosts[600];
	char name[16];
	for (int i = 0; i < 600; i++) {
		str_fmt(name, sizeof(name), "h%03d", i);
		hosts[i] = add_host(x, (uint64_t)(1000 - i), name, K_OK);
	}
	fleet_update(x->f, NOW);
	const struct fleet_snapshot *before = fleet_acquire(x->f);
	uint64_t serial = before->serial;
	assert_int_equal(before->nhosts, 600);
	assert_int_equal(before->counts.ok, 600);
	/* id 1000 is hosts[0], the last row */
	assert_int_equal(fleet_host_at(before, 599)->id, 1000);
	const struct fleet_host *first_row = fleet_host_at(before, 0);

	set_kind(x, hosts[0], K_CRITICAL);
	fleet_update(x->f, NOW + 1);
	const struct fleet_snapshot *after = fleet_acquire(x->f);
	assert_int_equal(after->serial, serial + 1);
	assert_int_equal(after->counts.ok, 599);
	assert_int_equal(after->counts.critical, 1);
	assert_int_equal(after->groups[0].critical, 1);
	assert_int_equal(fleet_host_at(after, 599)->status, STATUS_CRITICAL);
	/* the held snapshot did not change */
	assert_int_equal(before->counts.ok, 600);
	assert_int_equal(fleet_host_at(before, 599)->status, STATUS_OK);
	/* an untouched chunk is shared, the patched one is a copy */
	assert_ptr_equal(fleet_host_at(after, 0), first_row);
	assert_ptr_not_equal(fleet_host_at(after, 599), fleet_host_at(before, 599));
	fleet_release(x->f, before);

	/* nothing changed: nothing published */
	fleet_update(x->f, NOW + 2);
	const struct fleet_snapshot *same = fleet_acquire(x->f);
	assert_ptr_equal(same, after);
	fleet_release(x->f, same);
	fleet_release(x->f, after);

	/* a removed host needs a full rebuild, found by the count */
	registry_remove_host(x->srv.reg, hosts[5]);
	fleet_update(x->f, NOW + 3);
	same = fleet_acquire(x->f);
	assert_int_equal(same->nhosts, 599);
	assert_int_equal(fleet_host_lower_bound(same, 995), fleet_host_lower_bound(same, 996));
	fleet_release(x->f, same);
}

static void
test_insert_new_hosts(void **state)
{
	struct fx *x = *state;
	char name[16];
	for (int i = 1; i <= 600; i++) {
		str_fmt(name, sizeof(name), "h%03d", i);
		add_host(x, (uint64_t)i * 2, name, K_OK);
	}
	fleet_update(x->f, NOW);
	const struct fleet_snapshot *before = fleet_acquire(x->f);
	assert_int_equal(before->nhosts, 600);

	/* enrolment: the registry gains a host, its id comes with the commit */
	struct host *late = add_host(x, 0, "late", K_CRITICAL);
	late->id = 5000;
	fleet_host_changed(&x->srv, late);
	struct host *mid = add_host(x, 0, "mid", K_OK);
	mid->id = 1001;   /* between existing ids */
	fleet_host_changed(&x->srv, mid);
	fleet_host_changed(&x->srv, mid);
	/* a host still without an id has no row */
	struct host *pend = add_host(x, 0, "pend", K_OK);
	fleet_host_changed(&x->srv, pend);
	fleet_update(x->f, NOW + 1);

	const struct fleet_snapshot *after = fleet_acquire(x->f);
	assert_int_equal(after->nhosts, 602);
	assert_int_equal(after->counts.total, 602);
	assert_int_equal(after->counts.critical, 1);
	for (size_t i = 1; i < after->nhosts; i++)
		assert_true(fleet_host_at(after, i - 1)->id < fleet_host_at(after, i)->id);
	size_t at = fleet_host_lower_bound(after, 1001);
	assert_string_equal(fleet_host_at(after, at)->name, "mid");
	assert_string_equal(fleet_host_at(after, 601)->name, "late");
	/* the chunk before the insertion point is shared */
	assert_ptr_equal(fleet_host_at(after, 0), fleet_host_at(before, 0));
	assert_int_equal(before->nhosts, 600);
	fleet_release(x->f, before);
	fleet_release(x->f, after);

	/* the pending host gets its id: the registry count did not change, so
	 * the fleet rebuilds everything and still agrees */
	pend->id = 7000;
	fleet_host_changed(&x->srv, pend);
	fleet_update(x->f, NOW + 2);
	after = fleet_acquire(x->f);
	assert_int_equal(after->nhosts, 603);
	assert_int_equal(fleet_host_at(after, 602)->id, 7000);
	fleet_release(x->f, after);
}

static void
test_critical_notices(void **state)
{
	struct fx *x = *state;
	struct fleet_notice n[8];
	struct host *h = add_host(x, 7, "web", K_OK);
	add_host(x, 8, "db", K_CRITICAL);
	/* the first build is the baseline: hosts already Critical raise nothing */
	fleet_update(x->f, NOW);
	assert_int_equal(take(x, n, 8, NULL), 0);

	set_kind(x, h, K_CRITICAL);
	set_kind(x, h, K_CRITICAL);   /* reported twice, noticed once */
	fleet_update(x->f, NOW + 1);
	assert_int_equal(take(x, n, 8, NULL), 1);
	assert_int_equal(n[0].kind, FLEET_NOTICE_HOST_CRITICAL);
	assert_int_equal(n[0].host_id, 7);
	assert_string_equal(n[0].host, "web");
	assert_int_equal(n[0].status, STATUS_CRITICAL);
	assert_true(n[0].critical & REASON_NO_AV);

	/* staying Critical is no news; a new host that is Critical is */
	set_kind(x, h, K_CRITICAL);
	fleet_update(x->f, NOW + 2);
	assert_int_equal(take(x, n, 8, NULL), 0);
	struct host *nh = add_host(x, 9, "new", K_CRITICAL);
	fleet_update(x->f, NOW + 3);
	assert_int_equal(take(x, n, 8, NULL), 0);   /* not reported yet */
	fleet_host_changed(&x->srv, nh);             /* enrolment committed */
	fleet_update(x->f, NOW + 4);
	assert_int_equal(take(x, n, 8, NULL), 1);
	assert_int_equal(n[0].host_id, 9);
	/* an addition nobody reported shows up with the periodic rebuild */
	add_host(x, 10, "quiet", K_OK);
	fleet_update(x->f, NOW + 400);
	const struct fleet_snapshot *s = fleet_acquire(x->f);
	assert_int_equal(s->nhosts, 4);
	fleet_release(x->f, s);
}

static void
test_not_loaded_is_no_baseline(void **state)
{
	struct fx *x = *state;
	struct fleet_notice n[4];
	x->srv.loaded = false;
	fleet_update(x->f, NOW);
	/* the database load brings Critical hosts: old news, not notified */
	add_host(x, 3, "old", K_CRITICAL);
	x->srv.loaded = true;
	fleet_update(x->f, NOW + 1);
	assert_int_equal(take(x, n, 4, NULL), 0);
	const struct fleet_snapshot *s = fleet_acquire(x->f);
	assert_int_equal(s->counts.critical, 1);
	fleet_release(x->f, s);
}

static json_t *
threat(const char *id, const char *msg)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", id, "kind", "threat_found",
	    "severity", "critical", "time", (json_int_t)NOW, "message", msg);
}

/* The count of new threats that the listener hands to the groups'
 * outbreak policies (mgmt_on_threats): a batch resent after a nack adds
 * nothing. */
static void
test_new_threats_counted_once(void **state)
{
	struct fx *x = *state;
	struct host *h = add_host(x, 6, "pc", K_OK);
	json_t *ev = json_array();
	json_array_append_new(ev, threat("000000000000000000000000000000b1", "one"));
	json_array_append_new(ev, threat("000000000000000000000000000000b2", "two"));
	json_array_append_new(ev, json_pack("{s:s, s:s}", "id", "000000000000000000000000000000b3",
	    "kind", "scan_done"));
	assert_int_equal(fleet_agent_events(&x->srv, h, ev), 2);
	assert_int_equal(fleet_agent_events(&x->srv, h, ev), 0);   /* the resend */
	json_array_append_new(ev, threat("000000000000000000000000000000b4", "three"));
	assert_int_equal(fleet_agent_events(&x->srv, h, ev), 1);   /* only the new one */
	json_decref(ev);
	assert_int_equal(fleet_agent_events(&x->srv, NULL, NULL), 0);
}

static void
test_threats_and_outbreak(void **state)
{
	struct fx *x = *state;
	struct fleet_notice n[16];
	struct host *h = add_host(x, 5, "pc", K_OK);
	json_t *ev = json_array();
	char id[33];
	for (int i = 0; i < 3; i++) {
		str_fmt(id, sizeof(id), "%032x", i + 1);
		json_array_append_new(ev, threat(id, "Eicar-Test-Signature FOUND"));
	}
	/* other kinds and malformed entries are ignored */
	json_array_append_new(ev, json_pack("{s:s, s:s}", "id", "0000000000000000000000000000000a",
	    "kind", "scan_done"));
	json_array_append_new(ev, json_string("not an event"));
	json_array_append_new(ev, json_pack("{s:s}", "kind", "threat_found"));   /* no id: counted */
	fleet_agent_events(&x->srv, h, ev);
	fleet_update(x->f, now_s());
	const struct fleet_snapshot *s = fleet_acquire(x->f);
	assert_int_equal(s->threats_24h, 4);
	assert_true(s->outbreak);
	assert_int_equal(s->outbreak_threats, 4);
	fleet_release(x->f, s);

	size_t k = take(x, n, 16, NULL);
	assert_int_equal(k, 5);   /* 4 threats, the outbreak started at the 4th */
	assert_int_equal(n[0].kind, FLEET_NOTICE_THREAT);
	assert_int_equal(n[0].host_id, 5);
	assert_string_equal(n[0].host, "pc");
	assert_string_equal(n[0].text, "Eicar-Test-Signature FOUND");
	assert_int_equal(n[4].kind, FLEET_NOTICE_OUTBREAK_START);
	assert_int_equal(n[4].threats, 4);

	/* a resent event (same id) is not counted again */
	fleet_agent_events(&x->srv, h, ev);
	assert_int_equal(take(x, n, 16, NULL), 1);   /* only the one without an id */
	json_decref(ev);

	/* the window passes: the outbreak ends, the day still counts */
	fleet_update(x->f, now_s() + 700);
	assert_int_equal(take(x, n, 16, NULL), 1);
	assert_int_equal(n[0].kind, FLEET_NOTICE_OUTBREAK_END);
	s = fleet_acquire(x->f);
	assert_false(s->outbreak);
	assert_int_equal(s->threats_24h, 5);
	fleet_release(x->f, s);
	fleet_update(x->f, now_s() + DAY + 120);
	s = fleet_acquire(x->f);
	assert_int_equal(s->threats_24h, 0);
	fleet_release(x->f, s);
}

static void
test_db_notices(void **state)
{
	struct fx *x = *state;
	struct fleet_notice n[4];
	fleet_db_state(&x->srv, DB_STATE_UP, "");
	assert_int_equal(take(x, n, 4, NULL), 0);   /* first connection: no news */
	fleet_db_state(&x->srv, DB_STATE_DOWN, "Lost connection to server during query");
	fleet_db_state(&x->srv, DB_STATE_DOWN, "still down");
	fleet_db_state(&x->srv, DB_STATE_UP, "");
	assert_int_equal(take(x, n, 4, NULL), 2);
	assert_int_equal(n[0].kind, FLEET_NOTICE_DB_LOST);
	assert_int_equal(n[0].db_state, FLEET_DB_DOWN);
	assert_string_equal(n[0].text, "Lost connection to server during query");
	assert_int_equal(n[1].kind, FLEET_NOTICE_DB_RESTORED);
	assert_int_equal(n[1].db_state, FLEET_DB_UP);
}

static void
test_queue_bounded(void **state)
{
	struct fx *x = *state;
	struct fleet_notice n[32];
	uint64_t dropped[FLEET_NOTICE_KINDS] = { 0 };
	/* nobody listening: nothing queued */
	fleet_attach(x->f, false);
	fleet_db_state(&x->srv, DB_STATE_DOWN, "x");
	assert_int_equal(take(x, n, 32, NULL), 0);
	fleet_attach(x->f, true);
	for (int i = 0; i < 20; i++) {
		fleet_db_state(&x->srv, DB_STATE_UP, "");
		fleet_db_state(&x->srv, DB_STATE_DOWN, "y");
	}
	/* 40 pushed into a queue of 16 */
	assert_int_equal(take(x, n, 32, dropped), 16);
	assert_int_equal(dropped[FLEET_NOTICE_DB_LOST] + dropped[FLEET_NOTICE_DB_RESTORED], 24);
	assert_int_equal(n[0].kind, FLEET_NOTICE_DB_RESTORED);   /* oldest first */
	memset(dropped, 0, sizeof(dropped));
	assert_int_equal(take(x, n, 32, dropped), 0);
	assert_int_equal(dropped[FLEET_NOTICE_DB_LOST], 0);
}

static void
test_detached_builds_nothing(void **state)
{
	struct fx *x = *state;
	struct fleet_notice n[4];
	fleet_attach(x->f, false);
	add_host(x, 1, "a", K_CRITICAL);
	fleet_update(x->f, NOW);
	const struct fleet_snapshot *s = fleet_acquire(x->f);
	assert_int_equal(s->nhosts, 0);
	uint64_t serial = s->serial;
	fleet_release(x->f, s);
	fleet_db_state(&x->srv, DB_STATE_DOWN, "gone");
	assert_int_equal(take(x, n, 4, NULL), 0);
	/* a reader comes: the next update builds everything */
	fleet_attach(x->f, true);
	fleet_update(x->f, NOW + 1);
	s = fleet_acquire(x->f);
	assert_true(s->serial > serial);
	assert_int_equal(s->nhosts, 1);
	assert_int_equal(s->counts.critical, 1);
	fleet_release(x->f, s);
}

static void
test_null_safe(void **state)
{
	struct fx *x = *state;
	struct server bare = { 0 };
	struct host h = { .id = 1 };
	/* modules call these without a fleet (tests, snmp disabled paths) */
	fleet_host_changed(&bare, &h);
	fleet_mark_dirty(&bare);
	fleet_agent_events(&bare, &h, NULL);
	fleet_db_state(&bare, DB_STATE_DOWN, NULL);
	fleet_agent_events(&x->srv, NULL, NULL);
	fleet_host_changed(&x->srv, NULL);
	fleet_free(NULL);
	assert_int_equal(fleet_notice_fd(x->f) >= 0, 1);
}


/* ---- NAC: hosts per posture token ---- */

/* main.c's source of the NAC counts */
static bool
nac_counts(void *arg, uint64_t counts[FLEET_NAC_TOKENS])
{
	struct fx *x = arg;
	if (x->srv.nac == NULL)
		return false;
	nac_token_counts(x->srv.nac, counts);
	return true;
}

static int
nac_setup(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX], err[512];
	const char *tmp = getenv("TMPDIR");
	static const char text[] = "nac: { enabled = true; stale_after = 86400; };\n";
	if (setup(state) < 0)
		return -1;
	struct fx *x = *state;
	if (str_fmt(dir, sizeof(dir), "%s/custos-fleet-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 ||
	    mkdtemp(dir) == NULL || str_fmt(path, sizeof(path), "%s/custosd.conf", dir) < 0 ||
	    file_write_atomic(path, text, strlen(text), 0600) < 0)
		return -1;
	int rc = conf_load(&x->srv.cfg, path, custosd_schema, NULL, 0, err, sizeof(err));
	unlink(path);
	rmdir(dir);
	if (rc < 0 || (x->srv.nac = nac_new(&x->srv, err, sizeof(err))) == NULL) {
		fprintf(stderr, "nac_setup: %s\n", err);
		return -1;
	}
	fleet_set_sources(x->f, &(struct fleet_sources){ .nac_counts = nac_counts, .arg = x });
	return 0;
}

static int
nac_teardown(void **state)
{
	struct fx *x = *state;
	nac_free(x->srv.nac);
	conf_free(x->srv.cfg);
	return teardown(state);
}

static struct host *
nac_host(struct fx *x, uint64_t id, const char *name, enum kind k, int64_t now)
{
	struct host *h = add_host(x, id, name, k);
	nac_host_update(x->srv.nac, h, now);
	fleet_host_changed(&x->srv, h);
	return h;
}

static void
expect_tokens(const struct fleet_snapshot *s, const uint64_t want[NAC_TOKENS])
{
	for (size_t i = 0; i < NAC_TOKENS; i++)
		if (s->nac_hosts[i] != want[i])
			fail_msg("%s: the snapshot has %llu hosts, expected %llu",
			    nac_token_name((enum nac_token)i), (unsigned long long)s->nac_hosts[i],
			    (unsigned long long)want[i]);
}

static void
test_nac_counts(void **state)
{
	struct fx *x = *state;
	/* the built-in conditions (nac.conditions empty) */
	nac_host(x, 1, "ok", K_OK, NOW);              /* Healthy */
	nac_host(x, 2, "ok2", K_OK, NOW);             /* Healthy */
	nac_host(x, 3, "old-db", K_WARNING, NOW);     /* Checkup: databases 4 days old */
	nac_host(x, 4, "new", K_NEW, NOW);            /* Transition: no posture yet */
	nac_host(x, 5, "no-av", K_CRITICAL, NOW);     /* Quarantine */
	struct host *rtp = nac_host(x, 6, "rtp-off", K_RTP_OFF, NOW);   /* Quarantine */
	nac_host(x, 7, "sick", K_INFECTED, NOW);      /* Infected: an unresolved threat */
	nac_host(x, 8, "stale", K_OK, NOW + 2 * DAY); /* Unknown: posture older than stale_after */
	nac_host(x, 0, "pending", K_OK, NOW);         /* no database id yet: NAC counts it */
	fleet_update(x->f, NOW);

	const struct fleet_snapshot *s = fleet_acquire(x->f);
	uint64_t want[NAC_TOKENS] = { [NAC_HEALTHY] = 3, [NAC_CHECKUP] = 1, [NAC_TRANSITION] = 1,
	    [NAC_QUARANTINE] = 2, [NAC_INFECTED] = 1, [NAC_UNKNOWN] = 1 };
	assert_true(s->nac_enabled);
	expect_tokens(s, want);
	uint64_t engine[NAC_TOKENS];
	nac_token_counts(x->srv.nac, engine);
	assert_memory_equal(engine, s->nac_hosts, sizeof(engine));
	assert_int_equal(s->counts.total, 8);
	uint64_t serial = s->serial;

	/* a token changes without a fleet row changing (nothing reported to the
	 * fleet): the counts alone publish a new snapshot */
	set_kind(x, rtp, K_OK);
	fleet_update(x->f, NOW + 1);   /* the row is patched; NAC not told yet */
	fleet_release(x->f, s);
	s = fleet_acquire(x->f);
	expect_tokens(s, want);
	serial = s->serial;
	fleet_release(x->f, s);
	nac_host_update(x->srv.nac, rtp, NOW + 2);
	fleet_update(x->f, NOW + 2);
	s = fleet_acquire(x->f);
	assert_true(s->serial > serial);
	want[NAC_QUARANTINE]--;
	want[NAC_HEALTHY]++;
	expect_tokens(s, want);
	serial = s->serial;
	fleet_release(x->f, s);

	/* unchanged counts publish nothing */
	fleet_update(x->f, NOW + 3);
	s = fleet_acquire(x->f);
	assert_int_equal(s->serial, serial);
	fleet_release(x->f, s);

	/* NAC gone (as when it is off): not enabled, zeros */
	nac_free(x->srv.nac);
	x->srv.nac = NULL;
	fleet_update(x->f, NOW + 4);
	s = fleet_acquire(x->f);
	assert_false(s->nac_enabled);
	memset(want, 0, sizeof(want));
	expect_tokens(s, want);
	fleet_release(x->f, s);
}

/* A restart: the day's threats come back from the database, the outbreak
 * state quietly; what this process counted already, and a resent event,
 * count once. */
static void
test_seed_threats(void **state)
{
	struct fx *x = *state;
	struct fleet_notice n[16];
	int64_t now = now_s();
	struct host *h = add_host(x, 6, "pc2", K_OK);

	/* one threat arrived after the start, before the load */
	json_t *ev = json_array();
	json_array_append_new(ev, threat("000000000000000000000000000000a1", "early"));
	fleet_agent_events(&x->srv, h, ev);
	json_decref(ev);
	assert_int_equal(take(x, n, 16, NULL), 1);

	/* the database: newest first; a1 is the early one; one a day old */
	struct fleet_seed seed[] = {
		{ "000000000000000000000000000000a1", now },
		{ "000000000000000000000000000000b1", now - 30 },
		{ "000000000000000000000000000000b2", now - 120 },
		{ "000000000000000000000000000000b3", now - 400 },
		{ "000000000000000000000000000000b4", now - 7200 },
		{ "000000000000000000000000000000b5", now - 86400 - 60 },
	};
	fleet_seed_threats(x->f, now, seed, ARRAY_LEN(seed));
	fleet_seed_threats(NULL, now, seed, ARRAY_LEN(seed));
	fleet_update(x->f, now);
	const struct fleet_snapshot *s = fleet_acquire(x->f);
	assert_int_equal(s->threats_24h, 5);     /* a1 once, b1-b4 */
	assert_true(s->outbreak);                /* a1, b1, b2, b3 within 600 s: the threshold */
	fleet_release(x->f, s);
	assert_int_equal(take(x, n, 16, NULL), 0);   /* quietly */

	ev = json_array();
	json_array_append_new(ev, threat("000000000000000000000000000000b2", "resent"));
	json_array_append_new(ev, threat("000000000000000000000000000000cc", "new"));
	fleet_agent_events(&x->srv, h, ev);
	json_decref(ev);
	fleet_update(x->f, now);
	s = fleet_acquire(x->f);
	assert_int_equal(s->threats_24h, 6);
	fleet_release(x->f, s);
}

/* Agent work marks the fleet busy for the window the SNMP thread yields in. */
static void
test_agents_busy(void **state)
{
	struct fx *x = *state;
	struct timespec ts = { 0, 30 * 1000000L };
	assert_false(fleet_agents_busy(x->f, 20));
	fleet_note_agent_work(x->f);
	assert_true(fleet_agents_busy(x->f, 1000));
	nanosleep(&ts, NULL);
	assert_false(fleet_agents_busy(x->f, 20));
	assert_true(fleet_agents_busy(x->f, 1000));
	fleet_note_agent_work(NULL);               /* no fleet: nothing happens */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counts_and_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patch_keeps_held_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert_new_hosts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_critical_notices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_loaded_is_no_baseline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threats_and_outbreak, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_threats_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_notices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detached_builds_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_safe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agents_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seed_threats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nac_counts, nac_setup, nac_teardown),
	};
	return cmocka_run_group_tests_name("fleet", tests, NULL, NULL);
}
