/* test_snapshot.c — unit tests for daemon/snapshot.c: the file round trip
 * (administrators, hosts, the compact posture that status and NAC read the
 * same as the full one), atomic replacement, damaged files, the merge with
 * a database row, and the write and read time of 100,000 hosts (printed). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/nacd/nac.h"
#include "daemon/core/registry.h"
#include "daemon/store/snapshot.h"
#include "daemon/core/status.h"
#include "util.h"

#define NOW ((int64_t)1750000000)

struct fx {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	str_copy(f->dir, "/tmp/custos-snap-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	str_fmt(f->path, sizeof(f->path), "%s/snapshot.json", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char tmp[160];
	unlink(f->path);
	str_fmt(tmp, sizeof(tmp), "%s.tmp", f->path);
	unlink(tmp);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A posture as an agent reports it (the memory's copy: packages counted). */
static json_t *
full_posture(int i, int threats, bool rtp)
{
	json_t *p = json_pack("{s:[{s:s, s:b, s:I, s:I, s:b, s:b, s:[{s:s, s:I}]}],"
	    " s:{s:I}, s:{s:s, s:b, s:I, s:[{s:s, s:s, s:[s], s:[s], s:I}]},"
	    " s:{s:I}, s:{s:s}, s:[s]}",
	    "antivirus", "name", "clamav", "installed", 1, "db_version", (json_int_t)27000 + i,
	    "db_time", (json_int_t)(NOW - 86400 * (i % 9)), "running", 1, "rtp", rtp,
	    "databases", "file", "daily.cld", "version", (json_int_t)27000,
	    "threats", "unresolved", (json_int_t)threats,
	    "system", "os", "Debian 12", "reboot_required", i % 5 == 0, "uptime", (json_int_t)1000,
	    "interfaces", "name", "eth0", "mac", "02:00:00:00:00:01", "ipv4", "192.0.2.1",
	    "ipv6", "2001:db8::1", "mtu", (json_int_t)1500,
	    "software", "packages_count", (json_int_t)1500,
	    "agent", "version", "0.1.0",
	    "errors", "none");
	assert_non_null(p);
	/* a distinct MAC and address per host */
	json_t *ifc = json_array_get(json_object_get(json_object_get(p, "system"), "interfaces"), 0);
	char mac[18], ip[32];
	str_fmt(mac, sizeof(mac), "02:00:00:%02x:%02x:%02x", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
	str_fmt(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
	json_object_set_new(ifc, "mac", json_string(mac));
	json_array_set_new(json_object_get(ifc, "ipv4"), 0, json_string(ip));
	return p;
}

static void
fill_host(struct snapshot_host *h, int i, json_t *posture)
{
	str_fmt(h->uid, sizeof(h->uid), "%032x", i);
	str_fmt(h->name, sizeof(h->name), "host-%d", i);
	str_fmt(h->last_ip, sizeof(h->last_ip), "10.0.%d.%d", (i >> 8) & 0xff, i & 0xff);
	h->group_id = (uint64_t)(i % 7);
	h->enrolled_at = NOW - 1000 - i;
	h->last_seen = NOW - i;
	h->posture_time = posture ? NOW - i : 0;
	h->wake_port = 15000 + i % 100;
	h->posture = posture;
}

static void
make_data(struct snapshot_data *d, size_t nhosts)
{
	memset(d, 0, sizeof(*d));
	d->time = NOW;
	d->nadmins = 2;
	d->admins = calloc(2, sizeof(*d->admins));
	d->hosts = calloc(nhosts, sizeof(*d->hosts));
	assert_non_null(d->admins);
	assert_non_null(d->hosts);
	for (size_t i = 0; i < 2; i++) {
		str_fmt(d->admins[i].name, sizeof(d->admins[i].name), i ? "auditor" : "admin");
		for (int k = 0; k < 64; k++)
			d->admins[i].pw_hash[k] = "0123456789abcdef"[(k + (int)i) % 16];
		str_fmt(d->admins[i].salt, sizeof(d->admins[i].salt), "salt%zu", i);
		d->admins[i].iterations = 100000 + (int)i;
	}
	for (size_t i = 0; i < nhosts; i++) {
		/* every tenth host never reported; every third one is infected */
		json_t *p = i % 10 == 9 ? NULL : full_posture((int)i, i % 3 == 0 ? 2 : 0, i % 4 != 0);
		fill_host(&d->hosts[d->nhosts++], (int)i, p);
	}
}

static void
host_from(struct host *h, const struct snapshot_host *s)
{
	memset(h, 0, sizeof(*h));
	str_copy(h->uid, s->uid, sizeof(h->uid));
	h->last_seen = s->last_seen;
	h->posture_time = s->posture_time;
	h->enrolled_at = s->enrolled_at;
	h->posture = s->posture;
}

/* What status and NAC see of a host is the same from the compact posture
 * as from the full one. */
static void
assert_same_view(const struct snapshot_host *a, const struct snapshot_host *b)
{
	struct host ha, hb;
	struct status_thresholds t;
	struct nac_facts fa, fb;
	status_defaults(&t);
	host_from(&ha, a);
	host_from(&hb, b);
	host_evaluate(&ha, &t, NOW);
	host_evaluate(&hb, &t, NOW);
	assert_memory_equal(&ha.sin, &hb.sin, sizeof(ha.sin));
	assert_int_equal(ha.st.status, hb.st.status);
	assert_int_equal(ha.st.reasons, hb.st.reasons);
	nac_facts_of_host(&ha, NOW, &fa);
	nac_facts_of_host(&hb, NOW, &fb);
	assert_memory_equal(&fa, &fb, sizeof(fa));
	/* the identifiers NAC indexes */
	json_t *ia = json_object_get(json_object_get(a->posture, "system"), "interfaces");
	json_t *ib = json_object_get(json_object_get(b->posture, "system"), "interfaces");
	assert_int_equal(json_array_size(ia), json_array_size(ib));
	for (size_t i = 0; i < json_array_size(ia); i++) {
		json_t *x = json_array_get(ia, i), *y = json_array_get(ib, i);
		assert_true(json_equal(json_object_get(x, "mac"), json_object_get(y, "mac")));
		assert_true(json_equal(json_object_get(x, "ipv4"), json_object_get(y, "ipv4")));
		assert_true(json_equal(json_object_get(x, "ipv6"), json_object_get(y, "ipv6")));
	}
}

static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	struct snapshot_data d, r;
	char err[512];
	make_data(&d, 40);
	assert_int_equal(snapshot_write_file(f->path, &d, err, sizeof(err)), 0);

	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char tmp[160];
	str_fmt(tmp, sizeof(tmp), "%s.tmp", f->path);
	assert_int_equal(access(tmp, F_OK), -1);

	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	assert_int_equal(r.time, NOW);
	assert_int_equal(r.nadmins, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(r.admins[i].name, d.admins[i].name);
		assert_string_equal(r.admins[i].pw_hash, d.admins[i].pw_hash);
		assert_string_equal(r.admins[i].salt, d.admins[i].salt);
		assert_int_equal(r.admins[i].iterations, d.admins[i].iterations);
	}
	assert_int_equal(r.nhosts, d.nhosts);
	for (size_t i = 0; i < d.nhosts; i++) {
		const struct snapshot_host *a = &d.hosts[i], *b = &r.hosts[i];
		assert_string_equal(a->uid, b->uid);
		assert_string_equal(a->name, b->name);
		assert_string_equal(a->last_ip, b->last_ip);
		assert_int_equal(a->group_id, b->group_id);
		assert_int_equal(a->enrolled_at, b->enrolled_at);
		assert_int_equal(a->last_seen, b->last_seen);
		assert_int_equal(a->posture_time, b->posture_time);
		assert_int_equal(a->wake_port, b->wake_port);
		if (a->posture == NULL) {
			assert_null(b->posture);
			continue;
		}
		assert_non_null(b->posture);
		assert_same_view(a, b);
		/* compact: no database list, no other sections */
		json_t *av = json_array_get(json_object_get(b->posture, "antivirus"), 0);
		assert_null(json_object_get(av, "databases"));
		assert_true(json_equal(json_object_get(av, "db_version"),
		    json_object_get(json_array_get(json_object_get(a->posture, "antivirus"), 0), "db_version")));
		assert_null(json_object_get(b->posture, "agent"));
		assert_null(json_object_get(b->posture, "errors"));
		assert_int_equal(json_integer_value(json_object_get(json_object_get(b->posture, "software"),
		    "packages_count")), 1500);
	}
	/* the infected ones are still infected */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r.hosts[3].posture, "threats"),
	    "unresolved")), 2);

	/* a second write replaces the first */
	d.time = NOW + 60;
	d.nhosts = 5;
	assert_int_equal(snapshot_write_file(f->path, &d, err, sizeof(err)), 0);
	d.nhosts = 40;
	snapshot_data_free(&r);
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	assert_int_equal(r.time, NOW + 60);
	assert_int_equal(r.nhosts, 5);
	snapshot_data_free(&r);
	snapshot_data_free(&d);
}

static void
write_text(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
expect_unusable(const char *path, const char *needle)
{
	struct snapshot_data r;
	char err[512];
	errno = 0;
	assert_int_equal(snapshot_read_file(path, &r, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
	assert_null(r.hosts);
	assert_null(r.admins);
}

static void
test_damaged(void **state)
{
	struct fx *f = *state;
	struct snapshot_data d, r;
	char err[512];

	/* none */
	errno = 0;
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);

	make_data(&d, 20);
	assert_int_equal(snapshot_write_file(f->path, &d, err, sizeof(err)), 0);
	snapshot_data_free(&d);
	size_t len;
	char *good = file_read(f->path, 1 << 24, &len);
	assert_non_null(good);

	/* cut anywhere: never accepted */
	size_t cuts[] = { 0, 1, len / 3, len / 2, len - 3 };
	for (size_t i = 0; i < ARRAY_LEN(cuts); i++) {
		write_text(f->path, good, cuts[i]);
		expect_unusable(f->path, "JSON");
	}
	/* whole lines cut away (still JSON up to a point, never a snapshot) */
	char *third = strstr(strstr(strstr(good, "\"hosts\":[\n") + 10, "\n") + 1, "\n");
	assert_non_null(third);
	char *patched = malloc(len + 8);
	assert_non_null(patched);
	size_t keep = (size_t)(third - good) - 1;   /* without the comma */
	memcpy(patched, good, keep);
	memcpy(patched + keep, "]}\n", 3);
	write_text(f->path, patched, keep + 3);
	expect_unusable(f->path, "count");

	/* garbage, another document, a wrong version */
	write_text(f->path, "\x01\x02garbage", 9);
	expect_unusable(f->path, "JSON");
	const char *other = "{\"hosts\": []}";
	write_text(f->path, other, strlen(other));
	expect_unusable(f->path, "not a snapshot");
	const char *v2 = "{\"format\":\"custos-snapshot\",\"version\":2,\"time\":1,\"hosts_count\":0,"
	    "\"admins\":[],\"hosts\":[]}";
	write_text(f->path, v2, strlen(v2));
	expect_unusable(f->path, "version");

	/* a damaged entry: a bad hash, a host without a uid */
	char *bad = strdup(good);
	assert_non_null(bad);
	char *h = strstr(bad, "\"pw_hash\":\"");
	assert_non_null(h);
	h[11] = 'X';
	write_text(f->path, bad, len);
	expect_unusable(f->path, "administrator 0");
	free(bad);
	bad = strdup(good);
	h = strstr(bad, "\"uid\":\"");
	assert_non_null(h);
	memcpy(h, "\"xyz\"", 5);
	write_text(f->path, bad, len);
	expect_unusable(f->path, "host 0");
	free(bad);

	/* and the good one still reads */
	write_text(f->path, good, len);
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	assert_int_equal(r.nhosts, 20);
	snapshot_data_free(&r);
	free(patched);
	free(good);
}

/* One administrator and one host, as a hostile or corrupt file may have them. */
static void
write_doc(const char *path, const char *uid, const char *name, long long iterations)
{
	char doc[2048];
	str_fmt(doc, sizeof(doc), "{\"format\":\"custos-snapshot\",\"version\":1,\"time\":1,\"hosts_count\":1,"
	    "\"admins\":[{\"name\":\"admin\",\"pw_hash\":\"%064d\",\"salt\":\"s\",\"iterations\":%lld}],"
	    "\"hosts\":[{\"uid\":\"%s\",\"name\":\"%s\",\"group_id\":0,\"enrolled_at\":1,\"last_seen\":1,"
	    "\"posture_time\":0,\"last_ip\":\"\",\"wake_port\":0,\"posture\":null}]}", 0, iterations, uid, name);
	write_text(path, doc, strlen(doc));
}

/* A file written by someone else: uids must be what enrolment issues,
 * names are cleaned as enrolment cleans them, the PBKDF2 cost and the
 * file size are capped. */
static void
test_hostile(void **state)
{
	struct fx *f = *state;
	struct snapshot_data r;
	char err[512];
	const char *uid = "0123456789abcdef0123456789abcdef";

	write_doc(f->path, uid, "web", 100000);
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	assert_string_equal(r.hosts[0].name, "web");
	snapshot_data_free(&r);

	/* uids: upper case, not hex, too short, too long */
	write_doc(f->path, "0123456789ABCDEF0123456789ABCDEF", "web", 100000);
	expect_unusable(f->path, "host 0");
	write_doc(f->path, "0123456789abcdef0123456789abcdeg", "web", 100000);
	expect_unusable(f->path, "host 0");
	write_doc(f->path, "0123456789abcdef", "web", 100000);
	expect_unusable(f->path, "host 0");
	write_doc(f->path, "0123456789abcdef0123456789abcdef0", "web", 100000);
	expect_unusable(f->path, "host 0");
	write_doc(f->path, "../../0123456789abcdef0123456789", "web", 100000);
	expect_unusable(f->path, "host 0");

	/* names: cleaned (control characters, spaces, slashes, overlong) */
	write_doc(f->path, uid, "a b/c\\u001b[31m<x>", 100000);
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	assert_string_equal(r.hosts[0].name, "a-b-c--31m-x-");
	snapshot_data_free(&r);
	char longname[301];
	memset(longname, 'n', 300);
	longname[300] = '\0';
	write_doc(f->path, uid, longname, 100000);
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	assert_int_equal(strlen(r.hosts[0].name), 63);
	snapshot_data_free(&r);
	write_doc(f->path, uid, "", 100000);
	expect_unusable(f->path, "host 0");

	/* iterations: a login must not cost minutes */
	write_doc(f->path, uid, "web", SNAPSHOT_MAX_ITERATIONS);
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	snapshot_data_free(&r);
	write_doc(f->path, uid, "web", (long long)SNAPSHOT_MAX_ITERATIONS + 1);
	expect_unusable(f->path, "administrator 0");
	write_doc(f->path, uid, "web", 2147483647LL);
	expect_unusable(f->path, "administrator 0");

	/* size: refused before it is read (a sparse file) */
	write_doc(f->path, uid, "web", 100000);
	assert_int_equal(truncate(f->path, (off_t)SNAPSHOT_MAX_BYTES + 1), 0);
	errno = 0;
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), -1);
	assert_int_equal(errno, EFBIG);
	assert_non_null(strstr(err, "more than"));
	assert_null(r.hosts);
	assert_true(SNAPSHOT_MAX_BYTES < ((size_t)1 << 31));
}

static void
test_unwritable(void **state)
{
	struct fx *f = *state;
	struct snapshot_data d;
	char err[512], path[200];
	make_data(&d, 3);
	str_fmt(path, sizeof(path), "%s/no-such-dir/snapshot.json", f->dir);
	assert_int_equal(snapshot_write_file(path, &d, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no-such-dir"));
	snapshot_data_free(&d);
}

static struct host *
mkhost(const char *uid, int64_t seen, json_t *posture, int64_t ptime)
{
	struct host *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	str_copy(h->uid, uid, sizeof(h->uid));
	str_copy(h->name, "web", sizeof(h->name));
	h->last_seen = seen;
	h->posture = posture;
	h->posture_time = ptime;
	return h;
}

static void
test_merge(void **state)
{
	struct status_thresholds t;
	(void)state;
	status_defaults(&t);

	/* nothing happened since the snapshot: the database row wins */
	json_t *full = full_posture(1, 2, true);
	json_t *compact = snapshot_compact_posture(full);
	json_decref(full);
	json_t *rowp = full_posture(1, 0, true);
	struct host *mem = mkhost("a", NOW - 100, compact, NOW - 100);
	struct host *db = mkhost("a", NOW - 50, rowp, NOW - 50);
	mem->from_snapshot = true;
	db->group_id = 4;
	db->policy_version = 3;
	str_copy(db->policy_hash, "abc", sizeof(db->policy_hash));
	db->local_settings = json_pack("{s:{s:i}}", "clamav", "x", 1);
	str_copy(db->last_ip, "192.0.2.7", sizeof(db->last_ip));
	assert_false(snapshot_merge_host(mem, db, &t, NOW));
	assert_false(mem->from_snapshot);
	assert_int_equal(mem->group_id, 4);
	assert_int_equal(mem->policy_version, 3);
	assert_string_equal(mem->policy_hash, "abc");
	assert_non_null(mem->local_settings);
	assert_ptr_equal(mem->posture, rowp);
	assert_int_equal(mem->posture_time, NOW - 50);
	assert_int_equal(mem->last_seen, NOW - 50);
	assert_string_equal(mem->last_ip, "192.0.2.7");
	assert_int_equal(mem->sin.threats, 0);
	host_free(mem);
	host_free(db);

	/* the agent synced while we served from the snapshot (or before the
	 * load, without a snapshot): its report stays */
	json_t *live = full_posture(1, 1, true);
	rowp = full_posture(1, 0, true);
	mem = mkhost("b", NOW - 5, live, NOW - 5);
	db = mkhost("b", NOW - 500, rowp, NOW - 500);
	mem->from_snapshot = true;
	str_copy(mem->last_ip, "198.51.100.1", sizeof(mem->last_ip));
	db->group_id = 2;
	db->placed = true;
	db->policy_applied = 5;     /* the agent's report is not in memory yet */
	assert_true(snapshot_merge_host(mem, db, &t, NOW));
	assert_int_equal(mem->group_id, 2);
	assert_true(mem->placed);
	assert_int_equal(mem->policy_applied, 5);
	assert_ptr_equal(mem->posture, live);
	assert_int_equal(mem->last_seen, NOW - 5);
	assert_string_equal(mem->last_ip, "198.51.100.1");
	assert_int_equal(mem->sin.threats, 1);
	assert_int_equal(mem->st.status, STATUS_CRITICAL);
	host_free(mem);
	host_free(db);
}

/* The write and read time of 100,000 hosts (printed: the figure the issue
 * asks for; CUSTOS_SNAPSHOT_HOSTS changes the count). Under the sanitizers
 * (ten times slower) 10,000 unless asked. */
#ifdef __SANITIZE_ADDRESS__
#define LARGE_HOSTS 10000
#else
#define LARGE_HOSTS 100000
#endif
static void
test_large(void **state)
{
	struct fx *f = *state;
	struct snapshot_data d, r;
	char err[512];
	const char *env = getenv("CUSTOS_SNAPSHOT_HOSTS");
	size_t n = env ? (size_t)strtoul(env, NULL, 10) : LARGE_HOSTS;
	make_data(&d, n);
	int64_t t0 = mono_ms();
	clock_t c0 = clock();
	assert_int_equal(snapshot_write_file(f->path, &d, err, sizeof(err)), 0);
	int64_t t1 = mono_ms();
	clock_t c1 = clock();
	assert_int_equal(snapshot_read_file(f->path, &r, err, sizeof(err)), 0);
	int64_t t2 = mono_ms();
	clock_t c2 = clock();
	assert_int_equal(r.nhosts, n);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	printf("snapshot of %zu hosts: %lld bytes, written in %lld ms (%ld ms CPU), read in %lld ms "
	    "(%ld ms CPU)\n", n, (long long)st.st_size, (long long)(t1 - t0),
	    (long)((c1 - c0) * 1000 / CLOCKS_PER_SEC), (long long)(t2 - t1),
	    (long)((c2 - c1) * 1000 / CLOCKS_PER_SEC));
	snapshot_data_free(&r);
	snapshot_data_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable, setup, teardown),
		cmocka_unit_test(test_merge),
		cmocka_unit_test_setup_teardown(test_large, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
