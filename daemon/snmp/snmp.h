/* snmp.h — the AgentX subagent that serves CUSTOS-MIB
 * (snmp-mib/CUSTOS-MIB.txt) to the system's snmpd and sends its
 * notifications.
 *
 * The AgentX session (RFC 2741, codec in agentx.h) lives on the one thread
 * snmp_start() creates. That thread answers from the fleet snapshot
 * (fleet.h), never from the registry or the database, and takes the
 * notifications the main thread queues in the fleet; a slow or dead snmpd
 * stalls only that thread. It registers with snmpd at start and again by
 * itself after snmpd restarts (pinging every snmp.reconnect_interval
 * seconds); while snmpd is away it logs once and keeps trying quietly.
 * Agents come first: while custosd served an agent frame within the last
 * 100 ms, the thread pauses after each answer to snmpd, longer the more
 * agent frames per second (snmp.yield_to_agents), which also holds back the
 * CPU time snmpd itself spends on a walk.
 * Notifications are limited to snmp.trap_rate per second with bursts of
 * snmp.trap_burst; beyond that, and while snmpd is away, notifications of
 * one kind are coalesced into one that carries their number
 * (custosNotifyCount).
 *
 * snmp_start and snmp_stop: main thread. snmp_served_oids, snmp_resolve and
 * snmp_notice_varbinds (snmp_mib.c): any thread; pure functions that the
 * unit tests check without an snmpd. */
#ifndef CUSTOS_SNMP_H
#define CUSTOS_SNMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct snmp;
struct fleet_snapshot;

struct snmp_config {
	const char *agentx_socket;    /* path or tcp:HOST:PORT */
	int reconnect_interval;       /* seconds */
	int trap_rate;                /* notifications per second */
	int trap_burst;
	bool yield_to_agents;         /* pace answers while agents are served */
};

/* Starts the subagent thread (srv->fleet must exist and outlive it).
 * Returns at once; reaching snmpd happens on the thread. NULL with err when
 * the socket setting is malformed or the thread cannot start. */
struct snmp *snmp_start(struct server *srv, const struct snmp_config *c, char *err, size_t errlen);
/* Closes the AgentX session and joins the thread. NULL-safe. Returns -1
 * when the thread did not end within 5 s (stuck on a hung snmpd): it was
 * left running, so the caller must keep srv->fleet alive. */
int snmp_stop(struct snmp *s);

/* ---- the MIB as the code sees it (unit tests) ---- */

#define SNMP_OID_MAX 24

struct snmp_served_oid {
	const char *name;             /* CUSTOS-MIB descriptor */
	uint32_t oid[SNMP_OID_MAX];
	size_t len;
};
/* Fills out with every scalar, table, entry, column and notification the
 * code knows (at most max); returns how many there are. */
size_t snmp_served_oids(struct snmp_served_oid *out, size_t max);

enum snmp_answer_type {
	SNMP_ANS_INTEGER,             /* INTEGER, enums, TruthValue */
	SNMP_ANS_STRING,              /* OCTET STRING: DisplayString, BITS, DateAndTime, InetAddress */
	SNMP_ANS_UNSIGNED,            /* Unsigned32 */
	SNMP_ANS_GAUGE,               /* Gauge32 */
	SNMP_ANS_COUNTER64,
	SNMP_ANS_TIMETICKS,
};

struct snmp_answer {
	enum snmp_answer_type type;
	uint64_t num;                 /* numeric types */
	uint8_t buf[256];             /* SNMP_ANS_STRING */
	size_t len;
};

enum snmp_found { SNMP_FOUND, SNMP_NO_OBJECT, SNMP_NO_INSTANCE, SNMP_END_OF_VIEW };

/* Answers a GET (next false: req must name an instance) or a GETNEXT (the
 * first instance after req) under custosObjects from snapshot s at time now.
 * On SNMP_FOUND, out/outlen (SNMP_OID_MAX sub-ids) name the instance and a
 * holds its value. */
enum snmp_found snmp_resolve(const struct fleet_snapshot *s, int64_t now, const uint32_t *req,
    size_t len, bool next, uint32_t *out, size_t *outlen, struct snmp_answer *a);

/* The notification for n standing for count occurrences: its OID (trap,
 * SNMP_OID_MAX sub-ids) and its objects (at most max; returns how many). */
struct fleet_notice;
struct snmp_varbind {
	uint32_t oid[SNMP_OID_MAX];
	size_t len;
	struct snmp_answer a;
};
#define SNMP_NOTICE_VARBINDS 8
size_t snmp_notice_varbinds(const struct fleet_notice *n, uint64_t count, uint32_t *trap,
    size_t *traplen, struct snmp_varbind *vb, size_t max);

#endif
