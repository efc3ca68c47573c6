/* main.c — custosd, the Custos Administration Server: options, start-up,
 * signals and shutdown. Each concern lives in its own file (listener.c,
 * store.c, api.c, wakeup.c, registry.c, status.c). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "api/api.h"
#include "nacd/coa.h"
#include "conf.h"
#include "core/config.h"
#include "db.h"
#include "fleet/fleet.h"
#include "agents/listener.h"
#include "log.h"
#include "mgmt/mgmt.h"
#include "nacd/nac.h"
#include "core/registry.h"
#include "core/server.h"
#include "store/snapshot.h"
#include "snmp/snmp.h"
#include "store/store.h"
#include "util.h"
#include "agents/wakeup.h"

#define MAX_OVERRIDES 64
#define REEVALUATE_SECONDS 60
/* file descriptors custosd needs besides agent connections and the NAC
 * socket's: MariaDB, listeners, console API clients, SNMP, wake-up and CoA
 * sockets, the event loops' and threads' pipes, files read and written */
#define FD_RESERVE 64

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: custosd [-c FILE] [-o section.key=value]... [-t] [-d] [--fingerprint]\n"
	    "\n"
	    "Custos Administration Server: agents connect on TCP 13000 (TLS), the console\n"
	    "API listens on HTTPS 13299, MariaDB stores everything.\n"
	    "\n"
	    "  -c FILE          configuration file (default /etc/custos/custosd.conf)\n"
	    "  -o KEY=VALUE     override one setting, e.g. -o listen.port=14000 (repeatable)\n"
	    "  -t               check the configuration, print \"configuration OK\" or\n"
	    "                   FILE:LINE: what is wrong, and exit (0 / 1)\n"
	    "  -d               log debug messages\n"
	    "  --fingerprint    create the server CA and certificate if needed, print the\n"
	    "                   server certificate's SHA-256 fingerprint and exit\n"
	    "  --help-config    list every setting with its default\n"
	    "  -V               print the version\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the configuration.\n");
}

struct daemon_ctx {
	struct server srv;
	struct event *sig_term, *sig_int, *sig_hup, *reeval;
	int db_reported;
};

static void
fleet_params_from(const struct conf *cfg, struct fleet_params *p)
{
	p->outbreak_threshold = conf_int(cfg, "outbreak.threshold");
	p->outbreak_window = conf_int(cfg, "outbreak.window");
	p->notice_max = (size_t)conf_int(cfg, "snmp.queue_max");
}

static void
load_thresholds(struct server *srv)
{
	srv->thr.db_warning_days = (int)conf_int(srv->cfg, "status.db_warning_days");
	srv->thr.db_critical_days = (int)conf_int(srv->cfg, "status.db_critical_days");
	srv->thr.not_connected_warning_days = (int)conf_int(srv->cfg, "status.not_connected_warning_days");
	srv->thr.not_connected_critical_days = (int)conf_int(srv->cfg, "status.not_connected_critical_days");
}

/* descriptors open now (stdio, log, whatever the parent left us) */
static size_t
fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;
	if (d == NULL)
		return 16;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own */
}

/* Raises the soft open-file limit (toward the hard one) so that
 * listen.max_connections agents fit besides everything else; returns how
 * many agent connections fit, with a warning when that is fewer. */
static size_t
agent_conn_limit(const struct conf *cfg)
{
	size_t want = (size_t)conf_int(cfg, "listen.max_connections");
	rlim_t reserve = (rlim_t)(fds_open() + FD_RESERVE) + (rlim_t)conf_int(cfg, "api.max_connections");
	if (conf_bool(cfg, "nac.enabled"))
		reserve += (rlim_t)conf_int(cfg, "nac.max_connections");
	rlim_t need = (rlim_t)want + reserve;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("main", "cannot read the open-file limit");
		return want;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return want;
	rlim_t target = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
	if (target > rl.rlim_cur) {
		struct rlimit nr = { target, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &nr) == 0) {
			log_info("main", "open-file limit raised from %llu to %llu for listen.max_connections = %zu",
			    (unsigned long long)rl.rlim_cur, (unsigned long long)target, want);
			rl.rlim_cur = target;
		} else {
			log_warn("main", "cannot raise the open-file limit from %llu to %llu",
			    (unsigned long long)rl.rlim_cur, (unsigned long long)target);
		}
	}
	if (rl.rlim_cur >= need)
		return want;
	size_t fit = rl.rlim_cur > 2 * reserve ? (size_t)(rl.rlim_cur - reserve) : (size_t)(rl.rlim_cur / 2);
	if (fit == 0)
		fit = 1;
	log_warnx("main", "the open-file limit is %llu (hard limit %llu): at most %zu agent connections "
	    "instead of listen.max_connections = %zu; to serve them all, raise the limit to %llu "
	    "(LimitNOFILE=%llu in custosd's systemd unit, or ulimit -n %llu in the shell that starts it) "
	    "or lower listen.max_connections", (unsigned long long)rl.rlim_cur,
	    (unsigned long long)rl.rlim_max, fit, want, (unsigned long long)need,
	    (unsigned long long)need, (unsigned long long)need);
	return fit;
}

/* Cross-key checks the schema cannot express; 0 or -1 with err. */
static int
check_semantics(const struct conf *cfg, char *err, size_t errlen)
{
	static const char *const pairs[][2] = {
		{ "status.db_warning_days", "status.db_critical_days" },
		{ "status.not_connected_warning_days", "status.not_connected_critical_days" },
	};
	for (size_t i = 0; i < ARRAY_LEN(pairs); i++) {
		long long w = conf_int(cfg, pairs[i][0]), c = conf_int(cfg, pairs[i][1]);
		if (w > c) {
			str_fmt(err, errlen, "%s: %s (%lld) must not exceed %s (%lld, %s)",
			    conf_where(cfg, pairs[i][0]), pairs[i][0], w, pairs[i][1], c,
			    conf_where(cfg, pairs[i][1]));
			return -1;
		}
	}
	if (log_level_parse(conf_str(cfg, "log.level")) < 0) {
		str_fmt(err, errlen, "%s: log.level must be error, warn, info or debug",
		    conf_where(cfg, "log.level"));
		return -1;
	}
	size_t n = conf_list_len(cfg, "enroll.tokens");
	for (size_t i = 0; i < n; i++) {
		const char *secret = conf_list_str(cfg, "enroll.tokens", i, "secret");
		if (strlen(secret) < 12) {
			str_fmt(err, errlen, "%s: an enrolment token secret must have at least 12 characters",
			    conf_list_where(cfg, "enroll.tokens", i));
			return -1;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(conf_list_str(cfg, "enroll.tokens", k, "name"),
			    conf_list_str(cfg, "enroll.tokens", i, "name")) == 0) {
				str_fmt(err, errlen, "%s: a token with this name is declared twice",
				    conf_list_where(cfg, "enroll.tokens", i));
				return -1;
			}
	}
	return nac_check_config(cfg, err, errlen);
}

static struct conf *
load_config(const char *path, const char *const *ov, size_t nov, char *err, size_t errlen)
{
	struct conf *cfg;
	if (conf_load(&cfg, path, custosd_schema, ov, nov, err, errlen) < 0)
		return NULL;
	if (check_semantics(cfg, err, errlen) < 0) {
		conf_free(cfg);
		return NULL;
	}
	return cfg;
}

static void
on_db_state(void *arg, enum db_state state, const char *detail)
{
	struct daemon_ctx *d = arg;
	/* db.c logs every state change itself; here only what follows from it */
	fleet_db_state(&d->srv, (int)state, detail);
	if (state == DB_STATE_UP)
		store_db_up(d->srv.store);
	else if (state == DB_STATE_DOWN)
		log_info("main", "serving agents and the console from memory; writes wait for the database");
	/* down or refused at start: what the last snapshot knew */
	if ((state == DB_STATE_DOWN || state == DB_STATE_REFUSED) && !d->srv.loaded)
		snapshot_fallback(&d->srv, detail);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	(void)what;
	log_info("main", "%s received: draining and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopbreak(d->srv.base);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	struct server *srv = &d->srv;
	char err[4096];
	(void)sig;
	(void)what;
	struct conf *cfg = load_config(srv->conf_path, srv->overrides, srv->n_overrides, err, sizeof(err));
	if (cfg == NULL) {
		log_warnx("main", "reload refused, the running configuration stays:\n%s", err);
		return;
	}
	conf_free(srv->cfg);
	srv->cfg = cfg;
	log_set_level((enum log_level)log_level_parse(conf_str(cfg, "log.level")));
	load_thresholds(srv);
	struct fleet_params fp;
	fleet_params_from(cfg, &fp);
	fleet_set_params(srv->fleet, &fp);
	store_reload_config(srv->store);
	wakeup_set_rate(srv->wake, (double)conf_int(srv->cfg, "wakeup.rate"));
	if (srv->loaded && mgmt_reload(srv->mgmt, NULL, NULL, err, sizeof(err)) < 0)
		log_warnx("main", "etc/custos.d refused; groups, policies and tasks stay as they were");
	if (srv->nac && nac_reload(srv->nac, err, sizeof(err)) < 0)
		log_warnx("main", "nac: %s; the previous conditions and profiles stay", err);
	if (srv->coa && coa_reload(srv->coa, err, sizeof(err)) < 0)
		log_warnx("main", "%s; the previous nac.nas list stays", err);
	log_info("main", "configuration reloaded (listen.*, api.*, database.*, snmp.* and "
	    "nac.enabled / nac.socket apply at restart)");
}

static void
on_reeval(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_ctx *d = arg;
	struct server *srv = &d->srv;
	(void)fd;
	(void)what;
	size_t n;
	int64_t now = now_s();
	mgmt_tick(srv->mgmt, now);
	struct host **all = registry_hosts(srv->reg, &n);
	for (size_t i = 0; all && i < n; i++) {
		struct status_result before = all[i]->st;
		/* only time moved: the posture facts (h->sin) are still current,
		 * so skip re-reading every posture document */
		all[i]->sin.last_seen = all[i]->last_seen;
		all[i]->st = status_evaluate(&all[i]->sin, mgmt_host_thresholds(srv, all[i]), now);
		if (before.status != all[i]->st.status || before.reasons != all[i]->st.reasons) {
			log_info("status", "host %s is now %s", all[i]->name, status_name(all[i]->st.status));
			registry_host_changed(srv->reg, all[i], 0);
		}
	}
	free(all);
	nac_reevaluate(srv->nac, now);
}

/* nac.h's hook: a host's token got worse, tell its NAS (coa.h). */
static void
on_token_worsened(void *arg, const struct host *h, const struct nac_session *s,
    const char *old_token, const char *new_token)
{
	coa_host_worsened(arg, h, s, old_token, new_token);
}

static int
start_db(struct daemon_ctx *d, char *err, size_t errlen)
{
	struct server *srv = &d->srv;
	static char password[256];
	const char *pwfile = conf_str(srv->cfg, "database.password_file");
	const char *pw = conf_str(srv->cfg, "database.password");
	if (*pwfile) {
		char *text = file_read(pwfile, sizeof(password) - 1, NULL);
		if (text == NULL) {
			str_fmt(err, errlen, "cannot read database.password_file %s: %s", pwfile, strerror(errno));
			return -1;
		}
		text[strcspn(text, "\r\n")] = '\0';
		str_copy(password, text, sizeof(password));
		free(text);
		pw = password;
	}
	struct db_config dc = {
		.host = conf_str(srv->cfg, "database.host"),
		.port = (unsigned)conf_int(srv->cfg, "database.port"),
		.socket = conf_str(srv->cfg, "database.socket"),
		.user = conf_str(srv->cfg, "database.user"),
		.password = pw,
		.database = conf_str(srv->cfg, "database.name"),
		.migrations_dir = conf_str(srv->cfg, "server.migrations_dir"),
		.queue_max = (size_t)conf_int(srv->cfg, "database.queue_max"),
		.backoff_max_ms = (int)conf_int(srv->cfg, "database.reconnect_max") * 1000,
		.connect_timeout_s = (int)conf_int(srv->cfg, "database.timeout"),
	};
	srv->db = db_start(&dc, srv->base, on_db_state, d, err, errlen);
	return srv->db ? 0 : -1;
}

/* A sync_now the agent may not have read (it closed the connection): ask
 * again by a wake-up datagram, paced like the others. */
static void
sync_request_lost(void *arg, struct host *h)
{
	struct server *srv = arg;
	if (srv->wake && wakeup_host_later(srv->wake, h) == 0)
		log_debug("agent", "host %s closed before it synced as asked; waking it by datagram", h->name);
}

/* ---- "a host changed" (registry_host_changed): the views of a host, in
 * this order: the count, the database write-back, the fleet snapshot, the
 * NAC token (which sends a CoA / Disconnect when it gets worse) ---- */

static void
host_counted(void *arg, struct host *h, unsigned what)
{
	struct server *srv = arg;
	(void)h;
	(void)what;
	srv->stats.host_changes++;
}

static void
host_to_store(void *arg, struct host *h, unsigned what)
{
	struct server *srv = arg;
	if (srv->store == NULL || (what & HOST_STORED))
		return;
	srv->stats.host_writes++;
	store_host_changed(srv->store, h);
}

static void
host_to_fleet(void *arg, struct host *h, unsigned what)
{
	(void)what;
	fleet_host_changed(arg, h);
}

static void
host_to_nac(void *arg, struct host *h, unsigned what)
{
	(void)what;
	nac_host_changed(arg, h);
}

static const struct status_thresholds *
host_thresholds(void *arg, const struct host *h)
{
	return mgmt_host_thresholds(arg, h);
}

static void
watch_hosts(struct server *srv)
{
	registry_set_thresholds(srv->reg, host_thresholds, srv);
	if (registry_observe(srv->reg, host_counted, srv) < 0 ||
	    registry_observe(srv->reg, host_to_store, srv) < 0 ||
	    registry_observe(srv->reg, host_to_fleet, srv) < 0 ||
	    registry_observe(srv->reg, host_to_nac, srv) < 0)
		fatalx("main", "too many registry observers");
}

/* ---- what the administration model asks of the modules above it ---- */

/* sync_now over a live connection, else a paced datagram (when the host
 * ever told its wake port) */
static void
mgmt_notify(void *arg, struct host *h)
{
	struct server *srv = arg;
	(void)wakeup_host_later(srv->wake, h);
}

static int
mgmt_wake(void *arg, struct host *h)
{
	struct server *srv = arg;
	return wakeup_host_later(srv->wake, h);
}

static void
mgmt_groups_changed(void *arg)
{
	fleet_mark_dirty(arg);
}

/* ---- what the store and the snapshot tell the modules above them ---- */

static void
store_threats_loaded(void *arg, int64_t now, const struct store_threat *t, size_t n)
{
	struct server *srv = arg;
	struct fleet_seed *seed = calloc(n ? n : 1, sizeof(*seed));
	if (seed == NULL) {
		log_warnx("main", "out of memory handing the day's %zu threat(s) to the fleet; its "
		    "24 h count starts empty", n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		str_copy(seed[i].uid, t[i].uid, sizeof(seed[i].uid));
		seed[i].received = t[i].received;
	}
	fleet_seed_threats(srv->fleet, now, seed, n);
	free(seed);
}

static void
store_loaded(void *arg)
{
	struct server *srv = arg;
	mgmt_db_loaded(srv->mgmt);
}

static void
snapshot_served(void *arg, int64_t now)
{
	struct server *srv = arg;
	nac_reevaluate(srv->nac, now);
}

static size_t
snapshot_admins_export(void *arg, struct snapshot_admin **out)
{
	struct server *srv = arg;
	return store_admins_export(srv->store, out);
}

static void
snapshot_admins_seed(void *arg, const struct snapshot_admin *a, size_t n)
{
	struct server *srv = arg;
	store_admins_seed(srv->store, a, n);
}

static void
hosts_reshaped(void *arg)
{
	fleet_mark_dirty(arg);
}

/* a snapshot host the database does not have leaves the registry: as a
 * deleted host, its connected agent is closed with unknown_host */
static void
snapshot_host_dropped(void *arg, struct host *h)
{
	struct server *srv = arg;
	listener_drop_host(srv->lis, h);
	if (srv->store)
		store_host_forget(srv->store, h);
}

/* ---- what the fleet reads from the modules above it ---- */

/* nac_hosts[] is indexed by enum nac_token; CUSTOS-MIB numbers its objects
 * custosNacHosts<Token> in that order, so the order may not change. */
_Static_assert(FLEET_NAC_TOKENS == NAC_TOKENS && NAC_HEALTHY == 0 && NAC_CHECKUP == 1 &&
    NAC_TRANSITION == 2 && NAC_QUARANTINE == 3 && NAC_INFECTED == 4 && NAC_UNKNOWN == 5,
    "CUSTOS-MIB's custosNacHosts objects follow enum nac_token");

static size_t
fleet_agents_connected(void *arg)
{
	struct server *srv = arg;
	return listener_conn_count(srv->lis);
}

static bool
fleet_nac_counts(void *arg, uint64_t counts[FLEET_NAC_TOKENS])
{
	struct server *srv = arg;
	if (srv->nac == NULL)
		return false;
	nac_token_counts(srv->nac, counts);
	return true;
}

int
main(int argc, char **argv)
{
	static struct daemon_ctx d;
	struct server *srv = &d.srv;
	const char *conf_path = "/etc/custos/custosd.conf";
	const char *overrides[MAX_OVERRIDES];
	size_t nov = 0;
	int check = 0, debug = 0, fingerprint = 0, help_config = 0;
	char err[8192];
	static const struct option longopts[] = {
		{ "fingerprint", no_argument, NULL, 'F' },
		{ "help-config", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:o:tdhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'o':
			if (nov == MAX_OVERRIDES) {
				fprintf(stderr, "custosd: at most %d -o options\n", MAX_OVERRIDES);
				return 1;
			}
			overrides[nov++] = optarg;
			break;
		case 't': check = 1; break;
		case 'd': debug = 1; break;
		case 'F': fingerprint = 1; break;
		case 'H': help_config = 1; break;
		case 'V': printf("custosd %s\n", CUSTOS_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if (help_config) {
		conf_print_schema(custosd_schema);
		return 0;
	}
	srv->cfg = load_config(conf_path, overrides, nov, err, sizeof(err));
	if (srv->cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		conf_free(srv->cfg);
		return 0;
	}
	srv->conf_path = conf_path;
	srv->overrides = overrides;
	srv->n_overrides = nov;
	log_init("custosd", conf_str(srv->cfg, "log.target"),
	    debug ? LOG_LVL_DEBUG : (enum log_level)log_level_parse(conf_str(srv->cfg, "log.level")));

	const char *state = conf_str(srv->cfg, "server.state_dir");
	if (mkdir_p(state, 0700) < 0)
		fatal("main", "cannot create state directory %s", state);
	if (pki_server_init(&srv->pki, state, conf_str(srv->cfg, "server.name"),
	    conf_str(srv->cfg, "server.san"), err, sizeof(err)) < 0)
		fatalx("main", "%s", err);
	if (fingerprint) {
		printf("%s\n", srv->pki.server_fp);
		return 0;
	}
	log_info("main", "custosd %s starting; server certificate SHA-256 %s", CUSTOS_VERSION,
	    srv->pki.server_fp);

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0)
		fatalx("main", "libevent has no pthreads support");
	srv->base = event_base_new();
	if (srv->base == NULL)
		fatalx("main", "cannot create the event loop");
	srv->started = now_s();
	load_thresholds(srv);
	srv->reg = registry_new();
	if (srv->reg == NULL)
		fatalx("main", "out of memory");
	watch_hosts(srv);
	srv->store = store_new(srv, (size_t)conf_int(srv->cfg, "database.events_max"),
	    (size_t)conf_int(srv->cfg, "database.batch_max"));
	srv->mgmt = mgmt_new(srv);
	if (srv->reg == NULL || srv->store == NULL || srv->mgmt == NULL)
		fatalx("main", "out of memory");
	mgmt_set_hooks(srv->mgmt, &(struct mgmt_hooks){
	    .notify = mgmt_notify, .wake = mgmt_wake, .groups_changed = mgmt_groups_changed, .arg = srv });
	store_set_hooks(srv->store, &(struct store_hooks){
	    .threats_loaded = store_threats_loaded, .loaded = store_loaded, .arg = srv });
	char snap_path[4096];
	str_fmt(snap_path, sizeof(snap_path), "%s/%s", state, SNAPSHOT_FILE);
	if ((srv->snap = snapshot_new(srv, snap_path, err, sizeof(err))) == NULL)
		fatalx("main", "%s", err);
	snapshot_set_hooks(srv->snap, &(struct snapshot_hooks){
	    .served = snapshot_served, .hosts_reshaped = hosts_reshaped, .host_dropped = snapshot_host_dropped,
	    .admins_export = snapshot_admins_export, .admins_seed = snapshot_admins_seed, .arg = srv });
	struct fleet_params fp;
	fleet_params_from(srv->cfg, &fp);
	if ((srv->fleet = fleet_new(srv, &fp, err, sizeof(err))) == NULL)
		fatalx("main", "%s", err);
	fleet_set_sources(srv->fleet, &(struct fleet_sources){
	    .agents_connected = fleet_agents_connected, .nac_counts = fleet_nac_counts, .arg = srv });
	if (start_db(&d, err, sizeof(err)) < 0)
		fatalx("main", "%s", err);
	if ((srv->lis = listener_start(srv, agent_conn_limit(srv->cfg), err, sizeof(err))) == NULL)
		fatalx("main", "%s", err);
	if ((srv->api = api_start(srv, err, sizeof(err))) == NULL)
		fatalx("main", "%s", err);
	if ((srv->wake = wakeup_new(srv, (double)conf_int(srv->cfg, "wakeup.rate"), err, sizeof(err))) == NULL)
		fatalx("main", "%s", err);
	listener_on_push_lost(srv->lis, sync_request_lost, srv);
	if (conf_bool(srv->cfg, "snmp.enabled")) {
		struct snmp_config sc = {
			.agentx_socket = conf_str(srv->cfg, "snmp.agentx_socket"),
			.reconnect_interval = (int)conf_int(srv->cfg, "snmp.reconnect_interval"),
			.trap_rate = (int)conf_int(srv->cfg, "snmp.trap_rate"),
			.trap_burst = (int)conf_int(srv->cfg, "snmp.trap_burst"),
			.yield_to_agents = conf_bool(srv->cfg, "snmp.yield_to_agents"),
		};
		if ((srv->snmp = snmp_start(srv, &sc, err, sizeof(err))) == NULL)
			fatalx("main", "%s", err);
	}
	if (conf_bool(srv->cfg, "nac.enabled")) {
		if ((srv->nac = nac_new(srv, err, sizeof(err))) == NULL ||
		    (srv->coa = coa_new(srv, err, sizeof(err))) == NULL)
			fatalx("main", "%s", err);
		nac_set_worsened(srv->nac, on_token_worsened, srv->coa);
	}

	d.sig_term = evsignal_new(srv->base, SIGTERM, on_term, &d);
	d.sig_int = evsignal_new(srv->base, SIGINT, on_term, &d);
	d.sig_hup = evsignal_new(srv->base, SIGHUP, on_hup, &d);
	d.reeval = event_new(srv->base, -1, EV_PERSIST, on_reeval, &d);
	struct timeval every = { REEVALUATE_SECONDS, 0 };
	if (!d.sig_term || !d.sig_int || !d.sig_hup || !d.reeval || evsignal_add(d.sig_term, NULL) ||
	    evsignal_add(d.sig_int, NULL) || evsignal_add(d.sig_hup, NULL) || event_add(d.reeval, &every))
		fatalx("main", "cannot install signal handlers");

	log_info("main", "ready");
	event_base_dispatch(srv->base);

	/* Drain: stop taking work, write what is pending, then close. */
	api_stop(srv->api);
	/* a subagent stuck on a hung snmpd keeps reading the fleet */
	bool fleet_free_ok = snmp_stop(srv->snmp) == 0;
	store_flush(srv->store);
	/* the last snapshot before the registry goes */
	snapshot_free(srv->snap);
	srv->snap = NULL;
	db_stop(srv->db, 5000);
	srv->db = NULL;
	/* events still waiting for a commit are answered (nack) while their
	 * connections and the listener still exist */
	store_free(srv->store);
	srv->store = NULL;
	listener_stop(srv->lis);
	nac_free(srv->nac);
	coa_free(srv->coa);
	wakeup_free(srv->wake);
	mgmt_free(srv->mgmt);
	if (fleet_free_ok)
		fleet_free(srv->fleet);
	registry_free(srv->reg);
	event_free(d.sig_term);
	event_free(d.sig_int);
	event_free(d.sig_hup);
	event_free(d.reeval);
	event_base_free(srv->base);
	pki_server_free(&srv->pki);
	conf_free(srv->cfg);
	log_info("main", "stopped");
	return 0;
}
