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
 * Main thread only. */
#ifndef CUSTOS_LISTENER_H
#define CUSTOS_LISTENER_H

#include <stddef.h>

struct server;
struct host;
struct listener;

struct listener *listener_start(struct server *srv, char *err, size_t errlen);
void listener_stop(struct listener *l);
size_t listener_conn_count(const struct listener *l);
/* Asks a connected agent to sync now; -1 when it has no live connection. */
int listener_push_sync(struct listener *l, struct host *h);

#endif
