/* test_db.c — db/db.c against a real private MariaDB.
 *
 * The group setup starts a server with appliance/mariadb.sh in a temporary
 * directory (the tests run from the repository root). These tests are never
 * skipped: when MariaDB cannot start, every test fails and says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <mysql.h>

#include "db.h"
#include "log.h"
#include "util.h"

#define SCRIPT		"appliance/mariadb.sh"
#define BACKOFF_MAX_MS	500

static struct {
	bool	ok;
	char	dir[64];	/* mkdtemp */
	char	mdir[128];	/* server directory */
	char	sock[160];
	char	password[64];
	char	migdir[128];
	char	log[160];
} srv;

static struct event_base *base;
static pthread_t main_thread;

/* ---- server and SQL helpers ---- */

static int
run_script(const char *verb)
{
	char cmd[512];
	int st;

	if (str_fmt(cmd, sizeof(cmd), "%s %s %s >>%s 2>&1", SCRIPT, verb,
	    srv.mdir, srv.log) < 0)
		return -1;
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void
show_log(void)
{
	char *text = file_read(srv.log, 1 << 20, NULL);

	if (text != NULL) {
		fprintf(stderr, "--- %s ---\n%s", srv.log, text);
		free(text);
	}
}

/* Every test starts with this: never skipped, fails without a server. */
static void
require_server(void)
{
	if (!srv.ok)
		fail_msg("MariaDB did not start with %s (log: %s); the database "
		    "tests are never skipped", SCRIPT, srv.log);
}

static MYSQL *
root_conn(void)
{
	MYSQL *c = mysql_init(NULL);

	assert_non_null(c);
	if (mysql_real_connect(c, NULL, "root", NULL, NULL, 0, srv.sock, 0) == NULL)
		fail_msg("root connect to %s: %s", srv.sock, mysql_error(c));
	return c;
}

static void
root_exec(const char *sql)
{
	MYSQL *c = root_conn();

	if (mysql_query(c, sql) != 0)
		fail_msg("%s: %s", sql, mysql_error(c));
	mysql_close(c);
}

static long long
root_int(const char *sql)
{
	MYSQL *c = root_conn();
	MYSQL_RES *res;
	MYSQL_ROW row;
	long long v;

	if (mysql_query(c, sql) != 0)
		fail_msg("%s: %s", sql, mysql_error(c));
	res = mysql_store_result(c);
	assert_non_null(res);
	row = mysql_fetch_row(res);
	assert_non_null(row);
	assert_non_null(row[0]);
	v = strtoll(row[0], NULL, 10);
	mysql_free_result(res);
	mysql_close(c);
	return v;
}

static void
reset_database(void)
{
	root_exec("DROP DATABASE IF EXISTS custos");
	root_exec("CREATE DATABASE custos CHARACTER SET utf8mb4");
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[256];

	assert_true(str_fmt(path, sizeof(path), "%s/%s", dir, name) > 0);
	assert_int_equal(file_write_atomic(path, text, strlen(text), 0644), 0);
}

static void
cfg_init(struct db_config *c)
{
	memset(c, 0, sizeof(*c));
	c->socket = srv.sock;
	c->user = "custos";
	c->password = srv.password;
	c->database = "custos";
	c->migrations_dir = srv.migdir;
	c->queue_max = 64;
	c->backoff_max_ms = BACKOFF_MAX_MS;
	c->connect_timeout_s = 5;
}

/* ---- event loop, state and job recorders ---- */

struct states {
	enum db_state	seen[64];
	int		n;
	char		detail[512];
	bool		off_main;
};

static void
state_cb(void *arg, enum db_state st, const char *detail)
{
	struct states *s = arg;

	if (!pthread_equal(pthread_self(), main_thread))
		s->off_main = true;
	if (s->n < (int)ARRAY_LEN(s->seen))
		s->seen[s->n++] = st;
	str_copy(s->detail, detail, sizeof(s->detail));
}

static bool
states_last_is(const struct states *s, enum db_state st)
{
	return s->n > 0 && s->seen[s->n - 1] == st;
}

/* Index of the first st at or after from, or -1. */
static int
states_find(const struct states *s, int from, enum db_state st)
{
	for (int i = from; i < s->n; i++)
		if (s->seen[i] == st)
			return i;
	return -1;
}

typedef bool (*pred_fn)(void *);

/* Runs the event loop until pred holds or timeout_ms passes. */
static bool
run_until(pred_fn pred, void *arg, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	struct timeval tv = { 0, 20000 };

	while (!pred(arg)) {
		if (mono_ms() >= end)
			return false;
		assert_int_equal(event_base_loopexit(base, &tv), 0);
		assert_true(event_base_dispatch(base) >= 0);
	}
	return true;
}

static bool
pred_state_up(void *arg)
{
	return states_last_is(arg, DB_STATE_UP);
}

static bool
pred_state_down(void *arg)
{
	return states_last_is(arg, DB_STATE_DOWN);
}

static bool
pred_state_refused(void *arg)
{
	return states_last_is(arg, DB_STATE_REFUSED);
}

#define SEQ_MAX 128

/* Shared order logs: work order is written on the DB thread, read on the
 * main thread only after the job's completion (ordered by the db mutex). */
static int work_order[SEQ_MAX], work_n;
static int done_order[SEQ_MAX], done_n;

struct job {
	int		 id;
	const char	*sql[3];	/* run in order, stop at the first error */
	bool		 gate;		/* wait for gate_open first */
	int		 attempts;	/* DB thread */
	unsigned long	 thread_id;	/* DB thread */
	bool		 work_on_main;	/* DB thread */
	bool		 done;
	bool		 done_on_main;
	int		 rc;
	char		 err[512];
};

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void
gate_set(bool open)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = open;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static int
job_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	int rc;

	j->attempts++;
	j->thread_id = mysql_thread_id(conn);
	j->work_on_main = pthread_equal(pthread_self(), main_thread);
	if (work_n < SEQ_MAX)
		work_order[work_n++] = j->id;
	if (j->gate) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;	/* never hang the suite */
		pthread_mutex_lock(&gate_mu);
		while (!gate_open)
			if (pthread_cond_timedwait(&gate_cv, &gate_mu, &ts) != 0)
				break;
		pthread_mutex_unlock(&gate_mu);
	}
	for (size_t i = 0; i < ARRAY_LEN(j->sql) && j->sql[i] != NULL; i++)
		if ((rc = db_exec(conn, j->sql[i], err, errlen)) != 0)
			return rc;
	return 0;
}

static void
job_done(void *arg, int rc, const char *err)
{
	struct job *j = arg;

	assert_false(j->done);	/* exactly once */
	j->done = true;
	j->done_on_main = pthread_equal(pthread_self(), main_thread);
	j->rc = rc;
	str_copy(j->err, err, sizeof(j->err));
	if (done_n < SEQ_MAX)
		done_order[done_n++] = j->id;
}

static bool
pred_job_done(void *arg)
{
	return ((struct job *)arg)->done;
}

struct jobs {
	struct job	*j;
	int		 n;
};

static bool
pred_all_done(void *arg)
{
	struct jobs *js = arg;

	for (int i = 0; i < js->n; i++)
		if (!js->j[i].done)
			return false;
	return true;
}

static void
orders_reset(void)
{
	work_n = done_n = 0;
}

static struct db *
start_db(const struct db_config *c, struct states *st)
{
	char err[512] = "";
	struct db *db;

	memset(st, 0, sizeof(*st));
	db = db_start(c, base, state_cb, st, err, sizeof(err));
	if (db == NULL)
		fail_msg("db_start: %s", err);
	return db;
}

static struct db *
start_db_up(const struct db_config *c, struct states *st)
{
	struct db *db = start_db(c, st);

	if (!run_until(pred_state_up, st, 10000))
		fail_msg("database not up after 10 s (last detail: %s)", st->detail);
	assert_int_equal(db_state(db), DB_STATE_UP);
	assert_false(st->off_main);
	return db;
}

/* ---- group setup ---- */

static int
group_setup(void **state)
{
	char path[256];
	char *pw;

	(void)state;
	log_init("test_db", "stderr", LOG_LVL_WARN);
	main_thread = pthread_self();
	if (evthread_use_pthreads() != 0)
		return -1;
	if ((base = event_base_new()) == NULL)
		return -1;

	str_copy(srv.dir, "/tmp/custos-test-db-XXXXXX", sizeof(srv.dir));
	if (mkdtemp(srv.dir) == NULL)
		return -1;
	if (str_fmt(srv.mdir, sizeof(srv.mdir), "%s/m", srv.dir) < 0 ||
	    str_fmt(srv.sock, sizeof(srv.sock), "%s/mysqld.sock", srv.mdir) < 0 ||
	    str_fmt(srv.migdir, sizeof(srv.migdir), "%s/migrations", srv.dir) < 0 ||
	    str_fmt(srv.log, sizeof(srv.log), "%s/script.log", srv.dir) < 0)
		return -1;
	if (mkdir(srv.migdir, 0755) != 0)
		return -1;
	/* Two small migrations; the ';' inside a string must not split. */
	write_file(srv.migdir, "0001_first.sql",
	    "-- first: two tables\n"
	    "CREATE TABLE t1 (id INT NOT NULL PRIMARY KEY, v VARCHAR(64) NOT NULL)\n"
	    "  ENGINE=InnoDB;\n"
	    "CREATE TABLE t2 (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB;\n");
	write_file(srv.migdir, "0002_second.sql",
	    "INSERT INTO t1 (id, v) VALUES (1, 'a;b');\n"
	    "ALTER TABLE t2 ADD COLUMN note VARCHAR(32) NOT NULL DEFAULT '';\n"
	    "-- trailing comment\n");
	write_file(srv.migdir, "README", "not a migration\n");

	if (access(SCRIPT, X_OK) != 0) {
		fprintf(stderr, "test_db: %s not found from %s; run the tests from "
		    "the repository root\n", SCRIPT, getcwd(path, sizeof(path)));
		return 0;	/* every test then fails in require_server() */
	}
	if (run_script("start") != 0) {
		show_log();
		return 0;
	}
	if (str_fmt(path, sizeof(path), "%s/custos.password", srv.mdir) < 0 ||
	    (pw = file_read(path, 256, NULL)) == NULL) {
		fprintf(stderr, "test_db: cannot read %s\n", path);
		return 0;
	}
	pw[strcspn(pw, "\r\n")] = '\0';
	str_copy(srv.password, pw, sizeof(srv.password));
	free(pw);
	srv.ok = true;
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[256];

	(void)state;
	if (srv.mdir[0] != '\0' && access(SCRIPT, X_OK) == 0 &&
	    run_script("stop") != 0)
		show_log();
	if (srv.dir[0] != '\0' &&
	    str_fmt(cmd, sizeof(cmd), "rm -rf '%s'", srv.dir) > 0 &&
	    system(cmd) != 0)
		fprintf(stderr, "test_db: cannot remove %s\n", srv.dir);
	if (base != NULL)
		event_base_free(base);
	mysql_library_end();
	return 0;
}

/* ---- tests ---- */

static void
test_bad_config(void **state)
{
	struct db_config c;
	char err[512], dir[256];
	struct states st;

	(void)state;
	require_server();
	memset(&st, 0, sizeof(st));

	err[0] = '\0';
	assert_null(db_start(NULL, base, state_cb, &st, err, sizeof(err)));
	assert_true(err[0] != '\0');

	cfg_init(&c);
	c.migrations_dir = "/nonexistent/custos-migrations";
	err[0] = '\0';
	assert_null(db_start(&c, base, state_cb, &st, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/custos-migrations"));

	cfg_init(&c);
	c.queue_max = 0;
	assert_null(db_start(&c, base, state_cb, &st, err, sizeof(err)));
	cfg_init(&c);
	c.user = "";
	assert_null(db_start(&c, base, state_cb, &st, err, sizeof(err)));
	cfg_init(&c);
	assert_null(db_start(&c, NULL, state_cb, &st, err, sizeof(err)));

	/* Two files with one version are refused at start. */
	assert_true(str_fmt(dir, sizeof(dir), "%s/dup", srv.dir) > 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(dir, "0001_a.sql", "SELECT 1;\n");
	write_file(dir, "0001_b.sql", "SELECT 2;\n");
	cfg_init(&c);
	c.migrations_dir = dir;
	assert_null(db_start(&c, base, state_cb, &st, err, sizeof(err)));
	assert_non_null(strstr(err, "same version"));
	assert_int_equal(st.n, 0);

	assert_int_equal(db_submit(NULL, 0, job_work, job_done, NULL), -1);
	db_stop(NULL, 0);
}

static void
test_error_classes(void **state)
{
	(void)state;
	require_server();
	assert_true(db_error_is_connection(2006));	/* server gone */
	assert_true(db_error_is_connection(2013));	/* lost during query */
	assert_true(db_error_is_connection(2002));	/* cannot connect */
	assert_true(db_error_is_connection(1927));	/* connection killed */
	assert_false(db_error_is_connection(1062));	/* duplicate key */
	assert_false(db_error_is_connection(1146));	/* no such table */
	assert_false(db_error_is_connection(0));
}

static void
test_migrations_applied_once(void **state)
{
	struct db_config c;
	struct states st;
	struct db *db;
	long long applied_at;

	(void)state;
	require_server();
	reset_database();
	cfg_init(&c);

	db = start_db_up(&c, &st);
	assert_int_equal(db_schema_version(db), 2);
	assert_non_null(strstr(st.detail, "schema version 2"));
	db_stop(db, 1000);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.schema_migrations"), 2);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.schema_migrations "
	    "WHERE version = 2 AND name = '0002_second.sql'"), 1);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.t1 WHERE v = 'a;b'"), 1);
	assert_int_equal(root_int("SELECT COUNT(*) FROM information_schema.columns "
	    "WHERE table_schema = 'custos' AND table_name = 't2' AND "
	    "column_name = 'note'"), 1);
	applied_at = root_int("SELECT applied_at FROM custos.schema_migrations "
	    "WHERE version = 1");
	assert_true(applied_at > 0);

	/* Second start: nothing re-applied (0002's INSERT would fail). */
	db = start_db_up(&c, &st);
	assert_int_equal(db_schema_version(db), 2);
	db_stop(db, 1000);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.schema_migrations"), 2);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.t1"), 1);
	assert_int_equal(root_int("SELECT applied_at FROM custos.schema_migrations "
	    "WHERE version = 1"), applied_at);

	/* A new file: only it is applied. */
	write_file(srv.migdir, "0003_third.sql",
	    "ALTER TABLE t1 ADD COLUMN w INT NOT NULL DEFAULT 7;\n");
	db = start_db_up(&c, &st);
	assert_int_equal(db_schema_version(db), 3);
	db_stop(db, 1000);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.schema_migrations"), 3);
	assert_int_equal(root_int("SELECT SUM(w) FROM custos.t1"), 7);
	char path[256];
	assert_true(str_fmt(path, sizeof(path), "%s/0003_third.sql", srv.migdir) > 0);
	assert_int_equal(unlink(path), 0);
}

static void
test_broken_migration_reports_down(void **state)
{
	struct db_config c;
	struct states st;
	struct db *db;
	struct job j = { .id = 1, .sql = { "SELECT 1" } };
	char dir[256];

	(void)state;
	require_server();
	reset_database();
	assert_true(str_fmt(dir, sizeof(dir), "%s/broken", srv.dir) > 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(dir, "0001_ok.sql", "CREATE TABLE b1 (id INT PRIMARY KEY);\n");
	write_file(dir, "0002_bad.sql", "CREATE TABLE b2 (id INT PRIMARY KEY);\n"
	    "INSERT INTO no_such_table VALUES (1);\n");
	cfg_init(&c);
	c.migrations_dir = dir;
	db = start_db(&c, &st);
	assert_true(run_until(pred_state_down, &st, 10000));
	assert_non_null(strstr(st.detail, "0002_bad.sql"));
	assert_non_null(strstr(st.detail, "statement 2"));
	/* Non-retry jobs fail while the schema cannot be brought up. */
	assert_int_equal(db_submit(db, 0, job_work, job_done, &j), 0);
	assert_true(run_until(pred_job_done, &j, 5000));
	assert_int_equal(j.rc, DB_JOB_CONN_LOST);
	assert_int_equal(j.attempts, 0);
	assert_non_null(strstr(j.err, "database unavailable: "));
	db_stop(db, 0);
	/* 0001 stays recorded; 0002 is not. */
	assert_int_equal(root_int("SELECT MAX(version) FROM custos.schema_migrations"), 1);
}

static void
test_newer_schema_refused(void **state)
{
	struct db_config c;
	struct states st;
	struct db *db;
	struct job j1 = { .id = 1, .sql = { "SELECT 1" } };
	struct job j2 = { .id = 2, .sql = { "SELECT 1" } };

	(void)state;
	require_server();
	reset_database();
	cfg_init(&c);
	db = start_db_up(&c, &st);
	db_stop(db, 1000);
	root_exec("INSERT INTO custos.schema_migrations (version, name, applied_at) "
	    "VALUES (9999, '9999_future.sql', 0)");

	db = start_db(&c, &st);
	assert_true(run_until(pred_state_refused, &st, 10000));
	assert_int_equal(db_state(db), DB_STATE_REFUSED);
	assert_int_equal(db_schema_version(db), 9999);
	assert_non_null(strstr(st.detail, "database schema is at version 9999 but "
	    "this custosd knows only up to 2"));
	assert_non_null(strstr(st.detail, "upgrade custosd or restore a matching backup"));
	assert_int_equal(states_find(&st, 0, DB_STATE_UP), -1);

	/* No job runs on a refused schema, retry or not. */
	assert_int_equal(db_submit(db, 0, job_work, job_done, &j1), 0);
	assert_int_equal(db_submit(db, DB_JOB_RETRY, job_work, job_done, &j2), 0);
	struct job *pair[] = { &j1, &j2 };
	for (size_t i = 0; i < ARRAY_LEN(pair); i++) {
		assert_true(run_until(pred_job_done, pair[i], 5000));
		assert_int_equal(pair[i]->rc, -1);
		assert_int_equal(pair[i]->attempts, 0);
		assert_non_null(strstr(pair[i]->err, "upgrade custosd"));
	}
	db_stop(db, 1000);
	root_exec("DELETE FROM custos.schema_migrations WHERE version = 9999");
}

static void
test_jobs_in_order_on_main_thread(void **state)
{
	enum { N = 40, BAD = 17 };
	static struct job jobs[N], more[10];
	static char sql[N][128];
	struct db_config c;
	struct states st;
	struct db *db;

	(void)state;
	require_server();
	reset_database();
	cfg_init(&c);
	db = start_db_up(&c, &st);
	orders_reset();
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < N; i++) {
		jobs[i].id = i;
		if (i == BAD) {
			/* Fails mid-transaction: the DB thread must roll back. */
			jobs[i].sql[0] = "BEGIN";
			jobs[i].sql[1] = "INSERT INTO t1 (id, v) VALUES (500, 'rolled back')";
			jobs[i].sql[2] = "INSERT INTO no_such_table VALUES (1)";
		} else {
			assert_true(str_fmt(sql[i], sizeof(sql[i]),
			    "INSERT INTO t1 (id, v) VALUES (%d, 'x')", 100 + i) > 0);
			jobs[i].sql[0] = sql[i];
		}
		assert_int_equal(db_submit(db, i % 2 ? DB_JOB_RETRY : 0, job_work,
		    job_done, &jobs[i]), 0);
	}
	assert_true(db_queue_depth(db) <= N);
	struct jobs js = { jobs, N };
	assert_true(run_until(pred_all_done, &js, 10000));
	assert_int_equal(done_n, N);
	assert_int_equal(work_n, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(work_order[i], i);
		assert_int_equal(done_order[i], i);
		assert_true(jobs[i].done_on_main);
		assert_false(jobs[i].work_on_main);
		if (i == BAD) {
			assert_int_equal(jobs[i].rc, -1);
			assert_non_null(strstr(jobs[i].err, "no_such_table"));
		} else {
			assert_int_equal(jobs[i].rc, 0);
			assert_string_equal(jobs[i].err, "");
		}
	}
	assert_int_equal(db_queue_depth(db), 0);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.t1 WHERE id = 500"), 0);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.t1 WHERE id >= 100"), N - 1);

	/* db_stop() finishes the queue and runs every completion itself. */
	orders_reset();
	memset(more, 0, sizeof(more));
	for (int i = 0; i < 10; i++) {
		more[i].id = i;
		more[i].sql[0] = "SELECT SLEEP(0.01)";
		assert_int_equal(db_submit(db, 0, job_work, job_done, &more[i]), 0);
	}
	db_stop(db, 5000);
	for (int i = 0; i < 10; i++) {
		assert_true(more[i].done);
		assert_true(more[i].done_on_main);
		assert_int_equal(more[i].rc, 0);
		assert_int_equal(done_order[i], i);
	}
	assert_false(st.off_main);
}

static void
test_queue_bound_sheds(void **state)
{
	struct job gate = { .id = 0, .gate = true, .sql = { "SELECT 1" } };
	struct job j[4] = { { .id = 1, .sql = { "SELECT 1" } },
	    { .id = 2, .sql = { "SELECT 1" } }, { .id = 3 }, { .id = 4 } };
	struct db_config c;
	struct states st;
	struct db *db;

	(void)state;
	require_server();
	cfg_init(&c);
	c.queue_max = 3;
	db = start_db_up(&c, &st);
	gate_set(false);
	assert_int_equal(db_shed_count(db), 0);
	assert_int_equal(db_submit(db, 0, job_work, job_done, &gate), 0);
	assert_int_equal(db_submit(db, 0, job_work, job_done, &j[0]), 0);
	assert_int_equal(db_submit(db, DB_JOB_RETRY, job_work, job_done, &j[1]), 0);
	assert_int_equal(db_queue_depth(db), 3);
	assert_int_equal(db_submit(db, 0, job_work, job_done, &j[2]), -1);
	assert_int_equal(db_submit(db, DB_JOB_RETRY, job_work, job_done, &j[3]), -1);
	assert_int_equal(db_shed_count(db), 2);
	assert_int_equal(db_submit(db, 0, NULL, job_done, &j[3]), -1);

	gate_set(true);
	struct job *acc[] = { &gate, &j[0], &j[1] };
	for (size_t i = 0; i < ARRAY_LEN(acc); i++) {
		assert_true(run_until(pred_job_done, acc[i], 5000));
		assert_int_equal(acc[i]->rc, 0);
	}
	assert_int_equal(db_queue_depth(db), 0);
	/* Shed jobs are never run nor completed. */
	assert_false(j[2].done);
	assert_false(j[3].done);
	assert_int_equal(j[2].attempts + j[3].attempts, 0);
	/* Room again. */
	assert_int_equal(db_submit(db, 0, job_work, job_done, &j[2]), 0);
	assert_true(run_until(pred_job_done, &j[2], 5000));
	assert_int_equal(j[2].rc, 0);
	assert_int_equal(db_shed_count(db), 2);
	db_stop(db, 1000);
}

static bool
pred_connection_gone(void *arg)
{
	char sql[128];
	unsigned long id = *(unsigned long *)arg;

	if (str_fmt(sql, sizeof(sql), "SELECT COUNT(*) FROM "
	    "information_schema.processlist WHERE id = %lu", id) < 0)
		return true;
	return root_int(sql) == 0;
}

static void
test_killed_connection_retry_job_rerun(void **state)
{
	struct job probe = { .id = 0, .sql = { "SELECT 1" } };
	struct job retry = { .id = 1, .sql = { "SELECT 1" } };
	struct job after = { .id = 2, .sql = { "SELECT 1" } };
	struct db_config c;
	struct states st;
	struct db *db;
	unsigned long tid;
	char sql[64];
	int up0, down;

	(void)state;
	require_server();
	cfg_init(&c);
	db = start_db_up(&c, &st);
	assert_int_equal(db_submit(db, 0, job_work, job_done, &probe), 0);
	assert_true(run_until(pred_job_done, &probe, 5000));
	assert_int_equal(probe.rc, 0);
	tid = probe.thread_id;
	assert_true(tid != 0);

	assert_true(str_fmt(sql, sizeof(sql), "KILL %lu", tid) > 0);
	root_exec(sql);
	for (int i = 0; i < 100 && !pred_connection_gone(&tid); i++)
		usleep(50000);
	assert_true(pred_connection_gone(&tid));

	up0 = st.n - 1;
	assert_int_equal(db_submit(db, DB_JOB_RETRY, job_work, job_done, &retry), 0);
	assert_true(run_until(pred_job_done, &retry, 10000));
	assert_int_equal(retry.rc, 0);
	assert_int_equal(retry.attempts, 2);
	assert_true(retry.thread_id != tid);	/* a new connection */
	down = states_find(&st, up0, DB_STATE_DOWN);
	assert_true(down > up0);
	assert_true(states_find(&st, down, DB_STATE_UP) > down);
	assert_true(run_until(pred_state_up, &st, 5000));

	assert_int_equal(db_submit(db, 0, job_work, job_done, &after), 0);
	assert_true(run_until(pred_job_done, &after, 5000));
	assert_int_equal(after.rc, 0);
	db_stop(db, 1000);
}

static void
test_server_stopped(void **state)
{
	struct job nr1 = { .id = 1, .sql = { "SELECT 1" } };
	struct job r = { .id = 2, .sql = { "INSERT INTO t1 (id, v) VALUES (900, 'r') "
	    "ON DUPLICATE KEY UPDATE v = 'r'" } };
	struct job nr2 = { .id = 3, .sql = { "SELECT 1" } };
	struct job r2 = { .id = 4, .sql = { "SELECT 1" } };
	struct db_config c;
	struct states st, st2;
	struct db *db, *db2;
	int64_t t0;
	int up0;

	(void)state;
	require_server();
	reset_database();
	cfg_init(&c);
	db = start_db_up(&c, &st);
	up0 = st.n - 1;

	assert_int_equal(run_script("stop"), 0);

	/* A non-retry job fails fast with DB_JOB_CONN_LOST. */
	t0 = mono_ms();
	assert_int_equal(db_submit(db, 0, job_work, job_done, &nr1), 0);
	assert_true(run_until(pred_job_done, &nr1, 5000));
	assert_int_equal(nr1.rc, DB_JOB_CONN_LOST);
	assert_true(mono_ms() - t0 < 3000);
	assert_true(run_until(pred_state_down, &st, 5000));
	assert_int_equal(db_state(db), DB_STATE_DOWN);

	/* While down: a retry job waits, a non-retry job behind it fails. */
	assert_int_equal(db_submit(db, DB_JOB_RETRY, job_work, job_done, &r), 0);
	assert_int_equal(db_submit(db, 0, job_work, job_done, &nr2), 0);
	t0 = mono_ms();
	assert_true(run_until(pred_job_done, &nr2, 3000));
	assert_true(mono_ms() - t0 < 2000);
	assert_int_equal(nr2.rc, DB_JOB_CONN_LOST);
	assert_int_equal(nr2.attempts, 0);
	assert_int_equal(strncmp(nr2.err, "database unavailable: ", 22), 0);
	assert_false(run_until(pred_job_done, &r, 1200));
	assert_int_equal(db_queue_depth(db), 1);

	/* db_stop() on a database that stays down fails what is left. */
	db2 = start_db(&c, &st2);
	assert_true(run_until(pred_state_down, &st2, 5000));
	assert_int_equal(db_submit(db2, DB_JOB_RETRY, job_work, job_done, &r2), 0);
	t0 = mono_ms();
	db_stop(db2, 300);
	assert_true(mono_ms() - t0 >= 250);
	assert_true(mono_ms() - t0 < 3000);
	assert_true(r2.done);
	assert_true(r2.done_on_main);
	assert_int_equal(r2.rc, -1);
	assert_string_equal(r2.err, "shutting down");
	assert_int_equal(r2.attempts, 0);

	/* Server back: the retry job runs and the state goes UP again. */
	assert_int_equal(run_script("start"), 0);
	assert_true(run_until(pred_job_done, &r, 15000));
	assert_int_equal(r.rc, 0);
	assert_true(r.attempts >= 1);
	assert_true(states_last_is(&st, DB_STATE_UP));
	assert_true(states_find(&st, up0, DB_STATE_DOWN) > up0);
	assert_int_equal(root_int("SELECT COUNT(*) FROM custos.t1 WHERE id = 900"), 1);
	db_stop(db, 1000);
}

/* The product's own migrations apply cleanly to a real server. */
static void
test_product_migrations(void **state)
{
	struct db_config c;
	struct states st;
	struct db *db;

	(void)state;
	require_server();
	if (access("db/migrations/0001_initial.sql", R_OK) != 0)
		fail_msg("db/migrations/0001_initial.sql not found; run the tests "
		    "from the repository root");
	reset_database();
	cfg_init(&c);
	c.migrations_dir = "db/migrations";
	db = start_db_up(&c, &st);
	assert_true(db_schema_version(db) >= 1);
	db_stop(db, 1000);
	assert_int_equal(root_int("SELECT COUNT(*) FROM information_schema.tables "
	    "WHERE table_schema = 'custos' AND table_name IN "
	    "('hosts', 'events', 'enroll_tokens', 'admins')"), 4);
	reset_database();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_migrations_applied_once),
		cmocka_unit_test(test_broken_migration_reports_down),
		cmocka_unit_test(test_newer_schema_refused),
		cmocka_unit_test(test_jobs_in_order_on_main_thread),
		cmocka_unit_test(test_queue_bound_sheds),
		cmocka_unit_test(test_killed_connection_retry_job_rerun),
		cmocka_unit_test(test_server_stopped),
		cmocka_unit_test(test_product_migrations),
	};

	return cmocka_run_group_tests_name("db", tests, group_setup, group_teardown);
}
