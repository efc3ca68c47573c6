/* frame.h — the agent protocol's framing: a 4-byte big-endian length, then
 * that many bytes of UTF-8 JSON (one object per frame).
 *
 * The length limit is enforced before anything is buffered beyond the header,
 * so an oversized frame costs the peer its connection, not our memory. Used on
 * one thread per buffer. */
#ifndef CUSTOS_FRAME_H
#define CUSTOS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct evbuffer;

#define FRAME_HDR_LEN 4
#define FRAME_DEFAULT_MAX (1024 * 1024)

enum frame_rc {
	FRAME_OK = 0,      /* *msg holds a JSON object (caller owns it) */
	FRAME_NEED_MORE,   /* not a whole frame yet; nothing consumed */
	FRAME_TOO_BIG,     /* declared length > max (or 0); the stream is unusable */
	FRAME_BAD,         /* whole frame consumed but not a JSON object; err says why */
};

/* Appends msg as one frame. -1 (err filled) when it serialises to more than max. */
int frame_encode(struct evbuffer *out, const json_t *msg, size_t max, char *err, size_t errlen);

/* Takes one frame from the front of in. */
enum frame_rc frame_decode(struct evbuffer *in, size_t max, json_t **msg, char *err, size_t errlen);

/* Same on a flat buffer (blocking clients, tests): *used receives the bytes
 * consumed (0 for FRAME_NEED_MORE / FRAME_TOO_BIG). */
enum frame_rc frame_decode_buf(const uint8_t *buf, size_t len, size_t max, json_t **msg,
    size_t *used, char *err, size_t errlen);

#endif
