/* api.c — see api.h. The console's REST/JSON API over HTTPS (libevent evhttp
 * with OpenSSL bufferevents). */
#include "api/api.h"
#include "api/api_internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/evp.h>

#include "core/accept.h"
#include "conf.h"
#include "db.h"
#include "model/groups.h"
#include "agents/listener.h"
#include "log.h"
#include "mgmt/mgmt.h"
#include "nacd/nac.h"
#include "core/registry.h"
#include "core/server.h"
#include "store/snapshot.h"
#include "store/store.h"
#include "tls.h"
#include "util.h"
#include "agents/wakeup.h"

#define API_BODY_MAX (64 * 1024)

void
api_reply(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *out = evbuffer_new();
	char *text = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(body);
	if (out == NULL || text == NULL) {
		free(text);
		if (out)
			evbuffer_free(out);
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	evbuffer_add(out, text, strlen(text));
	evbuffer_add(out, "\n", 1);
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", out);
	evbuffer_free(out);
}

void
api_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_reply(req, code, json_pack("{s:s}", "error", msg));
}

/* HTTP Basic authentication against the administrators. */
static bool
api_authorized(struct api *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (h == NULL || strncmp(h, "Basic ", 6) != 0 || strlen(h) > 512)
		return false;
	unsigned char dec[400];
	int n = EVP_DecodeBlock(dec, (const unsigned char *)h + 6, (int)strlen(h + 6));
	if (n <= 0)
		return false;
	/* EVP_DecodeBlock counts the padding bytes as zeros */
	dec[n] = '\0';
	char *colon = strchr((char *)dec, ':');
	if (colon == NULL)
		return false;
	*colon = '\0';
	return store_admin_check(a->srv->store, (char *)dec, colon + 1) == 0;
}

json_t *
api_host_json(struct api *a, const struct host *h)
{
	json_t *av = json_array();
	json_t *posture = h->posture;
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(posture, "antivirus"), i, v) {
		json_array_append_new(av, json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}",
		    "name", json_object_get(v, "name"), "installed", json_object_get(v, "installed"),
		    "db_version", json_object_get(v, "db_version"), "db_time", json_object_get(v, "db_time"),
		    "rtp", json_object_get(v, "rtp"), "running", json_object_get(v, "running")));
	}
	json_t *sys = json_object_get(posture, "system");
	json_t *os = json_object_get(sys, "os");
	json_t *j = json_pack("{s:s, s:I, s:s, s:s, s:s, s:o, s:I, s:I, s:s, s:b, s:O?, s:o}",
	    "name", h->name, "id", (json_int_t)h->id, "uid", h->uid, "hostname", h->hostname,
	    "status", status_name(h->st.status),
	    "reasons", status_reasons_json(&h->st, &h->sin, now_s()),
	    "last_seen", (json_int_t)h->last_seen, "enrolled_at", (json_int_t)h->enrolled_at,
	    "ip", h->last_ip, "connected", h->connected,
	    "os", json_object_get(os, "pretty_name"), "antivirus", av);
	char group[GROUP_PATH_MAX] = "";        /* "" = Unassigned */
	if (a->srv->mgmt)
		mgmt_group_path(a->srv->mgmt, h->group_id, group, sizeof(group));
	json_object_set_new(j, "group", json_string(group));
	return j;
}

static void
api_host(struct api *a, struct evhttp_request *req, const char *name, const char *action)
{
	struct host *h = registry_host_by_name(a->srv->reg, name);
	if (h == NULL) {
		api_error(req, 404, "no host named \"%s\" (custosctl hosts lists them)", name);
		return;
	}
	if (action == NULL) {
		if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
			api_error(req, 405, "use GET");
			return;
		}
		json_t *j = api_host_json(a, h);
		json_object_set(j, "posture", h->posture ? h->posture : json_null());
		json_object_set_new(j, "cert_serial", json_string(h->cert_serial));
		json_object_set_new(j, "wake_port", json_integer(h->wake_port));
		api_reply(req, 200, j);
		return;
	}
	if (strcmp(action, "wake") == 0 && evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		char err[256];
		if (wakeup_host(a->srv->wake, h, err, sizeof(err)) < 0) {
			api_error(req, 409, "%s", err);
			return;
		}
		api_reply(req, 202, json_pack("{s:s, s:s}", "host", h->name, "result", "wake-up sent"));
		return;
	}
	api_error(req, 404, "unknown host action \"%s\"", action);
}

static json_t *
token_json(const struct token *t)
{
	return json_pack("{s:s, s:I, s:i, s:i, s:s, s:I}", "name", t->name,
	    "expires", (json_int_t)t->expires_at, "max_uses", t->max_uses, "uses", t->uses,
	    "source", t->source, "created", (json_int_t)t->created_at);
}

struct pending {
	struct api *a;
	struct evhttp_request *req;
	json_t *reply;
	char name[65];
};

/* A request answered later, from a DB job's completion; NULL after
 * replying 500 when out of memory. */
static struct pending *
pending_new(struct api *a, struct evhttp_request *req, const char *name)
{
	struct pending *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		api_error(req, 500, "out of memory");
		return NULL;
	}
	p->a = a;
	p->req = req;
	str_copy(p->name, name ? name : "", sizeof(p->name));
	return p;
}

static void
token_created(void *arg, int rc, const char *err)
{
	struct pending *p = arg;
	if (rc != 0) {
		registry_del_token(p->a->srv->reg, p->name);
		json_decref(p->reply);
		api_error(p->req, 503, "token not stored: %s", err);
	} else {
		log_info("api", "created enrolment token \"%s\"", p->name);
		api_reply(p->req, 201, p->reply);
	}
	free(p);
}

static bool
token_name_ok(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

json_t *
api_request_json(struct evhttp_request *req, char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len == 0)
		return json_object();
	if (len > API_BODY_MAX) {
		str_fmt(err, errlen, "request body larger than %d bytes", API_BODY_MAX);
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
	if (j == NULL || !json_is_object(j)) {
		str_fmt(err, errlen, "request body is not a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

static void
api_token_create(struct api *a, struct evhttp_request *req)
{
	char err[256];
	json_t *body = api_request_json(req, err, sizeof(err));
	if (body == NULL) {
		api_error(req, 400, "%s", err);
		return;
	}
	const char *name = json_string_value(json_object_get(body, "name"));
	json_int_t ttl = json_integer_value(json_object_get(body, "expires_in"));
	json_int_t max_uses = json_integer_value(json_object_get(body, "max_uses"));
	if (!token_name_ok(name)) {
		json_decref(body);
		api_error(req, 400, "token name must be 1-64 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if (ttl < 0 || max_uses < 0 || max_uses > 1000000) {
		json_decref(body);
		api_error(req, 400, "expires_in and max_uses must be >= 0 (0 = no limit)");
		return;
	}
	if (registry_token(a->srv->reg, name)) {
		json_decref(body);
		api_error(req, 409, "a token named \"%s\" exists already", name);
		return;
	}
	struct token t;
	memset(&t, 0, sizeof(t));
	str_copy(t.name, name, sizeof(t.name));
	json_decref(body);
	char secret[33];
	if (random_id(secret) < 0) {
		api_error(req, 500, "no randomness");
		return;
	}
	token_hash(secret, t.secret_hash);
	t.created_at = now_s();
	t.expires_at = ttl ? t.created_at + ttl : 0;
	t.max_uses = (int)max_uses;
	str_copy(t.source, "api", sizeof(t.source));
	struct pending *p = calloc(1, sizeof(*p));
	if (p == NULL || registry_put_token(a->srv->reg, &t) < 0) {
		free(p);
		api_error(req, 500, "out of memory");
		return;
	}
	p->a = a;
	p->req = req;
	str_copy(p->name, t.name, sizeof(p->name));
	p->reply = token_json(&t);
	json_object_set_new(p->reply, "token", json_string(secret));
	if (store_token_put(a->srv->store, &t, token_created, p) < 0)
		token_created(p, -1, "database queue full");
}

static void
token_deleted(void *arg, int rc, const char *err)
{
	struct pending *p = arg;
	if (rc != 0)
		api_error(p->req, 503, "token not deleted: %s", err);
	else
		api_reply(p->req, 200, json_pack("{s:s}", "deleted", p->name));
	free(p);
}

static void
api_tokens(struct api *a, struct evhttp_request *req, const char *name)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (name == NULL && cmd == EVHTTP_REQ_GET) {
		size_t n;
		struct token **all = registry_tokens_sorted(a->srv->reg, &n);
		json_t *arr = json_array();
		for (size_t i = 0; all && i < n; i++)
			json_array_append_new(arr, token_json(all[i]));
		free(all);
		api_reply(req, 200, arr);
	} else if (name == NULL && cmd == EVHTTP_REQ_POST) {
		api_token_create(a, req);
	} else if (name && cmd == EVHTTP_REQ_DELETE) {
		struct token *t = registry_token(a->srv->reg, name);
		if (t == NULL) {
			api_error(req, 404, "no token named \"%s\"", name);
			return;
		}
		if (strcmp(t->source, "config") == 0) {
			api_error(req, 409, "token \"%s\" is declared in the configuration file; remove it "
			    "there and reload", name);
			return;
		}
		struct pending *p = pending_new(a, req, name);
		if (p == NULL)
			return;
		registry_del_token(a->srv->reg, name);
		if (store_token_del(a->srv->store, name, token_deleted, p) < 0)
			token_deleted(p, -1, "database queue full");
	} else {
		api_error(req, 405, "method not allowed here");
	}
}

static void
events_rows(void *arg, json_t *rows, const char *err)
{
	struct pending *p = arg;
	if (rows == NULL)
		api_error(p->req, 503, "events unavailable: %s", err);
	else
		api_reply(p->req, 200, json_incref(rows));
	free(p);
}

static void
software_rows(void *arg, json_t *rows, const char *err)
{
	struct pending *p = arg;
	if (rows == NULL) {
		api_error(p->req, 503, "the package list of \"%s\" is kept in the database, which is "
		    "unavailable: %s (custosctl status shows the database; try again)", p->name, err);
	} else if (!json_is_object(rows)) {
		api_error(p->req, 404, "host \"%s\" is no longer in the database", p->name);
	} else {
		json_t *j = json_copy(rows);
		if (j)
			json_object_set_new(j, "host", json_string(p->name));
		if (j == NULL)
			api_error(p->req, 500, "out of memory");
		else
			api_reply(p->req, 200, j);
	}
	free(p);
}

/* GET /api/v1/hosts/NAME/software: the package list lives in the database
 * only (the memory keeps software.packages_count). */
static void
api_host_software(struct api *a, struct evhttp_request *req, const char *name)
{
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		api_error(req, 405, "use GET");
		return;
	}
	struct host *h = registry_host_by_name(a->srv->reg, name);
	if (h == NULL) {
		api_error(req, 404, "no host named \"%s\" (custosctl hosts lists them)", name);
		return;
	}
	struct pending *p = pending_new(a, req, h->name);
	if (p == NULL)
		return;
	if (store_query_software(a->srv->store, h, software_rows, p) < 0) {
		api_error(req, 503, "the package list of \"%s\" is kept in the database, which is "
		    "unavailable or busy (custosctl status shows the database; try again)", p->name);
		free(p);
	}
}

static void
api_events(struct api *a, struct evhttp_request *req)
{
	struct evkeyvalq q = { 0 };
	const char *uri = evhttp_request_get_uri(req);
	const char *qs = strchr(uri, '?');
	if (qs && evhttp_parse_query_str(qs + 1, &q) < 0) {
		api_error(req, 400, "malformed query string");
		return;
	}
	const char *host = evhttp_find_header(&q, "host");
	const char *since = evhttp_find_header(&q, "since");
	const char *limit = evhttp_find_header(&q, "limit");
	long long lim = limit ? strtoll(limit, NULL, 10) : 100;
	long long from = since ? strtoll(since, NULL, 10) : 0;
	if (lim <= 0 || lim > 10000)
		lim = 100;
	struct pending *p = pending_new(a, req, NULL);
	if (p == NULL) {
		evhttp_clear_headers(&q);
		return;
	}
	if (store_query_events(a->srv->store, host, from, (size_t)lim, events_rows, p) < 0) {
		free(p);
		api_error(req, 503, "database unavailable");
	}
	evhttp_clear_headers(&q);
}

static const char *
db_state_name(enum db_state s)
{
	switch (s) {
	case DB_STATE_CONNECTING: return "connecting";
	case DB_STATE_UP: return "up";
	case DB_STATE_DOWN: return "down";
	case DB_STATE_REFUSED: return "refused";
	}
	return "?";
}

static void
api_status(struct api *a, struct evhttp_request *req)
{
	struct server *s = a->srv;
	size_t n, counts[3] = { 0, 0, 0 };
	uint64_t nac[NAC_TOKENS] = { 0 };
	struct host **all = registry_hosts_sorted(s->reg, &n);
	for (size_t i = 0; all && i < n; i++)
		counts[all[i]->st.status]++;
	free(all);
	if (s->nac)
		nac_token_counts(s->nac, nac);
	/* hosts per posture token, as CUSTOS-MIB's custosNac (all 0 when NAC is off) */
	json_t *nacj = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "enabled", s->nac != NULL,
	    "healthy", (json_int_t)nac[NAC_HEALTHY], "checkup", (json_int_t)nac[NAC_CHECKUP],
	    "transition", (json_int_t)nac[NAC_TRANSITION], "quarantine", (json_int_t)nac[NAC_QUARANTINE],
	    "infected", (json_int_t)nac[NAC_INFECTED], "unknown", (json_int_t)nac[NAC_UNKNOWN]);
	json_t *j = json_pack("{s:s, s:I, s:s, s:s, s:{s:I, s:I, s:I, s:I}, s:I,"
	    " s:{s:I, s:I, s:I, s:I, s:I, s:b}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
	    " s:o}",
	    "version", CUSTOS_VERSION, "uptime", (json_int_t)(now_s() - s->started),
	    "database", db_state_name(db_state(s->db)), "server_fingerprint", s->pki.server_fp,
	    "hosts", "total", (json_int_t)n, "ok", (json_int_t)counts[0],
	    "warning", (json_int_t)counts[1], "critical", (json_int_t)counts[2],
	    "agents_connected", (json_int_t)listener_conn_count(s->lis),
	    "write_queue", "events", (json_int_t)store_pending_events(s->store),
	    "hosts", (json_int_t)store_pending_hosts(s->store),
	    "jobs", (json_int_t)db_queue_depth(s->db),
	    "shed", (json_int_t)(store_shed_count(s->store) + db_shed_count(s->db)),
	    "refused", (json_int_t)store_refused_count(s->store),
	    "writing", store_writing(s->store),
	    "counters", "connections", (json_int_t)s->stats.conns_accepted,
	    "refused_limit", (json_int_t)s->stats.conns_rejected_limit,
	    "tls_failures", (json_int_t)s->stats.conns_failed_tls,
	    "bad_frames", (json_int_t)s->stats.conns_bad_frames,
	    "refused_address", (json_int_t)s->stats.conns_rejected_address,
	    "unauthenticated_closed", (json_int_t)s->stats.conns_preauth_closed,
	    "stalled", (json_int_t)s->stats.conns_stalled,
	    "accept_paused", (json_int_t)s->stats.accept_pauses,
	    "enrolled", (json_int_t)s->stats.enrolls_ok, "enroll_refused", (json_int_t)s->stats.enrolls_refused,
	    "syncs", (json_int_t)s->stats.syncs, "events_received", (json_int_t)s->stats.events_received,
	    "events_acked", (json_int_t)s->stats.events_acked,
	    "fields_truncated", (json_int_t)s->stats.fields_truncated,
	    "fields_dropped", (json_int_t)s->stats.fields_dropped,
	    "host_changes", (json_int_t)s->stats.host_changes, "host_writes", (json_int_t)s->stats.host_writes,
	    "nac", nacj);
	if (j)
		snapshot_status(s, j);    /* where the hosts and logins come from */
	api_reply(req, 200, j);
}

static void
api_dispatch(struct evhttp_request *req, void *arg)
{
	struct api *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	char buf[512], *seg[6];
	size_t nseg = 0;

	if (!api_authorized(a, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		    "Basic realm=\"custos\"");
		api_error(req, 401, "authentication required (user admin, password in the server's "
		    "state directory: admin.password)");
		return;
	}
	if (path == NULL || str_copy(buf, path, sizeof(buf)) >= sizeof(buf)) {
		api_error(req, 414, "path too long");
		return;
	}
	for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok && nseg < ARRAY_LEN(seg);
	    tok = strtok_r(NULL, "/", &save))
		seg[nseg++] = evhttp_uridecode(tok, 0, NULL);
	bool get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
	if (nseg < 3 || strcmp(seg[0], "api") != 0 || strcmp(seg[1], "v1") != 0)
		api_error(req, 404, "unknown path; the API lives under /api/v1/");
	else if (strcmp(seg[2], "status") == 0 && nseg == 3 && get)
		api_status(a, req);
	else if (strcmp(seg[2], "hosts") == 0 &&
	    (nseg == 4 || (nseg == 5 && strcmp(seg[4], "wake") == 0)))
		api_host(a, req, seg[3], nseg == 5 ? seg[4] : NULL);
	else if (strcmp(seg[2], "hosts") == 0 && nseg == 5 && seg[3] && seg[4] &&
	    strcmp(seg[4], "software") == 0)
		api_host_software(a, req, seg[3]);
	else if (strcmp(seg[2], "events") == 0 && nseg == 3 && get)
		api_events(a, req);
	else if (strcmp(seg[2], "tokens") == 0 && nseg <= 4)
		api_tokens(a, req, nseg == 4 ? seg[3] : NULL);
	else if (!api_mgmt_route(a, req, seg, nseg))
		api_error(req, 404, "unknown path %s", path);
	for (size_t i = 0; i < nseg; i++)
		free(seg[i]);
}

/* evhttp (libevent 2.1) has no connection limit and no hook when a
 * connection is freed; its TLS object is freed with it: the count goes
 * down in the SSL ex_data free callback. */
static int conn_idx = -1;

static void
conn_gone(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct api *a = ptr;
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (a == NULL || a->nconns == 0)
		return;
	a->nconns--;
	if (!a->stopping && a->nconns < a->max_conns)
		accept_guard_hold(a->guard, false);
}

/* One call per accepted connection: counted; at api.max_connections the
 * listener stops accepting (the kernel's backlog waits, then refuses)
 * until one closes. */
static struct bufferevent *
api_bevcb(struct event_base *base, void *arg)
{
	struct api *a = arg;
	SSL *ssl = SSL_new(a->ctx);
	if (ssl == NULL)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL || SSL_set_ex_data(ssl, conn_idx, a) != 1)
		return bev;
	if (++a->nconns >= a->max_conns) {
		accept_guard_hold(a->guard, true);
		int64_t now = now_s();
		if (now - a->last_cap_log >= 60) {
			log_warnx("api", "%zu console connections open (api.max_connections); not accepting more "
			    "until one closes", a->nconns);
			a->last_cap_log = now;
		}
	}
	return bev;
}

/* The listening socket of api.address (a name or an address) and api.port. */
static struct evconnlistener *
api_bind(struct api *a, const char *addr, int port, char *err, size_t errlen)
{
	struct evutil_addrinfo hints, *res = NULL;
	char service[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
	str_fmt(service, sizeof(service), "%d", port);
	int rc = evutil_getaddrinfo(addr, service, &hints, &res);
	if (rc != 0) {
		str_fmt(err, errlen, "api.address %s: %s", addr, evutil_gai_strerror(rc));
		return NULL;
	}
	struct evconnlistener *evl = evconnlistener_new_bind(a->srv->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128, res->ai_addr,
	    (int)res->ai_addrlen);
	if (evl == NULL)
		str_fmt(err, errlen, "cannot listen on %s:%d for the console API: %s (change api.port?)",
		    addr, port, strerror(errno));
	evutil_freeaddrinfo(res);
	return evl;
}

struct api *
api_start(struct server *srv, char *err, size_t errlen)
{
	struct api *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		str_fmt(err, errlen, "out of memory");
		return NULL;
	}
	a->srv = srv;
	a->ctx = tls_server_ctx(srv->pki.cert_path, srv->pki.key_path, NULL, 0, err, errlen);
	a->http = evhttp_new(srv->base);
	if (a->ctx == NULL || a->http == NULL)
		goto fail;
	evhttp_set_bevcb(a->http, api_bevcb, a);
	evhttp_set_gencb(a->http, api_dispatch, a);
	evhttp_set_max_body_size(a->http, API_BODY_MAX);
	evhttp_set_max_headers_size(a->http, 16 * 1024);
	evhttp_set_timeout(a->http, 30);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE);
	const char *addr = conf_str(srv->cfg, "api.address");
	int port = (int)conf_int(srv->cfg, "api.port");
	a->max_conns = (size_t)conf_int(srv->cfg, "api.max_connections");
	if (conn_idx < 0)
		conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_gone);
	if (conn_idx < 0) {
		str_fmt(err, errlen, "out of memory");
		goto fail;
	}
	struct evconnlistener *evl = api_bind(a, addr, port, err, errlen);
	if (evl == NULL)
		goto fail;
	a->guard = accept_guard_new(srv->base, evl, "api", "console API", "raise the open-file limit "
	    "(LimitNOFILE= in custosd's unit, ulimit -n) or lower api.max_connections",
	    &srv->stats.accept_pauses);
	if (a->guard == NULL || evhttp_bind_listener(a->http, evl) == NULL) {
		str_fmt(err, errlen, "console API: out of memory");
		accept_guard_free(a->guard);
		a->guard = NULL;
		evconnlistener_free(evl);
		goto fail;
	}
	log_info("api", "console API on https://%s:%d/api/v1/ (at most %zu connections)", addr, port,
	    a->max_conns);
	return a;
fail:
	if (a->http)
		evhttp_free(a->http);
	SSL_CTX_free(a->ctx);
	free(a);
	return NULL;
}

void
api_stop(struct api *a)
{
	if (a == NULL)
		return;
	/* the listener goes first, then the connections (counted down) */
	a->stopping = true;
	accept_guard_free(a->guard);
	a->guard = NULL;
	evhttp_free(a->http);
	SSL_CTX_free(a->ctx);
	free(a);
}
