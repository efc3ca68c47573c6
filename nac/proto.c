/* proto.c — see proto.h. */
#include "proto.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../lib/utf8.h"

/* ---- writer ---- */

static void
put(struct cq_writer *w, const char *s, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void
putc1(struct cq_writer *w, char c)
{
	put(w, &c, 1);
}

static void
put_escaped(struct cq_writer *w, const char *val, size_t n)
{
	const unsigned char *s = (const unsigned char *)val;
	char esc[8];

	putc1(w, '"');
	for (size_t i = 0; i < n && !w->overflow;) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			putc1(w, '\\');
			putc1(w, (char)c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(w, esc, 6);
			i++;
		} else if (c < 0x80) {
			putc1(w, (char)c);
			i++;
		} else {
			size_t l = utf8_seq_len(s + i, n - i);
			if (l == 0) {
				put(w, "\\ufffd", 6);
				i++;
			} else {
				put(w, val + i, l);
				i += l;
			}
		}
	}
	putc1(w, '"');
}

static void
member(struct cq_writer *w, const char *key)
{
	if (!w->first)
		putc1(w, ',');
	w->first = false;
	if (key != NULL) {
		put_escaped(w, key, strlen(key));
		putc1(w, ':');
	}
}

void
cq_start(struct cq_writer *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
	w->first = true;
	putc1(w, '{');
}

void
cq_str(struct cq_writer *w, const char *key, const char *val, size_t vlen)
{
	if (val == NULL)
		return;
	member(w, key);
	put_escaped(w, val, vlen);
}

void
cq_open(struct cq_writer *w, const char *key, char bracket)
{
	member(w, key);
	putc1(w, bracket);
	w->first = true;
}

void
cq_close(struct cq_writer *w, char bracket)
{
	putc1(w, bracket);
	w->first = false;
}

long
cq_finish(struct cq_writer *w)
{
	put(w, "}\n", 2);
	if (w->overflow || w->len > CQ_LINE_MAX)
		return -1;
	return (long)w->len;
}

/* ---- parser ---- */

#define MAX_DEPTH 32

struct parser {
	char *s;
	size_t n, i;
	const char *err;
};

static void
ws(struct parser *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
	    p->s[p->i] == '\r' || p->s[p->i] == '\n'))
		p->i++;
}

static int
fail(struct parser *p, const char *what)
{
	if (p->err == NULL)
		p->err = what;
	return -1;
}

static int
expect(struct parser *p, char c)
{
	ws(p);
	if (p->i >= p->n || p->s[p->i] != c)
		return fail(p, c == ':' ? "expected ':'" : "unexpected character");
	p->i++;
	return 0;
}

static int
hex4(struct parser *p, uint32_t *out)
{
	uint32_t v = 0;
	if (p->n - p->i < 4)
		return fail(p, "truncated \\u escape");
	for (int k = 0; k < 4; k++) {
		char c = p->s[p->i++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return fail(p, "bad \\u escape");
	}
	*out = v;
	return 0;
}

/* Decodes the string at p->i (which is at '"') in place; *out points at the
 * NUL-terminated result. Decoded text is never longer than its source, and
 * the NUL lands at or before the closing quote. */
static int
string(struct parser *p, const char **out)
{
	ws(p);
	if (p->i >= p->n || p->s[p->i] != '"')
		return fail(p, "expected a string");
	p->i++;
	char *dst = p->s + p->i;
	*out = dst;
	while (p->i < p->n) {
		unsigned char c = (unsigned char)p->s[p->i++];
		if (c == '"') {
			*dst = '\0';
			return 0;
		}
		if (c < 0x20)
			return fail(p, "control character in a string");
		if (c != '\\') {
			*dst++ = (char)c;
			continue;
		}
		if (p->i >= p->n)
			break;
		c = (unsigned char)p->s[p->i++];
		switch (c) {
		case '"': case '\\': case '/': *dst++ = (char)c; break;
		case 'b': *dst++ = '\b'; break;
		case 'f': *dst++ = '\f'; break;
		case 'n': *dst++ = '\n'; break;
		case 'r': *dst++ = '\r'; break;
		case 't': *dst++ = '\t'; break;
		case 'u': {
			uint32_t cp, lo;
			if (hex4(p, &cp) < 0)
				return -1;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
					return fail(p, "lone surrogate");
				p->i += 2;
				if (hex4(p, &lo) < 0)
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(p, "lone surrogate");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(p, "lone surrogate");
			if (cp == 0)
				return fail(p, "NUL in a string");
			/* UTF-8 of a \uXXXX escape (6 or 12 source bytes) is at
			 * most 4 bytes: still in place. */
			if (cp < 0x80)
				*dst++ = (char)cp;
			else if (cp < 0x800) {
				*dst++ = (char)(0xc0 | (cp >> 6));
				*dst++ = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				*dst++ = (char)(0xe0 | (cp >> 12));
				*dst++ = (char)(0x80 | ((cp >> 6) & 0x3f));
				*dst++ = (char)(0x80 | (cp & 0x3f));
			} else {
				*dst++ = (char)(0xf0 | (cp >> 18));
				*dst++ = (char)(0x80 | ((cp >> 12) & 0x3f));
				*dst++ = (char)(0x80 | ((cp >> 6) & 0x3f));
				*dst++ = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			return fail(p, "bad escape");
		}
	}
	return fail(p, "unterminated string");
}

/* A JSON number copied as text into out (outsz bytes). */
static int
number(struct parser *p, char *out, size_t outsz)
{
	size_t start = p->i;
	if (p->i < p->n && p->s[p->i] == '-')
		p->i++;
	size_t digits = p->i;
	while (p->i < p->n && ((p->s[p->i] >= '0' && p->s[p->i] <= '9') ||
	    p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E' ||
	    p->s[p->i] == '+' || p->s[p->i] == '-'))
		p->i++;
	if (p->i == digits)
		return fail(p, "bad number");
	size_t len = p->i - start;
	if (out != NULL) {
		if (len >= outsz)
			return fail(p, "number too long");
		memcpy(out, p->s + start, len);
		out[len] = '\0';
	}
	return 0;
}

static int
literal(struct parser *p, const char *word)
{
	size_t l = strlen(word);
	if (p->n - p->i < l || memcmp(p->s + p->i, word, l) != 0)
		return fail(p, "unexpected character");
	p->i += l;
	return 0;
}

static int skip_value(struct parser *p, int depth);

static int
skip_container(struct parser *p, int depth, char close)
{
	const char *dummy;
	p->i++;
	ws(p);
	if (p->i < p->n && p->s[p->i] == close) {
		p->i++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			if (string(p, &dummy) < 0 || expect(p, ':') < 0)
				return -1;
		}
		if (skip_value(p, depth + 1) < 0)
			return -1;
		ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		return expect(p, close);
	}
}

static int
skip_value(struct parser *p, int depth)
{
	const char *dummy;
	if (depth > MAX_DEPTH)
		return fail(p, "nested too deeply");
	ws(p);
	if (p->i >= p->n)
		return fail(p, "truncated");
	switch (p->s[p->i]) {
	case '{': return skip_container(p, depth, '}');
	case '[': return skip_container(p, depth, ']');
	case '"': return string(p, &dummy);
	case 't': return literal(p, "true");
	case 'f': return literal(p, "false");
	case 'n': return literal(p, "null");
	default:  return number(p, NULL, 0);
	}
}

/* A string, a number (as text) or null; anything else is skipped and
 * reported as *out == NULL with *odd set. */
static int
scalar(struct parser *p, struct cq_reply *r, const char **out, bool *odd)
{
	*out = NULL;
	*odd = false;
	ws(p);
	if (p->i >= p->n)
		return fail(p, "truncated");
	char c = p->s[p->i];
	if (c == '"')
		return string(p, out);
	if (c == '-' || (c >= '0' && c <= '9')) {
		if (r->npairs >= CQ_PAIRS_MAX) {
			*odd = true;
			return number(p, NULL, 0);
		}
		char *slot = r->nums[r->npairs];
		if (number(p, slot, sizeof(r->nums[0])) < 0)
			return -1;
		*out = slot;
		return 0;
	}
	if (c == 'n')
		return literal(p, "null");
	*odd = true;
	return skip_value(p, 1);
}

static void
add_pair(struct cq_reply *r, const char *name, const char *value)
{
	if (name == NULL || value == NULL || name[0] == '\0' || r->npairs >= CQ_PAIRS_MAX) {
		r->dropped++;
		return;
	}
	/* A numeric value was parsed into nums[npairs] already. */
	r->pairs[r->npairs].name = name;
	r->pairs[r->npairs].value = value;
	r->npairs++;
}

/* "reply": [["Name", "value"], ...] */
static int
reply_list(struct parser *p, struct cq_reply *r)
{
	if (expect(p, '[') < 0)
		return -1;
	ws(p);
	if (p->i < p->n && p->s[p->i] == ']') {
		p->i++;
		return 0;
	}
	for (;;) {
		ws(p);
		if (p->i < p->n && p->s[p->i] == '[') {
			const char *name = NULL, *value = NULL;
			bool odd = false;
			p->i++;
			ws(p);
			if (p->i < p->n && p->s[p->i] == '"') {
				if (string(p, &name) < 0)
					return -1;
			} else if (skip_value(p, 2) < 0)
				return -1;
			if (expect(p, ',') < 0 || scalar(p, r, &value, &odd) < 0)
				return -1;
			ws(p);
			/* Extra elements are ignored. */
			while (p->i < p->n && p->s[p->i] == ',') {
				p->i++;
				if (skip_value(p, 2) < 0)
					return -1;
				ws(p);
			}
			if (expect(p, ']') < 0)
				return -1;
			add_pair(r, name, odd ? NULL : value);
		} else {
			if (skip_value(p, 1) < 0)
				return -1;
			r->dropped++;
		}
		ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		return expect(p, ']');
	}
}

/* "nap": {"MS-Quarantine-State": 1, ...} */
static int
nap_object(struct parser *p, struct cq_reply *r)
{
	ws(p);
	if (p->i < p->n && p->s[p->i] == 'n')
		return literal(p, "null");
	if (expect(p, '{') < 0)
		return -1;
	ws(p);
	if (p->i < p->n && p->s[p->i] == '}') {
		p->i++;
		return 0;
	}
	for (;;) {
		const char *name, *value;
		bool odd;
		if (string(p, &name) < 0 || expect(p, ':') < 0 ||
		    scalar(p, r, &value, &odd) < 0)
			return -1;
		add_pair(r, name, odd ? NULL : value);
		ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		return expect(p, '}');
	}
}

int
cq_parse_reply(char *line, size_t len, struct cq_reply *r, char *err, size_t errlen)
{
	struct parser p = { line, len, 0, NULL };
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if (expect(&p, '{') < 0)
		goto out;
	ws(&p);
	if (p.i < p.n && p.s[p.i] == '}') {
		p.i++;
	} else for (;;) {
		const char *key;
		if (string(&p, &key) < 0 || expect(&p, ':') < 0)
			goto out;
		ws(&p);
		if (strcmp(key, "token") == 0 || strcmp(key, "host") == 0 ||
		    strcmp(key, "error") == 0) {
			const char *v = NULL;
			if (p.i < p.n && p.s[p.i] == '"') {
				if (string(&p, &v) < 0)
					goto out;
			} else if (skip_value(&p, 1) < 0)
				goto out;
			if (key[0] == 't')
				r->token = v;
			else if (key[0] == 'h')
				r->host = v;
			else
				r->error = v != NULL ? v : "error";
		} else if (strcmp(key, "reject") == 0) {
			if (p.i < p.n && p.s[p.i] == 't') {
				if (literal(&p, "true") < 0)
					goto out;
				r->reject = true;
			} else if (skip_value(&p, 1) < 0)
				goto out;
		} else if (strcmp(key, "reply") == 0) {
			if (reply_list(&p, r) < 0)
				goto out;
		} else if (strcmp(key, "nap") == 0) {
			if (nap_object(&p, r) < 0)
				goto out;
		} else if (skip_value(&p, 1) < 0)
			goto out;
		ws(&p);
		if (p.i < p.n && p.s[p.i] == ',') {
			p.i++;
			continue;
		}
		if (expect(&p, '}') < 0)
			goto out;
		break;
	}
	ws(&p);
	if (p.i != p.n) {
		fail(&p, "trailing data after the object");
		goto out;
	}
	if (r->token == NULL && r->error == NULL) {
		fail(&p, "no \"token\" in the reply");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0 && err != NULL && errlen > 0)
		snprintf(err, errlen, "bad reply at byte %zu: %s", p.i,
		    p.err != NULL ? p.err : "malformed");
	return rc;
}
