/* client.c — the agent's event loop side: the mutual-TLS connection to the
 * server (sync, events, keep-alive), the spool watcher and the wake-up
 * listener. */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "conf.h"
#include "evqueue.h"
#include "frame.h"
#include "log.h"
#include "plugins.h"
#include "policy_apply.h"
#include "tasks.h"
#include "tls.h"
#include "util.h"

#define EVENTS_PER_MESSAGE 100
#define ENVELOPE_MAX 256	/* {"type":"events","events":[...]} around a batch */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define RTP_CONFIRM_MS 2000	/* second reading of a clamonacc change */

static void agent_connect(struct agent *a);

static bool
keep_connection(const struct agent *a)
{
	return policy_apply_keep_connection(a);
}

/* The largest message both sides accept: agent.max_frame, or less when the
 * server said in this connection's sync_ok that its listen.max_frame is
 * smaller (a server restarted with another limit says so again). */
static size_t
agent_max_frame(const struct agent *a)
{
	size_t mine = (size_t)conf_int(a->cfg, "agent.max_frame");
	return a->server_max_frame > 0 && a->server_max_frame < mine ? a->server_max_frame : mine;
}

/* 0 when the message is on its way; -1 when it was not sent (the caller
 * must not wait for an answer). */
static int
agent_send(struct agent *a, json_t *msg)
{
	char err[256];
	int rc = -1;
	if (msg == NULL)
		log_warnx("client", "message not sent: out of memory");
	else if (a->bev == NULL || !a->connected)
		;
	else if (frame_encode(bufferevent_get_output(a->bev), msg, agent_max_frame(a), err, sizeof(err)) < 0)
		log_warnx("client", "message not sent: %s", err);
	else
		rc = 0;
	json_decref(msg);
	return rc;
}

static void
agent_disconnect(struct agent *a)
{
	if (a->bev) {
		SSL *ssl = bufferevent_openssl_get_ssl(a->bev);
		if (a->connected && ssl)
			SSL_shutdown(ssl); /* close_notify: a clean goodbye */
		bufferevent_free(a->bev);
		a->bev = NULL;
	}
	a->connected = a->connecting = false;
	/* the next server may take more or less: learnt again from its
	 * sync_ok or pong */
	a->server_max_frame = 0;
	a->frame_known = a->ping_inflight = false;
	if (a->sync_inflight) {
		a->sync_inflight = false;
		a->want_sync = true;
	}
	/* unacknowledged events stay queued and are sent again */
	json_decref(a->inflight);
	a->inflight = NULL;
	event_del(a->keepalive_timer);
}

static void
schedule(struct event *ev, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	event_del(ev);
	event_add(ev, &tv);
}

/* Something is still to be said to the server. */
static bool
agent_has_work(struct agent *a)
{
	return a->want_sync || a->sync_inflight || a->inflight || evq_count(a->q) > 0;
}

static void
agent_retry_later(struct agent *a)
{
	if (!agent_has_work(a) && !keep_connection(a))
		return;
	uint32_t r = 0;
	random_bytes(&r, sizeof(r));
	int64_t delay = a->backoff_ms + (int64_t)(r % (uint32_t)(a->backoff_ms / 4 + 1));
	a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
	log_debug("client", "reconnecting in %lld ms", (long long)delay);
	schedule(a->retry_timer, delay);
}

static void
agent_maybe_close(struct agent *a)
{
	if (keep_connection(a) || a->sync_inflight || a->inflight || a->want_sync || a->ping_inflight)
		return;
	if (evq_count(a->q) > 0)
		return;
	log_debug("client", "nothing more to send; closing the connection");
	agent_disconnect(a);
}

static int64_t
read_threats(struct agent *a)
{
	char path[4200];
	if (agent_path(a, "threats_unresolved", path, sizeof(path)) < 0)
		return 0;
	char *t = file_read(path, 64, NULL);
	int64_t n = t ? strtoll(t, NULL, 10) : 0;
	free(t);
	return n;
}

/* agent.tags "web, dmz" -> ["web", "dmz"] */
static json_t *
agent_tags(const struct agent *a)
{
	json_t *tags = json_array();
	const char *p = conf_str(a->cfg, "agent.tags");
	while (tags && *p) {
		size_t n = strcspn(p, ",");
		const char *s = p, *e = p + n;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s)
			json_array_append_new(tags, json_stringn(s, (size_t)(e - s)));
		p += n + (p[n] == ',');
	}
	return tags;
}

static void
agent_send_sync(struct agent *a)
{
	a->pc.threats_unresolved = read_threats(a);
	json_t *posture = posture_collect(&a->pc);
	a->want_sync = false;
	a->sync_inflight = true;
	a->sync_batch = a->batches_sent;
	if (agent_send(a, json_pack("{s:s, s:o, s:i, s:s, s:I, s:I, s:I, s:o, s:s, s:o}", "type", "sync",
	    "posture", posture ? posture : json_object(), "wake_port", (int)conf_int(a->cfg, "agent.wake_port"),
	    "agent_version", AGENT_VERSION, "queue_dropped", (json_int_t)evq_dropped(a->q),
	    "queue_oversized", (json_int_t)evq_oversized(a->q),
	    "wake_dropped", (json_int_t)a->wake_dropped, "policy", policy_apply_report(a),
	    "tasks_hash", tasks_hash(a), "tags", agent_tags(a))) < 0) {
		a->sync_inflight = false; /* logged; the sync timer tries again */
		a->frame_known = true;    /* events go within agent.max_frame */
	}
}

/* sync_ok carries the policy document and the task list when they changed. */
static void
handle_sync_changes(struct agent *a, json_t *msg)
{
	json_t *p = json_object_get(msg, "policy"), *t = json_object_get(msg, "tasks");
	if (json_is_object(p))
		policy_apply(a, json_object_get(p, "document"),
		    json_integer_value(json_object_get(p, "version")),
		    json_string_value(json_object_get(p, "hash")));
	if (json_is_object(t))
		tasks_update(a, json_object_get(t, "list"), json_string_value(json_object_get(t, "hash")));
}

static void
agent_send_events(struct agent *a)
{
	if (!a->connected || a->inflight)
		return;
	/* this connection's sync_ok (or pong, when no sync is due) says how
	 * large a message the server takes (it may have restarted with another
	 * listen.max_frame): no event goes, and none is set aside as too large,
	 * before it came or the sync failed */
	if (!a->frame_known) {
		if (!a->sync_inflight && !a->ping_inflight && evq_count(a->q) > 0) {
			if (agent_send(a, json_pack("{s:s}", "type", "ping")) == 0)
				a->ping_inflight = true;
			else
				a->frame_known = true;	/* logged: agent.max_frame */
		}
		return;
	}
	/* a batch fills one message at most; an event larger than that is
	 * set aside by the queue and reported instead */
	size_t max = agent_max_frame(a);
	json_t *events = evq_peek_batch(a->q, EVENTS_PER_MESSAGE, max > ENVELOPE_MAX ? max - ENVELOPE_MAX : 1);
	if (events == NULL || json_array_size(events) == 0) {
		json_decref(events);
		return;
	}
	json_t *ids = json_array();
	size_t i, n = json_array_size(events);
	json_t *ev;
	json_array_foreach(events, i, ev)
		json_array_append(ids, json_object_get(ev, "id"));
	log_debug("client", "sending %zu event(s)", n);
	if (agent_send(a, json_pack("{s:s, s:o}", "type", "events", "events", events)) < 0) {
		/* nothing is in flight: the events stay queued for a later try */
		json_decref(ids);
		schedule(a->retry_timer, BACKOFF_MAX_MS);
		return;
	}
	a->inflight = ids;
	a->batches_sent++;
}

static bool
was_inflight(const struct agent *a, const char *id)
{
	size_t i;
	json_t *v;
	json_array_foreach(a->inflight, i, v)
		if (id && json_is_string(v) && strcmp(json_string_value(v), id) == 0)
			return true;
	return false;
}

static void
handle_ack(struct agent *a, json_t *msg)
{
	json_t *ids = json_object_get(msg, "ids");
	size_t n = json_array_size(ids);
	const char **list = calloc(n + 1, sizeof(char *));
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		list[i] = json_string_value(json_array_get(ids, i));
	size_t removed = evq_ack(a->q, list, n);
	free(list);
	a->events_acked += removed;
	log_debug("client", "server committed %zu event(s)", removed);
	/* events the server refused would be refused again: set them aside;
	 * one that cannot be moved (rejected/ unwritable, disk full) is held
	 * out of the batches until the agent restarts, not sent again at once */
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(msg, "refused"), i, r) {
		char why[512];
		const char *id = json_string_value(json_object_get(r, "id"));
		if (!was_inflight(a, id) || evq_is_held(a->q, id))
			continue;
		str_fmt(why, sizeof(why), "the server refused it (%s)",
		    json_string_value(json_object_get(r, "reason")) ?: "no reason given");
		if (evq_reject_id(a->q, id, why) < 0) {
			evq_hold(a->q, id);
			log_warnx("client", "event %s: %s, and it cannot be set aside; left in the "
			    "spool, not sent again until the agent restarts", id, why);
		}
	}
	json_decref(a->inflight);
	a->inflight = NULL;
	agent_send_events(a);
}

static void
handle_message(struct agent *a, json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));
	if (type == NULL)
		return;
	if (strcmp(type, "sync_ok") == 0) {
		json_int_t next = json_integer_value(json_object_get(msg, "next_sync"));
		json_int_t frame = json_integer_value(json_object_get(msg, "max_frame"));
		a->sync_inflight = false;
		if (frame >= 1024)
			a->server_max_frame = (size_t)frame;
		a->frame_known = true;
		a->syncs_ok++;
		a->backoff_ms = BACKOFF_MIN_MS;
		if (next > 0)
			a->sync_interval = next;
		policy_apply_contact(a);
		/* a new document, or the one in effect sent again? */
		json_t *pol = json_object_get(msg, "policy");
		bool fresh = false;
		if (json_is_object(pol)) {
			json_t *rep = policy_apply_report(a);
			const char *had = json_string_value(json_object_get(rep, "hash"));
			const char *got = json_string_value(json_object_get(pol, "hash"));
			fresh = had == NULL || got == NULL || strcmp(had, got) != 0;
			json_decref(rep);
		}
		handle_sync_changes(a, msg);
		a->sync_interval = policy_apply_sync_interval(a, a->sync_interval);
		const char *name = json_string_value(json_object_get(msg, "name"));
		log_info("client", "synced with the server (status %s); next sync in %lld s",
		    json_string_value(json_object_get(msg, "status")) ?: "?", (long long)a->sync_interval);
		if (name && strcmp(name, a->name) != 0)
			str_copy(a->name, name, sizeof(a->name));
		schedule(a->sync_timer, a->sync_interval * 1000);
		agent_send_events(a);
		/* tell the server at once which policy version now applies: a
		 * new document 1 s after the last such report at the earliest,
		 * the same one sent again after 10 s (so it cannot loop). A
		 * report that must wait goes with an earlier sync, never later
		 * than the next regular one. */
		if (json_is_object(pol)) {
			int64_t due = (fresh ? 1 : 10) - (now_s() - a->last_report);
			if (due <= 0) {
				a->last_report = now_s();
				agent_send_sync(a);
			} else if (due < a->sync_interval) {
				schedule(a->sync_timer, due * 1000);
			}
		}
		/* asked for while it was in flight, after events it may predate */
		if (a->want_sync && !a->sync_inflight)
			agent_send_sync(a);
	} else if (strcmp(type, "pong") == 0) {
		/* a server that names no limit: agent.max_frame */
		json_int_t frame = json_integer_value(json_object_get(msg, "max_frame"));
		a->ping_inflight = false;
		if (!a->frame_known) {
			if (frame >= 1024)
				a->server_max_frame = (size_t)frame;
			a->frame_known = true;
			agent_send_events(a);
		}
	} else if (strcmp(type, "ack") == 0) {
		handle_ack(a, msg);
	} else if (strcmp(type, "nack") == 0) {
		json_int_t after = json_integer_value(json_object_get(msg, "retry_after"));
		json_decref(a->inflight);
		a->inflight = NULL;
		log_info("client", "server could not store events yet; retrying in %lld s", (long long)after);
		schedule(a->retry_timer, (after > 0 ? after : 5) * 1000);
		return;
	} else if (strcmp(type, "sync_now") == 0) {
		/* a sync in flight answers it, unless events went after it:
		 * then one more once it is done (never a pile of them) */
		if (!a->sync_inflight) {
			log_info("client", "server asked for a sync");
			agent_send_sync(a);
		} else if (a->batches_sent > a->sync_batch) {
			log_debug("client", "server asked for a sync; after the one in flight");
			a->want_sync = true;
		} else {
			log_debug("client", "server asked for a sync; one is in flight");
		}
	} else if (strcmp(type, "error") == 0) {
		const char *code = json_string_value(json_object_get(msg, "code"));
		log_warnx("client", "server error %s: %s", code ?: "?",
		    json_string_value(json_object_get(msg, "message")) ?: "");
		if (code && (strcmp(code, "unknown_host") == 0 || strcmp(code, "not_enrolled") == 0)) {
			agent_disconnect(a);
			return;
		}
		/* a rejected message is not retried in a loop; the sync timer goes on */
		a->sync_inflight = false;
		json_decref(a->inflight);
		a->inflight = NULL;
		if (!a->frame_known) {
			/* the sync was refused (no events went yet): events go
			 * within agent.max_frame */
			a->frame_known = true;
			agent_send_events(a);
		}
	}
	agent_maybe_close(a);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct agent *a = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char err[256];
	while (a->bev == bev) {
		json_t *msg;
		enum frame_rc rc = frame_decode(in, (size_t)conf_int(a->cfg, "agent.max_frame"), &msg,
		    err, sizeof(err));
		if (rc == FRAME_NEED_MORE)
			return;
		if (rc != FRAME_OK) {
			log_warnx("client", "bad message from the server: %s; reconnecting", err);
			agent_disconnect(a);
			agent_retry_later(a);
			return;
		}
		handle_message(a, msg);
		json_decref(msg);
	}
}

static void
on_connected(struct agent *a)
{
	SSL *ssl = bufferevent_openssl_get_ssl(a->bev);
	char fp[65];
	if (tls_peer_fingerprint(ssl, fp) < 0 || strcmp(fp, a->pinned_fp) != 0) {
		a->pin_mismatches++;
		log_error("client", "server %s:%d presented certificate %s, but %s is pinned; refusing to "
		    "talk to it. If the server was really reinstalled, enroll this agent again "
		    "(remove %s/host.json, then custos-agent --server HOST --token TOKEN)",
		    a->server_host, a->server_port, fp, a->pinned_fp, a->state_dir);
		agent_disconnect(a);
		agent_retry_later(a);
		return;
	}
	a->connecting = false;
	a->connected = true;
	/* a sync frame right after the handshake must not wait for a delayed ACK */
	int one = 1;
	setsockopt(bufferevent_getfd(a->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	log_debug("client", "connected to %s:%d (%s)", a->server_host, a->server_port, SSL_get_version(ssl));
	int timeout = (int)conf_int(a->cfg, "agent.timeout");
	struct timeval rt = { keep_connection(a) ? conf_int(a->cfg, "agent.keepalive") * 3 : timeout, 0 };
	bufferevent_set_timeouts(a->bev, &rt, NULL);
	if (a->want_sync)
		agent_send_sync(a);
	agent_send_events(a);
	if (keep_connection(a))
		schedule(a->keepalive_timer, conf_int(a->cfg, "agent.keepalive") * 1000);
	agent_maybe_close(a);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent *a = arg;
	if (bev != a->bev)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		on_connected(a);
		return;
	}
	char buf[256] = "";
	unsigned long e = bufferevent_get_openssl_error(bev);
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	if (what & BEV_EVENT_TIMEOUT)
		log_warnx("client", "server %s:%d did not answer in time; reconnecting", a->server_host,
		    a->server_port);
	else if (a->connecting)
		log_warnx("client", "cannot connect to %s:%d: %s", a->server_host, a->server_port,
		    *buf ? buf : (errno ? strerror(errno) : "connection refused"));
	else
		log_info("client", "connection to the server closed%s%s", *buf ? ": " : "", buf);
	/* a kept connection was lost (a server restart, the network): the
	 * server may have missed what happened meanwhile, so the reconnection
	 * syncs, as the agent's start does */
	if (a->connected && keep_connection(a))
		a->want_sync = true;
	agent_disconnect(a);
	agent_retry_later(a);
}

static void
agent_connect(struct agent *a)
{
	if (a->bev)
		return;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	char port[16];
	str_fmt(port, sizeof(port), "%d", a->server_port);
	int rc = getaddrinfo(a->server_host, port, &hints, &res);
	if (rc != 0) {
		log_warnx("client", "cannot resolve %s: %s", a->server_host, gai_strerror(rc));
		agent_retry_later(a);
		return;
	}
	SSL *ssl = SSL_new(a->ctx);
	if (ssl == NULL) {
		freeaddrinfo(res);
		return;
	}
	SSL_set_tlsext_host_name(ssl, a->server_host);
	a->bev = bufferevent_openssl_socket_new(a->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (a->bev == NULL) {
		SSL_free(ssl);
		freeaddrinfo(res);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(a->bev, 1);
	bufferevent_setcb(a->bev, read_cb, NULL, event_cb, a);
	struct timeval tv = { conf_int(a->cfg, "agent.timeout"), 0 };
	bufferevent_set_timeouts(a->bev, &tv, &tv);
	bufferevent_enable(a->bev, EV_READ | EV_WRITE);
	a->connecting = true;
	if (bufferevent_socket_connect(a->bev, res->ai_addr, (int)res->ai_addrlen) < 0) {
		log_warnx("client", "cannot connect to %s:%d", a->server_host, a->server_port);
		freeaddrinfo(res);
		agent_disconnect(a);
		agent_retry_later(a);
		return;
	}
	freeaddrinfo(res);
}

void
agent_sync_now(struct agent *a)
{
	a->want_sync = true;
	if (a->connected)
		agent_send_sync(a);
	else
		agent_connect(a);
}

void
agent_flush_events(struct agent *a)
{
	if (evq_count(a->q) == 0)
		return;
	if (a->connected)
		agent_send_events(a);
	else if (!a->connecting && !evtimer_pending(a->retry_timer, NULL))
		agent_connect(a);
}

static void
on_sync_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	agent_sync_now(arg);
}

static void
on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	(void)fd;
	(void)what;
	if (a->connected)
		agent_send_events(a);
	else
		agent_connect(a);
}

/* Queues one event of a posture change; the server asks for the posture
 * once it has stored it. */
static void
queue_change(struct agent *a, const char *severity, const char *kind, const char *message, json_t *data)
{
	char err[256];
	json_t *ev = evq_make_event(severity, kind, message, data);
	if (ev == NULL || evq_enqueue(a->q, ev, err, sizeof(err)) < 0)
		log_warnx("posture", "%s: event not queued: %s", message, ev ? err : "out of memory");
	else
		log_info("posture", "%s", message);
	json_decref(ev);
	json_decref(data);
}

void
agent_check_posture(struct agent *a)
{
	char msg[160];
	if (!a->pc.clamav_enabled)
		return;
	bool raw = clamav_onacc_running(a->pc.clamonacc_pidfile, "/proc");
	int64_t db = clamav_db_version(plugin_path(a->pc.clamav_db_dir, "/var/lib/clamav"));
	/* a header that could not be read this once (freshclam replacing the
	 * file) is no downgrade to "none" and back */
	if (a->check_known && db < 0 && a->check_db >= 0)
		db = a->check_db;
	/* clamonacc stopping or starting counts when two readings in a row
	 * agree (on_check_timer takes the second one RTP_CONFIRM_MS later): a
	 * crash-looping clamonacc is not an event and a sync every check */
	bool rtp = raw, rtp_changed = false;
	if (a->check_known) {
		rtp = a->check_rtp;
		if (raw == a->check_rtp)
			a->rtp_pending = false;
		else if (!a->rtp_pending)
			a->rtp_pending = true;
		else {
			a->rtp_pending = false;
			rtp = raw;
			rtp_changed = true;
		}
	}
	if (rtp_changed)
		queue_change(a, rtp ? "info" : "warning", rtp ? "rtp_started" : "rtp_stopped",
		    rtp ? "real-time protection (clamonacc) started" :
		    "real-time protection (clamonacc) stopped", NULL);
	if (a->check_known && db != a->check_db) {
		str_fmt(msg, sizeof(msg), "anti-virus databases changed from version %lld to %lld",
		    (long long)a->check_db, (long long)db);
		queue_change(a, "info", "databases_updated", msg, json_pack("{s:I, s:I}", "previous",
		    (json_int_t)a->check_db, "version", (json_int_t)db));
	}
	a->check_known = true;
	a->check_rtp = rtp;
	a->check_db = db;
	agent_flush_events(a);
}

static void
on_check_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	(void)fd;
	(void)what;
	agent_check_posture(a);
	schedule(a->check_timer, a->rtp_pending ? RTP_CONFIRM_MS :
	    conf_int(a->cfg, "agent.posture_check_interval") * 1000);
}

static void
on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	(void)fd;
	(void)what;
	if (!a->connected)
		return;
	agent_send(a, json_pack("{s:s}", "type", "ping"));
	/* also a safety net for spool changes inotify missed */
	agent_send_events(a);
	schedule(a->keepalive_timer, conf_int(a->cfg, "agent.keepalive") * 1000);
}

static void
on_spool(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	char buf[4096];
	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	/* custos-agent event --kind threat_found (or threats --clear) changed
	 * the count of unresolved threats: the server learns it by a sync now,
	 * not at the next regular one (the host's status and NAC token) */
	if (!a->want_sync && read_threats(a) != a->pc.threats_unresolved) {
		log_info("client", "unresolved threats changed; syncing now");
		a->want_sync = true;
		if (a->connected)
			agent_send_sync(a);
		else if (!a->connecting && !evtimer_pending(a->retry_timer, NULL))
			agent_connect(a);   /* else the pending reconnection syncs */
	}
	agent_flush_events(a);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	uint8_t buf[WAKE_MAX_LEN + 1];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	char ip[64] = "?";
	(void)what;
	for (;;) {
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
		if (n < 0)
			return;
		if (from.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&from)->sin_addr, ip, sizeof(ip));
		else if (from.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&from)->sin6_addr, ip, sizeof(ip));
		enum wake_rc rc = wake_verify(a->server_cert, a->uid, buf, (size_t)n, now_s(),
		    (int)conf_int(a->cfg, "agent.wake_max_skew"), &a->replay);
		if (rc != WAKE_OK) {
			a->wake_dropped++;
			log_warnx("wakeup", "dropped a wake-up datagram from %s: %s (%llu dropped so far)", ip,
			    wake_rc_text(rc), (unsigned long long)a->wake_dropped);
			continue;
		}
		a->wake_ok++;
		log_info("wakeup", "genuine wake-up from %s: syncing now", ip);
		agent_sync_now(a);
	}
}

static int
wake_listen(struct agent *a, char *err, size_t errlen)
{
	int port = (int)conf_int(a->cfg, "agent.wake_port");
	const char *addr = conf_str(a->cfg, "agent.wake_address");
	a->wake_fd = -1;
	if (port == 0)
		return 0;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char spec[128];
	str_fmt(spec, sizeof(spec), strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0) {
		str_fmt(err, errlen, "agent.wake_address \"%s\" is not an IP address", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0) {
		str_fmt(err, errlen, "cannot listen for wake-ups on UDP %s: %s (set agent.wake_port, "
		    "0 turns wake-ups off)", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	a->wake_fd = fd;
	a->wake_ev = event_new(a->base, fd, EV_READ | EV_PERSIST, on_wake, a);
	if (a->wake_ev == NULL || event_add(a->wake_ev, NULL) < 0) {
		str_fmt(err, errlen, "cannot watch the wake-up socket");
		return -1;
	}
	log_info("wakeup", "listening for signed wake-ups on UDP %s", spec);
	return 0;
}

static int
spool_watch(struct agent *a, char *err, size_t errlen)
{
	a->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (a->inotify_fd < 0 ||
	    inotify_add_watch(a->inotify_fd, evq_dir(a->q), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		str_fmt(err, errlen, "cannot watch %s: %s", evq_dir(a->q), strerror(errno));
		return -1;
	}
	/* the state directory too: threats_unresolved is replaced there */
	if (inotify_add_watch(a->inotify_fd, a->state_dir, IN_MOVED_TO) < 0) {
		str_fmt(err, errlen, "cannot watch %s: %s", a->state_dir, strerror(errno));
		return -1;
	}
	a->spool_ev = event_new(a->base, a->inotify_fd, EV_READ | EV_PERSIST, on_spool, a);
	if (a->spool_ev == NULL || event_add(a->spool_ev, NULL) < 0) {
		str_fmt(err, errlen, "cannot watch the event queue");
		return -1;
	}
	return 0;
}

int
agent_start(struct agent *a, char *err, size_t errlen)
{
	a->backoff_ms = BACKOFF_MIN_MS;
	a->sync_interval = policy_apply_sync_interval(a, conf_int(a->cfg, "agent.sync_interval"));
	a->sync_timer = evtimer_new(a->base, on_sync_timer, a);
	a->retry_timer = evtimer_new(a->base, on_retry_timer, a);
	a->keepalive_timer = evtimer_new(a->base, on_keepalive, a);
	a->check_timer = evtimer_new(a->base, on_check_timer, a);
	if (!a->sync_timer || !a->retry_timer || !a->keepalive_timer || !a->check_timer) {
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	if (spool_watch(a, err, errlen) < 0 || wake_listen(a, err, errlen) < 0)
		return -1;
	/* the first check is the baseline: the first sync reports the state */
	if (conf_int(a->cfg, "agent.posture_check_interval") > 0) {
		agent_check_posture(a);
		schedule(a->check_timer, conf_int(a->cfg, "agent.posture_check_interval") * 1000);
	}
	agent_sync_now(a);
	return 0;
}

void
agent_stop(struct agent *a)
{
	agent_disconnect(a);
	if (a->sync_timer)
		event_free(a->sync_timer);
	if (a->retry_timer)
		event_free(a->retry_timer);
	if (a->keepalive_timer)
		event_free(a->keepalive_timer);
	if (a->check_timer)
		event_free(a->check_timer);
	if (a->spool_ev)
		event_free(a->spool_ev);
	if (a->wake_ev)
		event_free(a->wake_ev);
	if (a->inotify_fd > 0)
		close(a->inotify_fd);
	if (a->wake_fd > 0)
		close(a->wake_fd);
}
