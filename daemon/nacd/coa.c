/* coa.c — see coa.h. */
#include <freeradius/build.h>
#include <freeradius/libradius.h>

#include "nacd/coa.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "nacd/nac.h"
#include "core/registry.h"
#include "core/server.h"
#include "util.h"

/* Debian's freeradius-common; the full dictionary (Cisco's included). */
#define COA_DICT_DIR	"/usr/share/freeradius"
#define COA_SECRET_MAX	256
#define COA_QUEUE_MAX	4096	/* requests waiting for a RADIUS identifier */
#define COA_PKT_MAX	4096

struct coa_nas {
	char name[64];
	char address[INET6_ADDRSTRLEN];
	struct sockaddr_storage sa;
	socklen_t salen;
	char secret[COA_SECRET_MAX + 1];
	char vendor[32];
	bool disconnect;
	bool require_ma;
	bool enabled;             /* has a secret_file: CoA goes to it */
	int retries;
	int interval_ms;
};

struct coa_req {
	struct coa *coa;
	struct coa_nas nas;       /* a copy: a reload may replace the list meanwhile */
	RADIUS_PACKET *pkt;       /* encoded and signed once; resent as is */
	struct event *timer;
	int id;                   /* RADIUS identifier, -1 while queued */
	int sends;
	int64_t first_ms;
	char host[64];
	char session[128];
	char change[48];          /* "Healthy -> Infected" */
	struct coa_req *next;     /* queue link */
};

/* libfreeradius-radius's dictionary is process-wide. */
static bool dict_loaded;

struct coa {
	struct server *srv;
	struct event_base *base;
	struct coa_nas *nas;
	size_t n_nas;
	int fd4, fd6;
	struct event *ev4, *ev6;
	struct coa_req *inflight[256];
	size_t n_inflight;
	uint8_t next_id;
	struct coa_req *qhead, *qtail;
	size_t qlen;
	struct coa_stats st;
};

static const char *
kind(const struct coa_nas *n)
{
	return n->disconnect ? "Disconnect-Request" : "CoA-Request";
}

/* ---- configuration ---- */

/* The secret: first line of a regular file nobody but its owner can read. */
static int
read_secret(const char *path, char *out, size_t outsz, char *err, size_t errlen)
{
	struct stat st;
	char buf[COA_SECRET_MAX + 2];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		str_fmt(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		str_fmt(err, errlen, "secret file %s is not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		str_fmt(err, errlen, "secret file %s is readable or writable by group or others "
		    "(mode %04o); chmod 600 it", path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		str_fmt(err, errlen, "cannot read secret file %s: %s", path, strerror(e));
		return -1;
	}
	buf[n] = '\0';
	size_t len = strcspn(buf, "\r\n");
	if (len > COA_SECRET_MAX || (len == (size_t)n && (size_t)n == sizeof(buf) - 1)) {
		str_fmt(err, errlen, "secret in %s is longer than %d bytes", path, COA_SECRET_MAX);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	if (len == 0 || memchr(buf, '\0', len) != NULL) {
		str_fmt(err, errlen, "secret file %s holds no secret on its first line", path);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	buf[len] = '\0';
	str_copy(out, buf, outsz);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static int
load_nas(struct coa *c, size_t i, struct coa_nas *n, char *err, size_t errlen)
{
	const struct conf *cfg = c->srv->cfg;
	const char *name = conf_list_str(cfg, "nac.nas", i, "name");
	const char *addr = conf_list_str(cfg, "nac.nas", i, "address");
	const char *method = conf_list_str(cfg, "nac.nas", i, "method");
	const char *where = conf_list_where(cfg, "nac.nas", i);
	char why[320];

	if (str_copy(n->name, name, sizeof(n->name)) >= sizeof(n->name) || name[0] == '\0') {
		str_fmt(err, errlen, "%s: nac.nas name must be 1 to %zu characters", where,
		    sizeof(n->name) - 1);
		return -1;
	}
	memset(&n->sa, 0, sizeof(n->sa));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&n->sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&n->sa;
	int port = (int)conf_list_int(cfg, "nac.nas", i, "coa_port");
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		n->salen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		n->salen = sizeof(*s6);
	} else {
		str_fmt(err, errlen, "%s: nac.nas \"%s\": address \"%s\" is not an IPv4 or IPv6 "
		    "address (host names are not resolved)", where, n->name, addr);
		return -1;
	}
	str_copy(n->address, addr, sizeof(n->address));
	if (strcmp(method, "coa") == 0)
		n->disconnect = false;
	else if (strcmp(method, "disconnect") == 0)
		n->disconnect = true;
	else {
		str_fmt(err, errlen, "%s: nac.nas \"%s\": method must be \"coa\" or \"disconnect\", "
		    "not \"%s\"", where, n->name, method);
		return -1;
	}
	if (str_copy(n->vendor, conf_list_str(cfg, "nac.nas", i, "vendor"), sizeof(n->vendor)) >=
	    sizeof(n->vendor)) {
		str_fmt(err, errlen, "%s: nac.nas \"%s\": vendor is too long", where, n->name);
		return -1;
	}
	n->retries = (int)conf_list_int(cfg, "nac.nas", i, "retries");
	n->interval_ms = (int)conf_list_int(cfg, "nac.nas", i, "retry_interval_ms");
	n->require_ma = conf_list_bool(cfg, "nac.nas", i, "require_message_authenticator");
	const char *secret_file = conf_list_str(cfg, "nac.nas", i, "secret_file");
	n->enabled = secret_file[0] != '\0';
	if (n->enabled && read_secret(secret_file, n->secret, sizeof(n->secret), why,
	    sizeof(why)) < 0) {
		str_fmt(err, errlen, "%s: nac.nas \"%s\": %s", where, n->name, why);
		return -1;
	}
	return 0;
}

/* ---- sockets ---- */

static void on_read(evutil_socket_t fd, short what, void *arg);

static int
open_socket(struct coa *c, int family, int *fdp, struct event **evp, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		str_fmt(err, errlen, "nac: cannot open a UDP socket for CoA: %s", strerror(errno));
		return -1;
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		str_fmt(err, errlen, "nac: cannot bind the CoA socket: %s", strerror(errno));
		close(fd);
		return -1;
	}
	*evp = event_new(c->base, fd, EV_READ | EV_PERSIST, on_read, c);
	if (*evp == NULL || event_add(*evp, NULL) < 0) {
		str_fmt(err, errlen, "nac: cannot watch the CoA socket");
		if (*evp != NULL)
			event_free(*evp);
		*evp = NULL;
		close(fd);
		return -1;
	}
	*fdp = fd;
	return 0;
}

/* ---- requests ---- */

static void
req_free(struct coa_req *r)
{
	if (r == NULL)
		return;
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->pkt != NULL)
		talloc_free(r->pkt);
	explicit_bzero(&r->nas, sizeof(r->nas));
	free(r);
}

/* A string attribute from a field of size valsz (at most 253 bytes go). */
static bool
add_str(RADIUS_PACKET *p, unsigned int attr, const char *val, size_t valsz)
{
	if (val == NULL || val[0] == '\0')
		return true;
	VALUE_PAIR *vp = fr_pair_afrom_num(p, attr, 0);
	if (vp == NULL)
		return false;
	fr_pair_value_bstrncpy(vp, val, strnlen(val, valsz < 253 ? valsz : 253));
	fr_pair_add(&p->vps, vp);
	return true;
}

static bool
add_int(RADIUS_PACKET *p, unsigned int attr, uint32_t val)
{
	VALUE_PAIR *vp = fr_pair_afrom_num(p, attr, 0);
	if (vp == NULL)
		return false;
	if (vp->da->type == PW_TYPE_DATE)
		vp->vp_date = val;
	else
		vp->vp_integer = val;
	vp->vp_length = 4;
	fr_pair_add(&p->vps, vp);
	return true;
}

/* Builds, encodes and signs the request. id is set later (sign again). */
static RADIUS_PACKET *
build_packet(const struct coa_nas *n, const struct nac_session *s, char *err, size_t errlen)
{
	RADIUS_PACKET *p = rad_alloc(NULL, false);
	bool ok = p != NULL;
	struct in_addr nas4;

	if (!ok) {
		str_copy(err, "out of memory", errlen);
		return NULL;
	}
	p->code = n->disconnect ? PW_CODE_DISCONNECT_REQUEST : PW_CODE_COA_REQUEST;
	/* Message-Authenticator first (BlastRADIUS); rad_sign fills it. */
	ok = ok && fr_pair_make(p, &p->vps, "Message-Authenticator", "0x00", T_OP_EQ) != NULL;
	/* Identification: the session the NAS holds for this station. */
	if (inet_pton(AF_INET, s->nas_ip, &nas4) == 1) {
		VALUE_PAIR *vp = fr_pair_afrom_num(p, PW_NAS_IP_ADDRESS, 0);
		ok = ok && vp != NULL;
		if (vp != NULL) {
			vp->vp_ipaddr = nas4.s_addr;
			vp->vp_length = 4;
			fr_pair_add(&p->vps, vp);
		}
	}
	ok = ok && add_str(p, PW_NAS_IDENTIFIER, s->nas_id, sizeof(s->nas_id));
	ok = ok && add_str(p, PW_USER_NAME, s->user, sizeof(s->user));
	ok = ok && add_str(p, PW_CALLING_STATION_ID, s->calling_station_id,
	    sizeof(s->calling_station_id));
	ok = ok && add_str(p, PW_ACCT_SESSION_ID, s->session_id, sizeof(s->session_id));
	ok = ok && add_int(p, PW_EVENT_TIMESTAMP, (uint32_t)now_s());
	if (ok && !n->disconnect) {
		if (strcmp(n->vendor, "cisco") == 0) {
			ok = fr_pair_make(p, &p->vps, "Cisco-AVPair",
			    "subscriber:command=reauthenticate", T_OP_ADD) != NULL &&
			    fr_pair_make(p, &p->vps, "Cisco-AVPair",
			    "subscriber:reauthenticate-type=rerun", T_OP_ADD) != NULL;
		} else {
			/* RFC 5176 3.2: Authorize Only needs a State. */
			uint8_t state[16];
			VALUE_PAIR *vp;
			ok = random_bytes(state, sizeof(state)) == 0 &&
			    add_int(p, PW_SERVICE_TYPE, 17) &&
			    (vp = fr_pair_afrom_num(p, PW_STATE, 0)) != NULL;
			if (ok) {
				fr_pair_value_memcpy(vp, state, sizeof(state));
				fr_pair_add(&p->vps, vp);
			}
		}
	}
	if (!ok) {
		str_fmt(err, errlen, "cannot build the %s: %s", kind(n), fr_strerror());
		talloc_free(p);
		return NULL;
	}
	return p;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

static int
req_send(struct coa *c, struct coa_req *r)
{
	const struct coa_nas *n = &r->nas;
	int fd = n->sa.ss_family == AF_INET ? c->fd4 : c->fd6;
	ssize_t w = sendto(fd, r->pkt->data, r->pkt->data_len, 0,
	    (const struct sockaddr *)&n->sa, n->salen);
	r->sends++;
	if (w < 0 || (size_t)w != r->pkt->data_len) {
		/* EAGAIN and the like: the retry timer sends it again. */
		log_warn("nac", "CoA: sending a %s to NAS %s (%s) failed", kind(n), n->name, n->address);
		return -1;
	}
	c->st.sent++;
	return 0;
}

/* Gives the request a free identifier, signs and sends it. */
static void
req_start(struct coa *c, struct coa_req *r)
{
	char err[256];
	int id = -1;
	for (int k = 0; k < 256; k++) {
		int cand = (c->next_id + k) & 0xff;
		if (c->inflight[cand] == NULL) {
			id = cand;
			break;
		}
	}
	/* Called only with a free identifier. */
	if (id < 0)
		abort();
	c->next_id = (uint8_t)(id + 1);
	r->id = id;
	r->pkt->id = id;
	if (rad_encode(r->pkt, NULL, r->nas.secret) < 0 ||
	    rad_sign(r->pkt, NULL, r->nas.secret) < 0) {
		str_copy(err, fr_strerror(), sizeof(err));
		log_warnx("nac", "CoA: cannot encode the %s for host %s to NAS %s: %s",
		    kind(&r->nas), r->host, r->nas.name, err);
		c->st.errors++;
		req_free(r);
		return;
	}
	c->inflight[id] = r;
	c->n_inflight++;
	(void)req_send(c, r);
	struct timeval tv = { r->nas.interval_ms / 1000, (r->nas.interval_ms % 1000) * 1000 };
	evtimer_add(r->timer, &tv);
}

/* Ends an in-flight request and lets a queued one take its identifier. */
static void
req_done(struct coa *c, struct coa_req *r)
{
	c->inflight[r->id] = NULL;
	c->n_inflight--;
	req_free(r);
	/* a queued request that fails to encode frees its identifier at once:
	 * go on until one is in flight or the queue is empty */
	while (c->qhead != NULL && c->n_inflight < 256) {
		struct coa_req *q = c->qhead;
		c->qhead = q->next;
		if (c->qhead == NULL)
			c->qtail = NULL;
		c->qlen--;
		q->next = NULL;
		req_start(c, q);
	}
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct coa_req *r = arg;
	struct coa *c = r->coa;
	(void)fd;
	(void)what;

	if (r->sends <= r->nas.retries) {
		c->st.retransmits++;
		log_debug("nac", "CoA: no answer from NAS %s for host %s; retransmitting (%d of %d)",
		    r->nas.name, r->host, r->sends, r->nas.retries);
		(void)req_send(c, r);
		struct timeval tv = { r->nas.interval_ms / 1000, (r->nas.interval_ms % 1000) * 1000 };
		evtimer_add(r->timer, &tv);
		return;
	}
	c->st.timeouts++;
	log_warnx("nac", "CoA: NAS %s (%s port %d) did not answer the %s for host %s (%s, session "
	    "\"%s\") after %d tries in %lld ms; check the NAS's dynamic-authorization client and "
	    "secret", r->nas.name, r->nas.address,
	    ntohs(((const struct sockaddr_in *)&r->nas.sa)->sin_port), kind(&r->nas), r->host,
	    r->change, r->session, r->sends, (long long)(mono_ms() - r->first_ms));
	req_done(c, r);
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port &&
	    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* Error-Cause of a NAK, as text for the log. */
static void
nak_cause(RADIUS_PACKET *reply, RADIUS_PACKET *req, const char *secret, char *out, size_t outsz)
{
	str_copy(out, "no Error-Cause", outsz);
	if (rad_decode(reply, req, secret) < 0)
		return;
	VALUE_PAIR *vp = fr_pair_find_by_num(reply->vps, PW_ERROR_CAUSE, 0, TAG_ANY);
	if (vp != NULL) {
		char v[64];
		vp_prints_value(v, sizeof(v), vp, '\0');
		str_fmt(out, outsz, "Error-Cause %s", v);
	}
}

static void
handle_reply(struct coa *c, const uint8_t *buf, size_t len, const struct sockaddr_storage *from)
{
	char why[256];
	if (len < 20 || len > COA_PKT_MAX) {
		c->st.bad_replies++;
		return;
	}
	struct coa_req *r = c->inflight[buf[1]];
	if (r == NULL || !same_addr(from, &r->nas.sa)) {
		c->st.bad_replies++;
		log_debug("nac", "CoA: ignoring an unexpected datagram (identifier %u)", buf[1]);
		return;
	}
	const struct coa_nas *n = &r->nas;
	RADIUS_PACKET *reply = rad_alloc(NULL, false);
	if (reply == NULL)
		return;
	reply->data = talloc_memdup(reply, buf, len);
	reply->data_len = len;
	reply->src_ipaddr.af = from->ss_family;
	if (from->ss_family == AF_INET)
		reply->src_ipaddr.ipaddr.ip4addr = ((const struct sockaddr_in *)from)->sin_addr;
	else
		reply->src_ipaddr.ipaddr.ip6addr = ((const struct sockaddr_in6 *)from)->sin6_addr;
	decode_fail_t reason = DECODE_FAIL_NONE;
	unsigned int expect_ack = n->disconnect ? PW_CODE_DISCONNECT_ACK : PW_CODE_COA_ACK;
	unsigned int expect_nak = n->disconnect ? PW_CODE_DISCONNECT_NAK : PW_CODE_COA_NAK;

	if (reply->data == NULL || !rad_packet_ok(reply, n->require_ma ? 1 : 0, &reason) ||
	    (reply->code != expect_ack && reply->code != expect_nak) ||
	    rad_verify(reply, r->pkt, n->secret) < 0) {
		if (reply->data != NULL && reason == DECODE_FAIL_MA_MISSING)
			str_copy(why, "it has no Message-Authenticator", sizeof(why));
		else if (reply->data != NULL && reason == DECODE_FAIL_NONE &&
		    reply->code != expect_ack && reply->code != expect_nak)
			str_fmt(why, sizeof(why), "packet code %d is not the answer to a %s",
			    reply->code, kind(n));
		else
			str_fmt(why, sizeof(why), "%s", fr_strerror());
		c->st.bad_replies++;
		log_warnx("nac", "CoA: dropped an answer from NAS %s (%s): %s; check the secret in "
		    "its secret file", n->name, n->address, why);
		talloc_free(reply);
		return;	/* the request stays in flight: a good answer may follow */
	}
	int64_t ms = mono_ms() - r->first_ms;
	if (reply->code == expect_ack) {
		c->st.acks++;
		log_info("nac", "CoA: NAS %s acknowledged the %s for host %s (%s, session \"%s\") in "
		    "%lld ms", n->name, kind(n), r->host, r->change, r->session, (long long)ms);
	} else {
		char cause[96];
		nak_cause(reply, r->pkt, n->secret, cause, sizeof(cause));
		c->st.naks++;
		log_warnx("nac", "CoA: NAS %s refused the %s for host %s (%s, session \"%s\"): %s",
		    n->name, kind(n), r->host, r->change, r->session, cause);
	}
	talloc_free(reply);
	req_done(c, r);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct coa *c = arg;
	uint8_t buf[COA_PKT_MAX + 1];
	(void)what;

	/* Bounded: at most a loop's worth of datagrams per wake-up. */
	for (int k = 0; k < 64; k++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNREFUSED)
				log_warn("nac", "CoA: receiving");
			return;
		}
		handle_reply(c, buf, (size_t)n, &from);
	}
}

/* ---- public ---- */

static const struct coa_nas *
find_nas(const struct coa *c, const struct nac_session *s)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct in_addr a4;
	struct in6_addr a6;
	bool v4 = inet_pton(AF_INET, s->nas_ip, &a4) == 1;
	bool v6 = !v4 && inet_pton(AF_INET6, s->nas_ip, &a6) == 1;

	for (size_t i = 0; i < c->n_nas; i++) {
		const struct coa_nas *n = &c->nas[i];
		if (v4 && n->sa.ss_family == AF_INET &&
		    ((const struct sockaddr_in *)&n->sa)->sin_addr.s_addr == a4.s_addr)
			return n;
		if (v6 && n->sa.ss_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)&n->sa)->sin6_addr, &a6, sizeof(a6)) == 0)
			return n;
	}
	/* No address match: the NAS-Identifier may name it. */
	for (size_t i = 0; i < c->n_nas; i++)
		if (s->nas_id[0] != '\0' && strcmp(c->nas[i].name, s->nas_id) == 0)
			return &c->nas[i];
	return NULL;
}

void
coa_host_worsened(struct coa *c, const struct host *h, const struct nac_session *s,
    const char *old_token, const char *new_token)
{
	char err[256];
	if (c == NULL || h == NULL)
		return;
	if (s == NULL) {
		c->st.no_session++;
		log_debug("nac", "CoA: host %s went %s -> %s but no NAS admitted it; nothing to send",
		    h->name, old_token, new_token);
		return;
	}
	const struct coa_nas *n = find_nas(c, s);
	if (n == NULL) {
		c->st.no_nas++;
		log_warnx("nac", "CoA: host %s went %s -> %s, admitted by NAS %s (%s), which is not in "
		    "nac.nas; add it there to move such hosts at once", h->name, old_token, new_token,
		    s->nas_ip[0] != '\0' ? s->nas_ip : "?", s->nas_id[0] != '\0' ? s->nas_id : "no id");
		return;
	}
	if (!n->enabled) {
		c->st.no_nas++;
		log_warnx("nac", "CoA: host %s went %s -> %s on NAS %s, which has no secret_file in "
		    "nac.nas; set one to move such hosts at once", h->name, old_token, new_token, n->name);
		return;
	}
	if (c->qlen >= COA_QUEUE_MAX) {
		c->st.errors++;
		log_warnx("nac", "CoA: %zu requests already wait for NAS answers; dropping the %s for "
		    "host %s", c->qlen, kind(n), h->name);
		return;
	}
	struct coa_req *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		c->st.errors++;
		log_warnx("nac", "CoA: out of memory");
		return;
	}
	r->coa = c;
	r->nas = *n;
	r->id = -1;
	r->first_ms = mono_ms();
	str_copy(r->host, h->name, sizeof(r->host));
	str_copy(r->session, s->session_id, sizeof(r->session));
	str_fmt(r->change, sizeof(r->change), "%.16s -> %.16s", old_token, new_token);
	r->pkt = build_packet(&r->nas, s, err, sizeof(err));
	r->timer = evtimer_new(c->base, on_timer, r);
	if (r->pkt == NULL || r->timer == NULL) {
		c->st.errors++;
		log_warnx("nac", "CoA: host %s: %s", h->name, r->pkt == NULL ? err : "out of memory");
		req_free(r);
		return;
	}
	c->st.requests++;
	log_info("nac", "CoA: host %s went %s; sending a %s to NAS %s (%s) for session \"%s\" "
	    "(station %s)", h->name, r->change, kind(n), n->name, n->address, s->session_id,
	    s->calling_station_id);
	if (c->n_inflight < 256) {
		req_start(c, r);
		return;
	}
	if (c->qtail != NULL)
		c->qtail->next = r;
	else
		c->qhead = r;
	c->qtail = r;
	c->qlen++;
}

static void
nas_list_free(struct coa_nas *nas, size_t n)
{
	if (nas == NULL)
		return;
	explicit_bzero(nas, n * sizeof(*nas));
	free(nas);
}

/* Reads nac.nas into a new list and makes sure the dictionary and a socket
 * for every address family it uses are there; nothing of c's list changes. */
static int
nas_list_load(struct coa *c, struct coa_nas **out, size_t *n_out, size_t *n_coa, char *err,
    size_t errlen)
{
	size_t n = conf_list_len(c->srv->cfg, "nac.nas");
	struct coa_nas *nas = NULL;
	bool v4 = false, v6 = false;
	*n_coa = 0;
	if (n > 0 && (nas = calloc(n, sizeof(*nas))) == NULL) {
		str_copy(err, "nac: out of memory", errlen);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (load_nas(c, i, &nas[i], err, errlen) < 0)
			goto fail;
		if (!nas[i].enabled)
			continue;
		(*n_coa)++;
		v4 = v4 || nas[i].sa.ss_family == AF_INET;
		v6 = v6 || nas[i].sa.ss_family == AF_INET6;
	}
	/* Loaded once per process and never freed: libfreeradius-radius 3.2
	 * keeps pointers into a freed dictionary, so dict_free() followed by
	 * dict_init() (a reload) reads freed memory. */
	if (*n_coa > 0 && !dict_loaded) {
		if (dict_init(COA_DICT_DIR, "dictionary") < 0) {
			str_fmt(err, errlen, "nac: cannot load the RADIUS dictionary from %s: %s; "
			    "install freeradius-common", COA_DICT_DIR, fr_strerror());
			goto fail;
		}
		dict_loaded = true;
	}
	if ((v4 && c->fd4 < 0 && open_socket(c, AF_INET, &c->fd4, &c->ev4, err, errlen) < 0) ||
	    (v6 && c->fd6 < 0 && open_socket(c, AF_INET6, &c->fd6, &c->ev6, err, errlen) < 0))
		goto fail;
	*out = nas;
	*n_out = n;
	return 0;
fail:
	nas_list_free(nas, n);
	return -1;
}

struct coa *
coa_new(struct server *srv, char *err, size_t errlen)
{
	struct coa *c = calloc(1, sizeof(*c));
	size_t n_coa;
	if (c == NULL) {
		str_copy(err, "nac: out of memory", errlen);
		return NULL;
	}
	c->srv = srv;
	c->base = srv->base;
	c->fd4 = c->fd6 = -1;
	if (nas_list_load(c, &c->nas, &c->n_nas, &n_coa, err, errlen) < 0) {
		coa_free(c);
		return NULL;
	}
	if (n_coa > 0)
		log_info("nac", "CoA: %zu of %zu NAS(es) have a secret_file and get CoA", n_coa, c->n_nas);
	return c;
}

int
coa_reload(struct coa *c, char *err, size_t errlen)
{
	struct coa_nas *nas;
	size_t n, n_coa;
	if (c == NULL)
		return 0;
	if (nas_list_load(c, &nas, &n, &n_coa, err, errlen) < 0)
		return -1;
	nas_list_free(c->nas, c->n_nas);
	c->nas = nas;
	c->n_nas = n;
	log_info("nac", "CoA: %zu of %zu NAS(es) have a secret_file and get CoA (reloaded; %zu "
	    "request(s) in flight keep their NAS settings)", n_coa, n, c->n_inflight + c->qlen);
	return 0;
}

void
coa_free(struct coa *c)
{
	if (c == NULL)
		return;
	size_t dropped = c->n_inflight + c->qlen;
	for (int i = 0; i < 256; i++)
		req_free(c->inflight[i]);
	while (c->qhead != NULL) {
		struct coa_req *q = c->qhead;
		c->qhead = q->next;
		req_free(q);
	}
	if (dropped > 0)
		log_warnx("nac", "CoA: %zu request(s) still unanswered at shutdown", dropped);
	if (c->ev4 != NULL)
		event_free(c->ev4);
	if (c->ev6 != NULL)
		event_free(c->ev6);
	if (c->fd4 >= 0)
		close(c->fd4);
	if (c->fd6 >= 0)
		close(c->fd6);
	nas_list_free(c->nas, c->n_nas);
	free(c);
}

void
coa_get_stats(const struct coa *c, struct coa_stats *out)
{
	if (c == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = c->st;
}

size_t
coa_pending(const struct coa *c)
{
	return c == NULL ? 0 : c->n_inflight + c->qlen;
}
