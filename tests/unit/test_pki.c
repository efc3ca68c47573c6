/* test_pki.c — server PKI, CSR signing, wake-up signatures and the TLS
 * policy (real handshakes over an in-memory BIO pair). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pki.h"
#include "tls.h"
#include "util.h"

#define AGENT_ID "3f2a9c0d5e7b41c8a6d0e9f1b2c3d4e5"

struct fx {
	char root[PATH_MAX];
	struct pki_server main;		/* the server under test */
	struct pki_server other;	/* an unrelated installation */
	char agent_cert[PATH_MAX], agent_key[PATH_MAX];	/* issued by main */
	char rogue_cert[PATH_MAX], rogue_key[PATH_MAX];	/* issued by other */
	char *agent_pem;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
path_in(char *out, size_t outlen, const char *dir, const char *name)
{
	assert_true(str_fmt(out, outlen, "%s/%s", dir, name) > 0);
}

static void
write_file(const char *path, const char *data, int mode)
{
	assert_int_equal(file_write_atomic(path, data, strlen(data), mode), 0);
}

static char *
slurp(const char *path)
{
	char *s = file_read(path, 1 << 20, NULL);
	assert_non_null(s);
	return s;
}

/* Agent enrolment: key + CSR, signed by p, written to cert/key files. */
static char *
enrol(const struct pki_server *p, const char *id, const char *cert_path,
    const char *key_path)
{
	char *key = NULL, *csr = NULL, *cert = NULL, serial[33], err[512];

	assert_int_equal(pki_make_key_and_csr("host.example", &key, &csr, err,
	    sizeof(err)), 0);
	assert_int_equal(pki_sign_csr(p, csr, strlen(csr), id, 30, &cert, serial,
	    err, sizeof(err)), 0);
	write_file(cert_path, cert, 0644);
	write_file(key_path, key, 0600);
	free(key);
	free(csr);
	return cert;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char dir[PATH_MAX], err[512];

	if (f == NULL)
		return -1;
	umask(022);
	str_copy(f->root, "/tmp/custos-pki-XXXXXX", sizeof(f->root));
	if (mkdtemp(f->root) == NULL)
		return -1;
	path_in(dir, sizeof(dir), f->root, "main");
	if (pki_server_init(&f->main, dir, "custos.test", "localhost,127.0.0.1",
	    err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	path_in(dir, sizeof(dir), f->root, "other");
	if (pki_server_init(&f->other, dir, "custos.test", "localhost", err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	path_in(f->agent_cert, sizeof(f->agent_cert), f->root, "agent.pem");
	path_in(f->agent_key, sizeof(f->agent_key), f->root, "agent.key");
	path_in(f->rogue_cert, sizeof(f->rogue_cert), f->root, "rogue.pem");
	path_in(f->rogue_key, sizeof(f->rogue_key), f->root, "rogue.key");
	f->agent_pem = enrol(&f->main, AGENT_ID, f->agent_cert, f->agent_key);
	free(enrol(&f->other, AGENT_ID, f->rogue_cert, f->rogue_key));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	pki_server_free(&f->main);
	pki_server_free(&f->other);
	free(f->agent_pem);
	nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void
assert_mode(const char *dir, const char *name, mode_t want)
{
	char path[PATH_MAX];
	struct stat st;
	path_in(path, sizeof(path), dir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, want);
}

static void
assert_hex64(const char *fp)
{
	assert_int_equal(strlen(fp), 64);
	assert_int_equal(strspn(fp, "0123456789abcdef"), 64);
}

/* True when the certificate's subjectAltName holds a DNS name / IP. */
static int
has_san(X509 *x, int type, const void *val, size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int found = 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		int t;
		ASN1_STRING *s = GENERAL_NAME_get0_value(gn, &t);
		if (t == type && (size_t)ASN1_STRING_length(s) == len &&
		    memcmp(ASN1_STRING_get0_data(s), val, len) == 0)
			found = 1;
	}
	GENERAL_NAMES_free(gens);
	return found;
}

static void
test_server_init_creates_and_reloads(void **state)
{
	struct fx *f = *state;
	struct pki_server p, q;
	char dir[PATH_MAX], path[PATH_MAX], err[512], cn[128];

	path_in(dir, sizeof(dir), f->root, "fresh/state");
	assert_int_equal(pki_server_init(&p, dir, "custos.example",
	    " localhost , 127.0.0.1,::1,custos.example", err, sizeof(err)), 0);
	assert_mode(dir, "ca.key", 0600);
	assert_mode(dir, "server.key", 0600);
	assert_mode(dir, "ca.pem", 0644);
	assert_mode(dir, "server.pem", 0644);
	path_in(path, sizeof(path), dir, "ca.pem");
	assert_string_equal(p.ca_path, path);
	path_in(path, sizeof(path), dir, "server.pem");
	assert_string_equal(p.cert_path, path);
	path_in(path, sizeof(path), dir, "server.key");
	assert_string_equal(p.key_path, path);
	assert_hex64(p.server_fp);
	assert_hex64(p.ca_fp);
	assert_string_not_equal(p.server_fp, p.ca_fp);

	/* CA and server certificate as promised. */
	assert_true(X509_check_ca(p.ca_cert) > 0);
	assert_int_equal(X509_check_ca(p.server_cert), 0);
	assert_int_equal(X509_verify(p.server_cert, X509_get0_pubkey(p.ca_cert)), 1);
	assert_int_equal(X509_check_private_key(p.server_cert, p.server_key), 1);
	assert_true(X509_get_extended_key_usage(p.server_cert) & XKU_SSL_SERVER);
	assert_int_equal(pki_common_name(p.server_cert, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "custos.example");
	assert_true(has_san(p.server_cert, GEN_DNS, "localhost", 9));
	assert_true(has_san(p.server_cert, GEN_DNS, "custos.example", 14));
	assert_true(has_san(p.server_cert, GEN_IPADD, "\x7f\0\0\1", 4));
	assert_true(has_san(p.server_cert, GEN_IPADD,
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16));
	assert_false(has_san(p.server_cert, GEN_DNS, "127.0.0.1", 9));
	assert_true(EVP_PKEY_is_a(p.server_key, "EC"));

	/* Second start: loaded, never regenerated. */
	char *ca_before = slurp(p.ca_path);
	assert_int_equal(pki_server_init(&q, dir, "other.name", "elsewhere", err,
	    sizeof(err)), 0);
	assert_string_equal(q.server_fp, p.server_fp);
	assert_string_equal(q.ca_fp, p.ca_fp);
	char *ca_after = slurp(q.ca_path);
	assert_string_equal(ca_before, ca_after);
	assert_int_equal(EVP_PKEY_eq(p.ca_key, q.ca_key), 1);
	free(ca_before);
	free(ca_after);
	pki_server_free(&p);
	pki_server_free(&q);
	assert_null(q.ca_key);
}

static void
test_server_init_partial_refused(void **state)
{
	struct fx *f = *state;
	struct pki_server p;
	char dir[PATH_MAX], path[PATH_MAX], err[512];

	path_in(dir, sizeof(dir), f->root, "partial");
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "localhost", err,
	    sizeof(err)), 0);
	pki_server_free(&p);
	char ca_path[PATH_MAX];
	path_in(ca_path, sizeof(ca_path), dir, "ca.pem");
	char *ca = slurp(ca_path);
	path_in(path, sizeof(path), dir, "ca.key");
	assert_int_equal(unlink(path), 0);

	err[0] = '\0';
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "localhost", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "ca.key"));
	assert_null(p.ca_cert);
	/* Nothing was regenerated. */
	assert_int_equal(access(path, F_OK), -1);
	char *ca2 = slurp(ca_path);
	assert_string_equal(ca, ca2);
	free(ca);
	free(ca2);

	/* Only the CA: the server pair is missing. */
	path_in(dir, sizeof(dir), f->root, "partial2");
	assert_int_equal(mkdir(dir, 0700), 0);
	path_in(path, sizeof(path), dir, "ca.pem");
	char *pem = slurp(f->main.ca_path);
	write_file(path, pem, 0644);
	free(pem);
	assert_int_equal(pki_server_init(&p, dir, "custos.test", NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "server.key"));
	path_in(path, sizeof(path), dir, "ca.key");
	assert_int_equal(access(path, F_OK), -1);
}

static void
copy_file(const char *from, const char *to, int mode)
{
	char *s = slurp(from);
	write_file(to, s, mode);
	free(s);
}

static void
test_server_init_mismatch_refused(void **state)
{
	struct fx *f = *state;
	struct pki_server p;
	char dir[PATH_MAX], path[PATH_MAX], err[512];

	path_in(dir, sizeof(dir), f->root, "mismatch");
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "localhost", err,
	    sizeof(err)), 0);
	pki_server_free(&p);

	/* A server certificate that does not belong to server.key. */
	path_in(path, sizeof(path), dir, "server.pem");
	copy_file(f->other.cert_path, path, 0644);
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "localhost", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "does not belong"));

	/* A matching server pair, but from another CA. */
	path_in(path, sizeof(path), dir, "server.key");
	copy_file(f->other.key_path, path, 0600);
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "localhost", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "not signed"));

	/* Garbage in a key file. */
	write_file(path, "not a key\n", 0600);
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "localhost", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "server.key"));
}

static void
test_server_init_bad_args(void **state)
{
	struct fx *f = *state;
	struct pki_server p;
	char dir[PATH_MAX], path[PATH_MAX], err[512];
	char longcn[80];

	path_in(dir, sizeof(dir), f->root, "badargs");
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "ok,bad name!",
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad name!"));
	assert_int_equal(pki_server_init(&p, dir, "custos.test", "999.1.1.1", err,
	    sizeof(err)), -1);
	assert_int_equal(pki_server_init(&p, dir, "", "localhost", err,
	    sizeof(err)), -1);
	memset(longcn, 'a', sizeof(longcn) - 1);
	longcn[sizeof(longcn) - 1] = '\0';
	assert_int_equal(pki_server_init(&p, dir, longcn, "localhost", err,
	    sizeof(err)), -1);
	/* Nothing was left behind by the failures. */
	path_in(path, sizeof(path), dir, "ca.key");
	assert_int_equal(access(path, F_OK), -1);
}

static X509 *
cert_of(const char *pem)
{
	char err[256];
	X509 *x = pki_cert_from_pem(pem, strlen(pem), err, sizeof(err));
	assert_non_null(x);
	return x;
}

static int
verify_chain(X509 *ca, X509 *leaf, int purpose)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	assert_non_null(st);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(st, ca), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, NULL), 1);
	assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
	int ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	ERR_clear_error();
	return ok;
}

static void
test_sign_csr_ok(void **state)
{
	struct fx *f = *state;
	char *key = NULL, *csr = NULL, *cert = NULL, *cert2 = NULL;
	char serial[33], serial2[33], err[512], cn[128];

	assert_int_equal(pki_make_key_and_csr("pc-042.corp", &key, &csr, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(key, "PRIVATE KEY"));
	assert_non_null(strstr(csr, "BEGIN CERTIFICATE REQUEST"));
	assert_int_equal(pki_sign_csr(&f->main, csr, strlen(csr), AGENT_ID, 365,
	    &cert, serial, err, sizeof(err)), 0);
	X509 *x = cert_of(cert);

	/* Subject is the host id, not the CSR's hostname. */
	assert_int_equal(pki_common_name(x, cn, sizeof(cn)), 0);
	assert_string_equal(cn, AGENT_ID);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(f->main.ca_cert)), 1);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(f->other.ca_cert)), 0);
	ERR_clear_error();
	assert_int_equal(verify_chain(f->main.ca_cert, x, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(verify_chain(f->other.ca_cert, x, X509_PURPOSE_SSL_CLIENT), 0);
	/* clientAuth only: it cannot pose as a server or a CA. */
	assert_true(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
	assert_false(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(verify_chain(f->main.ca_cert, x, X509_PURPOSE_SSL_SERVER), 0);

	/* The CSR's key, and the serial reported. */
	BIO *b = BIO_new_mem_buf(key, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(k);
	assert_int_equal(X509_check_private_key(x, k), 1);
	EVP_PKEY_free(k);
	assert_int_equal(strlen(serial), 32);
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = BN_bn2hex(bn);
	for (char *c = hex; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c = (char)(*c - 'A' + 'a');
	assert_string_equal(hex, serial);
	assert_int_equal(BN_num_bits(bn), 128);
	assert_false(BN_is_negative(bn));
	OPENSSL_free(hex);
	BN_free(bn);

	/* notBefore back-dated for skew; notAfter = now + days. */
	time_t now = time(NULL);
	time_t t = now - 200;
	assert_true(X509_cmp_time(X509_get0_notBefore(x), &t) < 0);
	t = now - 400;
	assert_true(X509_cmp_time(X509_get0_notBefore(x), &t) > 0);
	int pday, psec;
	assert_int_equal(ASN1_TIME_diff(&pday, &psec, NULL, X509_get0_notAfter(x)), 1);
	assert_true(pday == 365 || (pday == 364 && psec > 86300));

	/* Each issuance gets a new serial. */
	assert_int_equal(pki_sign_csr(&f->main, csr, strlen(csr), AGENT_ID, 1,
	    &cert2, serial2, err, sizeof(err)), 0);
	assert_string_not_equal(serial, serial2);

	X509_free(x);
	free(key);
	free(csr);
	free(cert);
	free(cert2);
}

static void
assert_csr_rejected(const struct fx *f, const char *csr, size_t len,
    const char *why)
{
	char *cert = (char *)"sentinel", serial[33], err[512] = "";
	assert_int_equal(pki_sign_csr(&f->main, csr, len, AGENT_ID, 30, &cert,
	    serial, err, sizeof(err)), -1);
	assert_null(cert);
	assert_true(err[0] != '\0');
	if (why != NULL && strstr(err, why) == NULL)
		fail_msg("expected \"%s\" in: %s", why, err);
	assert_int_equal(ERR_peek_error(), 0);
}

static X509_REQ *
csr_parse(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509_REQ *r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(r);
	return r;
}

static char *
csr_pem(X509_REQ *r)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	assert_int_equal(PEM_write_bio_X509_REQ(b, r), 1);
	long n = BIO_get_mem_data(b, &data);
	char *s = strndup(data, (size_t)n);
	BIO_free(b);
	assert_non_null(s);
	return s;
}

static void
test_sign_csr_tampered(void **state)
{
	struct fx *f = *state;
	char *key = NULL, *csr = NULL, err[512];

	assert_int_equal(pki_make_key_and_csr("pc-1", &key, &csr, err,
	    sizeof(err)), 0);

	/* One base64 character changed in the body. */
	char *body = strchr(csr, '\n') + 1;
	size_t pos = (size_t)(body - csr) + 100;
	char saved = csr[pos];
	csr[pos] = saved == 'A' ? 'B' : 'A';
	assert_csr_rejected(f, csr, strlen(csr), "CSR");
	csr[pos] = saved;
	char *cert = NULL, serial[33];
	assert_int_equal(pki_sign_csr(&f->main, csr, strlen(csr), AGENT_ID, 30,
	    &cert, serial, err, sizeof(err)), 0);
	free(cert);

	/* Forged: another key put into a signed request, not re-signed. */
	X509_REQ *r = csr_parse(csr);
	EVP_PKEY *k2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(k2);
	assert_int_equal(X509_REQ_set_pubkey(r, k2), 1);
	char *forged = csr_pem(r);
	assert_string_not_equal(forged, csr);
	assert_csr_rejected(f, forged, strlen(forged), "signature");
	free(forged);
	X509_REQ_free(r);

	/* Forged: subject changed after signing. */
	r = csr_parse(csr);
	X509_NAME *n = X509_NAME_new();
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"evil", -1, -1, 0), 1);
	assert_int_equal(X509_REQ_set_subject_name(r, n), 1);
	X509_NAME_free(n);
	forged = csr_pem(r);
	assert_csr_rejected(f, forged, strlen(forged), "signature");
	free(forged);
	X509_REQ_free(r);

	/* Last DER byte (inside the signature) flipped. */
	r = csr_parse(csr);
	unsigned char *der = NULL;
	int dlen = i2d_X509_REQ(r, &der);
	assert_true(dlen > 0);
	X509_REQ_free(r);
	der[dlen - 1] ^= 0x01;
	const unsigned char *cp = der;
	r = d2i_X509_REQ(NULL, &cp, dlen);
	assert_non_null(r);
	forged = csr_pem(r);
	assert_csr_rejected(f, forged, strlen(forged), "signature");
	free(forged);
	X509_REQ_free(r);
	OPENSSL_free(der);

	EVP_PKEY_free(k2);
	free(key);
	free(csr);
}

static void
test_sign_csr_garbage(void **state)
{
	struct fx *f = *state;
	char *key = NULL, *csr = NULL, err[512];

	assert_csr_rejected(f, "hello world", 11, "not a PEM");
	assert_csr_rejected(f, "", 0, NULL);
	assert_csr_rejected(f, NULL, 10, NULL);
	/* A certificate is not a request. */
	assert_csr_rejected(f, f->agent_pem, strlen(f->agent_pem), "not a PEM");
	const char *junk = "-----BEGIN CERTIFICATE REQUEST-----\n"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
	    "-----END CERTIFICATE REQUEST-----\n";
	assert_csr_rejected(f, junk, strlen(junk), NULL);

	/* A valid request cut short by the given length. */
	assert_int_equal(pki_make_key_and_csr("pc-2", &key, &csr, err,
	    sizeof(err)), 0);
	assert_csr_rejected(f, csr, strlen(csr) / 2, NULL);
	free(key);
	free(csr);
}

static void
test_sign_csr_oversize(void **state)
{
	struct fx *f = *state;
	char *key = NULL, *csr = NULL, *cert = NULL, serial[33], err[512];

	assert_int_equal(pki_make_key_and_csr("pc-3", &key, &csr, err,
	    sizeof(err)), 0);
	size_t len = strlen(csr);
	char *big = malloc(16 * 1024 + 2);
	assert_non_null(big);
	memcpy(big, csr, len);
	memset(big + len, '\n', 16 * 1024 + 1 - len);
	big[16 * 1024 + 1] = '\0';

	/* Exactly at the limit: accepted; one byte over: refused. */
	assert_int_equal(pki_sign_csr(&f->main, big, 16 * 1024, AGENT_ID, 30,
	    &cert, serial, err, sizeof(err)), 0);
	free(cert);
	assert_csr_rejected(f, big, 16 * 1024 + 1, "16384");
	free(big);
	free(key);
	free(csr);
}

/* A CSR for an arbitrary key, as a foreign agent could send it. */
static char *
csr_for(EVP_PKEY *k)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"pc", -1, -1, 0), 1);
	assert_int_equal(X509_REQ_set_subject_name(r, n), 1);
	assert_int_equal(X509_REQ_set_pubkey(r, k), 1);
	assert_true(X509_REQ_sign(r, k, EVP_sha256()) > 0);
	char *s = csr_pem(r);
	X509_NAME_free(n);
	X509_REQ_free(r);
	return s;
}

static void
test_sign_csr_key_types(void **state)
{
	struct fx *f = *state;
	char *cert = NULL, serial[33], err[512];

	EVP_PKEY *rsa1k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *rsa2k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(rsa1k);
	assert_non_null(rsa2k);
	assert_non_null(p384);
	assert_non_null(ed);

	char *csr = csr_for(rsa1k);
	assert_csr_rejected(f, csr, strlen(csr), "RSA-1024");
	free(csr);
	csr = csr_for(p384);
	assert_csr_rejected(f, csr, strlen(csr), "secp384r1");
	free(csr);
	X509_REQ *r = X509_REQ_new();
	X509_REQ_set_pubkey(r, ed);
	assert_true(X509_REQ_sign(r, ed, NULL) > 0);
	csr = csr_pem(r);
	X509_REQ_free(r);
	assert_csr_rejected(f, csr, strlen(csr), "ED25519");
	free(csr);

	csr = csr_for(rsa2k);
	assert_int_equal(pki_sign_csr(&f->main, csr, strlen(csr), AGENT_ID, 30,
	    &cert, serial, err, sizeof(err)), 0);
	X509 *x = cert_of(cert);
	assert_int_equal(verify_chain(f->main.ca_cert, x, X509_PURPOSE_SSL_CLIENT), 1);
	X509_free(x);
	free(cert);
	free(csr);

	/* Wake-up signatures are EC only: an RSA signature would not fit. */
	uint8_t sig[PKI_SIG_MAX];
	size_t siglen = 0;
	assert_int_equal(pki_sign(rsa2k, (const uint8_t *)"x", 1, sig, &siglen), -1);

	EVP_PKEY_free(rsa1k);
	EVP_PKEY_free(rsa2k);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
}

static void
test_sign_csr_bad_args(void **state)
{
	struct fx *f = *state;
	char *key = NULL, *csr = NULL, *cert = NULL, serial[33], err[512];
	char longcn[70];

	assert_int_equal(pki_make_key_and_csr("pc-4", &key, &csr, err,
	    sizeof(err)), 0);
	size_t len = strlen(csr);
	memset(longcn, 'a', sizeof(longcn) - 1);
	longcn[sizeof(longcn) - 1] = '\0';
	const char *bad_cn[] = { "", longcn, "id\nwith-newline" };
	for (size_t i = 0; i < ARRAY_LEN(bad_cn); i++)
		assert_int_equal(pki_sign_csr(&f->main, csr, len, bad_cn[i], 30,
		    &cert, serial, err, sizeof(err)), -1);
	const int bad_days[] = { 0, -1, 1000000 };
	for (size_t i = 0; i < ARRAY_LEN(bad_days); i++)
		assert_int_equal(pki_sign_csr(&f->main, csr, len, AGENT_ID,
		    bad_days[i], &cert, serial, err, sizeof(err)), -1);
	assert_null(cert);

	/* No CA loaded. */
	struct pki_server empty;
	memset(&empty, 0, sizeof(empty));
	assert_int_equal(pki_sign_csr(&empty, csr, len, AGENT_ID, 30, &cert,
	    serial, err, sizeof(err)), -1);

	/* Agent side refuses an unusable host name. */
	free(key);
	free(csr);
	assert_int_equal(pki_make_key_and_csr("", &key, &csr, err, sizeof(err)), -1);
	assert_null(key);
	assert_null(csr);
}

static void
test_sign_verify(void **state)
{
	struct fx *f = *state;
	uint8_t data[] = "wake:1700000000:nonce-0123456789";
	uint8_t sig[PKI_SIG_MAX];
	size_t siglen = 0;

	assert_int_equal(pki_sign(f->main.server_key, data, sizeof(data), sig,
	    &siglen), 0);
	assert_true(siglen > 0 && siglen <= 72);
	assert_int_equal(pki_verify(f->main.server_cert, data, sizeof(data), sig,
	    siglen), 0);

	/* Modified data, modified or truncated signature, wrong key. */
	data[0] ^= 1;
	assert_int_equal(pki_verify(f->main.server_cert, data, sizeof(data), sig,
	    siglen), -1);
	data[0] ^= 1;
	sig[siglen - 1] ^= 1;
	assert_int_equal(pki_verify(f->main.server_cert, data, sizeof(data), sig,
	    siglen), -1);
	sig[siglen - 1] ^= 1;
	assert_int_equal(pki_verify(f->main.server_cert, data, sizeof(data), sig,
	    siglen - 1), -1);
	assert_int_equal(pki_verify(f->main.server_cert, data, sizeof(data), sig, 0),
	    -1);
	assert_int_equal(pki_verify(f->other.server_cert, data, sizeof(data), sig,
	    siglen), -1);
	assert_int_equal(pki_verify(NULL, data, sizeof(data), sig, siglen), -1);
	assert_int_equal(pki_verify(f->main.server_cert, data, sizeof(data), sig,
	    siglen), 0);
	assert_int_equal(ERR_peek_error(), 0);

	/* Signing with the CA key does not verify against the server cert. */
	assert_int_equal(pki_sign(f->main.ca_key, data, sizeof(data), sig,
	    &siglen), 0);
	assert_int_equal(pki_verify(f->main.server_cert, data, sizeof(data), sig,
	    siglen), -1);
	assert_int_equal(pki_verify(f->main.ca_cert, data, sizeof(data), sig,
	    siglen), 0);
}

static void
test_fingerprint_and_cn(void **state)
{
	struct fx *f = *state;
	char fp[PKI_FP_LEN], fp2[PKI_FP_LEN], hex[PKI_FP_LEN], cn[128], err[256];
	unsigned char md[32], *der = NULL;

	assert_int_equal(pki_fingerprint(f->main.server_cert, fp), 0);
	assert_hex64(fp);
	assert_string_equal(fp, f->main.server_fp);
	/* SHA-256 of the DER encoding, computed independently. */
	int dlen = i2d_X509(f->main.server_cert, &der);
	assert_true(dlen > 0);
	assert_int_equal(EVP_Digest(der, (size_t)dlen, md, NULL, EVP_sha256(),
	    NULL), 1);
	OPENSSL_free(der);
	hex_encode(md, sizeof(md), hex);
	assert_string_equal(fp, hex);

	/* Stable across a PEM round trip and a reload from disk. */
	char *pem = pki_cert_to_pem(f->main.server_cert);
	assert_non_null(pem);
	X509 *x = pki_cert_from_pem(pem, strlen(pem), err, sizeof(err));
	assert_non_null(x);
	assert_int_equal(pki_fingerprint(x, fp2), 0);
	assert_string_equal(fp, fp2);
	X509_free(x);
	free(pem);
	x = pki_load_cert(f->main.cert_path, err, sizeof(err));
	assert_non_null(x);
	assert_int_equal(pki_fingerprint(x, fp2), 0);
	assert_string_equal(fp, fp2);
	X509_free(x);
	assert_int_equal(pki_fingerprint(f->main.ca_cert, fp2), 0);
	assert_string_not_equal(fp, fp2);
	assert_int_equal(pki_fingerprint(NULL, fp2), -1);

	/* CN: too small a buffer is refused, not truncated. */
	assert_int_equal(pki_common_name(f->main.server_cert, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "custos.test");
	assert_int_equal(pki_common_name(f->main.server_cert, cn, 11), -1);
	assert_int_equal(pki_common_name(f->main.server_cert, cn, 12), 0);

	/* Loaders name the file and fail cleanly. */
	assert_null(pki_load_cert("/nonexistent/x.pem", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/x.pem"));
	assert_null(pki_load_key("/nonexistent/x.key", err, sizeof(err)));
	assert_null(pki_load_key(f->main.cert_path, err, sizeof(err)));
	assert_null(pki_cert_from_pem("junk", 4, err, sizeof(err)));
	EVP_PKEY *k = pki_load_key(f->agent_key, err, sizeof(err));
	assert_non_null(k);
	EVP_PKEY_free(k);
	assert_int_equal(ERR_peek_error(), 0);
}

/* Drives both ends of an in-memory TLS connection. Returns 0 when both
 * sides finished the handshake and application data went through. */
static int
handshake(SSL_CTX *sctx, SSL_CTX *cctx, SSL **sp, SSL **cp, int client_max)
{
	SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
	BIO *sb = NULL, *cb = NULL;
	int sdone = 0, cdone = 0, sfail = 0, cfail = 0;

	assert_non_null(s);
	assert_non_null(c);
	assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
	SSL_set_bio(s, sb, sb);
	SSL_set_bio(c, cb, cb);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	if (client_max != 0)
		assert_int_equal(SSL_set_max_proto_version(c, client_max), 1);
	for (int i = 0; i < 50 && !sfail && !cfail && !(sdone && cdone); i++) {
		if (!cdone) {
			int r = SSL_do_handshake(c);
			int e = SSL_get_error(c, r);
			if (r == 1)
				cdone = 1;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				cfail = 1;
		}
		if (!sdone) {
			int r = SSL_do_handshake(s);
			int e = SSL_get_error(s, r);
			if (r == 1)
				sdone = 1;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				sfail = 1;
		}
	}
	*sp = s;
	*cp = c;
	ERR_clear_error();
	if (!(sdone && cdone))
		return -1;
	/* TLS 1.3 verifies the client late: prove the channel works both
	 * ways (the client also reads any session ticket here). */
	char buf[8];
	if (SSL_write(c, "ping", 4) != 4 || SSL_read(s, buf, sizeof(buf)) != 4 ||
	    memcmp(buf, "ping", 4) != 0 || SSL_write(s, "pong", 4) != 4 ||
	    SSL_read(c, buf, sizeof(buf)) != 4 || memcmp(buf, "pong", 4) != 0) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

static SSL_CTX *
server_ctx(const struct fx *f, int require)
{
	char err[512];
	SSL_CTX *ctx = tls_server_ctx(f->main.cert_path, f->main.key_path,
	    f->main.ca_path, require, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("%s", err);
	return ctx;
}

static SSL_CTX *
client_ctx(const char *cert, const char *key, const char *ca)
{
	char err[512];
	SSL_CTX *ctx = tls_client_ctx(cert, key, ca, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("%s", err);
	return ctx;
}

static void
free_conn(SSL *s, SSL *c, SSL_CTX *sctx, SSL_CTX *cctx)
{
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void
test_tls_agent_cert(void **state)
{
	struct fx *f = *state;
	SSL *s, *c;
	char cn[128], fp[65], want[PKI_FP_LEN];
	SSL_CTX *sctx = server_ctx(f, 1);
	SSL_CTX *cctx = client_ctx(f->agent_cert, f->agent_key, NULL);

	assert_int_equal(handshake(sctx, cctx, &s, &c, 0), 0);
	assert_int_equal(SSL_version(s), TLS1_3_VERSION);
	assert_int_equal(tls_peer_cn(s, cn, sizeof(cn)), 0);
	assert_string_equal(cn, AGENT_ID);
	/* Each side sees the other's certificate. */
	assert_int_equal(tls_peer_fingerprint(c, fp), 0);
	assert_string_equal(fp, f->main.server_fp);
	X509 *x = cert_of(f->agent_pem);
	assert_int_equal(pki_fingerprint(x, want), 0);
	X509_free(x);
	assert_int_equal(tls_peer_fingerprint(s, fp), 0);
	assert_string_equal(fp, want);
	/* The client did not verify the server (it pins): no CN from it. */
	assert_int_equal(tls_peer_cn(c, cn, sizeof(cn)), -1);
	/* No session ticket handed out: every connection authenticates. */
	assert_non_null(SSL_get0_session(c));
	assert_int_equal(SSL_SESSION_is_resumable(SSL_get0_session(c)), 0);
	free_conn(s, c, sctx, cctx);

	/* TLS 1.2 is still accepted; TLS 1.1 is not. */
	sctx = server_ctx(f, 1);
	cctx = client_ctx(f->agent_cert, f->agent_key, NULL);
	assert_int_equal(handshake(sctx, cctx, &s, &c, TLS1_2_VERSION), 0);
	assert_int_equal(SSL_version(s), TLS1_2_VERSION);
	assert_int_equal(tls_peer_cn(s, cn, sizeof(cn)), 0);
	assert_string_equal(cn, AGENT_ID);
	free_conn(s, c, sctx, cctx);
	/* A permissive client offering TLS 1.1 at most. */
	sctx = server_ctx(f, 0);
	cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cctx);
	assert_int_equal(SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0"), 1);
	assert_int_equal(SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION), 1);
	assert_int_equal(handshake(sctx, cctx, &s, &c, TLS1_1_VERSION), -1);
	free_conn(s, c, sctx, cctx);
}

static void
test_tls_foreign_cert_refused(void **state)
{
	struct fx *f = *state;
	SSL *s, *c;
	char cn[128];

	/* A certificate from another CA fails, whether or not one is required. */
	for (int require = 0; require <= 1; require++) {
		SSL_CTX *sctx = server_ctx(f, require);
		SSL_CTX *cctx = client_ctx(f->rogue_cert, f->rogue_key, NULL);
		assert_int_equal(handshake(sctx, cctx, &s, &c, 0), -1);
		assert_int_equal(tls_peer_cn(s, cn, sizeof(cn)), -1);
		free_conn(s, c, sctx, cctx);
	}
}

static void
test_tls_no_client_cert(void **state)
{
	struct fx *f = *state;
	SSL *s, *c;
	char cn[128], fp[65];

	/* Enrolment port: allowed in, but anonymous. */
	SSL_CTX *sctx = server_ctx(f, 0);
	SSL_CTX *cctx = client_ctx(NULL, NULL, NULL);
	assert_int_equal(handshake(sctx, cctx, &s, &c, 0), 0);
	assert_int_equal(tls_peer_cn(s, cn, sizeof(cn)), -1);
	assert_int_equal(tls_peer_fingerprint(s, fp), -1);
	free_conn(s, c, sctx, cctx);

	/* Agent port: refused. */
	sctx = server_ctx(f, 1);
	cctx = client_ctx(NULL, NULL, NULL);
	assert_int_equal(handshake(sctx, cctx, &s, &c, 0), -1);
	assert_int_equal(tls_peer_cn(s, cn, sizeof(cn)), -1);
	free_conn(s, c, sctx, cctx);
}

static void
test_tls_client_verifies_ca(void **state)
{
	struct fx *f = *state;
	SSL *s, *c;
	char cn[128];

	SSL_CTX *sctx = server_ctx(f, 0);
	SSL_CTX *cctx = client_ctx(NULL, NULL, f->main.ca_path);
	assert_int_equal(handshake(sctx, cctx, &s, &c, 0), 0);
	assert_int_equal(tls_peer_cn(c, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "custos.test");
	free_conn(s, c, sctx, cctx);

	sctx = server_ctx(f, 0);
	cctx = client_ctx(NULL, NULL, f->other.ca_path);
	assert_int_equal(handshake(sctx, cctx, &s, &c, 0), -1);
	free_conn(s, c, sctx, cctx);
}

static void
test_tls_ctx_errors(void **state)
{
	struct fx *f = *state;
	char err[512], buf[256];

	err[0] = '\0';
	assert_null(tls_server_ctx("/nonexistent/s.pem", f->main.key_path, NULL, 0,
	    err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/s.pem"));
	assert_int_equal(ERR_peek_error(), 0);
	assert_null(tls_server_ctx(f->main.cert_path, f->other.key_path, NULL, 0,
	    err, sizeof(err)));
	if (strstr(err, "does not match") == NULL)
		fail_msg("%s", err);
	assert_null(tls_server_ctx(f->main.cert_path, f->main.key_path,
	    "/nonexistent/ca.pem", 1, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	assert_null(tls_client_ctx(f->agent_cert, NULL, NULL, err, sizeof(err)));
	assert_null(tls_client_ctx(NULL, f->agent_key, NULL, err, sizeof(err)));
	assert_null(tls_client_ctx(f->agent_cert, f->rogue_key, NULL, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "does not match"));
	assert_null(tls_client_ctx(NULL, NULL, "/nonexistent/ca.pem", err,
	    sizeof(err)));

	/* tls_error_string reports and clears the queue. */
	ERR_raise(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
	assert_string_equal(tls_error_string(buf, sizeof(buf)),
	    "certificate verify failed");
	assert_int_equal(ERR_peek_error(), 0);
	assert_string_equal(tls_error_string(buf, sizeof(buf)), "no OpenSSL error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_init_creates_and_reloads),
		cmocka_unit_test(test_server_init_partial_refused),
		cmocka_unit_test(test_server_init_mismatch_refused),
		cmocka_unit_test(test_server_init_bad_args),
		cmocka_unit_test(test_sign_csr_ok),
		cmocka_unit_test(test_sign_csr_tampered),
		cmocka_unit_test(test_sign_csr_garbage),
		cmocka_unit_test(test_sign_csr_oversize),
		cmocka_unit_test(test_sign_csr_key_types),
		cmocka_unit_test(test_sign_csr_bad_args),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_fingerprint_and_cn),
		cmocka_unit_test(test_tls_agent_cert),
		cmocka_unit_test(test_tls_foreign_cert_refused),
		cmocka_unit_test(test_tls_no_client_cert),
		cmocka_unit_test(test_tls_client_verifies_ca),
		cmocka_unit_test(test_tls_ctx_errors),
	};
	return cmocka_run_group_tests_name("pki", tests, setup, teardown);
}
