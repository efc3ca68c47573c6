/* test_conf_schemas.c — the programs' real schemas against the shipped
 * configuration files (etc/). Run from the repository root. */
#include <fcntl.h>
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

#include "agent/config.h"
#include "daemon/core/config.h"
#include "conf.h"
#include "util.h"

#define DAEMON_CONF "etc/custosd.conf"
#define AGENT_CONF "etc/custos-agent.conf"

static char tmpdir[PATH_MAX];
static char etcdir[PATH_MAX];   /* realpath of etc/ */

static int
setup(void **state)
{
	(void)state;
	const char *t = getenv("TMPDIR");
	if (str_fmt(tmpdir, sizeof(tmpdir), "%s/custos-confs-XXXXXX", t && *t ? t : "/tmp") < 0 ||
	    mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "cannot make a temporary directory\n");
		return -1;
	}
	if (realpath("etc", etcdir) == NULL || access(DAEMON_CONF, R_OK) != 0) {
		fprintf(stderr, "run from the repository root (etc/custosd.conf not found)\n");
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	static const char *const names[] = { "unknown.conf", "tokens.conf", "badtoken.conf" };
	char p[PATH_MAX];
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (str_fmt(p, sizeof(p), "%s/%s", tmpdir, names[i]) > 0)
			unlink(p);
	rmdir(tmpdir);
	return 0;
}

static char *
read_text(const char *path)
{
	size_t len;
	char *s = file_read(path, 1 << 20, &len);
	assert_non_null(s);
	return s;
}

static void
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* path = tmpdir/name */
static void
tmp_path(char *out, size_t outlen, const char *name)
{
	assert_true(str_fmt(out, outlen, "%s/%s", tmpdir, name) > 0);
}

/* 1-based line of the first occurrence of needle in text. */
static int
line_of(const char *text, const char *needle)
{
	const char *p = strstr(text, needle);
	assert_non_null(p);
	int line = 1;
	for (const char *q = text; q < p; q++)
		if (*q == '\n')
			line++;
	return line;
}

static void
test_daemon_shipped(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[4096] = "", want[PATH_MAX + 64];

	if (conf_load(&c, DAEMON_CONF, custosd_schema, NULL, 0, err, sizeof(err)) != 0)
		fail_msg("%s: %s", DAEMON_CONF, err);
	assert_string_equal(err, "");
	assert_string_equal(conf_file(c), DAEMON_CONF);
	/* values from the file */
	assert_int_equal(conf_int(c, "listen.port"), 13000);
	assert_int_equal(conf_int(c, "api.port"), 13299);
	assert_int_equal(conf_int(c, "listen.max_frame"), 1048576);
	assert_int_equal(conf_int(c, "sync.interval"), 900);
	assert_int_equal(conf_int(c, "status.db_critical_days"), 7);
	assert_string_equal(conf_str(c, "server.san"), "localhost,127.0.0.1");
	assert_string_equal(conf_str(c, "database.user"), "custos");
	/* relative paths resolved against etc/ */
	assert_true(str_fmt(want, sizeof(want), "%s/../var/state", etcdir) > 0);
	assert_string_equal(conf_str(c, "server.state_dir"), want);
	assert_true(str_fmt(want, sizeof(want), "%s/../var/mariadb/mysqld.sock", etcdir) > 0);
	assert_string_equal(conf_str(c, "database.socket"), want);
	/* defaults for what the file leaves out */
	assert_string_equal(conf_str(c, "database.host"), "");
	assert_int_equal(conf_int(c, "database.port"), 3306);
	assert_int_equal(conf_int(c, "database.batch_max"), 1000);
	/* the token list is commented out as shipped */
	assert_int_equal(conf_list_len(c, "enroll.tokens"), 0);
	conf_free(c);
}

static void
test_agent_shipped(void **state)
{
	(void)state;
	struct conf *c = NULL;
	char err[4096] = "", want[PATH_MAX + 64];

	if (conf_load(&c, AGENT_CONF, agent_schema, NULL, 0, err, sizeof(err)) != 0)
		fail_msg("%s: %s", AGENT_CONF, err);
	assert_false(conf_bool(c, "agent.keep_connection"));
	assert_int_equal(conf_int(c, "agent.wake_port"), 15000);
	assert_int_equal(conf_int(c, "agent.queue_max"), 10000);
	assert_true(conf_bool(c, "clamav.enabled"));
	assert_string_equal(conf_str(c, "clamav.database_dir"), "/var/lib/clamav");
	assert_false(conf_bool(c, "command.enabled"));
	assert_string_equal(conf_str(c, "command.path"), "");
	assert_int_equal(conf_int(c, "command.timeout"), 10);
	assert_string_equal(conf_str(c, "agent.server"), "");
	assert_int_equal(conf_int(c, "agent.wake_max_skew"), 120);
	assert_true(str_fmt(want, sizeof(want), "%s/../var/agent", etcdir) > 0);
	assert_string_equal(conf_str(c, "agent.state_dir"), want);
	conf_free(c);
}

/* Each schema's own defaults must load with no file at all. */
static void
test_schema_defaults(void **state)
{
	(void)state;
	const struct conf_key *schemas[] = { custosd_schema, agent_schema };
	char err[4096];

	for (size_t s = 0; s < ARRAY_LEN(schemas); s++) {
		struct conf *c = NULL;
		if (conf_load(&c, NULL, schemas[s], NULL, 0, err, sizeof(err)) != 0)
			fail_msg("schema %zu defaults: %s", s, err);
		size_t n = 0;
		for (const struct conf_key *k = schemas[s]; k->path != NULL; k++, n++) {
			assert_non_null(k->help);
			assert_true(k->help[0] != '\0');
			if (k->type == CONF_INT && k->def != NULL && strstr(k->path, ".[].") == NULL) {
				long long v = conf_int(c, k->path);
				assert_true(v >= k->min && v <= k->max);
			}
		}
		assert_true(n > 10);
		conf_free(c);
	}
}

static void
test_unknown_key(void **state)
{
	(void)state;
	char path[PATH_MAX], where[PATH_MAX + 32], err[4096] = "";
	char *orig = read_text(DAEMON_CONF);
	size_t olen = strlen(orig);
	const char *anchor = "  port = 13000;";
	char *at = strstr(orig, anchor);
	assert_non_null(at);

	/* insert a misspelt key on the line after listen.port */
	const char *extra = "  prot = 13001;\n";
	char *eol = strchr(at, '\n');
	assert_non_null(eol);
	size_t head = (size_t)(eol - orig) + 1;
	char *text = malloc(olen + strlen(extra) + 1);
	assert_non_null(text);
	memcpy(text, orig, head);
	memcpy(text + head, extra, strlen(extra));
	memcpy(text + head + strlen(extra), orig + head, olen - head + 1);

	tmp_path(path, sizeof(path), "unknown.conf");
	write_text(path, text);

	struct conf *c = (struct conf *)0x1;
	assert_int_equal(conf_load(&c, path, custosd_schema, NULL, 0, err, sizeof(err)), -1);
	assert_ptr_equal(c, (struct conf *)0x1);
	assert_true(str_fmt(where, sizeof(where), "%s:%d:", path, line_of(text, "  prot =")) > 0);
	if (strstr(err, where) == NULL || strstr(err, "listen.prot") == NULL)
		fail_msg("want '%s ... listen.prot' in: %s", where, err);
	/* exactly one problem reported */
	assert_null(strchr(err, '\n'));

	free(text);
	free(orig);
}

static void
test_override_range(void **state)
{
	(void)state;
	char err[4096] = "";
	struct conf *c = (struct conf *)0x1;
	const char *bad[] = { "listen.port=70000" };

	assert_int_equal(conf_load(&c, DAEMON_CONF, custosd_schema, bad, 1, err, sizeof(err)), -1);
	assert_ptr_equal(c, (struct conf *)0x1);
	assert_non_null(strstr(err, "-o listen.port=70000"));

	const char *zero[] = { "listen.port=0" };
	assert_int_equal(conf_load(&c, DAEMON_CONF, custosd_schema, zero, 1, err, sizeof(err)), -1);
	const char *word[] = { "listen.port=http" };
	assert_int_equal(conf_load(&c, DAEMON_CONF, custosd_schema, word, 1, err, sizeof(err)), -1);
	const char *unknown[] = { "listen.prot=1" };
	assert_int_equal(conf_load(&c, DAEMON_CONF, custosd_schema, unknown, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "listen.prot"));

	/* valid overrides win over the file */
	const char *good[] = { "listen.port=14000", "status.db_warning_days=2" };
	if (conf_load(&c, DAEMON_CONF, custosd_schema, good, 2, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(conf_int(c, "listen.port"), 14000);
	assert_int_equal(conf_int(c, "status.db_warning_days"), 2);
	conf_free(c);

	/* agent: port 0 is "off" and allowed there, 65536 is not */
	const char *off[] = { "agent.wake_port=0" };
	if (conf_load(&c, AGENT_CONF, agent_schema, off, 1, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(conf_int(c, "agent.wake_port"), 0);
	conf_free(c);
	c = (struct conf *)0x1;
	const char *over[] = { "agent.wake_port=65536" };
	assert_int_equal(conf_load(&c, AGENT_CONF, agent_schema, over, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "-o agent.wake_port=65536"));
}

static void
test_enroll_tokens(void **state)
{
	(void)state;
	char path[PATH_MAX], where[PATH_MAX + 32], err[4096] = "";
	char *orig = read_text(DAEMON_CONF);
	const char *tokens =
		"\nenroll: {\n"
		"  tokens = (\n"
		"    { name = \"lab1\"; secret = \"change-me-to-something-long\";\n"
		"      expires = 1798761600; max_uses = 50; },\n"
		"    { name = \"ops\"; secret = \"s3cr3t-ops\"; }\n"
		"  );\n"
		"};\n";
	size_t len = strlen(orig) + strlen(tokens) + 1;
	char *text = malloc(len);
	assert_non_null(text);
	assert_true(str_fmt(text, len, "%s%s", orig, tokens) > 0);
	tmp_path(path, sizeof(path), "tokens.conf");
	write_text(path, text);

	struct conf *c = NULL;
	if (conf_load(&c, path, custosd_schema, NULL, 0, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(conf_list_len(c, "enroll.tokens"), 2);
	assert_string_equal(conf_list_str(c, "enroll.tokens", 0, "name"), "lab1");
	assert_string_equal(conf_list_str(c, "enroll.tokens", 0, "secret"),
	    "change-me-to-something-long");
	assert_int_equal(conf_list_int(c, "enroll.tokens", 0, "expires"), 1798761600);
	assert_int_equal(conf_list_int(c, "enroll.tokens", 0, "max_uses"), 50);
	assert_string_equal(conf_list_str(c, "enroll.tokens", 1, "name"), "ops");
	assert_string_equal(conf_list_str(c, "enroll.tokens", 1, "secret"), "s3cr3t-ops");
	assert_int_equal(conf_list_int(c, "enroll.tokens", 1, "expires"), 0);  /* default */
	assert_int_equal(conf_list_int(c, "enroll.tokens", 1, "max_uses"), 0);
	assert_true(str_fmt(where, sizeof(where), "%s:%d", path,
	    line_of(text, "{ name = \"lab1\"")) > 0);
	assert_string_equal(conf_list_where(c, "enroll.tokens", 0), where);
	/* the rest of the file is unchanged */
	assert_int_equal(conf_int(c, "listen.port"), 13000);
	conf_free(c);
	free(text);

	/* a token without its secret, and one with max_uses out of range */
	const char *bad =
		"enroll: {\n"
		"  tokens = (\n"
		"    { name = \"nosecret\"; },\n"
		"    { name = \"many\"; secret = \"x\"; max_uses = 2000000; }\n"
		"  );\n"
		"};\n";
	tmp_path(path, sizeof(path), "badtoken.conf");
	write_text(path, bad);
	c = (struct conf *)0x1;
	assert_int_equal(conf_load(&c, path, custosd_schema, NULL, 0, err, sizeof(err)), -1);
	assert_ptr_equal(c, (struct conf *)0x1);
	assert_non_null(strstr(err, "secret"));
	assert_non_null(strstr(err, "max_uses"));
	assert_true(str_fmt(where, sizeof(where), "%s:%d", path, line_of(bad, "max_uses")) > 0);
	assert_non_null(strstr(err, where));
	assert_non_null(strchr(err, '\n'));  /* both problems, one line each */

	/* a list entry cannot be set with -o */
	const char *ov[] = { "enroll.tokens.[].name=x" };
	assert_int_equal(conf_load(&c, DAEMON_CONF, custosd_schema, ov, 1, err, sizeof(err)), -1);
	free(orig);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_daemon_shipped),
		cmocka_unit_test(test_agent_shipped),
		cmocka_unit_test(test_schema_defaults),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_override_range),
		cmocka_unit_test(test_enroll_tokens),
	};
	return cmocka_run_group_tests_name("conf_schemas", tests, setup, teardown);
}
