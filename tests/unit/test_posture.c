/* test_posture.c — unit tests for agent/posture.c and agent/plugin_*.c. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/plugins.h"
#include "agent/posture.h"
#include "log.h"
#include "util.h"

static char tmpdir[64];
static const char *const no_binaries[] = { NULL };

/* ---- helpers ---- */

static void
tpath(char *out, size_t outlen, const char *name)
{
	assert_true(str_fmt(out, outlen, "%s/%s", tmpdir, name) > 0);
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* A 512-byte header: text padded with spaces. */
static void
make_hdr(uint8_t buf[512], const char *text)
{
	size_t n = strlen(text);
	assert_true(n <= 512);
	memset(buf, ' ', 512);
	memcpy(buf, text, n);
}

/* A database file: header then some body bytes. */
static void
write_db(const char *name, const char *text)
{
	uint8_t buf[512 + 64];
	char path[256];

	make_hdr(buf, text);
	memset(buf + 512, 0x1f, 64);
	tpath(path, sizeof(path), name);
	write_file(path, buf, sizeof(buf), 0644);
}

static void
make_dir(const char *name, char *out, size_t outlen)
{
	tpath(out, outlen, name);
	assert_int_equal(mkdir(out, 0700), 0);
}

static bool
errors_contain(json_t *errors, const char *needle)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e) {
		if (strstr(json_string_value(e), needle) != NULL)
			return true;
	}
	return false;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	(void)state;
	log_init("test_posture", "stderr", LOG_LVL_ERROR);
	if (str_fmt(tmpdir, sizeof(tmpdir), "/tmp/custos-posture-XXXXXX") < 0 ||
	    mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- cvd headers ---- */

#define HDR_STIME "ClamAV-VDB:23 Nov 2026 07-36 -0500:27123:2034567:90:" \
	"0123456789abcdef0123456789abcdef:AbCdEf0123+/xyz:raynman:1732300000"
#define HDR_NOSTIME "ClamAV-VDB:23 Nov 2026 07-36 -0500:27123:2034567:90:" \
	"0123456789abcdef0123456789abcdef:AbCdEf0123+/xyz:raynman"

static int64_t
utc(int y, int mon, int d, int h, int m)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d,
	    .tm_hour = h, .tm_min = m };
	return (int64_t)timegm(&tm);
}

static void
test_cvd_valid_stime(void **state)
{
	struct cvd_header h;
	uint8_t buf[512];

	(void)state;
	make_hdr(buf, HDR_STIME);
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), 0);
	assert_int_equal(h.version, 27123);
	assert_int_equal(h.signatures, 2034567);
	assert_int_equal(h.flevel, 90);
	assert_int_equal(h.build_time, 1732300000);
	assert_string_equal(h.builder, "raynman");
}

static void
test_cvd_valid_date(void **state)
{
	struct cvd_header h;
	uint8_t buf[600];

	(void)state;
	/* No stime: the date, 07:36 at -0500 is 12:36 UTC. */
	make_hdr(buf, HDR_NOSTIME);
	memset(buf + 512, 'x', sizeof(buf) - 512);	/* body after the header */
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), 0);
	assert_int_equal(h.version, 27123);
	assert_int_equal(h.build_time, utc(2026, 11, 23, 12, 36));

	/* Invalid stime falls back to the date; one-digit day, east zone. */
	make_hdr(buf, "ClamAV-VDB:5 Jan 2024 00-30 +0100:1:2:3:md5:sig:b:12ab");
	assert_int_equal(cvd_parse_header(buf, 512, &h), 0);
	assert_int_equal(h.build_time, utc(2024, 1, 4, 23, 30));

	/* Leap day of a leap year is fine. */
	make_hdr(buf, "ClamAV-VDB:29 Feb 2024 10-00 +0000:1:2:3:md5:sig:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), 0);
	assert_int_equal(h.build_time, utc(2024, 2, 29, 10, 0));

	/* Limits: UINT32_MAX is accepted. */
	make_hdr(buf, "ClamAV-VDB:01 Jan 2020 00-00 +0000:4294967295:0:0:m:s:b:1");
	assert_int_equal(cvd_parse_header(buf, 512, &h), 0);
	assert_int_equal(h.version, UINT32_MAX);
	assert_int_equal(h.build_time, 1);

	/* A long builder is cut, not overflowed. */
	make_hdr(buf, "ClamAV-VDB:01 Jan 2020 00-00 +0000:1:0:0:m:s:"
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb:7");
	assert_int_equal(cvd_parse_header(buf, 512, &h), 0);
	assert_int_equal(strlen(h.builder), sizeof(h.builder) - 1);
}

static void
test_cvd_truncated(void **state)
{
	struct cvd_header h;
	uint8_t buf[512];

	(void)state;
	make_hdr(buf, HDR_STIME);
	assert_int_equal(cvd_parse_header(buf, 100, &h), -1);
	assert_int_equal(cvd_parse_header(buf, 511, &h), -1);
	assert_int_equal(cvd_parse_header(buf, 0, &h), -1);
	assert_int_equal(cvd_parse_header(NULL, 512, &h), -1);
	assert_int_equal(cvd_parse_header(buf, 512, NULL), -1);

	/* Fields missing: cut after the flevel, and after the dsig. */
	make_hdr(buf, "ClamAV-VDB:23 Nov 2026 07-36 -0500:27123:2034567:90");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB:23 Nov 2026 07-36 -0500:27123:2034567:90:md5:sig");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB:");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	/* Header cut by a NUL byte. */
	make_hdr(buf, HDR_STIME);
	buf[40] = '\0';
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
}

static void
test_cvd_garbage(void **state)
{
	struct cvd_header h;
	uint8_t buf[512];

	(void)state;
	memset(buf, 0, sizeof(buf));
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	/* Right magic, binary after it. */
	memcpy(buf, "ClamAV-VDB:", 11);
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	/* Control characters inside an otherwise good header. */
	make_hdr(buf, HDR_STIME);
	buf[60] = '\n';
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	/* Bad dates without stime. */
	make_hdr(buf, "ClamAV-VDB:30 Feb 2024 10-00 +0000:1:2:3:m:s:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB:29 Feb 2023 10-00 +0000:1:2:3:m:s:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB:23 Foo 2026 07-36 -0500:1:2:3:m:s:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB:23 Nov 2026 25-36 -0500:1:2:3:m:s:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB:23 Nov 2026 07:36 -0500:1:2:3:m:s:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB:23 Nov 2026 07-36:1:2:3:m:s:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
	make_hdr(buf, "ClamAV-VDB::1:2:3:m:s:b");
	assert_int_equal(cvd_parse_header(buf, 512, &h), -1);
}

static void
test_cvd_bad_numbers(void **state)
{
	static const char *const bad[] = {
		"ClamAV-VDB:23 Nov 2026 07-36 -0500:4294967296:1:1:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500:1:99999999999999999999:1:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500:1:1:18446744073709551617:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500:-1:1:1:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500:+1:1:1:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500:12a:1:1:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500: 1:1:1:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500::1:1:m:s:b:1",
		"ClamAV-VDB:23 Nov 2026 07-36 -0500:1:1:0x10:m:s:b:1",
	};
	struct cvd_header h;
	uint8_t buf[512];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		make_hdr(buf, bad[i]);
		assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	}
	/* An overflowing stime is not trusted: the date is used instead. */
	make_hdr(buf, "ClamAV-VDB:23 Nov 2026 07-36 -0500:1:1:1:m:s:b:99999999999999999999");
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), 0);
	assert_int_equal(h.build_time, utc(2026, 11, 23, 12, 36));
}

static void
test_cvd_no_prefix(void **state)
{
	struct cvd_header h;
	uint8_t buf[512];

	(void)state;
	make_hdr(buf, HDR_STIME + strlen("ClamAV-VDB:"));
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	make_hdr(buf, "ClamAV-VDX:23 Nov 2026 07-36 -0500:1:1:1:m:s:b:1");
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	make_hdr(buf, " ClamAV-VDB:23 Nov 2026 07-36 -0500:1:1:1:m:s:b:1");
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
	make_hdr(buf, "clamav-vdb:23 Nov 2026 07-36 -0500:1:1:1:m:s:b:1");
	assert_int_equal(cvd_parse_header(buf, sizeof(buf), &h), -1);
}

static void
test_cvd_read_file(void **state)
{
	struct cvd_header h;
	char path[256], dir[256];
	uint8_t buf[512];

	(void)state;
	write_db("read.cvd", HDR_STIME);
	tpath(path, sizeof(path), "read.cvd");
	memset(&h, 0, sizeof(h));
	assert_int_equal(cvd_read_file(path, &h), 0);
	assert_int_equal(h.version, 27123);
	assert_int_equal(h.build_time, 1732300000);

	/* Shorter than a header. */
	make_hdr(buf, HDR_STIME);
	tpath(path, sizeof(path), "short.cvd");
	write_file(path, buf, 300, 0644);
	assert_int_equal(cvd_read_file(path, &h), -1);
	/* Missing file, a directory, a FIFO (must not block). */
	tpath(path, sizeof(path), "missing.cvd");
	assert_int_equal(cvd_read_file(path, &h), -1);
	make_dir("dir.cvd", dir, sizeof(dir));
	assert_int_equal(cvd_read_file(dir, &h), -1);
	tpath(path, sizeof(path), "fifo.cvd");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(cvd_read_file(path, &h), -1);
}

/* ---- fake clamd ---- */

struct fake_clamd {
	int lfd;
	const char *reply;	/* NULL: accept, then say nothing until closed */
	size_t reply_len;
	char got[16];
	size_t got_len;
};

static void *
fake_clamd_run(void *arg)
{
	struct fake_clamd *f = arg;
	int c = accept(f->lfd, NULL, NULL);
	if (c < 0)
		return NULL;
	/* Read the command, up to its NUL. */
	while (f->got_len < sizeof(f->got)) {
		ssize_t n = read(c, f->got + f->got_len, sizeof(f->got) - f->got_len);
		if (n <= 0)
			break;
		f->got_len += (size_t)n;
		if (memchr(f->got, '\0', f->got_len) != NULL)
			break;
	}
	if (f->reply != NULL) {
		if (write(c, f->reply, f->reply_len) < 0)
			f->got_len = 0;
	} else {
		char b;
		while (read(c, &b, 1) > 0)
			;
	}
	close(c);
	return NULL;
}

static void
fake_clamd_start(struct fake_clamd *f, pthread_t *th, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	unlink(path);
	assert_true(str_copy(sun.sun_path, path, sizeof(sun.sun_path)) < sizeof(sun.sun_path));
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(th, NULL, fake_clamd_run, f), 0);
}

static void
fake_clamd_stop(struct fake_clamd *f, pthread_t th)
{
	assert_int_equal(pthread_join(th, NULL), 0);
	close(f->lfd);
}

static void
test_clamd_ping(void **state)
{
	struct fake_clamd f = { .reply = "PONG", .reply_len = 5 };
	char path[256];
	pthread_t th;

	(void)state;
	tpath(path, sizeof(path), "clamd.sock");
	fake_clamd_start(&f, &th, path);
	assert_true(clamav_ping(path, 1000));
	fake_clamd_stop(&f, th);
	assert_int_equal(f.got_len, 6);
	assert_memory_equal(f.got, "zPING", 6);

	/* Wrong answer. */
	struct fake_clamd g = { .reply = "PANG", .reply_len = 5 };
	fake_clamd_start(&g, &th, path);
	assert_false(clamav_ping(path, 1000));
	fake_clamd_stop(&g, th);

	/* Answer with a longer word that starts with PONG. */
	struct fake_clamd l = { .reply = "PONGX", .reply_len = 6 };
	fake_clamd_start(&l, &th, path);
	assert_false(clamav_ping(path, 1000));
	fake_clamd_stop(&l, th);
}

static void
test_clamd_silent_and_missing(void **state)
{
	struct fake_clamd f = { .reply = NULL };
	char path[256];
	pthread_t th;
	int64_t t0;

	(void)state;
	tpath(path, sizeof(path), "silent.sock");
	fake_clamd_start(&f, &th, path);
	t0 = mono_ms();
	assert_false(clamav_ping(path, 1000));
	int64_t took = mono_ms() - t0;
	assert_true(took >= 900 && took < 1800);
	fake_clamd_stop(&f, th);

	tpath(path, sizeof(path), "nonexistent.sock");
	t0 = mono_ms();
	assert_false(clamav_ping(path, 1000));
	assert_true(mono_ms() - t0 < 200);
	assert_false(clamav_ping("", 1000));
	assert_false(clamav_ping(NULL, 1000));
	/* Longer than sun_path. */
	char longp[300];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_false(clamav_ping(longp, 1000));
}

/* ---- clamonacc ---- */

static void
test_clamonacc(void **state)
{
	char pidfile[256], proc[256], p[300], buf[32];

	(void)state;
	tpath(pidfile, sizeof(pidfile), "clamonacc.pid");
	int n = str_fmt(buf, sizeof(buf), "%d\n", (int)getpid());
	write_file(pidfile, buf, (size_t)n, 0644);
	make_dir("proc", proc, sizeof(proc));
	assert_true(clamav_onacc_running(pidfile, proc));

	write_file(pidfile, "2147483646\n", 11, 0644);
	assert_false(clamav_onacc_running(pidfile, proc));
	write_file(pidfile, "garbage", 7, 0644);
	assert_false(clamav_onacc_running(pidfile, proc));
	write_file(pidfile, "99999999999999999999", 20, 0644);
	assert_false(clamav_onacc_running(pidfile, proc));
	assert_false(clamav_onacc_running("", proc));
	assert_false(clamav_onacc_running(NULL, NULL));

	/* Fake /proc: only numeric entries count. */
	assert_true(str_fmt(p, sizeof(p), "%s/self", proc) > 0);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true(str_fmt(p, sizeof(p), "%s/self/comm", proc) > 0);
	write_file(p, "clamonacc\n", 10, 0644);
	assert_true(str_fmt(p, sizeof(p), "%s/123", proc) > 0);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true(str_fmt(p, sizeof(p), "%s/123/comm", proc) > 0);
	write_file(p, "clamd\n", 6, 0644);
	assert_false(clamav_onacc_running(NULL, proc));
	assert_true(str_fmt(p, sizeof(p), "%s/456", proc) > 0);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true(str_fmt(p, sizeof(p), "%s/456/comm", proc) > 0);
	write_file(p, "clamonacc\n", 10, 0644);
	assert_true(clamav_onacc_running(NULL, proc));
	assert_true(clamav_onacc_running("", proc));
}

/* ---- clamav plug-in ---- */

static void
test_clamav_databases(void **state)
{
	struct posture_config cfg = { 0 };
	char dir[256], proc[256], sock[256];
	json_t *errors = json_array(), *list, *e;
	struct fake_clamd f = { .reply = "PONG", .reply_len = 5 };
	pthread_t th;

	(void)state;
	make_dir("db", dir, sizeof(dir));
	make_dir("emptyproc", proc, sizeof(proc));
	/* main has the higher version, but daily is the one that counts. */
	write_db("db/main.cvd", "ClamAV-VDB:16 Sep 2021 08-32 -0400:99999:6647427:90:"
	    "0123456789abcdef0123456789abcdef:sig:sigmgr:1631795571");
	write_db("db/daily.cld", "ClamAV-VDB:23 Nov 2026 07-36 -0500:27123:2034567:90:"
	    "0123456789abcdef0123456789abcdef:sig:raynman:1795437360");
	write_db("db/bytecode.cvd", "ClamAV-VDB:22 Nov 2026 07-36 -0500:335:86:90:"
	    "0123456789abcdef0123456789abcdef:sig:raynman");
	tpath(sock, sizeof(sock), "db.sock");
	fake_clamd_start(&f, &th, sock);

	cfg.clamav_enabled = true;
	cfg.clamav_db_dir = dir;
	cfg.clamd_socket = sock;
	cfg.clamonacc_pidfile = "";
	list = clamav_collect(&cfg, no_binaries, proc, errors);
	fake_clamd_stop(&f, th);
	assert_non_null(list);
	assert_int_equal(json_array_size(list), 1);
	e = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(e, "name")), "clamav");
	assert_true(json_is_true(json_object_get(e, "installed")));
	assert_int_equal(json_integer_value(json_object_get(e, "db_version")), 27123);
	assert_int_equal(json_integer_value(json_object_get(e, "db_time")), 1795437360);
	assert_true(json_is_true(json_object_get(e, "running")));
	assert_true(json_is_false(json_object_get(e, "rtp")));
	json_t *dbs = json_object_get(e, "databases");
	assert_int_equal(json_array_size(dbs), 3);
	json_t *daily = json_array_get(dbs, 1);
	assert_string_equal(json_string_value(json_object_get(daily, "file")), "daily.cld");
	assert_int_equal(json_integer_value(json_object_get(daily, "signatures")), 2034567);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(dbs, 2), "time")),
	    utc(2026, 11, 22, 12, 36));
	assert_int_equal(json_array_size(errors), 0);
	json_decref(list);

	/* Without daily: the highest version; a broken file is an error, not fatal. */
	char p[300];
	assert_true(str_fmt(p, sizeof(p), "%s/daily.cld", dir) > 0);
	assert_int_equal(unlink(p), 0);
	write_db("db/daily.cvd", "not a header");
	cfg.clamd_socket = "";
	list = clamav_collect(&cfg, no_binaries, proc, errors);
	e = json_array_get(list, 0);
	assert_int_equal(json_integer_value(json_object_get(e, "db_version")), 99999);
	assert_int_equal(json_integer_value(json_object_get(e, "db_time")),
	    utc(2026, 11, 22, 12, 36));
	assert_int_equal(json_array_size(json_object_get(e, "databases")), 2);
	assert_true(json_is_false(json_object_get(e, "running")));
	assert_true(errors_contain(errors, "daily.cvd has no valid database header"));
	json_decref(list);
	json_decref(errors);
}

static void
test_clamav_not_installed(void **state)
{
	struct posture_config cfg = { 0 };
	char dir[256], proc[256], bin[256], missing[256];
	json_t *errors = json_array(), *list, *e;

	(void)state;
	make_dir("emptydb", dir, sizeof(dir));
	tpath(proc, sizeof(proc), "emptyproc");
	cfg.clamav_db_dir = dir;
	cfg.clamd_socket = "";
	list = clamav_collect(&cfg, no_binaries, proc, errors);
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	tpath(missing, sizeof(missing), "no-such-db");
	cfg.clamav_db_dir = missing;
	const char *const absent[] = { "/nonexistent/clamd", NULL };
	list = clamav_collect(&cfg, absent, proc, errors);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	assert_int_equal(json_array_size(errors), 0);

	/* A non-signature file does not count as a database... */
	write_db("emptydb/readme.txt", "hello");
	cfg.clamav_db_dir = dir;
	list = clamav_collect(&cfg, no_binaries, proc, errors);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	/* ...a lone signature file does. */
	write_db("emptydb/test.hdb", "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test");
	list = clamav_collect(&cfg, no_binaries, proc, errors);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);

	/* Binary present, no database: installed with null versions. */
	tpath(bin, sizeof(bin), "clamd");
	write_file(bin, "#!/bin/sh\n", 10, 0755);
	const char *const bins[] = { "/nonexistent/clamd", bin, NULL };
	cfg.clamav_db_dir = missing;
	list = clamav_collect(&cfg, bins, proc, errors);
	assert_int_equal(json_array_size(list), 1);
	e = json_array_get(list, 0);
	assert_true(json_is_true(json_object_get(e, "installed")));
	assert_true(json_is_null(json_object_get(e, "db_version")));
	assert_true(json_is_null(json_object_get(e, "db_time")));
	assert_int_equal(json_array_size(json_object_get(e, "databases")), 0);
	assert_true(json_is_false(json_object_get(e, "running")));
	json_decref(list);
	assert_int_equal(json_array_size(errors), 0);
	json_decref(errors);
}

/* ---- dpkg ---- */

static const char dpkg_text[] =
	"Package: clamav\n"
	"Status: install ok installed\n"
	"Priority: optional\n"
	"Version: 1.0.7+dfsg-1~deb12u1\n"
	"Description: anti-virus utility for Unix - command-line interface\n"
	" Package: not-a-package\n"
	" Version: 9\n"
	" .\n"
	" More text.\n"
	"\n"
	"Package: oldpkg\n"
	"Status: deinstall ok config-files\n"
	"Version: 0.1\n"
	"\n"
	"\n"
	"Package: halfway\n"
	"Status: install ok half-installed\n"
	"Version: 2.0\n"
	"\n"
	"Package: removing\n"
	"Status: deinstall ok not-installed\n"
	"\n"
	"package: openssl\r\n"
	"version: 3.0.15-1~deb12u1\r\n"
	"STATUS: install ok installed\r\n"
	"\r\n"
	"Package: noversion\n"
	"Status: install ok installed\n"
	" \t\n"
	"Package: held\n"
	"Version: 2:1.2-3\n"
	"Status: hold ok installed\n"
	"Depends: libc6 (>= 2.34), libssl3\n"
	"\n"
	"Package: libbad\n"
	"Version: 1.\xff\n"
	"Status: install ok installed";	/* no final newline */

static void
check_pkg(json_t *list, size_t i, const char *name, const char *version)
{
	json_t *p = json_array_get(list, i);
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "name")), name);
	assert_string_equal(json_string_value(json_object_get(p, "version")), version);
}

static void
test_dpkg_parse(void **state)
{
	json_t *list;

	(void)state;
	list = dpkg_parse_status(dpkg_text, 100);
	assert_non_null(list);
	assert_int_equal(json_array_size(list), 4);
	check_pkg(list, 0, "clamav", "1.0.7+dfsg-1~deb12u1");
	check_pkg(list, 1, "openssl", "3.0.15-1~deb12u1");
	check_pkg(list, 2, "held", "2:1.2-3");
	check_pkg(list, 3, "libbad", "1.?");
	json_decref(list);

	list = dpkg_parse_status(dpkg_text, 2);
	assert_int_equal(json_array_size(list), 2);
	check_pkg(list, 1, "openssl", "3.0.15-1~deb12u1");
	json_decref(list);

	list = dpkg_parse_status(dpkg_text, 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	list = dpkg_parse_status("", 10);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	list = dpkg_parse_status(NULL, 10);
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	list = dpkg_parse_status("\n\n\n:\nPackage:\nVersion:\nStatus:\n\n", 10);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
}

static void
test_software_plugin(void **state)
{
	struct posture_config cfg = { 0 };
	char path[256];
	json_t *errors = json_array(), *list;

	(void)state;
	tpath(path, sizeof(path), "status");
	write_file(path, dpkg_text, strlen(dpkg_text), 0644);
	cfg.dpkg_status = path;
	cfg.software_max = 4;
	list = plugin_software(&cfg, errors);
	assert_int_equal(json_array_size(list), 4);
	assert_int_equal(json_array_size(errors), 0);
	json_decref(list);

	cfg.software_max = 3;
	list = plugin_software(&cfg, errors);
	assert_int_equal(json_array_size(list), 3);
	assert_true(errors_contain(errors, "only the first 3"));
	json_decref(list);

	tpath(path, sizeof(path), "no-status");
	list = plugin_software(&cfg, errors);
	assert_null(list);
	assert_true(errors_contain(errors, "software: cannot read"));
	json_decref(errors);
}

/* ---- command ---- */

static json_t *
run_script(const char *name, const char *body, int timeout, json_t *errors)
{
	struct posture_config cfg = { 0 };
	char path[256], text[1024];

	tpath(path, sizeof(path), name);
	int n = str_fmt(text, sizeof(text), "#!/bin/sh\n%s\n", body);
	assert_true(n > 0);
	write_file(path, text, (size_t)n, 0755);
	cfg.command_enabled = true;
	cfg.command_path = path;
	cfg.command_timeout = timeout;
	return plugin_command(&cfg, errors);
}

/* No child of ours is left, running or zombie. */
static void
assert_no_children(void)
{
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void
test_command_ok(void **state)
{
	json_t *errors = json_array(), *obj;

	(void)state;
	obj = run_script("ok.sh", "echo stderr noise >&2; printf '{\"a\": 1, \"b\": \"x\"}\\n'",
	    5, errors);
	assert_non_null(obj);
	assert_int_equal(json_integer_value(json_object_get(obj, "a")), 1);
	assert_string_equal(json_string_value(json_object_get(obj, "b")), "x");
	assert_int_equal(json_array_size(errors), 0);
	json_decref(obj);

	/* A descriptor the agent leaked (no O_CLOEXEC) is closed in the program. */
	assert_int_equal(dup2(2, 77), 77);
	obj = run_script("fds.sh", "if [ -e /proc/$$/fd/77 ]; then echo '{\"leak\": true}'; "
	    "else echo '{\"leak\": false}'; fi", 5, errors);
	close(77);
	assert_non_null(obj);
	assert_true(json_is_false(json_object_get(obj, "leak")));
	json_decref(obj);
	assert_no_children();
	json_decref(errors);
}

/* pid has exited (gone, or a zombie waiting for init) within a second. */
static bool
grandchild_gone(pid_t pid)
{
	char path[64], stat[256];

	assert_true(pid > 0);
	assert_true(str_fmt(path, sizeof(path), "/proc/%d/stat", (int)pid) > 0);
	for (int i = 0; i < 100; i++) {
		FILE *fp = fopen(path, "r");
		if (fp == NULL)
			return true;
		char *ok = fgets(stat, sizeof(stat), fp);
		fclose(fp);
		char *rp = ok != NULL ? strrchr(stat, ')') : NULL;
		if (rp != NULL && rp[1] == ' ' && rp[2] == 'Z')
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static void
test_command_timeout(void **state)
{
	json_t *errors = json_array();
	int64_t t0 = mono_ms();

	(void)state;
	assert_null(run_script("slow.sh", "sleep 5; echo '{}'", 1, errors));
	int64_t took = mono_ms() - t0;
	assert_true(took >= 900 && took < 2500);
	assert_true(errors_contain(errors, "slow.sh timed out after 1 s"));
	assert_no_children();

	/* The program's own children are killed with it. */
	char pidfile[256], script[512], buf[32];
	tpath(pidfile, sizeof(pidfile), "grandchild.pid");
	assert_true(str_fmt(script, sizeof(script), "sleep 5 & echo $! > %s; wait", pidfile) > 0);
	assert_null(run_script("family.sh", script, 1, errors));
	assert_true(errors_contain(errors, "family.sh timed out after 1 s"));
	FILE *fp = fopen(pidfile, "r");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_true(grandchild_gone((pid_t)atoi(buf)));
	assert_no_children();

	/* Closing stdout early does not escape the timeout. */
	t0 = mono_ms();
	assert_null(run_script("closer.sh", "exec >&-; sleep 5", 1, errors));
	assert_true(mono_ms() - t0 < 2500);
	assert_true(errors_contain(errors, "closer.sh timed out after 1 s"));
	assert_no_children();
	json_decref(errors);
}

static void
test_command_failures(void **state)
{
	struct posture_config cfg = { 0 };
	json_t *errors = json_array();
	char path[256];

	(void)state;
	assert_null(run_script("text.sh", "echo hello", 5, errors));
	assert_true(errors_contain(errors, "text.sh printed invalid JSON"));
	assert_null(run_script("array.sh", "echo '[1,2]'", 5, errors));
	assert_true(errors_contain(errors, "array.sh printed JSON that is not an object"));
	assert_null(run_script("empty.sh", "true", 5, errors));
	assert_true(errors_contain(errors, "empty.sh printed invalid JSON"));
	assert_null(run_script("exit3.sh", "echo '{}'; exit 3", 5, errors));
	assert_true(errors_contain(errors, "exit3.sh exited with status 3"));
	assert_null(run_script("killed.sh", "kill -9 $$", 5, errors));
	assert_true(errors_contain(errors, "killed.sh killed by signal 9"));
	assert_null(run_script("big.sh", "head -c 2000000 /dev/zero", 5, errors));
	assert_true(errors_contain(errors, "big.sh printed more than"));

	tpath(path, sizeof(path), "noexec.sh");
	static const char sh[] = "#!/bin/sh\necho '{}'\n";
	write_file(path, sh, strlen(sh), 0644);
	cfg.command_path = path;
	cfg.command_timeout = 5;
	assert_null(plugin_command(&cfg, errors));
	assert_true(errors_contain(errors, "noexec.sh cannot be run"));
	cfg.command_path = "relative.sh";
	assert_null(plugin_command(&cfg, errors));
	assert_true(errors_contain(errors, "\"relative.sh\" is not an absolute path"));
	cfg.command_path = NULL;
	assert_null(plugin_command(&cfg, errors));
	assert_no_children();
	json_decref(errors);
}

/* ---- the whole document ---- */

static void
test_posture_string(void **state)
{
	json_t *s;

	(void)state;
	s = plugin_string("ok \xc3\xa9", 5);
	assert_string_equal(json_string_value(s), "ok \xc3\xa9");
	json_decref(s);
	s = plugin_string("a\xff" "b\xc3", 4);
	assert_string_equal(json_string_value(s), "a?b?");
	json_decref(s);
	s = plugin_string("a\0b\xed\xa0\x80\xc0\xaf", 8);	/* NUL, surrogate, overlong */
	assert_string_equal(json_string_value(s), "a?b?????");
	json_decref(s);
}

static void
test_posture_collect(void **state)
{
	struct posture_config cfg = { 0 };
	char osrel[256], flag[256], db[256], status[256], script[256];
	json_t *doc, *sys, *os;

	(void)state;
	tpath(osrel, sizeof(osrel), "os-release");
	static const char osr[] = "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
	    "NAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nID=debian\nHOME_URL=\"x\\\"y\"\n";
	write_file(osrel, osr, strlen(osr), 0644);
	tpath(flag, sizeof(flag), "reboot-required");
	write_file(flag, "", 0, 0644);
	make_dir("collectdb", db, sizeof(db));
	write_db("collectdb/daily.cvd", HDR_STIME);
	tpath(status, sizeof(status), "collect-status");
	write_file(status, dpkg_text, strlen(dpkg_text), 0644);
	tpath(script, sizeof(script), "collect.sh");
	static const char sh[] = "#!/bin/sh\necho '{\"site\":\"lab\"}'\n";
	write_file(script, sh, strlen(sh), 0755);

	cfg.hostname = "test-host";
	cfg.os_release = osrel;
	cfg.reboot_flag = flag;
	cfg.clamav_enabled = true;
	cfg.clamav_db_dir = db;
	cfg.clamd_socket = "";
	cfg.clamonacc_pidfile = "";
	cfg.software_enabled = true;
	cfg.dpkg_status = status;
	cfg.software_max = 1000;
	cfg.command_enabled = true;
	cfg.command_path = script;
	cfg.command_timeout = 5;
	cfg.threats_unresolved = 7;

	doc = posture_collect(&cfg);
	assert_non_null(doc);
	sys = json_object_get(doc, "system");
	assert_true(json_is_object(sys));
	assert_string_equal(json_string_value(json_object_get(sys, "hostname")), "test-host");
	os = json_object_get(sys, "os");
	assert_string_equal(json_string_value(json_object_get(os, "id")), "debian");
	assert_string_equal(json_string_value(json_object_get(os, "version_id")), "12");
	assert_string_equal(json_string_value(json_object_get(os, "pretty_name")),
	    "Debian GNU/Linux 12 (bookworm)");
	assert_true(strlen(json_string_value(json_object_get(sys, "kernel"))) > 0);
	assert_true(strlen(json_string_value(json_object_get(sys, "arch"))) > 0);
	assert_true(json_integer_value(json_object_get(sys, "uptime")) > 0);
	assert_true(json_is_true(json_object_get(sys, "reboot_required")));
	json_t *ifs = json_object_get(sys, "interfaces"), *i;
	size_t k;
	assert_true(json_is_array(ifs));
	json_array_foreach(ifs, k, i) {
		assert_string_not_equal(json_string_value(json_object_get(i, "name")), "lo");
		assert_true(json_is_array(json_object_get(i, "ipv4")));
		assert_true(json_is_array(json_object_get(i, "ipv6")));
	}

	json_t *av = json_object_get(doc, "antivirus");
	assert_int_equal(json_array_size(av), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(av, 0),
	    "db_version")), 27123);
	assert_int_equal(json_array_size(json_object_get(doc, "software")), 4);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "threats"),
	    "unresolved")), 7);
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "command"),
	    "site")), "lab");
	assert_int_equal(json_array_size(json_object_get(doc, "errors")), 0);
	json_decref(doc);

	/* Plug-ins off, os-release missing: still a document, with the error. */
	char nothere[256];
	tpath(nothere, sizeof(nothere), "nothere");
	cfg.clamav_enabled = cfg.software_enabled = cfg.command_enabled = false;
	cfg.os_release = nothere;
	cfg.reboot_flag = nothere;
	cfg.hostname = NULL;
	doc = posture_collect(&cfg);
	assert_non_null(doc);
	sys = json_object_get(doc, "system");
	assert_null(json_object_get(sys, "os"));
	assert_true(json_is_false(json_object_get(sys, "reboot_required")));
	assert_true(strlen(json_string_value(json_object_get(sys, "hostname"))) > 0);
	assert_null(json_object_get(doc, "antivirus"));
	assert_null(json_object_get(doc, "software"));
	assert_null(json_object_get(doc, "command"));
	assert_non_null(json_object_get(doc, "threats"));
	assert_true(errors_contain(json_object_get(doc, "errors"), "system: cannot read"));
	json_decref(doc);

	assert_null(posture_collect(NULL));
}

/* Plug-in text becomes valid JSON text: bad bytes and NULs turn into '?',
 * well-formed sequences stay. */
static void
test_plugin_string_utf8(void **state)
{
	(void)state;
	static const struct { const char *in; size_t len; const char *out; } cases[] = {
		{ "plain", 5, "plain" },
		{ "caf\xc3\xa9", 5, "caf\xc3\xa9" },                 /* é */
		{ "\xe2\x82\xac" "1", 4, "\xe2\x82\xac" "1" },         /* € */
		{ "\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80" },    /* U+1F600 */
		{ "a\xff" "b", 3, "a?b" },                              /* not a lead byte */
		{ "\xc0\xaf", 2, "??" },                             /* overlong '/' */
		{ "\xed\xa0\x80", 3, "???" },                        /* surrogate */
		{ "\xe2\x82", 2, "??" },                             /* cut short */
		{ "a\0b", 3, "a?b" },                                /* NUL */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		json_t *j = plugin_string(cases[i].in, cases[i].len);
		assert_non_null(j);
		assert_string_equal(json_string_value(j), cases[i].out);
		json_decref(j);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plugin_string_utf8),
		cmocka_unit_test(test_cvd_valid_stime),
		cmocka_unit_test(test_cvd_valid_date),
		cmocka_unit_test(test_cvd_truncated),
		cmocka_unit_test(test_cvd_garbage),
		cmocka_unit_test(test_cvd_bad_numbers),
		cmocka_unit_test(test_cvd_no_prefix),
		cmocka_unit_test(test_cvd_read_file),
		cmocka_unit_test(test_clamd_ping),
		cmocka_unit_test(test_clamd_silent_and_missing),
		cmocka_unit_test(test_clamonacc),
		cmocka_unit_test(test_clamav_databases),
		cmocka_unit_test(test_clamav_not_installed),
		cmocka_unit_test(test_dpkg_parse),
		cmocka_unit_test(test_software_plugin),
		cmocka_unit_test(test_command_ok),
		cmocka_unit_test(test_command_timeout),
		cmocka_unit_test(test_command_failures),
		cmocka_unit_test(test_posture_string),
		cmocka_unit_test(test_posture_collect),
	};

	return cmocka_run_group_tests_name("posture", tests, setup, teardown);
}
