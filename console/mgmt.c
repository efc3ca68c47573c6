/* mgmt.c — custosctl's administration commands: groups, moving hosts and
 * their local settings, policies, tasks, selections, relocation rules and
 * reloading etc/custos.d. Each is one or two calls of the API (see
 * daemon/api.h); --json prints the API's reply as it is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <event2/http.h>

#include "ctl.h"
#include "util.h"

#define BODY_FILE_MAX (64 * 1024)   /* the API's request body limit */

static const char *
str_or(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s && *s ? s : dflt;
}

/* Any JSON value as compact text ("-" when absent). */
static void
value_text(json_t *v, char *out, size_t len)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
	str_copy(out, s ? s : "-", len);
	free(s);
}

/* Prints the reply (--json) or the line msg; consumes j. */
static int
done(struct ctl *c, json_t *j, const char *msg)
{
	if (j == NULL)
		return 1;
	if (c->json)
		ctl_print_json(j);
	else
		printf("%s\n", msg);
	json_decref(j);
	return 0;
}

/* METHOD /api/v1/COLLECTION/NAME[SUFFIX] with body (may be NULL). */
static json_t *
call_object(struct ctl *c, const char *method, const char *collection, const char *name,
    const char *suffix, json_t *body)
{
	char path[2048];
	ctl_object_path(path, sizeof(path), collection, name, suffix);
	return ctl_call(c, method, path, body);
}

/* A JSON object from a file, or NULL (message printed). */
static json_t *
load_object(const char *file)
{
	size_t len;
	char *text = file_read(file, BODY_FILE_MAX, &len);
	if (text == NULL) {
		fprintf(stderr, "custosctl: cannot read %s: %s\n", file,
		    errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loadb(text, len, 0, &jerr);
	free(text);
	if (j == NULL || !json_is_object(j)) {
		fprintf(stderr, "custosctl: %s:%d: %s\n", file, j ? 1 : jerr.line,
		    j ? "not a JSON object" : jerr.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* ---- groups and hosts ---- */

static int
cmd_groups(struct ctl *c)
{
	json_t *j = ctl_call(c, "GET", "/api/v1/groups", NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	printf("%-40s %-7s %6s %6s %8s %8s\n", "GROUP", "SOURCE", "HOSTS", "OK", "WARNING", "CRITICAL");
	size_t i;
	json_t *g;
	json_array_foreach(j, i, g) {
		json_t *h = json_object_get(g, "hosts");
		printf("%-40s %-7s %6lld %6lld %8lld %8lld\n", str_or(g, "path", "?"),
		    str_or(g, "source", "-"),
		    (long long)json_integer_value(json_object_get(h, "total")),
		    (long long)json_integer_value(json_object_get(h, "ok")),
		    (long long)json_integer_value(json_object_get(h, "warning")),
		    (long long)json_integer_value(json_object_get(h, "critical")));
	}
	printf("%zu group(s)\n", json_array_size(j));
	json_decref(j);
	return 0;
}

static int
cmd_group(struct ctl *c, int argc, char **argv)
{
	char msg[2200];
	if (argc == 3 && strcmp(argv[1], "create") == 0) {
		json_t *body = json_pack("{s:s}", "path", argv[2]);
		json_t *j = ctl_call(c, "POST", "/api/v1/groups", body);
		json_decref(body);
		str_fmt(msg, sizeof(msg), "group %s created", argv[2]);
		return done(c, j, msg);
	}
	if (argc == 3 && strcmp(argv[1], "delete") == 0) {
		str_fmt(msg, sizeof(msg), "group %s deleted", argv[2]);
		return done(c, call_object(c, "DELETE", "groups", argv[2], "", NULL), msg);
	}
	fprintf(stderr, "custosctl: group create PATH | group delete PATH\n");
	return 2;
}

static int
cmd_move(struct ctl *c, const char *host, const char *group)
{
	char msg[2200];
	json_t *body = json_pack("{s:s}", "group", group);
	json_t *j = call_object(c, "POST", "hosts", host, "/move", body);
	json_decref(body);
	str_fmt(msg, sizeof(msg), "host %s moved to %s", host, *group ? group : "Unassigned");
	return done(c, j, msg);
}

static int
cmd_host_settings(struct ctl *c, const char *host, const char *text)
{
	json_error_t jerr;
	json_t *body = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (body == NULL || !(json_is_object(body) || json_is_null(body))) {
		fprintf(stderr, "custosctl host-settings: give {\"application\": {\"key\": value}} "
		    "or {} to clear%s%s\n", body ? "" : ": ", body ? "" : jerr.text);
		json_decref(body);
		return 2;
	}
	if (json_is_null(body)) {
		json_decref(body);
		body = json_object();
	}
	json_t *j = call_object(c, "PUT", "hosts", host, "/settings", body);
	json_decref(body);
	if (j == NULL || c->json)
		return done(c, j, "");
	char v[4096];
	value_text(json_object_get(j, "local_settings"), v, sizeof(v));
	printf("local settings of %s: %s\n", host, v);
	json_decref(j);
	return 0;
}

/* {application: {key: value}} as indented lines. */
static void
print_apps(json_t *apps)
{
	const char *app, *key;
	json_t *settings, *v;
	json_object_foreach(apps, app, settings) {
		printf("  %s:\n", app);
		json_object_foreach(settings, key, v) {
			char text[1024];
			value_text(v, text, sizeof(text));
			printf("    %-30s %s\n", key, text);
		}
	}
}

static int
cmd_host_policy(struct ctl *c, const char *host)
{
	json_t *j = call_object(c, "GET", "hosts", host, "/policy", NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	json_t *doc = json_object_get(j, "document");
	json_int_t version = json_integer_value(json_object_get(j, "version"));
	json_int_t applied = json_integer_value(json_object_get(j, "applied_version"));
	printf("host:        %s (group %s)\n", str_or(j, "host", host), str_or(j, "group", "Unassigned"));
	printf("version:     %lld; the agent applied %lld%s\n", (long long)version, (long long)applied,
	    applied == version ? "" : " (not yet up to date)");
	printf("hash:        %s\n", str_or(j, "hash", "-"));
	printf("settings:\n");
	print_apps(json_object_get(doc, "applications"));
	if (json_object_size(json_object_get(doc, "mobile")) > 0) {
		printf("mobile (after %lld s without the server):\n",
		    (long long)json_integer_value(json_object_get(doc, "mobile_after")));
		print_apps(json_object_get(doc, "mobile"));
	}
	json_t *errors = json_object_get(j, "errors"), *e;
	size_t i;
	if (json_array_size(errors) > 0)
		printf("not applied by the agent:\n");
	json_array_foreach(errors, i, e)
		printf("  %s.%s: %s\n", str_or(e, "application", "?"), str_or(e, "key", "?"),
		    str_or(e, "message", ""));
	json_decref(j);
	return 0;
}

/* ---- policies ---- */

static int
cmd_policies(struct ctl *c, int argc, char **argv)
{
	char path[2048] = "/api/v1/policies";
	if (argc == 3 && strcmp(argv[1], "--group") == 0) {
		char *enc = evhttp_uriencode(argv[2], -1, 0);
		int n = enc ? str_fmt(path, sizeof(path), "/api/v1/policies?group=%s", enc) : -1;
		free(enc);
		if (n < 0) {
			fprintf(stderr, "custosctl policies: group path too long\n");
			return 2;
		}
	} else if (argc != 1) {
		fprintf(stderr, "custosctl: policies [--group PATH]\n");
		return 2;
	}
	json_t *j = ctl_call(c, "GET", path, NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	printf("%-28s %-24s %-10s %-8s %-6s %-7s %s\n", "NAME", "GROUP", "APP", "KIND", "ACTIVE",
	    "SOURCE", "SETTINGS");
	size_t i;
	json_t *p;
	json_array_foreach(j, i, p) {
		printf("%-28s %-24s %-10s %-8s %-6s %-7s %zu\n", str_or(p, "name", "?"),
		    str_or(p, "group", "-"), str_or(p, "application", "-"), str_or(p, "kind", "-"),
		    json_is_true(json_object_get(p, "active")) ? "yes" : "no", str_or(p, "source", "-"),
		    json_array_size(json_object_get(p, "settings")));
	}
	printf("%zu polic%s\n", json_array_size(j), json_array_size(j) == 1 ? "y" : "ies");
	json_decref(j);
	return 0;
}

static void
print_policy(json_t *p)
{
	printf("name:         %s\n", str_or(p, "name", "?"));
	printf("group:        %s\n", str_or(p, "group", "-"));
	printf("application:  %s\n", str_or(p, "application", "-"));
	printf("kind:         %s%s\n", str_or(p, "kind", "-"),
	    json_is_true(json_object_get(p, "active")) ? " (active)" : " (inactive)");
	printf("inherit:      %s\n", json_is_false(json_object_get(p, "inherit")) ? "no" : "yes");
	printf("source:       %s\n", str_or(p, "source", "-"));
	if (json_integer_value(json_object_get(p, "threshold")) > 0)
		printf("outbreak:     %lld threats within %lld min; ends after %lld quiet min\n",
		    (long long)json_integer_value(json_object_get(p, "threshold")),
		    (long long)json_integer_value(json_object_get(p, "window")),
		    (long long)json_integer_value(json_object_get(p, "quiet")));
	printf("\n%-32s %-6s %s\n", "KEY", "LOCKED", "VALUE");
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(p, "settings"), i, s) {
		char v[1024];
		value_text(json_object_get(s, "value"), v, sizeof(v));
		printf("%-32s %-6s %s\n", str_or(s, "key", "?"),
		    json_is_true(json_object_get(s, "locked")) ? "yes" : "", v);
	}
}

/* policy NAME | task NAME: one object. */
static int
cmd_show(struct ctl *c, const char *collection, const char *name, void (*print)(json_t *))
{
	json_t *j = call_object(c, "GET", collection, name, "", NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	print(j);
	json_decref(j);
	return 0;
}

/* policy put FILE.json | task put FILE.json: PUT /COLLECTION/NAME. */
static int
cmd_put_file(struct ctl *c, const char *collection, const char *what, const char *file)
{
	json_t *body = load_object(file);
	if (body == NULL)
		return 1;
	const char *name = json_string_value(json_object_get(body, "name"));
	if (name == NULL || *name == '\0') {
		fprintf(stderr, "custosctl: %s: the %s needs a \"name\"\n", file, what);
		json_decref(body);
		return 2;
	}
	char msg[512];
	str_fmt(msg, sizeof(msg), "%s %s stored", what, name);
	json_t *j = call_object(c, "PUT", collection, name, "", body);
	json_decref(body);
	return done(c, j, msg);
}

static int
cmd_delete(struct ctl *c, const char *collection, const char *what, const char *name)
{
	char msg[512];
	str_fmt(msg, sizeof(msg), "%s %s deleted", what, name);
	return done(c, call_object(c, "DELETE", collection, name, "", NULL), msg);
}

static int
cmd_policy(struct ctl *c, int argc, char **argv)
{
	if (argc == 2)
		return cmd_show(c, "policies", argv[1], print_policy);
	if (argc == 3 && strcmp(argv[1], "put") == 0)
		return cmd_put_file(c, "policies", "policy", argv[2]);
	if (argc == 3 && strcmp(argv[1], "delete") == 0)
		return cmd_delete(c, "policies", "policy", argv[2]);
	fprintf(stderr, "custosctl: policy NAME | policy put FILE.json | policy delete NAME\n");
	return 2;
}

/* ---- tasks ---- */

/* "group Servers", "hosts a,b", "selection stale", "host web-1", "server". */
static void
scope_text(json_t *t, char *out, size_t len)
{
	json_t *s = json_object_get(t, "scope");
	if (!json_is_object(s))
		s = t;
	json_t *hosts = json_object_get(s, "hosts"), *server = json_object_get(s, "server");
	const char *v;
	str_copy(out, "-", len);
	if ((v = str_or(s, "group", NULL)) != NULL) {
		str_fmt(out, len, "group %s", v);
	} else if ((v = str_or(s, "selection", NULL)) != NULL) {
		str_fmt(out, len, "selection %s", v);
	} else if ((v = str_or(s, "host", NULL)) != NULL) {
		str_fmt(out, len, "host %s", v);
	} else if (json_is_array(hosts)) {
		size_t i, off = 0;
		json_t *h;
		json_array_foreach(hosts, i, h) {
			const char *name = json_string_value(h);
			int n = str_fmt(out + off, len - off, "%s%s", i ? "," : "hosts ", name ? name : "?");
			if (n < 0)
				break;
			off += (size_t)n;
		}
	} else if (server && !json_is_false(server)) {
		str_copy(out, "server", len);
	}
}

static int
cmd_tasks(struct ctl *c)
{
	json_t *j = ctl_call(c, "GET", "/api/v1/tasks", NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	printf("%-24s %-20s %-28s %-24s %s\n", "NAME", "TYPE", "SCOPE", "SCHEDULE", "SOURCE");
	size_t i;
	json_t *t;
	json_array_foreach(j, i, t) {
		char scope[256];
		scope_text(t, scope, sizeof(scope));
		printf("%-24s %-20s %-28s %-24s %s\n", str_or(t, "name", "?"), str_or(t, "type", "-"),
		    scope, str_or(t, "schedule", "manual"), str_or(t, "source", "-"));
	}
	printf("%zu task(s)\n", json_array_size(j));
	json_decref(j);
	return 0;
}

static void
print_task(json_t *t)
{
	char scope[1024], params[2048];
	scope_text(t, scope, sizeof(scope));
	value_text(json_object_get(t, "params"), params, sizeof(params));
	printf("name:          %s\n", str_or(t, "name", "?"));
	printf("type:          %s\n", str_or(t, "type", "-"));
	printf("scope:         %s\n", scope);
	printf("params:        %s\n", params);
	printf("schedule:      %s\n", str_or(t, "schedule", "manual"));
	printf("random delay:  %lld s\n",
	    (long long)json_integer_value(json_object_get(t, "random_delay")));
	printf("time limit:    %lld s\n",
	    (long long)json_integer_value(json_object_get(t, "time_limit")));
	printf("manual starts: %lld, cancels: %lld\n",
	    (long long)json_integer_value(json_object_get(t, "manual_seq")),
	    (long long)json_integer_value(json_object_get(t, "cancel_seq")));
	printf("source:        %s\n", str_or(t, "source", "-"));
}

/* The last line of a run's output tail, for the table. */
static void
last_line(const char *s, char *out, size_t len)
{
	if (s == NULL || *s == '\0') {
		str_copy(out, "", len);
		return;
	}
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	size_t start = n;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	size_t w = n - start < len - 1 ? n - start : len - 1;
	memcpy(out, s + start, w);
	out[w] = '\0';
}

static int
cmd_task_results(struct ctl *c, const char *name, int argc, char **argv)
{
	long long limit = 100, offset = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
			limit = strtoll(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--offset") == 0 && i + 1 < argc)
			offset = strtoll(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "custosctl task results: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	char suffix[96];
	str_fmt(suffix, sizeof(suffix), "/results?limit=%lld&offset=%lld", limit, offset);
	json_t *j = call_object(c, "GET", "tasks", name, suffix, NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	printf("%-24s %5s %-10s %5s %-20s %-20s %s\n", "HOST", "RUN", "STATE", "EXIT", "STARTED",
	    "ENDED", "OUTPUT");
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(j, "results"), i, r) {
		char started[32] = "-", ended[32] = "-", exitc[16] = "-", out[80];
		json_int_t t;
		if ((t = json_integer_value(json_object_get(r, "started"))) > 0)
			time_iso(t, started);
		if ((t = json_integer_value(json_object_get(r, "ended"))) > 0)
			time_iso(t, ended);
		if (json_is_integer(json_object_get(r, "exit_code")))
			str_fmt(exitc, sizeof(exitc), "%lld",
			    (long long)json_integer_value(json_object_get(r, "exit_code")));
		last_line(json_string_value(json_object_get(r, "output_tail")), out, sizeof(out));
		printf("%-24s %5lld %-10s %5s %-20s %-20s %s\n", str_or(r, "host", "?"),
		    (long long)json_integer_value(json_object_get(r, "run")), str_or(r, "state", "-"),
		    exitc, started, ended, out);
	}
	printf("%zu of %lld result(s)\n", json_array_size(json_object_get(j, "results")),
	    (long long)json_integer_value(json_object_get(j, "total")));
	json_decref(j);
	return 0;
}

static int
cmd_task(struct ctl *c, int argc, char **argv)
{
	char msg[512];
	if (argc == 2)
		return cmd_show(c, "tasks", argv[1], print_task);
	if (argc == 3 && strcmp(argv[1], "put") == 0)
		return cmd_put_file(c, "tasks", "task", argv[2]);
	if (argc == 3 && strcmp(argv[1], "delete") == 0)
		return cmd_delete(c, "tasks", "task", argv[2]);
	if (argc == 3 && strcmp(argv[1], "start") == 0) {
		str_fmt(msg, sizeof(msg), "task %s started; the agents in scope were woken", argv[2]);
		return done(c, call_object(c, "POST", "tasks", argv[2], "/start", NULL), msg);
	}
	if (argc == 3 && strcmp(argv[1], "cancel") == 0) {
		str_fmt(msg, sizeof(msg), "task %s: cancel sent to the agents running it", argv[2]);
		return done(c, call_object(c, "POST", "tasks", argv[2], "/cancel", NULL), msg);
	}
	if (argc >= 3 && strcmp(argv[1], "results") == 0)
		return cmd_task_results(c, argv[2], argc - 3, argv + 3);
	fprintf(stderr, "custosctl: task NAME | task put FILE.json | task delete NAME | "
	    "task start NAME | task cancel NAME | task results NAME [--limit N] [--offset N]\n");
	return 2;
}

/* ---- selections, rules, relocation, reload ---- */

static int
cmd_selections(struct ctl *c)
{
	json_t *j = ctl_call(c, "GET", "/api/v1/selections", NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	printf("%-24s %-7s %s\n", "NAME", "SOURCE", "FILTER");
	size_t i;
	json_t *s;
	json_array_foreach(j, i, s)
		printf("%-24s %-7s %s\n", str_or(s, "name", "?"), str_or(s, "source", "-"),
		    str_or(s, "filter", ""));
	printf("%zu selection(s)\n", json_array_size(j));
	json_decref(j);
	return 0;
}

static int
cmd_selection(struct ctl *c, int argc, char **argv)
{
	char msg[512];
	if (argc == 4 && strcmp(argv[1], "put") == 0) {
		json_t *body = json_pack("{s:s}", "filter", argv[3]);
		json_t *j = call_object(c, "PUT", "selections", argv[2], "", body);
		json_decref(body);
		str_fmt(msg, sizeof(msg), "selection %s stored", argv[2]);
		return done(c, j, msg);
	}
	if (argc == 3 && strcmp(argv[1], "delete") == 0)
		return cmd_delete(c, "selections", "selection", argv[2]);
	if (argc == 3 && strcmp(argv[1], "hosts") == 0) {
		json_t *j = call_object(c, "GET", "selections", argv[2], "/hosts", NULL);
		if (j == NULL || c->json)
			return done(c, j, "");
		ctl_print_hosts(json_object_get(j, "hosts"));
		json_decref(j);
		return 0;
	}
	fprintf(stderr, "custosctl: selection put NAME FILTER | selection hosts NAME | "
	    "selection delete NAME\n");
	return 2;
}

static int
cmd_rules(struct ctl *c)
{
	json_t *j = ctl_call(c, "GET", "/api/v1/rules", NULL);
	if (j == NULL || c->json)
		return done(c, j, "");
	printf("%5s %-16s %-24s %-16s %-18s %-12s %-10s %s\n", "ORDER", "NAME", "GROUP", "HOSTNAME",
	    "SUBNET", "OS", "TAG", "SOURCE");
	size_t i;
	json_t *r;
	json_array_foreach(j, i, r)
		printf("%5lld %-16s %-24s %-16s %-18s %-12s %-10s %s\n",
		    (long long)json_integer_value(json_object_get(r, "order")), str_or(r, "name", "?"),
		    str_or(r, "group", "-"), str_or(r, "hostname", "*"), str_or(r, "subnet", "*"),
		    str_or(r, "os", "*"), str_or(r, "tag", "*"), str_or(r, "source", "-"));
	printf("%zu rule(s); the first match places a host\n", json_array_size(j));
	json_decref(j);
	return 0;
}

static int
cmd_relocate(struct ctl *c, int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--force") != 0)) {
		fprintf(stderr, "custosctl: relocate [--force]\n");
		return 2;
	}
	json_t *body = json_pack("{s:b}", "force", argc == 2);
	json_t *j = ctl_call(c, "POST", "/api/v1/relocate", body);
	json_decref(body);
	char msg[128];
	str_fmt(msg, sizeof(msg), "%lld host(s) moved",
	    j ? (long long)json_integer_value(json_object_get(j, "moved")) : 0LL);
	return done(c, j, msg);
}

int
ctl_mgmt_command(struct ctl *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	if (strcmp(cmd, "groups") == 0 && argc == 1)
		return cmd_groups(c);
	if (strcmp(cmd, "group") == 0)
		return cmd_group(c, argc, argv);
	if (strcmp(cmd, "move") == 0 && argc == 3)
		return cmd_move(c, argv[1], argv[2]);
	if (strcmp(cmd, "host-settings") == 0 && argc == 3)
		return cmd_host_settings(c, argv[1], argv[2]);
	if (strcmp(cmd, "host-policy") == 0 && argc == 2)
		return cmd_host_policy(c, argv[1]);
	if (strcmp(cmd, "policies") == 0)
		return cmd_policies(c, argc, argv);
	if (strcmp(cmd, "policy") == 0)
		return cmd_policy(c, argc, argv);
	if (strcmp(cmd, "tasks") == 0 && argc == 1)
		return cmd_tasks(c);
	if (strcmp(cmd, "task") == 0)
		return cmd_task(c, argc, argv);
	if (strcmp(cmd, "selections") == 0 && argc == 1)
		return cmd_selections(c);
	if (strcmp(cmd, "selection") == 0)
		return cmd_selection(c, argc, argv);
	if (strcmp(cmd, "rules") == 0 && argc == 1)
		return cmd_rules(c);
	if (strcmp(cmd, "relocate") == 0)
		return cmd_relocate(c, argc, argv);
	if (strcmp(cmd, "reload") == 0 && argc == 1)
		return done(c, ctl_call(c, "POST", "/api/v1/reload", NULL), "etc/custos.d applied");
	return -1;
}
