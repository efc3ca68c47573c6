/* groups.c — see groups.h. Nodes are found by id through a hash map; each
 * keeps its children in an unsorted array (sorted only when listed). */
#include "model/groups.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hmap.h"
#include "util.h"

struct gnode {
	struct group g;           /* first: &node->g is what callers see */
	char key[24];             /* decimal id, the hash map key */
	struct gnode *parent;     /* the tree's root node for top-level groups */
	struct gnode **kids;
	size_t nkids, kcap;
};

struct group_tree {
	struct hmap *by_id;
	struct gnode root;        /* id 0, depth 0: not in by_id */
	uint64_t gen;
};

static void
id_key(uint64_t id, char key[24])
{
	(void)snprintf(key, 24, "%llu", (unsigned long long)id);
}

static struct gnode *
node_get(const struct group_tree *t, uint64_t id)
{
	char key[24];
	if (id == 0)
		return (struct gnode *)&t->root;
	id_key(id, key);
	return hmap_get(t->by_id, key);
}

struct group_tree *
groups_new(void)
{
	struct group_tree *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	if ((t->by_id = hmap_new()) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static void
node_free(void *value, void *arg)
{
	struct gnode *n = value;
	(void)arg;
	free(n->kids);
	free(n);
}

void
groups_free(struct group_tree *t)
{
	if (t == NULL)
		return;
	hmap_foreach(t->by_id, node_free, NULL);
	hmap_free(t->by_id);
	free(t->root.kids);
	free(t);
}

bool
groups_name_valid(const char *name, char *err, size_t errlen)
{
	size_t len = name != NULL ? strnlen(name, GROUP_NAME_MAX) : 0;

	if (len == 0) {
		str_fmt(err, errlen, "a group name must not be empty");
		return false;
	}
	if (len >= GROUP_NAME_MAX) {
		str_fmt(err, errlen, "group name \"%.20s...\" is longer than %d bytes", name,
		    GROUP_NAME_MAX - 1);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/' || c < 0x20 || c == 0x7f) {
			str_fmt(err, errlen, "group name \"%s\" must not contain '/' or control characters",
			    name);
			return false;
		}
	}
	if (isspace((unsigned char)name[0]) || isspace((unsigned char)name[len - 1])) {
		str_fmt(err, errlen, "group name \"%s\" must not begin or end with a blank", name);
		return false;
	}
	return true;
}

static bool
source_valid(const char *source)
{
	return source != NULL && (strcmp(source, "config") == 0 || strcmp(source, "api") == 0);
}

static int
kid_add(struct gnode *p, struct gnode *n)
{
	if (array_grow((void **)&p->kids, &p->kcap, p->nkids + 1, sizeof(*p->kids)) < 0)
		return -1;
	p->kids[p->nkids++] = n;
	return 0;
}

static void
kid_del(struct gnode *p, struct gnode *n)
{
	for (size_t i = 0; i < p->nkids; i++)
		if (p->kids[i] == n) {
			p->kids[i] = p->kids[--p->nkids];
			return;
		}
}

static struct gnode *
kid_named(const struct gnode *p, const char *name, size_t len)
{
	for (size_t i = 0; i < p->nkids; i++)
		if (strncmp(p->kids[i]->g.name, name, len) == 0 && p->kids[i]->g.name[len] == '\0')
			return p->kids[i];
	return NULL;
}

/* Levels of the subtree under n, n included. */
static int
node_height(const struct gnode *n)
{
	int h = 0;
	for (size_t i = 0; i < n->nkids; i++) {
		int k = node_height(n->kids[i]);
		if (k > h)
			h = k;
	}
	return h + 1;
}

static void
node_set_depth(struct gnode *n, int depth)
{
	n->g.depth = depth;
	for (size_t i = 0; i < n->nkids; i++)
		node_set_depth(n->kids[i], depth + 1);
}

/* "Parent/Path/name" for messages (the parent's path, then name). */
static void
display_path(const struct group_tree *t, const struct gnode *parent, const char *name,
    char *buf, size_t len)
{
	char pp[GROUP_PATH_MAX];
	if (groups_path(t, parent->g.id, pp, sizeof(pp)) < 0 || pp[0] == '\0')
		(void)snprintf(buf, len, "%s", name);
	else
		(void)snprintf(buf, len, "%s/%s", pp, name);
}

/* The checks shared by add and update for placing name under parent. */
static int
check_place(const struct group_tree *t, const struct gnode *self, const char *name,
    const struct gnode *parent, char *err, size_t errlen)
{
	char where[GROUP_PATH_MAX + GROUP_NAME_MAX];
	char why[160];

	if (!groups_name_valid(name, why, sizeof(why))) {
		str_fmt(err, errlen, "%s", why);
		return -1;
	}
	display_path(t, parent, name, where, sizeof(where));
	if (parent == &t->root && strcasecmp(name, GROUP_UNASSIGNED) == 0) {
		str_fmt(err, errlen, "group \"%s\": the name is reserved for hosts without a group; "
		    "choose another", where);
		return -1;
	}
	const struct gnode *same = kid_named(parent, name, strlen(name));
	if (same != NULL && same != self) {
		str_fmt(err, errlen, "group \"%s\" already exists (id %llu); names are unique among "
		    "siblings", where, (unsigned long long)same->g.id);
		return -1;
	}
	int height = self != NULL ? node_height(self) : 1;
	if (parent->g.depth + height > GROUP_DEPTH_MAX) {
		str_fmt(err, errlen, "group \"%s\": the tree would be %d levels deep; at most %d are "
		    "allowed", where, parent->g.depth + height, GROUP_DEPTH_MAX);
		return -1;
	}
	return 0;
}

int
groups_add(struct group_tree *t, uint64_t id, const char *name, uint64_t parent_id,
    const char *source, char *err, size_t errlen)
{
	if (id == 0) {
		str_fmt(err, errlen, "group \"%s\": id 0 is reserved for Unassigned",
		    name != NULL ? name : "");
		return -1;
	}
	if (node_get(t, id) != NULL) {
		str_fmt(err, errlen, "group id %llu already exists", (unsigned long long)id);
		return -1;
	}
	if (!source_valid(source)) {
		str_fmt(err, errlen, "group \"%s\": source must be \"config\" or \"api\"",
		    name != NULL ? name : "");
		return -1;
	}
	struct gnode *parent = node_get(t, parent_id);
	if (parent == NULL) {
		str_fmt(err, errlen, "group \"%s\": parent group id %llu does not exist; create it first",
		    name != NULL ? name : "", (unsigned long long)parent_id);
		return -1;
	}
	if (check_place(t, NULL, name, parent, err, errlen) < 0)
		return -1;

	struct gnode *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		str_fmt(err, errlen, "group \"%s\": out of memory", name);
		return -1;
	}
	n->g.id = id;
	str_copy(n->g.name, name, sizeof(n->g.name));
	n->g.parent_id = parent_id;
	str_copy(n->g.source, source, sizeof(n->g.source));
	n->g.depth = parent->g.depth + 1;
	n->parent = parent;
	id_key(id, n->key);
	if (kid_add(parent, n) < 0) {
		free(n);
		str_fmt(err, errlen, "group \"%s\": out of memory", name);
		return -1;
	}
	if (hmap_put(t->by_id, n->key, n, NULL) < 0) {
		kid_del(parent, n);
		free(n);
		str_fmt(err, errlen, "group \"%s\": out of memory", name);
		return -1;
	}
	t->gen++;
	return 0;
}

int
groups_update(struct group_tree *t, uint64_t id, const char *name, uint64_t parent_id,
    const char *source, char *err, size_t errlen)
{
	struct gnode *n = id != 0 ? node_get(t, id) : NULL;
	if (n == NULL) {
		str_fmt(err, errlen, "group id %llu does not exist", (unsigned long long)id);
		return -1;
	}
	char newname[GROUP_NAME_MAX];
	if (name == NULL)
		name = n->g.name;
	if (strnlen(name, GROUP_NAME_MAX) < GROUP_NAME_MAX) {
		str_copy(newname, name, sizeof(newname));
		name = newname;     /* may alias n->g.name */
	}
	if (source != NULL && !source_valid(source)) {
		str_fmt(err, errlen, "group \"%s\": source must be \"config\" or \"api\"", n->g.name);
		return -1;
	}
	struct gnode *parent = node_get(t, parent_id);
	if (parent == NULL) {
		str_fmt(err, errlen, "group \"%s\": parent group id %llu does not exist",
		    n->g.name, (unsigned long long)parent_id);
		return -1;
	}
	for (const struct gnode *a = parent; a != NULL; a = a->parent)
		if (a == n) {
			char here[GROUP_PATH_MAX];
			(void)groups_path(t, id, here, sizeof(here));
			str_fmt(err, errlen, "group \"%s\" cannot move below itself or one of its "
			    "subgroups", here);
			return -1;
		}
	if (check_place(t, n, name, parent, err, errlen) < 0)
		return -1;

	if (parent != n->parent) {
		if (kid_add(parent, n) < 0) {
			str_fmt(err, errlen, "group \"%s\": out of memory", n->g.name);
			return -1;
		}
		kid_del(n->parent, n);
		n->parent = parent;
		n->g.parent_id = parent_id;
		node_set_depth(n, parent->g.depth + 1);
	}
	str_copy(n->g.name, name, sizeof(n->g.name));
	if (source != NULL)
		str_copy(n->g.source, source, sizeof(n->g.source));
	t->gen++;
	return 0;
}

int
groups_remove(struct group_tree *t, uint64_t id, char *err, size_t errlen)
{
	struct gnode *n = id != 0 ? node_get(t, id) : NULL;
	if (n == NULL) {
		str_fmt(err, errlen, "group id %llu does not exist", (unsigned long long)id);
		return -1;
	}
	if (n->nkids > 0) {
		char here[GROUP_PATH_MAX];
		(void)groups_path(t, id, here, sizeof(here));
		str_fmt(err, errlen, "group \"%s\" has %zu subgroup(s); remove or move them first",
		    here, n->nkids);
		return -1;
	}
	kid_del(n->parent, n);
	(void)hmap_del(t->by_id, n->key);
	node_free(n, NULL);
	t->gen++;
	return 0;
}

const struct group *
groups_get(const struct group_tree *t, uint64_t id)
{
	struct gnode *n = id != 0 ? node_get(t, id) : NULL;
	return n != NULL ? &n->g : NULL;
}

const struct group *
groups_find_path(const struct group_tree *t, const char *path)
{
	if (path == NULL || strnlen(path, GROUP_PATH_MAX) >= GROUP_PATH_MAX)
		return NULL;
	size_t len = strlen(path);
	while (len > 0 && path[len - 1] == '/')
		len--;
	const char *p = path, *end = path + len;
	if (p < end && *p == '/')
		p++;
	if (p >= end)
		return NULL;
	const struct gnode *n = &t->root;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *ce = slash != NULL ? slash : end;
		if (ce == p)
			return NULL;    /* "A//B" */
		if ((n = kid_named(n, p, (size_t)(ce - p))) == NULL)
			return NULL;
		p = ce + (slash != NULL);
	}
	return &n->g;
}

int
groups_chain(const struct group_tree *t, uint64_t id, uint64_t out[GROUP_DEPTH_MAX])
{
	const struct gnode *n = node_get(t, id);
	if (n == NULL)
		return -1;
	int depth = n->g.depth;
	for (int i = depth - 1; i >= 0; i--, n = n->parent)
		out[i] = n->g.id;
	return depth;
}

int
groups_path(const struct group_tree *t, uint64_t id, char *buf, size_t len)
{
	uint64_t chain[GROUP_DEPTH_MAX];
	int n = groups_chain(t, id, chain);
	size_t off = 0;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const struct gnode *g = node_get(t, chain[i]);
		int w = snprintf(buf + off, len - off, "%s%s", i > 0 ? "/" : "", g->g.name);
		if (w < 0 || (size_t)w >= len - off) {
			buf[0] = '\0';
			return -1;
		}
		off += (size_t)w;
	}
	return (int)off;
}

bool
groups_is_descendant(const struct group_tree *t, uint64_t a, uint64_t b)
{
	const struct gnode *na = a != 0 ? node_get(t, a) : NULL;
	const struct gnode *nb = node_get(t, b);
	if (na == NULL || nb == NULL)
		return false;
	for (const struct gnode *p = na->parent; p != NULL; p = p->parent)
		if (p == nb)
			return true;
	return false;
}

bool
groups_in_subtree(const struct group_tree *t, uint64_t a, uint64_t b)
{
	if (a == b)
		return a == 0 || node_get(t, a) != NULL;
	return groups_is_descendant(t, a, b);
}

static void
subtree_collect(const struct gnode *n, uint64_t *out, size_t *k)
{
	if (n->g.id != 0)
		out[(*k)++] = n->g.id;
	for (size_t i = 0; i < n->nkids; i++)
		subtree_collect(n->kids[i], out, k);
}

static size_t
subtree_size(const struct gnode *n)
{
	size_t s = n->g.id != 0;
	for (size_t i = 0; i < n->nkids; i++)
		s += subtree_size(n->kids[i]);
	return s;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t *
groups_subtree(const struct group_tree *t, uint64_t root, size_t *n)
{
	const struct gnode *r = node_get(t, root);
	*n = 0;
	if (r == NULL)
		return NULL;
	size_t cnt = subtree_size(r);
	uint64_t *out = malloc((cnt > 0 ? cnt : 1) * sizeof(*out));
	if (out == NULL)
		return NULL;
	size_t k = 0;
	subtree_collect(r, out, &k);
	qsort(out, k, sizeof(*out), cmp_u64);
	*n = k;
	return out;
}

static int
cmp_group_name(const void *a, const void *b)
{
	const struct group *x = *(const struct group *const *)a;
	const struct group *y = *(const struct group *const *)b;
	return strcmp(x->name, y->name);
}

const struct group **
groups_children(const struct group_tree *t, uint64_t id, size_t *n)
{
	const struct gnode *p = node_get(t, id);
	*n = 0;
	if (p == NULL)
		return NULL;
	const struct group **out = malloc((p->nkids > 0 ? p->nkids : 1) * sizeof(*out));
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < p->nkids; i++)
		out[i] = &p->kids[i]->g;
	qsort(out, p->nkids, sizeof(*out), cmp_group_name);
	*n = p->nkids;
	return out;
}

/* Pre-order with children by name = sorted by path component-wise. */
static int
list_walk(const struct group_tree *t, const struct gnode *n, const struct group **out, size_t *k)
{
	size_t nk;
	const struct group **kids = groups_children(t, n->g.id, &nk);
	if (kids == NULL)
		return -1;
	for (size_t i = 0; i < nk; i++) {
		out[(*k)++] = kids[i];
		if (list_walk(t, (const struct gnode *)kids[i], out, k) < 0) {
			free(kids);
			return -1;
		}
	}
	free(kids);
	return 0;
}

const struct group **
groups_list(const struct group_tree *t, size_t *n)
{
	size_t cnt = hmap_count(t->by_id), k = 0;
	const struct group **out = malloc((cnt > 0 ? cnt : 1) * sizeof(*out));
	*n = 0;
	if (out == NULL)
		return NULL;
	if (list_walk(t, &t->root, out, &k) < 0) {
		free(out);
		return NULL;
	}
	*n = k;
	return out;
}

size_t
groups_count(const struct group_tree *t)
{
	return hmap_count(t->by_id);
}

uint64_t
groups_generation(const struct group_tree *t)
{
	return t->gen;
}

/* ---- relocation rules ---- */

struct cidr {
	int family;               /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int prefix;
};

/* Parses an address ("%zone" dropped); IPv4-mapped IPv6 becomes IPv4. */
static bool
addr_parse(const char *text, size_t len, int *family, uint8_t addr[16])
{
	char buf[INET6_ADDRSTRLEN + 1];
	const char *pct = memchr(text, '%', len);
	if (pct != NULL)
		len = (size_t)(pct - text);
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, addr) == 1) {
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(addr, mapped, 12) == 0) {
			memmove(addr, addr + 12, 4);
			*family = AF_INET;
		} else
			*family = AF_INET6;
		return true;
	}
	return false;
}

static bool
cidr_parse(const char *text, struct cidr *c)
{
	size_t len = strnlen(text, 64);
	const char *slash = memchr(text, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - text) : len;

	if (len >= 64 || !addr_parse(text, alen, &c->family, c->addr))
		return false;
	int max = c->family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		c->prefix = max;
		return true;
	}
	const char *p = slash + 1;
	int v = 0, nd = 0;
	for (; *p; p++, nd++) {
		if (!isdigit((unsigned char)*p) || nd >= 3)
			return false;
		v = v * 10 + (*p - '0');
	}
	if (nd == 0 || v > max)
		return false;
	c->prefix = v;
	return true;
}

static bool
prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static bool
ip_in_cidr(const char *addr, const struct cidr *c)
{
	int fam;
	uint8_t a[16];
	if (!addr_parse(addr, strnlen(addr, 64), &fam, a))
		return false;
	if (fam == c->family)
		return prefix_equal(a, c->addr, c->prefix);
	return false;
}

bool
reloc_ip_in_subnet(const char *addr, const char *cidr)
{
	struct cidr c;
	if (addr == NULL || cidr == NULL || !cidr_parse(cidr, &c))
		return false;
	return ip_in_cidr(addr, &c);
}

int
reloc_rule_check(const struct reloc_rule *r, char *err, size_t errlen)
{
	struct cidr c;
	char why[160];

	if (r->name[0] == '\0') {
		str_fmt(err, errlen, "relocation rule: a name is required");
		return -1;
	}
	if (r->group[0] == '\0') {
		str_fmt(err, errlen, "relocation rule \"%s\": a target group is required", r->name);
		return -1;
	}
	/* every path component must be a valid group name */
	const char *p = r->group;
	while (*p != '\0') {
		size_t cl = strcspn(p, "/");
		char comp[GROUP_NAME_MAX];
		if (cl == 0 || cl >= sizeof(comp)) {
			str_fmt(err, errlen, "relocation rule \"%s\": bad group path \"%s\"", r->name,
			    r->group);
			return -1;
		}
		memcpy(comp, p, cl);
		comp[cl] = '\0';
		if (!groups_name_valid(comp, why, sizeof(why))) {
			str_fmt(err, errlen, "relocation rule \"%s\": %s", r->name, why);
			return -1;
		}
		p += cl + (p[cl] == '/');
	}
	if (r->subnet[0] != '\0' && !cidr_parse(r->subnet, &c)) {
		str_fmt(err, errlen, "relocation rule \"%s\": subnet \"%s\" is not an address or "
		    "ADDRESS/PREFIX (e.g. 10.0.0.0/8 or fd00::/8)", r->name, r->subnet);
		return -1;
	}
	return 0;
}

static bool
glob_any(const char *pattern, const char *const *list, size_t n, int flags)
{
	for (size_t i = 0; list != NULL && i < n; i++)
		if (list[i] != NULL && fnmatch(pattern, list[i], flags) == 0)
			return true;
	return false;
}

static bool
rule_matches(const struct reloc_rule *r, const struct reloc_host *h)
{
	if (r->hostname[0] != '\0' && (h->hostname == NULL
	    || fnmatch(r->hostname, h->hostname, FNM_CASEFOLD) != 0))
		return false;
	if (r->subnet[0] != '\0') {
		struct cidr c;
		bool in = false;
		if (!cidr_parse(r->subnet, &c))
			return false;
		for (size_t i = 0; !in && h->ips != NULL && i < h->nips; i++)
			in = h->ips[i] != NULL && ip_in_cidr(h->ips[i], &c);
		if (!in)
			return false;
	}
	if (r->os[0] != '\0') {
		char idver[256] = "";
		if (h->os_id != NULL && h->os_version_id != NULL)
			(void)snprintf(idver, sizeof(idver), "%s %s", h->os_id, h->os_version_id);
		const char *cands[3] = { h->os_id, idver[0] ? idver : NULL, h->os_pretty };
		if (!glob_any(r->os, cands, 3, FNM_CASEFOLD))
			return false;
	}
	if (r->tag[0] != '\0' && !glob_any(r->tag, h->tags, h->ntags, 0))
		return false;
	return true;
}

const char *
reloc_match(const struct reloc_rule *rules, size_t n, const struct reloc_host *h)
{
	const struct reloc_rule *best = NULL;
	for (size_t i = 0; i < n; i++) {
		if (best != NULL && rules[i].order >= best->order)
			continue;           /* cannot win: a lower order or earlier tie exists */
		if (rule_matches(&rules[i], h))
			best = &rules[i];
	}
	return best != NULL ? best->group : NULL;
}
