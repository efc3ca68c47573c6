/* coa.h — RFC 5176 Change-of-Authorization and Disconnect requests to the
 * NAS that admitted a host, when the host's posture token gets worse.
 *
 * The NASes are the nac.nas list of custosd.conf: address, CoA port, vendor,
 * method ("coa" or "disconnect") and a file holding the shared secret, which
 * must not be readable by group or others. Packets are encoded and verified
 * with FreeRADIUS's libfreeradius-radius: every request carries an
 * Event-Timestamp and a Message-Authenticator, and a reply is accepted only
 * with a valid Response Authenticator and Message-Authenticator
 * (BlastRADIUS, CVE-2024-3596). Requests go out of one non-blocking UDP
 * socket per address family on the main event loop, are retransmitted
 * (nac.nas.[].retries, retry_interval_ms apart), and every outcome is logged
 * and counted.
 *
 * A CoA re-authenticates the session, so that FreeRADIUS asks custosd again
 * and applies the new token's profile: Cisco NASes get
 * Cisco-AVPair = "subscriber:command=reauthenticate", others RFC 5176's
 * Service-Type = Authorize-Only with a State.
 *
 * Main thread only. */
#ifndef CUSTOS_COA_H
#define CUSTOS_COA_H

#include <stdint.h>

struct server;
struct host;
struct nac_session;
struct coa;

struct coa_stats {
	uint64_t requests;      /* coa_host_worsened calls that sent something */
	uint64_t sent;          /* datagrams, retransmissions included */
	uint64_t retransmits;
	uint64_t acks;          /* CoA-ACK or Disconnect-ACK */
	uint64_t naks;          /* CoA-NAK or Disconnect-NAK */
	uint64_t timeouts;      /* no valid answer after every retry */
	uint64_t bad_replies;   /* failed verification, no Message-Authenticator, wrong code */
	uint64_t no_nas;        /* session's NAS not in nac.nas */
	uint64_t no_session;    /* host worsened, but no session was recorded */
	uint64_t errors;        /* encoding or sending failed; queue full */
};

/* Reads nac.nas from srv->cfg (secrets included) and opens the sockets on
 * srv->base. NULL with err filled ("nac.nas[2] (switch1): ...") when a NAS
 * entry, its secret file or the FreeRADIUS dictionary is unusable. An empty
 * nac.nas list is fine: nothing is ever sent then. */
struct coa *coa_new(struct server *srv, char *err, size_t errlen);
/* Reads nac.nas again (SIGHUP): on success the new list serves the next
 * requests, while requests in flight finish with the settings they started
 * with; on error (err filled as for coa_new) the old list stays. NULL ok. */
int coa_reload(struct coa *c, char *err, size_t errlen);
/* Drops requests still in flight (logged) and closes everything. NULL ok. */
void coa_free(struct coa *c);

/* Host h's token went from old_token to new_token (worse). Sends a
 * CoA-Request or Disconnect-Request for session s (the last admission
 * custosd recorded for h; NULL when none) to the NAS that admitted it. */
void coa_host_worsened(struct coa *c, const struct host *h, const struct nac_session *s,
    const char *old_token, const char *new_token);

void coa_get_stats(const struct coa *c, struct coa_stats *out);
/* Number of requests waiting for an answer or a free RADIUS identifier. */
size_t coa_pending(const struct coa *c);

#endif
