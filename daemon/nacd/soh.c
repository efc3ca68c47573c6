/* soh.c — see soh.h. Written from [MS-SOH] / [MS-WSH] and the layout
 * FreeRADIUS documents for its decoded attributes. */
#include "nacd/soh.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define TLV_TYPE_MASK 0x3fff          /* the M and R bits are not part of the type */
#define TLV_VENDOR 7
#define TLV_SYSTEM_HEALTH_ID 2
#define TLV_HEALTH_CLASS 8
#define TLV_HEALTH_CLASS_STATUS 11
#define VENDOR_MS 0x137u
#define COMPONENT_SYSTEM 0x00         /* the NAP system's own entry */
#define COMPONENT_WSHA 0x80           /* Windows Security Health Agent */
#define MODE_SUBHEADER_LEN 30         /* vendor + correlation id + intent + content type */
#define STATUS_ERROR_MASK 0xff000000u /* a non-zero top octet is an error code */
#define STATUS_ENABLED 0x1u
#define STATUS_UP_TO_DATE 0x2u
#define WUA_ALL_INSTALLED 0x00ff0005u
#define ATTR_VALUES_MAX 64            /* SoH-MS-Windows-Health-Status values read */
#define ATTR_LEN_MAX 253              /* a RADIUS string attribute */

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
be24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void
soh_report_init(struct soh_report *r)
{
	memset(r, 0, sizeof(*r));
	r->supported = true;
}

/* Several products of one class (two anti-virus programs): one that is ok
 * protects the host. */
static void
note(struct soh_report *r, unsigned cls, enum soh_state st)
{
	if (cls >= SOH_CLASSES)
		return;
	if (st == SOH_STATE_OK || r->cls[cls] == SOH_STATE_UNKNOWN)
		r->cls[cls] = st;
}

/* A Health-Class-Status DWORD of the Windows Security Health Agent. */
static void
classify(struct soh_report *r, int cls, uint32_t status)
{
	bool ok;
	switch (cls) {
	case SOH_FIREWALL:
		ok = (status & STATUS_ERROR_MASK) == 0 && (status & STATUS_ENABLED);
		break;
	case SOH_ANTIVIRUS:
	case SOH_ANTISPYWARE:
		ok = (status & STATUS_ERROR_MASK) == 0 && (status & STATUS_ENABLED) &&
		    (status & STATUS_UP_TO_DATE);
		break;
	case SOH_AUTO_UPDATES:
		/* 2 check only, 3 download, 4 install; 1 disabled, 5 unconfigured */
		ok = status >= 2 && status <= 4;
		break;
	case SOH_SECURITY_UPDATES:
		ok = status == WUA_ALL_INSTALLED;
		break;
	default:
		return;   /* a class of another health agent: not ours to judge */
	}
	note(r, (unsigned)cls, ok ? SOH_STATE_OK : SOH_STATE_BAD);
}

static void
set_machine_name(struct soh_report *r, const uint8_t *p, size_t n)
{
	if (n >= sizeof(r->machine_name))
		n = sizeof(r->machine_name) - 1;
	for (size_t i = 0; i < n; i++)
		r->machine_name[i] = isprint(p[i]) ? (char)p[i] : '?';
	r->machine_name[n] = '\0';
}

/* The system entry's Microsoft type-value items ([MS-SOH] 2.2.4): only
 * the machine name is used. Types have no common length field, so an
 * unknown one ends the walk; that is not an error of the SoH. */
static void
parse_ms_tv(const uint8_t *p, size_t len, struct soh_report *r)
{
	while (len > 0) {
		uint8_t t = *p++;
		size_t need, n;
		len--;
		switch (t) {
		case 1: need = 18; break;                 /* machine inventory */
		case 3: need = 1; break;                  /* packet info */
		case 6: need = 24; break;                 /* correlation id */
		case 8: need = 5; break;                  /* machine inventory ex */
		case 2:                                   /* quarantine state */
			if (len < 12)
				return;
			need = 12 + (size_t)be16(p + 10);
			break;
		case 4: case 5: case 7:                   /* counted items */
			if (len < 2)
				return;
			n = be16(p);
			need = 2 + n;
			if (t == 5 && need <= len)
				set_machine_name(r, p + 2, n);
			break;
		default:
			return;
		}
		if (need > len)
			return;
		p += need;
		len -= need;
	}
}

/* SoHReportEntries: a flat TLV list where System-Health-Id starts an entry
 * and Health-Class starts a class within it. */
static int
parse_entries(const uint8_t *p, size_t len, struct soh_report *r, char *err, size_t errlen)
{
	uint32_t shid = 0;
	int comp = -1, cls = -1;

	while (len > 0) {
		if (len < 4) {
			str_fmt(err, errlen, "truncated TLV header (%zu bytes left)", len);
			return -1;
		}
		unsigned t = be16(p) & TLV_TYPE_MASK;
		size_t l = be16(p + 2);
		const uint8_t *v = p + 4;
		if (l > len - 4) {
			str_fmt(err, errlen, "TLV type %u claims %zu bytes, %zu left", t, l, len - 4);
			return -1;
		}
		switch (t) {
		case TLV_SYSTEM_HEALTH_ID:
			if (l < 4) {
				str_fmt(err, errlen, "System-Health-Id of %zu bytes (4 needed)", l);
				return -1;
			}
			shid = be24(v);
			comp = v[3];
			cls = -1;
			break;
		case TLV_HEALTH_CLASS:
			if (l < 1) {
				str_fmt(err, errlen, "empty Health-Class");
				return -1;
			}
			cls = v[0];
			break;
		case TLV_HEALTH_CLASS_STATUS:
			if (shid != VENDOR_MS || comp != COMPONENT_WSHA)
				break;
			if (l < 4) {
				str_fmt(err, errlen, "Health-Class-Status of %zu bytes (4 needed)", l);
				return -1;
			}
			classify(r, cls, be32(v));
			break;
		case TLV_VENDOR:
			if (shid == VENDOR_MS && comp == COMPONENT_SYSTEM && l >= 4)
				parse_ms_tv(v + 4, l - 4, r);
			break;
		default:
			break;
		}
		p += 4 + l;
		len -= 4 + l;
	}
	return 0;
}

static bool
is_ms_vendor_tlv(const uint8_t *p, size_t len)
{
	return len >= 8 && (be16(p) & TLV_TYPE_MASK) == TLV_VENDOR && be32(p + 4) == VENDOR_MS;
}

static int
parse_message(const uint8_t *p, size_t len, bool outer, struct soh_report *r, char *err,
    size_t errlen)
{
	if (len < 12) {
		str_fmt(err, errlen, "%zu bytes are too short for an SoH header (12)", len);
		return -1;
	}
	if (!is_ms_vendor_tlv(p, len)) {
		str_fmt(err, errlen, "not a Microsoft SoH (TLV type %u, vendor %#x)",
		    be16(p) & TLV_TYPE_MASK, be32(p + 4));
		return -1;
	}
	size_t tlen = be16(p + 2);
	if (tlen < 8 || tlen > len - 4) {
		str_fmt(err, errlen, "SoH length %zu does not fit the %zu bytes given", tlen, len - 4);
		return -1;
	}
	if (outer && tlen != len - 4) {
		str_fmt(err, errlen, "%zu bytes follow the SoH", len - 4 - tlen);
		return -1;
	}
	unsigned inner = be16(p + 8);
	size_t ilen = be16(p + 10);
	const uint8_t *body = p + 12;
	if (ilen > tlen - 8) {
		str_fmt(err, errlen, "SoH inner length %zu exceeds its %zu bytes", ilen, tlen - 8);
		return -1;
	}
	/* The PEAP / MS-Quarantine-SOH wrapper: an SoH TLV (inner type 1)
	 * holding the SoH message, itself a Microsoft vendor TLV. A bare
	 * message of inner type 1 starts with System-Health-Id instead. */
	if (inner == 1 && outer && is_ms_vendor_tlv(body, ilen))
		return parse_message(body, ilen, false, r, err, errlen);
	if (inner == 2) {
		if (!is_ms_vendor_tlv(body, ilen)) {
			str_fmt(err, errlen, "SoH mode sub-header missing");
			return -1;
		}
		size_t mlen = be16(body + 2);
		if (mlen < MODE_SUBHEADER_LEN || mlen > ilen - 4) {
			str_fmt(err, errlen, "SoH mode sub-header of %zu bytes does not fit", mlen);
			return -1;
		}
		body += 4 + mlen;
		ilen -= 4 + mlen;
	} else if (inner != 1) {
		str_fmt(err, errlen, "unknown SoH inner type %u", inner);
		return -1;
	}
	return parse_entries(body, ilen, r, err, errlen);
}

int
soh_parse(const uint8_t *buf, size_t len, struct soh_report *r, char *err, size_t errlen)
{
	soh_report_init(r);
	if (buf == NULL || len == 0) {
		str_fmt(err, errlen, "empty SoH");
		return -1;
	}
	if (len > SOH_MAX_LEN) {
		str_fmt(err, errlen, "SoH of %zu bytes exceeds %d", len, SOH_MAX_LEN);
		return -1;
	}
	return parse_message(buf, len, true, r, err, errlen);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
soh_parse_hex(const char *hex, struct soh_report *r, char *err, size_t errlen)
{
	uint8_t local[SOH_MAX_LEN];
	soh_report_init(r);
	if (hex == NULL) {
		str_fmt(err, errlen, "no SoH");
		return -1;
	}
	if (hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
		hex += 2;   /* FreeRADIUS prints octets as 0x... */
	size_t n = strnlen(hex, 2 * SOH_MAX_LEN + 1);
	if (n > 2 * SOH_MAX_LEN) {
		str_fmt(err, errlen, "SoH longer than %d bytes", SOH_MAX_LEN);
		return -1;
	}
	if (n % 2 != 0) {
		str_fmt(err, errlen, "SoH hex has an odd number of digits (%zu)", n);
		return -1;
	}
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			str_fmt(err, errlen, "SoH hex has a non-hex character at %zu", 2 * i);
			return -1;
		}
		local[i] = (uint8_t)(hi << 4 | lo);
	}
	return soh_parse(local, n / 2, r, err, errlen);
}

/* ---- FreeRADIUS's decoded strings ---- */

static bool
has_word(const char *s, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = s; (p = strstr(p, word)) != NULL; p += wl)
		if ((p == s || p[-1] == ' ') && (p[wl] == '\0' || p[wl] == ' '))
			return true;
	return false;
}

int
soh_status_string(const char *s, struct soh_report *r)
{
	static const char *const names[SOH_CLASSES] = {
		"firewall", "antivirus", "antispyware", "auto-updates", "security-updates",
	};
	char word[32], verdict[16];
	int n = 0;

	if (s == NULL || strlen(s) > ATTR_LEN_MAX)
		return -1;
	if (sscanf(s, "%31s %15s%n", word, verdict, &n) != 2)
		return -1;
	int cls = -1;
	for (int i = 0; i < SOH_CLASSES; i++)
		if (strcmp(word, names[i]) == 0)
			cls = i;
	if (cls < 0)
		return 0;   /* "<n> unknown <hex>": a class we do not judge */
	bool ok;
	if (strcmp(verdict, "ok") == 0) {
		/* "ok" only says the status is no error code: the product may
		 * still be off or out of date */
		if (cls == SOH_FIREWALL)
			ok = has_word(s + n, "enabled=1");
		else if (cls == SOH_ANTIVIRUS || cls == SOH_ANTISPYWARE)
			ok = has_word(s + n, "enabled=1") && has_word(s + n, "up2date=1");
		else
			ok = true;
	} else if (strcmp(verdict, "warn") == 0 || strcmp(verdict, "error") == 0) {
		ok = false;
	} else {
		return -1;
	}
	note(r, (unsigned)cls, ok ? SOH_STATE_OK : SOH_STATE_BAD);
	return 0;
}

int
soh_from_attrs(const json_t *attrs, struct soh_report *r, char *err, size_t errlen)
{
	soh_report_init(r);
	if (!json_is_object(attrs)) {
		str_fmt(err, errlen, "soh_attrs must be an object");
		return -1;
	}
	const json_t *v = json_object_get(attrs, "SoH-Supported");
	if (v && json_is_string(v) && strcmp(json_string_value(v), "no") == 0) {
		r->supported = false;
		return 0;
	}
	v = json_object_get(attrs, "SoH-MS-Machine-Name");
	if (v) {
		if (!json_is_string(v) || json_string_length(v) > ATTR_LEN_MAX) {
			str_fmt(err, errlen, "SoH-MS-Machine-Name must be a string of at most %d bytes",
			    ATTR_LEN_MAX);
			return -1;
		}
		set_machine_name(r, (const uint8_t *)json_string_value(v), json_string_length(v));
	}
	v = json_object_get(attrs, "SoH-MS-Windows-Health-Status");
	if (v == NULL)
		return 0;
	if (json_is_array(v) && json_array_size(v) > ATTR_VALUES_MAX) {
		str_fmt(err, errlen, "more than %d SoH-MS-Windows-Health-Status values", ATTR_VALUES_MAX);
		return -1;
	}
	size_t n = json_is_array(v) ? json_array_size(v) : 1;
	for (size_t i = 0; i < n; i++) {
		const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
		if (!json_is_string(s) || soh_status_string(json_string_value(s), r) < 0) {
			str_fmt(err, errlen, "SoH-MS-Windows-Health-Status value %zu is not understood", i);
			return -1;
		}
	}
	return 0;
}

enum soh_verdict
soh_verdict(const struct soh_report *r)
{
	bool any = false, checkup = false;
	for (int i = 0; i < SOH_CLASSES; i++) {
		if (r->cls[i] == SOH_STATE_UNKNOWN)
			continue;
		any = true;
		if (r->cls[i] != SOH_STATE_BAD)
			continue;
		if (i == SOH_ANTIVIRUS || i == SOH_FIREWALL)
			return SOH_VERDICT_QUARANTINE;
		checkup = true;
	}
	if (!any)
		return SOH_VERDICT_NONE;
	return checkup ? SOH_VERDICT_CHECKUP : SOH_VERDICT_OK;
}

const char *
soh_class_name(enum soh_class c)
{
	switch (c) {
	case SOH_FIREWALL: return "firewall";
	case SOH_ANTIVIRUS: return "antivirus";
	case SOH_ANTISPYWARE: return "antispyware";
	case SOH_AUTO_UPDATES: return "auto-updates";
	case SOH_SECURITY_UPDATES: return "security-updates";
	}
	return "?";
}

const char *
soh_state_name(enum soh_state s)
{
	switch (s) {
	case SOH_STATE_OK: return "ok";
	case SOH_STATE_BAD: return "bad";
	case SOH_STATE_UNKNOWN: return "unknown";
	}
	return "?";
}
