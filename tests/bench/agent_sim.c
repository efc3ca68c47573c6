/* agent_sim.c — the agent side of `make bench`: many simulated agents in one
 * non-blocking process (libevent + bufferevent_openssl), plus a bare TLS
 * server to compare handshake rates against.
 *
 *   agent_sim enroll  -s ADDR:PORT -f IDS -n N -T TOKEN [-c C]
 *   agent_sim sync    -s ADDR:PORT -f IDS [-c C] [-i MAXIDS] [-N] (-t SECS | -n COUNT)
 *   agent_sim raw     -s ADDR:PORT -f IDS [-c C] [-i MAXIDS] [-N] (-t SECS | -n COUNT)
 *   agent_sim compare -s ADDR:PORT -r ADDR:PORT -f IDS [-c C] [-i MAXIDS] [-N] -t SECS
 *                     [-R ROUNDS]
 *   agent_sim hold    -s ADDR:PORT -f IDS -n N [-c C] [-i MAXIDS] [-t MAXSECS]
 *   agent_sim policy  -s ADDR:PORT -f IDS -n N [-c C] [-t MAXSECS] [-w WAITSECS]
 *   agent_sim raw-server -s ADDR:PORT -C CERT -K KEY -A CA
 *
 * enroll writes N identities (key + certificate, PEM) to IDS. sync loops:
 * connect, mutual TLS with the next identity, one sync frame with a posture,
 * wait for sync_ok, close. raw runs the same loop without the frame: it waits
 * for raw-server, which uses the server's TLS context, to close after its
 * handshake. compare alternates raw (against -r) and sync (against -s) in
 * ROUNDS rounds (default 5), SECS seconds of each in all, so that load from
 * elsewhere on the machine falls on both alike. A timed phase stops starting
 * operations at its deadline and lets the running ones finish uncounted.
 * hold opens N connections (one sync each), prints "HELD", and keeps them
 * until SIGTERM or MAXSECS.
 *
 * policy holds N connections like hold, one identity each, but every
 * connection behaves as custos-agent does on the policy path (agent/client.c
 * handle_message, agent/policy_apply.c): its syncs carry "policy" {version,
 * hash, errors: []} of the document it holds (0 and "" at first),
 * "tasks_hash" and "tags"; a sync_ok with a "policy" object makes it store
 * that version and hash and report them with another sync at once, or, under
 * the agent's rule, 1 s after its previous report (10 s when the same
 * document came again); a "sync_now" push is answered with a sync. The
 * connection counts as held at its first sync_ok. SIGUSR1 is the start
 * signal: the agents held then are armed with the hash and version they
 * hold, and "ARMED n=COUNT" is printed. From then on each armed agent
 * records when it first receives a document whose hash or version differs
 * (reached) and when the server answers the sync that reports it as applied
 * (reported). When all have reported, or WAITSECS (default 60) after the
 * signal, one line is printed:
 *   RESULT mode=push agents= reached= missed= p50_s= p99_s= max_s=
 *          reported= report_p50_s= report_p99_s= report_max_s= wait_s=
 *          sync_now= syncs= docs= held= dropped= errors=
 * (seconds from the signal; missed = armed agents without the new document
 * in time, including connections lost). The connections are kept until
 * SIGTERM or MAXSECS, then the usual mode=policy line follows. No periodic
 * syncs or keep-alive pings are sent (the server's sync interval is 900 s).
 *
 * Identities are used in turn; -i loads only the first MAXIDS (OpenSSL 3.0
 * decodes about 2,000 keys a second). Client sockets get TCP_NODELAY once the
 * handshake is done, so a request is not held back by Nagle waiting for the
 * server's delayed ACK of the client's Finished; -N leaves Nagle on, as
 * custos-agent does today. Results are "RESULT key=value..." lines on stdout
 * (cpu_ms: this process's CPU time in the measured phases); problems go to
 * stderr. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "frame.h"
#include "pki.h"
#include "tls.h"
#include "util.h"

#define IO_TIMEOUT_S	30
#define MAX_FRAME	FRAME_DEFAULT_MAX
#define N_SOFTWARE	50
#define ENROLL_TRIES	20
#define ERR_SHOWN	5
#define HASH_MAX	128	/* as agent/policy_apply.c */
#define WAIT_DEFAULT_S	60

enum mode { M_ENROLL, M_SYNC, M_RAW, M_HOLD, M_RAW_SERVER, M_COMPARE, M_POLICY };

/* Results of one kind of operation. */
struct stats {
	size_t done, errors;
	uint32_t *lat;          /* completed operations' latencies, us */
	size_t nlat, caplat;
	int64_t cpu_us;         /* this process's CPU time in the phases */
	int64_t wall_us;        /* the phases' measuring windows */
};

struct ident {
	EVP_PKEY *key;
	X509 *cert;
	uint8_t *frame;         /* this agent's encoded sync frame, built once */
	size_t frame_len;
	/* enroll mode only */
	char *key_pem, *cert_pem;
	int tries;
};

struct op;

struct sim {
	enum mode mode;
	struct event_base *base;
	SSL_CTX *ctx;
	struct sockaddr_storage addr, raw_addr;
	int addrlen, raw_addrlen;
	const struct sockaddr *to;  /* where this phase connects */
	int tolen;
	const char *token;
	const char *ids_path;
	struct ident *ids;
	size_t nids;
	size_t next_id;
	size_t max_ids;         /* load at most this many identities (0 = all) */
	size_t *retry;          /* enroll: identities to try again */
	size_t nretry;
	char fp[PKI_FP_LEN];    /* pinned server certificate, "" when unknown */
	size_t concurrency;
	size_t target;          /* operations to complete; 0 = timed */
	int secs;
	int rounds;             /* compare: raw/sync alternations */
	bool nagle;             /* -N: leave Nagle on, as agent/client.c does today */
	int64_t t_start, t_end; /* monotonic us */
	bool stopping;
	size_t inflight, held, dropped;
	struct stats st[2];     /* [0] the mode's own (sync in compare), [1] raw in compare */
	struct stats *cur;      /* the running phase's */
	struct event *deadline;
	struct op *ops;         /* every live operation (hold keeps them) */
	size_t nerr_shown;      /* errors printed so far (the first ERR_SHOWN) */
	/* policy mode: the push measured from SIGUSR1 */
	int wait_secs;          /* -w: how long to wait for every agent */
	bool armed, push_printed;
	int64_t t_arm;          /* monotonic us of the signal */
	size_t narmed;          /* agents held at the signal */
	size_t reached, reported;
	size_t sync_now, syncs_sent, docs;
	struct stats push;      /* signal -> new document, us */
	struct stats report;    /* signal -> the server's answer to the report */
	struct event *wait_ev;
};

struct op {
	struct sim *s;
	struct bufferevent *bev;
	struct op *prev, *next;
	size_t id;
	int64_t t0;
	bool handshaken;
	bool held;
	/* policy mode: what custos-agent keeps (agent/policy_apply.c, tasks.c) */
	int64_t pol_version;
	char pol_hash[HASH_MAX + 1];
	char tasks_hash[HASH_MAX + 1];
	char start_hash[HASH_MAX + 1];  /* the hash held at the signal */
	int64_t start_version;
	int64_t last_report;            /* now_s() of the last immediate report */
	uint32_t nsent, nok;            /* sync frames sent / sync_ok received */
	uint32_t report_seq;            /* the sync that reports the new document */
	bool armed, reached, reported;
	struct event *timer;            /* a report that must wait (1 s rule) */
};

static volatile sig_atomic_t got_signal;

static int64_t
cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sim_error(struct sim *s, const char *what)
{
	s->cur->errors++;
	if (s->nerr_shown < ERR_SHOWN) {
		fprintf(stderr, "agent_sim: %s\n", what);
		s->nerr_shown++;
	}
}

/* ---- the posture an agent reports ---- */

static json_t *
software_list(size_t seed)
{
	static const char *const names[] = {
		"adduser", "apt", "base-files", "base-passwd", "bash", "bsdutils", "ca-certificates",
		"clamav", "clamav-daemon", "clamav-freshclam", "coreutils", "cron", "curl", "dash",
		"debconf", "debian-archive-keyring", "debianutils", "diffutils", "dpkg", "e2fsprogs",
		"findutils", "gcc-12-base", "gpgv", "grep", "gzip", "hostname", "init-system-helpers",
		"iproute2", "libc-bin", "libc6", "libssl3", "libsystemd0", "login", "logrotate",
		"lsb-base", "mawk", "mount", "ncurses-base", "netbase", "openssh-client",
		"openssh-server", "openssl", "passwd", "perl-base", "procps", "sed", "systemd",
		"sysvinit-utils", "tar", "tzdata",
	};
	json_t *list = json_array();
	char ver[48];
	for (size_t i = 0; list && i < N_SOFTWARE; i++) {
		str_fmt(ver, sizeof(ver), "%zu.%zu.%zu-%zu+deb12u%zu", 1 + i % 7, (i * 7) % 13,
		    (seed + i) % 23, 1 + i % 3, 1 + seed % 4);
		json_array_append_new(list, json_pack("{s:s, s:s}", "name",
		    names[i % ARRAY_LEN(names)], "version", ver));
	}
	return list;
}

/* The "sync" message of agent number idx, shaped like agent/posture.c's. */
static json_t *
sync_message(size_t idx)
{
	char host[32], mac[32], ip[32];
	int64_t now = now_s();
	str_fmt(host, sizeof(host), "bench-%05zu", idx);
	str_fmt(mac, sizeof(mac), "52:54:00:%02zx:%02zx:%02zx", (idx >> 16) & 0xff, (idx >> 8) & 0xff,
	    idx & 0xff);
	str_fmt(ip, sizeof(ip), "10.%zu.%zu.%zu", (idx >> 16) & 0xff, (idx >> 8) & 0xff, idx & 0xff);
	json_t *system = json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:I, s:b, s:[{s:s, s:s,"
	    " s:[s], s:[s]}]}",
	    "hostname", host,
	    "os", "id", "debian", "version_id", "12", "pretty_name", "Debian GNU/Linux 12 (bookworm)",
	    "kernel", "6.1.0-28-amd64", "arch", "x86_64", "uptime", (json_int_t)(86400 + idx),
	    "reboot_required", 0,
	    "interfaces", "name", "eth0", "mac", mac, "ipv4", ip, "ipv6", "fe80::5054:ff:fe00:1");
	json_t *av = json_pack("[{s:s, s:b, s:I, s:I, s:[{s:s, s:I, s:I, s:I}, {s:s, s:I, s:I, s:I},"
	    " {s:s, s:I, s:I, s:I}], s:b, s:b}]",
	    "name", "clamav", "installed", 1, "db_version", (json_int_t)27480,
	    "db_time", (json_int_t)(now - 3600),
	    "databases",
	    "file", "main.cvd", "version", (json_int_t)62, "time", (json_int_t)1632158640,
	    "signatures", (json_int_t)6647427,
	    "file", "daily.cld", "version", (json_int_t)27480, "time", (json_int_t)(now - 3600),
	    "signatures", (json_int_t)2070385,
	    "file", "bytecode.cvd", "version", (json_int_t)335, "time", (json_int_t)1709244180,
	    "signatures", (json_int_t)86,
	    "running", 1, "rtp", 1);
	json_t *posture = json_pack("{s:o, s:o, s:o, s:{s:I}, s:[]}", "system", system,
	    "antivirus", av, "software", software_list(idx), "threats", "unresolved", (json_int_t)0,
	    "errors");
	return json_pack("{s:s, s:o, s:i, s:s, s:I, s:I}", "type", "sync", "posture", posture,
	    "wake_port", 13001, "agent_version", "0.1.0-bench", "queue_dropped", (json_int_t)0,
	    "wake_dropped", (json_int_t)0);
}

static int
encode_frame(json_t *msg, uint8_t **out, size_t *len)
{
	char err[256];
	struct evbuffer *b = evbuffer_new();
	int rc = -1;
	if (b && msg && frame_encode(b, msg, MAX_FRAME, err, sizeof(err)) == 0) {
		*len = evbuffer_get_length(b);
		if ((*out = malloc(*len)) != NULL && evbuffer_remove(b, *out, *len) == (int)*len)
			rc = 0;
	}
	if (b)
		evbuffer_free(b);
	json_decref(msg);
	return rc;
}

/* ---- identities file: "fp=HEX" on the first line, then key + cert PEM pairs ---- */

static int
ids_write(struct sim *s, size_t n)
{
	char tmp[4200];
	str_fmt(tmp, sizeof(tmp), "%s.tmp", s->ids_path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL) {
		fprintf(stderr, "agent_sim: cannot write %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	fprintf(f, "fp=%s\n", s->fp);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", s->ids[i].key_pem, s->ids[i].cert_pem);
	if (fclose(f) != 0 || rename(tmp, s->ids_path) < 0) {
		fprintf(stderr, "agent_sim: cannot write %s: %s\n", s->ids_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
ids_load(struct sim *s)
{
	char line[128];
	FILE *f = fopen(s->ids_path, "r");
	if (f == NULL) {
		fprintf(stderr, "agent_sim: cannot read %s: %s (run the enroll mode first)\n",
		    s->ids_path, strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "fp=", 3) != 0) {
		fprintf(stderr, "agent_sim: %s does not start with fp=; enroll again\n", s->ids_path);
		fclose(f);
		return -1;
	}
	line[strcspn(line, "\n")] = '\0';
	str_copy(s->fp, line + 3, sizeof(s->fp));
	BIO *bio = BIO_new_fp(f, BIO_NOCLOSE);
	size_t cap = 0;
	while (bio && (s->max_ids == 0 || s->nids < s->max_ids)) {
		EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		if (k == NULL)
			break;
		X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (c == NULL) {
			EVP_PKEY_free(k);
			break;
		}
		if (s->nids == cap) {
			cap = cap ? cap * 2 : 1024;
			struct ident *n = realloc(s->ids, cap * sizeof(*n));
			if (n == NULL) {
				EVP_PKEY_free(k);
				X509_free(c);
				break;
			}
			s->ids = n;
		}
		memset(&s->ids[s->nids], 0, sizeof(s->ids[0]));
		s->ids[s->nids].key = k;
		s->ids[s->nids].cert = c;
		s->nids++;
	}
	ERR_clear_error();
	BIO_free(bio);
	fclose(f);
	if (s->nids == 0) {
		fprintf(stderr, "agent_sim: no identities in %s; enroll again\n", s->ids_path);
		return -1;
	}
	return 0;
}

/* ---- one client operation ---- */

static void op_start(struct sim *s);
static bool policy_message(struct op *o, const char *type, json_t *msg);
static int send_policy_sync(struct op *o);

/* hold and policy keep their connections */
static bool
holds(enum mode m)
{
	return m == M_HOLD || m == M_POLICY;
}

static void
sim_refill(struct sim *s)
{
	while (!s->stopping && s->inflight < s->concurrency) {
		if (s->target > 0) {
			size_t pending = holds(s->mode) ? s->held : s->cur->done;
			if (pending + s->inflight >= s->target)
				break;
		} else if (mono_us() >= s->t_end)
			break;
		if (s->mode == M_ENROLL && s->nretry == 0 && s->next_id >= s->nids)
			break;
		/* too many failures: stop instead of spinning on a dead server */
		if (s->cur->errors > 200 && s->cur->errors > 10 * (s->cur->done + s->held)) {
			fprintf(stderr, "agent_sim: giving up after %zu errors\n", s->cur->errors);
			s->stopping = true;
			event_base_loopbreak(s->base);
			break;
		}
		op_start(s);
	}
	/* a count run is complete, or a timed one has drained */
	if (s->inflight == 0 && (s->stopping || (s->target > 0 && !holds(s->mode))))
		event_base_loopbreak(s->base);
}

static void
op_free(struct op *o)
{
	struct sim *s = o->s;
	if (o->prev)
		o->prev->next = o->next;
	else
		s->ops = o->next;
	if (o->next)
		o->next->prev = o->prev;
	if (o->bev)
		bufferevent_free(o->bev);
	if (o->timer)
		event_free(o->timer);
	free(o);
}

static void
record_latency(struct stats *st, int64_t us)
{
	if (st->nlat == st->caplat) {
		size_t cap = st->caplat ? st->caplat * 2 : 65536;
		uint32_t *n = realloc(st->lat, cap * sizeof(*n));
		if (n == NULL)
			return;
		st->lat = n;
		st->caplat = cap;
	}
	st->lat[st->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Ends an operation that did not become a held connection. */
static void
op_end(struct op *o, bool ok, const char *why)
{
	struct sim *s = o->s;
	int64_t t = mono_us();
	if (ok) {
		/* a timed run counts what finished inside its window */
		if (s->target > 0 || t <= s->t_end) {
			s->cur->done++;
			record_latency(s->cur, t - o->t0);
		}
	} else {
		char msg[300];
		str_fmt(msg, sizeof(msg), "%s (identity %zu)", why, o->id);
		sim_error(s, msg);
		if (s->mode == M_ENROLL && ++s->ids[o->id].tries < ENROLL_TRIES)
			s->retry[s->nretry++] = o->id;
	}
	s->inflight--;
	op_free(o);
	sim_refill(s);
}

static void
op_held(struct op *o)
{
	struct sim *s = o->s;
	o->held = true;
	s->held++;
	s->inflight--;
	record_latency(s->cur, mono_us() - o->t0);
	bufferevent_set_timeouts(o->bev, NULL, NULL);
	if (s->held == s->target) {
		s->t_end = mono_us();
		printf("HELD n=%zu secs=%.3f\n", s->held, (double)(s->t_end - s->t_start) / 1e6);
		fflush(stdout);
	}
	sim_refill(s);
}

static void
handle_enrolled(struct op *o, json_t *msg)
{
	struct sim *s = o->s;
	struct ident *id = &s->ids[o->id];
	const char *cert = json_string_value(json_object_get(msg, "cert"));
	const char *fp = json_string_value(json_object_get(msg, "server_fingerprint"));
	char err[256];
	if (cert == NULL) {
		op_end(o, false, "enrolled answer has no cert");
		return;
	}
	X509 *x = pki_cert_from_pem(cert, strlen(cert), err, sizeof(err));
	if (x == NULL) {
		op_end(o, false, err);
		return;
	}
	X509_free(x);
	if ((id->cert_pem = strdup(cert)) == NULL) {
		op_end(o, false, "out of memory");
		return;
	}
	if (fp && s->fp[0] == '\0')
		str_copy(s->fp, fp, sizeof(s->fp));
	op_end(o, true, NULL);
}

static void
op_read_cb(struct bufferevent *bev, void *arg)
{
	struct op *o = arg;
	struct sim *s = o->s;
	char err[256], why[300];
	json_t *msg;

	for (;;) {
		enum frame_rc rc = frame_decode(bufferevent_get_input(bev), MAX_FRAME, &msg, err,
		    sizeof(err));
		if (rc == FRAME_NEED_MORE)
			return;
		if (rc != FRAME_OK) {
			if (o->held) {
				s->dropped++;
				op_free(o);
			} else
				op_end(o, false, err);
			return;
		}
		const char *type = json_string_value(json_object_get(msg, "type"));
		if (s->mode == M_POLICY && type != NULL) {
			bool alive = policy_message(o, type, msg);
			json_decref(msg);
			if (!alive)
				return;
			continue;
		} else if (o->held || type == NULL) {
			/* held agents ignore server pushes (sync_now) */
		} else if (strcmp(type, "error") == 0) {
			const char *code = json_string_value(json_object_get(msg, "code"));
			const char *text = json_string_value(json_object_get(msg, "message"));
			str_fmt(why, sizeof(why), "server error %s: %s", code ? code : "?",
			    text ? text : "?");
			json_decref(msg);
			op_end(o, false, why);
			return;
		} else if (s->mode == M_ENROLL && strcmp(type, "enrolled") == 0) {
			handle_enrolled(o, msg);
			json_decref(msg);
			return;
		} else if (s->mode == M_SYNC && strcmp(type, "sync_ok") == 0) {
			json_decref(msg);
			op_end(o, true, NULL);
			return;
		} else if (s->mode == M_HOLD && strcmp(type, "sync_ok") == 0) {
			op_held(o);
		} else {
			str_fmt(why, sizeof(why), "unexpected message \"%s\"", type);
			json_decref(msg);
			op_end(o, false, why);
			return;
		}
		json_decref(msg);
	}
}

static int
send_enroll(struct op *o)
{
	struct sim *s = o->s;
	struct ident *id = &s->ids[o->id];
	char host[32], err[256];
	char *csr = NULL;
	str_fmt(host, sizeof(host), "bench-%05zu", o->id);
	free(id->key_pem);
	id->key_pem = NULL;
	if (pki_make_key_and_csr(host, &id->key_pem, &csr, err, sizeof(err)) < 0) {
		fprintf(stderr, "agent_sim: %s\n", err);
		return -1;
	}
	json_t *msg = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "enroll", "token", s->token,
	    "csr", csr, "hostname", host, "agent_version", "0.1.0-bench");
	free(csr);
	int rc = msg ? frame_encode(bufferevent_get_output(o->bev), msg, MAX_FRAME, err, sizeof(err)) : -1;
	json_decref(msg);
	return rc;
}

static int
send_sync(struct op *o)
{
	struct ident *id = &o->s->ids[o->id];
	if (id->frame == NULL && encode_frame(sync_message(o->id), &id->frame, &id->frame_len) < 0)
		return -1;
	return bufferevent_write(o->bev, id->frame, id->frame_len);
}

static void
op_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct op *o = arg;
	struct sim *s = o->s;
	char why[300];

	if (what & BEV_EVENT_CONNECTED) {
		char fp[PKI_FP_LEN];
		o->handshaken = true;
		int one = 1;
		if (!s->nagle && setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one)) < 0) {
			op_end(o, false, "cannot set TCP_NODELAY");
			return;
		}
		/* agents pin the server certificate (agent/client.c) */
		if (s->fp[0] && (tls_peer_fingerprint(bufferevent_openssl_get_ssl(bev), fp) < 0 ||
		    strcmp(fp, s->fp) != 0)) {
			op_end(o, false, "server certificate does not match the pinned fingerprint");
			return;
		}
		int rc = 0;
		if (s->mode == M_ENROLL)
			rc = send_enroll(o);
		else if (s->mode == M_SYNC || s->mode == M_HOLD)
			rc = send_sync(o);
		else if (s->mode == M_POLICY)
			rc = send_policy_sync(o);
		if (rc < 0)
			op_end(o, false, "cannot build the request");
		return;
	}
	if (o->held) {
		s->dropped++;
		op_free(o);
		return;
	}
	/* raw: the server closes once it has verified our certificate */
	if (s->mode == M_RAW && o->handshaken && (what & BEV_EVENT_EOF)) {
		op_end(o, true, NULL);
		return;
	}
	/* libevent reports a socket failure as the bare SSL_ERROR_SYSCALL
	 * code, with the reason left in errno */
	int syserr = EVUTIL_SOCKET_ERROR();
	unsigned long e = bufferevent_get_openssl_error(bev);
	char ebuf[256] = "";
	if (e != 0 && ERR_GET_LIB(e) != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	else if (syserr != 0)
		str_copy(ebuf, strerror(syserr), sizeof(ebuf));
	str_fmt(why, sizeof(why), "%s %s", o->handshaken ? "after handshake:" : "handshake:",
	    (what & BEV_EVENT_TIMEOUT) ? "timeout" : *ebuf ? ebuf :
	    (what & BEV_EVENT_EOF) ? "closed by server" : "error");
	op_end(o, false, why);
}

static void
op_start(struct sim *s)
{
	struct op *o = calloc(1, sizeof(*o));
	SSL *ssl = SSL_new(s->ctx);
	if (o == NULL || ssl == NULL)
		goto fail;
	o->s = s;
	if (s->mode == M_ENROLL) {
		o->id = s->nretry > 0 ? s->retry[--s->nretry] : s->next_id++;
	} else {
		o->id = s->next_id++ % s->nids;
		struct ident *id = &s->ids[o->id];
		if (SSL_use_certificate(ssl, id->cert) != 1 || SSL_use_PrivateKey(ssl, id->key) != 1)
			goto fail;
	}
	SSL_set_tlsext_host_name(ssl, "127.0.0.1");
	o->bev = bufferevent_openssl_socket_new(s->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (o->bev == NULL)
		goto fail;
	ssl = NULL; /* owned by the bufferevent */
	bufferevent_openssl_set_allow_dirty_shutdown(o->bev, 1);
	bufferevent_setcb(o->bev, op_read_cb, NULL, op_event_cb, o);
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	bufferevent_set_timeouts(o->bev, &tv, &tv);
	bufferevent_enable(o->bev, EV_READ | EV_WRITE);
	o->next = s->ops;
	if (s->ops)
		s->ops->prev = o;
	s->ops = o;
	s->inflight++;
	o->t0 = mono_us();
	/* On failure libevent has already run op_event_cb, which ended o. */
	(void)bufferevent_socket_connect(o->bev, s->to, s->tolen);
	return;
fail:
	SSL_free(ssl);
	free(o);
	sim_error(s, "cannot set up a connection (out of memory or bad identity)");
	s->stopping = true;
	event_base_loopbreak(s->base);
}

/* ---- run and report ---- */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double
percentile_ms(const uint32_t *v, size_t n, int p)
{
	if (n == 0)
		return 0;
	size_t rank = ((size_t)p * n + 99) / 100; /* nearest rank */
	return v[rank ? rank - 1 : 0] / 1000.0;
}

/* ---- policy: custos-agent's side of a policy push ---- */

/* The sync frame custos-agent sends (agent/client.c agent_send_sync): the
 * posture message plus the applied policy {version, hash, errors}, the task
 * list's hash and the tags. The posture part is encoded once per identity
 * and the rest spliced in before its closing brace, which gives the server
 * the same JSON a full encode would. */
static int
send_policy_sync(struct op *o)
{
	struct sim *s = o->s;
	struct ident *id = &s->ids[o->id];
	uint8_t hdr[FRAME_HDR_LEN];
	if (id->frame == NULL && encode_frame(sync_message(o->id), &id->frame, &id->frame_len) < 0)
		return -1;
	json_t *extra = json_pack("{s:{s:I, s:s, s:[]}, s:s, s:[]}", "policy", "version",
	    (json_int_t)o->pol_version, "hash", o->pol_hash, "errors", "tasks_hash", o->tasks_hash,
	    "tags");
	char *text = extra ? json_dumps(extra, JSON_COMPACT) : NULL;
	json_decref(extra);
	if (text == NULL || id->frame_len < FRAME_HDR_LEN + 2 || text[0] != '{') {
		free(text);
		return -1;
	}
	size_t base = id->frame_len - FRAME_HDR_LEN - 1;    /* without the closing '}' */
	size_t tail = strlen(text) - 1;                     /* without the opening '{' */
	size_t len = base + 1 + tail;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	struct evbuffer *out = bufferevent_get_output(o->bev);
	int rc = len <= MAX_FRAME && evbuffer_add(out, hdr, sizeof(hdr)) == 0 &&
	    evbuffer_add(out, id->frame + FRAME_HDR_LEN, base) == 0 && evbuffer_add(out, ",", 1) == 0 &&
	    evbuffer_add(out, text + 1, tail) == 0 ? 0 : -1;
	free(text);
	if (rc < 0)
		return -1;
	o->nsent++;
	s->syncs_sent++;
	/* the first sync after the new document reports it as applied */
	if (o->reached && o->report_seq == 0)
		o->report_seq = o->nsent;
	return 0;
}

static double
percentile_s(struct stats *st, int p)
{
	return percentile_ms(st->lat, st->nlat, p) / 1000.0;
}

static void
push_result(struct sim *s)
{
	if (!s->armed || s->push_printed)
		return;
	s->push_printed = true;
	if (s->push.nlat > 0)
		qsort(s->push.lat, s->push.nlat, sizeof(*s->push.lat), cmp_u32);
	if (s->report.nlat > 0)
		qsort(s->report.lat, s->report.nlat, sizeof(*s->report.lat), cmp_u32);
	printf("RESULT mode=push agents=%zu reached=%zu missed=%zu p50_s=%.3f p99_s=%.3f max_s=%.3f"
	    " reported=%zu report_p50_s=%.3f report_p99_s=%.3f report_max_s=%.3f wait_s=%d"
	    " sync_now=%zu syncs=%zu docs=%zu held=%zu dropped=%zu errors=%zu\n", s->narmed, s->reached,
	    s->narmed - s->reached, percentile_s(&s->push, 50), percentile_s(&s->push, 99),
	    percentile_s(&s->push, 100), s->reported, percentile_s(&s->report, 50),
	    percentile_s(&s->report, 99), percentile_s(&s->report, 100), s->wait_secs, s->sync_now,
	    s->syncs_sent, s->docs, s->held, s->dropped, s->st[0].errors);
	fflush(stdout);
}

static void
push_check_done(struct sim *s)
{
	if (s->armed && s->reached == s->narmed && s->reported == s->narmed)
		push_result(s);
}

static void
on_report_timer(evutil_socket_t fd, short what, void *arg)
{
	struct op *o = arg;
	(void)fd;
	(void)what;
	/* agent/client.c: the sync timer fires agent_sync_now() */
	if (send_policy_sync(o) < 0)
		sim_error(o->s, "cannot build a sync frame");
}

/* Applies sync_ok as agent/client.c handle_message does: stores the
 * document's version and hash and the task list's hash, then reports the
 * applied version at once, or 1 s after the previous report for a new
 * document (10 s for the same one sent again). */
static void
policy_sync_ok(struct op *o, json_t *msg)
{
	struct sim *s = o->s;
	json_t *pol = json_object_get(msg, "policy"), *t = json_object_get(msg, "tasks");
	int64_t now = mono_us();
	o->nok++;
	if (json_is_object(t)) {
		const char *th = json_string_value(json_object_get(t, "hash"));
		str_copy(o->tasks_hash, th ? th : "", sizeof(o->tasks_hash));
	}
	if (!json_is_object(pol)) {
		/* the server answered the sync that reported the new version */
		if (o->armed && o->reached && !o->reported && o->report_seq != 0 &&
		    o->nok >= o->report_seq) {
			o->reported = true;
			s->reported++;
			record_latency(&s->report, now - s->t_arm);
			push_check_done(s);
		}
		return;
	}
	const char *got = json_string_value(json_object_get(pol, "hash"));
	int64_t version = json_integer_value(json_object_get(pol, "version"));
	bool fresh = got == NULL || strcmp(o->pol_hash, got) != 0;
	s->docs++;
	o->pol_version = version;
	str_copy(o->pol_hash, got ? got : "", sizeof(o->pol_hash));
	if (o->armed && !o->reached && (strcmp(o->pol_hash, o->start_hash) != 0 ||
	    o->pol_version != o->start_version)) {
		o->reached = true;
		s->reached++;
		record_latency(&s->push, now - s->t_arm);
	}
	json_int_t next = json_integer_value(json_object_get(msg, "next_sync"));
	int64_t due = (fresh ? 1 : 10) - (now_s() - o->last_report);
	if (due <= 0) {
		o->last_report = now_s();
		if (send_policy_sync(o) < 0)
			sim_error(s, "cannot build a sync frame");
	} else if (next <= 0 || due < next) {
		struct timeval tv = { (time_t)due, 0 };
		if (o->timer == NULL)
			o->timer = evtimer_new(s->base, on_report_timer, o);
		if (o->timer == NULL || evtimer_add(o->timer, &tv) < 0)
			sim_error(s, "cannot schedule a report");
	}
}

/* One message to a policy-mode connection; false when o was freed. */
static bool
policy_message(struct op *o, const char *type, json_t *msg)
{
	struct sim *s = o->s;
	char why[300];
	if (strcmp(type, "sync_ok") == 0) {
		policy_sync_ok(o, msg);
		if (!o->held)
			op_held(o);
	} else if (strcmp(type, "sync_now") == 0) {
		s->sync_now++;
		if (send_policy_sync(o) < 0)
			sim_error(s, "cannot build a sync frame");
	} else if (strcmp(type, "error") == 0) {
		const char *code = json_string_value(json_object_get(msg, "code"));
		const char *text = json_string_value(json_object_get(msg, "message"));
		str_fmt(why, sizeof(why), "server error %s: %s", code ? code : "?", text ? text : "?");
		if (!o->held) {
			op_end(o, false, why);
			return false;
		}
		sim_error(s, why);
	}
	/* pong, ack and the like need nothing */
	return true;
}

/* SIGUSR1: remember each held agent's policy; time the change from now. */
static void
on_arm(evutil_socket_t sig, short what, void *arg)
{
	struct sim *s = arg;
	(void)sig;
	(void)what;
	if (s->armed)
		return;
	s->armed = true;
	s->t_arm = mono_us();
	for (struct op *o = s->ops; o; o = o->next) {
		if (!o->held)
			continue;
		o->armed = true;
		str_copy(o->start_hash, o->pol_hash, sizeof(o->start_hash));
		o->start_version = o->pol_version;
		s->narmed++;
	}
	s->push.lat = calloc(s->narmed ? s->narmed : 1, sizeof(*s->push.lat));
	s->report.lat = calloc(s->narmed ? s->narmed : 1, sizeof(*s->report.lat));
	s->push.caplat = s->report.caplat = s->push.lat && s->report.lat ? s->narmed : 0;
	printf("ARMED n=%zu\n", s->narmed);
	fflush(stdout);
	struct timeval tv = { s->wait_secs, 0 };
	if (s->wait_ev == NULL || evtimer_add(s->wait_ev, &tv) < 0)
		push_result(s);
	push_check_done(s);
}

static void
on_wait_over(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	push_result(arg);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct sim *s = arg;
	(void)fd;
	(void)what;
	s->stopping = true;
	if (s->inflight == 0)
		event_base_loopbreak(s->base);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct sim *s = arg;
	(void)what;
	got_signal = (sig_atomic_t)sig;
	s->stopping = true;
	event_base_loopbreak(s->base);
}

static const char *
mode_name(enum mode m)
{
	static const char *const n[] = { "enroll", "sync", "raw", "hold", "raw-server", "compare",
		"policy" };
	return n[m];
}

/* Runs one phase: mode against to, for ms milliseconds (0: until the
 * target count), into st. */
static void
run_phase(struct sim *s, enum mode mode, const struct sockaddr *to, int tolen, int64_t ms,
    struct stats *st)
{
	s->mode = mode;
	s->to = to;
	s->tolen = tolen;
	s->cur = st;
	s->stopping = false;
	int64_t cpu0 = cpu_us();
	s->t_start = mono_us();
	s->t_end = s->t_start + ms * 1000;
	if (ms > 0) {
		struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
		evtimer_add(s->deadline, &tv);
	}
	sim_refill(s);
	if (!s->stopping || s->inflight > 0)
		event_base_dispatch(s->base);
	evtimer_del(s->deadline);
	st->cpu_us += cpu_us() - cpu0;
	if (holds(mode) && s->held == s->target)
		st->wall_us += s->t_end - s->t_start; /* until the last was held */
	else if (!holds(mode) && ms > 0)
		st->wall_us += ms * 1000;
	else
		st->wall_us += mono_us() - s->t_start;
}

static void
print_result(struct sim *s, const char *mode, struct stats *st)
{
	double secs = (double)st->wall_us / 1e6;
	size_t ok = holds(s->mode) ? s->held : st->done;
	if (st->nlat > 0)
		qsort(st->lat, st->nlat, sizeof(*st->lat), cmp_u32);
	printf("RESULT mode=%s ops=%zu secs=%.3f rate=%.1f p50_ms=%.2f p99_ms=%.2f errors=%zu"
	    " cpu_ms=%lld", mode, ok, secs, secs > 0 ? (double)ok / secs : 0,
	    percentile_ms(st->lat, st->nlat, 50), percentile_ms(st->lat, st->nlat, 99), st->errors,
	    (long long)(st->cpu_us / 1000));
	if (holds(s->mode))
		printf(" held=%zu dropped=%zu identities=%zu", s->held, s->dropped, s->nids);
	if (s->mode == M_POLICY)
		printf(" sync_now=%zu syncs=%zu docs=%zu", s->sync_now, s->syncs_sent, s->docs);
	if (s->rounds > 0)
		printf(" rounds=%d", s->rounds);
	printf("\n");
	fflush(stdout);
}

static int
run_client(struct sim *s)
{
	char err[512];
	struct event *sigterm, *sigint;
	enum mode mode = s->mode;

	if ((s->ctx = tls_client_ctx(NULL, NULL, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "agent_sim: %s\n", err);
		return 1;
	}
	if (mode == M_ENROLL) {
		s->nids = s->target;
		s->ids = calloc(s->nids, sizeof(*s->ids));
		s->retry = calloc(s->nids, sizeof(*s->retry));
		if (s->ids == NULL || s->retry == NULL)
			return 1;
	} else if (ids_load(s) < 0)
		return 1;
	if (mode == M_HOLD && s->target > s->nids)
		fprintf(stderr, "agent_sim: %zu connections share %zu identities (the newest "
		    "connection of an agent becomes its current one)\n", s->target, s->nids);
	if (mode == M_POLICY && s->target > s->nids) {
		/* the server pushes to an agent's newest connection only */
		fprintf(stderr, "agent_sim: policy needs an identity per connection: -n %zu, but %zu "
		    "identities are loaded\n", s->target, s->nids);
		return 1;
	}
	sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
	sigint = evsignal_new(s->base, SIGINT, on_signal, s);
	s->deadline = evtimer_new(s->base, on_deadline, s);
	if (sigterm == NULL || sigint == NULL || s->deadline == NULL || event_add(sigterm, NULL) < 0 ||
	    event_add(sigint, NULL) < 0)
		return 1;
	struct event *sigusr1 = NULL;
	if (mode == M_POLICY) {
		sigusr1 = evsignal_new(s->base, SIGUSR1, on_arm, s);
		s->wait_ev = evtimer_new(s->base, on_wait_over, s);
		if (sigusr1 == NULL || s->wait_ev == NULL || event_add(sigusr1, NULL) < 0)
			return 1;
	}

	const struct sockaddr *sa = (struct sockaddr *)&s->addr;
	int rc = 0;
	if (mode == M_COMPARE) {
		int64_t ms = (int64_t)s->secs * 1000 / s->rounds;
		for (int r = 0; r < s->rounds && !got_signal; r++) {
			run_phase(s, M_RAW, (struct sockaddr *)&s->raw_addr, s->raw_addrlen, ms, &s->st[1]);
			if (!got_signal)
				run_phase(s, M_SYNC, sa, s->addrlen, ms, &s->st[0]);
		}
		print_result(s, "raw", &s->st[1]);
		print_result(s, "sync", &s->st[0]);
		rc = s->st[0].done == 0 || s->st[1].done == 0;
	} else {
		run_phase(s, mode, sa, s->addrlen, (int64_t)s->secs * 1000, &s->st[0]);
		push_result(s); /* stopped before every agent had the new policy */
		print_result(s, mode_name(mode), &s->st[0]);
		if (mode == M_ENROLL) {
			if (s->st[0].done < s->target) {
				fprintf(stderr, "agent_sim: only %zu of %zu enrolments succeeded\n",
				    s->st[0].done, s->target);
				rc = 1;
			} else if (ids_write(s, s->nids) < 0)
				rc = 1;
		} else if (holds(mode))
			rc = s->held < s->target && !got_signal;
		else
			rc = s->st[0].done == 0;
	}

	while (s->ops)
		op_free(s->ops);
	event_free(s->deadline);
	event_free(sigterm);
	event_free(sigint);
	if (sigusr1)
		event_free(sigusr1);
	if (s->wait_ev)
		event_free(s->wait_ev);
	free(s->push.lat);
	free(s->report.lat);
	for (size_t i = 0; i < s->nids; i++) {
		EVP_PKEY_free(s->ids[i].key);
		X509_free(s->ids[i].cert);
		free(s->ids[i].frame);
		if (s->ids[i].key_pem)
			OPENSSL_cleanse(s->ids[i].key_pem, strlen(s->ids[i].key_pem));
		free(s->ids[i].key_pem);
		free(s->ids[i].cert_pem);
	}
	free(s->ids);
	free(s->retry);
	free(s->st[0].lat);
	free(s->st[1].lat);
	SSL_CTX_free(s->ctx);
	return rc;
}

/* ---- raw-server: the server's TLS context, handshake, close ---- */

struct raw_server {
	SSL_CTX *ctx;
	struct event_base *base;
	size_t handshakes, verified, failed, live;
};

static void
raw_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct raw_server *r = arg;
	if (what & BEV_EVENT_CONNECTED) {
		char cn[64];
		/* custosd reads the CN of the verified certificate likewise */
		if (tls_peer_cn(bufferevent_openssl_get_ssl(bev), cn, sizeof(cn)) == 0)
			r->verified++;
		r->handshakes++;
	} else
		r->failed++;
	r->live--;
	bufferevent_free(bev);
}

static void
raw_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct raw_server *r = arg;
	(void)evl;
	(void)sa;
	(void)salen;
	SSL *ssl = SSL_new(r->ctx);
	if (ssl == NULL) {
		evutil_closesocket(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(r->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	struct timeval tv = { 10, 0 };
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setcb(bev, NULL, NULL, raw_conn_event_cb, r);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	r->live++;
}

static int
run_raw_server(struct sim *s, const char *cert, const char *key, const char *ca)
{
	char err[512];
	struct raw_server r = { .base = s->base };
	struct event *sigterm, *sigint;

	/* the same call and arguments as daemon/listener.c */
	if ((r.ctx = tls_server_ctx(cert, key, ca, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "agent_sim: %s\n", err);
		return 1;
	}
	struct evconnlistener *evl = evconnlistener_new_bind(s->base, raw_accept_cb, &r,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    (struct sockaddr *)&s->addr, s->addrlen);
	if (evl == NULL) {
		fprintf(stderr, "agent_sim: cannot listen: %s\n", strerror(errno));
		SSL_CTX_free(r.ctx);
		return 1;
	}
	sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
	sigint = evsignal_new(s->base, SIGINT, on_signal, s);
	if (sigterm == NULL || sigint == NULL || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0)
		return 1;
	printf("READY\n");
	fflush(stdout);
	event_base_dispatch(s->base);
	printf("RESULT mode=raw-server handshakes=%zu verified=%zu failed=%zu\n", r.handshakes,
	    r.verified, r.failed);
	fflush(stdout);
	evconnlistener_free(evl);
	event_free(sigterm);
	event_free(sigint);
	SSL_CTX_free(r.ctx);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: agent_sim enroll -s ADDR:PORT -f IDS -n N -T TOKEN [-c C]\n"
	    "       agent_sim sync|raw -s ADDR:PORT -f IDS [-c C] [-i MAXIDS] [-N] (-t SECS | -n COUNT)\n"
	    "       agent_sim compare -s ADDR:PORT -r ADDR:PORT -f IDS [-c C] [-i MAXIDS] [-N] -t SECS"
	    " [-R ROUNDS]\n"
	    "       agent_sim hold -s ADDR:PORT -f IDS -n N [-c C] [-i MAXIDS] [-t MAXSECS]\n"
	    "       agent_sim policy -s ADDR:PORT -f IDS -n N [-c C] [-t MAXSECS] [-w WAITSECS]\n"
	    "       agent_sim raw-server -s ADDR:PORT -C CERT -K KEY -A CA\n");
	exit(2);
}

static long
num_arg(const char *opt, const char *v, long max)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n < 0 || n > max) {
		fprintf(stderr, "agent_sim: -%s wants a number from 0 to %ld\n", opt, max);
		exit(2);
	}
	return n;
}

int
main(int argc, char **argv)
{
	struct sim s;
	const char *server = NULL, *raw = NULL, *cert = NULL, *key = NULL, *ca = NULL;
	int ch;

	memset(&s, 0, sizeof(s));
	if (argc < 2)
		usage();
	const char *m = argv[1];
	if (strcmp(m, "enroll") == 0)
		s.mode = M_ENROLL;
	else if (strcmp(m, "sync") == 0)
		s.mode = M_SYNC;
	else if (strcmp(m, "raw") == 0)
		s.mode = M_RAW;
	else if (strcmp(m, "hold") == 0)
		s.mode = M_HOLD;
	else if (strcmp(m, "policy") == 0)
		s.mode = M_POLICY;
	else if (strcmp(m, "raw-server") == 0)
		s.mode = M_RAW_SERVER;
	else if (strcmp(m, "compare") == 0)
		s.mode = M_COMPARE;
	else
		usage();
	s.concurrency = 32;
	s.wait_secs = WAIT_DEFAULT_S;
	optind = 2;
	while ((ch = getopt(argc, argv, "A:c:C:f:i:K:Nn:r:R:s:t:T:w:")) != -1) {
		switch (ch) {
		case 'A': ca = optarg; break;
		case 'c': s.concurrency = (size_t)num_arg("c", optarg, 100000); break;
		case 'C': cert = optarg; break;
		case 'f': s.ids_path = optarg; break;
		case 'i': s.max_ids = (size_t)num_arg("i", optarg, 10000000); break;
		case 'K': key = optarg; break;
		case 'N': s.nagle = true; break;
		case 'n': s.target = (size_t)num_arg("n", optarg, 10000000); break;
		case 'r': raw = optarg; break;
		case 'R': s.rounds = (int)num_arg("R", optarg, 1000); break;
		case 's': server = optarg; break;
		case 't': s.secs = (int)num_arg("t", optarg, 86400); break;
		case 'T': s.token = optarg; break;
		case 'w': s.wait_secs = (int)num_arg("w", optarg, 86400); break;
		default: usage();
		}
	}
	if (optind != argc || server == NULL || s.concurrency == 0)
		usage();
	s.addrlen = sizeof(s.addr);
	if (evutil_parse_sockaddr_port(server, (struct sockaddr *)&s.addr, &s.addrlen) < 0) {
		fprintf(stderr, "agent_sim: -s %s is not ADDR:PORT\n", server);
		return 2;
	}
	if (s.mode == M_RAW_SERVER ? (!cert || !key || !ca) : s.ids_path == NULL)
		usage();
	if (s.mode == M_COMPARE) {
		if (raw == NULL || s.secs == 0 || s.target != 0)
			usage();
		if (s.rounds == 0)
			s.rounds = 5;
		s.raw_addrlen = sizeof(s.raw_addr);
		if (evutil_parse_sockaddr_port(raw, (struct sockaddr *)&s.raw_addr, &s.raw_addrlen) < 0) {
			fprintf(stderr, "agent_sim: -r %s is not ADDR:PORT\n", raw);
			return 2;
		}
	} else
		s.rounds = 0;
	if ((s.mode == M_ENROLL && (s.target == 0 || s.token == NULL)) ||
	    (holds(s.mode) && s.target == 0) ||
	    ((s.mode == M_SYNC || s.mode == M_RAW) && (s.target == 0) == (s.secs == 0)))
		usage();
	signal(SIGPIPE, SIG_IGN);
	if ((s.base = event_base_new()) == NULL) {
		fprintf(stderr, "agent_sim: cannot create the event base\n");
		return 1;
	}
	int rc = s.mode == M_RAW_SERVER ? run_raw_server(&s, cert, key, ca) : run_client(&s);
	event_base_free(s.base);
	return rc;
}
