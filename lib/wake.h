/* wake.h — the signed UDP wake-up datagram (server -> agent, port 15000).
 *
 *   "CWK1" | timestamp (8, big-endian unix s) | nonce (16) | host uid (32 ASCII hex)
 *   | signature length (1) | ECDSA-SHA256 signature over the preceding 60 bytes
 *
 * The agent accepts a datagram only when the signature verifies with the
 * pinned server certificate, the uid is its own, the timestamp is within
 * max_skew seconds of its clock, and the nonce was not seen before (a
 * bounded replay cache remembers nonces for the skew window). */
#ifndef CUSTOS_WAKE_H
#define CUSTOS_WAKE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define WAKE_SIGNED_LEN 60
#define WAKE_MAX_LEN (WAKE_SIGNED_LEN + 1 + 80)

enum wake_rc {
	WAKE_OK = 0,
	WAKE_MALFORMED,   /* wrong size / magic */
	WAKE_BAD_SIG,     /* forged */
	WAKE_WRONG_HOST,  /* for another agent */
	WAKE_STALE,       /* timestamp outside the window */
	WAKE_REPLAY,      /* nonce seen before */
};

/* Builds a datagram into buf (WAKE_MAX_LEN bytes); returns its length or -1. */
int wake_build(EVP_PKEY *key, const char *uid, int64_t now, uint8_t *buf, size_t buflen);

#define WAKE_REPLAY_SLOTS 1024
struct wake_replay {
	uint8_t nonce[WAKE_REPLAY_SLOTS][16];
	int64_t ts[WAKE_REPLAY_SLOTS];
	size_t next;
};

/* Verifies a datagram; on WAKE_OK the nonce is remembered. */
enum wake_rc wake_verify(X509 *server_cert, const char *uid, const uint8_t *buf, size_t len,
    int64_t now, int max_skew, struct wake_replay *replay);
const char *wake_rc_text(enum wake_rc rc);

#endif
