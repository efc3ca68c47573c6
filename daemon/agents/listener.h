/* listener.h — the agent port (TLS on TCP 13000).
 *
 * Accepts agents, runs the TLS handshake (client certificate optional so that
 * new agents can enrol; when presented it must verify against the server CA),
 * splits the stream into frames and dispatches the agent protocol:
 *
 *   enroll  (no client certificate) token + CSR -> signed certificate
 *   sync    posture report -> next sync time
 *   events  -> ack (after the database commit) or nack (retry later)
 *   ping    -> pong (keeps a "do not disconnect" connection alive)
 *
 * Enforces the connection limit, the handshake and idle timeouts and the
 * frame size limit; a misbehaving peer loses its own connection only.
 * Before authentication (no client certificate) a connection may send one
 * enroll within listen.enroll_timeout and nothing else, and one address (an
 * IPv6 /64; an IPv4-mapped address as IPv4) may hold
 * listen.max_unauthenticated_per_address such connections (handshakes
 * included), all addresses together a quarter of the connection limit. A connection whose replies pile up (more than one maximal
 * frame) is not read until they drain, and is closed when they do not drain
 * within listen.write_timeout. accept() out of file descriptors pauses the
 * listener briefly instead of spinning (daemon/core/accept.c).
 * Main thread only. */
#ifndef CUSTOS_LISTENER_H
#define CUSTOS_LISTENER_H

#include <stddef.h>

struct server;
struct host;
struct listener;
struct sockaddr;

/* max_conns: listen.max_connections, or fewer when the open-file limit is
 * lower (main.c). */
struct listener *listener_start(struct server *srv, size_t max_conns, char *err, size_t errlen);
void listener_stop(struct listener *l);
size_t listener_conn_count(const struct listener *l);
/* A peer's address for messages (an IPv4-mapped IPv6 address as IPv4)
 * into ip, and its key in the per-address count of unauthenticated
 * connections into key: the IPv4 address, or an IPv6 address's /64
 * ("2001:db8:1:2::/64"). Returns the port. Pure. */
int listener_addr_key(const struct sockaddr *sa, char *ip, size_t iplen, char *key, size_t keylen);
/* Asks a connected agent to sync now; -1 when it has no live connection. */
int listener_push_sync(struct listener *l, struct host *h);
/* cb(arg, h) runs when a connection that was asked to sync closes before
 * its agent synced (an agent without a kept connection closes as soon as it
 * has nothing to wait for, and may not have read the request): main.c asks
 * again by a wake-up datagram. */
/* The host leaves the registry (not in the database): its connection, if
 * any, forgets it and is closed with unknown_host, as for a deleted host. */
void listener_drop_host(struct listener *l, struct host *h);
void listener_on_push_lost(struct listener *l, void (*cb)(void *arg, struct host *h), void *arg);

#endif
