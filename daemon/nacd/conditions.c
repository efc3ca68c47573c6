/* conditions.c — NAC tokens ("worst wins") and the condition language: facts of a host, parsing and evaluating nac.conditions expressions (see nac.h). */
#include "nacd/nac.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "conf.h"
#include "hmap.h"
#include "log.h"
#include "core/registry.h"
#include "core/server.h"
#include "nacd/nac_priv.h"
#include "nacd/soh.h"
#include "core/status.h"
#include "utf8.h"
#include "util.h"

/* ---- tokens ---- */

static const char *const token_names[NAC_TOKENS] = {
	"Healthy", "Checkup", "Transition", "Quarantine", "Infected", "Unknown",
};
/* rank for "worst wins"; see nac.h */
const int nac_token_rank[NAC_TOKENS] = { 0, 1, 2, 3, 5, 4 };

const char *
nac_token_name(enum nac_token t)
{
	return (unsigned)t < NAC_TOKENS ? token_names[t] : "?";
}

int
nac_token_parse(const char *name)
{
	for (int i = 0; name && i < NAC_TOKENS; i++)
		if (strcasecmp(name, token_names[i]) == 0)
			return i;
	return -1;
}

enum nac_token
nac_token_worst(enum nac_token a, enum nac_token b)
{
	return nac_token_rank[a] >= nac_token_rank[b] ? a : b;
}

bool
nac_token_worsened(enum nac_token a, enum nac_token b)
{
	return nac_token_rank[b] > nac_token_rank[a];
}

/* ---- facts and conditions ---- */

enum cond_op { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE };
enum fact_kind { KIND_INT, KIND_BOOL, KIND_STATUS };

static const struct {
	const char *name;
	enum fact_kind kind;
} facts[NAC_FACTS] = {
	[NAC_FACT_THREATS] = { "threats", KIND_INT },
	[NAC_FACT_RTP] = { "rtp", KIND_BOOL },
	[NAC_FACT_DB_AGE_DAYS] = { "db_age_days", KIND_INT },
	[NAC_FACT_NO_ANTIVIRUS] = { "no_antivirus", KIND_BOOL },
	[NAC_FACT_REBOOT_REQUIRED] = { "reboot_required", KIND_BOOL },
	[NAC_FACT_STATUS] = { "status", KIND_STATUS },
	[NAC_FACT_LAST_SEEN_DAYS] = { "last_seen_days", KIND_INT },
};
#define FACT_LIST "threats, rtp, db_age_days, no_antivirus, reboot_required, status, last_seen_days"

static int64_t
days_since(int64_t t, int64_t now)
{
	if (t <= 0)
		return AGE_UNKNOWN;
	return now > t ? (now - t) / DAY : 0;
}

void
nac_facts_of_host(const struct host *h, int64_t now, struct nac_facts *f)
{
	const struct status_input *in = &h->sin;
	f->v[NAC_FACT_THREATS] = in->threats;
	f->v[NAC_FACT_RTP] = in->av_installed && in->rtp;
	f->v[NAC_FACT_DB_AGE_DAYS] = in->av_installed ? days_since(in->db_time, now) : AGE_UNKNOWN;
	f->v[NAC_FACT_NO_ANTIVIRUS] = !in->av_installed;
	f->v[NAC_FACT_REBOOT_REQUIRED] = in->reboot_required;
	f->v[NAC_FACT_STATUS] = h->st.status;
	f->v[NAC_FACT_LAST_SEEN_DAYS] = days_since(h->last_seen, now);
}

enum lex_kind { LEX_END, LEX_WORD, LEX_NUM, LEX_OP, LEX_BAD };

struct lexer {
	const char *s;
	size_t pos;
	char tok[64];
};

static enum lex_kind
lex_next(struct lexer *l)
{
	const char *s = l->s;
	size_t i = l->pos, n = 0;
	enum lex_kind k;

	while (s[i] == ' ' || s[i] == '\t')
		i++;
	if (s[i] == '\0') {
		l->pos = i;
		l->tok[0] = '\0';
		return LEX_END;
	}
	if (isalpha((unsigned char)s[i]) || s[i] == '_') {
		k = LEX_WORD;
		while (isalnum((unsigned char)s[i + n]) || s[i + n] == '_' || s[i + n] == '-')
			n++;
	} else if (isdigit((unsigned char)s[i]) || (s[i] == '-' && isdigit((unsigned char)s[i + 1]))) {
		k = LEX_NUM;
		n = 1;
		while (isdigit((unsigned char)s[i + n]))
			n++;
	} else if (strchr("=!<>", s[i]) != NULL) {
		k = LEX_OP;
		n = 1;
		if (s[i + 1] == '=' || (s[i] == '<' && s[i + 1] == '>'))
			n = 2;
	} else {
		k = LEX_BAD;
		n = 1;
	}
	if (n >= sizeof(l->tok))
		return LEX_BAD;
	memcpy(l->tok, s + i, n);
	l->tok[n] = '\0';
	l->pos = i + n;
	return k;
}

static int
parse_op(const char *t)
{
	static const char *const ops[] = { "=", "!=", "<", ">", "<=", ">=" };
	if (strcmp(t, "==") == 0)
		return OP_EQ;
	if (strcmp(t, "<>") == 0)
		return OP_NE;
	for (size_t i = 0; i < ARRAY_LEN(ops); i++)
		if (strcmp(t, ops[i]) == 0)
			return (int)i;
	return -1;
}

static int
parse_value(enum fact_kind kind, enum lex_kind lk, const char *t, int64_t *out)
{
	if (kind == KIND_INT) {
		char *end;
		if (lk != LEX_NUM)
			return -1;
		errno = 0;
		long long v = strtoll(t, &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
		*out = v;
		return 0;
	}
	if (kind == KIND_BOOL) {
		if (strcasecmp(t, "true") == 0 || strcmp(t, "1") == 0)
			*out = 1;
		else if (strcasecmp(t, "false") == 0 || strcmp(t, "0") == 0)
			*out = 0;
		else
			return -1;
		return 0;
	}
	if (strcasecmp(t, "ok") == 0)
		*out = STATUS_OK;
	else if (strcasecmp(t, "warning") == 0)
		*out = STATUS_WARNING;
	else if (strcasecmp(t, "critical") == 0)
		*out = STATUS_CRITICAL;
	else
		return -1;
	return 0;
}

static int
find_fact(const char *name)
{
	for (int i = 0; i < NAC_FACTS; i++)
		if (strcasecmp(name, facts[i].name) == 0)
			return i;
	return -1;
}

/* One condition: `fact OP value`, a bare boolean fact or `not fact`.
 * On return l holds the token after it. */
static int
parse_cond(struct lexer *l, const char *text, struct nac_cond *c, enum lex_kind *next,
    char *err, size_t errlen)
{
	enum lex_kind k = lex_next(l);
	bool neg = false;
	if (k == LEX_WORD && strcasecmp(l->tok, "not") == 0) {
		neg = true;
		k = lex_next(l);
	}
	if (k != LEX_WORD) {
		str_fmt(err, errlen, "\"%s\": a fact expected %s%s%s (facts: " FACT_LIST ")", text,
		    k == LEX_END ? "at the end" : "instead of \"", k == LEX_END ? "" : l->tok,
		    k == LEX_END ? "" : "\"");
		return -1;
	}
	int f = find_fact(l->tok);
	if (f < 0) {
		str_fmt(err, errlen, "\"%s\": unknown fact \"%s\" (facts: " FACT_LIST ")", text,
		    l->tok);
		return -1;
	}
	c->fact = (uint8_t)f;
	k = lex_next(l);
	if (k != LEX_OP || neg) {
		if (facts[f].kind != KIND_BOOL) {
			str_fmt(err, errlen, "\"%s\": %s needs a comparison, e.g. \"%s > 0\"", text,
			    facts[f].name, facts[f].name);
			return -1;
		}
		c->op = OP_EQ;
		c->value = neg ? 0 : 1;
		*next = k;
		return 0;
	}
	int op = parse_op(l->tok);
	if (op < 0) {
		str_fmt(err, errlen, "\"%s\": unknown operator \"%s\" (= != < > <= >=)", text,
		    l->tok);
		return -1;
	}
	if (facts[f].kind == KIND_BOOL && op != OP_EQ && op != OP_NE) {
		str_fmt(err, errlen, "\"%s\": %s is true or false; compare it with = or !=", text,
		    facts[f].name);
		return -1;
	}
	k = lex_next(l);
	if (parse_value(facts[f].kind, k, l->tok, &c->value) < 0) {
		str_fmt(err, errlen, "\"%s\": \"%s\" is not a value for %s (%s)", text, l->tok,
		    facts[f].name, facts[f].kind == KIND_INT ? "an integer" :
		    facts[f].kind == KIND_BOOL ? "true or false" : "OK, Warning or Critical");
		return -1;
	}
	c->op = (uint8_t)op;
	*next = lex_next(l);
	return 0;
}

int
nac_expr_parse(const char *text, struct nac_expr *e, char *err, size_t errlen)
{
	struct lexer l = { .s = text };
	bool or_next = false;

	memset(e, 0, sizeof(*e));
	if (text == NULL || strlen(text) > NAC_EXPR_TEXT_MAX) {
		str_fmt(err, errlen, "condition longer than %d characters", NAC_EXPR_TEXT_MAX);
		return -1;
	}
	for (;;) {
		enum lex_kind k;
		if (e->n == NAC_EXPR_MAX) {
			str_fmt(err, errlen, "\"%s\": more than %d conditions", text, NAC_EXPR_MAX);
			return -1;
		}
		e->c[e->n].or_before = or_next;
		if (parse_cond(&l, text, &e->c[e->n], &k, err, errlen) < 0)
			return -1;
		e->n++;
		if (k == LEX_END)
			return 0;
		if (k == LEX_WORD && (strcasecmp(l.tok, "and") == 0 || strcasecmp(l.tok, "or") == 0)) {
			or_next = strcasecmp(l.tok, "or") == 0;
			continue;
		}
		/* point at what follows the condition */
		const char *rest = l.s + l.pos - strlen(l.tok);
		str_fmt(err, errlen, "\"%s\": \"and\" or \"or\" expected before \"%s\"", text, rest);
		return -1;
	}
}

static bool
cond_holds(const struct nac_cond *c, const struct nac_facts *f)
{
	int64_t v = f->v[c->fact];
	switch (c->op) {
	case OP_EQ: return v == c->value;
	case OP_NE: return v != c->value;
	case OP_LT: return v < c->value;
	case OP_GT: return v > c->value;
	case OP_LE: return v <= c->value;
	case OP_GE: return v >= c->value;
	}
	return false;
}

bool
nac_expr_eval(const struct nac_expr *e, const struct nac_facts *f)
{
	bool term = true;
	for (size_t i = 0; i < e->n; i++) {
		if (e->c[i].or_before) {
			if (term)
				return true;
			term = true;
		}
		if (term && !cond_holds(&e->c[i], f))
			term = false;
	}
	return e->n > 0 && term;
}

