/* fleet.h — an immutable snapshot of the fleet for readers on other threads
 * (the SNMP subagent now, NAC later), and the queue of notifications for
 * them.
 *
 * The main thread notes what changed (fleet_host_changed, fleet_mark_dirty,
 * fleet_agent_events, fleet_db_state) and fleet_update(), run by a
 * one-second timer, publishes a new snapshot when something did, as long as
 * a reader is attached (fleet_attach). Readers on
 * any thread take the current snapshot with fleet_acquire() and give it back
 * with fleet_release(); a snapshot never changes while held, so one request
 * sees one consistent fleet. Host rows are sorted by database id and live in
 * copy-on-write chunks shared between snapshots: a sync of one host costs a
 * copy of one chunk, not of the fleet. A full rebuild (new or removed hosts,
 * the database load) sorts the whole registry.
 *
 * Threads: fleet_new, fleet_free, fleet_update and every fleet_* call that
 * notes a change are main-thread only. fleet_acquire, fleet_release,
 * fleet_notices_take and fleet_notice_fd may be called from any thread. */
#ifndef CUSTOS_FLEET_H
#define CUSTOS_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct server;
struct host;
struct fleet;

enum fleet_rtp { FLEET_RTP_ON = 1, FLEET_RTP_OFF = 2, FLEET_RTP_UNKNOWN = 3 };

/* The database states as CUSTOS-MIB numbers them (CustosDatabaseState). */
enum fleet_db { FLEET_DB_CONNECTING = 1, FLEET_DB_UP = 2, FLEET_DB_DOWN = 3, FLEET_DB_REFUSED = 4 };

/* Group indexes are database group ids plus one (custosGroupIndex), so the
 * group "Unassigned" (group id 0: no group) has the index 1. */
#define FLEET_UNASSIGNED 1u

/* Posture tokens, in the order of enum nac_token (nac.h). */
#define FLEET_NAC_TOKENS 6

struct fleet_host {
	uint64_t id;              /* database id, > 0 */
	int64_t db_time;          /* newest AV database, unix s; 0 unknown */
	int64_t last_seen;        /* unix s; 0 never */
	int64_t threats;          /* unresolved */
	uint32_t reasons;         /* enum status_reason bits */
	uint32_t critical;        /* the reasons that made it Critical */
	uint32_t group;           /* index into the group rows (FLEET_UNASSIGNED) */
	uint8_t status;           /* enum host_status */
	uint8_t rtp;              /* enum fleet_rtp */
	char name[64];
	char ip[48];              /* text; "" unknown */
	char av[48];              /* first installed anti-virus; "" none */
};

struct fleet_group {
	uint32_t index;           /* stable id, > 0 */
	uint32_t parent;          /* 0 = top of the tree */
	char name[64];
	uint64_t hosts, ok, warning, critical;
};

struct fleet_counts {
	uint64_t total, ok, warning, critical, unassigned, never_connected;
	uint64_t db_outdated, rtp_off, no_av;
};

struct fleet_chunk;

struct fleet_snapshot {
	uint64_t serial;          /* grows with every publish */
	int64_t built;            /* unix s */
	int64_t started;          /* server start, unix s */
	int db_state;             /* enum fleet_db */
	uint64_t agents_connected;
	uint64_t queue_events, queue_hosts, queue_jobs, shed;
	struct fleet_counts counts;   /* every host, also those not yet stored */
	uint64_t threats_24h;
	uint64_t outbreak_threats;    /* threats within the outbreak window */
	bool outbreak;
	bool nac_enabled;             /* srv->nac exists (nac.enabled) */
	uint64_t nac_hosts[FLEET_NAC_TOKENS];  /* hosts per enum nac_token; 0 when NAC is off */
	size_t nhosts;                /* table rows: hosts with a database id */
	size_t ngroups;
	const struct fleet_group *groups;  /* sorted by index */
	/* private */
	int refs;
	size_t nchunks;
	struct fleet_chunk **chunks;
	struct fleet_group *groups_own;
};

struct fleet_params {
	int64_t outbreak_threshold;   /* threats within the window that start an outbreak */
	int64_t outbreak_window;      /* seconds (rounded up to whole minutes) */
	size_t notice_max;            /* notifications waiting at most */
};

/* srv must outlive the fleet. When srv->base is set, a one-second timer
 * calls fleet_update(). NULL with err on failure. */
struct fleet *fleet_new(struct server *srv, const struct fleet_params *p, char *err, size_t errlen);
void fleet_free(struct fleet *f);
void fleet_set_params(struct fleet *f, const struct fleet_params *p);

/* Server-wide values the fleet reads at each update from modules above it
 * (the agent listener, NAC); main.c fills it in. NULL members read as 0 and
 * NAC off. Main thread. */
struct fleet_sources {
	size_t (*agents_connected)(void *arg);
	/* false when NAC is off; else counts[] gets the hosts per token */
	bool (*nac_counts)(void *arg, uint64_t counts[FLEET_NAC_TOKENS]);
	void *arg;
};
void fleet_set_sources(struct fleet *f, const struct fleet_sources *src);

/* ---- main thread: what changed ---- */

/* One host changed (sync, status, last contact). NULL-safe on srv->fleet. */
void fleet_host_changed(struct server *srv, const struct host *h);
/* Hosts were added, removed or renamed: rebuild everything. */
void fleet_mark_dirty(struct server *srv);
/* An agent's validated events were accepted: counts threat_found events,
 * queues a threat notification for each, starts an outbreak when due.
 * Events resent with an id seen recently are not counted twice. Returns
 * the number of threats counted (new ones): the one recognition of new
 * threats, which the caller hands on to mgmt_on_threats. */
size_t fleet_agent_events(struct server *srv, const struct host *h, json_t *events);
/* The database state changed (enum db_state of db.h). */
void fleet_db_state(struct server *srv, int db_state, const char *detail);
/* Publishes a new snapshot if anything changed; also ends outbreaks and
 * notices hosts that became Critical. The timer calls it; tests too. */
void fleet_update(struct fleet *f, int64_t now);

/* ---- any thread: reading ---- */

/* The current snapshot (never NULL after fleet_new); give it back with
 * fleet_release. */
const struct fleet_snapshot *fleet_acquire(struct fleet *f);
void fleet_release(struct fleet *f, const struct fleet_snapshot *s);
/* Row i (< s->nhosts), in ascending id order. */
const struct fleet_host *fleet_host_at(const struct fleet_snapshot *s, size_t i);
/* The index of the first row whose id is >= id; s->nhosts when none. */
size_t fleet_host_lower_bound(const struct fleet_snapshot *s, uint64_t id);

/* ---- notifications (main thread pushes, one consumer takes) ---- */

enum fleet_notice_kind {
	FLEET_NOTICE_HOST_CRITICAL,
	FLEET_NOTICE_THREAT,
	FLEET_NOTICE_OUTBREAK_START,
	FLEET_NOTICE_OUTBREAK_END,
	FLEET_NOTICE_DB_LOST,
	FLEET_NOTICE_DB_RESTORED,
};
#define FLEET_NOTICE_KINDS 6

struct fleet_notice {
	enum fleet_notice_kind kind;
	int64_t time;
	uint64_t host_id;         /* HOST_CRITICAL, THREAT */
	char host[64];
	uint8_t status;           /* HOST_CRITICAL */
	uint32_t reasons, critical;
	int64_t threats;          /* THREAT: unresolved on the host; OUTBREAK_*: in the window */
	uint64_t threats_24h;     /* OUTBREAK_* */
	int db_state;             /* DB_*: enum fleet_db */
	char text[256];           /* THREAT: the agent's message; DB_*: detail */
};

/* A reader (the SNMP subagent) comes or goes. Without one the fleet builds
 * no snapshots and queues no notifications (it still counts threats). */
void fleet_attach(struct fleet *f, bool on);
/* Moves up to max waiting notifications into out (oldest first); adds the
 * number dropped because the queue was full, per kind, to dropped[]. */
size_t fleet_notices_take(struct fleet *f, struct fleet_notice *out, size_t max,
    uint64_t dropped[FLEET_NOTICE_KINDS]);
/* Readable while notifications wait (drained by fleet_notices_take). */
int fleet_notice_fd(const struct fleet *f);

/* Threats the database holds from the last day, from the store's load
 * (main thread): event ids (32 hex) and receive times, newest first. An
 * event this process counted already (its id is among the ones it
 * remembers) is skipped, so a threat that arrived between the start and the
 * load counts once; the rest fill the 24 h count and the outbreak window,
 * and the newest ids guard against resends. Restores the outbreak state
 * quietly (the log says so). NULL-safe. */
#define FLEET_SEED_MAX 200000
struct fleet_seed {
	char uid[33];
	int64_t received;
};
void fleet_seed_threats(struct fleet *f, int64_t now, const struct fleet_seed *ev, size_t n);

/* Agents are being served (main thread, on each frame in and out; cheap).
 * fleet_agents_busy (any thread): whether that happened within the last
 * window_ms; fleet_agent_work_count (any thread): how many times ever, for a
 * rate. SNMP walks give way to agents by these (snmp.c). */
void fleet_note_agent_work(struct fleet *f);
bool fleet_agents_busy(const struct fleet *f, int64_t window_ms);
uint64_t fleet_agent_work_count(const struct fleet *f);

#endif
