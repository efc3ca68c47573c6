/* wakeup.h — sends signed UDP wake-ups to agents (see lib/wake.h).
 * Main thread only. */
#ifndef CUSTOS_WAKEUP_H
#define CUSTOS_WAKEUP_H

#include <stddef.h>

struct server;
struct host;
struct wakeup;

/* rate: datagrams per second for wakeup_host_later (wakeup.rate). */
struct wakeup *wakeup_new(struct server *srv, double rate, char *err, size_t errlen);
void wakeup_set_rate(struct wakeup *w, double rate);
void wakeup_free(struct wakeup *w);
/* Asks the host to connect now: over its live connection when it has one,
 * else by a signed datagram to its last address and wake port. 0 when sent.
 * For one host on request (the API). */
int wakeup_host(struct wakeup *w, struct host *h, char *err, size_t errlen);
/* The same for changes that reach many hosts at once (a policy, a task
 * start): a connected host is told at once; a datagram is queued (once per
 * host) and sent at wakeup.rate per second, so that a change for 100,000
 * offline hosts neither stalls the event loop signing datagrams nor floods
 * the network. -1 when the host has no address or wake port yet. */
int wakeup_host_later(struct wakeup *w, struct host *h);
/* Datagrams waiting in the paced queue. */
size_t wakeup_queued(const struct wakeup *w);

#endif
