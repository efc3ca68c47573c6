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
		if (i > 1000000 || str_fmt(out, outlen, "%s-%ld", base, i) < 0)
			return -1;
	}
	return 0;
}
