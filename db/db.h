/* db.h — the MariaDB connection thread of custosd.
 *
 * One DB thread owns one MYSQL connection (Connector/C is blocking; it never
 * runs on the main thread). The main thread submits jobs; each job's work
 * function runs on the DB thread with the connection, and its completion runs
 * back on the main thread (via the event_base given to db_start).
 *
 * Connection life cycle (DB thread): connect; on success apply pending
 * migrations from the migrations directory (files NNNN_name.sql in order,
 * recorded in table schema_migrations; a database whose newest recorded
 * migration is newer than the newest file is refused: the thread logs
 * "database schema is at version N but this custosd knows only up to M;
 * upgrade custosd or restore a matching backup" and db_state reports
 * DB_STATE_REFUSED); then reports DB_STATE_UP. On connection loss (job fails
 * with CR_SERVER_GONE_ERROR / CR_SERVER_LOST / CR_CONNECTION_ERROR, or ping
 * fails) reports DB_STATE_DOWN and reconnects with exponential backoff
 * (250 ms doubling up to backoff_max_ms), re-checking migrations each time.
 *
 * Jobs run strictly in submission order. A job with DB_JOB_RETRY is re-run
 * (after reconnecting) when it failed because the connection was lost, so it
 * must be idempotent; a job without it fails at once (completion with rc
 * DB_JOB_CONN_LOST) when the database is down. Wherever the job fails, the DB thread issues a
 * ROLLBACK before the next job.
 *
 * Thread rules: db_start, db_submit, db_stop, db_state, db_queue_depth,
 * db_shed_count are main-thread only. Work functions run on the DB thread and
 * must not touch main-thread data except through their own arg. */
#ifndef CUSTOS_DB_H
#define CUSTOS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <mysql.h>

struct event_base;
struct db;

struct db_config {
	const char *host;        /* "" or NULL with socket set = use socket */
	unsigned port;
	const char *socket;      /* unix socket path or "" */
	const char *user;
	const char *password;
	const char *database;
	const char *migrations_dir; /* directory of NNNN_name.sql files */
	size_t queue_max;        /* jobs waiting at most; db_submit fails beyond */
	int backoff_max_ms;      /* reconnect backoff ceiling */
	int connect_timeout_s;   /* MYSQL_OPT_CONNECT_TIMEOUT / READ / WRITE timeouts */
};

enum db_state { DB_STATE_CONNECTING, DB_STATE_UP, DB_STATE_DOWN, DB_STATE_REFUSED };

/* Runs on the DB thread. Return 0 on success, -1 on failure with err filled
 * (use db_error_is_connection() on mysql_errno(conn) to mark connection loss:
 * return DB_JOB_CONN_LOST instead of -1 so a DB_JOB_RETRY job is re-run). */
#define DB_JOB_CONN_LOST (-2)
typedef int (*db_work_fn)(MYSQL *conn, void *arg, char *err, size_t errlen);
/* Runs on the main thread after the work function finished (rc 0 / -1 /
 * DB_JOB_CONN_LOST for a non-retry job when the DB was down). err is "" on
 * success. Always called exactly once per accepted job, also at db_stop(). */
typedef void (*db_done_fn)(void *arg, int rc, const char *err);
/* Called on the main thread whenever the state changes. */
typedef void (*db_state_fn)(void *arg, enum db_state state, const char *detail);

#define DB_JOB_RETRY 0x1

struct db *db_start(const struct db_config *cfg, struct event_base *base,
    db_state_fn state_cb, void *state_arg, char *err, size_t errlen);
/* Returns 0 when queued; -1 when the queue is full (the job is not run and
 * done is NOT called; the shed counter is incremented). */
int db_submit(struct db *db, int flags, db_work_fn work, db_done_fn done, void *arg);
/* Finishes the queued jobs (waiting at most timeout_ms for the database),
 * calls remaining completions with rc -1, joins the thread, frees. */
void db_stop(struct db *db, int timeout_ms);

enum db_state db_state(const struct db *db);
size_t db_queue_depth(const struct db *db);
uint64_t db_shed_count(const struct db *db);
int db_schema_version(const struct db *db); /* newest applied migration, -1 unknown */

/* Helpers for work functions. */
bool db_error_is_connection(unsigned int mysql_err);
/* Runs one statement text without parameters (BEGIN/COMMIT/DDL); 0, -1 or
 * DB_JOB_CONN_LOST with err filled. */
int db_exec(MYSQL *conn, const char *sql, char *err, size_t errlen);
/* Fills err from a statement / connection error and returns -1 or
 * DB_JOB_CONN_LOST. */
int db_stmt_fail(MYSQL_STMT *st, const char *what, char *err, size_t errlen);
int db_conn_fail(MYSQL *conn, const char *what, char *err, size_t errlen);

#endif
