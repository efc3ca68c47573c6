/* policy.c — see policy.h.
 *
 * The store keeps, per group, its policies, outbreak flag, a version (the
 * store clock when they last changed) and the cached document of the group.
 * A cached document is valid while the group's chain is the same and no
 * group of the chain changed after it was computed, so a change costs
 * nothing until a document of that subtree is asked for. */
#include "model/policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "hmap.h"
#include "util.h"

/* ---- a uint64 -> pointer map (open addressing, backward-shift delete) ---- */

struct u64map {
	uint64_t *keys;
	void **vals;              /* NULL = empty slot */
	size_t cap, n;            /* cap: power of two */
};

static size_t
u64_hash(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (size_t)x;
}

static void *
u64_get(const struct u64map *m, uint64_t key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = u64_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->vals[i] == NULL)
			return NULL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

static int u64_put(struct u64map *m, uint64_t key, void *val);

static int
u64_grow(struct u64map *m)
{
	struct u64map nm = { 0 };
	nm.cap = m->cap ? m->cap * 2 : 16;
	nm.keys = calloc(nm.cap, sizeof(*nm.keys));
	nm.vals = calloc(nm.cap, sizeof(*nm.vals));
	if (nm.keys == NULL || nm.vals == NULL) {
		free(nm.keys);
		free(nm.vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->vals[i] != NULL)
			(void)u64_put(&nm, m->keys[i], m->vals[i]);
	free(m->keys);
	free(m->vals);
	*m = nm;
	return 0;
}

/* Inserts or replaces (val != NULL). */
static int
u64_put(struct u64map *m, uint64_t key, void *val)
{
	if ((m->n + 1) * 2 > m->cap && u64_grow(m) < 0)
		return -1;
	size_t i = u64_hash(key) & (m->cap - 1);
	while (m->vals[i] != NULL && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (m->vals[i] == NULL)
		m->n++;
	m->keys[i] = key;
	m->vals[i] = val;
	return 0;
}

static void
u64_del(struct u64map *m, uint64_t key)
{
	if (m->cap == 0)
		return;
	size_t mask = m->cap - 1, i = u64_hash(key) & mask;
	while (m->vals[i] != NULL && m->keys[i] != key)
		i = (i + 1) & mask;
	if (m->vals[i] == NULL)
		return;
	m->vals[i] = NULL;
	m->n--;
	/* shift back the entries of the run that hashed before the hole */
	for (size_t j = (i + 1) & mask; m->vals[j] != NULL; j = (j + 1) & mask) {
		size_t k = u64_hash(m->keys[j]) & mask;
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		m->keys[i] = m->keys[j];
		m->vals[i] = m->vals[j];
		m->vals[j] = NULL;
		i = j;
	}
}

static void
u64_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ---- one policy ---- */

void
policy_init(struct policy *p)
{
	memset(p, 0, sizeof(*p));
	p->active = true;
	p->inherit = true;
}

void
policy_clear(struct policy *p)
{
	for (size_t i = 0; i < p->nsettings; i++)
		json_decref(p->settings[i].value);
	free(p->settings);
	p->settings = NULL;
	p->nsettings = 0;
}

static bool
key_valid(const char *k)
{
	size_t len = strnlen(k, POLICY_KEY_MAX);
	if (len == 0 || len >= POLICY_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '.' && k[i] != '-')
			return false;
	return true;
}

static bool
app_valid(const char *a)
{
	size_t len = strnlen(a, POLICY_APP_MAX);
	if (len == 0 || len >= POLICY_APP_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)a[i]) && !isdigit((unsigned char)a[i]) && a[i] != '_'
		    && a[i] != '-')
			return false;
	return true;
}

int
policy_set(struct policy *p, const char *key, json_t *value, bool locked, char *err,
    size_t errlen)
{
	if (key == NULL || !key_valid(key)) {
		str_fmt(err, errlen, "policy \"%s\": setting key \"%.64s\" must be 1-%d characters of "
		    "A-Z a-z 0-9 _ . -", p->name, key != NULL ? key : "", POLICY_KEY_MAX - 1);
		return -1;
	}
	if (value == NULL) {
		str_fmt(err, errlen, "policy \"%s\": setting \"%s\" has no value", p->name, key);
		return -1;
	}
	for (size_t i = 0; i < p->nsettings; i++)
		if (strcmp(p->settings[i].key, key) == 0) {
			json_incref(value);
			json_decref(p->settings[i].value);
			p->settings[i].value = value;
			p->settings[i].locked = locked;
			return 0;
		}
	if (p->nsettings >= POLICY_SETTINGS_MAX) {
		str_fmt(err, errlen, "policy \"%s\": more than %d settings", p->name, POLICY_SETTINGS_MAX);
		return -1;
	}
	struct policy_setting *ns = realloc(p->settings, (p->nsettings + 1) * sizeof(*ns));
	if (ns == NULL) {
		str_fmt(err, errlen, "policy \"%s\": out of memory", p->name);
		return -1;
	}
	p->settings = ns;
	struct policy_setting *s = &p->settings[p->nsettings++];
	memset(s, 0, sizeof(*s));
	str_copy(s->key, key, sizeof(s->key));
	s->value = json_incref(value);
	s->locked = locked;
	return 0;
}

int
policy_copy(struct policy *dst, const struct policy *src)
{
	*dst = *src;
	dst->settings = NULL;
	dst->nsettings = 0;
	if (src->nsettings == 0)
		return 0;
	dst->settings = calloc(src->nsettings, sizeof(*dst->settings));
	if (dst->settings == NULL)
		return -1;
	for (size_t i = 0; i < src->nsettings; i++) {
		dst->settings[i] = src->settings[i];
		dst->settings[i].value = json_deep_copy(src->settings[i].value);
		if (dst->settings[i].value == NULL) {
			dst->nsettings = i;
			policy_clear(dst);
			return -1;
		}
	}
	dst->nsettings = src->nsettings;
	return 0;
}

int
policy_check(const struct policy *p, char *err, size_t errlen)
{
	size_t nlen = strnlen(p->name, POLICY_NAME_MAX);
	if (nlen == 0 || nlen >= POLICY_NAME_MAX) {
		str_fmt(err, errlen, "a policy needs a name of 1-%d characters", POLICY_NAME_MAX - 1);
		return -1;
	}
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)p->name[i] < 0x20 || p->name[i] == 0x7f) {
			str_fmt(err, errlen, "policy \"%s\": the name contains a control character", p->name);
			return -1;
		}
	if (p->id == 0) {
		str_fmt(err, errlen, "policy \"%s\": id 0 is not a valid id", p->name);
		return -1;
	}
	if (p->group_id == 0) {
		str_fmt(err, errlen, "policy \"%s\": a policy belongs to a group; give one", p->name);
		return -1;
	}
	if (!app_valid(p->application)) {
		str_fmt(err, errlen, "policy \"%s\": application \"%.32s\" must be 1-%d characters of "
		    "a-z 0-9 _ -", p->name, p->application, POLICY_APP_MAX - 1);
		return -1;
	}
	if (p->kind != POLICY_NORMAL && p->kind != POLICY_OUTBREAK && p->kind != POLICY_MOBILE) {
		str_fmt(err, errlen, "policy \"%s\": kind must be normal, outbreak or mobile", p->name);
		return -1;
	}
	if (strcmp(p->source, "config") != 0 && strcmp(p->source, "api") != 0) {
		str_fmt(err, errlen, "policy \"%s\": source must be \"config\" or \"api\"", p->name);
		return -1;
	}
	if (p->kind == POLICY_OUTBREAK && (p->threshold < 1 || p->window_min < 1
	    || p->quiet_min < 0)) {
		str_fmt(err, errlen, "policy \"%s\": an outbreak policy needs threshold >= 1 and "
		    "window >= 1 minute (quiet >= 0)", p->name);
		return -1;
	}
	if (p->nsettings > POLICY_SETTINGS_MAX) {
		str_fmt(err, errlen, "policy \"%s\": more than %d settings", p->name, POLICY_SETTINGS_MAX);
		return -1;
	}
	for (size_t i = 0; i < p->nsettings; i++) {
		const struct policy_setting *s = &p->settings[i];
		if (!key_valid(s->key)) {
			str_fmt(err, errlen, "policy \"%s\": setting key \"%.64s\" must be 1-%d characters "
			    "of A-Z a-z 0-9 _ . -", p->name, s->key, POLICY_KEY_MAX - 1);
			return -1;
		}
		if (s->value == NULL) {
			str_fmt(err, errlen, "policy \"%s\": setting \"%s\" has no value", p->name, s->key);
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->settings[j].key, s->key) == 0) {
				str_fmt(err, errlen, "policy \"%s\": setting \"%s\" is given twice", p->name,
				    s->key);
				return -1;
			}
	}
	return 0;
}

json_t *
policy_settings_json(const struct policy *p)
{
	json_t *arr = json_array();
	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < p->nsettings; i++) {
		json_t *o = json_pack("{s:s, s:O, s:b}", "key", p->settings[i].key,
		    "value", p->settings[i].value, "locked", p->settings[i].locked);
		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int
policy_settings_from_json(struct policy *p, const json_t *settings, char *err, size_t errlen)
{
	struct policy tmp;
	size_t i;
	json_t *item;

	if (!json_is_array(settings)) {
		str_fmt(err, errlen, "policy \"%s\": settings must be a list of {key, value, locked}",
		    p->name);
		return -1;
	}
	policy_init(&tmp);
	str_copy(tmp.name, p->name, sizeof(tmp.name));
	json_array_foreach(settings, i, item) {
		json_t *k = json_object_get(item, "key"), *v = json_object_get(item, "value");
		json_t *l = json_object_get(item, "locked");
		if (!json_is_object(item) || !json_is_string(k) || v == NULL
		    || (l != NULL && !json_is_boolean(l))) {
			str_fmt(err, errlen, "policy \"%s\": settings[%zu] must be {\"key\": string, "
			    "\"value\": any, \"locked\": bool}", p->name, i);
			policy_clear(&tmp);
			return -1;
		}
		const char *key = json_string_value(k);
		for (size_t j = 0; j < tmp.nsettings; j++)
			if (strcmp(tmp.settings[j].key, key) == 0) {
				str_fmt(err, errlen, "policy \"%s\": setting \"%s\" is given twice", p->name, key);
				policy_clear(&tmp);
				return -1;
			}
		json_t *copy = json_deep_copy(v);
		int rc = copy != NULL ? policy_set(&tmp, key, copy, json_is_true(l), err, errlen) : -1;
		json_decref(copy);
		if (rc < 0) {
			if (copy == NULL)
				str_fmt(err, errlen, "policy \"%s\": out of memory", p->name);
			policy_clear(&tmp);
			return -1;
		}
	}
	policy_clear(p);
	p->settings = tmp.settings;
	p->nsettings = tmp.nsettings;
	return 0;
}

const char *
policy_kind_name(enum policy_kind k)
{
	switch (k) {
	case POLICY_NORMAL: return "normal";
	case POLICY_OUTBREAK: return "outbreak";
	case POLICY_MOBILE: return "mobile";
	}
	return "?";
}

int
policy_kind_parse(const char *name)
{
	if (name == NULL)
		return -1;
	if (strcmp(name, "normal") == 0)
		return POLICY_NORMAL;
	if (strcmp(name, "outbreak") == 0)
		return POLICY_OUTBREAK;
	if (strcmp(name, "mobile") == 0)
		return POLICY_MOBILE;
	return -1;
}

int
policy_local_check(const json_t *local, char *err, size_t errlen)
{
	const char *app, *key;
	json_t *obj, *v;

	if (local == NULL || json_is_null(local))
		return 0;
	if (!json_is_object(local)) {
		str_fmt(err, errlen, "local settings must be an object {application: {key: value}}");
		return -1;
	}
	json_object_foreach((json_t *)local, app, obj) {
		if (!app_valid(app)) {
			str_fmt(err, errlen, "local settings: application \"%.32s\" must be 1-%d characters "
			    "of a-z 0-9 _ -", app, POLICY_APP_MAX - 1);
			return -1;
		}
		if (!json_is_object(obj)) {
			str_fmt(err, errlen, "local settings: \"%s\" must be an object {key: value}", app);
			return -1;
		}
		if (json_object_size(obj) > POLICY_SETTINGS_MAX) {
			str_fmt(err, errlen, "local settings: \"%s\" has more than %d settings", app,
			    POLICY_SETTINGS_MAX);
			return -1;
		}
		json_object_foreach(obj, key, v) {
			if (!key_valid(key)) {
				str_fmt(err, errlen, "local settings: \"%s\" key \"%.64s\" must be 1-%d "
				    "characters of A-Z a-z 0-9 _ . -", app, key, POLICY_KEY_MAX - 1);
				return -1;
			}
		}
	}
	return 0;
}

/* ---- effective state of one application ---- */

struct eff_entry {
	const char *key;          /* borrowed from a policy or the local object */
	json_t *value;            /* borrowed */
	uint64_t origin;          /* policy id; 0 = local settings */
	bool locked;
};

struct eff {
	struct eff_entry *e;
	size_t n, cap;
	uint32_t *slots;          /* entry index + 1; 0 = empty */
	size_t nslots;            /* power of two, >= 2 * cap */
};

static uint32_t
str_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

static void
eff_free(struct eff *st)
{
	free(st->e);
	free(st->slots);
	memset(st, 0, sizeof(*st));
}

static void
eff_reindex(struct eff *st)
{
	memset(st->slots, 0, st->nslots * sizeof(*st->slots));
	for (size_t i = 0; i < st->n; i++) {
		size_t j = str_hash(st->e[i].key) & (st->nslots - 1);
		while (st->slots[j] != 0)
			j = (j + 1) & (st->nslots - 1);
		st->slots[j] = (uint32_t)(i + 1);
	}
}

static struct eff_entry *
eff_find(const struct eff *st, const char *key)
{
	if (st->nslots == 0)
		return NULL;
	for (size_t j = str_hash(key) & (st->nslots - 1);; j = (j + 1) & (st->nslots - 1)) {
		uint32_t s = st->slots[j];
		if (s == 0)
			return NULL;
		if (strcmp(st->e[s - 1].key, key) == 0)
			return &st->e[s - 1];
	}
}

static int
eff_insert(struct eff *st, const char *key, json_t *value, bool locked, uint64_t origin)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		struct eff_entry *ne = realloc(st->e, cap * sizeof(*ne));
		if (ne == NULL)
			return -1;
		st->e = ne;
		uint32_t *ns = malloc(cap * 2 * sizeof(*ns));
		if (ns == NULL)
			return -1;
		free(st->slots);
		st->slots = ns;
		st->nslots = cap * 2;
		st->cap = cap;
		eff_reindex(st);
	}
	st->e[st->n] = (struct eff_entry){ key, value, origin, locked };
	size_t j = str_hash(key) & (st->nslots - 1);
	while (st->slots[j] != 0)
		j = (j + 1) & (st->nslots - 1);
	st->slots[j] = (uint32_t)(++st->n);
	return 0;
}

/* One setting: skipped where locked above, else replaces the entry. */
static int
eff_apply(struct eff *st, const char *key, json_t *value, bool locked, uint64_t origin)
{
	struct eff_entry *e = eff_find(st, key);
	if (e == NULL)
		return eff_insert(st, key, value, locked, origin);
	if (e->locked)
		return 0;
	e->value = value;
	e->locked = locked;
	e->origin = origin;
	return 0;
}

/* inherit off: only what is locked above survives. */
static void
eff_drop_unlocked(struct eff *st)
{
	size_t k = 0;
	for (size_t i = 0; i < st->n; i++)
		if (st->e[i].locked)
			st->e[k++] = st->e[i];
	if (k != st->n) {
		st->n = k;
		eff_reindex(st);
	}
}

static int
eff_apply_policy(struct eff *st, const struct policy *p)
{
	if (!p->inherit)
		eff_drop_unlocked(st);
	for (size_t i = 0; i < p->nsettings; i++)
		if (eff_apply(st, p->settings[i].key, p->settings[i].value, p->settings[i].locked,
		    p->id) < 0)
			return -1;
	return 0;
}

static int
eff_apply_levels(struct eff *st, const struct policy_level *levels, size_t n, const char *app)
{
	for (size_t i = 0; i < n; i++) {
		const struct policy *p = levels[i].outbreak != NULL ? levels[i].outbreak
		    : levels[i].normal;
		if (p != NULL && (app == NULL || strcmp(p->application, app) == 0)
		    && eff_apply_policy(st, p) < 0)
			return -1;
	}
	return 0;
}

static int
eff_apply_local(struct eff *st, const json_t *obj)
{
	const char *key;
	json_t *v;
	if (!json_is_object(obj))
		return 0;
	json_object_foreach((json_t *)obj, key, v)
		if (eff_apply(st, key, v, false, 0) < 0)
			return -1;
	return 0;
}

/* values (and locks: key -> true, when asked) of a state. */
static int
eff_output(const struct eff *st, json_t **values, json_t **locks, json_t **meta)
{
	json_t *vals = json_object(), *lk = locks != NULL ? json_object() : NULL;
	json_t *mt = meta != NULL ? json_object() : NULL;

	if (vals == NULL || (locks != NULL && lk == NULL) || (meta != NULL && mt == NULL))
		goto fail;
	for (size_t i = 0; i < st->n; i++) {
		const struct eff_entry *e = &st->e[i];
		if (json_object_set(vals, e->key, e->value) < 0)
			goto fail;
		if (lk != NULL && e->locked && json_object_set_new(lk, e->key, json_true()) < 0)
			goto fail;
		if (mt != NULL) {
			json_t *m = e->origin != 0
			    ? json_pack("{s:b, s:I}", "locked", e->locked, "origin", (json_int_t)e->origin)
			    : json_pack("{s:b, s:s}", "locked", e->locked, "origin", "local");
			if (m == NULL || json_object_set_new(mt, e->key, m) < 0)
				goto fail;
		}
	}
	*values = vals;
	if (locks != NULL)
		*locks = lk;
	if (meta != NULL)
		*meta = mt;
	return 0;
fail:
	json_decref(vals);
	json_decref(lk);
	json_decref(mt);
	return -1;
}

int
policy_effective(const struct policy_level *levels, size_t n, const json_t *local,
    const char *application, json_t **values, json_t **meta)
{
	struct eff st = { 0 };
	int rc = -1;

	if (eff_apply_levels(&st, levels, n, application) < 0)
		goto out;
	if (local != NULL && application != NULL
	    && eff_apply_local(&st, json_object_get(local, application)) < 0)
		goto out;
	rc = eff_output(&st, values, NULL, meta);
out:
	eff_free(&st);
	return rc;
}

int
policy_hash(const json_t *doc, char out[65])
{
	uint8_t md[32];
	unsigned int mdlen = 0;
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);

	out[0] = '\0';
	if (text == NULL)
		return -1;
	int ok = EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
	free(text);
	if (!ok || mdlen != sizeof(md))
		return -1;
	hex_encode(md, sizeof(md), out);
	return 0;
}

/* ---- the store ---- */

struct gstate {
	uint64_t id;
	struct policy **pols;     /* this group's policies (any kind, any state) */
	size_t npols, cap;
	bool outbreak;
	uint64_t version;         /* store clock at the last change here */
	/* the group's document for hosts without local settings */
	json_t *doc, *locks;      /* locks: {"applications"|"mobile": {A: {key: true}}} */
	char hash[65];
	uint64_t chain[GROUP_DEPTH_MAX];
	int depth;
	int64_t mobile_after;
	uint64_t computed_at;     /* store clock when computed */
	uint64_t checked_clock, checked_gen; /* last validation (fast path) */
};

struct policy_store {
	struct u64map pols;       /* id -> struct policy * (owned) */
	struct u64map groups;     /* group id -> struct gstate * (owned) */
	struct hmap *by_name;     /* name -> struct policy * */
	uint64_t clock;
	int64_t mobile_after;
	uint64_t *pending;        /* groups changed since policy_changed_groups */
	size_t npending, pcap;
	bool pending_all;         /* could not record one: report every group */
};

struct policy_store *
policy_store_new(void)
{
	struct policy_store *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	if ((s->by_name = hmap_new()) == NULL) {
		free(s);
		return NULL;
	}
	s->clock = 1;
	return s;
}

static void
gstate_free(struct gstate *g)
{
	free(g->pols);
	json_decref(g->doc);
	json_decref(g->locks);
	free(g);
}

void
policy_store_free(struct policy_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->pols.cap; i++)
		if (s->pols.vals[i] != NULL) {
			policy_clear(s->pols.vals[i]);
			free(s->pols.vals[i]);
		}
	for (size_t i = 0; i < s->groups.cap; i++)
		if (s->groups.vals[i] != NULL)
			gstate_free(s->groups.vals[i]);
	u64_free(&s->pols);
	u64_free(&s->groups);
	hmap_free(s->by_name);
	free(s->pending);
	free(s);
}

static struct gstate *
gstate_get(const struct policy_store *s, uint64_t id)
{
	return u64_get(&s->groups, id);
}

static struct gstate *
gstate_make(struct policy_store *s, uint64_t id)
{
	struct gstate *g = gstate_get(s, id);
	if (g != NULL)
		return g;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->id = id;
	if (u64_put(&s->groups, id, g) < 0) {
		free(g);
		return NULL;
	}
	return g;
}

/* Records a change at group id (its subtree's documents are stale). */
static void
touch(struct policy_store *s, uint64_t id)
{
	struct gstate *g = gstate_make(s, id);
	s->clock++;
	if (g != NULL)
		g->version = s->clock;
	for (size_t i = 0; i < s->npending; i++)
		if (s->pending[i] == id)
			return;
	if (s->npending == s->pcap) {
		size_t cap = s->pcap ? s->pcap * 2 : 16;
		uint64_t *np = realloc(s->pending, cap * sizeof(*np));
		if (np == NULL) {
			s->pending_all = true;   /* cannot remember which: report all */
			return;
		}
		s->pending = np;
		s->pcap = cap;
	}
	s->pending[s->npending++] = id;
}

static int
glist_add(struct gstate *g, struct policy *p)
{
	if (array_grow((void **)&g->pols, &g->cap, g->npols + 1, sizeof(*g->pols)) < 0)
		return -1;
	g->pols[g->npols++] = p;
	return 0;
}

static void
glist_del(struct gstate *g, const struct policy *p)
{
	for (size_t i = 0; g != NULL && i < g->npols; i++)
		if (g->pols[i] == p) {
			memmove(&g->pols[i], &g->pols[i + 1], (g->npols - i - 1) * sizeof(*g->pols));
			g->npols--;
			return;
		}
}

/* The active policy of group g for (app, kind), or NULL. */
static const struct policy *
active_in(const struct gstate *g, const char *app, enum policy_kind kind)
{
	for (size_t i = 0; g != NULL && i < g->npols; i++) {
		const struct policy *p = g->pols[i];
		if (p->active && p->kind == kind && strcmp(p->application, app) == 0)
			return p;
	}
	return NULL;
}

int
policy_put(struct policy_store *s, const struct policy *p, char *err, size_t errlen)
{
	if (policy_check(p, err, errlen) < 0)
		return -1;
	struct policy *old = u64_get(&s->pols, p->id);
	struct policy *named = hmap_get(s->by_name, p->name);
	if (named != NULL && named != old) {
		str_fmt(err, errlen, "policy \"%s\": the name is already used by policy id %llu; "
		    "choose another", p->name, (unsigned long long)named->id);
		return -1;
	}
	if (p->active) {
		const struct policy *a = active_in(gstate_get(s, p->group_id), p->application, p->kind);
		if (a != NULL && a != old) {
			str_fmt(err, errlen, "policy \"%s\": policy \"%s\" is already the active %s %s "
			    "policy of this group; deactivate it first", p->name, a->name,
			    policy_kind_name(p->kind), p->application);
			return -1;
		}
	}
	struct policy *np = malloc(sizeof(*np));
	struct gstate *g = gstate_make(s, p->group_id);
	if (np == NULL || g == NULL || policy_copy(np, p) < 0) {
		free(np);
		str_fmt(err, errlen, "policy \"%s\": out of memory", p->name);
		return -1;
	}
	if (glist_add(g, np) < 0)
		goto oom;
	if (old != NULL)
		(void)hmap_del(s->by_name, old->name);
	if (hmap_put(s->by_name, np->name, np, NULL) < 0 || u64_put(&s->pols, np->id, np) < 0) {
		glist_del(g, np);
		(void)hmap_del(s->by_name, np->name);
		if (old != NULL)
			(void)hmap_put(s->by_name, old->name, old, NULL);
		goto oom;
	}
	if (old != NULL) {
		if (old->active)
			touch(s, old->group_id);
		glist_del(gstate_get(s, old->group_id), old);
		policy_clear(old);
		free(old);
	}
	if (np->active)
		touch(s, np->group_id);
	return 0;
oom:
	policy_clear(np);
	free(np);
	str_fmt(err, errlen, "policy \"%s\": out of memory", p->name);
	return -1;
}

int
policy_activate(struct policy_store *s, uint64_t id, bool active)
{
	struct policy *p = u64_get(&s->pols, id);
	if (p == NULL)
		return -1;
	if (p->active == active)
		return 0;
	struct gstate *g = gstate_get(s, p->group_id);
	if (active)
		for (size_t i = 0; g != NULL && i < g->npols; i++) {
			struct policy *o = g->pols[i];
			if (o != p && o->kind == p->kind && strcmp(o->application, p->application) == 0)
				o->active = false;
		}
	p->active = active;
	touch(s, p->group_id);
	return 0;
}

int
policy_remove(struct policy_store *s, uint64_t id)
{
	struct policy *p = u64_get(&s->pols, id);
	if (p == NULL)
		return -1;
	if (p->active)
		touch(s, p->group_id);
	glist_del(gstate_get(s, p->group_id), p);
	(void)hmap_del(s->by_name, p->name);
	u64_del(&s->pols, id);
	policy_clear(p);
	free(p);
	return 0;
}

const struct policy *
policy_get(const struct policy_store *s, uint64_t id)
{
	return u64_get(&s->pols, id);
}

const struct policy *
policy_find(const struct policy_store *s, const char *name)
{
	return name != NULL ? hmap_get(s->by_name, name) : NULL;
}

static int
cmp_policy_name(const void *a, const void *b)
{
	const struct policy *x = *(const struct policy *const *)a;
	const struct policy *y = *(const struct policy *const *)b;
	return strcmp(x->name, y->name);
}

const struct policy **
policy_list(const struct policy_store *s, uint64_t group_id, size_t *n)
{
	size_t k = 0, cnt = s->pols.n;
	const struct policy **out = malloc((cnt > 0 ? cnt : 1) * sizeof(*out));
	*n = 0;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < s->pols.cap; i++) {
		const struct policy *p = s->pols.vals[i];
		if (p != NULL && (group_id == 0 || p->group_id == group_id))
			out[k++] = p;
	}
	qsort(out, k, sizeof(*out), cmp_policy_name);
	*n = k;
	return out;
}

size_t
policy_count(const struct policy_store *s)
{
	return s->pols.n;
}

int
policy_set_outbreak(struct policy_store *s, uint64_t group_id, bool on)
{
	struct gstate *g = gstate_get(s, group_id);
	if (g == NULL && !on)
		return 0;
	if (g == NULL && (g = gstate_make(s, group_id)) == NULL)
		return 0;
	if (g->outbreak == on)
		return 0;
	g->outbreak = on;
	touch(s, group_id);
	return 1;
}

bool
policy_outbreak(const struct policy_store *s, uint64_t group_id)
{
	const struct gstate *g = gstate_get(s, group_id);
	return g != NULL && g->outbreak;
}

void
policy_set_mobile_after(struct policy_store *s, int64_t seconds)
{
	if (s->mobile_after == seconds)
		return;
	s->mobile_after = seconds;
	touch(s, 0);
}

/* The levels for app over an explicit chain of group ids. */
static size_t
levels_of(const struct policy_store *s, const uint64_t *chain, int depth, const char *app,
    bool mobile, struct policy_level *out)
{
	for (int i = 0; i < depth; i++) {
		const struct gstate *g = gstate_get(s, chain[i]);
		out[i].normal = active_in(g, app, mobile ? POLICY_MOBILE : POLICY_NORMAL);
		out[i].outbreak = !mobile && g != NULL && g->outbreak
		    ? active_in(g, app, POLICY_OUTBREAK) : NULL;
	}
	return (size_t)depth;
}

int
policy_levels(const struct policy_store *s, const struct group_tree *t, uint64_t group_id,
    const char *application, bool mobile, struct policy_level out[GROUP_DEPTH_MAX])
{
	uint64_t chain[GROUP_DEPTH_MAX];
	int depth = groups_chain(t, group_id, chain);
	if (depth < 0 || application == NULL)
		return -1;
	return (int)levels_of(s, chain, depth, application, mobile, out);
}

/* Adds name to a small set of application names (borrowed strings). */
static int
appset_add(const char ***set, size_t *n, size_t *cap, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*set)[i], name) == 0)
			return 0;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		const char **ns = realloc(*set, nc * sizeof(*ns));
		if (ns == NULL)
			return -1;
		*set = ns;
		*cap = nc;
	}
	(*set)[(*n)++] = name;
	return 0;
}

/* One section ("applications" or "mobile") of a group's document. */
static int
build_section(const struct policy_store *s, const uint64_t *chain, int depth, bool mobile,
    json_t *values, json_t *locks)
{
	const char **apps = NULL;
	size_t napps = 0, cap = 0;
	struct policy_level levels[GROUP_DEPTH_MAX];
	int rc = -1;

	/* the applications with an active policy somewhere in the chain */
	for (int i = 0; i < depth; i++) {
		const struct gstate *g = gstate_get(s, chain[i]);
		for (size_t j = 0; g != NULL && j < g->npols; j++) {
			const struct policy *p = g->pols[j];
			bool used = p->active && (mobile ? p->kind == POLICY_MOBILE
			    : p->kind == POLICY_NORMAL || (p->kind == POLICY_OUTBREAK && g->outbreak));
			if (used && appset_add(&apps, &napps, &cap, p->application) < 0)
				goto out;
		}
	}
	for (size_t a = 0; a < napps; a++) {
		struct eff st = { 0 };
		json_t *v = NULL, *l = NULL;
		size_t n = levels_of(s, chain, depth, apps[a], mobile, levels);
		int e = eff_apply_levels(&st, levels, n, apps[a]);
		if (e == 0)
			e = eff_output(&st, &v, &l, NULL);
		eff_free(&st);
		if (e < 0)
			goto out;
		if (json_object_set_new(values, apps[a], v) < 0) {
			json_decref(l);
			goto out;
		}
		if (json_object_size(l) > 0) {
			if (json_object_set_new(locks, apps[a], l) < 0)
				goto out;
		} else
			json_decref(l);
	}
	rc = 0;
out:
	free(apps);
	return rc;
}

/* A group's document and locks over an explicit chain. */
static int
build_group_doc(const struct policy_store *s, const uint64_t *chain, int depth, json_t **doc,
    json_t **locks)
{
	json_t *apps = json_object(), *mob = json_object();
	json_t *lapps = json_object(), *lmob = json_object();
	json_t *d = NULL, *l = NULL;

	if (apps == NULL || mob == NULL || lapps == NULL || lmob == NULL
	    || build_section(s, chain, depth, false, apps, lapps) < 0
	    || build_section(s, chain, depth, true, mob, lmob) < 0)
		goto fail;
	d = json_pack("{s:o, s:o, s:I}", "applications", apps, "mobile", mob,
	    "mobile_after", (json_int_t)s->mobile_after);
	apps = mob = NULL;        /* "o" steals, even on failure */
	l = json_pack("{s:o, s:o}", "applications", lapps, "mobile", lmob);
	lapps = lmob = NULL;
	if (d == NULL || l == NULL)
		goto fail;
	*doc = d;
	*locks = l;
	return 0;
fail:
	json_decref(apps);
	json_decref(mob);
	json_decref(lapps);
	json_decref(lmob);
	json_decref(d);
	json_decref(l);
	return -1;
}

/* Whether local holds at least one setting. */
static bool
local_has_settings(const json_t *local)
{
	const char *app;
	json_t *obj;
	if (!json_is_object(local))
		return false;
	json_object_foreach((json_t *)local, app, obj)
		if (json_is_object(obj) && json_object_size(obj) > 0)
			return true;
	return false;
}

/* section[app] of base overlaid with local[app] where not locked. With
 * only_present, applications absent from the section are skipped (mobile). */
static json_t *
overlay_section(const json_t *base, const json_t *locks, const json_t *local, bool only_present)
{
	json_t *out = json_copy((json_t *)base);   /* shallow: app objects shared */
	const char *app, *key;
	json_t *obj, *v;

	if (out == NULL)
		return NULL;
	json_object_foreach((json_t *)local, app, obj) {
		if (!json_is_object(obj) || json_object_size(obj) == 0)
			continue;
		json_t *b = json_object_get(base, app);
		if (b == NULL && only_present)
			continue;
		json_t *merged = b != NULL ? json_copy(b) : json_object();
		json_t *lk = json_object_get(locks, app);
		if (merged == NULL)
			goto fail;
		json_object_foreach(obj, key, v) {
			if (lk != NULL && json_object_get(lk, key) != NULL)
				continue;   /* locked by a policy: the lock wins */
			if (json_object_set(merged, key, v) < 0) {
				json_decref(merged);
				goto fail;
			}
		}
		if (json_object_set_new(out, app, merged) < 0)
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static json_t *
host_doc(const json_t *gdoc, const json_t *glocks, const json_t *local)
{
	json_t *apps = overlay_section(json_object_get(gdoc, "applications"),
	    json_object_get(glocks, "applications"), local, false);
	json_t *mob = overlay_section(json_object_get(gdoc, "mobile"),
	    json_object_get(glocks, "mobile"), local, true);
	if (apps == NULL || mob == NULL) {
		json_decref(apps);
		json_decref(mob);
		return NULL;
	}
	return json_pack("{s:o, s:o, s:O}", "applications", apps, "mobile", mob,
	    "mobile_after", json_object_get(gdoc, "mobile_after"));
}

json_t *
policy_document(const struct policy_store *s, const struct group_tree *t, uint64_t group_id,
    const json_t *local, char *err, size_t errlen)
{
	uint64_t chain[GROUP_DEPTH_MAX];
	int depth = groups_chain(t, group_id, chain);
	json_t *gdoc, *glocks;

	if (depth < 0) {
		str_fmt(err, errlen, "group id %llu does not exist", (unsigned long long)group_id);
		return NULL;
	}
	if (build_group_doc(s, chain, depth, &gdoc, &glocks) < 0) {
		str_fmt(err, errlen, "policy document: out of memory");
		return NULL;
	}
	if (!local_has_settings(local)) {
		json_decref(glocks);
		return gdoc;
	}
	json_t *d = host_doc(gdoc, glocks, local);
	json_decref(gdoc);
	json_decref(glocks);
	if (d == NULL)
		str_fmt(err, errlen, "policy document: out of memory");
	return d;
}

/* Whether g's cached document still holds. */
static bool
cache_valid(const struct policy_store *s, const struct group_tree *t, struct gstate *g)
{
	uint64_t chain[GROUP_DEPTH_MAX];

	if (g->doc == NULL || g->mobile_after != s->mobile_after)
		return false;
	if (g->checked_clock == s->clock && g->checked_gen == groups_generation(t))
		return true;
	int depth = groups_chain(t, g->id, chain);
	if (depth != g->depth || memcmp(chain, g->chain, (size_t)depth * sizeof(*chain)) != 0)
		return false;
	for (int i = 0; i < depth; i++) {
		const struct gstate *a = gstate_get(s, chain[i]);
		if (a != NULL && a->version > g->computed_at)
			return false;
	}
	const struct gstate *root = gstate_get(s, 0);
	if (root != NULL && root->version > g->computed_at)
		return false;
	g->checked_clock = s->clock;
	g->checked_gen = groups_generation(t);
	return true;
}

/* The group's cached document, recomputed when stale. */
static struct gstate *
group_doc(struct policy_store *s, const struct group_tree *t, uint64_t group_id, char *err,
    size_t errlen)
{
	struct gstate *g = gstate_make(s, group_id);
	json_t *doc = NULL, *locks = NULL;

	if (g == NULL) {
		str_fmt(err, errlen, "policy document: out of memory");
		return NULL;
	}
	if (cache_valid(s, t, g))
		return g;
	int depth = groups_chain(t, group_id, g->chain);
	if (depth < 0) {
		str_fmt(err, errlen, "group id %llu does not exist", (unsigned long long)group_id);
		return NULL;
	}
	g->depth = depth;
	if (build_group_doc(s, g->chain, depth, &doc, &locks) < 0
	    || policy_hash(doc, g->hash) < 0) {
		json_decref(doc);
		json_decref(locks);
		str_fmt(err, errlen, "policy document: out of memory");
		return NULL;
	}
	json_decref(g->doc);
	json_decref(g->locks);
	g->doc = doc;
	g->locks = locks;
	g->mobile_after = s->mobile_after;
	g->computed_at = s->clock;
	g->checked_clock = s->clock;
	g->checked_gen = groups_generation(t);
	return g;
}

int
policy_host_document(struct policy_store *s, const struct group_tree *t, uint64_t group_id,
    const json_t *local, json_t **doc, char hash[65], char *err, size_t errlen)
{
	struct gstate *g = group_doc(s, t, group_id, err, errlen);
	if (g == NULL)
		return -1;
	if (!local_has_settings(local)) {
		*doc = json_incref(g->doc);
		memcpy(hash, g->hash, 65);
		return 0;
	}
	json_t *d = host_doc(g->doc, g->locks, local);
	if (d == NULL || policy_hash(d, hash) < 0) {
		json_decref(d);
		str_fmt(err, errlen, "policy document: out of memory");
		return -1;
	}
	*doc = d;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t *
policy_changed_groups(struct policy_store *s, const struct group_tree *t, size_t *n)
{
	uint64_t *out = NULL, *pending = s->pending;
	size_t k = 0, cap = 0, npending = s->npending;

	*n = 0;
	if (s->pending_all) {
		static uint64_t all = 0;
		pending = &all;
		npending = 1;
	}
	for (size_t i = 0; i < npending; i++) {
		size_t m;
		uint64_t *sub = groups_subtree(t, pending[i], &m);
		if (sub == NULL)
			continue;           /* a group that is gone has no hosts */
		if (k + m + 1 > cap) {
			size_t nc = (k + m + 1) * 2;
			uint64_t *no = realloc(out, nc * sizeof(*no));
			if (no == NULL) {
				free(sub);
				free(out);
				return NULL;    /* pending kept: the caller may retry */
			}
			out = no;
			cap = nc;
		}
		memcpy(out + k, sub, m * sizeof(*sub));
		k += m;
		if (pending[i] == 0)
			out[k++] = 0;       /* the hosts without a group too */
		free(sub);
	}
	s->npending = 0;
	s->pending_all = false;
	if (k == 0) {
		free(out);
		return NULL;
	}
	qsort(out, k, sizeof(*out), cmp_u64);
	size_t u = 1;
	for (size_t i = 1; i < k; i++)
		if (out[i] != out[u - 1])
			out[u++] = out[i];
	*n = u;
	return out;
}

void
policy_mark_group(struct policy_store *s, uint64_t group_id)
{
	touch(s, group_id);
}

uint64_t *
policy_affected_groups(const struct policy_store *s, const struct group_tree *t,
    uint64_t policy_id, size_t *n)
{
	const struct policy *p = policy_get(s, policy_id);
	*n = 0;
	if (p == NULL)
		return NULL;
	return groups_subtree(t, p->group_id, n);
}
