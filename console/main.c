/* main.c — custosctl, the Administration Console on the command line: a
 * client of custosd's REST API. Readable tables by default, --json for
 * scripts (the API's JSON as it is). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <event2/http.h>

#include "conf.h"
#include "ctl.h"
#include "http.h"
#include "util.h"

#define MAX_OVERRIDES 32

static const struct conf_key ctl_schema[] = {
	{ "api.url", CONF_STRING, "https://127.0.0.1:13299", 0, 0, false, "the console API of custosd" },
	{ "api.ca_file", CONF_PATH, "/var/lib/custos/ca.pem", 0, 0, false,
	  "the server's CA certificate (custosd's state_dir/ca.pem)" },
	{ "api.user", CONF_STRING, "admin", 0, 0, false, "administrator name" },
	{ "api.password_file", CONF_PATH, "/var/lib/custos/admin.password", 0, 0, false,
	  "file with the administrator's password" },
	{ NULL, 0, NULL, 0, 0, false, NULL },
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: custosctl [-c FILE] [-o key=value]... [--json] COMMAND\n"
	    "\n"
	    "Commands:\n"
	    "  status                          server, database and fleet summary\n"
	    "  hosts [--group PATH] [--status OK|Warning|Critical] [--filter EXPR] [--name GLOB]\n"
	    "                                  hosts with status, group and reasons (--group:\n"
	    "                                  the group and its subgroups; --filter: as in a\n"
	    "                                  selection, e.g. \"db_age_days > 3 and os = debian*\")\n"
	    "  host NAME                       one host with its posture (packages counted)\n"
	    "  host-software NAME              the host's installed packages (from the database)\n"
	    "  wake NAME                       ask the host's agent to sync now\n"
	    "  events [--host NAME] [--limit N] [--since UNIXTIME]\n"
	    "  token list\n"
	    "  token create NAME [--days N] [--max-uses N]   prints the secret once\n"
	    "  token delete NAME\n"
	    "\n"
	    "Groups, policies and tasks:\n"
	    "  groups                          the group tree with host counts\n"
	    "  group create PATH               e.g. Servers/Web (creates missing parents too)\n"
	    "  group delete PATH               an empty group; its hosts go to Unassigned\n"
	    "  move NAME GROUP                 put a host in a group (\"\" = Unassigned)\n"
	    "  host-settings NAME JSON         a host's local settings, {\"app\": {\"key\": value}}\n"
	    "  host-policy NAME                a host's effective policy and what it applied\n"
	    "  policies [--group PATH]\n"
	    "  policy NAME | policy put FILE.json | policy delete NAME\n"
	    "  tasks\n"
	    "  task NAME | task put FILE.json | task delete NAME\n"
	    "  task start NAME | task cancel NAME | task results NAME [--limit N] [--offset N]\n"
	    "  selections\n"
	    "  selection put NAME FILTER | selection hosts NAME | selection delete NAME\n"
	    "  rules                           relocation rules, in the order they are tried\n"
	    "  relocate [--force]              apply them to unplaced hosts (--force: to all)\n"
	    "  reload                          re-read etc/custos.d (refused as a whole when broken)\n"
	    "\n"
	    "  -c FILE     configuration (default: $CUSTOSCTL_CONF, ../etc/custosctl.conf\n"
	    "              beside the binary, /etc/custos/custosctl.conf)\n"
	    "  -o KEY=VAL  override: api.url, api.ca_file, api.user, api.password_file\n"
	    "  --json      print the API's JSON instead of a table (errors too)\n"
	    "Exit status: 0 ok, 1 the server refused or failed, 2 usage.\n");
}

json_t *
ctl_call(struct ctl *c, const char *method, const char *path, json_t *body)
{
	char err[1024], *text = NULL, *resp = NULL;
	int status = 0;
	if (body)
		text = json_dumps(body, JSON_COMPACT);
	int rc = http_request(&c->t, method, path, text, &status, &resp, err, sizeof(err));
	free(text);
	if (rc < 0) {
		fprintf(stderr, "custosctl: %s\n", err);
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loads(resp, 0, &jerr);
	if (status >= 300 || j == NULL) {
		const char *msg = json_string_value(json_object_get(j, "error"));
		if (c->json && json_is_object(j))
			ctl_print_json(j);      /* scripts get the error as JSON too */
		fprintf(stderr, "custosctl: %s %s: HTTP %d: %s\n", method, path, status,
		    msg ? msg : (j ? "error" : resp));
		free(resp);
		json_decref(j);
		return NULL;
	}
	free(resp);
	return j;
}

void
ctl_object_path(char *out, size_t len, const char *collection, const char *name, const char *suffix)
{
	char *enc = evhttp_uriencode(name, -1, 0);
	str_fmt(out, len, "/api/v1/%s/%s%s", collection, enc ? enc : name, suffix);
	free(enc);
}

void
ctl_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s)
		printf("%s\n", s);
	free(s);
}

static void
fmt_age(int64_t t, char *out, size_t len)
{
	if (t <= 0) {
		str_copy(out, "never", len);
		return;
	}
	int64_t d = now_s() - t;
	if (d < 0)
		d = 0;
	if (d < 120)
		str_fmt(out, len, "%llds ago", (long long)d);
	else if (d < 7200)
		str_fmt(out, len, "%lldm ago", (long long)(d / 60));
	else if (d < 172800)
		str_fmt(out, len, "%lldh ago", (long long)(d / 3600));
	else
		str_fmt(out, len, "%lldd ago", (long long)(d / 86400));
}

static void
reasons_text(json_t *reasons, char *out, size_t len)
{
	size_t i, off = 0;
	json_t *r;
	out[0] = '\0';
	json_array_foreach(reasons, i, r) {
		int n = snprintf(out + off, len - off, "%s%s", off ? "; " : "",
		    json_string_value(json_object_get(r, "text")));
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	if (off == 0)
		str_copy(out, "-", len);
}

static void
av_text(json_t *host, char *db, size_t dblen, char *rtp, size_t rtplen)
{
	json_t *av = json_array_get(json_object_get(host, "antivirus"), 0);
	if (av == NULL || !json_is_true(json_object_get(av, "installed"))) {
		str_copy(db, "no AV", dblen);
		str_copy(rtp, "-", rtplen);
		return;
	}
	fmt_age(json_integer_value(json_object_get(av, "db_time")), db, dblen);
	str_copy(rtp, json_is_true(json_object_get(av, "rtp")) ? "on" : "off", rtplen);
}

void
ctl_print_hosts(json_t *hosts)
{
	printf("%-24s %-9s %-20s %-10s %-10s %-4s %s\n", "NAME", "STATUS", "GROUP", "LAST SEEN",
	    "AV DB", "RTP", "REASONS");
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h) {
		char seen[32], db[32], rtp[8], reasons[1024];
		const char *group = json_string_value(json_object_get(h, "group"));
		fmt_age(json_integer_value(json_object_get(h, "last_seen")), seen, sizeof(seen));
		av_text(h, db, sizeof(db), rtp, sizeof(rtp));
		reasons_text(json_object_get(h, "reasons"), reasons, sizeof(reasons));
		printf("%-24s %-9s %-20s %-10s %-10s %-4s %s\n", json_string_value(json_object_get(h, "name")),
		    json_string_value(json_object_get(h, "status")),
		    group && *group ? group : "Unassigned", seen, db, rtp, reasons);
	}
	printf("%zu host(s)\n", json_array_size(hosts));
}

/* Every host matching query ("&key=value..."), following the API's pages. */
static json_t *
hosts_filtered(struct ctl *c, const char *query)
{
	json_t *all = json_array();
	size_t offset = 0;
	for (;;) {
		char path[4096];
		if (str_fmt(path, sizeof(path), "/api/v1/hosts?limit=10000&offset=%zu%s", offset, query) < 0) {
			fprintf(stderr, "custosctl hosts: arguments too long\n");
			json_decref(all);
			return NULL;
		}
		json_t *page = ctl_call(c, "GET", path, NULL);
		if (page == NULL) {
			json_decref(all);
			return NULL;
		}
		json_t *hosts = json_object_get(page, "hosts");
		size_t n = json_array_size(hosts);
		json_int_t total = json_integer_value(json_object_get(page, "total"));
		json_array_extend(all, hosts);
		json_decref(page);
		offset += n;
		if (n == 0 || (json_int_t)offset >= total)
			return all;
	}
}

/* hosts [--group PATH] [--status S] [--filter EXPR] [--name GLOB] */
static int
cmd_hosts(struct ctl *c, int argc, char **argv)
{
	static const char *const opts[][2] = { { "--group", "group" }, { "--status", "status" },
		{ "--filter", "filter" }, { "--name", "name" } };
	char query[2048] = "";
	size_t qlen = 0;
	for (int i = 1; i < argc; i++) {
		size_t k = 0;
		while (k < ARRAY_LEN(opts) && strcmp(argv[i], opts[k][0]) != 0)
			k++;
		if (k == ARRAY_LEN(opts) || i + 1 >= argc) {
			fprintf(stderr, "custosctl hosts: unknown argument %s\n", argv[i]);
			return 2;
		}
		char *enc = evhttp_uriencode(argv[++i], -1, 0);
		int n = enc ? str_fmt(query + qlen, sizeof(query) - qlen, "&%s=%s", opts[k][1], enc) : -1;
		free(enc);
		if (n < 0) {
			fprintf(stderr, "custosctl hosts: arguments too long\n");
			return 2;
		}
		qlen += (size_t)n;
	}
	/* without filters the API's bare array, as before paging existed */
	json_t *j = qlen ? hosts_filtered(c, query) : ctl_call(c, "GET", "/api/v1/hosts", NULL);
	if (j == NULL)
		return 1;
	if (c->json)
		ctl_print_json(j);
	else
		ctl_print_hosts(j);
	json_decref(j);
	return 0;
}

/* GET hosts/NAME + sub: NULL with *rc when done (an error, or --json
 * printed it), else the object for a table (*rc 0). */
static json_t *
get_host_object(struct ctl *c, const char *name, const char *sub, int *rc)
{
	char path[512];
	ctl_object_path(path, sizeof(path), "hosts", name, sub);
	json_t *j = ctl_call(c, "GET", path, NULL);
	*rc = j == NULL;
	if (j != NULL && c->json) {
		ctl_print_json(j);
		json_decref(j);
		return NULL;
	}
	return j;
}

static int
cmd_host(struct ctl *c, const char *name)
{
	int rc;
	json_t *j = get_host_object(c, name, "", &rc);
	if (j == NULL)
		return rc;
	char seen[32], db[32], rtp[8], reasons[1024];
	fmt_age(json_integer_value(json_object_get(j, "last_seen")), seen, sizeof(seen));
	av_text(j, db, sizeof(db), rtp, sizeof(rtp));
	reasons_text(json_object_get(j, "reasons"), reasons, sizeof(reasons));
	printf("name:        %s\n", json_string_value(json_object_get(j, "name")));
	printf("host id:     %s (#%lld)\n", json_string_value(json_object_get(j, "uid")),
	    (long long)json_integer_value(json_object_get(j, "id")));
	printf("status:      %s\n", json_string_value(json_object_get(j, "status")));
	printf("reasons:     %s\n", reasons);
	printf("last seen:   %s from %s%s\n", seen, json_string_value(json_object_get(j, "ip")),
	    json_is_true(json_object_get(j, "connected")) ? " (connected now)" : "");
	printf("os:          %s\n", json_string_value(json_object_get(j, "os")) ?: "?");
	printf("anti-virus:  databases %s, real-time protection %s\n", db, rtp);
	json_decref(j);
	return 0;
}

static int
cmd_host_software(struct ctl *c, const char *name)
{
	int rc;
	json_t *j = get_host_object(c, name, "/software", &rc);
	if (j == NULL)
		return rc;
	json_t *pkgs = json_object_get(j, "packages"), *p;
	size_t i;
	char when[32];
	fmt_age(json_integer_value(json_object_get(j, "posture_time")), when, sizeof(when));
	printf("%-40s %s\n", "PACKAGE", "VERSION");
	json_array_foreach(pkgs, i, p)
		printf("%-40s %s\n", json_string_value(json_object_get(p, "name")) ?: "?",
		    json_string_value(json_object_get(p, "version")) ?: "?");
	printf("%lld package(s) on %s, reported %s\n",
	    (long long)json_integer_value(json_object_get(j, "packages_count")),
	    json_string_value(json_object_get(j, "host")) ?: name, when);
	json_decref(j);
	return 0;
}

static int
cmd_simple(struct ctl *c, const char *method, const char *path)
{
	json_t *j = ctl_call(c, method, path, NULL);
	if (j == NULL)
		return 1;
	ctl_print_json(j);
	json_decref(j);
	return 0;
}

static int
cmd_events(struct ctl *c, int argc, char **argv)
{
	const char *host = NULL, *limit = "50", *since = "0";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
			host = argv[++i];
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
			limit = argv[++i];
		else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
			since = argv[++i];
		else {
			fprintf(stderr, "custosctl events: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	char path[512];
	char *enc = evhttp_uriencode(host ? host : "", -1, 0);
	str_fmt(path, sizeof(path), "/api/v1/events?limit=%d&since=%lld&host=%s", atoi(limit),
	    strtoll(since, NULL, 10), enc ? enc : "");
	free(enc);
	json_t *j = ctl_call(c, "GET", path, NULL);
	if (j == NULL)
		return 1;
	if (c->json) {
		ctl_print_json(j);
		json_decref(j);
		return 0;
	}
	printf("%-20s %-20s %-8s %-16s %s\n", "TIME", "HOST", "SEVERITY", "KIND", "MESSAGE");
	size_t i;
	json_t *e;
	json_array_foreach(j, i, e) {
		char when[32];
		time_iso(json_integer_value(json_object_get(e, "time")), when);
		printf("%-20s %-20s %-8s %-16s %s\n", when, json_string_value(json_object_get(e, "host")),
		    json_string_value(json_object_get(e, "severity")),
		    json_string_value(json_object_get(e, "kind")),
		    json_string_value(json_object_get(e, "message")));
	}
	json_decref(j);
	return 0;
}

static int
cmd_token(struct ctl *c, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0) {
		json_t *j = ctl_call(c, "GET", "/api/v1/tokens", NULL);
		if (j == NULL)
			return 1;
		if (c->json) {
			ctl_print_json(j);
		} else {
			printf("%-20s %-7s %-12s %-21s %s\n", "NAME", "SOURCE", "USES", "EXPIRES", "");
			size_t i;
			json_t *t;
			json_array_foreach(j, i, t) {
				char uses[32], exp[32];
				json_int_t max = json_integer_value(json_object_get(t, "max_uses"));
				json_int_t e = json_integer_value(json_object_get(t, "expires"));
				str_fmt(uses, sizeof(uses), "%lld/%s",
				    (long long)json_integer_value(json_object_get(t, "uses")),
				    max ? "" : "-");
				if (max)
					str_fmt(uses, sizeof(uses), "%lld/%lld",
					    (long long)json_integer_value(json_object_get(t, "uses")), (long long)max);
				if (e)
					time_iso(e, exp);
				else
					str_copy(exp, "never", sizeof(exp));
				printf("%-20s %-7s %-12s %-21s %s\n", json_string_value(json_object_get(t, "name")),
				    json_string_value(json_object_get(t, "source")), uses, exp,
				    e && e <= now_s() ? "(expired)" : "");
			}
		}
		json_decref(j);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "create") == 0) {
		long long days = 0, max_uses = 0;
		for (int i = 3; i < argc; i++) {
			if (strcmp(argv[i], "--days") == 0 && i + 1 < argc)
				days = strtoll(argv[++i], NULL, 10);
			else if (strcmp(argv[i], "--max-uses") == 0 && i + 1 < argc)
				max_uses = strtoll(argv[++i], NULL, 10);
			else {
				fprintf(stderr, "custosctl token create: unknown argument %s\n", argv[i]);
				return 2;
			}
		}
		json_t *body = json_pack("{s:s, s:I, s:I}", "name", argv[2], "expires_in",
		    (json_int_t)(days * 86400), "max_uses", (json_int_t)max_uses);
		json_t *j = ctl_call(c, "POST", "/api/v1/tokens", body);
		json_decref(body);
		if (j == NULL)
			return 1;
		if (c->json)
			ctl_print_json(j);
		else
			printf("token %s created; give this secret to the agents (shown only now):\n%s\n",
			    json_string_value(json_object_get(j, "name")),
			    json_string_value(json_object_get(j, "token")));
		json_decref(j);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "delete") == 0) {
		char path[256];
		ctl_object_path(path, sizeof(path), "tokens", argv[2], "");
		return cmd_simple(c, "DELETE", path);
	}
	fprintf(stderr, "custosctl: token list | token create NAME [--days N] [--max-uses N] | token delete NAME\n");
	return 2;
}

/* $CUSTOSCTL_CONF, else etc/custosctl.conf beside the binary's directory
 * (a source tree: build/custosctl -> etc/), else /etc/custos/custosctl.conf,
 * else none (built-in defaults). */
static const char *
default_config(char *buf, size_t len)
{
	const char *env = getenv("CUSTOSCTL_CONF");
	if (env && *env)
		return env;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (str_fmt(buf, len, "%s/../etc/custosctl.conf", exe) > 0 && access(buf, R_OK) == 0)
				return buf;
		}
	}
	if (access("/etc/custos/custosctl.conf", R_OK) == 0)
		return "/etc/custos/custosctl.conf";
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *conf_path = NULL, *overrides[MAX_OVERRIDES];
	size_t nov = 0;
	static struct ctl c;
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "+c:o:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'o':
			if (nov == MAX_OVERRIDES)
				return 2;
			overrides[nov++] = optarg;
			break;
		case 'j': c.json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	/* --json may also follow the command */
	int nargs = 0;
	char *args[64];
	for (int i = optind; i < argc && nargs < 64; i++) {
		if (strcmp(argv[i], "--json") == 0)
			c.json = 1;
		else
			args[nargs++] = argv[i];
	}
	if (nargs == 0) {
		usage(stderr);
		return 2;
	}
	char found[4200];
	if (conf_path == NULL)
		conf_path = default_config(found, sizeof(found));
	struct conf *cfg;
	char err[4096];
	if (conf_load(&cfg, conf_path, ctl_schema, overrides, nov, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (http_parse_url(conf_str(cfg, "api.url"), c.t.host, sizeof(c.t.host), &c.t.port) < 0) {
		fprintf(stderr, "custosctl: api.url \"%s\" is not https://HOST[:PORT]\n", conf_str(cfg, "api.url"));
		conf_free(cfg);
		return 2;
	}
	c.t.ca_file = conf_str(cfg, "api.ca_file");
	c.t.user = conf_str(cfg, "api.user");
	const char *pwfile = conf_str(cfg, "api.password_file");
	char *pw = file_read(pwfile, sizeof(c.password) - 1, NULL);
	if (pw == NULL) {
		fprintf(stderr, "custosctl: cannot read the administrator password from %s "
		    "(set api.password_file; custosd writes it to its state directory at first start)\n", pwfile);
		conf_free(cfg);
		return 2;
	}
	pw[strcspn(pw, "\r\n")] = '\0';
	str_copy(c.password, pw, sizeof(c.password));
	free(pw);
	c.t.password = c.password;

	int rc;
	const char *cmd = args[0];
	if (strcmp(cmd, "hosts") == 0)
		rc = cmd_hosts(&c, nargs, args);
	else if (strcmp(cmd, "host") == 0 && nargs == 2)
		rc = cmd_host(&c, args[1]);
	else if (strcmp(cmd, "host-software") == 0 && nargs == 2)
		rc = cmd_host_software(&c, args[1]);
	else if (strcmp(cmd, "status") == 0 && nargs == 1)
		rc = cmd_simple(&c, "GET", "/api/v1/status");
	else if (strcmp(cmd, "wake") == 0 && nargs == 2) {
		char path[512];
		ctl_object_path(path, sizeof(path), "hosts", args[1], "/wake");
		rc = cmd_simple(&c, "POST", path);
	} else if (strcmp(cmd, "events") == 0)
		rc = cmd_events(&c, nargs, args);
	else if (strcmp(cmd, "token") == 0)
		rc = cmd_token(&c, nargs, args);
	else if ((rc = ctl_mgmt_command(&c, nargs, args)) < 0) {
		fprintf(stderr, "custosctl: unknown command or wrong arguments: %s\n", cmd);
		usage(stderr);
		rc = 2;
	}
	conf_free(cfg);
	return rc;
}
