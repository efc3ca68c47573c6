/* fleet.c — see fleet.h. */
#include "fleet/fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "db.h"
#include "model/groups.h"
#include "log.h"
#include "mgmt/mgmt.h"
#include "core/registry.h"
#include "core/server.h"
#include "core/status.h"
#include "store/store.h"
#include "util.h"

#define CHUNK_ROWS 256
#define DAY_MINUTES 1440
#define RECENT_THREATS 512        /* event ids remembered against resends */
#define CHANGED_MAX 8192          /* more changed hosts per update: rebuild all */
#define FULL_REBUILD_SECONDS 300  /* safety net for changes nobody reported */


struct fleet_chunk {
	int refs;                 /* atomic: snapshots sharing this chunk */
	size_t n;
	struct fleet_host rows[CHUNK_ROWS];
};

/* Snapshot fields the fleet keeps private live in struct fleet_snapshot
 * (refs, chunks); baseline says whether Critical transitions may be
 * reported against it (the database was loaded when it was built). */
struct snap {
	struct fleet_snapshot pub;
	bool baseline;
};

struct fleet {
	struct server *srv;
	struct event *timer;
	struct fleet_params p;
	struct fleet_sources src;  /* main.c's: agents connected, NAC counts */

	pthread_mutex_t lock;     /* cur's reference count, the notice queue */
	struct snap *cur;

	/* builder, main thread only */
	bool attached;
	bool full;
	char (*changed)[33];      /* uids of changed hosts */
	size_t nchanged;
	size_t last_count;        /* registry hosts at the last update */
	bool last_loaded;
	int64_t last_full;
	uint64_t serial;

	/* threats, main thread only */
	uint32_t minute_count[DAY_MINUTES];
	int64_t minute_of[DAY_MINUTES];
	bool outbreak;
	uint8_t recent[RECENT_THREATS][16];
	size_t nrecent, recent_next;
	int db_state;
	bool db_lost;

	_Atomic int64_t agent_work_ms;   /* mono_ms() of the last agent frame */
	_Atomic uint64_t agent_work;     /* agent frames in and out, ever */

	/* notice queue, under lock; notices_on also says a reader is attached */
	bool notices_on;
	struct fleet_notice *ring;
	size_t ring_cap, ring_head, ring_len;
	uint64_t dropped[FLEET_NOTICE_KINDS];
	bool signalled;
	int pipe_rd, pipe_wr;
};

/* ---- snapshots ---- */

static void
chunk_unref(struct fleet_chunk *c)
{
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(c);
}

static void
snap_free(struct snap *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->pub.nchunks; i++)
		if (s->pub.chunks[i])
			chunk_unref(s->pub.chunks[i]);
	free(s->pub.chunks);
	free(s->pub.groups_own);
	free(s);
}

static void
snap_unref(struct fleet *f, struct snap *s)
{
	bool last;
	if (s == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	last = --s->pub.refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (last)
		snap_free(s);
}

const struct fleet_snapshot *
fleet_acquire(struct fleet *f)
{
	struct snap *s;
	pthread_mutex_lock(&f->lock);
	s = f->cur;
	s->pub.refs++;
	pthread_mutex_unlock(&f->lock);
	return &s->pub;
}

void
fleet_release(struct fleet *f, const struct fleet_snapshot *s)
{
	/* pub is the first member of struct snap */
	snap_unref(f, (struct snap *)(uintptr_t)s);
}

const struct fleet_host *
fleet_host_at(const struct fleet_snapshot *s, size_t i)
{
	return &s->chunks[i / CHUNK_ROWS]->rows[i % CHUNK_ROWS];
}

size_t
fleet_host_lower_bound(const struct fleet_snapshot *s, uint64_t id)
{
	size_t lo = 0, hi = s->nhosts;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (fleet_host_at(s, mid)->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- notices ---- */

static void
notice_push(struct fleet *f, const struct fleet_notice *n)
{
	bool wake = false;
	pthread_mutex_lock(&f->lock);
	if (!f->notices_on) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (f->ring_len == f->ring_cap) {
		f->dropped[n->kind]++;
	} else {
		f->ring[(f->ring_head + f->ring_len) % f->ring_cap] = *n;
		f->ring_len++;
	}
	if (!f->signalled) {
		f->signalled = true;
		wake = true;
	}
	/* written under the lock: a reader that drains between our unlock and
	 * a late write would leave a byte in the pipe and an empty ring, and
	 * spin on the readable pipe (the pipe is non-blocking; a full pipe
	 * already wakes the reader) */
	if (wake) {
		ssize_t w = write(f->pipe_wr, "n", 1);
		(void)w;
	}
	pthread_mutex_unlock(&f->lock);
}

void
fleet_attach(struct fleet *f, bool on)
{
	pthread_mutex_lock(&f->lock);
	f->notices_on = on;
	pthread_mutex_unlock(&f->lock);
	f->attached = on;
	f->full = true;   /* the snapshot may be old: rebuild at the next update */
}

size_t
fleet_notices_take(struct fleet *f, struct fleet_notice *out, size_t max,
    uint64_t dropped[FLEET_NOTICE_KINDS])
{
	size_t n = 0;
	pthread_mutex_lock(&f->lock);
	while (n < max && f->ring_len > 0) {
		out[n++] = f->ring[f->ring_head];
		f->ring_head = (f->ring_head + 1) % f->ring_cap;
		f->ring_len--;
	}
	for (size_t k = 0; k < FLEET_NOTICE_KINDS; k++) {
		dropped[k] += f->dropped[k];
		f->dropped[k] = 0;
	}
	if (f->ring_len == 0) {
		char buf[64];
		while (read(f->pipe_rd, buf, sizeof(buf)) > 0)
			;
		f->signalled = false;
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}

int
fleet_notice_fd(const struct fleet *f)
{
	return f->pipe_rd;
}

/* ---- rows and counts ---- */

static void
av_name(const json_t *posture, char *out, size_t len)
{
	size_t i;
	json_t *av;
	out[0] = '\0';
	json_array_foreach(json_object_get(posture, "antivirus"), i, av) {
		const char *name = json_string_value(json_object_get(av, "name"));
		if (json_is_true(json_object_get(av, "installed")) && name) {
			str_copy(out, name, len);
			return;
		}
	}
}

static void
host_row(const struct host *h, struct fleet_host *r)
{
	r->id = h->id;
	r->db_time = h->sin.db_time;
	r->last_seen = h->last_seen;
	r->threats = h->sin.threats;
	r->reasons = h->st.reasons;
	r->critical = h->st.critical;
	/* group index = database group id + 1 (Unassigned, id 0, is 1) */
	r->group = h->group_id < UINT32_MAX - 1 ? (uint32_t)h->group_id + 1 : FLEET_UNASSIGNED;
	r->status = (uint8_t)h->st.status;
	if (!h->sin.has_posture || !h->sin.av_installed)
		r->rtp = FLEET_RTP_UNKNOWN;
	else
		r->rtp = h->sin.rtp ? FLEET_RTP_ON : FLEET_RTP_OFF;
	str_copy(r->name, h->name, sizeof(r->name));
	str_copy(r->ip, h->last_ip, sizeof(r->ip));
	av_name(h->posture, r->av, sizeof(r->av));
}

static struct fleet_group *
group_find(struct fleet_group *g, size_t n, uint32_t index)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g[mid].index == index)
			return &g[mid];
		if (g[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Adds (sign 1) or removes (sign -1) one row's share of the counts. */
static void
count_row(struct fleet_snapshot *s, const struct fleet_host *r, int sign)
{
	uint64_t d = (uint64_t)(int64_t)sign;
	struct fleet_counts *c = &s->counts;
	struct fleet_group *g = group_find(s->groups_own, s->ngroups, r->group);
	c->total += d;
	if (r->status == STATUS_OK)
		c->ok += d;
	else if (r->status == STATUS_WARNING)
		c->warning += d;
	else
		c->critical += d;
	if (r->group == FLEET_UNASSIGNED)
		c->unassigned += d;
	if (r->last_seen == 0)
		c->never_connected += d;
	if (r->reasons & REASON_DB_OUTDATED)
		c->db_outdated += d;
	if (r->reasons & REASON_RTP_OFF)
		c->rtp_off += d;
	if (r->reasons & REASON_NO_AV)
		c->no_av += d;
	if (g == NULL)
		return;
	g->hosts += d;
	if (r->status == STATUS_OK)
		g->ok += d;
	else if (r->status == STATUS_WARNING)
		g->warning += d;
	else
		g->critical += d;
}

static int
fgroup_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct fleet_group *)a)->index, y = ((const struct fleet_group *)b)->index;
	return x < y ? -1 : x > y;
}

/* The group rows: "Unassigned" (index 1) and every administration group
 * (index = its database id + 1), sorted by index. Counted per direct group. */
static int
groups_init(struct fleet_snapshot *s, const struct server *srv)
{
	const struct group_tree *t = srv ? mgmt_groups(srv->mgmt) : NULL;
	size_t n = 0;
	const struct group **gs = t ? groups_list(t, &n) : NULL;
	s->groups_own = calloc(n + 1, sizeof(*s->groups_own));
	if (s->groups_own == NULL) {
		free(gs);
		return -1;
	}
	s->groups_own[0].index = FLEET_UNASSIGNED;
	s->groups_own[0].parent = 0;
	str_copy(s->groups_own[0].name, "Unassigned", sizeof(s->groups_own[0].name));
	s->ngroups = 1;
	for (size_t i = 0; gs && i < n; i++) {
		if (gs[i]->id >= UINT32_MAX - 1)
			continue;
		struct fleet_group *g = &s->groups_own[s->ngroups++];
		g->index = (uint32_t)gs[i]->id + 1;
		g->parent = gs[i]->parent_id ? (uint32_t)gs[i]->parent_id + 1 : 0;
		str_copy(g->name, gs[i]->name, sizeof(g->name));
	}
	free(gs);
	qsort(s->groups_own, s->ngroups, sizeof(*s->groups_own), fgroup_cmp);
	s->groups = s->groups_own;
	return 0;
}

static void
notice_critical(struct fleet *f, const struct fleet_host *r, int64_t now)
{
	struct fleet_notice n = {
		.kind = FLEET_NOTICE_HOST_CRITICAL, .time = now, .host_id = r->id,
		.status = r->status, .reasons = r->reasons, .critical = r->critical,
		.threats = r->threats,
	};
	str_copy(n.host, r->name, sizeof(n.host));
	notice_push(f, &n);
}

struct idhost {
	uint64_t id;
	const struct host *h;
};

static int
idhost_cmp(const void *a, const void *b)
{
	const struct idhost *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static struct snap *
build_full(struct fleet *f, const struct snap *old, int64_t now)
{
	struct server *srv = f->srv;
	size_t n = 0, nrows = 0;
	struct host **all = registry_hosts(srv->reg, &n);
	struct snap *s = calloc(1, sizeof(*s));
	struct idhost *ids = calloc(n + 1, sizeof(*ids));
	if (s == NULL || ids == NULL || (n > 0 && all == NULL) || groups_init(&s->pub, srv) < 0)
		goto fail;
	/* hosts not stored yet (or with an id beyond the MIB's Unsigned32
	 * index) have no row and are not counted */
	for (size_t i = 0; i < n; i++)
		if (all[i]->id != 0 && all[i]->id <= UINT32_MAX)
			ids[nrows++] = (struct idhost){ all[i]->id, all[i] };
	if (nrows > 1)
		qsort(ids, nrows, sizeof(*ids), idhost_cmp);
	s->pub.nchunks = (nrows + CHUNK_ROWS - 1) / CHUNK_ROWS;
	s->pub.chunks = calloc(s->pub.nchunks + 1, sizeof(*s->pub.chunks));
	if (s->pub.chunks == NULL)
		goto fail;
	for (size_t k = 0; k < s->pub.nchunks; k++) {
		struct fleet_chunk *c = malloc(sizeof(*c));
		if (c == NULL)
			goto fail;
		c->refs = 1;
		c->n = nrows - k * CHUNK_ROWS < CHUNK_ROWS ? nrows - k * CHUNK_ROWS : CHUNK_ROWS;
		s->pub.chunks[k] = c;
		for (size_t j = 0; j < c->n; j++) {
			host_row(ids[k * CHUNK_ROWS + j].h, &c->rows[j]);
			count_row(&s->pub, &c->rows[j], 1);
		}
	}
	s->pub.nhosts = nrows;
	s->baseline = srv->loaded;

	/* Critical transitions: walk both id-sorted tables side by side. */
	if (old && old->baseline) {
		size_t j = 0;
		for (size_t i = 0; i < nrows; i++) {
			const struct fleet_host *r = fleet_host_at(&s->pub, i);
			if (r->status != STATUS_CRITICAL)
				continue;
			while (j < old->pub.nhosts && fleet_host_at(&old->pub, j)->id < r->id)
				j++;
			if (j < old->pub.nhosts && fleet_host_at(&old->pub, j)->id == r->id &&
			    fleet_host_at(&old->pub, j)->status == STATUS_CRITICAL)
				continue;
			notice_critical(f, r, now);
		}
	}
	free(all);
	free(ids);
	return s;
fail:
	log_warnx("fleet", "out of memory building the fleet snapshot for %zu hosts; "
	    "SNMP serves the previous one", n);
	free(all);
	free(ids);
	snap_free(s);
	return NULL;
}

static bool
listed(const struct host *h)
{
	return h->id != 0 && h->id <= UINT32_MAX;
}

/* true when s holds a row for id. */
static bool
has_row(const struct fleet_snapshot *s, uint64_t id)
{
	size_t i = fleet_host_lower_bound(s, id);
	return i < s->nhosts && fleet_host_at(s, i)->id == id;
}

static struct fleet_chunk *
chunk_new(void)
{
	struct fleet_chunk *c = malloc(sizeof(*c));
	if (c) {
		c->refs = 1;
		c->n = 0;
	}
	return c;
}

/* Rows from index `from` of old merged with the new hosts ins (sorted by
 * id) into fresh chunks appended to s (which holds from / CHUNK_ROWS shared
 * chunks already). Host ids grow, so new hosts usually touch only the tail. */
static int
merge_tail(struct snap *s, const struct snap *old, size_t from, const struct idhost *ins,
    size_t nins)
{
	size_t total = old->pub.nhosts + nins, k = from / CHUNK_ROWS;
	size_t i = from, j = 0, row = from;
	struct fleet_chunk *c = NULL;
	s->pub.nchunks = (total + CHUNK_ROWS - 1) / CHUNK_ROWS;
	while (row < total) {
		if (c == NULL || c->n == CHUNK_ROWS) {
			if ((c = chunk_new()) == NULL)
				return -1;
			s->pub.chunks[k++] = c;
		}
		struct fleet_host *r = &c->rows[c->n++];
		if (j < nins && (i == old->pub.nhosts || ins[j].id < fleet_host_at(&old->pub, i)->id)) {
			host_row(ins[j++].h, r);
			count_row(&s->pub, r, 1);
		} else {
			*r = *fleet_host_at(&old->pub, i++);
		}
		row++;
	}
	s->pub.nhosts = total;
	return 0;
}

/* A copy of old with the changed hosts rewritten and hosts that got their
 * database id added; NULL with *need_full set when a host disappeared. */
static struct snap *
build_patch(struct fleet *f, const struct snap *old, int64_t now, bool *need_full)
{
	struct server *srv = f->srv;
	struct idhost *ins = NULL;
	size_t nins = 0, nshared = old->pub.nchunks;
	struct snap *s = NULL;
	*need_full = false;

	if (f->nchanged > 0 && (ins = calloc(f->nchanged, sizeof(*ins))) == NULL)
		return NULL;
	for (size_t i = 0; i < f->nchanged; i++) {
		const struct host *h = registry_host_by_uid(srv->reg, f->changed[i]);
		if (h == NULL) {
			*need_full = true;   /* removed: its row must go */
			free(ins);
			return NULL;
		}
		if (listed(h) && !has_row(&old->pub, h->id))
			ins[nins++] = (struct idhost){ h->id, h };
	}
	if (nins > 1)
		qsort(ins, nins, sizeof(*ins), idhost_cmp);
	size_t u = 0;
	for (size_t i = 0; i < nins; i++)
		if (u == 0 || ins[u - 1].id != ins[i].id)
			ins[u++] = ins[i];
	nins = u;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto fail;
	s->pub = old->pub;
	s->pub.refs = 0;
	s->baseline = old->baseline;
	size_t cap = (old->pub.nhosts + nins + CHUNK_ROWS - 1) / CHUNK_ROWS + 1;
	s->pub.chunks = calloc(cap, sizeof(*s->pub.chunks));
	s->pub.groups_own = malloc((old->pub.ngroups + 1) * sizeof(*s->pub.groups_own));
	if (s->pub.chunks == NULL || s->pub.groups_own == NULL) {
		s->pub.nchunks = 0;
		goto fail;
	}
	if (old->pub.ngroups > 0)
		memcpy(s->pub.groups_own, old->pub.groups_own, old->pub.ngroups * sizeof(*s->pub.groups_own));
	s->pub.groups = s->pub.groups_own;
	if (nins > 0)
		nshared = fleet_host_lower_bound(&old->pub, ins[0].id) / CHUNK_ROWS;
	if (nshared > 0)
		memcpy(s->pub.chunks, old->pub.chunks, nshared * sizeof(*s->pub.chunks));
	for (size_t k = 0; k < nshared; k++)
		__atomic_add_fetch(&s->pub.chunks[k]->refs, 1, __ATOMIC_RELAXED);
	s->pub.nchunks = nshared;
	if (nins > 0 && merge_tail(s, old, nshared * CHUNK_ROWS, ins, nins) < 0)
		goto fail;
	for (size_t i = 0; i < nins && s->baseline; i++) {
		const struct fleet_host *r = fleet_host_at(&s->pub, fleet_host_lower_bound(&s->pub, ins[i].id));
		if (r->status == STATUS_CRITICAL)
			notice_critical(f, r, now);
	}

	for (size_t i = 0; i < f->nchanged; i++) {
		const struct host *h = registry_host_by_uid(srv->reg, f->changed[i]);
		if (!listed(h))
			continue;
		size_t at = fleet_host_lower_bound(&s->pub, h->id), k = at / CHUNK_ROWS;
		if (k < nshared && s->pub.chunks[k] == old->pub.chunks[k]) {
			struct fleet_chunk *c = malloc(sizeof(*c));
			if (c == NULL)
				goto fail;
			memcpy(c, old->pub.chunks[k], sizeof(*c));
			c->refs = 1;
			chunk_unref(s->pub.chunks[k]);
			s->pub.chunks[k] = c;
		}
		struct fleet_host *r = &s->pub.chunks[k]->rows[at % CHUNK_ROWS];
		struct fleet_host prev = *r;
		host_row(h, r);
		count_row(&s->pub, &prev, -1);
		count_row(&s->pub, r, 1);
		if (s->baseline && r->status == STATUS_CRITICAL && prev.status != STATUS_CRITICAL)
			notice_critical(f, r, now);
	}
	free(ins);
	return s;
fail:
	free(ins);
	snap_free(s);
	return NULL;
}

static struct snap *
build_empty(void)
{
	struct snap *s = calloc(1, sizeof(*s));
	if (s == NULL || groups_init(&s->pub, NULL) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* ---- threats and outbreaks ---- */

static uint64_t
threats_since(const struct fleet *f, int64_t now, int64_t minutes)
{
	int64_t cur = now / 60;
	uint64_t sum = 0;
	for (size_t i = 0; i < DAY_MINUTES; i++)
		if (f->minute_of[i] > cur - minutes && f->minute_of[i] <= cur)
			sum += f->minute_count[i];
	return sum;
}

static int64_t
window_minutes(const struct fleet *f)
{
	int64_t m = (f->p.outbreak_window + 59) / 60;
	return m < 1 ? 1 : m > DAY_MINUTES ? DAY_MINUTES : m;
}

static void
outbreak_check(struct fleet *f, int64_t now)
{
	uint64_t in_window = threats_since(f, now, window_minutes(f));
	uint64_t thr = (uint64_t)f->p.outbreak_threshold;
	bool start = !f->outbreak && in_window >= thr;
	bool end = f->outbreak && in_window * 2 < thr;
	if (!start && !end)
		return;
	f->outbreak = start;
	struct fleet_notice n = {
		.kind = start ? FLEET_NOTICE_OUTBREAK_START : FLEET_NOTICE_OUTBREAK_END,
		.time = now, .threats = (int64_t)in_window,
		.threats_24h = threats_since(f, now, DAY_MINUTES),
	};
	if (start)
		log_warnx("fleet", "virus outbreak: %llu threats within %lld s (outbreak.threshold %lld)",
		    (unsigned long long)in_window, (long long)f->p.outbreak_window,
		    (long long)f->p.outbreak_threshold);
	else
		log_info("fleet", "virus outbreak over: %llu threats within %lld s",
		    (unsigned long long)in_window, (long long)f->p.outbreak_window);
	notice_push(f, &n);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* An event id (32 hex digits) as 16 bytes; false when it is not one. */
static bool
threat_bin(const char *id, uint8_t bin[16])
{
	if (id == NULL || strlen(id) != 32)
		return false;
	for (size_t i = 0; i < 16; i++) {
		int hi = hexval(id[2 * i]), lo = hexval(id[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		bin[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static bool
threat_recent(const struct fleet *f, const uint8_t bin[16])
{
	for (size_t i = 0; i < f->nrecent; i++)
		if (memcmp(f->recent[i], bin, 16) == 0)
			return true;
	return false;
}

/* Whether id is among the remembered ones, without remembering it. */
static bool
threat_known(const struct fleet *f, const char *id)
{
	uint8_t bin[16];
	return threat_bin(id, bin) && threat_recent(f, bin);
}

/* true when id was seen recently; remembers it otherwise. */
static bool
threat_seen(struct fleet *f, const char *id)
{
	uint8_t bin[16];
	if (!threat_bin(id, bin))
		return false;
	if (threat_recent(f, bin))
		return true;
	memcpy(f->recent[f->recent_next], bin, 16);
	f->recent_next = (f->recent_next + 1) % RECENT_THREATS;
	if (f->nrecent < RECENT_THREATS)
		f->nrecent++;
	return false;
}

void
fleet_seed_threats(struct fleet *f, int64_t now, const struct fleet_seed *ev, size_t n)
{
	int64_t cur = now / 60;
	size_t fresh = 0;
	if (f == NULL)
		return;
	bool *skip = calloc(n > 0 ? n : 1, sizeof(*skip));
	for (size_t i = 0; i < n; i++) {
		int64_t m = ev[i].received / 60;
		if (threat_known(f, ev[i].uid)) {
			if (skip != NULL)
				skip[i] = true;
			continue;
		}
		if (m <= cur - DAY_MINUTES || m > cur)
			continue;
		size_t b = (size_t)(m % DAY_MINUTES);
		if (f->minute_of[b] != m) {
			f->minute_of[b] = m;
			f->minute_count[b] = 0;
		}
		f->minute_count[b]++;
		fresh++;
	}
	/* the newest ids, oldest of them first so that the newest stay longest;
	 * the ids this process remembers already are newer still: kept */
	size_t keep = n < RECENT_THREATS - f->nrecent ? n : RECENT_THREATS - f->nrecent;
	for (size_t i = keep; i-- > 0;)
		if (skip == NULL || !skip[i])
			(void)threat_seen(f, ev[i].uid);
	free(skip);
	uint64_t in_window = threats_since(f, now, window_minutes(f));
	if (fresh > 0)
		log_info("fleet", "%zu threat(s) of the last 24 h from the database", fresh);
	if (!f->outbreak && in_window >= (uint64_t)f->p.outbreak_threshold) {
		f->outbreak = true;
		log_warnx("fleet", "virus outbreak still on after the restart: %llu threats within %lld s "
		    "(outbreak.threshold %lld)", (unsigned long long)in_window,
		    (long long)f->p.outbreak_window, (long long)f->p.outbreak_threshold);
	}
}

size_t
fleet_agent_events(struct server *srv, const struct host *h, json_t *events)
{
	struct fleet *f = srv->fleet;
	size_t i, fresh = 0;
	json_t *ev;
	if (f == NULL || h == NULL)
		return 0;
	/* the host itself (last_seen) reaches the fleet through host_changed */
	int64_t now = now_s();
	json_array_foreach(events, i, ev) {
		const char *kind = json_string_value(json_object_get(ev, "kind"));
		if (kind == NULL || strcmp(kind, "threat_found") != 0)
			continue;
		if (threat_seen(f, json_string_value(json_object_get(ev, "id"))))
			continue;
		fresh++;
		size_t b = (size_t)((now / 60) % DAY_MINUTES);
		if (f->minute_of[b] != now / 60) {
			f->minute_of[b] = now / 60;
			f->minute_count[b] = 0;
		}
		f->minute_count[b]++;
		struct fleet_notice n = {
			.kind = FLEET_NOTICE_THREAT, .time = now, .host_id = h->id,
			.threats = h->sin.threats,
		};
		str_copy(n.host, h->name, sizeof(n.host));
		const char *msg = json_string_value(json_object_get(ev, "message"));
		str_copy(n.text, msg ? msg : "", sizeof(n.text));
		notice_push(f, &n);
		outbreak_check(f, now);
	}
	return fresh;
}

static int
db_to_fleet(int st)
{
	switch (st) {
	case DB_STATE_UP: return FLEET_DB_UP;
	case DB_STATE_DOWN: return FLEET_DB_DOWN;
	case DB_STATE_REFUSED: return FLEET_DB_REFUSED;
	default: return FLEET_DB_CONNECTING;
	}
}

void
fleet_db_state(struct server *srv, int state, const char *detail)
{
	struct fleet *f = srv->fleet;
	if (f == NULL)
		return;
	int st = db_to_fleet(state);
	f->db_state = st;
	struct fleet_notice n = { .time = now_s(), .db_state = st };
	str_copy(n.text, detail ? detail : "", sizeof(n.text));
	if (st == FLEET_DB_UP && f->db_lost) {
		f->db_lost = false;
		n.kind = FLEET_NOTICE_DB_RESTORED;
		notice_push(f, &n);
	} else if ((st == FLEET_DB_DOWN || st == FLEET_DB_REFUSED) && !f->db_lost) {
		f->db_lost = true;
		n.kind = FLEET_NOTICE_DB_LOST;
		notice_push(f, &n);
	}
}

/* ---- changes and publishing ---- */

void
fleet_host_changed(struct server *srv, const struct host *h)
{
	struct fleet *f = srv->fleet;
	if (f == NULL || h == NULL || f->full)
		return;
	if (f->nchanged == CHANGED_MAX) {
		f->full = true;
		return;
	}
	str_copy(f->changed[f->nchanged++], h->uid, sizeof(f->changed[0]));
}

void
fleet_mark_dirty(struct server *srv)
{
	if (srv->fleet)
		srv->fleet->full = true;
}

/* Server-wide values read fresh at every update. */
static void
read_scalars(struct fleet *f, struct fleet_snapshot *s, int64_t now)
{
	struct server *srv = f->srv;
	s->started = srv->started;
	s->db_state = srv->db ? db_to_fleet((int)db_state(srv->db)) : f->db_state;
	s->agents_connected = f->src.agents_connected ? f->src.agents_connected(f->src.arg) : 0;
	s->queue_events = srv->store ? store_pending_events(srv->store) : 0;
	s->queue_hosts = srv->store ? store_pending_hosts(srv->store) : 0;
	s->queue_jobs = srv->db ? db_queue_depth(srv->db) : 0;
	s->shed = (srv->store ? store_shed_count(srv->store) : 0) + (srv->db ? db_shed_count(srv->db) : 0);
	s->threats_24h = threats_since(f, now, DAY_MINUTES);
	s->outbreak_threats = threats_since(f, now, window_minutes(f));
	s->outbreak = f->outbreak;
	/* the NAC engine keeps its counts up to date: a copy, no walk */
	memset(s->nac_hosts, 0, sizeof(s->nac_hosts));
	s->nac_enabled = f->src.nac_counts && f->src.nac_counts(f->src.arg, s->nac_hosts);
}

static bool
scalars_equal(const struct fleet_snapshot *a, const struct fleet_snapshot *b)
{
	return a->db_state == b->db_state && a->agents_connected == b->agents_connected &&
	    a->queue_events == b->queue_events && a->queue_hosts == b->queue_hosts &&
	    a->queue_jobs == b->queue_jobs && a->shed == b->shed &&
	    a->threats_24h == b->threats_24h && a->outbreak_threats == b->outbreak_threats &&
	    a->outbreak == b->outbreak && a->started == b->started &&
	    a->nac_enabled == b->nac_enabled &&
	    memcmp(a->nac_hosts, b->nac_hosts, sizeof(a->nac_hosts)) == 0;
}

static void
publish(struct fleet *f, struct snap *s, int64_t now)
{
	struct snap *old;
	s->pub.serial = ++f->serial;
	s->pub.built = now;
	s->pub.refs = 1;          /* the fleet's own reference */
	pthread_mutex_lock(&f->lock);
	old = f->cur;
	f->cur = s;
	pthread_mutex_unlock(&f->lock);
	snap_unref(f, old);
}

void
fleet_update(struct fleet *f, int64_t now)
{
	struct server *srv = f->srv;
	struct snap *old = f->cur, *s = NULL;
	struct fleet_snapshot sc = { 0 };

	if (f->outbreak)
		outbreak_check(f, now);
	if (!f->attached) {
		f->nchanged = 0;   /* nobody reads: the next reader gets a full build */
		return;
	}
	read_scalars(f, &sc, now);
	/* A host removed (its row must go), the database load, and now and then
	 * anything nobody reported: rebuild from the registry. New hosts come
	 * through fleet_host_changed once they have their database id. */
	size_t count = srv->reg ? registry_host_count(srv->reg) : 0;
	if (count < f->last_count || srv->loaded != f->last_loaded ||
	    now - f->last_full >= FULL_REBUILD_SECONDS)
		f->full = true;
	f->last_count = count;
	if (!f->full && f->nchanged == 0 && scalars_equal(&sc, &old->pub))
		return;

	if (!f->full) {
		bool need_full;
		s = build_patch(f, old, now, &need_full);
		if (s == NULL && !need_full)
			return;   /* out of memory: keep the changes for the next try */
		f->full = need_full;
	}
	if (f->full) {
		if (srv->reg == NULL || (s = build_full(f, old, now)) == NULL)
			return;
		f->last_loaded = srv->loaded;
		f->last_full = now;
	}
	f->full = false;
	f->nchanged = 0;
	s->pub.db_state = sc.db_state;
	s->pub.started = sc.started;
	s->pub.agents_connected = sc.agents_connected;
	s->pub.queue_events = sc.queue_events;
	s->pub.queue_hosts = sc.queue_hosts;
	s->pub.queue_jobs = sc.queue_jobs;
	s->pub.shed = sc.shed;
	s->pub.threats_24h = sc.threats_24h;
	s->pub.outbreak_threats = sc.outbreak_threats;
	s->pub.outbreak = sc.outbreak;
	s->pub.nac_enabled = sc.nac_enabled;
	memcpy(s->pub.nac_hosts, sc.nac_hosts, sizeof(s->pub.nac_hosts));
	publish(f, s, now);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fleet_update(arg, now_s());
}

static void
params_fix(struct fleet_params *p)
{
	if (p->outbreak_threshold < 1)
		p->outbreak_threshold = 1;
	if (p->outbreak_window < 60)
		p->outbreak_window = 60;
	if (p->notice_max < 16)
		p->notice_max = 16;
}

void
fleet_set_sources(struct fleet *f, const struct fleet_sources *src)
{
	f->src = *src;
}

struct fleet *
fleet_new(struct server *srv, const struct fleet_params *p, char *err, size_t errlen)
{
	struct fleet *f = calloc(1, sizeof(*f));
	int fds[2] = { -1, -1 };
	if (f == NULL) {
		str_fmt(err, errlen, "fleet: out of memory");
		return NULL;
	}
	f->srv = srv;
	f->p = *p;
	params_fix(&f->p);
	f->pipe_rd = f->pipe_wr = -1;
	f->db_state = FLEET_DB_CONNECTING;
	f->full = true;
	if (pthread_mutex_init(&f->lock, NULL) != 0) {
		free(f);
		str_fmt(err, errlen, "fleet: cannot create a mutex");
		return NULL;
	}
	f->ring_cap = f->p.notice_max;
	f->ring = calloc(f->ring_cap, sizeof(*f->ring));
	f->changed = calloc(CHANGED_MAX, sizeof(*f->changed));
	f->cur = build_empty();
	if (f->ring == NULL || f->changed == NULL || f->cur == NULL) {
		str_fmt(err, errlen, "fleet: out of memory");
		goto fail;
	}
	f->cur->pub.refs = 1;
	f->cur->pub.started = srv->started;
	f->cur->pub.db_state = FLEET_DB_CONNECTING;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		str_fmt(err, errlen, "fleet: cannot create a pipe: %s", strerror(errno));
		goto fail;
	}
	f->pipe_rd = fds[0];
	f->pipe_wr = fds[1];
	if (srv->base) {
		struct timeval one = { 1, 0 };
		f->timer = event_new(srv->base, -1, EV_PERSIST, on_timer, f);
		if (f->timer == NULL || event_add(f->timer, &one) < 0) {
			str_fmt(err, errlen, "fleet: cannot add the update timer");
			goto fail;
		}
	}
	return f;
fail:
	fleet_free(f);
	return NULL;
}

void
fleet_set_params(struct fleet *f, const struct fleet_params *p)
{
	/* the queue keeps its size; the rest applies at once */
	f->p.outbreak_threshold = p->outbreak_threshold;
	f->p.outbreak_window = p->outbreak_window;
	params_fix(&f->p);
}

void
fleet_free(struct fleet *f)
{
	if (f == NULL)
		return;
	if (f->timer)
		event_free(f->timer);
	snap_free(f->cur);
	free(f->ring);
	free(f->changed);
	if (f->pipe_rd >= 0)
		close(f->pipe_rd);
	if (f->pipe_wr >= 0)
		close(f->pipe_wr);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void
fleet_note_agent_work(struct fleet *f)
{
	if (f == NULL)
		return;
	atomic_store_explicit(&f->agent_work_ms, mono_ms(), memory_order_relaxed);
	atomic_fetch_add_explicit(&f->agent_work, 1, memory_order_relaxed);
}

uint64_t
fleet_agent_work_count(const struct fleet *f)
{
	return atomic_load_explicit(&((struct fleet *)f)->agent_work, memory_order_relaxed);
}

bool
fleet_agents_busy(const struct fleet *f, int64_t window_ms)
{
	int64_t t = atomic_load_explicit(&((struct fleet *)f)->agent_work_ms, memory_order_relaxed);
	return t != 0 && mono_ms() - t < window_ms;
}
