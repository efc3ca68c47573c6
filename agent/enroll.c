/* enroll.c — first contact with the server: pin its certificate, present
 * the enrolment token and a CSR, store the signed certificate. Blocking (runs
 * before the event loop). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "conf.h"
#include "frame.h"
#include "log.h"
#include "net.h"
#include "pki.h"
#include "tls.h"
#include "util.h"

int
agent_path(const struct agent *a, const char *file, char *out, size_t outlen)
{
	return str_fmt(out, outlen, "%s/%s", a->state_dir, file) < 0 ? -1 : 0;
}

int
agent_parse_server(const char *spec, char *host, size_t hostlen, int *port)
{
	const char *colon;
	*port = AGENT_DEFAULT_PORT;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (end == NULL || (size_t)(end - spec - 1) >= hostlen)
			return -1;
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = '\0';
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strrchr(spec, ':');
		if (colon && strchr(spec, ':') != colon)
			colon = NULL; /* bare IPv6 address */
		size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
		if (n == 0 || n >= hostlen)
			return -1;
		memcpy(host, spec, n);
		host[n] = '\0';
	}
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (*end != '\0' || p < 1 || p > 65535)
			return -1;
		*port = (int)p;
	}
	return 0;
}

/* Sends msg as one frame; takes ownership of msg (as agent_send does). */
static int
ssl_write_frame(SSL *ssl, json_t *msg, size_t max, char *err, size_t errlen)
{
	struct evbuffer *b = evbuffer_new();
	if (msg == NULL || b == NULL)
		str_fmt(err, errlen, "out of memory");
	if (msg == NULL || b == NULL || frame_encode(b, msg, max, err, errlen) < 0) {
		if (b)
			evbuffer_free(b);
		json_decref(msg);
		return -1;
	}
	json_decref(msg);
	size_t len = evbuffer_get_length(b);
	int rc = SSL_write(ssl, evbuffer_pullup(b, -1), (int)len) == (int)len ? 0 : -1;
	evbuffer_free(b);
	if (rc < 0)
		str_fmt(err, errlen, "sending to the server failed");
	return rc;
}

static json_t *
ssl_read_frame(SSL *ssl, size_t max, char *err, size_t errlen)
{
	uint8_t *buf = malloc(max + FRAME_HDR_LEN);
	size_t len = 0;
	json_t *msg = NULL;
	if (buf == NULL)
		return NULL;
	for (;;) {
		size_t used;
		enum frame_rc rc = frame_decode_buf(buf, len, max, &msg, &used, err, errlen);
		if (rc == FRAME_OK)
			break;
		if (rc != FRAME_NEED_MORE) {
			msg = NULL;
			break;
		}
		int n = SSL_read(ssl, buf + len, (int)(max + FRAME_HDR_LEN - len));
		if (n <= 0) {
			str_fmt(err, errlen, "the server closed the connection without an answer");
			break;
		}
		len += (size_t)n;
	}
	free(buf);
	return msg;
}

static int
write_state(struct agent *a, const char *file, const char *text, int mode, char *err, size_t errlen)
{
	char path[4200];
	if (agent_path(a, file, path, sizeof(path)) < 0 ||
	    file_write_atomic(path, text, strlen(text), mode) < 0) {
		str_fmt(err, errlen, "cannot write %s/%s: %s", a->state_dir, file, strerror(errno));
		return -1;
	}
	return 0;
}

static int
store_enrollment(struct agent *a, json_t *reply, const char *key_pem, X509 *server_cert,
    const char *server_spec, char *err, size_t errlen)
{
	const char *uid = json_string_value(json_object_get(reply, "host_id"));
	const char *name = json_string_value(json_object_get(reply, "name"));
	const char *cert = json_string_value(json_object_get(reply, "cert"));
	const char *ca = json_string_value(json_object_get(reply, "ca"));
	if (!uid || strlen(uid) != 32 || !name || !cert || !ca) {
		str_fmt(err, errlen, "the server's enrolment answer is incomplete");
		return -1;
	}
	X509 *mine = pki_cert_from_pem(cert, strlen(cert), err, errlen);
	if (mine == NULL)
		return -1;
	char cn[64];
	int ok = pki_common_name(mine, cn, sizeof(cn)) == 0 && strcmp(cn, uid) == 0;
	X509_free(mine);
	if (!ok) {
		str_fmt(err, errlen, "the certificate from the server is not for host %s", uid);
		return -1;
	}
	char *server_pem = pki_cert_to_pem(server_cert);
	json_t *host = json_pack("{s:s, s:s, s:s}", "host_id", uid, "name", name, "server", server_spec);
	char *host_text = json_dumps(host, JSON_INDENT(2));
	json_decref(host);
	int rc = -1;
	if (server_pem && host_text &&
	    write_state(a, "agent.key", key_pem, 0600, err, errlen) == 0 &&
	    write_state(a, "agent.pem", cert, 0644, err, errlen) == 0 &&
	    write_state(a, "ca.pem", ca, 0644, err, errlen) == 0 &&
	    write_state(a, "server.pem", server_pem, 0644, err, errlen) == 0 &&
	    /* host.json last: its presence means "enrolled" */
	    write_state(a, "host.json", host_text, 0644, err, errlen) == 0)
		rc = 0;
	free(server_pem);
	free(host_text);
	if (rc == 0) {
		str_copy(a->uid, uid, sizeof(a->uid));
		str_copy(a->name, name, sizeof(a->name));
	}
	return rc;
}

int
agent_enroll(struct agent *a, const char *server, const char *token, char *err, size_t errlen)
{
	char host[256], hostname[256];
	int port, fd = -1, rc = -1;
	char *key_pem = NULL, *csr_pem = NULL;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	json_t *reply = NULL;
	int timeout = (int)conf_int(a->cfg, "agent.timeout");
	size_t max = (size_t)conf_int(a->cfg, "agent.max_frame");

	if (agent_parse_server(server, host, sizeof(host), &port) < 0) {
		str_fmt(err, errlen, "--server \"%s\" is not HOST[:PORT]", server);
		return -1;
	}
	const char *hn = conf_str(a->cfg, "agent.hostname");
	if (*hn)
		str_copy(hostname, hn, sizeof(hostname));
	else if (gethostname(hostname, sizeof(hostname)) < 0)
		str_copy(hostname, "host", sizeof(hostname));
	hostname[sizeof(hostname) - 1] = '\0';

	if (pki_make_key_and_csr(hostname, &key_pem, &csr_pem, err, errlen) < 0)
		goto out;
	if ((ctx = tls_client_ctx(NULL, NULL, NULL, err, errlen)) == NULL)
		goto out;
	if ((fd = net_connect(host, port, timeout, err, errlen)) < 0)
		goto out;
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_connect(ssl) != 1) {
		char e[256];
		str_fmt(err, errlen, "TLS with %s:%d failed: %s", host, port, tls_error_string(e, sizeof(e)));
		goto out;
	}
	char fp[65];
	if (tls_peer_fingerprint(ssl, fp) < 0) {
		str_fmt(err, errlen, "the server presented no certificate");
		goto out;
	}
	const char *expect = conf_str(a->cfg, "agent.server_fingerprint");
	if (*expect && strcasecmp(expect, fp) != 0) {
		str_fmt(err, errlen, "server certificate fingerprint %s does not match "
		    "agent.server_fingerprint %s; refusing to enroll (check the server address, or "
		    "print the real one with custosd --fingerprint on the server)", fp, expect);
		goto out;
	}
	if (ssl_write_frame(ssl, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "enroll", "token", token,
	    "csr", csr_pem, "hostname", hostname, "agent_version", AGENT_VERSION), max, err, errlen) < 0)
		goto out;
	if ((reply = ssl_read_frame(ssl, max, err, errlen)) == NULL)
		goto out;
	const char *type = json_string_value(json_object_get(reply, "type"));
	if (type && strcmp(type, "error") == 0) {
		str_fmt(err, errlen, "the server refused enrolment: %s",
		    json_string_value(json_object_get(reply, "message")));
		goto out;
	}
	if (type == NULL || strcmp(type, "enrolled") != 0) {
		str_fmt(err, errlen, "unexpected answer from the server");
		goto out;
	}
	if (mkdir_p(a->state_dir, 0700) < 0) {
		str_fmt(err, errlen, "cannot create %s: %s", a->state_dir, strerror(errno));
		goto out;
	}
	char spec[300];
	str_fmt(spec, sizeof(spec), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	if (store_enrollment(a, reply, key_pem, SSL_get0_peer_certificate(ssl), spec, err, errlen) < 0)
		goto out;
	log_info("enroll", "enrolled as %s (%s); pinned server certificate %s", a->name, a->uid, fp);
	rc = 0;
out:
	json_decref(reply);
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	if (key_pem)
		OPENSSL_cleanse(key_pem, strlen(key_pem));
	free(key_pem);
	free(csr_pem);
	return rc;
}

int
agent_load_identity(struct agent *a, char *err, size_t errlen)
{
	char path[4200];
	if (agent_path(a, "host.json", path, sizeof(path)) < 0)
		return -1;
	json_error_t jerr;
	json_t *h = json_load_file(path, 0, &jerr);
	if (h == NULL) {
		if (access(path, F_OK) != 0)
			return 1;
		str_fmt(err, errlen, "%s: %s (line %d); enroll again", path, jerr.text, jerr.line);
		return -1;
	}
	const char *uid = json_string_value(json_object_get(h, "host_id"));
	const char *name = json_string_value(json_object_get(h, "name"));
	const char *server = json_string_value(json_object_get(h, "server"));
	const char *cfg_server = conf_str(a->cfg, "agent.server");
	if (!uid || strlen(uid) != 32 || !name || !server) {
		json_decref(h);
		str_fmt(err, errlen, "%s is incomplete; enroll again", path);
		return -1;
	}
	str_copy(a->uid, uid, sizeof(a->uid));
	str_copy(a->name, name, sizeof(a->name));
	int prc = agent_parse_server(*cfg_server ? cfg_server : server, a->server_host,
	    sizeof(a->server_host), &a->server_port);
	json_decref(h);
	if (prc < 0) {
		str_fmt(err, errlen, "server address is not HOST[:PORT]");
		return -1;
	}
	if (agent_path(a, "server.pem", path, sizeof(path)) < 0 ||
	    (a->server_cert = pki_load_cert(path, err, errlen)) == NULL)
		return -1;
	pki_fingerprint(a->server_cert, a->pinned_fp);
	const char *expect = conf_str(a->cfg, "agent.server_fingerprint");
	if (*expect && strcasecmp(expect, a->pinned_fp) != 0) {
		str_fmt(err, errlen, "the pinned server certificate %s differs from "
		    "agent.server_fingerprint %s; remove %s/host.json and enroll again",
		    a->pinned_fp, expect, a->state_dir);
		return -1;
	}
	char cert[4200], key[4200];
	if (agent_path(a, "agent.pem", cert, sizeof(cert)) < 0 || agent_path(a, "agent.key", key, sizeof(key)) < 0)
		return -1;
	a->ctx = tls_client_ctx(cert, key, NULL, err, errlen);
	return a->ctx ? 0 : -1;
}
