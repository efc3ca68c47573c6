/* test_snmp_mib.c — unit tests for daemon/snmp_mib.c: the OIDs in the code
 * are the ones smidump reads from snmp-mib/CUSTOS-MIB.txt (both ways), and
 * GET / GETNEXT over a fleet snapshot walk every instance in order without
 * skipping a row, with the values the MIB describes. No snmpd needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/fleet/fleet.h"
#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "daemon/snmp/snmp.h"
#include "util.h"

#define NOW ((int64_t)1750000000)   /* 2025-06-15 15:06:40 UTC */
#define MIB 1, 3, 6, 1, 4, 1, 32473, 1
#define OBJ MIB, 1
#define OBJ_LEN 9

struct fx {
	struct server srv;
	struct fleet *f;
	const struct fleet_snapshot *s;
};

/* ---- the MIB file ---- */

static bool
find_source(char *dir, size_t len)
{
	const char *env = getenv("CUSTOS_SRC");
	char exe[4096], try[4096];
	ssize_t n;
	if (env && str_fmt(try, sizeof(try), "%s/snmp-mib/CUSTOS-MIB.txt", env) > 0 &&
	    access(try, R_OK) == 0)
		return str_copy(dir, env, len) < len;
	if (access("snmp-mib/CUSTOS-MIB.txt", R_OK) == 0)
		return str_copy(dir, ".", len) < len;
	/* build/tests/test_x or build/asan/tests/test_x */
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return false;
	exe[n] = '\0';
	char *d = dirname(exe);
	for (int up = 0; up < 4; up++) {
		if (str_fmt(try, sizeof(try), "%s/snmp-mib/CUSTOS-MIB.txt", d) > 0 && access(try, R_OK) == 0)
			return str_copy(dir, d, len) < len;
		d = dirname(d);
	}
	return false;
}

struct ident {
	char name[64], kind[16];
	uint32_t oid[SNMP_OID_MAX];
	size_t len;
};

static size_t
parse_oid(const char *text, uint32_t *oid)
{
	size_t n = 0;
	char *end;
	while (*text && n < SNMP_OID_MAX) {
		unsigned long v = strtoul(text, &end, 10);
		if (end == text)
			return 0;
		oid[n++] = (uint32_t)v;
		text = *end == '.' ? end + 1 : end;
	}
	return n;
}

/* smidump -f identifiers: "CUSTOS-MIB name kind oid" per object. */
static size_t
read_mib(struct ident *out, size_t max)
{
	char dir[2048], cmd[4096], line[512];
	size_t n = 0;
	assert_true(find_source(dir, sizeof(dir)));
	assert_true(str_fmt(cmd, sizeof(cmd),
	    "base=$(ls -d /usr/lib/erlang/lib/snmp-*/mibs 2>/dev/null | tail -n 1); "
	    "[ -n \"$base\" ] || { echo 'ERROR: erlang-snmp is not installed'; exit 0; }; "
	    "command -v smidump >/dev/null || { echo 'ERROR: smitools is not installed'; exit 0; }; "
	    "SMIPATH=\"$base:%s/snmp-mib\" smidump -f identifiers %s/snmp-mib/CUSTOS-MIB.txt 2>&1",
	    dir, dir) > 0);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char mod[64], name[64], kind[16], oid[256];
		if (strncmp(line, "ERROR", 5) == 0)
			fail_msg("%s", line);
		if (line[0] == '#' || sscanf(line, "%63s %63s %15s %255s", mod, name, kind, oid) != 4)
			continue;
		assert_string_equal(mod, "CUSTOS-MIB");
		if (n == max)
			fail_msg("more than %zu identifiers in CUSTOS-MIB", max);
		str_copy(out[n].name, name, sizeof(out[n].name));
		str_copy(out[n].kind, kind, sizeof(out[n].kind));
		out[n].len = parse_oid(oid, out[n].oid);
		assert_true(out[n].len > 0);
		n++;
	}
	assert_int_equal(pclose(p), 0);
	return n;
}

static bool
served_kind(const char *kind)
{
	static const char *k[] = { "scalar", "column", "row", "table", "notification" };
	for (size_t i = 0; i < ARRAY_LEN(k); i++)
		if (strcmp(kind, k[i]) == 0)
			return true;
	return false;
}

static void
test_oids_match_mib(void **state)
{
	static struct ident mib[256];
	static struct snmp_served_oid code[256];
	(void)state;
	size_t nmib = read_mib(mib, ARRAY_LEN(mib));
	size_t ncode = snmp_served_oids(code, ARRAY_LEN(code));
	assert_true(nmib > 50);
	assert_true(ncode <= ARRAY_LEN(code));

	/* every OID the code uses is the MIB's OID of that name */
	for (size_t i = 0; i < ncode; i++) {
		size_t k = 0;
		while (k < nmib && strcmp(mib[k].name, code[i].name) != 0)
			k++;
		if (k == nmib)
			fail_msg("%s is in the code but not in CUSTOS-MIB", code[i].name);
		if (mib[k].len != code[i].len ||
		    memcmp(mib[k].oid, code[i].oid, code[i].len * sizeof(uint32_t)) != 0)
			fail_msg("%s: the code's OID differs from CUSTOS-MIB's", code[i].name);
	}
	/* every object and notification of the MIB is in the code */
	size_t served = 0;
	for (size_t k = 0; k < nmib; k++) {
		if (!served_kind(mib[k].kind))
			continue;
		served++;
		size_t i = 0;
		while (i < ncode && strcmp(mib[k].name, code[i].name) != 0)
			i++;
		if (i == ncode)
			fail_msg("%s (%s) is in CUSTOS-MIB but the code does not know it", mib[k].name,
			    mib[k].kind);
	}
	assert_int_equal(served, ncode);
}

/* smilint -s -m -l 6 prints nothing (snmp-mib/lint.sh fails on any output) */
static void
test_mib_lints_clean(void **state)
{
	char dir[2048], cmd[4096], out[4096];
	(void)state;
	assert_true(find_source(dir, sizeof(dir)));
	assert_true(str_fmt(cmd, sizeof(cmd), "%s/snmp-mib/lint.sh 2>&1", dir) > 0);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	int rc = pclose(p);
	if (rc != 0)
		fail_msg("snmp-mib/lint.sh failed:\n%s", out);
	assert_non_null(strstr(out, "is clean"));
}

static void
test_served_oids_bounded(void **state)
{
	struct snmp_served_oid few[3];
	(void)state;
	size_t all = snmp_served_oids(NULL, 0);
	assert_true(all > 50);
	assert_int_equal(snmp_served_oids(few, 3), all);
	assert_string_equal(few[0].name, "custosServerVersion");
}

/* ---- lookups over a snapshot ---- */

static json_t *
posture(bool av, int64_t db_time)
{
	json_t *list = json_array();
	if (av)
		json_array_append_new(list, json_pack("{s:s, s:b, s:b, s:I}", "name", "clamav",
		    "installed", 1, "rtp", 1, "db_time", (json_int_t)db_time));
	return json_pack("{s:o, s:{s:i}}", "antivirus", list, "threats", "unresolved", 2);
}

static void
add(struct fx *x, uint64_t id, const char *name, const char *ip, json_t *post, int64_t seen)
{
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->id = id;
	assert_true(str_fmt(h->uid, sizeof(h->uid), "%032llx", (unsigned long long)id) == 32);
	str_copy(h->name, name, sizeof(h->name));
	str_copy(h->last_ip, ip, sizeof(h->last_ip));
	h->last_seen = seen;
	host_set_posture(h, post, NOW, &x->srv.thr, NOW);
	assert_int_equal(registry_add_host(x->srv.reg, h), 0);
}

static int
setup_hosts(void **state, bool with_hosts)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct fleet_params p = { .outbreak_threshold = 10, .outbreak_window = 600, .notice_max = 16 };
	char err[256];
	if (x == NULL)
		return -1;
	status_defaults(&x->srv.thr);
	x->srv.reg = registry_new();
	x->srv.started = NOW - 5;
	x->srv.loaded = true;
	if ((x->f = fleet_new(&x->srv, &p, err, sizeof(err))) == NULL)
		return -1;
	x->srv.fleet = x->f;
	fleet_attach(x->f, true);
	if (with_hosts) {
		add(x, 42, "c", "2001:db8::1", posture(false, 0), NOW);
		add(x, 3, "a", "192.0.2.7", posture(true, NOW - 60), NOW);
		add(x, 7, "b", "::ffff:198.51.100.1", NULL, 0);   /* never connected */
	}
	fleet_update(x->f, NOW);
	x->s = fleet_acquire(x->f);
	*state = x;
	return 0;
}

static int
setup(void **state)
{
	return setup_hosts(state, true);
}

static int
setup_empty(void **state)
{
	return setup_hosts(state, false);
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	fleet_release(x->f, x->s);
	fleet_free(x->f);
	registry_free(x->srv.reg);
	free(x);
	return 0;
}

static enum snmp_found
get(struct fx *x, const uint32_t *oid, size_t len, struct snmp_answer *a)
{
	uint32_t out[SNMP_OID_MAX];
	size_t outlen = 0;
	enum snmp_found f = snmp_resolve(x->s, NOW, oid, len, false, out, &outlen, a);
	if (f == SNMP_FOUND) {
		assert_int_equal(outlen, len);
		assert_memory_equal(out, oid, len * sizeof(*oid));
	}
	return f;
}

static enum snmp_found
next(struct fx *x, const uint32_t *oid, size_t len, uint32_t *out, size_t *outlen)
{
	struct snmp_answer a;
	return snmp_resolve(x->s, NOW, oid, len, true, out, outlen, &a);
}

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* a comes after b in SNMP order */
static bool
oid_after(const uint32_t *a, size_t alen, const uint32_t *b, size_t blen)
{
	for (size_t i = 0; i < alen && i < blen; i++)
		if (a[i] != b[i])
			return a[i] > b[i];
	return alen > blen;
}

static void
test_walk_everything(void **state)
{
	struct fx *x = *state;
	uint32_t cur[SNMP_OID_MAX] = { MIB }, out[SNMP_OID_MAX];
	size_t len = 8, outlen, n = 0, host_cells[15] = { 0 };
	struct snmp_answer a;
	while (snmp_resolve(x->s, NOW, cur, len, true, out, &outlen, &a) == SNMP_FOUND) {
		assert_true(oid_after(out, outlen, cur, len));
		if (outlen == 13 && out[9] == 3) {
			assert_true(out[11] >= 2 && out[11] <= 14);
			host_cells[out[11]]++;
		}
		memcpy(cur, out, outlen * sizeof(uint32_t));
		len = outlen;
		assert_true(++n < 1000);
	}
	/* 9 server + 12 fleet scalars, 3 hosts x 13 columns, 1 group x 6,
	 * 7 NAC scalars */
	assert_int_equal(n, 9 + 12 + 3 * 13 + 6 + 7);
	/* a missing value (no AV, never seen) skips no row in any column */
	for (size_t c = 2; c <= 14; c++)
		assert_int_equal(host_cells[c], 3);
}

static void
test_get_values(void **state)
{
	struct fx *x = *state;
	struct snmp_answer a;
	const uint32_t version[] = { OBJ, 1, 1, 0 }, uptime[] = { OBJ, 1, 2, 0 };
	const uint32_t total[] = { OBJ, 2, 1, 0 }, critical[] = { OBJ, 2, 4, 0 }, never[] = { OBJ, 2, 6, 0 };
	const uint32_t dbc[] = { OBJ, 1, 3, 0 }, shed[] = { OBJ, 1, 9, 0 };

	assert_int_equal(get(x, version, LEN(version), &a), SNMP_FOUND);
	assert_int_equal(a.type, SNMP_ANS_STRING);
	assert_int_equal(a.len, strlen(CUSTOS_VERSION));
	assert_memory_equal(a.buf, CUSTOS_VERSION, a.len);
	assert_int_equal(get(x, uptime, LEN(uptime), &a), SNMP_FOUND);
	assert_int_equal(a.type, SNMP_ANS_TIMETICKS);
	assert_int_equal(a.num, 500);
	assert_int_equal(get(x, total, LEN(total), &a), SNMP_FOUND);
	assert_int_equal(a.type, SNMP_ANS_GAUGE);
	assert_int_equal(a.num, 3);
	assert_int_equal(get(x, critical, LEN(critical), &a), SNMP_FOUND);
	assert_int_equal(a.num, 2);   /* c: no AV; a: 2 unresolved threats */
	assert_int_equal(get(x, never, LEN(never), &a), SNMP_FOUND);
	assert_int_equal(a.num, 1);
	assert_int_equal(get(x, dbc, LEN(dbc), &a), SNMP_FOUND);
	assert_int_equal(a.type, SNMP_ANS_INTEGER);
	assert_int_equal(a.num, 2);   /* false: no database in this test */
	assert_int_equal(get(x, shed, LEN(shed), &a), SNMP_FOUND);
	assert_int_equal(a.type, SNMP_ANS_COUNTER64);

	const uint32_t name7[] = { OBJ, 3, 1, 2, 7 }, status3[] = { OBJ, 3, 1, 7, 3 };
	const uint32_t reasons42[] = { OBJ, 3, 1, 8, 42 }, crit42[] = { OBJ, 3, 1, 9, 42 };
	const uint32_t dbtime3[] = { OBJ, 3, 1, 11, 3 }, dbtime42[] = { OBJ, 3, 1, 11, 42 };
	const uint32_t rtp3[] = { OBJ, 3, 1, 12, 3 }, rtp42[] = { OBJ, 3, 1, 12, 42 };
	const uint32_t av3[] = { OBJ, 3, 1, 10, 3 }, av42[] = { OBJ, 3, 1, 10, 42 };
	const uint32_t group3[] = { OBJ, 3, 1, 3, 3 }, gname3[] = { OBJ, 3, 1, 4, 3 };
	const uint32_t threats3[] = { OBJ, 3, 1, 14, 3 }, seen7[] = { OBJ, 3, 1, 13, 7 };
	assert_int_equal(get(x, name7, LEN(name7), &a), SNMP_FOUND);
	assert_int_equal(a.len, 1);
	assert_int_equal(a.buf[0], 'b');
	assert_int_equal(get(x, status3, LEN(status3), &a), SNMP_FOUND);
	assert_int_equal(a.num, 3);   /* critical(3): unresolved threats */
	/* BITS: noAntivirus(0) is the top bit of the first octet,
	 * threatsUnresolved(2) the third */
	assert_int_equal(get(x, reasons42, LEN(reasons42), &a), SNMP_FOUND);
	assert_int_equal(a.len, 1);
	assert_int_equal(a.buf[0], 0x80 | 0x20);
	assert_int_equal(get(x, crit42, LEN(crit42), &a), SNMP_FOUND);
	assert_int_equal(a.buf[0], 0x80 | 0x20);
	/* DateAndTime 2025-06-15,15:05:40.0,+0:0 */
	assert_int_equal(get(x, dbtime3, LEN(dbtime3), &a), SNMP_FOUND);
	const uint8_t when[11] = { 0x07, 0xe9, 6, 15, 15, 5, 40, 0, '+', 0, 0 };
	assert_int_equal(a.len, 11);
	assert_memory_equal(a.buf, when, 11);
	/* unknown: eight zero octets */
	assert_int_equal(get(x, dbtime42, LEN(dbtime42), &a), SNMP_FOUND);
	assert_int_equal(a.len, 8);
	assert_memory_equal(a.buf, "\0\0\0\0\0\0\0\0", 8);
	assert_int_equal(get(x, seen7, LEN(seen7), &a), SNMP_FOUND);
	assert_int_equal(a.len, 8);
	assert_int_equal(get(x, rtp3, LEN(rtp3), &a), SNMP_FOUND);
	assert_int_equal(a.num, 1);
	assert_int_equal(get(x, rtp42, LEN(rtp42), &a), SNMP_FOUND);
	assert_int_equal(a.num, 3);
	assert_int_equal(get(x, av3, LEN(av3), &a), SNMP_FOUND);
	assert_int_equal(a.len, 6);
	assert_memory_equal(a.buf, "clamav", 6);
	assert_int_equal(get(x, av42, LEN(av42), &a), SNMP_FOUND);
	assert_int_equal(a.len, 0);
	assert_int_equal(get(x, group3, LEN(group3), &a), SNMP_FOUND);
	assert_int_equal(a.type, SNMP_ANS_UNSIGNED);
	assert_int_equal(a.num, 1);
	assert_int_equal(get(x, gname3, LEN(gname3), &a), SNMP_FOUND);
	assert_int_equal(a.len, 10);
	assert_memory_equal(a.buf, "Unassigned", 10);
	assert_int_equal(get(x, threats3, LEN(threats3), &a), SNMP_FOUND);
	assert_int_equal(a.num, 2);

	/* addresses: IPv4, IPv4-mapped IPv6 as IPv4, IPv6 */
	const uint32_t t3[] = { OBJ, 3, 1, 5, 3 }, a3[] = { OBJ, 3, 1, 6, 3 };
	const uint32_t t7[] = { OBJ, 3, 1, 5, 7 }, a7[] = { OBJ, 3, 1, 6, 7 };
	const uint32_t t42[] = { OBJ, 3, 1, 5, 42 }, a42[] = { OBJ, 3, 1, 6, 42 };
	assert_int_equal(get(x, t3, LEN(t3), &a), SNMP_FOUND);
	assert_int_equal(a.num, 1);
	assert_int_equal(get(x, a3, LEN(a3), &a), SNMP_FOUND);
	assert_int_equal(a.len, 4);
	assert_memory_equal(a.buf, "\xc0\x00\x02\x07", 4);
	assert_int_equal(get(x, t7, LEN(t7), &a), SNMP_FOUND);
	assert_int_equal(a.num, 1);
	assert_int_equal(get(x, a7, LEN(a7), &a), SNMP_FOUND);
	assert_memory_equal(a.buf, "\xc6\x33\x64\x01", 4);
	assert_int_equal(get(x, t42, LEN(t42), &a), SNMP_FOUND);
	assert_int_equal(a.num, 2);
	assert_int_equal(get(x, a42, LEN(a42), &a), SNMP_FOUND);
	assert_int_equal(a.len, 16);

	const uint32_t gcount[] = { OBJ, 4, 1, 4, 1 }, gparent[] = { OBJ, 4, 1, 3, 1 };
	assert_int_equal(get(x, gcount, LEN(gcount), &a), SNMP_FOUND);
	assert_int_equal(a.num, 3);
	assert_int_equal(get(x, gparent, LEN(gparent), &a), SNMP_FOUND);
	assert_int_equal(a.num, 0);

	/* no NAC in this server: custosNacEnabled false(2), every count 0 */
	uint32_t nac[] = { OBJ, 6, 1, 0 };
	assert_int_equal(get(x, nac, LEN(nac), &a), SNMP_FOUND);
	assert_int_equal(a.type, SNMP_ANS_INTEGER);
	assert_int_equal(a.num, 2);
	for (uint32_t sub = 2; sub <= 7; sub++) {
		nac[OBJ_LEN + 1] = sub;
		assert_int_equal(get(x, nac, LEN(nac), &a), SNMP_FOUND);
		assert_int_equal(a.type, SNMP_ANS_GAUGE);
		assert_int_equal(a.num, 0);
	}
}

/* custosNac over a snapshot with NAC on: custosNacHosts<Token> is
 * custosNac.(2 + enum nac_token), a Gauge32 clamped to 2^32-1. */
static void
test_nac_values(void **state)
{
	struct fleet_snapshot s = { 0 };
	struct snmp_answer a;
	uint32_t out[SNMP_OID_MAX], oid[] = { OBJ, 6, 1, 0 };
	size_t outlen;
	(void)state;
	s.nac_enabled = true;
	for (size_t i = 0; i < FLEET_NAC_TOKENS; i++)
		s.nac_hosts[i] = 10 * (i + 1);
	s.nac_hosts[5] = (uint64_t)UINT32_MAX + 7;
	assert_int_equal(snmp_resolve(&s, NOW, oid, LEN(oid), false, out, &outlen, &a), SNMP_FOUND);
	assert_int_equal(a.num, 1);   /* true */
	for (uint32_t sub = 2; sub <= 7; sub++) {
		oid[OBJ_LEN + 1] = sub;
		assert_int_equal(snmp_resolve(&s, NOW, oid, LEN(oid), false, out, &outlen, &a), SNMP_FOUND);
		assert_int_equal(a.type, SNMP_ANS_GAUGE);
		assert_int_equal(a.num, sub == 7 ? UINT32_MAX : 10 * (sub - 1));
	}
	/* GETNEXT from custosNacHostsHealthy.0 is custosNacHostsCheckup.0 (20) */
	oid[OBJ_LEN + 1] = 2;
	assert_int_equal(snmp_resolve(&s, NOW, oid, LEN(oid), true, out, &outlen, &a), SNMP_FOUND);
	assert_int_equal(outlen, LEN(oid));
	assert_int_equal(out[OBJ_LEN + 1], 3);
	assert_int_equal(a.num, 20);
	/* no such object below custosNac, no instance other than .0 */
	const uint32_t none[] = { OBJ, 6, 8, 0 }, inst[] = { OBJ, 6, 2, 1 }, bare[] = { OBJ, 6, 2 };
	assert_int_equal(snmp_resolve(&s, NOW, none, LEN(none), false, out, &outlen, &a), SNMP_NO_OBJECT);
	assert_int_equal(snmp_resolve(&s, NOW, inst, LEN(inst), false, out, &outlen, &a), SNMP_NO_INSTANCE);
	assert_int_equal(snmp_resolve(&s, NOW, bare, LEN(bare), false, out, &outlen, &a), SNMP_NO_INSTANCE);
}

static void
test_get_errors(void **state)
{
	struct fx *x = *state;
	struct snmp_answer a;
	const uint32_t no_row[] = { OBJ, 3, 1, 2, 8 }, no_index[] = { OBJ, 3, 1, 2 };
	const uint32_t too_long[] = { OBJ, 3, 1, 2, 7, 1 }, no_col[] = { OBJ, 3, 1, 99, 7 };
	const uint32_t index_col[] = { OBJ, 3, 1, 1, 7 }, no_zero[] = { OBJ, 1, 1 };
	const uint32_t one[] = { OBJ, 1, 1, 1 }, no_scalar[] = { OBJ, 1, 77, 0 };
	const uint32_t notify[] = { OBJ, 5, 1, 0 }, outside[] = { 1, 3, 6, 1, 2, 1, 1, 1, 0 };
	const uint32_t huge[] = { OBJ, 3, 1, 2, UINT32_MAX }, table[] = { OBJ, 3 };
	const uint32_t short_oid[] = { 1, 3 }, entry_only[] = { OBJ, 3, 1 };
	assert_int_equal(get(x, no_row, LEN(no_row), &a), SNMP_NO_INSTANCE);
	assert_int_equal(get(x, no_index, LEN(no_index), &a), SNMP_NO_INSTANCE);
	assert_int_equal(get(x, too_long, LEN(too_long), &a), SNMP_NO_INSTANCE);
	assert_int_equal(get(x, huge, LEN(huge), &a), SNMP_NO_INSTANCE);
	assert_int_equal(get(x, no_col, LEN(no_col), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, index_col, LEN(index_col), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, no_zero, LEN(no_zero), &a), SNMP_NO_INSTANCE);
	assert_int_equal(get(x, one, LEN(one), &a), SNMP_NO_INSTANCE);
	assert_int_equal(get(x, no_scalar, LEN(no_scalar), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, notify, LEN(notify), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, outside, LEN(outside), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, table, LEN(table), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, entry_only, LEN(entry_only), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, short_oid, LEN(short_oid), &a), SNMP_NO_OBJECT);
	assert_int_equal(get(x, short_oid, 0, &a), SNMP_NO_OBJECT);
}

static void
expect_next(struct fx *x, const uint32_t *from, size_t len, const uint32_t *want, size_t wlen)
{
	uint32_t out[SNMP_OID_MAX];
	size_t outlen = 0;
	assert_int_equal(next(x, from, len, out, &outlen), SNMP_FOUND);
	assert_int_equal(outlen, wlen);
	assert_memory_equal(out, want, wlen * sizeof(*want));
}

static void
test_getnext_edges(void **state)
{
	struct fx *x = *state;
	uint32_t out[SNMP_OID_MAX];
	size_t outlen;
	const uint32_t first[] = { OBJ, 1, 1, 0 };
	const uint32_t from_top[] = { 1, 3 }, from_mib[] = { MIB }, from_obj[] = { OBJ };
	expect_next(x, from_top, LEN(from_top), first, LEN(first));
	expect_next(x, from_mib, LEN(from_mib), first, LEN(first));
	expect_next(x, from_obj, LEN(from_obj), first, LEN(first));
	expect_next(x, first, 0, first, LEN(first));

	/* between rows, past the last row, from a column without index */
	const uint32_t between[] = { OBJ, 3, 1, 2, 4 }, row7[] = { OBJ, 3, 1, 2, 7 };
	const uint32_t last[] = { OBJ, 3, 1, 2, 42 }, next_col[] = { OBJ, 3, 1, 3, 3 };
	const uint32_t huge[] = { OBJ, 3, 1, 2, UINT32_MAX }, col[] = { OBJ, 3, 1, 2 };
	const uint32_t row3[] = { OBJ, 3, 1, 2, 3 }, deeper[] = { OBJ, 3, 1, 2, 3, 9, 9 };
	const uint32_t col0[] = { OBJ, 3, 1, 0 }, entry0[] = { OBJ, 3, 0 }, table[] = { OBJ, 3 };
	expect_next(x, between, LEN(between), row7, LEN(row7));
	expect_next(x, last, LEN(last), next_col, LEN(next_col));
	expect_next(x, huge, LEN(huge), next_col, LEN(next_col));
	expect_next(x, col, LEN(col), row3, LEN(row3));
	expect_next(x, deeper, LEN(deeper), row7, LEN(row7));
	expect_next(x, col0, LEN(col0), row3, LEN(row3));
	expect_next(x, entry0, LEN(entry0), row3, LEN(row3));
	expect_next(x, table, LEN(table), row3, LEN(row3));

	/* after the host table comes the group table, then (past the
	 * notification-only objects) custosNac; after it nothing */
	const uint32_t host_end[] = { OBJ, 3, 2 }, group_first[] = { OBJ, 4, 1, 2, 1 };
	const uint32_t group_last[] = { OBJ, 4, 1, 7, 1 }, after[] = { MIB, 2 };
	const uint32_t scalar_gap[] = { OBJ, 2, 12, 0, 5 }, host_first[] = { OBJ, 3, 1, 2, 3 };
	const uint32_t nac_first[] = { OBJ, 6, 1, 0 }, notify[] = { OBJ, 5, 2, 0 };
	const uint32_t nac_last[] = { OBJ, 6, 7, 0 }, nac_beyond[] = { OBJ, 6, 8 };
	const uint32_t nac_healthy[] = { OBJ, 6, 2, 0 }, nac_mid[] = { OBJ, 6, 1, 0, 9 };
	expect_next(x, host_end, LEN(host_end), group_first, LEN(group_first));
	expect_next(x, scalar_gap, LEN(scalar_gap), host_first, LEN(host_first));
	expect_next(x, group_last, LEN(group_last), nac_first, LEN(nac_first));
	expect_next(x, notify, LEN(notify), nac_first, LEN(nac_first));
	expect_next(x, nac_mid, LEN(nac_mid), nac_healthy, LEN(nac_healthy));
	assert_int_equal(next(x, nac_last, LEN(nac_last), out, &outlen), SNMP_END_OF_VIEW);
	assert_int_equal(next(x, nac_beyond, LEN(nac_beyond), out, &outlen), SNMP_END_OF_VIEW);
	assert_int_equal(next(x, after, LEN(after), out, &outlen), SNMP_END_OF_VIEW);
}

static void
test_getnext_empty_table(void **state)
{
	struct fx *x = *state;
	const uint32_t last_scalar[] = { OBJ, 2, 12, 0 }, group_first[] = { OBJ, 4, 1, 2, 1 };
	expect_next(x, last_scalar, LEN(last_scalar), group_first, LEN(group_first));
	struct snmp_answer a;
	const uint32_t total[] = { OBJ, 2, 1, 0 }, name1[] = { OBJ, 3, 1, 2, 1 };
	assert_int_equal(get(x, total, LEN(total), &a), SNMP_FOUND);
	assert_int_equal(a.num, 0);
	assert_int_equal(get(x, name1, LEN(name1), &a), SNMP_NO_INSTANCE);
}

/* ---- notifications ---- */

static const struct snmp_varbind *
vb_find(const struct snmp_varbind *vb, size_t n, const uint32_t *oid, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (vb[i].len == len && memcmp(vb[i].oid, oid, len * sizeof(*oid)) == 0)
			return &vb[i];
	fail_msg("varbind missing");
	return NULL;
}

static void
test_notice_varbinds(void **state)
{
	struct snmp_varbind vb[SNMP_NOTICE_VARBINDS];
	uint32_t trap[SNMP_OID_MAX];
	size_t tl, n;
	(void)state;

	struct fleet_notice t = { .kind = FLEET_NOTICE_THREAT, .host_id = 5, .threats = 1 };
	str_copy(t.host, "pc", sizeof(t.host));
	str_copy(t.text, "Eicar-Test-Signature FOUND", sizeof(t.text));
	n = snmp_notice_varbinds(&t, 3, trap, &tl, vb, ARRAY_LEN(vb));
	const uint32_t threat_oid[] = { MIB, 0, 2 };
	assert_int_equal(tl, LEN(threat_oid));
	assert_memory_equal(trap, threat_oid, sizeof(threat_oid));
	assert_int_equal(n, 4);
	const uint32_t name5[] = { OBJ, 3, 1, 2, 5 }, thr5[] = { OBJ, 3, 1, 14, 5 };
	const uint32_t msg[] = { OBJ, 5, 2, 0 }, count[] = { OBJ, 5, 1, 0 };
	assert_memory_equal(vb_find(vb, n, name5, LEN(name5))->a.buf, "pc", 2);
	assert_int_equal(vb_find(vb, n, thr5, LEN(thr5))->a.num, 1);
	assert_int_equal(vb_find(vb, n, msg, LEN(msg))->a.len, strlen(t.text));
	assert_int_equal(vb_find(vb, n, count, LEN(count))->a.num, 3);
	assert_int_equal(vb_find(vb, n, count, LEN(count))->a.type, SNMP_ANS_UNSIGNED);

	struct fleet_notice c = { .kind = FLEET_NOTICE_HOST_CRITICAL, .host_id = 9, .status = 2,
	    .reasons = (1u << 1) | (1u << 5), .critical = 1u << 1 };
	n = snmp_notice_varbinds(&c, 1, trap, &tl, vb, ARRAY_LEN(vb));
	assert_int_equal(trap[tl - 1], 1);
	assert_int_equal(n, 5);
	const uint32_t st9[] = { OBJ, 3, 1, 7, 9 }, rs9[] = { OBJ, 3, 1, 8, 9 }, cr9[] = { OBJ, 3, 1, 9, 9 };
	assert_int_equal(vb_find(vb, n, st9, LEN(st9))->a.num, 3);
	assert_int_equal(vb_find(vb, n, rs9, LEN(rs9))->a.buf[0], 0x40 | 0x04);
	assert_int_equal(vb_find(vb, n, cr9, LEN(cr9))->a.buf[0], 0x40);

	struct fleet_notice d = { .kind = FLEET_NOTICE_DB_LOST, .db_state = FLEET_DB_DOWN };
	n = snmp_notice_varbinds(&d, 1, trap, &tl, vb, ARRAY_LEN(vb));
	assert_int_equal(trap[tl - 1], 5);
	const uint32_t dbs[] = { OBJ, 1, 4, 0 };
	assert_int_equal(vb_find(vb, n, dbs, LEN(dbs))->a.num, FLEET_DB_DOWN);
	d.kind = FLEET_NOTICE_DB_RESTORED;
	d.db_state = 0;   /* unknown: the kind says it */
	n = snmp_notice_varbinds(&d, 1, trap, &tl, vb, ARRAY_LEN(vb));
	assert_int_equal(trap[tl - 1], 6);
	assert_int_equal(vb_find(vb, n, dbs, LEN(dbs))->a.num, FLEET_DB_UP);

	struct fleet_notice o = { .kind = FLEET_NOTICE_OUTBREAK_END, .threats = 4, .threats_24h = 90 };
	n = snmp_notice_varbinds(&o, 1, trap, &tl, vb, ARRAY_LEN(vb));
	assert_int_equal(trap[tl - 1], 4);
	const uint32_t active[] = { OBJ, 2, 11, 0 }, day[] = { OBJ, 2, 10, 0 };
	assert_int_equal(vb_find(vb, n, active, LEN(active))->a.num, 2);   /* false */
	assert_int_equal(vb_find(vb, n, day, LEN(day))->a.num, 90);

	/* a small buffer is never overrun */
	assert_int_equal(snmp_notice_varbinds(&t, 1, trap, &tl, vb, 2), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oids_match_mib),
		cmocka_unit_test(test_mib_lints_clean),
		cmocka_unit_test(test_served_oids_bounded),
		cmocka_unit_test_setup_teardown(test_walk_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getnext_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getnext_empty_table, setup_empty, teardown),
		cmocka_unit_test(test_notice_varbinds),
		cmocka_unit_test(test_nac_values),
	};
	return cmocka_run_group_tests_name("snmp_mib", tests, NULL, NULL);
}
