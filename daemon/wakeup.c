/* wakeup.c — see wakeup.h. */
#include "wakeup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "util.h"
#include "wake.h"

struct wakeup {
	struct server *srv;
	int fd4, fd6;
	uint64_t sent;
};

struct wakeup *
wakeup_new(struct server *srv, char *err, size_t errlen)
{
	struct wakeup *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		str_fmt(err, errlen, "out of memory");
		return NULL;
	}
	w->srv = srv;
	w->fd4 = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	w->fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (w->fd4 < 0) {
		str_fmt(err, errlen, "cannot open a UDP socket for wake-ups: %s", strerror(errno));
		free(w);
		return NULL;
	}
	return w;
}

void
wakeup_free(struct wakeup *w)
{
	if (w == NULL)
		return;
	close(w->fd4);
	if (w->fd6 >= 0)
		close(w->fd6);
	free(w);
}

int
wakeup_host(struct wakeup *w, struct host *h, char *err, size_t errlen)
{
	if (listener_push_sync(w->srv->lis, h) == 0) {
		log_info("wakeup", "asked %s to sync over its open connection", h->name);
		return 0;
	}
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
	log_info("wakeup", "sent a signed wake-up to %s at %s:%d", h->name, h->last_ip, h->wake_port);
	return 0;
}
