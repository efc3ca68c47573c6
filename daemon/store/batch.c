/* batch.c — the store's write batch on the DB thread: host rows, events
 * and task results as array-bound prepared statements in one transaction;
 * rows MariaDB refuses are left out one by one (see store.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <mysqld_error.h>

#include "core/bounds.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "core/registry.h"
#include "core/server.h"
#include "store/snapshot.h"
#include "store/store_priv.h"
#include "util.h"

int
severity_code(const char *s)
{
	static const char *names[] = { "critical", "error", "warning", "info" };
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return 3;
}

const char *
severity_name(int code)
{
	static const char *names[] = { "critical", "error", "warning", "info" };
	return code >= 0 && code < 4 ? names[code] : "info";
}

void
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
int
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
