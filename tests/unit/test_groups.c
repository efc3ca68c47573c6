/* test_groups.c — unit tests for daemon/groups.c (tree and relocation rules). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/model/groups.h"
#include "util.h"

static void
add_ok(struct group_tree *t, uint64_t id, const char *name, uint64_t parent)
{
	char err[256];
	if (groups_add(t, id, name, parent, "config", err, sizeof(err)) != 0)
		fail_msg("add %s: %s", name, err);
}

static void
add_fails(struct group_tree *t, uint64_t id, const char *name, uint64_t parent,
    const char *source, const char *want)
{
	char err[256] = "";
	uint64_t gen = groups_generation(t);
	size_t cnt = groups_count(t);
	assert_int_equal(groups_add(t, id, name, parent, source, err, sizeof(err)), -1);
	if (strcmp(err, want) != 0)
		fail_msg("add %s: got '%s', want '%s'", name ? name : "(null)", err, want);
	assert_int_equal(groups_generation(t), gen);
	assert_int_equal(groups_count(t), cnt);
}

static void
path_is(struct group_tree *t, uint64_t id, const char *want)
{
	char buf[GROUP_PATH_MAX];
	assert_int_equal(groups_path(t, id, buf, sizeof(buf)), (int)strlen(want));
	assert_string_equal(buf, want);
}

/* Servers(1)/{Web(2)/Front(4), Db(3)}, Desktops(5)/Web(6) */
static struct group_tree *
sample(void)
{
	struct group_tree *t = groups_new();
	assert_non_null(t);
	add_ok(t, 1, "Servers", 0);
	add_ok(t, 2, "Web", 1);
	add_ok(t, 3, "Db", 1);
	add_ok(t, 4, "Front", 2);
	add_ok(t, 5, "Desktops", 0);
	add_ok(t, 6, "Web", 5);       /* same name, other parent */
	return t;
}

static void
test_tree_basics(void **state)
{
	(void)state;
	struct group_tree *t = sample();
	assert_int_equal(groups_count(t), 6);

	const struct group *g = groups_get(t, 4);
	assert_non_null(g);
	assert_string_equal(g->name, "Front");
	assert_int_equal(g->parent_id, 2);
	assert_int_equal(g->depth, 3);
	assert_string_equal(g->source, "config");
	assert_null(groups_get(t, 0));
	assert_null(groups_get(t, 99));

	path_is(t, 4, "Servers/Web/Front");
	path_is(t, 6, "Desktops/Web");
	path_is(t, 0, "");
	char small[8] = "x";
	assert_int_equal(groups_path(t, 4, small, sizeof(small)), -1);
	assert_string_equal(small, "");
	assert_int_equal(groups_path(t, 99, small, sizeof(small)), -1);

	assert_ptr_equal(groups_find_path(t, "Servers/Web/Front"), groups_get(t, 4));
	assert_ptr_equal(groups_find_path(t, "/Servers/Web/"), groups_get(t, 2));
	assert_ptr_equal(groups_find_path(t, "Desktops/Web"), groups_get(t, 6));
	assert_ptr_equal(groups_find_path(t, "Servers"), groups_get(t, 1));
	assert_null(groups_find_path(t, "Servers//Web"));
	assert_null(groups_find_path(t, "servers"));
	assert_null(groups_find_path(t, "Servers/We"));
	assert_null(groups_find_path(t, "Servers/Webx"));
	assert_null(groups_find_path(t, ""));
	assert_null(groups_find_path(t, "/"));
	assert_null(groups_find_path(t, NULL));
	char *lng = malloc(GROUP_PATH_MAX + 10);
	memset(lng, 'a', GROUP_PATH_MAX + 9);
	lng[GROUP_PATH_MAX + 9] = '\0';
	assert_null(groups_find_path(t, lng));
	free(lng);

	uint64_t chain[GROUP_DEPTH_MAX];
	assert_int_equal(groups_chain(t, 4, chain), 3);
	assert_int_equal(chain[0], 1);
	assert_int_equal(chain[1], 2);
	assert_int_equal(chain[2], 4);
	assert_int_equal(groups_chain(t, 0, chain), 0);
	assert_int_equal(groups_chain(t, 77, chain), -1);

	assert_true(groups_is_descendant(t, 4, 1));
	assert_true(groups_is_descendant(t, 4, 2));
	assert_false(groups_is_descendant(t, 2, 2));
	assert_false(groups_is_descendant(t, 1, 4));
	assert_false(groups_is_descendant(t, 6, 1));
	assert_true(groups_is_descendant(t, 6, 0));
	assert_false(groups_is_descendant(t, 99, 1));
	assert_true(groups_in_subtree(t, 2, 2));
	assert_true(groups_in_subtree(t, 4, 1));
	assert_false(groups_in_subtree(t, 3, 2));
	assert_false(groups_in_subtree(t, 99, 99));
	assert_true(groups_in_subtree(t, 0, 0));

	size_t n;
	uint64_t *sub = groups_subtree(t, 1, &n);
	assert_non_null(sub);
	assert_int_equal(n, 4);
	assert_int_equal(sub[0], 1);
	assert_int_equal(sub[1], 2);
	assert_int_equal(sub[2], 3);
	assert_int_equal(sub[3], 4);
	free(sub);
	sub = groups_subtree(t, 4, &n);
	assert_int_equal(n, 1);
	assert_int_equal(sub[0], 4);
	free(sub);
	sub = groups_subtree(t, 0, &n);
	assert_int_equal(n, 6);
	free(sub);
	assert_null(groups_subtree(t, 42, &n));
	assert_int_equal(n, 0);

	const struct group **kids = groups_children(t, 1, &n);
	assert_int_equal(n, 2);
	assert_string_equal(kids[0]->name, "Db");
	assert_string_equal(kids[1]->name, "Web");
	free(kids);
	kids = groups_children(t, 0, &n);
	assert_int_equal(n, 2);
	assert_string_equal(kids[0]->name, "Desktops");
	free(kids);

	const struct group **all = groups_list(t, &n);
	assert_int_equal(n, 6);
	static const uint64_t order[] = { 5, 6, 1, 3, 2, 4 };
	for (size_t i = 0; i < n; i++)
		assert_int_equal(all[i]->id, order[i]);
	free(all);
	groups_free(t);
	groups_free(NULL);
}

static void
test_add_errors(void **state)
{
	(void)state;
	struct group_tree *t = sample();
	add_fails(t, 7, "Web", 1, "api",
	    "group \"Servers/Web\" already exists (id 2); names are unique among siblings");
	add_fails(t, 2, "Other", 0, "api", "group id 2 already exists");
	add_fails(t, 0, "Zero", 0, "api", "group \"Zero\": id 0 is reserved for Unassigned");
	add_fails(t, 7, "X", 42, "api",
	    "group \"X\": parent group id 42 does not exist; create it first");
	add_fails(t, 7, "X", 0, "file", "group \"X\": source must be \"config\" or \"api\"");
	add_fails(t, 7, "X", 0, NULL, "group \"X\": source must be \"config\" or \"api\"");
	add_fails(t, 7, "", 0, "api", "a group name must not be empty");
	add_fails(t, 7, NULL, 0, "api", "a group name must not be empty");
	add_fails(t, 7, "a/b", 0, "api",
	    "group name \"a/b\" must not contain '/' or control characters");
	add_fails(t, 7, "tab\there", 0, "api",
	    "group name \"tab\there\" must not contain '/' or control characters");
	add_fails(t, 7, " lead", 0, "api", "group name \" lead\" must not begin or end with a blank");
	add_fails(t, 7, "trail ", 0, "api", "group name \"trail \" must not begin or end with a blank");
	add_fails(t, 7, "unassigned", 0, "api",
	    "group \"unassigned\": the name is reserved for hosts without a group; choose another");
	add_fails(t, 7, "012345678901234567890123456789012345678901234567890123456789abcd", 0, "api",
	    "group name \"01234567890123456789...\" is longer than 63 bytes");
	/* 63 bytes is fine; Unassigned below the top is fine */
	add_ok(t, 7, "012345678901234567890123456789012345678901234567890123456789abc", 0);
	add_ok(t, 8, "Unassigned", 1);
	assert_true(groups_name_valid("Web servers (DMZ)", NULL, 0));
	assert_false(groups_name_valid("x/y", NULL, 0));
	groups_free(t);
}

static void
test_depth_limit(void **state)
{
	(void)state;
	struct group_tree *t = groups_new();
	char name[16], err[256];
	for (uint64_t i = 1; i <= GROUP_DEPTH_MAX; i++) {
		(void)snprintf(name, sizeof(name), "L%llu", (unsigned long long)i);
		add_ok(t, i, name, i - 1);
	}
	assert_int_equal(groups_get(t, GROUP_DEPTH_MAX)->depth, GROUP_DEPTH_MAX);
	char path[GROUP_PATH_MAX];
	assert_true(groups_path(t, GROUP_DEPTH_MAX, path, sizeof(path)) > 0);
	assert_ptr_equal(groups_find_path(t, path), groups_get(t, GROUP_DEPTH_MAX));
	uint64_t chain[GROUP_DEPTH_MAX];
	assert_int_equal(groups_chain(t, GROUP_DEPTH_MAX, chain), GROUP_DEPTH_MAX);
	assert_int_equal(chain[GROUP_DEPTH_MAX - 1], GROUP_DEPTH_MAX);

	assert_int_equal(groups_add(t, 100, "Deep", GROUP_DEPTH_MAX, "api", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the tree would be 33 levels deep; at most 32 are allowed"));

	/* moving a 2-level subtree under level 31 overflows; under level 30 fits */
	add_ok(t, 200, "A", 0);
	add_ok(t, 201, "B", 200);
	assert_int_equal(groups_update(t, 200, "A", 31, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "33 levels deep"));
	assert_int_equal(groups_update(t, 200, "A", 30, NULL, err, sizeof(err)), 0);
	assert_int_equal(groups_get(t, 201)->depth, 32);
	groups_free(t);
}

static void
test_update_remove(void **state)
{
	(void)state;
	struct group_tree *t = sample();
	char err[256];
	uint64_t gen = groups_generation(t);

	/* rename */
	assert_int_equal(groups_update(t, 2, "Www", 1, NULL, err, sizeof(err)), 0);
	path_is(t, 4, "Servers/Www/Front");
	assert_true(groups_generation(t) > gen);
	assert_null(groups_find_path(t, "Servers/Web"));
	/* same name and parent: a no-op that succeeds; NULL keeps the name */
	assert_int_equal(groups_update(t, 2, "Www", 1, "api", err, sizeof(err)), 0);
	assert_string_equal(groups_get(t, 2)->source, "api");
	assert_int_equal(groups_update(t, 2, NULL, 1, NULL, err, sizeof(err)), 0);
	assert_string_equal(groups_get(t, 2)->name, "Www");

	/* move the Www subtree under Desktops: depths follow */
	assert_int_equal(groups_update(t, 2, "Www", 5, NULL, err, sizeof(err)), 0);
	path_is(t, 4, "Desktops/Www/Front");
	assert_int_equal(groups_get(t, 4)->depth, 3);
	assert_true(groups_is_descendant(t, 4, 5));
	assert_false(groups_is_descendant(t, 4, 1));
	size_t n;
	const struct group **kids = groups_children(t, 1, &n);
	assert_int_equal(n, 1);
	free(kids);
	/* move to the top */
	assert_int_equal(groups_update(t, 4, "Front", 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(groups_get(t, 4)->depth, 1);
	assert_int_equal(groups_get(t, 4)->parent_id, 0);
	path_is(t, 4, "Front");

	/* cycles */
	gen = groups_generation(t);
	assert_int_equal(groups_update(t, 5, "Desktops", 5, NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "group \"Desktops\" cannot move below itself or one of its subgroups");
	assert_int_equal(groups_update(t, 5, "Desktops", 2, NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "group \"Desktops\" cannot move below itself or one of its subgroups");
	/* clashes on rename and on move */
	assert_int_equal(groups_update(t, 6, "Www", 5, NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "group \"Desktops/Www\" already exists (id 2); names are unique among siblings");
	assert_int_equal(groups_update(t, 6, "Web", 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(groups_update(t, 6, "Front", 0, NULL, err, sizeof(err)), -1);
	assert_int_equal(groups_update(t, 99, "X", 0, NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "group id 99 does not exist");
	assert_int_equal(groups_update(t, 3, "Db", 99, NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "group \"Db\": parent group id 99 does not exist");
	assert_int_equal(groups_update(t, 3, "Db", 1, "nope", err, sizeof(err)), -1);
	assert_int_equal(groups_update(t, 3, "Unassigned", 0, NULL, err, sizeof(err)), -1);
	assert_string_equal(groups_get(t, 3)->name, "Db");
	assert_int_equal(groups_get(t, 3)->parent_id, 1);

	/* remove: leaves only */
	assert_int_equal(groups_remove(t, 5, err, sizeof(err)), -1);
	assert_string_equal(err, "group \"Desktops\" has 1 subgroup(s); remove or move them first");
	assert_int_equal(groups_remove(t, 99, err, sizeof(err)), -1);
	assert_int_equal(groups_remove(t, 0, err, sizeof(err)), -1);
	size_t before = groups_count(t);
	assert_int_equal(groups_remove(t, 2, err, sizeof(err)), 0);
	assert_int_equal(groups_remove(t, 5, err, sizeof(err)), 0);
	assert_int_equal(groups_count(t), before - 2);
	assert_null(groups_get(t, 2));
	assert_null(groups_find_path(t, "Desktops"));
	/* the name is free again */
	add_ok(t, 10, "Desktops", 0);
	groups_free(t);
}

struct ip_case {
	const char *addr, *cidr;
	bool in;
};

static void
test_subnets(void **state)
{
	(void)state;
	static const struct ip_case c[] = {
		{ "10.1.2.3", "10.0.0.0/8", true },
		{ "11.1.2.3", "10.0.0.0/8", false },
		{ "192.168.31.5", "192.168.16.0/20", true },
		{ "192.168.32.5", "192.168.16.0/20", false },
		{ "192.168.15.255", "192.168.16.0/20", false },
		{ "1.2.3.4", "0.0.0.0/0", true },
		{ "1.2.3.4", "1.2.3.4", true },
		{ "1.2.3.5", "1.2.3.4/32", false },
		{ "10.9.9.9", "10.1.0.0/8", true },        /* host bits in the subnet ignored */
		{ "fd00::1", "fd00::/8", true },
		{ "fe80::1%eth0", "fe80::/10", true },
		{ "fec0::1", "fe80::/10", false },
		{ "2001:db8:abcd:12::1", "2001:db8:abcd:0010::/60", true },
		{ "2001:db8:abcd:22::1", "2001:db8:abcd:0010::/60", false },
		{ "::1", "::/0", true },
		{ "::ffff:10.0.0.7", "10.0.0.0/24", true },  /* IPv4-mapped */
		{ "10.0.0.7", "::/0", false },               /* families differ */
		{ "fd00::1", "0.0.0.0/0", false },
		{ "not-an-ip", "10.0.0.0/8", false },
		{ "", "10.0.0.0/8", false },
		{ "10.0.0.1", "10.0.0.0/33", false },
		{ "10.0.0.1", "10.0.0.0/", false },
		{ "10.0.0.1", "10.0.0.0/8x", false },
		{ "10.0.0.1", "10.0.0/8", false },
		{ "fd00::1", "fd00::/129", false },
		{ "10.0.0.1", "", false },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (reloc_ip_in_subnet(c[i].addr, c[i].cidr) != c[i].in)
			fail_msg("%s in %s: expected %d", c[i].addr, c[i].cidr, c[i].in);
	assert_false(reloc_ip_in_subnet(NULL, "10.0.0.0/8"));
	assert_false(reloc_ip_in_subnet("10.0.0.1", NULL));
}

static struct reloc_rule
rule(const char *name, int order, const char *group, const char *host, const char *subnet,
    const char *os, const char *tag)
{
	struct reloc_rule r;
	memset(&r, 0, sizeof(r));
	str_copy(r.name, name, sizeof(r.name));
	r.order = order;
	str_copy(r.group, group, sizeof(r.group));
	str_copy(r.hostname, host, sizeof(r.hostname));
	str_copy(r.subnet, subnet, sizeof(r.subnet));
	str_copy(r.os, os, sizeof(r.os));
	str_copy(r.tag, tag, sizeof(r.tag));
	return r;
}

static void
test_reloc_match(void **state)
{
	(void)state;
	struct reloc_rule rules[] = {
		rule("catchall", 100, "Other", "", "", "", ""),
		rule("web", 10, "Servers/Web", "web*", "10.0.0.0/8", "debian*", ""),
		rule("db", 20, "Servers/Db", "db-?", "", "", ""),
		rule("laptop", 5, "Laptops", "", "", "", "laptop"),
		rule("v6", 30, "Lab", "", "fd00::/8", "", ""),
		rule("rhel", 15, "Rhel", "", "", "rhel 9*", ""),
		rule("tie-b", 20, "TieB", "db-1", "", "", ""),   /* same order as "db": later loses */
		rule("broken", 1, "Broken", "", "10.0.0.0/99", "", ""),
	};
	const size_t n = sizeof(rules) / sizeof(rules[0]);
	const char *ips_web[] = { "192.168.1.5", "10.2.3.4" };
	const char *ips_out[] = { "192.168.1.5" };
	const char *ips_v6[] = { "fe80::1%eth0", "fd12::7" };
	const char *tags[] = { "office", "laptop" };

	struct reloc_host h = { .hostname = "WEB-01", .ips = ips_web, .nips = 2,
	    .os_id = "debian", .os_version_id = "12", .os_pretty = "Debian GNU/Linux 12 (bookworm)" };
	assert_string_equal(reloc_match(rules, n, &h), "Servers/Web");
	/* every criterion must hold: outside the subnet falls through to the catch-all */
	h.ips = ips_out;
	h.nips = 1;
	assert_string_equal(reloc_match(rules, n, &h), "Other");
	h.ips = ips_web;
	h.nips = 2;
	h.os_id = "ubuntu";
	h.os_pretty = "Ubuntu 24.04";
	assert_string_equal(reloc_match(rules, n, &h), "Other");
	/* the pretty name alone can match */
	h.os_id = NULL;
	h.os_pretty = "Debian GNU/Linux 12";
	assert_string_equal(reloc_match(rules, n, &h), "Servers/Web");

	/* "id version_id" */
	struct reloc_host r9 = { .hostname = "x", .os_id = "rhel", .os_version_id = "9.3" };
	assert_string_equal(reloc_match(rules, n, &r9), "Rhel");
	r9.os_version_id = "8.1";
	assert_string_equal(reloc_match(rules, n, &r9), "Other");

	/* a lower order wins even when listed later; ties keep array order */
	struct reloc_host lap = { .hostname = "web-7", .ips = ips_web, .nips = 2,
	    .os_id = "debian", .tags = tags, .ntags = 2 };
	assert_string_equal(reloc_match(rules, n, &lap), "Laptops");
	struct reloc_host db = { .hostname = "db-1" };
	assert_string_equal(reloc_match(rules, n, &db), "Servers/Db");
	db.hostname = "db-12";
	assert_string_equal(reloc_match(rules, n, &db), "Other");

	struct reloc_host v6 = { .hostname = "lab", .ips = ips_v6, .nips = 2 };
	assert_string_equal(reloc_match(rules, n, &v6), "Lab");

	/* nothing known about the host: only empty rules match */
	struct reloc_host empty;
	memset(&empty, 0, sizeof(empty));
	assert_string_equal(reloc_match(rules, n, &empty), "Other");
	assert_null(reloc_match(rules + 1, n - 1, &empty));
	assert_null(reloc_match(rules, 0, &empty));

	/* tags are case-sensitive globs */
	struct reloc_rule tr = rule("t", 1, "T", "", "", "", "lab-*");
	const char *t1[] = { "LAB-1" }, *t2[] = { "x", "lab-2" };
	struct reloc_host th = { .tags = t1, .ntags = 1 };
	assert_null(reloc_match(&tr, 1, &th));
	th.tags = t2;
	th.ntags = 2;
	assert_string_equal(reloc_match(&tr, 1, &th), "T");
}

static void
test_reloc_check(void **state)
{
	(void)state;
	char err[256];
	struct reloc_rule r = rule("web", 1, "Servers/Web", "web*", "10.0.0.0/8", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), 0);
	r = rule("v6", 1, "Lab", "", "fd00::/8", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), 0);

	r = rule("", 1, "Lab", "", "", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), -1);
	assert_string_equal(err, "relocation rule: a name is required");
	r = rule("x", 1, "", "", "", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), -1);
	assert_string_equal(err, "relocation rule \"x\": a target group is required");
	r = rule("x", 1, "A//B", "", "", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), -1);
	assert_string_equal(err, "relocation rule \"x\": bad group path \"A//B\"");
	r = rule("x", 1, "A/ B", "", "", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), -1);
	assert_string_equal(err, "relocation rule \"x\": group name \" B\" must not begin or end with a blank");
	r = rule("x", 1, "A", "", "10.0.0.0/40", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), -1);
	assert_string_equal(err, "relocation rule \"x\": subnet \"10.0.0.0/40\" is not an address or "
	    "ADDRESS/PREFIX (e.g. 10.0.0.0/8 or fd00::/8)");
	r = rule("x", 1, "A", "", "lan", "", "");
	assert_int_equal(reloc_rule_check(&r, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_basics),
		cmocka_unit_test(test_add_errors),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_update_remove),
		cmocka_unit_test(test_subnets),
		cmocka_unit_test(test_reloc_match),
		cmocka_unit_test(test_reloc_check),
	};
	return cmocka_run_group_tests_name("groups", tests, NULL, NULL);
}
