/* hmap.h — a string-keyed hash map (chained, grows by doubling).
 *
 * Keys are not copied: the caller guarantees that the key string lives as long
 * as the entry (typically it is a member of the value). One thread per map. */
#ifndef CUSTOS_HMAP_H
#define CUSTOS_HMAP_H

#include <stddef.h>

struct hmap;

struct hmap *hmap_new(void);
void hmap_free(struct hmap *m);              /* frees the map, not the values */
void *hmap_get(const struct hmap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. -1 cast on OOM is
 * avoided: returns 0 on success, -1 on allocation failure; *old gets the
 * replaced value (may be NULL). */
int hmap_put(struct hmap *m, const char *key, void *value, void **old);
void *hmap_del(struct hmap *m, const char *key); /* returns the removed value */
size_t hmap_count(const struct hmap *m);

/* Iteration: visits every value; fn may not modify the map. */
void hmap_foreach(const struct hmap *m, void (*fn)(void *value, void *arg), void *arg);

#endif
