/* nac.h — network admission control (issue 5): each host's posture token,
 * the enforcement profile per token and NAS, and the query socket that
 * FreeRADIUS's rlm_custos asks.
 *
 * Tokens are computed when a host's posture or status changes
 * (nac_host_changed, next to fleet_host_changed) and on the periodic
 * re-evaluation (nac_reevaluate; staleness), and cached with hash indexes
 * by MAC and IP address; a query is a few hash lookups and the reply.
 *
 * Conditions (custosd.conf, nac.conditions): one `when` string per entry,
 *     { token = "Quarantine"; when = "rtp = false or db_age_days > 7"; }
 * Facts: threats, db_age_days, last_seen_days (integers; an unknown
 * database or contact time counts as very old), rtp, no_antivirus,
 * reboot_required (booleans), status (OK < Warning < Critical).
 * A condition is `fact OP value` (OP: = == != < > <= >=), a bare boolean
 * fact, or `not fact`; `and` binds tighter than `or`; no parentheses;
 * at most NAC_EXPR_MAX conditions per string. Checkup, Quarantine and
 * Infected apply when their expression holds, the worst wins; Healthy
 * needs every Healthy entry to hold, else the host is Checkup. Without any
 * entry the defaults of the issue apply (nac_default_conditions).
 * Transition: enrolled, first posture pending (Unknown once enrolled longer
 * than stale_after); Unknown: host not known, or posture older than
 * nac.stale_after.
 *
 * Threads: main thread only, except the pure functions marked "any thread". */
#ifndef CUSTOS_NAC_H
#define CUSTOS_NAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct conf;
struct host;
struct server;

enum nac_token {
	NAC_HEALTHY = 0,
	NAC_CHECKUP = 1,
	NAC_TRANSITION = 2,
	NAC_QUARANTINE = 3,
	NAC_INFECTED = 4,
	NAC_UNKNOWN = 5,
};
#define NAC_TOKENS 6

#define NAC_LINE_MAX 65536        /* longest request line, bytes without the '\n' */
#define NAC_EXPR_MAX 32           /* conditions in one `when` */
#define NAC_EXPR_TEXT_MAX 1024    /* longest `when` string */

/* ---- tokens (any thread) ---- */

const char *nac_token_name(enum nac_token t);          /* "Healthy", ... */
int nac_token_parse(const char *name);                 /* case-insensitive; -1 unknown */
/* Combining two verdicts ("worst wins"): Healthy < Checkup < Transition <
 * Quarantine < Unknown < Infected. Unknown ranks below Infected so an
 * infected host stays rejected whatever else is unclear. */
enum nac_token nac_token_worst(enum nac_token a, enum nac_token b);
/* true when b is worse than a in that order (a CoA is due). */
bool nac_token_worsened(enum nac_token a, enum nac_token b);

/* ---- conditions (any thread) ---- */

enum nac_fact {
	NAC_FACT_THREATS,
	NAC_FACT_RTP,
	NAC_FACT_DB_AGE_DAYS,
	NAC_FACT_NO_ANTIVIRUS,
	NAC_FACT_REBOOT_REQUIRED,
	NAC_FACT_STATUS,
	NAC_FACT_LAST_SEEN_DAYS,
};
#define NAC_FACTS 7

struct nac_facts {
	int64_t v[NAC_FACTS];     /* booleans 0/1; status enum host_status */
};

struct nac_cond {
	uint8_t fact;             /* enum nac_fact */
	uint8_t op;               /* private */
	bool or_before;           /* starts a new `or` alternative */
	int64_t value;
};

struct nac_expr {
	size_t n;
	struct nac_cond c[NAC_EXPR_MAX];
};

/* Facts of a host with a posture (now: unix seconds). */
void nac_facts_of_host(const struct host *h, int64_t now, struct nac_facts *f);
/* 0, or -1 with err naming the condition and what is wrong. */
int nac_expr_parse(const char *text, struct nac_expr *e, char *err, size_t errlen);
bool nac_expr_eval(const struct nac_expr *e, const struct nac_facts *f);

/* ---- policy: conditions, profiles, NAS (from nac.* of custosd.conf) ---- */

struct nac_rule {
	enum nac_token token;     /* Healthy, Checkup, Quarantine or Infected */
	struct nac_expr expr;
};

struct nac_profile {
	enum nac_token token;
	char nas[64];             /* "" any; else a NAS name of nac.nas */
	char nas_vendor[32];      /* "" any; else lower case, e.g. "cisco" */
	char vlan[33];            /* "" none */
	char filter_id[128];
	char url_redirect[254];
	char url_redirect_acl[128];
	int64_t session_timeout;  /* seconds; 0 none */
	bool reject;
};

struct nac_nas {
	char name[64];
	char address[46];         /* normalised IP text */
	char vendor[32];          /* lower case; "" unknown */
};

struct nac_policy {
	int64_t stale_after;      /* seconds */
	size_t nrules, nprofiles, nnas;
	struct nac_rule *rules;
	struct nac_profile *profiles;
	struct nac_nas *nas;
	bool default_rules;       /* nac.conditions was empty */
};

/* The conditions used when nac.conditions is empty, NULL-terminated pairs
 * of token name and `when`. */
extern const char *const nac_default_conditions[][2];

/* Reads and checks nac.*; -1 with "FILE:LINE: ..." in err. Also the
 * custosd -t / SIGHUP check (nac_check_config). */
int nac_policy_load(const struct conf *cfg, struct nac_policy **out, char *err, size_t errlen);
void nac_policy_free(struct nac_policy *p);
int nac_check_config(const struct conf *cfg, char *err, size_t errlen);
/* The token of a host (NULL: not known). */
enum nac_token nac_policy_evaluate(const struct nac_policy *p, const struct host *h, int64_t now);
/* The NAS a request came from: by nas_ip, then by nas_id (name); NULL. */
const struct nac_nas *nac_policy_nas(const struct nac_policy *p, const char *nas_ip, const char *nas_id);
/* The most specific profile for the token: one naming the NAS, then one
 * naming its vendor, then one for every NAS; NULL when none applies. */
const struct nac_profile *nac_policy_profile(const struct nac_policy *p, enum nac_token t,
    const struct nac_nas *nas);
/* The reply attributes of a profile as [[name, value], ...] (new
 * reference): Tunnel-Type, Tunnel-Medium-Type, Tunnel-Private-Group-Id,
 * Filter-Id, Cisco-AVPair url-redirect / url-redirect-acl (only when the
 * NAS is not known to be of another vendor than cisco), Session-Timeout and
 * Termination-Action. NULL profile: an empty list. */
json_t *nac_profile_reply(const struct nac_profile *pr, const struct nac_nas *nas);

/* ---- addresses (any thread) ---- */

/* A MAC in any common notation (00:11:22:33:44:55, 00-11-22-33-44-55,
 * 0011.2233.4455, 001122334455, either case) as "00:11:22:33:44:55".
 * 0, or -1 when it is not a MAC. */
int nac_mac_normalize(const char *in, char out[18]);
/* An IPv4/IPv6 address in canonical text (IPv4-mapped IPv6 as IPv4). */
int nac_ip_normalize(const char *in, char out[46]);

/* ---- the engine ---- */

/* What rlm_custos reported at post-auth: where the host was admitted. */
struct nac_session {
	char nas_ip[64];
	char nas_id[128];
	char calling_station_id[64];
	char user[256];
	char session_id[128];
	int64_t time;
};

struct nac_stats {
	uint64_t queries, errors, oversize, sessions, worsened;
	uint64_t answers[NAC_TOKENS];   /* replies per token */
	uint64_t connections;           /* open now */
};

struct nac;

/* Reads nac.* from srv->cfg. With srv->base set it also serves the query
 * socket (nac.socket; a stale socket is replaced; mode 0660, group
 * nac.socket_group when that group exists) and resynchronises with the
 * registry each second when hosts went away or the database load came in.
 * NULL with err on failure. srv must outlive it. */
struct nac *nac_new(struct server *srv, char *err, size_t errlen);
void nac_free(struct nac *n);   /* also removes the socket file */
/* Re-reads conditions, profiles and NAS from srv->cfg (SIGHUP; the socket
 * settings apply at restart) and re-evaluates every host. */
int nac_reload(struct nac *n, char *err, size_t errlen);

/* Called when a host's cached token got worse (the CoA hook), with the
 * session of its last post-auth or NULL when none was recorded. Not called
 * for a host's first evaluation. */
typedef void nac_worsened_fn(void *arg, const struct host *h, const struct nac_session *s,
    const char *old_token, const char *new_token);
void nac_set_worsened(struct nac *n, nac_worsened_fn *fn, void *arg);

/* A host's posture, status, addresses or contact changed. NULL-safe on
 * srv->nac. */
void nac_host_changed(struct server *srv, const struct host *h);
/* The same with an explicit clock (tests). */
void nac_host_update(struct nac *n, const struct host *h, int64_t now);
/* Every host again (staleness), hosts gone are dropped. */
void nac_reevaluate(struct nac *n, int64_t now);

/* The cached token of the host with this uid (Unknown when none). */
enum nac_token nac_token_of(const struct nac *n, const char *uid);
/* The session recorded at the host's last post-auth, or NULL. */
const struct nac_session *nac_session_of(const struct nac *n, const char *uid);
/* Hosts per token, over every host of the registry (for SNMP). */
void nac_token_counts(const struct nac *n, uint64_t counts[NAC_TOKENS]);
void nac_get_stats(const struct nac *n, struct nac_stats *out);

/* One request object -> its reply object (new reference), or NULL with err
 * when the request is malformed. */
json_t *nac_query(struct nac *n, const json_t *req, int64_t now, char *err, size_t errlen);
/* One request line (without '\n') -> the reply line (malloc'd, without
 * '\n', *outlen its length): the reply, or {"error": "..."}. NULL only
 * when out of memory. */
char *nac_answer(struct nac *n, const char *line, size_t len, int64_t now, size_t *outlen);

#endif
