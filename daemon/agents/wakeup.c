/* wakeup.c — see wakeup.h. */
#include "agents/wakeup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>

#include "hmap.h"
#include "agents/listener.h"
#include "log.h"
#include "core/registry.h"
#include "core/server.h"
#include "util.h"
#include "wake.h"

#define TICK_MS 20                 /* the paced queue is drained this often */
#define REPORT_MS 10000            /* a summary line at most this often */

struct wakeup {
	struct server *srv;
	int fd4, fd6;
	uint64_t sent;
	/* the paced queue: uids of hosts to wake (each its own allocation, the
	 * key of its entry in set), oldest at head */
	char **q;
	size_t head, len, cap;
	struct hmap *set;
	struct event *timer;
	double rate, tokens;
	int64_t last_ms, reported_ms;
	uint64_t batch_sent, batch_failed;
};

static void on_tick(evutil_socket_t fd, short what, void *arg);

struct wakeup *
wakeup_new(struct server *srv, double rate, char *err, size_t errlen)
{
	struct wakeup *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		str_fmt(err, errlen, "out of memory");
		return NULL;
	}
	w->srv = srv;
	w->rate = rate > 0 ? rate : 1;
	w->tokens = w->rate / 5 + 1;      /* a full bucket */
	w->last_ms = mono_ms();
	w->fd4 = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	w->fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (w->fd4 < 0) {
		str_fmt(err, errlen, "cannot open a UDP socket for wake-ups: %s", strerror(errno));
		wakeup_free(w);
		return NULL;
	}
	if ((w->timer = event_new(srv->base, -1, EV_PERSIST, on_tick, w)) == NULL ||
	    (w->set = hmap_new()) == NULL) {
		str_fmt(err, errlen, "out of memory");
		wakeup_free(w);
		return NULL;
	}
	return w;
}

void
wakeup_set_rate(struct wakeup *w, double rate)
{
	if (w != NULL && rate > 0)
		w->rate = rate;
}

void
wakeup_free(struct wakeup *w)
{
	if (w == NULL)
		return;
	if (w->len > 0)
		log_info("wakeup", "%zu queued wake-up(s) not sent at shutdown", w->len);
	if (w->timer != NULL)
		event_free(w->timer);
	if (w->fd4 >= 0)
		close(w->fd4);
	if (w->fd6 >= 0)
		close(w->fd6);
	for (size_t i = 0; i < w->len; i++)
		free(w->q[w->head + i]);
	free(w->q);
	hmap_free(w->set);
	free(w);
}

/* The signed datagram to the host's last address; 0 when sent. */
static int
send_datagram(struct wakeup *w, const struct host *h, char *err, size_t errlen)
{
	if (h->last_ip[0] == '\0' || h->wake_port <= 0) {
		str_fmt(err, errlen, "host %s has no known address or wake port yet (it never synced)", h->name);
		return -1;
	}
	uint8_t pkt[WAKE_MAX_LEN];
	int len = wake_build(w->srv->pki.server_key, h->uid, now_s(), pkt, sizeof(pkt));
	if (len < 0) {
		str_fmt(err, errlen, "cannot sign the wake-up datagram");
		return -1;
	}
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)h->wake_port) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)h->wake_port) };
	ssize_t n;
	if (inet_pton(AF_INET, h->last_ip, &s4.sin_addr) == 1)
		n = sendto(w->fd4, pkt, (size_t)len, 0, (struct sockaddr *)&s4, sizeof(s4));
	else if (w->fd6 >= 0 && inet_pton(AF_INET6, h->last_ip, &s6.sin6_addr) == 1)
		n = sendto(w->fd6, pkt, (size_t)len, 0, (struct sockaddr *)&s6, sizeof(s6));
	else {
		str_fmt(err, errlen, "host %s: last address \"%s\" is not usable", h->name, h->last_ip);
		return -1;
	}
	if (n != len) {
		str_fmt(err, errlen, "sending the wake-up to %s:%d failed: %s", h->last_ip, h->wake_port,
		    strerror(errno));
		return -1;
	}
	w->sent++;
	return 0;
}

int
wakeup_host(struct wakeup *w, struct host *h, char *err, size_t errlen)
{
	if (listener_push_sync(w->srv->lis, h) == 0) {
		log_info("wakeup", "asked %s to sync over its open connection", h->name);
		return 0;
	}
	if (send_datagram(w, h, err, errlen) < 0)
		return -1;
	log_info("wakeup", "sent a signed wake-up to %s at %s:%d", h->name, h->last_ip, h->wake_port);
	return 0;
}

int
wakeup_host_later(struct wakeup *w, struct host *h)
{
	if (w == NULL || h == NULL)
		return -1;
	if (listener_push_sync(w->srv->lis, h) == 0)
		return 0;
	if (h->last_ip[0] == '\0' || h->wake_port <= 0)
		return -1;
	if (hmap_get(w->set, h->uid) != NULL)
		return 0;
	if (w->head > 0 && w->head + w->len == w->cap) {
		memmove(w->q, w->q + w->head, w->len * sizeof(*w->q));
		w->head = 0;
	}
	char *uid = strdup(h->uid);
	void *old;
	if (uid == NULL || array_grow((void **)&w->q, &w->cap, w->head + w->len + 1, sizeof(*w->q)) < 0 ||
	    hmap_put(w->set, uid, uid, &old) < 0) {
		free(uid);
		log_warnx("wakeup", "out of memory queueing a wake-up for %s; it syncs on its own schedule",
		    h->name);
		return -1;
	}
	w->q[w->head + w->len] = uid;
	w->len++;
	if (!event_pending(w->timer, EV_TIMEOUT, NULL)) {
		struct timeval tv = { 0, TICK_MS * 1000 };
		event_add(w->timer, &tv);
		on_tick(-1, 0, w);        /* what the bucket holds goes at once */
	}
	return 0;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct wakeup *w = arg;
	char err[256];
	(void)fd;
	(void)what;
	int64_t now = mono_ms();
	w->tokens += (double)(now - w->last_ms) * w->rate / 1000.0;
	w->last_ms = now;
	/* at most a fifth of a second of sending at once */
	if (w->tokens > w->rate / 5 + 1)
		w->tokens = w->rate / 5 + 1;
	while (w->len > 0 && w->tokens >= 1) {
		char *uid = w->q[w->head];
		struct host *h = registry_host_by_uid(w->srv->reg, uid);
		hmap_del(w->set, uid);
		free(uid);
		w->head++;
		w->len--;
		if (h == NULL)
			continue;          /* deleted meanwhile */
		w->tokens -= 1;
		if (listener_push_sync(w->srv->lis, h) == 0)
			continue;          /* connected meanwhile */
		if (send_datagram(w, h, err, sizeof(err)) < 0) {
			w->batch_failed++;
			log_debug("wakeup", "%s", err);
		} else {
			w->batch_sent++;
			log_debug("wakeup", "sent a signed wake-up to %s at %s:%d", h->name, h->last_ip,
			    h->wake_port);
		}
	}
	/* the timer runs on until the bucket is full again, so that a burst
	 * of single wake-ups cannot go faster than the rate either */
	if (w->len == 0) {
		w->head = 0;
		if (w->tokens >= w->rate / 5 + 1)
			event_del(w->timer);
	}
	if (w->len == 0 || now - w->reported_ms >= REPORT_MS) {
		if (w->batch_sent + w->batch_failed > 0)
			log_info("wakeup", "sent %llu signed wake-up(s), %llu failed; %zu waiting "
			    "(wakeup.rate %g/s)", (unsigned long long)w->batch_sent,
			    (unsigned long long)w->batch_failed, w->len, w->rate);
		w->batch_sent = w->batch_failed = 0;
		w->reported_ms = now;
	}
}

size_t
wakeup_queued(const struct wakeup *w)
{
	return w != NULL ? w->len : 0;
}
