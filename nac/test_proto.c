/* test_proto.c — unit tests of the rlm_custos line protocol (nac/proto.c):
 * request escaping, size limits, and the reply parser against good, odd and
 * hostile replies. Built and run by `make nac`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto.h"

static char *
dup_line(const char *s, size_t *len)
{
	*len = strlen(s);
	char *p = malloc(*len + 1);
	assert_non_null(p);
	memcpy(p, s, *len + 1);
	return p;
}

static void
test_writer_escapes(void **state)
{
	(void)state;
	char buf[256];
	struct cq_writer w;
	/* quote, backslash, control, DEL, valid UTF-8, invalid byte */
	const char val[] = "a\"b\\c\n\x7f" "\xc3\xa9" "\xff" "z";

	cq_start(&w, buf, sizeof(buf));
	cq_str(&w, "user", val, sizeof(val) - 1);
	cq_str(&w, "cn", NULL, 0);
	cq_open(&w, "soh_attrs", '{');
	cq_str(&w, "SoH-MS-Machine-Name", "pc1", 3);
	cq_open(&w, "SoH-MS-Windows-Health-Status", '[');
	cq_str(&w, NULL, "firewall ok", 11);
	cq_str(&w, NULL, "antivirus error", 15);
	cq_close(&w, ']');
	cq_close(&w, '}');
	cq_str(&w, "phase", "post-auth", 9);
	long n = cq_finish(&w);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf,
	    "{\"user\":\"a\\\"b\\\\c\\u000a\\u007f\xc3\xa9\\ufffdz\","
	    "\"soh_attrs\":{\"SoH-MS-Machine-Name\":\"pc1\","
	    "\"SoH-MS-Windows-Health-Status\":[\"firewall ok\",\"antivirus error\"]},"
	    "\"phase\":\"post-auth\"}\n");
}

static void
test_writer_truncated_utf8_and_nul(void **state)
{
	(void)state;
	char buf[64];
	struct cq_writer w;
	/* a 3-byte sequence cut short, and an embedded NUL */
	const char val[] = { 'x', (char)0xe2, (char)0x82, '\0', 'y' };

	cq_start(&w, buf, sizeof(buf));
	cq_str(&w, "mac", val, sizeof(val));
	long n = cq_finish(&w);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "{\"mac\":\"x\\ufffd\\ufffd\\u0000y\"}\n");
}

static void
test_writer_overflow(void **state)
{
	(void)state;
	char buf[16];
	struct cq_writer w;

	cq_start(&w, buf, sizeof(buf));
	cq_str(&w, "user", "0123456789", 10);
	assert_int_equal(cq_finish(&w), -1);

	cq_start(&w, buf, sizeof(buf));
	cq_str(&w, "u", "x", 1);
	assert_int_equal(cq_finish(&w), 10);  /* {"u":"x"}\n */
}

static void
test_parse_full(void **state)
{
	(void)state;
	size_t len;
	char err[128];
	struct cq_reply r;
	char *line = dup_line("{\"token\": \"Quarantine\", \"host\": \"web-1\", \"reject\": false,"
	    " \"extra\": {\"a\": [1, 2, {\"b\": null}]},"
	    " \"reply\": [[\"Tunnel-Type\", \"VLAN\"], [\"Tunnel-Private-Group-Id\", \"666\"],"
	    " [\"Session-Timeout\", 3600], [\"Cisco-AVPair\", \"url-redirect=https://x/\\u00e9?a=\\\"1\\\"\"]],"
	    " \"nap\": {\"MS-Quarantine-State\": 1, \"MS-Extended-Quarantine-State\": \"2\"}}", &len);

	assert_int_equal(cq_parse_reply(line, len, &r, err, sizeof(err)), 0);
	assert_string_equal(r.token, "Quarantine");
	assert_string_equal(r.host, "web-1");
	assert_false(r.reject);
	assert_null(r.error);
	assert_int_equal(r.npairs, 6);
	assert_int_equal(r.dropped, 0);
	assert_string_equal(r.pairs[0].name, "Tunnel-Type");
	assert_string_equal(r.pairs[0].value, "VLAN");
	assert_string_equal(r.pairs[1].value, "666");
	assert_string_equal(r.pairs[2].name, "Session-Timeout");
	assert_string_equal(r.pairs[2].value, "3600");
	assert_string_equal(r.pairs[3].value, "url-redirect=https://x/\xc3\xa9?a=\"1\"");
	assert_string_equal(r.pairs[4].name, "MS-Quarantine-State");
	assert_string_equal(r.pairs[4].value, "1");
	assert_string_equal(r.pairs[5].value, "2");
	free(line);
}

static void
test_parse_reject_null_host(void **state)
{
	(void)state;
	size_t len;
	struct cq_reply r;
	char *line = dup_line("{\"token\":\"Infected\",\"host\":null,\"reject\":true,\"reply\":[]}", &len);

	assert_int_equal(cq_parse_reply(line, len, &r, NULL, 0), 0);
	assert_string_equal(r.token, "Infected");
	assert_null(r.host);
	assert_true(r.reject);
	assert_int_equal(r.npairs, 0);
	free(line);
}

static void
test_parse_error_reply(void **state)
{
	(void)state;
	size_t len;
	struct cq_reply r;
	char *line = dup_line("{\"error\": \"bad mac \\\"zz\\\"\"}", &len);

	assert_int_equal(cq_parse_reply(line, len, &r, NULL, 0), 0);
	assert_null(r.token);
	assert_string_equal(r.error, "bad mac \"zz\"");
	free(line);
}

static void
test_parse_odd_pairs_dropped(void **state)
{
	(void)state;
	size_t len;
	struct cq_reply r;
	char *line = dup_line("{\"token\":\"Healthy\",\"reply\":[[\"A\",true],[1,\"x\"],\"flat\","
	    "[\"B\",\"b\",\"extra\"],[\"\",\"empty\"],[\"C\",null]]}", &len);

	assert_int_equal(cq_parse_reply(line, len, &r, NULL, 0), 0);
	assert_int_equal(r.npairs, 1);
	assert_string_equal(r.pairs[0].name, "B");
	assert_string_equal(r.pairs[0].value, "b");
	assert_int_equal(r.dropped, 5);
	free(line);
}

static void
test_parse_too_many_pairs(void **state)
{
	(void)state;
	char buf[8192];
	size_t off = 0;
	struct cq_reply r;

	off += (size_t)snprintf(buf + off, sizeof(buf) - off, "{\"token\":\"Healthy\",\"reply\":[");
	for (int i = 0; i < CQ_PAIRS_MAX + 10; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s[\"Filter-Id\",%d]",
		    i ? "," : "", i);
	off += (size_t)snprintf(buf + off, sizeof(buf) - off, "]}");
	assert_true(off < sizeof(buf));
	assert_int_equal(cq_parse_reply(buf, off, &r, NULL, 0), 0);
	assert_int_equal(r.npairs, CQ_PAIRS_MAX);
	assert_int_equal(r.dropped, 10);
	assert_string_equal(r.pairs[CQ_PAIRS_MAX - 1].value, "63");
}

static void
test_parse_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "[]", "{", "{\"token\"", "{\"token\":\"Healthy\"", "{\"token\":\"Healthy\",}",
		"{\"token\":\"a\\u0000b\"}", "{\"token\":\"\\ud800\"}", "{\"token\":\"\\x\"}",
		"{\"token\":\"Healthy\"} x", "{\"host\":\"h\"}", "{\"token\":tru}",
		"{\"token\":\"a\nb\"}", "{\"reply\":[[\"A\"]],\"token\":\"H\"}",
		"{\"token\":\"H\",\"reply\":[[\"A\",\"b\"]", "{\"token\":\"H\",\"x\":-}",
		"{\"token\":\"H\",\"nap\":[1]}",
	};
	char err[128];
	struct cq_reply r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len;
		char *line = dup_line(bad[i], &len);
		err[0] = '\0';
		if (cq_parse_reply(line, len, &r, err, sizeof(err)) != -1)
			fail_msg("accepted bad reply #%zu: %s", i, bad[i]);
		assert_true(strncmp(err, "bad reply at byte ", 18) == 0);
		free(line);
	}
}

static void
test_parse_deep_nesting(void **state)
{
	(void)state;
	char buf[4096];
	size_t off = 0;
	struct cq_reply r;

	off += (size_t)snprintf(buf, sizeof(buf), "{\"token\":\"H\",\"x\":");
	for (int i = 0; i < 1000; i++)
		buf[off++] = '[';
	for (int i = 0; i < 1000; i++)
		buf[off++] = ']';
	buf[off++] = '}';
	buf[off] = '\0';
	assert_int_equal(cq_parse_reply(buf, off, &r, NULL, 0), -1);
}

/* Every prefix of a valid reply is rejected or parsed, never overrun. */
static void
test_parse_prefixes(void **state)
{
	(void)state;
	const char *full = "{\"token\":\"Checkup\",\"host\":\"h\\u00e9\",\"reply\":[[\"Session-Timeout\",3600],"
	    "[\"Termination-Action\",\"RADIUS-Request\"]],\"nap\":{\"MS-Quarantine-State\":2}}";
	size_t n = strlen(full);
	struct cq_reply r;

	for (size_t l = 0; l <= n; l++) {
		char *line = malloc(l + 1);
		assert_non_null(line);
		memcpy(line, full, l);
		line[l] = '\0';
		int rc = cq_parse_reply(line, l, &r, NULL, 0);
		assert_int_equal(rc, l == n ? 0 : -1);
		free(line);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_escapes),
		cmocka_unit_test(test_writer_truncated_utf8_and_nul),
		cmocka_unit_test(test_writer_overflow),
		cmocka_unit_test(test_parse_full),
		cmocka_unit_test(test_parse_reject_null_host),
		cmocka_unit_test(test_parse_error_reply),
		cmocka_unit_test(test_parse_odd_pairs_dropped),
		cmocka_unit_test(test_parse_too_many_pairs),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_deep_nesting),
		cmocka_unit_test(test_parse_prefixes),
	};
	return cmocka_run_group_tests_name("nac_proto", tests, NULL, NULL);
}
