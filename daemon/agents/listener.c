/* listener.c — see listener.h. All libevent glue of the agent port. */
#include "agents/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/accept.h"
#include "core/bounds.h"
#include "conf.h"
#include "fleet/fleet.h"
#include "frame.h"
#include "log.h"
#include "mgmt/mgmt.h"
#include "core/naming.h"
#include "core/registry.h"
#include "core/server.h"
#include "store/store.h"
#include "tls.h"
#include "hmap.h"
#include "util.h"

#define MAX_EVENTS_PER_MSG 1000
#define SYNC_NOW_RESEND_S 60	/* a resent posture event asks for a sync again */
#define AGENT_CERT_DAYS 3650
/* Before authentication only one enroll (token, CSR, host name: about 1 KiB)
 * may come; a larger frame there is abuse. */
#define PREAUTH_MAX_FRAME (16 * 1024)

struct conn {
	struct listener *lis;
	struct bufferevent *bev;
	struct conn *prev, *next;
	char peer[80];            /* "ip:port" for messages */
	char ip[64];
	char key[64];             /* its entry in the per-address table */
	char uid[33];             /* CN of a verified client certificate, "" if none */
	struct host *host;
	struct event *deadline;   /* handshake, enroll or stalled-output deadline */
	int refs;                 /* pending asynchronous replies */
	bool dead;                /* socket gone; struct kept for pending replies */
	bool closing;             /* flush the output, then close */
	bool handshaken;
	bool preauth;             /* counted in the listener's per-address table */
	bool enroll_seen;         /* no certificate: its one enroll came, nothing may follow */
	bool throttled;           /* reading paused until the output drains */
	size_t stall_out;         /* output bytes when the stall deadline was (re)armed */
	bool sync_asked;          /* sync_now sent, no sync since: a close may have lost it */
};

/* unauthenticated connections of one client address (an IPv6 /64) */
struct addr_count {
	char ip[64];              /* the key (listener_addr_key) */
	size_t n;
};

/* one log line a second at most per kind of refusal */
struct ratelog {
	int64_t last;
	uint64_t quiet;           /* not logged since the last line */
};

struct listener {
	struct server *srv;
	struct evconnlistener *evl;
	SSL_CTX *ctx;
	struct conn *conns;
	size_t nconns, max_conns;
	size_t max_frame;
	size_t out_high, out_low;  /* output bytes: stop reading above, resume at or below */
	size_t max_preauth_per_addr;
	size_t npreauth, max_preauth;  /* unauthenticated connections, all addresses */
	int handshake_timeout, idle_timeout, enroll_timeout, write_timeout;
	struct hmap *preauth;      /* ip -> struct addr_count */
	struct hmap *live;         /* host uid -> its newest connection (key: conn's uid) */
	struct hmap *asked;        /* host uid -> struct posture_ask, the last minute's */
	int64_t asked_swept;
	struct accept_guard *guard;  /* accept() out of file descriptors pauses */
	struct ratelog log_limit, log_addr, log_preauth_all, log_preauth, log_stalled, log_hs_timeout,
	    log_hs_eof;
	void (*push_lost)(void *arg, struct host *h);
	void *push_lost_arg;
	bool stopping;
};

static size_t
preauth_max_frame(const struct listener *l)
{
	return l->max_frame < PREAUTH_MAX_FRAME ? l->max_frame : PREAUTH_MAX_FRAME;
}

/* true when a line may be logged now; *quiet then holds how many were not */
static bool
ratelog_ok(struct ratelog *r, uint64_t *quiet)
{
	int64_t now = now_s();
	if (now == r->last) {
		r->quiet++;
		return false;
	}
	r->last = now;
	*quiet = r->quiet;
	r->quiet = 0;
	return true;
}

static void conn_close(struct conn *c);
static void conn_read_cb(struct bufferevent *bev, void *arg);

/* Reading stops while more than out_high bytes of replies wait for the peer
 * (conn_write_cb resumes it at out_low), so a peer that sends and never reads
 * costs us a bounded buffer; one that takes nothing for write_timeout is
 * closed (conn_deadline_cb, or the bufferevent's write timeout). */
static void
conn_check_output(struct conn *c)
{
	struct listener *l = c->lis;
	if (c->dead || c->throttled || evbuffer_get_length(bufferevent_get_output(c->bev)) <= l->out_high)
		return;
	c->throttled = true;
	bufferevent_disable(c->bev, EV_READ);
	/* an unauthenticated connection keeps its enrolment deadline */
	if (!c->preauth) {
		struct timeval tv = { l->write_timeout, 0 };
		c->stall_out = evbuffer_get_length(bufferevent_get_output(c->bev));
		event_add(c->deadline, &tv);
	}
	log_debug("agent", "%s: %zu byte(s) of replies waiting: not reading until they drain", c->peer,
	    evbuffer_get_length(bufferevent_get_output(c->bev)));
}

static void
conn_unref(struct conn *c)
{
	if (--c->refs == 0 && c->dead)
		free(c);
}

static void
conn_send(struct conn *c, json_t *msg)
{
	char err[256];
	if (c->dead || c->closing) {
		json_decref(msg);
		return;
	}
	if (frame_encode(bufferevent_get_output(c->bev), msg, c->lis->max_frame, err, sizeof(err)) < 0)
		log_warnx("agent", "%s: reply not sent: %s", c->peer, err);
	json_decref(msg);
	conn_check_output(c);
	fleet_note_agent_work(c->lis->srv->fleet);
}

static void
conn_error(struct conn *c, const char *code, const char *message, bool close_after)
{
	conn_send(c, json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message));
	if (close_after && !c->dead) {
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_close(c);
	}
}

/* ---- enrolment ---- */

struct enroll_ctx {
	struct conn *c;
	struct host *h;
	char token[65];
	char *cert_pem;
};

static void
enroll_done(void *arg, int rc, const char *err)
{
	struct enroll_ctx *e = arg;
	struct conn *c = e->c;
	struct server *srv = c->lis->srv;
	struct token *t = registry_token(srv->reg, e->token);

	if (rc != 0) {
		log_warnx("enroll", "%s: storing new host %s failed: %s", c->peer, e->h->name, err);
		if (t && t->uses > 0)
			t->uses--;
		registry_remove_host(srv->reg, e->h);
		conn_error(c, "unavailable", "the server could not store the new host; retry later", true);
		srv->stats.enrolls_refused++;
	} else {
		log_info("enroll", "%s: enrolled host %s (%s) with token \"%s\"", c->peer, e->h->name,
		    e->h->uid, e->token);
		char *ca = pki_cert_to_pem(srv->pki.ca_cert);
		conn_send(c, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "enrolled",
		    "host_id", e->h->uid, "name", e->h->name, "cert", e->cert_pem,
		    "ca", ca ? ca : "", "server_fingerprint", srv->pki.server_fp));
		free(ca);
		srv->stats.enrolls_ok++;
		/* store_enroll has just inserted the row: no write-back */
		registry_host_changed(srv->reg, e->h, HOST_STORED);
		if (!c->dead) {
			c->closing = true;
			if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
				conn_close(c);
		}
	}
	free(e->cert_pem);
	conn_unref(c);
	free(e);
}

static void
handle_enroll(struct conn *c, json_t *msg)
{
	struct server *srv = c->lis->srv;
	const char *secret = json_string_value(json_object_get(msg, "token"));
	const char *csr = json_string_value(json_object_get(msg, "csr"));
	const char *reported = json_string_value(json_object_get(msg, "hostname"));
	char err[512], msgbuf[512];

	if (!secret || !csr || !reported || strlen(secret) > 256 || strlen(reported) > 255) {
		conn_error(c, "bad_request", "enroll needs string fields token, csr and hostname", true);
		return;
	}
	struct token *t = registry_token_by_secret(srv->reg, secret);
	int64_t now = now_s();
	if (t == NULL) {
		log_warnx("enroll", "%s: refused: unknown enrolment token", c->peer);
		conn_error(c, "token_invalid", "enrolment token is not valid; ask the administrator for "
		    "a current one (custosctl token create)", true);
		srv->stats.enrolls_refused++;
		return;
	}
	if (t->expires_at != 0 && t->expires_at <= now) {
		char when[32];
		time_iso(t->expires_at, when);
		str_fmt(msgbuf, sizeof(msgbuf), "enrolment token \"%s\" expired on %s; issue a new one "
		    "with custosctl token create", t->name, when);
		log_warnx("enroll", "%s: refused: %s", c->peer, msgbuf);
		conn_error(c, "token_expired", msgbuf, true);
		srv->stats.enrolls_refused++;
		return;
	}
	if (t->max_uses != 0 && t->uses >= t->max_uses) {
		str_fmt(msgbuf, sizeof(msgbuf), "enrolment token \"%s\" is used up (%d of %d uses); "
		    "issue a new one with custosctl token create", t->name, t->uses, t->max_uses);
		log_warnx("enroll", "%s: refused: %s", c->peer, msgbuf);
		conn_error(c, "token_used_up", msgbuf, true);
		srv->stats.enrolls_refused++;
		return;
	}
	if (!srv->loaded) {
		conn_error(c, "unavailable", "the server database is not available yet; retry later", true);
		return;
	}

	struct host *h = calloc(1, sizeof(*h));
	struct enroll_ctx *e = calloc(1, sizeof(*e));
	char base[64];
	if (h == NULL || e == NULL || random_id(h->uid) < 0) {
		free(h);
		free(e);
		conn_error(c, "unavailable", "server out of resources; retry later", true);
		return;
	}
	naming_clean(reported, base, sizeof(base));
	if (naming_unique(base, registry_name_taken, srv->reg, h->name, sizeof(h->name)) < 0) {
		free(h);
		free(e);
		conn_error(c, "bad_request", "no free name for this host name", true);
		return;
	}
	str_copy(h->hostname, reported, sizeof(h->hostname));
	h->enrolled_at = now;
	if (pki_sign_csr(&srv->pki, csr, strlen(csr), h->uid, AGENT_CERT_DAYS, &e->cert_pem,
	    h->cert_serial, err, sizeof(err)) < 0) {
		log_warnx("enroll", "%s: refused: %s", c->peer, err);
		free(h);
		free(e);
		conn_error(c, "bad_csr", err, true);
		srv->stats.enrolls_refused++;
		return;
	}
	host_evaluate(h, &srv->thr, now);
	/* Reserve the name and count the use now: concurrent enrolments of the
	 * same host name must not both get it. Undone if the commit fails. */
	if (registry_add_host(srv->reg, h) < 0) {
		free(e->cert_pem);
		free(h);
		free(e);
		conn_error(c, "unavailable", "server out of resources; retry later", true);
		return;
	}
	t->uses++;
	e->c = c;
	e->h = h;
	str_copy(e->token, t->name, sizeof(e->token));
	c->refs++;
	bufferevent_disable(c->bev, EV_READ);
	if (store_enroll(srv->store, h, t->name, enroll_done, e) < 0)
		enroll_done(e, -1, "database queue full");
}

/* ---- sync, events, ping ---- */

static struct host *
conn_host(struct conn *c)
{
	struct server *srv = c->lis->srv;
	if (c->host)
		return c->host;
	struct host *h = registry_host_by_uid(srv->reg, c->uid);
	if (h == NULL && !srv->loaded) {
		/* Database not loaded yet: serve from memory; the load merges. */
		h = calloc(1, sizeof(*h));
		if (h == NULL)
			return NULL;
		str_copy(h->uid, c->uid, sizeof(h->uid));
		str_fmt(h->name, sizeof(h->name), "pending-%.8s", c->uid);
		if (registry_add_host(srv->reg, h) < 0) {
			free(h);
			return NULL;
		}
	}
	if (h == NULL)
		return NULL;
	/* replaced in place (no allocation when the agent had a connection) */
	void *prev = NULL;
	if (hmap_put(c->lis->live, c->uid, c, &prev) < 0) {
		/* not tracked, so not bound: c->host stays NULL and nothing
		 * can keep a host that goes away (served message by message) */
		log_warnx("agent", "%s: out of memory; sync requests for %s go by datagram", c->peer, h->name);
		return h;
	}
	struct conn *old = prev;
	if (old && old != c)
		old->host = NULL; /* a newer connection of the same agent wins */
	h->connected = true;
	c->host = h;
	return h;
}

/* Every field that reaches a column or memory is cut to its size here
 * (daemon/bounds.c), counted in the status counters. */
static void
fields_bound(struct conn *c, struct host *h, json_t *obj,
    void (*fn)(json_t *, const char *, struct bounds_count *))
{
	struct server *srv = c->lis->srv;
	struct bounds_count cnt = { 0, 0 };
	fn(obj, h->name, &cnt);
	srv->stats.fields_truncated += cnt.truncated;
	srv->stats.fields_dropped += cnt.dropped;
}

static void
handle_sync(struct conn *c, struct host *h, json_t *msg)
{
	struct server *srv = c->lis->srv;
	json_t *posture = json_object_get(msg, "posture");
	json_int_t wake = json_integer_value(json_object_get(msg, "wake_port"));
	int64_t now = now_s();

	c->sync_asked = false;
	if (posture && !json_is_object(posture)) {
		conn_error(c, "bad_request", "sync: posture must be an object", false);
		return;
	}
	fields_bound(c, h, msg, bounds_sync);
	posture = json_object_get(msg, "posture");
	h->last_seen = now;
	str_copy(h->last_ip, c->ip, sizeof(h->last_ip));
	if (wake > 0 && wake < 65536)
		h->wake_port = (int)wake;
	if (posture)
		host_set_posture(h, json_incref(posture), now, mgmt_host_thresholds(srv, h), now);
	else
		host_evaluate(h, mgmt_host_thresholds(srv, h), now);
	srv->stats.syncs++;

	long long interval = conf_int(srv->cfg, "sync.interval");
	long long jitter = conf_int(srv->cfg, "sync.jitter");
	uint32_t r = 0;
	random_bytes(&r, sizeof(r));
	long long next = interval + (jitter > 0 ? (long long)(r % (uint32_t)jitter) : 0);
	json_t *reply = json_pack("{s:s, s:I, s:I, s:s, s:I}", "type", "sync_ok", "next_sync",
	    (json_int_t)next, "server_time", (json_int_t)now, "name", h->name,
	    "max_frame", (json_int_t)c->lis->max_frame);
	/* first the placement by the relocation rules (a new group, its
	 * thresholds), so that the status and NAC token of the first sync are
	 * already those of the host's group */
	bool moved = mgmt_on_sync(srv->mgmt, h, msg, reply);
	registry_host_changed(srv->reg, h, moved ? HOST_REEVALUATE : 0);
	json_object_set_new(reply, "status", json_string(status_name(h->st.status)));
	conn_send(c, reply);
}

struct events_ctx {
	struct conn *c;
	json_t *ids;
	json_t *refused;          /* [{id, reason}] of events not stored, or NULL */
};

/* Event kinds that say a fact of the host's posture changed: when they
 * arrive the agent is asked for its posture at once, so that status, NAC
 * token and CoA follow within milliseconds, not at the next regular sync
 * (the agent counts a threat before it queues the event). Asked on arrival,
 * not on commit: the status and token live in memory and must not wait
 * for a database that is away; and the request goes out before the ack, as
 * an agent without a kept connection closes it once nothing it sent waits
 * for an answer. */
static bool
kind_changes_posture(const char *kind)
{
	static const char *const kinds[] = { "threat_found", "threats_cleared", "rtp_stopped",
		"rtp_started", "databases_updated" };
	for (size_t i = 0; kind && i < ARRAY_LEN(kinds); i++)
		if (strcmp(kind, kinds[i]) == 0)
			return true;
	return false;
}

static void
events_done(void *arg, int rc, const char *err)
{
	struct events_ctx *e = arg;
	struct server *srv = e->c->lis->srv;
	if (rc == 0) {
		srv->stats.events_acked += json_array_size(e->ids);
		json_t *ack = json_pack("{s:s, s:O}", "type", "ack", "ids", e->ids);
		if (ack && e->refused)
			json_object_set(ack, "refused", e->refused);
		conn_send(e->c, ack);
	} else {
		log_debug("agent", "%s: %zu event(s) not stored: %s", e->c->peer, json_array_size(e->ids), err);
		conn_send(e->c, json_pack("{s:s, s:O, s:i}", "type", "nack", "ids", e->ids, "retry_after", 5));
	}
	json_decref(e->ids);
	json_decref(e->refused);
	conn_unref(e->c);
	free(e);
}

static bool
is_hex32(const char *s)
{
	if (s == NULL || strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Checks one event; NULL when valid, else what is wrong. */
static const char *
event_invalid(json_t *ev)
{
	static const char *sev[] = { "critical", "error", "warning", "info" };
	if (!json_is_object(ev))
		return "an event is not an object";
	if (!is_hex32(json_string_value(json_object_get(ev, "id"))))
		return "event id must be 32 lower-case hex digits";
	if (!json_is_integer(json_object_get(ev, "time")))
		return "event time must be an integer";
	const char *s = json_string_value(json_object_get(ev, "severity"));
	bool ok = false;
	for (size_t i = 0; s && i < ARRAY_LEN(sev); i++)
		ok = ok || strcmp(s, sev[i]) == 0;
	if (!ok)
		return "event severity must be critical, error, warning or info";
	/* lengths are bounded afterwards (fields_bound) */
	const char *k = json_string_value(json_object_get(ev, "kind"));
	if (k == NULL || *k == '\0')
		return "event kind must be a non-empty string";
	if (!json_is_string(json_object_get(ev, "message")))
		return "event message must be a string";
	json_t *d = json_object_get(ev, "data");
	if (d && !json_is_object(d))
		return "event data must be an object";
	return NULL;
}

/* The newest posture event of a host that asked for a sync, and when: a
 * resend of the same event (after a nack, every 5 s while the database is
 * away, or after a reconnection) asks again only SYNC_NOW_RESEND_S later,
 * in case the first sync_now was lost with its connection. Kept here, not
 * in struct host, for the last SYNC_NOW_RESEND_S only (older entries decide
 * nothing and are swept). */
struct posture_ask {
	char uid[33];
	char id[33];
	int64_t at;
};

struct sweep {
	int64_t now;
	char (*uids)[33];
	size_t n, max;
};

static void
sweep_one(void *value, void *arg)
{
	struct posture_ask *a = value;
	struct sweep *w = arg;
	if (w->now - a->at >= SYNC_NOW_RESEND_S && w->n < w->max)
		str_copy(w->uids[w->n++], a->uid, sizeof(w->uids[0]));
}

static bool
posture_sync_due(struct listener *l, const char *uid, const char *id, int64_t now)
{
	struct posture_ask *a = hmap_get(l->asked, uid);
	if (a && strcmp(a->id, id) == 0 && now - a->at < SYNC_NOW_RESEND_S)
		return false;
	if (a == NULL) {
		if (now - l->asked_swept >= SYNC_NOW_RESEND_S) {
			struct sweep w = { .now = now, .max = hmap_count(l->asked) };
			l->asked_swept = now;
			if (w.max && (w.uids = calloc(w.max, sizeof(*w.uids))) != NULL) {
				hmap_foreach(l->asked, sweep_one, &w);
				for (size_t i = 0; i < w.n; i++)
					free(hmap_del(l->asked, w.uids[i]));
				free(w.uids);
			}
		}
		if ((a = calloc(1, sizeof(*a))) == NULL)
			return true;
		str_copy(a->uid, uid, sizeof(a->uid));
		if (hmap_put(l->asked, a->uid, a, NULL) < 0) {
			free(a);
			return true;
		}
	}
	str_copy(a->id, id, sizeof(a->id));
	a->at = now;
	return true;
}

static void
handle_events(struct conn *c, struct host *h, json_t *msg)
{
	struct server *srv = c->lis->srv;
	json_t *events = json_object_get(msg, "events");
	size_t n = json_array_size(events);
	char why[256];

	if (!json_is_array(events) || n == 0 || n > MAX_EVENTS_PER_MSG) {
		conn_error(c, "bad_request", "events must be an array of 1 to 1000 events", false);
		return;
	}
	size_t i;
	json_t *ev;
	/* a bad event is refused on its own (named in the ack's "refused",
	 * so that the agent sets it aside); the others are stored */
	json_t *good = json_array(), *refused = json_array();
	if (good == NULL || refused == NULL) {
		json_decref(good);
		json_decref(refused);
		return;
	}
	json_array_foreach(events, i, ev) {
		const char *bad = event_invalid(ev);
		if (bad == NULL) {
			json_array_append(good, ev);
			continue;
		}
		const char *id = json_string_value(json_object_get(ev, "id"));
		str_fmt(why, sizeof(why), "event %zu (%s) refused: %s; the other events of the message are "
		    "stored", i, is_hex32(id) ? id : "without a valid id", bad);
		log_warnx("agent", "%s (%s): %s", c->peer, h->name, why);
		if (is_hex32(id))
			json_array_append_new(refused, json_pack("{s:s, s:s}", "id", id, "reason", bad));
	}
	json_array_foreach(events, i, ev)
		fields_bound(c, h, ev, bounds_event);
	srv->stats.events_received += n;
	if (json_array_size(refused) == 0) {
		json_decref(refused);
		refused = NULL;
	}
	if (json_array_size(good) == 0) {
		json_t *ack = json_pack("{s:s, s:[]}", "type", "ack", "ids");
		if (ack && refused)
			json_object_set(ack, "refused", refused);
		conn_send(c, ack);
		json_decref(good);
		json_decref(refused);
		return;
	}
	events = good;
	h->last_seen = now_s();
	/* last_seen: the write-back (coalesced per host until the next flush),
	 * the fleet and the NAC entry (which of two hosts with one MAC is the
	 * newer); no re-evaluation, the posture did not change */
	registry_host_changed(srv->reg, h, 0);
	/* threats reach SNMP even while the database is down; a resend (after
	 * a nack) is recognised by its event id, once, by the fleet, and counts
	 * toward neither the fleet's nor a group's outbreak */
	mgmt_on_threats(srv->mgmt, h, fleet_agent_events(srv, h, events));
	struct events_ctx *e = calloc(1, sizeof(*e));
	json_t *ids = json_array();
	if (e == NULL || ids == NULL) {
		free(e);
		json_decref(ids);
		json_decref(good);
		json_decref(refused);
		return;
	}
	e->refused = refused;
	const char *posture_id = NULL;
	json_array_foreach(events, i, ev) {
		json_array_append(ids, json_object_get(ev, "id"));
		if (kind_changes_posture(json_string_value(json_object_get(ev, "kind"))))
			posture_id = json_string_value(json_object_get(ev, "id"));
	}
	/* a batch whose newest posture event asked for a sync already is a
	 * resend: see posture_sync_due */
	if (posture_id != NULL && posture_sync_due(c->lis, h->uid, posture_id, now_s())) {
		log_debug("agent", "%s: a posture fact changed; asking for a sync", c->peer);
		conn_send(c, json_pack("{s:s}", "type", "sync_now"));
	}
	e->c = c;
	e->ids = ids;
	c->refs++;
	if (store_events(srv->store, h, events, events_done, e) < 0)
		events_done(e, -1, h->id == 0 ? "host not stored yet" : "write queue full");
	json_decref(good);
}

static void
conn_dispatch(struct conn *c, json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));
	if (type == NULL) {
		conn_error(c, "bad_request", "message has no type", false);
		return;
	}
	if (strcmp(type, "enroll") == 0) {
		handle_enroll(c, msg);
		return;
	}
	if (strcmp(type, "ping") == 0) {
		/* with the limit on messages: an agent learns it before it sends
		 * events on a connection without a sync */
		conn_send(c, json_pack("{s:s, s:I}", "type", "pong", "max_frame", (json_int_t)(
		    c->uid[0] != '\0' ? c->lis->max_frame : preauth_max_frame(c->lis))));
		return;
	}
	if (c->uid[0] == '\0') {
		conn_error(c, "not_enrolled", "this connection has no client certificate; enroll first "
		    "(custos-agent --server HOST --token TOKEN)", true);
		return;
	}
	struct host *h = conn_host(c);
	if (h == NULL) {
		log_warnx("agent", "%s: certificate %s is valid but the host is not registered", c->peer, c->uid);
		conn_error(c, "unknown_host", "this host is not registered on the server (deleted?); "
		    "enroll it again with a new token", true);
		return;
	}
	if (strcmp(type, "sync") == 0)
		handle_sync(c, h, msg);
	else if (strcmp(type, "events") == 0)
		handle_events(c, h, msg);
	else
		conn_error(c, "bad_request", "unknown message type", false);
}

/* ---- libevent callbacks ---- */

/* Before authentication (no client certificate) a connection may send one
 * enroll and nothing else; false (the connection is closing) when msg is
 * refused. An enroll on any connection is the last message read from it. */
static bool
conn_admit(struct conn *c, json_t *msg)
{
	struct listener *l = c->lis;
	const char *type = json_string_value(json_object_get(msg, "type"));
	uint64_t quiet;

	if (type && strcmp(type, "enroll") == 0) {
		c->enroll_seen = true;
		/* the reply waits for the commit; its flush is bounded by the
		 * write timeout */
		event_del(c->deadline);
		return true;
	}
	if (c->uid[0] != '\0')
		return true;
	l->srv->stats.conns_preauth_closed++;
	if (ratelog_ok(&l->log_preauth, &quiet))
		log_warnx("agent", "%s: closing: \"%.32s\" without a client certificate, where only one "
		    "enroll may come (%llu more such connection(s) closed since the last line)", c->peer,
		    type ? type : "(no type)", (unsigned long long)quiet);
	conn_error(c, "not_enrolled", "this connection has no client certificate: it may only enroll "
	    "(custos-agent --server HOST --token TOKEN)", true);
	return false;
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t max = c->uid[0] != '\0' ? c->lis->max_frame : preauth_max_frame(c->lis);
	char err[256];

	while (!c->dead && !c->closing && !c->throttled && !c->enroll_seen) {
		json_t *msg;
		enum frame_rc rc = frame_decode(in, max, &msg, err, sizeof(err));
		if (rc == FRAME_NEED_MORE)
			return;
		if (rc != FRAME_OK) {
			log_warnx("agent", "%s: closing: %s", c->peer, err);
			c->lis->srv->stats.conns_bad_frames++;
			conn_close(c);
			return;
		}
		fleet_note_agent_work(c->lis->srv->fleet);
		/* the handler may close the connection: keep the struct alive */
		c->refs++;
		if (conn_admit(c, msg))
			conn_dispatch(c, msg);
		json_decref(msg);
		bool gone = c->dead;
		conn_unref(c);
		/* an enrolment waits for its commit before reading on; a
		 * throttled connection waits for its output to drain */
		if (gone || !(bufferevent_get_enabled(bev) & EV_READ))
			return;
	}
}

/* Called whenever a write leaves out_low bytes or fewer waiting. */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));
	if (c->closing && left == 0) {
		conn_close(c);
		return;
	}
	if (!c->throttled || left > c->lis->out_low)
		return;
	c->throttled = false;
	if (!c->preauth)
		event_del(c->deadline);
	if (c->closing || c->enroll_seen)
		return;
	bufferevent_enable(bev, EV_READ);
	/* whole frames may be buffered already: no read event would come */
	conn_read_cb(bev, c);
}

static void
conn_tls_errors(struct conn *c, char *buf, size_t len)
{
	unsigned long e;
	size_t off = 0;
	buf[0] = '\0';
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0 && off + 2 < len) {
		char one[256];
		/* libevent also queues SSL_get_error() results, which are not
		 * library error codes */
		if (ERR_GET_LIB(e) == 0)
			continue;
		ERR_error_string_n(e, one, sizeof(one));
		int n = snprintf(buf + off, len - off, "%s%s", off ? "; " : "", one);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (buf[0] == '\0')
		str_copy(buf, errno ? strerror(errno) : "connection closed", len);
}

/* The connection no longer counts against its address's unauthenticated
 * connections. */
static void
preauth_release(struct conn *c)
{
	struct listener *l = c->lis;
	if (!c->preauth)
		return;
	c->preauth = false;
	l->npreauth--;
	struct addr_count *ac = hmap_get(l->preauth, c->key);
	if (ac && --ac->n == 0)
		free(hmap_del(l->preauth, c->key));
}

/* Logs (rate-limited) and counts a connection closed because the peer takes
 * none of our replies. */
static void
conn_stalled(struct conn *c)
{
	struct listener *l = c->lis;
	uint64_t quiet;
	l->srv->stats.conns_stalled++;
	if (ratelog_ok(&l->log_stalled, &quiet))
		log_warnx("agent", "%s: closing: the peer has not taken our replies for %d s (%zu byte(s) "
		    "waiting; listen.write_timeout; %llu more such connection(s) closed since the last line)",
		    c->peer, l->write_timeout, c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0,
		    (unsigned long long)quiet);
}

static void
conn_handshaken(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	c->handshaken = true;
	if (tls_peer_cn(ssl, c->uid, sizeof(c->uid)) < 0)
		c->uid[0] = '\0';
	log_debug("agent", "%s: TLS %s established%s%s", c->peer, SSL_get_version(ssl),
	    c->uid[0] ? ", host " : " (no client certificate)", c->uid);
	struct listener *l = c->lis;
	struct timeval idle = { l->idle_timeout, 0 }, wr = { l->write_timeout, 0 };
	if (c->uid[0] != '\0') {
		/* authenticated: no longer counted against its address */
		preauth_release(c);
		event_del(c->deadline);
		bufferevent_setwatermark(c->bev, EV_READ, 0, l->max_frame + FRAME_HDR_LEN);
		bufferevent_set_timeouts(c->bev, &idle, &wr);
	} else {
		struct timeval tv = { l->enroll_timeout, 0 };
		event_add(c->deadline, &tv);
		bufferevent_set_timeouts(c->bev, NULL, &wr);
	}
}

/* The connection's deadline: the TLS handshake (listen.handshake_timeout),
 * an enroll without a certificate (listen.enroll_timeout), or output that
 * does not drain (listen.write_timeout). */
static void
conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct listener *l = c->lis;
	uint64_t quiet;
	(void)fd;
	(void)what;
	if (!c->handshaken) {
		if (ratelog_ok(&l->log_hs_timeout, &quiet))
			log_info("agent", "%s: closing: TLS handshake timeout (%llu more since the last line)",
			    c->peer, (unsigned long long)quiet);
	} else if (c->preauth) {
		l->srv->stats.conns_preauth_closed++;
		if (ratelog_ok(&l->log_preauth, &quiet))
			log_warnx("agent", "%s: closing: no enroll within %d s on a connection without a client "
			    "certificate (listen.enroll_timeout; %llu more such connection(s) closed since the "
			    "last line)", c->peer, l->enroll_timeout, (unsigned long long)quiet);
	} else {
		size_t left = c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
		if (c->throttled && left < c->stall_out) {
			/* slow, but it takes our replies: another write_timeout from
			 * what is left now */
			struct timeval tv = { l->write_timeout, 0 };
			c->stall_out = left;
			event_add(c->deadline, &tv);
			return;
		}
		conn_stalled(c);
	}
	conn_close(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		conn_handshaken(c);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		conn_stalled(c);
	} else if (what & BEV_EVENT_TIMEOUT) {
		log_info("agent", "%s: closing: %s timeout", c->peer, c->handshaken ? "idle" : "TLS handshake");
	} else if (what & BEV_EVENT_ERROR) {
		char buf[512];
		conn_tls_errors(c, buf, sizeof(buf));
		if (!c->handshaken) {
			c->lis->srv->stats.conns_failed_tls++;
			log_warnx("agent", "%s: TLS handshake failed: %s", c->peer, buf);
		} else {
			log_info("agent", "%s: connection error: %s", c->peer, buf);
		}
	} else if (what & BEV_EVENT_EOF) {
		/* bytes left while reading is on: the peer stopped mid-frame */
		size_t partial = (bufferevent_get_enabled(c->bev) & EV_READ) ?
		    evbuffer_get_length(bufferevent_get_input(c->bev)) : 0;
		uint64_t quiet;
		if (!c->handshaken) {
			if (ratelog_ok(&c->lis->log_hs_eof, &quiet))
				log_warnx("agent", "%s: closed during the TLS handshake (%llu more since the last "
				    "line)", c->peer, (unsigned long long)quiet);
		} else if (partial > 0) {
			c->lis->srv->stats.conns_bad_frames++;
			log_warnx("agent", "%s: closed in the middle of a frame (%zu byte(s) of it received)",
			    c->peer, partial);
		} else
			log_debug("agent", "%s: closed by the agent", c->peer);
	}
	conn_close(c);
}

static void
conn_close(struct conn *c)
{
	struct listener *l = c->lis;
	if (c->dead)
		return;
	c->dead = true;
	preauth_release(c);
	event_free(c->deadline);
	c->deadline = NULL;
	if (c->host && hmap_get(l->live, c->uid) == c) {
		hmap_del(l->live, c->uid);
		c->host->connected = false;
		/* an agent without a kept connection may have closed it with
		 * our sync_now unread: ask again the other way (a datagram) */
		if (c->sync_asked && !l->stopping && l->push_lost)
			l->push_lost(l->push_lost_arg, c->host);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	l->nconns--;
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->refs == 0)
		free(c);
}

int
listener_addr_key(const struct sockaddr *sa, char *ip, size_t iplen, char *key, size_t keylen)
{
	int port = 0;
	str_copy(ip, "?", iplen);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)iplen);
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		struct in6_addr a = s6->sin6_addr;
		port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&a)) {
			/* an IPv4 client on a dual-stack socket: its IPv4 address */
			inet_ntop(AF_INET, &a.s6_addr[12], ip, (socklen_t)iplen);
		} else {
			char net[INET6_ADDRSTRLEN];
			inet_ntop(AF_INET6, &a, ip, (socklen_t)iplen);
			/* one client (one LAN, one customer) has a whole /64 */
			memset(&a.s6_addr[8], 0, 8);
			inet_ntop(AF_INET6, &a, net, sizeof(net));
			str_fmt(key, keylen, "%s/64", net);
			return port;
		}
	}
	str_copy(key, ip, keylen);
	return port;
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	char ip[64], key[64];
	int port = listener_addr_key(sa, ip, sizeof(ip), key, sizeof(key));
	(void)evl;
	(void)salen;
	fleet_note_agent_work(l->srv->fleet);
	uint64_t quiet;
	if (l->nconns >= l->max_conns) {
		l->srv->stats.conns_rejected_limit++;
		if (ratelog_ok(&l->log_limit, &quiet))
			log_warnx("agent", "%s:%d: refused: connection limit of %zu reached "
			    "(listen.max_connections; %llu more refused since the last line)", ip, port,
			    l->max_conns, (unsigned long long)quiet);
		evutil_closesocket(fd);
		return;
	}
	/* Until its handshake shows a valid certificate a connection counts
	 * against its address (an IPv6 client has a /64 to pick from) and
	 * against all of them: neither one client nor many can take the
	 * slots of authenticated agents. */
	if (l->npreauth >= l->max_preauth) {
		l->srv->stats.conns_rejected_limit++;
		if (ratelog_ok(&l->log_preauth_all, &quiet))
			log_warnx("agent", "%s:%d: refused: %zu unauthenticated connections open, a quarter of "
			    "listen.max_connections (%llu more refused since the last line)", ip, port,
			    l->npreauth, (unsigned long long)quiet);
		evutil_closesocket(fd);
		return;
	}
	struct addr_count *ac = hmap_get(l->preauth, key);
	if (ac && ac->n >= l->max_preauth_per_addr) {
		l->srv->stats.conns_rejected_address++;
		if (ratelog_ok(&l->log_addr, &quiet))
			log_warnx("agent", "%s:%d: refused: %zu unauthenticated connections from %s already "
			    "(listen.max_unauthenticated_per_address; %llu more refused since the last line)",
			    ip, port, ac->n, key, (unsigned long long)quiet);
		evutil_closesocket(fd);
		return;
	}
	if (ac == NULL) {
		if ((ac = calloc(1, sizeof(*ac))) == NULL) {
			evutil_closesocket(fd);
			return;
		}
		str_copy(ac->ip, key, sizeof(ac->ip));
		if (hmap_put(l->preauth, ac->ip, ac, NULL) < 0) {
			free(ac);
			evutil_closesocket(fd);
			return;
		}
	}
	/* replies go out at once, not after the peer's delayed ACK */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl = SSL_new(l->ctx);
	if (c == NULL || ssl == NULL ||
	    (c->deadline = evtimer_new(l->srv->base, conn_deadline_cb, c)) == NULL) {
		if (c && c->deadline)
			event_free(c->deadline);
		free(c);
		SSL_free(ssl);
		if (ac->n == 0)
			free(hmap_del(l->preauth, key));
		evutil_closesocket(fd);
		return;
	}
	c->lis = l;
	str_copy(c->ip, ip, sizeof(c->ip));
	str_copy(c->key, key, sizeof(c->key));
	str_fmt(c->peer, sizeof(c->peer), "%s:%d", ip, port);
	c->bev = bufferevent_openssl_socket_new(l->srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		event_free(c->deadline);
		free(c);
		if (ac->n == 0)
			free(hmap_del(l->preauth, key));
		return;
	}
	ac->n++;
	l->npreauth++;
	c->preauth = true;
	/* bufferevent_openssl would otherwise hide a peer's unclean close */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	c->next = l->conns;
	if (l->conns)
		l->conns->prev = c;
	l->conns = c;
	l->nconns++;
	l->srv->stats.conns_accepted++;
	/* the handshake has a deadline, not an inactivity timeout: a slow
	 * trickle of bytes does not keep it going */
	struct timeval hs = { l->handshake_timeout, 0 };
	event_add(c->deadline, &hs);
	/* never buffer more than one maximal frame per connection (before
	 * authentication: one enroll); the write callback runs at out_low */
	bufferevent_setwatermark(c->bev, EV_READ, 0, preauth_max_frame(l) + FRAME_HDR_LEN);
	bufferevent_setwatermark(c->bev, EV_WRITE, l->out_low, 0);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
free_value(void *value, void *arg)
{
	(void)arg;
	free(value);
}

static void
listener_free(struct listener *l)
{
	if (l->preauth) {
		hmap_foreach(l->preauth, free_value, NULL);
		hmap_free(l->preauth);
	}
	hmap_free(l->live);
	if (l->asked) {
		hmap_foreach(l->asked, free_value, NULL);
		hmap_free(l->asked);
	}
	accept_guard_free(l->guard);
	SSL_CTX_free(l->ctx);
	free(l);
}

struct listener *
listener_start(struct server *srv, size_t max_conns, char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		str_fmt(err, errlen, "out of memory");
		return NULL;
	}
	l->srv = srv;
	l->max_conns = max_conns;
	l->max_frame = (size_t)conf_int(srv->cfg, "listen.max_frame");
	/* room for one maximal reply; reading resumes at a quarter of it */
	l->out_high = l->max_frame + FRAME_HDR_LEN;
	l->out_low = l->out_high / 4;
	l->max_preauth_per_addr = (size_t)conf_int(srv->cfg, "listen.max_unauthenticated_per_address");
	l->max_preauth = max_conns / 4 > 0 ? max_conns / 4 : 1;
	l->handshake_timeout = (int)conf_int(srv->cfg, "listen.handshake_timeout");
	l->idle_timeout = (int)conf_int(srv->cfg, "listen.idle_timeout");
	l->enroll_timeout = (int)conf_int(srv->cfg, "listen.enroll_timeout");
	l->write_timeout = (int)conf_int(srv->cfg, "listen.write_timeout");
	l->preauth = hmap_new();
	l->live = hmap_new();
	l->asked = hmap_new();
	if (l->preauth == NULL || l->live == NULL || l->asked == NULL) {
		str_fmt(err, errlen, "out of memory");
		listener_free(l);
		return NULL;
	}
	l->ctx = tls_server_ctx(srv->pki.cert_path, srv->pki.key_path, srv->pki.ca_path, 0, err, errlen);
	if (l->ctx == NULL) {
		listener_free(l);
		return NULL;
	}
	const char *addr = conf_str(srv->cfg, "listen.address");
	int port = (int)conf_int(srv->cfg, "listen.port");
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char spec[128];
	str_fmt(spec, sizeof(spec), strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0) {
		str_fmt(err, errlen, "listen.address \"%s\" is not an IP address", addr);
		listener_free(l);
		return NULL;
	}
	l->evl = evconnlistener_new_bind(srv->base, accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    (struct sockaddr *)&ss, sslen);
	if (l->evl == NULL) {
		str_fmt(err, errlen, "cannot listen on %s: %s (is another custosd running? "
		    "change listen.port)", spec, strerror(errno));
		listener_free(l);
		return NULL;
	}
	l->guard = accept_guard_new(srv->base, l->evl, "agent", "agent port", "raise the open-file limit "
	    "(LimitNOFILE= in custosd's unit, ulimit -n) or lower listen.max_connections",
	    &srv->stats.accept_pauses);
	if (l->guard == NULL) {
		str_fmt(err, errlen, "out of memory");
		evconnlistener_free(l->evl);
		listener_free(l);
		return NULL;
	}
	log_info("agent", "listening for agents on %s (TLS, max %zu connections, %zu unauthenticated "
	    "per address)", spec, l->max_conns, l->max_preauth_per_addr);
	return l;
}

void
listener_stop(struct listener *l)
{
	if (l == NULL)
		return;
	accept_guard_free(l->guard);
	l->guard = NULL;
	evconnlistener_free(l->evl);
	l->stopping = true;
	while (l->conns)
		conn_close(l->conns);
	listener_free(l);
}

size_t
listener_conn_count(const struct listener *l)
{
	return l ? l->nconns : 0;
}

int
listener_push_sync(struct listener *l, struct host *h)
{
	struct conn *c = l && h ? hmap_get(l->live, h->uid) : NULL;
	if (c == NULL || c->dead || c->closing)
		return -1;
	conn_send(c, json_pack("{s:s}", "type", "sync_now"));
	c->sync_asked = true;
	return 0;
}

void
listener_drop_host(struct listener *l, struct host *h)
{
	struct conn *c = l && h ? hmap_get(l->live, h->uid) : NULL;
	if (h)
		h->connected = false;
	if (c == NULL)
		return;
	hmap_del(l->live, h->uid);
	if (c->host == h)
		c->host = NULL;
	if (!c->dead && !c->closing) {
		log_warnx("agent", "%s: host %s (%s) is not in the database; closing its connection", c->peer,
		    h->name, h->uid);
		conn_error(c, "unknown_host", "this host is not registered on the server (deleted?); "
		    "enroll it again with a new token", true);
	}
}

void
listener_on_push_lost(struct listener *l, void (*cb)(void *arg, struct host *h), void *arg)
{
	l->push_lost = cb;
	l->push_lost_arg = arg;
}
