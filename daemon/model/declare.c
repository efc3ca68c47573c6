/* declare.c — see declare.h.
 *
 * Each file is parsed with libconfig and its objects copied into the
 * struct declared at once, problems collected on the way; cross-file checks
 * (duplicates, references, parents, one active policy) run once every file
 * is read, on name indexes sorted with qsort. All problems are sorted by
 * file and line before they are written out, so a user reads them in the
 * order of the files. */
#include "model/declare.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libconfig.h>

#include "model/groups.h"
#include "schedule.h"
#include "model/selection.h"
#include "utf8.h"
#include "util.h"

#define MSG_MAX        1024     /* longest single problem line */
#define JSON_DEPTH_MAX 16       /* nesting of a setting value or params */
#define APP_MAX        31       /* longest application name */
#define KEY_MAX        63       /* longest setting key */
#define HOST_MAX       63       /* longest host name (naming.h) */
#define PARAM_PATH_MAX 4095     /* longest scan path / argv element */
#define ARGV_MAX       256      /* most argv elements / scan paths / hosts */
#define DAYS_MAX       3650

static const char *const top_keys[] = {
	"groups", "relocation", "policies", "tasks", "selections", "thresholds",
};
static const char *const group_keys[] = { "path" };
static const char *const reloc_keys[] = {
	"name", "group", "hostname", "subnet", "os", "tag",
};
static const char *const policy_keys[] = {
	"name", "group", "application", "kind", "active", "inherit", "threshold",
	"window", "quiet", "settings",
};
static const char *const setting_keys[] = { "key", "value", "locked" };
static const char *const task_keys[] = {
	"name", "type", "params", "group", "hosts", "selection", "host", "server",
	"schedule", "random_delay", "time_limit",
};
static const char *const scope_keys[] = { "group", "hosts", "selection", "host", "server" };
static const char *const selection_keys[] = { "name", "filter" };
static const char *const threshold_keys[] = {
	"group", "db_warning_days", "db_critical_days", "not_connected_warning_days",
	"not_connected_critical_days",
};
static const char *const kinds[] = { "normal", "outbreak", "mobile" };
static const char *const task_types[] = {
	"update", "scan", "command", "posture", "server_purge_events",
};

struct problem {
	size_t file_idx;           /* 0: the directory; else 1 + index in files */
	int line;
	size_t seq;
	char *text;                /* "FILE:LINE: message" */
};

struct loader {
	struct declared *d;
	struct problem *probs;
	size_t n_probs, cap_probs;
	bool oom;
	const char *cur_file;      /* interned name of the file being read */
};

/* One object of a list: where it is and how messages name it. */
struct item {
	struct loader *ld;
	const config_setting_t *s;
	char label[256];            /* `policy "x"` or `policies` (cut if longer) */
};

/* ---- problems ---- */

static void add_problem(struct loader *ld, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void sprob(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void iprob(struct item *it, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static size_t
file_index(const struct loader *ld, const char *file)
{
	for (size_t i = 0; i < ld->d->n_files; i++)
		if (ld->d->files[i] == file)
			return i + 1;
	return 0;
}

static void
vproblem(struct loader *ld, const char *file, int line, const char *fmt, va_list ap)
{
	char msg[MSG_MAX], text[MSG_MAX + PATH_MAX + 16];

	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		str_copy(msg, "(unprintable message)", sizeof(msg));
	if (line > 0)
		snprintf(text, sizeof(text), "%s:%d: %s", file, line, msg);
	else
		snprintf(text, sizeof(text), "%s: %s", file, msg);
	if (ld->n_probs == ld->cap_probs) {
		size_t cap = ld->cap_probs ? ld->cap_probs * 2 : 16;
		struct problem *p = realloc(ld->probs, cap * sizeof(*p));
		if (p == NULL) {
			ld->oom = true;
			return;
		}
		ld->probs = p;
		ld->cap_probs = cap;
	}
	struct problem *p = &ld->probs[ld->n_probs];
	p->text = strdup(text);
	if (p->text == NULL) {
		ld->oom = true;
		return;
	}
	p->file_idx = file_index(ld, file);
	p->line = line;
	p->seq = ld->n_probs++;
}

static void
add_problem(struct loader *ld, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(ld, file, line, fmt, ap);
	va_end(ap);
}

static const char *
intern_file(struct loader *ld, const char *name)
{
	struct declared *d = ld->d;

	for (size_t i = 0; i < d->n_files; i++)
		if (strcmp(d->files[i], name) == 0)
			return d->files[i];
	char **f = realloc(d->files, (d->n_files + 1) * sizeof(*f));
	if (f == NULL)
		goto oom;
	d->files = f;
	if ((f[d->n_files] = strdup(name)) == NULL)
		goto oom;
	return f[d->n_files++];
oom:
	ld->oom = true;
	return ld->cur_file != NULL ? ld->cur_file : "?";
}

/* The file (interned) and line of a setting. */
static const char *
where(struct loader *ld, const config_setting_t *s, int *line)
{
	const char *f = s != NULL ? config_setting_source_file(s) : NULL;

	*line = s != NULL ? (int)config_setting_source_line(s) : 0;
	if (f == NULL || (ld->cur_file != NULL && strcmp(f, ld->cur_file) == 0))
		return ld->cur_file != NULL ? ld->cur_file : "?";
	return intern_file(ld, f);   /* an @include'd file */
}

static void
sprob(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int line;
	const char *file = where(ld, s, &line);

	va_start(ap, fmt);
	vproblem(ld, file, line, fmt, ap);
	va_end(ap);
}

/* A problem with a member s (NULL: the object itself) of an object. */
static void
iprob(struct item *it, const config_setting_t *s, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		str_copy(msg, "(unprintable message)", sizeof(msg));
	va_end(ap);
	sprob(it->ld, s != NULL ? s : it->s, "%s: %s", it->label, msg);
}

static int
problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;

	if (x->file_idx != y->file_idx)
		return x->file_idx < y->file_idx ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes the sorted problems, whole lines only, and says how many did not
 * fit. */
static void
problems_write(struct loader *ld, char *err, size_t errlen)
{
	char more[64];
	size_t len = 0, i;

	if (err == NULL || errlen == 0)
		return;
	err[0] = '\0';
	qsort(ld->probs, ld->n_probs, sizeof(*ld->probs), problem_cmp);
	for (i = 0; i < ld->n_probs; i++) {
		size_t n = strlen(ld->probs[i].text);
		size_t reserve = i + 1 < ld->n_probs ? sizeof(more) : 0;
		if (len == 0 && n + 1 + reserve > errlen) {
			str_copy(err, ld->probs[i].text, errlen);   /* one line cut */
			len = strlen(err);
			i++;
			break;
		}
		if (len + (len > 0) + n + 1 + reserve > errlen)
			break;
		if (len > 0)
			err[len++] = '\n';
		memcpy(err + len, ld->probs[i].text, n + 1);
		len += n;
	}
	if (i < ld->n_probs) {
		snprintf(more, sizeof(more), "%s... and %zu more problems", len > 0 ? "\n" : "",
		    ld->n_probs - i);
		if (len + strlen(more) + 1 <= errlen)
			memcpy(err + len, more, strlen(more) + 1);
	}
}

/* ---- small helpers ---- */

static char *
xstrdup(struct loader *ld, const char *s)
{
	char *r = strdup(s);

	if (r == NULL)
		ld->oom = true;
	return r;
}

/* Appends a zeroed element to *arr; NULL on OOM. */
static void *
append(struct loader *ld, void *arrp, size_t *n, size_t size)
{
	void **arr = arrp;
	char *a = realloc(*arr, (*n + 1) * size);

	if (a == NULL) {
		ld->oom = true;
		return NULL;
	}
	*arr = a;
	memset(a + *n * size, 0, size);
	return a + (*n)++ * size;
}

static bool
in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* Optimal string alignment distance: a swap of two neighbours counts one,
 * the most common typo ("scna"). SIZE_MAX for long strings. */
static size_t
edit_distance(const char *a, const char *b)
{
	enum { L = DECLARE_NAME_MAX * 2 };
	size_t la = strlen(a), lb = strlen(b);
	size_t r0[L + 1], r1[L + 1], r2[L + 1];
	size_t *pp = r0, *p = r1, *c = r2, *t;

	if (la > L || lb > L)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		p[j] = j;
	for (size_t i = 1; i <= la; i++) {
		c[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t best = p[j - 1] + (a[i - 1] != b[j - 1]);
			if (p[j] + 1 < best)
				best = p[j] + 1;
			if (c[j - 1] + 1 < best)
				best = c[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < best)
				best = pp[j - 2] + 1;
			c[j] = best;
		}
		t = pp;
		pp = p;
		p = c;
		c = t;
	}
	return p[lb];
}

/* The candidate nearest to word (a typo away), or NULL. */
static const char *
nearest(const char *word, const char *const *cands, size_t n)
{
	size_t len = strlen(word), best = SIZE_MAX;
	size_t limit = len <= 4 ? 1 : len <= 12 ? 2 : 3;
	const char *r = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(word, cands[i]);
		if (d > 0 && d <= limit && d < best) {
			best = d;
			r = cands[i];
		}
	}
	return r;
}

/* " (did you mean "x"?)" or "". */
static void
mean(char *buf, size_t len, const char *near)
{
	if (near != NULL)
		snprintf(buf, len, " (did you mean \"%s\"?)", near);
	else
		buf[0] = '\0';
}

static void
join(char *buf, size_t len, const char *const *list, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		int r = snprintf(buf + off, len - off, "%s%s", i == 0 ? "" : ", ", list[i]);
		if (r < 0)
			break;
		off += (size_t)r;
	}
}

static bool
utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t left = strlen(str);

	while (left > 0) {
		size_t n = utf8_seq_len(s, left);
		if (n == 0)
			return false;
		s += n;
		left -= n;
	}
	return true;
}

/* NULL when s is acceptable text of at most max bytes, else why not. */
static const char *
text_problem(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);

	if (len > max)
		return "is too long";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return "contains a control character";
	if (!utf8_valid(s))
		return "is not valid UTF-8";
	return NULL;
}

static bool
chars_in(const char *s, const char *extra)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr(extra, *s) != NULL))
			return false;
	return true;
}

static const char *
type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP:		return "a group { ... }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:		return "an integer";
	case CONFIG_TYPE_FLOAT:		return "a float";
	case CONFIG_TYPE_STRING:	return "a string";
	case CONFIG_TYPE_BOOL:		return "a boolean";
	case CONFIG_TYPE_ARRAY:		return "an array [ ... ]";
	case CONFIG_TYPE_LIST:		return "a list ( ... )";
	}
	return "of an unknown type";
}

static bool
is_int(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* Whether s is a list (or an empty array, which libconfig cannot tell apart
 * from an empty list written "[]"). */
static bool
is_list(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_LIST || (t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0);
}

static bool
is_seq(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_LIST || t == CONFIG_TYPE_ARRAY;
}

/* ---- object members ---- */

static void
item_init(struct item *it, struct loader *ld, const config_setting_t *s, const char *section)
{
	it->ld = ld;
	it->s = s;
	str_copy(it->label, section, sizeof(it->label));
}

/* Names the object once its name is known: `policy "x"`. */
static void
item_name(struct item *it, const char *what, const char *name)
{
	(void)str_fmt(it->label, sizeof(it->label), "%s \"%s\"", what, name);
}

static void
check_members(struct item *it, const char *const *known, size_t n)
{
	char hint[DECLARE_NAME_MAX + 32], list[256];
	int len = config_setting_length(it->s);

	for (int i = 0; i < len; i++) {
		const config_setting_t *m = config_setting_get_elem(it->s, (unsigned)i);
		const char *name = config_setting_name(m);
		if (name == NULL || in_list(name, known, n))
			continue;
		mean(hint, sizeof(hint), nearest(name, known, n));
		join(list, sizeof(list), known, n);
		iprob(it, m, "unknown member '%s'%s; known: %s", name, hint, list);
	}
}

/* Member getters: 1 when present and valid (out set), 0 when absent (a
 * problem if required), -1 when invalid (reported). */

static int
m_str(struct item *it, const char *key, bool required, size_t max, char **out)
{
	const config_setting_t *m = config_setting_get_member(it->s, key);
	const char *v, *why;

	*out = NULL;
	if (m == NULL) {
		if (required)
			iprob(it, NULL, "missing '%s'", key);
		return 0;
	}
	if (config_setting_type(m) != CONFIG_TYPE_STRING) {
		iprob(it, m, "'%s' must be a string, not %s", key,
		    type_name(config_setting_type(m)));
		return -1;
	}
	v = config_setting_get_string(m);
	if ((why = text_problem(v, max)) != NULL) {
		iprob(it, m, "'%s' %s (at most %zu bytes of text)", key, why, max);
		return -1;
	}
	if (required && v[0] == '\0') {
		iprob(it, m, "'%s' must not be empty", key);
		return -1;
	}
	*out = xstrdup(it->ld, v);
	return *out != NULL ? 1 : -1;
}

static int
m_int(struct item *it, const char *key, bool required, long long min, long long max, int *out)
{
	const config_setting_t *m = config_setting_get_member(it->s, key);

	if (m == NULL) {
		if (required)
			iprob(it, NULL, "missing '%s'", key);
		return 0;
	}
	if (!is_int(m)) {
		iprob(it, m, "'%s' must be an integer, not %s", key,
		    type_name(config_setting_type(m)));
		return -1;
	}
	long long v = config_setting_get_int64(m);
	if (v < min || v > max) {
		iprob(it, m, "'%s' must be between %lld and %lld (got %lld)", key, min, max, v);
		return -1;
	}
	*out = (int)v;
	return 1;
}

static int
m_bool(struct item *it, const char *key, bool *out)
{
	const config_setting_t *m = config_setting_get_member(it->s, key);

	if (m == NULL)
		return 0;
	if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
		iprob(it, m, "'%s' must be true or false, not %s", key,
		    type_name(config_setting_type(m)));
		return -1;
	}
	*out = config_setting_get_bool(m) != 0;
	return 1;
}

/* The object's name: required, 1-63 bytes, no blanks around it. */
static char *
m_name(struct item *it, const char *what)
{
	char *name;

	if (m_str(it, "name", true, DECLARE_NAME_MAX - 1, &name) <= 0)
		return NULL;
	size_t len = strlen(name);
	if (name[0] == ' ' || name[len - 1] == ' ') {
		iprob(it, config_setting_get_member(it->s, "name"),
		    "name \"%s\" must not begin or end with a blank", name);
		free(name);
		return NULL;
	}
	item_name(it, what, name);
	return name;
}

/* Checks a group path: components are group names, no empty component. */
static bool
path_valid(const char *path, char *why, size_t len)
{
	char comp[GROUP_NAME_MAX], w[160];
	const char *p = path;
	int depth = 0;

	if (path[0] == '\0') {
		str_copy(why, "a group path must not be empty", len);
		return false;
	}
	if (path[0] == '/' || path[strlen(path) - 1] == '/' || strstr(path, "//") != NULL) {
		snprintf(why, len, "group path \"%s\" has an empty component; write names "
		    "joined by '/' like \"Servers/Web\"", path);
		return false;
	}
	if (strlen(path) >= GROUP_PATH_MAX) {
		snprintf(why, len, "group path is longer than %d bytes", GROUP_PATH_MAX - 1);
		return false;
	}
	while (*p != '\0') {
		size_t cl = strcspn(p, "/");
		if (cl >= sizeof(comp)) {
			snprintf(why, len, "group path \"%.40s...\": a name is longer than %d bytes",
			    path, GROUP_NAME_MAX - 1);
			return false;
		}
		memcpy(comp, p, cl);
		comp[cl] = '\0';
		if (!groups_name_valid(comp, w, sizeof(w))) {
			snprintf(why, len, "group path \"%s\": %s", path, w);
			return false;
		}
		if (depth == 0 && strcmp(comp, GROUP_UNASSIGNED) == 0) {
			snprintf(why, len, "\"%s\" is reserved for hosts in no group; choose another "
			    "name", GROUP_UNASSIGNED);
			return false;
		}
		if (++depth > GROUP_DEPTH_MAX) {
			snprintf(why, len, "group path \"%.40s...\" is deeper than %d levels", path,
			    GROUP_DEPTH_MAX);
			return false;
		}
		p += cl + (p[cl] == '/');
	}
	return true;
}

/* A member naming a group path (syntax only; references are checked once
 * every file is read). */
static int
m_path(struct item *it, const char *key, bool required, char **out)
{
	char why[MSG_MAX / 2];
	int r = m_str(it, key, required, GROUP_PATH_MAX - 1, out);

	if (r <= 0)
		return r;
	if (!path_valid(*out, why, sizeof(why))) {
		iprob(it, config_setting_get_member(it->s, key), "%s", why);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 1;
}

/* An enumerated string member. */
static int
m_enum(struct item *it, const char *key, const char *const *vals, size_t n, char **out)
{
	char hint[DECLARE_NAME_MAX + 32], list[256];
	int r = m_str(it, key, true, DECLARE_NAME_MAX - 1, out);

	if (r <= 0)
		return r;
	if (in_list(*out, vals, n))
		return 1;
	mean(hint, sizeof(hint), nearest(*out, vals, n));
	join(list, sizeof(list), vals, n);
	iprob(it, config_setting_get_member(it->s, key), "%s \"%s\" is not one of %s%s", key,
	    *out, list, hint);
	free(*out);
	*out = NULL;
	return -1;
}

/* ---- libconfig values as JSON ---- */

static json_t *
to_json(struct loader *ld, const config_setting_t *s, int depth)
{
	json_t *j = NULL;
	int t = config_setting_type(s);

	if (depth > JSON_DEPTH_MAX) {
		sprob(ld, s, "value nested deeper than %d levels", JSON_DEPTH_MAX);
		return NULL;
	}
	switch (t) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		j = json_integer(config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		j = json_real(config_setting_get_float(s));
		if (j == NULL) {
			sprob(ld, s, "a number must be finite");
			return NULL;
		}
		break;
	case CONFIG_TYPE_BOOL:
		j = json_boolean(config_setting_get_bool(s));
		break;
	case CONFIG_TYPE_STRING: {
		const char *v = config_setting_get_string(s);
		if (!utf8_valid(v)) {
			sprob(ld, s, "string is not valid UTF-8");
			return NULL;
		}
		j = json_string(v);
		break;
	}
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
	case CONFIG_TYPE_GROUP: {
		int n = config_setting_length(s);
		j = t == CONFIG_TYPE_GROUP ? json_object() : json_array();
		if (j == NULL)
			break;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			json_t *v = to_json(ld, e, depth + 1);
			int r;
			if (v == NULL) {
				json_decref(j);
				return NULL;
			}
			if (t == CONFIG_TYPE_GROUP)
				r = json_object_set_new(j, config_setting_name(e), v);
			else
				r = json_array_append_new(j, v);
			if (r < 0) {
				json_decref(j);
				j = NULL;
				break;
			}
		}
		break;
	}
	default:
		sprob(ld, s, "value of an unknown type");
		return NULL;
	}
	if (j == NULL)
		ld->oom = true;
	return j;
}

/* ---- sections ---- */

static void
parse_group(struct loader *ld, const config_setting_t *e)
{
	struct item it;
	struct declared_group *g;
	char *path;

	item_init(&it, ld, e, "groups");
	if (m_path(&it, "path", true, &path) > 0)
		item_name(&it, "group", path);
	check_members(&it, group_keys, ARRAY_LEN(group_keys));
	if ((g = append(ld, &ld->d->groups, &ld->d->n_groups, sizeof(*g))) == NULL) {
		free(path);
		return;
	}
	g->path = path;
	g->file = where(ld, e, &g->line);
}

static void
parse_relocation(struct loader *ld, const config_setting_t *e)
{
	struct item it;
	struct declared_relocation *r;
	struct reloc_rule rule;
	char why[MSG_MAX / 2];

	item_init(&it, ld, e, "relocation");
	if ((r = append(ld, &ld->d->relocations, &ld->d->n_relocations, sizeof(*r))) == NULL)
		return;
	r->order = (int)ld->d->n_relocations - 1;
	r->file = where(ld, e, &r->line);
	r->name = m_name(&it, "relocation rule");
	check_members(&it, reloc_keys, ARRAY_LEN(reloc_keys));
	m_path(&it, "group", true, &r->group);
	/* the sizes of struct reloc_rule, so every rule fits there */
	m_str(&it, "hostname", false, sizeof(rule.hostname) - 1, &r->hostname);
	m_str(&it, "subnet", false, sizeof(rule.subnet) - 1, &r->subnet);
	m_str(&it, "os", false, sizeof(rule.os) - 1, &r->os);
	m_str(&it, "tag", false, sizeof(rule.tag) - 1, &r->tag);
	if (r->hostname == NULL && config_setting_get_member(e, "hostname") == NULL)
		r->hostname = xstrdup(ld, "");
	if (r->subnet == NULL && config_setting_get_member(e, "subnet") == NULL)
		r->subnet = xstrdup(ld, "");
	if (r->os == NULL && config_setting_get_member(e, "os") == NULL)
		r->os = xstrdup(ld, "");
	if (r->tag == NULL && config_setting_get_member(e, "tag") == NULL)
		r->tag = xstrdup(ld, "");
	if (r->name == NULL || r->group == NULL || r->subnet == NULL || r->subnet[0] == '\0')
		return;
	/* the matcher's own check, so that what loads here also matches there */
	memset(&rule, 0, sizeof(rule));
	str_copy(rule.name, r->name, sizeof(rule.name));
	str_copy(rule.group, r->group, sizeof(rule.group));
	str_copy(rule.subnet, r->subnet, sizeof(rule.subnet));
	if (reloc_rule_check(&rule, why, sizeof(why)) < 0)
		sprob(ld, config_setting_get_member(e, "subnet"), "%s", why);
}

static bool
key_valid(const char *k)
{
	return k[0] != '\0' && chars_in(k, "_.-");
}

static json_t *
parse_settings(struct item *pit, const config_setting_t *list)
{
	struct loader *ld = pit->ld;
	json_t *arr = json_array();
	int n = config_setting_length(list);

	if (arr == NULL) {
		ld->oom = true;
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *vm;
		struct item it;
		char *key = NULL;
		bool locked = false;
		json_t *val = NULL, *obj;

		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			iprob(pit, e, "each setting must be a group { key = \"...\"; value = ...; "
			    "locked = true; }, not %s", type_name(config_setting_type(e)));
			continue;
		}
		it = *pit;
		it.s = e;
		if (m_str(&it, "key", true, KEY_MAX, &key) > 0) {
			if (!key_valid(key)) {
				iprob(&it, config_setting_get_member(e, "key"),
				    "setting key \"%s\" may hold only letters, digits, '_', '.' "
				    "and '-'", key);
				free(key);
				key = NULL;
			} else {
				(void)str_fmt(it.label, sizeof(it.label), "%s, setting \"%s\"",
				    pit->label, key);
			}
		}
		check_members(&it, setting_keys, ARRAY_LEN(setting_keys));
		m_bool(&it, "locked", &locked);
		if ((vm = config_setting_get_member(e, "value")) == NULL)
			iprob(&it, NULL, "missing 'value'");
		else
			val = to_json(ld, vm, 0);
		if (key != NULL) {
			/* a key given twice is a mistake, whichever should win */
			for (size_t j = 0; j < json_array_size(arr); j++) {
				json_t *o = json_array_get(arr, j);
				if (strcmp(json_string_value(json_object_get(o, "key")), key) == 0) {
					iprob(&it, config_setting_get_member(e, "key"),
					    "key \"%s\" is set twice in this policy", key);
					break;
				}
			}
		}
		if (key == NULL || val == NULL) {
			free(key);
			json_decref(val);
			continue;
		}
		obj = json_pack("{s:s, s:o, s:b}", "key", key, "value", val, "locked", locked);
		free(key);
		if (obj == NULL || json_array_append_new(arr, obj) < 0)
			ld->oom = true;
	}
	return arr;
}

static void
parse_policy(struct loader *ld, const config_setting_t *e)
{
	struct item it;
	struct declared_policy *p;
	const config_setting_t *m;

	item_init(&it, ld, e, "policies");
	if ((p = append(ld, &ld->d->policies, &ld->d->n_policies, sizeof(*p))) == NULL)
		return;
	p->file = where(ld, e, &p->line);
	p->active = p->inherit = true;
	p->name = m_name(&it, "policy");
	check_members(&it, policy_keys, ARRAY_LEN(policy_keys));
	m_path(&it, "group", true, &p->group);
	if (m_str(&it, "application", true, APP_MAX, &p->application) > 0 &&
	    !chars_in(p->application, "_.-")) {
		iprob(&it, config_setting_get_member(e, "application"),
		    "application \"%s\" may hold only letters, digits, '_', '.' and '-'",
		    p->application);
		free(p->application);
		p->application = NULL;
	}
	if (config_setting_get_member(e, "kind") == NULL)
		p->kind = xstrdup(ld, "normal");
	else
		m_enum(&it, "kind", kinds, ARRAY_LEN(kinds), &p->kind);
	m_bool(&it, "active", &p->active);
	m_bool(&it, "inherit", &p->inherit);

	/* outbreak: N threat events within a window start it */
	bool outbreak = p->kind != NULL && strcmp(p->kind, "outbreak") == 0;
	int rt = m_int(&it, "threshold", false, 1, 100000000, &p->threshold);
	int rw = m_int(&it, "window", false, 1, 10080, &p->window);
	int rq = m_int(&it, "quiet", false, 1, 10080, &p->quiet);
	if (outbreak && (rt == 0 || rw == 0))
		iprob(&it, NULL, "an outbreak policy needs 'threshold' (threat events) and "
		    "'window' (minutes), e.g. threshold = 5; window = 10;");
	if (!outbreak && p->kind != NULL && (rt != 0 || rw != 0 || rq != 0)) {
		iprob(&it, NULL, "'threshold', 'window' and 'quiet' are for outbreak policies "
		    "only; remove them or set kind = \"outbreak\"");
		p->threshold = p->window = p->quiet = 0;
	}
	if (outbreak && rq == 0)
		p->quiet = p->window;

	if ((m = config_setting_get_member(e, "settings")) == NULL) {
		if ((p->settings = json_array()) == NULL)
			ld->oom = true;
	} else if (!is_list(m)) {
		iprob(&it, m, "'settings' must be a list ( { key = \"...\"; value = ...; }, ... ), "
		    "not %s", type_name(config_setting_type(m)));
	} else {
		p->settings = parse_settings(&it, m);
	}
}

static const char *
host_problem(const char *h)
{
	if (h[0] == '\0')
		return "is empty";
	if (strlen(h) > HOST_MAX)
		return "is longer than 63 bytes";
	if (!chars_in(h, "._-"))
		return "may hold only letters, digits, '.', '_' and '-'";
	return NULL;
}

/* A non-empty list or array of strings (params.paths, params.argv, hosts). */
static bool
str_seq_ok(struct item *it, const config_setting_t *m, const char *what, size_t max)
{
	int n;

	if (!is_seq(m)) {
		iprob(it, m, "%s must be an array of strings [ \"...\", ... ], not %s", what,
		    type_name(config_setting_type(m)));
		return false;
	}
	n = config_setting_length(m);
	if (n == 0 || n > ARGV_MAX) {
		iprob(it, m, "%s must hold 1 to %d strings", what, ARGV_MAX);
		return false;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		const char *why;
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			iprob(it, e, "%s must hold only strings, not %s", what,
			    type_name(config_setting_type(e)));
			return false;
		}
		if ((why = text_problem(config_setting_get_string(e), max)) != NULL) {
			iprob(it, e, "%s: element %d %s", what, i + 1, why);
			return false;
		}
	}
	return true;
}

/* params by task type: which members, and the required one's check. */
static void
check_params(struct item *it, const char *type, const config_setting_t *params)
{
	static const char *const scan_keys[] = { "paths" };
	static const char *const command_keys[] = { "argv" };
	static const char *const purge_keys[] = { "days" };
	const config_setting_t *m;
	struct item pit = *it;

	if (params != NULL && config_setting_type(params) != CONFIG_TYPE_GROUP) {
		iprob(it, params, "'params' must be a group { ... }, not %s",
		    type_name(config_setting_type(params)));
		return;
	}
	pit.s = params;
	if (strcmp(type, "scan") == 0) {
		if (params == NULL || (m = config_setting_get_member(params, "paths")) == NULL) {
			iprob(it, params, "a scan task needs params.paths, e.g. "
			    "params = { paths = [ \"/home\" ]; };");
			return;
		}
		check_members(&pit, scan_keys, ARRAY_LEN(scan_keys));
		if (!str_seq_ok(it, m, "params.paths", PARAM_PATH_MAX))
			return;
		for (int i = 0; i < config_setting_length(m); i++) {
			const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
			if (config_setting_get_string(e)[0] != '/')
				iprob(it, e, "params.paths: \"%s\" is not an absolute path",
				    config_setting_get_string(e));
		}
	} else if (strcmp(type, "command") == 0) {
		if (params == NULL || (m = config_setting_get_member(params, "argv")) == NULL) {
			iprob(it, params, "a command task needs params.argv, e.g. "
			    "params = { argv = [ \"/usr/bin/apt-get\", \"update\" ]; };");
			return;
		}
		check_members(&pit, command_keys, ARRAY_LEN(command_keys));
		if (str_seq_ok(it, m, "params.argv", PARAM_PATH_MAX) &&
		    config_setting_get_string_elem(m, 0)[0] == '\0')
			iprob(it, m, "params.argv: the program (first element) must not be empty");
	} else if (strcmp(type, "server_purge_events") == 0) {
		int days;
		if (params == NULL) {
			iprob(it, NULL, "a server_purge_events task needs params.days, e.g. "
			    "params = { days = 90; };");
			return;
		}
		check_members(&pit, purge_keys, ARRAY_LEN(purge_keys));
		(void)str_fmt(pit.label, sizeof(pit.label), "%s, params", it->label);
		m_int(&pit, "days", true, 1, DAYS_MAX, &days);
	} else if (params != NULL && config_setting_length(params) > 0) {
		iprob(it, params, "a%s %s task takes no params; remove them",
		    type[0] == 'u' ? "n" : "", type);
	}
}

/* Exactly one scope member: group, hosts, selection, host or server. */
static void
parse_scope(struct item *it, struct declared_task *t)
{
	const config_setting_t *e = it->s, *m, *which = NULL;
	const char *given[ARRAY_LEN(scope_keys)];
	char list[256];
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_LEN(scope_keys); i++)
		if ((m = config_setting_get_member(e, scope_keys[i])) != NULL) {
			given[n++] = scope_keys[i];
			which = m;
		}
	if (n == 0) {
		iprob(it, NULL, "no scope; give exactly one of group, hosts, selection, host "
		    "or server");
		return;
	}
	if (n > 1) {
		join(list, sizeof(list), given, n);
		iprob(it, NULL, "several scopes (%s); give exactly one", list);
		return;
	}
	const char *name = config_setting_name(which);
	bool server_type = t->type != NULL && strncmp(t->type, "server_", 7) == 0;
	if (strcmp(name, "group") == 0) {
		t->scope = DECLARED_SCOPE_GROUP;
		m_path(it, "group", true, &t->scope_name);
	} else if (strcmp(name, "selection") == 0) {
		t->scope = DECLARED_SCOPE_SELECTION;
		m_str(it, "selection", true, DECLARE_NAME_MAX - 1, &t->scope_name);
	} else if (strcmp(name, "host") == 0) {
		const char *why;
		t->scope = DECLARED_SCOPE_HOST;
		if (m_str(it, "host", true, HOST_MAX + 1, &t->scope_name) > 0 &&
		    (why = host_problem(t->scope_name)) != NULL) {
			iprob(it, which, "host name \"%s\" %s", t->scope_name, why);
			free(t->scope_name);
			t->scope_name = NULL;
		}
	} else if (strcmp(name, "hosts") == 0) {
		t->scope = DECLARED_SCOPE_HOSTS;
		if (!str_seq_ok(it, which, "hosts", HOST_MAX + 1))
			return;
		int nh = config_setting_length(which);
		if ((t->hosts = calloc((size_t)nh, sizeof(*t->hosts))) == NULL) {
			it->ld->oom = true;
			return;
		}
		for (int i = 0; i < nh; i++) {
			const config_setting_t *h = config_setting_get_elem(which, (unsigned)i);
			const char *hn = config_setting_get_string(h), *why;
			if ((why = host_problem(hn)) != NULL) {
				iprob(it, h, "hosts: host name \"%s\" %s", hn, why);
				continue;
			}
			bool dup = false;
			for (size_t j = 0; j < t->n_hosts && !dup; j++)
				dup = strcmp(t->hosts[j], hn) == 0;
			if (dup) {
				iprob(it, h, "hosts: \"%s\" is listed twice", hn);
				continue;
			}
			if ((t->hosts[t->n_hosts] = xstrdup(it->ld, hn)) != NULL)
				t->n_hosts++;
		}
	} else {
		t->scope = DECLARED_SCOPE_SERVER;
		if (config_setting_type(which) != CONFIG_TYPE_BOOL ||
		    !config_setting_get_bool(which)) {
			iprob(it, which, "'server' takes only the value true (a task run by the "
			    "server itself)");
			return;
		}
		if (t->type != NULL && !server_type)
			iprob(it, which, "a%s %s task runs on agents: give a group, hosts, "
			    "selection or host instead of server", t->type[0] == 'u' ? "n" : "",
			    t->type);
		return;
	}
	if (server_type)
		iprob(it, which, "a %s task runs on the server: its scope must be "
		    "server = true;", t->type);
}

static void
parse_task(struct loader *ld, const config_setting_t *e)
{
	struct item it;
	struct declared_task *t;
	const config_setting_t *params;
	struct schedule sched;
	char why[MSG_MAX / 2];

	item_init(&it, ld, e, "tasks");
	if ((t = append(ld, &ld->d->tasks, &ld->d->n_tasks, sizeof(*t))) == NULL)
		return;
	t->file = where(ld, e, &t->line);
	t->time_limit = 3600;
	t->name = m_name(&it, "task");
	check_members(&it, task_keys, ARRAY_LEN(task_keys));
	m_enum(&it, "type", task_types, ARRAY_LEN(task_types), &t->type);
	params = config_setting_get_member(e, "params");
	if (t->type != NULL)
		check_params(&it, t->type, params);
	if (params != NULL && config_setting_type(params) == CONFIG_TYPE_GROUP)
		t->params = to_json(ld, params, 0);
	else if (params == NULL && (t->params = json_object()) == NULL)
		ld->oom = true;
	parse_scope(&it, t);

	if (config_setting_get_member(e, "schedule") == NULL)
		t->schedule = xstrdup(ld, "manual");
	else if (m_str(&it, "schedule", true, SCHEDULE_TEXT_MAX - 1, &t->schedule) > 0 &&
	    schedule_parse(t->schedule, &sched, why, sizeof(why)) < 0)
		iprob(&it, config_setting_get_member(e, "schedule"), "%s", why);
	m_int(&it, "random_delay", false, 0, 86400, &t->random_delay);
	m_int(&it, "time_limit", false, 1, 7 * 86400, &t->time_limit);
}

/* The filter grammar is daemon/selection.c's: parse it and drop the result. */
static int
filter_check(const char *filter, char *why, size_t len)
{
	struct selection *f = NULL;
	char msg[MSG_MAX / 2];

	if (selection_parse(filter, &f, msg, sizeof(msg)) < 0) {
		(void)str_fmt(why, len, "filter \"%s\": %s", filter, msg);
		return -1;
	}
	selection_free(f);
	return 0;
}

static void
parse_selection(struct loader *ld, const config_setting_t *e)
{
	struct item it;
	struct declared_selection *s;
	char why[MSG_MAX / 2];

	item_init(&it, ld, e, "selections");
	if ((s = append(ld, &ld->d->selections, &ld->d->n_selections, sizeof(*s))) == NULL)
		return;
	s->file = where(ld, e, &s->line);
	s->name = m_name(&it, "selection");
	check_members(&it, selection_keys, ARRAY_LEN(selection_keys));
	if (m_str(&it, "filter", true, SELECTION_TEXT_MAX - 1, &s->filter) > 0 &&
	    filter_check(s->filter, why, sizeof(why)) < 0)
		iprob(&it, config_setting_get_member(e, "filter"), "%s", why);
}

static void
parse_thresholds(struct loader *ld, const config_setting_t *e)
{
	struct item it;
	struct declared_thresholds *t;
	int set = 0;

	item_init(&it, ld, e, "thresholds");
	if ((t = append(ld, &ld->d->thresholds, &ld->d->n_thresholds, sizeof(*t))) == NULL)
		return;
	t->file = where(ld, e, &t->line);
	if (m_path(&it, "group", true, &t->group) > 0)
		(void)str_fmt(it.label, sizeof(it.label), "thresholds of \"%s\"", t->group);
	check_members(&it, threshold_keys, ARRAY_LEN(threshold_keys));
	set += m_int(&it, "db_warning_days", false, 1, DAYS_MAX, &t->db_warning_days) != 0;
	set += m_int(&it, "db_critical_days", false, 1, DAYS_MAX, &t->db_critical_days) != 0;
	set += m_int(&it, "not_connected_warning_days", false, 1, DAYS_MAX,
	    &t->not_connected_warning_days) != 0;
	set += m_int(&it, "not_connected_critical_days", false, 1, DAYS_MAX,
	    &t->not_connected_critical_days) != 0;
	if (set == 0)
		iprob(&it, NULL, "no threshold given; set db_warning_days, db_critical_days, "
		    "not_connected_warning_days or not_connected_critical_days");
	if (t->db_warning_days > 0 && t->db_critical_days > 0 &&
	    t->db_warning_days > t->db_critical_days)
		iprob(&it, NULL, "db_warning_days (%d) must not exceed db_critical_days (%d)",
		    t->db_warning_days, t->db_critical_days);
	if (t->not_connected_warning_days > 0 && t->not_connected_critical_days > 0 &&
	    t->not_connected_warning_days > t->not_connected_critical_days)
		iprob(&it, NULL, "not_connected_warning_days (%d) must not exceed "
		    "not_connected_critical_days (%d)", t->not_connected_warning_days,
		    t->not_connected_critical_days);
}

static void
parse_root(struct loader *ld, const config_setting_t *root)
{
	static void (*const parsers[])(struct loader *, const config_setting_t *) = {
		parse_group, parse_relocation, parse_policy, parse_task, parse_selection,
		parse_thresholds,
	};
	char hint[DECLARE_NAME_MAX + 32], list[256];
	int n = config_setting_length(root);

	for (int i = 0; i < n && !ld->oom; i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t k;

		for (k = 0; k < ARRAY_LEN(top_keys); k++)
			if (strcmp(name, top_keys[k]) == 0)
				break;
		if (k == ARRAY_LEN(top_keys)) {
			mean(hint, sizeof(hint), nearest(name, top_keys, ARRAY_LEN(top_keys)));
			join(list, sizeof(list), top_keys, ARRAY_LEN(top_keys));
			sprob(ld, s, "unknown setting '%s'%s; known: %s", name, hint, list);
			continue;
		}
		if (!is_list(s)) {
			sprob(ld, s, "'%s' must be a list of groups: %s = ( { ... }, { ... } );, "
			    "not %s", name, name, type_name(config_setting_type(s)));
			continue;
		}
		for (int j = 0; j < config_setting_length(s) && !ld->oom; j++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)j);
			if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
				sprob(ld, e, "%s: each element must be a group { ... }, not %s",
				    name, type_name(config_setting_type(e)));
				continue;
			}
			parsers[k](ld, e);
		}
	}
}

/* ---- checks across files ---- */

struct nref {
	const char *name;
	size_t idx;
	const char *file;
	int line;
};

static int
nref_cmp(const void *a, const void *b)
{
	const struct nref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The objects of one class with a name, sorted by name then declaration. */
static struct nref *
nref_build(struct loader *ld, size_t n, void (*get)(const struct declared *, size_t,
    struct nref *), size_t *count)
{
	struct nref *v = calloc(n + 1, sizeof(*v));
	size_t k = 0;

	*count = 0;
	if (v == NULL) {
		ld->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		get(ld->d, i, &v[k]);
		v[k].idx = i;
		if (v[k].name != NULL)
			k++;
	}
	qsort(v, k, sizeof(*v), nref_cmp);
	*count = k;
	return v;
}

static const struct nref *
nref_find(const struct nref *v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(v[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(v[lo].name, name) == 0 ? &v[lo] : NULL;
}

static void
dup_check(struct loader *ld, const struct nref *v, size_t n, const char *what,
    const char *rule)
{
	for (size_t i = 1; i < n; i++) {
		size_t first = i - 1;
		while (first > 0 && strcmp(v[first - 1].name, v[i].name) == 0)
			first--;
		if (strcmp(v[first].name, v[i].name) != 0)
			continue;
		add_problem(ld, v[i].file, v[i].line, "%s \"%s\" is already declared at %s:%d; "
		    "%s", what, v[i].name, v[first].file, v[first].line, rule);
	}
}

static void
group_at(const struct declared *d, size_t i, struct nref *r)
{
	r->name = d->groups[i].path;
	r->file = d->groups[i].file;
	r->line = d->groups[i].line;
}

static void
reloc_at(const struct declared *d, size_t i, struct nref *r)
{
	r->name = d->relocations[i].name;
	r->file = d->relocations[i].file;
	r->line = d->relocations[i].line;
}

static void
policy_at(const struct declared *d, size_t i, struct nref *r)
{
	r->name = d->policies[i].name;
	r->file = d->policies[i].file;
	r->line = d->policies[i].line;
}

static void
task_at(const struct declared *d, size_t i, struct nref *r)
{
	r->name = d->tasks[i].name;
	r->file = d->tasks[i].file;
	r->line = d->tasks[i].line;
}

static void
selection_at(const struct declared *d, size_t i, struct nref *r)
{
	r->name = d->selections[i].name;
	r->file = d->selections[i].file;
	r->line = d->selections[i].line;
}

static void
thresholds_at(const struct declared *d, size_t i, struct nref *r)
{
	r->name = d->thresholds[i].group;
	r->file = d->thresholds[i].file;
	r->line = d->thresholds[i].line;
}

/* The declared name nearest to a misspelt reference. */
static const char *
nearest_ref(const struct nref *v, size_t n, const char *name)
{
	size_t len = strlen(name), best = SIZE_MAX;
	size_t limit = len <= 4 ? 1 : len <= 12 ? 2 : 3;
	const char *r = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(name, v[i].name);
		if (d > 0 && d <= limit && d < best) {
			best = d;
			r = v[i].name;
		}
	}
	return r;
}

static void
group_ref(struct loader *ld, const struct nref *groups, size_t ng, const char *what,
    const char *name, const char *path, const char *file, int line)
{
	char hint[GROUP_PATH_MAX + 32];

	if (path == NULL || nref_find(groups, ng, path) != NULL)
		return;
	mean(hint, sizeof(hint), nearest_ref(groups, ng, path));
	add_problem(ld, file, line, "%s%s%s%s: group \"%s\" is not declared%s; declare it: "
	    "groups = ( { path = \"%s\"; } );", what, name ? " \"" : "", name ? name : "",
	    name ? "\"" : "", path, hint, path);
}

static int
active_cmp(const void *a, const void *b)
{
	const struct declared_policy *x = *(const struct declared_policy *const *)a;
	const struct declared_policy *y = *(const struct declared_policy *const *)b;
	int c;

	if ((c = strcmp(x->group, y->group)) != 0)
		return c;
	if ((c = strcmp(x->application, y->application)) != 0)
		return c;
	if ((c = strcmp(x->kind, y->kind)) != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* At most one active policy per (group, application, kind). */
static void
active_check(struct loader *ld)
{
	struct declared *d = ld->d;
	const struct declared_policy **v = calloc(d->n_policies + 1, sizeof(*v));
	size_t n = 0;

	if (v == NULL) {
		ld->oom = true;
		return;
	}
	for (size_t i = 0; i < d->n_policies; i++) {
		const struct declared_policy *p = &d->policies[i];
		if (p->active && p->name != NULL && p->group != NULL && p->application != NULL &&
		    p->kind != NULL)
			v[n++] = p;
	}
	qsort(v, n, sizeof(*v), active_cmp);
	for (size_t i = 1, first = 0; i < n; i++) {
		const struct declared_policy *a = v[first], *b = v[i];
		if (strcmp(a->group, b->group) != 0 || strcmp(a->application, b->application) != 0 ||
		    strcmp(a->kind, b->kind) != 0) {
			first = i;
			continue;
		}
		add_problem(ld, b->file, b->line, "policy \"%s\": a second active %s policy for "
		    "\"%s\" in group \"%s\" (the first is \"%s\" at %s:%d); set active = false "
		    "on one of them", b->name, b->kind, b->application, b->group, a->name,
		    a->file, a->line);
	}
	free(v);
}

static void
cross_check(struct loader *ld)
{
	struct declared *d = ld->d;
	struct nref *groups, *v;
	size_t ng, n;

	if ((groups = nref_build(ld, d->n_groups, group_at, &ng)) == NULL)
		return;
	dup_check(ld, groups, ng, "group", "each group is declared once");
	/* parents first: groups come only from declarations (or the API) */
	for (size_t i = 0; i < d->n_groups; i++) {
		const struct declared_group *g = &d->groups[i];
		char parent[GROUP_PATH_MAX];
		char *slash;
		if (g->path == NULL || (slash = strrchr(g->path, '/')) == NULL)
			continue;
		str_copy(parent, g->path, sizeof(parent));
		parent[slash - g->path] = '\0';
		if (nref_find(groups, ng, parent) == NULL)
			add_problem(ld, g->file, g->line, "group \"%s\": its parent group \"%s\" "
			    "is not declared; add { path = \"%s\"; } to groups", g->path, parent,
			    parent);
	}
	for (size_t i = 0; i < d->n_relocations; i++) {
		const struct declared_relocation *r = &d->relocations[i];
		group_ref(ld, groups, ng, "relocation rule", r->name, r->group, r->file, r->line);
	}
	for (size_t i = 0; i < d->n_policies; i++) {
		const struct declared_policy *p = &d->policies[i];
		group_ref(ld, groups, ng, "policy", p->name, p->group, p->file, p->line);
	}
	for (size_t i = 0; i < d->n_tasks; i++) {
		const struct declared_task *t = &d->tasks[i];
		if (t->scope == DECLARED_SCOPE_GROUP)
			group_ref(ld, groups, ng, "task", t->name, t->scope_name, t->file, t->line);
	}
	for (size_t i = 0; i < d->n_thresholds; i++) {
		const struct declared_thresholds *t = &d->thresholds[i];
		group_ref(ld, groups, ng, "thresholds", NULL, t->group, t->file, t->line);
	}
	free(groups);

	if ((v = nref_build(ld, d->n_relocations, reloc_at, &n)) != NULL)
		dup_check(ld, v, n, "relocation rule", "names must be unique");
	free(v);
	if ((v = nref_build(ld, d->n_policies, policy_at, &n)) != NULL)
		dup_check(ld, v, n, "policy", "names must be unique");
	free(v);
	if ((v = nref_build(ld, d->n_tasks, task_at, &n)) != NULL)
		dup_check(ld, v, n, "task", "names must be unique");
	free(v);
	if ((v = nref_build(ld, d->n_thresholds, thresholds_at, &n)) != NULL)
		dup_check(ld, v, n, "thresholds for group", "give each group's thresholds once");
	free(v);
	if ((v = nref_build(ld, d->n_selections, selection_at, &n)) != NULL) {
		dup_check(ld, v, n, "selection", "names must be unique");
		for (size_t i = 0; i < d->n_tasks; i++) {
			const struct declared_task *t = &d->tasks[i];
			char hint[DECLARE_NAME_MAX + 32];
			if (t->scope != DECLARED_SCOPE_SELECTION || t->scope_name == NULL ||
			    nref_find(v, n, t->scope_name) != NULL)
				continue;
			mean(hint, sizeof(hint), nearest_ref(v, n, t->scope_name));
			add_problem(ld, t->file, t->line, "task \"%s\": selection \"%s\" is not "
			    "declared%s; declare it in selections", t->name ? t->name : "",
			    t->scope_name, hint);
		}
	}
	free(v);
	active_check(ld);
}

static size_t
path_depth(const char *p)
{
	size_t n = 1;

	for (; *p != '\0'; p++)
		n += *p == '/';
	return n;
}

/* Parents before children: by depth, declaration order kept within a
 * depth (a stable pass per level; the tree is at most GROUP_DEPTH_MAX deep). */
static int
groups_order(struct declared *d)
{
	struct declared_group *v;
	size_t k = 0;

	if (d->n_groups < 2)
		return 0;
	if ((v = calloc(d->n_groups, sizeof(*v))) == NULL)
		return -1;
	for (size_t depth = 1; depth <= GROUP_DEPTH_MAX && k < d->n_groups; depth++)
		for (size_t i = 0; i < d->n_groups; i++)
			if (path_depth(d->groups[i].path) == depth)
				v[k++] = d->groups[i];
	free(d->groups);
	d->groups = v;
	return 0;
}

/* ---- files ---- */

static void
read_one(struct loader *ld, const char *dir, const char *path)
{
	config_t cfg;
	struct stat st;

	ld->cur_file = intern_file(ld, path);
	if (stat(path, &st) < 0) {
		add_problem(ld, ld->cur_file, 0, "cannot read: %s", strerror(errno));
		return;
	}
	if (st.st_size > DECLARE_FILE_MAX) {
		add_problem(ld, ld->cur_file, 0, "larger than %d MiB; split it into several "
		    "files", DECLARE_FILE_MAX / (1024 * 1024));
		return;
	}
	config_init(&cfg);
	config_set_include_dir(&cfg, dir);
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO) {
			add_problem(ld, ld->cur_file, 0, "cannot read: %s", strerror(errno));
		} else {
			const char *ef = config_error_file(&cfg);
			ef = ef != NULL ? intern_file(ld, ef) : ld->cur_file;
			add_problem(ld, ef, config_error_line(&cfg), "%s",
			    config_error_text(&cfg));
		}
	} else {
		parse_root(ld, config_root_setting(&cfg));
	}
	config_destroy(&cfg);
	ld->cur_file = NULL;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
wanted(const char *dir, const struct dirent *de)
{
	char path[PATH_MAX];
	struct stat st;
	size_t len = strlen(de->d_name);

	if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
		return false;
	if (str_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) < 0)
		return true;          /* reported when read */
	return stat(path, &st) < 0 || S_ISREG(st.st_mode);
}

/* The *.conf names of dir, sorted; 0 with *n = 0 when dir does not exist. */
static int
list_dir(struct loader *ld, const char *dir, char ***names, size_t *n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (dp == NULL) {
		if (errno == ENOENT)
			return 0;
		add_problem(ld, dir, 0, "cannot open the directory: %s", strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(dp)) != NULL) {
		if (!wanted(dir, de))
			continue;
		if (*n == DECLARE_FILES_MAX) {
			add_problem(ld, dir, 0, "more than %d .conf files; merge some of them",
			    DECLARE_FILES_MAX);
			break;
		}
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **v = realloc(*names, nc * sizeof(*v));
			if (v == NULL)
				goto oom;
			*names = v;
			cap = nc;
		}
		if (((*names)[*n] = strdup(de->d_name)) == NULL)
			goto oom;
		(*n)++;
	}
	if (de == NULL && errno != 0)
		add_problem(ld, dir, 0, "cannot list the directory: %s", strerror(errno));
	closedir(dp);
	if (*n > 1)
		qsort(*names, *n, sizeof(**names), name_cmp);
	return 0;
oom:
	ld->oom = true;
	closedir(dp);
	return -1;
}

int
declare_load(const char *dir, struct declared **out, char *err, size_t errlen)
{
	struct loader ld;
	char **names = NULL, path[PATH_MAX];
	size_t n = 0;
	int rc = -1;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (dir == NULL || out == NULL) {
		if (err != NULL)
			str_copy(err, "declare_load: no directory or output given", errlen);
		return -1;
	}
	memset(&ld, 0, sizeof(ld));
	if ((ld.d = calloc(1, sizeof(*ld.d))) == NULL)
		goto done;
	if (list_dir(&ld, dir, &names, &n) == 0) {
		size_t dl = strlen(dir);
		bool slash = dl > 0 && dir[dl - 1] == '/';
		for (size_t i = 0; i < n && !ld.oom; i++) {
			if (str_fmt(path, sizeof(path), "%s%s%s", dir, slash ? "" : "/",
			    names[i]) < 0) {
				add_problem(&ld, dir, 0, "%s: path too long", names[i]);
				continue;
			}
			read_one(&ld, dir, path);
		}
		if (!ld.oom)
			cross_check(&ld);
	}
	if (ld.oom)
		goto done;
	if (ld.n_probs > 0) {
		problems_write(&ld, err, errlen);
		goto done;
	}
	if (groups_order(ld.d) < 0) {
		ld.oom = true;
		goto done;
	}
	*out = ld.d;
	ld.d = NULL;
	rc = 0;
done:
	if (ld.oom && err != NULL)
		str_copy(err, "declare: out of memory", errlen);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	for (size_t i = 0; i < ld.n_probs; i++)
		free(ld.probs[i].text);
	free(ld.probs);
	declare_free(ld.d);
	return rc;
}

void
declare_free(struct declared *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n_groups; i++)
		free(d->groups[i].path);
	free(d->groups);
	for (size_t i = 0; i < d->n_relocations; i++) {
		struct declared_relocation *r = &d->relocations[i];
		free(r->name);
		free(r->group);
		free(r->hostname);
		free(r->subnet);
		free(r->os);
		free(r->tag);
	}
	free(d->relocations);
	for (size_t i = 0; i < d->n_policies; i++) {
		struct declared_policy *p = &d->policies[i];
		free(p->name);
		free(p->group);
		free(p->application);
		free(p->kind);
		json_decref(p->settings);
	}
	free(d->policies);
	for (size_t i = 0; i < d->n_tasks; i++) {
		struct declared_task *t = &d->tasks[i];
		free(t->name);
		free(t->type);
		json_decref(t->params);
		free(t->scope_name);
		for (size_t j = 0; j < t->n_hosts; j++)
			free(t->hosts[j]);
		free(t->hosts);
		free(t->schedule);
	}
	free(d->tasks);
	for (size_t i = 0; i < d->n_selections; i++) {
		free(d->selections[i].name);
		free(d->selections[i].filter);
	}
	free(d->selections);
	for (size_t i = 0; i < d->n_thresholds; i++)
		free(d->thresholds[i].group);
	free(d->thresholds);
	for (size_t i = 0; i < d->n_files; i++)
		free(d->files[i]);
	free(d->files);
	free(d);
}

const char *
declare_scope_name(enum declared_scope s)
{
	switch (s) {
	case DECLARED_SCOPE_GROUP:	return "group";
	case DECLARED_SCOPE_HOSTS:	return "hosts";
	case DECLARED_SCOPE_SELECTION:	return "selection";
	case DECLARED_SCOPE_HOST:	return "host";
	case DECLARED_SCOPE_SERVER:	return "server";
	}
	return "?";
}
