/* hostchange.h — "a host changed": the one place that tells every part of
 * the daemon that keeps a view of a host (the database write-back, the
 * fleet snapshot, the NAC tokens, which send a CoA / Disconnect when a
 * token gets worse). Every change of a host in the registry goes through
 * host_changed(), so that no view waits for a periodic tick; and each
 * change calls it once (the fleet remembers every call until its next
 * update, the store queues a row write). Main thread only. */
#ifndef CUSTOS_HOSTCHANGE_H
#define CUSTOS_HOSTCHANGE_H

struct server;
struct host;

enum {
	/* the host's status is evaluated again first, from its posture and
	 * its group's thresholds (the posture, the group or the thresholds
	 * changed); without it the caller has just evaluated it */
	HC_REEVALUATE = 1u << 0,
	/* the database already holds the host as it is (store_enroll has just
	 * inserted its row): no write-back */
	HC_NO_STORE = 1u << 1,
};

/* flags: HC_* or 0. Counted in srv->stats (host_changes, host_writes). */
void host_changed(struct server *srv, struct host *h, unsigned flags);

#endif
