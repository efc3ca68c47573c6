/* tls.c — see tls.h. */
#include "tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "pki.h"

/* Applies to TLS 1.2 only: forward secrecy and AEAD. The TLS 1.3 suites
 * are all fine and keep their defaults. */
#define TLS12_CIPHERS	"ECDHE+AESGCM:ECDHE+CHACHA20"
#define TLS_SID_CTX	"custos"

const char *
tls_error_string(char *buf, size_t len)
{
	if (pki_openssl_reason(buf, len) == NULL && len > 0)
		snprintf(buf, len, "no OpenSSL error");
	return buf;
}

/* Settings shared by both sides. */
static int
tls_ctx_policy(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1)
		return -1;
	/* IGNORE_UNEXPECTED_EOF: a peer that closes without close_notify has
	 * just gone away; it is not a protocol error worth a warning */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

static int
is_key_mismatch(unsigned long e)
{
	return ERR_GET_LIB(e) == ERR_LIB_X509 &&
	    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
}

static int
tls_load_pair(SSL_CTX *ctx, const char *cert_path, const char *key_path,
    char *err, size_t errlen)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		pki_err(err, errlen, "tls: cannot load certificate %s; check the "
		    "path and that it is a PEM certificate", cert_path);
		return -1;
	}
	int loaded = SSL_CTX_use_PrivateKey_file(ctx, key_path,
	    SSL_FILETYPE_PEM) == 1;
	/* Loading already compares the key with the certificate. */
	int mismatch = loaded ? SSL_CTX_check_private_key(ctx) != 1 :
	    is_key_mismatch(ERR_peek_error()) ||
	    is_key_mismatch(ERR_peek_last_error());
	if (mismatch) {
		pki_err(err, errlen, "tls: private key %s does not match "
		    "certificate %s", key_path, cert_path);
		return -1;
	}
	if (!loaded) {
		pki_err(err, errlen, "tls: cannot load private key %s; check the "
		    "path, its permissions and that it is an unencrypted PEM key",
		    key_path);
		return -1;
	}
	return 0;
}

SSL_CTX *
tls_server_ctx(const char *cert_path, const char *key_path,
    const char *client_ca_path, int require_client_cert, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		pki_err(err, errlen, "tls: cannot create a server context");
		return NULL;
	}
	if (tls_ctx_policy(ctx) < 0) {
		pki_err(err, errlen, "tls: cannot apply the TLS policy");
		goto fail;
	}
	/* Clients are identified by certificate on every connection: no
	 * resumption, no tickets at all (TLS 1.3 would send stateful ones). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SID_CTX,
	    sizeof(TLS_SID_CTX) - 1) != 1) {
		pki_err(err, errlen, "tls: cannot disable session resumption");
		goto fail;
	}
	if (tls_load_pair(ctx, cert_path, key_path, err, errlen) < 0)
		goto fail;
	if (client_ca_path != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, client_ca_path, NULL) != 1) {
			pki_err(err, errlen, "tls: cannot load client CA %s; check "
			    "the path and that it holds PEM certificates",
			    client_ca_path);
			goto fail;
		}
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_path);
		if (names == NULL) {
			pki_err(err, errlen, "tls: no CA names in %s", client_ca_path);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (require_client_cert ?
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx(const char *cert_path, const char *key_path,
    const char *ca_path, char *err, size_t errlen)
{
	if ((cert_path == NULL) != (key_path == NULL)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "tls: client certificate and key must "
			    "be given together (got only the %s)",
			    cert_path != NULL ? "certificate" : "key");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		pki_err(err, errlen, "tls: cannot create a client context");
		return NULL;
	}
	if (tls_ctx_policy(ctx) < 0) {
		pki_err(err, errlen, "tls: cannot apply the TLS policy");
		goto fail;
	}
	if (cert_path != NULL && tls_load_pair(ctx, cert_path, key_path, err,
	    errlen) < 0)
		goto fail;
	if (ca_path != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_path, NULL) != 1) {
			pki_err(err, errlen, "tls: cannot load server CA %s; check "
			    "the path and that it holds PEM certificates", ca_path);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);	/* pinned by caller */
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_peer_fingerprint(SSL *ssl, char fp[65])
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (cert == NULL)
		return -1;
	return pki_fingerprint(cert, fp);
}

int
tls_peer_cn(SSL *ssl, char *out, size_t outlen)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	return pki_common_name(cert, out, outlen);
}
