/* snmp.c — see snmp.h. The AgentX subagent thread: a session with snmpd
 * spoken natively (RFC 2741, codec in agentx.c) on one thread that owns
 * every byte of it. What the MIB holds is in snmp_mib.c.
 *
 * Why not Net-SNMP's subagent library: snmpd asks a subagent for one
 * varbind per AgentX round trip during a walk, and the library spent about
 * ten system calls on each; here a round trip is one read and one write,
 * and after answering the thread polls the socket for a short while
 * (SPIN_US) before it sleeps, so the next request of a walk is taken
 * without a wake-up. The thread runs at nice 19 and polls only while no
 * agent is being served (pace_us), so that polling takes CPU time from
 * nobody who needs it. */
#include "snmp/snmp.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "snmp/agentx.h"
#include "fleet/fleet.h"
#include "log.h"
#include "core/server.h"
#include "util.h"

/* custosObjects: the one subtree registered with snmpd */
static const uint32_t objects_oid[] = { 1, 3, 6, 1, 4, 1, 32473, 1, 1 };
/* custosMIB: the subagent's identity in the Open-PDU */
static const uint32_t mib_oid[] = { 1, 3, 6, 1, 4, 1, 32473, 1 };
static const uint32_t snmptrap_oid[] = { 1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0 };

#define IN_CAP (AGENTX_HEADER_LEN + AGENTX_PAYLOAD_MAX)
#define OUT_CAP (4 * IN_CAP)
#define PDU_ROOM IN_CAP            /* free output needed before taking a request */
#define OPEN_TIMEOUT_MS 2000       /* for snmpd's answers to Open and Register */
#define TICK_MS 200                /* notification pump and reconnect check */
#ifndef SPIN_US
#define SPIN_US 200                /* poll for the next request before sleeping */
#endif
/* Agents come first (snmp.yield_to_agents): while custosd served an agent
 * within the last YIELD_WINDOW_MS, the thread waits after each answer
 * instead of polling, one microsecond per agent frame per second (between
 * YIELD_MIN_US and YIELD_MAX_US), which also holds back the CPU time snmpd
 * spends on the walk: a few agents barely slow a walk, a saturated server
 * gets nearly all the CPU. The benchmark measured agent sync p99 x1.34-1.55
 * during walks without this, x1.13-1.14 with a fixed 250 us. */
#define YIELD_WINDOW_MS 100
#define YIELD_MIN_US 50
#define YIELD_MAX_US 2000
#define SNMP_TOO_BIG 1
#define SNMP_GEN_ERR 5

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
	bool yield;                /* snmp.yield_to_agents */
	double rate, burst, tokens;
	int64_t refilled_ms;

	/* SNMP thread only */
	int fd;                   /* the AgentX session, -1 when none */
	bool connected, ever_connected, told_absent;
	uint32_t session, packet;
	int64_t next_try_ms, last_heard_ms, ping_sent_ms;
	uint32_t ping_packet;
	uint8_t *in, *out;
	size_t in_len, out_len;
	struct pending pending[NC_COUNT];
	uint64_t dropped[FLEET_NOTICE_KINDS];
	size_t rr;
	uint64_t sent, coalesced, requests, yields;
	int64_t out_progress_ms;  /* last time snmpd took bytes of ours */
	int64_t rate_ms;          /* agent frame rate: last sample */
	uint64_t rate_count;
	double agent_fps;
};

static atomic_bool running;   /* one subagent per process */

static void
put_answer(struct agentx_writer *w, const uint32_t *name, size_t len, const struct snmp_answer *a)
{
	switch (a->type) {
	case SNMP_ANS_INTEGER:
		agentx_put_varbind_head(w, AGENTX_V_INTEGER, name, len);
		agentx_put_u32(w, (uint32_t)(int32_t)(int64_t)a->num);
		break;
	case SNMP_ANS_STRING:
		agentx_put_varbind_head(w, AGENTX_V_OCTETS, name, len);
		agentx_put_octets(w, a->buf, a->len);
		break;
	case SNMP_ANS_UNSIGNED:
	case SNMP_ANS_GAUGE:
		agentx_put_varbind_head(w, AGENTX_V_GAUGE32, name, len);
		agentx_put_u32(w, (uint32_t)a->num);
		break;
	case SNMP_ANS_TIMETICKS:
		agentx_put_varbind_head(w, AGENTX_V_TIMETICKS, name, len);
		agentx_put_u32(w, (uint32_t)a->num);
		break;
	case SNMP_ANS_COUNTER64:
		agentx_put_varbind_head(w, AGENTX_V_COUNTER64, name, len);
		agentx_put_u64(w, a->num);
		break;
	}
}

/* ---- the session: bytes in and out ---- */

static void
session_close(struct snmp *s, const char *why)
{
	if (s->fd < 0)
		return;
	close(s->fd);
	s->fd = -1;
	s->in_len = 0;
	s->out_len = 0;
	s->next_try_ms = mono_ms() + (int64_t)s->reconnect * 1000;
	if (s->connected && !s->told_absent)
		log_warnx("snmp", "lost the AgentX session with snmpd at %s (%s); trying again every %d s",
		    s->socket, why, s->reconnect);
	if (s->connected)
		s->told_absent = true;
	s->connected = false;
}

/* Writes what waits; false when the session broke. */
static bool
flush_out(struct snmp *s)
{
	size_t off = 0;
	while (off < s->out_len) {
		ssize_t n = send(s->fd, s->out + off, s->out_len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		session_close(s, n < 0 ? strerror(errno) : "closed");
		return false;
	}
	if (off > 0) {
		memmove(s->out, s->out + off, s->out_len - off);
		s->out_len -= off;
		s->out_progress_ms = mono_ms();
	}
	return true;
}

static void
out_writer(struct snmp *s, struct agentx_writer *w)
{
	agentx_writer_init(w, s->out + s->out_len, OUT_CAP - s->out_len);
}

static void
out_commit(struct snmp *s, const struct agentx_writer *w)
{
	if (!w->overflow)
		s->out_len += w->len;
}

/* ---- requests from snmpd ---- */

static size_t
clip(const struct agentx_oid *o, uint32_t *req)
{
	/* longer names never equal an instance; cutting keeps the order */
	size_t len = o->len < SNMP_OID_MAX ? o->len : SNMP_OID_MAX;
	memcpy(req, o->sub, len * sizeof(*req));
	return len;
}

/* One GetNext search range: the first instance in [start, end). */
static void
put_next(struct agentx_writer *w, const struct fleet_snapshot *snap, int64_t now,
    const struct agentx_oid *start, const struct agentx_oid *end, struct agentx_oid *found)
{
	uint32_t req[SNMP_OID_MAX], out[SNMP_OID_MAX];
	size_t len = clip(start, req), outlen = 0;
	struct snmp_answer a;
	enum snmp_found f = SNMP_END_OF_VIEW;
	if (start->include && start->len <= SNMP_OID_MAX)
		f = snmp_resolve(snap, now, req, len, false, out, &outlen, &a);
	if (f != SNMP_FOUND)
		f = snmp_resolve(snap, now, req, len, true, out, &outlen, &a);
	if (f == SNMP_FOUND && (end->len == 0 ||
	    agentx_oid_cmp(out, outlen, end->sub, end->len) < 0)) {
		put_answer(w, out, outlen, &a);
		if (found != NULL) {
			memcpy(found->sub, out, outlen * sizeof(*out));
			found->len = outlen;
			found->include = false;
		}
		return;
	}
	agentx_put_varbind_head(w, AGENTX_V_END_OF_MIB_VIEW, start->sub, start->len);
	if (found != NULL) {
		*found = *start;
		found->len = 0;          /* no further repetitions */
	}
}

static void
put_get(struct agentx_writer *w, const struct fleet_snapshot *snap, int64_t now,
    const struct agentx_oid *o)
{
	uint32_t req[SNMP_OID_MAX], out[SNMP_OID_MAX];
	size_t len = clip(o, req), outlen = 0;
	struct snmp_answer a;
	enum snmp_found f = o->len > SNMP_OID_MAX ? SNMP_NO_INSTANCE :
	    snmp_resolve(snap, now, req, len, false, out, &outlen, &a);
	if (f == SNMP_FOUND)
		put_answer(w, o->sub, o->len, &a);
	else
		agentx_put_varbind_head(w, f == SNMP_NO_INSTANCE ? AGENTX_V_NO_SUCH_INSTANCE :
		    AGENTX_V_NO_SUCH_OBJECT, o->sub, o->len);
}

/* GetBulk (RFC 2741 7.2.3.2); snmpd itself turns bulk requests into
 * GetNexts, but the PDU is part of the protocol. Repetitions stop where the
 * response would grow past one PDU. */
enum bulk_rc { BULK_OK, BULK_MALFORMED, BULK_TOO_MANY };

static enum bulk_rc
put_bulk(struct agentx_writer *w, struct agentx_reader *r,
    const struct agentx_header *h, const struct fleet_snapshot *snap, int64_t now)
{
	enum { RANGES_MAX = 64 };
	struct agentx_oid *start = malloc(2 * RANGES_MAX * sizeof(*start));
	if (start == NULL)
		return BULK_TOO_MANY;     /* answered with genErr, like too many ranges */
	struct agentx_oid *end = start + RANGES_MAX;
	uint16_t nonrep = agentx_get_u16(r), maxrep = agentx_get_u16(r);
	size_t n = 0;
	while (!r->bad && r->off < r->len && n < RANGES_MAX) {
		agentx_get_range(r, &start[n], &end[n]);
		n++;
	}
	if (r->bad || r->off < r->len) {
		free(start);
		return r->bad ? BULK_MALFORMED : BULK_TOO_MANY;
	}
	agentx_put_response_head(w, h, 0, 0);
	size_t i = 0;
	for (; i < n && i < nonrep; i++)
		put_next(w, snap, now, &start[i], &end[i], NULL);
	for (uint16_t rep = 0; rep < maxrep && !w->overflow && n > i; rep++) {
		size_t mark = w->len;
		bool any = false;
		for (size_t j = i; j < n; j++) {
			struct agentx_oid next;
			put_next(w, snap, now, &start[j], &end[j], &next);
			/* past the end the range keeps answering endOfMibView */
			if (next.len > 0) {
				any = true;
				start[j] = next;
			}
		}
		if (w->overflow) {
			/* drop the repetition that did not fit */
			w->overflow = false;
			w->len = mark;
			break;
		}
		if (!any)
			break;
	}
	free(start);
	return BULK_OK;
}

static void
respond_error(struct snmp *s, const struct agentx_header *h, uint16_t error, uint16_t index)
{
	struct agentx_writer w;
	out_writer(s, &w);
	agentx_put_response_head(&w, h, error, index);
	agentx_pdu_end(&w);
	out_commit(s, &w);
}

/* Get, GetNext and GetBulk; false on a malformed PDU. */
static bool
serve_read(struct snmp *s, const struct agentx_header *h, struct agentx_reader *r)
{
	const struct fleet_snapshot *snap = fleet_acquire(s->fleet);
	int64_t now = now_s();
	struct agentx_writer w;
	bool ok = true;
	out_writer(s, &w);
	if (w.cap > PDU_ROOM)
		w.cap = PDU_ROOM;
	if (h->type == AGENTX_GETBULK) {
		enum bulk_rc b = put_bulk(&w, r, h, snap, now);
		ok = b != BULK_MALFORMED;
		if (b == BULK_TOO_MANY) {
			fleet_release(s->fleet, snap);
			respond_error(s, h, SNMP_GEN_ERR, 0);
			return true;
		}
	} else {
		agentx_put_response_head(&w, h, 0, 0);
		while (!r->bad && r->off < r->len) {
			struct agentx_oid start, end;
			if (!agentx_get_range(r, &start, &end))
				break;
			if (h->type == AGENTX_GET)
				put_get(&w, snap, now, &start);
			else
				put_next(&w, snap, now, &start, &end, NULL);
		}
		ok = !r->bad;
	}
	fleet_release(s->fleet, snap);
	if (!ok)
		return false;
	if (w.overflow) {
		respond_error(s, h, SNMP_TOO_BIG, 0);
		return true;
	}
	agentx_pdu_end(&w);
	out_commit(s, &w);
	s->requests++;
	return true;
}

static void
on_response(struct snmp *s, const struct agentx_header *h, struct agentx_reader *r)
{
	(void)agentx_get_u32(r);
	uint16_t error = agentx_get_u16(r);
	if (h->packet == s->ping_packet && s->ping_sent_ms != 0) {
		s->ping_sent_ms = 0;
		return;
	}
	if (error != 0)
		log_warnx("snmp", "snmpd refused packet %u (AgentX error %u)", (unsigned)h->packet,
		    (unsigned)error);
}

/* Handles one PDU from snmpd; false when the session must end. */
static bool
handle(struct snmp *s, const struct agentx_header *h, const uint8_t *payload)
{
	struct agentx_reader r;
	char tn[16];
	agentx_reader_init(&r, h, payload);
	s->last_heard_ms = mono_ms();
	if (h->type == AGENTX_RESPONSE) {
		on_response(s, h, &r);
		return true;
	}
	if (h->type == AGENTX_CLOSE) {
		session_close(s, "snmpd closed it");
		return false;
	}
	if (h->session != s->session) {
		respond_error(s, h, AGENTX_ERR_NOT_OPEN, 0);
		return true;
	}
	if ((h->flags & AGENTX_FLAG_NON_DEFAULT_CONTEXT) != 0) {
		if (!agentx_skip_octets(&r))
			goto bad;
		if (h->type != AGENTX_CLEANUPSET)
			respond_error(s, h, AGENTX_ERR_UNSUPPORTED_CONTEXT, 0);
		return true;
	}
	switch (h->type) {
	case AGENTX_GET:
	case AGENTX_GETNEXT:
	case AGENTX_GETBULK:
		if (!serve_read(s, h, &r))
			goto bad;
		return true;
	case AGENTX_TESTSET:
		/* CUSTOS-MIB is read-only */
		respond_error(s, h, AGENTX_ERR_NOT_WRITABLE, 1);
		return true;
	case AGENTX_CLEANUPSET:
		return true;
	default:
		log_debug("snmp", "snmpd sent an AgentX %s, which a read-only subagent does not handle",
		    agentx_type_name(h->type, tn, sizeof(tn)));
		respond_error(s, h, AGENTX_ERR_PROCESSING, 0);
		return true;
	}
bad:
	log_warnx("snmp", "malformed AgentX %s from snmpd; closing the session",
	    agentx_type_name(h->type, tn, sizeof(tn)));
	struct agentx_writer w;
	out_writer(s, &w);
	agentx_put_close(&w, s->session, ++s->packet, AGENTX_CLOSE_PARSE_ERROR);
	out_commit(s, &w);
	flush_out(s);
	session_close(s, "malformed PDU");
	return false;
}

/* Reads what snmpd sent and handles every whole PDU; returns how many
 * requests were answered, or -1 when the session ended. */
static int
serve(struct snmp *s)
{
	int handled = 0;
	for (;;) {
		bool more = false;      /* the read filled the buffer: more may wait */
		if (s->in_len < IN_CAP) {
			size_t room = IN_CAP - s->in_len;
			ssize_t n = recv(s->fd, s->in + s->in_len, room, MSG_DONTWAIT);
			if (n == 0) {
				session_close(s, "snmpd closed the connection");
				return -1;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				session_close(s, strerror(errno));
				return -1;
			}
			if (n > 0) {
				s->in_len += (size_t)n;
				more = (size_t)n == room;
			}
		}
		size_t off = 0;
		for (;;) {
			struct agentx_header h;
			enum agentx_parse p = agentx_header_read(s->in + off, s->in_len - off, &h);
			if (p == AGENTX_PARSE_BAD) {
				log_warnx("snmp", "snmpd sent something that is not AgentX; closing the session");
				session_close(s, "protocol error");
				return -1;
			}
			if (p == AGENTX_PARSE_SHORT || s->in_len - off < AGENTX_HEADER_LEN + h.length)
				break;
			if (OUT_CAP - s->out_len < PDU_ROOM && !flush_out(s))
				return -1;
			if (OUT_CAP - s->out_len < PDU_ROOM)
				break;    /* snmpd does not read: POLLOUT resumes */
			if (!handle(s, &h, s->in + off + AGENTX_HEADER_LEN))
				return -1;
			off += AGENTX_HEADER_LEN + h.length;
			handled++;
		}
		if (off > 0) {
			memmove(s->in, s->in + off, s->in_len - off);
			s->in_len -= off;
		}
		if (!flush_out(s))
			return -1;
		/* one read per call: the callers decide between polling and pacing */
		if (!more || OUT_CAP - s->out_len < PDU_ROOM)
			return handled;
	}
}

/* ---- opening the session ---- */

static int
connect_socket(const char *spec, char *err, size_t errlen)
{
	int fd;
	if (strncmp(spec, "tcp:", 4) == 0) {
		char host[256];
		const char *hp = spec + 4, *colon = strrchr(hp, ':');
		if (colon == NULL || (size_t)(colon - hp) >= sizeof(host)) {
			str_fmt(err, errlen, "%s: expected tcp:HOST:PORT", spec);
			return -1;
		}
		memcpy(host, hp, (size_t)(colon - hp));
		host[colon - hp] = '\0';
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
		int rc = getaddrinfo(host, colon + 1, &hints, &ai);
		if (rc != 0) {
			str_fmt(err, errlen, "%s: %s", spec, gai_strerror(rc));
			return -1;
		}
		/* every address in turn: "localhost" is ::1 first, snmpd often
		 * listens on 127.0.0.1 only */
		fd = -1;
		for (struct addrinfo *a = ai; a != NULL && fd < 0; a = a->ai_next) {
			int soerr = 0;
			fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fd < 0) {
				soerr = errno;
			} else if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };
				socklen_t sl = sizeof(soerr);
				soerr = errno;
				if (soerr == EINPROGRESS && poll(&p, 1, OPEN_TIMEOUT_MS) == 1)
					getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
				else if (soerr == EINPROGRESS)
					soerr = ETIMEDOUT;
			}
			if (soerr != 0) {
				str_fmt(err, errlen, "%s: %s", spec, strerror(soerr));
				if (fd >= 0)
					close(fd);
				fd = -1;
			}
		}
		freeaddrinfo(ai);
		return fd;
	}
	const char *path = strncmp(spec, "unix:", 5) == 0 ? spec + 5 : spec;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path)) {
		str_fmt(err, errlen, "%s: the socket path is too long", spec);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		str_fmt(err, errlen, "%s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Sends what was written and waits for the Response to packet; returns its
 * res.error, or -1 (err set) when snmpd does not answer. Requests that
 * arrive meanwhile cannot: the session is not registered yet. */
static int
exchange(struct snmp *s, uint32_t packet, uint32_t *session, char *err, size_t errlen)
{
	int64_t deadline = mono_ms() + OPEN_TIMEOUT_MS;
	while (s->out_len > 0) {
		if (!flush_out(s)) {
			str_fmt(err, errlen, "snmpd closed the connection");
			return -1;
		}
		if (s->out_len > 0 && (mono_ms() >= deadline || atomic_load(&s->stop))) {
			str_fmt(err, errlen, "snmpd did not take our request within %d ms", OPEN_TIMEOUT_MS);
			return -1;
		}
		if (s->out_len > 0) {
			struct pollfd p = { .fd = s->fd, .events = POLLOUT };
			if (poll(&p, 1, 100) < 0 && errno != EINTR)
				break;
		}
	}
	for (;;) {
		struct agentx_header h;
		enum agentx_parse pr = agentx_header_read(s->in, s->in_len, &h);
		if (pr == AGENTX_PARSE_BAD) {
			str_fmt(err, errlen, "snmpd answered with something that is not AgentX");
			return -1;
		}
		if (pr == AGENTX_PARSE_OK && s->in_len >= AGENTX_HEADER_LEN + h.length) {
			struct agentx_reader r;
			agentx_reader_init(&r, &h, s->in + AGENTX_HEADER_LEN);
			(void)agentx_get_u32(&r);
			uint16_t error = agentx_get_u16(&r);
			bool mine = h.type == AGENTX_RESPONSE && h.packet == packet && !r.bad;
			size_t used = AGENTX_HEADER_LEN + h.length;
			memmove(s->in, s->in + used, s->in_len - used);
			s->in_len -= used;
			if (!mine)
				continue;
			if (session != NULL)
				*session = h.session;
			return error;
		}
		int left = (int)(deadline - mono_ms());
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		if (left <= 0 || atomic_load(&s->stop)) {
			str_fmt(err, errlen, "snmpd did not answer within %d ms", OPEN_TIMEOUT_MS);
			return -1;
		}
		if (poll(&p, 1, left) < 0 && errno != EINTR) {
			str_fmt(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		ssize_t n = recv(s->fd, s->in + s->in_len, IN_CAP - s->in_len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			str_fmt(err, errlen, "snmpd closed the connection");
			return -1;
		}
		if (n > 0)
			s->in_len += (size_t)n;
	}
}

/* Connects, opens a session and registers custosObjects. */
static int
session_open(struct snmp *s, char *err, size_t errlen)
{
	struct agentx_writer w;
	s->fd = connect_socket(s->socket, err, errlen);
	if (s->fd < 0)
		return -1;
	s->in_len = s->out_len = 0;
	s->ping_sent_ms = 0;
	out_writer(s, &w);
	agentx_put_open(&w, ++s->packet, 0, mib_oid, ARRAY_LEN(mib_oid), "custosd CUSTOS-MIB subagent");
	out_commit(s, &w);
	int rc = exchange(s, s->packet, &s->session, err, errlen);
	if (rc != 0) {
		if (rc > 0)
			str_fmt(err, errlen, "snmpd refused to open an AgentX session (error %d)", rc);
		goto fail;
	}
	out_writer(s, &w);
	agentx_put_register(&w, s->session, ++s->packet, 0, 127, objects_oid, ARRAY_LEN(objects_oid));
	out_commit(s, &w);
	rc = exchange(s, s->packet, NULL, err, errlen);
	if (rc == AGENTX_ERR_DUPLICATE_REGISTRATION) {
		str_fmt(err, errlen, "another subagent already serves custosObjects (is a second "
		    "custosd using this snmpd?)");
		goto fail;
	}
	if (rc != 0) {
		if (rc > 0)
			str_fmt(err, errlen, "snmpd refused to register CUSTOS-MIB (AgentX error %d)", rc);
		goto fail;
	}
	s->connected = true;
	s->last_heard_ms = mono_ms();
	if (s->ever_connected)
		log_info("snmp", "snmpd is back: CUSTOS-MIB registered again at %s", s->socket);
	else
		log_info("snmp", "CUSTOS-MIB registered with snmpd at %s", s->socket);
	s->ever_connected = true;
	s->told_absent = false;
	return 0;
fail:
	close(s->fd);
	s->fd = -1;
	return -1;
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

/* Queues a Notify for n and sends it; false when it could not be handed to
 * snmpd (no session, snmpd not reading, the session broke): it stays
 * pending then. A notification too big for a PDU is dropped (logged). */
static bool
send_notice(struct snmp *s, const struct fleet_notice *n, uint64_t count)
{
	struct snmp_varbind vb[SNMP_NOTICE_VARBINDS];
	uint32_t trap[SNMP_OID_MAX];
	size_t traplen, nvb = snmp_notice_varbinds(n, count, trap, &traplen, vb, ARRAY_LEN(vb));
	struct agentx_writer w;

	if (!s->connected || s->fd < 0)
		return false;
	if (OUT_CAP - s->out_len < PDU_ROOM && (!flush_out(s) || OUT_CAP - s->out_len < PDU_ROOM))
		return false;
	out_writer(s, &w);
	w.cap = PDU_ROOM;
	/* snmpTrapOID.0 first; snmpd puts its sysUpTime.0 before it */
	agentx_pdu_begin(&w, AGENTX_NOTIFY, 0, s->session, 0, ++s->packet);
	agentx_put_varbind_head(&w, AGENTX_V_OID, snmptrap_oid, ARRAY_LEN(snmptrap_oid));
	agentx_put_oid(&w, trap, traplen, false);
	for (size_t i = 0; i < nvb; i++)
		put_answer(&w, vb[i].oid, vb[i].len, &vb[i].a);
	agentx_pdu_end(&w);
	if (w.overflow) {
		log_warnx("snmp", "notification %u does not fit an AgentX PDU; dropped",
		    (unsigned)trap[traplen - 1]);
		return true;
	}
	out_commit(s, &w);
	if (!flush_out(s))
		return false;
	s->sent++;
	if (count > 1)
		log_debug("snmp", "notification %u stands for %llu occurrences", (unsigned)trap[traplen - 1],
		    (unsigned long long)count);
	return true;
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
		if (!take_token(s) || !send_notice(s, &p->latest, p->count))
			break;
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
	if (p->count == 0 && s->connected && take_token(s) && send_notice(s, n, 1))
		return;
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

/* ---- the thread ---- */

static void
ping(struct snmp *s)
{
	int64_t now = mono_ms(), every = (int64_t)s->reconnect * 1000;
	int64_t grace = every > 5000 ? every : 5000;
	if (s->out_len > 0 && now - s->out_progress_ms > grace) {
		/* snmpd takes nothing of ours: hung, or stuck writing to us */
		session_close(s, "snmpd stopped reading");
		return;
	}
	if (s->ping_sent_ms != 0) {
		/* a master that stops answering is as gone as one that closed */
		if (now - s->ping_sent_ms > grace)
			session_close(s, "snmpd stopped answering pings");
		return;
	}
	if (now - s->last_heard_ms < every)
		return;
	struct agentx_writer w;
	if (OUT_CAP - s->out_len < PDU_ROOM)
		return;
	out_writer(s, &w);
	s->ping_packet = ++s->packet;
	agentx_put_ping(&w, s->session, s->ping_packet);
	out_commit(s, &w);
	s->ping_sent_ms = now;
	flush_out(s);
}

static void
try_connect(struct snmp *s)
{
	char err[256];
	if (mono_ms() < s->next_try_ms)
		return;
	if (session_open(s, err, sizeof(err)) == 0) {
		s->out_progress_ms = mono_ms();
		/* a request that came with the Register response waits in s->in */
		if (s->in_len > 0 && serve(s) < 0)
			return;
		pump(s);
		return;
	}
	s->next_try_ms = mono_ms() + (int64_t)s->reconnect * 1000;
	if (!s->told_absent) {
		log_warnx("snmp", "cannot reach snmpd's AgentX socket (%s); is snmpd running with "
		    "\"master agentx\" and \"agentXSocket %s\"? custosd runs on and tries again "
		    "every %d s", err, s->socket, s->reconnect);
		s->told_absent = true;
	} else {
		log_debug("snmp", "snmpd still unreachable: %s", err);
	}
}

/* How long to wait after an answer: 0 while no agent was served within
 * YIELD_WINDOW_MS (the walk runs at full speed), else a microsecond per
 * agent frame per second, smoothed over windows of YIELD_WINDOW_MS. */
static long
pace_us(struct snmp *s)
{
	if (!s->yield || !fleet_agents_busy(s->fleet, YIELD_WINDOW_MS))
		return 0;
	int64_t now = mono_ms();
	if (now - s->rate_ms >= YIELD_WINDOW_MS) {
		uint64_t c = fleet_agent_work_count(s->fleet);
		double fps = (double)(c - s->rate_count) * 1000.0 / (double)(now - s->rate_ms);
		s->agent_fps = now - s->rate_ms > 4 * YIELD_WINDOW_MS ? fps : (s->agent_fps + fps) / 2;
		s->rate_ms = now;
		s->rate_count = c;
	}
	long us = (long)s->agent_fps;
	return us < YIELD_MIN_US ? YIELD_MIN_US : us > YIELD_MAX_US ? YIELD_MAX_US : us;
}

/* Right after an answer the next request of a walk is microseconds away:
 * take it without going to sleep. */
static void
spin(struct snmp *s)
{
	int64_t until = mono_us() + SPIN_US;
	while (s->fd >= 0 && !atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		int n = serve(s);
		if (n < 0)
			return;
		if (n > 0 && pace_us(s) > 0)
			return;
		if (n > 0)
			until = mono_us() + SPIN_US;
		else if (mono_us() >= until)
			return;
		else
			sched_yield();
	}
}

static void *
snmp_thread(void *arg)
{
	struct snmp *s = arg;
	/* An SNMP walk must not take CPU from agents and NAC queries: nice 19
	 * (and the pacing in pace_us). Not SCHED_IDLE: on a saturated server
	 * that starves the thread until snmpd's AgentX requests time out and
	 * notifications wait, just when they matter most. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
		log_debug("snmp", "could not lower the SNMP thread's priority");
	pump(s);
	while (!atomic_load(&s->stop)) {
		if (s->fd < 0)
			try_connect(s);
		struct pollfd p[2] = {
			{ .fd = fleet_notice_fd(s->fleet), .events = POLLIN },
			/* no reading while snmpd does not take our answers */
			{ .fd = s->fd, .events = (short)(OUT_CAP - s->out_len < PDU_ROOM ? POLLOUT :
			    POLLIN | (s->out_len > 0 ? POLLOUT : 0)) },
		};
		int timeout = TICK_MS;
		if (s->fd < 0) {
			int64_t left = s->next_try_ms - mono_ms();
			timeout = left < 0 ? 0 : left < TICK_MS ? (int)left : TICK_MS;
		}
		int n = poll(p, s->fd >= 0 ? 2 : 1, timeout);
		if (n < 0 && errno != EINTR) {
			log_warnx("snmp", "poll: %s", strerror(errno));
			sleep(1);
			continue;
		}
		if (s->fd >= 0 && (p[1].revents & POLLOUT) && flush_out(s) && s->in_len > 0 &&
		    serve(s) < 0)
			continue;     /* requests held back while the output was full */
		if (s->fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && serve(s) > 0) {
			long us = pace_us(s);
			if (us > 0) {
				struct timespec ts = { 0, us * 1000L };
				s->yields++;
				nanosleep(&ts, NULL);
			} else {
				spin(s);
			}
		}
		pump(s);
		if (s->fd >= 0)
			ping(s);
	}
	if (s->fd >= 0) {
		struct agentx_writer w;
		out_writer(s, &w);
		agentx_put_close(&w, s->session, ++s->packet, AGENTX_CLOSE_SHUTDOWN);
		out_commit(s, &w);
		flush_out(s);
		s->connected = false;
		session_close(s, "shutdown");
	}
	log_info("snmp", "subagent stopped (%llu request(s) answered, %llu of them paced for agents; "
	    "%llu notification(s) sent, %llu coalesced)", (unsigned long long)s->requests,
	    (unsigned long long)s->yields, (unsigned long long)s->sent,
	    (unsigned long long)s->coalesced);
	return NULL;
}

static bool
socket_spec_ok(const char *spec, char *err, size_t errlen)
{
	if (strncmp(spec, "tcp:", 4) == 0) {
		const char *colon = strrchr(spec + 4, ':');
		if (colon == NULL || colon == spec + 4 || colon[1] == '\0') {
			str_fmt(err, errlen, "snmp.agentx_socket \"%s\": expected tcp:HOST:PORT", spec);
			return false;
		}
		return true;
	}
	const char *path = strncmp(spec, "unix:", 5) == 0 ? spec + 5 : spec;
	if (path[0] != '/') {
		str_fmt(err, errlen, "snmp.agentx_socket \"%s\": use an absolute path (snmpd's "
		    "agentXSocket) or tcp:HOST:PORT", spec);
		return false;
	}
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		str_fmt(err, errlen, "snmp.agentx_socket \"%s\": a Unix socket path has at most %zu "
		    "characters", spec, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return false;
	}
	return true;
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
	if (!socket_spec_ok(c->agentx_socket, err, errlen))
		return NULL;
	if (atomic_exchange(&running, true)) {
		str_fmt(err, errlen, "snmp: the subagent is already running");
		return NULL;
	}
	struct snmp *s = calloc(1, sizeof(*s));
	if (s == NULL || (s->in = malloc(IN_CAP)) == NULL || (s->out = malloc(OUT_CAP)) == NULL) {
		if (s != NULL)
			free(s->in);
		free(s);
		atomic_store(&running, false);
		str_fmt(err, errlen, "snmp: out of memory");
		return NULL;
	}
	s->srv = srv;
	s->fleet = srv->fleet;
	s->fd = -1;
	if (str_copy(s->socket, c->agentx_socket, sizeof(s->socket)) >= sizeof(s->socket)) {
		str_fmt(err, errlen, "snmp.agentx_socket is longer than %zu characters", sizeof(s->socket) - 1);
		goto fail;
	}
	s->reconnect = c->reconnect_interval > 0 ? c->reconnect_interval : 1;
	s->yield = c->yield_to_agents;
	s->rate = c->trap_rate > 0 ? c->trap_rate : 1;
	s->burst = c->trap_burst > 0 ? c->trap_burst : 1;
	s->tokens = s->burst;
	s->refilled_ms = mono_ms();
	atomic_init(&s->stop, false);
	fleet_attach(s->fleet, true);
	fleet_update(s->fleet, now_s());   /* the first answers see the fleet */
	int rc = pthread_create(&s->thread, NULL, snmp_thread, s);
	if (rc != 0) {
		str_fmt(err, errlen, "snmp: cannot start the subagent thread: %s", strerror(rc));
		fleet_attach(s->fleet, false);
		goto fail;
	}
	return s;
fail:
	free(s->in);
	free(s->out);
	free(s);
	atomic_store(&running, false);
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
		/* a hung snmpd can hold the thread in a short wait; do not hang the exit */
		log_warnx("snmp", "the SNMP thread did not stop within 5 s (snmpd not answering?); "
		    "leaving it behind");
		pthread_detach(s->thread);
		return -1;
	}
	free(s->in);
	free(s->out);
	free(s);
	atomic_store(&running, false);
	return 0;
}
