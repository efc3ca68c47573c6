/* tls.h — SSL_CTX construction with the project's TLS policy.
 *
 * Policy: TLS 1.3 preferred, TLS 1.2 minimum, no compression, no
 * renegotiation, session tickets off on the agent port (clients are
 * identified by certificate each time), SSL_MODE_RELEASE_BUFFERS to keep idle
 * connections small. Returns NULL and fills err on failure. */
#ifndef CUSTOS_TLS_H
#define CUSTOS_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* Server context with cert/key. When client_ca_path is non-NULL, the server
 * asks for a client certificate and verifies it against that CA; when
 * require_client_cert is 0, a client may also connect without one (enrolment)
 * — but a client certificate that does not verify fails the handshake. */
SSL_CTX *tls_server_ctx(const char *cert_path, const char *key_path,
    const char *client_ca_path, int require_client_cert, char *err, size_t errlen);

/* Client context. cert/key may be NULL (enrolment). Peer verification is not
 * done by OpenSSL: the caller pins the server certificate by fingerprint
 * (tls_peer_fingerprint) or verifies against ca_path when given. */
SSL_CTX *tls_client_ctx(const char *cert_path, const char *key_path,
    const char *ca_path, char *err, size_t errlen);

/* SHA-256 fingerprint (64 hex) of the peer's certificate; -1 if none. */
int tls_peer_fingerprint(SSL *ssl, char fp[65]);
/* CN of the verified peer certificate; -1 if none. */
int tls_peer_cn(SSL *ssl, char *out, size_t outlen);
/* Last OpenSSL error as text into buf (clears the queue). */
const char *tls_error_string(char *buf, size_t len);

#endif
