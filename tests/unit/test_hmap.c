/* test_hmap.c — unit tests for lib/hmap.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hmap.h"
#include "util.h"

struct item {
	char key[32];
	int id;
	int seen;
};

static void
test_basic(void **state)
{
	(void)state;
	struct hmap *m = hmap_new();
	struct item a = { "alpha", 1, 0 }, b = { "beta", 2, 0 };
	void *old = (void *)0x1;

	assert_non_null(m);
	assert_int_equal(hmap_count(m), 0);
	assert_null(hmap_get(m, "alpha"));
	assert_null(hmap_del(m, "alpha"));

	assert_int_equal(hmap_put(m, a.key, &a, &old), 0);
	assert_null(old);
	assert_int_equal(hmap_put(m, b.key, &b, NULL), 0);
	assert_int_equal(hmap_count(m), 2);
	assert_ptr_equal(hmap_get(m, "alpha"), &a);
	assert_ptr_equal(hmap_get(m, "beta"), &b);
	assert_null(hmap_get(m, "gamma"));
	assert_null(hmap_get(m, "alph"));
	assert_null(hmap_get(m, "alphaa"));
	assert_null(hmap_get(m, "ALPHA"));

	/* lookups use the string, not the pointer */
	char probe[16];
	str_copy(probe, "beta", sizeof(probe));
	assert_ptr_equal(hmap_get(m, probe), &b);

	assert_ptr_equal(hmap_del(m, "alpha"), &a);
	assert_int_equal(hmap_count(m), 1);
	assert_null(hmap_get(m, "alpha"));
	assert_null(hmap_del(m, "alpha"));
	assert_int_equal(hmap_count(m), 1);
	assert_ptr_equal(hmap_get(m, "beta"), &b);

	/* empty key is a key like any other */
	struct item e = { "", 3, 0 };
	assert_int_equal(hmap_put(m, e.key, &e, NULL), 0);
	assert_ptr_equal(hmap_get(m, ""), &e);
	assert_int_equal(hmap_count(m), 2);

	hmap_free(m);
	hmap_free(NULL);
}

static void
test_replace(void **state)
{
	(void)state;
	struct hmap *m = hmap_new();
	struct item a1 = { "k", 1, 0 }, a2 = { "k", 2, 0 };
	void *old = NULL;

	assert_int_equal(hmap_put(m, a1.key, &a1, &old), 0);
	assert_null(old);
	assert_int_equal(hmap_put(m, a2.key, &a2, &old), 0);
	assert_ptr_equal(old, &a1);
	assert_int_equal(hmap_count(m), 1);
	assert_ptr_equal(hmap_get(m, "k"), &a2);

	/* the entry now uses the new value's key: the old one may go away */
	memset(a1.key, 'X', sizeof(a1.key) - 1);
	a1.key[sizeof(a1.key) - 1] = '\0';
	assert_ptr_equal(hmap_get(m, "k"), &a2);

	/* replace without asking for old */
	assert_int_equal(hmap_put(m, a2.key, &a1, NULL), 0);
	assert_ptr_equal(hmap_get(m, "k"), &a1);
	assert_int_equal(hmap_count(m), 1);
	hmap_free(m);
}

static void
mark_cb(void *v, void *arg)
{
	struct item *it = v;
	it->seen++;
	(*(size_t *)arg)++;
}

static void
test_growth_and_foreach(void **state)
{
	(void)state;
	enum { N = 50000 };
	struct item *items = calloc(N, sizeof(*items));
	struct hmap *m = hmap_new();

	assert_non_null(items);
	assert_non_null(m);
	for (int i = 0; i < N; i++) {
		items[i].id = i;
		assert_true(str_fmt(items[i].key, sizeof(items[i].key), "host-%d", i) > 0);
		void *old = (void *)0x1;
		assert_int_equal(hmap_put(m, items[i].key, &items[i], &old), 0);
		assert_null(old);
		assert_int_equal(hmap_count(m), (size_t)i + 1);
	}
	for (int i = 0; i < N; i++) {
		char k[32];
		assert_true(str_fmt(k, sizeof(k), "host-%d", i) > 0);
		struct item *it = hmap_get(m, k);
		assert_non_null(it);
		assert_int_equal(it->id, i);
	}
	assert_null(hmap_get(m, "host-50000"));

	size_t visits = 0;
	hmap_foreach(m, mark_cb, &visits);
	assert_int_equal(visits, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(items[i].seen, 1);

	/* delete the even ones; the odd ones stay */
	for (int i = 0; i < N; i += 2)
		assert_ptr_equal(hmap_del(m, items[i].key), &items[i]);
	assert_int_equal(hmap_count(m), N / 2);
	for (int i = 0; i < N; i++) {
		if (i % 2 == 0)
			assert_null(hmap_get(m, items[i].key));
		else
			assert_ptr_equal(hmap_get(m, items[i].key), &items[i]);
	}
	visits = 0;
	hmap_foreach(m, mark_cb, &visits);
	assert_int_equal(visits, N / 2);
	for (int i = 0; i < N; i++)
		assert_int_equal(items[i].seen, i % 2 ? 2 : 1);

	/* re-insert after delete */
	for (int i = 0; i < N; i += 2)
		assert_int_equal(hmap_put(m, items[i].key, &items[i], NULL), 0);
	assert_int_equal(hmap_count(m), N);

	hmap_free(m);
	free(items);
}

static void
count_cb(void *v, void *arg)
{
	(void)v;
	(*(size_t *)arg)++;
}

static void
test_foreach_empty(void **state)
{
	(void)state;
	struct hmap *m = hmap_new();
	size_t n = 0;
	hmap_foreach(m, count_cb, &n);
	assert_int_equal(n, 0);

	/* put + delete everything: foreach sees nothing */
	struct item a = { "a", 0, 0 };
	assert_int_equal(hmap_put(m, a.key, &a, NULL), 0);
	assert_ptr_equal(hmap_del(m, "a"), &a);
	hmap_foreach(m, count_cb, &n);
	assert_int_equal(n, 0);
	assert_int_equal(hmap_count(m), 0);
	hmap_free(m);
}

/* NULL values are stored; get cannot tell them from absent, count can. */
static void
test_null_value(void **state)
{
	(void)state;
	struct hmap *m = hmap_new();
	void *old = (void *)0x1;
	assert_int_equal(hmap_put(m, "nil", NULL, &old), 0);
	assert_null(old);
	assert_int_equal(hmap_count(m), 1);
	assert_null(hmap_get(m, "nil"));
	assert_null(hmap_del(m, "nil"));
	assert_int_equal(hmap_count(m), 0);
	hmap_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_growth_and_foreach),
		cmocka_unit_test(test_foreach_empty),
		cmocka_unit_test(test_null_value),
	};
	return cmocka_run_group_tests_name("hmap", tests, NULL, NULL);
}
