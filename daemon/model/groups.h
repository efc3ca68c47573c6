/* groups.h — the tree of administration groups and the relocation rules
 * that place new hosts in it.
 *
 * A group's path is its names from the top joined by '/' ("Servers/Web").
 * Names are unique among siblings (case-sensitive), 1-63 bytes, no '/' or
 * control characters, no leading/trailing blanks; "Unassigned" is reserved
 * at the top level (group id 0 = no group). Ids are the caller's (database
 * ids), never 0. The tree is at most GROUP_DEPTH_MAX levels deep.
 *
 * Main thread only; no I/O. */
#ifndef CUSTOS_GROUPS_H
#define CUSTOS_GROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GROUP_NAME_MAX 64                        /* incl. NUL */
#define GROUP_DEPTH_MAX 32
#define GROUP_PATH_MAX (GROUP_DEPTH_MAX * GROUP_NAME_MAX)  /* incl. NUL */
#define GROUP_UNASSIGNED "Unassigned"

struct group {
	uint64_t id;
	char name[GROUP_NAME_MAX];
	uint64_t parent_id;       /* 0 = top level */
	char source[8];           /* "config" or "api" */
	int depth;                /* 1 = top level */
};

struct group_tree;

struct group_tree *groups_new(void);
void groups_free(struct group_tree *t);

/* Adds a group. -1 with err on a bad or duplicate id, a bad name, a sibling
 * of the same name, an unknown parent or a tree deeper than the limit. */
int groups_add(struct group_tree *t, uint64_t id, const char *name, uint64_t parent_id,
    const char *source, char *err, size_t errlen);
/* Renames and/or moves a group (with its subtree); refuses moving a group
 * below itself or one of its descendants, and a move that makes the subtree
 * deeper than the limit. name NULL keeps the name, source NULL the source. */
int groups_update(struct group_tree *t, uint64_t id, const char *name, uint64_t parent_id,
    const char *source, char *err, size_t errlen);
/* Removes a group that has no child groups (the caller moves or removes its
 * hosts and policies). */
int groups_remove(struct group_tree *t, uint64_t id, char *err, size_t errlen);

/* Whether name is acceptable as a group name (err says why not). */
bool groups_name_valid(const char *name, char *err, size_t errlen);

const struct group *groups_get(const struct group_tree *t, uint64_t id);
/* Finds "A/B/C" (a leading or trailing '/' is ignored); NULL when absent. */
const struct group *groups_find_path(const struct group_tree *t, const char *path);
/* The path of id into buf; -1 when id is unknown (buf becomes ""). id 0
 * gives "" and 0. */
int groups_path(const struct group_tree *t, uint64_t id, char *buf, size_t len);
/* The ids from the top-level ancestor down to id itself into
 * out[GROUP_DEPTH_MAX]; returns how many (0 for id 0), -1 when unknown. */
int groups_chain(const struct group_tree *t, uint64_t id, uint64_t out[GROUP_DEPTH_MAX]);
/* Whether a lies strictly below b. */
bool groups_is_descendant(const struct group_tree *t, uint64_t a, uint64_t b);
/* Whether a is b or lies below it (a group's hosts include its subtree). */
bool groups_in_subtree(const struct group_tree *t, uint64_t a, uint64_t b);
/* The ids of root and everything below it, sorted ascending (bsearch-able),
 * malloc'd; *n gets the count. root 0 = every group. NULL on OOM or an
 * unknown root (with *n = 0). */
uint64_t *groups_subtree(const struct group_tree *t, uint64_t root, size_t *n);
/* The direct children of id (0 = top level), malloc'd, sorted by name. */
const struct group **groups_children(const struct group_tree *t, uint64_t id, size_t *n);
/* Every group sorted by path, malloc'd (parents come before children). */
const struct group **groups_list(const struct group_tree *t, size_t *n);
size_t groups_count(const struct group_tree *t);
/* Incremented on every change to the tree (caches compare it). */
uint64_t groups_generation(const struct group_tree *t);

/* ---- relocation rules ---- */

struct reloc_rule {
	char name[64];
	int order;                /* lower first; ties keep array order */
	char group[GROUP_PATH_MAX]; /* target group path */
	char hostname[256];       /* fnmatch glob, case-insensitive; "" = any */
	char subnet[64];          /* "10.0.0.0/8", "fd00::/8", a bare address; "" = any */
	char os[128];             /* glob on os id, "id version_id", pretty name; "" = any */
	char tag[64];             /* glob on each agent tag; "" = any */
};

/* What a host reports that rules look at (any pointer may be NULL). */
struct reloc_host {
	const char *hostname;
	const char *const *ips;   /* textual IPv4/IPv6 ("%zone" suffix ignored) */
	size_t nips;
	const char *os_id, *os_version_id, *os_pretty;
	const char *const *tags;
	size_t ntags;
};

/* Checks a rule's syntax (name, subnet, target path); the caller checks that
 * the target group exists. */
int reloc_rule_check(const struct reloc_rule *r, char *err, size_t errlen);
/* The target path of the first rule (by order) whose given criteria all
 * match, or NULL (the host stays Unassigned). A rule with a malformed
 * subnet never matches. */
const char *reloc_match(const struct reloc_rule *rules, size_t n, const struct reloc_host *h);
/* Whether addr (text) lies in cidr (text, or a bare address); false when
 * either is malformed. IPv4-mapped IPv6 addresses match IPv4 subnets. */
bool reloc_ip_in_subnet(const char *addr, const char *cidr);

#endif
