/* test_conf.c — unit tests for lib/conf.c. */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "util.h"

static char tmpdir[PATH_MAX];	/* realpath of a fresh mkdtemp dir */
static char files[32][PATH_MAX];
static size_t n_files;

static const struct conf_key schema[] = {
	{ "listen.port", CONF_INT, "8443", 1, 65535, false, "TCP port" },
	{ "listen.address", CONF_STRING, "0.0.0.0", 0, 0, false, "bind address" },
	{ "listen.tls", CONF_BOOL, "true", 0, 0, false, "serve TLS" },
	{ "db.name", CONF_STRING, NULL, 0, 0, true, "database name" },
	{ "db.pool", CONF_INT, NULL, 0, 0, false, "connections (unbounded)" },
	{ "paths.state", CONF_PATH, "state", 0, 0, false, "state directory" },
	{ "paths.ca", CONF_PATH, NULL, 0, 0, false, "CA file" },
	{ "enroll.tokens", CONF_LIST, NULL, 0, 0, false, "enrollment tokens" },
	{ "enroll.tokens.[].name", CONF_STRING, NULL, 0, 0, true, "token name" },
	{ "enroll.tokens.[].ttl", CONF_INT, "3600", 60, 86400, false, "lifetime (s)" },
	{ "enroll.tokens.[].once", CONF_BOOL, "false", 0, 0, false, "single use" },
	{ "enroll.tokens.[].dir", CONF_PATH, NULL, 0, 0, false, "token dir" },
	{ NULL, 0, NULL, 0, 0, false, NULL },
};

/* ---- helpers ---- */

/* Writes text to a new mkstemp file in tmpdir; returns its path. */
static const char *
write_conf(const char *text)
{
	char *p;
	int fd;
	size_t len = strlen(text);

	assert_true(n_files < ARRAY_LEN(files));
	p = files[n_files++];
	assert_true(str_fmt(p, PATH_MAX, "%s/confXXXXXX", tmpdir) > 0);
	fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return p;
}

static int
count_lines(const char *s)
{
	int n = s[0] != '\0';
	for (; *s != '\0'; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* Loads text and expects failure; returns the error text. */
static void
load_fail(const char *text, const char *const *ov, size_t nov, char *err,
    size_t errlen, const char **filep)
{
	struct conf *c = (struct conf *)0x1;
	const char *f = write_conf(text);

	assert_int_equal(conf_load(&c, f, schema, ov, nov, err, errlen), -1);
	assert_ptr_equal(c, (struct conf *)0x1); /* *out untouched */
	if (filep != NULL)
		*filep = f;
}

static void
assert_has(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("expected \"%s\" in:\n%s", needle, hay);
}

static void
assert_has_fmt(const char *hay, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
assert_has_fmt(const char *hay, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	assert_true(r > 0 && (size_t)r < sizeof(buf));
	assert_has(hay, buf);
}

/* ---- tests ---- */

static void
test_valid_all_types(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[1024], want[PATH_MAX + 64];
	const char *f = write_conf(
	    "listen: { port = 9000; address = \"127.0.0.1\"; tls = false; };\n"
	    "db = { name = \"custos\"; pool = 5000000000L; };\n"
	    "paths = { state = \"/var/lib/custos\"; ca = \"\"; };\n"
	    "enroll = {\n"
	    "  tokens = (\n"
	    "    { name = \"lab\"; ttl = 120; once = true; },\n"
	    "    { name = \"office\"; }\n"
	    "  );\n"
	    "};\n");

	assert_int_equal(conf_load(&c, f, schema, NULL, 0, err, sizeof(err)), 0);
	assert_non_null(c);
	assert_int_equal(conf_int(c, "listen.port"), 9000);
	assert_string_equal(conf_str(c, "listen.address"), "127.0.0.1");
	assert_false(conf_bool(c, "listen.tls"));
	assert_string_equal(conf_str(c, "db.name"), "custos");
	assert_true(conf_int(c, "db.pool") == 5000000000LL);
	assert_string_equal(conf_str(c, "paths.state"), "/var/lib/custos");
	assert_string_equal(conf_str(c, "paths.ca"), "");
	assert_string_equal(conf_file(c), f);

	assert_int_equal(conf_list_len(c, "enroll.tokens"), 2);
	assert_string_equal(conf_list_str(c, "enroll.tokens", 0, "name"), "lab");
	assert_int_equal(conf_list_int(c, "enroll.tokens", 0, "ttl"), 120);
	assert_true(conf_list_bool(c, "enroll.tokens", 0, "once"));
	assert_string_equal(conf_list_str(c, "enroll.tokens", 1, "name"), "office");
	/* missing optional members take the schema default */
	assert_int_equal(conf_list_int(c, "enroll.tokens", 1, "ttl"), 3600);
	assert_false(conf_list_bool(c, "enroll.tokens", 1, "once"));
	assert_string_equal(conf_list_str(c, "enroll.tokens", 1, "dir"), "");
	assert_true(str_fmt(want, sizeof(want), "%s:7", f) > 0);
	assert_string_equal(conf_list_where(c, "enroll.tokens", 1), want);
	conf_free(c);
}

static void
test_defaults(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[512], cwd[PATH_MAX], want[PATH_MAX + 16];
	const char *ov[] = { "db.name=x" };

	/* no file at all: defaults + overrides */
	assert_int_equal(conf_load(&c, NULL, schema, ov, 1, err, sizeof(err)), 0);
	assert_int_equal(conf_int(c, "listen.port"), 8443);
	assert_string_equal(conf_str(c, "listen.address"), "0.0.0.0");
	assert_true(conf_bool(c, "listen.tls"));
	assert_int_equal(conf_int(c, "db.pool"), 0);
	assert_string_equal(conf_str(c, "paths.ca"), "");
	assert_int_equal(conf_list_len(c, "enroll.tokens"), 0);
	assert_string_equal(conf_file(c), "");
	/* a relative default path resolves against the cwd */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_true(str_fmt(want, sizeof(want), "%s/state", cwd) > 0);
	assert_string_equal(conf_str(c, "paths.state"), want);
	conf_free(c);

	/* a file with only the required key */
	const char *f = write_conf("db: { name = \"d\"; };\n");
	assert_int_equal(conf_load(&c, f, schema, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(conf_int(c, "listen.port"), 8443);
	assert_string_equal(conf_str(c, "db.name"), "d");
	conf_free(c);
}

static void
test_unknown_key(void **state)
{
	(void)state;
	char err[1024];
	const char *f;

	load_fail("db = { name = \"x\"; };\n"
	    "listen = {\n"
	    "  prot = 80;\n"
	    "};\n"
	    "bogus = 1;\n"
	    "lisen = { port = 1; };\n",
	    NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:3: unknown setting 'listen.prot' "
	    "(did you mean 'listen.port'?)", f);
	assert_has_fmt(err, "%s:5: unknown setting 'bogus'", f);
	assert_null(strstr(err, "'bogus' (did you mean"));
	assert_has_fmt(err, "%s:6: unknown setting 'lisen' (did you mean 'listen'?)", f);
	assert_int_equal(count_lines(err), 3);
}

static void
test_wrong_type(void **state)
{
	(void)state;
	char err[1024];
	const char *f;

	load_fail("db = { name = 3; };\n"
	    "listen = { port = \"80\"; tls = 1; };\n"
	    "paths = 5;\n",
	    NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:1: 'db.name' must be a string (got an integer)", f);
	assert_has_fmt(err, "%s:2: 'listen.port' must be an integer (got a string)", f);
	assert_has_fmt(err, "%s:2: 'listen.tls' must be a boolean (got an integer)", f);
	assert_has_fmt(err, "%s:3: 'paths' must be a group", f);
	/* a wrongly typed required key is not also reported as missing */
	assert_null(strstr(err, "missing"));
	assert_int_equal(count_lines(err), 4);
}

static void
test_out_of_range(void **state)
{
	(void)state;
	char err[512];
	const char *f;

	load_fail("db = { name = \"x\"; };\nlisten = { port = 70000; };\n",
	    NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:2: 'listen.port' must be between 1 and 65535 (got 70000)", f);
	load_fail("db = { name = \"x\"; };\nlisten = { port = 0; };\n",
	    NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:2: 'listen.port' must be between 1 and 65535 (got 0)", f);
}

static void
test_missing_required(void **state)
{
	(void)state;
	char err[512];
	const char *f;
	struct conf *c = NULL;

	load_fail("listen = { port = 80; };\n", NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s: missing required setting 'db.name'", f);
	assert_int_equal(count_lines(err), 1);

	/* without a file the message says how to give it */
	assert_int_equal(conf_load(&c, NULL, schema, NULL, 0, err, sizeof(err)), -1);
	assert_null(c);
	assert_has(err, "missing required setting 'db.name'");
	assert_has(err, "-o db.name=");
}

static void
test_syntax_error(void **state)
{
	(void)state;
	char err[512];
	const char *f;

	load_fail("db = { name = \"x\"; };\n\nlisten = { port = ; };\n",
	    NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:3: ", f);
	assert_has(err, "syntax error");
	assert_int_equal(count_lines(err), 1);
}

static void
test_unreadable_file(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[512], path[PATH_MAX];

	assert_true(str_fmt(path, sizeof(path), "%s/does-not-exist.conf", tmpdir) > 0);
	assert_int_equal(conf_load(&c, path, schema, NULL, 0, err, sizeof(err)), -1);
	assert_null(c);
	assert_has(err, path);
	assert_has(err, "No such file");
}

static void
test_overrides(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[1024];
	const char *f = write_conf("db = { name = \"file\"; };\n"
	    "listen = { port = 80; tls = true; };\n");
	const char *ov[] = { "listen.port=81", "listen.tls=no", "db.name=over=ride",
	    "listen.address=", "db.pool=-7" };

	assert_int_equal(conf_load(&c, f, schema, ov, ARRAY_LEN(ov), err,
	    sizeof(err)), 0);
	assert_int_equal(conf_int(c, "listen.port"), 81);
	assert_false(conf_bool(c, "listen.tls"));
	assert_string_equal(conf_str(c, "db.name"), "over=ride");
	assert_string_equal(conf_str(c, "listen.address"), "");
	assert_int_equal(conf_int(c, "db.pool"), -7);
	/* where each value came from, for messages about it */
	char where[PATH_MAX + 8];
	assert_string_equal(conf_where(c, "listen.port"), "-o listen.port");
	str_fmt(where, sizeof(where), "%s:1", f);
	conf_free(c);
	assert_int_equal(conf_load(&c, f, schema, NULL, 0, err, sizeof(err)), 0);
	assert_string_equal(conf_where(c, "db.name"), where);
	str_fmt(where, sizeof(where), "%s:2", f);
	assert_string_equal(conf_where(c, "listen.port"), where);
	assert_string_equal(conf_where(c, "listen.address"), f);    /* a default */
	conf_free(c);

	/* every boolean spelling */
	const char *yes[] = { "true", "yes", "1", "TRUE" };
	const char *no[] = { "false", "no", "0" };
	for (size_t i = 0; i < ARRAY_LEN(yes) + ARRAY_LEN(no); i++) {
		char o[64];
		bool want = i < ARRAY_LEN(yes);
		const char *v = want ? yes[i] : no[i - ARRAY_LEN(yes)];
		const char *one[] = { o };
		assert_true(str_fmt(o, sizeof(o), "listen.tls=%s", v) > 0);
		assert_int_equal(conf_load(&c, f, schema, one, 1, err, sizeof(err)), 0);
		assert_int_equal(conf_bool(c, "listen.tls"), want);
		conf_free(c);
	}
}

static void
test_bad_overrides(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[2048];
	const char *f = write_conf("db = { name = \"file\"; };\n");
	const char *ov[] = { "listen.port=abc", "listen.port=70000", "listen.prot=1",
	    "listen.tls=maybe", "enroll.tokens=x", "enroll.tokens.[].name=y",
	    "noequals", "listen.port=12x", "listen.port=" };

	assert_int_equal(conf_load(&c, f, schema, ov, ARRAY_LEN(ov), err,
	    sizeof(err)), -1);
	assert_null(c);
	assert_has(err, "-o listen.port=abc: 'listen.port' must be an integer (got 'abc')");
	assert_has(err, "-o listen.port=70000: 'listen.port' must be between 1 and 65535 (got 70000)");
	assert_has(err, "-o listen.prot=1: unknown setting 'listen.prot' (did you mean 'listen.port'?)");
	assert_has(err, "-o listen.tls=maybe: 'listen.tls' must be a boolean");
	assert_has(err, "-o enroll.tokens=x: 'enroll.tokens' is part of a list");
	assert_has(err, "-o enroll.tokens.[].name=y: ");
	assert_has(err, "-o noequals: expected section.key=value");
	assert_has(err, "-o listen.port=12x: ");
	assert_has(err, "-o listen.port=: ");
	assert_int_equal(count_lines(err), (int)ARRAY_LEN(ov));
}

static void
test_list_missing_member(void **state)
{
	(void)state;
	char err[1024];
	const char *f;

	load_fail("db = { name = \"x\"; };\n"
	    "enroll = { tokens = (\n"
	    "  { name = \"a\"; },\n"
	    "  { ttl = 300; },\n"
	    "  { name = \"c\"; ttl = 5; nmae = \"x\"; },\n"
	    "  7\n"
	    "); };\n",
	    NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:4: missing required setting 'enroll.tokens.[].name'", f);
	assert_has_fmt(err, "%s:5: 'enroll.tokens.[].ttl' must be between 60 and 86400 (got 5)", f);
	assert_has_fmt(err, "%s:5: unknown setting 'enroll.tokens.[].nmae' "
	    "(did you mean 'enroll.tokens.[].name'?)", f);
	assert_has_fmt(err, "%s:6: elements of 'enroll.tokens' must be groups", f);
	assert_int_equal(count_lines(err), 4);

	load_fail("db = { name = \"x\"; };\nenroll = { tokens = 3; };\n",
	    NULL, 0, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:2: 'enroll.tokens' must be a list", f);
}

static void
test_path_resolution(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[512], want[PATH_MAX + 32], cwd[PATH_MAX];
	const char *f = write_conf("db = { name = \"x\"; };\n"
	    "paths = { state = \"./var/state\"; ca = \"ca.pem\"; };\n"
	    "enroll = { tokens = ( { name = \"a\"; dir = \"tok\"; },"
	    " { name = \"b\"; dir = \"/abs/tok\"; } ); };\n");

	assert_int_equal(conf_load(&c, f, schema, NULL, 0, err, sizeof(err)), 0);
	assert_true(str_fmt(want, sizeof(want), "%s/var/state", tmpdir) > 0);
	assert_string_equal(conf_str(c, "paths.state"), want);
	assert_true(str_fmt(want, sizeof(want), "%s/ca.pem", tmpdir) > 0);
	assert_string_equal(conf_str(c, "paths.ca"), want);
	assert_true(str_fmt(want, sizeof(want), "%s/tok", tmpdir) > 0);
	assert_string_equal(conf_list_str(c, "enroll.tokens", 0, "dir"), want);
	assert_string_equal(conf_list_str(c, "enroll.tokens", 1, "dir"), "/abs/tok");
	conf_free(c);

	/* same file named relative to a different cwd: still the file's dir */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	const char *base = strrchr(f, '/') + 1;
	int r = conf_load(&c, base, schema, NULL, 0, err, sizeof(err));
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(r, 0);
	assert_true(str_fmt(want, sizeof(want), "%s/ca.pem", tmpdir) > 0);
	assert_string_equal(conf_str(c, "paths.ca"), want);
	conf_free(c);
	assert_int_equal(chdir(cwd), 0);

	/* an override's relative path is against the cwd; absolute untouched */
	const char *ov[] = { "paths.ca=rel/ca.pem", "paths.state=/x/y" };
	assert_int_equal(conf_load(&c, f, schema, ov, 2, err, sizeof(err)), 0);
	assert_true(str_fmt(want, sizeof(want), "%s/rel/ca.pem", cwd) > 0);
	assert_string_equal(conf_str(c, "paths.ca"), want);
	assert_string_equal(conf_str(c, "paths.state"), "/x/y");
	conf_free(c);
}

static void
test_all_errors_reported(void **state)
{
	(void)state;
	char err[1024];
	const char *f;
	const char *ov[] = { "listen.tls=perhaps" };

	load_fail("db = { name = \"x\"; };\n"
	    "listen = { port = 99999; };\n"
	    "paths = { state = 4; };\n",
	    ov, 1, err, sizeof(err), &f);
	assert_has_fmt(err, "%s:2: 'listen.port' must be between", f);
	assert_has_fmt(err, "%s:3: 'paths.state' must be a string (got an integer)", f);
	assert_has(err, "-o listen.tls=perhaps: ");
	assert_int_equal(count_lines(err), 3);
	assert_int_not_equal(err[strlen(err) - 1], '\n');
}

static void
test_error_truncation(void **state)
{
	(void)state;
	char err[1024], small[140];
	const char *f;
	const char *text = "db = { name = \"x\"; };\n"
	    "listen = { port = 99999; address = 1; tls = \"no\"; };\n";

	load_fail(text, NULL, 0, err, sizeof(err), &f);
	assert_int_equal(count_lines(err), 3);

	/* room for one full line only: later lines are dropped whole */
	memset(small, 'Z', sizeof(small));
	load_fail(text, NULL, 0, small, sizeof(small), &f);
	assert_true(strlen(small) < sizeof(small));
	assert_null(strchr(small, '\n'));
	assert_has(small, "'listen.port' must be between");

	/* a buffer too small for even one line is cut and NUL-terminated */
	memset(small, 'Z', sizeof(small));
	load_fail(text, NULL, 0, small, 10, &f);
	assert_int_equal(strlen(small), 9);
	assert_int_equal(small[10], 'Z');

	/* no buffer at all is allowed */
	load_fail(text, NULL, 0, NULL, 0, &f);
}

static void
test_bad_schema(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[512];
	static const struct conf_key bad[] = {
		{ "a.b", CONF_INT, "notanumber", 0, 0, false, "" },
		{ "a.l.[].x", CONF_INT, NULL, 0, 0, false, "" },
		{ "a.c", CONF_BOOL, NULL, 0, 0, false, "" },
		{ "a.c", CONF_BOOL, NULL, 0, 0, false, "" },
		{ NULL, 0, NULL, 0, 0, false, NULL },
	};
	static const struct conf_key bad_def[] = {
		{ "a.b", CONF_INT, "notanumber", 0, 0, false, "" },
		{ NULL, 0, NULL, 0, 0, false, NULL },
	};

	assert_int_equal(conf_load(&c, NULL, bad, NULL, 0, err, sizeof(err)), -1);
	assert_has(err, "schema: 'a.l.[].x' has no CONF_LIST 'a.l'");
	assert_has(err, "schema: 'a.c' is declared twice");
	assert_int_equal(conf_load(&c, NULL, bad_def, NULL, 0, err, sizeof(err)), -1);
	assert_has(err, "schema: bad default \"notanumber\"");
	assert_null(c);
}

/* Runs fn in a child; returns its wait status. */
static int
in_child(void (*fn)(struct conf *), struct conf *c)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		fn(c);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void misuse_undeclared(struct conf *c) { (void)conf_int(c, "listen.nope"); }
static void misuse_type(struct conf *c) { (void)conf_int(c, "listen.address"); }
static void misuse_list(struct conf *c) { (void)conf_str(c, "enroll.tokens"); }
static void misuse_member(struct conf *c) { (void)conf_list_int(c, "enroll.tokens", 0, "name"); }
static void misuse_index(struct conf *c) { (void)conf_list_str(c, "enroll.tokens", 1, "name"); }
static void misuse_notlist(struct conf *c) { (void)conf_list_len(c, "db.name"); }
static void use_ok(struct conf *c) { (void)conf_str(c, "paths.state"); }

static void
test_misuse_aborts(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[256];
	const char *f = write_conf("db = { name = \"x\"; };\n"
	    "enroll = { tokens = ( { name = \"a\"; } ); };\n");
	void (*bad[])(struct conf *) = { misuse_undeclared, misuse_type,
	    misuse_list, misuse_member, misuse_index, misuse_notlist };

	assert_int_equal(conf_load(&c, f, schema, NULL, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int st = in_child(bad[i], c);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGABRT);
	}
	int st = in_child(use_ok, c);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	conf_free(c);
}

static void
print_schema_child(struct conf *c)
{
	(void)c;
	conf_print_schema(schema);
	fflush(stdout);
}

static void
test_print_schema(void **state)
{
	(void)state;
	char path[PATH_MAX], *out;
	size_t len;
	int fd, st;

	assert_true(str_fmt(path, sizeof(path), "%s/schemaXXXXXX", tmpdir) > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stdout);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd, STDOUT_FILENO);
		print_schema_child(NULL);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(fd);
	out = file_read(path, 65536, &len);
	assert_non_null(out);
	/* header + one line per key */
	assert_int_equal(count_lines(out) - (out[len - 1] == '\n'), 1 + 12);
	assert_non_null(strstr(out, "listen.port"));
	assert_non_null(strstr(out, "TCP port [1..65535]"));
	assert_non_null(strstr(out, "\"8443\""));
	assert_non_null(strstr(out, "enroll.tokens.[].name"));
	assert_non_null(strstr(out, "(required)"));
	free(out);
	unlink(path);
}

static int
setup(void **state)
{
	(void)state;
	char t[] = "/tmp/custos-conf-XXXXXX";
	if (mkdtemp(t) == NULL || realpath(t, tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_files; i++)
		unlink(files[i]);
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_all_types),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_bad_overrides),
		cmocka_unit_test(test_list_missing_member),
		cmocka_unit_test(test_path_resolution),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_error_truncation),
		cmocka_unit_test(test_bad_schema),
		cmocka_unit_test(test_misuse_aborts),
		cmocka_unit_test(test_print_schema),
	};
	return cmocka_run_group_tests_name("conf", tests, setup, teardown);
}
