/* test_listener_messages.c — the agent listener's message handling
 * (daemon/agents/listener.c), built alone: a struct server with only the
 * registry (a fake observer counts "a host changed"), a store and a model
 * without a database, and a real TLS client on loopback that speaks the
 * agent protocol's frames. The event loop and the client take turns on
 * this one thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "daemon/agents/listener.h"
#include "daemon/core/config.h"
#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "daemon/mgmt/mgmt.h"
#include "daemon/store/store.h"
#include "frame.h"
#include "pki.h"
#include "tls.h"
#include "util.h"

#define AGENT_UID "0123456789abcdef0123456789abcdef"

struct fx {
	struct server srv;
	char dir[64];
	char cert[128], key[128];
	int port;
	size_t changes;           /* registry observer calls for the agent's host */
	unsigned last_what;
};

static void
observer(void *arg, struct host *h, unsigned what)
{
	struct fx *x = arg;
	if (strcmp(h->uid, AGENT_UID) == 0) {
		x->changes++;
		x->last_what = what;
	}
}

static int
write_file(const char *path, const char *text)
{
	return file_write_atomic(path, text, strlen(text), 0600);
}

static int
setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char path[160], text[512], err[512];
	if (x == NULL)
		return -1;
	str_copy(x->dir, "/tmp/custos-lis-XXXXXX", sizeof(x->dir));
	if (mkdtemp(x->dir) == NULL)
		return -1;
	struct server *srv = &x->srv;
	srv->base = event_base_new();
	status_defaults(&srv->thr);
	if (pki_server_init(&srv->pki, x->dir, "localhost", "localhost,127.0.0.1", err, sizeof(err)) < 0) {
		fprintf(stderr, "pki: %s\n", err);
		return -1;
	}
	/* the agent's key and certificate, as enrolment would make them */
	char *key_pem = NULL, *csr_pem = NULL, *cert_pem = NULL, serial[64];
	if (pki_make_key_and_csr("pc", &key_pem, &csr_pem, err, sizeof(err)) < 0 ||
	    pki_sign_csr(&srv->pki, csr_pem, strlen(csr_pem), AGENT_UID, 30, &cert_pem, serial,
	    err, sizeof(err)) < 0) {
		fprintf(stderr, "agent certificate: %s\n", err);
		return -1;
	}
	str_fmt(x->cert, sizeof(x->cert), "%s/agent.pem", x->dir);
	str_fmt(x->key, sizeof(x->key), "%s/agent.key", x->dir);
	if (write_file(x->cert, cert_pem) < 0 || write_file(x->key, key_pem) < 0)
		return -1;
	free(key_pem);
	free(csr_pem);
	free(cert_pem);
	/* a port of our own: try a few */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	srv->reg = registry_new();
	srv->store = store_new(srv, 100, 100);
	srv->mgmt = mgmt_new(srv);
	srv->loaded = true;
	if (srv->reg == NULL || srv->store == NULL || srv->mgmt == NULL)
		return -1;
	assert_int_equal(registry_observe(srv->reg, observer, x), 0);
	struct host *h = calloc(1, sizeof(*h));
	h->id = 5;
	str_copy(h->uid, AGENT_UID, sizeof(h->uid));
	str_copy(h->name, "pc", sizeof(h->name));
	assert_int_equal(registry_add_host(srv->reg, h), 0);
	for (int attempt = 0; attempt < 20 && srv->lis == NULL; attempt++) {
		x->port = 20000 + (int)((ts.tv_nsec / 1000 + attempt * 7919) % 40000);
		str_fmt(path, sizeof(path), "%s/custosd.conf", x->dir);
		str_fmt(text, sizeof(text), "server: { state_dir = \"%s\"; };\n"
		    "listen: { address = \"127.0.0.1\"; port = %d; };\n", x->dir, x->port);
		conf_free(srv->cfg);
		srv->cfg = NULL;
		if (write_file(path, text) < 0 ||
		    conf_load(&srv->cfg, path, custosd_schema, NULL, 0, err, sizeof(err)) < 0) {
			fprintf(stderr, "conf: %s\n", err);
			return -1;
		}
		srv->lis = listener_start(srv, 16, err, sizeof(err));
	}
	if (srv->lis == NULL) {
		fprintf(stderr, "listener: %s\n", err);
		return -1;
	}
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *x = *state;
	struct server *srv = &x->srv;
	store_free(srv->store);         /* as main.c: waiting events answered first */
	listener_stop(srv->lis);
	mgmt_free(srv->mgmt);
	registry_free(srv->reg);
	conf_free(srv->cfg);
	pki_server_free(&srv->pki);
	event_base_free(srv->base);
	char cmd[128];
	str_fmt(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", x->dir);
	free(x);
	return 0;
}

/* ---- a non-blocking TLS client, pumped together with the event loop ---- */

struct cli {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	uint8_t in[65536];
	size_t len;
};

static void
pump(struct fx *x)
{
	event_base_loop(x->srv.base, EVLOOP_NONBLOCK);
	usleep(500);
}

static int64_t
ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
cli_open(struct fx *x, struct cli *c, bool with_cert)
{
	char err[256];
	memset(c, 0, sizeof(*c));
	c->ctx = tls_client_ctx(with_cert ? x->cert : NULL, with_cert ? x->key : NULL, NULL, err, sizeof(err));
	assert_non_null(c->ctx);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)x->port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	int rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
	assert_true(rc == 0 || errno == EINPROGRESS);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	int64_t end = ms_now() + 5000;
	for (;;) {
		pump(x);
		rc = SSL_connect(c->ssl);
		if (rc == 1)
			return;
		int e = SSL_get_error(c->ssl, rc);
		assert_true(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
		    (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EINPROGRESS || errno == ENOTCONN)));
		assert_true(ms_now() < end);
	}
}

static void
cli_close(struct cli *c)
{
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	close(c->fd);
}

static void
cli_send(struct fx *x, struct cli *c, json_t *msg)
{
	char err[256];
	struct evbuffer *b = evbuffer_new();
	assert_int_equal(frame_encode(b, msg, 1 << 20, err, sizeof(err)), 0);
	json_decref(msg);
	size_t n = evbuffer_get_length(b);
	uint8_t *p = evbuffer_pullup(b, -1);
	size_t off = 0;
	int64_t end = ms_now() + 5000;
	while (off < n) {
		int w = SSL_write(c->ssl, p + off, (int)(n - off));
		if (w > 0)
			off += (size_t)w;
		pump(x);
		assert_true(ms_now() < end);
	}
	evbuffer_free(b);
}

/* The next message, or NULL when the server closed the connection (or
 * nothing came within ms). */
static json_t *
cli_recv(struct fx *x, struct cli *c, int ms)
{
	char err[256];
	int64_t end = ms_now() + ms;
	for (;;) {
		json_t *msg = NULL;
		size_t used = 0;
		if (c->len > 0 && frame_decode_buf(c->in, c->len, sizeof(c->in), &msg, &used, err,
		    sizeof(err)) == FRAME_OK) {
			memmove(c->in, c->in + used, c->len - used);
			c->len -= used;
			return msg;
		}
		pump(x);
		int r = SSL_read(c->ssl, c->in + c->len, (int)(sizeof(c->in) - c->len));
		if (r > 0) {
			c->len += (size_t)r;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno != EAGAIN) ||
		    e == SSL_ERROR_SSL)
			return NULL;
		if (ms_now() >= end)
			return NULL;
	}
}

static const char *
type_of(const json_t *msg)
{
	return json_string_value(json_object_get(msg, "type"));
}

/* Without a client certificate only one enroll may come: anything else is
 * answered with not_enrolled and the connection is closed. */
static void
test_unauthenticated_refused(void **state)
{
	struct fx *x = *state;
	struct cli c;
	cli_open(x, &c, false);
	cli_send(x, &c, json_pack("{s:s}", "type", "sync"));
	json_t *m = cli_recv(x, &c, 3000);
	assert_non_null(m);
	assert_string_equal(type_of(m), "error");
	assert_string_equal(json_string_value(json_object_get(m, "code")), "not_enrolled");
	json_decref(m);
	assert_null(cli_recv(x, &c, 3000));       /* closed */
	cli_close(&c);
	assert_int_equal(x->changes, 0);
	assert_int_equal(x->srv.stats.conns_preauth_closed, 1);
}

/* A sync: the posture is kept, the host changes once (one registry
 * notification), the reply names the host; events: a posture fact asks for
 * a sync at once, the events wait for the database (no ack without one),
 * last contact is one more change; a push reaches the live connection, and
 * none is possible once it closed. */
static void
test_sync_events_push(void **state)
{
	struct fx *x = *state;
	struct host *h = registry_host_by_uid(x->srv.reg, AGENT_UID);
	struct cli c;
	cli_open(x, &c, true);
	cli_send(x, &c, json_pack("{s:s, s:{s:[{s:s, s:b, s:b}]}, s:i}", "type", "sync", "posture",
	    "antivirus", "name", "clamav", "installed", 1, "rtp", 1, "wake_port", 15000));
	json_t *m = cli_recv(x, &c, 3000);
	assert_non_null(m);
	assert_string_equal(type_of(m), "sync_ok");
	assert_string_equal(json_string_value(json_object_get(m, "name")), "pc");
	assert_non_null(json_object_get(m, "status"));
	json_decref(m);
	assert_int_equal(x->changes, 1);
	assert_int_equal(x->last_what, 0);         /* the listener evaluated it itself */
	assert_non_null(h->posture);
	assert_int_equal(h->wake_port, 15000);
	assert_true(h->connected);
	assert_int_equal(x->srv.stats.syncs, 1);

	cli_send(x, &c, json_pack("{s:s, s:[{s:s, s:I, s:s, s:s, s:s}]}", "type", "events", "events",
	    "id", "000000000000000000000000000000e1", "time", (json_int_t)now_s(), "severity", "critical",
	    "kind", "threat_found", "message", "Eicar FOUND"));
	m = cli_recv(x, &c, 3000);
	assert_non_null(m);
	assert_string_equal(type_of(m), "sync_now");
	json_decref(m);
	assert_int_equal(x->changes, 2);
	assert_int_equal(store_pending_events(x->srv.store), 1);
	assert_null(cli_recv(x, &c, 200));        /* no ack before a commit */

	assert_int_equal(listener_push_sync(x->srv.lis, h), 0);
	m = cli_recv(x, &c, 3000);
	assert_non_null(m);
	assert_string_equal(type_of(m), "sync_now");
	json_decref(m);

	cli_close(&c);
	for (int i = 0; i < 200 && h->connected; i++)
		pump(x);
	assert_false(h->connected);
	assert_int_equal(listener_push_sync(x->srv.lis, h), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unauthenticated_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_events_push, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
