/* accept.h — one guard for every listening socket of custosd (the agent
 * port, the console API, the NAC query socket).
 *
 * accept() out of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM) leaves
 * the connection in the backlog and the socket readable: retried at once it
 * spins at 100% CPU. The guard disables the listener for ACCEPT_PAUSE_MS
 * instead, then enables it again, and logs at most one line a second.
 * A listener can also be held (a connection cap reached: not accepting, the
 * kernel's backlog waits) until released.
 *
 * The guard installs the listener's error callback itself and finds its
 * listener by pointer, so it also works for a listener handed to evhttp
 * (which takes over the callback argument). Main thread only. */
#ifndef CUSTOS_ACCEPT_H
#define CUSTOS_ACCEPT_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct evconnlistener;
struct accept_guard;

#define ACCEPT_PAUSE_MS 250

/* Guards evl; module names the log lines ("agent", "api", "nac"), what the
 * socket ("agent port"), hint what the administrator can do; *pauses (may
 * be NULL) counts the pauses. NULL when out of memory. */
struct accept_guard *accept_guard_new(struct event_base *base, struct evconnlistener *evl,
    const char *module, const char *what, const char *hint, uint64_t *pauses);
/* Before the listener is freed. */
void accept_guard_free(struct accept_guard *g);
/* held: stop accepting until released (a connection cap). */
void accept_guard_hold(struct accept_guard *g, bool held);

#endif
