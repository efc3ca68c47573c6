/* nac_priv.h — what the NAC engine's files share (conditions.c: tokens
 * and the condition language; profiles.c: policy and profiles; addr.c:
 * address notations; nac.c: the engine, its indexes, queries and the
 * query socket). Not for other modules: nac.h is the public surface. */
#ifndef CUSTOS_NAC_PRIV_H
#define CUSTOS_NAC_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>

#include "nacd/nac.h"

/* limits and units every file of the engine uses */
#define DAY 86400
#define AGE_UNKNOWN ((int64_t)1000000)    /* days: an unknown time counts as very old */
#define MACS_MAX 16                       /* MACs indexed per host */
#define IPS_MAX 32                        /* IP addresses indexed per host */
#define KEYS_MAX (MACS_MAX + IPS_MAX)
#define OUT_MAX ((size_t)1 << 20)         /* replies waiting for a slow reader */
#define LIMIT_LOG_SECONDS 60
#define FIELD_MAX 256                     /* longest identifying request field */

struct hmap;
struct event;
struct evconnlistener;
struct nac_conn;

/* The engine (nac.c) and its query socket (socket.c). */
struct nac {
	struct server *srv;
	struct nac_policy *pol;
	struct hmap *entries;         /* uid -> entry */
	struct hmap *by_mac, *by_ip;  /* key -> struct nac_key */
	uint64_t counts[NAC_TOKENS];
	uint32_t gen;
	bool last_loaded;
	nac_worsened_fn *worsened;
	void *worsened_arg;
	struct nac_stats stats;
	/* the query socket */
	struct evconnlistener *evl;
	struct accept_guard *guard;  /* accept() out of file descriptors pauses */
	struct event *tick;
	struct nac_conn *conns;
	size_t max_conns;
	int64_t last_limit_log;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t sock_dev;
	ino_t sock_ino;
	bool own_socket;
};

/* A bounded writer of JSON text, the same text json_dumps(JSON_COMPACT)
 * gives. */
struct jw {
	char *buf;
	size_t cap, len;
	bool overflow;
};
#define REPLY_MAX 16384

/* Answers one request line into w (nac.c). */
void answer_line(struct nac *n, char *line, size_t len, int64_t now, struct jw *w);
/* socket.c: opens nac.socket on the main loop; closes one connection. */
int nac_socket_open(struct nac *n, char *err, size_t errlen);
void nac_conn_close(struct nac_conn *c);

/* rank for "worst wins" (see nac.h), by enum nac_token */
extern const int nac_token_rank[NAC_TOKENS];

/* dst = src in lower case, cut to dstsz */
void lower_copy(char *dst, const char *src, size_t dstsz);

/* One RADIUS attribute of a profile's reply: name, value prefix, text. */
struct attr {
	const char *name, *prefix, *text;
};
#define ATTRS_MAX 8

/* Decimal text of v into buf (24 bytes), without printf: this is on the
 * query path. */
const char *fmt_i64(int64_t v, char buf[24]);
/* The reply attributes of profile pr for nas (num: room for a number). */
size_t profile_attrs(const struct nac_profile *pr, const struct nac_nas *nas, struct attr a[ATTRS_MAX],
    char num[24]);

#endif
