/* store_priv.h — what the store's files share (store.c: main-thread
 * batching, enrolment, tokens, administrators; batch.c: the write batch on
 * the DB thread; load.c: the start-up load and its merge into the registry;
 * query.c: queries for the API; sql.c: statement helpers). Not for other
 * modules: store.h is the store's whole public surface. */
#ifndef CUSTOS_STORE_PRIV_H
#define CUSTOS_STORE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <mysql.h>

#include "core/registry.h"
#include "store/store.h"

struct event;

#define FLUSH_INTERVAL_MS 20
#define REFUSED_LOG_MAX 10        /* refused rows logged one by one per batch */
#define PBKDF2_ITER 100000

/* One host row as it will be written (copied on the main thread). */
struct host_row {
	uint64_t id;
	int64_t last_seen, posture_time;
	char last_ip[64];
	int wake_port;
	int status;
	uint32_t reasons;
	char *posture;            /* JSON text, made on the DB thread */
	json_t *posture_json;     /* the host's full posture (taken from
	                             host.posture_full: only a new one is written,
	                             NULL keeps the stored one); postures are
	                             replaced, never edited, and jansson's
	                             reference counts are atomic */
	uint64_t group_id;
	int placed, policy_version, policy_applied;
	char policy_hash[65];
	char *policy_errors;      /* JSON text or NULL */
	char *local_settings;     /* JSON text or NULL */
	char *tags;               /* JSON text or NULL */
	char name[64];            /* for the log */
	char *refused;            /* MariaDB's reason when it refused the row */
};

struct event_row {
	uint64_t host_id;
	char uid[33];
	int64_t time, received;
	int severity;
	char kind[64 * 4 + 1];    /* VARCHAR(64) utf8mb4: 64 characters */
	char message[1024 * 4 + 1];
	char *data;               /* JSON text or NULL */
	/* kind task_result: the result it reports (task_id 0 otherwise) */
	uint64_t task_id;
	int task_run;
	long long task_exit;
	bool task_exit_null;      /* no exit code (running, or out of range: bounds.c) */
	char task_state[16];
	char *task_tail;
	int64_t task_started, task_ended;
	size_t task_row;          /* its row in the task results statement */
	char host[64];            /* the host's name, for the log */
	char *refused;            /* MariaDB's reason when it refused the row */
	char *task_refused;       /* ... when it refused the task result alone */
};

struct waiter {
	store_done_fn cb;
	void *arg;
};

struct batch {
	struct host_row *hosts;
	size_t nhosts, cap_hosts;
	struct event_row *events;
	size_t nevents, cap_events;
	struct waiter *waiters;
	size_t nwaiters, cap_waiters;
	size_t nrefused;          /* rows MariaDB refused and that were left out */
	size_t nstored;           /* host rows and events stored when some were refused */
};

struct admin_cache {
	char name[65];
	char pw_hash[65], salt[33];
	int iterations;
	unsigned char good[32];   /* SHA-256 of the last password that verified */
	bool has_good;
};

struct store {
	struct server *srv;
	struct store_hooks hooks; /* main.c's: threats_loaded, loaded */
	struct batch *cur;        /* accumulating */
	bool in_flight;           /* one batch committing at a time */
	struct host **dirty;      /* hosts waiting for the next batch */
	size_t ndirty, cap_dirty;
	size_t events_max, batch_max;
	uint64_t shed;
	uint64_t refused;         /* rows MariaDB refused, left out of stored batches */
	struct event *flush_ev;
	struct admin_cache *admins;
	size_t nadmins;
	bool loading;
};

/* ---- one-shot jobs (store.c, query.c) ---- */

struct job {
	struct store *st;
	store_done_fn cb;
	void *arg;
	struct host *host;       /* enrol */
	struct token tok;        /* token put */
	char name[65];           /* token del / token name for enrol */
	/* events query */
	char host_name[64];
	int64_t since;
	size_t limit;
	store_rows_fn rows_cb;
	json_t *rows;
	uint64_t host_id;        /* software query */
};
void job_done(void *arg, int rc, const char *err);

/* ---- batch.c: the write batch (DB thread) ---- */

int severity_code(const char *s);
const char *severity_name(int code);
void batch_free(struct batch *b);
/* The DB job of a batch: one transaction, refused rows left out. */
int batch_work(MYSQL *conn, void *arg, char *err, size_t errlen);

/* ---- sql.c: statement helpers (DB thread) ---- */

/* The one way a statement of the store gets its parameters: sql is
 * prepared, params (a JSON array, stolen; json_array() for none; NULL,
 * from a failed json_pack, is an error) bound in order
 * (integers and booleans as BIGINT, strings as text, null as NULL) and
 * executed. *out (when out is not NULL) gets the statement for its
 * results; the caller closes it. The array-bound statements of the write
 * batch (batch.c) bind whole columns instead. */
int sql_run(MYSQL *conn, const char *sql, json_t *params, const char *what, MYSQL_STMT **out,
    char *err, size_t errlen);
/* A JSON column of the current row (NULL when NULL or not JSON). */
json_t *fetch_json(MYSQL_STMT *st, unsigned int col, unsigned long len);
/* A string column into a fixed buffer, cut to fit. */
void copy_col(char *dst, size_t dstsz, const char *src, unsigned long len);

/* ---- load.c: the start-up load ---- */

void pbkdf2_hex(const char *password, const char *salt, int iter, char out[65]);

/* ---- store.c ---- */

/* Configured tokens (enroll.tokens) into the registry and the database. */
void store_apply_config_tokens(struct store *st);

#endif
