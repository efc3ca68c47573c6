/* rlm_custos.c — FreeRADIUS 3.2 module: asks custosd's NAC query socket for
 * the posture token of the host behind a request and applies its profile.
 *
 *   custos {
 *           socket = /run/custos/nac.sock
 *           pool_size = 32          # idle connections kept open
 *           timeout = 0.1           # seconds per query, connect included
 *   }
 *
 * authorize and post-auth send one JSON line and read one back (nac/proto.h).
 * Return codes let the site's unlang choose its fallback:
 *   fail     custosd unreachable, timed out, or its reply is unreadable
 *   invalid  custosd refused the query ({"error": ...})
 *   reject   the token's profile says reject (e.g. Infected)
 *   updated  profile attributes were put in the reply list
 *   ok       the profile has no attributes
 *   noop     post-auth of a request that is already rejected
 * control:Custos-Token holds the token for unlang either way.
 *
 * Thread-safe: the pool is a mutex-protected stack of idle connections; a
 * query uses one connection exclusively, with non-blocking I/O bounded by the
 * timeout (a timed-out connection is closed, never reused). */
#include <freeradius/build.h>
#include <freeradius/radiusd.h>
#include <freeradius/modules.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

/* Microsoft's vendor id and the raw Statement of Health attribute. */
#define MS_VENDOR		311
#define MS_QUARANTINE_SOH	55

struct custos_conn {
	int fd;
	char wbuf[CQ_LINE_MAX + 1];
	char rbuf[CQ_LINE_MAX + 1];
};

typedef struct rlm_custos_t {
	char const		*xlat_name;
	char const		*socket_path;
	uint32_t		pool_size;
	struct timeval		timeout;

	int			timeout_us;
	struct sockaddr_un	sun;
	socklen_t		sun_len;
	DICT_ATTR const		*da_token;

	pthread_mutex_t		lock;
	bool			lock_init;
	struct custos_conn	**idle;		/* stack of pool_size slots */
	uint32_t		n_idle;
} rlm_custos_t;

static const CONF_PARSER module_config[] = {
	{ "socket", FR_CONF_OFFSET(PW_TYPE_STRING | PW_TYPE_NOT_EMPTY, rlm_custos_t, socket_path),
	  "/run/custos/nac.sock" },
	{ "pool_size", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_custos_t, pool_size), "32" },
	{ "timeout", FR_CONF_OFFSET(PW_TYPE_TIMEVAL, rlm_custos_t, timeout), "0.1" },
	CONF_PARSER_TERMINATOR
};

/* SoH attributes FreeRADIUS decodes from a PEAP Statement of Health
 * (dictionary.freeradius.internal, 2100..2129). */
static const unsigned int soh_attrs[] = {
	PW_SOH_MS_MACHINE_OS_VENDOR, PW_SOH_MS_MACHINE_OS_VERSION, PW_SOH_MS_MACHINE_OS_RELEASE,
	PW_SOH_MS_MACHINE_OS_BUILD, PW_SOH_MS_MACHINE_SP_VERSION, PW_SOH_MS_MACHINE_SP_RELEASE,
	PW_SOH_MS_MACHINE_PROCESSOR, PW_SOH_MS_MACHINE_NAME, PW_SOH_MS_CORRELATION_ID,
	PW_SOH_MS_MACHINE_ROLE, PW_SOH_SUPPORTED, PW_SOH_MS_WINDOWS_HEALTH_STATUS,
	PW_SOH_MS_HEALTH_OTHER,
};

static int64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- connections ---- */

static void
conn_close(struct custos_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* Opens a connection without ever blocking: a Unix stream connect either
 * completes at once or fails (EAGAIN when the daemon's backlog is full). */
static struct custos_conn *
conn_open(rlm_custos_t *inst, REQUEST *request)
{
	struct custos_conn *c = malloc(sizeof(*c));
	if (c == NULL) {
		REDEBUG("out of memory");
		return NULL;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		REDEBUG("socket: %s", strerror(errno));
		free(c);
		return NULL;
	}
	if (connect(c->fd, (struct sockaddr *)&inst->sun, inst->sun_len) < 0) {
		int e = errno;
		REDEBUG("cannot connect to %s: %s", inst->socket_path, strerror(e));
		RATE_LIMIT(ERROR("rlm_custos (%s): cannot connect to custosd at %s: %s; "
		    "is custosd running with nac.enabled = true?",
		    inst->xlat_name, inst->socket_path, strerror(e)));
		conn_close(c);
		return NULL;
	}
	return c;
}

static struct custos_conn *
pool_take(rlm_custos_t *inst)
{
	struct custos_conn *c = NULL;
	pthread_mutex_lock(&inst->lock);
	if (inst->n_idle > 0)
		c = inst->idle[--inst->n_idle];
	pthread_mutex_unlock(&inst->lock);
	return c;
}

static void
pool_give(rlm_custos_t *inst, struct custos_conn *c)
{
	pthread_mutex_lock(&inst->lock);
	if (inst->n_idle < inst->pool_size) {
		inst->idle[inst->n_idle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&inst->lock);
	conn_close(c);
}

enum xrc { XC_OK = 0, XC_IO = -1, XC_TIMEOUT = -2, XC_PROTO = -3 };

/* Waits until fd is ready for events or the deadline passes. */
static enum xrc
wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mono_us();
		if (left <= 0)
			return XC_TIMEOUT;
		struct pollfd pfd = { .fd = fd, .events = events };
		struct timespec ts = { .tv_sec = left / 1000000, .tv_nsec = (left % 1000000) * 1000 };
		int n = ppoll(&pfd, 1, &ts, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return XC_IO;
		if (n > 0)
			return XC_OK;
	}
}

/* Sends len bytes of c->wbuf and reads one reply line into c->rbuf (NUL in
 * place of its '\n'); *rlen is its length. *got_any tells whether any reply
 * byte arrived, so that a stale pooled connection can be retried. */
static enum xrc
conn_exchange(struct custos_conn *c, size_t len, int64_t deadline, size_t *rlen, bool *got_any)
{
	size_t off = 0;
	*got_any = false;
	while (off < len) {
		ssize_t n = send(c->fd, c->wbuf + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			enum xrc w = wait_fd(c->fd, POLLOUT, deadline);
			if (w != XC_OK)
				return w;
			continue;
		}
		return XC_IO;
	}

	size_t have = 0;
	for (;;) {
		/* Wait first: the answer is never there right after sending. */
		enum xrc w = wait_fd(c->fd, POLLIN, deadline);
		if (w != XC_OK)
			return w;
		ssize_t n = recv(c->fd, c->rbuf + have, CQ_LINE_MAX - have, 0);
		if (n > 0) {
			*got_any = true;
			char *nl = memchr(c->rbuf + have, '\n', (size_t)n);
			have += (size_t)n;
			if (nl != NULL) {
				/* One request, one reply: anything after the
				 * line means the stream is out of step. */
				if ((size_t)(nl - c->rbuf) + 1 != have)
					return XC_PROTO;
				*nl = '\0';
				*rlen = (size_t)(nl - c->rbuf);
				return XC_OK;
			}
			if (have >= CQ_LINE_MAX)
				return XC_PROTO;
			continue;
		}
		if (n == 0)
			return XC_IO;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		return XC_IO;
	}
}

/* ---- request ---- */

/* An attribute of this request, or of the request it was made for (the outer
 * request of an EAP tunnel or of PEAP's SoH virtual server). */
static VALUE_PAIR *
find_attr(REQUEST *request, unsigned int attr, unsigned int vendor)
{
	for (REQUEST *r = request; r != NULL; r = r->parent) {
		if (r->packet == NULL)
			continue;
		VALUE_PAIR *vp = fr_pair_find_by_num(r->packet->vps, attr, vendor, TAG_ANY);
		if (vp != NULL)
			return vp;
	}
	return NULL;
}

static void
put_attr(struct cq_writer *w, REQUEST *request, const char *key, unsigned int attr)
{
	char buf[1024];
	VALUE_PAIR *vp = find_attr(request, attr, 0);
	if (vp == NULL)
		return;
	/* Text up to the first NUL: clients pad names with one, and custosd
	 * refuses NUL in JSON strings. */
	if (vp->da->type == PW_TYPE_STRING) {
		cq_str(w, key, vp->vp_strvalue, strnlen(vp->vp_strvalue, vp->vp_length));
		return;
	}
	vp_prints_value(buf, sizeof(buf), vp, '\0');
	cq_str(w, key, buf, strnlen(buf, sizeof(buf)));
}

/* NAS address: NAS-IP-Address, else the address the packet came from. */
static void
put_nas_ip(struct cq_writer *w, REQUEST *request)
{
	char buf[INET6_ADDRSTRLEN];
	VALUE_PAIR *vp = find_attr(request, PW_NAS_IP_ADDRESS, 0);
	if (vp != NULL) {
		put_attr(w, request, "nas_ip", PW_NAS_IP_ADDRESS);
		return;
	}
	REQUEST *root = request;
	while (root->parent != NULL)
		root = root->parent;
	if (root->packet == NULL)
		return;
	fr_ipaddr_t const *a = &root->packet->src_ipaddr;
	if (a->af == AF_INET || a->af == AF_INET6) {
		if (inet_ntop(a->af, &a->ipaddr, buf, sizeof(buf)) != NULL)
			cq_str(w, "nas_ip", buf, strlen(buf));
	}
}

/* MS-Quarantine-SOH as hex; a long SoH arrives split over several. */
static void
put_raw_soh(struct cq_writer *w, REQUEST *request)
{
	static const char hexd[] = "0123456789abcdef";
	vp_cursor_t cur;
	VALUE_PAIR *vp;
	size_t total = 0;

	fr_cursor_init(&cur, &request->packet->vps);
	while ((vp = fr_cursor_next_by_num(&cur, MS_QUARANTINE_SOH, MS_VENDOR, TAG_ANY)) != NULL)
		total += vp->vp_length;
	if (total == 0 || total > CQ_LINE_MAX / 4)
		return;
	char *hex = talloc_array(request, char, 2 * total + 1);
	if (hex == NULL)
		return;
	size_t o = 0;
	fr_cursor_init(&cur, &request->packet->vps);
	while ((vp = fr_cursor_next_by_num(&cur, MS_QUARANTINE_SOH, MS_VENDOR, TAG_ANY)) != NULL) {
		for (size_t i = 0; i < vp->vp_length; i++) {
			hex[o++] = hexd[vp->vp_octets[i] >> 4];
			hex[o++] = hexd[vp->vp_octets[i] & 15];
		}
	}
	hex[o] = '\0';
	cq_str(w, "soh", hex, o);
	talloc_free(hex);
}

/* Whether list holds any of soh_attrs (all within 2100..2129): one walk,
 * not one per attribute (most requests have none, and every query asks). */
static bool
has_soh_attr(VALUE_PAIR const *list)
{
	for (VALUE_PAIR const *vp = list; vp != NULL; vp = vp->next) {
		if (vp->da->vendor != 0 || vp->da->attr < PW_SOH_MS_MACHINE_OS_VENDOR ||
		    vp->da->attr > PW_SOH_MS_HEALTH_OTHER)
			continue;
		for (size_t k = 0; k < sizeof(soh_attrs) / sizeof(soh_attrs[0]); k++)
			if (vp->da->attr == soh_attrs[k])
				return true;
	}
	return false;
}

/* The decoded SoH-* attributes: a string per attribute, an array when one
 * occurs several times (SoH-MS-Windows-Health-Status comes once per health
 * class). Taken from the request list (PEAP's SoH virtual server) or, in the
 * outer post-auth, from the reply list where the SoH server's run left them.
 * In the SoH server they are also copied into its reply, which PEAP carries
 * into the outer reply, so that post-auth sees the same Statement of Health.
 * Internal attributes: never encoded into a packet. */
static bool
put_soh_attrs(struct cq_writer *w, REQUEST *request, bool copy_to_reply)
{
	VALUE_PAIR **lists[2] = { &request->packet->vps, &request->reply->vps };
	for (int l = 0; l < 2; l++) {
		if (!has_soh_attr(*lists[l]))
			continue;

		cq_open(w, "soh_attrs", '{');
		for (size_t k = 0; k < sizeof(soh_attrs) / sizeof(soh_attrs[0]); k++) {
			vp_cursor_t cur;
			VALUE_PAIR *vp;
			int n = 0;
			fr_cursor_init(&cur, lists[l]);
			while (fr_cursor_next_by_num(&cur, soh_attrs[k], 0, TAG_ANY) != NULL)
				n++;
			if (n == 0)
				continue;
			DICT_ATTR const *da = dict_attrbyvalue(soh_attrs[k], 0);
			if (da == NULL)
				continue;
			if (n > 1)
				cq_open(w, da->name, '[');
			fr_cursor_init(&cur, lists[l]);
			while ((vp = fr_cursor_next_by_num(&cur, soh_attrs[k], 0, TAG_ANY)) != NULL) {
				char buf[1024];
				size_t len;
				if (vp->da->type == PW_TYPE_STRING)
					len = strnlen(vp->vp_strvalue, vp->vp_length);
				else {
					vp_prints_value(buf, sizeof(buf), vp, '\0');
					len = strnlen(buf, sizeof(buf));
				}
				cq_str(w, n > 1 ? NULL : da->name,
				    vp->da->type == PW_TYPE_STRING ? vp->vp_strvalue : buf, len);
			}
			if (n > 1)
				cq_close(w, ']');
		}
		cq_close(w, '}');

		if (l == 0 && copy_to_reply) {
			for (size_t k = 0; k < sizeof(soh_attrs) / sizeof(soh_attrs[0]); k++) {
				vp_cursor_t cur;
				VALUE_PAIR *vp;
				fr_pair_delete_by_num(&request->reply->vps, soh_attrs[k], 0, TAG_ANY);
				fr_cursor_init(&cur, &request->packet->vps);
				while ((vp = fr_cursor_next_by_num(&cur, soh_attrs[k], 0, TAG_ANY)) != NULL) {
					VALUE_PAIR *cp = fr_pair_copy(request->reply, vp);
					if (cp != NULL)
						fr_pair_add(&request->reply->vps, cp);
				}
			}
		}
		return true;
	}
	return false;
}

static long
build_query(rlm_custos_t *inst, REQUEST *request, const char *phase, char *buf, size_t cap)
{
	struct cq_writer w;
	(void)inst;

	cq_start(&w, buf, cap);
	put_attr(&w, request, "mac", PW_CALLING_STATION_ID);
	put_attr(&w, request, "user", PW_USER_NAME);
	put_attr(&w, request, "cn", PW_TLS_CLIENT_CERT_COMMON_NAME);
	put_attr(&w, request, "ip", PW_FRAMED_IP_ADDRESS);
	put_nas_ip(&w, request);
	put_attr(&w, request, "nas_id", PW_NAS_IDENTIFIER);
	if (find_attr(request, PW_NAS_PORT_ID, 0) != NULL)
		put_attr(&w, request, "nas_port", PW_NAS_PORT_ID);
	else
		put_attr(&w, request, "nas_port", PW_NAS_PORT);
	put_attr(&w, request, "session_id", PW_ACCT_SESSION_ID);
	/* An EAP conversation (or a request inside its tunnel): the outer
	 * User-Name is whatever the supplicant chose, so custosd must not find
	 * the host by it. */
	if (find_attr(request, PW_EAP_MESSAGE, 0) != NULL)
		cq_str(&w, "eap", "yes", 3);
	cq_str(&w, "phase", phase, strlen(phase));
	put_raw_soh(&w, request);
	put_soh_attrs(&w, request, request->parent != NULL);
	return cq_finish(&w);
}

/* Sends the query and parses the reply into r (pointing into the returned
 * connection's buffer, which the caller gives back with pool_give). */
static rlm_rcode_t
query(rlm_custos_t *inst, REQUEST *request, const char *phase, struct cq_reply *r,
    struct custos_conn **connp)
{
	int64_t start = mono_us(), deadline = start + inst->timeout_us;
	struct custos_conn *c = pool_take(inst);
	bool pooled = c != NULL;
	enum xrc x;
	size_t rlen = 0;
	long len = -1;
	char err[160];

	*connp = NULL;
	if (c == NULL && (c = conn_open(inst, request)) == NULL)
		return RLM_MODULE_FAIL;
	for (;;) {
		len = build_query(inst, request, phase, c->wbuf, CQ_LINE_MAX);
		if (len < 0) {
			REDEBUG("query too long");
			pool_give(inst, c);
			return RLM_MODULE_FAIL;
		}
		bool got_any;
		x = conn_exchange(c, (size_t)len, deadline, &rlen, &got_any);
		/* A pooled connection may have been closed by a restarted
		 * custosd: retry once on a fresh one. */
		if (x == XC_IO && pooled && !got_any) {
			conn_close(c);
			pooled = false;
			if ((c = conn_open(inst, request)) == NULL)
				return RLM_MODULE_FAIL;
			continue;
		}
		break;
	}
	if (x != XC_OK) {
		const char *why = x == XC_TIMEOUT ? "timed out" :
		    x == XC_PROTO ? "sent an over-long or unexpected reply" : "closed the connection";
		REDEBUG("custosd %s after %" PRId64 " us", why, mono_us() - start);
		RATE_LIMIT(ERROR("rlm_custos (%s): custosd at %s %s", inst->xlat_name,
		    inst->socket_path, why));
		conn_close(c);
		return RLM_MODULE_FAIL;
	}
	if (cq_parse_reply(c->rbuf, rlen, r, err, sizeof(err)) < 0) {
		REDEBUG("%s", err);
		RATE_LIMIT(ERROR("rlm_custos (%s): custosd sent a %s", inst->xlat_name, err));
		conn_close(c);
		return RLM_MODULE_FAIL;
	}
	RDEBUG2("answered in %" PRId64 " us", mono_us() - start);
	*connp = c;
	return RLM_MODULE_OK;
}

/* Puts the profile's attributes in the reply list; each replaces what the
 * list held for that attribute, repeats of one attribute are all kept
 * (Cisco-AVPair url-redirect and url-redirect-acl). */
static int
apply_reply(REQUEST *request, const struct cq_reply *r)
{
	VALUE_PAIR *add = NULL;
	int n = 0;

	for (size_t i = 0; i < r->npairs; i++) {
		const char *val = r->pairs[i].value;
		VALUE_PAIR *vp = fr_pair_make(request->reply, NULL, r->pairs[i].name, NULL, T_OP_EQ);
		/* Strings are taken literally: no escape processing. */
		if (vp != NULL && vp->da->type == PW_TYPE_STRING)
			fr_pair_value_bstrncpy(vp, val, strlen(val));
		else if (vp != NULL && fr_pair_value_from_str(vp, val, strlen(val)) < 0) {
			talloc_free(vp);
			vp = NULL;
		}
		if (vp == NULL) {
			RWDEBUG("cannot set %s = \"%s\": %s", r->pairs[i].name, val, fr_strerror());
			continue;
		}
		fr_pair_add(&add, vp);
	}
	if (r->dropped > 0)
		RWDEBUG("ignored %zu malformed or surplus reply attributes", r->dropped);

	vp_cursor_t cur;
	VALUE_PAIR *vp;
	for (vp = fr_cursor_init(&cur, &add); vp != NULL; vp = fr_cursor_next(&cur)) {
		bool seen = false;
		for (VALUE_PAIR *p = add; p != vp; p = p->next)
			seen = seen || p->da == vp->da;
		if (!seen)
			fr_pair_delete_by_num(&request->reply->vps, vp->da->attr, vp->da->vendor, TAG_ANY);
		n++;
	}
	fr_pair_add(&request->reply->vps, add);
	return n;
}

static rlm_rcode_t
custos_process(rlm_custos_t *inst, REQUEST *request, const char *phase)
{
	struct cq_reply r;
	struct custos_conn *c;
	rlm_rcode_t rc = query(inst, request, phase, &r, &c);
	if (rc != RLM_MODULE_OK)
		return rc;

	if (r.error != NULL) {
		REDEBUG("custosd refused the query: %s", r.error);
		pool_give(inst, c);
		return RLM_MODULE_INVALID;
	}
	RDEBUG("host %s has posture token %s%s", r.host != NULL ? r.host : "(unknown)",
	    r.token, r.reject ? " (reject)" : "");
	if (inst->da_token != NULL) {
		fr_pair_delete_by_num(&request->config, inst->da_token->attr,
		    inst->da_token->vendor, TAG_ANY);
		VALUE_PAIR *vp = fr_pair_afrom_da(request, inst->da_token);
		if (vp != NULL) {
			fr_pair_value_strcpy(vp, r.token);
			fr_pair_add(&request->config, vp);
		}
	}
	if (r.reject) {
		pool_give(inst, c);
		return RLM_MODULE_REJECT;
	}
	int n = apply_reply(request, &r);
	pool_give(inst, c);
	return n > 0 ? RLM_MODULE_UPDATED : RLM_MODULE_OK;
}

static rlm_rcode_t CC_HINT(nonnull)
mod_authorize(void *instance, REQUEST *request)
{
	return custos_process(instance, request, "authorize");
}

static rlm_rcode_t CC_HINT(nonnull)
mod_post_auth(void *instance, REQUEST *request)
{
	/* Post-Auth-Type REJECT: nothing was admitted, record no session. */
	if (request->reply->code == PW_CODE_ACCESS_REJECT)
		return RLM_MODULE_NOOP;
	return custos_process(instance, request, "post-auth");
}

/* ---- life cycle ---- */

static int
mod_bootstrap(CONF_SECTION *conf, void *instance)
{
	rlm_custos_t *inst = instance;
	ATTR_FLAGS flags;

	inst->xlat_name = cf_section_name2(conf);
	if (inst->xlat_name == NULL)
		inst->xlat_name = cf_section_name1(conf);
	/* Internal attribute for unlang: control:Custos-Token. */
	if (dict_attrbyname("Custos-Token") == NULL) {
		memset(&flags, 0, sizeof(flags));
		if (dict_addattr("Custos-Token", -1, 0, PW_TYPE_STRING, flags) < 0) {
			cf_log_err_cs(conf, "Cannot define attribute Custos-Token: %s", fr_strerror());
			return -1;
		}
	}
	return 0;
}

static int
mod_instantiate(CONF_SECTION *conf, void *instance)
{
	rlm_custos_t *inst = instance;
	size_t plen = strlen(inst->socket_path);

	inst->da_token = dict_attrbyname("Custos-Token");
	if (plen >= sizeof(inst->sun.sun_path)) {
		cf_log_err_cs(conf, "socket path \"%s\" is longer than %zu bytes; use a shorter path",
		    inst->socket_path, sizeof(inst->sun.sun_path) - 1);
		return -1;
	}
	memset(&inst->sun, 0, sizeof(inst->sun));
	inst->sun.sun_family = AF_UNIX;
	memcpy(inst->sun.sun_path, inst->socket_path, plen + 1);
	inst->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);

	if (inst->timeout.tv_sec < 0 || inst->timeout.tv_sec > 60 ||
	    (inst->timeout.tv_sec == 0 && inst->timeout.tv_usec < 1000)) {
		cf_log_err_cs(conf, "timeout must be between 0.001 and 60 seconds");
		return -1;
	}
	inst->timeout_us = (int)(inst->timeout.tv_sec * 1000000 + inst->timeout.tv_usec);
	if (inst->pool_size > 4096) {
		cf_log_err_cs(conf, "pool_size must be at most 4096");
		return -1;
	}
	inst->idle = talloc_zero_array(inst, struct custos_conn *, inst->pool_size + 1);
	if (inst->idle == NULL)
		return -1;
	if (pthread_mutex_init(&inst->lock, NULL) != 0)
		return -1;
	inst->lock_init = true;
	/* No connection at start: custosd may come up after FreeRADIUS, and
	 * until it does the site's fallback applies. */
	return 0;
}

static int
mod_detach(void *instance)
{
	rlm_custos_t *inst = instance;
	if (inst->idle != NULL) {
		for (uint32_t i = 0; i < inst->n_idle; i++)
			conn_close(inst->idle[i]);
		inst->n_idle = 0;
	}
	if (inst->lock_init)
		pthread_mutex_destroy(&inst->lock);
	return 0;
}

extern module_t rlm_custos;
module_t rlm_custos = {
	.magic		= RLM_MODULE_INIT,
	.name		= "custos",
	.type		= RLM_TYPE_THREAD_SAFE | RLM_TYPE_HUP_SAFE,
	.inst_size	= sizeof(rlm_custos_t),
	.config		= module_config,
	.bootstrap	= mod_bootstrap,
	.instantiate	= mod_instantiate,
	.detach		= mod_detach,
	.methods = {
		[MOD_AUTHORIZE]		= mod_authorize,
		[MOD_POST_AUTH]		= mod_post_auth,
	},
};
