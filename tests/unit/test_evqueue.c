/* test_evqueue.c — the agent's on-disk event queue. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/evqueue.h"
#include "util.h"

struct fx {
	char dir[PATH_MAX];
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	/* A fresh parent; the spool itself is created by evq_open. */
	str_copy(f->dir, "/tmp/custos-evq-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	size_t len = strlen(f->dir);
	str_copy(f->dir + len, "/spool", sizeof(f->dir) - len);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char *slash = strrchr(f->dir, '/');
	*slash = '\0';
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct evq *
open_q(struct fx *f, size_t max)
{
	char err[512] = "";
	struct evq *q = evq_open(f->dir, max, err, sizeof(err));
	if (q == NULL)
		fail_msg("evq_open: %s", err);
	return q;
}

/* Enqueues an info event with message "m<i>"; copies its id to id. */
static void
put(struct evq *q, int i, char id[33])
{
	char msg[32], err[512] = "";
	snprintf(msg, sizeof(msg), "m%d", i);
	json_t *ev = json_pack("{s:s, s:s, s:s, s:{s:i}}", "severity", "info",
	    "kind", "test.event", "message", msg, "data", "n", i);
	assert_non_null(ev);
	if (evq_enqueue(q, ev, err, sizeof(err)) != 0)
		fail_msg("evq_enqueue: %s", err);
	const char *s = json_string_value(json_object_get(ev, "id"));
	assert_non_null(s);
	assert_int_equal(strlen(s), 32);
	assert_true(json_is_integer(json_object_get(ev, "time")));
	if (id != NULL)
		str_copy(id, s, 33);
	json_decref(ev);
}

/* Number of directory entries containing needle (NULL: all but . and ..). */
static int
count_files(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (needle == NULL || strstr(de->d_name, needle) != NULL)
			n++;
	}
	closedir(d);
	return n;
}

/* Name of the file in dir whose name contains id. */
static void
file_of(const char *dir, const char *id, char *out, size_t outsz)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	assert_non_null(d);
	out[0] = '\0';
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, id) != NULL)
			str_copy(out, de->d_name, outsz);
	closedir(d);
	assert_true(out[0] != '\0');
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	assert_true(str_fmt(path, sizeof(path), "%s/%s", dir, name) > 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static const char *
ev_id(json_t *arr, size_t i)
{
	return json_string_value(json_object_get(json_array_get(arr, i), "id"));
}

static void
test_open_bad(void **state)
{
	struct fx *f = *state;
	char err[512] = "", path[PATH_MAX];

	assert_null(evq_open(f->dir, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "max events"));

	/* The spool path is a regular file. */
	assert_true(str_fmt(path, sizeof(path), "%s.file", f->dir) > 0);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	err[0] = '\0';
	assert_null(evq_open(path, 10, err, sizeof(err)));
	assert_true(err[0] != '\0');
	unlink(path);

	err[0] = '\0';
	assert_null(evq_open("", 10, err, sizeof(err)));
	assert_true(err[0] != '\0');

	/* A good one creates the directory 0700. */
	struct evq *q = open_q(f, 10);
	struct stat st;
	assert_int_equal(stat(f->dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_string_equal(evq_dir(q), f->dir);
	assert_int_equal(evq_count(q), 0);
	assert_int_equal(evq_dropped(q), 0);
	json_t *a = evq_peek(q, 10);
	assert_non_null(a);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
	evq_close(q);
}

static void
test_order_50(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 1000);
	char ids[50][33];

	for (int i = 0; i < 50; i++)
		put(q, i, ids[i]);
	assert_int_equal(evq_count(q), 50);

	json_t *a = evq_peek(q, 100);
	assert_non_null(a);
	assert_int_equal(json_array_size(a), 50);
	for (size_t i = 0; i < 50; i++) {
		json_t *ev = json_array_get(a, i);
		assert_string_equal(ev_id(a, i), ids[i]);
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(ev, "data"), "n")), i);
		assert_string_equal(json_string_value(json_object_get(ev,
		    "severity")), "info");
	}
	json_decref(a);

	/* A smaller window returns the oldest, and peek removes nothing. */
	a = evq_peek(q, 7);
	assert_int_equal(json_array_size(a), 7);
	assert_string_equal(ev_id(a, 0), ids[0]);
	assert_string_equal(ev_id(a, 6), ids[6]);
	json_decref(a);
	a = evq_peek(q, 0);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
	assert_int_equal(evq_count(q), 50);
	evq_close(q);
}

static void
test_ack(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char ids[10][33];

	for (int i = 0; i < 10; i++)
		put(q, i, ids[i]);
	const char *acks[] = {
		ids[0], ids[3], ids[7],
		"0123456789abcdef0123456789abcdef",	/* unknown */
		"not-an-id", "0123456789ABCDEF0123456789ABCDEF", "../lock",
		NULL, ids[3],				/* duplicate */
	};
	assert_int_equal(evq_ack(q, acks, ARRAY_LEN(acks)), 3);
	assert_int_equal(evq_count(q), 7);

	json_t *a = evq_peek(q, 100);
	assert_int_equal(json_array_size(a), 7);
	size_t k = 0;
	for (int i = 0; i < 10; i++) {
		if (i == 0 || i == 3 || i == 7)
			continue;
		assert_string_equal(ev_id(a, k), ids[i]);
		k++;
	}
	json_decref(a);

	/* Acking again removes nothing; bad arguments are harmless. */
	assert_int_equal(evq_ack(q, acks, 3), 0);
	assert_int_equal(evq_ack(q, NULL, 5), 0);
	assert_int_equal(evq_ack(q, acks, 0), 0);
	assert_int_equal(evq_count(q), 7);
	/* The bookkeeping files survive. */
	assert_int_equal(count_files(f->dir, "lock"), 1);
	evq_close(q);
}

static void
test_reopen(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char ids[5][33];

	for (int i = 0; i < 5; i++)
		put(q, i, ids[i]);
	evq_close(q);

	q = open_q(f, 100);
	assert_int_equal(evq_count(q), 5);
	json_t *a = evq_peek(q, 10);
	assert_int_equal(json_array_size(a), 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(ev_id(a, i), ids[i]);
	json_decref(a);

	/* New events go after the old ones. */
	char late[33];
	put(q, 5, late);
	a = evq_peek(q, 10);
	assert_int_equal(json_array_size(a), 6);
	assert_string_equal(ev_id(a, 5), late);
	json_decref(a);
	evq_close(q);
}

static void
test_bound(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 10);
	char ids[15][33];

	for (int i = 0; i < 15; i++)
		put(q, i, ids[i]);
	assert_int_equal(evq_count(q), 10);
	assert_int_equal(evq_dropped(q), 5);

	json_t *a = evq_peek(q, 100);
	assert_int_equal(json_array_size(a), 10);
	for (size_t i = 0; i < 10; i++)
		assert_string_equal(ev_id(a, i), ids[i + 5]);
	json_decref(a);
	/* The dropped ones are really gone: acking them removes nothing. */
	const char *old[] = { ids[0], ids[1], ids[2], ids[3], ids[4] };
	assert_int_equal(evq_ack(q, old, 5), 0);
	evq_close(q);

	q = open_q(f, 10);
	assert_int_equal(evq_dropped(q), 5);
	assert_int_equal(evq_count(q), 10);
	put(q, 15, NULL);
	assert_int_equal(evq_dropped(q), 6);
	evq_close(q);

	/* Re-opened with a smaller bound: the next enqueue trims to it. */
	q = open_q(f, 3);
	put(q, 16, NULL);
	assert_int_equal(evq_count(q), 3);
	assert_int_equal(evq_dropped(q), 14);
	evq_close(q);
}

/* ev must be rejected, left unmodified, and nothing stored. */
static void
reject(struct evq *q, json_t *ev, const char *needle)
{
	char err[512] = "";
	char *before = json_dumps(ev, JSON_COMPACT | JSON_ENCODE_ANY);
	assert_int_equal(evq_enqueue(q, ev, err, sizeof(err)), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
	char *after = json_dumps(ev, JSON_COMPACT | JSON_ENCODE_ANY);
	assert_string_equal(before, after);
	free(before);
	free(after);
	json_decref(ev);
	assert_int_equal(evq_count(q), 0);
}

static void
test_invalid(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 10);
	char big[1100], kind65[66];

	memset(big, 'x', sizeof(big));
	big[1025] = '\0';
	memset(kind65, 'k', 65);
	kind65[65] = '\0';

	reject(q, json_array(), "object");
	reject(q, json_string("info"), "object");
	reject(q, json_pack("{s:s,s:s}", "kind", "a", "message", "m"), "severity");
	reject(q, json_pack("{s:s,s:s,s:s}", "severity", "fatal", "kind", "a",
	    "message", "m"), "severity");
	reject(q, json_pack("{s:i,s:s,s:s}", "severity", 1, "kind", "a",
	    "message", "m"), "severity");
	reject(q, json_pack("{s:s#,s:s,s:s}", "severity", "info\0x", (int)6,
	    "kind", "a", "message", "m"), "severity");
	reject(q, json_pack("{s:s,s:s,s:s}", "severity", "info", "kind",
	    "Bad Kind", "message", "m"), "kind");
	reject(q, json_pack("{s:s,s:s,s:s}", "severity", "info", "kind",
	    "a/b", "message", "m"), "kind");
	reject(q, json_pack("{s:s,s:s,s:s}", "severity", "info", "kind", "",
	    "message", "m"), "kind");
	reject(q, json_pack("{s:s,s:s,s:s}", "severity", "info", "kind",
	    kind65, "message", "m"), "kind");
	reject(q, json_pack("{s:s,s:s}", "severity", "info", "kind", "a"),
	    "message");
	reject(q, json_pack("{s:s,s:s,s:i}", "severity", "info", "kind", "a",
	    "message", 5), "message");
	reject(q, json_pack("{s:s,s:s,s:s}", "severity", "info", "kind", "a",
	    "message", big), "1025 bytes");
	reject(q, json_pack("{s:s,s:s,s:s,s:[]}", "severity", "info", "kind",
	    "a", "message", "m", "data"), "data");
	reject(q, json_pack("{s:s,s:s,s:s,s:s}", "severity", "info", "kind",
	    "a", "message", "m", "id", "0123456789ABCDEF0123456789ABCDEF"), "id");
	reject(q, json_pack("{s:s,s:s,s:s,s:s}", "severity", "info", "kind",
	    "a", "message", "m", "id", "0123456789abcdef0123456789abcde"), "id");
	reject(q, json_pack("{s:s,s:s,s:s,s:i}", "severity", "info", "kind",
	    "a", "message", "m", "id", 7), "id");
	reject(q, json_pack("{s:s,s:s,s:s,s:s}", "severity", "info", "kind",
	    "a", "message", "m", "time", "now"), "time");
	reject(q, json_pack("{s:s,s:s,s:s,s:i}", "severity", "info", "kind",
	    "a", "message", "m", "time", -1), "time");

	/* Too large once serialized. */
	char *huge = malloc(70000);
	assert_non_null(huge);
	memset(huge, 'y', 69999);
	huge[69999] = '\0';
	reject(q, json_pack("{s:s,s:s,s:s,s:{s:s}}", "severity", "info", "kind",
	    "a", "message", "m", "data", "blob", huge), "serialized");
	free(huge);

	/* Limits themselves are accepted. */
	char err[512] = "";
	big[1024] = '\0';
	memset(kind65, 'k', 64);
	kind65[64] = '\0';
	json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:i}", "severity", "critical",
	    "kind", kind65, "message", big, "id",
	    "0123456789abcdef0123456789abcdef", "time", 1700000000);
	assert_int_equal(evq_enqueue(q, ev, err, sizeof(err)), 0);
	json_decref(ev);
	ev = json_pack("{s:s,s:s,s:s}", "severity", "warning", "kind",
	    "a-z_0.9", "message", "");
	assert_int_equal(evq_enqueue(q, ev, err, sizeof(err)), 0);
	json_decref(ev);
	assert_int_equal(evq_count(q), 2);

	json_t *a = evq_peek(q, 10);
	assert_string_equal(ev_id(a, 0), "0123456789abcdef0123456789abcdef");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0),
	    "time")), 1700000000);
	assert_int_equal(json_string_length(json_object_get(json_array_get(a, 0),
	    "message")), 1024);
	json_decref(a);
	evq_close(q);
}

static void
test_duplicate_id(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 10);
	char err[512] = "";
	json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "severity", "info", "kind",
	    "a", "message", "m", "id", "00000000000000000000000000000001");

	assert_int_equal(evq_enqueue(q, ev, err, sizeof(err)), 0);
	assert_int_equal(evq_enqueue(q, ev, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already queued"));
	assert_int_equal(evq_count(q), 1);
	/* Once acked the id may be used again. */
	const char *ids[] = { "00000000000000000000000000000001" };
	assert_int_equal(evq_ack(q, ids, 1), 1);
	assert_int_equal(evq_enqueue(q, ev, err, sizeof(err)), 0);
	assert_int_equal(evq_count(q), 1);
	json_decref(ev);
	evq_close(q);
}

static void
test_corrupt(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char ids[4][33], name[PATH_MAX], name2[PATH_MAX], cdir[PATH_MAX];

	for (int i = 0; i < 4; i++)
		put(q, i, ids[i]);
	file_of(f->dir, ids[1], name, sizeof(name));
	write_file(f->dir, name, "{\"severity\": \"info\", trunc");
	/* Valid JSON but the id does not match the file: could never be acked. */
	file_of(f->dir, ids[2], name2, sizeof(name2));
	write_file(f->dir, name2, "{\"id\":\"ffffffffffffffffffffffffffffffff\","
	    "\"time\":1,\"severity\":\"info\",\"kind\":\"a\",\"message\":\"m\"}");

	json_t *a = evq_peek(q, 100);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(ev_id(a, 0), ids[0]);
	assert_string_equal(ev_id(a, 1), ids[3]);
	json_decref(a);

	assert_true(str_fmt(cdir, sizeof(cdir), "%s/corrupt", f->dir) > 0);
	struct stat st;
	assert_int_equal(stat(cdir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(count_files(cdir, ids[1]), 1);
	assert_int_equal(count_files(cdir, ids[2]), 1);
	assert_int_equal(count_files(f->dir, ids[1]), 0);
	assert_int_equal(evq_count(q), 2);

	/* A window of 1 is not blocked by a bad head either. */
	file_of(f->dir, ids[0], name, sizeof(name));
	write_file(f->dir, name, "");
	a = evq_peek(q, 1);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(ev_id(a, 0), ids[3]);
	json_decref(a);
	assert_int_equal(count_files(cdir, NULL), 3);
	evq_close(q);
}

/* Enqueues an event whose "data" holds size bytes of filler; copies its id. */
static void
put_big(struct evq *q, size_t size, const char *kind, char id[33])
{
	char err[512] = "";
	char *fill = malloc(size + 1);
	assert_non_null(fill);
	memset(fill, 'x', size);
	fill[size] = '\0';
	json_t *ev = json_pack("{s:s, s:s, s:s, s:{s:s}}", "severity", "info",
	    "kind", kind, "message", "big", "data", "fill", fill);
	free(fill);
	assert_non_null(ev);
	if (evq_enqueue(q, ev, err, sizeof(err)) != 0)
		fail_msg("evq_enqueue: %s", err);
	str_copy(id, json_string_value(json_object_get(ev, "id")), 33);
	json_decref(ev);
}

static size_t
batch_bytes(json_t *a)
{
	size_t n = 0, i;
	json_t *ev;
	json_array_foreach(a, i, ev)
		n += json_dumpb(ev, NULL, 0, JSON_COMPACT) + 1;
	return n;
}

/* Batches stop at the byte limit, keep the order, and every event is sent
 * in exactly one of them. */
static void
test_batch_by_size(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char ids[31][33];
	const size_t limit = 1048576 - 256;

	for (int i = 0; i < 30; i++)
		put_big(q, 60000, "test.big", ids[i]);
	put(q, 30, ids[30]);
	/* without a byte limit, one batch would be about 1.8 MB */
	json_t *all = evq_peek(q, 100);
	assert_int_equal(json_array_size(all), 31);
	assert_true(batch_bytes(all) > limit);
	json_decref(all);

	size_t next = 0, batches = 0;
	while (next < 31) {
		json_t *a = evq_peek_batch(q, 100, limit);
		assert_non_null(a);
		assert_true(json_array_size(a) > 0);
		assert_true(batch_bytes(a) <= limit);
		const char *acks[31];
		for (size_t i = 0; i < json_array_size(a); i++) {
			assert_string_equal(ev_id(a, i), ids[next + i]);
			acks[i] = ev_id(a, i);
		}
		assert_int_equal(evq_ack(q, acks, json_array_size(a)), json_array_size(a));
		next += json_array_size(a);
		batches++;
		json_decref(a);
	}
	assert_int_equal(batches, 2);
	assert_int_equal(evq_count(q), 0);
	assert_int_equal(evq_oversized(q), 0);
	/* the window still limits the count */
	for (int i = 0; i < 5; i++)
		put(q, i, NULL);
	json_t *a = evq_peek_batch(q, 3, limit);
	assert_int_equal(json_array_size(a), 3);
	json_decref(a);
	evq_close(q);
}

/* An event larger than a message is set aside in rejected/, counted, and
 * replaced by a small event_too_large; the events behind it still go. */
static void
test_batch_oversized(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char small[2][33], big[33], rdir[PATH_MAX];

	put(q, 0, small[0]);
	put_big(q, 5000, "test.big", big);
	put(q, 1, small[1]);

	json_t *a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(ev_id(a, 0), small[0]);
	assert_string_equal(ev_id(a, 1), small[1]);
	json_decref(a);
	assert_int_equal(evq_oversized(q), 1);
	assert_true(str_fmt(rdir, sizeof(rdir), "%s/rejected", f->dir) > 0);
	assert_int_equal(count_files(rdir, big), 1);
	assert_int_equal(count_files(f->dir, big), 0);
	/* the two small ones and the report */
	assert_int_equal(evq_count(q), 3);
	a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 3);
	json_t *rep = json_array_get(a, 2);
	assert_string_equal(json_string_value(json_object_get(rep, "kind")), "event_too_large");
	assert_string_equal(json_string_value(json_object_get(rep, "severity")), "error");
	json_t *d = json_object_get(rep, "data");
	assert_string_equal(json_string_value(json_object_get(d, "id")), big);
	assert_string_equal(json_string_value(json_object_get(d, "kind")), "test.big");
	assert_true(json_integer_value(json_object_get(d, "size")) > 5000);
	assert_int_equal(json_integer_value(json_object_get(d, "limit")), 2048);
	json_decref(a);

	/* a report that does not fit either is set aside without a new report */
	a = evq_peek_batch(q, 100, 300);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(ev_id(a, 0), small[0]);
	assert_string_equal(ev_id(a, 1), small[1]);
	json_decref(a);
	assert_int_equal(evq_oversized(q), 2);
	assert_int_equal(evq_count(q), 2);
	assert_int_equal(count_files(rdir, NULL), 2);
	const char *acks[2] = { small[0], small[1] };
	assert_int_equal(evq_ack(q, acks, 2), 2);
	evq_close(q);

	/* the counter persists; rejected/ keeps the newest EVQ_REJECTED_KEEP */
	q = open_q(f, 1000);
	assert_int_equal(evq_oversized(q), 2);
	for (int i = 0; i < EVQ_REJECTED_KEEP + 5; i++)
		put_big(q, 300, "event_too_large", big);
	a = evq_peek_batch(q, 1000, 200);
	assert_int_equal(json_array_size(a), 0);
	assert_int_equal(evq_count(q), 0);
	json_decref(a);
	assert_int_equal(count_files(rdir, NULL), EVQ_REJECTED_KEEP);
	assert_int_equal(count_files(rdir, big), 1);
	assert_int_equal(evq_oversized(q), 2 + EVQ_REJECTED_KEEP + 5);
	evq_close(q);
}

/* An event the server refused is set aside by id; the others stay. */
static void
test_reject_id(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char ids[3][33], rdir[PATH_MAX];

	for (int i = 0; i < 3; i++)
		put(q, i, ids[i]);
	assert_int_equal(evq_reject_id(q, ids[1], "the server refused it"), 0);
	assert_int_equal(evq_reject_id(q, ids[1], "again"), -1);
	assert_int_equal(evq_reject_id(q, "not an id", "bad"), -1);
	assert_int_equal(evq_count(q), 2);
	assert_true(str_fmt(rdir, sizeof(rdir), "%s/rejected", f->dir) > 0);
	assert_int_equal(count_files(rdir, ids[1]), 1);
	json_t *a = evq_peek(q, 10);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(ev_id(a, 0), ids[0]);
	assert_string_equal(ev_id(a, 1), ids[2]);
	json_decref(a);
	evq_close(q);
}

/* A crash after the report of an oversized event was queued and before
 * the event was moved (simulated: the event put back into the spool) queues
 * no second report, and a report queued again after the first was sent has
 * the same id (the server recognises it as a resend). */
static void
test_oversized_report_once(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char big[33], rdir[PATH_MAX], name[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	char first[33];

	put_big(q, 5000, "test.big", big);
	json_t *a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 0);	/* the report is queued behind */
	json_decref(a);
	a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "kind")),
	    "event_too_large");
	str_copy(first, ev_id(a, 0), sizeof(first));
	json_decref(a);
	assert_true(str_fmt(rdir, sizeof(rdir), "%s/rejected", f->dir) > 0);
	file_of(rdir, big, name, sizeof(name));
	assert_true(str_fmt(from, sizeof(from), "%s/%s", rdir, name) > 0);
	assert_true(str_fmt(to, sizeof(to), "%s/%s", f->dir, name) > 0);

	/* the crash: the report is queued, the event still in the spool */
	assert_int_equal(rename(from, to), 0);
	a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(ev_id(a, 0), first);
	json_decref(a);
	assert_int_equal(evq_count(q), 1);
	assert_int_equal(evq_oversized(q), 1);
	assert_int_equal(count_files(f->dir, big), 0);
	assert_int_equal(count_files(rdir, big), 1);

	/* the same after the report was sent and acknowledged: same id */
	const char *ack[1] = { first };
	assert_int_equal(evq_ack(q, ack, 1), 1);
	assert_int_equal(rename(from, to), 0);
	a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);
	a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(ev_id(a, 0), first);
	json_decref(a);
	evq_close(q);
}

/* An oversized event that cannot be moved (rejected/ is not a directory)
 * is reported and counted once, stays in the spool and is left out of the
 * batches of this run; a new struct evq (the next run) takes it up again. */
static void
test_oversized_cannot_move(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char small[33], big[33];

	put(q, 0, small);
	put_big(q, 5000, "test.big", big);
	write_file(f->dir, "rejected", "not a directory");
	json_t *a = evq_peek_batch(q, 100, 2048);
	assert_int_equal(json_array_size(a), 1);	/* the report is queued behind */
	json_decref(a);
	for (int round = 0; round < 3; round++) {
		a = evq_peek_batch(q, 100, 2048);
		assert_int_equal(json_array_size(a), 2);
		assert_string_equal(ev_id(a, 0), small);
		assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1),
		    "kind")), "event_too_large");
		json_decref(a);
	}
	assert_int_equal(evq_oversized(q), 1);
	assert_int_equal(count_files(f->dir, big), 1);
	assert_int_equal(evq_count(q), 2);	/* the big one is held */
	assert_true(evq_is_held(q, big));
	evq_close(q);
	q = open_q(f, 100);
	assert_int_equal(evq_count(q), 3);
	evq_close(q);
}

/* A held event (refused, could not be set aside) is left out of batches
 * and of the count; it stays in the spool. */
static void
test_hold(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char ids[3][33];

	for (int i = 0; i < 3; i++)
		put(q, i, ids[i]);
	write_file(f->dir, "rejected", "not a directory");
	assert_int_equal(evq_reject_id(q, ids[0], "the server refused it"), -1);
	evq_hold(q, ids[0]);
	evq_hold(q, ids[0]);
	evq_hold(q, "not an id");
	assert_int_equal(evq_count(q), 2);
	json_t *a = evq_peek(q, 10);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(ev_id(a, 0), ids[1]);
	assert_string_equal(ev_id(a, 1), ids[2]);
	json_decref(a);
	assert_int_equal(count_files(f->dir, ids[0]), 1);
	evq_close(q);
}

static void
test_stale_tmp(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char id[33], path[PATH_MAX];
	const char *old_tmp =
	    "0000000000000001-000000-0123456789abcdef0123456789abcdef.json.tmp.42";
	const char *new_tmp =
	    "0000000000000002-000000-0123456789abcdef0123456789abcdee.json.tmp.43";
	const char *ev = "{\"id\":\"0123456789abcdef0123456789abcdef\",\"time\":1,"
	    "\"severity\":\"info\",\"kind\":\"a\",\"message\":\"m\"}";

	put(q, 0, id);
	write_file(f->dir, old_tmp, ev);
	write_file(f->dir, new_tmp, ev);
	write_file(f->dir, "README", "not an event");
	write_file(f->dir, "0000000000000001-000000-0123456789ABCDEF0123456789ABCDEF"
	    ".json", ev);
	struct timespec ts[2] = { { now_s() - 7200, 0 }, { now_s() - 7200, 0 } };
	assert_true(str_fmt(path, sizeof(path), "%s/%s", f->dir, old_tmp) > 0);
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);

	assert_int_equal(evq_count(q), 1);
	json_t *a = evq_peek(q, 10);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(ev_id(a, 0), id);
	json_decref(a);
	evq_close(q);

	/* Open removes only the stale one. */
	q = open_q(f, 100);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count_files(f->dir, ".tmp."), 1);
	assert_int_equal(count_files(f->dir, "README"), 1);
	assert_int_equal(evq_count(q), 1);
	evq_close(q);
}

/* A queued name from the "future" (clock stepped back) still sorts first. */
static void
test_clock_back(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 100);
	char id[33];

	write_file(f->dir, "9999999999999990-999999-"
	    "0123456789abcdef0123456789abcdef.json",
	    "{\"id\":\"0123456789abcdef0123456789abcdef\",\"time\":1,"
	    "\"severity\":\"info\",\"kind\":\"a\",\"message\":\"m\"}");
	put(q, 0, id);
	json_t *a = evq_peek(q, 10);
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(ev_id(a, 0), "0123456789abcdef0123456789abcdef");
	assert_string_equal(ev_id(a, 1), id);
	json_decref(a);
	assert_int_equal(count_files(f->dir, "9999999999999991-000000-"), 1);
	evq_close(q);
}

static void
test_make_event(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 10);
	char err[512] = "";
	json_t *data = json_pack("{s:s}", "file", "/tmp/eicar.com");

	json_t *ev = evq_make_event("critical", "av.virus_found",
	    "Eicar-Signature FOUND in \xff\xfe.bin", data);
	assert_non_null(ev);
	assert_int_equal(data->refcount, 2);	/* not stolen */
	json_decref(data);
	const char *id = json_string_value(json_object_get(ev, "id"));
	assert_non_null(id);
	assert_int_equal(strlen(id), 32);
	assert_true(json_integer_value(json_object_get(ev, "time")) >
	    1700000000);
	assert_string_equal(json_string_value(json_object_get(ev, "message")),
	    "Eicar-Signature FOUND in ??.bin");
	assert_int_equal(evq_enqueue(q, ev, err, sizeof(err)), 0);

	json_t *a = evq_peek(q, 1);
	assert_true(json_equal(json_array_get(a, 0), ev));
	json_decref(a);
	json_decref(ev);

	assert_null(evq_make_event(NULL, "a", "m", NULL));
	assert_null(evq_make_event("info", "a", NULL, NULL));
	ev = evq_make_event("info", "a", "m", NULL);
	assert_non_null(ev);
	assert_null(json_object_get(ev, "data"));
	json_decref(ev);
	evq_close(q);
}

/* Two processes filling one queue never overshoot the bound. */
static void
test_concurrent(void **state)
{
	struct fx *f = *state;
	struct evq *q = open_q(f, 10);
	pid_t kids[2];

	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			char err[512];
			int bad = 0;
			for (int i = 0; i < 20; i++) {
				json_t *ev = evq_make_event("info", "kid", "m", NULL);
				if (ev == NULL || evq_enqueue(q, ev, err,
				    sizeof(err)) != 0 || evq_count(q) > 10)
					bad = 1;
				json_decref(ev);
			}
			_exit(bad);
		}
	}
	for (int k = 0; k < 2; k++) {
		int st;
		assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_int_equal(evq_count(q), 10);
	assert_int_equal(evq_dropped(q), 30);
	evq_close(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order_50, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_by_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_report_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_cannot_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_tmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_make_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	};
	return cmocka_run_group_tests_name("evqueue", tests, NULL, NULL);
}
