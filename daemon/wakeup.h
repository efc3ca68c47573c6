/* wakeup.h — sends signed UDP wake-ups to agents (see lib/wake.h).
 * Main thread only. */
#ifndef CUSTOS_WAKEUP_H
#define CUSTOS_WAKEUP_H

#include <stddef.h>

struct server;
struct host;
struct wakeup;

struct wakeup *wakeup_new(struct server *srv, char *err, size_t errlen);
void wakeup_free(struct wakeup *w);
/* Asks the host to connect now: over its live connection when it has one,
 * else by a signed datagram to its last address and wake port. 0 when sent. */
int wakeup_host(struct wakeup *w, struct host *h, char *err, size_t errlen);

#endif
