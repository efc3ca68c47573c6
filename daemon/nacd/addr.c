/* addr.c — MAC and IP address notations normalised for the NAC indexes (see nac.h). */
#include "nacd/nac.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "conf.h"
#include "hmap.h"
#include "log.h"
#include "core/registry.h"
#include "core/server.h"
#include "nacd/nac_priv.h"
#include "nacd/soh.h"
#include "core/status.h"
#include "utf8.h"
#include "util.h"

/* ---- addresses ---- */

static int
hexdig(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int
nac_mac_normalize(const char *in, char out[18])
{
	uint8_t nib[12];
	size_t groups = 0, glen[12], nn = 0;
	char sep = 0;
	size_t len = in ? strnlen(in, 64) : 64;

	if (len == 0 || len >= 64)
		return -1;
	glen[0] = 0;
	for (size_t i = 0; i < len; i++) {
		int v = hexdig((unsigned char)in[i]);
		if (v >= 0) {
			if (nn == 12 && groups == 0)
				return -1;
			if (glen[groups] == 12)
				return -1;
			glen[groups]++;
			if (nn < 12)
				nib[nn] = (uint8_t)v;
			nn++;
			continue;
		}
		if (in[i] != ':' && in[i] != '-' && in[i] != '.')
			return -1;
		if ((sep && in[i] != sep) || glen[groups] == 0 || groups == 11)
			return -1;
		sep = in[i];
		glen[++groups] = 0;
	}
	groups++;
	if (glen[groups - 1] == 0)
		return -1;
	uint8_t b[6];
	if (groups == 6 && sep != '.') {
		/* 00:11:22:33:44:55, also with leading zeros left out (0:1b:...) */
		size_t k = 0;
		for (size_t g = 0; g < 6; g++) {
			if (glen[g] > 2)
				return -1;
			b[g] = glen[g] == 2 ? (uint8_t)(nib[k] << 4 | nib[k + 1]) : nib[k];
			k += glen[g];
		}
	} else {
		/* 001122334455, 0011.2233.4455, 001122-334455: equal groups of 12 digits */
		if (nn != 12)
			return -1;
		for (size_t g = 0; g < groups; g++)
			if (glen[g] != 12 / groups)
				return -1;
		if (groups != 1 && groups != 2 && groups != 3)
			return -1;
		for (size_t k = 0; k < 6; k++)
			b[k] = (uint8_t)(nib[2 * k] << 4 | nib[2 * k + 1]);
	}
	/* by hand: snprintf showed in the query socket's profile */
	static const char hex[] = "0123456789abcdef";
	for (size_t k = 0; k < 6; k++) {
		out[3 * k] = hex[b[k] >> 4];
		out[3 * k + 1] = hex[b[k] & 15];
		out[3 * k + 2] = k < 5 ? ':' : '\0';
	}
	return 0;
}

/* Dotted-quad text of an IPv4 address (inet_ntop formats with sprintf). */
static void
ip4_text(const uint8_t *b, char out[46])
{
	char *p = out;
	for (size_t k = 0; k < 4; k++) {
		unsigned v = b[k];
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = k < 3 ? '.' : '\0';
	}
}

int
nac_ip_normalize(const char *in, char out[46])
{
	struct in_addr a4;
	struct in6_addr a6;
	if (in == NULL || strnlen(in, 46) >= 46)
		return -1;
	if (inet_pton(AF_INET, in, &a4) == 1) {
		ip4_text((const uint8_t *)&a4.s_addr, out);
		return 0;
	}
	if (inet_pton(AF_INET6, in, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		ip4_text(&a6.s6_addr[12], out);
		return 0;
	}
	return inet_ntop(AF_INET6, &a6, out, 46) ? 0 : -1;
}

