/* test_frame.c — unit tests for lib/frame.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "frame.h"
#include "util.h"

/* Appends a raw frame: header with declared length, then body bytes. */
static void
add_raw(struct evbuffer *b, uint32_t declared, const char *body, size_t len)
{
	uint8_t hdr[FRAME_HDR_LEN] = { (uint8_t)(declared >> 24), (uint8_t)(declared >> 16),
		(uint8_t)(declared >> 8), (uint8_t)declared };
	assert_int_equal(evbuffer_add(b, hdr, sizeof(hdr)), 0);
	if (len > 0)
		assert_int_equal(evbuffer_add(b, body, len), 0);
}

/* Flat copy of an evbuffer (malloc'd). */
static uint8_t *
flatten(struct evbuffer *b, size_t *len)
{
	*len = evbuffer_get_length(b);
	uint8_t *p = malloc(*len + 1);
	assert_non_null(p);
	assert_int_equal(evbuffer_copyout(b, p, *len), (ev_ssize_t)*len);
	return p;
}

static void
test_roundtrip_evbuffer(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	json_t *msg = json_pack("{s:s, s:i, s:[i,i], s:{s:b}}", "type", "hello",
	    "n", 42, "list", 1, 2, "obj", "flag", 1);
	json_t *out = NULL;

	assert_non_null(b);
	assert_non_null(msg);
	assert_int_equal(frame_encode(b, msg, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);

	/* header carries the body length, big-endian */
	char *dump = json_dumps(msg, JSON_COMPACT);
	size_t blen = strlen(dump);
	uint8_t hdr[4];
	assert_int_equal(evbuffer_copyout(b, hdr, 4), 4);
	size_t declared = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	assert_int_equal(declared, blen);
	assert_int_equal(evbuffer_get_length(b), FRAME_HDR_LEN + blen);
	free(dump);

	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_OK);
	assert_non_null(out);
	assert_true(json_equal(msg, out));
	assert_int_equal(evbuffer_get_length(b), 0);

	/* empty buffer afterwards: need more, msg NULL */
	json_t *again = (json_t *)0x1;
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &again, err, sizeof(err)), FRAME_NEED_MORE);
	assert_null(again);

	json_decref(out);
	json_decref(msg);
	evbuffer_free(b);
}

static void
test_roundtrip_buf(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	json_t *msg = json_pack("{s:s, s:s}", "type", "posture", "text", "caf\xc3\xa9 \"quoted\"\n");
	json_t *out = NULL;
	size_t len, used = 99;

	assert_int_equal(frame_encode(b, msg, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);
	uint8_t *flat = flatten(b, &len);
	assert_int_equal(frame_decode_buf(flat, len, FRAME_DEFAULT_MAX, &out, &used, err, sizeof(err)),
	    FRAME_OK);
	assert_int_equal(used, len);
	assert_true(json_equal(msg, out));
	assert_string_equal(json_string_value(json_object_get(out, "text")), "caf\xc3\xa9 \"quoted\"\n");

	json_decref(out);
	json_decref(msg);
	free(flat);
	evbuffer_free(b);
}

static void
test_need_more_partial(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	struct evbuffer *part = evbuffer_new();
	char err[256] = "";
	json_t *msg = json_pack("{s:s}", "type", "ping");
	json_t *out = (json_t *)0x1;
	size_t len, used;

	assert_int_equal(frame_encode(b, msg, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);
	uint8_t *flat = flatten(b, &len);

	/* every strict prefix: need more, nothing consumed */
	for (size_t n = 0; n < len; n++) {
		used = 77;
		out = (json_t *)0x1;
		assert_int_equal(frame_decode_buf(flat, n, FRAME_DEFAULT_MAX, &out, &used, err,
		    sizeof(err)), FRAME_NEED_MORE);
		assert_int_equal(used, 0);
		assert_null(out);

		evbuffer_drain(part, evbuffer_get_length(part));
		assert_int_equal(evbuffer_add(part, flat, n), 0);
		out = (json_t *)0x1;
		assert_int_equal(frame_decode(part, FRAME_DEFAULT_MAX, &out, err, sizeof(err)),
		    FRAME_NEED_MORE);
		assert_null(out);
		assert_int_equal(evbuffer_get_length(part), n);
	}

	/* completing the partial buffer then decodes it */
	assert_int_equal(evbuffer_add(part, flat + len - 1, 1), 0);
	assert_int_equal(frame_decode(part, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_OK);
	assert_true(json_equal(msg, out));
	assert_int_equal(evbuffer_get_length(part), 0);

	json_decref(out);
	json_decref(msg);
	free(flat);
	evbuffer_free(part);
	evbuffer_free(b);
}

static void
test_too_big(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	json_t *out = (json_t *)0x1;
	size_t used = 5;

	/* declared over max, even with no body present yet */
	add_raw(b, 1025, NULL, 0);
	assert_int_equal(frame_decode(b, 1024, &out, err, sizeof(err)), FRAME_TOO_BIG);
	assert_null(out);
	assert_non_null(strstr(err, "1025"));
	assert_int_equal(evbuffer_get_length(b), FRAME_HDR_LEN); /* nothing consumed */

	uint8_t hdr[4] = { 0xff, 0xff, 0xff, 0xff };
	err[0] = '\0';
	assert_int_equal(frame_decode_buf(hdr, 4, FRAME_DEFAULT_MAX, &out, &used, err, sizeof(err)),
	    FRAME_TOO_BIG);
	assert_int_equal(used, 0);
	assert_null(out);
	assert_true(err[0] != '\0');

	/* zero length */
	evbuffer_drain(b, evbuffer_get_length(b));
	add_raw(b, 0, NULL, 0);
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_TOO_BIG);
	uint8_t zero[8] = { 0, 0, 0, 0, '{', '}', 0, 0 };
	assert_int_equal(frame_decode_buf(zero, sizeof(zero), FRAME_DEFAULT_MAX, &out, &used, err,
	    sizeof(err)), FRAME_TOO_BIG);
	assert_int_equal(used, 0);

	evbuffer_free(b);
}

static void
test_exact_limit(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	json_t *out = NULL;

	/* {"k":"xxx..."} sized to exactly 100 bytes: 8 bytes of syntax + 92 x */
	char pad[93];
	memset(pad, 'x', 92);
	pad[92] = '\0';
	json_t *msg = json_pack("{s:s}", "k", pad);
	char *dump = json_dumps(msg, JSON_COMPACT);
	assert_int_equal(strlen(dump), 100);
	free(dump);

	assert_int_equal(frame_encode(b, msg, 100, err, sizeof(err)), 0);
	assert_int_equal(frame_decode(b, 100, &out, err, sizeof(err)), FRAME_OK);
	assert_true(json_equal(msg, out));
	json_decref(out);

	/* one byte less of limit: encode refuses, nothing appended */
	err[0] = '\0';
	assert_int_equal(frame_encode(b, msg, 99, err, sizeof(err)), -1);
	assert_int_equal(evbuffer_get_length(b), 0);
	assert_non_null(strstr(err, "100"));

	/* a frame encoded under 100 is refused by a decoder limited to 99 */
	assert_int_equal(frame_encode(b, msg, 100, err, sizeof(err)), 0);
	assert_int_equal(frame_decode(b, 99, &out, err, sizeof(err)), FRAME_TOO_BIG);
	assert_null(out);

	json_decref(msg);
	evbuffer_free(b);
}

static void
expect_bad(const char *body)
{
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	json_t *out = (json_t *)0x1;
	size_t len = strlen(body), used = 0;

	/* evbuffer path: frame consumed, FRAME_BAD, following frame still readable */
	add_raw(b, (uint32_t)len, body, len);
	add_raw(b, 2, "{}", 2);
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_BAD);
	assert_null(out);
	assert_true(err[0] != '\0');
	assert_int_equal(evbuffer_get_length(b), FRAME_HDR_LEN + 2);
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_OK);
	assert_true(json_is_object(out));
	assert_int_equal(json_object_size(out), 0);
	json_decref(out);

	/* flat path: whole frame reported as used */
	add_raw(b, (uint32_t)len, body, len);
	size_t flen;
	uint8_t *flat = flatten(b, &flen);
	err[0] = '\0';
	out = (json_t *)0x1;
	assert_int_equal(frame_decode_buf(flat, flen, FRAME_DEFAULT_MAX, &out, &used, err, sizeof(err)),
	    FRAME_BAD);
	assert_int_equal(used, FRAME_HDR_LEN + len);
	assert_null(out);
	assert_true(err[0] != '\0');
	free(flat);
	evbuffer_free(b);
}

static void
test_bad_bodies(void **state)
{
	(void)state;
	expect_bad("{\"a\":");            /* truncated JSON */
	expect_bad("not json");
	expect_bad("{\"a\":1}garbage");
	expect_bad("[1,2,3]");            /* array */
	expect_bad("42");                 /* scalar */
	expect_bad("\"str\"");
	expect_bad("null");
	expect_bad("{\"a\":1,\"a\":2}");  /* duplicate keys */
	expect_bad("{\"a\":\"\xff\xfe\"}"); /* not UTF-8 */
}

static void
test_bad_messages(void **state)
{
	(void)state;
	char err[256];
	struct evbuffer *b = evbuffer_new();
	json_t *out = NULL;

	/* a JSON error names the byte offset */
	add_raw(b, 7, "{\"a\":}x", 7);
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_BAD);
	assert_non_null(strstr(err, "invalid JSON"));
	add_raw(b, 3, "[1]", 3);
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_BAD);
	assert_non_null(strstr(err, "not a JSON object"));
	evbuffer_free(b);
}

static void
test_several_frames(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	enum { N = 50 };

	for (int i = 0; i < N; i++) {
		json_t *m = json_pack("{s:i, s:s}", "seq", i, "pad", i % 2 ? "odd" : "");
		assert_int_equal(frame_encode(b, m, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);
		json_decref(m);
	}
	/* a trailing partial frame */
	add_raw(b, 10, "{\"x\"", 4);

	size_t flen, off = 0;
	uint8_t *flat = flatten(b, &flen);

	for (int i = 0; i < N; i++) {
		json_t *out = NULL, *out2 = NULL;
		size_t used = 0;
		assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_OK);
		assert_int_equal(json_integer_value(json_object_get(out, "seq")), i);
		assert_int_equal(frame_decode_buf(flat + off, flen - off, FRAME_DEFAULT_MAX, &out2,
		    &used, err, sizeof(err)), FRAME_OK);
		assert_true(used > FRAME_HDR_LEN);
		off += used;
		assert_true(json_equal(out, out2));
		json_decref(out);
		json_decref(out2);
	}
	json_t *out = (json_t *)0x1;
	size_t used = 1;
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_NEED_MORE);
	assert_int_equal(evbuffer_get_length(b), FRAME_HDR_LEN + 4);
	assert_int_equal(frame_decode_buf(flat + off, flen - off, FRAME_DEFAULT_MAX, &out, &used, err,
	    sizeof(err)), FRAME_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(flen - off, FRAME_HDR_LEN + 4);

	free(flat);
	evbuffer_free(b);
}

static void
test_encode_refuses_large(void **state)
{
	(void)state;
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	size_t n = 2 * 1024 * 1024;
	char *big = malloc(n + 1);

	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	json_t *msg = json_pack("{s:s}", "blob", big);
	assert_non_null(msg);
	assert_int_equal(frame_encode(b, msg, FRAME_DEFAULT_MAX, err, sizeof(err)), -1);
	assert_int_equal(evbuffer_get_length(b), 0);
	assert_non_null(strstr(err, "exceeds"));

	/* nothing to serialise */
	err[0] = '\0';
	assert_int_equal(frame_encode(b, NULL, FRAME_DEFAULT_MAX, err, sizeof(err)), -1);
	assert_int_equal(evbuffer_get_length(b), 0);
	assert_true(err[0] != '\0');

	/* with a larger limit it goes through and decodes back */
	json_t *out = NULL;
	assert_int_equal(frame_encode(b, msg, 4 * 1024 * 1024, err, sizeof(err)), 0);
	assert_int_equal(frame_decode(b, 4 * 1024 * 1024, &out, err, sizeof(err)), FRAME_OK);
	assert_int_equal(strlen(json_string_value(json_object_get(out, "blob"))), n);

	json_decref(out);
	json_decref(msg);
	free(big);
	evbuffer_free(b);
}

/* A body split across many evbuffer chains still decodes (pullup path). */
static void
test_fragmented_evbuffer(void **state)
{
	(void)state;
	struct evbuffer *src = evbuffer_new(), *b = evbuffer_new();
	char err[256];
	json_t *msg = json_pack("{s:s, s:i}", "type", "fragmented", "n", 7), *out = NULL;

	assert_int_equal(frame_encode(src, msg, FRAME_DEFAULT_MAX, err, sizeof(err)), 0);
	size_t len;
	uint8_t *flat = flatten(src, &len);
	for (size_t i = 0; i < len; i++) {
		struct evbuffer *one = evbuffer_new();
		assert_int_equal(evbuffer_add(one, flat + i, 1), 0);
		assert_int_equal(evbuffer_add_buffer(b, one), 0);
		evbuffer_free(one);
	}
	assert_int_equal(frame_decode(b, FRAME_DEFAULT_MAX, &out, err, sizeof(err)), FRAME_OK);
	assert_true(json_equal(msg, out));
	json_decref(out);
	json_decref(msg);
	free(flat);
	evbuffer_free(src);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_evbuffer),
		cmocka_unit_test(test_roundtrip_buf),
		cmocka_unit_test(test_need_more_partial),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_exact_limit),
		cmocka_unit_test(test_bad_bodies),
		cmocka_unit_test(test_bad_messages),
		cmocka_unit_test(test_several_frames),
		cmocka_unit_test(test_encode_refuses_large),
		cmocka_unit_test(test_fragmented_evbuffer),
	};
	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
