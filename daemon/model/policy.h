/* policy.h — policies with locked settings, and the effective settings and
 * policy document they give a host.
 *
 * Effective settings of a host for application A: walk its group chain from
 * the top-level group down to the host's group. At each level take the
 * active normal policy for A, or the group's active outbreak policy for A
 * instead while that group's outbreak is on. The state is key -> {value,
 * locked, origin}:
 *   - inherit off: every entry not locked above is dropped;
 *   - each setting of the policy: skipped when the key is locked above (the
 *     lock wins), else it replaces the entry, with its own lock.
 * Then the host's local settings apply the same way (never locked). Mobile
 * policies give the "mobile" section the same way over the chain's active
 * mobile policies (local settings apply to it too).
 *
 * A host's document: {"applications": {A: {key: value}}, "mobile": {A:
 * {key: value}}, "mobile_after": N}; its hash is the SHA-256 hex of
 * json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS).
 *
 * The store caches one document per group (shared by the group's hosts that
 * have no local settings) and records which groups changed, so that after
 * one policy changes only the hosts of that group's subtree are recomputed.
 *
 * Local settings are {A: {key: value}} (the hosts.local_settings column).
 * JSON values are jansson's: not thread-safe, so main thread only; no I/O. */
#ifndef CUSTOS_POLICY_H
#define CUSTOS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "model/groups.h"

#define POLICY_NAME_MAX 128       /* incl. NUL */
#define POLICY_APP_MAX 32         /* [a-z0-9_-] */
#define POLICY_KEY_MAX 64         /* [A-Za-z0-9_.-] */
#define POLICY_SETTINGS_MAX 512

enum policy_kind { POLICY_NORMAL = 0, POLICY_OUTBREAK, POLICY_MOBILE };

struct policy_setting {
	char key[POLICY_KEY_MAX];
	json_t *value;            /* owned reference */
	bool locked;
};

struct policy {
	uint64_t id;              /* database id, never 0 */
	char name[POLICY_NAME_MAX]; /* unique over all policies */
	uint64_t group_id;        /* never 0: a policy belongs to a group */
	char application[POLICY_APP_MAX];
	enum policy_kind kind;
	bool active;              /* at most one per (group, application, kind) */
	bool inherit;
	struct policy_setting *settings; /* owned, in declaration order */
	size_t nsettings;
	int threshold;            /* outbreak: threat events ... */
	int window_min;           /* ... within this many minutes start it */
	int quiet_min;            /* minutes without one end it (0 = window_min) */
	char source[8];           /* "config" or "api" */
};

/* ---- one policy (a value type the caller owns) ---- */

/* Zeroes p with inherit = true and active = true. */
void policy_init(struct policy *p);
/* Frees the settings; p can be reused after policy_init. */
void policy_clear(struct policy *p);
/* Adds key or replaces its value and lock (value is incref'd). */
int policy_set(struct policy *p, const char *key, json_t *value, bool locked,
    char *err, size_t errlen);
/* Deep copy (values too) into an uninitialised dst. */
int policy_copy(struct policy *dst, const struct policy *src);
/* Checks names, kind, group, source, keys (valid, unique), outbreak fields. */
int policy_check(const struct policy *p, char *err, size_t errlen);
/* Settings as [{"key": K, "value": V, "locked": B}] (the policies.settings
 * column and the API form). */
json_t *policy_settings_json(const struct policy *p);
/* Replaces p's settings from that form ("locked" is optional). */
int policy_settings_from_json(struct policy *p, const json_t *settings, char *err, size_t errlen);
const char *policy_kind_name(enum policy_kind k);   /* "normal", "outbreak", "mobile" */
int policy_kind_parse(const char *name);             /* enum value or -1 */
/* Checks a host's local settings object ({A: {key: value}}). */
int policy_local_check(const json_t *local, char *err, size_t errlen);

/* ---- the algorithm, on explicit inputs ---- */

struct policy_level {
	const struct policy *normal;   /* the level's active policy for the application
	                                  (the mobile one for the mobile section), or NULL */
	const struct policy *outbreak; /* the level's active outbreak policy when the
	                                  group's outbreak is on, else NULL; used instead */
};

/* Effective settings of one application over levels[0] (top) .. levels[n-1]
 * (the host's group), then local[application]. *values gets a new object
 * key -> value; *meta (when meta != NULL) a new object key -> {"locked": B,
 * "origin": policy id, or "local"}. 0, or -1 on OOM. */
int policy_effective(const struct policy_level *levels, size_t n, const json_t *local,
    const char *application, json_t **values, json_t **meta);
/* SHA-256 hex of the canonical JSON of doc into out. 0 or -1. */
int policy_hash(const json_t *doc, char out[65]);

/* ---- the store: all policies, outbreak state, per-group documents ---- */

struct policy_store;

struct policy_store *policy_store_new(void);
void policy_store_free(struct policy_store *s);

/* Adds p (deep copy) or replaces the policy with p's id. Refuses an invalid
 * policy, a name used by another policy, and a second active policy of the
 * same group, application and kind. */
int policy_put(struct policy_store *s, const struct policy *p, char *err, size_t errlen);
/* Activates id and deactivates the other policies of its group, application
 * and kind (active = true), or deactivates id. -1 when id is unknown. */
int policy_activate(struct policy_store *s, uint64_t id, bool active);
int policy_remove(struct policy_store *s, uint64_t id);
/* Pointers stay valid until that policy is replaced or removed. */
const struct policy *policy_get(const struct policy_store *s, uint64_t id);
const struct policy *policy_find(const struct policy_store *s, const char *name);
/* The policies of group_id (0 = all), sorted by name; malloc'd array. */
const struct policy **policy_list(const struct policy_store *s, uint64_t group_id, size_t *n);
size_t policy_count(const struct policy_store *s);

/* A group's outbreak state: returns 1 when it changed, 0 when not. */
int policy_set_outbreak(struct policy_store *s, uint64_t group_id, bool on);
bool policy_outbreak(const struct policy_store *s, uint64_t group_id);
/* agent.mobile_after in seconds (changes every document). */
void policy_set_mobile_after(struct policy_store *s, int64_t seconds);

/* The levels of group_id's chain for application (mobile: the mobile
 * policies) into out; returns the count, -1 when group_id is unknown. */
int policy_levels(const struct policy_store *s, const struct group_tree *t, uint64_t group_id,
    const char *application, bool mobile, struct policy_level out[GROUP_DEPTH_MAX]);

/* A host's document, computed from scratch (no cache): a new reference, or
 * NULL with err (unknown group, OOM). group_id 0 = Unassigned. */
json_t *policy_document(const struct policy_store *s, const struct group_tree *t,
    uint64_t group_id, const json_t *local, char *err, size_t errlen);
/* The same through the per-group cache: hosts without local settings get
 * their group's document; with local settings one is derived from it. *doc
 * gets a new reference, hash the document's hash. */
int policy_host_document(struct policy_store *s, const struct group_tree *t, uint64_t group_id,
    const json_t *local, json_t **doc, char hash[65], char *err, size_t errlen);

/* The groups whose hosts' documents may have changed since the previous
 * call: the union of the subtrees of every group whose policies or outbreak
 * state changed or that was marked, sorted ascending; 0 in the list means
 * the hosts without a group too. malloc'd (NULL with *n = 0 when none). */
uint64_t *policy_changed_groups(struct policy_store *s, const struct group_tree *t, size_t *n);
/* Marks a group's subtree changed (after moving the group); 0 = all hosts. */
void policy_mark_group(struct policy_store *s, uint64_t group_id);
/* The groups one policy reaches: its group's subtree, sorted ascending. */
uint64_t *policy_affected_groups(const struct policy_store *s, const struct group_tree *t,
    uint64_t policy_id, size_t *n);

#endif
