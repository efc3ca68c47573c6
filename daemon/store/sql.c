/* sql.c — statement helpers of the store's SQL (DB thread). */
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
sql_run(MYSQL *conn, const char *sql, json_t *params, const char *what, MYSQL_STMT **out,
    char *err, size_t errlen)
{
	size_t np = json_array_size(params);
	MYSQL_BIND *pb = calloc(np ? np : 1, sizeof(MYSQL_BIND));
	long long *ints = calloc(np ? np : 1, sizeof(long long));
	MYSQL_STMT *st = NULL;
	int rc = -1;
	if (params == NULL || pb == NULL || ints == NULL) {
		/* NULL params: a json_pack that failed (out of memory, or a NULL
		 * string where a value was expected) */
		str_fmt(err, errlen, "%s: out of memory or a missing value", what);
		goto out;
	}
	for (size_t i = 0; i < np; i++) {
		json_t *v = json_array_get(params, i);
		if (json_is_integer(v) || json_is_boolean(v)) {
			ints[i] = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
			pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
			pb[i].buffer = &ints[i];
		} else if (json_is_string(v)) {
			pb[i].buffer_type = MYSQL_TYPE_STRING;
			pb[i].buffer = (char *)json_string_value(v);
			pb[i].buffer_length = (unsigned long)json_string_length(v);
		} else {
			pb[i].buffer_type = MYSQL_TYPE_NULL;
		}
	}
	if ((st = mysql_stmt_init(conn)) == NULL) {
		rc = db_conn_fail(conn, what, err, errlen);
		goto out;
	}
	if (mysql_stmt_prepare(st, sql, strlen(sql)) || (np && mysql_stmt_bind_param(st, pb)) ||
	    mysql_stmt_execute(st)) {
		rc = db_stmt_fail(st, what, err, errlen);
		goto out;
	}
	rc = 0;
	if (out) {
		*out = st;
		st = NULL;
	}
out:
	if (st)
		mysql_stmt_close(st);
	free(pb);
	free(ints);
	json_decref(params);
	return rc;
}


/* A text column bound with no buffer, fetched now and parsed as JSON
 * (NULL when empty or not JSON). */
json_t *
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
void
copy_col(char *dst, size_t dstsz, const char *src, unsigned long len)
{
	size_t n = len < dstsz ? len : dstsz - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}
