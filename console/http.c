/* http.c — a minimal blocking HTTPS client for custosctl (one request per
 * connection). The server certificate is verified against the server's CA. */
#include "http.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net.h"
#include "tls.h"
#include "util.h"

#define RESPONSE_MAX (64u * 1024 * 1024)

int
http_parse_url(const char *url, char *host, size_t hostlen, int *port)
{
	const char *p;
	if (strncmp(url, "https://", 8) != 0)
		return -1;
	p = url + 8;
	size_t n = strcspn(p, ":/");
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, p, n);
	host[n] = '\0';
	*port = 13299;
	if (p[n] == ':') {
		char *end;
		long v = strtol(p + n + 1, &end, 10);
		if (v < 1 || v > 65535 || (*end != '\0' && *end != '/'))
			return -1;
		*port = (int)v;
	}
	return 0;
}

int
http_request(const struct http_target *t, const char *method, const char *path, const char *body,
    int *status, char **response, char *err, size_t errlen)
{
	int fd = -1, rc = -1;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char *req = NULL, *buf = NULL;
	*response = NULL;

	if ((ctx = tls_client_ctx(NULL, NULL, t->ca_file, err, errlen)) == NULL)
		return -1;
	if ((fd = net_connect(t->host, t->port, 60, err, errlen)) < 0) {
		size_t n = strlen(err);
		str_fmt(err + n, errlen - n, " (is custosd running? check api.url)");
		goto out;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
		goto out;
	SSL_set_tlsext_host_name(ssl, t->host);
	/* the server certificate carries the API address in its subjectAltName */
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, t->host) != 1)
		X509_VERIFY_PARAM_set1_host(vp, t->host, 0);
	if (SSL_connect(ssl) != 1) {
		char e[256];
		long v = SSL_get_verify_result(ssl);
		str_fmt(err, errlen, "TLS with %s:%d failed: %s%s%s", t->host, t->port,
		    tls_error_string(e, sizeof(e)), v != X509_V_OK ? "; certificate: " : "",
		    v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
		goto out;
	}
	char auth_raw[512], auth[700];
	int an = str_fmt(auth_raw, sizeof(auth_raw), "%s:%s", t->user, t->password);
	if (an < 0) {
		str_fmt(err, errlen, "user name or password too long");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)auth, (const unsigned char *)auth_raw, an);
	size_t blen = body ? strlen(body) : 0;
	if (asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Basic %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    method, path, t->host, t->port, auth, blen, body ? body : "") < 0) {
		req = NULL;
		goto out;
	}
	OPENSSL_cleanse(auth_raw, sizeof(auth_raw));
	if (SSL_write(ssl, req, (int)strlen(req)) <= 0) {
		str_fmt(err, errlen, "sending the request failed");
		goto out;
	}
	size_t cap = 65536, len = 0;
	buf = malloc(cap);
	for (;;) {
		if (buf == NULL)
			goto out;
		if (len + 1 >= cap) {
			if (cap >= RESPONSE_MAX) {
				str_fmt(err, errlen, "response larger than %u bytes", RESPONSE_MAX);
				goto out;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL)
				goto out;
			buf = nb;
			cap *= 2;
		}
		int n = SSL_read(ssl, buf + len, (int)(cap - len - 1));
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	char *sep = strstr(buf, "\r\n\r\n");
	if (sscanf(buf, "HTTP/1.%*d %d", status) != 1 || sep == NULL) {
		str_fmt(err, errlen, "malformed HTTP response");
		goto out;
	}
	*response = strdup(sep + 4);
	rc = *response ? 0 : -1;
out:
	free(req);
	free(buf);
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	return rc;
}
