/* mgmt_sql.c — the SQL of administration objects (DB thread side of mgmt.c).
 *
 * A change is a list of operations (JSON objects built on the main thread)
 * run in one transaction; afterwards every management table is read back
 * into JSON rows, from which the main thread rebuilds its model. Every
 * statement is prepared; the operations are idempotent, so a job re-run
 * after a lost connection gives the same result. */
#include "store/mgmt_sql.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "store/store_priv.h"
#include "util.h"

#define TEXT_MAX (16u * 1024 * 1024)

/* Runs sql with string/integer parameters given as a JSON array (stolen:
 * the call releases it; NULL from a failed json_pack is an error). With rows
 * != NULL the result set becomes an array of arrays (integers for numeric
 * columns, strings otherwise). */
static int
q(MYSQL *conn, const char *sql, json_t *params, json_t **rows, char *err, size_t errlen)
{
	MYSQL_STMT *st = NULL;
	int rc = sql_run(conn, sql, params, "management query", rows ? &st : NULL, err, errlen);
	if (rc != 0 || rows == NULL)
		return rc;
	MYSQL_RES *meta = mysql_stmt_result_metadata(st);
	unsigned int nc = meta ? mysql_num_fields(meta) : 0;
	MYSQL_FIELD *fields = meta ? mysql_fetch_fields(meta) : NULL;
	MYSQL_BIND *rb = calloc(nc ? nc : 1, sizeof(MYSQL_BIND));
	unsigned long *len = calloc(nc ? nc : 1, sizeof(unsigned long));
	my_bool *isnull = calloc(nc ? nc : 1, sizeof(my_bool));
	*rows = json_array();
	for (unsigned int i = 0; rb && len && isnull && i < nc; i++) {
		rb[i].buffer_type = MYSQL_TYPE_STRING;
		rb[i].length = &len[i];
		rb[i].is_null = &isnull[i];
	}
	if (rb == NULL || len == NULL || isnull == NULL || (nc && mysql_stmt_bind_result(st, rb))) {
		rc = db_stmt_fail(st, "management query", err, errlen);
	} else {
		int f;
		while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
			json_t *row = json_array();
			for (unsigned int i = 0; i < nc; i++) {
				if (isnull[i] || len[i] > TEXT_MAX) {
					json_array_append_new(row, json_null());
					continue;
				}
				char *text = malloc(len[i] + 1);
				MYSQL_BIND col;
				memset(&col, 0, sizeof(col));
				col.buffer_type = MYSQL_TYPE_STRING;
				col.buffer = text;
				col.buffer_length = len[i] + 1;
				if (text == NULL || (len[i] > 0 && mysql_stmt_fetch_column(st, &col, i, 0) != 0)) {
					free(text);
					json_array_append_new(row, json_null());
					continue;
				}
				text[len[i]] = '\0';
				bool numeric = IS_NUM(fields[i].type) && fields[i].type != MYSQL_TYPE_DECIMAL &&
				    fields[i].type != MYSQL_TYPE_NEWDECIMAL;
				json_array_append_new(row, numeric ? json_integer(strtoll(text, NULL, 10)) :
				    json_stringn(text, len[i]));
				free(text);
			}
			json_array_append_new(*rows, row);
		}
		if (f == 1)
			rc = db_stmt_fail(st, "management query", err, errlen);
	}
	free(rb);
	free(len);
	free(isnull);
	if (meta)
		mysql_free_result(meta);
	mysql_stmt_close(st);
	return rc;
}

/* The id of group path ("A/B"), creating missing levels with source when
 * create is set; 0 when it does not exist (and create is not set). */
static int
group_resolve(MYSQL *conn, const char *path, const char *source, bool create, uint64_t *id,
    char *err, size_t errlen)
{
	char buf[2048];
	uint64_t parent = 0;
	if (str_copy(buf, path, sizeof(buf)) >= sizeof(buf)) {
		str_fmt(err, errlen, "group path too long");
		return -1;
	}
	*id = 0;
	for (char *save = NULL, *name = strtok_r(buf, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		json_t *rows = NULL;
		int rc = q(conn, "SELECT id, source FROM groups WHERE parent_id = ? AND name = ?",
		    json_pack("[I, s]", (json_int_t)parent, name), &rows, err, errlen);
		if (rc != 0)
			return rc;
		json_t *row = json_array_get(rows, 0);
		if (row) {
			parent = (uint64_t)json_integer_value(json_array_get(row, 0));
			/* a declared group that exists from the API becomes the file's */
			if (create && strcmp(source, "config") == 0 && save && *save == '\0' &&
			    (rc = q(conn, "UPDATE groups SET source = 'config' WHERE id = ?",
			    json_pack("[I]", (json_int_t)parent), NULL, err, errlen)) != 0) {
				json_decref(rows);
				return rc;
			}
		} else if (create) {
			rc = q(conn, "INSERT INTO groups (name, parent_id, source, created_at) VALUES (?, ?, ?, ?)",
			    json_pack("[s, I, s, I]", name, (json_int_t)parent, source, (json_int_t)now_s()),
			    NULL, err, errlen);
			if (rc != 0) {
				json_decref(rows);
				return rc;
			}
			json_t *idrow = NULL;
			rc = q(conn, "SELECT id FROM groups WHERE parent_id = ? AND name = ?",
			    json_pack("[I, s]", (json_int_t)parent, name), &idrow, err, errlen);
			parent = (uint64_t)json_integer_value(json_array_get(json_array_get(idrow, 0), 0));
			json_decref(idrow);
			if (rc != 0) {
				json_decref(rows);
				return rc;
			}
		} else {
			json_decref(rows);
			return 0;
		}
		json_decref(rows);
	}
	*id = parent;
	return 0;
}

static int
op_group_delete(MYSQL *conn, uint64_t id, char *err, size_t errlen)
{
	int rc;
	json_int_t v = (json_int_t)id;
	if ((rc = q(conn, "UPDATE hosts SET group_id = 0 WHERE group_id = ?", json_pack("[I]", v), NULL, err, errlen)) ||
	    (rc = q(conn, "DELETE FROM policies WHERE group_id = ?", json_pack("[I]", v), NULL, err, errlen)) ||
	    (rc = q(conn, "DELETE FROM group_thresholds WHERE group_id = ?", json_pack("[I]", v), NULL, err, errlen)))
		return rc;
	return q(conn, "DELETE FROM groups WHERE id = ?", json_pack("[I]", v), NULL, err, errlen);
}

/* Config groups no longer declared: deleted deepest first, unless other
 * groups remain below them. */
static int
op_groups_prune(MYSQL *conn, json_t *keep, char *err, size_t errlen)
{
	for (int pass = 0; pass < 40; pass++) {
		json_t *rows = NULL;
		int rc = q(conn, "SELECT g.id FROM groups g WHERE g.source = 'config' AND NOT EXISTS"
		    " (SELECT 1 FROM groups c WHERE c.parent_id = g.id)", json_array(), &rows, err, errlen);
		if (rc != 0)
			return rc;
		bool deleted = false;
		size_t i;
		json_t *row;
		json_array_foreach(rows, i, row) {
			uint64_t id = (uint64_t)json_integer_value(json_array_get(row, 0));
			/* is it still declared? compare by resolving each kept path */
			bool kept = false;
			size_t k;
			json_t *path;
			json_array_foreach(keep, k, path) {
				uint64_t kid = 0;
				if (group_resolve(conn, json_string_value(path), "config", false, &kid, err, errlen) != 0) {
					json_decref(rows);
					return -1;
				}
				if (kid == id) {
					kept = true;
					break;
				}
			}
			if (!kept) {
				if ((rc = op_group_delete(conn, id, err, errlen)) != 0) {
					json_decref(rows);
					return rc;
				}
				deleted = true;
			}
		}
		json_decref(rows);
		if (!deleted)
			return 0;
	}
	return 0;
}

static int
op_prune(MYSQL *conn, const char *table, json_t *keep, char *err, size_t errlen)
{
	char sql[256];
	json_t *rows = NULL;
	str_fmt(sql, sizeof(sql), "SELECT name FROM %s WHERE source = 'config'", table);
	int rc = q(conn, sql, json_array(), &rows, err, errlen);
	if (rc != 0)
		return rc;
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		const char *name = json_string_value(json_array_get(row, 0));
		bool kept = false;
		size_t k;
		json_t *n;
		json_array_foreach(keep, k, n)
			kept = kept || (name && strcmp(name, json_string_value(n)) == 0);
		if (kept || name == NULL)
			continue;
		str_fmt(sql, sizeof(sql), "DELETE FROM %s WHERE name = ?", table);
		if ((rc = q(conn, sql, json_pack("[s]", name), NULL, err, errlen)) != 0)
			break;
	}
	json_decref(rows);
	return rc;
}

static int
op_policy_upsert(MYSQL *conn, json_t *op, char *err, size_t errlen)
{
	uint64_t gid = 0;
	int rc = group_resolve(conn, json_string_value(json_object_get(op, "group")), "config", false,
	    &gid, err, errlen);
	if (rc != 0)
		return rc;
	if (gid == 0) {
		str_fmt(err, errlen, "policy %s: group %s does not exist",
		    json_string_value(json_object_get(op, "name")), json_string_value(json_object_get(op, "group")));
		return -1;
	}
	char *settings = json_dumps(json_object_get(op, "settings"), JSON_COMPACT);
	rc = q(conn, "INSERT INTO policies (name, group_id, application, kind, active, inherit, settings,"
	    " threshold, window_min, quiet_min, source, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	    " ON DUPLICATE KEY UPDATE group_id = VALUES(group_id), application = VALUES(application),"
	    " kind = VALUES(kind), active = VALUES(active), inherit = VALUES(inherit),"
	    " settings = VALUES(settings), threshold = VALUES(threshold), window_min = VALUES(window_min),"
	    " quiet_min = VALUES(quiet_min), source = VALUES(source), updated_at = VALUES(updated_at)",
	    json_pack("[O, I, O, O, O, O, s, O, O, O, O, I]", json_object_get(op, "name"), (json_int_t)gid,
	    json_object_get(op, "application"), json_object_get(op, "kind"), json_object_get(op, "active"),
	    json_object_get(op, "inherit"), settings ? settings : "[]", json_object_get(op, "threshold"),
	    json_object_get(op, "window"), json_object_get(op, "quiet"), json_object_get(op, "source"),
	    (json_int_t)now_s()), NULL, err, errlen);
	free(settings);
	/* at most one active policy per group, application and kind */
	if (rc == 0 && json_is_true(json_object_get(op, "active")))
		rc = q(conn, "UPDATE policies SET active = 0 WHERE group_id = ? AND application = ? AND kind = ?"
		    " AND name <> ?", json_pack("[I, O, O, O]", (json_int_t)gid, json_object_get(op, "application"),
		    json_object_get(op, "kind"), json_object_get(op, "name")), NULL, err, errlen);
	return rc;
}

static int
op_task_upsert(MYSQL *conn, json_t *op, char *err, size_t errlen)
{
	char *params = json_dumps(json_object_get(op, "params"), JSON_COMPACT);
	char *scope = json_dumps(json_object_get(op, "scope"), JSON_COMPACT);
	int rc = q(conn, "INSERT INTO tasks (name, type, params, scope, schedule, random_delay, time_limit,"
	    " source, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
	    " type = VALUES(type), params = VALUES(params), scope = VALUES(scope),"
	    " schedule = VALUES(schedule), random_delay = VALUES(random_delay),"
	    " time_limit = VALUES(time_limit), source = VALUES(source), updated_at = VALUES(updated_at)",
	    json_pack("[O, O, s, s, O, O, O, O, I]", json_object_get(op, "name"), json_object_get(op, "type"),
	    params ? params : "{}", scope ? scope : "{}", json_object_get(op, "schedule"),
	    json_object_get(op, "random_delay"), json_object_get(op, "time_limit"),
	    json_object_get(op, "source"), (json_int_t)now_s()), NULL, err, errlen);
	free(params);
	free(scope);
	return rc;
}

static int
op_run(MYSQL *conn, json_t *op, char *err, size_t errlen)
{
	const char *o = json_string_value(json_object_get(op, "op"));
	const char *name = json_string_value(json_object_get(op, "name"));
	uint64_t id;
	if (o == NULL)
		return -1;
	if (strcmp(o, "group_ensure") == 0)
		return group_resolve(conn, json_string_value(json_object_get(op, "path")),
		    json_string_value(json_object_get(op, "source")), true, &id, err, errlen);
	if (strcmp(o, "group_delete") == 0)
		return op_group_delete(conn, (uint64_t)json_integer_value(json_object_get(op, "id")), err, errlen);
	if (strcmp(o, "groups_prune") == 0)
		return op_groups_prune(conn, json_object_get(op, "keep"), err, errlen);
	if (strcmp(o, "prune") == 0) {
		const char *t = json_string_value(json_object_get(op, "table"));
		if (t == NULL || (strcmp(t, "policies") && strcmp(t, "tasks") && strcmp(t, "selections")))
			return -1;
		return op_prune(conn, t, json_object_get(op, "keep"), err, errlen);
	}
	if (strcmp(o, "policy_upsert") == 0)
		return op_policy_upsert(conn, op, err, errlen);
	if (strcmp(o, "policy_delete") == 0)
		return q(conn, "DELETE FROM policies WHERE name = ?", json_pack("[s]", name), NULL, err, errlen);
	if (strcmp(o, "task_upsert") == 0)
		return op_task_upsert(conn, op, err, errlen);
	if (strcmp(o, "task_delete") == 0)
		return q(conn, "DELETE FROM tasks WHERE name = ?", json_pack("[s]", name), NULL, err, errlen);
	if (strcmp(o, "task_start") == 0)
		return q(conn, "UPDATE tasks SET manual_seq = manual_seq + 1 WHERE name = ?",
		    json_pack("[s]", name), NULL, err, errlen);
	if (strcmp(o, "task_cancel") == 0)
		return q(conn, "UPDATE tasks SET cancel_seq = cancel_seq + 1 WHERE name = ?",
		    json_pack("[s]", name), NULL, err, errlen);
	if (strcmp(o, "selection_upsert") == 0)
		return q(conn, "REPLACE INTO selections (name, filter, source) VALUES (?, ?, ?)",
		    json_pack("[s, O, O]", name, json_object_get(op, "filter"), json_object_get(op, "source")),
		    NULL, err, errlen);
	if (strcmp(o, "selection_delete") == 0)
		return q(conn, "DELETE FROM selections WHERE name = ?", json_pack("[s]", name), NULL, err, errlen);
	if (strcmp(o, "rules_replace") == 0) {
		int rc = q(conn, "DELETE FROM relocation_rules WHERE source = 'config'", json_array(), NULL,
		    err, errlen);
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(op, "rules"), i, r) {
			if (rc != 0)
				break;
			rc = q(conn, "REPLACE INTO relocation_rules (name, ord, group_path, hostname, subnet, os,"
			    " tag, source) VALUES (?, ?, ?, ?, ?, ?, ?, 'config')", json_pack("[O, O, O, O, O, O, O]",
			    json_object_get(r, "name"), json_object_get(r, "order"), json_object_get(r, "group"),
			    json_object_get(r, "hostname"), json_object_get(r, "subnet"), json_object_get(r, "os"),
			    json_object_get(r, "tag")), NULL, err, errlen);
		}
		return rc;
	}
	if (strcmp(o, "thresholds_replace") == 0) {
		int rc = q(conn, "DELETE FROM group_thresholds WHERE source = 'config'", json_array(), NULL,
		    err, errlen);
		size_t i;
		json_t *t;
		json_array_foreach(json_object_get(op, "list"), i, t) {
			if (rc != 0)
				break;
			rc = group_resolve(conn, json_string_value(json_object_get(t, "group")), "config", false,
			    &id, err, errlen);
			if (rc == 0 && id != 0)
				rc = q(conn, "REPLACE INTO group_thresholds (group_id, db_warning_days, db_critical_days,"
				    " not_connected_warning_days, not_connected_critical_days, source)"
				    " VALUES (?, ?, ?, ?, ?, 'config')", json_pack("[I, O, O, O, O]", (json_int_t)id,
				    json_object_get(t, "db_warning_days"), json_object_get(t, "db_critical_days"),
				    json_object_get(t, "not_connected_warning_days"),
				    json_object_get(t, "not_connected_critical_days")), NULL, err, errlen);
		}
		return rc;
	}
	str_fmt(err, errlen, "unknown operation %s", o);
	return -1;
}

static const struct {
	const char *key, *sql;
} load_queries[] = {
	{ "groups", "SELECT id, name, parent_id, source FROM groups ORDER BY id" },
	{ "rules", "SELECT name, ord, group_path, hostname, subnet, os, tag, source FROM relocation_rules"
	  " ORDER BY ord, name" },
	{ "policies", "SELECT id, name, group_id, application, kind, active, inherit, settings, threshold,"
	  " window_min, quiet_min, source FROM policies ORDER BY id" },
	{ "tasks", "SELECT id, name, type, params, scope, schedule, random_delay, time_limit, manual_seq,"
	  " cancel_seq, source FROM tasks ORDER BY id" },
	{ "selections", "SELECT name, filter, source FROM selections ORDER BY name" },
	{ "thresholds", "SELECT group_id, db_warning_days, db_critical_days, not_connected_warning_days,"
	  " not_connected_critical_days, source FROM group_thresholds" },
};

int
mgmt_db_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct mgmt_job *j = arg;
	int rc;
	json_decref(j->tables);
	j->tables = NULL;
	if (json_array_size(j->ops) > 0) {
		if ((rc = db_exec(conn, "BEGIN", err, errlen)) != 0)
			return rc;
		size_t i;
		json_t *op;
		json_array_foreach(j->ops, i, op) {
			if ((rc = op_run(conn, op, err, errlen)) != 0)
				return rc; /* the DB thread rolls back */
			log_debug("mgmt", "ran %s", json_string_value(json_object_get(op, "op")));
		}
		if ((rc = db_exec(conn, "COMMIT", err, errlen)) != 0)
			return rc;
	}
	j->tables = json_object();
	for (size_t i = 0; i < ARRAY_LEN(load_queries); i++) {
		json_t *rows = NULL;
		if ((rc = q(conn, load_queries[i].sql, json_array(), &rows, err, errlen)) != 0)
			return rc;
		json_object_set_new(j->tables, load_queries[i].key, rows);
	}
	return 0;
}

int
mgmt_db_task_results(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct mgmt_job *j = arg;
	json_t *rows = NULL;
	json_decref(j->tables);
	j->tables = NULL;
	int rc = q(conn, "SELECT h.name, r.run, r.state, r.exit_code, r.output_tail, r.started, r.ended"
	    " FROM task_results r JOIN hosts h ON h.id = r.host_id WHERE r.task_id = ?"
	    " ORDER BY r.run DESC, h.name LIMIT 10000", json_pack("[I]", (json_int_t)j->task_id), &rows,
	    err, errlen);
	if (rc != 0)
		return rc;
	j->tables = json_array();
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		json_array_append_new(j->tables, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O}",
		    "host", json_array_get(row, 0), "run", json_array_get(row, 1), "state", json_array_get(row, 2),
		    "exit_code", json_array_get(row, 3), "output_tail", json_array_get(row, 4),
		    "started", json_array_get(row, 5), "ended", json_array_get(row, 6)));
	}
	json_decref(rows);
	return 0;
}
