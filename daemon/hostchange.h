/* hostchange.h — "a host changed": the one place that tells every part of
 * the daemon that keeps a view of a host (the database write-back, the
 * fleet snapshot, the NAC tokens, which send a CoA / Disconnect when a
 * token gets worse). Every change of a host in the registry goes through
 * host_changed(), so that no view waits for a periodic tick. Main thread
 * only. */
#ifndef CUSTOS_HOSTCHANGE_H
#define CUSTOS_HOSTCHANGE_H

#include <stdbool.h>

struct server;
struct host;

/* reevaluate: the host's status is evaluated again first, from its posture
 * and its group's thresholds (the posture, the group or the thresholds
 * changed); false when the caller has just evaluated it. */
void host_changed(struct server *srv, struct host *h, bool reevaluate);

#endif
