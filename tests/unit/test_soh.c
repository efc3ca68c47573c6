/* test_soh.c — unit tests for daemon/soh.c: Statements of Health built
 * byte by byte after [MS-SOH] / [MS-WSH] (bare, with a mode sub-header,
 * wrapped as PEAP and FreeRADIUS pass MS-Quarantine-SOH), anti-virus off,
 * truncation at every length, garbage, huge lengths, the hex form and
 * FreeRADIUS's decoded SoH-MS-* strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/nacd/soh.h"
#include "util.h"

/* [MS-WSH] client status codes */
#define FW_ON 0x00000005u          /* microsoft, enabled */
#define AV_OK 0x00000007u          /* microsoft, up to date, enabled */
#define AV_OFF 0x00000006u         /* microsoft, up to date, disabled */
#define AV_OLD 0x00000005u         /* microsoft, enabled, out of date */
#define NOT_INSTALLED 0xc0ff0002u
#define AU_INSTALL 4u
#define AU_DISABLED 1u
#define SU_ALL 0x00ff0005u
#define SU_MISSING 0x00ff0006u

struct buf {
	uint8_t b[4096];
	size_t n;
};

static void
put8(struct buf *b, unsigned v)
{
	assert_true(b->n < sizeof(b->b));
	b->b[b->n++] = (uint8_t)v;
}

static void
put16(struct buf *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v & 0xff);
}

static void
put32(struct buf *b, uint32_t v)
{
	put16(b, v >> 16);
	put16(b, v & 0xffff);
}

static void
set16(struct buf *b, size_t at, size_t v)
{
	b->b[at] = (uint8_t)(v >> 8);
	b->b[at + 1] = (uint8_t)(v & 0xff);
}

/* SoHReportEntries: the system entry with the machine name, then the
 * Windows Security Health Agent with five classes. */
static void
entries(struct buf *b, const uint32_t status[5], const char *machine)
{
	put16(b, 2); put16(b, 4); put32(b, 0x00013700);            /* System-Health-Id: NAP system */
	size_t name = strlen(machine);
	put16(b, 7); put16(b, (unsigned)(4 + 1 + 2 + name + 1 + 1)); /* vendor-specific */
	put32(b, 0x137);
	put8(b, 5); put16(b, (unsigned)name);                       /* MS-MachineName */
	for (size_t i = 0; i < name; i++)
		put8(b, (unsigned char)machine[i]);
	put8(b, 3); put8(b, 0x10);                                  /* MS-Packet-Info */
	put16(b, 2); put16(b, 4); put32(b, 0x00013780);             /* System-Health-Id: WSHA */
	for (unsigned c = 0; c < 5; c++) {
		put16(b, 8); put16(b, 1); put8(b, c);                   /* Health-Class */
		put16(b, 10); put16(b, 3); put8(b, 'x'); put8(b, 'y'); put8(b, 'z'); /* product name */
		put16(b, 0x8000 | 11); put16(b, 4); put32(b, status[c]); /* Health-Class-Status, M bit */
	}
}

/* A whole SoH message: [7][len][0x137][inner type][inner len] ... */
static void
message(struct buf *b, const uint32_t status[5], bool mode_subheader)
{
	size_t start = b->n;
	put16(b, 7); put16(b, 0); put32(b, 0x137);
	put16(b, mode_subheader ? 2 : 1); put16(b, 0);
	if (mode_subheader) {
		put16(b, 7); put16(b, 30); put32(b, 0x137);
		for (int i = 0; i < 24; i++)
			put8(b, (unsigned)i);                           /* correlation id */
		put8(b, 0); put8(b, 0);                                 /* intent, content type */
	}
	entries(b, status, "ws1.example.com");
	set16(b, start + 2, b->n - start - 4);
	set16(b, start + 10, b->n - start - 12);
}

/* The PEAP SoH TLV around it (what FreeRADIUS decodes from MS-Quarantine-SOH). */
static void
wrapped(struct buf *b, const uint32_t status[5])
{
	put16(b, 7); put16(b, 0); put32(b, 0x137); put16(b, 1); put16(b, 0);
	message(b, status, true);
	set16(b, 2, b->n - 4);
	set16(b, 10, b->n - 12);
}

static const uint32_t healthy[5] = { FW_ON, AV_OK, AV_OK, AU_INSTALL, SU_ALL };

static void
test_healthy_forms(void **state)
{
	(void)state;
	struct soh_report r;
	char err[200];
	for (int form = 0; form < 3; form++) {
		struct buf b = { .n = 0 };
		if (form == 2)
			wrapped(&b, healthy);
		else
			message(&b, healthy, form == 1);
		assert_int_equal(soh_parse(b.b, b.n, &r, err, sizeof(err)), 0);
		for (int c = 0; c < SOH_CLASSES; c++)
			assert_int_equal(r.cls[c], SOH_STATE_OK);
		assert_string_equal(r.machine_name, "ws1.example.com");
		assert_int_equal(soh_verdict(&r), SOH_VERDICT_OK);
	}
}

static void
test_class_failures(void **state)
{
	(void)state;
	static const struct {
		unsigned cls;
		uint32_t status;
		enum soh_verdict v;
	} cases[] = {
		{ SOH_ANTIVIRUS, AV_OFF, SOH_VERDICT_QUARANTINE },
		{ SOH_ANTIVIRUS, AV_OLD, SOH_VERDICT_QUARANTINE },
		{ SOH_ANTIVIRUS, NOT_INSTALLED, SOH_VERDICT_QUARANTINE },
		{ SOH_FIREWALL, 0x00000004u, SOH_VERDICT_QUARANTINE },   /* disabled */
		{ SOH_FIREWALL, 0xc0ff0003u, SOH_VERDICT_QUARANTINE },   /* service down */
		{ SOH_ANTISPYWARE, AV_OFF, SOH_VERDICT_CHECKUP },
		{ SOH_AUTO_UPDATES, AU_DISABLED, SOH_VERDICT_CHECKUP },
		{ SOH_AUTO_UPDATES, 5, SOH_VERDICT_CHECKUP },
		{ SOH_SECURITY_UPDATES, SU_MISSING, SOH_VERDICT_CHECKUP },
		{ SOH_SECURITY_UPDATES, 0xc0ff0010u, SOH_VERDICT_CHECKUP }, /* needs reboot */
		{ SOH_FIREWALL, 0x00000001u, SOH_VERDICT_OK },           /* enabled, not Microsoft's */
		{ SOH_AUTO_UPDATES, 2, SOH_VERDICT_OK },                 /* check only */
	};
	struct soh_report r;
	char err[200];
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint32_t st[5];
		memcpy(st, healthy, sizeof(st));
		st[cases[i].cls] = cases[i].status;
		struct buf b = { .n = 0 };
		message(&b, st, false);
		assert_int_equal(soh_parse(b.b, b.n, &r, err, sizeof(err)), 0);
		assert_int_equal(r.cls[cases[i].cls],
		    cases[i].v == SOH_VERDICT_OK ? SOH_STATE_OK : SOH_STATE_BAD);
		assert_int_equal(soh_verdict(&r), cases[i].v);
	}
}

static void
test_two_antivirus_products(void **state)
{
	(void)state;
	/* an off product and an ok one, in either order: protected */
	for (int order = 0; order < 2; order++) {
		struct buf b = { .n = 0 };
		put16(&b, 7); put16(&b, 0); put32(&b, 0x137); put16(&b, 1); put16(&b, 0);
		put16(&b, 2); put16(&b, 4); put32(&b, 0x00013780);
		put16(&b, 8); put16(&b, 1); put8(&b, SOH_ANTIVIRUS);
		put16(&b, 11); put16(&b, 4); put32(&b, order ? AV_OK : AV_OFF);
		put16(&b, 8); put16(&b, 1); put8(&b, SOH_ANTIVIRUS);
		put16(&b, 11); put16(&b, 4); put32(&b, order ? AV_OFF : AV_OK);
		set16(&b, 2, b.n - 4);
		set16(&b, 10, b.n - 12);
		struct soh_report r;
		char err[200];
		assert_int_equal(soh_parse(b.b, b.n, &r, err, sizeof(err)), 0);
		assert_int_equal(r.cls[SOH_ANTIVIRUS], SOH_STATE_OK);
		assert_int_equal(r.cls[SOH_FIREWALL], SOH_STATE_UNKNOWN);
		assert_int_equal(soh_verdict(&r), SOH_VERDICT_OK);
	}
}

static void
test_no_classes_and_other_agents(void **state)
{
	(void)state;
	struct buf b = { .n = 0 };
	struct soh_report r;
	char err[200];
	/* a third-party health agent's status is not judged */
	put16(&b, 7); put16(&b, 0); put32(&b, 0x137); put16(&b, 1); put16(&b, 0);
	put16(&b, 2); put16(&b, 4); put32(&b, 0x00ABCD01);
	put16(&b, 8); put16(&b, 1); put8(&b, SOH_ANTIVIRUS);
	put16(&b, 11); put16(&b, 4); put32(&b, AV_OFF);
	set16(&b, 2, b.n - 4);
	set16(&b, 10, b.n - 12);
	assert_int_equal(soh_parse(b.b, b.n, &r, err, sizeof(err)), 0);
	assert_int_equal(r.cls[SOH_ANTIVIRUS], SOH_STATE_UNKNOWN);
	assert_int_equal(soh_verdict(&r), SOH_VERDICT_NONE);
}

static void
test_truncated_every_length(void **state)
{
	(void)state;
	struct soh_report r;
	char err[200];
	for (int form = 0; form < 3; form++) {
		struct buf b = { .n = 0 };
		if (form == 2)
			wrapped(&b, healthy);
		else
			message(&b, healthy, form == 1);
		for (size_t len = 0; len < b.n; len++) {
			/* a copy of exactly len bytes, so ASan sees any over-read */
			uint8_t *cut = malloc(len ? len : 1);
			assert_non_null(cut);
			memcpy(cut, b.b, len);
			err[0] = '\0';
			assert_int_equal(soh_parse(cut, len, &r, err, sizeof(err)), -1);
			assert_true(err[0] != '\0');
			free(cut);
		}
		/* one byte too many is refused as well */
		b.b[b.n++] = 0;
		assert_int_equal(soh_parse(b.b, b.n, &r, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "follow"));
	}
}

static void
test_huge_lengths(void **state)
{
	(void)state;
	struct soh_report r;
	char err[200];
	struct buf b = { .n = 0 };
	message(&b, healthy, false);
	size_t n = b.n;

	struct buf x = b;
	set16(&x, 2, 0xffff);                              /* outer length */
	assert_int_equal(soh_parse(x.b, n, &r, err, sizeof(err)), -1);
	x = b;
	set16(&x, 10, 0xffff);                             /* inner length */
	assert_int_equal(soh_parse(x.b, n, &r, err, sizeof(err)), -1);
	x = b;
	set16(&x, 14, 0xfffe);                             /* first TLV */
	assert_int_equal(soh_parse(x.b, n, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "claims"));
	/* a mode sub-header that claims more than there is */
	struct buf m = { .n = 0 };
	message(&m, healthy, true);
	set16(&m, 14, 0xfff0);
	assert_int_equal(soh_parse(m.b, m.n, &r, err, sizeof(err)), -1);

	uint8_t *big = calloc(1, SOH_MAX_LEN + 1);
	assert_non_null(big);
	memcpy(big, b.b, n);
	assert_int_equal(soh_parse(big, SOH_MAX_LEN + 1, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exceeds"));
	free(big);
	assert_int_equal(soh_parse(NULL, 0, &r, err, sizeof(err)), -1);
}

static void
test_garbage(void **state)
{
	(void)state;
	uint64_t s = 0x243f6a8885a308d3ull;
	struct soh_report r;
	char err[200];
	int ok = 0;
	struct buf b = { .n = 0 };
	message(&b, healthy, false);
	for (int round = 0; round < 20000; round++) {
		size_t len = 1 + (size_t)(s % 300);
		uint8_t *g = malloc(len);
		assert_non_null(g);
		for (size_t i = 0; i < len; i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			g[i] = (uint8_t)s;
		}
		if (round % 2 == 0 && len >= 12) {
			/* a valid-looking header over random bodies reaches the TLV walk */
			memcpy(g, b.b, 8);
			g[2] = (uint8_t)((len - 4) >> 8);
			g[3] = (uint8_t)((len - 4) & 0xff);
			g[8] = 0;
			g[9] = (uint8_t)(1 + round % 3);
		}
		if (soh_parse(g, len, &r, err, sizeof(err)) == 0)
			ok++;
		free(g);
	}
	/* most random bodies are rejected; whatever parsed gave a verdict */
	assert_true(ok < 20000);
	/* classic garbage */
	static const uint8_t junk[] = "GET / HTTP/1.1\r\n\r\n";
	assert_int_equal(soh_parse(junk, sizeof(junk) - 1, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a Microsoft SoH"));
}

static void
test_hex(void **state)
{
	(void)state;
	struct buf b = { .n = 0 };
	struct soh_report r;
	char err[200];
	uint32_t st[5];
	memcpy(st, healthy, sizeof(st));
	st[SOH_ANTIVIRUS] = AV_OFF;
	message(&b, st, false);
	char *hex = malloc(2 * b.n + 3);
	assert_non_null(hex);
	hex_encode(b.b, b.n, hex);
	assert_int_equal(soh_parse_hex(hex, &r, err, sizeof(err)), 0);
	assert_int_equal(soh_verdict(&r), SOH_VERDICT_QUARANTINE);
	/* upper case with FreeRADIUS's 0x */
	char *up = malloc(2 * b.n + 3);
	assert_non_null(up);
	up[0] = '0';
	up[1] = 'x';
	for (size_t i = 0; hex[i]; i++)
		up[2 + i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
	up[2 + 2 * b.n] = '\0';
	assert_int_equal(soh_parse_hex(up, &r, err, sizeof(err)), 0);
	assert_int_equal(r.cls[SOH_ANTIVIRUS], SOH_STATE_BAD);
	hex[2 * b.n - 1] = '\0';                               /* odd */
	assert_int_equal(soh_parse_hex(hex, &r, err, sizeof(err)), -1);
	hex[0] = 'g';
	hex[2 * b.n - 2] = '\0';
	assert_int_equal(soh_parse_hex(hex, &r, err, sizeof(err)), -1);
	assert_int_equal(soh_parse_hex("", &r, err, sizeof(err)), -1);
	assert_int_equal(soh_parse_hex(NULL, &r, err, sizeof(err)), -1);
	free(hex);
	free(up);
}

static void
test_freeradius_strings(void **state)
{
	(void)state;
	struct soh_report r;
	char err[200];
	/* the example of FreeRADIUS's doc/modules/rlm_soh */
	json_t *a = json_pack("{s:s, s:s, s:[s,s,s,s,s]}", "SoH-Supported", "yes",
	    "SoH-MS-Machine-Name", "netbios.example.com", "SoH-MS-Windows-Health-Status",
	    "firewall ok snoozed=0 microsoft=1 up2date=1 enabled=1",
	    "antivirus error not-installed",
	    "antispyware ok snoozed=0 microsoft=1 up2date=1 enabled=1",
	    "auto-updates ok action=install",
	    "security-updates warn some-missing");
	assert_int_equal(soh_from_attrs(a, &r, err, sizeof(err)), 0);
	assert_string_equal(r.machine_name, "netbios.example.com");
	assert_int_equal(r.cls[SOH_FIREWALL], SOH_STATE_OK);
	assert_int_equal(r.cls[SOH_ANTIVIRUS], SOH_STATE_BAD);
	assert_int_equal(r.cls[SOH_ANTISPYWARE], SOH_STATE_OK);
	assert_int_equal(r.cls[SOH_AUTO_UPDATES], SOH_STATE_OK);
	assert_int_equal(r.cls[SOH_SECURITY_UPDATES], SOH_STATE_BAD);
	assert_int_equal(soh_verdict(&r), SOH_VERDICT_QUARANTINE);
	json_decref(a);

	/* "ok" with the product disabled or out of date is not ok */
	soh_report_init(&r);
	assert_int_equal(soh_status_string("antivirus ok snoozed=0 microsoft=1 up2date=0 enabled=1", &r), 0);
	assert_int_equal(r.cls[SOH_ANTIVIRUS], SOH_STATE_BAD);
	soh_report_init(&r);
	assert_int_equal(soh_status_string("firewall ok snoozed=0 microsoft=1 up2date=1 enabled=0", &r), 0);
	assert_int_equal(r.cls[SOH_FIREWALL], SOH_STATE_BAD);
	soh_report_init(&r);
	assert_int_equal(soh_status_string("auto-updates warn disabled", &r), 0);
	assert_int_equal(soh_verdict(&r), SOH_VERDICT_CHECKUP);
	soh_report_init(&r);
	assert_int_equal(soh_status_string("7 unknown 00000001", &r), 0);   /* ignored */
	assert_int_equal(soh_verdict(&r), SOH_VERDICT_NONE);
	assert_int_equal(soh_status_string("antivirus", &r), -1);
	assert_int_equal(soh_status_string("antivirus maybe", &r), -1);

	/* one string, not an array */
	a = json_pack("{s:s}", "SoH-MS-Windows-Health-Status",
	    "antivirus ok snoozed=0 microsoft=0 up2date=1 enabled=1");
	assert_int_equal(soh_from_attrs(a, &r, err, sizeof(err)), 0);
	assert_int_equal(soh_verdict(&r), SOH_VERDICT_OK);
	json_decref(a);
	a = json_pack("{s:s}", "SoH-Supported", "no");
	assert_int_equal(soh_from_attrs(a, &r, err, sizeof(err)), 0);
	assert_false(r.supported);
	assert_int_equal(soh_verdict(&r), SOH_VERDICT_NONE);
	json_decref(a);
	/* bad types */
	a = json_pack("{s:i}", "SoH-MS-Windows-Health-Status", 3);
	assert_int_equal(soh_from_attrs(a, &r, err, sizeof(err)), -1);
	json_decref(a);
	a = json_pack("{s:[i]}", "SoH-MS-Windows-Health-Status", 3);
	assert_int_equal(soh_from_attrs(a, &r, err, sizeof(err)), -1);
	json_decref(a);
	a = json_pack("{s:i}", "SoH-MS-Machine-Name", 3);
	assert_int_equal(soh_from_attrs(a, &r, err, sizeof(err)), -1);
	json_decref(a);
	a = json_array();
	assert_int_equal(soh_from_attrs(a, &r, err, sizeof(err)), -1);
	json_decref(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_healthy_forms),
		cmocka_unit_test(test_class_failures),
		cmocka_unit_test(test_two_antivirus_products),
		cmocka_unit_test(test_no_classes_and_other_agents),
		cmocka_unit_test(test_truncated_every_length),
		cmocka_unit_test(test_huge_lengths),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_freeradius_strings),
	};
	return cmocka_run_group_tests_name("soh", tests, NULL, NULL);
}
