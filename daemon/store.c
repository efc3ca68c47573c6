/* store.c — see store.h. SQL lives here and only here (with db/migrations). */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <mysqld_error.h>

#include "bounds.h"
#include "conf.h"
#include "db.h"
#include "fleet.h"
#include "hostchange.h"
#include "log.h"
#include "mgmt.h"
#include "naming.h"
#include "registry.h"
#include "server.h"
#include "snapshot.h"
#include "util.h"

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

static int
severity_code(const char *s)
{
	static const char *names[] = { "critical", "error", "warning", "info" };
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return 3;
}

static const char *
severity_name(int code)
{
	static const char *names[] = { "critical", "error", "warning", "info" };
	return code >= 0 && code < 4 ? names[code] : "info";
}

static void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->nhosts; i++) {
		free(b->hosts[i].posture);
		json_decref(b->hosts[i].posture_json);
		free(b->hosts[i].policy_errors);
		free(b->hosts[i].local_settings);
		free(b->hosts[i].tags);
		free(b->hosts[i].refused);
	}
	for (size_t i = 0; i < b->nevents; i++) {
		free(b->events[i].data);
		free(b->events[i].task_tail);
		free(b->events[i].refused);
		free(b->events[i].task_refused);
	}
	free(b->hosts);
	free(b->events);
	free(b->waiters);
	free(b);
}

static void store_schedule_flush(struct store *st);

/* ---- the batch job (DB thread) ---- */

/* Column-wise array binding: one array per column, one element per row. */
struct colbind {
	MYSQL_BIND *b;
	size_t n;
	bool oom;
};

static void *
col_alloc(struct colbind *cb, size_t sz)
{
	void *p = calloc(cb->n ? cb->n : 1, sz);
	if (p == NULL)
		cb->oom = true;
	return p;
}

static void
col_free(MYSQL_BIND *b, size_t ncols)
{
	for (size_t i = 0; i < ncols; i++) {
		free(b[i].buffer);
		free(b[i].length);
		free(b[i].u.indicator);
	}
}

static void
col_i64(struct colbind *cb, size_t col, bool is_unsigned)
{
	cb->b[col].buffer_type = MYSQL_TYPE_LONGLONG;
	cb->b[col].buffer = col_alloc(cb, sizeof(long long));
	cb->b[col].is_unsigned = is_unsigned;
}

/* Strings: buffer is an array of char pointers (owned by the rows), with a
 * length array and a NULL indicator array. */
static void
col_str(struct colbind *cb, size_t col)
{
	cb->b[col].buffer_type = MYSQL_TYPE_STRING;
	cb->b[col].buffer = col_alloc(cb, sizeof(char *));
	cb->b[col].length = col_alloc(cb, sizeof(unsigned long));
	cb->b[col].u.indicator = col_alloc(cb, 1);
}

static void
set_i64(MYSQL_BIND *b, size_t row, long long v)
{
	((long long *)b->buffer)[row] = v;
}

static void
set_str(MYSQL_BIND *b, size_t row, const char *v)
{
	((const char **)b->buffer)[row] = v ? v : "";
	b->length[row] = v ? strlen(v) : 0;
	b->u.indicator[row] = v ? STMT_INDICATOR_NONE : STMT_INDICATOR_NULL;
}

/* A write statement prepared once per batch, with its column arrays bound
 * for all the batch's rows; wstmt_exec() runs any range of them. */
#define WCOLS_MAX 16
struct wstmt {
	const char *what;
	const char *sql;
	MYSQL_STMT *st;
	MYSQL_BIND bind[WCOLS_MAX];
	size_t ncols, nrows;
	size_t limit;            /* bytes an execution may send (max_allowed_packet) */
};

/* Bytes row i adds to an execution, generously: a length or an integer and
 * an indicator per column, plus the strings. */
static size_t
wstmt_row_bytes(const struct wstmt *w, size_t i)
{
	size_t n = 16;
	for (size_t c = 0; c < w->ncols; c++)
		n += 10 + (w->bind[c].buffer_type == MYSQL_TYPE_STRING ? w->bind[c].length[i] : 0);
	return n;
}

#define PACKET_MARGIN 4096        /* an execution's header and column types */

/* A row that alone exceeds max_allowed_packet: MariaDB would drop the
 * connection, and the batch would be retried for ever. */
static bool
wstmt_too_big(const struct wstmt *w, size_t i)
{
	return wstmt_row_bytes(w, i) + PACKET_MARGIN > w->limit;
}

static void
wstmt_free(struct wstmt *w)
{
	if (w->st)
		mysql_stmt_close(w->st);
	col_free(w->bind, w->ncols);
}

static int
wstmt_prepare(MYSQL *conn, struct wstmt *w, char *err, size_t errlen)
{
	if (w->nrows == 0)
		return 0;
	if ((w->st = mysql_stmt_init(conn)) == NULL)
		return db_conn_fail(conn, w->what, err, errlen);
	if (mysql_stmt_prepare(w->st, w->sql, strlen(w->sql)))
		return db_stmt_fail(w->st, w->what, err, errlen);
	return 0;
}

/* Rows [lo, lo + n) in one execution (array binding). *code: MariaDB's error. */
static int
wstmt_exec(struct wstmt *w, size_t lo, size_t n, unsigned int *code, char *err, size_t errlen)
{
	if (n == 0)
		return 0;
	MYSQL_BIND view[WCOLS_MAX];
	memcpy(view, w->bind, w->ncols * sizeof(view[0]));
	for (size_t c = 0; c < w->ncols; c++) {
		size_t el = view[c].buffer_type == MYSQL_TYPE_STRING ? sizeof(char *) : sizeof(long long);
		view[c].buffer = (char *)view[c].buffer + lo * el;
		if (view[c].length)
			view[c].length += lo;
		if (view[c].u.indicator)
			view[c].u.indicator += lo;
	}
	unsigned int arr = (unsigned int)n;
	if (mysql_stmt_attr_set(w->st, STMT_ATTR_ARRAY_SIZE, &arr) || mysql_stmt_bind_param(w->st, view) ||
	    mysql_stmt_execute(w->st)) {
		*code = mysql_stmt_errno(w->st);
		return db_stmt_fail(w->st, w->what, err, errlen);
	}
	return 0;
}

/* Every row in as few executions as fit max_allowed_packet; a row too big
 * alone (marked refused beforehand) is skipped. */
static int
wstmt_exec_all(struct wstmt *w, unsigned int *code, char *err, size_t errlen)
{
	size_t lo = 0, sum = PACKET_MARGIN;
	int rc;
	for (size_t i = 0; i < w->nrows; i++) {
		size_t n = wstmt_row_bytes(w, i);
		bool big = n + PACKET_MARGIN > w->limit;
		if (big || sum + n > w->limit) {
			if ((rc = wstmt_exec(w, lo, i - lo, code, err, errlen)) != 0)
				return rc;
			lo = big ? i + 1 : i;
			sum = PACKET_MARGIN + (big ? 0 : n);
		} else {
			sum += n;
		}
	}
	return wstmt_exec(w, lo, w->nrows - lo, code, err, errlen);
}

/* MariaDB's max_allowed_packet, read once per connection (DB thread only). */
static int
packet_limit(MYSQL *conn, size_t *out, char *err, size_t errlen)
{
	static unsigned long conn_id;
	static size_t cached;
	unsigned long id = mysql_thread_id(conn);
	if (cached == 0 || id != conn_id) {
		if (mysql_query(conn, "SELECT @@max_allowed_packet"))
			return db_conn_fail(conn, "max_allowed_packet", err, errlen);
		MYSQL_RES *res = mysql_store_result(conn);
		if (res == NULL)
			return db_conn_fail(conn, "max_allowed_packet", err, errlen);
		MYSQL_ROW row = mysql_fetch_row(res);
		unsigned long long v = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
		mysql_free_result(res);
		cached = v >= 1024 ? (size_t)v : 1024;
		conn_id = id;
	}
	*out = cached;
	return 0;
}

static int
bind_hosts(struct wstmt *w, struct batch *b)
{
	enum { C_SEEN, C_IP, C_WAKE, C_STATUS, C_REASONS, C_POSTURE, C_PTIME, C_GROUP, C_PLACED,
	    C_PVER, C_PHASH, C_PAPPLIED, C_PERR, C_LOCAL, C_TAGS, C_ID, NCOLS };
	w->what = "update hosts";
	w->sql =
	    "UPDATE hosts SET last_seen=?, last_ip=?, wake_port=?, status=?, reasons=?,"
	    " posture=IFNULL(?, posture), posture_time=GREATEST(posture_time, ?), group_id=?, placed=?,"
	    " policy_version=?, policy_hash=?, policy_applied_version=?, policy_errors=?,"
	    " local_settings=?, tags=IFNULL(?, tags) WHERE id=?";
	w->ncols = NCOLS;
	w->nrows = b->nhosts;
	if (b->nhosts == 0)
		return 0;
	MYSQL_BIND *bind = w->bind;
	struct colbind cb = { bind, b->nhosts, false };
	col_i64(&cb, C_SEEN, false);
	col_str(&cb, C_IP);
	col_i64(&cb, C_WAKE, false);
	col_i64(&cb, C_STATUS, false);
	col_i64(&cb, C_REASONS, true);
	col_str(&cb, C_POSTURE);
	col_i64(&cb, C_PTIME, false);
	col_i64(&cb, C_GROUP, true);
	col_i64(&cb, C_PLACED, false);
	col_i64(&cb, C_PVER, false);
	col_str(&cb, C_PHASH);
	col_i64(&cb, C_PAPPLIED, false);
	col_str(&cb, C_PERR);
	col_str(&cb, C_LOCAL);
	col_str(&cb, C_TAGS);
	col_i64(&cb, C_ID, true);
	if (cb.oom)
		return -1;
	for (size_t i = 0; i < b->nhosts; i++) {
		struct host_row *h = &b->hosts[i];
		/* serialised here, off the main thread (a retried batch reuses it) */
		if (h->posture_json && h->posture == NULL)
			h->posture = json_dumps(h->posture_json, JSON_COMPACT);
		set_i64(&bind[C_SEEN], i, h->last_seen);
		set_str(&bind[C_IP], i, h->last_ip);
		set_i64(&bind[C_WAKE], i, h->wake_port);
		set_i64(&bind[C_STATUS], i, h->status);
		set_i64(&bind[C_REASONS], i, h->reasons);
		set_str(&bind[C_POSTURE], i, h->posture);
		set_i64(&bind[C_PTIME], i, h->posture_time);
		set_i64(&bind[C_GROUP], i, (long long)h->group_id);
		set_i64(&bind[C_PLACED], i, h->placed);
		set_i64(&bind[C_PVER], i, h->policy_version);
		set_str(&bind[C_PHASH], i, h->policy_hash);
		set_i64(&bind[C_PAPPLIED], i, h->policy_applied);
		set_str(&bind[C_PERR], i, h->policy_errors);
		set_str(&bind[C_LOCAL], i, h->local_settings);
		set_str(&bind[C_TAGS], i, h->tags);
		set_i64(&bind[C_ID], i, (long long)h->id);
	}
	return 0;
}

static int
bind_events(struct wstmt *w, struct batch *b)
{
	enum { C_HOST, C_UID, C_TIME, C_RECV, C_SEV, C_KIND, C_MSG, C_DATA, NCOLS };
	w->what = "insert events";
	w->sql =
	    "INSERT IGNORE INTO events (host_id, event_uid, time, received, severity, kind, message, data)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
	w->ncols = NCOLS;
	w->nrows = b->nevents;
	if (b->nevents == 0)
		return 0;
	MYSQL_BIND *bind = w->bind;
	struct colbind cb = { bind, b->nevents, false };
	col_i64(&cb, C_HOST, true);
	col_str(&cb, C_UID);
	col_i64(&cb, C_TIME, false);
	col_i64(&cb, C_RECV, false);
	col_i64(&cb, C_SEV, false);
	col_str(&cb, C_KIND);
	col_str(&cb, C_MSG);
	col_str(&cb, C_DATA);
	if (cb.oom)
		return -1;
	for (size_t i = 0; i < b->nevents; i++) {
		struct event_row *e = &b->events[i];
		set_i64(&bind[C_HOST], i, (long long)e->host_id);
		set_str(&bind[C_UID], i, e->uid);
		set_i64(&bind[C_TIME], i, e->time);
		set_i64(&bind[C_RECV], i, e->received);
		set_i64(&bind[C_SEV], i, e->severity);
		set_str(&bind[C_KIND], i, e->kind);
		set_str(&bind[C_MSG], i, e->message);
		set_str(&bind[C_DATA], i, e->data);
	}
	return 0;
}

/* Task results travel as events of kind task_result; they are also kept per
 * (task, host, run) with the newest state. A final state is never replaced
 * by an earlier "running" or "scheduled" that arrives late. For "scheduled",
 * started is the planned start. Sets each event's task_row. */
static int
bind_task_results(struct wstmt *w, struct batch *b)
{
	enum { C_TASK, C_HOST, C_RUN, C_STATE, C_EXIT, C_TAIL, C_START, C_END, C_UPD, NCOLS };
	/* NEWER: the stored state may move on to the reported one (scheduled ->
	 * running -> final; never back). Assignments see the old state: it is
	 * set last. */
#define NEWER "(state = 'scheduled' OR (state = 'running' AND VALUES(state) <> 'scheduled'))"
	w->what = "store task results";
	w->sql =
	    "INSERT INTO task_results (task_id, host_id, run, state, exit_code, output_tail, started,"
	    " ended, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
	    " exit_code = IF(" NEWER ", VALUES(exit_code), exit_code),"
	    " output_tail = IF(" NEWER ", VALUES(output_tail), output_tail),"
	    " started = IF(" NEWER " AND VALUES(started) > 0, VALUES(started), started),"
	    " ended = IF(" NEWER ", VALUES(ended), ended),"
	    " updated_at = VALUES(updated_at),"
	    " state = IF(" NEWER ", VALUES(state), state)";
#undef NEWER
	size_t n = 0;
	for (size_t i = 0; i < b->nevents; i++)
		n += b->events[i].task_id != 0;
	w->ncols = NCOLS;
	w->nrows = n;
	if (n == 0)
		return 0;
	MYSQL_BIND *bind = w->bind;
	struct colbind cb = { bind, n, false };
	col_i64(&cb, C_TASK, true);
	col_i64(&cb, C_HOST, true);
	col_i64(&cb, C_RUN, false);
	col_str(&cb, C_STATE);
	col_i64(&cb, C_EXIT, false);
	bind[C_EXIT].u.indicator = col_alloc(&cb, 1);
	col_str(&cb, C_TAIL);
	col_i64(&cb, C_START, false);
	col_i64(&cb, C_END, false);
	col_i64(&cb, C_UPD, false);
	if (cb.oom)
		return -1;
	size_t r = 0;
	for (size_t i = 0; i < b->nevents; i++) {
		struct event_row *e = &b->events[i];
		if (e->task_id == 0)
			continue;
		e->task_row = r;
		set_i64(&bind[C_TASK], r, (long long)e->task_id);
		set_i64(&bind[C_HOST], r, (long long)e->host_id);
		set_i64(&bind[C_RUN], r, e->task_run);
		set_str(&bind[C_STATE], r, e->task_state);
		set_i64(&bind[C_EXIT], r, e->task_exit);
		bind[C_EXIT].u.indicator[r] = e->task_exit_null ? STMT_INDICATOR_NULL : STMT_INDICATOR_NONE;
		set_str(&bind[C_TAIL], r, e->task_tail);
		set_i64(&bind[C_START], r, e->task_started);
		set_i64(&bind[C_END], r, e->task_ended);
		set_i64(&bind[C_UPD], r, e->received);
		r++;
	}
	return 0;
}

/* MariaDB refused a row for what it holds (too long, wrong value, a
 * constraint): the same row will be refused again, the others need not be.
 * Anything else (a lost connection, a lock wait, a full disk) fails the
 * whole batch as before. */
static bool
row_refused(unsigned int code)
{
	switch (code) {
	case ER_DATA_TOO_LONG:               /* 1406 */
	case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: /* 1366 */
	case ER_TRUNCATED_WRONG_VALUE:       /* 1292 */
	case ER_WARN_DATA_OUT_OF_RANGE:      /* 1264 */
	case WARN_DATA_TRUNCATED:            /* 1265 */
	case ER_BAD_NULL_ERROR:              /* 1048 */
	case ER_NO_REFERENCED_ROW:           /* 1216 */
	case ER_NO_REFERENCED_ROW_2:         /* 1452 */
	case ER_DUP_ENTRY:                   /* 1062 */
	case ER_SIGNAL_EXCEPTION:            /* 1644: a trigger's SIGNAL */
	case ER_CONSTRAINT_FAILED:           /* 4025: CHECK */
	case ER_TOO_BIG_ROWSIZE:             /* 1118 */
		return true;
	default:
		return false;
	}
}

enum { ROW_STORED = 0, ROW_REFUSED_FIRST = 1, ROW_REFUSED_SECOND = 2 };

/* One row (one statement's row, and optionally a second statement's row)
 * after SAVEPOINT row. ROW_STORED; ROW_REFUSED_FIRST / _SECOND when MariaDB
 * refused that statement's row (rolled back to the savepoint, why filled);
 * otherwise the job's error (-1 / DB_JOB_CONN_LOST, err filled). */
static int
row_store(MYSQL *conn, struct wstmt *a, size_t ia, struct wstmt *t, size_t it, char *why, size_t whylen,
    char *err, size_t errlen)
{
	unsigned int code = 0;
	int rc, which = ROW_REFUSED_FIRST;
	if ((rc = db_exec(conn, "SAVEPOINT row", err, errlen)) != 0)
		return rc;
	rc = wstmt_exec(a, ia, 1, &code, why, whylen);
	if (rc == 0 && t != NULL) {
		which = ROW_REFUSED_SECOND;
		rc = wstmt_exec(t, it, 1, &code, why, whylen);
	}
	if (rc == 0)
		return ROW_STORED;
	if (rc == DB_JOB_CONN_LOST || !row_refused(code)) {
		str_copy(err, why, errlen);
		return rc < 0 ? rc : -1;
	}
	if ((rc = db_exec(conn, "ROLLBACK TO SAVEPOINT row", err, errlen)) != 0)
		return rc;
	return which;
}

static void
row_mark(struct batch *b, char **mark, const char *why, bool *first, char *first_why, size_t len)
{
	free(*mark);
	*mark = strdup(why);
	b->nrefused++;
	if (*first) {
		str_copy(first_why, why, len);
		*first = false;
	}
}

/* MariaDB refused a row of the batch: in one new transaction, every row is
 * stored on its own after a savepoint; a refused row is rolled back to it and
 * left out (logged by batch_done); an event whose task result is refused is
 * stored without it. When every row of a batch of several is refused, the
 * cause is likely not in the rows (a trigger, a charset, a table change):
 * the batch fails as a whole and the agents send their events again. */
static int
batch_rows(MYSQL *conn, struct batch *b, struct wstmt *w, char *err, size_t errlen)
{
	char why[512], first_why[512] = "";
	bool first = true;
	size_t stored = 0, events_stored = 0;
	int rc;
	if ((rc = db_exec(conn, "ROLLBACK", err, errlen)) != 0 || (rc = db_exec(conn, "BEGIN", err, errlen)) != 0)
		return rc;
	for (size_t i = 0; i < b->nhosts; i++) {
		if (b->hosts[i].refused != NULL)
			continue; /* too big to send */
		rc = row_store(conn, &w[0], i, NULL, 0, why, sizeof(why), err, errlen);
		if (rc < 0)
			return rc;
		if (rc == ROW_STORED)
			stored++;
		else
			row_mark(b, &b->hosts[i].refused, why, &first, first_why, sizeof(first_why));
	}
	for (size_t i = 0; i < b->nevents; i++) {
		struct event_row *e = &b->events[i];
		struct wstmt *t = e->task_id != 0 ? &w[2] : NULL;
		if (e->refused != NULL)
			continue; /* too big to send */
		rc = row_store(conn, &w[1], i, t, e->task_row, why, sizeof(why), err, errlen);
		if (rc == ROW_REFUSED_SECOND) {
			/* the task result: the event is stored without it */
			row_mark(b, &e->task_refused, why, &first, first_why, sizeof(first_why));
			rc = row_store(conn, &w[1], i, NULL, 0, why, sizeof(why), err, errlen);
		}
		if (rc < 0)
			return rc;
		if (rc == ROW_STORED) {
			stored++;
			events_stored++;
			continue;
		}
		if (e->task_refused != NULL) {
			/* the event too: it is left out with its task result */
			free(e->task_refused);
			e->task_refused = NULL;
			b->nrefused--;
		}
		row_mark(b, &e->refused, why, &first, first_why, sizeof(first_why));
	}
	if ((stored == 0 && b->nhosts + b->nevents > 1) || (events_stored == 0 && b->nevents > 1)) {
		str_fmt(err, errlen, "MariaDB refused every %s of the write, one by one (%s); the agents will "
		    "send the events again", stored == 0 ? "row" : "event", first_why);
		return -1; /* the DB thread rolls back */
	}
	b->nstored = stored;
	return db_exec(conn, "COMMIT", err, errlen);
}

/* Every statement is prepared once per run of the job. The whole batch is
 * written in one transaction; if MariaDB refuses a row, batch_rows stores
 * the rows one by one. Rows stored before a lost connection are rolled back
 * or, after COMMIT, stored again when the job is retried: every statement is
 * idempotent (UPDATE, INSERT IGNORE, an upsert of the newest state). */
static int
batch_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct batch *b = arg;
	/* a retried batch starts over */
	b->nrefused = b->nstored = 0;
	for (size_t i = 0; i < b->nhosts; i++) {
		free(b->hosts[i].refused);
		b->hosts[i].refused = NULL;
	}
	for (size_t i = 0; i < b->nevents; i++) {
		free(b->events[i].refused);
		free(b->events[i].task_refused);
		b->events[i].refused = b->events[i].task_refused = NULL;
	}
	struct wstmt w[3];
	memset(w, 0, sizeof(w));
	unsigned int code = 0;
	int rc = -1;
	if (bind_hosts(&w[0], b) < 0 || bind_events(&w[1], b) < 0 || bind_task_results(&w[2], b) < 0) {
		str_fmt(err, errlen, "out of memory");
		goto out;
	}
	size_t limit = 0;
	if ((rc = packet_limit(conn, &limit, err, errlen)) != 0)
		goto out;
	for (size_t i = 0; i < 3; i++) {
		w[i].limit = limit;
		if ((rc = wstmt_prepare(conn, &w[i], err, errlen)) != 0)
			goto out;
	}
	/* a host row or an event larger than a packet is left out (task
	 * results are small: output_tail is cut on arrival) */
	char why[160];
	for (size_t i = 0; i < b->nhosts; i++)
		if (wstmt_too_big(&w[0], i)) {
			str_fmt(why, sizeof(why), "the row, about %zu bytes, exceeds max_allowed_packet (%zu)",
			    wstmt_row_bytes(&w[0], i), limit);
			b->hosts[i].refused = strdup(why);
			b->nrefused++;
		}
	for (size_t i = 0; i < b->nevents; i++)
		if (wstmt_too_big(&w[1], i)) {
			str_fmt(why, sizeof(why), "the row, about %zu bytes, exceeds max_allowed_packet (%zu)",
			    wstmt_row_bytes(&w[1], i), limit);
			b->events[i].refused = strdup(why);
			b->nrefused++;
		}
	if ((rc = db_exec(conn, "BEGIN", err, errlen)) != 0)
		goto out;
	for (size_t i = 0; i < 3 && rc == 0; i++)
		rc = wstmt_exec_all(&w[i], &code, err, errlen);
	if (rc == 0) {
		b->nstored = b->nhosts + b->nevents - b->nrefused;
		rc = db_exec(conn, "COMMIT", err, errlen);
	} else if (rc != DB_JOB_CONN_LOST && row_refused(code))
		rc = batch_rows(conn, b, w, err, errlen);
out:
	for (size_t i = 0; i < 3; i++)
		wstmt_free(&w[i]);
	return rc; /* on failure the DB thread rolls back */
}

/* ---- batching (main thread) ---- */

static struct batch *
batch_current(struct store *st)
{
	if (st->cur == NULL)
		st->cur = calloc(1, sizeof(*st->cur));
	return st->cur;
}

static struct store *done_store; /* the store whose batch is in flight */

/* Rows MariaDB refused were left out of a batch that was otherwise stored. */
static void
batch_log_refused(struct store *st, const struct batch *b)
{
	size_t logged = 0;
	st->refused += b->nrefused;
	for (size_t i = 0; i < b->nhosts && logged < REFUSED_LOG_MAX; i++) {
		const struct host_row *h = &b->hosts[i];
		if (h->refused == NULL)
			continue;
		log_warnx("store", "host %s: MariaDB refused its host row (%s); it was left out, the "
		    "%zu other row(s) of the write were stored", h->name, h->refused, b->nstored);
		logged++;
	}
	for (size_t i = 0; i < b->nevents && logged < REFUSED_LOG_MAX; i++) {
		const struct event_row *e = &b->events[i];
		if (e->task_refused != NULL) {
			log_warnx("store", "host %s: MariaDB refused the task result of event %s (task %llu run %d) "
			    "(%s); the event was stored without it", e->host, e->uid,
			    (unsigned long long)e->task_id, e->task_run, e->task_refused);
			logged++;
		}
		if (e->refused == NULL || logged >= REFUSED_LOG_MAX)
			continue;
		log_warnx("store", "host %s: MariaDB refused event %s (kind %s) (%s); it was dropped "
		    "(acknowledged, not stored), the %zu other row(s) of the write were stored", e->host,
		    e->uid, e->kind, e->refused, b->nstored);
		logged++;
	}
	if (b->nrefused > logged)
		log_warnx("store", "%zu more row(s) of the same write were refused and left out",
		    b->nrefused - logged);
}

static void
batch_done(void *arg, int rc, const char *err)
{
	struct batch *b = arg;
	struct store *st = done_store;
	if (rc != 0)
		log_warnx("store", "write of %zu host change(s) and %zu event(s) failed: %s",
		    b->nhosts, b->nevents, err);
	else if (b->nrefused > 0)
		batch_log_refused(st, b);
	for (size_t i = 0; i < b->nwaiters; i++)
		b->waiters[i].cb(b->waiters[i].arg, rc == 0 ? 0 : -1, err);
	batch_free(b);
	st->in_flight = false;
	if (st->ndirty > 0 || (st->cur && st->cur->nevents > 0))
		store_schedule_flush(st);
}

static void
host_row_fill(struct host_row *r, struct host *h)
{
	r->id = h->id;
	r->last_seen = h->last_seen;
	r->posture_time = h->posture_time;
	str_copy(r->last_ip, h->last_ip, sizeof(r->last_ip));
	r->wake_port = h->wake_port;
	r->status = (int)h->st.status;
	r->reasons = h->st.reasons;
	r->posture = NULL;
	/* the memory's posture lacks the package list: only a new full one is
	 * written, and the row is its last holder (a failed write loses it until
	 * the agent's next sync, which always brings the posture) */
	r->posture_json = h->posture_full;
	h->posture_full = NULL;
	r->group_id = h->group_id;
	r->placed = h->placed;
	r->policy_version = h->policy_version;
	r->policy_applied = h->policy_applied;
	str_copy(r->policy_hash, h->policy_hash, sizeof(r->policy_hash));
	r->policy_errors = h->policy_errors ? json_dumps(h->policy_errors, JSON_COMPACT) : NULL;
	r->local_settings = h->local_settings ? json_dumps(h->local_settings, JSON_COMPACT) : NULL;
	r->tags = h->tags ? json_dumps(h->tags, JSON_COMPACT) : NULL;
	str_copy(r->name, h->name, sizeof(r->name));
	r->refused = NULL;
}

static void
store_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	store_flush(arg);
}

void
store_flush(struct store *st)
{
	if (st->in_flight || st->srv->db == NULL)
		return;
	if (st->ndirty == 0 && (st->cur == NULL || st->cur->nevents == 0))
		return;
	struct batch *b = batch_current(st);
	if (b == NULL)
		return;
	/* at most batch_max host rows per transaction: a huge UPDATE can exceed
	 * the server's packet limit; the rest waits for the next flush */
	size_t take = st->ndirty < st->batch_max ? st->ndirty : st->batch_max;
	if (array_grow((void **)&b->hosts, &b->cap_hosts, take, sizeof(*b->hosts)) < 0)
		return;
	for (size_t i = 0; i < take; i++) {
		struct host *h = st->dirty[i];
		h->dirty = false;
		if (h->id == 0)
			continue;
		host_row_fill(&b->hosts[b->nhosts++], h);
	}
	if (st->ndirty > take)
		memmove(st->dirty, st->dirty + take, (st->ndirty - take) * sizeof(*st->dirty));
	st->ndirty -= take;
	st->cur = NULL;
	st->in_flight = true;
	done_store = st;
	if (db_submit(st->srv->db, DB_JOB_RETRY, batch_work, batch_done, b) < 0) {
		st->in_flight = false;
		st->shed += b->nhosts;
		log_warnx("store", "database queue full: %zu host change(s) shed, %zu event(s) refused",
		    b->nhosts, b->nevents);
		for (size_t i = 0; i < b->nwaiters; i++)
			b->waiters[i].cb(b->waiters[i].arg, -1, "database queue full");
		batch_free(b);
	}
}

static void
store_schedule_flush(struct store *st)
{
	if (st->flush_ev && !evtimer_pending(st->flush_ev, NULL)) {
		struct timeval tv = { 0, FLUSH_INTERVAL_MS * 1000 };
		evtimer_add(st->flush_ev, &tv);
	}
}

void
store_host_changed(struct store *st, struct host *h)
{
	snapshot_changed(st->srv);
	if (h->dirty)
		return; /* coalesced: the batch copies the newest state */
	if (array_grow((void **)&st->dirty, &st->cap_dirty, st->ndirty + 1, sizeof(*st->dirty)) < 0) {
		st->shed++;
		return;
	}
	h->dirty = true;
	st->dirty[st->ndirty++] = h;
	store_schedule_flush(st);
}

void
store_host_forget(struct store *st, struct host *h)
{
	if (!h->dirty)
		return;
	for (size_t i = 0; i < st->ndirty; i++) {
		if (st->dirty[i] != h)
			continue;
		memmove(st->dirty + i, st->dirty + i + 1, (st->ndirty - i - 1) * sizeof(*st->dirty));
		st->ndirty--;
		break;
	}
	h->dirty = false;
}

static void
task_row_fill(struct event_row *r, const json_t *data)
{
	static const char *states[] = { "scheduled", "running", "succeeded", "failed", "cancelled" };
	const char *state = json_string_value(json_object_get(data, "state"));
	json_int_t id = json_integer_value(json_object_get(data, "task_id"));
	bool known = false;
	for (size_t i = 0; state && i < ARRAY_LEN(states); i++)
		known = known || strcmp(state, states[i]) == 0;
	if (id <= 0 || !known)
		return; /* kept as an event only */
	r->task_id = (uint64_t)id;
	/* run and exit_code are within INT on arrival (bounds.c) */
	r->task_run = (int)json_integer_value(json_object_get(data, "run"));
	json_t *code = json_object_get(data, "exit_code");
	r->task_exit = json_integer_value(code);
	r->task_exit_null = !json_is_integer(code);
	str_copy(r->task_state, state, sizeof(r->task_state));
	/* bounded on arrival (bounds.c); cut at a character boundary all the same */
	const char *tail = json_string_value(json_object_get(data, "output_tail"));
	r->task_tail = tail ? strndup(tail, bounds_utf8_cut(tail, strlen(tail), 4096)) : NULL;
	r->task_started = json_integer_value(json_object_get(data, "started"));
	r->task_ended = json_integer_value(json_object_get(data, "ended"));
}

int
store_events(struct store *st, struct host *h, json_t *events, store_done_fn cb, void *arg)
{
	size_t n = json_array_size(events);
	struct batch *b = batch_current(st);
	size_t pending = b ? b->nevents : 0;
	if (b == NULL || h->id == 0 || pending + n > st->events_max) {
		st->shed += n;
		return -1;
	}
	if (array_grow((void **)&b->events, &b->cap_events, b->nevents + n, sizeof(*b->events)) < 0 ||
	    array_grow((void **)&b->waiters, &b->cap_waiters, b->nwaiters + 1, sizeof(*b->waiters)) < 0)
		return -1;
	int64_t now = now_s();
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		struct event_row *r = &b->events[b->nevents++];
		memset(r, 0, sizeof(*r));
		r->host_id = h->id;
		str_copy(r->host, h->name, sizeof(r->host));
		str_copy(r->uid, json_string_value(json_object_get(ev, "id")), sizeof(r->uid));
		r->time = json_integer_value(json_object_get(ev, "time"));
		r->received = now;
		r->severity = severity_code(json_string_value(json_object_get(ev, "severity")));
		str_copy(r->kind, json_string_value(json_object_get(ev, "kind")), sizeof(r->kind));
		str_copy(r->message, json_string_value(json_object_get(ev, "message")), sizeof(r->message));
		json_t *data = json_object_get(ev, "data");
		r->data = data ? json_dumps(data, JSON_COMPACT) : NULL;
		if (strcmp(r->kind, "task_result") == 0)
			task_row_fill(r, data);
	}
	b->waiters[b->nwaiters++] = (struct waiter){ cb, arg };
	if (b->nevents >= st->batch_max)
		store_flush(st);
	else
		store_schedule_flush(st);
	return 0;
}

/* ---- generic one-shot jobs ---- */

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

static void
job_done(void *arg, int rc, const char *err)
{
	struct job *j = arg;
	if (j->rows_cb)
		j->rows_cb(j->arg, rc == 0 ? j->rows : NULL, err);
	else if (j->cb)
		j->cb(j->arg, rc == 0 ? 0 : -1, err);
	json_decref(j->rows);
	free(j);
}

static int
stmt_run(MYSQL *conn, const char *sql, MYSQL_BIND *bind, const char *what, MYSQL_STMT **out,
    char *err, size_t errlen)
{
	MYSQL_STMT *st = mysql_stmt_init(conn);
	if (st == NULL)
		return db_conn_fail(conn, what, err, errlen);
	if (mysql_stmt_prepare(st, sql, strlen(sql)) || (bind && mysql_stmt_bind_param(st, bind)) ||
	    mysql_stmt_execute(st)) {
		int rc = db_stmt_fail(st, what, err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	if (out)
		*out = st;
	else
		mysql_stmt_close(st);
	return 0;
}

#define BIND_STR(b, s) do { (b).buffer_type = MYSQL_TYPE_STRING; (b).buffer = (char *)(s); \
	(b).buffer_length = (unsigned long)strlen(s); } while (0)
#define BIND_I64(b, v) do { (b).buffer_type = MYSQL_TYPE_LONGLONG; (b).buffer = (v); } while (0)
#define BIND_I32(b, v) do { (b).buffer_type = MYSQL_TYPE_LONG; (b).buffer = (v); } while (0)

/* A text column bound with no buffer, fetched now and parsed as JSON
 * (NULL when empty or not JSON). */
static json_t *
fetch_json(MYSQL_STMT *st, unsigned int col, unsigned long len)
{
	if (len == 0)
		return NULL;
	char *text = malloc(len + 1);
	json_t *j = NULL;
	MYSQL_BIND b;
	memset(&b, 0, sizeof(b));
	b.buffer_type = MYSQL_TYPE_STRING;
	b.buffer = text;
	b.buffer_length = len + 1;
	if (text && mysql_stmt_fetch_column(st, &b, col, 0) == 0)
		j = json_loadb(text, len, 0, NULL);
	free(text);
	return j;
}

static int
enroll_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	struct host *h = j->host;
	int rc;
	if ((rc = db_exec(conn, "BEGIN", err, errlen)) != 0)
		return rc;
	MYSQL_BIND b[5];
	memset(b, 0, sizeof(b));
	BIND_STR(b[0], h->uid);
	BIND_STR(b[1], h->name);
	BIND_STR(b[2], h->hostname);
	BIND_STR(b[3], h->cert_serial);
	BIND_I64(b[4], &h->enrolled_at);
	MYSQL_STMT *st;
	rc = stmt_run(conn, "INSERT INTO hosts (uid, name, hostname, cert_serial, enrolled_at)"
	    " VALUES (?, ?, ?, ?, ?)", b, "insert host", &st, err, errlen);
	if (rc != 0)
		return rc;
	h->id = mysql_stmt_insert_id(st);
	mysql_stmt_close(st);
	memset(b, 0, sizeof(b));
	BIND_STR(b[0], j->name);
	if ((rc = stmt_run(conn, "UPDATE enroll_tokens SET uses = uses + 1 WHERE name = ?", b,
	    "count token use", NULL, err, errlen)) != 0)
		return rc;
	return db_exec(conn, "COMMIT", err, errlen);
}

int
store_enroll(struct store *st, struct host *h, const char *token_name, store_done_fn cb, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	*j = (struct job){ .st = st, .cb = cb, .arg = arg, .host = h };
	str_copy(j->name, token_name, sizeof(j->name));
	if (st->srv->db == NULL || db_submit(st->srv->db, 0, enroll_work, job_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}

static int
token_put_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	MYSQL_BIND b[7];
	memset(b, 0, sizeof(b));
	BIND_STR(b[0], j->tok.name);
	BIND_STR(b[1], j->tok.secret_hash);
	BIND_I64(b[2], &j->tok.expires_at);
	BIND_I32(b[3], &j->tok.max_uses);
	BIND_I32(b[4], &j->tok.uses);
	BIND_STR(b[5], j->tok.source);
	BIND_I64(b[6], &j->tok.created_at);
	/* uses is only set on insert: a running count is never reset by a reload */
	return stmt_run(conn, "INSERT INTO enroll_tokens (name, secret_hash, expires_at, max_uses, uses,"
	    " source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
	    " secret_hash=VALUES(secret_hash), expires_at=VALUES(expires_at),"
	    " max_uses=VALUES(max_uses), source=VALUES(source)", b, "store token", NULL, err, errlen);
}

int
store_token_put(struct store *st, const struct token *t, store_done_fn cb, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	*j = (struct job){ .st = st, .cb = cb, .arg = arg, .tok = *t };
	if (st->srv->db == NULL || db_submit(st->srv->db, DB_JOB_RETRY, token_put_work, job_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}

static int
token_del_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	MYSQL_BIND b[1];
	memset(b, 0, sizeof(b));
	BIND_STR(b[0], j->name);
	return stmt_run(conn, "DELETE FROM enroll_tokens WHERE name = ?", b, "delete token", NULL,
	    err, errlen);
}

int
store_token_del(struct store *st, const char *name, store_done_fn cb, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	*j = (struct job){ .st = st, .cb = cb, .arg = arg };
	str_copy(j->name, name, sizeof(j->name));
	if (st->srv->db == NULL || db_submit(st->srv->db, DB_JOB_RETRY, token_del_work, job_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}

/* ---- events query ---- */

static int
events_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	long long limit = (long long)j->limit;
	MYSQL_STMT *st;
	int rc;
	MYSQL_BIND p[4];
	memset(p, 0, sizeof(p));
	BIND_I64(p[0], &j->since);
	BIND_STR(p[1], j->host_name);
	BIND_STR(p[2], j->host_name);
	BIND_I64(p[3], &limit);
	rc = stmt_run(conn,
	    "SELECT e.id, h.name, e.event_uid, e.time, e.received, e.severity, e.kind, e.message,"
	    " IFNULL(e.data, '') FROM events e JOIN hosts h ON h.id = e.host_id"
	    " WHERE e.time >= ? AND (? = '' OR h.name = ?) ORDER BY e.id DESC LIMIT ?", p,
	    "query events", &st, err, errlen);
	if (rc != 0)
		return rc;
	unsigned long long id;
	long long t, rcv;
	int sev;
	char name[256], uid[40], kind[64 * 4 + 8], msg[1024 * 4 + 8];
	char *data = malloc(1 << 20);
	unsigned long name_len, uid_len, kind_len, msg_len, data_len;
	MYSQL_BIND r[9];
	memset(r, 0, sizeof(r));
	r[0].buffer_type = MYSQL_TYPE_LONGLONG; r[0].buffer = &id; r[0].is_unsigned = 1;
	r[1].buffer_type = MYSQL_TYPE_STRING; r[1].buffer = name; r[1].buffer_length = sizeof(name); r[1].length = &name_len;
	r[2].buffer_type = MYSQL_TYPE_STRING; r[2].buffer = uid; r[2].buffer_length = sizeof(uid); r[2].length = &uid_len;
	r[3].buffer_type = MYSQL_TYPE_LONGLONG; r[3].buffer = &t;
	r[4].buffer_type = MYSQL_TYPE_LONGLONG; r[4].buffer = &rcv;
	r[5].buffer_type = MYSQL_TYPE_LONG; r[5].buffer = &sev;
	r[6].buffer_type = MYSQL_TYPE_STRING; r[6].buffer = kind; r[6].buffer_length = sizeof(kind); r[6].length = &kind_len;
	r[7].buffer_type = MYSQL_TYPE_STRING; r[7].buffer = msg; r[7].buffer_length = sizeof(msg); r[7].length = &msg_len;
	r[8].buffer_type = MYSQL_TYPE_STRING; r[8].buffer = data; r[8].buffer_length = data ? (1 << 20) : 0; r[8].length = &data_len;
	if (data == NULL || mysql_stmt_bind_result(st, r)) {
		free(data);
		rc = db_stmt_fail(st, "bind events", err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	j->rows = json_array();
	int f;
	while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		name[name_len < sizeof(name) ? name_len : sizeof(name) - 1] = '\0';
		uid[uid_len < sizeof(uid) ? uid_len : sizeof(uid) - 1] = '\0';
		kind[kind_len < sizeof(kind) ? kind_len : sizeof(kind) - 1] = '\0';
		msg[msg_len < sizeof(msg) ? msg_len : sizeof(msg) - 1] = '\0';
		json_t *ev = json_pack("{s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s}",
		    "seq", (json_int_t)id, "host", name, "id", uid, "time", (json_int_t)t,
		    "received", (json_int_t)rcv, "severity", severity_name(sev), "kind", kind,
		    "message", msg);
		if (data_len > 0 && data_len < (1 << 20)) {
			json_t *d = json_loadb(data, data_len, 0, NULL);
			if (d)
				json_object_set_new(ev, "data", d);
		}
		json_array_append_new(j->rows, ev);
	}
	free(data);
	if (f == 1) {
		rc = db_stmt_fail(st, "fetch events", err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	mysql_stmt_close(st);
	return 0;
}

int
store_query_events(struct store *st, const char *host_name, int64_t since, size_t limit,
    store_rows_fn cb, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	*j = (struct job){ .st = st, .rows_cb = cb, .arg = arg, .since = since, .limit = limit };
	str_copy(j->host_name, host_name ? host_name : "", sizeof(j->host_name));
	if (st->srv->db == NULL || db_submit(st->srv->db, 0, events_work, job_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}

/* ---- a host's package list (kept in the database only) ---- */

/* {"packages": [...], "packages_count": N, "posture_time": T} of a full
 * posture ([] and 0 when it has none). */
static json_t *
software_json(const json_t *posture, int64_t posture_time)
{
	json_t *pk = posture_packages(posture);
	return json_pack("{s:o, s:I, s:I}", "packages", pk ? json_incref(pk) : json_array(),
	    "packages_count", (json_int_t)json_array_size(pk), "posture_time", (json_int_t)posture_time);
}

static int
software_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	unsigned long long id = j->host_id;
	long long ptime = 0;
	unsigned long len[2] = { 0, 0 };
	MYSQL_STMT *st;
	MYSQL_BIND p[1], r[2];
	int rc, f;

	memset(p, 0, sizeof(p));
	p[0].buffer_type = MYSQL_TYPE_LONGLONG;
	p[0].buffer = &id;
	p[0].is_unsigned = 1;
	rc = stmt_run(conn, "SELECT posture_time, IFNULL(posture, '') FROM hosts WHERE id = ?", p,
	    "query software", &st, err, errlen);
	if (rc != 0)
		return rc;
	memset(r, 0, sizeof(r));
	r[0].buffer_type = MYSQL_TYPE_LONGLONG; r[0].buffer = &ptime; r[0].length = &len[0];
	/* the posture is fetched on its own (fetch_json): it can be megabytes */
	r[1].buffer_type = MYSQL_TYPE_STRING; r[1].buffer = NULL; r[1].buffer_length = 0; r[1].length = &len[1];
	if (mysql_stmt_bind_result(st, r)) {
		rc = db_stmt_fail(st, "bind software", err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	/* a retried job starts over; JSON null = no such row */
	json_decref(j->rows);
	j->rows = NULL;
	while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		if (j->rows != NULL)
			continue;
		json_t *posture = fetch_json(st, 1, len[1]);
		j->rows = software_json(posture, ptime);
		json_decref(posture);
		if (j->rows == NULL) {
			mysql_stmt_close(st);
			str_fmt(err, errlen, "out of memory");
			return -1;
		}
	}
	rc = f == 1 ? db_stmt_fail(st, "fetch software", err, errlen) : 0;
	mysql_stmt_close(st);
	if (rc == 0 && j->rows == NULL)
		j->rows = json_null();
	return rc;
}

int
store_query_software(struct store *st, const struct host *h, store_rows_fn cb, void *arg)
{
	if (h->posture_full) {
		/* the newest posture has not been written yet: it is the answer */
		json_t *rows = software_json(h->posture_full, h->posture_time);
		cb(arg, rows, rows ? "" : "out of memory");
		json_decref(rows);
		return 0;
	}
	if (h->id == 0)
		return -1;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	*j = (struct job){ .st = st, .rows_cb = cb, .arg = arg, .host_id = h->id };
	if (st->srv->db == NULL || db_submit(st->srv->db, 0, software_work, job_done, j) < 0) {
		free(j);
		return -1;
	}
	return 0;
}

/* ---- start-up load (hosts, tokens, administrators) ---- */

struct load {
	struct store *st;
	struct host **hosts;
	size_t nhosts, cap_hosts;
	struct token *tokens;
	size_t ntokens, cap_tokens;
	struct admin_cache *admins;
	size_t nadmins, cap_admins;
	char password_file[4096];
	bool created_admin;
	/* threats of the last day, for the fleet's 24 h count and outbreaks */
	struct fleet_seed *threats;
	size_t nthreats, cap_threats;
};

static void
load_free(struct load *l)
{
	for (size_t i = 0; i < l->nhosts; i++)
		host_free(l->hosts[i]);
	free(l->hosts);
	free(l->tokens);
	free(l->admins);
	free(l->threats);
	free(l);
}

static void
copy_col(char *dst, size_t dstsz, const char *src, unsigned long len)
{
	size_t n = len < dstsz ? len : dstsz - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int
load_hosts(MYSQL *conn, struct load *l, char *err, size_t errlen)
{
	MYSQL_STMT *st;
	int rc = stmt_run(conn, "SELECT id, uid, name, hostname, cert_serial, enrolled_at, last_seen,"
	    " last_ip, wake_port, posture_time, IFNULL(posture, ''), group_id, placed,"
	    " policy_version, policy_hash, policy_applied_version, IFNULL(policy_errors, ''),"
	    " IFNULL(local_settings, ''), tags FROM hosts", NULL,
	    "load hosts", &st, err, errlen);
	if (rc != 0)
		return rc;
	unsigned long long id;
	long long enrolled, seen, ptime;
	int wake;
	char uid[40], name[80], hostname[300], serial[80], ip[80];
	unsigned long long group_id;
	int placed, pver, papplied;
	char phash[80];
	unsigned long len[19];
	MYSQL_BIND r[19];
	memset(r, 0, sizeof(r));
	r[0].buffer_type = MYSQL_TYPE_LONGLONG; r[0].buffer = &id; r[0].is_unsigned = 1;
	r[1].buffer_type = MYSQL_TYPE_STRING; r[1].buffer = uid; r[1].buffer_length = sizeof(uid);
	r[2].buffer_type = MYSQL_TYPE_STRING; r[2].buffer = name; r[2].buffer_length = sizeof(name);
	r[3].buffer_type = MYSQL_TYPE_STRING; r[3].buffer = hostname; r[3].buffer_length = sizeof(hostname);
	r[4].buffer_type = MYSQL_TYPE_STRING; r[4].buffer = serial; r[4].buffer_length = sizeof(serial);
	r[5].buffer_type = MYSQL_TYPE_LONGLONG; r[5].buffer = &enrolled;
	r[6].buffer_type = MYSQL_TYPE_LONGLONG; r[6].buffer = &seen;
	r[7].buffer_type = MYSQL_TYPE_STRING; r[7].buffer = ip; r[7].buffer_length = sizeof(ip);
	r[8].buffer_type = MYSQL_TYPE_LONG; r[8].buffer = &wake;
	r[9].buffer_type = MYSQL_TYPE_LONGLONG; r[9].buffer = &ptime;
	r[10].buffer_type = MYSQL_TYPE_STRING; r[10].buffer = NULL; r[10].buffer_length = 0;
	r[11].buffer_type = MYSQL_TYPE_LONGLONG; r[11].buffer = &group_id; r[11].is_unsigned = 1;
	r[12].buffer_type = MYSQL_TYPE_LONG; r[12].buffer = &placed;
	r[13].buffer_type = MYSQL_TYPE_LONG; r[13].buffer = &pver;
	r[14].buffer_type = MYSQL_TYPE_STRING; r[14].buffer = phash; r[14].buffer_length = sizeof(phash);
	r[15].buffer_type = MYSQL_TYPE_LONG; r[15].buffer = &papplied;
	/* large text columns are fetched one by one (fetch_json) */
	for (int i = 16; i < 19; i++) {
		r[i].buffer_type = MYSQL_TYPE_STRING;
		r[i].buffer = NULL;
		r[i].buffer_length = 0;
	}
	for (int i = 0; i < 19; i++)
		r[i].length = &len[i];
	if (mysql_stmt_bind_result(st, r)) {
		rc = db_stmt_fail(st, "bind hosts", err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	int f;
	while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		struct host *h = calloc(1, sizeof(*h));
		if (h == NULL || array_grow((void **)&l->hosts, &l->cap_hosts, l->nhosts + 1, sizeof(*l->hosts)) < 0) {
			free(h);
			break;
		}
		h->id = id;
		copy_col(h->uid, sizeof(h->uid), uid, len[1]);
		copy_col(h->name, sizeof(h->name), name, len[2]);
		copy_col(h->hostname, sizeof(h->hostname), hostname, len[3]);
		copy_col(h->cert_serial, sizeof(h->cert_serial), serial, len[4]);
		h->enrolled_at = enrolled;
		h->last_seen = seen;
		copy_col(h->last_ip, sizeof(h->last_ip), ip, len[7]);
		h->wake_port = wake;
		h->posture_time = ptime;
		json_t *full = fetch_json(st, 10, len[10]);
		h->posture = posture_strip_packages(full);
		json_decref(full);
		h->group_id = group_id;
		h->placed = placed != 0;
		h->policy_version = pver;
		copy_col(h->policy_hash, sizeof(h->policy_hash), phash, len[14]);
		h->policy_applied = papplied;
		h->policy_errors = fetch_json(st, 16, len[16]);
		h->local_settings = fetch_json(st, 17, len[17]);
		h->tags = fetch_json(st, 18, len[18]);
		l->hosts[l->nhosts++] = h;
	}
	rc = f == 1 ? db_stmt_fail(st, "fetch hosts", err, errlen) : 0;
	mysql_stmt_close(st);
	return rc;
}

static int
load_tokens(MYSQL *conn, struct load *l, char *err, size_t errlen)
{
	MYSQL_STMT *st;
	int rc = stmt_run(conn, "SELECT name, secret_hash, expires_at, max_uses, uses, source,"
	    " created_at FROM enroll_tokens", NULL, "load tokens", &st, err, errlen);
	if (rc != 0)
		return rc;
	struct token t;
	unsigned long len[7];
	char name[80], hash[80], source[32];
	long long exp, created;
	int max_uses, uses;
	MYSQL_BIND r[7];
	memset(r, 0, sizeof(r));
	r[0].buffer_type = MYSQL_TYPE_STRING; r[0].buffer = name; r[0].buffer_length = sizeof(name);
	r[1].buffer_type = MYSQL_TYPE_STRING; r[1].buffer = hash; r[1].buffer_length = sizeof(hash);
	r[2].buffer_type = MYSQL_TYPE_LONGLONG; r[2].buffer = &exp;
	r[3].buffer_type = MYSQL_TYPE_LONG; r[3].buffer = &max_uses;
	r[4].buffer_type = MYSQL_TYPE_LONG; r[4].buffer = &uses;
	r[5].buffer_type = MYSQL_TYPE_STRING; r[5].buffer = source; r[5].buffer_length = sizeof(source);
	r[6].buffer_type = MYSQL_TYPE_LONGLONG; r[6].buffer = &created;
	for (int i = 0; i < 7; i++)
		r[i].length = &len[i];
	if (mysql_stmt_bind_result(st, r)) {
		rc = db_stmt_fail(st, "bind tokens", err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	int f;
	while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		if (array_grow((void **)&l->tokens, &l->cap_tokens, l->ntokens + 1, sizeof(*l->tokens)) < 0)
			break;
		memset(&t, 0, sizeof(t));
		copy_col(t.name, sizeof(t.name), name, len[0]);
		copy_col(t.secret_hash, sizeof(t.secret_hash), hash, len[1]);
		t.expires_at = exp;
		t.max_uses = max_uses;
		t.uses = uses;
		copy_col(t.source, sizeof(t.source), source, len[5]);
		t.created_at = created;
		l->tokens[l->ntokens++] = t;
	}
	rc = f == 1 ? db_stmt_fail(st, "fetch tokens", err, errlen) : 0;
	mysql_stmt_close(st);
	return rc;
}

static void
pbkdf2_hex(const char *password, const char *salt, int iter, char out[65])
{
	unsigned char dk[32];
	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), (const unsigned char *)salt,
	    (int)strlen(salt), iter, EVP_sha256(), sizeof(dk), dk);
	hex_encode(dk, sizeof(dk), out);
}

static int
load_admins(MYSQL *conn, struct load *l, char *err, size_t errlen)
{
	MYSQL_STMT *st;
	int rc = stmt_run(conn, "SELECT name, pw_hash, salt, iterations FROM admins", NULL,
	    "load administrators", &st, err, errlen);
	if (rc != 0)
		return rc;
	struct admin_cache a;
	unsigned long len[4];
	char name[80], hash[80], salt[80];
	int iter;
	MYSQL_BIND r[4];
	memset(r, 0, sizeof(r));
	r[0].buffer_type = MYSQL_TYPE_STRING; r[0].buffer = name; r[0].buffer_length = sizeof(name);
	r[1].buffer_type = MYSQL_TYPE_STRING; r[1].buffer = hash; r[1].buffer_length = sizeof(hash);
	r[2].buffer_type = MYSQL_TYPE_STRING; r[2].buffer = salt; r[2].buffer_length = sizeof(salt);
	r[3].buffer_type = MYSQL_TYPE_LONG; r[3].buffer = &iter;
	for (int i = 0; i < 4; i++)
		r[i].length = &len[i];
	if (mysql_stmt_bind_result(st, r)) {
		rc = db_stmt_fail(st, "bind administrators", err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	int f;
	while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		if (array_grow((void **)&l->admins, &l->cap_admins, l->nadmins + 1, sizeof(*l->admins)) < 0)
			break;
		memset(&a, 0, sizeof(a));
		copy_col(a.name, sizeof(a.name), name, len[0]);
		copy_col(a.pw_hash, sizeof(a.pw_hash), hash, len[1]);
		copy_col(a.salt, sizeof(a.salt), salt, len[2]);
		a.iterations = iter;
		l->admins[l->nadmins++] = a;
	}
	rc = f == 1 ? db_stmt_fail(st, "fetch administrators", err, errlen) : 0;
	mysql_stmt_close(st);
	return rc;
}

/* First start: an administrator "admin" with a random password, written to
 * the state directory (0600) for the operator and custosctl to read. */
static int
create_admin(MYSQL *conn, struct load *l, char *err, size_t errlen)
{
	struct admin_cache a;
	char password[33];
	memset(&a, 0, sizeof(a));
	str_copy(a.name, "admin", sizeof(a.name));
	if (random_id(password) < 0 || random_id(a.salt) < 0) {
		str_fmt(err, errlen, "no randomness for the administrator password");
		return -1;
	}
	a.iterations = PBKDF2_ITER;
	pbkdf2_hex(password, a.salt, a.iterations, a.pw_hash);
	char line[64];
	int n = str_fmt(line, sizeof(line), "%s\n", password);
	if (file_write_atomic(l->password_file, line, (size_t)n, 0600) < 0) {
		str_fmt(err, errlen, "cannot write %s: %s", l->password_file, strerror(errno));
		return -1;
	}
	int64_t now = now_s();
	MYSQL_BIND b[5];
	memset(b, 0, sizeof(b));
	BIND_STR(b[0], a.name);
	BIND_STR(b[1], a.pw_hash);
	BIND_STR(b[2], a.salt);
	BIND_I32(b[3], &a.iterations);
	BIND_I64(b[4], &now);
	int rc = stmt_run(conn, "INSERT INTO admins (name, pw_hash, salt, iterations, created_at)"
	    " VALUES (?, ?, ?, ?, ?)", b, "create administrator", NULL, err, errlen);
	if (rc != 0)
		return rc;
	if (array_grow((void **)&l->admins, &l->cap_admins, l->nadmins + 1, sizeof(*l->admins)) < 0)
		return -1;
	l->admins[l->nadmins++] = a;
	l->created_admin = true;
	return 0;
}

/* Threats received within the last day, newest first (fleet_seed_threats),
 * so that a restart keeps the 24 h count and the outbreak window. The time
 * index bounds the scan; FLEET_SEED_MAX bounds the memory. */
static int
load_threats(MYSQL *conn, struct load *l, char *err, size_t errlen)
{
	char sql[512];
	long long since = (long long)(now_s() - 86400), received;
	MYSQL_STMT *st;
	MYSQL_BIND r[2];
	unsigned long len[2];
	char uid[40];
	int f, rc;

	l->nthreats = 0;
	/* agents' clocks may be off: time (indexed) with a day of slack */
	str_fmt(sql, sizeof(sql), "SELECT event_uid, received FROM events WHERE kind = 'threat_found'"
	    " AND time > %lld AND received > %lld ORDER BY id DESC LIMIT %d", since - 86400, since,
	    FLEET_SEED_MAX);
	if ((rc = stmt_run(conn, sql, NULL, "load threats", &st, err, errlen)) != 0)
		return rc;
	memset(r, 0, sizeof(r));
	r[0].buffer_type = MYSQL_TYPE_STRING; r[0].buffer = uid; r[0].buffer_length = sizeof(uid);
	r[0].length = &len[0];
	r[1].buffer_type = MYSQL_TYPE_LONGLONG; r[1].buffer = &received;
	if (mysql_stmt_bind_result(st, r)) {
		rc = db_stmt_fail(st, "bind threats", err, errlen);
		mysql_stmt_close(st);
		return rc;
	}
	while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
		if (array_grow((void **)&l->threats, &l->cap_threats, l->nthreats + 1, sizeof(*l->threats)) < 0) {
			log_warnx("store", "out of memory reading the day's threats; the 24 h count "
			    "starts with %zu", l->nthreats);
			break;
		}
		struct fleet_seed *e = &l->threats[l->nthreats++];
		copy_col(e->uid, sizeof(e->uid), uid, len[0]);
		e->received = received;
	}
	rc = f == 1 ? db_stmt_fail(st, "fetch threats", err, errlen) : 0;
	mysql_stmt_close(st);
	if (l->nthreats == FLEET_SEED_MAX)
		log_warnx("store", "more than %d threats in the last 24 h: the count starts with the "
		    "newest %d", FLEET_SEED_MAX, FLEET_SEED_MAX);
	return rc;
}

static int
load_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct load *l = arg;
	/* a retried load starts over */
	for (size_t i = 0; i < l->nhosts; i++)
		host_free(l->hosts[i]);
	l->nhosts = l->ntokens = l->nadmins = 0;
	int rc;
	if ((rc = load_hosts(conn, l, err, errlen)) != 0 || (rc = load_tokens(conn, l, err, errlen)) != 0 ||
	    (rc = load_admins(conn, l, err, errlen)) != 0)
		return rc;
	/* optional: hosts and tokens load even when this fails */
	char terr[256];
	if ((rc = load_threats(conn, l, terr, sizeof(terr))) != 0) {
		if (rc == DB_JOB_CONN_LOST)
			return rc;    /* the connection is gone: the whole load is retried */
		log_warnx("store", "reading the day's threats failed (%s); the 24 h count starts at 0", terr);
		l->nthreats = 0;
	}
	if (l->nadmins == 0)
		return create_admin(conn, l, err, errlen);
	return 0;
}

static void
token_written(void *arg, int rc, const char *err)
{
	struct store *st = arg;
	(void)st;
	if (rc != 0)
		log_warnx("store", "could not store a configured enrolment token: %s", err);
}

/* Configured tokens (enroll.tokens) are owned by the configuration: created
 * or updated from it; ones removed from it are deleted. */
static void
store_apply_config_tokens(struct store *st)
{
	struct server *srv = st->srv;
	const char *list = "enroll.tokens";
	size_t n = conf_list_len(srv->cfg, list);
	for (size_t i = 0; i < n; i++) {
		struct token t;
		memset(&t, 0, sizeof(t));
		str_copy(t.name, conf_list_str(srv->cfg, list, i, "name"), sizeof(t.name));
		token_hash(conf_list_str(srv->cfg, list, i, "secret"), t.secret_hash);
		t.expires_at = conf_list_int(srv->cfg, list, i, "expires");
		t.max_uses = (int)conf_list_int(srv->cfg, list, i, "max_uses");
		str_copy(t.source, "config", sizeof(t.source));
		t.created_at = now_s();
		struct token *old = registry_token(srv->reg, t.name);
		if (old) {
			t.uses = old->uses;
			t.created_at = old->created_at;
			if (old->expires_at == t.expires_at && old->max_uses == t.max_uses &&
			    strcmp(old->secret_hash, t.secret_hash) == 0 && strcmp(old->source, "config") == 0)
				continue;
		}
		registry_put_token(srv->reg, &t);
		store_token_put(st, &t, token_written, st);
	}
	size_t nt;
	struct token **all = registry_tokens_sorted(srv->reg, &nt);
	for (size_t i = 0; all && i < nt; i++) {
		if (strcmp(all[i]->source, "config") != 0)
			continue;
		bool declared = false;
		for (size_t k = 0; k < n && !declared; k++)
			declared = strcmp(conf_list_str(srv->cfg, list, k, "name"), all[i]->name) == 0;
		if (!declared) {
			log_info("store", "enrolment token \"%s\" was removed from the configuration; deleting it",
			    all[i]->name);
			store_token_del(st, all[i]->name, token_written, st);
			registry_del_token(srv->reg, all[i]->name);
		}
	}
	free(all);
}

void
store_reload_config(struct store *st)
{
	if (st->srv->loaded)
		store_apply_config_tokens(st);
}

static void
load_done(void *arg, int rc, const char *err)
{
	struct load *l = arg;
	struct store *st = l->st;
	struct server *srv = st->srv;
	st->loading = false;
	if (rc != 0) {
		log_warnx("store", "loading hosts and tokens from the database failed: %s", err);
		load_free(l);
		snapshot_fallback(srv, err);
		return;
	}
	int64_t now = now_s();
	size_t merged = 0;
	/* snapshot hosts the database does not have go first: one may hold
	 * the name a database host has now */
	snapshot_db_loading(srv, l->hosts, l->nhosts);
	for (size_t i = 0; i < l->nhosts; i++) {
		struct host *h = l->hosts[i];
		struct host *mem = registry_host_by_uid(srv->reg, h->uid);
		/* a memory-only host not merged yet (pending-, or from the
		 * snapshot under an older name) gives way to a database row's name */
		struct host *holder = registry_host_by_name(srv->reg, h->name);
		if (holder && holder != mem && holder->id == 0 &&
		    (holder->from_snapshot || strncmp(holder->name, "pending-", 8) == 0)) {
			char other[sizeof(holder->name)];
			if (naming_unique(holder->name, registry_name_taken, srv->reg, other, sizeof(other)) == 0)
				(void)registry_rename_host(srv->reg, holder, other);
		}
		if (mem) {
			/* from the snapshot, or seen while the database was away:
			 * the database names the host and keeps its group, policy
			 * and local settings; the agent's newer report stays */
			bool newer = snapshot_merge_host(mem, h, &srv->thr, now);
			mem->id = h->id;
			if (registry_rename_host(srv->reg, mem, h->name) < 0)
				log_warnx("store", "host %s: name %s is taken; keeping %s", h->uid, h->name, mem->name);
			str_copy(mem->hostname, h->hostname, sizeof(mem->hostname));
			str_copy(mem->cert_serial, h->cert_serial, sizeof(mem->cert_serial));
			mem->enrolled_at = h->enrolled_at;
			/* only newer data is written back (100,000 hosts from the
			 * snapshot must not become one big batch); fleet and NAC
			 * learn the database's name and group either way */
			if (newer)
				merged++;
			host_changed(srv, mem, newer ? 0 : HC_NO_STORE);
			host_free(h);
			continue;
		}
		host_evaluate(h, &srv->thr, now);
		if (registry_add_host(srv->reg, h) < 0) {
			log_warnx("store", "host %s (%s) is in the database twice; ignoring one", h->name, h->uid);
			host_free(h);
		}
	}
	l->nhosts = 0;
	for (size_t i = 0; i < l->ntokens; i++)
		registry_put_token(srv->reg, &l->tokens[i]);
	free(st->admins);
	st->admins = l->admins;
	st->nadmins = l->nadmins;
	l->admins = NULL;
	if (l->created_admin)
		log_info("store", "created administrator \"admin\"; its password is in %s", l->password_file);
	fleet_seed_threats(srv->fleet, now, l->threats, l->nthreats);
	srv->loaded = true;
	log_info("store", "loaded %zu host(s), %zu token(s) from the database%s", registry_host_count(srv->reg),
	    l->ntokens, merged ? " (merged with hosts seen meanwhile)" : "");
	load_free(l);
	snapshot_db_loaded(srv);
	store_apply_config_tokens(st);
	mgmt_db_loaded(srv->mgmt);
}

void
store_db_up(struct store *st)
{
	if (st->srv->loaded || st->loading)
		return;
	struct load *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return;
	l->st = st;
	str_fmt(l->password_file, sizeof(l->password_file), "%s/admin.password",
	    conf_str(st->srv->cfg, "server.state_dir"));
	st->loading = true;
	if (db_submit(st->srv->db, DB_JOB_RETRY, load_work, load_done, l) < 0) {
		st->loading = false;
		load_free(l);
	}
}

int
store_admin_check(struct store *st, const char *user, const char *password)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(password, strlen(password), md, &mdlen, EVP_sha256(), NULL);
	for (size_t i = 0; i < st->nadmins; i++) {
		struct admin_cache *a = &st->admins[i];
		if (strcmp(a->name, user) != 0)
			continue;
		if (a->has_good && CRYPTO_memcmp(a->good, md, sizeof(md)) == 0)
			return 0;
		char hash[65];
		pbkdf2_hex(password, a->salt, a->iterations, hash);
		if (CRYPTO_memcmp(hash, a->pw_hash, 64) != 0)
			return -1;
		memcpy(a->good, md, sizeof(md));
		a->has_good = true;
		return 0;
	}
	return -1;
}

size_t
store_admins_export(const struct store *st, struct snapshot_admin **out)
{
	*out = NULL;
	if (st->nadmins == 0 || (*out = calloc(st->nadmins, sizeof(**out))) == NULL)
		return 0;
	for (size_t i = 0; i < st->nadmins; i++) {
		str_copy((*out)[i].name, st->admins[i].name, sizeof((*out)[i].name));
		str_copy((*out)[i].pw_hash, st->admins[i].pw_hash, sizeof((*out)[i].pw_hash));
		str_copy((*out)[i].salt, st->admins[i].salt, sizeof((*out)[i].salt));
		(*out)[i].iterations = st->admins[i].iterations;
	}
	return st->nadmins;
}

void
store_admins_seed(struct store *st, const struct snapshot_admin *a, size_t n)
{
	struct admin_cache *list;
	if (st->nadmins > 0 || n == 0 || (list = calloc(n, sizeof(*list))) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		str_copy(list[i].name, a[i].name, sizeof(list[i].name));
		str_copy(list[i].pw_hash, a[i].pw_hash, sizeof(list[i].pw_hash));
		str_copy(list[i].salt, a[i].salt, sizeof(list[i].salt));
		list[i].iterations = a[i].iterations;
	}
	free(st->admins);
	st->admins = list;
	st->nadmins = n;
}

struct store *
store_new(struct server *srv, size_t events_max, size_t batch_max)
{
	struct store *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->srv = srv;
	st->events_max = events_max;
	st->batch_max = batch_max;
	st->flush_ev = evtimer_new(srv->base, store_flush_cb, st);
	if (st->flush_ev == NULL) {
		free(st);
		return NULL;
	}
	return st;
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	if (st->cur) {
		for (size_t i = 0; i < st->cur->nwaiters; i++)
			st->cur->waiters[i].cb(st->cur->waiters[i].arg, -1, "shutting down");
		batch_free(st->cur);
	}
	if (st->flush_ev)
		event_free(st->flush_ev);
	free(st->dirty);
	free(st->admins);
	free(st);
}

size_t
store_pending_events(const struct store *st)
{
	return st->cur ? st->cur->nevents : 0;
}

size_t
store_pending_hosts(const struct store *st)
{
	return st->ndirty;
}

uint64_t
store_shed_count(const struct store *st)
{
	return st->shed;
}

bool
store_writing(const struct store *st)
{
	return st->in_flight;
}

uint64_t
store_refused_count(const struct store *st)
{
	return st->refused;
}
