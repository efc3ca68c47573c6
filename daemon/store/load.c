/* load.c — the store's start-up load (hosts, tokens, administrators, the
 * day's threats) and its merge into the registry (hosts that came from the
 * snapshot or connected before the load). */
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
#include "core/naming.h"
#include "core/registry.h"
#include "core/server.h"
#include "store/snapshot.h"
#include "store/store_priv.h"
#include "util.h"

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
	struct store_threat *threats;
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

static int
load_hosts(MYSQL *conn, struct load *l, char *err, size_t errlen)
{
	MYSQL_STMT *st;
	int rc = sql_run(conn, "SELECT id, uid, name, hostname, cert_serial, enrolled_at, last_seen,"
	    " last_ip, wake_port, posture_time, IFNULL(posture, ''), group_id, placed,"
	    " policy_version, policy_hash, policy_applied_version, IFNULL(policy_errors, ''),"
	    " IFNULL(local_settings, ''), tags FROM hosts", json_array(),
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
	int rc = sql_run(conn, "SELECT name, secret_hash, expires_at, max_uses, uses, source,"
	    " created_at FROM enroll_tokens", json_array(), "load tokens", &st, err, errlen);
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

void
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
	int rc = sql_run(conn, "SELECT name, pw_hash, salt, iterations FROM admins", json_array(),
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
	int rc = sql_run(conn, "INSERT INTO admins (name, pw_hash, salt, iterations, created_at)"
	    " VALUES (?, ?, ?, ?, ?)", json_pack("[s,s,s,i,I]", a.name, a.pw_hash, a.salt, a.iterations,
	    (json_int_t)now), "create administrator", NULL, err, errlen);
	if (rc != 0)
		return rc;
	if (array_grow((void **)&l->admins, &l->cap_admins, l->nadmins + 1, sizeof(*l->admins)) < 0)
		return -1;
	l->admins[l->nadmins++] = a;
	l->created_admin = true;
	return 0;
}

/* Threats received within the last day, newest first (store_hooks.threats_loaded),
 * so that a restart keeps the 24 h count and the outbreak window. The time
 * index bounds the scan; STORE_THREATS_MAX bounds the memory. */
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
	    STORE_THREATS_MAX);
	if ((rc = sql_run(conn, sql, json_array(), "load threats", &st, err, errlen)) != 0)
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
		struct store_threat *e = &l->threats[l->nthreats++];
		copy_col(e->uid, sizeof(e->uid), uid, len[0]);
		e->received = received;
	}
	rc = f == 1 ? db_stmt_fail(st, "fetch threats", err, errlen) : 0;
	mysql_stmt_close(st);
	if (l->nthreats == STORE_THREATS_MAX)
		log_warnx("store", "more than %d threats in the last 24 h: the count starts with the "
		    "newest %d", STORE_THREATS_MAX, STORE_THREATS_MAX);
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
			registry_host_changed(srv->reg, mem, newer ? 0 : HOST_STORED);
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
	if (st->hooks.threats_loaded)
		st->hooks.threats_loaded(st->hooks.arg, now, l->threats, l->nthreats);
	srv->loaded = true;
	log_info("store", "loaded %zu host(s), %zu token(s) from the database%s", registry_host_count(srv->reg),
	    l->ntokens, merged ? " (merged with hosts seen meanwhile)" : "");
	load_free(l);
	snapshot_db_loaded(srv);
	store_apply_config_tokens(st);
	if (st->hooks.loaded)
		st->hooks.loaded(st->hooks.arg);
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

