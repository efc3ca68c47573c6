/* proto.h — the query-socket line protocol as rlm_custos speaks it: a JSON
 * request writer and a bounded, in-place JSON reply parser. Plain C with no
 * FreeRADIUS dependency, so it is unit-tested on its own (nac/test_proto.c).
 * Thread-safe: no state outside the caller's structs. */
#ifndef CUSTOS_NAC_PROTO_H
#define CUSTOS_NAC_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* One request or reply line, '\n' included, is at most this long. */
#define CQ_LINE_MAX 65536
/* Reply attributes kept from one reply; more are counted in dropped. */
#define CQ_PAIRS_MAX 64

/* Builds {"key": "value", ...}\n into a caller's buffer. Values are escaped
 * and invalid UTF-8 is replaced by U+FFFD, so any RADIUS string is safe. */
struct cq_writer {
	char *buf;
	size_t cap, len;
	bool overflow;
	bool first;        /* no member written yet at the current level */
};

void cq_start(struct cq_writer *w, char *buf, size_t cap);
/* A string member; nothing is written when val is NULL. */
void cq_str(struct cq_writer *w, const char *key, const char *val, size_t vlen);
/* Nested object / array: cq_open(w, key, '{') ... cq_close(w, '}'). key is
 * NULL inside an array. */
void cq_open(struct cq_writer *w, const char *key, char bracket);
void cq_close(struct cq_writer *w, char bracket);
/* Closes the top object and appends '\n'. Returns the line length, or -1 when
 * it did not fit. */
long cq_finish(struct cq_writer *w);

struct cq_pair {
	const char *name;
	const char *value;
};

/* A parsed reply. Strings point into the line given to cq_parse_reply (decoded
 * in place) or into nums[]; NULL when absent. */
struct cq_reply {
	const char *token;
	const char *host;
	const char *error;
	bool reject;
	struct cq_pair pairs[CQ_PAIRS_MAX];   /* "reply" list, then "nap" members */
	size_t npairs;
	size_t dropped;                      /* pairs beyond CQ_PAIRS_MAX or of odd shape */
	char nums[CQ_PAIRS_MAX][32];         /* numeric values, as text */
};

/* Parses one reply line (len bytes, no '\n', NUL at line[len]); modifies line.
 * Returns 0, or -1 with err set when it is not a JSON object of the expected
 * shape. A reply without "token" and without "error" is an error. */
int cq_parse_reply(char *line, size_t len, struct cq_reply *r, char *err, size_t errlen);

#endif
