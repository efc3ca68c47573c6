/* pki.h — the keys and certificates of Custos (OpenSSL 3).
 *
 * Key type everywhere: EC P-256 (fast handshakes, small certificates).
 * Library-style: every function returns 0 / -1 and fills err (errlen bytes)
 * with a message that names the object and what to do; callers log.
 * Thread-safe (no shared state). */
#ifndef CUSTOS_PKI_H
#define CUSTOS_PKI_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* OpenSSL's first queued error reason into buf (NULL when none queued);
 * clears the queue either way. */
const char *pki_openssl_reason(char *buf, size_t len);
/* err = the formatted message + " (OpenSSL's reason)" when one is queued;
 * clears OpenSSL's queue. */
void pki_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* SHA-256 of the DER certificate, as 64 lower-case hex chars + NUL. */
#define PKI_FP_LEN 65

/* Server PKI in state_dir: ca.key, ca.pem, server.key, server.pem (keys 0600).
 * Created on first call, loaded afterwards, never regenerated. The server
 * certificate is signed by the CA, CN=common_name, with subjectAltNames for
 * every comma-separated entry of san ("localhost,127.0.0.1,custos.example"):
 * IP addresses become iPAddress, the rest dNSName. Validity: CA 20 years,
 * server 10 years. */
struct pki_server {
	EVP_PKEY *ca_key;
	X509 *ca_cert;
	EVP_PKEY *server_key;
	X509 *server_cert;
	char ca_path[4096];     /* state_dir/ca.pem */
	char cert_path[4096];   /* state_dir/server.pem */
	char key_path[4096];    /* state_dir/server.key */
	char server_fp[PKI_FP_LEN];
	char ca_fp[PKI_FP_LEN];
};
int pki_server_init(struct pki_server *p, const char *state_dir, const char *common_name,
    const char *san, char *err, size_t errlen);
void pki_server_free(struct pki_server *p);

/* Signs a PEM CSR (its signature is verified first) for an agent: the issued
 * certificate has subject CN=cn (the host id, not the CSR's subject), a random
 * 128-bit serial, clientAuth extended key usage, the CSR's public key, and is
 * valid for `days` days. Returns a malloc'd PEM string in *cert_pem and the
 * serial as hex in serial_hex (at least 33 bytes). Rejects CSRs over 16 KiB,
 * with a bad signature, or with a key that is not EC P-256 / RSA >= 2048. */
int pki_sign_csr(const struct pki_server *p, const char *csr_pem, size_t csr_len,
    const char *cn, int days, char **cert_pem, char *serial_hex, char *err, size_t errlen);

/* Agent side: generates an EC P-256 key and a CSR (CN=hostname). Returns
 * malloc'd PEM strings. */
int pki_make_key_and_csr(const char *hostname, char **key_pem, char **csr_pem,
    char *err, size_t errlen);

/* SHA-256 fingerprint of a certificate (hex, no colons). */
int pki_fingerprint(X509 *cert, char fp[PKI_FP_LEN]);
/* The CN of a certificate's subject into out; -1 when absent or too long. */
int pki_common_name(X509 *cert, char *out, size_t outlen);

/* PEM helpers: load a certificate or key from a file / from memory. NULL on
 * error (err filled). */
X509 *pki_load_cert(const char *path, char *err, size_t errlen);
X509 *pki_cert_from_pem(const char *pem, size_t len, char *err, size_t errlen);
EVP_PKEY *pki_load_key(const char *path, char *err, size_t errlen);
/* Certificate to malloc'd PEM string. */
char *pki_cert_to_pem(X509 *cert);

/* Detached signatures for the UDP wake-up: ECDSA/SHA-256 (DER) over data.
 * sig must hold at least PKI_SIG_MAX bytes; *siglen receives the length. */
#define PKI_SIG_MAX 80
int pki_sign(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t *sig, size_t *siglen);
/* Verifies with the public key of cert. 0 = valid, -1 = invalid or error. */
int pki_verify(X509 *cert, const uint8_t *data, size_t len, const uint8_t *sig, size_t siglen);

#endif
