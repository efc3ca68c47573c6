/* test_wake.c — unit tests for lib/wake.c (with real keys from lib/pki.c). */
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

#include "pki.h"
#include "util.h"
#include "wake.h"

#define NOW ((int64_t)1750000000)
#define SKEW 120

static const char uid_a[] = "0123456789abcdef0123456789abcdef";
static const char uid_b[] = "fedcba9876543210fedcba9876543210";

struct fixture {
	char dir[2][PATH_MAX];
	struct pki_server srv[2];   /* [0] the real server, [1] another one */
	struct wake_replay *rp;
};

static void
rm_pki_dir(const char *dir)
{
	static const char *const files[] = { "ca.key", "ca.pem", "server.key", "server.pem" };
	char p[PATH_MAX];
	for (size_t i = 0; i < ARRAY_LEN(files); i++)
		if (str_fmt(p, sizeof(p), "%s/%s", dir, files[i]) > 0)
			unlink(p);
	rmdir(dir);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];
	const char *tmp = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	for (int i = 0; i < 2; i++) {
		if (str_fmt(f->dir[i], sizeof(f->dir[i]), "%s/custos-wake-XXXXXX",
		    tmp && *tmp ? tmp : "/tmp") < 0 || mkdtemp(f->dir[i]) == NULL)
			return -1;
		if (pki_server_init(&f->srv[i], f->dir[i], "custos-test", "localhost,127.0.0.1",
		    err, sizeof(err)) < 0) {
			fprintf(stderr, "pki_server_init: %s\n", err);
			return -1;
		}
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 2; i++) {
		pki_server_free(&f->srv[i]);
		if (f->dir[i][0] != '\0')
			rm_pki_dir(f->dir[i]);
	}
	free(f);
	return 0;
}

/* A fresh replay cache for each test. */
static int
before(void **state)
{
	struct fixture *f = *state;
	f->rp = calloc(1, sizeof(*f->rp));
	return f->rp != NULL ? 0 : -1;
}

static int
after(void **state)
{
	struct fixture *f = *state;
	free(f->rp);
	f->rp = NULL;
	return 0;
}

static size_t
build(struct fixture *f, int which, const char *uid, int64_t ts, uint8_t buf[WAKE_MAX_LEN])
{
	int n = wake_build(f->srv[which].server_key, uid, ts, buf, WAKE_MAX_LEN);
	assert_true(n > WAKE_SIGNED_LEN + 1);
	assert_true(n <= WAKE_MAX_LEN);
	return (size_t)n;
}

static enum wake_rc
verify(struct fixture *f, const char *uid, const uint8_t *buf, size_t len, int64_t now)
{
	return wake_verify(f->srv[0].server_cert, uid, buf, len, now, SKEW, f->rp);
}

static void
test_build_layout(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN], buf2[WAKE_MAX_LEN];
	size_t n = build(f, 0, uid_a, NOW, buf);

	assert_memory_equal(buf, "CWK1", 4);
	uint64_t ts = 0;
	for (int i = 0; i < 8; i++)
		ts = ts << 8 | buf[4 + i];
	assert_int_equal(ts, (uint64_t)NOW);
	assert_memory_equal(buf + 28, uid_a, 32);
	assert_int_equal(buf[WAKE_SIGNED_LEN], n - WAKE_SIGNED_LEN - 1);

	/* nonces differ between two builds */
	build(f, 0, uid_a, NOW, buf2);
	assert_memory_not_equal(buf + 12, buf2 + 12, 16);
}

static void
test_build_bad_input(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN];

	assert_int_equal(wake_build(f->srv[0].server_key, uid_a, NOW, buf, WAKE_MAX_LEN - 1), -1);
	assert_int_equal(wake_build(f->srv[0].server_key, "short", NOW, buf, sizeof(buf)), -1);
	assert_int_equal(wake_build(f->srv[0].server_key, "0123456789abcdef0123456789abcdef0",
	    NOW, buf, sizeof(buf)), -1);
	assert_int_equal(wake_build(NULL, uid_a, NOW, buf, sizeof(buf)), -1);
}

static void
test_verify_ok(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN];

	size_t n = build(f, 0, uid_a, NOW, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
	/* within the skew on both sides */
	n = build(f, 0, uid_a, NOW - SKEW, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
	n = build(f, 0, uid_a, NOW + SKEW, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
	assert_string_equal(wake_rc_text(WAKE_OK), "ok");
}

static void
test_forged(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN];

	/* signed by another server's key */
	size_t n = build(f, 1, uid_a, NOW, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_BAD_SIG);
	/* signed by our CA key instead of the server key */
	n = (size_t)wake_build(f->srv[0].ca_key, uid_a, NOW, buf, sizeof(buf));
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_BAD_SIG);
	/* a correct datagram checked against the wrong certificate */
	n = build(f, 0, uid_a, NOW, buf);
	assert_int_equal(wake_verify(f->srv[1].server_cert, uid_a, buf, n, NOW, SKEW, f->rp),
	    WAKE_BAD_SIG);
	assert_int_equal(wake_verify(f->srv[0].ca_cert, uid_a, buf, n, NOW, SKEW, f->rp),
	    WAKE_BAD_SIG);
	/* the rejections did not burn its nonce */
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
}

static void
test_wrong_host(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN];

	size_t n = build(f, 0, uid_b, NOW, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_WRONG_HOST);
	/* a uid of the wrong length never matches */
	assert_int_equal(verify(f, "0123", buf, n, NOW), WAKE_WRONG_HOST);
	assert_int_equal(verify(f, "", buf, n, NOW), WAKE_WRONG_HOST);
	/* the addressee accepts it */
	assert_int_equal(verify(f, uid_b, buf, n, NOW), WAKE_OK);
}

static void
test_stale(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN];
	size_t n;

	n = build(f, 0, uid_a, NOW - SKEW - 1, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_STALE);
	n = build(f, 0, uid_a, NOW + SKEW + 1, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_STALE);
	n = build(f, 0, uid_a, NOW - 86400, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_STALE);
	n = build(f, 0, uid_a, 0, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_STALE);
	/* a "negative" (huge unsigned) timestamp */
	n = build(f, 0, uid_a, -1, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_STALE);
	n = build(f, 0, uid_a, INT64_MAX, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_STALE);
}

static void
test_replay(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN], other[WAKE_MAX_LEN];

	size_t n = build(f, 0, uid_a, NOW, buf);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_REPLAY);
	assert_int_equal(verify(f, uid_a, buf, n, NOW + 10), WAKE_REPLAY);
	/* a fresh datagram is still accepted */
	size_t m = build(f, 0, uid_a, NOW, other);
	assert_int_equal(verify(f, uid_a, other, m, NOW), WAKE_OK);
	assert_int_equal(verify(f, uid_a, other, m, NOW), WAKE_REPLAY);
	/* once outside the window it is stale rather than accepted */
	assert_int_equal(verify(f, uid_a, buf, n, NOW + SKEW + 1), WAKE_STALE);

	/* a fresh cache (agent restart) cannot tell: the timestamp window is the guard */
	memset(f->rp, 0, sizeof(*f->rp));
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
}

static void
test_replay_cache_wraps(void **state)
{
	struct fixture *f = *state;
	uint8_t first[WAKE_MAX_LEN], buf[WAKE_MAX_LEN];

	size_t n1 = build(f, 0, uid_a, NOW, first);
	assert_int_equal(verify(f, uid_a, first, n1, NOW), WAKE_OK);
	/* fill the rest of the ring: the first nonce is still remembered */
	for (int i = 1; i < WAKE_REPLAY_SLOTS; i++) {
		size_t n = build(f, 0, uid_a, NOW, buf);
		assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
	}
	assert_int_equal(verify(f, uid_a, first, n1, NOW), WAKE_REPLAY);
	assert_int_equal(f->rp->next, 0);
}

static void
test_malformed(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN + 8], copy[WAKE_MAX_LEN + 8];
	size_t n = build(f, 0, uid_a, NOW, buf);

	/* truncated at every length */
	for (size_t len = 0; len < n; len++)
		assert_int_equal(verify(f, uid_a, buf, len, NOW), WAKE_MALFORMED);
	/* trailing byte */
	memcpy(copy, buf, n);
	copy[n] = 0;
	assert_int_equal(verify(f, uid_a, copy, n + 1, NOW), WAKE_MALFORMED);
	/* longer than any datagram */
	memset(copy, 0, sizeof(copy));
	memcpy(copy, buf, n);
	assert_int_equal(verify(f, uid_a, copy, WAKE_MAX_LEN + 1, NOW), WAKE_MALFORMED);

	/* wrong magic */
	memcpy(copy, buf, n);
	memcpy(copy, "CWK2", 4);
	assert_int_equal(verify(f, uid_a, copy, n, NOW), WAKE_MALFORMED);
	memcpy(copy, buf, n);
	copy[0] = 'c';
	assert_int_equal(verify(f, uid_a, copy, n, NOW), WAKE_MALFORMED);

	/* siglen that does not match the datagram's size */
	memcpy(copy, buf, n);
	copy[WAKE_SIGNED_LEN] = 0;
	assert_int_equal(verify(f, uid_a, copy, n, NOW), WAKE_MALFORMED);
	copy[WAKE_SIGNED_LEN] = (uint8_t)(buf[WAKE_SIGNED_LEN] + 1);
	assert_int_equal(verify(f, uid_a, copy, n, NOW), WAKE_MALFORMED);
	copy[WAKE_SIGNED_LEN] = (uint8_t)(buf[WAKE_SIGNED_LEN] - 1);
	assert_int_equal(verify(f, uid_a, copy, n, NOW), WAKE_MALFORMED);
	copy[WAKE_SIGNED_LEN] = 0xff;
	assert_int_equal(verify(f, uid_a, copy, n, NOW), WAKE_MALFORMED);

	/* a consistent siglen over a cut signature: parses, but does not verify */
	memcpy(copy, buf, n);
	copy[WAKE_SIGNED_LEN] = (uint8_t)(buf[WAKE_SIGNED_LEN] - 1);
	assert_int_equal(verify(f, uid_a, copy, n - 1, NOW), WAKE_BAD_SIG);

	/* random junk of a plausible size */
	uint8_t junk[WAKE_MAX_LEN];
	assert_int_equal(random_bytes(junk, sizeof(junk)), 0);
	assert_int_equal(verify(f, uid_a, junk, sizeof(junk), NOW), WAKE_MALFORMED);
	memcpy(junk, "CWK1", 4);
	junk[WAKE_SIGNED_LEN] = 72;
	assert_int_equal(verify(f, uid_a, junk, WAKE_SIGNED_LEN + 1 + 72, NOW), WAKE_BAD_SIG);

	/* nothing was remembered: the original still verifies */
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
	assert_string_equal(wake_rc_text(WAKE_MALFORMED), "malformed");
}

static void
test_flipped_bytes(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[WAKE_MAX_LEN], copy[WAKE_MAX_LEN];
	size_t n = build(f, 0, uid_a, NOW, buf);

	/* any flipped bit after the magic in the signed part, or in the signature */
	for (size_t i = 4; i < n; i++) {
		if (i == WAKE_SIGNED_LEN)
			continue; /* siglen: malformed, covered above */
		memcpy(copy, buf, n);
		copy[i] ^= 0x01;
		enum wake_rc rc = verify(f, uid_a, copy, n, NOW);
		if (rc != WAKE_BAD_SIG)
			fail_msg("flipped byte %zu: got %s", i, wake_rc_text(rc));
	}
	/* untouched it still passes */
	assert_int_equal(verify(f, uid_a, buf, n, NOW), WAKE_OK);
}

static void
test_rc_text(void **state)
{
	(void)state;
	enum wake_rc all[] = { WAKE_OK, WAKE_MALFORMED, WAKE_BAD_SIG, WAKE_WRONG_HOST,
		WAKE_STALE, WAKE_REPLAY };
	for (size_t i = 0; i < ARRAY_LEN(all); i++) {
		assert_string_not_equal(wake_rc_text(all[i]), "?");
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(wake_rc_text(all[i]), wake_rc_text(all[j]));
	}
	assert_string_equal(wake_rc_text((enum wake_rc)99), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_build_layout, before, after),
		cmocka_unit_test_setup_teardown(test_build_bad_input, before, after),
		cmocka_unit_test_setup_teardown(test_verify_ok, before, after),
		cmocka_unit_test_setup_teardown(test_forged, before, after),
		cmocka_unit_test_setup_teardown(test_wrong_host, before, after),
		cmocka_unit_test_setup_teardown(test_stale, before, after),
		cmocka_unit_test_setup_teardown(test_replay, before, after),
		cmocka_unit_test_setup_teardown(test_replay_cache_wraps, before, after),
		cmocka_unit_test_setup_teardown(test_malformed, before, after),
		cmocka_unit_test_setup_teardown(test_flipped_bytes, before, after),
		cmocka_unit_test(test_rc_text),
	};
	return cmocka_run_group_tests_name("wake", tests, setup, teardown);
}
