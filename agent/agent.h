/* agent.h — custos-agent's state and its connection to the server.
 * Single-threaded: everything runs on the agent's event loop. */
#ifndef CUSTOS_AGENT_H
#define CUSTOS_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "posture.h"
#include "wake.h"

struct conf;
struct evq;
struct event_base;
struct bufferevent;
struct event;
struct tasks;
struct policy_apply_state;

#define AGENT_VERSION "0.1.0"
#define AGENT_DEFAULT_PORT 13000

struct agent {
	struct event_base *base;
	struct conf *cfg;
	char state_dir[4096];
	char server_host[256];
	int server_port;
	char uid[33];
	char name[64];
	char pinned_fp[65];
	X509 *server_cert;        /* pinned certificate (verifies wake-ups) */
	SSL_CTX *ctx;
	struct evq *q;
	struct posture_config pc;

	struct bufferevent *bev;
	bool connecting, connected;
	bool want_sync;           /* a sync is due on the next connection */
	bool sync_inflight;
	json_t *inflight;         /* event ids sent, waiting for ack/nack */
	size_t server_max_frame;  /* the server's listen.max_frame (this connection's
	                             sync_ok), 0 unknown */
	bool frame_known;         /* this connection's sync_ok or pong came (or
	                             the sync failed): events may go, and an event
	                             larger than agent_max_frame() may be set aside */
	bool ping_inflight;       /* a ping asking for the limit, before events */
	uint64_t batches_sent;    /* events messages sent (this run) */
	uint64_t sync_batch;      /* batches_sent when the sync in flight was sent */
	int backoff_ms;
	int64_t sync_interval;
	int64_t last_report;      /* last immediate sync reporting an applied policy */

	struct event *sync_timer, *retry_timer, *keepalive_timer, *check_timer;
	bool check_known;         /* check_rtp/check_db hold a first observation */
	bool check_rtp;
	bool rtp_pending;         /* one reading differed from check_rtp: the
	                             next one confirms the change (no flapping) */
	int64_t check_db;         /* database version at the last check, -1 none */
	struct event *spool_ev, *wake_ev;
	int inotify_fd, wake_fd;
	struct wake_replay replay;

	uint64_t syncs_ok, events_acked, wake_ok, wake_dropped, pin_mismatches;

	struct tasks *tasks;          /* task scheduler and runner (tasks.h) */
	struct policy_apply_state *policy;  /* applied policy document (policy_apply.h) */
};

/* Paths inside the state directory. */
int agent_path(const struct agent *a, const char *file, char *out, size_t outlen);

/* Enrolment (blocking, before the event loop runs). 0 or -1 with err. */
int agent_enroll(struct agent *a, const char *server, const char *token, char *err, size_t errlen);
/* Loads identity, keys and the pinned certificate from the state directory.
 * 1 when not enrolled yet, 0 loaded, -1 error. */
int agent_load_identity(struct agent *a, char *err, size_t errlen);

/* Event loop side (client.c). */
int agent_start(struct agent *a, char *err, size_t errlen);
void agent_stop(struct agent *a);
/* Starts a sync now (posture + pending events). */
void agent_sync_now(struct agent *a);
/* Checks real-time protection and the database version now (cheap) and
 * queues rtp_stopped / rtp_started / databases_updated when they changed
 * since the last check. Also runs every agent.posture_check_interval s. */
void agent_check_posture(struct agent *a);
/* Sends queued events if connected or connects to do so. */
void agent_flush_events(struct agent *a);

/* Parses "host[:port]" / "[v6]:port". */
int agent_parse_server(const char *spec, char *host, size_t hostlen, int *port);

#endif
