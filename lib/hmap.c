/* hmap.c — see hmap.h. FNV-1a hashing; load factor kept below 1. */
#include "hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct hnode {
	struct hnode *next;
	const char *key;
	void *value;
	uint32_t hash;
};

struct hmap {
	struct hnode **slots;
	size_t nslots, count;
};

static uint32_t
hmap_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

struct hmap *
hmap_new(void)
{
	struct hmap *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->nslots = 64;
	m->slots = calloc(m->nslots, sizeof(*m->slots));
	if (m->slots == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
hmap_free(struct hmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nslots; i++) {
		struct hnode *n = m->slots[i];
		while (n) {
			struct hnode *next = n->next;
			free(n);
			n = next;
		}
	}
	free(m->slots);
	free(m);
}

static struct hnode **
hmap_find(const struct hmap *m, const char *key, uint32_t h)
{
	struct hnode **pp = &m->slots[h & (m->nslots - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

void *
hmap_get(const struct hmap *m, const char *key)
{
	struct hnode **pp = hmap_find(m, key, hmap_hash(key));
	return *pp ? (*pp)->value : NULL;
}

static int
hmap_grow(struct hmap *m)
{
	size_t n = m->nslots * 2;
	struct hnode **slots = calloc(n, sizeof(*slots));
	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < m->nslots; i++) {
		struct hnode *node = m->slots[i];
		while (node) {
			struct hnode *next = node->next;
			node->next = slots[node->hash & (n - 1)];
			slots[node->hash & (n - 1)] = node;
			node = next;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->nslots = n;
	return 0;
}

int
hmap_put(struct hmap *m, const char *key, void *value, void **old)
{
	uint32_t h = hmap_hash(key);
	struct hnode **pp = hmap_find(m, key, h);
	if (old)
		*old = NULL;
	if (*pp) {
		if (old)
			*old = (*pp)->value;
		(*pp)->value = value;
		(*pp)->key = key;
		return 0;
	}
	if (m->count + 1 > m->nslots && hmap_grow(m) < 0)
		return -1;
	struct hnode *n = malloc(sizeof(*n));
	if (n == NULL)
		return -1;
	n->key = key;
	n->value = value;
	n->hash = h;
	struct hnode **slot = &m->slots[h & (m->nslots - 1)];
	n->next = *slot;
	*slot = n;
	m->count++;
	return 0;
}

void *
hmap_del(struct hmap *m, const char *key)
{
	struct hnode **pp = hmap_find(m, key, hmap_hash(key));
	struct hnode *n = *pp;
	if (n == NULL)
		return NULL;
	void *v = n->value;
	*pp = n->next;
	free(n);
	m->count--;
	return v;
}

size_t
hmap_count(const struct hmap *m)
{
	return m->count;
}

void
hmap_foreach(const struct hmap *m, void (*fn)(void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nslots; i++)
		for (struct hnode *n = m->slots[i]; n; n = n->next)
			fn(n->value, arg);
}
