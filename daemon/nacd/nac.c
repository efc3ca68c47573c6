/* nac.c — see nac.h. The engine: the per-host token cache with its MAC /
 * IP indexes, queries and their replies. The query socket is socket.c,
 * tokens and conditions conditions.c, the policy and profiles profiles.c,
 * address notations in addr.c, SoH in soh.c, CoA in coa.c. */
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
#include "core/accept.h"
#include "hmap.h"
#include "log.h"
#include "core/registry.h"
#include "core/server.h"
#include "nacd/nac_priv.h"
#include "nacd/soh.h"
#include "core/status.h"
#include "utf8.h"
#include "util.h"

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

/* One request line (without '\n'; parsed in place, so changed) -> its
 * reply text in w (REPLY_MAX bytes): the reply or {"error": "..."}. */
void
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
		if (nac_socket_open(n, err, errlen) < 0)
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
		nac_conn_close(n->conns);
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
