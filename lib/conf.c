/* conf.c — see conf.h.
 *
 * The libconfig object lives only during conf_load(): every value is copied
 * into a slot per schema key, so getters are a linear scan over the schema
 * and a loaded struct conf needs no lock. The schema table itself is not
 * copied: it must outlive the struct conf (programs declare it static). */
#include "conf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "util.h"

#define CONF_MAX_FILE   (4 * 1024 * 1024) /* larger files are a mistake */
#define CONF_MAX_NAME   256               /* longest "a.b.[].c" path */
#define CONF_LINE_MAX   1024              /* longest single error line */
#define LIST_SUFFIX     ".[]"

struct val {
	bool		 seen;		/* in the file, even if invalid */
	bool		 set;
	long long	 i;
	bool		 b;
	char		*s;
};

struct elem {
	struct val	*vals;		/* one per schema key; members only used */
	char		*where;		/* "FILE:LINE" of the element */
};

struct slot {
	struct val	 v;		/* scalar keys outside lists */
	char		*where;		/* "FILE:LINE" or "-o KEY" that set v; NULL: default */
	size_t		 n_elems;	/* CONF_LIST keys */
	struct elem	*elems;
};

struct conf {
	const struct conf_key	*schema;
	size_t			 nkeys;
	long			*owner;	/* index of the owning CONF_LIST or -1 */
	struct slot		*slots;
	char			*file;
};

struct errbuf {
	char	*buf;
	size_t	 len, cap;
	int	 count;
	bool	 full;
};

struct loader {
	struct conf	*c;
	const char	*file;		/* as given, for messages */
	char		 dir[PATH_MAX];	/* absolute dir of file */
	char		 cwd[PATH_MAX];
	bool		 have_cwd;
	struct errbuf	 eb;
};

/* ---- errors ---- */

static void
err_add(struct errbuf *eb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Appends one line; lines that no longer fit are dropped whole so that the
 * caller never prints half a message (only a first line too long is cut). */
static void
err_add(struct errbuf *eb, const char *fmt, ...)
{
	char line[CONF_LINE_MAX];
	va_list ap;
	size_t n, need;

	eb->count++;
	if (eb->buf == NULL || eb->cap == 0 || eb->full)
		return;
	va_start(ap, fmt);
	int r = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	n = strlen(line);
	if (eb->len == 0) {
		str_copy(eb->buf, line, eb->cap);
		eb->len = n < eb->cap ? n : eb->cap - 1;
		if (n >= eb->cap)
			eb->full = true;
		return;
	}
	need = 1 + n;
	if (eb->len + need >= eb->cap) {
		eb->full = true;
		return;
	}
	eb->buf[eb->len++] = '\n';
	memcpy(eb->buf + eb->len, line, n + 1);
	eb->len += n;
}

static const char *
type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP:	return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:	return "an integer";
	case CONFIG_TYPE_FLOAT:	return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL:	return "a boolean";
	case CONFIG_TYPE_ARRAY:	return "an array";
	case CONFIG_TYPE_LIST:	return "a list";
	}
	return "an unknown type";
}

static const char *
want_name(enum conf_type t)
{
	switch (t) {
	case CONF_INT:		return "an integer";
	case CONF_BOOL:		return "a boolean";
	case CONF_STRING:	return "a string";
	case CONF_PATH:		return "a string";
	case CONF_LIST:		return "a list of groups ( { ... }, ... )";
	}
	return "?";
}

static const char *
short_type(enum conf_type t)
{
	switch (t) {
	case CONF_INT:		return "int";
	case CONF_BOOL:		return "bool";
	case CONF_STRING:	return "string";
	case CONF_PATH:		return "path";
	case CONF_LIST:		return "list";
	}
	return "?";
}

/* "FILE:LINE" for a libconfig source name: the file as the user named it,
 * or an @include, which libconfig names relative to the include dir. */
static void
where_fmt(const struct loader *ld, const char *f, unsigned line, char *out,
    size_t outlen)
{
	int r;

	if (f == NULL || strcmp(f, ld->file) == 0 || f[0] == '/')
		r = str_fmt(out, outlen, "%s:%u", f != NULL ? f : ld->file, line);
	else
		r = str_fmt(out, outlen, "%s/%s:%u", ld->dir, f, line);
	if (r < 0)
		str_copy(out, ld->file, outlen);
}

static void
where_of(const struct loader *ld, const config_setting_t *s, char *out, size_t outlen)
{
	where_fmt(ld, config_setting_source_file(s),
	    (unsigned)config_setting_source_line(s), out, outlen);
}

/* ---- schema ---- */

static long
schema_find(const struct conf *c, const char *path)
{
	for (size_t i = 0; i < c->nkeys; i++)
		if (strcmp(c->schema[i].path, path) == 0)
			return (long)i;
	return -1;
}

/* Does some schema key live below group "prefix"? */
static bool
schema_has_group(const struct conf *c, const char *prefix)
{
	size_t n = strlen(prefix);
	for (size_t i = 0; i < c->nkeys; i++) {
		const char *p = c->schema[i].path;
		if (strncmp(p, prefix, n) == 0 && p[n] == '.')
			return true;
	}
	return false;
}

/* Optimal string alignment distance (a swap counts as one edit). */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t r0[CONF_MAX_NAME + 1], r1[CONF_MAX_NAME + 1], r2[CONF_MAX_NAME + 1];
	size_t *pp = r0, *p = r1, *cur = r2;

	if (la > CONF_MAX_NAME || lb > CONF_MAX_NAME)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		p[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t d = p[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			if (p[j - 1] + cost < d)
				d = p[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && pp[j - 2] + 1 < d)
				d = pp[j - 2] + 1;
			cur[j] = d;
		}
		size_t *t = pp;
		pp = p;
		p = cur;
		cur = t;
	}
	return p[lb];
}

/* Nearest declared key or group to an unknown path, if close enough to be a
 * typo; "" otherwise. Candidates are every key and every group prefix. */
static void
suggest(const struct conf *c, const char *path, char *out, size_t outlen)
{
	size_t best = SIZE_MAX, len = strlen(path);
	size_t limit = len <= 4 ? 1 : len <= 12 ? 2 : 3;
	char cand[CONF_MAX_NAME + 1];

	out[0] = '\0';
	for (size_t i = 0; i < c->nkeys; i++) {
		const char *p = c->schema[i].path;
		if (str_copy(cand, p, sizeof(cand)) >= sizeof(cand))
			continue;
		/* the key, then each of its group prefixes */
		for (;;) {
			size_t d = edit_distance(path, cand);
			size_t cl = strlen(cand);
			bool is_elem = cl >= 2 && strcmp(cand + cl - 2, "[]") == 0;
			if (!is_elem && d > 0 && d <= limit && d < best) {
				best = d;
				str_copy(out, cand, outlen);
			}
			char *dot = strrchr(cand, '.');
			if (dot == NULL)
				break;
			*dot = '\0';
		}
	}
}

static void
report_unknown(struct loader *ld, const char *where, const char *path)
{
	char near[CONF_MAX_NAME + 1];

	suggest(ld->c, path, near, sizeof(near));
	if (near[0] != '\0')
		err_add(&ld->eb, "%s: unknown setting '%s' (did you mean '%s'?)",
		    where, path, near);
	else
		err_add(&ld->eb, "%s: unknown setting '%s'", where, path);
}

/* Checks the table itself and computes which list owns each key. */
static int
schema_check(struct loader *ld)
{
	struct conf *c = ld->c;
	int bad = ld->eb.count;

	for (size_t i = 0; i < c->nkeys; i++) {
		const struct conf_key *k = &c->schema[i];
		const char *br = strstr(k->path, LIST_SUFFIX ".");

		c->owner[i] = -1;
		if (strlen(k->path) >= CONF_MAX_NAME)
			err_add(&ld->eb, "schema: path '%.64s...' is too long", k->path);
		if ((unsigned)k->type > CONF_LIST)
			err_add(&ld->eb, "schema: '%s' has an invalid type", k->path);
		if (schema_find(c, k->path) != (long)i)
			err_add(&ld->eb, "schema: '%s' is declared twice", k->path);
		if (k->type == CONF_LIST && strstr(k->path, "[]") != NULL)
			err_add(&ld->eb, "schema: '%s': lists inside lists are not supported",
			    k->path);
		if (br == NULL) {
			if (strstr(k->path, "[]") != NULL)
				err_add(&ld->eb, "schema: '%s': misplaced []", k->path);
			continue;
		}
		char lp[CONF_MAX_NAME];
		size_t n = (size_t)(br - k->path);
		if (n >= sizeof(lp)) {
			err_add(&ld->eb, "schema: '%s': list path too long", k->path);
			continue;
		}
		memcpy(lp, k->path, n);
		lp[n] = '\0';
		long o = schema_find(c, lp);
		if (o < 0 || c->schema[o].type != CONF_LIST)
			err_add(&ld->eb, "schema: '%s' has no CONF_LIST '%s'", k->path, lp);
		else
			c->owner[i] = o;
	}
	return ld->eb.count == bad ? 0 : -1;
}

/* ---- values ---- */

static int
parse_int(const char *s, long long *out)
{
	char *end;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
parse_bool(const char *s, bool *out)
{
	static const char *yes[] = { "true", "yes", "1" };
	static const char *no[] = { "false", "no", "0" };

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static bool
in_range(const struct conf_key *k, long long v)
{
	if (k->min == 0 && k->max == 0)
		return true;
	return v >= k->min && v <= k->max;
}

static const char *
get_cwd(struct loader *ld)
{
	if (!ld->have_cwd) {
		if (getcwd(ld->cwd, sizeof(ld->cwd)) == NULL)
			return NULL;
		ld->have_cwd = true;
	}
	return ld->cwd;
}

/* Makes a path value absolute against base; "" stays "". Returns a malloc'd
 * string or NULL with *why set. */
static char *
resolve_path(const char *val, const char *base, const char **why)
{
	char buf[PATH_MAX];
	char *r;

	if (val[0] == '\0' || val[0] == '/') {
		r = strdup(val);
		if (r == NULL)
			*why = "out of memory";
		return r;
	}
	if (base == NULL) {
		*why = "cannot resolve a relative path (current directory unknown)";
		return NULL;
	}
	/* "./x" reads better without the dot once joined */
	while (val[0] == '.' && val[1] == '/')
		val += 2;
	if (str_fmt(buf, sizeof(buf), "%s%s%s", base,
	    strcmp(base, "/") == 0 ? "" : "/", val) < 0) {
		*why = "path is too long";
		return NULL;
	}
	r = strdup(buf);
	if (r == NULL)
		*why = "out of memory";
	return r;
}

/* Stores text as the value of key k, parsed per its type. from_file picks
 * the base for relative paths. On error fills msg and returns -1. */
static int
set_from_text(struct loader *ld, const struct conf_key *k, struct val *v,
    const char *text, bool from_file, char *msg, size_t msglen)
{
	const char *why = NULL;
	char *s;

	switch (k->type) {
	case CONF_INT: {
		long long n;
		if (parse_int(text, &n) < 0) {
			str_fmt(msg, msglen, "'%s' must be an integer (got '%.64s')",
			    k->path, text);
			return -1;
		}
		if (!in_range(k, n)) {
			str_fmt(msg, msglen, "'%s' must be between %lld and %lld (got %lld)",
			    k->path, k->min, k->max, n);
			return -1;
		}
		v->i = n;
		break;
	}
	case CONF_BOOL:
		if (parse_bool(text, &v->b) < 0) {
			str_fmt(msg, msglen, "'%s' must be a boolean: true, false, yes, "
			    "no, 1 or 0 (got '%.64s')", k->path, text);
			return -1;
		}
		break;
	case CONF_STRING:
		if ((s = strdup(text)) == NULL) {
			str_copy(msg, "out of memory", msglen);
			return -1;
		}
		free(v->s);
		v->s = s;
		break;
	case CONF_PATH:
		s = resolve_path(text, from_file ? ld->dir : get_cwd(ld), &why);
		if (s == NULL) {
			str_fmt(msg, msglen, "'%s': %s", k->path, why);
			return -1;
		}
		free(v->s);
		v->s = s;
		break;
	case CONF_LIST:
		str_fmt(msg, msglen, "'%s' is a list and cannot be set this way",
		    k->path);
		return -1;
	}
	v->set = true;
	return 0;
}

/* Fills an unset value from the schema default. */
static int
set_default(struct loader *ld, const struct conf_key *k, struct val *v)
{
	char msg[CONF_LINE_MAX];
	const char *def = k->def;

	if (def == NULL) {
		/* no default: 0 / false / "", never range-checked */
		v->set = true;
		if (k->type == CONF_STRING || k->type == CONF_PATH) {
			free(v->s);
			if ((v->s = strdup("")) == NULL) {
				err_add(&ld->eb, "'%s': out of memory", k->path);
				return -1;
			}
		}
		return 0;
	}
	if (set_from_text(ld, k, v, def, false, msg, sizeof(msg)) < 0) {
		err_add(&ld->eb, "schema: bad default \"%s\": %s", def, msg);
		return -1;
	}
	return 0;
}

/* Copies a scalar setting from the file into v after checking its type. */
static void
take_scalar(struct loader *ld, const config_setting_t *s, const struct conf_key *k,
    struct val *v, const char *path, const char *where)
{
	int t = config_setting_type(s);
	char msg[CONF_LINE_MAX];
	bool ok;

	v->seen = true;
	switch (k->type) {
	case CONF_INT:	ok = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64; break;
	case CONF_BOOL:	ok = t == CONFIG_TYPE_BOOL; break;
	default:	ok = t == CONFIG_TYPE_STRING; break;
	}
	if (!ok) {
		err_add(&ld->eb, "%s: '%s' must be %s (got %s)", where, path,
		    want_name(k->type), type_name(t));
		return;
	}
	switch (k->type) {
	case CONF_INT: {
		long long n = config_setting_get_int64(s);
		if (!in_range(k, n)) {
			err_add(&ld->eb, "%s: '%s' must be between %lld and %lld (got %lld)",
			    where, path, k->min, k->max, n);
			return;
		}
		v->i = n;
		v->set = true;
		break;
	}
	case CONF_BOOL:
		v->b = config_setting_get_bool(s) != 0;
		v->set = true;
		break;
	default: {
		const char *str = config_setting_get_string(s);
		if (set_from_text(ld, k, v, str ? str : "", true, msg, sizeof(msg)) < 0)
			err_add(&ld->eb, "%s: %s", where, msg);
		break;
	}
	}
}

/* ---- walking the file ---- */

static void walk_group(struct loader *ld, const config_setting_t *g,
    const char *prefix, struct elem *el);

/* Members of a list element that were not in the file: required or default. */
static void
finish_elem(struct loader *ld, long list, struct elem *el)
{
	struct conf *c = ld->c;

	for (size_t i = 0; i < c->nkeys; i++) {
		if (c->owner[i] != list || el->vals[i].set || el->vals[i].seen)
			continue;
		if (c->schema[i].required)
			err_add(&ld->eb, "%s: missing required setting '%s'",
			    el->where, c->schema[i].path);
		else
			(void)set_default(ld, &c->schema[i], &el->vals[i]);
	}
}

static void
take_list(struct loader *ld, const config_setting_t *s, long idx,
    const char *path, const char *where)
{
	struct conf *c = ld->c;
	struct slot *sl = &c->slots[idx];
	int t = config_setting_type(s);
	char ew[PATH_MAX + 32], prefix[CONF_MAX_NAME + 8];

	sl->v.seen = true;

	/* "()" is a list; accept an empty "[]" too, it means the same */
	if (t != CONFIG_TYPE_LIST &&
	    !(t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0)) {
		err_add(&ld->eb, "%s: '%s' must be %s (got %s)", where, path,
		    want_name(CONF_LIST), type_name(t));
		return;
	}
	sl->v.set = true;
	int n = config_setting_length(s);
	if (n <= 0)
		return;
	sl->elems = calloc((size_t)n, sizeof(*sl->elems));
	if (sl->elems == NULL) {
		err_add(&ld->eb, "%s: out of memory", where);
		return;
	}
	if (str_fmt(prefix, sizeof(prefix), "%s%s", path, LIST_SUFFIX) < 0)
		return;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct elem *el = &sl->elems[sl->n_elems];

		if (e == NULL)
			continue;
		where_of(ld, e, ew, sizeof(ew));
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			err_add(&ld->eb, "%s: elements of '%s' must be groups { ... } (got %s)",
			    ew, path, type_name(config_setting_type(e)));
			continue;
		}
		el->vals = calloc(c->nkeys, sizeof(*el->vals));
		el->where = strdup(ew);
		sl->n_elems++;
		if (el->vals == NULL || el->where == NULL) {
			err_add(&ld->eb, "%s: out of memory", ew);
			return;
		}
		walk_group(ld, e, prefix, el);
		finish_elem(ld, idx, el);
	}
}

/* Remembers where a top-level scalar was set, for messages about it. */
static void
note_where(struct loader *ld, struct slot *sl, const char *where)
{
	free(sl->where);
	if ((sl->where = strdup(where)) == NULL)
		err_add(&ld->eb, "%s: out of memory", where);
}

static void
walk_group(struct loader *ld, const config_setting_t *g, const char *prefix,
    struct elem *el)
{
	struct conf *c = ld->c;
	int n = config_setting_length(g);
	char path[CONF_MAX_NAME], where[PATH_MAX + 32];

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name;

		if (s == NULL || (name = config_setting_name(s)) == NULL)
			continue;
		where_of(ld, s, where, sizeof(where));
		if (str_fmt(path, sizeof(path), "%s%s%s", prefix,
		    prefix[0] != '\0' ? "." : "", name) < 0) {
			err_add(&ld->eb, "%s: setting name '%.32s...' is too long",
			    where, name);
			continue;
		}
		long idx = schema_find(c, path);
		if (idx >= 0) {
			const struct conf_key *k = &c->schema[idx];
			if (k->type == CONF_LIST)
				take_list(ld, s, idx, path, where);
			else {
				take_scalar(ld, s, k, el != NULL ?
				    &el->vals[idx] : &c->slots[idx].v, path, where);
				if (el == NULL)
					note_where(ld, &c->slots[idx], where);
			}
		} else if (config_setting_type(s) == CONFIG_TYPE_GROUP &&
		    schema_has_group(c, path)) {
			walk_group(ld, s, path, el);
		} else if (schema_has_group(c, path)) {
			err_add(&ld->eb, "%s: '%s' must be a group { ... } (got %s)",
			    where, path, type_name(config_setting_type(s)));
		} else {
			report_unknown(ld, where, path);
		}
	}
}

/* Absolute directory of the file, for its relative CONF_PATH values. */
static void
file_dir(struct loader *ld, const char *file)
{
	char d[PATH_MAX];
	const char *slash = strrchr(file, '/');

	if (slash == NULL)
		str_copy(d, ".", sizeof(d));
	else if (slash == file)
		str_copy(d, "/", sizeof(d));
	else {
		size_t n = (size_t)(slash - file);
		if (n >= sizeof(d))
			n = sizeof(d) - 1;
		memcpy(d, file, n);
		d[n] = '\0';
	}
	if (realpath(d, ld->dir) != NULL)
		return;
	/* not there (yet): still make it absolute so it does not follow cwd */
	const char *cwd = get_cwd(ld);
	if (d[0] != '/' && cwd != NULL &&
	    str_fmt(ld->dir, sizeof(ld->dir), "%s/%s", cwd, d) >= 0)
		return;
	str_copy(ld->dir, d, sizeof(ld->dir));
}

static int
read_file(struct loader *ld, config_t *cfg, const char *file)
{
	struct stat st;
	FILE *fp;

	/* open it ourselves first: libconfig only says "file I/O error" */
	if ((fp = fopen(file, "r")) == NULL) {
		err_add(&ld->eb, "%s: cannot read configuration: %s", file,
		    strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		err_add(&ld->eb, "%s: not a regular file; give the path of a "
		    "configuration file", file);
		fclose(fp);
		return -1;
	}
	if (st.st_size > CONF_MAX_FILE) {
		err_add(&ld->eb, "%s: larger than %d MiB; this is not a "
		    "configuration file", file, CONF_MAX_FILE / (1024 * 1024));
		fclose(fp);
		return -1;
	}
	fclose(fp);

	file_dir(ld, file);
	/* @include "x" is relative to the file, like its paths */
	config_set_include_dir(cfg, ld->dir);
	if (config_read_file(cfg, file) != CONFIG_TRUE) {
		const char *et = config_error_text(cfg);
		char where[PATH_MAX + 32];
		int line = config_error_line(cfg);

		if (line > 0)
			where_fmt(ld, config_error_file(cfg), (unsigned)line, where,
			    sizeof(where));
		else
			str_copy(where, file, sizeof(where));
		err_add(&ld->eb, "%s: %s", where, et != NULL ? et : "cannot be read");
		return -1;
	}
	return 0;
}

/* ---- overrides, defaults ---- */

static void
apply_override(struct loader *ld, const char *o)
{
	struct conf *c = ld->c;
	char key[CONF_MAX_NAME], msg[CONF_LINE_MAX], near[CONF_MAX_NAME + 1];
	const char *eq = strchr(o, '=');

	if (eq == NULL || eq == o) {
		err_add(&ld->eb, "-o %.200s: expected section.key=value", o);
		return;
	}
	size_t n = (size_t)(eq - o);
	if (n >= sizeof(key)) {
		err_add(&ld->eb, "-o %.200s: setting name is too long", o);
		return;
	}
	memcpy(key, o, n);
	key[n] = '\0';
	long idx = schema_find(c, key);
	if (idx < 0) {
		suggest(c, key, near, sizeof(near));
		if (near[0] != '\0')
			err_add(&ld->eb, "-o %.200s: unknown setting '%s' "
			    "(did you mean '%s'?)", o, key, near);
		else
			err_add(&ld->eb, "-o %.200s: unknown setting '%s'", o, key);
		return;
	}
	if (c->schema[idx].type == CONF_LIST || c->owner[idx] >= 0) {
		err_add(&ld->eb, "-o %.200s: '%s' is part of a list and cannot be "
		    "set with -o; edit the configuration file", o, key);
		return;
	}
	if (set_from_text(ld, &c->schema[idx], &c->slots[idx].v, eq + 1, false,
	    msg, sizeof(msg)) < 0)
		err_add(&ld->eb, "-o %.200s: %s", o, msg);
	else {
		char w[CONF_MAX_NAME + 4];
		str_fmt(w, sizeof(w), "-o %s", key);
		note_where(ld, &c->slots[idx], w);
	}
}

static void
fill_defaults(struct loader *ld, const char *file)
{
	struct conf *c = ld->c;

	for (size_t i = 0; i < c->nkeys; i++) {
		const struct conf_key *k = &c->schema[i];
		struct slot *sl = &c->slots[i];

		if (c->owner[i] >= 0 || sl->v.set || sl->v.seen)
			continue;
		if (k->required) {
			if (file != NULL)
				err_add(&ld->eb, "%s: missing required setting '%s'",
				    file, k->path);
			else
				err_add(&ld->eb, "missing required setting '%s' "
				    "(no configuration file; pass -o %s=VALUE)",
				    k->path, k->path);
		} else if (k->type != CONF_LIST)
			(void)set_default(ld, k, &sl->v);
	}
}

/* ---- load / free ---- */

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; c->slots != NULL && i < c->nkeys; i++) {
		struct slot *sl = &c->slots[i];
		free(sl->v.s);
		free(sl->where);
		for (size_t e = 0; e < sl->n_elems; e++) {
			for (size_t j = 0; sl->elems[e].vals != NULL && j < c->nkeys; j++)
				free(sl->elems[e].vals[j].s);
			free(sl->elems[e].vals);
			free(sl->elems[e].where);
		}
		free(sl->elems);
	}
	free(c->slots);
	free(c->owner);
	free(c->file);
	free(c);
}

int
conf_load(struct conf **out, const char *file, const struct conf_key *schema,
    const char *const *overrides, size_t n_overrides, char *err, size_t errlen)
{
	struct loader *ld;
	struct conf *c;
	config_t cfg;
	size_t n = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL || schema == NULL) {
		if (err != NULL)
			str_copy(err, "conf_load: no output or schema given", errlen);
		return -1;
	}
	while (schema[n].path != NULL)
		n++;

	/* the loader holds two PATH_MAX buffers: keep them off the stack */
	ld = calloc(1, sizeof(*ld));
	c = calloc(1, sizeof(*c));
	if (ld == NULL || c == NULL)
		goto oom;
	c->schema = schema;
	c->nkeys = n;
	c->owner = calloc(n + 1, sizeof(*c->owner));
	c->slots = calloc(n + 1, sizeof(*c->slots));
	c->file = strdup(file != NULL ? file : "");
	if (c->owner == NULL || c->slots == NULL || c->file == NULL)
		goto oom;
	ld->c = c;
	ld->file = file;
	ld->eb.buf = err;
	ld->eb.cap = err != NULL ? errlen : 0;

	if (schema_check(ld) < 0)
		goto fail;
	if (file != NULL) {
		config_init(&cfg);
		int r = read_file(ld, &cfg, file);
		if (r == 0)
			walk_group(ld, config_root_setting(&cfg), "", NULL);
		config_destroy(&cfg);
		/* a file that does not parse: its error alone is the news */
		if (r < 0)
			goto fail;
	}
	for (size_t i = 0; i < n_overrides; i++)
		if (overrides[i] != NULL)
			apply_override(ld, overrides[i]);
	fill_defaults(ld, file);
	if (ld->eb.count > 0)
		goto fail;
	free(ld);
	*out = c;
	return 0;
oom:
	if (err != NULL)
		str_copy(err, "conf_load: out of memory", errlen);
fail:
	conf_free(c);
	free(ld);
	return -1;
}

/* ---- getters ---- */

static void conf_misuse(const char *what, const char *path)
	__attribute__((noreturn));

static void
conf_misuse(const char *what, const char *path)
{
	fprintf(stderr, "conf: %s '%s' (programming error)\n", what,
	    path != NULL ? path : "(null)");
	abort();
}

static long
lookup(const struct conf *c, const char *path, bool want_list)
{
	long idx;

	if (c == NULL || path == NULL)
		conf_misuse("lookup on NULL config or path", path);
	idx = schema_find(c, path);
	if (idx < 0)
		conf_misuse("setting not declared in the schema:", path);
	if (want_list != (c->schema[idx].type == CONF_LIST) ||
	    (!want_list && c->owner[idx] >= 0))
		conf_misuse(want_list ? "not a CONF_LIST:" :
		    "not a top-level scalar:", path);
	return idx;
}

static const struct val *
scalar(const struct conf *c, const char *path, enum conf_type t)
{
	long idx = lookup(c, path, false);
	enum conf_type have = c->schema[idx].type;

	if (have != t && !(t == CONF_STRING && have == CONF_PATH))
		conf_misuse("wrong getter for", path);
	return &c->slots[idx].v;
}

long long
conf_int(const struct conf *c, const char *path)
{
	return scalar(c, path, CONF_INT)->i;
}

bool
conf_bool(const struct conf *c, const char *path)
{
	return scalar(c, path, CONF_BOOL)->b;
}

const char *
conf_str(const struct conf *c, const char *path)
{
	const char *s = scalar(c, path, CONF_STRING)->s;
	return s != NULL ? s : "";
}

size_t
conf_list_len(const struct conf *c, const char *list_path)
{
	return c->slots[lookup(c, list_path, true)].n_elems;
}

static const struct val *
member(const struct conf *c, const char *list_path, size_t i, const char *key,
    enum conf_type t)
{
	long list = lookup(c, list_path, true);
	const struct slot *sl = &c->slots[list];
	char path[CONF_MAX_NAME];

	if (key == NULL ||
	    str_fmt(path, sizeof(path), "%s%s.%s", list_path, LIST_SUFFIX, key) < 0)
		conf_misuse("bad member of", list_path);
	long idx = schema_find(c, path);
	if (idx < 0 || c->owner[idx] != list)
		conf_misuse("list member not declared in the schema:", path);
	enum conf_type have = c->schema[idx].type;
	if (have != t && !(t == CONF_STRING && have == CONF_PATH))
		conf_misuse("wrong getter for", path);
	if (i >= sl->n_elems)
		conf_misuse("list index out of range for", list_path);
	return &sl->elems[i].vals[idx];
}

const char *
conf_list_str(const struct conf *c, const char *list_path, size_t i, const char *key)
{
	const char *s = member(c, list_path, i, key, CONF_STRING)->s;
	return s != NULL ? s : "";
}

long long
conf_list_int(const struct conf *c, const char *list_path, size_t i, const char *key)
{
	return member(c, list_path, i, key, CONF_INT)->i;
}

bool
conf_list_bool(const struct conf *c, const char *list_path, size_t i, const char *key)
{
	return member(c, list_path, i, key, CONF_BOOL)->b;
}

const char *
conf_list_where(const struct conf *c, const char *list_path, size_t i)
{
	const struct slot *sl = &c->slots[lookup(c, list_path, true)];

	if (i >= sl->n_elems)
		conf_misuse("list index out of range for", list_path);
	return sl->elems[i].where;
}

const char *
conf_where(const struct conf *c, const char *path)
{
	const struct slot *sl = &c->slots[lookup(c, path, false)];

	if (sl->where != NULL)
		return sl->where;
	return c->file != NULL && c->file[0] != '\0' ? c->file : "(defaults)";
}

const char *
conf_file(const struct conf *c)
{
	return c->file;
}

void
conf_print_schema(const struct conf_key *schema)
{
	int pw = 4, dw = 7;
	char range[64];

	for (const struct conf_key *k = schema; k->path != NULL; k++) {
		int l = (int)strlen(k->path);
		if (l > pw)
			pw = l;
		l = k->def != NULL ? (int)strlen(k->def) + 2 : 1;
		if (l > dw && l < 40)
			dw = l;
	}
	printf("%-*s  %-6s  %-*s  %s\n", pw, "setting", "type", dw, "default", "help");
	for (const struct conf_key *k = schema; k->path != NULL; k++) {
		char def[128];

		if (k->def != NULL)
			str_fmt(def, sizeof(def), "\"%.120s\"", k->def);
		else
			str_copy(def, k->required ? "(req)" : "-", sizeof(def));
		range[0] = '\0';
		if (k->type == CONF_INT && (k->min != 0 || k->max != 0))
			str_fmt(range, sizeof(range), " [%lld..%lld]", k->min, k->max);
		printf("%-*s  %-6s  %-*s  %s%s%s\n", pw, k->path, short_type(k->type),
		    dw, def, k->help != NULL ? k->help : "", range,
		    k->required ? " (required)" : "");
	}
}
