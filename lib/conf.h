/* conf.h — schema-checked libconfig files with -o overrides.
 *
 * Every program declares its settings as a table of struct conf_key. conf_load()
 * reads the file, rejects unknown keys, wrong types and out-of-range values
 * with "FILE:LINE: what is wrong" (one line per problem, all problems
 * reported), applies "-o section.key=value" overrides (typed by the schema),
 * and fills defaults. Relative paths of CONF_PATH keys are resolved against
 * the directory of the configuration file, so a config works from any cwd.
 *
 * Lists of groups (e.g. enroll.tokens) are declared as CONF_LIST with the
 * element keys as "enroll.tokens.[].name"; read them back with
 * conf_list_len() / conf_list_str() / conf_list_int().
 *
 * Not thread-safe while loading; a loaded struct conf is read-only and may be
 * read from any thread. */
#ifndef CUSTOS_CONF_H
#define CUSTOS_CONF_H

#include <stdbool.h>
#include <stddef.h>

enum conf_type {
	CONF_INT,    /* integer (libconfig int or int64); range [min, max] */
	CONF_BOOL,   /* true / false */
	CONF_STRING, /* any string; def may be NULL meaning "" */
	CONF_PATH,   /* string; relative values resolved against the file's dir */
	CONF_LIST,   /* list of groups: ( { ... }, { ... } ) */
};

struct conf_key {
	const char *path;   /* "section.key" or "section.list.[].key" */
	enum conf_type type;
	const char *def;    /* default as text ("900", "true", "/var/lib/x"); NULL = no default */
	long long min, max; /* CONF_INT only; min == max == 0 means unbounded */
	bool required;      /* an error when absent (for list elements: in each element) */
	const char *help;   /* one line, shown by --help-config */
};
/* A schema ends with an entry whose path is NULL. */

struct conf;

/* file may be NULL (defaults + overrides only). overrides: "a.b=value" strings.
 * On error returns -1, *out untouched, and err holds "FILE:LINE: message" lines
 * separated by '\n' (overrides are reported as "-o a.b=value: message"). */
int conf_load(struct conf **out, const char *file, const struct conf_key *schema,
    const char *const *overrides, size_t n_overrides, char *err, size_t errlen);
void conf_free(struct conf *c);

/* Getters for scalar keys declared in the schema ("section.key"). Asking for a
 * key that the schema does not declare is a programming error: abort(). */
long long conf_int(const struct conf *c, const char *path);
bool conf_bool(const struct conf *c, const char *path);
const char *conf_str(const struct conf *c, const char *path); /* never NULL; also for CONF_PATH */

/* Lists: number of elements of a CONF_LIST key and its members' values.
 * key is the member name ("name"); a missing optional member gives its
 * schema default (or "" / 0). */
size_t conf_list_len(const struct conf *c, const char *list_path);
const char *conf_list_str(const struct conf *c, const char *list_path, size_t i, const char *key);
long long conf_list_int(const struct conf *c, const char *list_path, size_t i, const char *key);
bool conf_list_bool(const struct conf *c, const char *list_path, size_t i, const char *key);
/* "FILE:LINE" of list element i, for messages about its contents. */
const char *conf_list_where(const struct conf *c, const char *list_path, size_t i);

/* Where top-level scalar path got its value, for messages about it:
 * "FILE:LINE", "-o KEY" or, for a default, the file name. */
const char *conf_where(const struct conf *c, const char *path);
/* The file this configuration came from ("" when none). */
const char *conf_file(const struct conf *c);
/* Prints the schema as documentation (key, type, default, help) to stdout. */
void conf_print_schema(const struct conf_key *schema);

#endif
