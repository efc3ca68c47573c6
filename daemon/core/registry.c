/* registry.c — see registry.h. */
#include "core/registry.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hmap.h"
#include "util.h"

struct registry {
	struct hmap *by_uid;
	struct hmap *by_name;
	struct hmap *tokens;
	struct {
		registry_observer_fn fn;
		void *arg;
	} obs[REGISTRY_OBSERVERS_MAX];
	size_t nobs;
	registry_thresholds_fn thr_fn;
	void *thr_arg;
	struct status_thresholds thr_default;
};

struct registry *
registry_new(void)
{
	struct registry *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	status_defaults(&r->thr_default);
	r->by_uid = hmap_new();
	r->by_name = hmap_new();
	r->tokens = hmap_new();
	if (!r->by_uid || !r->by_name || !r->tokens) {
		registry_free(r);
		return NULL;
	}
	return r;
}

static void
free_host_cb(void *v, void *arg)
{
	(void)arg;
	host_free(v);
}

static void
free_token_cb(void *v, void *arg)
{
	(void)arg;
	free(v);
}

void
registry_free(struct registry *r)
{
	if (r == NULL)
		return;
	if (r->by_uid)
		hmap_foreach(r->by_uid, free_host_cb, NULL);
	if (r->tokens)
		hmap_foreach(r->tokens, free_token_cb, NULL);
	hmap_free(r->by_uid);
	hmap_free(r->by_name);
	hmap_free(r->tokens);
	free(r);
}

void
host_free(struct host *h)
{
	if (h == NULL)
		return;
	json_decref(h->posture);
	json_decref(h->posture_full);
	json_decref(h->policy_errors);
	json_decref(h->local_settings);
	json_decref(h->tags);
	free(h);
}

int
registry_add_host(struct registry *r, struct host *h)
{
	if (hmap_get(r->by_uid, h->uid) || hmap_get(r->by_name, h->name))
		return -1;
	if (hmap_put(r->by_uid, h->uid, h, NULL) < 0)
		return -1;
	if (hmap_put(r->by_name, h->name, h, NULL) < 0) {
		hmap_del(r->by_uid, h->uid);
		return -1;
	}
	return 0;
}

void
registry_remove_host(struct registry *r, struct host *h)
{
	hmap_del(r->by_uid, h->uid);
	hmap_del(r->by_name, h->name);
	host_free(h);
}

struct host *
registry_host_by_uid(const struct registry *r, const char *uid)
{
	return hmap_get(r->by_uid, uid);
}

struct host *
registry_host_by_name(const struct registry *r, const char *name)
{
	return hmap_get(r->by_name, name);
}

bool
registry_name_taken(const char *name, void *registry)
{
	return hmap_get(((struct registry *)registry)->by_name, name) != NULL;
}

size_t
registry_host_count(const struct registry *r)
{
	return hmap_count(r->by_uid);
}

struct collect {
	void **items;
	size_t n;
};

static void
collect_cb(void *v, void *arg)
{
	struct collect *c = arg;
	c->items[c->n++] = v;
}

static int
host_cmp_name(const void *a, const void *b)
{
	const struct host *x = *(struct host *const *)a, *y = *(struct host *const *)b;
	return strcmp(x->name, y->name);
}

static void **
hmap_sorted(const struct hmap *m, size_t *n, int (*cmp)(const void *, const void *))
{
	struct collect c = { .items = malloc((hmap_count(m) + 1) * sizeof(void *)) };
	if (c.items == NULL) {
		*n = 0;
		return NULL;
	}
	hmap_foreach(m, collect_cb, &c);
	if (cmp)
		qsort(c.items, c.n, sizeof(void *), cmp);
	*n = c.n;
	return c.items;
}

struct host **
registry_hosts_sorted(const struct registry *r, size_t *n)
{
	return (struct host **)hmap_sorted(r->by_uid, n, host_cmp_name);
}

struct host **
registry_hosts(const struct registry *r, size_t *n)
{
	return (struct host **)hmap_sorted(r->by_uid, n, NULL);
}

void
host_evaluate(struct host *h, const struct status_thresholds *t, int64_t now)
{
	status_input_from_posture(h->posture, h->last_seen, &h->sin);
	h->st = status_evaluate(&h->sin, t, now);
}

json_t *
posture_packages(const json_t *posture)
{
	json_t *sw = json_object_get(posture, "software");
	json_t *pk = json_is_array(sw) ? sw : json_object_get(sw, "packages");
	return json_is_array(pk) ? pk : NULL;
}

json_t *
posture_strip_packages(json_t *posture)
{
	json_t *pk = posture_packages(posture);
	if (pk == NULL)
		return json_incref(posture);
	json_t *sw = json_object_get(posture, "software");
	/* shallow copies: the members are shared with the full document */
	json_t *out = json_copy(posture);
	json_t *nsw = json_is_object(sw) ? json_copy(sw) : json_object();
	if (out == NULL || nsw == NULL ||
	    (json_is_object(sw) && json_object_del(nsw, "packages") < 0) ||
	    json_object_set_new(nsw, "packages_count", json_integer((json_int_t)json_array_size(pk))) < 0) {
		/* out of memory: keep the whole document rather than lose it */
		json_decref(out);
		json_decref(nsw);
		return json_incref(posture);
	}
	if (json_object_set_new(out, "software", nsw) < 0) { /* nsw is consumed */
		json_decref(out);
		return json_incref(posture);
	}
	return out;
}

void
host_set_posture(struct host *h, json_t *posture, int64_t when,
    const struct status_thresholds *t, int64_t now)
{
	json_decref(h->posture);
	json_decref(h->posture_full);
	h->posture = posture_strip_packages(posture);
	h->posture_full = posture;
	h->posture_time = when;
	host_evaluate(h, t, now);
}

int
registry_put_token(struct registry *r, const struct token *t)
{
	struct token *copy = malloc(sizeof(*copy));
	void *old;
	if (copy == NULL)
		return -1;
	*copy = *t;
	if (hmap_put(r->tokens, copy->name, copy, &old) < 0) {
		free(copy);
		return -1;
	}
	free(old);
	return 0;
}

struct token *
registry_token(const struct registry *r, const char *name)
{
	return hmap_get(r->tokens, name);
}

void
registry_del_token(struct registry *r, const char *name)
{
	free(hmap_del(r->tokens, name));
}

static int
token_cmp_name(const void *a, const void *b)
{
	const struct token *x = *(struct token *const *)a, *y = *(struct token *const *)b;
	return strcmp(x->name, y->name);
}

struct token **
registry_tokens_sorted(const struct registry *r, size_t *n)
{
	return (struct token **)hmap_sorted(r->tokens, n, token_cmp_name);
}

void
token_hash(const char *secret, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(secret, strlen(secret), md, &mdlen, EVP_sha256(), NULL);
	hex_encode(md, 32, out);
}

struct token_match {
	char hash[65];
	struct token *found;
};

static void
token_match_cb(void *v, void *arg)
{
	struct token_match *m = arg;
	struct token *t = v;
	/* constant-time compare: the hash is a secret's stand-in */
	if (CRYPTO_memcmp(t->secret_hash, m->hash, 64) == 0)
		m->found = t;
}

struct token *
registry_token_by_secret(const struct registry *r, const char *secret)
{
	struct token_match m = { .found = NULL };
	token_hash(secret, m.hash);
	hmap_foreach(r->tokens, token_match_cb, &m);
	return m.found;
}

int
registry_rename_host(struct registry *r, struct host *h, const char *name)
{
	/* a longer name would be cut into one the check below never saw */
	if (strlen(name) >= sizeof(h->name))
		return -1;
	if (strcmp(h->name, name) == 0)
		return 0;
	if (hmap_get(r->by_name, name))
		return -1;
	hmap_del(r->by_name, h->name);
	str_copy(h->name, name, sizeof(h->name));
	return hmap_put(r->by_name, h->name, h, NULL);
}

/* ---- observers ---- */

int
registry_observe(struct registry *r, registry_observer_fn fn, void *arg)
{
	if (r->nobs >= REGISTRY_OBSERVERS_MAX)
		return -1;
	r->obs[r->nobs].fn = fn;
	r->obs[r->nobs].arg = arg;
	r->nobs++;
	return 0;
}

void
registry_set_thresholds(struct registry *r, registry_thresholds_fn fn, void *arg)
{
	r->thr_fn = fn;
	r->thr_arg = arg;
}

const struct status_thresholds *
registry_thresholds(const struct registry *r, const struct host *h)
{
	const struct status_thresholds *t = r->thr_fn ? r->thr_fn(r->thr_arg, h) : NULL;
	return t ? t : &r->thr_default;
}

void
registry_host_changed(struct registry *r, struct host *h, unsigned what)
{
	if (r == NULL || h == NULL)
		return;
	if (what & HOST_REEVALUATE)
		host_evaluate(h, registry_thresholds(r, h), now_s());
	for (size_t i = 0; i < r->nobs; i++)
		r->obs[i].fn(r->obs[i].arg, h, what);
}
