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
