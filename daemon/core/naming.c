/* naming.c — see naming.h. */
#include "naming.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

#define NAME_MAX_LEN 63

void
naming_clean(const char *reported, char *out, size_t outlen)
{
	size_t n = 0;
	for (const char *p = reported; *p && n < NAME_MAX_LEN && n + 1 < outlen; p++) {
		unsigned char c = (unsigned char)*p;
		out[n++] = (isalnum(c) || c == '.' || c == '_' || c == '-') ? (char)c : '-';
	}
	if (outlen > 0)
		out[n] = '\0';
	if (n == 0)
		str_copy(out, "host", outlen);
}

int
naming_unique(const char *base, bool (*taken)(const char *name, void *arg), void *arg,
    char *out, size_t outlen)
{
	if (str_copy(out, base, outlen) >= outlen)
		return -1;
	for (long i = 1; taken(out, arg); i++) {
		char suffix[16];
		int slen = str_fmt(suffix, sizeof(suffix), "-%ld", i);
		if (i > 1000000 || slen < 0 || (size_t)slen >= outlen)
			return -1;
		/* a long base is shortened so that the suffix always fits */
		size_t keep = strlen(base);
		if (keep + (size_t)slen >= outlen)
			keep = outlen - 1 - (size_t)slen;
		str_fmt(out, outlen, "%.*s%s", (int)keep, base, suffix);
	}
	return 0;
}
