/* naming.h — unique host names: a clash becomes NAME-1, NAME-2, ...
 * Pure; any thread. */
#ifndef CUSTOS_NAMING_H
#define CUSTOS_NAMING_H

#include <stdbool.h>
#include <stddef.h>

/* Cleans a reported hostname into a display name: keeps [A-Za-z0-9._-],
 * replaces other characters with '-', trims to 63 chars, "host" when empty. */
void naming_clean(const char *reported, char *out, size_t outlen);

/* Writes into out the first of base, base-1, base-2, ... for which
 * taken(candidate, arg) is false; a base too long to take the suffix is
 * shortened ("<base cut>-1"). -1 when base itself does not fit or after
 * 1,000,000 tries. A base that already ends in -N is not treated specially: "web-1"
 * clashing becomes "web-1-1". */
int naming_unique(const char *base, bool (*taken)(const char *name, void *arg), void *arg,
    char *out, size_t outlen);

#endif
