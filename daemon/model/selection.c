/* selection.c — see selection.h. A hand-written scanner: the grammar is a
 * flat list of comparisons, so no parser generator is worth it. */
#include "model/selection.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define DAY_S 86400.0
#define DAYS_MAX 1000000.0

enum sel_field { F_STATUS, F_GROUP, F_OS, F_NAME, F_REASON, F_LAST_SEEN, F_DB_AGE };
enum sel_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

static const struct {
	const char *name;
	enum sel_field f;
	bool ordered;             /* < <= > >= allowed */
} fields[] = {
	{ "status", F_STATUS, true },
	{ "group", F_GROUP, false },
	{ "os", F_OS, false },
	{ "name", F_NAME, false },
	{ "reason", F_REASON, false },
	{ "last_seen_days", F_LAST_SEEN, true },
	{ "db_age_days", F_DB_AGE, true },
};

static const char *const op_names[] = { "=", "!=", "<", "<=", ">", ">=" };

struct sel_term {
	enum sel_field f;
	enum sel_op op;
	char *str;                /* group, os, name: owned */
	double num;               /* days */
	int ival;                 /* status value or reason bit */
};

struct selection {
	size_t n;
	struct sel_term t[SELECTION_TERMS_MAX];
};

struct scan {
	const char *text, *p;
	char *err;
	size_t errlen;
};

static int serr(struct scan *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
serr(struct scan *sc, const char *fmt, ...)
{
	va_list ap;
	if (sc->err == NULL || sc->errlen == 0)
		return -1;
	va_start(ap, fmt);
	(void)vsnprintf(sc->err, sc->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
col(const struct scan *sc, const char *at)
{
	return (int)(at - sc->text) + 1;
}

static void
skip_ws(struct scan *sc)
{
	while (*sc->p == ' ' || *sc->p == '\t')
		sc->p++;
}

static bool
word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* A value: a bare word (up to a blank) or a quoted string, into a new
 * string *out (NULL when there is none); *at gets where it starts. -1 on
 * an error (reported). */
static int
scan_value(struct scan *sc, const char **at, char **out)
{
	*out = NULL;
	skip_ws(sc);
	*at = sc->p;
	if (*sc->p == '"') {
		const char *q = sc->p + 1;
		char *v = malloc(strlen(q) + 1);
		size_t k = 0;
		if (v == NULL)
			return serr(sc, "out of memory");
		for (; *q != '"'; q++) {
			if (*q == '\0') {
				free(v);
				return serr(sc, "unterminated string at column %d", col(sc, *at));
			}
			if (*q == '\\' && (q[1] == '"' || q[1] == '\\'))
				q++;
			v[k++] = *q;
		}
		v[k] = '\0';
		sc->p = q + 1;
		if (*sc->p != '\0' && *sc->p != ' ' && *sc->p != '\t') {
			free(v);
			return serr(sc, "expected a blank after the string at column %d", col(sc, sc->p));
		}
		*out = v;
		return 0;
	}
	size_t len = strcspn(sc->p, " \t");
	if (len == 0)
		return 0;
	if ((*out = strndup(sc->p, len)) == NULL)
		return serr(sc, "out of memory");
	sc->p += len;
	return 0;
}

static int
parse_status(const char *v)
{
	if (strcasecmp(v, "ok") == 0)
		return STATUS_OK;
	if (strcasecmp(v, "warning") == 0)
		return STATUS_WARNING;
	if (strcasecmp(v, "critical") == 0)
		return STATUS_CRITICAL;
	return -1;
}

static int
parse_reason(const char *v)
{
	for (int i = 0; i < REASON_COUNT; i++)
		if (strcmp(v, status_reason_name((enum status_reason)(1u << i))) == 0)
			return (int)(1u << i);
	return -1;
}

static int
parse_term(struct scan *sc, struct sel_term *t)
{
	skip_ws(sc);
	const char *fat = sc->p;
	size_t flen = 0;
	while (word_char(fat[flen]))
		flen++;
	if (flen == 0)
		return serr(sc, "expected a field name at column %d", col(sc, fat));
	int fi = -1;
	for (size_t i = 0; i < ARRAY_LEN(fields); i++)
		if (strlen(fields[i].name) == flen && strncasecmp(fat, fields[i].name, flen) == 0)
			fi = (int)i;
	if (fi < 0)
		return serr(sc, "unknown field \"%.*s\" at column %d; use status, group, os, name, "
		    "reason, last_seen_days or db_age_days", (int)(flen < 40 ? flen : 40), fat,
		    col(sc, fat));
	t->f = fields[fi].f;
	sc->p = fat + flen;

	skip_ws(sc);
	const char *oat = sc->p;
	if (oat[0] == '!' && oat[1] == '=')
		t->op = OP_NE;
	else if (oat[0] == '<' && oat[1] == '=')
		t->op = OP_LE;
	else if (oat[0] == '>' && oat[1] == '=')
		t->op = OP_GE;
	else if (oat[0] == '=')
		t->op = OP_EQ;
	else if (oat[0] == '<')
		t->op = OP_LT;
	else if (oat[0] == '>')
		t->op = OP_GT;
	else
		return serr(sc, "expected an operator (= != < <= > >=) after \"%s\" at column %d",
		    fields[fi].name, col(sc, oat));
	sc->p += strlen(op_names[t->op]);
	if (t->op >= OP_LT && !fields[fi].ordered)
		return serr(sc, "operator \"%s\" does not apply to %s at column %d; use = or !=",
		    op_names[t->op], fields[fi].name, col(sc, oat));

	const char *vat;
	char *v;
	if (scan_value(sc, &vat, &v) < 0)
		return -1;
	if (v == NULL)
		return serr(sc, "missing value after \"%s\" at column %d", op_names[t->op],
		    col(sc, vat));
	switch (t->f) {
	case F_STATUS:
		if ((t->ival = parse_status(v)) < 0) {
			serr(sc, "unknown status \"%.40s\" at column %d; use OK, Warning or Critical",
			    v, col(sc, vat));
			free(v);
			return -1;
		}
		free(v);
		break;
	case F_REASON:
		if ((t->ival = parse_reason(v)) < 0) {
			char names[256] = "";
			size_t off = 0;
			for (int i = 0; i < REASON_COUNT; i++) {
				int w = snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
				    status_reason_name((enum status_reason)(1u << i)));
				if (w < 0 || (size_t)w >= sizeof(names) - off)
					break;
				off += (size_t)w;
			}
			serr(sc, "unknown reason \"%.40s\" at column %d; use one of %s", v,
			    col(sc, vat), names);
			free(v);
			return -1;
		}
		free(v);
		break;
	case F_LAST_SEEN:
	case F_DB_AGE: {
		char *end;
		t->num = strtod(v, &end);
		if (end == v || *end != '\0' || !isfinite(t->num) || t->num < 0 || t->num > DAYS_MAX
		    || !(isdigit((unsigned char)v[0]) || v[0] == '.')) {
			serr(sc, "\"%.40s\" at column %d is not a number of days", v, col(sc, vat));
			free(v);
			return -1;
		}
		free(v);
		break;
	}
	case F_GROUP: {
		size_t len = strlen(v);
		while (len > 1 && v[len - 1] == '/')
			v[--len] = '\0';   /* "Servers/" = "Servers" */
		t->str = v;
		break;
	}
	case F_OS:
	case F_NAME:
		t->str = v;
		break;
	}
	return 0;
}

void
selection_free(struct selection *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->t[i].str);
	free(s);
}

int
selection_parse(const char *text, struct selection **out, char *err, size_t errlen)
{
	struct scan sc = { text, text, err, errlen };

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (text == NULL)
		return serr(&sc, "no filter given");
	if (strnlen(text, SELECTION_TEXT_MAX + 1) > SELECTION_TEXT_MAX)
		return serr(&sc, "the filter is longer than %d characters", SELECTION_TEXT_MAX);
	for (const char *c = text; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return serr(&sc, "control character at column %d", col(&sc, c));
	skip_ws(&sc);
	if (*sc.p == '\0')
		return serr(&sc, "the filter is empty; write conditions such as "
		    "\"status != OK and db_age_days > 3\"");

	struct selection *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return serr(&sc, "out of memory");
	for (;;) {
		if (s->n == SELECTION_TERMS_MAX) {
			serr(&sc, "more than %d conditions", SELECTION_TERMS_MAX);
			goto fail;
		}
		if (parse_term(&sc, &s->t[s->n]) < 0) {
			free(s->t[s->n].str);
			goto fail;
		}
		s->n++;
		skip_ws(&sc);
		if (*sc.p == '\0')
			break;
		const char *at = sc.p;
		size_t wl = 0;
		while (word_char(at[wl]))
			wl++;
		if (wl != 3 || strncasecmp(at, "and", 3) != 0 || (at[3] != ' ' && at[3] != '\t')) {
			size_t show = wl > 0 ? wl : strcspn(at, " \t");
			serr(&sc, "expected \"and\" at column %d, found \"%.*s\"%s", col(&sc, at),
			    (int)(show < 40 ? show : 40), at,
			    wl == 2 && strncasecmp(at, "or", 2) == 0 ? "; only \"and\" joins conditions" : "");
			goto fail;
		}
		sc.p = at + 3;
	}
	*out = s;
	return 0;
fail:
	selection_free(s);
	return -1;
}

static bool
cmp_num(double a, enum sel_op op, double b)
{
	switch (op) {
	case OP_EQ: return a == b;
	case OP_NE: return a != b;
	case OP_LT: return a < b;
	case OP_LE: return a <= b;
	case OP_GT: return a > b;
	case OP_GE: return a >= b;
	}
	return false;
}

static bool
in_group(const char *path, const char *g)
{
	if (path == NULL || path[0] == '\0')
		return strcmp(g, "Unassigned") == 0;
	size_t gl = strlen(g);
	return strncmp(path, g, gl) == 0 && (path[gl] == '\0' || path[gl] == '/');
}

static bool
os_matches(const char *pat, const struct sel_host *h)
{
	char idver[256];
	if (h->os_id != NULL && fnmatch(pat, h->os_id, FNM_CASEFOLD) == 0)
		return true;
	if (h->os_id != NULL && h->os_version_id != NULL
	    && str_fmt(idver, sizeof(idver), "%s %s", h->os_id, h->os_version_id) >= 0
	    && fnmatch(pat, idver, FNM_CASEFOLD) == 0)
		return true;
	return h->os_pretty != NULL && fnmatch(pat, h->os_pretty, FNM_CASEFOLD) == 0;
}

static bool
term_matches(const struct sel_term *t, const struct sel_host *h)
{
	bool eq;
	switch (t->f) {
	case F_STATUS:
		return cmp_num((double)h->status, t->op, (double)t->ival);
	case F_LAST_SEEN: {
		double age = h->last_seen == 0 ? INFINITY : (double)(h->now - h->last_seen) / DAY_S;
		return cmp_num(age, t->op, t->num);
	}
	case F_DB_AGE: {
		/* unknown counts as infinitely old, as in status_evaluate() */
		double age = h->db_time == 0 ? INFINITY : (double)(h->now - h->db_time) / DAY_S;
		return cmp_num(age, t->op, t->num);
	}
	case F_GROUP:
		eq = in_group(h->group_path, t->str);
		break;
	case F_OS:
		eq = os_matches(t->str, h);
		break;
	case F_NAME:
		eq = h->name != NULL && fnmatch(t->str, h->name, FNM_CASEFOLD) == 0;
		break;
	case F_REASON:
		eq = (h->reasons & (uint32_t)t->ival) != 0;
		break;
	default:
		return false;
	}
	return t->op == OP_EQ ? eq : !eq;
}

bool
selection_match(const struct selection *s, const struct sel_host *h)
{
	for (size_t i = 0; i < s->n; i++)
		if (!term_matches(&s->t[i], h))
			return false;
	return true;
}
