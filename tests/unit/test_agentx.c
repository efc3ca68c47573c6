/* test_agentx.c — unit tests for daemon/agentx.c: PDUs byte for byte in
 * both byte orders, and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/snmp/agentx.h"
#include "util.h"

static const uint32_t custos[] = { 1, 3, 6, 1, 4, 1, 32473, 1, 1 };

/* A Get header as a master sends it, little-endian (no NETWORK_BYTE_ORDER). */
static const uint8_t get_le[] = {
	1, AGENTX_GET, 0, 0,
	7, 0, 0, 0,          /* session 7 */
	9, 0, 0, 0,          /* transaction 9 */
	0x2a, 0, 0, 0,       /* packet 42 */
	16, 0, 0, 0,         /* payload 16 */
	/* start: 1.3.6.1.4.1.32473 as prefix 4 + 1.32473, include 0 */
	2, 4, 0, 0,
	1, 0, 0, 0,
	0xd9, 0x7e, 0, 0,
	/* end: null */
	0, 0, 0, 0,
};

static void
test_header_little_endian(void **state)
{
	(void)state;
	struct agentx_header h;
	assert_int_equal(agentx_header_read(get_le, sizeof(get_le), &h), AGENTX_PARSE_OK);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.type, AGENTX_GET);
	assert_int_equal(h.session, 7);
	assert_int_equal(h.transaction, 9);
	assert_int_equal(h.packet, 42);
	assert_int_equal(h.length, 16);

	struct agentx_reader r;
	struct agentx_oid start, end;
	agentx_reader_init(&r, &h, get_le + AGENTX_HEADER_LEN);
	assert_true(agentx_get_range(&r, &start, &end));
	assert_int_equal(start.len, 7);
	uint32_t want[] = { 1, 3, 6, 1, 4, 1, 32473 };
	assert_memory_equal(start.sub, want, sizeof(want));
	assert_false(start.include);
	assert_int_equal(end.len, 0);
	assert_false(r.bad);
	assert_int_equal(r.off, r.len);
}

static void
test_header_short_and_bad(void **state)
{
	(void)state;
	struct agentx_header h;
	uint8_t b[AGENTX_HEADER_LEN];
	assert_int_equal(agentx_header_read(get_le, AGENTX_HEADER_LEN - 1, &h), AGENTX_PARSE_SHORT);
	assert_int_equal(agentx_header_read(get_le, 0, &h), AGENTX_PARSE_SHORT);

	memcpy(b, get_le, sizeof(b));
	b[0] = 2;                                  /* version */
	assert_int_equal(agentx_header_read(b, sizeof(b), &h), AGENTX_PARSE_BAD);

	memcpy(b, get_le, sizeof(b));
	b[16] = 22;                                /* not a multiple of 4 */
	assert_int_equal(agentx_header_read(b, sizeof(b), &h), AGENTX_PARSE_BAD);

	memcpy(b, get_le, sizeof(b));
	b[16] = 4;
	b[18] = 1;                                 /* 65540 bytes: too large */
	assert_int_equal(agentx_header_read(b, sizeof(b), &h), AGENTX_PARSE_BAD);

	/* the same length in network order is fine up to the limit */
	memset(b, 0, sizeof(b));
	b[0] = 1;
	b[1] = AGENTX_PING;
	b[2] = AGENTX_FLAG_NETWORK_BYTE_ORDER;
	b[17] = 1;                                 /* 65536 */
	assert_int_equal(agentx_header_read(b, sizeof(b), &h), AGENTX_PARSE_OK);
	assert_int_equal(h.length, AGENTX_PAYLOAD_MAX);
}

static void
test_reader_malformed(void **state)
{
	(void)state;
	struct agentx_header h = { .version = 1, .flags = AGENTX_FLAG_NETWORK_BYTE_ORDER };
	struct agentx_reader r;
	struct agentx_oid o;

	/* n_subid says 3, only 1 present */
	const uint8_t trunc[] = { 3, 0, 0, 0, 0, 0, 0, 1 };
	h.length = sizeof(trunc);
	agentx_reader_init(&r, &h, trunc);
	assert_false(agentx_get_oid(&r, &o));
	assert_true(r.bad);
	assert_int_equal(o.len, 0);
	/* once bad, everything reads zero */
	assert_int_equal(agentx_get_u32(&r), 0);

	/* more sub-identifiers than AgentX allows, with a prefix */
	const uint8_t big[] = { 125, 4, 0, 0 };
	h.length = sizeof(big);
	agentx_reader_init(&r, &h, big);
	assert_false(agentx_get_oid(&r, &o));

	/* an octet string longer than the payload */
	const uint8_t oct[] = { 0, 0, 1, 0, 'a', 'b', 'c', 'd' };
	h.length = sizeof(oct);
	agentx_reader_init(&r, &h, oct);
	assert_false(agentx_skip_octets(&r));
	assert_true(r.bad);

	/* and one that fits, padded */
	const uint8_t oct2[] = { 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 9 };
	h.length = sizeof(oct2);
	agentx_reader_init(&r, &h, oct2);
	assert_true(agentx_skip_octets(&r));
	assert_int_equal(agentx_get_u32(&r), 9);
	assert_false(r.bad);
}

static void
test_open_bytes(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct agentx_writer w;
	agentx_writer_init(&w, buf, sizeof(buf));
	agentx_put_open(&w, 5, 0, custos, 8, "abc");
	assert_false(w.overflow);
	const uint8_t want[] = {
		1, AGENTX_OPEN, AGENTX_FLAG_NETWORK_BYTE_ORDER, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
		0, 0, 0, 28,
		0, 0, 0, 0,                     /* timeout, reserved */
		3, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0x7e, 0xd9, 0, 0, 0, 1,   /* 1.3.6.1.4.1.32473.1 */
		0, 0, 0, 3, 'a', 'b', 'c', 0,
	};
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	/* and it reads back */
	struct agentx_header h;
	assert_int_equal(agentx_header_read(buf, w.len, &h), AGENTX_PARSE_OK);
	assert_int_equal(h.type, AGENTX_OPEN);
	assert_int_equal(h.packet, 5);
	assert_int_equal(h.length, w.len - AGENTX_HEADER_LEN);
}

static void
test_oid_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct agentx_writer w;
	const uint32_t plain[] = { 1, 3, 6, 2, 7 };   /* no prefix form */
	const uint32_t zero[] = { 1, 3, 6, 1, 0, 5 }; /* prefix 0 is not a prefix */
	agentx_writer_init(&w, buf, sizeof(buf));
	agentx_pdu_begin(&w, AGENTX_RESPONSE, 0, 1, 2, 3);
	agentx_put_oid(&w, custos, ARRAY_LEN(custos), true);
	agentx_put_oid(&w, plain, ARRAY_LEN(plain), false);
	agentx_put_oid(&w, zero, ARRAY_LEN(zero), false);
	agentx_put_oid(&w, NULL, 0, false);
	agentx_pdu_end(&w);
	assert_false(w.overflow);
	/* prefix form: 4 + (9 - 5) sub-ids */
	assert_int_equal(buf[AGENTX_HEADER_LEN], 4);
	assert_int_equal(buf[AGENTX_HEADER_LEN + 1], 4);

	struct agentx_header h;
	struct agentx_reader r;
	struct agentx_oid o;
	assert_int_equal(agentx_header_read(buf, w.len, &h), AGENTX_PARSE_OK);
	agentx_reader_init(&r, &h, buf + AGENTX_HEADER_LEN);
	assert_true(agentx_get_oid(&r, &o));
	assert_true(o.include);
	assert_int_equal(agentx_oid_cmp(o.sub, o.len, custos, ARRAY_LEN(custos)), 0);
	assert_true(agentx_get_oid(&r, &o));
	assert_int_equal(agentx_oid_cmp(o.sub, o.len, plain, ARRAY_LEN(plain)), 0);
	assert_true(agentx_get_oid(&r, &o));
	assert_int_equal(agentx_oid_cmp(o.sub, o.len, zero, ARRAY_LEN(zero)), 0);
	assert_true(agentx_get_oid(&r, &o));
	assert_int_equal(o.len, 0);
	assert_int_equal(r.off, r.len);
}

static void
test_writer_overflow(void **state)
{
	(void)state;
	uint8_t buf[40];
	memset(buf, 0xee, sizeof(buf));
	struct agentx_writer w;
	agentx_writer_init(&w, buf, 32);
	agentx_pdu_begin(&w, AGENTX_RESPONSE, 0, 1, 2, 3);
	agentx_put_octets(&w, "0123456789abcdef", 16);
	assert_true(w.overflow);
	agentx_put_u32(&w, 1);
	assert_true(w.len <= 32);
	/* nothing written beyond cap */
	for (size_t i = 32; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xee);
}

static void
test_response_and_varbinds(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct agentx_writer w;
	struct agentx_header req = { .version = 1, .type = AGENTX_GETNEXT, .session = 11,
	    .transaction = 12, .packet = 13 };
	agentx_writer_init(&w, buf, sizeof(buf));
	agentx_put_response_head(&w, &req, 0, 0);
	agentx_put_varbind_head(&w, AGENTX_V_COUNTER64, custos, ARRAY_LEN(custos));
	agentx_put_u64(&w, 0x0102030405060708ull);
	agentx_put_varbind_head(&w, AGENTX_V_END_OF_MIB_VIEW, custos, 7);
	agentx_pdu_end(&w);
	assert_false(w.overflow);

	struct agentx_header h;
	struct agentx_reader r;
	struct agentx_oid o;
	assert_int_equal(agentx_header_read(buf, w.len, &h), AGENTX_PARSE_OK);
	assert_int_equal(h.type, AGENTX_RESPONSE);
	assert_int_equal(h.session, 11);
	assert_int_equal(h.transaction, 12);
	assert_int_equal(h.packet, 13);
	agentx_reader_init(&r, &h, buf + AGENTX_HEADER_LEN);
	assert_int_equal(agentx_get_u32(&r), 0);      /* sysUpTime */
	assert_int_equal(agentx_get_u16(&r), 0);      /* error */
	assert_int_equal(agentx_get_u16(&r), 0);      /* index */
	assert_int_equal(agentx_get_u16(&r), AGENTX_V_COUNTER64);
	assert_int_equal(agentx_get_u16(&r), 0);
	assert_true(agentx_get_oid(&r, &o));
	assert_int_equal(o.len, ARRAY_LEN(custos));
	assert_int_equal(agentx_get_u32(&r), 0x01020304);
	assert_int_equal(agentx_get_u32(&r), 0x05060708);
	assert_int_equal(agentx_get_u16(&r), AGENTX_V_END_OF_MIB_VIEW);
	assert_int_equal(agentx_get_u16(&r), 0);
	assert_true(agentx_get_oid(&r, &o));
	assert_int_equal(o.len, 7);
	assert_int_equal(r.off, r.len);
	assert_false(r.bad);
}

static void
test_oid_cmp_and_names(void **state)
{
	(void)state;
	const uint32_t a[] = { 1, 3, 6 }, b[] = { 1, 3, 6, 1 }, c[] = { 1, 4 };
	char buf[16];
	assert_true(agentx_oid_cmp(a, 3, b, 4) < 0);
	assert_true(agentx_oid_cmp(b, 4, a, 3) > 0);
	assert_true(agentx_oid_cmp(b, 4, c, 2) < 0);
	assert_int_equal(agentx_oid_cmp(a, 3, a, 3), 0);
	assert_int_equal(agentx_oid_cmp(NULL, 0, NULL, 0), 0);
	assert_string_equal(agentx_type_name(AGENTX_GETNEXT, buf, sizeof(buf)), "GetNext");
	assert_string_equal(agentx_type_name(99, buf, sizeof(buf)), "type 99");
	assert_string_equal(agentx_type_name(0, buf, sizeof(buf)), "type 0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_little_endian),
		cmocka_unit_test(test_header_short_and_bad),
		cmocka_unit_test(test_reader_malformed),
		cmocka_unit_test(test_open_bytes),
		cmocka_unit_test(test_oid_roundtrip),
		cmocka_unit_test(test_writer_overflow),
		cmocka_unit_test(test_response_and_varbinds),
		cmocka_unit_test(test_oid_cmp_and_names),
	};
	return cmocka_run_group_tests_name("agentx", tests, NULL, NULL);
}
