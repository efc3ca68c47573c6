/* policy_bench.c — effective-settings benchmark (issue 3).
 *
 * Builds 1,000 groups 10 levels deep, 10,000 policies (random settings,
 * some locked, some with inherit off, a few outbreaks on), 100,000 hosts
 * (1% with local settings), then times:
 *   full         every host's document + hash through the per-group cache,
 *                from a cold cache (target: <= 1 s)
 *   naive        the same without the cache, on a sample, scaled up (for
 *                comparison only)
 *   incremental  after ONE policy changes: changed groups, the scan of
 *                every host, and the recomputation of the affected ones
 * and checks a sample of cached hashes against from-scratch ones.
 *
 * usage: policy_bench [hosts [groups [policies [seed]]]]
 * Exit status 0 when the run completed and the checks held (the targets
 * are printed as PASS/MISS, not enforced). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "daemon/model/groups.h"
#include "daemon/model/policy.h"
#include "util.h"

#define LEVELS 10
#define NAPPS 8
#define NKEYS 40               /* distinct keys per application */
#define NAIVE_SAMPLE 5000

static const char *const apps[NAPPS] = {
	"clamav", "agent", "firewall", "updater", "scanner", "edr", "dlp", "webfilter",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static size_t
rnd_below(size_t n)
{
	return (size_t)(rnd() % n);
}

static bool
chance(unsigned percent)
{
	return rnd() % 100 < percent;
}

static double
secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static json_t *
random_value(void)
{
	switch (rnd_below(4)) {
	case 0: return json_integer((json_int_t)rnd_below(100000));
	case 1: return json_boolean(chance(50));
	case 2: {
		char s[32];
		(void)snprintf(s, sizeof(s), "value-%zu", rnd_below(1000));
		return json_string(s);
	}
	default:
		return json_pack("[s, i]", "/var/lib/path", (int)rnd_below(100));
	}
}

struct bhost {
	uint64_t group;
	json_t *local;             /* NULL for 99% */
	char hash[65];
};

struct world {
	struct group_tree *tree;
	struct policy_store *store;
	uint64_t *level_ids[LEVELS + 1];  /* group ids per depth */
	size_t level_n[LEVELS + 1];
	struct bhost *hosts;
	size_t nhosts, ngroups, npolicies;
	uint64_t *active_ids;      /* active normal policies with their depth */
	int *active_depth;
	size_t nactive;
};

static void
build_groups(struct world *w)
{
	char err[256], name[32];
	uint64_t id = 1;
	size_t per_level = (w->ngroups - w->ngroups / 100) / (LEVELS - 1);
	for (int lvl = 1; lvl <= LEVELS; lvl++) {
		size_t n = lvl == 1 ? w->ngroups - per_level * (LEVELS - 1) : per_level;
		w->level_ids[lvl] = calloc(n, sizeof(uint64_t));
		if (w->level_ids[lvl] == NULL)
			exit(2);
		for (size_t i = 0; i < n; i++, id++) {
			uint64_t parent = lvl == 1 ? 0
			    : w->level_ids[lvl - 1][rnd_below(w->level_n[lvl - 1])];
			(void)snprintf(name, sizeof(name), "g%llu", (unsigned long long)id);
			if (groups_add(w->tree, id, name, parent, "config", err, sizeof(err)) != 0) {
				fprintf(stderr, "groups_add: %s\n", err);
				exit(2);
			}
			w->level_ids[lvl][w->level_n[lvl]++] = id;
		}
	}
}

static void
build_policies(struct world *w)
{
	char err[256];
	w->active_ids = calloc(w->npolicies, sizeof(uint64_t));
	w->active_depth = calloc(w->npolicies, sizeof(int));
	if (w->active_ids == NULL || w->active_depth == NULL)
		exit(2);
	for (size_t i = 0; i < w->npolicies; i++) {
		struct policy p;
		policy_init(&p);
		p.id = i + 1;
		(void)snprintf(p.name, sizeof(p.name), "policy-%zu", i + 1);
		p.group_id = rnd_below(w->ngroups) + 1;
		str_copy(p.application, apps[rnd_below(NAPPS)], sizeof(p.application));
		str_copy(p.source, "config", sizeof(p.source));
		unsigned k = (unsigned)rnd_below(100);
		p.kind = k < 80 ? POLICY_NORMAL : k < 90 ? POLICY_OUTBREAK : POLICY_MOBILE;
		p.threshold = 5;
		p.window_min = 10;
		p.inherit = !chance(5);
		size_t nset = 5 + rnd_below(16);
		for (size_t s = 0; s < nset; s++) {
			char key[16];
			(void)snprintf(key, sizeof(key), "k%02zu", rnd_below(NKEYS));
			json_t *v = random_value();
			if (policy_set(&p, key, v, chance(10), err, sizeof(err)) != 0) {
				fprintf(stderr, "policy_set: %s\n", err);
				exit(2);
			}
			json_decref(v);
		}
		/* one active per (group, application, kind): later ones stay drafts */
		p.active = true;
		if (policy_put(w->store, &p, err, sizeof(err)) != 0) {
			p.active = false;
			if (policy_put(w->store, &p, err, sizeof(err)) != 0) {
				fprintf(stderr, "policy_put: %s\n", err);
				exit(2);
			}
		} else if (p.kind == POLICY_NORMAL) {
			w->active_ids[w->nactive] = p.id;
			w->active_depth[w->nactive++] = groups_get(w->tree, p.group_id)->depth;
		}
		policy_clear(&p);
	}
	/* outbreaks on in 2% of the groups */
	for (uint64_t g = 1; g <= w->ngroups; g++)
		if (chance(2))
			(void)policy_set_outbreak(w->store, g, true);
	policy_set_mobile_after(w->store, 3600);
}

static void
build_hosts(struct world *w)
{
	w->hosts = calloc(w->nhosts, sizeof(*w->hosts));
	if (w->hosts == NULL)
		exit(2);
	for (size_t i = 0; i < w->nhosts; i++) {
		struct bhost *h = &w->hosts[i];
		h->group = rnd_below(w->ngroups) + 1;
		if (chance(1)) {
			h->local = json_object();
			size_t na = 1 + rnd_below(2);
			for (size_t a = 0; a < na; a++) {
				json_t *o = json_object();
				size_t nk = 1 + rnd_below(5);
				for (size_t k = 0; k < nk; k++) {
					char key[16];
					(void)snprintf(key, sizeof(key), "k%02zu", rnd_below(NKEYS));
					json_object_set_new(o, key, random_value());
				}
				json_object_set_new(h->local, apps[rnd_below(NAPPS)], o);
			}
		}
	}
}

static int
host_hash(struct world *w, struct bhost *h, char out[65])
{
	json_t *doc = NULL;
	char err[256];
	if (policy_host_document(w->store, w->tree, h->group, h->local, &doc, out, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "policy_host_document: %s\n", err);
		return -1;
	}
	json_decref(doc);
	return 0;
}

static int
naive_hash(struct world *w, struct bhost *h, char out[65])
{
	char err[256];
	json_t *doc = policy_document(w->store, w->tree, h->group, h->local, err, sizeof(err));
	if (doc == NULL || policy_hash(doc, out) != 0) {
		fprintf(stderr, "policy_document: %s\n", err);
		json_decref(doc);
		return -1;
	}
	json_decref(doc);
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct incr {
	double secs;
	size_t groups, recomputed, changed;
};

/* Brings every host up to date the way the daemon would after a change:
 * changed groups, a scan of the hosts, recomputation of the affected. */
static int
update_hosts(struct world *w, double t0, struct incr *r)
{
	size_t n;
	uint64_t *changed = policy_changed_groups(w->store, w->tree, &n);
	memset(r, 0, sizeof(*r));
	r->groups = n;
	for (size_t i = 0; i < w->nhosts && n > 0; i++) {
		struct bhost *h = &w->hosts[i];
		if (bsearch(&h->group, changed, n, sizeof(*changed), cmp_u64) == NULL)
			continue;
		char hash[65];
		if (host_hash(w, h, hash) != 0) {
			free(changed);
			return -1;
		}
		r->recomputed++;
		if (strcmp(hash, h->hash) != 0) {
			memcpy(h->hash, hash, sizeof(hash));
			r->changed++;
		}
	}
	r->secs = secs() - t0;
	free(changed);
	return 0;
}

/* Changes one setting of policy id (timed from the policy_put). */
static int
change_policy(struct world *w, uint64_t id, struct incr *r)
{
	char err[256];
	const struct policy *cur = policy_get(w->store, id);
	struct policy p;
	if (cur == NULL || policy_copy(&p, cur) != 0)
		return -1;
	json_t *v = json_integer((json_int_t)(1000000 + rnd_below(1000000)));
	char key[16];
	(void)snprintf(key, sizeof(key), "k%02zu", rnd_below(NKEYS));
	int rc = policy_set(&p, key, v, false, err, sizeof(err));
	json_decref(v);

	double t0 = secs();
	if (rc == 0)
		rc = policy_put(w->store, &p, err, sizeof(err));
	policy_clear(&p);
	if (rc != 0) {
		fprintf(stderr, "change: %s\n", err);
		return -1;
	}
	return update_hosts(w, t0, r);
}

/* A sample of hosts: the cached hash equals a from-scratch one. */
static int
verify(struct world *w, size_t sample)
{
	for (size_t i = 0; i < sample; i++) {
		struct bhost *h = &w->hosts[rnd_below(w->nhosts)];
		char hash[65];
		if (naive_hash(w, h, hash) != 0)
			return -1;
		if (strcmp(hash, h->hash) != 0) {
			fprintf(stderr, "verify: host in group %llu: cached %s, fresh %s\n",
			    (unsigned long long)h->group, h->hash, hash);
			return -1;
		}
	}
	return 0;
}

/* An active normal policy at the given depth (0: any). */
static uint64_t
pick_policy(const struct world *w, int depth)
{
	for (int tries = 0; tries < 100000; tries++) {
		size_t i = rnd_below(w->nactive);
		if (depth == 0 || w->active_depth[i] == depth)
			return w->active_ids[i];
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct world w;
	memset(&w, 0, sizeof(w));
	w.nhosts = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	w.ngroups = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	w.npolicies = argc > 3 ? strtoul(argv[3], NULL, 10) : 10000;
	if (argc > 4)
		rng_state = strtoull(argv[4], NULL, 10) | 1;
	if (w.nhosts == 0 || w.ngroups < 100 || w.npolicies == 0) {
		fprintf(stderr, "usage: policy_bench [hosts [groups>=100 [policies [seed]]]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	w.tree = groups_new();
	w.store = policy_store_new();
	if (w.tree == NULL || w.store == NULL)
		return 2;

	long rss0 = rss_kib();
	double t0 = secs();
	build_groups(&w);
	build_policies(&w);
	build_hosts(&w);
	size_t nlocal = 0;
	for (size_t i = 0; i < w.nhosts; i++)
		nlocal += w.hosts[i].local != NULL;
	printf("setup: %zu hosts (%zu with local settings), %zu groups in %d levels, "
	    "%zu policies (%zu active normal), %d applications: %.2f s\n",
	    w.nhosts, nlocal, groups_count(w.tree), LEVELS, policy_count(w.store), w.nactive,
	    NAPPS, secs() - t0);
	long rss1 = rss_kib();
	size_t nch;
	free(policy_changed_groups(w.store, w.tree, &nch));   /* the start-up state */

	/* full computation from a cold cache */
	t0 = secs();
	for (size_t i = 0; i < w.nhosts; i++)
		if (host_hash(&w, &w.hosts[i], w.hosts[i].hash) != 0)
			return 1;
	double full = secs() - t0;
	long rss2 = rss_kib();
	printf("full:        %.3f s for %zu hosts (%.2f us/host)  target <= 1 s: %s\n",
	    full, w.nhosts, full * 1e6 / (double)w.nhosts, full <= 1.0 ? "PASS" : "MISS");

	/* the same warm: every document already cached */
	t0 = secs();
	for (size_t i = 0; i < w.nhosts; i++) {
		char h[65];
		if (host_hash(&w, &w.hosts[i], h) != 0)
			return 1;
	}
	double warm = secs() - t0;
	printf("warm pass:   %.3f s (nothing changed; hosts with local settings recomputed)\n", warm);

	/* no cache, on a sample */
	size_t sample = w.nhosts < NAIVE_SAMPLE ? w.nhosts : NAIVE_SAMPLE;
	t0 = secs();
	for (size_t i = 0; i < sample; i++) {
		char h[65];
		if (naive_hash(&w, &w.hosts[i], h) != 0)
			return 1;
	}
	double naive = (secs() - t0) * (double)w.nhosts / (double)sample;
	printf("naive:       %.3f s estimated for %zu hosts without the per-group cache "
	    "(%zu sampled); cached/naive = %.4f\n", naive, w.nhosts, sample, full / naive);

	/* one policy changes */
	static const struct {
		const char *what;
		int depth;
	} changes[] = {
		{ "random active policy", 0 },
		{ "top-level group policy", 1 },
		{ "level-5 group policy", 5 },
		{ "leaf (level-10) policy", 10 },
	};
	int status = 0;
	for (size_t c = 0; c < ARRAY_LEN(changes); c++) {
		uint64_t id = pick_policy(&w, changes[c].depth);
		struct incr r;
		if (id == 0) {
			printf("incremental: no active policy at depth %d\n", changes[c].depth);
			continue;
		}
		if (change_policy(&w, id, &r) != 0)
			return 1;
		printf("incremental (%s, id %llu): %.4f s; %zu groups, %zu hosts recomputed, "
		    "%zu with a new hash; incremental/full = %.4f\n", changes[c].what,
		    (unsigned long long)id, r.secs, r.groups, r.recomputed, r.changed, r.secs / full);
	}
	/* an outbreak starting in a top-level group (and thus in its subtree) */
	for (size_t i = 0; i < w.level_n[1]; i++) {
		uint64_t g = w.level_ids[1][i];
		if (policy_outbreak(w.store, g))
			continue;
		struct incr r;
		double t1 = secs();
		(void)policy_set_outbreak(w.store, g, true);
		if (update_hosts(&w, t1, &r) != 0)
			return 1;
		printf("incremental (outbreak on in top-level group %llu): %.4f s; %zu groups, "
		    "%zu hosts recomputed, %zu with a new hash; incremental/full = %.4f\n",
		    (unsigned long long)g, r.secs, r.groups, r.recomputed, r.changed, r.secs / full);
		break;
	}
	if (verify(&w, 2000) != 0) {
		printf("verify: FAILED\n");
		status = 1;
	} else
		printf("verify: 2000 sampled hosts match a from-scratch computation\n");
	printf("memory: %ld KiB for the model, %ld KiB more for the cached documents\n",
	    rss1 - rss0, rss2 - rss1);

	for (size_t i = 0; i < w.nhosts; i++)
		json_decref(w.hosts[i].local);
	free(w.hosts);
	for (int l = 1; l <= LEVELS; l++)
		free(w.level_ids[l]);
	free(w.active_ids);
	free(w.active_depth);
	policy_store_free(w.store);
	groups_free(w.tree);
	return status;
}
