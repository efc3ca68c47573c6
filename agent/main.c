/* main.c — custos-agent, the Network Agent: options, enrolment, the local
 * commands (event, status, threats) and the event loop. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "agent.h"
#include "conf.h"
#include "config.h"
#include "evqueue.h"
#include "log.h"
#include "policy_apply.h"
#include "tasks.h"
#include "util.h"

#define MAX_OVERRIDES 64

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: custos-agent [-c FILE] [-o section.key=value]... [-t] [-d]\n"
	    "                    [--state-dir DIR] [--server HOST[:PORT] --token TOKEN] [--enroll-only]\n"
	    "       custos-agent [-c FILE] [--state-dir DIR] event --severity S --kind K --message TEXT [--data JSON]\n"
	    "       custos-agent [-c FILE] [--state-dir DIR] status\n"
	    "       custos-agent [-c FILE] [--state-dir DIR] threats --clear\n"
	    "\n"
	    "Custos Network Agent: reports this host's protection posture to the\n"
	    "Administration Server over mutual TLS, queues events on disk until the server\n"
	    "has stored them, and syncs at once on a signed UDP wake-up.\n"
	    "\n"
	    "  -c FILE            configuration file (default /etc/custos/custos-agent.conf;\n"
	    "                     without one the built-in defaults apply)\n"
	    "  -o KEY=VALUE       override one setting (repeatable)\n"
	    "  -t                 check the configuration and exit\n"
	    "  -d                 log debug messages\n"
	    "  --state-dir DIR    same as -o agent.state_dir=DIR\n"
	    "  --server, --token  enroll first (when not enrolled yet), then run\n"
	    "  --enroll-only      exit after enrolling\n"
	    "  --help-config      list every setting with its default\n"
	    "\n"
	    "Commands:\n"
	    "  event     queue an event (severity critical|error|warning|info); e.g. for\n"
	    "            clamd's VirusEvent. kind threat_found also counts an unresolved threat\n"
	    "  status    print identity, pinned server and queue state (JSON)\n"
	    "  threats --clear   mark the unresolved threats as resolved and tell the server\n"
	    "            (a threats_cleared event; the server then asks for the posture)\n");
}

static struct conf *
load_config(const char *path, const char *const *ov, size_t nov)
{
	struct conf *cfg;
	char err[8192];
	/* the default path is optional: an agent runs on defaults + -o alone */
	if (path == NULL && access("/etc/custos/custos-agent.conf", R_OK) == 0)
		path = "/etc/custos/custos-agent.conf";
	if (conf_load(&cfg, path, agent_schema, ov, nov, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	if (log_level_parse(conf_str(cfg, "log.level")) < 0) {
		fprintf(stderr, "%s: log.level must be error, warn, info or debug\n", conf_file(cfg));
		conf_free(cfg);
		return NULL;
	}
	return cfg;
}

static int
cmd_event(struct conf *cfg, int argc, char **argv)
{
	const char *sev = NULL, *kind = NULL, *message = NULL, *data = NULL;
	static const struct option opts[] = {
		{ "severity", required_argument, NULL, 's' },
		{ "kind", required_argument, NULL, 'k' },
		{ "message", required_argument, NULL, 'm' },
		{ "data", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': sev = optarg; break;
		case 'k': kind = optarg; break;
		case 'm': message = optarg; break;
		case 'j': data = optarg; break;
		default: return 2;
		}
	}
	if (!sev || !kind || !message) {
		fprintf(stderr, "custos-agent event: --severity, --kind and --message are required\n");
		return 2;
	}
	json_t *dj = NULL;
	if (data) {
		json_error_t jerr;
		dj = json_loads(data, 0, &jerr);
		if (!json_is_object(dj)) {
			fprintf(stderr, "custos-agent event: --data must be a JSON object (%s)\n", jerr.text);
			json_decref(dj);
			return 2;
		}
	}
	char err[512], dir[4200];
	const char *state = conf_str(cfg, "agent.state_dir");
	str_fmt(dir, sizeof(dir), "%s/spool", state);
	struct evq *q = evq_open(dir, (size_t)conf_int(cfg, "agent.queue_max"), err, sizeof(err));
	if (q == NULL) {
		fprintf(stderr, "custos-agent event: %s\n", err);
		json_decref(dj);
		return 1;
	}
	json_t *ev = evq_make_event(sev, kind, message, dj);
	json_decref(dj);
	/* count the threat before the event is queued: the running agent may
	 * send it at once, and the server then asks for the posture, which
	 * must already include this threat */
	bool threat = ev && strcmp(kind, "threat_found") == 0;
	if (threat && agent_threats_update(state, 1, false) < 0)
		fprintf(stderr, "custos-agent event: could not count the threat in %s\n", state);
	int rc = ev && evq_enqueue(q, ev, err, sizeof(err)) == 0 ? 0 : 1;
	if (rc != 0) {
		fprintf(stderr, "custos-agent event: %s\n", ev ? err : "invalid event");
		if (threat && agent_threats_update(state, -1, false) < 0)
			fprintf(stderr, "custos-agent event: could not uncount the threat in %s\n", state);
	} else
		printf("%s\n", json_string_value(json_object_get(ev, "id")));
	json_decref(ev);
	evq_close(q);
	return rc;
}

/* Resets the unresolved threats and queues a "threats_cleared" event, so
 * that the server learns it at once (it then asks for the posture). */
static int
cmd_threats_clear(struct conf *cfg)
{
	char err[512], dir[4200];
	const char *state = conf_str(cfg, "agent.state_dir");
	if (agent_threats_update(state, 0, true) < 0) {
		fprintf(stderr, "custos-agent threats: cannot reset %s/threats_unresolved: %s\n", state,
		    strerror(errno));
		return 1;
	}
	str_fmt(dir, sizeof(dir), "%s/spool", state);
	struct evq *q = evq_open(dir, (size_t)conf_int(cfg, "agent.queue_max"), err, sizeof(err));
	json_t *ev = q ? evq_make_event("info", "threats_cleared", "unresolved threats marked as resolved",
	    NULL) : NULL;
	int rc = 0;
	if (q == NULL || ev == NULL || evq_enqueue(q, ev, err, sizeof(err)) < 0) {
		/* the count is reset all the same; the next sync reports it */
		fprintf(stderr, "custos-agent threats: threats cleared, but the server learns it only at "
		    "the next sync: %s\n", q && ev ? err : q ? "out of memory" : err);
		rc = 1;
	}
	json_decref(ev);
	if (q)
		evq_close(q);
	return rc;
}

static int
cmd_status(struct conf *cfg)
{
	struct agent a;
	char err[512], dir[4200];
	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	str_copy(a.state_dir, conf_str(cfg, "agent.state_dir"), sizeof(a.state_dir));
	int rc = agent_load_identity(&a, err, sizeof(err));
	str_fmt(dir, sizeof(dir), "%s/spool", a.state_dir);
	struct evq *q = evq_open(dir, (size_t)conf_int(cfg, "agent.queue_max"), err, sizeof(err));
	json_t *j = json_pack("{s:b, s:s, s:s, s:s, s:s, s:I, s:I}", "enrolled", rc == 0,
	    "host_id", a.uid, "name", a.name, "server", a.server_host, "server_fingerprint", a.pinned_fp,
	    "queued_events", (json_int_t)(q ? evq_count(q) : 0),
	    "dropped_events", (json_int_t)(q ? evq_dropped(q) : 0));
	char *text = json_dumps(j, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(j);
	if (q)
		evq_close(q);
	X509_free(a.server_cert);
	SSL_CTX_free(a.ctx);
	return rc == 0 ? 0 : 1;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("main", "signal %d: stopping", (int)sig);
	event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
	const char *conf_path = NULL, *server = NULL, *token = NULL;
	const char *overrides[MAX_OVERRIDES + 1];
	char state_override[4200];
	size_t nov = 0;
	int check = 0, debug = 0, enroll_only = 0, help_config = 0;
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 'S' },
		{ "token", required_argument, NULL, 'T' },
		{ "state-dir", required_argument, NULL, 'D' },
		{ "enroll-only", no_argument, NULL, 'E' },
		{ "help-config", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	/* "+": stop at the first command word so its own options stay its own */
	while ((ch = getopt_long(argc, argv, "+c:o:tdhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'o':
			if (nov == MAX_OVERRIDES) {
				fprintf(stderr, "custos-agent: at most %d -o options\n", MAX_OVERRIDES);
				return 1;
			}
			overrides[nov++] = optarg;
			break;
		case 'D':
			if (nov == MAX_OVERRIDES ||
			    str_fmt(state_override, sizeof(state_override), "agent.state_dir=%s", optarg) < 0) {
				fprintf(stderr, "custos-agent: --state-dir too long\n");
				return 1;
			}
			overrides[nov++] = state_override;
			break;
		case 'S': server = optarg; break;
		case 'T': token = optarg; break;
		case 'E': enroll_only = 1; break;
		case 't': check = 1; break;
		case 'd': debug = 1; break;
		case 'H': help_config = 1; break;
		case 'V': printf("custos-agent %s\n", AGENT_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (help_config) {
		conf_print_schema(agent_schema);
		return 0;
	}
	struct conf *cfg = load_config(conf_path, overrides, nov);
	if (cfg == NULL)
		return 1;
	if (check) {
		printf("configuration OK\n");
		conf_free(cfg);
		return 0;
	}
	log_init("custos-agent", conf_str(cfg, "log.target"),
	    debug ? LOG_LVL_DEBUG : (enum log_level)log_level_parse(conf_str(cfg, "log.level")));
	if (optind < argc) {
		const char *cmd = argv[optind];
		int rc;
		if (strcmp(cmd, "event") == 0)
			rc = cmd_event(cfg, argc - optind, argv + optind);
		else if (strcmp(cmd, "status") == 0)
			rc = cmd_status(cfg);
		else if (strcmp(cmd, "threats") == 0 && optind + 1 < argc && strcmp(argv[optind + 1], "--clear") == 0)
			rc = cmd_threats_clear(cfg);
		else {
			fprintf(stderr, "custos-agent: unknown command \"%s\"\n", cmd);
			usage(stderr);
			rc = 2;
		}
		conf_free(cfg);
		return rc;
	}
	if ((server == NULL) != (token == NULL)) {
		fprintf(stderr, "custos-agent: --server and --token go together\n");
		return 2;
	}

	static struct agent a;
	char err[1024];
	a.cfg = cfg;
	str_copy(a.state_dir, conf_str(cfg, "agent.state_dir"), sizeof(a.state_dir));
	signal(SIGPIPE, SIG_IGN);
	int rc = agent_load_identity(&a, err, sizeof(err));
	if (rc < 0)
		fatalx("main", "%s", err);
	if (rc == 1) {
		if (token == NULL)
			fatalx("main", "not enrolled yet (no %s/host.json); run custos-agent --server HOST[:PORT] "
			    "--token TOKEN --state-dir %s", a.state_dir, a.state_dir);
		if (agent_enroll(&a, server, token, err, sizeof(err)) < 0)
			fatalx("enroll", "%s", err);
		if (agent_load_identity(&a, err, sizeof(err)) != 0)
			fatalx("main", "%s", err);
	} else if (token) {
		log_info("main", "already enrolled as %s (%s); ignoring --token", a.name, a.uid);
	}
	if (enroll_only) {
		printf("enrolled as %s (%s)\n", a.name, a.uid);
		return 0;
	}

	char dir[4200];
	str_fmt(dir, sizeof(dir), "%s/spool", a.state_dir);
	if ((a.q = evq_open(dir, (size_t)conf_int(cfg, "agent.queue_max"), err, sizeof(err))) == NULL)
		fatalx("main", "%s", err);
	a.pc = (struct posture_config){
		.hostname = conf_str(cfg, "agent.hostname"),
		.os_release = conf_str(cfg, "system.os_release"),
		.reboot_flag = conf_str(cfg, "system.reboot_flag"),
		.clamav_enabled = conf_bool(cfg, "clamav.enabled"),
		.clamav_db_dir = conf_str(cfg, "clamav.database_dir"),
		.clamd_socket = conf_str(cfg, "clamav.clamd_socket"),
		.clamonacc_pidfile = conf_str(cfg, "clamav.clamonacc_pidfile"),
		.software_enabled = conf_bool(cfg, "software.enabled"),
		.dpkg_status = conf_str(cfg, "software.dpkg_status"),
		.software_max = (size_t)conf_int(cfg, "software.max"),
		.command_enabled = conf_bool(cfg, "command.enabled"),
		.command_path = conf_str(cfg, "command.path"),
		.command_timeout = (int)conf_int(cfg, "command.timeout"),
	};
	if ((a.base = event_base_new()) == NULL)
		fatalx("main", "cannot create the event loop");
	if (policy_apply_init(&a, err, sizeof(err)) < 0 || tasks_init(&a, err, sizeof(err)) < 0 ||
	    agent_start(&a, err, sizeof(err)) < 0)
		fatalx("main", "%s", err);
	struct event *st = evsignal_new(a.base, SIGTERM, on_signal, a.base);
	struct event *si = evsignal_new(a.base, SIGINT, on_signal, a.base);
	evsignal_add(st, NULL);
	evsignal_add(si, NULL);
	log_info("main", "custos-agent %s running as %s (%s), server %s:%d", AGENT_VERSION, a.name, a.uid,
	    a.server_host, a.server_port);
	event_base_dispatch(a.base);
	agent_stop(&a);
	tasks_shutdown(&a);
	policy_apply_free(&a);
	event_free(st);
	event_free(si);
	evq_close(a.q);
	X509_free(a.server_cert);
	SSL_CTX_free(a.ctx);
	event_base_free(a.base);
	conf_free(cfg);
	return 0;
}
