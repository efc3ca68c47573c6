/* profiles.c — the NAC policy: conditions and enforcement profiles per NAS or vendor from the configuration, a host's token by them, a profile's RADIUS reply (see nac.h). */
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

void
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
		} else if ((worst < 0 || nac_token_rank[r->token] > nac_token_rank[worst]) &&
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
const char *
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
size_t
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

