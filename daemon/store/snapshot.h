/* snapshot.h — what custosd needs to answer without MariaDB, kept in a
 * local file (server.state_dir/snapshot.json, mode 0600): the
 * administrators' credentials (name, PBKDF2-SHA256 hash, salt, iterations)
 * and, per host, what status and NAC read (uid, name, group, enrolment,
 * last contact and address, and a compact posture: anti-virus entries,
 * threats, the system's scalars and its interfaces' MACs and addresses;
 * never the package list).
 *
 * Written after the start-up load, then at most every SNAPSHOT_INTERVAL_S
 * seconds (or 20 times the last write's duration, when longer) while
 * something changed (store_host_changed), and at a clean stop; on a thread
 * of its own at nice 10 (the main thread only copies the hosts'
 * fixed fields and takes a reference on each posture, which is never
 * edited), to a temporary file that is fsync'd and renamed over the old
 * one, then the directory is fsync'd.
 *
 * Read once, on a thread, when the database is unavailable at start (down,
 * refused, or the load failed) and nothing was loaded yet; then, on the
 * main thread, the hosts enter the registry marked from_snapshot (database
 * id 0: nothing is written for them and their agents' events wait in the
 * agents' queues), the administrators can log in, NAC decides; the log and GET /api/v1/status say so ("source":
 * "snapshot", "snapshot_time"). When the database load comes in it replaces
 * what came from the snapshot (snapshot_merge_host) and the status says
 * "database". A missing or unreadable file: one log line, start empty.
 *
 * Main thread only, except the functions marked "any thread". */
#ifndef CUSTOS_SNAPSHOT_H
#define CUSTOS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct server;
struct host;
struct status_thresholds;

#define SNAPSHOT_FILE "snapshot.json"
#define SNAPSHOT_INTERVAL_S 30    /* at most one write per interval while changes come */
/* 100,000 hosts take 52-58 MB (ARCHITECTURE.md): ten times that fleet,
 * at about twice the bytes per host, fits; jansson needs several times the
 * text in memory, so a bigger (damaged or planted) file is refused before
 * it is read. */
#define SNAPSHOT_MAX_HOSTS 1000000
#define SNAPSHOT_MAX_BYTES ((size_t)1200 * SNAPSHOT_MAX_HOSTS)
/* PBKDF2 iterations an administrator entry may ask for (custosd makes
 * 100,000-ish): more would make every login a denial of service. */
#define SNAPSHOT_MAX_ITERATIONS 10000000

struct snapshot_admin {
	char name[65];
	char pw_hash[65];
	char salt[33];
	int iterations;
};

struct snapshot_host {
	char uid[33];
	char name[64];
	char last_ip[64];
	uint64_t group_id;
	int64_t enrolled_at, last_seen, posture_time;
	int wake_port;
	json_t *posture;          /* owned reference or NULL: the memory's
	                             posture when writing (compacted on the
	                             writer), the compact one when read */
};

struct snapshot_data {
	int64_t time;             /* when it was taken (unix seconds) */
	struct snapshot_admin *admins;
	size_t nadmins;
	struct snapshot_host *hosts;
	size_t nhosts;
};

/* ---- the file (any thread) ---- */

/* The part of a posture the snapshot keeps (new reference; NULL for a
 * posture that is not an object). */
json_t *snapshot_compact_posture(const json_t *posture);
/* Writes d to path atomically (PATH.tmp, fsync, rename, fsync of the
 * directory), mode 0600. 0; 1 when the file was replaced but the directory
 * fsync failed (err holds the warning); -1 with err (the old file stays). */
int snapshot_write_file(const char *path, const struct snapshot_data *d, char *err, size_t errlen);
/* Reads and checks a snapshot file into d (owned by the caller:
 * snapshot_data_free). 0; -1 with err (errno ENOENT when there is none). */
int snapshot_read_file(const char *path, struct snapshot_data *d, char *err, size_t errlen);
void snapshot_data_free(struct snapshot_data *d);

/* ---- in the daemon ---- */

struct snapshot;

/* path: the file (server.state_dir/SNAPSHOT_FILE). NULL with err. */
struct snapshot *snapshot_new(struct server *srv, const char *path, char *err, size_t errlen);

/* What the snapshot tells the modules above it; main.c fills it in. Every
 * member may be NULL. */
struct snapshot_hooks {
	/* its hosts are in the registry (serving from the snapshot): NAC
	 * evaluates them all */
	void (*served)(void *arg, int64_t now);
	/* hosts came or went in bulk: the fleet rebuilds */
	void (*hosts_reshaped)(void *arg);
	/* h, a host of the snapshot the database load does not have, is
	 * about to leave the registry: the listener closes its agent's
	 * connection (unknown_host), the store drops it from the next batch */
	void (*host_dropped)(void *arg, struct host *h);
	/* the administrators' credentials to write (a malloc'd copy in *out;
	 * returns the count), and seeding them when serving from the snapshot
	 * (the store's: the snapshot sits below it) */
	size_t (*admins_export)(void *arg, struct snapshot_admin **out);
	void (*admins_seed)(void *arg, const struct snapshot_admin *a, size_t n);
	void *arg;
};
void snapshot_set_hooks(struct snapshot *s, const struct snapshot_hooks *hooks);
/* Waits for a write in flight, writes once more when something changed
 * (a clean stop), frees. */
void snapshot_free(struct snapshot *s);

/* Something the snapshot holds changed (NULL-safe on srv->snap). */
void snapshot_changed(struct server *srv);
/* The database is unavailable (why) and nothing was loaded: serve from the
 * snapshot if there is one. Only the first call reads the file. */
void snapshot_fallback(struct server *srv, const char *why);
/* The database load found mem, a host in memory before the load (from the
 * snapshot, or created when its agent connected), as row db: takes the
 * database's administration fields (group, placement, policy, local
 * settings), and its posture, contact and address unless the agent
 * reported newer ones since; re-evaluates. Returns true when memory had
 * something newer (the row is to be written). */
bool snapshot_merge_host(struct host *mem, struct host *db, const struct status_thresholds *t,
    int64_t now);
/* The database load is in: drops what came only from the snapshot, says
 * so, and writes a fresh snapshot soon. */
void snapshot_db_loaded(struct server *srv);
/* Before the database's hosts (rows, n) enter the registry: snapshot hosts
 * that are not among them leave it (a connected agent is closed with
 * unknown_host), so that none holds a name a database host has. */
void snapshot_db_loading(struct server *srv, struct host *const *rows, size_t n);
/* Adds "source" ("database", "snapshot" or "none"), "snapshot_time" and
 * "snapshot" {file, written, hosts, write_ms, error} to a status object. */
void snapshot_status(const struct server *srv, json_t *status);

#endif
