/* test_nac.c — unit tests for daemon/nac.c: conditions, worst wins,
 * Transition / Unknown / stale, profiles per NAS and vendor and reject,
 * exact reply attribute lists, MAC notations, lookups by every key, post-auth
 * sessions and the worsening hook, SoH in queries, and the query lines. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "daemon/core/config.h"
#include "daemon/nacd/nac.h"
#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "log.h"
#include "util.h"

#define NOW ((int64_t)1750000000)
#define DAY 86400

static const char *const base_conf =
    "nac: {\n"
    "  enabled = true;\n"
    "  stale_after = 86400;\n"
    "  conditions = (\n"
    "    { token = \"Infected\";   when = \"threats > 0\"; },\n"
    "    { token = \"Quarantine\"; when = \"rtp = false or db_age_days > 7 or no_antivirus\"; },\n"
    "    { token = \"Checkup\";    when = \"db_age_days > 1 or reboot_required\"; },\n"
    "    { token = \"Healthy\";    when = \"status != Critical\"; }\n"
    "  );\n"
    "  profiles = (\n"
    "    { token = \"Healthy\";    vlan = \"100\"; },\n"
    "    { token = \"Checkup\";    vlan = \"100\"; session_timeout = 3600; },\n"
    "    { token = \"Quarantine\"; vlan = \"666\"; filter_id = \"quarantine\";\n"
    "      url_redirect = \"https://custos.example/remediate\"; url_redirect_acl = \"REDIRECT\"; },\n"
    "    { token = \"Quarantine\"; nas_vendor = \"Aruba\"; vlan = \"667\"; filter_id = \"q-aruba\";\n"
    "      url_redirect = \"https://custos.example/r\"; },\n"
    "    { token = \"Quarantine\"; nas = \"sw-lab\"; vlan = \"668\"; },\n"
    "    { token = \"Infected\";   reject = true; },\n"
    "    { token = \"Unknown\";    vlan = \"999\"; },\n"
    "    { token = \"Transition\"; vlan = \"999\"; session_timeout = 300; }\n"
    "  );\n"
    "  nas = (\n"
    "    { name = \"switch1\"; address = \"192.0.2.1\"; vendor = \"cisco\"; },\n"
    "    { name = \"ap1\"; address = \"192.0.2.2\"; vendor = \"aruba\"; method = \"disconnect\"; },\n"
    "    { name = \"sw-lab\"; address = \"2001:db8::3\"; vendor = \"cisco\"; }\n"
    "  );\n"
    "};\n";

static char tmpdir[PATH_MAX];

static struct conf *
conf_text(const char *text, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct conf *c = NULL;
	assert_true(str_fmt(path, sizeof(path), "%s/custosd.conf", tmpdir) > 0);
	assert_int_equal(file_write_atomic(path, text, strlen(text), 0600), 0);
	if (conf_load(&c, path, custosd_schema, NULL, 0, err, errlen) < 0)
		return NULL;
	return c;
}

static struct nac_policy *
policy_text(const char *text, char *err, size_t errlen)
{
	struct conf *c = conf_text(text, err, errlen);
	struct nac_policy *p = NULL;
	if (c == NULL)
		return NULL;
	if (nac_policy_load(c, &p, err, errlen) < 0)
		p = NULL;
	conf_free(c);
	return p;
}

/* ---- hosts ---- */

struct pspec {
	bool av, rtp, reboot;
	double db_days;          /* age of the AV databases */
	int threats;
	const char *mac, *mac2, *ipv4, *ipv6;
};

static json_t *
posture(const struct pspec *s)
{
	json_t *av = json_array();
	if (s->av)
		json_array_append_new(av, json_pack("{s:s, s:b, s:b, s:I}", "name", "clamav",
		    "installed", 1, "rtp", s->rtp, "db_time", (json_int_t)(NOW - (int64_t)(s->db_days * DAY))));
	json_t *ifs = json_array();
	if (s->mac) {
		json_t *e = json_pack("{s:s, s:s, s:[], s:[]}", "name", "eth0", "mac", s->mac, "ipv4", "ipv6");
		if (s->ipv4)
			json_array_append_new(json_object_get(e, "ipv4"), json_string(s->ipv4));
		if (s->ipv6) {
			json_array_append_new(json_object_get(e, "ipv6"), json_string(s->ipv6));
			json_array_append_new(json_object_get(e, "ipv6"), json_string("fe80::1"));
		}
		json_array_append_new(ifs, e);
	}
	if (s->mac2)
		json_array_append_new(ifs, json_pack("{s:s, s:s, s:[], s:[]}", "name", "wlan0", "mac",
		    s->mac2, "ipv4", "ipv6"));
	return json_pack("{s:o, s:{s:i}, s:{s:b, s:o}}", "antivirus", av, "threats", "unresolved",
	    s->threats, "system", "reboot_required", s->reboot, "interfaces", ifs);
}

struct fx {
	struct server srv;
	struct nac *n;
	int calls;
	char old_tok[32], new_tok[32], host[64];
	struct nac_session sess;
	bool had_session;
};

static struct host *
add_host(struct fx *x, const char *name, const struct pspec *s, int64_t seen)
{
	static unsigned serial;
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	assert_true(str_fmt(h->uid, sizeof(h->uid), "%032x", ++serial) == 32);
	str_copy(h->name, name, sizeof(h->name));
	str_copy(h->last_ip, "198.51.100.200", sizeof(h->last_ip));
	h->enrolled_at = s ? NOW - 30 * DAY : NOW - 60;
	h->last_seen = seen;
	if (s)
		host_set_posture(h, posture(s), seen, &x->srv.thr, NOW);
	else
		host_evaluate(h, &x->srv.thr, NOW);
	assert_int_equal(registry_add_host(x->srv.reg, h), 0);
	nac_host_update(x->n, h, NOW);
	return h;
}

static void
on_worse(void *arg, const struct host *h, const struct nac_session *s, const char *o, const char *nw)
{
	struct fx *x = arg;
	x->calls++;
	str_copy(x->old_tok, o, sizeof(x->old_tok));
	str_copy(x->new_tok, nw, sizeof(x->new_tok));
	str_copy(x->host, h->name, sizeof(x->host));
	x->had_session = s != NULL;
	if (s)
		x->sess = *s;
}

static int
setup(void **state)
{
	char err[2048];
	struct fx *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -1;
	status_defaults(&x->srv.thr);
	x->srv.reg = registry_new();
	x->srv.loaded = true;
	x->srv.cfg = conf_text(base_conf, err, sizeof(err));
	if (x->srv.cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	x->n = nac_new(&x->srv, err, sizeof(err));
	if (x->srv.reg == NULL || x->n == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	x->srv.nac = x->n;
	nac_set_worsened(x->n, on_worse, x);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	nac_free(x->n);
	registry_free(x->srv.reg);
	conf_free(x->srv.cfg);
	free(x);
	return 0;
}

static int
group_setup(void **state)
{
	(void)state;
	const char *t = getenv("TMPDIR");
	if (str_fmt(tmpdir, sizeof(tmpdir), "%s/custos-nac-XXXXXX", t && *t ? t : "/tmp") < 0 ||
	    mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	char p[PATH_MAX];
	(void)state;
	if (str_fmt(p, sizeof(p), "%s/custosd.conf", tmpdir) > 0)
		unlink(p);
	rmdir(tmpdir);
	return 0;
}

/* A query from a JSON text; returns the reply as compact text (freed by caller). */
static char *
ask(struct fx *x, const char *req)
{
	size_t len = 0;
	char *out = nac_answer(x->n, req, strlen(req), NOW, &len);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

static json_t *
ask_json(struct fx *x, const char *req)
{
	char *out = ask(x, req);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	free(out);
	return j;
}

static const char *
token_of_reply(json_t *j)
{
	const char *t = json_string_value(json_object_get(j, "token"));
	assert_non_null(t);
	return t;
}

/* ---- tokens and conditions ---- */

static void
test_token_order(void **state)
{
	(void)state;
	assert_string_equal(nac_token_name(NAC_QUARANTINE), "Quarantine");
	assert_int_equal(nac_token_parse("infected"), NAC_INFECTED);
	assert_int_equal(nac_token_parse("Sick"), -1);
	assert_int_equal(nac_token_worst(NAC_HEALTHY, NAC_CHECKUP), NAC_CHECKUP);
	assert_int_equal(nac_token_worst(NAC_QUARANTINE, NAC_TRANSITION), NAC_QUARANTINE);
	assert_int_equal(nac_token_worst(NAC_UNKNOWN, NAC_QUARANTINE), NAC_UNKNOWN);
	assert_int_equal(nac_token_worst(NAC_UNKNOWN, NAC_INFECTED), NAC_INFECTED);
	assert_int_equal(nac_token_worst(NAC_INFECTED, NAC_UNKNOWN), NAC_INFECTED);
	assert_true(nac_token_worsened(NAC_HEALTHY, NAC_UNKNOWN));
	assert_true(nac_token_worsened(NAC_CHECKUP, NAC_QUARANTINE));
	assert_false(nac_token_worsened(NAC_INFECTED, NAC_UNKNOWN));
	assert_false(nac_token_worsened(NAC_QUARANTINE, NAC_QUARANTINE));
}

static void
test_conditions(void **state)
{
	(void)state;
	struct nac_expr e;
	struct nac_facts f = { .v = { 0 } };
	char err[512];

	assert_int_equal(nac_expr_parse("threats > 0", &e, err, sizeof(err)), 0);
	assert_false(nac_expr_eval(&e, &f));
	f.v[NAC_FACT_THREATS] = 1;
	assert_true(nac_expr_eval(&e, &f));

	/* and binds tighter than or */
	assert_int_equal(nac_expr_parse("rtp and db_age_days>=3 or threats != 0", &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 3);
	f = (struct nac_facts){ .v = { 0 } };
	assert_false(nac_expr_eval(&e, &f));
	f.v[NAC_FACT_RTP] = 1;
	assert_false(nac_expr_eval(&e, &f));
	f.v[NAC_FACT_DB_AGE_DAYS] = 3;
	assert_true(nac_expr_eval(&e, &f));
	f.v[NAC_FACT_RTP] = 0;
	assert_false(nac_expr_eval(&e, &f));
	f.v[NAC_FACT_THREATS] = 2;
	assert_true(nac_expr_eval(&e, &f));

	assert_int_equal(nac_expr_parse("not rtp", &e, err, sizeof(err)), 0);
	f = (struct nac_facts){ .v = { 0 } };
	assert_true(nac_expr_eval(&e, &f));
	assert_int_equal(nac_expr_parse("rtp == FALSE AND status >= warning", &e, err, sizeof(err)), 0);
	f.v[NAC_FACT_STATUS] = STATUS_WARNING;
	assert_true(nac_expr_eval(&e, &f));
	f.v[NAC_FACT_STATUS] = STATUS_OK;
	assert_false(nac_expr_eval(&e, &f));
	assert_int_equal(nac_expr_parse("status <> OK", &e, err, sizeof(err)), 0);
	assert_false(nac_expr_eval(&e, &f));
	assert_int_equal(nac_expr_parse("last_seen_days <= -1", &e, err, sizeof(err)), 0);
	assert_false(nac_expr_eval(&e, &f));

	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "", "a fact expected" },
		{ "db_age > 7", "unknown fact \"db_age\"" },
		{ "threats", "needs a comparison" },
		{ "threats >", "not a value" },
		{ "threats > many", "not a value" },
		{ "rtp < true", "compare it with = or !=" },
		{ "rtp = maybe", "not a value" },
		{ "status = Sick", "OK, Warning or Critical" },
		{ "threats > 0 rtp", "\"and\" or \"or\" expected" },
		{ "threats > 0 and", "a fact expected at the end" },
		{ "threats => 0", "\">\" is not a value" },
		{ "threats ! 0", "unknown operator" },
		{ "not threats", "needs a comparison" },
		{ "threats > 0; rtp", "expected" },
		{ "threats > 99999999999999999999", "not a value" },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		assert_int_equal(nac_expr_parse(bad[i].text, &e, err, sizeof(err)), -1);
		if (strstr(err, bad[i].needle) == NULL)
			fail_msg("\"%s\": got \"%s\", wanted \"%s\"", bad[i].text, err, bad[i].needle);
	}
	char many[NAC_EXPR_TEXT_MAX + 2];
	size_t len = 0;
	many[0] = '\0';
	for (int i = 0; i <= NAC_EXPR_MAX; i++)
		len += (size_t)snprintf(many + len, sizeof(many) - len, "%srtp", i ? " or " : "");
	assert_int_equal(nac_expr_parse(many, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than"));
	memset(many, 'a', sizeof(many) - 1);
	many[sizeof(many) - 1] = '\0';
	assert_int_equal(nac_expr_parse(many, &e, err, sizeof(err)), -1);
}

/* ---- policy ---- */

static struct host *
bare_host(const struct pspec *s, int64_t posture_time)
{
	struct status_thresholds t;
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	status_defaults(&t);
	h->enrolled_at = NOW - DAY / 2;
	h->last_seen = posture_time;
	if (s)
		host_set_posture(h, posture(s), posture_time, &t, NOW);
	else
		host_evaluate(h, &t, NOW);
	return h;
}

static void
test_policy_tokens(void **state)
{
	(void)state;
	char err[2048];
	struct nac_policy *p = policy_text(base_conf, err, sizeof(err));
	assert_non_null(p);
	assert_false(p->default_rules);
	static const struct {
		struct pspec s;
		enum nac_token want;
	} cases[] = {
		{ { .av = true, .rtp = true, .db_days = 0.5 }, NAC_HEALTHY },
		{ { .av = true, .rtp = true, .db_days = 2.5 }, NAC_CHECKUP },
		{ { .av = true, .rtp = true, .db_days = 0.5, .reboot = true }, NAC_CHECKUP },
		{ { .av = true, .rtp = false, .db_days = 0.5 }, NAC_QUARANTINE },
		{ { .av = true, .rtp = true, .db_days = 9 }, NAC_QUARANTINE },
		{ { .av = false }, NAC_QUARANTINE },
		/* worst wins: an infected host with everything else wrong too */
		{ { .av = true, .rtp = false, .db_days = 30, .threats = 3, .reboot = true }, NAC_INFECTED },
		{ { .av = true, .rtp = true, .db_days = 0.5, .threats = 1 }, NAC_INFECTED },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct host *h = bare_host(&cases[i].s, NOW - 60);
		enum nac_token t = nac_policy_evaluate(p, h, NOW);
		if (t != cases[i].want)
			fail_msg("case %zu: %s, wanted %s", i, nac_token_name(t), nac_token_name(cases[i].want));
		host_free(h);
	}
	/* not known; first posture pending; pending too long; stale posture */
	assert_int_equal(nac_policy_evaluate(p, NULL, NOW), NAC_UNKNOWN);
	struct host *h = bare_host(NULL, 0);
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_TRANSITION);
	h->enrolled_at = NOW - 2 * DAY;
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_UNKNOWN);
	host_free(h);
	struct pspec ok = { .av = true, .rtp = true, .db_days = 0.1 };
	h = bare_host(&ok, NOW - DAY - 1);
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_UNKNOWN);
	assert_int_equal(nac_policy_evaluate(p, h, NOW - 2), NAC_HEALTHY);
	host_free(h);
	nac_policy_free(p);
}

static void
test_healthy_needs_all(void **state)
{
	(void)state;
	char err[2048];
	/* two Healthy entries: both must hold; failing one gives Checkup */
	struct nac_policy *p = policy_text(
	    "nac: { conditions = (\n"
	    "  { token = \"Infected\"; when = \"threats > 0\"; },\n"
	    "  { token = \"Healthy\"; when = \"rtp\"; },\n"
	    "  { token = \"Healthy\"; when = \"status = OK and not reboot_required\"; }\n"
	    "); };\n", err, sizeof(err));
	assert_non_null(p);
	struct pspec s = { .av = true, .rtp = true, .db_days = 0.1 };
	struct host *h = bare_host(&s, NOW);
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_HEALTHY);
	host_free(h);
	s.reboot = true;   /* status Warning and reboot: second entry fails */
	h = bare_host(&s, NOW);
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_CHECKUP);
	host_free(h);
	s = (struct pspec){ .av = true, .rtp = false, .db_days = 0.1 };
	h = bare_host(&s, NOW);
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_CHECKUP);
	host_free(h);
	/* no profiles declared: Infected is rejected, the rest gets nothing */
	const struct nac_profile *pr = nac_policy_profile(p, NAC_INFECTED, NULL);
	assert_non_null(pr);
	assert_true(pr->reject);
	assert_null(nac_policy_profile(p, NAC_QUARANTINE, NULL));
	json_t *a = nac_profile_reply(NULL, NULL);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
	nac_policy_free(p);
}

static void
test_default_conditions(void **state)
{
	(void)state;
	char err[2048];
	struct nac_policy *p = policy_text("nac: { enabled = true; };\n", err, sizeof(err));
	assert_non_null(p);
	assert_true(p->default_rules);
	assert_int_equal(p->nrules, 4);
	assert_int_equal(p->stale_after, 86400);
	struct pspec s = { .av = true, .rtp = true, .db_days = 3 };
	struct host *h = bare_host(&s, NOW);
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_CHECKUP);
	host_free(h);
	s.threats = 1;
	h = bare_host(&s, NOW);
	assert_int_equal(nac_policy_evaluate(p, h, NOW), NAC_INFECTED);
	host_free(h);
	nac_policy_free(p);
}

static void
test_config_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "nac: { conditions = ( { token = \"Transition\"; when = \"rtp\"; } ); };",
		  "Transition and Unknown come from" },
		{ "nac: { conditions = ( { token = \"Sick\"; when = \"rtp\"; } ); };", "token \"Sick\"" },
		{ "nac: { conditions = ( { token = \"Checkup\"; when = \"db_age > 1\"; } ); };",
		  "custosd.conf:1: when \"db_age > 1\": unknown fact" },
		{ "nac: { conditions = ( { token = \"Checkup\"; } ); };", "missing required setting" },
		{ "nac: { profiles = ( { token = \"Fine\"; } ); };", "unknown token \"Fine\"" },
		{ "nac: { profiles = ( { token = \"Healthy\"; nas = \"nowhere\"; } ); };",
		  "nas \"nowhere\" is not declared" },
		{ "nac: { profiles = ( { token = \"Healthy\"; vlan = \"1\"; }, { token = \"healthy\"; } ); };",
		  "already declared" },
		{ "nac: { profiles = ( { token = \"Infected\"; reject = true; vlan = \"5\"; } ); };",
		  "reject profile sends no attributes" },
		{ "nac: { profiles = ( { token = \"Healthy\"; vlan = \"123456789012345678901234567890123\"; } ); };",
		  "vlan is longer than 32" },
		{ "nac: { nas = ( { name = \"a\"; address = \"switch.example\"; } ); };",
		  "is not an IP address" },
		{ "nac: { nas = ( { name = \"a\"; address = \"192.0.2.1\"; method = \"kick\"; } ); };",
		  "\"coa\" or \"disconnect\"" },
		{ "nac: { nas = ( { name = \"a\"; address = \"192.0.2.1\"; },"
		  " { name = \"b\"; address = \"192.0.2.01\"; } ); };", "" },
		{ "nac: { nas = ( { name = \"a\"; address = \"192.0.2.1\"; },"
		  " { name = \"a\"; address = \"192.0.2.9\"; } ); };", "already declared" },
		{ "nac: { profiles = ( { token = \"Healthy\"; nas = \"a\"; nas_vendor = \"cisco\"; } );"
		  " nas = ( { name = \"a\"; address = \"192.0.2.1\"; } ); };", "not both" },
	};
	char err[2048];
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct conf *c = conf_text(bad[i].text, err, sizeof(err));
		int rc = c ? nac_check_config(c, err, sizeof(err)) : -1;
		conf_free(c);
		assert_int_equal(rc, -1);
		if (strstr(err, bad[i].needle) == NULL)
			fail_msg("case %zu: got \"%s\", wanted \"%s\"", i, err, bad[i].needle);
	}
}

static json_t *
reply_of(const struct nac_policy *p, enum nac_token t, const char *nas_ip, const char *nas_id)
{
	const struct nac_nas *nas = nac_policy_nas(p, nas_ip, nas_id);
	return nac_profile_reply(nac_policy_profile(p, t, nas), nas);
}

static void
expect_json(json_t *got, const char *want)
{
	char *text = json_dumps(got, JSON_COMPACT);
	assert_non_null(text);
	if (strcmp(text, want) != 0)
		fail_msg("got  %s\nwant %s", text, want);
	free(text);
	json_decref(got);
}

static void
test_profiles(void **state)
{
	(void)state;
	char err[2048];
	struct nac_policy *p = policy_text(base_conf, err, sizeof(err));
	assert_non_null(p);
	const char *q_cisco = "[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"666\"],[\"Filter-Id\",\"quarantine\"],"
	    "[\"Cisco-AVPair\",\"url-redirect=https://custos.example/remediate\"],"
	    "[\"Cisco-AVPair\",\"url-redirect-acl=REDIRECT\"]]";
	/* a cisco NAS by address, an unknown NAS: the generic profile, AV pairs included */
	expect_json(reply_of(p, NAC_QUARANTINE, "192.0.2.1", NULL), q_cisco);
	expect_json(reply_of(p, NAC_QUARANTINE, "203.0.113.9", "who"), q_cisco);
	expect_json(reply_of(p, NAC_QUARANTINE, NULL, NULL), q_cisco);
	/* aruba: its vendor's profile, never Cisco's pairs */
	expect_json(reply_of(p, NAC_QUARANTINE, "192.0.2.2", NULL),
	    "[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"667\"],[\"Filter-Id\",\"q-aruba\"]]");
	/* the NAS's own profile wins over its vendor's; found by NAS-Identifier
	 * or by an IPv6 address written another way */
	const char *lab = "[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"668\"]]";
	expect_json(reply_of(p, NAC_QUARANTINE, NULL, "sw-lab"), lab);
	expect_json(reply_of(p, NAC_QUARANTINE, "2001:DB8:0:0:0:0:0:3", NULL), lab);
	/* other tokens on the aruba NAS fall back to the generic profiles */
	expect_json(reply_of(p, NAC_CHECKUP, "192.0.2.2", NULL),
	    "[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"100\"],[\"Session-Timeout\",\"3600\"],"
	    "[\"Termination-Action\",\"RADIUS-Request\"]]");
	expect_json(reply_of(p, NAC_HEALTHY, NULL, NULL),
	    "[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"100\"]]");
	expect_json(reply_of(p, NAC_TRANSITION, NULL, NULL),
	    "[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"999\"],[\"Session-Timeout\",\"300\"],"
	    "[\"Termination-Action\",\"RADIUS-Request\"]]");
	const struct nac_profile *pr = nac_policy_profile(p, NAC_INFECTED, NULL);
	assert_non_null(pr);
	assert_true(pr->reject);
	expect_json(reply_of(p, NAC_INFECTED, "192.0.2.1", NULL), "[]");
	const struct nac_nas *nas = nac_policy_nas(p, NULL, "ap1");
	assert_non_null(nas);
	assert_string_equal(nas->vendor, "aruba");
	assert_null(nac_policy_nas(p, "192.0.2.77", "nobody"));
	nac_policy_free(p);
}

/* ---- addresses ---- */

static void
test_mac_notations(void **state)
{
	(void)state;
	static const char *const good[] = {
		"00:11:22:aa:bb:cc", "00-11-22-AA-BB-CC", "0011.22aa.bbcc", "001122AABBCC",
		"001122-aabbcc", "0011-22aa-bbcc", "0:11:22:aa:bb:cc",
	};
	char out[18];
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		memset(out, 'x', sizeof(out));
		if (nac_mac_normalize(good[i], out) != 0)
			fail_msg("%s refused", good[i]);
		assert_string_equal(out, "00:11:22:aa:bb:cc");
	}
	assert_int_equal(nac_mac_normalize("0:1:2:3:4:5", out), 0);
	assert_string_equal(out, "00:01:02:03:04:05");
	static const char *const bad[] = {
		"", "00:11:22:33:44", "00:11:22:33:44:55:66", "0011.2233.445", "00:11-22:33:44:55",
		"00112233445g", "001:122:334:455", "::11:22:33:44:55", "00:11:22:33:44:55:",
		"000:11:22:33:44:55", "0011223344556", "00.11.22.33.44.55", "00 11 22 33 44 55",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (nac_mac_normalize(bad[i], out) != -1)
			fail_msg("%s accepted as %s", bad[i], out);
	assert_int_equal(nac_mac_normalize(NULL, out), -1);

	char ip[46];
	assert_int_equal(nac_ip_normalize("192.0.2.5", ip), 0);
	assert_string_equal(ip, "192.0.2.5");
	assert_int_equal(nac_ip_normalize("::ffff:192.0.2.5", ip), 0);
	assert_string_equal(ip, "192.0.2.5");
	assert_int_equal(nac_ip_normalize("2001:DB8:0:0::1", ip), 0);
	assert_string_equal(ip, "2001:db8::1");
	assert_int_equal(nac_ip_normalize("300.1.1.1", ip), -1);
	assert_int_equal(nac_ip_normalize("fe80::1%eth0", ip), -1);
	assert_int_equal(nac_ip_normalize("", ip), -1);
}

/* ---- the engine ---- */

static void
test_lookups(void **state)
{
	struct fx *x = *state;
	struct pspec hs = { .av = true, .rtp = true, .db_days = 0.2, .mac = "52:54:00:00:00:01",
	    .mac2 = "52:54:00:00:00:11", .ipv4 = "10.0.0.1", .ipv6 = "2001:db8::1" };
	struct pspec qs = { .av = true, .rtp = false, .db_days = 0.2, .mac = "52:54:00:00:00:02",
	    .ipv4 = "10.0.0.2" };
	struct host *a = add_host(x, "web-1", &hs, NOW);
	struct host *b = add_host(x, "db-1", &qs, NOW);
	json_t *j;
	char req[512];

	static const char *const notations[] = {
		"52:54:00:00:00:01", "52-54-00-00-00-01", "5254.0000.0001", "525400000001", "52:54:00:00:00:11",
	};
	for (size_t i = 0; i < ARRAY_LEN(notations); i++) {
		str_fmt(req, sizeof(req), "{\"mac\": \"%s\"}", notations[i]);
		j = ask_json(x, req);
		assert_string_equal(token_of_reply(j), "Healthy");
		assert_string_equal(json_string_value(json_object_get(j, "host")), "web-1");
		assert_string_equal(json_string_value(json_object_get(j, "by")), "mac");
		json_decref(j);
	}
	/* by IP (interface, IPv6 in another spelling) */
	j = ask_json(x, "{\"ip\": \"10.0.0.2\"}");
	assert_string_equal(token_of_reply(j), "Quarantine");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "db-1");
	json_decref(j);
	j = ask_json(x, "{\"ip\": \"2001:db8:0::1\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "web-1");
	json_decref(j);
	/* link-local addresses are not indexed */
	j = ask_json(x, "{\"ip\": \"fe80::1\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	json_decref(j);
	/* by user name in RADIUS spellings, by CN (uid or name) */
	static const char *const users[] = { "db-1", "host/db-1.example.com", "db-1@EXAMPLE", "DB-1" };
	for (size_t i = 0; i < ARRAY_LEN(users); i++) {
		str_fmt(req, sizeof(req), "{\"user\": \"%s\"}", users[i]);
		j = ask_json(x, req);
		assert_string_equal(json_string_value(json_object_get(j, "host")), "db-1");
		assert_string_equal(json_string_value(json_object_get(j, "by")), "user");
		json_decref(j);
	}
	str_fmt(req, sizeof(req), "{\"cn\": \"%s\", \"mac\": \"52:54:00:00:00:01\"}", b->uid);
	j = ask_json(x, req);   /* cn comes first */
	assert_string_equal(json_string_value(json_object_get(j, "host")), "db-1");
	assert_string_equal(json_string_value(json_object_get(j, "by")), "cn");
	json_decref(j);
	j = ask_json(x, "{\"cn\": \"web-1\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "web-1");
	json_decref(j);
	/* an unknown CN falls through to the MAC; MAB's user name is a MAC */
	j = ask_json(x, "{\"cn\": \"nobody\", \"mac\": \"52:54:00:00:00:02\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "db-1");
	json_decref(j);
	j = ask_json(x, "{\"user\": \"525400000001\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "web-1");
	json_decref(j);
	/* EAP: the User-Name is the outer identity the supplicant chose, no
	 * proof of a host name or MAC; the MAC (and CN, IP) still find it */
	j = ask_json(x, "{\"user\": \"db-1\", \"eap\": \"yes\", \"mac\": \"02:00:5e:00:53:01\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	assert_null(json_string_value(json_object_get(j, "host")));
	json_decref(j);
	j = ask_json(x, "{\"user\": \"525400000001\", \"eap\": \"yes\", \"mac\": \"02:00:5e:00:53:01\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	assert_null(json_string_value(json_object_get(j, "host")));
	json_decref(j);
	j = ask_json(x, "{\"user\": \"anonymous\", \"eap\": \"yes\", \"mac\": \"52:54:00:00:00:01\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "web-1");
	assert_string_equal(json_string_value(json_object_get(j, "by")), "mac");
	json_decref(j);
	/* last_ip is indexed too */
	j = ask_json(x, "{\"ip\": \"198.51.100.200\"}");
	assert_non_null(json_string_value(json_object_get(j, "host")));
	json_decref(j);
	/* unknown: the Unknown profile, host null */
	j = ask_json(x, "{\"mac\": \"52:54:00:99:99:99\", \"user\": \"ghost\", \"ip\": \"10.9.9.9\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	assert_true(json_is_null(json_object_get(j, "host")));
	assert_true(json_is_null(json_object_get(j, "by")));
	json_decref(j);
	/* a new posture moves the MAC to where it is now */
	struct pspec moved = hs;
	moved.mac = "52:54:00:00:00:07";
	a->last_seen = NOW + 1;
	host_set_posture(a, posture(&moved), NOW + 1, &x->srv.thr, NOW);
	nac_host_update(x->n, a, NOW + 1);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:01\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	json_decref(j);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:07\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "web-1");
	json_decref(j);
}

static void
test_reply_lines(void **state)
{
	struct fx *x = *state;
	struct pspec qs = { .av = true, .rtp = false, .db_days = 0.2, .mac = "52:54:00:00:00:02" };
	struct pspec is = { .av = true, .rtp = true, .db_days = 0.2, .threats = 1, .mac = "52:54:00:00:00:03" };
	add_host(x, "db-1", &qs, NOW);
	add_host(x, "pc-9", &is, NOW);
	char *out = ask(x, "{\"mac\": \"52-54-00-00-00-02\", \"nas_ip\": \"192.0.2.1\", \"phase\": \"authorize\"}");
	assert_string_equal(out, "{\"token\":\"Quarantine\",\"host\":\"db-1\",\"by\":\"mac\",\"reject\":false,"
	    "\"reply\":[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"666\"],[\"Filter-Id\",\"quarantine\"],"
	    "[\"Cisco-AVPair\",\"url-redirect=https://custos.example/remediate\"],"
	    "[\"Cisco-AVPair\",\"url-redirect-acl=REDIRECT\"]]}");
	free(out);
	out = ask(x, "{\"mac\": \"525400000003\"}");
	assert_string_equal(out, "{\"token\":\"Infected\",\"host\":\"pc-9\",\"by\":\"mac\",\"reject\":true,"
	    "\"reply\":[]}");
	free(out);
	out = ask(x, "{\"mac\": \"525400000004\"}");
	assert_string_equal(out, "{\"token\":\"Unknown\",\"host\":null,\"by\":null,\"reject\":false,"
	    "\"reply\":[[\"Tunnel-Type\",\"VLAN\"],[\"Tunnel-Medium-Type\",\"IEEE-802\"],"
	    "[\"Tunnel-Private-Group-Id\",\"999\"]]}");
	free(out);

	/* malformed requests: an error, nothing else */
	static const struct {
		const char *req, *needle;
	} bad[] = {
		{ "not json", "malformed JSON" },
		{ "{\"mac\": \"52:54:00:00:00:02\"} trailing", "malformed JSON" },
		{ "[1,2]", "JSON object" },
		{ "{\"mac\": 5}", "\"mac\" must be a string" },
		{ "{\"phase\": \"accounting\"}", "\"phase\"" },
		{ "{\"mac\": \"a\", \"mac\": \"b\"}", "malformed JSON" },
		{ "", "malformed JSON" },
	};
	struct nac_stats st0, st1;
	nac_get_stats(x->n, &st0);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		json_t *j = ask_json(x, bad[i].req);
		const char *e = json_string_value(json_object_get(j, "error"));
		assert_non_null(e);
		assert_null(json_object_get(j, "token"));
		if (strstr(e, bad[i].needle) == NULL)
			fail_msg("%s: got \"%s\", wanted \"%s\"", bad[i].req, e, bad[i].needle);
		json_decref(j);
	}
	char longuser[400];
	memset(longuser, 'u', sizeof(longuser));
	memcpy(longuser, "{\"user\":\"", 9);
	memcpy(longuser + sizeof(longuser) - 3, "\"}", 3);
	json_t *j = ask_json(x, longuser);
	assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "longer than"));
	json_decref(j);
	/* an embedded NUL is refused by the JSON parser */
	size_t len;
	char *r = nac_answer(x->n, "{\"user\":\"a\\u0000b\"}", 19, NOW, &len);
	assert_non_null(strstr(r, "error"));
	free(r);
	nac_get_stats(x->n, &st1);
	assert_int_equal(st1.errors - st0.errors, ARRAY_LEN(bad) + 2);
	/* an empty request names no host: Unknown */
	j = ask_json(x, "{}");
	assert_string_equal(token_of_reply(j), "Unknown");
	json_decref(j);
}

static void
test_sessions_and_worsening(void **state)
{
	struct fx *x = *state;
	struct pspec hs = { .av = true, .rtp = true, .db_days = 0.2, .mac = "52:54:00:00:00:01" };
	struct host *h = add_host(x, "web-1", &hs, NOW);
	assert_int_equal(x->calls, 0);   /* a first evaluation is no change */
	assert_int_equal(nac_token_of(x->n, h->uid), NAC_HEALTHY);
	assert_null(nac_session_of(x->n, h->uid));

	/* authorize records nothing; post-auth records where it was admitted */
	json_decref(ask_json(x, "{\"mac\": \"52:54:00:00:00:01\", \"phase\": \"authorize\"}"));
	assert_null(nac_session_of(x->n, h->uid));
	json_t *j = ask_json(x, "{\"mac\": \"52-54-00-00-00-01\", \"user\": \"525400000001\", "
	    "\"nas_ip\": \"192.0.2.1\", \"nas_id\": \"switch1\", \"nas_port\": \"Gi1/0/7\", "
	    "\"session_id\": \"0A0B0C0D0000001\", \"phase\": \"post-auth\"}");
	assert_string_equal(token_of_reply(j), "Healthy");
	json_decref(j);
	const struct nac_session *s = nac_session_of(x->n, h->uid);
	assert_non_null(s);
	assert_string_equal(s->nas_ip, "192.0.2.1");
	assert_string_equal(s->nas_id, "switch1");
	assert_string_equal(s->calling_station_id, "52-54-00-00-00-01");
	assert_string_equal(s->user, "525400000001");
	assert_string_equal(s->session_id, "0A0B0C0D0000001");
	assert_int_equal(s->time, NOW);

	/* a threat: Healthy -> Infected, the hook gets the session */
	struct pspec inf = hs;
	inf.threats = 1;
	host_set_posture(h, posture(&inf), NOW + 5, &x->srv.thr, NOW + 5);
	nac_host_update(x->n, h, NOW + 5);
	assert_int_equal(x->calls, 1);
	assert_string_equal(x->old_tok, "Healthy");
	assert_string_equal(x->new_tok, "Infected");
	assert_string_equal(x->host, "web-1");
	assert_true(x->had_session);
	assert_string_equal(x->sess.session_id, "0A0B0C0D0000001");
	/* the same again, then better: no call */
	nac_host_update(x->n, h, NOW + 6);
	host_set_posture(h, posture(&hs), NOW + 7, &x->srv.thr, NOW + 7);
	nac_host_update(x->n, h, NOW + 7);
	assert_int_equal(x->calls, 1);
	assert_int_equal(nac_token_of(x->n, h->uid), NAC_HEALTHY);

	/* a host without a session worsens too: the hook gets NULL */
	struct pspec other = { .av = true, .rtp = true, .db_days = 0.2 };
	struct host *o = add_host(x, "pc-2", &other, NOW + 7);
	other.rtp = false;
	host_set_posture(o, posture(&other), NOW + 8, &x->srv.thr, NOW + 8);
	nac_host_update(x->n, o, NOW + 8);
	assert_int_equal(x->calls, 2);
	assert_false(x->had_session);
	assert_string_equal(x->new_tok, "Quarantine");

	/* the posture goes stale: Healthy -> Unknown on the re-evaluation; the
	 * Quarantine host too (Unknown ranks above Quarantine) */
	uint64_t c[NAC_TOKENS];
	nac_token_counts(x->n, c);
	assert_int_equal(c[NAC_HEALTHY], 1);
	assert_int_equal(c[NAC_QUARANTINE], 1);
	nac_reevaluate(x->n, NOW + 7 + DAY + 10);
	assert_int_equal(x->calls, 4);
	assert_string_equal(x->new_tok, "Unknown");
	nac_token_counts(x->n, c);
	assert_int_equal(c[NAC_UNKNOWN], 2);
	assert_int_equal(c[NAC_HEALTHY] + c[NAC_CHECKUP] + c[NAC_TRANSITION] + c[NAC_QUARANTINE] +
	    c[NAC_INFECTED], 0);
	struct nac_stats st;
	nac_get_stats(x->n, &st);
	assert_int_equal(st.worsened, 4);
	assert_int_equal(st.sessions, 1);
}

static void
test_duplicates_and_removal(void **state)
{
	struct fx *x = *state;
	/* two hosts report the same MAC and IP (clones, shared NAT): the one
	 * seen last answers; when it goes, the other does */
	struct pspec a = { .av = true, .rtp = true, .db_days = 0.2, .mac = "52:54:00:00:00:aa", .ipv4 = "10.1.1.1" };
	struct pspec b = { .av = true, .rtp = false, .db_days = 0.2, .mac = "52:54:00:00:00:aa", .ipv4 = "10.1.1.1" };
	struct host *ha = add_host(x, "clone-a", &a, NOW - 100);
	struct host *hb = add_host(x, "clone-b", &b, NOW - 50);
	json_t *j = ask_json(x, "{\"mac\": \"52:54:00:00:00:AA\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "clone-b");
	json_decref(j);
	/* a syncs again: now it is the last seen */
	ha->last_seen = NOW;
	nac_host_update(x->n, ha, NOW);
	j = ask_json(x, "{\"ip\": \"10.1.1.1\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "clone-a");
	json_decref(j);
	/* a leaves the registry; the re-evaluation drops it */
	registry_remove_host(x->srv.reg, ha);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:aa\"}");
	assert_string_equal(token_of_reply(j), "Unknown");   /* the index still points at a's uid */
	json_decref(j);
	nac_reevaluate(x->n, NOW);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:aa\"}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "clone-b");
	assert_string_equal(token_of_reply(j), "Quarantine");
	json_decref(j);
	uint64_t c[NAC_TOKENS];
	nac_token_counts(x->n, c);
	assert_int_equal(c[NAC_HEALTHY], 0);
	assert_int_equal(c[NAC_QUARANTINE], 1);
	registry_remove_host(x->srv.reg, hb);
	nac_reevaluate(x->n, NOW);
	nac_token_counts(x->n, c);
	assert_int_equal(c[NAC_QUARANTINE], 0);
	j = ask_json(x, "{\"ip\": \"10.1.1.1\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	json_decref(j);
}

static void
test_transition_and_unindexed(void **state)
{
	struct fx *x = *state;
	/* enrolled, no posture yet */
	struct host *h = add_host(x, "new-1", NULL, 0);
	char req[128];
	str_fmt(req, sizeof(req), "{\"cn\": \"%s\"}", h->uid);
	json_t *j = ask_json(x, req);
	assert_string_equal(token_of_reply(j), "Transition");
	json_decref(j);
	/* a host in the registry that no hook told us about (database load) is
	 * evaluated when asked for by name */
	struct pspec s = { .av = true, .rtp = true, .db_days = 2.5, .mac = "52:54:00:00:00:42" };
	struct host *l = calloc(1, sizeof(*l));
	assert_non_null(l);
	str_copy(l->uid, "0123456789abcdef0123456789abcdef", sizeof(l->uid));
	str_copy(l->name, "loaded-1", sizeof(l->name));
	l->last_seen = NOW;
	host_set_posture(l, posture(&s), NOW, &x->srv.thr, NOW);
	assert_int_equal(registry_add_host(x->srv.reg, l), 0);
	assert_int_equal(nac_token_of(x->n, l->uid), NAC_UNKNOWN);
	j = ask_json(x, "{\"user\": \"loaded-1\"}");
	assert_string_equal(token_of_reply(j), "Checkup");
	json_decref(j);
	assert_int_equal(nac_token_of(x->n, l->uid), NAC_CHECKUP);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:42\"}");   /* and now indexed */
	assert_string_equal(json_string_value(json_object_get(j, "host")), "loaded-1");
	json_decref(j);
}

/* an SoH of the Windows Security Health Agent with the anti-virus status given */
static void
soh_hex(uint32_t av, char *out, size_t outlen)
{
	uint8_t b[64];
	size_t n = 0;
	static const uint8_t head[] = { 0, 7, 0, 0, 0, 0, 1, 0x37, 0, 1, 0, 0,
	    0, 2, 0, 4, 0, 1, 0x37, 0x80, 0, 8, 0, 1, 1, 0, 11, 0, 4 };
	memcpy(b, head, sizeof(head));
	n = sizeof(head);
	b[n++] = (uint8_t)(av >> 24);
	b[n++] = (uint8_t)(av >> 16);
	b[n++] = (uint8_t)(av >> 8);
	b[n++] = (uint8_t)av;
	b[3] = (uint8_t)(n - 4);
	b[11] = (uint8_t)(n - 12);
	assert_true(outlen > 2 * n);
	hex_encode(b, n, out);
}

static void
test_soh_queries(void **state)
{
	struct fx *x = *state;
	char hex[200], req[512];
	json_t *j;

	/* an unknown host with a healthy SoH */
	soh_hex(7, hex, sizeof(hex));
	str_fmt(req, sizeof(req), "{\"mac\": \"52:54:00:12:34:56\", \"soh\": \"%s\"}", hex);
	j = ask_json(x, req);
	assert_string_equal(token_of_reply(j), "Healthy");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "nap"), "MS-Quarantine-State")), 0);
	assert_null(json_object_get(json_object_get(j, "nap"), "MS-Extended-Quarantine-State"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "soh"), "antivirus")), "ok");
	json_decref(j);
	/* anti-virus off */
	soh_hex(6, hex, sizeof(hex));
	str_fmt(req, sizeof(req), "{\"soh\": \"%s\"}", hex);
	j = ask_json(x, req);
	assert_string_equal(token_of_reply(j), "Quarantine");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "nap"), "MS-Quarantine-State")), 1);
	json_decref(j);
	/* truncated and garbage: Unknown (MS-Extended-Quarantine-State Unknown) */
	soh_hex(7, hex, sizeof(hex));
	hex[20] = '\0';
	str_fmt(req, sizeof(req), "{\"soh\": \"%s\"}", hex);
	j = ask_json(x, req);
	assert_string_equal(token_of_reply(j), "Unknown");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "nap"),
	    "MS-Extended-Quarantine-State")), 3);
	assert_non_null(json_object_get(json_object_get(j, "soh"), "error"));
	json_decref(j);
	j = ask_json(x, "{\"soh\": \"zz\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	json_decref(j);
	j = ask_json(x, "{\"soh_attrs\": 7}");
	assert_string_equal(token_of_reply(j), "Unknown");
	json_decref(j);
	/* an SoH without health classes for an unknown host: No-Data */
	j = ask_json(x, "{\"soh_attrs\": {\"SoH-Supported\": \"no\"}}");
	assert_string_equal(token_of_reply(j), "Unknown");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "nap"),
	    "MS-Extended-Quarantine-State")), 4);
	json_decref(j);

	/* a known healthy host: worst of both */
	struct pspec hs = { .av = true, .rtp = true, .db_days = 0.2, .mac = "52:54:00:00:00:01" };
	add_host(x, "ws1", &hs, NOW);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:01\", \"soh_attrs\": {\"SoH-MS-Windows-Health-Status\": "
	    "[\"firewall ok snoozed=0 microsoft=1 up2date=1 enabled=1\", \"auto-updates warn disabled\"]}}");
	assert_string_equal(token_of_reply(j), "Checkup");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "nap"), "MS-Quarantine-State")), 2);
	json_decref(j);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:01\", \"soh\": \"00\"}");
	assert_string_equal(token_of_reply(j), "Unknown");
	json_decref(j);
	/* the SoH's machine name finds the host */
	j = ask_json(x, "{\"soh_attrs\": {\"SoH-MS-Machine-Name\": \"ws1.example.com\", "
	    "\"SoH-MS-Windows-Health-Status\": \"antivirus ok snoozed=0 microsoft=1 up2date=1 enabled=1\"}}");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "ws1");
	assert_string_equal(json_string_value(json_object_get(j, "by")), "soh");
	assert_string_equal(token_of_reply(j), "Healthy");
	json_decref(j);
	/* an infected host stays Infected (rejected) whatever its SoH */
	struct pspec is = { .av = true, .rtp = true, .db_days = 0.2, .threats = 4, .mac = "52:54:00:00:00:09" };
	add_host(x, "ws9", &is, NOW);
	j = ask_json(x, "{\"mac\": \"52:54:00:00:00:09\", \"soh\": \"0bad\"}");
	assert_string_equal(token_of_reply(j), "Infected");
	assert_true(json_is_true(json_object_get(j, "reject")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "nap"),
	    "MS-Extended-Quarantine-State")), 2);
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_order),
		cmocka_unit_test(test_conditions),
		cmocka_unit_test(test_policy_tokens),
		cmocka_unit_test(test_healthy_needs_all),
		cmocka_unit_test(test_default_conditions),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_profiles),
		cmocka_unit_test(test_mac_notations),
		cmocka_unit_test_setup_teardown(test_lookups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions_and_worsening, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_and_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transition_and_unindexed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_soh_queries, setup, teardown),
	};
	log_set_level(LOG_LVL_WARN);   /* token changes are logged at info */
	return cmocka_run_group_tests_name("nac", tests, group_setup, group_teardown);
}
