/* store.c — see store.h: the main thread's side of the store (batching
 * host changes and events, enrolment, tokens, administrators). All SQL of
 * the daemon is in store/ (with db/migrations): batch.c, load.c, query.c,
 * mgmt_sql.c; store_priv.h is what these files share. */
#include "store/store.h"

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

static void store_schedule_flush(struct store *st);

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

/* ---- one-shot jobs ---- */
void
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
enroll_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct job *j = arg;
	struct host *h = j->host;
	int rc;
	if ((rc = db_exec(conn, "BEGIN", err, errlen)) != 0)
		return rc;
	MYSQL_STMT *st;
	rc = sql_run(conn, "INSERT INTO hosts (uid, name, hostname, cert_serial, enrolled_at)"
	    " VALUES (?, ?, ?, ?, ?)", json_pack("[s,s,s,s,I]", h->uid, h->name, h->hostname,
	    h->cert_serial, (json_int_t)h->enrolled_at), "insert host", &st, err, errlen);
	if (rc != 0)
		return rc;
	h->id = mysql_stmt_insert_id(st);
	mysql_stmt_close(st);
	if ((rc = sql_run(conn, "UPDATE enroll_tokens SET uses = uses + 1 WHERE name = ?",
	    json_pack("[s]", j->name), "count token use", NULL, err, errlen)) != 0)
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
	json_t *p = json_pack("[s,s,I,i,i,s,I]", j->tok.name, j->tok.secret_hash,
	    (json_int_t)j->tok.expires_at, j->tok.max_uses, j->tok.uses, j->tok.source,
	    (json_int_t)j->tok.created_at);
	/* uses is only set on insert: a running count is never reset by a reload */
	return sql_run(conn, "INSERT INTO enroll_tokens (name, secret_hash, expires_at, max_uses, uses,"
	    " source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
	    " secret_hash=VALUES(secret_hash), expires_at=VALUES(expires_at),"
	    " max_uses=VALUES(max_uses), source=VALUES(source)", p, "store token", NULL, err, errlen);
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
	return sql_run(conn, "DELETE FROM enroll_tokens WHERE name = ?", json_pack("[s]", j->name),
	    "delete token", NULL,
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
void
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

void
store_set_hooks(struct store *st, const struct store_hooks *hooks)
{
	st->hooks = *hooks;
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
