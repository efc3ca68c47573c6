/* socket.c — the NAC query socket: a Unix socket on the main loop, line-
 * delimited JSON requests answered from memory (see nac.h). */
#include "nacd/nac.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "conf.h"
#include "core/accept.h"
#include "hmap.h"
#include "log.h"
#include "core/registry.h"
#include "core/server.h"
#include "nacd/nac_priv.h"
#include "nacd/soh.h"
#include "core/status.h"
#include "utf8.h"
#include "util.h"

/* ---- the query socket ---- */

/* Plain read()/send() on the socket: a reply is sent as soon as the lines
 * read are answered, and the write event is armed only when the socket
 * is full, so a query costs one wake-up, one read and one send (a
 * bufferevent re-armed and disarmed its write event for every reply). */

#define IN_INIT 4096                      /* input buffer at first */
#define IN_MAX ((size_t)NAC_LINE_MAX + 1) /* a longest line and its '\n' */
#define OUT_INIT 1024                     /* output buffer at first */
#define OUT_KEEP ((size_t)64 << 10)       /* larger: given back once sent */

struct nac_conn {
	struct nac *n;
	int fd;
	struct event *rev;        /* EV_READ, persistent; deleted while throttled */
	struct event *wev;        /* EV_WRITE, added while a send would block */
	struct nac_conn *prev, *next;
	char *in;                 /* received, not yet answered */
	size_t in_len, in_cap;
	size_t scanned;           /* bytes of in known to hold no '\n' */
	char *out;                /* replies not yet sent: out[out_pos..out_len) */
	size_t out_pos, out_len, out_cap;
	char peer[48];            /* "pid 123 uid 101" for messages */
	bool throttled;           /* reading paused until the replies drain */
	bool want_write;          /* wev is added */
};

void
nac_conn_close(struct nac_conn *c)
{
	struct nac *n = c->n;
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n->stats.connections--;
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static size_t
conn_pending(const struct nac_conn *c)
{
	return c->out_len - c->out_pos;
}

/* Room for need more bytes of output; -1 when out of memory. */
static int
out_reserve(struct nac_conn *c, size_t need)
{
	if (c->out_cap - c->out_len >= need)
		return 0;
	if (c->out_pos > 0) {
		memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
		c->out_len -= c->out_pos;
		c->out_pos = 0;
		if (c->out_cap - c->out_len >= need)
			return 0;
	}
	size_t cap = c->out_cap ? c->out_cap : OUT_INIT;
	while (cap - c->out_len < need)
		cap *= 2;
	char *p = realloc(c->out, cap);
	if (p == NULL)
		return -1;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

/* Sends what the socket takes; arms the write event when it is full.
 * -1 when the connection failed. */
static int
conn_flush(struct nac_conn *c)
{
	while (c->out_pos < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_debug("nac", "query socket client %s: %s", c->peer, strerror(errno));
				return -1;
			}
			if (!c->want_write) {
				if (event_add(c->wev, NULL) < 0)
					return -1;
				c->want_write = true;
			}
			return 0;
		}
		c->out_pos += (size_t)w;
	}
	c->out_pos = c->out_len = 0;
	if (c->out_cap > OUT_KEEP) {
		/* a burst of pipelined replies is over */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return 0;
}

/* Answers every complete line received (all of them before sending: one
 * send for a batch), then sends; false when the connection was closed. */
static bool
conn_process(struct nac_conn *c)
{
	struct nac *n = c->n;
	size_t start = 0;
	int64_t now = now_s();
	char text[REPLY_MAX];

	while (conn_pending(c) < OUT_MAX) {
		char *line = c->in + start;
		size_t avail = c->in_len - start;
		char *nl = memchr(line + c->scanned, '\n', avail - c->scanned);
		if (nl == NULL) {
			c->scanned = avail;
			if (avail > NAC_LINE_MAX)
				goto oversize;
			break;
		}
		size_t len = (size_t)(nl - line);
		c->scanned = 0;
		if (len > NAC_LINE_MAX)
			goto oversize;
		struct jw w = { .buf = text, .cap = REPLY_MAX };
		answer_line(n, line, len > 0 && line[len - 1] == '\r' ? len - 1 : len, now, &w);
		if (out_reserve(c, w.len + 1) < 0) {
			log_warnx("nac", "query socket client %s: out of memory; closing", c->peer);
			nac_conn_close(c);
			return false;
		}
		memcpy(c->out + c->out_len, text, w.len);
		c->out[c->out_len + w.len] = '\n';
		c->out_len += w.len + 1;
		start += len + 1;
	}
	if (start > 0) {
		c->in_len -= start;
		memmove(c->in, c->in + start, c->in_len);
		if (c->in_cap > 4 * IN_INIT && c->in_len < IN_INIT) {
			/* the long line is answered */
			char *p = realloc(c->in, IN_INIT);
			if (p != NULL) {
				c->in = p;
				c->in_cap = IN_INIT;
			}
		}
	}
	if (!c->want_write && conn_flush(c) < 0) {
		nac_conn_close(c);
		return false;
	}
	if (conn_pending(c) >= OUT_MAX && !c->throttled) {
		/* a client that sends without reading: stop reading until the
		 * write event (armed: the socket is full) drains the replies */
		if (event_del(c->rev) < 0) {
			nac_conn_close(c);
			return false;
		}
		c->throttled = true;
	}
	return true;
oversize:
	log_warnx("nac", "query socket client %s: request line over %d bytes; closing", c->peer,
	    NAC_LINE_MAX);
	n->stats.oversize++;
	nac_conn_close(c);
	return false;
}

static void
conn_read(evutil_socket_t fd, short what, void *arg)
{
	struct nac_conn *c = arg;
	(void)what;

	if (c->in_cap - c->in_len < IN_INIT / 2 && c->in_cap < IN_MAX) {
		size_t cap = c->in_cap * 2 < IN_MAX ? c->in_cap * 2 : IN_MAX;
		char *p = realloc(c->in, cap);
		if (p == NULL) {
			log_warnx("nac", "query socket client %s: out of memory; closing", c->peer);
			nac_conn_close(c);
			return;
		}
		c->in = p;
		c->in_cap = cap;
	}
	/* not full: what is left after answering is less than a longest line */
	ssize_t r = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (r > 0) {
		c->in_len += (size_t)r;
		conn_process(c);
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r < 0)
		log_debug("nac", "query socket client %s: %s", c->peer, strerror(errno));
	nac_conn_close(c);
}

static void
conn_write(evutil_socket_t fd, short what, void *arg)
{
	struct nac_conn *c = arg;
	(void)fd;
	(void)what;

	c->want_write = false;
	if (conn_flush(c) < 0) {
		nac_conn_close(c);
		return;
	}
	if (c->throttled && conn_pending(c) < OUT_MAX) {
		c->throttled = false;
		if (event_add(c->rev, NULL) < 0) {
			nac_conn_close(c);
			return;
		}
		conn_process(c);
	}
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct nac *n = arg;
	struct event_base *base = evconnlistener_get_base(l);
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	(void)sa;
	(void)salen;

	if (n->stats.connections >= n->max_conns) {
		int64_t now = now_s();
		if (now - n->last_limit_log >= LIMIT_LOG_SECONDS) {
			log_warnx("nac", "query socket: %zu connections open (nac.max_connections); refusing "
			    "more; lower rlm_custos's pool or raise the limit", n->max_conns);
			n->last_limit_log = now;
		}
		evutil_closesocket(fd);
		return;
	}
	/* the listener made fd non-blocking */
	struct nac_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		log_warnx("nac", "query socket: out of memory; connection refused");
		return;
	}
	c->n = n;
	c->fd = fd;
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->stats.connections++;
	c->in = malloc(IN_INIT);
	c->in_cap = IN_INIT;
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read, c);
	c->wev = event_new(base, fd, EV_WRITE, conn_write, c);
	if (c->in == NULL || c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) < 0) {
		log_warnx("nac", "query socket: out of memory; connection refused");
		nac_conn_close(c);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		str_fmt(c->peer, sizeof(c->peer), "pid %d uid %u", (int)cred.pid, (unsigned)cred.uid);
	else
		str_copy(c->peer, "?", sizeof(c->peer));
}

/* Parent directory of path (created 0755 when missing: FreeRADIUS must
 * be able to reach the socket). */
static int
socket_dir(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	str_copy(dir, path, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir_p(dir, 0755) < 0) {
		str_fmt(err, errlen, "nac.socket: cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* A socket file left by a custosd that is gone is removed; one that
 * answers belongs to a running daemon. */
static int
clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		str_fmt(err, errlen, "nac.socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		str_fmt(err, errlen, "nac.socket %s exists and is not a socket; remove it or choose "
		    "another path", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		str_fmt(err, errlen, "nac.socket: socket: %s", strerror(errno));
		return -1;
	}
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN) {
		str_fmt(err, errlen, "nac.socket %s is in use by another process (another custosd?)", path);
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		str_fmt(err, errlen, "cannot remove the stale nac.socket %s: %s", path, strerror(errno));
		return -1;
	}
	log_info("nac", "removed the stale query socket %s", path);
	return 0;
}

static void
socket_group(const char *path, const char *group)
{
	struct group gr, *res = NULL;
	char buf[4096];
	if (group[0] == '\0')
		return;
	int rc = getgrnam_r(group, &gr, buf, sizeof(buf), &res);
	if (rc != 0 || res == NULL) {
		log_warnx("nac", "group %s (nac.socket_group) does not exist; %s keeps the daemon's "
		    "group, so FreeRADIUS may not reach it", group, path);
		return;
	}
	if (chown(path, (uid_t)-1, gr.gr_gid) < 0)
		log_warn("nac", "cannot give %s to group %s", path, group);
}

int
nac_socket_open(struct nac *n, char *err, size_t errlen)
{
	const char *path = conf_str(n->srv->cfg, "nac.socket");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;

	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path) || !*path) {
		str_fmt(err, errlen, "nac.socket \"%s\" is empty or longer than %zu characters", path,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	if (socket_dir(path, err, errlen) < 0 || clear_stale(path, &sun, err, errlen) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		str_fmt(err, errlen, "nac.socket: socket: %s", strerror(errno));
		return -1;
	}
	/* no client can connect before listen(): mode and group are set first */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		str_fmt(err, errlen, "nac.socket: cannot bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	str_copy(n->path, path, sizeof(n->path));
	n->own_socket = true;
	if (lstat(path, &st) == 0) {
		n->sock_dev = st.st_dev;
		n->sock_ino = st.st_ino;
	}
	if (chmod(path, 0660) < 0) {
		str_fmt(err, errlen, "nac.socket: cannot chmod %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	socket_group(path, conf_str(n->srv->cfg, "nac.socket_group"));
	n->evl = evconnlistener_new(n->srv->base, on_accept, n,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	if (n->evl == NULL) {
		str_fmt(err, errlen, "nac.socket: cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	n->guard = accept_guard_new(n->srv->base, n->evl, "nac", "query socket", "raise the open-file limit "
	    "(LimitNOFILE= in custosd's unit, ulimit -n) or lower nac.max_connections",
	    &n->srv->stats.accept_pauses);
	if (n->guard == NULL) {
		str_fmt(err, errlen, "nac.socket: out of memory");
		return -1;
	}
	return 0;
}

