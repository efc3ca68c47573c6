/* pki.c — see pki.h. */
#include "pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "util.h"

#define PKI_CSR_MAX	(16 * 1024)
#define PKI_PEM_MAX	(64 * 1024)	/* a cert or key file on disk */
#define PKI_CN_MAX	64		/* ub-common-name, RFC 5280 */
#define PKI_SAN_MAX	64		/* entries in subjectAltName */
#define PKI_DAYS_MAX	36500
#define PKI_SKEW_S	300		/* notBefore backdating for clock skew */
#define PKI_CA_DAYS	7305		/* 20 years */
#define PKI_SRV_DAYS	3653		/* 10 years */
#define PKI_RSA_MIN	2048
#define PKI_RSA_MAX	8192		/* bounds the cost of verifying a CSR */

struct ext_def {
	int nid;
	const char *value;
};

static const struct ext_def ca_exts[] = {
	{ NID_basic_constraints, "critical,CA:TRUE" },
	{ NID_key_usage, "critical,keyCertSign,cRLSign" },
	{ NID_subject_key_identifier, "hash" },
};

static const struct ext_def server_exts[] = {
	{ NID_basic_constraints, "critical,CA:FALSE" },
	{ NID_key_usage, "critical,digitalSignature" },
	{ NID_ext_key_usage, "serverAuth" },
	{ NID_subject_key_identifier, "hash" },
	{ NID_authority_key_identifier, "keyid:always" },
};

static const struct ext_def agent_exts[] = {
	{ NID_basic_constraints, "critical,CA:FALSE" },
	{ NID_key_usage, "critical,digitalSignature" },
	{ NID_ext_key_usage, "clientAuth" },
	{ NID_subject_key_identifier, "hash" },
	{ NID_authority_key_identifier, "keyid:always" },
};

/* Formats err and appends the root-cause OpenSSL error, then clears the
 * thread's error queue so later calls start clean. */
const char *
pki_openssl_reason(char *buf, size_t len)
{
	/* The first queued error is the root cause; later ones only say which
	 * caller gave up. */
	unsigned long e = ERR_peek_error();
	const char *r = NULL;

	if (e != 0 && len > 0) {
		const char *reason = ERR_reason_error_string(e);
		if (reason != NULL)
			snprintf(buf, len, "%s", reason);
		else
			ERR_error_string_n(e, buf, len);
		r = buf;
	}
	ERR_clear_error();
	return r;
}

void
pki_err(char *err, size_t errlen, const char *fmt, ...)
{
	char reason[256];
	const char *r = pki_openssl_reason(reason, sizeof(reason));

	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (r != NULL && n >= 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, " (%s)", r);
}

/* Never prompt on the terminal for an encrypted key: fail instead. */
static int
no_password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Contents of a memory BIO as a malloc'd NUL-terminated string. */
static char *
bio_to_str(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	if (n < 0)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

static void
free_secret(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static char *
key_to_pem(EVP_PKEY *key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;
	if (b == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1)
		s = bio_to_str(b);
	BIO_free(b);	/* BIO_s_mem clears its buffer on free */
	return s;
}

char *
pki_cert_to_pem(X509 *cert)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;
	if (b == NULL)
		return NULL;
	if (PEM_write_bio_X509(b, cert) == 1)
		s = bio_to_str(b);
	BIO_free(b);
	return s;
}

static EVP_PKEY *
ec_keygen(char *err, size_t errlen)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (k == NULL)
		pki_err(err, errlen, "pki: cannot generate an EC P-256 key");
	return k;
}

static int
cn_valid(const char *cn)
{
	size_t len = strnlen(cn, PKI_CN_MAX + 1);
	if (len == 0 || len > PKI_CN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)cn[i] < 0x20 || (unsigned char)cn[i] > 0x7e)
			return 0;
	return 1;
}

static X509_NAME *
name_cn(const char *cn)
{
	X509_NAME *n = X509_NAME_new();
	if (n == NULL)
		return NULL;
	if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

/* 128 random bits with the top bit set, so the hex is always 32 digits and
 * equals the integer in the certificate. */
static ASN1_INTEGER *
random_serial(char serial_hex[33])
{
	uint8_t b[16];
	if (random_bytes(b, sizeof(b)) < 0)
		return NULL;
	b[0] |= 0x80;
	BIGNUM *bn = BN_bin2bn(b, (int)sizeof(b), NULL);
	if (bn == NULL)
		return NULL;
	ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	if (ai != NULL && serial_hex != NULL)
		hex_encode(b, sizeof(b), serial_hex);
	return ai;
}

static int
add_exts(X509 *x, X509 *issuer, const struct ext_def *defs, size_t n)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &ctx, defs[i].nid,
		    defs[i].value);
		if (e == NULL)
			return -1;
		int ok = X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
		if (ok != 1)
			return -1;
	}
	return 0;
}

/* Builds and signs a certificate for pubkey. issuer NULL = self-signed. */
static X509 *
cert_build(EVP_PKEY *pubkey, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
    int days, const struct ext_def *defs, size_t ndefs, GENERAL_NAMES *san,
    char serial_hex[33], char *err, size_t errlen)
{
	X509 *x = X509_new();
	X509_NAME *subj = name_cn(cn);
	ASN1_INTEGER *serial = random_serial(serial_hex);

	if (x == NULL || subj == NULL || serial == NULL)
		goto fail;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_serialNumber(x, serial) != 1 ||
	    X509_set_subject_name(x, subj) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : subj) != 1 ||
	    X509_set_pubkey(x, pubkey) != 1)
		goto fail;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -PKI_SKEW_S) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL)
		goto fail;
	if (add_exts(x, issuer != NULL ? issuer : x, defs, ndefs) < 0)
		goto fail;
	if (san != NULL && X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0,
	    X509V3_ADD_DEFAULT) != 1)
		goto fail;
	if (X509_sign(x, issuer_key, EVP_sha256()) <= 0)
		goto fail;
	X509_NAME_free(subj);
	ASN1_INTEGER_free(serial);
	return x;
fail:
	pki_err(err, errlen, "pki: cannot build the certificate for \"%s\"", cn);
	X509_free(x);
	X509_NAME_free(subj);
	ASN1_INTEGER_free(serial);
	return NULL;
}

static int
dns_name_valid(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '*'))
			return 0;
	}
	return 1;
}

static int
san_push(GENERAL_NAMES *gens, const char *entry)
{
	unsigned char ip[16];
	int iplen = 0;
	GENERAL_NAME *gn = GENERAL_NAME_new();
	if (gn == NULL)
		return -1;
	if (inet_pton(AF_INET, entry, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, entry, ip) == 1)
		iplen = 16;
	if (iplen > 0) {
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		if (os == NULL || ASN1_OCTET_STRING_set(os, ip, iplen) != 1) {
			ASN1_OCTET_STRING_free(os);
			goto fail;
		}
		GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
	} else {
		ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
		if (ia5 == NULL || ASN1_STRING_set(ia5, entry, -1) != 1) {
			ASN1_IA5STRING_free(ia5);
			goto fail;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	}
	if (sk_GENERAL_NAME_push(gens, gn) <= 0)
		goto fail;
	return 0;
fail:
	GENERAL_NAME_free(gn);
	return -1;
}

/* "localhost, 127.0.0.1,::1" -> subjectAltName; when san lists nothing the
 * CN is used so that name-checking clients still match. */
static GENERAL_NAMES *
san_parse(const char *san, const char *cn, char *err, size_t errlen)
{
	char buf[4096], *save = NULL;
	int count = 0;

	if (san == NULL)
		san = "";
	if (str_copy(buf, san, sizeof(buf)) >= sizeof(buf)) {
		pki_err(err, errlen, "pki: subjectAltName list is longer than %zu "
		    "bytes; shorten server.san", sizeof(buf) - 1);
		return NULL;
	}
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	if (gens == NULL) {
		pki_err(err, errlen, "pki: out of memory");
		return NULL;
	}
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t len = strlen(tok);
		while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			tok[--len] = '\0';
		if (len == 0)
			continue;
		int is_ip = strchr(tok, ':') != NULL ||
		    strspn(tok, "0123456789.") == len;
		unsigned char tmp[16];
		if (is_ip && inet_pton(AF_INET, tok, tmp) != 1 &&
		    inet_pton(AF_INET6, tok, tmp) != 1) {
			pki_err(err, errlen, "pki: subjectAltName entry \"%s\" is "
			    "not a valid IP address; fix server.san", tok);
			goto fail;
		}
		if (!is_ip && !dns_name_valid(tok)) {
			pki_err(err, errlen, "pki: subjectAltName entry \"%s\" is "
			    "not a valid DNS name; fix server.san", tok);
			goto fail;
		}
		if (++count > PKI_SAN_MAX) {
			pki_err(err, errlen, "pki: more than %d subjectAltName "
			    "entries; shorten server.san", PKI_SAN_MAX);
			goto fail;
		}
		if (san_push(gens, tok) < 0) {
			pki_err(err, errlen, "pki: out of memory");
			goto fail;
		}
	}
	if (count == 0 && san_push(gens, cn) < 0) {
		pki_err(err, errlen, "pki: out of memory");
		goto fail;
	}
	return gens;
fail:
	GENERAL_NAMES_free(gens);
	return NULL;
}

int
pki_fingerprint(X509 *cert, char fp[PKI_FP_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (cert == NULL || X509_digest(cert, EVP_sha256(), md, &n) != 1 ||
	    n != 32) {
		ERR_clear_error();
		return -1;
	}
	hex_encode(md, n, fp);
	return 0;
}

int
pki_common_name(X509 *cert, char *out, size_t outlen)
{
	if (cert == NULL || outlen == 0)
		return -1;
	X509_NAME *name = X509_get_subject_name(cert);
	int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0)
		return -1;
	/* A second CN would make the identity ambiguous. */
	if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
		return -1;
	ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	unsigned char *utf8 = NULL;
	int len = ASN1_STRING_to_UTF8(&utf8, data);
	if (len < 0) {
		ERR_clear_error();
		return -1;
	}
	int rc = -1;
	if ((size_t)len < outlen && memchr(utf8, '\0', (size_t)len) == NULL) {
		memcpy(out, utf8, (size_t)len);
		out[len] = '\0';
		rc = 0;
	}
	OPENSSL_free(utf8);
	return rc;
}

X509 *
pki_cert_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	if (pem == NULL || len == 0 || len > PKI_PEM_MAX) {
		pki_err(err, errlen, "pki: certificate PEM is empty or larger "
		    "than %d bytes", PKI_PEM_MAX);
		return NULL;
	}
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL) {
		pki_err(err, errlen, "pki: out of memory");
		return NULL;
	}
	X509 *x = PEM_read_bio_X509(b, NULL, no_password_cb, NULL);
	BIO_free(b);
	if (x == NULL)
		pki_err(err, errlen, "pki: not a PEM certificate");
	return x;
}

X509 *
pki_load_cert(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *pem = file_read(path, PKI_PEM_MAX, &len);
	if (pem == NULL) {
		pki_err(err, errlen, "pki: cannot read certificate %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	X509 *x = pki_cert_from_pem(pem, len, err, errlen);
	free(pem);
	if (x == NULL)
		pki_err(err, errlen, "pki: %s is not a PEM certificate; restore it "
		    "from backup", path);
	return x;
}

EVP_PKEY *
pki_load_key(const char *path, char *err, size_t errlen)
{
	size_t len;
	char *pem = file_read(path, PKI_PEM_MAX, &len);
	if (pem == NULL) {
		pki_err(err, errlen, "pki: cannot read private key %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	EVP_PKEY *k = NULL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (b != NULL) {
		k = PEM_read_bio_PrivateKey(b, NULL, no_password_cb, NULL);
		BIO_free(b);
	}
	free_secret(pem);
	if (k == NULL)
		pki_err(err, errlen, "pki: %s is not an unencrypted PEM private "
		    "key; restore it from backup", path);
	return k;
}

void
pki_server_free(struct pki_server *p)
{
	if (p == NULL)
		return;
	EVP_PKEY_free(p->ca_key);
	X509_free(p->ca_cert);
	EVP_PKEY_free(p->server_key);
	X509_free(p->server_cert);
	memset(p, 0, sizeof(*p));
}

enum { F_CA_KEY, F_CA_PEM, F_SRV_KEY, F_SRV_PEM, F_COUNT };
static const char *const pki_files[F_COUNT] = {
	"ca.key", "ca.pem", "server.key", "server.pem"
};

/* Writes PEM files in order; on failure removes the ones written here so
 * the directory is back to empty and the next start can try again. */
static int
pki_write_all(char paths[F_COUNT][4096], char *pem[F_COUNT], char *err,
    size_t errlen)
{
	for (int i = 0; i < F_COUNT; i++) {
		int mode = (i == F_CA_KEY || i == F_SRV_KEY) ? 0600 : 0644;
		if (file_write_atomic(paths[i], pem[i], strlen(pem[i]), mode) < 0) {
			int saved = errno;
			for (int j = 0; j <= i; j++)
				unlink(paths[j]);
			pki_err(err, errlen, "pki: cannot write %s: %s; check the "
			    "state directory's permissions and free space",
			    paths[i], strerror(saved));
			return -1;
		}
	}
	return 0;
}

static int
pki_generate(struct pki_server *p, char paths[F_COUNT][4096], const char *cn,
    const char *san, char *err, size_t errlen)
{
	char ca_cn[PKI_CN_MAX + 1], rnd[33];
	char *pem[F_COUNT] = { NULL };
	GENERAL_NAMES *gens = NULL;
	int rc = -1;

	/* A unique CA name keeps two installations' CAs apart in any store. */
	if (random_id(rnd) < 0 ||
	    str_fmt(ca_cn, sizeof(ca_cn), "Custos CA %.16s", rnd) < 0) {
		pki_err(err, errlen, "pki: no randomness available");
		return -1;
	}
	if ((gens = san_parse(san, cn, err, errlen)) == NULL)
		return -1;
	if ((p->ca_key = ec_keygen(err, errlen)) == NULL ||
	    (p->server_key = ec_keygen(err, errlen)) == NULL)
		goto out;
	p->ca_cert = cert_build(p->ca_key, ca_cn, NULL, p->ca_key, PKI_CA_DAYS,
	    ca_exts, ARRAY_LEN(ca_exts), NULL, NULL, err, errlen);
	if (p->ca_cert == NULL)
		goto out;
	p->server_cert = cert_build(p->server_key, cn, p->ca_cert, p->ca_key,
	    PKI_SRV_DAYS, server_exts, ARRAY_LEN(server_exts), gens, NULL, err,
	    errlen);
	if (p->server_cert == NULL)
		goto out;
	pem[F_CA_KEY] = key_to_pem(p->ca_key);
	pem[F_CA_PEM] = pki_cert_to_pem(p->ca_cert);
	pem[F_SRV_KEY] = key_to_pem(p->server_key);
	pem[F_SRV_PEM] = pki_cert_to_pem(p->server_cert);
	for (int i = 0; i < F_COUNT; i++)
		if (pem[i] == NULL) {
			pki_err(err, errlen, "pki: cannot encode %s", pki_files[i]);
			goto out;
		}
	rc = pki_write_all(paths, pem, err, errlen);
out:
	for (int i = 0; i < F_COUNT; i++)
		free_secret(pem[i]);
	GENERAL_NAMES_free(gens);
	return rc;
}

static int
pki_load_all(struct pki_server *p, char paths[F_COUNT][4096], char *err,
    size_t errlen)
{
	if ((p->ca_key = pki_load_key(paths[F_CA_KEY], err, errlen)) == NULL ||
	    (p->ca_cert = pki_load_cert(paths[F_CA_PEM], err, errlen)) == NULL ||
	    (p->server_key = pki_load_key(paths[F_SRV_KEY], err, errlen)) == NULL ||
	    (p->server_cert = pki_load_cert(paths[F_SRV_PEM], err, errlen)) == NULL)
		return -1;
	if (X509_check_private_key(p->ca_cert, p->ca_key) != 1) {
		pki_err(err, errlen, "pki: %s does not belong to %s; restore the "
		    "matching pair from backup", paths[F_CA_KEY], paths[F_CA_PEM]);
		return -1;
	}
	if (X509_check_private_key(p->server_cert, p->server_key) != 1) {
		pki_err(err, errlen, "pki: %s does not belong to %s; restore the "
		    "matching pair from backup", paths[F_SRV_KEY], paths[F_SRV_PEM]);
		return -1;
	}
	if (X509_check_issued(p->ca_cert, p->server_cert) != X509_V_OK ||
	    X509_verify(p->server_cert, X509_get0_pubkey(p->ca_cert)) != 1) {
		pki_err(err, errlen, "pki: %s is not signed by %s; restore the "
		    "state directory from one backup", paths[F_SRV_PEM],
		    paths[F_CA_PEM]);
		return -1;
	}
	return 0;
}

int
pki_server_init(struct pki_server *p, const char *state_dir, const char *common_name,
    const char *san, char *err, size_t errlen)
{
	char paths[F_COUNT][4096];
	int exists[F_COUNT], nexist = 0;

	memset(p, 0, sizeof(*p));
	if (state_dir == NULL || state_dir[0] == '\0') {
		pki_err(err, errlen, "pki: no state directory given; set "
		    "server.state_dir");
		return -1;
	}
	if (common_name == NULL || !cn_valid(common_name)) {
		pki_err(err, errlen, "pki: server common name must be 1-%d "
		    "printable ASCII characters; fix server.common_name", PKI_CN_MAX);
		return -1;
	}
	for (int i = 0; i < F_COUNT; i++) {
		struct stat st;
		if (str_fmt(paths[i], sizeof(paths[i]), "%s/%s", state_dir,
		    pki_files[i]) < 0) {
			pki_err(err, errlen, "pki: state directory path %s is too "
			    "long", state_dir);
			return -1;
		}
		if (stat(paths[i], &st) == 0)
			exists[i] = 1;
		else if (errno == ENOENT)
			exists[i] = 0;
		else {
			pki_err(err, errlen, "pki: cannot access %s: %s", paths[i],
			    strerror(errno));
			return -1;
		}
		nexist += exists[i];
	}
	if (nexist > 0 && nexist < F_COUNT) {
		char missing[64] = "";
		size_t off = 0;
		for (int i = 0; i < F_COUNT; i++) {
			if (exists[i])
				continue;
			int n = snprintf(missing + off, sizeof(missing) - off, "%s%s",
			    off > 0 ? ", " : "", pki_files[i]);
			if (n > 0 && (size_t)n < sizeof(missing) - off)
				off += (size_t)n;
		}
		pki_err(err, errlen, "pki: %s holds only part of the server PKI "
		    "(missing %s); refusing to create a new CA over it: restore the "
		    "missing files from backup, or move all of ca.key, ca.pem, "
		    "server.key, server.pem away to start over (every agent must "
		    "then enrol again)", state_dir, missing);
		return -1;
	}
	int rc;
	if (nexist == 0) {
		if (mkdir_p(state_dir, 0700) < 0) {
			pki_err(err, errlen, "pki: cannot create state directory %s: %s",
			    state_dir, strerror(errno));
			return -1;
		}
		rc = pki_generate(p, paths, common_name, san, err, errlen);
	} else
		rc = pki_load_all(p, paths, err, errlen);
	if (rc == 0 && (str_copy(p->ca_path, paths[F_CA_PEM], sizeof(p->ca_path)) >=
	    sizeof(p->ca_path) ||
	    str_copy(p->cert_path, paths[F_SRV_PEM], sizeof(p->cert_path)) >=
	    sizeof(p->cert_path) ||
	    str_copy(p->key_path, paths[F_SRV_KEY], sizeof(p->key_path)) >=
	    sizeof(p->key_path))) {
		pki_err(err, errlen, "pki: state directory path %s is too long",
		    state_dir);
		rc = -1;
	}
	if (rc == 0 && (pki_fingerprint(p->server_cert, p->server_fp) < 0 ||
	    pki_fingerprint(p->ca_cert, p->ca_fp) < 0)) {
		pki_err(err, errlen, "pki: cannot compute certificate fingerprints");
		rc = -1;
	}
	if (rc < 0)
		pki_server_free(p);
	return rc;
}

/* Only EC P-256 and RSA 2048..8192 are accepted for agent keys. */
static int
csr_key_ok(EVP_PKEY *k, char *why, size_t whylen)
{
	if (EVP_PKEY_is_a(k, "EC")) {
		char group[64];
		size_t glen = 0;
		if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME,
		    group, sizeof(group), &glen) != 1) {
			str_copy(why, "EC key without a named curve", whylen);
			return 0;
		}
		if (OBJ_txt2nid(group) != NID_X9_62_prime256v1) {
			snprintf(why, whylen, "EC curve %s (only P-256 is accepted)",
			    group);
			return 0;
		}
		return 1;
	}
	if (EVP_PKEY_is_a(k, "RSA")) {
		int bits = EVP_PKEY_get_bits(k);
		if (bits < PKI_RSA_MIN || bits > PKI_RSA_MAX) {
			snprintf(why, whylen, "RSA-%d key (%d to %d bits accepted)",
			    bits, PKI_RSA_MIN, PKI_RSA_MAX);
			return 0;
		}
		return 1;
	}
	snprintf(why, whylen, "%s key (EC P-256 or RSA >= %d expected)",
	    EVP_PKEY_get0_type_name(k) != NULL ? EVP_PKEY_get0_type_name(k) :
	    "unknown", PKI_RSA_MIN);
	return 0;
}

int
pki_sign_csr(const struct pki_server *p, const char *csr_pem, size_t csr_len,
    const char *cn, int days, char **cert_pem, char *serial_hex, char *err, size_t errlen)
{
	X509_REQ *req = NULL;
	X509 *x = NULL;
	char why[128];
	int rc = -1;

	*cert_pem = NULL;
	if (p->ca_cert == NULL || p->ca_key == NULL) {
		pki_err(err, errlen, "pki: CA is not loaded");
		return -1;
	}
	if (cn == NULL || !cn_valid(cn)) {
		pki_err(err, errlen, "pki: certificate name must be 1-%d printable "
		    "ASCII characters", PKI_CN_MAX);
		return -1;
	}
	if (days < 1 || days > PKI_DAYS_MAX) {
		pki_err(err, errlen, "pki: certificate lifetime %d days is out of "
		    "range 1-%d", days, PKI_DAYS_MAX);
		return -1;
	}
	if (csr_pem == NULL || csr_len == 0 || csr_len > PKI_CSR_MAX) {
		pki_err(err, errlen, "pki: CSR for %s is empty or larger than %d "
		    "bytes", cn, PKI_CSR_MAX);
		return -1;
	}
	BIO *b = BIO_new_mem_buf(csr_pem, (int)csr_len);
	if (b == NULL) {
		pki_err(err, errlen, "pki: out of memory");
		return -1;
	}
	req = PEM_read_bio_X509_REQ(b, NULL, no_password_cb, NULL);
	BIO_free(b);
	if (req == NULL) {
		pki_err(err, errlen, "pki: CSR for %s is not a PEM certificate "
		    "request", cn);
		goto out;
	}
	EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
	if (pub == NULL) {
		pki_err(err, errlen, "pki: CSR for %s has an unreadable public key",
		    cn);
		goto out;
	}
	/* Key check first: it bounds the cost of the signature check. */
	if (!csr_key_ok(pub, why, sizeof(why))) {
		pki_err(err, errlen, "pki: CSR for %s has an unsupported %s", cn, why);
		goto out;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		pki_err(err, errlen, "pki: CSR for %s has a bad signature; the agent "
		    "must generate a new one", cn);
		goto out;
	}
	x = cert_build(pub, cn, p->ca_cert, p->ca_key, days, agent_exts,
	    ARRAY_LEN(agent_exts), NULL, serial_hex, err, errlen);
	if (x == NULL)
		goto out;
	if ((*cert_pem = pki_cert_to_pem(x)) == NULL) {
		pki_err(err, errlen, "pki: cannot encode the certificate for %s", cn);
		goto out;
	}
	rc = 0;
out:
	X509_REQ_free(req);
	X509_free(x);
	return rc;
}

int
pki_make_key_and_csr(const char *hostname, char **key_pem, char **csr_pem,
    char *err, size_t errlen)
{
	EVP_PKEY *k = NULL;
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	BIO *b = NULL;
	int rc = -1;

	*key_pem = NULL;
	*csr_pem = NULL;
	if (hostname == NULL || !cn_valid(hostname)) {
		pki_err(err, errlen, "pki: host name must be 1-%d printable ASCII "
		    "characters for the CSR", PKI_CN_MAX);
		return -1;
	}
	if ((k = ec_keygen(err, errlen)) == NULL)
		return -1;
	if ((req = X509_REQ_new()) == NULL || (name = name_cn(hostname)) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1 ||
	    X509_REQ_sign(req, k, EVP_sha256()) <= 0 ||
	    (b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509_REQ(b, req) != 1 ||
	    (*csr_pem = bio_to_str(b)) == NULL ||
	    (*key_pem = key_to_pem(k)) == NULL) {
		pki_err(err, errlen, "pki: cannot create the CSR for %s", hostname);
		free(*csr_pem);
		*csr_pem = NULL;
		goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return rc;
}

int
pki_sign(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t *sig, size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;

	/* An RSA key's signature would not fit: EC keys only. */
	if (ctx == NULL || key == NULL || EVP_PKEY_get_size(key) <= 0 ||
	    EVP_PKEY_get_size(key) > PKI_SIG_MAX)
		goto out;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	*siglen = PKI_SIG_MAX;
	if (EVP_DigestSign(ctx, sig, siglen, data, len) != 1)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
pki_verify(X509 *cert, const uint8_t *data, size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_PKEY *pub = cert != NULL ? X509_get0_pubkey(cert) : NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;

	if (ctx != NULL && pub != NULL && siglen > 0 && siglen <= PKI_SIG_MAX &&
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, data, len) == 1)
		rc = 0;
	if (rc < 0)
		ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return rc;
}
