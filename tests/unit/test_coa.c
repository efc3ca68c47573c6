/* test_coa.c — CoA / Disconnect sender (daemon/coa.c) against a fake NAS
 * on loopback that checks every request with its own RFC 5176 / RFC 2869
 * arithmetic (OpenSSL MD5 / HMAC-MD5, not FreeRADIUS) and answers ACK, NAK,
 * unsigned, wrongly signed or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/nacd/coa.h"
#include "conf.h"
#include "daemon/core/config.h"
#include "log.h"
#include "daemon/nacd/nac.h"
#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "util.h"

#define SECRET "s3cr3t-for-coa"

enum nas_mode { ANSWER_ACK, ANSWER_NAK, ANSWER_UNSIGNED, ANSWER_BADSIG, ANSWER_NONE };

struct fake_nas {
	int fd;
	int port;
	struct event *ev;
	enum nas_mode mode;
	int received;
	int last_code;
	int last_id;
	uint8_t last_auth[16];
	char user[256], station[64], session[128], nas_ip[64], nas_id[128];
	bool has_ma, ma_ok, auth_ok, ma_first, has_ts, reauth, authorize_only, has_state;
};

struct fixture {
	char dir[64];
	char conf_path[128];
	char secret_path[128];
	struct event_base *base;
	struct server srv;
	struct fake_nas nas[2];
	struct host host;
	struct nac_session sess;
};

/* ---- the fake NAS: RFC arithmetic by hand ---- */

static void
md5(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[16])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned int n = 16;
	assert_non_null(m);
	assert_int_equal(EVP_DigestInit_ex(m, EVP_md5(), NULL), 1);
	EVP_DigestUpdate(m, a, alen);
	EVP_DigestUpdate(m, b, blen);
	EVP_DigestFinal_ex(m, out, &n);
	EVP_MD_CTX_free(m);
}

static void
hmac_md5(const uint8_t *data, size_t len, uint8_t out[16])
{
	unsigned int n = 16;
	assert_non_null(HMAC(EVP_md5(), SECRET, (int)strlen(SECRET), data, len, out, &n));
}

static void
copy_attr(char *dst, size_t dstsz, const uint8_t *v, size_t len)
{
	if (len >= dstsz)
		len = dstsz - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

/* Checks a CoA-Request / Disconnect-Request the way a NAS must. */
static void
nas_check(struct fake_nas *n, uint8_t *pkt, size_t len)
{
	uint8_t saved_auth[16], calc[16], ma[16], buf[4096];
	size_t ma_off = 0;

	n->received++;
	n->last_code = pkt[0];
	n->last_id = pkt[1];
	assert_int_equal((pkt[2] << 8) | pkt[3], (int)len);
	memcpy(n->last_auth, pkt + 4, 16);
	n->has_ma = n->ma_ok = n->auth_ok = n->ma_first = n->has_ts = false;
	n->reauth = n->authorize_only = n->has_state = false;
	n->user[0] = n->station[0] = n->session[0] = n->nas_ip[0] = n->nas_id[0] = '\0';

	for (size_t off = 20; off + 2 <= len;) {
		uint8_t t = pkt[off], l = pkt[off + 1];
		assert_true(l >= 2 && off + l <= len);
		const uint8_t *v = pkt + off + 2;
		size_t vl = l - 2u;
		switch (t) {
		case 1: copy_attr(n->user, sizeof(n->user), v, vl); break;
		case 4:
			assert_int_equal(vl, 4);
			inet_ntop(AF_INET, v, n->nas_ip, sizeof(n->nas_ip));
			break;
		case 6: n->authorize_only = vl == 4 && v[3] == 17; break;
		case 24: n->has_state = vl == 16; break;
		case 26:
			/* Cisco (9), Cisco-AVPair (1) */
			if (vl > 6 && v[0] == 0 && v[1] == 0 && v[2] == 0 && v[3] == 9 && v[4] == 1) {
				char av[256];
				copy_attr(av, sizeof(av), v + 6, vl - 6u);
				if (strcmp(av, "subscriber:command=reauthenticate") == 0)
					n->reauth = true;
			}
			break;
		case 31: copy_attr(n->station, sizeof(n->station), v, vl); break;
		case 32: copy_attr(n->nas_id, sizeof(n->nas_id), v, vl); break;
		case 44: copy_attr(n->session, sizeof(n->session), v, vl); break;
		case 55: n->has_ts = vl == 4; break;
		case 80:
			assert_int_equal(vl, 16);
			n->has_ma = true;
			n->ma_first = off == 20;
			ma_off = off + 2;
			break;
		default: break;
		}
		off += l;
	}
	/* Request Authenticator: MD5(code id len 0*16 attrs secret). */
	memcpy(saved_auth, pkt + 4, 16);
	memcpy(buf, pkt, len);
	memset(buf + 4, 0, 16);
	md5(buf, len, (const uint8_t *)SECRET, strlen(SECRET), calc);
	n->auth_ok = memcmp(calc, saved_auth, 16) == 0;
	/* Message-Authenticator: HMAC-MD5 over the packet with a zero
	 * authenticator and a zero Message-Authenticator. */
	if (n->has_ma) {
		memcpy(ma, buf + ma_off, 16);
		memset(buf + ma_off, 0, 16);
		hmac_md5(buf, len, calc);
		n->ma_ok = memcmp(calc, ma, 16) == 0;
	}
}

/* A signed answer: Message-Authenticator over the request's authenticator,
 * then the Response Authenticator. */
static size_t
nas_answer(struct fake_nas *n, uint8_t code, bool with_ma, bool bad, uint8_t *out)
{
	size_t len = 20;
	const char *secret = bad ? "wrong-secret" : SECRET;
	uint8_t mac[16];

	out[0] = code;
	out[1] = (uint8_t)n->last_id;
	size_t ma_off = 0;
	if (with_ma) {
		out[len] = 80;
		out[len + 1] = 18;
		memset(out + len + 2, 0, 16);
		ma_off = len + 2;
		len += 18;
	}
	if (code == 45 || code == 42) {  /* NAK: Error-Cause 503 Session Context Not Found */
		out[len] = 101;
		out[len + 1] = 6;
		out[len + 2] = 0; out[len + 3] = 0; out[len + 4] = 0x01; out[len + 5] = 0xf7;
		len += 6;
	}
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	memcpy(out + 4, n->last_auth, 16);
	if (with_ma) {
		unsigned int ml = 16;
		assert_non_null(HMAC(EVP_md5(), secret, (int)strlen(secret), out, len, mac, &ml));
		memcpy(out + ma_off, mac, 16);
	}
	md5(out, len, (const uint8_t *)secret, strlen(secret), mac);
	memcpy(out + 4, mac, 16);
	return len;
}

static void
nas_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake_nas *n = arg;
	uint8_t pkt[4096], ans[256];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	(void)what;
	ssize_t len = recvfrom(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&from, &flen);
	if (len <= 0)
		return;
	nas_check(n, pkt, (size_t)len);
	bool disc = pkt[0] == 40;
	size_t alen;
	switch (n->mode) {
	case ANSWER_ACK: alen = nas_answer(n, disc ? 41 : 44, true, false, ans); break;
	case ANSWER_NAK: alen = nas_answer(n, disc ? 42 : 45, true, false, ans); break;
	case ANSWER_UNSIGNED: alen = nas_answer(n, disc ? 41 : 44, false, false, ans); break;
	case ANSWER_BADSIG: alen = nas_answer(n, disc ? 41 : 44, true, true, ans); break;
	default: return;
	}
	assert_int_equal(sendto(fd, ans, alen, 0, (struct sockaddr *)&from, flen), (ssize_t)alen);
}

static void
nas_open(struct fixture *f, struct fake_nas *n, const char *addr)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	n->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(n->fd >= 0);
	assert_int_equal(bind(n->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(n->fd, (struct sockaddr *)&sin, &sl), 0);
	n->port = ntohs(sin.sin_port);
	n->ev = event_new(f->base, n->fd, EV_READ | EV_PERSIST, nas_read, n);
	assert_non_null(n->ev);
	assert_int_equal(event_add(n->ev, NULL), 0);
}

/* ---- fixture ---- */

static void
write_file(const char *path, const char *text, int mode)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static void
write_conf(struct fixture *f, const char *extra_nas)
{
	char text[2048];
	assert_true(str_fmt(text, sizeof(text),
	    "nac: {\n  nas = (\n"
	    "    { name = \"sw1\"; address = \"127.0.0.1\"; coa_port = %d; secret_file = \"secret\";\n"
	    "      vendor = \"cisco\"; method = \"coa\"; retries = 2; retry_interval_ms = 100; },\n"
	    "    { name = \"sw2\"; address = \"127.0.0.2\"; coa_port = %d; secret_file = \"secret\";\n"
	    "      method = \"disconnect\"; retries = 1; retry_interval_ms = 100; }%s\n"
	    "  );\n};\n", f->nas[0].port, f->nas[1].port, extra_nas) > 0);
	write_file(f->conf_path, text, 0644);
}

static int
load(struct fixture *f)
{
	char err[1024];
	if (f->srv.cfg != NULL)
		conf_free(f->srv.cfg);
	f->srv.cfg = NULL;
	int rc = conf_load(&f->srv.cfg, f->conf_path, custosd_schema, NULL, 0, err, sizeof(err));
	if (rc < 0)
		fail_msg("config: %s", err);
	return rc;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	str_copy(f->dir, "/tmp/test_coa.XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	str_fmt(f->conf_path, sizeof(f->conf_path), "%s/custosd.conf", f->dir);
	str_fmt(f->secret_path, sizeof(f->secret_path), "%s/secret", f->dir);
	write_file(f->secret_path, SECRET "\n", 0600);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->srv.base = f->base;
	nas_open(f, &f->nas[0], "127.0.0.1");
	nas_open(f, &f->nas[1], "127.0.0.2");
	write_conf(f, "");
	load(f);
	str_copy(f->host.name, "web-1", sizeof(f->host.name));
	str_copy(f->sess.nas_ip, "127.0.0.1", sizeof(f->sess.nas_ip));
	str_copy(f->sess.nas_id, "sw1", sizeof(f->sess.nas_id));
	str_copy(f->sess.calling_station_id, "02-00-00-00-00-01", sizeof(f->sess.calling_station_id));
	str_copy(f->sess.user, "DOMAIN\\web-1$", sizeof(f->sess.user));
	str_copy(f->sess.session_id, "sess-0001", sizeof(f->sess.session_id));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	for (int i = 0; i < 2; i++) {
		event_free(f->nas[i].ev);
		close(f->nas[i].fd);
	}
	conf_free(f->srv.cfg);
	event_base_free(f->base);
	str_fmt(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Runs the loop until nothing is pending or ms pass. */
static void
run_until_idle(struct fixture *f, struct coa *c, int ms)
{
	int64_t end = mono_ms() + ms;
	while (coa_pending(c) > 0 && mono_ms() < end) {
		struct timeval tv = { 0, 20000 };
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
}

static struct coa *
new_coa(struct fixture *f)
{
	char err[512];
	struct coa *c = coa_new(&f->srv, err, sizeof(err));
	if (c == NULL)
		fail_msg("coa_new: %s", err);
	return c;
}

/* ---- tests ---- */

static void
test_cisco_coa_acked(void **state)
{
	struct fixture *f = *state;
	struct coa *c = new_coa(f);
	struct coa_stats st;

	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	assert_int_equal(coa_pending(c), 1);
	run_until_idle(f, c, 3000);
	assert_int_equal(coa_pending(c), 0);

	struct fake_nas *n = &f->nas[0];
	assert_int_equal(n->received, 1);
	assert_int_equal(n->last_code, 43);       /* CoA-Request */
	assert_true(n->auth_ok);
	assert_true(n->has_ma);
	assert_true(n->ma_ok);
	assert_true(n->ma_first);
	assert_true(n->has_ts);
	assert_true(n->reauth);
	assert_false(n->authorize_only);
	assert_string_equal(n->user, "DOMAIN\\web-1$");
	assert_string_equal(n->station, "02-00-00-00-00-01");
	assert_string_equal(n->session, "sess-0001");
	assert_string_equal(n->nas_ip, "127.0.0.1");
	assert_string_equal(n->nas_id, "sw1");
	coa_get_stats(c, &st);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.acks, 1);
	assert_int_equal(st.naks, 0);
	assert_int_equal(st.timeouts, 0);
	coa_free(c);
}

static void
test_disconnect_by_nas_id(void **state)
{
	struct fixture *f = *state;
	struct coa *c = new_coa(f);
	struct coa_stats st;

	/* address unknown, NAS-Identifier names sw2 (method disconnect) */
	str_copy(f->sess.nas_ip, "192.0.2.77", sizeof(f->sess.nas_ip));
	str_copy(f->sess.nas_id, "sw2", sizeof(f->sess.nas_id));
	f->sess.user[0] = '\0';
	coa_host_worsened(c, &f->host, &f->sess, "Checkup", "Quarantine");
	run_until_idle(f, c, 3000);
	struct fake_nas *n = &f->nas[1];
	assert_int_equal(f->nas[0].received, 0);
	assert_int_equal(n->received, 1);
	assert_int_equal(n->last_code, 40);       /* Disconnect-Request */
	assert_true(n->auth_ok);
	assert_true(n->ma_ok);
	assert_false(n->reauth);
	assert_false(n->authorize_only);
	assert_string_equal(n->user, "");         /* empty: not sent */
	assert_string_equal(n->nas_ip, "192.0.2.77");
	assert_string_equal(n->nas_id, "sw2");
	assert_string_equal(n->session, "sess-0001");
	coa_get_stats(c, &st);
	assert_int_equal(st.acks, 1);
	assert_int_equal(st.sent, 1);

	/* no answer at all: 1 + retries (1) sends, then a timeout */
	n->mode = ANSWER_NONE;
	coa_host_worsened(c, &f->host, &f->sess, "Checkup", "Quarantine");
	run_until_idle(f, c, 3000);
	coa_get_stats(c, &st);
	assert_int_equal(n->received, 3);
	assert_int_equal(st.sent, 3);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.acks, 1);
	coa_free(c);
}

static void
test_nak_counted(void **state)
{
	struct fixture *f = *state;
	struct coa *c = new_coa(f);
	struct coa_stats st;

	f->nas[0].mode = ANSWER_NAK;
	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	run_until_idle(f, c, 3000);
	coa_get_stats(c, &st);
	assert_int_equal(st.naks, 1);
	assert_int_equal(st.acks, 0);
	assert_int_equal(f->nas[0].received, 1);
	coa_free(c);
}

static void
test_unsigned_answer_refused(void **state)
{
	struct fixture *f = *state;
	struct coa *c = new_coa(f);
	struct coa_stats st;

	/* BlastRADIUS: an answer without Message-Authenticator is dropped;
	 * the request is retried and times out. */
	f->nas[0].mode = ANSWER_UNSIGNED;
	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	run_until_idle(f, c, 3000);
	coa_get_stats(c, &st);
	assert_int_equal(st.acks, 0);
	assert_int_equal(st.bad_replies, 3);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.sent, 3);
	assert_int_equal(st.retransmits, 2);
	assert_int_equal(f->nas[0].received, 3);
	coa_free(c);
}

static void
test_bad_signature_refused(void **state)
{
	struct fixture *f = *state;
	struct coa *c = new_coa(f);
	struct coa_stats st;

	f->nas[0].mode = ANSWER_BADSIG;
	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	run_until_idle(f, c, 3000);
	coa_get_stats(c, &st);
	assert_int_equal(st.acks, 0);
	assert_int_equal(st.bad_replies, 3);
	assert_int_equal(st.timeouts, 1);
	coa_free(c);
}

static void
test_unsigned_answer_allowed_when_configured(void **state)
{
	struct fixture *f = *state;
	char text[1024];
	str_fmt(text, sizeof(text), "nac: { nas = ( { name = \"sw1\"; address = \"127.0.0.1\"; "
	    "coa_port = %d; secret_file = \"secret\"; require_message_authenticator = false; } ); };\n",
	    f->nas[0].port);
	write_file(f->conf_path, text, 0644);
	load(f);
	struct coa *c = new_coa(f);
	struct coa_stats st;

	f->nas[0].mode = ANSWER_UNSIGNED;
	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Quarantine");
	run_until_idle(f, c, 3000);
	coa_get_stats(c, &st);
	assert_int_equal(st.acks, 1);
	/* a NAS without vendor: RFC 5176 Authorize Only + State */
	assert_true(f->nas[0].authorize_only);
	assert_true(f->nas[0].has_state);
	assert_false(f->nas[0].reauth);
	assert_true(f->nas[0].ma_ok);
	coa_free(c);
}

static void
test_no_session_no_nas(void **state)
{
	struct fixture *f = *state;
	struct coa *c = new_coa(f);
	struct coa_stats st;

	coa_host_worsened(c, &f->host, NULL, "Healthy", "Infected");
	str_copy(f->sess.nas_ip, "192.0.2.1", sizeof(f->sess.nas_ip));
	str_copy(f->sess.nas_id, "elsewhere", sizeof(f->sess.nas_id));
	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	coa_host_worsened(NULL, &f->host, &f->sess, "Healthy", "Infected");
	assert_int_equal(coa_pending(c), 0);
	coa_get_stats(c, &st);
	assert_int_equal(st.no_session, 1);
	assert_int_equal(st.no_nas, 1);
	assert_int_equal(st.requests, 0);
	assert_int_equal(f->nas[0].received, 0);
	coa_free(c);
	coa_free(NULL);
}

static void
test_many_in_flight(void **state)
{
	struct fixture *f = *state;
	struct coa *c = new_coa(f);
	struct coa_stats st;

	/* more than 256 identifiers: the rest wait in the queue */
	for (int i = 0; i < 300; i++)
		coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	assert_int_equal(coa_pending(c), 300);
	run_until_idle(f, c, 5000);
	coa_get_stats(c, &st);
	assert_int_equal(st.acks, 300);
	assert_int_equal(f->nas[0].received, 300);
	coa_free(c);
}

static void
test_secret_permissions(void **state)
{
	struct fixture *f = *state;
	char err[512];

	assert_int_equal(chmod(f->secret_path, 0640), 0);
	assert_null(coa_new(&f->srv, err, sizeof(err)));
	assert_non_null(strstr(err, "chmod 600"));
	assert_non_null(strstr(err, "sw1"));

	assert_int_equal(chmod(f->secret_path, 0604), 0);
	assert_null(coa_new(&f->srv, err, sizeof(err)));

	write_file(f->secret_path, "\n", 0600);
	assert_null(coa_new(&f->srv, err, sizeof(err)));
	assert_non_null(strstr(err, "no secret"));

	assert_int_equal(unlink(f->secret_path), 0);
	assert_null(coa_new(&f->srv, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot open secret file"));
}

static void
test_bad_entries(void **state)
{
	struct fixture *f = *state;
	char err[512];

	write_file(f->conf_path, "nac: { nas = ( { name = \"x\"; address = \"switch.example\"; "
	    "secret_file = \"secret\"; } ); };\n", 0644);
	load(f);
	assert_null(coa_new(&f->srv, err, sizeof(err)));
	assert_non_null(strstr(err, "not an IPv4 or IPv6 address"));

	write_file(f->conf_path, "nac: { nas = ( { name = \"x\"; address = \"10.0.0.1\"; "
	    "secret_file = \"secret\"; method = \"bounce\"; } ); };\n", 0644);
	load(f);
	assert_null(coa_new(&f->srv, err, sizeof(err)));
	assert_non_null(strstr(err, "method must be"));

	/* no secret_file: the NAS is known, but gets no CoA */
	write_file(f->conf_path, "nac: { nas = ( { name = \"sw1\"; address = \"127.0.0.1\"; } ); };\n",
	    0644);
	load(f);
	struct coa *c = new_coa(f);
	struct coa_stats st;
	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	coa_get_stats(c, &st);
	assert_int_equal(st.no_nas, 1);
	assert_int_equal(coa_pending(c), 0);
	coa_free(c);

	/* empty list */
	write_file(f->conf_path, "# nothing\n", 0644);
	load(f);
	c = new_coa(f);
	coa_host_worsened(c, &f->host, &f->sess, "Healthy", "Infected");
	coa_get_stats(c, &st);
	assert_int_equal(st.no_nas, 1);
	coa_free(c);
}

int
main(void)
{
	log_init("test_coa", "stderr", LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cisco_coa_acked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_by_nas_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nak_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsigned_answer_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_signature_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsigned_answer_allowed_when_configured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_session_no_nas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_entries, setup, teardown),
	};
	return cmocka_run_group_tests_name("coa", tests, NULL, NULL);
}
