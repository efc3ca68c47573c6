/* nac.c — see nac.h. Policy (conditions, profiles, NAS), the per-host
 * token cache with its MAC / IP indexes, queries, and the query socket. */
#include "nac.h"

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

#include "accept.h"
#include "conf.h"
#include "hmap.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "soh.h"
#include "status.h"
#include "utf8.h"
#include "util.h"

#define DAY 86400
#define AGE_UNKNOWN ((int64_t)1000000)    /* days: an unknown time counts as very old */
#define MACS_MAX 16                       /* MACs indexed per host */
#define IPS_MAX 32                        /* IP addresses indexed per host */
#define KEYS_MAX (MACS_MAX + IPS_MAX)
#define OUT_MAX ((size_t)1 << 20)         /* replies waiting for a slow reader */
#define LIMIT_LOG_SECONDS 60
#define FIELD_MAX 256                     /* longest identifying request field */

/* ---- tokens ---- */

static const char *const token_names[NAC_TOKENS] = {
	"Healthy", "Checkup", "Transition", "Quarantine", "Infected", "Unknown",
};
/* rank for "worst wins"; see nac.h */
static const int token_rank[NAC_TOKENS] = { 0, 1, 2, 3, 5, 4 };

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
	return token_rank[a] >= token_rank[b] ? a : b;
}

bool
nac_token_worsened(enum nac_token a, enum nac_token b)
{
	return token_rank[b] > token_rank[a];
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

/* ---- policy ---- */

const char *const nac_default_conditions[][2] = {
	{ "Infected", "threats > 0" },
	{ "Quarantine", "rtp = false or db_age_days > 7 or no_antivirus" },
	{ "Checkup", "db_age_days > 1 or reboot_required" },
	{ "Healthy", "status != Critical" },
	{ NULL, NULL },
};

void
nac_policy_free(struct nac_policy *p)
{
	if (p == NULL)
		return;
	free(p->rules);
	free(p->profiles);
	free(p->nas);
	free(p);
}

static void
lower_copy(char *dst, const char *src, size_t dstsz)
{
	size_t i = 0;
	for (; src[i] && i + 1 < dstsz; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

/* A string member of a list element into dst; -1 with err when too long. */
static int
member(const struct conf *cfg, const char *list, size_t i, const char *key, char *dst, size_t dstsz,
    char *err, size_t errlen)
{
	const char *v = conf_list_str(cfg, list, i, key);
	if (str_copy(dst, v, dstsz) >= dstsz) {
		str_fmt(err, errlen, "%s: %s is longer than %zu characters", conf_list_where(cfg, list, i),
		    key, dstsz - 1);
		return -1;
	}
	return 0;
}

static int
load_rules(const struct conf *cfg, struct nac_policy *p, char *err, size_t errlen)
{
	size_t n = conf_list_len(cfg, "nac.conditions");
	char e2[1200];
	p->default_rules = n == 0;
	if (n == 0)
		while (nac_default_conditions[n][0])
			n++;
	p->rules = calloc(n ? n : 1, sizeof(*p->rules));
	if (p->rules == NULL) {
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *tok = p->default_rules ? nac_default_conditions[i][0] :
		    conf_list_str(cfg, "nac.conditions", i, "token");
		const char *when = p->default_rules ? nac_default_conditions[i][1] :
		    conf_list_str(cfg, "nac.conditions", i, "when");
		const char *where = p->default_rules ? "built-in condition" :
		    conf_list_where(cfg, "nac.conditions", i);
		int t = nac_token_parse(tok);
		if (t < 0 || t == NAC_TRANSITION || t == NAC_UNKNOWN) {
			str_fmt(err, errlen, "%s: token \"%s\": conditions give Healthy, Checkup, Quarantine "
			    "or Infected (Transition and Unknown come from the host's state)", where, tok);
			return -1;
		}
		if (nac_expr_parse(when, &p->rules[i].expr, e2, sizeof(e2)) < 0) {
			str_fmt(err, errlen, "%s: when %s", where, e2);
			return -1;
		}
		p->rules[i].token = (enum nac_token)t;
		p->nrules++;
	}
	return 0;
}

static int
load_nas(const struct conf *cfg, struct nac_policy *p, char *err, size_t errlen)
{
	size_t n = conf_list_len(cfg, "nac.nas");
	p->nas = calloc(n ? n : 1, sizeof(*p->nas));
	if (p->nas == NULL) {
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct nac_nas *s = &p->nas[i];
		const char *where = conf_list_where(cfg, "nac.nas", i);
		const char *addr = conf_list_str(cfg, "nac.nas", i, "address");
		const char *method = conf_list_str(cfg, "nac.nas", i, "method");
		char vendor[64];
		if (member(cfg, "nac.nas", i, "name", s->name, sizeof(s->name), err, errlen) < 0 ||
		    member(cfg, "nac.nas", i, "vendor", vendor, sizeof(s->vendor), err, errlen) < 0)
			return -1;
		lower_copy(s->vendor, vendor, sizeof(s->vendor));
		if (s->name[0] == '\0') {
			str_fmt(err, errlen, "%s: a NAS needs a name", where);
			return -1;
		}
		if (nac_ip_normalize(addr, s->address) < 0) {
			str_fmt(err, errlen, "%s: address \"%s\" of NAS %s is not an IP address", where, addr,
			    s->name);
			return -1;
		}
		if (strcmp(method, "coa") != 0 && strcmp(method, "disconnect") != 0) {
			str_fmt(err, errlen, "%s: method of NAS %s must be \"coa\" or \"disconnect\"", where,
			    s->name);
			return -1;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(p->nas[k].name, s->name) == 0 ||
			    strcmp(p->nas[k].address, s->address) == 0) {
				str_fmt(err, errlen, "%s: NAS %s: its name or address is already declared",
				    where, s->name);
				return -1;
			}
		p->nnas++;
	}
	return 0;
}

static int
load_profile(const struct conf *cfg, struct nac_policy *p, size_t i, char *err, size_t errlen)
{
	static const char *const L = "nac.profiles";
	struct nac_profile *pr = &p->profiles[p->nprofiles];
	const char *where = conf_list_where(cfg, L, i);
	const char *tok = conf_list_str(cfg, L, i, "token");
	char vendor[64];
	int t = nac_token_parse(tok);

	if (t < 0) {
		str_fmt(err, errlen, "%s: unknown token \"%s\" (Healthy, Checkup, Transition, Quarantine, "
		    "Infected, Unknown)", where, tok);
		return -1;
	}
	pr->token = (enum nac_token)t;
	if (member(cfg, L, i, "nas", pr->nas, sizeof(pr->nas), err, errlen) < 0 ||
	    member(cfg, L, i, "nas_vendor", vendor, sizeof(pr->nas_vendor), err, errlen) < 0 ||
	    member(cfg, L, i, "vlan", pr->vlan, sizeof(pr->vlan), err, errlen) < 0 ||
	    member(cfg, L, i, "filter_id", pr->filter_id, sizeof(pr->filter_id), err, errlen) < 0 ||
	    member(cfg, L, i, "url_redirect", pr->url_redirect, sizeof(pr->url_redirect) - 13,
	    err, errlen) < 0 ||
	    member(cfg, L, i, "url_redirect_acl", pr->url_redirect_acl, sizeof(pr->url_redirect_acl),
	    err, errlen) < 0)
		return -1;
	lower_copy(pr->nas_vendor, vendor, sizeof(pr->nas_vendor));
	pr->session_timeout = conf_list_int(cfg, L, i, "session_timeout");
	pr->reject = conf_list_bool(cfg, L, i, "reject");
	if (pr->nas[0] && pr->nas_vendor[0]) {
		str_fmt(err, errlen, "%s: give nas or nas_vendor, not both (a NAS has one vendor)", where);
		return -1;
	}
	if (pr->nas[0]) {
		bool found = false;
		for (size_t k = 0; k < p->nnas; k++)
			found |= strcmp(p->nas[k].name, pr->nas) == 0;
		if (!found) {
			str_fmt(err, errlen, "%s: nas \"%s\" is not declared in nac.nas", where, pr->nas);
			return -1;
		}
	}
	if (pr->reject && (pr->vlan[0] || pr->filter_id[0] || pr->url_redirect[0] ||
	    pr->url_redirect_acl[0] || pr->session_timeout)) {
		str_fmt(err, errlen, "%s: a reject profile sends no attributes; remove them or the "
		    "reject", where);
		return -1;
	}
	for (size_t k = 0; k < p->nprofiles; k++) {
		const struct nac_profile *o = &p->profiles[k];
		if (o->token == pr->token && strcmp(o->nas, pr->nas) == 0 &&
		    strcmp(o->nas_vendor, pr->nas_vendor) == 0) {
			str_fmt(err, errlen, "%s: a profile for %s%s%s%s%s is already declared", where, tok,
			    pr->nas[0] ? " on NAS " : "", pr->nas, pr->nas_vendor[0] ? " for vendor " : "",
			    pr->nas_vendor);
			return -1;
		}
	}
	p->nprofiles++;
	return 0;
}

int
nac_policy_load(const struct conf *cfg, struct nac_policy **out, char *err, size_t errlen)
{
	struct nac_policy *p = calloc(1, sizeof(*p));
	size_t n = conf_list_len(cfg, "nac.profiles");

	*out = NULL;
	if (p == NULL || (p->profiles = calloc(n ? n : 1, sizeof(*p->profiles))) == NULL) {
		nac_policy_free(p);
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	p->stale_after = conf_int(cfg, "nac.stale_after");
	if (load_rules(cfg, p, err, errlen) < 0 || load_nas(cfg, p, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (load_profile(cfg, p, i, err, errlen) < 0)
			goto fail;
	if (n == 0) {
		/* nothing declared: reject infected hosts, admit the rest as they are */
		p->profiles[0] = (struct nac_profile){ .token = NAC_INFECTED, .reject = true };
		p->nprofiles = 1;
	}
	*out = p;
	return 0;
fail:
	nac_policy_free(p);
	return -1;
}

int
nac_check_config(const struct conf *cfg, char *err, size_t errlen)
{
	struct nac_policy *p;
	if (nac_policy_load(cfg, &p, err, errlen) < 0)
		return -1;
	nac_policy_free(p);
	return 0;
}

enum nac_token
nac_policy_evaluate(const struct nac_policy *p, const struct host *h, int64_t now)
{
	if (h == NULL)
		return NAC_UNKNOWN;
	if (h->posture == NULL) {
		/* enrolled, first report pending; an agent that never reports is not in transition */
		if (h->enrolled_at > 0 && now - h->enrolled_at > p->stale_after)
			return NAC_UNKNOWN;
		return NAC_TRANSITION;
	}
	if (now - h->posture_time > p->stale_after)
		return NAC_UNKNOWN;

	struct nac_facts f;
	nac_facts_of_host(h, now, &f);
	int worst = -1;
	bool healthy = true;
	for (size_t i = 0; i < p->nrules; i++) {
		const struct nac_rule *r = &p->rules[i];
		if (r->token == NAC_HEALTHY) {
			if (healthy && !nac_expr_eval(&r->expr, &f))
				healthy = false;
		} else if ((worst < 0 || token_rank[r->token] > token_rank[worst]) &&
		    nac_expr_eval(&r->expr, &f)) {
			worst = (int)r->token;
		}
	}
	if (worst >= 0)
		return (enum nac_token)worst;
	return healthy ? NAC_HEALTHY : NAC_CHECKUP;
}

const struct nac_nas *
nac_policy_nas(const struct nac_policy *p, const char *nas_ip, const char *nas_id)
{
	char ip[46];
	if (nas_ip && *nas_ip && nac_ip_normalize(nas_ip, ip) == 0)
		for (size_t i = 0; i < p->nnas; i++)
			if (strcmp(p->nas[i].address, ip) == 0)
				return &p->nas[i];
	if (nas_id && *nas_id)
		for (size_t i = 0; i < p->nnas; i++)
			if (strcmp(p->nas[i].name, nas_id) == 0)
				return &p->nas[i];
	return NULL;
}

const struct nac_profile *
nac_policy_profile(const struct nac_policy *p, enum nac_token t, const struct nac_nas *nas)
{
	const struct nac_profile *best = NULL;
	int best_score = -1;
	for (size_t i = 0; i < p->nprofiles; i++) {
		const struct nac_profile *pr = &p->profiles[i];
		int score;
		if (pr->token != t)
			continue;
		if (pr->nas[0])
			score = nas && strcmp(pr->nas, nas->name) == 0 ? 2 : -1;
		else if (pr->nas_vendor[0])
			score = nas && strcmp(pr->nas_vendor, nas->vendor) == 0 ? 1 : -1;
		else
			score = 0;
		if (score > best_score) {
			best = pr;
			best_score = score;
		}
	}
	return best;
}

/* One reply attribute: the value is prefix followed by text. */
struct attr {
	const char *name, *prefix, *text;
};
#define ATTRS_MAX 8

/* Decimal text of v into buf (24 bytes), without printf: this is on the
 * query path. */
static const char *
fmt_i64(int64_t v, char buf[24])
{
	char *p = buf + 23;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	return p;
}

/* The attributes of a profile in reply order (see nac_profile_reply);
 * num holds the Session-Timeout text. */
static size_t
profile_attrs(const struct nac_profile *pr, const struct nac_nas *nas, struct attr a[ATTRS_MAX],
    char num[24])
{
	size_t k = 0;

	if (pr == NULL || pr->reject)
		return 0;
	if (pr->vlan[0]) {
		a[k++] = (struct attr){ "Tunnel-Type", "", "VLAN" };
		a[k++] = (struct attr){ "Tunnel-Medium-Type", "", "IEEE-802" };
		a[k++] = (struct attr){ "Tunnel-Private-Group-Id", "", pr->vlan };
	}
	if (pr->filter_id[0])
		a[k++] = (struct attr){ "Filter-Id", "", pr->filter_id };
	/* Cisco's AV pairs mean nothing to other vendors' NAS */
	bool cisco = nas == NULL || nas->vendor[0] == '\0' || strcmp(nas->vendor, "cisco") == 0;
	if (cisco && pr->url_redirect[0])
		a[k++] = (struct attr){ "Cisco-AVPair", "url-redirect=", pr->url_redirect };
	if (cisco && pr->url_redirect_acl[0])
		a[k++] = (struct attr){ "Cisco-AVPair", "url-redirect-acl=", pr->url_redirect_acl };
	if (pr->session_timeout > 0) {
		a[k++] = (struct attr){ "Session-Timeout", "", fmt_i64(pr->session_timeout, num) };
		a[k++] = (struct attr){ "Termination-Action", "", "RADIUS-Request" };
	}
	return k;
}

json_t *
nac_profile_reply(const struct nac_profile *pr, const struct nac_nas *nas)
{
	json_t *list = json_array();
	struct attr a[ATTRS_MAX];
	char num[24], buf[300];
	int rc = 0;

	if (list == NULL)
		return NULL;
	size_t k = profile_attrs(pr, nas, a, num);
	for (size_t i = 0; i < k && rc == 0; i++) {
		rc = str_fmt(buf, sizeof(buf), "%s%s", a[i].prefix, a[i].text) < 0 ? -1 : 0;
		if (rc == 0)
			rc = json_array_append_new(list, json_pack("[ss]", a[i].name, buf));
	}
	if (rc != 0) {
		json_decref(list);
		return NULL;
	}
	return list;
}

/* ---- addresses ---- */

static int
hexdig(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
nac_mac_normalize(const char *in, char out[18])
{
	uint8_t nib[12];
	size_t groups = 0, glen[12], nn = 0;
	char sep = 0;
	size_t len = in ? strnlen(in, 64) : 64;

	if (len == 0 || len >= 64)
		return -1;
	glen[0] = 0;
	for (size_t i = 0; i < len; i++) {
		int v = hexdig((unsigned char)in[i]);
		if (v >= 0) {
			if (nn == 12 && groups == 0)
				return -1;
			if (glen[groups] == 12)
				return -1;
			glen[groups]++;
			if (nn < 12)
				nib[nn] = (uint8_t)v;
			nn++;
			continue;
		}
		if (in[i] != ':' && in[i] != '-' && in[i] != '.')
			return -1;
		if ((sep && in[i] != sep) || glen[groups] == 0 || groups == 11)
			return -1;
		sep = in[i];
		glen[++groups] = 0;
	}
	groups++;
	if (glen[groups - 1] == 0)
		return -1;
	uint8_t b[6];
	if (groups == 6 && sep != '.') {
		/* 00:11:22:33:44:55, also with leading zeros left out (0:1b:...) */
		size_t k = 0;
		for (size_t g = 0; g < 6; g++) {
			if (glen[g] > 2)
				return -1;
			b[g] = glen[g] == 2 ? (uint8_t)(nib[k] << 4 | nib[k + 1]) : nib[k];
			k += glen[g];
		}
	} else {
		/* 001122334455, 0011.2233.4455, 001122-334455: equal groups of 12 digits */
		if (nn != 12)
			return -1;
		for (size_t g = 0; g < groups; g++)
			if (glen[g] != 12 / groups)
				return -1;
		if (groups != 1 && groups != 2 && groups != 3)
			return -1;
		for (size_t k = 0; k < 6; k++)
			b[k] = (uint8_t)(nib[2 * k] << 4 | nib[2 * k + 1]);
	}
	/* by hand: snprintf showed in the query socket's profile */
	static const char hex[] = "0123456789abcdef";
	for (size_t k = 0; k < 6; k++) {
		out[3 * k] = hex[b[k] >> 4];
		out[3 * k + 1] = hex[b[k] & 15];
		out[3 * k + 2] = k < 5 ? ':' : '\0';
	}
	return 0;
}

/* Dotted-quad text of an IPv4 address (inet_ntop formats with sprintf). */
static void
ip4_text(const uint8_t *b, char out[46])
{
	char *p = out;
	for (size_t k = 0; k < 4; k++) {
		unsigned v = b[k];
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = k < 3 ? '.' : '\0';
	}
}

int
nac_ip_normalize(const char *in, char out[46])
{
	struct in_addr a4;
	struct in6_addr a6;
	if (in == NULL || strnlen(in, 46) >= 46)
		return -1;
	if (inet_pton(AF_INET, in, &a4) == 1) {
		ip4_text((const uint8_t *)&a4.s_addr, out);
		return 0;
	}
	if (inet_pton(AF_INET6, in, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		ip4_text(&a6.s6_addr[12], out);
		return 0;
	}
	return inet_ntop(AF_INET6, &a6, out, 46) ? 0 : -1;
}

/* ---- the engine: entries and indexes ---- */

enum key_kind { KEY_MAC, KEY_IP };

struct nac_entry;

/* One MAC or IP and the hosts that report it; queries get the one seen
 * last (best). */
struct nac_key {
	char key[46];
	uint8_t kind;
	uint32_t n, cap;
	struct nac_entry *best;
	struct nac_entry **v;
};

struct nac_entry {
	char uid[33];
	uint8_t token;                /* enum nac_token */
	uint32_t gen;                 /* nac_reevaluate's pass */
	int64_t seen;                 /* the host's last contact */
	/* what the keys were built from */
	const void *posture;
	int64_t posture_time;
	uint32_t ip_hash;
	uint32_t nkeys;
	struct nac_key **keys;
	struct nac_session *session;  /* NULL until a post-auth */
};

struct nac_conn;

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

static struct hmap *
key_map(struct nac *n, int kind)
{
	return kind == KEY_MAC ? n->by_mac : n->by_ip;
}

static void
key_rescan(struct nac_key *k)
{
	k->best = NULL;
	for (uint32_t i = 0; i < k->n; i++)
		if (k->best == NULL || k->v[i]->seen > k->best->seen)
			k->best = k->v[i];
}

static void
key_detach(struct nac *n, struct nac_key *k, struct nac_entry *e)
{
	for (uint32_t i = 0; i < k->n; i++)
		if (k->v[i] == e) {
			k->v[i] = k->v[--k->n];
			break;
		}
	if (k->n == 0) {
		hmap_del(key_map(n, k->kind), k->key);
		free(k->v);
		free(k);
		return;
	}
	if (k->best == e)
		key_rescan(k);
}

static struct nac_key *
key_attach(struct nac *n, int kind, const char *text, struct nac_entry *e)
{
	struct hmap *m = key_map(n, kind);
	struct nac_key *k = hmap_get(m, text);
	if (k == NULL) {
		if ((k = calloc(1, sizeof(*k))) == NULL)
			return NULL;
		str_copy(k->key, text, sizeof(k->key));
		k->kind = (uint8_t)kind;
		if (hmap_put(m, k->key, k, NULL) < 0) {
			free(k);
			return NULL;
		}
	}
	for (uint32_t i = 0; i < k->n; i++)
		if (k->v[i] == e)
			return k;
	if (k->n == k->cap) {
		uint32_t cap = k->cap ? 2 * k->cap : 1;
		struct nac_entry **v = realloc(k->v, cap * sizeof(*v));
		if (v == NULL) {
			if (k->n == 0) {
				hmap_del(m, k->key);
				free(k);
			}
			return NULL;
		}
		k->v = v;
		k->cap = cap;
	}
	k->v[k->n++] = e;
	if (k->best == NULL || e->seen >= k->best->seen)
		k->best = e;
	return k;
}

struct keyset {
	size_t n;
	uint8_t kind[KEYS_MAX];
	char text[KEYS_MAX][46];
};

static void
keyset_add(struct keyset *ks, int kind, const char *text)
{
	for (size_t i = 0; i < ks->n; i++)
		if (ks->kind[i] == kind && strcmp(ks->text[i], text) == 0)
			return;
	if (ks->n < KEYS_MAX) {
		ks->kind[ks->n] = (uint8_t)kind;
		str_copy(ks->text[ks->n++], text, sizeof(ks->text[0]));
	}
}

/* from_iface: link-local IPv6 addresses are the same on every segment */
static void
keyset_add_ip(struct keyset *ks, size_t *nips, const char *ip, bool from_iface)
{
	char norm[46];
	struct in6_addr a6;
	if (*nips >= IPS_MAX || ip == NULL || nac_ip_normalize(ip, norm) < 0)
		return;
	if (from_iface && inet_pton(AF_INET6, norm, &a6) == 1 && IN6_IS_ADDR_LINKLOCAL(&a6))
		return;
	size_t before = ks->n;
	keyset_add(ks, KEY_IP, norm);
	*nips += ks->n - before;
}

/* The MACs and IPs a host reports (posture system.interfaces) and the
 * address it connects from. */
static void
host_keys(const struct host *h, struct keyset *ks)
{
	size_t nmacs = 0, nips = 0, i, j;
	json_t *ifc, *a;
	char mac[18];

	ks->n = 0;
	json_t *ifs = json_object_get(json_object_get(h->posture, "system"), "interfaces");
	json_array_foreach(ifs, i, ifc) {
		const char *m = json_string_value(json_object_get(ifc, "mac"));
		if (nmacs < MACS_MAX && m && nac_mac_normalize(m, mac) == 0 &&
		    strcmp(mac, "00:00:00:00:00:00") != 0) {
			size_t before = ks->n;
			keyset_add(ks, KEY_MAC, mac);
			nmacs += ks->n - before;
		}
		json_array_foreach(json_object_get(ifc, "ipv4"), j, a)
			keyset_add_ip(ks, &nips, json_string_value(a), true);
		json_array_foreach(json_object_get(ifc, "ipv6"), j, a)
			keyset_add_ip(ks, &nips, json_string_value(a), true);
	}
	if (h->last_ip[0])
		keyset_add_ip(ks, &nips, h->last_ip, false);
}

static bool
keys_same(const struct nac_entry *e, const struct keyset *ks)
{
	if (e->nkeys != ks->n)
		return false;
	for (size_t i = 0; i < ks->n; i++)
		if (e->keys[i]->kind != ks->kind[i] || strcmp(e->keys[i]->key, ks->text[i]) != 0)
			return false;
	return true;
}

static void
entry_detach_keys(struct nac *n, struct nac_entry *e)
{
	for (uint32_t i = 0; i < e->nkeys; i++)
		key_detach(n, e->keys[i], e);
	free(e->keys);
	e->keys = NULL;
	e->nkeys = 0;
}

static void
entry_set_keys(struct nac *n, struct nac_entry *e, const struct keyset *ks)
{
	if (keys_same(e, ks))
		return;
	entry_detach_keys(n, e);
	if (ks->n == 0 || (e->keys = calloc(ks->n, sizeof(*e->keys))) == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		struct nac_key *k = key_attach(n, ks->kind[i], ks->text[i], e);
		if (k != NULL)
			e->keys[e->nkeys++] = k;
	}
}

static uint32_t
str_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static void
entry_free(struct nac *n, struct nac_entry *e)
{
	entry_detach_keys(n, e);
	n->counts[e->token]--;
	free(e->session);
	free(e);
}

void
nac_host_update(struct nac *n, const struct host *h, int64_t now)
{
	if (n == NULL || h == NULL || h->uid[0] == '\0')
		return;
	struct nac_entry *e = hmap_get(n->entries, h->uid);
	enum nac_token t = nac_policy_evaluate(n->pol, h, now);
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return;
		str_copy(e->uid, h->uid, sizeof(e->uid));
		if (hmap_put(n->entries, e->uid, e, NULL) < 0) {
			free(e);
			return;
		}
		e->token = (uint8_t)t;
		n->counts[t]++;
	} else if (e->token != t) {
		enum nac_token old = (enum nac_token)e->token;
		n->counts[old]--;
		n->counts[t]++;
		e->token = (uint8_t)t;
		log_info("nac", "host %s: %s -> %s", h->name, nac_token_name(old), nac_token_name(t));
		if (nac_token_worsened(old, t) && n->worsened) {
			n->stats.worsened++;
			n->worsened(n->worsened_arg, h, e->session, nac_token_name(old), nac_token_name(t));
		}
	}
	e->gen = n->gen;
	if (h->last_seen != e->seen) {
		e->seen = h->last_seen;
		for (uint32_t i = 0; i < e->nkeys; i++)
			if (e->keys[i]->best != e && e->seen >= e->keys[i]->best->seen)
				e->keys[i]->best = e;
	}
	/* the keys come from the posture document: only a new one can change them */
	uint32_t ih = str_hash(h->last_ip);
	if (e->posture != h->posture || e->posture_time != h->posture_time || e->ip_hash != ih ||
	    (e->nkeys == 0 && (h->posture || h->last_ip[0]))) {
		struct keyset ks;
		host_keys(h, &ks);
		entry_set_keys(n, e, &ks);
		e->posture = h->posture;
		e->posture_time = h->posture_time;
		e->ip_hash = ih;
	}
}

void
nac_host_changed(struct server *srv, const struct host *h)
{
	if (srv->nac)
		nac_host_update(srv->nac, h, now_s());
}

struct collect {
	struct nac *n;
	struct nac_entry **gone;
	size_t ngone, max;
};

static void
collect_gone(void *v, void *arg)
{
	struct nac_entry *e = v;
	struct collect *c = arg;
	if (e->gen != c->n->gen && c->ngone < c->max)
		c->gone[c->ngone++] = e;
}

void
nac_reevaluate(struct nac *n, int64_t now)
{
	size_t cnt;
	if (n == NULL || n->srv->reg == NULL)
		return;
	struct host **all = registry_hosts(n->srv->reg, &cnt);
	if (all == NULL)
		return;
	n->gen++;
	for (size_t i = 0; i < cnt; i++)
		nac_host_update(n, all[i], now);
	free(all);
	size_t have = hmap_count(n->entries);
	if (have <= cnt)
		return;
	/* hosts that left the registry */
	struct collect c = { .n = n, .max = have - cnt };
	if ((c.gone = calloc(c.max, sizeof(*c.gone))) == NULL)
		return;
	hmap_foreach(n->entries, collect_gone, &c);
	for (size_t i = 0; i < c.ngone; i++) {
		hmap_del(n->entries, c.gone[i]->uid);
		entry_free(n, c.gone[i]);
	}
	free(c.gone);
}

enum nac_token
nac_token_of(const struct nac *n, const char *uid)
{
	const struct nac_entry *e = hmap_get(n->entries, uid);
	return e ? (enum nac_token)e->token : NAC_UNKNOWN;
}

const struct nac_session *
nac_session_of(const struct nac *n, const char *uid)
{
	const struct nac_entry *e = hmap_get(n->entries, uid);
	return e ? e->session : NULL;
}

void
nac_token_counts(const struct nac *n, uint64_t counts[NAC_TOKENS])
{
	memcpy(counts, n->counts, sizeof(n->counts));
}

void
nac_set_worsened(struct nac *n, nac_worsened_fn *fn, void *arg)
{
	n->worsened = fn;
	n->worsened_arg = arg;
}

/* ---- queries ---- */

/* The request members, in the order they are checked. */
enum field {
	F_MAC, F_USER, F_CN, F_IP, F_NAS_IP, F_NAS_ID, F_NAS_PORT, F_SESSION_ID, F_PHASE, F_EAP, F_SOH,
	FIELDS
};

static const struct {
	const char *key;
	size_t keylen, max;       /* max: longest value, bytes */
} fields[FIELDS] = {
	[F_MAC] = { "mac", 3, 63 },
	[F_USER] = { "user", 4, FIELD_MAX - 1 },
	[F_CN] = { "cn", 2, FIELD_MAX - 1 },
	[F_IP] = { "ip", 2, 63 },
	[F_NAS_IP] = { "nas_ip", 6, 63 },
	[F_NAS_ID] = { "nas_id", 6, 127 },
	[F_NAS_PORT] = { "nas_port", 8, 63 },
	[F_SESSION_ID] = { "session_id", 10, 127 },
	[F_PHASE] = { "phase", 5, 16 },
	[F_EAP] = { "eap", 3, 16 },      /* present: the request is EAP (its User-Name is no proof) */
	[F_SOH] = { "soh", 3, NAC_LINE_MAX },
};

struct request {
	const char *mac, *user, *cn, *ip, *nas_ip, *nas_id, *nas_port, *session_id, *phase, *eap, *soh;
	const json_t *soh_attrs;
};

static const char **
field_slot(struct request *r, enum field f)
{
	switch (f) {
	case F_MAC: return &r->mac;
	case F_USER: return &r->user;
	case F_CN: return &r->cn;
	case F_IP: return &r->ip;
	case F_NAS_IP: return &r->nas_ip;
	case F_NAS_ID: return &r->nas_id;
	case F_NAS_PORT: return &r->nas_port;
	case F_SESSION_ID: return &r->session_id;
	case F_PHASE: return &r->phase;
	case F_EAP: return &r->eap;
	case F_SOH:
	case FIELDS: break;
	}
	return &r->soh;
}

static int
check_phase(const struct request *r, char *err, size_t errlen)
{
	if (r->phase && strcmp(r->phase, "authorize") != 0 && strcmp(r->phase, "post-auth") != 0) {
		str_fmt(err, errlen, "\"phase\" must be \"authorize\" or \"post-auth\"");
		return -1;
	}
	return 0;
}

/* A string member: absent is fine (NULL), anything else must be a string
 * of at most max bytes without NUL. */
static int
get_str(const json_t *req, enum field f, const char **out, char *err, size_t errlen)
{
	const char *key = fields[f].key;
	const json_t *v = json_object_get(req, key);
	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		str_fmt(err, errlen, "\"%s\" must be a string", key);
		return -1;
	}
	if (json_string_length(v) > fields[f].max) {
		str_fmt(err, errlen, "\"%s\" is longer than %zu bytes", key, fields[f].max);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static int
parse_request(const json_t *req, struct request *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	if (!json_is_object(req)) {
		str_fmt(err, errlen, "a request is a JSON object");
		return -1;
	}
	for (int f = 0; f < FIELDS; f++)
		if (get_str(req, (enum field)f, field_slot(r, (enum field)f), err, errlen) < 0)
			return -1;
	if (check_phase(r, err, errlen) < 0)
		return -1;
	r->soh_attrs = json_object_get(req, "soh_attrs");
	return 0;
}

static bool
json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A JSON string without escapes, control characters or non-ASCII bytes
 * starting at line[*i] (the opening quote); its text and length. false
 * when the string is anything else. */
static bool
plain_string(const char *line, size_t len, size_t *i, size_t *off, size_t *slen)
{
	size_t j = *i + 1;
	if (*i >= len || line[*i] != '"')
		return false;
	for (; j < len; j++) {
		unsigned char c = (unsigned char)line[j];
		if (c == '"')
			break;
		if (c < 0x20 || c >= 0x80 || c == '\\')
			return false;
	}
	if (j >= len)
		return false;
	*off = *i + 1;
	*slen = j - *off;
	*i = j + 1;
	return true;
}

/* What rlm_custos sends nearly always -- an object of the known members
 * whose values are plain ASCII strings (no escapes) or null -- parsed in
 * place without building JSON objects: the closing quotes become NULs,
 * but only once the whole line was accepted. Returns false, the line
 * untouched, for anything else (another member, a duplicate, a number, an
 * escape, UTF-8, soh_attrs, a syntax error): jansson then parses it and
 * gives its error messages. Lengths are checked as in parse_request. */
static bool
fast_parse(char *line, size_t len, struct request *r, char *err, size_t errlen, int *rc)
{
	size_t off[FIELDS] = { 0 }, vlen[FIELDS] = { 0 };
	unsigned seen = 0, nulls = 0;
	size_t i = 0;

	while (i < len && json_ws(line[i]))
		i++;
	if (i >= len || line[i++] != '{')
		return false;
	while (i < len && json_ws(line[i]))
		i++;
	if (i < len && line[i] == '}')
		i++;
	else {
		for (;;) {
			size_t koff, klen;
			int f;
			if (!plain_string(line, len, &i, &koff, &klen))
				return false;
			for (f = 0; f < FIELDS; f++)
				if (fields[f].keylen == klen && memcmp(fields[f].key, line + koff, klen) == 0)
					break;
			if (f == FIELDS || (seen & 1u << f))
				return false;
			seen |= 1u << f;
			while (i < len && json_ws(line[i]))
				i++;
			if (i >= len || line[i++] != ':')
				return false;
			while (i < len && json_ws(line[i]))
				i++;
			if (i < len && line[i] == '"') {
				if (!plain_string(line, len, &i, &off[f], &vlen[f]))
					return false;
			} else if (len - i >= 4 && memcmp(line + i, "null", 4) == 0) {
				nulls |= 1u << f;
				i += 4;
			} else
				return false;
			while (i < len && json_ws(line[i]))
				i++;
			if (i >= len)
				return false;
			if (line[i] == '}') {
				i++;
				break;
			}
			if (line[i++] != ',')
				return false;
			while (i < len && json_ws(line[i]))
				i++;
		}
	}
	while (i < len && json_ws(line[i]))
		i++;
	if (i != len)
		return false;

	memset(r, 0, sizeof(*r));
	*rc = 0;
	for (int f = 0; f < FIELDS; f++) {
		if (!(seen & 1u << f) || (nulls & 1u << f))
			continue;
		if (vlen[f] > fields[f].max) {
			str_fmt(err, errlen, "\"%s\" is longer than %zu bytes", fields[f].key, fields[f].max);
			*rc = -1;
			return true;
		}
		line[off[f] + vlen[f]] = '\0';
		*field_slot(r, (enum field)f) = line + off[f];
	}
	*rc = check_phase(r, err, errlen);
	return true;
}

/* A name as RADIUS carries it: "web-1", "host/web-1.example.com",
 * "web-1@EXAMPLE". Each distinct spelling is looked up once. */
static struct host *
host_by_name_like(const struct registry *reg, const char *s)
{
	char buf[FIELD_MAX], low[FIELD_MAX];
	struct host *h;

	if (s == NULL || *s == '\0' || str_copy(buf, s, sizeof(buf)) >= sizeof(buf))
		return NULL;
	if ((h = registry_host_by_name(reg, buf)) != NULL)
		return h;
	char *p = buf;
	if (strncasecmp(p, "host/", 5) == 0)
		p += 5;
	bool tried = p == buf;    /* p is a spelling already looked up */
	size_t at = strcspn(p, "@");
	if (p[at] != '\0') {
		p[at] = '\0';
		tried = false;
	}
	for (int pass = 0; pass < 2; pass++) {
		if (!tried && *p && (h = registry_host_by_name(reg, p)) != NULL)
			return h;
		lower_copy(low, p, sizeof(low));
		if (strcmp(low, p) != 0 && (h = registry_host_by_name(reg, low)) != NULL)
			return h;
		/* then the first label of a domain name */
		size_t dot = strcspn(p, ".");
		if (p[dot] == '\0')
			break;
		p[dot] = '\0';
		tried = false;
	}
	return NULL;
}

static struct host *
host_by_key(struct nac *n, int kind, const char *norm)
{
	const struct nac_key *k = hmap_get(key_map(n, kind), norm);
	return k && k->best ? registry_host_by_uid(n->srv->reg, k->best->uid) : NULL;
}

static struct host *
lookup(struct nac *n, const struct request *r, const char **by)
{
	const struct registry *reg = n->srv->reg;
	struct host *h = NULL;
	char norm[46], mac[18] = "";

	if (r->cn && *r->cn) {
		*by = "cn";
		if ((h = registry_host_by_uid(reg, r->cn)) != NULL || (h = host_by_name_like(reg, r->cn)))
			return h;
	}
	if (r->mac && nac_mac_normalize(r->mac, mac) == 0) {
		*by = "mac";
		if ((h = host_by_key(n, KEY_MAC, mac)) != NULL)
			return h;
	}
	/* The User-Name names the host only without EAP (MAB, PAP): in an EAP
	 * conversation it is the outer identity the supplicant chose, and a
	 * user with valid credentials on an unknown MAC could name a healthy
	 * host (or its MAC) there and get its profile. EAP finds the host by
	 * its MAC, the certificate's CN or the IP address. */
	if (r->user && *r->user && !(r->eap && *r->eap)) {
		*by = "user";
		if ((h = host_by_name_like(reg, r->user)) != NULL)
			return h;
		/* MAB: the user name is the MAC (often the very one just missed) */
		if (nac_mac_normalize(r->user, norm) == 0 && strcmp(norm, mac) != 0 &&
		    (h = host_by_key(n, KEY_MAC, norm)) != NULL)
			return h;
	}
	if (r->ip && nac_ip_normalize(r->ip, norm) == 0) {
		*by = "ip";
		if ((h = host_by_key(n, KEY_IP, norm)) != NULL)
			return h;
	}
	*by = NULL;
	return NULL;
}

/* MS-Quarantine-State (Full-Access 0, Quarantine 1, Probation 2) and
 * MS-Extended-Quarantine-State (Transition 1, Infected 2, Unknown 3,
 * No-Data 4; 0: not sent), as dictionary.microsoft numbers them. */
static void
nap_states(enum nac_token t, bool no_data, int *state, int *ext)
{
	*state = 1;
	*ext = 0;
	switch (t) {
	case NAC_HEALTHY: *state = 0; break;
	case NAC_CHECKUP: *state = 2; break;
	case NAC_TRANSITION: *state = 2; *ext = 1; break;
	case NAC_QUARANTINE: *state = 1; break;
	case NAC_INFECTED: *state = 1; *ext = 2; break;
	case NAC_UNKNOWN: *state = 1; *ext = no_data ? 4 : 3; break;
	}
}

/* What a query decided; written out as JSON objects (nac_query) or as
 * text (nac_answer, the socket). */
struct verdict {
	enum nac_token t;
	const struct host *h;
	const char *by;
	struct nac_entry *e;
	const struct nac_nas *nas;
	const struct nac_profile *pr;
	bool has_soh, malformed, no_data;
	struct soh_report rep;
	char soh_err[200];
};

/* The SoH of the request, if any, into v->rep (v->malformed, v->soh_err).
 * Returns false when the request carries no SoH. */
static bool
eval_soh(const struct request *r, struct verdict *v)
{
	struct soh_report *rep = &v->rep;
	v->malformed = false;
	v->soh_err[0] = '\0';
	if (r->soh == NULL && r->soh_attrs == NULL)
		return false;
	soh_report_init(rep);
	int rc = 0;
	if (r->soh)
		rc = soh_parse_hex(r->soh, rep, v->soh_err, sizeof(v->soh_err));
	if (rc == 0 && r->soh_attrs) {
		struct soh_report b;
		rc = soh_from_attrs(r->soh_attrs, &b, v->soh_err, sizeof(v->soh_err));
		/* both forms given: a class ok in either is ok (as for two products) */
		for (int i = 0; rc == 0 && i < SOH_CLASSES; i++)
			if (b.cls[i] == SOH_STATE_OK || (b.cls[i] == SOH_STATE_BAD &&
			    rep->cls[i] != SOH_STATE_OK))
				rep->cls[i] = b.cls[i];
		if (rc == 0 && rep->machine_name[0] == '\0')
			str_copy(rep->machine_name, b.machine_name, sizeof(rep->machine_name));
	}
	v->malformed = rc < 0;
	return true;
}

static void
decide(struct nac *n, const struct request *r, int64_t now, struct verdict *v)
{
	struct host *h = lookup(n, r, &v->by);

	v->has_soh = eval_soh(r, v);
	if (h == NULL && v->has_soh && !v->malformed && v->rep.machine_name[0] &&
	    (h = host_by_name_like(n->srv->reg, v->rep.machine_name)) != NULL)
		v->by = "soh";

	v->e = NULL;
	v->t = NAC_UNKNOWN;
	if (h) {
		if ((v->e = hmap_get(n->entries, h->uid)) == NULL) {
			nac_host_update(n, h, now);   /* not indexed yet (just loaded) */
			v->e = hmap_get(n->entries, h->uid);
		}
		v->t = v->e ? (enum nac_token)v->e->token : nac_policy_evaluate(n->pol, h, now);
	}
	v->h = h;
	v->no_data = false;
	if (v->has_soh) {
		enum nac_token st = NAC_UNKNOWN;
		bool contributes = true;
		if (!v->malformed) {
			switch (soh_verdict(&v->rep)) {
			case SOH_VERDICT_NONE: contributes = false; break;
			case SOH_VERDICT_OK: st = NAC_HEALTHY; break;
			case SOH_VERDICT_CHECKUP: st = NAC_CHECKUP; break;
			case SOH_VERDICT_QUARANTINE: st = NAC_QUARANTINE; break;
			}
		}
		if (contributes)
			v->t = h ? nac_token_worst(v->t, st) : st;
		else
			v->no_data = h == NULL;
	}
	v->nas = nac_policy_nas(n->pol, r->nas_ip, r->nas_id);
	v->pr = nac_policy_profile(n->pol, v->t, v->nas);
}

static void
record_session(struct nac *n, struct nac_entry *e, const struct request *r, int64_t now)
{
	if (e->session == NULL && (e->session = calloc(1, sizeof(*e->session))) == NULL)
		return;
	struct nac_session *s = e->session;
	str_copy(s->nas_ip, r->nas_ip ? r->nas_ip : "", sizeof(s->nas_ip));
	str_copy(s->nas_id, r->nas_id ? r->nas_id : "", sizeof(s->nas_id));
	str_copy(s->calling_station_id, r->mac ? r->mac : "", sizeof(s->calling_station_id));
	str_copy(s->user, r->user ? r->user : "", sizeof(s->user));
	str_copy(s->session_id, r->session_id ? r->session_id : "", sizeof(s->session_id));
	s->time = now;
	n->stats.sessions++;
}

/* The reply was written: count it and record the session. */
static void
answered(struct nac *n, const struct request *r, const struct verdict *v, int64_t now)
{
	if (v->e && r->phase && strcmp(r->phase, "post-auth") == 0)
		record_session(n, v->e, r, now);
	n->stats.queries++;
	n->stats.answers[v->t]++;
}

json_t *
nac_query(struct nac *n, const json_t *req, int64_t now, char *err, size_t errlen)
{
	struct request r;
	struct verdict v;

	if (parse_request(req, &r, err, errlen) < 0)
		return NULL;
	decide(n, &r, now, &v);

	json_t *reply = json_object();
	json_t *attrs = nac_profile_reply(v.pr, v.nas);
	if (reply == NULL || attrs == NULL ||
	    json_object_set_new(reply, "token", json_string(nac_token_name(v.t))) < 0 ||
	    json_object_set_new(reply, "host", v.h ? json_string(v.h->name) : json_null()) < 0 ||
	    json_object_set_new(reply, "by", v.by && v.h ? json_string(v.by) : json_null()) < 0 ||
	    json_object_set_new(reply, "reject", json_boolean(v.pr && v.pr->reject)) < 0 ||
	    json_object_set_new(reply, "reply", attrs) < 0) {
		json_decref(reply);
		str_fmt(err, errlen, "out of memory");
		return NULL;
	}
	if (v.has_soh) {
		int state, ext;
		nap_states(v.t, v.no_data, &state, &ext);
		json_t *nap = json_pack("{s:i}", "MS-Quarantine-State", state);
		if (nap && ext)
			json_object_set_new(nap, "MS-Extended-Quarantine-State", json_integer(ext));
		json_object_set_new(reply, "nap", nap);
		json_t *s = json_object();
		for (int i = 0; s && i < SOH_CLASSES; i++)
			json_object_set_new(s, soh_class_name((enum soh_class)i),
			    json_string(v.malformed ? "unknown" : soh_state_name(v.rep.cls[i])));
		if (s && v.malformed)
			json_object_set_new(s, "error", json_string(v.soh_err));
		json_object_set_new(reply, "soh", s);
	}
	answered(n, &r, &v, now);
	return reply;
}

/* ---- reply text ---- */

/* A bounded writer of JSON text, the same text json_dumps(JSON_COMPACT)
 * gives. */
struct jw {
	char *buf;
	size_t cap, len;
	bool overflow;
};

static void
jw_put(struct jw *w, const char *s, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

#define JW_LIT(w, s) jw_put((w), (s), sizeof(s) - 1)

/* A quoted, escaped string (prefix then s). Escapes as jansson does;
 * a byte that is not UTF-8 becomes U+FFFD (jansson refuses the string). */
static void
jw_str2(struct jw *w, const char *prefix, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *parts[2] = { prefix, s };

	JW_LIT(w, "\"");
	for (int k = 0; k < 2; k++) {
		const unsigned char *p = (const unsigned char *)parts[k];
		while (*p && !w->overflow) {
			const unsigned char *run = p;
			while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
				p++;
			if (p > run)
				jw_put(w, (const char *)run, (size_t)(p - run));
			if (*p == '\0')
				break;
			if (*p == '"' || *p == '\\') {
				char e[2] = { '\\', (char)*p };
				jw_put(w, e, 2);
				p++;
			} else if (*p < 0x20) {
				const char *named = NULL;
				switch (*p) {
				case '\b': named = "\\b"; break;
				case '\f': named = "\\f"; break;
				case '\n': named = "\\n"; break;
				case '\r': named = "\\r"; break;
				case '\t': named = "\\t"; break;
				}
				if (named)
					jw_put(w, named, 2);
				else {
					char e[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
					jw_put(w, e, 6);
				}
				p++;
			} else {
				size_t l = utf8_seq_len(p, strnlen((const char *)p, 4));
				if (l == 0) {
					JW_LIT(w, "\\uFFFD");
					p++;
				} else {
					jw_put(w, (const char *)p, l);
					p += l;
				}
			}
		}
	}
	JW_LIT(w, "\"");
}

static void
jw_str(struct jw *w, const char *s)
{
	if (s == NULL)
		JW_LIT(w, "null");
	else
		jw_str2(w, "", s);
}

static void
jw_int(struct jw *w, int64_t v)
{
	char buf[24];
	const char *s = fmt_i64(v, buf);
	jw_put(w, s, strlen(s));
}

static void
write_reply(struct jw *w, const struct verdict *v)
{
	struct attr a[ATTRS_MAX];
	char num[24];

	JW_LIT(w, "{\"token\":");
	jw_str(w, nac_token_name(v->t));
	JW_LIT(w, ",\"host\":");
	jw_str(w, v->h ? v->h->name : NULL);
	JW_LIT(w, ",\"by\":");
	jw_str(w, v->by && v->h ? v->by : NULL);
	if (v->pr && v->pr->reject)
		JW_LIT(w, ",\"reject\":true,\"reply\":[");
	else
		JW_LIT(w, ",\"reject\":false,\"reply\":[");
	size_t k = profile_attrs(v->pr, v->nas, a, num);
	for (size_t i = 0; i < k; i++) {
		JW_LIT(w, "[");
		jw_str(w, a[i].name);
		JW_LIT(w, ",");
		jw_str2(w, a[i].prefix, a[i].text);
		jw_put(w, i + 1 < k ? "]," : "]", i + 1 < k ? 2 : 1);
	}
	JW_LIT(w, "]");
	if (v->has_soh) {
		int state, ext;
		nap_states(v->t, v->no_data, &state, &ext);
		JW_LIT(w, ",\"nap\":{\"MS-Quarantine-State\":");
		jw_int(w, state);
		if (ext) {
			JW_LIT(w, ",\"MS-Extended-Quarantine-State\":");
			jw_int(w, ext);
		}
		JW_LIT(w, "},\"soh\":{");
		for (int i = 0; i < SOH_CLASSES; i++) {
			if (i > 0)
				JW_LIT(w, ",");
			jw_str(w, soh_class_name((enum soh_class)i));
			JW_LIT(w, ":");
			jw_str(w, v->malformed ? "unknown" : soh_state_name(v->rep.cls[i]));
		}
		if (v->malformed) {
			JW_LIT(w, ",\"error\":");
			jw_str(w, v->soh_err);
		}
		JW_LIT(w, "}");
	}
	JW_LIT(w, "}");
}

/* Longest reply text: every string escaped at worst is far below this. */
#define REPLY_MAX 16384

/* One request line (without '\n'; parsed in place, so changed) -> its
 * reply text in w (REPLY_MAX bytes): the reply or {"error": "..."}. */
static void
answer_line(struct nac *n, char *line, size_t len, int64_t now, struct jw *w)
{
	struct request r;
	struct verdict v;
	char err[300];
	json_t *req = NULL;
	int rc;

	if (!fast_parse(line, len, &r, err, sizeof(err), &rc)) {
		json_error_t je;
		if ((req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
			str_fmt(err, sizeof(err), "malformed JSON at column %d: %s", je.column, je.text);
			rc = -1;
		} else
			rc = parse_request(req, &r, err, sizeof(err));
	}
	if (rc == 0) {
		decide(n, &r, now, &v);
		write_reply(w, &v);
		if (!w->overflow)
			answered(n, &r, &v, now);
		else {
			str_fmt(err, sizeof(err), "reply longer than %d bytes", REPLY_MAX);
			rc = -1;
		}
	}
	json_decref(req);
	if (rc < 0) {
		n->stats.errors++;
		w->len = 0;
		w->overflow = false;
		JW_LIT(w, "{\"error\":");
		jw_str(w, err);
		JW_LIT(w, "}");
	}
}

char *
nac_answer(struct nac *n, const char *line, size_t len, int64_t now, size_t *outlen)
{
	char *copy = malloc(len + 1), *text = malloc(REPLY_MAX + 1);
	struct jw w = { .buf = text, .cap = REPLY_MAX };

	if (copy == NULL || text == NULL) {
		free(copy);
		free(text);
		return NULL;
	}
	memcpy(copy, line, len);
	copy[len] = '\0';
	answer_line(n, copy, len, now, &w);
	free(copy);
	text[w.len] = '\0';
	*outlen = w.len;
	char *fit = realloc(text, w.len + 1);
	return fit ? fit : text;
}

void
nac_get_stats(const struct nac *n, struct nac_stats *out)
{
	*out = n->stats;
}

/* ---- the query socket ---- */

/* Plain read()/send() on the socket: a reply is sent as soon as the lines
 * read are answered, and the write event is armed only when the socket
 * is full, so a query costs one wake-up, one read and one send (a
 * bufferevent re-armed and disarmed its write event for every reply). */

#define IN_INIT 4096                      /* input buffer at first */
#define IN_MAX ((size_t)NAC_LINE_MAX + 1) /* a longest line and its '\n' */
#define OUT_INIT 1024                     /* output buffer at first */
#define OUT_KEEP ((size_t)64 << 10)       /* larger: given back once sent */

struct nac_conn {
	struct nac *n;
	int fd;
	struct event *rev;        /* EV_READ, persistent; deleted while throttled */
	struct event *wev;        /* EV_WRITE, added while a send would block */
	struct nac_conn *prev, *next;
	char *in;                 /* received, not yet answered */
	size_t in_len, in_cap;
	size_t scanned;           /* bytes of in known to hold no '\n' */
	char *out;                /* replies not yet sent: out[out_pos..out_len) */
	size_t out_pos, out_len, out_cap;
	char peer[48];            /* "pid 123 uid 101" for messages */
	bool throttled;           /* reading paused until the replies drain */
	bool want_write;          /* wev is added */
};

static void
conn_close(struct nac_conn *c)
{
	struct nac *n = c->n;
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n->stats.connections--;
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static size_t
conn_pending(const struct nac_conn *c)
{
	return c->out_len - c->out_pos;
}

/* Room for need more bytes of output; -1 when out of memory. */
static int
out_reserve(struct nac_conn *c, size_t need)
{
	if (c->out_cap - c->out_len >= need)
		return 0;
	if (c->out_pos > 0) {
		memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
		c->out_len -= c->out_pos;
		c->out_pos = 0;
		if (c->out_cap - c->out_len >= need)
			return 0;
	}
	size_t cap = c->out_cap ? c->out_cap : OUT_INIT;
	while (cap - c->out_len < need)
		cap *= 2;
	char *p = realloc(c->out, cap);
	if (p == NULL)
		return -1;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

/* Sends what the socket takes; arms the write event when it is full.
 * -1 when the connection failed. */
static int
conn_flush(struct nac_conn *c)
{
	while (c->out_pos < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_debug("nac", "query socket client %s: %s", c->peer, strerror(errno));
				return -1;
			}
			if (!c->want_write) {
				if (event_add(c->wev, NULL) < 0)
					return -1;
				c->want_write = true;
			}
			return 0;
		}
		c->out_pos += (size_t)w;
	}
	c->out_pos = c->out_len = 0;
	if (c->out_cap > OUT_KEEP) {
		/* a burst of pipelined replies is over */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return 0;
}

/* Answers every complete line received (all of them before sending: one
 * send for a batch), then sends; false when the connection was closed. */
static bool
conn_process(struct nac_conn *c)
{
	struct nac *n = c->n;
	size_t start = 0;
	int64_t now = now_s();
	char text[REPLY_MAX];

	while (conn_pending(c) < OUT_MAX) {
		char *line = c->in + start;
		size_t avail = c->in_len - start;
		char *nl = memchr(line + c->scanned, '\n', avail - c->scanned);
		if (nl == NULL) {
			c->scanned = avail;
			if (avail > NAC_LINE_MAX)
				goto oversize;
			break;
		}
		size_t len = (size_t)(nl - line);
		c->scanned = 0;
		if (len > NAC_LINE_MAX)
			goto oversize;
		struct jw w = { .buf = text, .cap = REPLY_MAX };
		answer_line(n, line, len > 0 && line[len - 1] == '\r' ? len - 1 : len, now, &w);
		if (out_reserve(c, w.len + 1) < 0) {
			log_warnx("nac", "query socket client %s: out of memory; closing", c->peer);
			conn_close(c);
			return false;
		}
		memcpy(c->out + c->out_len, text, w.len);
		c->out[c->out_len + w.len] = '\n';
		c->out_len += w.len + 1;
		start += len + 1;
	}
	if (start > 0) {
		c->in_len -= start;
		memmove(c->in, c->in + start, c->in_len);
		if (c->in_cap > 4 * IN_INIT && c->in_len < IN_INIT) {
			/* the long line is answered */
			char *p = realloc(c->in, IN_INIT);
			if (p != NULL) {
				c->in = p;
				c->in_cap = IN_INIT;
			}
		}
	}
	if (!c->want_write && conn_flush(c) < 0) {
		conn_close(c);
		return false;
	}
	if (conn_pending(c) >= OUT_MAX && !c->throttled) {
		/* a client that sends without reading: stop reading until the
		 * write event (armed: the socket is full) drains the replies */
		if (event_del(c->rev) < 0) {
			conn_close(c);
			return false;
		}
		c->throttled = true;
	}
	return true;
oversize:
	log_warnx("nac", "query socket client %s: request line over %d bytes; closing", c->peer,
	    NAC_LINE_MAX);
	n->stats.oversize++;
	conn_close(c);
	return false;
}

static void
conn_read(evutil_socket_t fd, short what, void *arg)
{
	struct nac_conn *c = arg;
	(void)what;

	if (c->in_cap - c->in_len < IN_INIT / 2 && c->in_cap < IN_MAX) {
		size_t cap = c->in_cap * 2 < IN_MAX ? c->in_cap * 2 : IN_MAX;
		char *p = realloc(c->in, cap);
		if (p == NULL) {
			log_warnx("nac", "query socket client %s: out of memory; closing", c->peer);
			conn_close(c);
			return;
		}
		c->in = p;
		c->in_cap = cap;
	}
	/* not full: what is left after answering is less than a longest line */
	ssize_t r = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (r > 0) {
		c->in_len += (size_t)r;
		conn_process(c);
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r < 0)
		log_debug("nac", "query socket client %s: %s", c->peer, strerror(errno));
	conn_close(c);
}

static void
conn_write(evutil_socket_t fd, short what, void *arg)
{
	struct nac_conn *c = arg;
	(void)fd;
	(void)what;

	c->want_write = false;
	if (conn_flush(c) < 0) {
		conn_close(c);
		return;
	}
	if (c->throttled && conn_pending(c) < OUT_MAX) {
		c->throttled = false;
		if (event_add(c->rev, NULL) < 0) {
			conn_close(c);
			return;
		}
		conn_process(c);
	}
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct nac *n = arg;
	struct event_base *base = evconnlistener_get_base(l);
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	(void)sa;
	(void)salen;

	if (n->stats.connections >= n->max_conns) {
		int64_t now = now_s();
		if (now - n->last_limit_log >= LIMIT_LOG_SECONDS) {
			log_warnx("nac", "query socket: %zu connections open (nac.max_connections); refusing "
			    "more; lower rlm_custos's pool or raise the limit", n->max_conns);
			n->last_limit_log = now;
		}
		evutil_closesocket(fd);
		return;
	}
	/* the listener made fd non-blocking */
	struct nac_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		log_warnx("nac", "query socket: out of memory; connection refused");
		return;
	}
	c->n = n;
	c->fd = fd;
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->stats.connections++;
	c->in = malloc(IN_INIT);
	c->in_cap = IN_INIT;
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read, c);
	c->wev = event_new(base, fd, EV_WRITE, conn_write, c);
	if (c->in == NULL || c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) < 0) {
		log_warnx("nac", "query socket: out of memory; connection refused");
		conn_close(c);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		str_fmt(c->peer, sizeof(c->peer), "pid %d uid %u", (int)cred.pid, (unsigned)cred.uid);
	else
		str_copy(c->peer, "?", sizeof(c->peer));
}

/* Parent directory of path (created 0755 when missing: FreeRADIUS must
 * be able to reach the socket). */
static int
socket_dir(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	str_copy(dir, path, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir_p(dir, 0755) < 0) {
		str_fmt(err, errlen, "nac.socket: cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* A socket file left by a custosd that is gone is removed; one that
 * answers belongs to a running daemon. */
static int
clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		str_fmt(err, errlen, "nac.socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		str_fmt(err, errlen, "nac.socket %s exists and is not a socket; remove it or choose "
		    "another path", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		str_fmt(err, errlen, "nac.socket: socket: %s", strerror(errno));
		return -1;
	}
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN) {
		str_fmt(err, errlen, "nac.socket %s is in use by another process (another custosd?)", path);
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		str_fmt(err, errlen, "cannot remove the stale nac.socket %s: %s", path, strerror(errno));
		return -1;
	}
	log_info("nac", "removed the stale query socket %s", path);
	return 0;
}

static void
socket_group(const char *path, const char *group)
{
	struct group gr, *res = NULL;
	char buf[4096];
	if (group[0] == '\0')
		return;
	int rc = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
	if (rc != 0 || res == NULL) {
		log_warnx("nac", "group %s (nac.socket_group) does not exist; %s keeps the daemon's "
		    "group, so FreeRADIUS may not reach it", group, path);
		return;
	}
	if (chown(path, (uid_t)-1, gr.gr_gid) < 0)
		log_warn("nac", "cannot give %s to group %s", path, group);
}

static int
open_socket(struct nac *n, char *err, size_t errlen)
{
	const char *path = conf_str(n->srv->cfg, "nac.socket");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;

	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path) || !*path) {
		str_fmt(err, errlen, "nac.socket \"%s\" is empty or longer than %zu characters", path,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	if (socket_dir(path, err, errlen) < 0 || clear_stale(path, &sun, err, errlen) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		str_fmt(err, errlen, "nac.socket: socket: %s", strerror(errno));
		return -1;
	}
	/* no client can connect before listen(): mode and group are set first */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		str_fmt(err, errlen, "nac.socket: cannot bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	str_copy(n->path, path, sizeof(n->path));
	n->own_socket = true;
	if (lstat(path, &st) == 0) {
		n->sock_dev = st.st_dev;
		n->sock_ino = st.st_ino;
	}
	if (chmod(path, 0660) < 0) {
		str_fmt(err, errlen, "nac.socket: cannot chmod %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	socket_group(path, conf_str(n->srv->cfg, "nac.socket_group"));
	n->evl = evconnlistener_new(n->srv->base, on_accept, n,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	if (n->evl == NULL) {
		str_fmt(err, errlen, "nac.socket: cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	n->guard = accept_guard_new(n->srv->base, n->evl, "nac", "query socket", "raise the open-file limit "
	    "(LimitNOFILE= in custosd's unit, ulimit -n) or lower nac.max_connections",
	    &n->srv->stats.accept_pauses);
	if (n->guard == NULL) {
		str_fmt(err, errlen, "nac.socket: out of memory");
		return -1;
	}
	return 0;
}

/* Hosts loaded from the database or removed reach no hook: catch up. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct nac *n = arg;
	struct server *srv = n->srv;
	(void)fd;
	(void)what;
	if (srv->reg == NULL)
		return;
	if (srv->loaded != n->last_loaded || registry_host_count(srv->reg) < hmap_count(n->entries)) {
		n->last_loaded = srv->loaded;
		nac_reevaluate(n, now_s());
	}
}

struct nac *
nac_new(struct server *srv, char *err, size_t errlen)
{
	struct nac *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		str_fmt(err, errlen, "nac: out of memory");
		return NULL;
	}
	n->srv = srv;
	n->max_conns = (size_t)conf_int(srv->cfg, "nac.max_connections");
	n->entries = hmap_new();
	n->by_mac = hmap_new();
	n->by_ip = hmap_new();
	if (!n->entries || !n->by_mac || !n->by_ip) {
		str_fmt(err, errlen, "nac: out of memory");
		goto fail;
	}
	if (nac_policy_load(srv->cfg, &n->pol, err, errlen) < 0)
		goto fail;
	if (srv->base) {
		struct timeval second = { 1, 0 };
		if (open_socket(n, err, errlen) < 0)
			goto fail;
		n->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, n);
		if (n->tick == NULL || event_add(n->tick, &second) < 0) {
			str_fmt(err, errlen, "nac: cannot add a timer");
			goto fail;
		}
		log_info("nac", "answering on %s: %zu condition(s)%s, %zu profile(s), %zu NAS",
		    n->path, n->pol->nrules, n->pol->default_rules ? " (built-in)" : "",
		    n->pol->nprofiles, n->pol->nnas);
	}
	n->last_loaded = srv->loaded;
	if (srv->reg)
		nac_reevaluate(n, now_s());
	return n;
fail:
	nac_free(n);
	return NULL;
}

static void
free_entry_cb(void *v, void *arg)
{
	struct nac_entry *e = v;
	(void)arg;
	free(e->keys);
	free(e->session);
	free(e);
}

static void
free_key_cb(void *v, void *arg)
{
	struct nac_key *k = v;
	(void)arg;
	free(k->v);
	free(k);
}

void
nac_free(struct nac *n)
{
	if (n == NULL)
		return;
	while (n->conns)
		conn_close(n->conns);
	accept_guard_free(n->guard);
	if (n->evl)
		evconnlistener_free(n->evl);
	if (n->own_socket) {
		/* only our own socket: a newer daemon may have replaced it */
		struct stat st;
		if (lstat(n->path, &st) == 0 && st.st_dev == n->sock_dev && st.st_ino == n->sock_ino)
			unlink(n->path);
	}
	if (n->tick)
		event_free(n->tick);
	if (n->entries) {
		hmap_foreach(n->entries, free_entry_cb, NULL);
		hmap_free(n->entries);
	}
	if (n->by_mac) {
		hmap_foreach(n->by_mac, free_key_cb, NULL);
		hmap_free(n->by_mac);
	}
	if (n->by_ip) {
		hmap_foreach(n->by_ip, free_key_cb, NULL);
		hmap_free(n->by_ip);
	}
	nac_policy_free(n->pol);
	free(n);
}

int
nac_reload(struct nac *n, char *err, size_t errlen)
{
	struct nac_policy *p;
	if (nac_policy_load(n->srv->cfg, &p, err, errlen) < 0)
		return -1;
	nac_policy_free(n->pol);
	n->pol = p;
	n->max_conns = (size_t)conf_int(n->srv->cfg, "nac.max_connections");
	nac_reevaluate(n, now_s());
	return 0;
}
