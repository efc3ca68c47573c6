/* db.c — see db.h.
 *
 * One mutex guards the job FIFO, the completion list and the stop request.
 * The DB thread moves finished jobs (and state changes) to the completion
 * list and activates an fd-less event; its callback delivers them in order on
 * the main thread. A job stays at the head of the FIFO while it runs, so
 * db_queue_depth() counts it and a DB_JOB_RETRY job can simply be run again
 * after a reconnect. */
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "log.h"
#include "util.h"

#define DB_ERR_MAX		512
#define DB_BACKOFF_MIN_MS	250
#define DB_IDLE_PING_MS		30000
#define DB_MIGRATION_FILE_MAX	(4 * 1024 * 1024)
#define DB_MIGRATIONS_MAX	10000
#define DB_MIGRATION_NAME_MAX	200
#define DB_MIGRATION_LOCK	"custos.schema_migrations"
#define DB_MIGRATION_LOCK_S	60

enum db_item_kind { DB_ITEM_JOB, DB_ITEM_STATE };

/* A queued job, later its completion; or a state change to deliver. */
struct db_item {
	struct db_item	*next;
	enum db_item_kind kind;
	int		 flags;
	db_work_fn	 work;
	db_done_fn	 done;
	void		*arg;
	int		 rc;
	enum db_state	 state;
	char		 err[DB_ERR_MAX];	/* job error or state detail */
};

struct db_list {
	struct db_item	*head;
	struct db_item	*tail;
};

struct migration {
	int	version;
	char	name[DB_MIGRATION_NAME_MAX + 1];
};

struct db {
	/* Configuration (owned copies). */
	char		*host;
	char		*socket;
	char		*user;
	char		*password;
	char		*database;
	char		*migrations_dir;
	unsigned	 port;
	size_t		 queue_max;
	int		 backoff_min_ms;
	int		 backoff_max_ms;
	unsigned	 timeout_s;

	struct event_base *base;
	struct event	*ev;
	db_state_fn	 state_cb;
	void		*state_arg;

	pthread_t	 thread;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* jobs added or stop requested */
	struct db_list	 jobs;		/* mu */
	struct db_list	 done;		/* mu */
	bool		 stopping;	/* mu */
	int64_t		 stop_deadline;	/* mu; mono ms */

	_Atomic size_t	 depth;
	_Atomic uint64_t shed;
	_Atomic int	 state;
	_Atomic int	 schema_version;

	/* DB thread only. */
	MYSQL		*conn;
	int64_t		 last_used;
	char		 last_error[DB_ERR_MAX];

	/* Main thread only. */
	int		 dispatching;
	bool		 stop_called;
	bool		 free_pending;
};

enum { DB_CONNECTED, DB_CONNECT_FAILED, DB_CONNECT_REFUSED };
enum { DB_RUN_OK, DB_RUN_LOST, DB_RUN_EXIT };
#define DB_MIGRATE_REFUSED (-3)

static const char *
db_state_name(enum db_state st)
{
	switch (st) {
	case DB_STATE_CONNECTING:
		return "connecting";
	case DB_STATE_UP:
		return "up";
	case DB_STATE_DOWN:
		return "down";
	case DB_STATE_REFUSED:
		return "refused";
	}
	return "unknown";
}

/* ---- helpers for work functions ---- */

bool
db_error_is_connection(unsigned int mysql_err)
{
	switch (mysql_err) {
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_SERVER_LOST_EXTENDED:
	case ER_CONNECTION_KILLED:
	case ER_SERVER_SHUTDOWN:
		return true;
	default:
		return false;
	}
}

int
db_conn_fail(MYSQL *conn, const char *what, char *err, size_t errlen)
{
	unsigned int code = conn != NULL ? mysql_errno(conn) : 0;
	const char *msg = conn != NULL ? mysql_error(conn) : "no connection";

	str_fmt(err, errlen, "%s: %s (MariaDB error %u)", what, msg, code);
	return db_error_is_connection(code) ? DB_JOB_CONN_LOST : -1;
}

int
db_stmt_fail(MYSQL_STMT *st, const char *what, char *err, size_t errlen)
{
	unsigned int code = st != NULL ? mysql_stmt_errno(st) : 0;
	const char *msg = st != NULL ? mysql_stmt_error(st) : "no statement";

	str_fmt(err, errlen, "%s: %s (MariaDB error %u)", what, msg, code);
	return db_error_is_connection(code) ? DB_JOB_CONN_LOST : -1;
}

/* The start of a statement, for error messages. */
static void
db_sql_excerpt(const char *sql, char *out, size_t outlen)
{
	size_t n = 0;

	while (*sql == ' ' || *sql == '\t' || *sql == '\n')
		sql++;
	for (; sql[n] != '\0' && n < 60 && n + 1 < outlen; n++)
		out[n] = sql[n] == '\n' ? ' ' : sql[n];
	out[n] = '\0';
	if (sql[n] != '\0' && n + 4 < outlen)
		str_copy(out + n, "...", outlen - n);
}

int
db_exec(MYSQL *conn, const char *sql, char *err, size_t errlen)
{
	char what[80];
	MYSQL_RES *res;

	db_sql_excerpt(sql, what, sizeof(what));
	if (mysql_real_query(conn, sql, strlen(sql)) != 0)
		return db_conn_fail(conn, what, err, errlen);
	/* Consume a result set, if any, so the connection stays in sync. */
	res = mysql_store_result(conn);
	if (res != NULL)
		mysql_free_result(res);
	else if (mysql_field_count(conn) != 0)
		return db_conn_fail(conn, what, err, errlen);
	return 0;
}

/* Runs a query returning one integer (NULL is an error). */
static int
db_query_int(MYSQL *conn, const char *sql, long long *out, char *err, size_t errlen)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char *end;
	int rc = 0;

	if (mysql_real_query(conn, sql, strlen(sql)) != 0)
		return db_conn_fail(conn, sql, err, errlen);
	res = mysql_store_result(conn);
	if (res == NULL)
		return db_conn_fail(conn, sql, err, errlen);
	row = mysql_fetch_row(res);
	if (row == NULL || row[0] == NULL) {
		str_fmt(err, errlen, "%s: returned no value", sql);
		rc = -1;
	} else {
		errno = 0;
		*out = strtoll(row[0], &end, 10);
		if (errno != 0 || *end != '\0') {
			str_fmt(err, errlen, "%s: returned \"%.40s\", not a number", sql, row[0]);
			rc = -1;
		}
	}
	mysql_free_result(res);
	return rc;
}

/* ---- lists, completions and state (mu held where noted) ---- */

static void
db_list_push(struct db_list *l, struct db_item *it)
{
	it->next = NULL;
	if (l->tail != NULL)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
}

static struct db_item *
db_list_pop(struct db_list *l)
{
	struct db_item *it = l->head;

	if (it != NULL) {
		l->head = it->next;
		if (l->head == NULL)
			l->tail = NULL;
		it->next = NULL;
	}
	return it;
}

/* mu held. Returns true when the main thread needs waking (list was empty). */
static bool
db_done_push_locked(struct db *db, struct db_item *it)
{
	bool was_empty = db->done.head == NULL;

	db_list_push(&db->done, it);
	return was_empty;
}

static void
db_notify(struct db *db)
{
	event_active(db->ev, 0, 0);
}

/* mu held. Completes every waiting job (or only those without DB_JOB_RETRY)
 * with rc and "prefix + msg"; returns whether the main thread needs waking. */
static bool
db_fail_jobs_locked(struct db *db, bool retry_too, int rc, const char *prefix,
    const char *msg)
{
	struct db_item **pp = &db->jobs.head, *it;
	bool wake = false;

	while ((it = *pp) != NULL) {
		if (!retry_too && (it->flags & DB_JOB_RETRY)) {
			pp = &it->next;
			continue;
		}
		*pp = it->next;
		atomic_fetch_sub(&db->depth, 1);
		it->rc = rc;
		str_fmt(it->err, sizeof(it->err), "%s%s", prefix, msg);
		wake |= db_done_push_locked(db, it);
	}
	/* Re-establish the tail after removals from the middle. */
	db->jobs.tail = NULL;
	for (it = db->jobs.head; it != NULL; it = it->next)
		db->jobs.tail = it;
	return wake;
}

/* DB thread. Records a state change and queues its delivery. */
static void
db_set_state(struct db *db, enum db_state st, const char *detail)
{
	struct db_item *it;
	bool wake;

	if (atomic_load(&db->state) == (int)st)
		return;
	atomic_store(&db->state, (int)st);
	switch (st) {
	case DB_STATE_UP:
		log_info("db", "database up: %s", detail);
		break;
	case DB_STATE_DOWN:
		log_warnx("db", "database down: %s", detail);
		break;
	case DB_STATE_REFUSED:
		log_error("db", "%s", detail);
		break;
	case DB_STATE_CONNECTING:
		break;
	}
	if ((it = calloc(1, sizeof(*it))) == NULL) {
		log_warnx("db", "out of memory: state change to %s not delivered",
		    db_state_name(st));
		return;
	}
	it->kind = DB_ITEM_STATE;
	it->state = st;
	str_copy(it->err, detail, sizeof(it->err));
	pthread_mutex_lock(&db->mu);
	wake = db_done_push_locked(db, it);
	pthread_mutex_unlock(&db->mu);
	if (wake)
		db_notify(db);
}

/* Main thread. Delivers queued completions and state changes in order. */
static void
db_dispatch(struct db *db)
{
	struct db_item *it;

	for (;;) {
		pthread_mutex_lock(&db->mu);
		it = db_list_pop(&db->done);
		pthread_mutex_unlock(&db->mu);
		if (it == NULL)
			break;
		if (it->kind == DB_ITEM_STATE) {
			if (db->state_cb != NULL)
				db->state_cb(db->state_arg, it->state, it->err);
		} else if (it->done != NULL)
			it->done(it->arg, it->rc, it->err);
		free(it);
	}
}

static void db_free(struct db *);

static void
db_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;

	(void)fd;
	(void)what;
	db->dispatching++;
	db_dispatch(db);
	db->dispatching--;
	/* db_stop() was called from one of the callbacks above. */
	if (db->dispatching == 0 && db->free_pending)
		db_free(db);
}

/* ---- migrations ---- */

/* NNNN_[a-z0-9_]+.sql, version >= 1. */
static bool
db_migration_name_ok(const char *name, int *version)
{
	size_t len = strlen(name), i;

	if (len < 10 || len > DB_MIGRATION_NAME_MAX)
		return false;
	for (i = 0; i < 4; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	if (name[4] != '_' || strcmp(name + len - 4, ".sql") != 0)
		return false;
	for (i = 5; i < len - 4; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	*version = (name[0] - '0') * 1000 + (name[1] - '0') * 100 +
	    (name[2] - '0') * 10 + (name[3] - '0');
	return true;
}

static int
db_migration_cmp(const void *a, const void *b)
{
	const struct migration *ma = a, *mb = b;

	return (ma->version > mb->version) - (ma->version < mb->version);
}

/* Lists the migration files of dir sorted by version (*out malloc'd). */
static int
db_list_migrations(const char *dir, struct migration **out, size_t *n,
    char *err, size_t errlen)
{
	struct migration *list = NULL, *nl;
	size_t count = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;
	int version;

	*out = NULL;
	*n = 0;
	if ((d = opendir(dir)) == NULL) {
		str_fmt(err, errlen, "cannot open migrations directory %s: %s",
		    dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!db_migration_name_ok(de->d_name, &version)) {
			size_t len = strlen(de->d_name);
			if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0)
				log_warnx("db", "ignoring %s/%s: migration files are "
				    "named NNNN_lowercase_name.sql", dir, de->d_name);
			continue;
		}
		if (version == 0) {
			str_fmt(err, errlen, "migration %s/%s: versions start at 0001; "
			    "rename the file", dir, de->d_name);
			goto fail;
		}
		if (count == DB_MIGRATIONS_MAX) {
			str_fmt(err, errlen, "too many migration files in %s", dir);
			goto fail;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nl = realloc(list, cap * sizeof(*list))) == NULL) {
				str_fmt(err, errlen, "out of memory listing %s", dir);
				goto fail;
			}
			list = nl;
		}
		list[count].version = version;
		str_copy(list[count].name, de->d_name, sizeof(list[count].name));
		count++;
	}
	closedir(d);
	d = NULL;
	if (count > 0)
		qsort(list, count, sizeof(*list), db_migration_cmp);
	for (i = 1; i < count; i++) {
		if (list[i].version == list[i - 1].version) {
			str_fmt(err, errlen, "migrations %s and %s in %s have the same "
			    "version; renumber one", list[i - 1].name, list[i].name, dir);
			goto fail;
		}
	}
	*out = list;
	*n = count;
	return 0;
fail:
	if (d != NULL)
		closedir(d);
	free(list);
	return -1;
}

/* Runs a text of several statements, consuming every result. */
static int
db_exec_multi(MYSQL *conn, const char *text, size_t len, char *err, size_t errlen)
{
	MYSQL_RES *res;
	char what[32];
	int stmt = 1, s;

	if (mysql_real_query(conn, text, len) != 0) {
		if (mysql_errno(conn) == ER_EMPTY_QUERY)
			return 0;	/* comments only */
		return db_conn_fail(conn, "statement 1", err, errlen);
	}
	for (;;) {
		res = mysql_store_result(conn);
		if (res != NULL)
			mysql_free_result(res);
		else if (mysql_field_count(conn) != 0) {
			str_fmt(what, sizeof(what), "statement %d", stmt);
			return db_conn_fail(conn, what, err, errlen);
		}
		s = mysql_next_result(conn);
		if (s < 0)
			return 0;
		stmt++;
		if (s > 0) {
			str_fmt(what, sizeof(what), "statement %d", stmt);
			return db_conn_fail(conn, what, err, errlen);
		}
	}
}

static int
db_apply_migration(MYSQL *conn, const char *dir, const struct migration *m,
    char *err, size_t errlen)
{
	char path[4096], sql[512], why[DB_ERR_MAX];
	char *text;
	size_t len;
	int rc, rc2;

	if (str_fmt(path, sizeof(path), "%s/%s", dir, m->name) < 0) {
		str_fmt(err, errlen, "migration path %s/%s is too long", dir, m->name);
		return -1;
	}
	if ((text = file_read(path, DB_MIGRATION_FILE_MAX, &len)) == NULL) {
		str_fmt(err, errlen, "cannot read migration %s: %s", path, strerror(errno));
		return -1;
	}
	if (mysql_set_server_option(conn, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0) {
		free(text);
		return db_conn_fail(conn, "enabling multi-statements", err, errlen);
	}
	rc = db_exec_multi(conn, text, len, why, sizeof(why));
	free(text);
	if (rc != 0) {
		str_fmt(err, errlen, "migration %s failed at %s; fix the database "
		    "or the file, then restart", path, why);
		return rc;
	}
	if (mysql_set_server_option(conn, MYSQL_OPTION_MULTI_STATEMENTS_OFF) != 0)
		return db_conn_fail(conn, "disabling multi-statements", err, errlen);
	if (str_fmt(sql, sizeof(sql), "INSERT INTO schema_migrations "
	    "(version, name, applied_at) VALUES (%d, '%s', %lld)",
	    m->version, m->name, (long long)now_s()) < 0) {
		str_fmt(err, errlen, "migration name %s is too long", m->name);
		return -1;
	}
	if ((rc2 = db_exec(conn, sql, why, sizeof(why))) != 0) {
		str_fmt(err, errlen, "recording migration %s: %s", m->name, why);
		return rc2;
	}
	log_info("db", "applied migration %s", m->name);
	return 0;
}

/* Brings the schema up to the newest file. 0, -1 / DB_JOB_CONN_LOST, or
 * DB_MIGRATE_REFUSED when the database is newer than the files. */
static int
db_migrate(struct db *db, MYSQL *conn, char *err, size_t errlen)
{
	struct migration *list = NULL;
	size_t n, i;
	long long applied, locked;
	int newest, count = 0, rc;
	char sql[128];

	if ((rc = db_list_migrations(db->migrations_dir, &list, &n, err, errlen)) != 0)
		return rc;
	newest = n > 0 ? list[n - 1].version : 0;
	rc = db_exec(conn, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, "
	    "applied_at BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	    err, errlen);
	if (rc != 0)
		goto out;
	/* Two daemons starting on one database must not both migrate. */
	str_fmt(sql, sizeof(sql), "SELECT GET_LOCK('%s', %d)", DB_MIGRATION_LOCK,
	    DB_MIGRATION_LOCK_S);
	rc = db_query_int(conn, sql, &locked, err, errlen);
	if (rc != 0)
		goto out;
	if (locked != 1) {
		str_fmt(err, errlen, "another process held the migration lock "
		    "for %d s; is a second custosd using this database?",
		    DB_MIGRATION_LOCK_S);
		rc = -1;
		goto out;
	}
	rc = db_query_int(conn, "SELECT COALESCE(MAX(version), 0) FROM "
	    "schema_migrations", &applied, err, errlen);
	if (rc != 0)
		goto out;
	if (applied > newest) {
		atomic_store(&db->schema_version, (int)applied);
		str_fmt(err, errlen, "database schema is at version %lld but this "
		    "custosd knows only up to %d; upgrade custosd or restore a "
		    "matching backup", applied, newest);
		rc = DB_MIGRATE_REFUSED;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (list[i].version <= applied)
			continue;
		if ((rc = db_apply_migration(conn, db->migrations_dir, &list[i],
		    err, errlen)) != 0)
			goto out;
		applied = list[i].version;
		count++;
	}
	atomic_store(&db->schema_version, (int)applied);
	log_info("db", "schema at version %lld (applied %d migrations)", applied, count);
	rc = db_exec(conn, "DO RELEASE_LOCK('" DB_MIGRATION_LOCK "')", err, errlen);
out:
	free(list);
	return rc;
}

/* ---- the DB thread ---- */

/* DB thread. Drops the connection and reports DOWN. */
static void
db_lost(struct db *db, const char *detail)
{
	if (db->conn != NULL) {
		mysql_close(db->conn);
		db->conn = NULL;
	}
	str_copy(db->last_error, detail, sizeof(db->last_error));
	db_set_state(db, DB_STATE_DOWN, detail);
}

static int
db_connect(struct db *db)
{
	char detail[DB_ERR_MAX], where[300];
	my_bool reconnect = 0;
	MYSQL *c;
	int rc;

	if (db->socket != NULL)
		str_fmt(where, sizeof(where), "socket %s", db->socket);
	else
		str_fmt(where, sizeof(where), "%s:%u",
		    db->host != NULL ? db->host : "localhost", db->port);
	if ((c = mysql_init(NULL)) == NULL) {
		db_lost(db, "out of memory creating a MariaDB connection");
		return DB_CONNECT_FAILED;
	}
	if (mysql_optionsv(c, MYSQL_OPT_CONNECT_TIMEOUT, &db->timeout_s) != 0 ||
	    mysql_optionsv(c, MYSQL_OPT_READ_TIMEOUT, &db->timeout_s) != 0 ||
	    mysql_optionsv(c, MYSQL_OPT_WRITE_TIMEOUT, &db->timeout_s) != 0 ||
	    mysql_optionsv(c, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0 ||
	    mysql_optionsv(c, MYSQL_OPT_RECONNECT, &reconnect) != 0) {
		mysql_close(c);
		db_lost(db, "cannot set MariaDB connection options");
		return DB_CONNECT_FAILED;
	}
	if (mysql_real_connect(c, db->host, db->user, db->password, db->database,
	    db->port, db->socket, 0) == NULL) {
		str_fmt(detail, sizeof(detail), "cannot connect to MariaDB at %s "
		    "as %s, database %s: %s (MariaDB error %u)", where, db->user,
		    db->database, mysql_error(c), mysql_errno(c));
		mysql_close(c);
		if (atomic_load(&db->state) == DB_STATE_DOWN)
			log_debug("db", "%s", detail);
		db_lost(db, detail);
		return DB_CONNECT_FAILED;
	}
	if (mysql_autocommit(c, 1) != 0) {
		db_conn_fail(c, "setting autocommit", detail, sizeof(detail));
		mysql_close(c);
		db_lost(db, detail);
		return DB_CONNECT_FAILED;
	}
	rc = db_migrate(db, c, detail, sizeof(detail));
	if (rc == DB_MIGRATE_REFUSED) {
		mysql_close(c);
		str_copy(db->last_error, detail, sizeof(db->last_error));
		db_set_state(db, DB_STATE_REFUSED, detail);
		return DB_CONNECT_REFUSED;
	}
	if (rc != 0) {
		mysql_close(c);
		db_lost(db, detail);
		return DB_CONNECT_FAILED;
	}
	db->conn = c;
	db->last_used = mono_ms();
	str_fmt(detail, sizeof(detail), "connected to %s, schema version %d",
	    where, atomic_load(&db->schema_version));
	db_set_state(db, DB_STATE_UP, detail);
	return DB_CONNECTED;
}

static void
db_cond_wait_until(struct db *db, int64_t until_ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(until_ms / 1000);
	ts.tv_nsec = (long)(until_ms % 1000) * 1000000L;
	pthread_cond_timedwait(&db->cv, &db->mu, &ts);
}

/* mu held. Whether the thread should end now. */
static bool
db_should_exit_locked(struct db *db)
{
	return db->stopping &&
	    (db->jobs.head == NULL || mono_ms() >= db->stop_deadline);
}

/* DB thread, no connection. Waits wait_ms before the next connect attempt,
 * failing jobs that cannot wait: all of them when the schema was refused,
 * those without DB_JOB_RETRY otherwise. Returns early on db_stop(). */
static void
db_down_wait(struct db *db, int wait_ms)
{
	bool refused = atomic_load(&db->state) == DB_STATE_REFUSED;
	int64_t until = mono_ms() + wait_ms, t;
	bool wake = false;

	pthread_mutex_lock(&db->mu);
	for (;;) {
		if (refused)
			wake |= db_fail_jobs_locked(db, true, -1, "", db->last_error);
		else
			wake |= db_fail_jobs_locked(db, false, DB_JOB_CONN_LOST,
			    "database unavailable: ", db->last_error);
		if (wake) {
			pthread_mutex_unlock(&db->mu);
			db_notify(db);
			wake = false;
			pthread_mutex_lock(&db->mu);
			continue;	/* jobs may have arrived meanwhile */
		}
		if (db_should_exit_locked(db) || mono_ms() >= until)
			break;
		t = until;
		if (db->stopping && db->stop_deadline < t)
			t = db->stop_deadline;
		db_cond_wait_until(db, t);
	}
	pthread_mutex_unlock(&db->mu);
}

static int
db_ping(struct db *db)
{
	char detail[DB_ERR_MAX];

	if (mysql_ping(db->conn) != 0) {
		db_conn_fail(db->conn, "ping", detail, sizeof(detail));
		db_lost(db, detail);
		return -1;
	}
	db->last_used = mono_ms();
	return 0;
}

/* DB thread, connected. Runs the job at the head of the FIFO, or pings when
 * idle for DB_IDLE_PING_MS. */
static int
db_run_next(struct db *db)
{
	char why[DB_ERR_MAX];
	struct db_item *job;
	int64_t now, t;
	bool wake, retry;
	int rc;

	pthread_mutex_lock(&db->mu);
	for (;;) {
		if (db_should_exit_locked(db)) {
			pthread_mutex_unlock(&db->mu);
			return DB_RUN_EXIT;
		}
		if (db->jobs.head != NULL)
			break;
		now = mono_ms();
		if (now - db->last_used >= DB_IDLE_PING_MS) {
			pthread_mutex_unlock(&db->mu);
			return db_ping(db) == 0 ? DB_RUN_OK : DB_RUN_LOST;
		}
		t = db->last_used + DB_IDLE_PING_MS;
		if (db->stopping && db->stop_deadline < t)
			t = db->stop_deadline;
		db_cond_wait_until(db, t);
	}
	job = db->jobs.head;
	pthread_mutex_unlock(&db->mu);

	/* A connection idle for long may have been closed by the server. */
	if (mono_ms() - db->last_used >= DB_IDLE_PING_MS && db_ping(db) != 0)
		return DB_RUN_LOST;

	job->err[0] = '\0';
	rc = job->work(db->conn, job->arg, job->err, sizeof(job->err));
	if (rc != 0 && rc != -1 && rc != DB_JOB_CONN_LOST)
		rc = -1;
	if (rc != 0 && job->err[0] == '\0')
		str_copy(job->err, "database job failed", sizeof(job->err));
	if (rc == 0)
		job->err[0] = '\0';
	retry = rc == DB_JOB_CONN_LOST && (job->flags & DB_JOB_RETRY);
	if (retry) {
		/* Stays at the head; run again once reconnected. */
		log_info("db", "job will be retried after reconnecting: %s", job->err);
		db_lost(db, job->err);
		return DB_RUN_LOST;
	}

	/* The main thread owns the job once it is queued for completion. */
	if (rc == DB_JOB_CONN_LOST)
		str_copy(why, job->err, sizeof(why));
	pthread_mutex_lock(&db->mu);
	db_list_pop(&db->jobs);
	atomic_fetch_sub(&db->depth, 1);
	job->rc = rc;
	wake = db_done_push_locked(db, job);
	pthread_mutex_unlock(&db->mu);
	if (wake)
		db_notify(db);
	job = NULL;

	if (rc == DB_JOB_CONN_LOST) {
		db_lost(db, why);
		return DB_RUN_LOST;
	}
	if (rc != 0) {
		/* Leave no half-done transaction for the next job. */
		int r2 = db_exec(db->conn, "ROLLBACK", why, sizeof(why));
		if (r2 == DB_JOB_CONN_LOST) {
			db_lost(db, why);
			return DB_RUN_LOST;
		}
		if (r2 != 0)
			log_warnx("db", "after a failed job: %s", why);
	}
	db->last_used = mono_ms();
	return DB_RUN_OK;
}

static int
db_next_backoff(const struct db *db, int delay)
{
	if (delay == 0)
		return db->backoff_min_ms;
	if (delay >= db->backoff_max_ms / 2)
		return db->backoff_max_ms;
	return delay * 2;
}

static void *
db_thread_main(void *arg)
{
	struct db *db = arg;
	bool quit, wake;
	int delay = 0, r;

	mysql_thread_init();
	for (;;) {
		if (db->conn == NULL) {
			if (delay > 0)
				db_down_wait(db, delay);
			pthread_mutex_lock(&db->mu);
			quit = db_should_exit_locked(db);
			pthread_mutex_unlock(&db->mu);
			if (quit)
				break;
			r = db_connect(db);
			if (r == DB_CONNECT_REFUSED)
				delay = db->backoff_max_ms;
			else if (r == DB_CONNECT_FAILED)
				delay = db_next_backoff(db, delay);
			/* On success delay is kept: it is reset only once the
			 * connection proved itself, so a flapping server or a job
			 * that always reports a lost connection is still paced. */
			continue;
		}
		r = db_run_next(db);
		if (r == DB_RUN_EXIT)
			break;
		if (r == DB_RUN_OK)
			delay = 0;
	}

	pthread_mutex_lock(&db->mu);
	wake = db_fail_jobs_locked(db, true, -1, "", "shutting down");
	pthread_mutex_unlock(&db->mu);
	if (wake)
		db_notify(db);
	if (db->conn != NULL) {
		mysql_close(db->conn);
		db->conn = NULL;
	}
	mysql_thread_end();
	return NULL;
}

/* ---- public API ---- */

static char *
db_strdup_opt(const char *s, bool *oom)
{
	char *p;

	if (s == NULL || *s == '\0')
		return NULL;
	if ((p = strdup(s)) == NULL)
		*oom = true;
	return p;
}

static void
db_free(struct db *db)
{
	struct db_item *it;

	if (db->ev != NULL)
		event_free(db->ev);
	while ((it = db_list_pop(&db->jobs)) != NULL)
		free(it);
	while ((it = db_list_pop(&db->done)) != NULL)
		free(it);
	pthread_cond_destroy(&db->cv);
	pthread_mutex_destroy(&db->mu);
	free(db->host);
	free(db->socket);
	free(db->user);
	free(db->password);
	free(db->database);
	free(db->migrations_dir);
	free(db);
}

struct db *
db_start(const struct db_config *cfg, struct event_base *base,
    db_state_fn state_cb, void *state_arg, char *err, size_t errlen)
{
	struct migration *list;
	pthread_condattr_t ca;
	sigset_t all, old;
	struct db *db;
	bool oom = false;
	size_t n;
	int e;

	if (cfg == NULL || base == NULL) {
		str_fmt(err, errlen, "database: no configuration or event base");
		return NULL;
	}
	if (cfg->user == NULL || *cfg->user == '\0' ||
	    cfg->database == NULL || *cfg->database == '\0') {
		str_fmt(err, errlen, "database: user and database name must be set");
		return NULL;
	}
	if (cfg->migrations_dir == NULL || *cfg->migrations_dir == '\0') {
		str_fmt(err, errlen, "database: migrations directory must be set");
		return NULL;
	}
	if (cfg->queue_max == 0 || cfg->backoff_max_ms <= 0 ||
	    cfg->connect_timeout_s <= 0) {
		str_fmt(err, errlen, "database: queue size, reconnect backoff and "
		    "connect timeout must be positive");
		return NULL;
	}
	if (cfg->port > 65535) {
		str_fmt(err, errlen, "database: port %u is out of range", cfg->port);
		return NULL;
	}
	/* Catch a wrong directory or bad file names now, not at connect. */
	if (db_list_migrations(cfg->migrations_dir, &list, &n, err, errlen) != 0)
		return NULL;
	free(list);
	if (mysql_library_init(0, NULL, NULL) != 0) {
		str_fmt(err, errlen, "database: cannot initialise the MariaDB client library");
		return NULL;
	}

	if ((db = calloc(1, sizeof(*db))) == NULL) {
		str_fmt(err, errlen, "database: out of memory");
		return NULL;
	}
	db->host = db_strdup_opt(cfg->host, &oom);
	db->socket = db_strdup_opt(cfg->socket, &oom);
	db->user = db_strdup_opt(cfg->user, &oom);
	db->password = db_strdup_opt(cfg->password, &oom);
	db->database = db_strdup_opt(cfg->database, &oom);
	db->migrations_dir = db_strdup_opt(cfg->migrations_dir, &oom);
	db->port = cfg->port;
	db->queue_max = cfg->queue_max;
	db->backoff_max_ms = cfg->backoff_max_ms;
	db->backoff_min_ms = cfg->backoff_max_ms < DB_BACKOFF_MIN_MS ?
	    cfg->backoff_max_ms : DB_BACKOFF_MIN_MS;
	db->timeout_s = (unsigned)cfg->connect_timeout_s;
	db->base = base;
	db->state_cb = state_cb;
	db->state_arg = state_arg;
	atomic_init(&db->depth, 0);
	atomic_init(&db->shed, 0);
	atomic_init(&db->state, DB_STATE_CONNECTING);
	atomic_init(&db->schema_version, -1);
	if (pthread_mutex_init(&db->mu, NULL) != 0) {
		free(db);
		str_fmt(err, errlen, "database: cannot create a mutex");
		return NULL;
	}
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&db->cv, &ca) != 0) {
		pthread_mutex_destroy(&db->mu);
		free(db);
		str_fmt(err, errlen, "database: cannot create a condition variable");
		return NULL;
	}
	pthread_condattr_destroy(&ca);
	if (oom || (db->ev = event_new(base, -1, 0, db_notify_cb, db)) == NULL) {
		db_free(db);
		str_fmt(err, errlen, "database: out of memory");
		return NULL;
	}

	/* Signals belong to the main thread's event loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&db->thread, NULL, db_thread_main, db);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		db_free(db);
		str_fmt(err, errlen, "database: cannot start the DB thread: %s",
		    strerror(e));
		return NULL;
	}
	return db;
}

int
db_submit(struct db *db, int flags, db_work_fn work, db_done_fn done, void *arg)
{
	struct db_item *it;

	if (db == NULL || work == NULL)
		return -1;
	if ((it = calloc(1, sizeof(*it))) == NULL) {
		atomic_fetch_add(&db->shed, 1);
		return -1;
	}
	it->kind = DB_ITEM_JOB;
	it->flags = flags;
	it->work = work;
	it->done = done;
	it->arg = arg;
	pthread_mutex_lock(&db->mu);
	if (db->stopping || atomic_load(&db->depth) >= db->queue_max) {
		if (!db->stopping)
			atomic_fetch_add(&db->shed, 1);
		pthread_mutex_unlock(&db->mu);
		free(it);
		return -1;
	}
	db_list_push(&db->jobs, it);
	atomic_fetch_add(&db->depth, 1);
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
	return 0;
}

void
db_stop(struct db *db, int timeout_ms)
{
	if (db == NULL || db->stop_called)
		return;
	db->stop_called = true;
	if (timeout_ms < 0)
		timeout_ms = 0;
	pthread_mutex_lock(&db->mu);
	db->stopping = true;
	db->stop_deadline = mono_ms() + timeout_ms;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
	pthread_join(db->thread, NULL);

	/* Every completion runs before db_stop returns. */
	db->dispatching++;
	db_dispatch(db);
	db->dispatching--;
	if (db->dispatching > 0)
		db->free_pending = true;	/* freed by db_notify_cb */
	else
		db_free(db);
}

enum db_state
db_state(const struct db *db)
{
	return (enum db_state)atomic_load(&db->state);
}

size_t
db_queue_depth(const struct db *db)
{
	return atomic_load(&db->depth);
}

uint64_t
db_shed_count(const struct db *db)
{
	return atomic_load(&db->shed);
}

int
db_schema_version(const struct db *db)
{
	return atomic_load(&db->schema_version);
}
