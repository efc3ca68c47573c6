/* registry.h — the daemon's in-memory working set: hosts and enrolment
 * tokens. Every hot read (sync, console listing, later SNMP and NAC) is
 * answered from here; MariaDB is the store of record behind it.
 * Main thread only. */
#ifndef CUSTOS_REGISTRY_H
#define CUSTOS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "core/status.h"

struct host {
	uint64_t id;              /* database id (stable; 0 until stored) */
	char uid[33];             /* CN of the agent certificate */
	char name[64];            /* unique display name */
	char hostname[256];       /* as reported at enrolment */
	char cert_serial[40];
	int64_t enrolled_at, last_seen, posture_time;
	char last_ip[64];
	int wake_port;
	json_t *posture;          /* owned; NULL before the first report; without
	                             the package list (posture_strip_packages) */
	json_t *posture_full;     /* owned; the newest full posture (with the
	                             packages) until the store's next write takes
	                             it; NULL when the database has it already */
	struct status_input sin;
	struct status_result st;
	bool connected;           /* an agent connection is live (the listener
	                             keeps the connection itself) */
	uint32_t threats_uncounted; /* threats that came before the management
	                             model was loaded (mgmt counts them then) */
	bool dirty;               /* waiting in the next write batch */
	bool from_snapshot;       /* read from the local snapshot (snapshot.h),
	                             not (yet) from the database */
	/* administration (mgmt.c) */
	uint64_t group_id;        /* 0 = Unassigned */
	bool placed;              /* relocation rules have run for it */
	int policy_version;       /* bumped whenever policy_hash changes */
	char policy_hash[65];
	int policy_applied;       /* version the agent reports as applied */
	json_t *policy_errors;    /* owned; what the agent could not apply */
	json_t *local_settings;   /* owned; {application: {key: value}} or NULL */
	json_t *tags;             /* owned; the agent's tags (array) or NULL */
};

struct token {
	char name[65];
	char secret_hash[65];     /* SHA-256 hex of the secret */
	int64_t expires_at;       /* 0 = never */
	int max_uses;             /* 0 = unlimited */
	int uses;
	char source[16];          /* "config" or "api" */
	int64_t created_at;
};

struct registry;

struct registry *registry_new(void);
void registry_free(struct registry *r);

/* Takes ownership of h. -1 when uid or name is already present. */
int registry_add_host(struct registry *r, struct host *h);
void registry_remove_host(struct registry *r, struct host *h); /* frees h */
struct host *registry_host_by_uid(const struct registry *r, const char *uid);
struct host *registry_host_by_name(const struct registry *r, const char *name);
bool registry_name_taken(const char *name, void *registry);
size_t registry_host_count(const struct registry *r);
/* A malloc'd array of every host sorted by name (caller frees the array). */
struct host **registry_hosts_sorted(const struct registry *r, size_t *n);
/* The same in no particular order (cheap for large fleets). */
struct host **registry_hosts(const struct registry *r, size_t *n);
void host_free(struct host *h);
/* Replaces the posture (takes ownership of the full document: it waits in
 * posture_full for the store; h->posture gets the stripped copy) and
 * recomputes status. */
void host_set_posture(struct host *h, json_t *posture, int64_t when,
    const struct status_thresholds *t, int64_t now);

/* The posture as custosd keeps it in memory: the software section's package
 * list (1,000-3,000 objects on a real host) is replaced by its length, as
 * {"software": {"packages_count": N, ...}}; the full document stays in
 * MariaDB (GET /api/v1/hosts/NAME/software). The agent reports "software" as
 * the package array; an object with a "packages" array is stripped the same
 * way, keeping its other members. Any other posture (no software section,
 * a software member of another type, packages not an array, not an object)
 * comes back as it is. Returns a new reference (NULL for NULL); posture is
 * not changed: members are shared, not copied. Thread-safe (no state). */
json_t *posture_strip_packages(json_t *posture);
/* The package array of a full posture (borrowed), NULL when it has none. */
json_t *posture_packages(const json_t *posture);
void host_evaluate(struct host *h, const struct status_thresholds *t, int64_t now);

/* Tokens: add or replace by name (copies *t). */
int registry_put_token(struct registry *r, const struct token *t);
struct token *registry_token(const struct registry *r, const char *name);
void registry_del_token(struct registry *r, const char *name);
struct token **registry_tokens_sorted(const struct registry *r, size_t *n);
/* Finds the token whose secret hashes to hash (hex). */
struct token *registry_token_by_secret(const struct registry *r, const char *secret);
/* SHA-256 hex of a token secret (65 bytes out). */
void token_hash(const char *secret, char out[65]);



/* Changes a host's name (the new name must be free). */
int registry_rename_host(struct registry *r, struct host *h, const char *name);

/* ---- "a host changed": the registry is the one writer of that news ----
 *
 * Every change of a host (a sync, an events message's last contact, a move,
 * a placement by a relocation rule, new thresholds, the database load)
 * ends in one call of registry_host_changed(), which evaluates the host's
 * status again when asked to and tells each observer once, in the order
 * they were added (main.c: the store's write-back, the fleet snapshot, the
 * NAC tokens, which send a CoA when a token gets worse). The registry
 * knows none of them: modules above it register in main.c. */
enum {
	/* evaluate the status first, from the posture and the thresholds of
	 * the host's group (the posture, the group or the thresholds changed);
	 * without it the caller has just evaluated it */
	HOST_REEVALUATE = 1u << 0,
	/* the database holds the host as it is (its row was just inserted or
	 * loaded): no write-back */
	HOST_STORED = 1u << 1,
};
#define REGISTRY_OBSERVERS_MAX 8
typedef void (*registry_observer_fn)(void *arg, struct host *h, unsigned what);
/* -1 when REGISTRY_OBSERVERS_MAX are registered already. */
int registry_observe(struct registry *r, registry_observer_fn fn, void *arg);
/* The thresholds that apply to a host (its group's: mgmt, registered by
 * main.c); without a provider, the defaults (status_defaults). */
typedef const struct status_thresholds *(*registry_thresholds_fn)(void *arg, const struct host *h);
void registry_set_thresholds(struct registry *r, registry_thresholds_fn fn, void *arg);
const struct status_thresholds *registry_thresholds(const struct registry *r, const struct host *h);
/* what: HOST_* or 0. NULL h is ignored. */
void registry_host_changed(struct registry *r, struct host *h, unsigned what);
#endif
