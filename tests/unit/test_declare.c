/* test_declare.c — unit tests for daemon/declare.c (etc/custos.d loader). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/model/declare.h"
#include "util.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	str_copy(dir, "/tmp/test_declare.XXXXXX", sizeof(dir));
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static void
rm_tree(const char *path)
{
	DIR *dp = opendir(path);
	struct dirent *de;
	char p[512];

	if (dp == NULL)
		return;
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (str_fmt(p, sizeof(p), "%s/%s", path, de->d_name) < 0)
			continue;
		if (de->d_type == DT_DIR)
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(dp);
	rmdir(path);
}

static int
teardown(void **state)
{
	(void)state;
	rm_tree(dir);
	return 0;
}

static void
put(const char *name, const char *text)
{
	char p[512];

	assert_true(str_fmt(p, sizeof(p), "%s/%s", dir, name) > 0);
	assert_int_equal(file_write_atomic(p, text, strlen(text), 0644), 0);
}

/* Fails showing err unless it holds want. */
static void
assert_has(const char *err, const char *want)
{
	if (strstr(err, want) == NULL) {
		print_error("missing: %s\n--- got:\n%s\n---\n", want, err);
		fail();
	}
}

static const char *const files_valid[][2] = {
	{ "10-groups.conf",
	  "# the tree\n"
	  "groups = (\n"
	  "  { path = \"Servers/Web\"; },\n"                          /* 3: child first */
	  "  { path = \"Servers\"; }\n"                               /* 4 */
	  ");\n"
	  "relocation = (\n"
	  "  { name = \"web\"; group = \"Servers/Web\"; hostname = \"web*\"; subnet = \"10.0.0.0/8\";\n"
	  "    os = \"debian*\"; tag = \"dmz\"; },\n"                   /* 7 */
	  "  { name = \"lan\"; group = \"Workstations\"; subnet = \"fd00::/8\"; }\n" /* 9 */
	  ");\n" },
	{ "20-more-groups.conf",
	  "groups = ( { path = \"Workstations\"; }, { path = \"Servers/Web/Front\"; } );\n"
	  "thresholds = ( { group = \"Workstations\"; db_warning_days = 2; db_critical_days = 5; } );\n" },
	{ "30-policies.conf",
	  "policies = (\n"
	  "  { name = \"base\"; group = \"Servers\"; application = \"clamav\";\n"   /* 2 */
	  "    settings = (\n"
	  "      { key = \"rtp\"; value = true; locked = true; },\n"
	  "      { key = \"update_interval_hours\"; value = 4; },\n"
	  "      { key = \"ratio\"; value = 0.5; },\n"
	  "      { key = \"big\"; value = 5000000000L; },\n"
	  "      { key = \"mode\"; value = \"strict\"; },\n"
	  "      { key = \"paths\"; value = [ \"/a\", \"/b\" ]; },\n"
	  "      { key = \"mixed\"; value = ( 1, \"x\", { k = false; } ); },\n"
	  "      { key = \"obj\"; value = { a = 1; b = [ 2, 3 ]; }; }\n"
	  "    );\n"
	  "  },\n"
	  "  { name = \"web\"; group = \"Servers/Web\"; application = \"clamav\"; inherit = false;\n" /* 14 */
	  "    settings = ( { key = \"update_interval_hours\"; value = 1; } ); },\n"
	  "  { name = \"web-spare\"; group = \"Servers/Web\"; application = \"clamav\"; active = false; },\n"
	  "  { name = \"ob\"; group = \"Servers\"; application = \"clamav\"; kind = \"outbreak\";\n"
	  "    threshold = 5; window = 10; },\n"
	  "  { name = \"mob\"; group = \"Servers\"; application = \"clamav\"; kind = \"mobile\"; }\n"
	  ");\n" },
	{ "40-tasks.conf",
	  "tasks = (\n"
	  "  { name = \"upd\"; type = \"update\"; group = \"Servers\"; schedule = \"every 4h\";\n"
	  "    random_delay = 600; time_limit = 1800; },\n"
	  "  { name = \"scan\"; type = \"scan\"; hosts = [ \"web-1\", \"web-2\" ];\n"
	  "    params = { paths = [ \"/var/www\" ]; }; schedule = \"daily 02:30\"; },\n"
	  "  { name = \"cmd\"; type = \"command\"; selection = \"stale\";\n"
	  "    params = { argv = [ \"/bin/true\", \"-x\" ]; }; },\n"
	  "  { name = \"now\"; type = \"posture\"; host = \"db-1\"; schedule = \"manual\"; },\n"
	  "  { name = \"purge\"; type = \"server_purge_events\"; server = true;\n"
	  "    params = { days = 90; }; schedule = \"cron \\\"15 3 * * *\\\"\"; }\n"
	  ");\n"
	  "selections = ( { name = \"stale\"; filter = \"db_age_days > 3\"; } );\n" },
	/* ignored: not *.conf, hidden, a directory */
	{ "README.txt", "this is not libconfig {{{" },
	{ "50-old.conf.bak", "garbage = ;;;" },
	{ ".hidden.conf", "garbage = ;;;" },
};

static const struct declared_policy *
policy(const struct declared *d, const char *name)
{
	for (size_t i = 0; i < d->n_policies; i++)
		if (strcmp(d->policies[i].name, name) == 0)
			return &d->policies[i];
	fail_msg("no policy %s", name);
	return NULL;
}

static const struct declared_task *
task(const struct declared *d, const char *name)
{
	for (size_t i = 0; i < d->n_tasks; i++)
		if (strcmp(d->tasks[i].name, name) == 0)
			return &d->tasks[i];
	fail_msg("no task %s", name);
	return NULL;
}

static void
test_valid_set(void **state)
{
	struct declared *d = NULL;
	char err[4096], p[512];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(files_valid); i++)
		put(files_valid[i][0], files_valid[i][1]);
	assert_true(str_fmt(p, sizeof(p), "%s/sub.conf", dir) > 0);
	assert_int_equal(mkdir(p, 0755), 0);

	if (declare_load(dir, &d, err, sizeof(err)) != 0)
		fail_msg("load failed:\n%s", err);
	assert_non_null(d);
	assert_int_equal(d->n_files, 4);
	assert_non_null(strstr(d->files[0], "10-groups.conf"));
	assert_non_null(strstr(d->files[3], "40-tasks.conf"));

	/* groups: parents first, declaration order within a depth */
	assert_int_equal(d->n_groups, 4);
	assert_string_equal(d->groups[0].path, "Servers");
	assert_string_equal(d->groups[1].path, "Workstations");
	assert_string_equal(d->groups[2].path, "Servers/Web");
	assert_string_equal(d->groups[3].path, "Servers/Web/Front");
	assert_int_equal(d->groups[0].line, 4);
	assert_ptr_equal(d->groups[0].file, d->files[0]);
	assert_int_equal(d->groups[2].line, 3);
	assert_ptr_equal(d->groups[3].file, d->files[1]);

	assert_int_equal(d->n_relocations, 2);
	const struct declared_relocation *r = &d->relocations[0];
	assert_string_equal(r->name, "web");
	assert_int_equal(r->order, 0);
	assert_string_equal(r->group, "Servers/Web");
	assert_string_equal(r->hostname, "web*");
	assert_string_equal(r->subnet, "10.0.0.0/8");
	assert_string_equal(r->os, "debian*");
	assert_string_equal(r->tag, "dmz");
	assert_int_equal(r->line, 7);
	r = &d->relocations[1];
	assert_int_equal(r->order, 1);
	assert_string_equal(r->hostname, "");
	assert_string_equal(r->os, "");
	assert_string_equal(r->tag, "");
	assert_string_equal(r->subnet, "fd00::/8");

	assert_int_equal(d->n_policies, 5);
	const struct declared_policy *pb = policy(d, "base");
	assert_string_equal(pb->group, "Servers");
	assert_string_equal(pb->application, "clamav");
	assert_string_equal(pb->kind, "normal");
	assert_true(pb->active);
	assert_true(pb->inherit);
	assert_int_equal(pb->threshold, 0);
	assert_int_equal(pb->line, 2);
	assert_ptr_equal(pb->file, d->files[2]);
	json_t *s = pb->settings;
	assert_int_equal(json_array_size(s), 8);
	json_t *e = json_array_get(s, 0);
	assert_string_equal(json_string_value(json_object_get(e, "key")), "rtp");
	assert_true(json_is_true(json_object_get(e, "value")));
	assert_true(json_is_true(json_object_get(e, "locked")));
	e = json_array_get(s, 1);
	assert_true(json_is_integer(json_object_get(e, "value")));
	assert_int_equal(json_integer_value(json_object_get(e, "value")), 4);
	assert_true(json_is_false(json_object_get(e, "locked")));
	e = json_array_get(s, 2);
	assert_true(json_is_real(json_object_get(e, "value")));
	assert_true(json_real_value(json_object_get(e, "value")) == 0.5);
	e = json_array_get(s, 3);
	assert_true(json_integer_value(json_object_get(e, "value")) == 5000000000LL);
	e = json_array_get(s, 4);
	assert_string_equal(json_string_value(json_object_get(e, "value")), "strict");
	char *dump = json_dumps(json_object_get(json_array_get(s, 5), "value"), JSON_COMPACT);
	assert_string_equal(dump, "[\"/a\",\"/b\"]");
	free(dump);
	dump = json_dumps(json_object_get(json_array_get(s, 6), "value"), JSON_COMPACT);
	assert_string_equal(dump, "[1,\"x\",{\"k\":false}]");
	free(dump);
	dump = json_dumps(json_object_get(json_array_get(s, 7), "value"),
	    JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(dump, "{\"a\":1,\"b\":[2,3]}");
	free(dump);

	const struct declared_policy *pw = policy(d, "web");
	assert_false(pw->inherit);
	assert_true(pw->active);
	assert_int_equal(json_array_size(pw->settings), 1);
	assert_false(policy(d, "web-spare")->active);
	assert_int_equal(json_array_size(policy(d, "web-spare")->settings), 0);
	const struct declared_policy *po = policy(d, "ob");
	assert_string_equal(po->kind, "outbreak");
	assert_int_equal(po->threshold, 5);
	assert_int_equal(po->window, 10);
	assert_int_equal(po->quiet, 10);   /* defaults to the window */
	assert_string_equal(policy(d, "mob")->kind, "mobile");

	assert_int_equal(d->n_tasks, 5);
	const struct declared_task *t = task(d, "upd");
	assert_string_equal(t->type, "update");
	assert_int_equal(t->scope, DECLARED_SCOPE_GROUP);
	assert_string_equal(t->scope_name, "Servers");
	assert_string_equal(t->schedule, "every 4h");
	assert_int_equal(t->random_delay, 600);
	assert_int_equal(t->time_limit, 1800);
	assert_int_equal(json_object_size(t->params), 0);
	assert_int_equal(t->line, 2);
	t = task(d, "scan");
	assert_int_equal(t->scope, DECLARED_SCOPE_HOSTS);
	assert_null(t->scope_name);
	assert_int_equal(t->n_hosts, 2);
	assert_string_equal(t->hosts[1], "web-2");
	dump = json_dumps(t->params, JSON_COMPACT);
	assert_string_equal(dump, "{\"paths\":[\"/var/www\"]}");
	free(dump);
	assert_int_equal(t->random_delay, 0);
	assert_int_equal(t->time_limit, 3600);
	t = task(d, "cmd");
	assert_int_equal(t->scope, DECLARED_SCOPE_SELECTION);
	assert_string_equal(t->scope_name, "stale");
	assert_string_equal(t->schedule, "manual");
	assert_int_equal(json_array_size(json_object_get(t->params, "argv")), 2);
	t = task(d, "now");
	assert_int_equal(t->scope, DECLARED_SCOPE_HOST);
	assert_string_equal(t->scope_name, "db-1");
	t = task(d, "purge");
	assert_int_equal(t->scope, DECLARED_SCOPE_SERVER);
	assert_int_equal(json_integer_value(json_object_get(t->params, "days")), 90);
	assert_string_equal(t->schedule, "cron \"15 3 * * *\"");

	assert_int_equal(d->n_selections, 1);
	assert_string_equal(d->selections[0].name, "stale");
	assert_string_equal(d->selections[0].filter, "db_age_days > 3");
	assert_int_equal(d->selections[0].line, 12);

	assert_int_equal(d->n_thresholds, 1);
	const struct declared_thresholds *th = &d->thresholds[0];
	assert_string_equal(th->group, "Workstations");
	assert_int_equal(th->db_warning_days, 2);
	assert_int_equal(th->db_critical_days, 5);
	assert_int_equal(th->not_connected_warning_days, 0);
	assert_int_equal(th->line, 2);
	declare_free(d);
}

static void
test_missing_and_empty_dir(void **state)
{
	struct declared *d = NULL;
	char err[256], p[512];

	(void)state;
	assert_true(str_fmt(p, sizeof(p), "%s/nope", dir) > 0);
	assert_int_equal(declare_load(p, &d, err, sizeof(err)), 0);
	assert_non_null(d);
	assert_int_equal(d->n_groups + d->n_policies + d->n_tasks + d->n_files, 0);
	declare_free(d);
	d = NULL;

	assert_int_equal(declare_load(dir, &d, err, sizeof(err)), 0);
	assert_int_equal(d->n_groups + d->n_relocations + d->n_policies + d->n_tasks +
	    d->n_selections + d->n_thresholds + d->n_files, 0);
	declare_free(d);
	d = NULL;

	/* only ignored files; an empty .conf file is fine */
	put("notes.txt", "{{{");
	put("x.conf~", "{{{");
	put("empty.conf", "");
	assert_int_equal(declare_load(dir, &d, err, sizeof(err)), 0);
	assert_int_equal(d->n_files, 1);
	declare_free(d);
	d = NULL;

	/* a file where the directory should be */
	assert_true(str_fmt(p, sizeof(p), "%s/notes.txt", dir) > 0);
	assert_int_equal(declare_load(p, &d, err, sizeof(err)), -1);
	assert_null(d);
	assert_has(err, "notes.txt: cannot open the directory");
	declare_free(NULL);
}

#define G "groups = ( { path = \"Servers\"; }, { path = \"Servers/Web\"; } );\n"
#define POL(n, rest) "{ name = \"" n "\"; group = \"Servers\"; application = \"clamav\"; " rest " }"
#define TASK(rest) "tasks = ( { name = \"t\"; " rest " } );\n"

struct ecase {
	const char *name;
	const char *a, *b;         /* a.conf, b.conf (NULL: absent) */
	const char *want[4];
};

static const struct ecase ecases[] = {
	{ "unknown top-level", "polices = ();\n", NULL,
	  { "a.conf:1: unknown setting 'polices' (did you mean \"policies\"?)" } },
	{ "unknown member", "groups = (\n { pth = \"X\"; }\n);\n", NULL,
	  { "a.conf:2: groups: unknown member 'pth' (did you mean \"path\"?)",
	    "a.conf:2: groups: missing 'path'" } },
	{ "unknown member named", G "policies = ( " POL("p", "inhert = true;") " );\n", NULL,
	  { "a.conf:2: policy \"p\": unknown member 'inhert' (did you mean \"inherit\"?); known: name," } },
	{ "unknown setting member", G "policies = ( " POL("p",
	  "settings = (\n { key = \"rtp\"; value = true; lockd = true; } );") " );\n", NULL,
	  { "a.conf:3: policy \"p\", setting \"rtp\": unknown member 'lockd' (did you mean \"locked\"?)" } },
	{ "wrong type bool", G "policies = ( " POL("p", "\nactive = \"yes\";") " );\n", NULL,
	  { "a.conf:3: policy \"p\": 'active' must be true or false, not a string" } },
	{ "wrong type string", "groups = ( { path = 5; } );\n", NULL,
	  { "a.conf:1: groups: 'path' must be a string, not an integer" } },
	{ "wrong type int", G TASK("type = \"update\"; group = \"Servers\"; random_delay = \"1m\";"),
	  NULL, { "a.conf:2: task \"t\": 'random_delay' must be an integer, not a string" } },
	{ "top-level not a list", "groups = { path = \"A\"; };\n", NULL,
	  { "a.conf:1: 'groups' must be a list of groups" } },
	{ "element not a group", "groups = ( \"A\" );\n", NULL,
	  { "a.conf:1: groups: each element must be a group { ... }, not a string" } },
	{ "missing required", G "policies = (\n { name = \"p\"; group = \"Servers\"; } );\n", NULL,
	  { "a.conf:3: policy \"p\": missing 'application'" } },
	{ "missing name", G "policies = (\n { group = \"Servers\"; application = \"x\"; } );\n", NULL,
	  { "a.conf:3: policies: missing 'name'" } },
	{ "duplicate policy across files", G "policies = ( " POL("p", "") " );\n",
	  "policies = (\n { name = \"p\"; group = \"Servers\"; application = \"agent\"; }\n);\n",
	  { "b.conf:2: policy \"p\" is already declared at ", "/a.conf:2; names must be unique" } },
	{ "duplicate group across files", G, "groups = (\n { path = \"Servers/Web\"; } );\n",
	  { "b.conf:2: group \"Servers/Web\" is already declared at " } },
	{ "duplicate task/selection/rule", G
	  "relocation = ( { name = \"r\"; group = \"Servers\"; }, { name = \"r\"; group = \"Servers\"; } );\n"
	  "selections = ( { name = \"s\"; filter = \"x = 1\"; },\n { name = \"s\"; filter = \"x = 1\"; } );\n",
	  "tasks = ( { name = \"t\"; type = \"update\"; group = \"Servers\"; },\n"
	  "{ name = \"t\"; type = \"update\"; group = \"Servers\"; } );\n",
	  { "a.conf:2: relocation rule \"r\" is already declared", "a.conf:4: selection \"s\" is already",
	    "b.conf:2: task \"t\" is already declared at " } },
	{ "undeclared group", G "policies = (\n { name = \"p\"; group = \"Servers/Wbe\"; application = \"clamav\"; } );\n",
	  NULL, { "a.conf:3: policy \"p\": group \"Servers/Wbe\" is not declared (did you mean "
	  "\"Servers/Web\"?); declare it: groups = ( { path = \"Servers/Wbe\"; } );" } },
	{ "undeclared group in task, rule, thresholds", G
	  "relocation = ( { name = \"r\"; group = \"Nope\"; } );\n"
	  TASK("type = \"update\"; group = \"Desktops\";")
	  "thresholds = ( { group = \"Servers/X\"; db_warning_days = 1; } );\n", NULL,
	  { "a.conf:2: relocation rule \"r\": group \"Nope\" is not declared",
	    "a.conf:3: task \"t\": group \"Desktops\" is not declared",
	    "a.conf:4: thresholds: group \"Servers/X\" is not declared" } },
	{ "parent missing", "groups = ( { path = \"A\"; },\n { path = \"A/B/C\"; } );\n", NULL,
	  { "a.conf:2: group \"A/B/C\": its parent group \"A/B\" is not declared; add { path = \"A/B\"; }" } },
	{ "bad group paths", "groups = ( { path = \"/A\"; },\n { path = \"Unassigned\"; },\n"
	  " { path = \"A\\tB\"; }, { path = \"\"; } );\n", NULL,
	  { "a.conf:1: groups: group path \"/A\" has an empty component",
	    "a.conf:2: groups: \"Unassigned\" is reserved",
	    "a.conf:3: groups: 'path' contains a control character",
	    "a.conf:3: groups: 'path' must not be empty" } },
	{ "two active normal", G "policies = ( " POL("p1", "") ",\n" POL("p2", "") ",\n"
	  POL("p3", "active = false;") ",\n" POL("o1", "kind = \"outbreak\"; threshold = 1; window = 1;") ",\n"
	  POL("o2", "kind = \"outbreak\"; threshold = 1; window = 1;") " );\n", NULL,
	  { "a.conf:3: policy \"p2\": a second active normal policy for \"clamav\" in group "
	    "\"Servers\" (the first is \"p1\" at ",
	    "a.conf:6: policy \"o2\": a second active outbreak policy" } },
	{ "bad kind", G "policies = ( " POL("p", "kind = \"outbrake\";") " );\n", NULL,
	  { "a.conf:2: policy \"p\": kind \"outbrake\" is not one of normal, outbreak, mobile "
	    "(did you mean \"outbreak\"?)" } },
	{ "outbreak without threshold", G "policies = ( " POL("p", "kind = \"outbreak\"; window = 3;") " );\n",
	  NULL, { "a.conf:2: policy \"p\": an outbreak policy needs 'threshold'" } },
	{ "threshold on normal", G "policies = ( " POL("p", "threshold = 3;") " );\n", NULL,
	  { "a.conf:2: policy \"p\": 'threshold', 'window' and 'quiet' are for outbreak policies only" } },
	{ "bad settings", G "policies = ( " POL("p", "settings = (\n"
	  "{ key = \"a\"; value = 1; },\n{ key = \"a\"; value = 2; },\n{ key = \"b\"; },\n"
	  "{ key = \"c d\"; value = 1; },\n{ value = 1; }\n);") " );\n", NULL,
	  { "a.conf:4: policy \"p\", setting \"a\": key \"a\" is set twice in this policy",
	    "a.conf:5: policy \"p\", setting \"b\": missing 'value'",
	    "a.conf:6: policy \"p\": setting key \"c d\" may hold only",
	    "a.conf:7: policy \"p\": missing 'key'" } },
	{ "settings not a list", G "policies = ( " POL("p", "settings = { rtp = true; };") " );\n",
	  NULL, { "a.conf:2: policy \"p\": 'settings' must be a list" } },
	{ "bad task type", G TASK("type = \"scna\"; group = \"Servers\";"), NULL,
	  { "a.conf:2: task \"t\": type \"scna\" is not one of update, scan, command, posture, "
	    "server_purge_events (did you mean \"scan\"?)" } },
	{ "no scope", G TASK("type = \"update\";"), NULL,
	  { "a.conf:2: task \"t\": no scope; give exactly one of group, hosts, selection, host or server" } },
	{ "several scopes", G TASK("type = \"update\"; group = \"Servers\"; host = \"h\";"), NULL,
	  { "a.conf:2: task \"t\": several scopes (group, host); give exactly one" } },
	{ "scan without paths", G "tasks = ( { name = \"t\"; type = \"scan\"; group = \"Servers\"; },\n"
	  "{ name = \"t2\"; type = \"scan\"; group = \"Servers\";\n params = { paths = [ 1 ]; }; },\n"
	  "{ name = \"t3\"; type = \"scan\"; group = \"Servers\"; params = { paths = [ \"rel\" ]; path = 1; }; } );\n",
	  NULL, { "a.conf:2: task \"t\": a scan task needs params.paths",
	    "a.conf:4: task \"t2\": params.paths must hold only strings, not an integer",
	    "a.conf:5: task \"t3\": params.paths: \"rel\" is not an absolute path",
	    "a.conf:5: task \"t3\": unknown member 'path' (did you mean \"paths\"?)" } },
	{ "command without argv", G TASK("type = \"command\"; group = \"Servers\"; params = { args = [ \"x\" ]; };"),
	  NULL, { "a.conf:2: task \"t\": a command task needs params.argv" } },
	{ "params for update", G TASK("type = \"update\"; group = \"Servers\"; params = { x = 1; };"),
	  NULL, { "a.conf:2: task \"t\": an update task takes no params" } },
	{ "ranges", G TASK("type = \"update\"; group = \"Servers\";\n random_delay = 100000;\n time_limit = 0;"),
	  NULL, { "a.conf:3: task \"t\": 'random_delay' must be between 0 and 86400 (got 100000)",
	    "a.conf:4: task \"t\": 'time_limit' must be between 1 and 604800 (got 0)" } },
	{ "bad schedule", G TASK("type = \"update\"; group = \"Servers\";\n schedule = \"every 0h\";"), NULL,
	  { "a.conf:3: task \"t\": schedule \"every 0h\"" } },
	{ "bad filter", G "selections = (\n { name = \"s\"; filter = \"bogus ~~ 3\"; } );\n", NULL,
	  { "a.conf:3: selection \"s\": ", "bogus" } },
	{ "undeclared selection", G "selections = ( { name = \"stale\"; filter = \"x = 1\"; } );\n"
	  TASK("type = \"update\"; selection = \"stal\";"), NULL,
	  { "a.conf:3: task \"t\": selection \"stal\" is not declared (did you mean \"stale\"?)" } },
	{ "server scope mismatch", G "tasks = ( { name = \"t\"; type = \"server_purge_events\"; group = \"Servers\"; params = { days = 3; }; },\n"
	  " { name = \"u\"; type = \"update\"; server = true; },\n"
	  " { name = \"v\"; type = \"server_purge_events\"; server = true; params = { days = 0; }; } );\n", NULL,
	  { "a.conf:2: task \"t\": a server_purge_events task runs on the server",
	    "a.conf:3: task \"u\": an update task runs on agents",
	    "a.conf:4: task \"v\", params: 'days' must be between 1 and 3650 (got 0)" } },
	{ "bad hosts", G "tasks = ( { name = \"t\"; type = \"update\"; hosts = [ \"ok\", \"bad name\", \"ok\" ]; },\n"
	  " { name = \"u\"; type = \"update\"; hosts = [ ]; } );\n", NULL,
	  { "a.conf:2: task \"t\": hosts: host name \"bad name\" may hold only",
	    "a.conf:2: task \"t\": hosts: \"ok\" is listed twice",
	    "a.conf:3: task \"u\": hosts must hold 1 to 256 strings" } },
	{ "duplicate list in one file", "groups = ();\ngroups = ();\n", NULL,
	  { "a.conf:2: duplicate setting name" } },
	{ "thresholds", G "thresholds = ( { group = \"Servers\"; db_warning_days = 9; db_critical_days = 2; },\n"
	  " { group = \"Servers/Web\"; },\n { group = \"Servers\"; not_connected_warning_days = 0; } );\n", NULL,
	  { "a.conf:2: thresholds of \"Servers\": db_warning_days (9) must not exceed db_critical_days (2)",
	    "a.conf:3: thresholds of \"Servers/Web\": no threshold given",
	    "a.conf:4: thresholds of \"Servers\": 'not_connected_warning_days' must be between 1 and 3650",
	    "a.conf:4: thresholds for group \"Servers\" is already declared" } },
	{ "bad subnet", G "relocation = ( { name = \"r\"; group = \"Servers\";\n subnet = \"10.0.0.0/33\"; } );\n",
	  NULL, { "a.conf:3: relocation rule \"r\": subnet \"10.0.0.0/33\" is not an address" } },
	{ "syntax error", "groups = (\n { path = ; } );\n", "groups = ( { pth = \"A\"; } );\n",
	  { "a.conf:2: syntax error", "b.conf:1: groups: unknown member 'pth'" } },
	{ "bad utf-8", G "policies = ( " POL("p", "settings = ( { key = \"k\"; value = \"\xff\"; } );") " );\n",
	  NULL, { "a.conf:2: string is not valid UTF-8" } },
};

static void
test_errors(void **state)
{
	char err[8192];

	for (size_t i = 0; i < ARRAY_LEN(ecases); i++) {
		const struct ecase *c = &ecases[i];
		struct declared *d = NULL;

		teardown(state);
		assert_int_equal(setup(state), 0);
		put("a.conf", c->a);
		if (c->b != NULL)
			put("b.conf", c->b);
		print_message("case: %s\n", c->name);
		if (declare_load(dir, &d, err, sizeof(err)) != -1)
			fail_msg("case %s: loaded", c->name);
		assert_null(d);
		for (size_t k = 0; k < ARRAY_LEN(c->want) && c->want[k] != NULL; k++)
			assert_has(err, c->want[k]);
		/* every line names FILE:LINE (or FILE) */
		for (const char *l = err; l != NULL && *l != '\0'; ) {
			assert_non_null(strstr(l, ".conf:"));
			l = strchr(l, '\n');
			l = l != NULL ? l + 1 : NULL;
		}
	}
}

/* Problems of several files and kinds come together, sorted by file and
 * line, one per line. */
static void
test_all_errors_together(void **state)
{
	struct declared *d = NULL;
	char err[8192];

	(void)state;
	put("b.conf",
	    "tasks = ( { name = \"t\"; type = \"nope\"; group = \"Servers\"; } );\n"   /* 1 */
	    "selections = ( { name = \"s\"; } );\n");                                 /* 2 */
	put("a.conf",
	    "groups = ( { path = \"Servers\"; },\n"
	    "  { path = \"X/Y\"; } );\n"                                              /* 2 */
	    "polices = ();\n"                                                       /* 3 */
	    "policies = ( { name = \"p\"; group = \"Servers\"; application = \"c\";\n"
	    "  active = 1; } );\n");                                                /* 5 */
	assert_int_equal(declare_load(dir, &d, err, sizeof(err)), -1);
	assert_null(d);
	const char *want[] = {
		"a.conf:2: group \"X/Y\": its parent group \"X\" is not declared",
		"a.conf:3: unknown setting 'polices'",
		"a.conf:5: policy \"p\": 'active' must be true or false",
		"b.conf:1: task \"t\": type \"nope\"",
		"b.conf:2: selection \"s\": missing 'filter'",
	};
	const char *prev = err;
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		const char *at = strstr(err, want[i]);
		if (at == NULL || at < prev)
			fail_msg("%s: missing or out of order in\n%s", want[i], err);
		prev = at;
	}
	size_t lines = 1;
	for (const char *p = err; *p != '\0'; p++)
		lines += *p == '\n';
	assert_int_equal(lines, ARRAY_LEN(want));
}

/* A small buffer gets whole lines and a count of the rest. */
static void
test_small_buffer(void **state)
{
	struct declared *d = NULL;
	char err[200], text[4096];
	size_t off = 0;

	(void)state;
	off += (size_t)str_fmt(text + off, sizeof(text) - off, "groups = (\n");
	for (int i = 0; i < 20; i++)
		off += (size_t)str_fmt(text + off, sizeof(text) - off, " { pth = \"G%d\"; },\n", i);
	str_fmt(text + off, sizeof(text) - off, " { path = \"ok\"; } );\n");
	put("a.conf", text);
	memset(err, 'Z', sizeof(err));
	assert_int_equal(declare_load(dir, &d, err, sizeof(err)), -1);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	assert_has(err, "more problems");
	assert_has(err, "a.conf:2: groups: ");
	/* every line but the last is a whole problem */
	const char *last = strrchr(err, '\n');
	assert_non_null(last);
	assert_true(strncmp(last + 1, "... and ", 8) == 0);

	/* no buffer at all: still fails cleanly */
	assert_int_equal(declare_load(dir, &d, NULL, 0), -1);
	assert_null(d);
}

static void
test_include(void **state)
{
	struct declared *d = NULL;
	char err[1024];

	(void)state;
	put("parts.inc", "  { path = \"B\"; },\n  { pth = \"C\"; }\n");
	put("a.conf", "groups = (\n  { path = \"A\"; },\n@include \"parts.inc\"\n);\n");
	assert_int_equal(declare_load(dir, &d, err, sizeof(err)), -1);
	assert_has(err, "parts.inc:2: groups: unknown member 'pth'");
	put("parts.inc", "  { path = \"B\"; }\n");
	assert_int_equal(declare_load(dir, &d, err, sizeof(err)), 0);
	assert_int_equal(d->n_groups, 2);
	assert_non_null(strstr(d->groups[1].file, "parts.inc"));
	assert_int_equal(d->groups[1].line, 1);
	declare_free(d);
}

/* The shipped example set (tests run from the repository root). */
static void
test_shipped_example(void **state)
{
	struct declared *d = NULL;
	char err[4096];

	(void)state;
	if (declare_load("etc/custos.d", &d, err, sizeof(err)) != 0)
		fail_msg("etc/custos.d:\n%s", err);
	assert_true(d->n_files >= 1);
	assert_true(d->n_groups >= 3);
	assert_true(d->n_policies >= 3);
	assert_true(d->n_tasks >= 3);
	assert_true(d->n_selections >= 1);
	assert_true(d->n_thresholds >= 1);
	assert_true(d->n_relocations >= 2);
	bool web = false, stale = false;
	for (size_t i = 0; i < d->n_groups; i++)
		web = web || strcmp(d->groups[i].path, "Servers/Web") == 0;
	for (size_t i = 0; i < d->n_selections; i++)
		stale = stale || strcmp(d->selections[i].name, "stale") == 0;
	assert_true(web && stale);
	declare_free(d);
}

static void
test_scope_names(void **state)
{
	(void)state;
	assert_string_equal(declare_scope_name(DECLARED_SCOPE_GROUP), "group");
	assert_string_equal(declare_scope_name(DECLARED_SCOPE_HOSTS), "hosts");
	assert_string_equal(declare_scope_name(DECLARED_SCOPE_SELECTION), "selection");
	assert_string_equal(declare_scope_name(DECLARED_SCOPE_HOST), "host");
	assert_string_equal(declare_scope_name(DECLARED_SCOPE_SERVER), "server");
	assert_int_equal(declare_load(NULL, NULL, NULL, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_empty_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_errors_together, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include, setup, teardown),
		cmocka_unit_test(test_shipped_example),
		cmocka_unit_test(test_scope_names),
	};
	return cmocka_run_group_tests_name("declare", tests, NULL, NULL);
}
