/* query.c — the store's queries for the API: newest events, a host's
 * package list (kept only in the database). */
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

/* ---- events query ---- */

static int
events_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	long long limit = (long long)j->limit;
	MYSQL_STMT *st;
	int rc;
	rc = sql_run(conn,
	    "SELECT e.id, h.name, e.event_uid, e.time, e.received, e.severity, e.kind, e.message,"
	    " IFNULL(e.data, '') FROM events e JOIN hosts h ON h.id = e.host_id"
	    " WHERE e.time >= ? AND (? = '' OR h.name = ?) ORDER BY e.id DESC LIMIT ?",
	    json_pack("[I,s,s,I]", (json_int_t)j->since, j->host_name, j->host_name, (json_int_t)limit),
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
	MYSQL_BIND r[2];
	int rc, f;

	rc = sql_run(conn, "SELECT posture_time, IFNULL(posture, '') FROM hosts WHERE id = ?",
	    json_pack("[I]", (json_int_t)id),
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
