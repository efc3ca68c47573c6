/* store.h — what custosd writes to and reads from MariaDB.
 *
 * Writes are batched: host changes (coalesced per host: the newest state
 * wins) and agent events accumulate on the main thread and are committed by
 * one DB job at a time as multi-row statements (array binding) in one
 * transaction. An agent's events are acknowledged only from the completion
 * of the transaction that stored them. Batches survive a lost connection
 * (the DB thread re-runs them after reconnecting; the statements are
 * idempotent: events are keyed by (host, event id)).
 *
 * Main thread only. */
#ifndef CUSTOS_STORE_H
#define CUSTOS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct server;
struct host;
struct token;
struct store;

struct store *store_new(struct server *srv, size_t events_max, size_t batch_max);
void store_free(struct store *st);

/* A threat_found event of the last day, from the start-up load. */
#define STORE_THREATS_MAX 200000
struct store_threat {
	char uid[33];             /* event id */
	int64_t received;
};

/* What the store tells the modules above it; main.c fills it in (the
 * store knows neither the fleet nor the model). Every member may be NULL. */
struct store_hooks {
	/* the start-up load is in the registry: the day's threats (newest
	 * first, at most STORE_THREATS_MAX), for the 24 h count and the
	 * outbreak window; t is valid during the call */
	void (*threats_loaded)(void *arg, int64_t now, const struct store_threat *t, size_t n);
	/* the load is complete (tokens applied, snapshot told): the
	 * administration model loads next */
	void (*loaded)(void *arg);
	void *arg;
};
void store_set_hooks(struct store *st, const struct store_hooks *hooks);

/* The database came up: loads hosts and tokens on the first call, applies
 * the configured tokens, creates the first administrator when none exists. */
void store_db_up(struct store *st);

/* The host's record changed (posture, last contact, status): write it soon. */
void store_host_changed(struct store *st, struct host *h);
/* h leaves the registry: it is no longer waiting in the next batch. */
void store_host_forget(struct store *st, struct host *h);

/* Queues an agent's events (array of validated event objects) for commit.
 * cb(arg, 0) after the commit, cb(arg, -1) when it failed. Returns -1 at once
 * (cb not called) when the pending queue is full or the host is not stored
 * yet: the agent keeps the events and resends. */
typedef void (*store_done_fn)(void *arg, int rc, const char *err);
int store_events(struct store *st, struct host *h, json_t *events, store_done_fn cb, void *arg);

/* Enrolment: inserts h (not yet in the registry; h->id is set on success)
 * and counts one use of the token, in one transaction. */
int store_enroll(struct store *st, struct host *h, const char *token_name,
    store_done_fn cb, void *arg);

/* Tokens created / deleted through the API (and from configuration). */
int store_token_put(struct store *st, const struct token *t, store_done_fn cb, void *arg);
int store_token_del(struct store *st, const char *name, store_done_fn cb, void *arg);

/* Verifies an administrator's password (PBKDF2; successful checks cached). */
int store_admin_check(struct store *st, const char *user, const char *password);
/* The administrators' credentials for the snapshot (a malloc'd copy in
 * *out; returns the count), and seeding them from it when the database is
 * unavailable at start (only while none are loaded; the load replaces
 * them). */
struct snapshot_admin;
size_t store_admins_export(const struct store *st, struct snapshot_admin **out);
void store_admins_seed(struct store *st, const struct snapshot_admin *a, size_t n);

/* Newest events from the database: runs a query job, cb gets a JSON array
 * (owned by the store, valid during the call) or NULL on error. */
typedef void (*store_rows_fn)(void *arg, json_t *rows, const char *err);
int store_query_events(struct store *st, const char *host_name, int64_t since, size_t limit,
    store_rows_fn cb, void *arg);

/* A host's installed packages, kept only in the database (the memory's
 * posture has just software.packages_count): cb gets {"packages": [...],
 * "packages_count": N, "posture_time": T} ([] and 0 when the posture has no
 * package list), JSON null when the host's row is gone, or NULL rows and err
 * when the query failed (database down). A posture not written yet is
 * answered from memory, with cb run before the call returns; otherwise a
 * query job reads the row. Returns -1 (cb not called) when no job can be
 * queued or the host is not stored yet. */
int store_query_software(struct store *st, const struct host *h, store_rows_fn cb, void *arg);

/* Applies enroll.tokens of a reloaded configuration. */
void store_reload_config(struct store *st);

/* Writes everything pending now (shutdown). */
void store_flush(struct store *st);

size_t store_pending_events(const struct store *st);
size_t store_pending_hosts(const struct store *st);
uint64_t store_shed_count(const struct store *st);
/* Rows MariaDB refused (a value it would not store): left out of their batch,
 * logged with the host and the error; the rest of the batch was stored. */
uint64_t store_refused_count(const struct store *st);
/* A write is with the database: what changes meanwhile goes into the next. */
bool store_writing(const struct store *st);

#endif
