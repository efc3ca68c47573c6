/* nac_priv.h — what the NAC engine's files share (conditions.c: tokens
 * and the condition language; profiles.c: policy and profiles; addr.c:
 * address notations; nac.c: the engine, its indexes, queries and the
 * query socket). Not for other modules: nac.h is the public surface. */
#ifndef CUSTOS_NAC_PRIV_H
#define CUSTOS_NAC_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "nacd/nac.h"

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
