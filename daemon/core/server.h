/* server.h — the daemon's context: one struct server owned by main.c and
 * passed to every daemon module. Main thread only, unless a field says
 * otherwise. */
#ifndef CUSTOS_SERVER_H
#define CUSTOS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "pki.h"
#include "core/status.h"

struct event_base;
struct conf;
struct db;
struct registry;
struct listener;
struct store;
struct api;
struct wakeup;
struct fleet;
struct mgmt;
struct snmp;
struct nac;
struct coa;
struct snapshot;

struct server_stats {
	uint64_t conns_accepted, conns_rejected_limit, conns_failed_tls, conns_bad_frames;
	/* refused: too many unauthenticated connections from one address; closed:
	 * anything but one enroll before authentication (or no enroll in time),
	 * replies not taken for listen.write_timeout; accepting paused (no fds) */
	uint64_t conns_rejected_address, conns_preauth_closed, conns_stalled, accept_pauses;
	uint64_t enrolls_ok, enrolls_refused, syncs, events_received, events_acked;
	uint64_t fields_truncated, fields_dropped; /* cut or left out on arrival (bounds.c) */
	uint64_t host_changes, host_writes;        /* registry_host_changed() calls; those that queued a row write */
};

struct server {
	struct event_base *base;
	struct conf *cfg;
	const char *conf_path;
	const char *const *overrides;
	size_t n_overrides;
	struct pki_server pki;
	struct db *db;
	struct registry *reg;
	struct listener *lis;
	struct store *store;
	struct api *api;
	struct wakeup *wake;
	struct fleet *fleet;       /* snapshot for other threads (SNMP) */
	struct snmp *snmp;         /* AgentX subagent; NULL when snmp.enabled is false */
	struct mgmt *mgmt;        /* groups, policies, tasks (mgmt.h) */
	struct nac *nac;          /* posture tokens and query socket; NULL when nac.enabled is false */
	struct coa *coa;          /* RADIUS CoA / Disconnect sender; NULL when nac.enabled is false */
	struct snapshot *snap;    /* the local snapshot (snapshot.h); NULL at stop */
	struct status_thresholds thr;
	bool loaded;              /* registry loaded from the database at least once */
	int64_t started;
	struct server_stats stats;
};

#define CUSTOS_VERSION "0.1.0"

#endif
