/* snmp.c — see snmp.h. The AgentX subagent thread: all of Net-SNMP lives
 * in this file, and every Net-SNMP call in it runs on that one thread. What
 * the MIB holds is in snmp_mib.c. */
#include "snmp.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>
#include <net-snmp/agent/agent_callbacks.h>

#include "fleet.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* custosObjects: the one subtree registered with snmpd */
static const oid objects_oid[] = { 1, 3, 6, 1, 4, 1, 32473, 1, 1 };

enum nclass { NC_CRITICAL, NC_THREAT, NC_OUTBREAK, NC_DB, NC_COUNT };

struct pending {
	uint64_t count;           /* occurrences waiting */
	bool has_latest;
	struct fleet_notice latest;
};

struct snmp {
	struct server *srv;
	struct fleet *fleet;
	pthread_t thread;
	atomic_bool stop;
	char socket[256];
	int reconnect;
	double rate, burst, tokens;
	int64_t refilled_ms;

	/* start handshake */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int init;                 /* 0 running, 1 done, -1 failed */
	char init_err[256];

	/* SNMP thread only */
	bool connected, ever_connected, told_absent;
	struct pending pending[NC_COUNT];
	uint64_t dropped[FLEET_NOTICE_KINDS];
	size_t rr;
	uint64_t sent, coalesced;
};

static atomic_bool running;   /* Net-SNMP keeps global state: one subagent per process */
/* Net-SNMP frees callback arguments at shutdown, so the callbacks find the
 * subagent here instead; set and read on the SNMP thread only. */
static struct snmp *agent;

static const oid snmptrap_oid[] = { 1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0 };

static size_t
to_oid(const uint32_t *in, size_t len, oid *out)
{
	for (size_t i = 0; i < len; i++)
		out[i] = in[i];
	return len;
}

static void
var_set(netsnmp_variable_list *var, const struct snmp_answer *a)
{
	switch (a->type) {
	case SNMP_ANS_INTEGER: {
		long v = (long)a->num;
		snmp_set_var_typed_value(var, ASN_INTEGER, &v, sizeof(v));
		break;
	}
	case SNMP_ANS_STRING:
		snmp_set_var_typed_value(var, ASN_OCTET_STR, a->buf, a->len);
		break;
	case SNMP_ANS_UNSIGNED:
	case SNMP_ANS_GAUGE:
	case SNMP_ANS_TIMETICKS: {
		u_long v = (u_long)a->num;
		u_char t = a->type == SNMP_ANS_UNSIGNED ? ASN_UNSIGNED :
		    a->type == SNMP_ANS_GAUGE ? ASN_GAUGE : ASN_TIMETICKS;
		snmp_set_var_typed_value(var, t, &v, sizeof(v));
		break;
	}
	case SNMP_ANS_COUNTER64: {
		struct counter64 c = { .high = (u_long)(a->num >> 32), .low = (u_long)(a->num & 0xffffffffu) };
		snmp_set_var_typed_value(var, ASN_COUNTER64, &c, sizeof(c));
		break;
	}
	}
}

static int
mib_handler(netsnmp_mib_handler *handler, netsnmp_handler_registration *reginfo,
    netsnmp_agent_request_info *reqinfo, netsnmp_request_info *requests)
{
	struct snmp *s = handler->myvoid;
	(void)reginfo;
	if (reqinfo->mode != MODE_GET && reqinfo->mode != MODE_GETNEXT)
		return SNMP_ERR_NOERROR;
	const struct fleet_snapshot *snap = fleet_acquire(s->fleet);
	int64_t now = now_s();
	for (netsnmp_request_info *r = requests; r; r = r->next) {
		netsnmp_variable_list *var = r->requestvb;
		uint32_t req[SNMP_OID_MAX], out[SNMP_OID_MAX];
		oid name[SNMP_OID_MAX];
		size_t len = 0, outlen = 0;
		struct snmp_answer a;
		if (r->processed)
			continue;
		/* longer names never equal an instance; cutting keeps the order */
		for (; len < var->name_length && len < SNMP_OID_MAX; len++)
			req[len] = var->name[len] > UINT32_MAX ? UINT32_MAX : (uint32_t)var->name[len];
		enum snmp_found f = snmp_resolve(snap, now, req, len, reqinfo->mode == MODE_GETNEXT,
		    out, &outlen, &a);
		if (f == SNMP_FOUND) {
			if (reqinfo->mode == MODE_GETNEXT)
				snmp_set_var_objid(var, name, to_oid(out, outlen, name));
			var_set(var, &a);
		} else if (reqinfo->mode == MODE_GET) {
			netsnmp_set_request_error(reqinfo, r,
			    f == SNMP_NO_INSTANCE ? SNMP_NOSUCHINSTANCE : SNMP_NOSUCHOBJECT);
		}
		/* GETNEXT past our last instance: the agent moves to the next subtree */
	}
	fleet_release(s->fleet, snap);
	return SNMP_ERR_NOERROR;
}

/* ---- notifications ---- */

static enum nclass
notice_class(enum fleet_notice_kind k)
{
	switch (k) {
	case FLEET_NOTICE_HOST_CRITICAL: return NC_CRITICAL;
	case FLEET_NOTICE_THREAT: return NC_THREAT;
	case FLEET_NOTICE_OUTBREAK_START:
	case FLEET_NOTICE_OUTBREAK_END: return NC_OUTBREAK;
	default: return NC_DB;
	}
}

static void
send_notice(struct snmp *s, const struct fleet_notice *n, uint64_t count)
{
	struct snmp_varbind vb[SNMP_NOTICE_VARBINDS];
	uint32_t trap[SNMP_OID_MAX];
	oid o[SNMP_OID_MAX], trap_oid[SNMP_OID_MAX];
	size_t traplen, nvb = snmp_notice_varbinds(n, count, trap, &traplen, vb, ARRAY_LEN(vb));
	netsnmp_variable_list *vars = NULL;

	/* snmpTrapOID.0 first; send_v2trap puts sysUpTime.0 before it */
	if (snmp_varlist_add_variable(&vars, snmptrap_oid, OID_LENGTH(snmptrap_oid), ASN_OBJECT_ID,
	    trap_oid, to_oid(trap, traplen, trap_oid) * sizeof(oid)) == NULL)
		return;
	for (size_t i = 0; i < nvb; i++) {
		netsnmp_variable_list *v = snmp_varlist_add_variable(&vars, o,
		    to_oid(vb[i].oid, vb[i].len, o), ASN_NULL, NULL, 0);
		if (v == NULL) {
			snmp_free_varbind(vars);
			return;
		}
		var_set(v, &vb[i].a);
	}
	send_v2trap(vars);
	snmp_free_varbind(vars);
	s->sent++;
	if (count > 1)
		log_debug("snmp", "notification %u stands for %llu occurrences", (unsigned)trap[traplen - 1],
		    (unsigned long long)count);
}

static bool
take_token(struct snmp *s)
{
	int64_t t = mono_ms();
	s->tokens += (double)(t - s->refilled_ms) * s->rate / 1000.0;
	if (s->tokens > s->burst)
		s->tokens = s->burst;
	s->refilled_ms = t;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

/* Sends what was coalesced, oldest class first in turn, while tokens last. */
static void
flush_pending(struct snmp *s)
{
	if (!s->connected)
		return;
	for (size_t i = 0; i < NC_COUNT; i++) {
		struct pending *p = &s->pending[(s->rr + i) % NC_COUNT];
		if (p->count == 0)
			continue;
		if (!take_token(s))
			break;
		send_notice(s, &p->latest, p->count);
		p->count = 0;
		p->has_latest = false;
	}
	s->rr++;
}

static void
offer(struct snmp *s, const struct fleet_notice *n)
{
	struct pending *p = &s->pending[notice_class(n->kind)];
	/* one kind stays in order: nothing overtakes what already waits */
	if (p->count == 0 && s->connected && take_token(s)) {
		send_notice(s, n, 1);
		return;
	}
	p->count++;
	p->latest = *n;
	p->has_latest = true;
	s->coalesced++;
}

static void
pump(struct snmp *s)
{
	struct fleet_notice buf[32];
	size_t n;
	flush_pending(s);
	while ((n = fleet_notices_take(s->fleet, buf, ARRAY_LEN(buf), s->dropped)) > 0)
		for (size_t i = 0; i < n; i++)
			offer(s, &buf[i]);
	for (size_t k = 0; k < FLEET_NOTICE_KINDS; k++) {
		struct pending *p = &s->pending[notice_class((enum fleet_notice_kind)k)];
		if (s->dropped[k] == 0)
			continue;
		p->count += s->dropped[k];
		if (!p->has_latest) {
			memset(&p->latest, 0, sizeof(p->latest));
			p->latest.kind = (enum fleet_notice_kind)k;
			p->latest.time = now_s();
			p->has_latest = true;
		}
		s->dropped[k] = 0;
	}
}

static void
on_notice_fd(int fd, void *arg)
{
	(void)fd;
	pump(arg);
}

static void
on_alarm(unsigned int reg, void *arg)
{
	(void)reg;
	pump(arg);
}

/* ---- Net-SNMP glue ---- */

static int
on_log(int major, int minor, void *serverarg, void *clientarg)
{
	const struct snmp_log_message *m = serverarg;
	char msg[512];
	(void)major;
	(void)minor;
	(void)clientarg;
	if (m == NULL || m->msg == NULL)
		return 0;
	str_copy(msg, m->msg, sizeof(msg));
	msg[strcspn(msg, "\n")] = '\0';
	if (msg[0] == '\0')
		return 0;
	if (m->priority <= LOG_WARNING)
		log_warnx("snmp", "net-snmp: %s", msg);
	else
		log_debug("snmp", "net-snmp: %s", msg);
	return 0;
}

static int
on_session(int major, int minor, void *serverarg, void *clientarg)
{
	struct snmp *s = agent;
	(void)major;
	(void)serverarg;
	(void)clientarg;
	if (s == NULL)
		return 0;
	if (minor == SNMPD_CALLBACK_INDEX_START) {
		s->connected = true;
		if (s->ever_connected)
			log_info("snmp", "snmpd is back: CUSTOS-MIB registered again at %s", s->socket);
		else
			log_info("snmp", "CUSTOS-MIB registered with snmpd at %s", s->socket);
		s->ever_connected = true;
		s->told_absent = false;
	} else if (minor == SNMPD_CALLBACK_INDEX_STOP) {
		s->connected = false;
		if (!s->told_absent)
			log_warnx("snmp", "lost the AgentX session with snmpd (%s); trying again every %d s",
			    s->socket, s->reconnect);
		s->told_absent = true;
	}
	return 0;
}

static int
agent_setup(struct snmp *s, char *err, size_t errlen)
{
	/* Alarms run from our loop, never from SIGALRM on whatever thread. */
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_ALARM_DONT_USE_SIG, 1);
	/* custosd.conf is the only configuration; no state under /var/lib/snmp. */
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
	/* We say ourselves, once, that snmpd cannot be reached. */
	netsnmp_ds_set_boolean(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_NO_CONNECTION_WARNINGS, 1);

	/* custosd reads no MIB files: the default list would only fill the log
	 * with modules Debian does not ship */
	netsnmp_config_remember((char *)"mibs :");
	snmp_disable_log();
	if (snmp_register_callback(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_LOGGING, on_log, NULL) !=
	    SNMPERR_SUCCESS) {
		str_fmt(err, errlen, "snmp: could not route Net-SNMP's messages to the log");
		return -1;
	}
	snmp_enable_calllog();

	netsnmp_enable_subagent();
	if (init_agent("custosd") != 0) {
		str_fmt(err, errlen, "snmp: Net-SNMP could not initialise the subagent");
		return -1;
	}
	/* after init_agent, which sets its own defaults (a 15 s ping) */
	netsnmp_ds_set_string(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_X_SOCKET, s->socket);
	netsnmp_ds_set_int(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_AGENTX_PING_INTERVAL, s->reconnect);
	netsnmp_handler_registration *reg = netsnmp_create_handler_registration("custosObjects",
	    mib_handler, objects_oid, OID_LENGTH(objects_oid), HANDLER_CAN_RONLY);
	if (reg == NULL) {
		str_fmt(err, errlen, "snmp: out of memory registering CUSTOS-MIB");
		return -1;
	}
	reg->handler->myvoid = s;
	if (netsnmp_register_handler(reg) != MIB_REGISTERED_OK) {
		str_fmt(err, errlen, "snmp: could not register CUSTOS-MIB's objects");
		return -1;
	}
	agent = s;
	if (snmp_register_callback(SNMP_CALLBACK_APPLICATION, SNMPD_CALLBACK_INDEX_START, on_session,
	    NULL) != SNMPERR_SUCCESS || snmp_register_callback(SNMP_CALLBACK_APPLICATION,
	    SNMPD_CALLBACK_INDEX_STOP, on_session, NULL) != SNMPERR_SUCCESS) {
		str_fmt(err, errlen, "snmp: could not watch the AgentX session");
		return -1;
	}
	struct timeval tick = { 0, 200000 };
	if (snmp_alarm_register_hr(tick, SA_REPEAT, on_alarm, s) == 0 ||
	    register_readfd(fleet_notice_fd(s->fleet), on_notice_fd, s) != FD_REGISTERED_OK) {
		str_fmt(err, errlen, "snmp: could not set up the notification timer");
		return -1;
	}
	return 0;
}

static void
init_report(struct snmp *s, int state)
{
	pthread_mutex_lock(&s->lock);
	s->init = state;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *
snmp_thread(void *arg)
{
	struct snmp *s = arg;
	/* An SNMP walk must not take CPU from agents and NAC queries: the
	 * benchmark measured sync p99 x1.7 during a walk at normal priority and
	 * x1.05-1.2 with this thread at SCHED_IDLE. */
	struct sched_param sp = { 0 };
	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0 &&
	    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
		log_debug("snmp", "could not lower the SNMP thread's priority");
	if (agent_setup(s, s->init_err, sizeof(s->init_err)) < 0) {
		init_report(s, -1);
		return NULL;
	}
	init_report(s, 1);
	/* reads no files (DONT_READ_CONFIGS) and connects to snmpd */
	init_snmp("custosd");
	if (!s->connected) {
		log_warnx("snmp", "cannot reach snmpd's AgentX socket %s (is snmpd running with "
		    "\"master agentx\" and \"agentXSocket %s\"?); custosd runs on and tries again "
		    "every %d s", s->socket, s->socket, s->reconnect);
		s->told_absent = true;
	}
	pump(s);
	while (!atomic_load(&s->stop))
		agent_check_and_process(1);
	unregister_readfd(fleet_notice_fd(s->fleet));
	snmp_shutdown("custosd");
	agent = NULL;
	log_info("snmp", "subagent stopped (%llu notification(s) sent, %llu coalesced)",
	    (unsigned long long)s->sent, (unsigned long long)s->coalesced);
	return NULL;
}

struct snmp *
snmp_start(struct server *srv, const struct snmp_config *c, char *err, size_t errlen)
{
	if (srv->fleet == NULL) {
		str_fmt(err, errlen, "snmp: the fleet snapshot is missing");
		return NULL;
	}
	if (c->agentx_socket == NULL || c->agentx_socket[0] == '\0') {
		str_fmt(err, errlen, "snmp.agentx_socket is empty; set it to snmpd's agentXSocket "
		    "(default /var/agentx/master)");
		return NULL;
	}
	if (atomic_exchange(&running, true)) {
		str_fmt(err, errlen, "snmp: the subagent is already running");
		return NULL;
	}
	struct snmp *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		atomic_store(&running, false);
		str_fmt(err, errlen, "snmp: out of memory");
		return NULL;
	}
	s->srv = srv;
	s->fleet = srv->fleet;
	if (str_copy(s->socket, c->agentx_socket, sizeof(s->socket)) >= sizeof(s->socket)) {
		str_fmt(err, errlen, "snmp.agentx_socket is longer than %zu characters", sizeof(s->socket) - 1);
		free(s);
		atomic_store(&running, false);
		return NULL;
	}
	s->reconnect = c->reconnect_interval > 0 ? c->reconnect_interval : 1;
	s->rate = c->trap_rate > 0 ? c->trap_rate : 1;
	s->burst = c->trap_burst > 0 ? c->trap_burst : 1;
	s->tokens = s->burst;
	s->refilled_ms = mono_ms();
	atomic_init(&s->stop, false);
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		str_fmt(err, errlen, "snmp: cannot create a mutex");
		free(s);
		atomic_store(&running, false);
		return NULL;
	}
	if (pthread_cond_init(&s->cond, NULL) != 0) {
		str_fmt(err, errlen, "snmp: cannot create a condition variable");
		pthread_mutex_destroy(&s->lock);
		free(s);
		atomic_store(&running, false);
		return NULL;
	}
	fleet_attach(s->fleet, true);
	fleet_update(s->fleet, now_s());   /* the first answers see the fleet */
	int rc = pthread_create(&s->thread, NULL, snmp_thread, s);
	if (rc != 0) {
		str_fmt(err, errlen, "snmp: cannot start the subagent thread: %s", strerror(rc));
		goto fail;
	}
	pthread_mutex_lock(&s->lock);
	while (s->init == 0)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (s->init < 0) {
		pthread_join(s->thread, NULL);
		str_copy(err, s->init_err, errlen);
		goto fail;
	}
	return s;
fail:
	fleet_attach(s->fleet, false);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
	/* Net-SNMP's half-initialised globals stay: no second start */
	return NULL;
}

int
snmp_stop(struct snmp *s)
{
	struct timespec until;
	if (s == NULL)
		return 0;
	fleet_attach(s->fleet, false);
	atomic_store(&s->stop, true);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	int rc = pthread_timedjoin_np(s->thread, NULL, &until);
	if (rc != 0) {
		/* a hung snmpd can hold a synchronous AgentX call; do not hang the exit */
		log_warnx("snmp", "the SNMP thread did not stop within 5 s (snmpd not answering?); "
		    "leaving it behind");
		pthread_detach(s->thread);
		return -1;
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
	atomic_store(&running, false);
	return 0;
}
