/* mgmt_api.c — the API side of mgmt.h: JSON views of the model and the
 * changes the console makes (validated here, written by mgmt_db.c). */
#include "mgmt/mgmt.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "model/declare.h"
#include "model/groups.h"
#include "log.h"
#include "store/mgmt_sql.h"
#include "mgmt/mgmt_priv.h"
#include "model/policy.h"
#include "core/registry.h"
#include "schedule.h"
#include "model/selection.h"
#include "core/server.h"
#include "store/store.h"
#include "util.h"

const struct group_tree *
mgmt_groups(const struct mgmt *mg)
{
	return mg && mg->m ? mg->m->groups : NULL;
}

const struct policy_store *
mgmt_policies(const struct mgmt *mg)
{
	return mg && mg->m ? mg->m->pol : NULL;
}

/* "declared in FILE" for config-owned objects (or a general hint). */
static void
owned_error(const struct mgmt *mg, const char *what, const char *name, char *err, size_t errlen)
{
	const char *file = NULL;
	const struct declared *d = mg->decl;
	for (size_t i = 0; d && !file && i < d->n_policies; i++)
		if (strcmp(d->policies[i].name, name) == 0)
			file = d->policies[i].file;
	for (size_t i = 0; d && !file && i < d->n_tasks; i++)
		if (strcmp(d->tasks[i].name, name) == 0)
			file = d->tasks[i].file;
	for (size_t i = 0; d && !file && i < d->n_selections; i++)
		if (strcmp(d->selections[i].name, name) == 0)
			file = d->selections[i].file;
	for (size_t i = 0; d && !file && i < d->n_groups; i++)
		if (strcmp(d->groups[i].path, name) == 0)
			file = d->groups[i].file;
	str_fmt(err, errlen, "%s \"%s\" is declared in %s; change it there and reload "
	    "(custosctl reload)", what, name, file ? file : "etc/custos.d");
}

static bool
ready(const struct mgmt *mg, char *err, size_t errlen)
{
	if (mg == NULL || mg->m == NULL) {
		str_fmt(err, errlen, "the administration model is not loaded yet (database unavailable?)");
		return false;
	}
	return true;
}

/* ---- views ---- */

struct counts {
	json_int_t total, st[3];
};

struct gcount {
	uint64_t id;
	struct counts c;
};

static int
gcount_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct gcount *)a)->id, y = ((const struct gcount *)b)->id;
	return x < y ? -1 : x > y;
}

/* Host counts per group (a group counts the hosts of its subtree): each host
 * adds itself along its chain, so the cost is hosts x depth x log(groups). */
json_t *
mgmt_groups_json(const struct mgmt *mg)
{
	json_t *arr = json_array();
	if (mg == NULL || mg->m == NULL)
		return arr;
	size_t ng, nh;
	const struct group **gs = groups_list(mg->m->groups, &ng);
	struct host **hosts = registry_hosts(mg->srv->reg, &nh);
	struct gcount *cnt = calloc(ng + 1, sizeof(*cnt));
	for (size_t i = 0; gs && cnt && i < ng; i++)
		cnt[i].id = gs[i]->id;
	if (cnt)
		qsort(cnt, ng, sizeof(*cnt), gcount_cmp);
	for (size_t k = 0; hosts && cnt && k < nh; k++) {
		uint64_t chain[GROUP_DEPTH_MAX];
		int depth = groups_chain(mg->m->groups, hosts[k]->group_id, chain);
		for (int d = 0; d < depth; d++) {
			struct gcount key = { .id = chain[d] };
			struct gcount *g = bsearch(&key, cnt, ng, sizeof(*cnt), gcount_cmp);
			if (g) {
				g->c.total++;
				g->c.st[hosts[k]->st.status]++;
			}
		}
	}
	for (size_t i = 0; gs && cnt && i < ng; i++) {
		struct gcount key = { .id = gs[i]->id };
		const struct gcount *g = bsearch(&key, cnt, ng, sizeof(*cnt), gcount_cmp);
		char path[GROUP_PATH_MAX], parent[GROUP_PATH_MAX];
		groups_path(mg->m->groups, gs[i]->id, path, sizeof(path));
		groups_path(mg->m->groups, gs[i]->parent_id, parent, sizeof(parent));
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I}}",
		    "id", (json_int_t)gs[i]->id, "name", gs[i]->name, "path", path, "parent", parent,
		    "source", gs[i]->source, "hosts", "total", g->c.total, "ok", g->c.st[0],
		    "warning", g->c.st[1], "critical", g->c.st[2]));
	}
	free(cnt);
	free(gs);
	free(hosts);
	return arr;
}

static json_t *
policy_json(const struct mgmt *mg, const struct policy *p)
{
	char path[GROUP_PATH_MAX];
	groups_path(mg->m->groups, p->group_id, path, sizeof(path));
	json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:s}", "id", (json_int_t)p->id,
	    "name", p->name, "group", path, "application", p->application, "kind", policy_kind_name(p->kind),
	    "active", p->active, "inherit", p->inherit, "settings", policy_settings_json(p), "source", p->source);
	if (p->kind == POLICY_OUTBREAK) {
		json_object_set_new(j, "threshold", json_integer(p->threshold));
		json_object_set_new(j, "window", json_integer(p->window_min));
		json_object_set_new(j, "quiet", json_integer(p->quiet_min));
		json_object_set_new(j, "outbreak_now", json_boolean(policy_outbreak(mg->m->pol, p->group_id)));
	}
	return j;
}

json_t *
mgmt_policies_json(const struct mgmt *mg, uint64_t group_id)
{
	json_t *arr = json_array();
	if (mg == NULL || mg->m == NULL)
		return arr;
	size_t n;
	const struct policy **list = policy_list(mg->m->pol, group_id, &n);
	for (size_t i = 0; list && i < n; i++)
		json_array_append_new(arr, policy_json(mg, list[i]));
	free(list);
	return arr;
}

json_t *
mgmt_policy_json(const struct mgmt *mg, const char *name)
{
	const struct policy *p = mg && mg->m ? policy_find(mg->m->pol, name) : NULL;
	return p ? policy_json(mg, p) : NULL;
}

static json_t *
task_json(const struct mtask *t)
{
	return json_pack("{s:I, s:s, s:s, s:O, s:O, s:s, s:i, s:i, s:i, s:i, s:s}", "id", (json_int_t)t->id,
	    "name", t->name, "type", t->type, "params", t->params, "scope", t->scope, "schedule", t->schedule,
	    "random_delay", t->random_delay, "time_limit", t->time_limit, "manual_seq", t->manual_seq,
	    "cancel_seq", t->cancel_seq, "source", t->source);
}

static const struct mtask *
task_find(const struct mgmt *mg, const char *name)
{
	for (size_t i = 0; mg->m && i < mg->m->ntasks; i++)
		if (strcmp(mg->m->tasks[i].name, name) == 0)
			return &mg->m->tasks[i];
	return NULL;
}

json_t *
mgmt_tasks_json(const struct mgmt *mg)
{
	json_t *arr = json_array();
	for (size_t i = 0; mg && mg->m && i < mg->m->ntasks; i++)
		json_array_append_new(arr, task_json(&mg->m->tasks[i]));
	return arr;
}

json_t *
mgmt_task_json(const struct mgmt *mg, const char *name)
{
	const struct mtask *t = mg && mg->m ? task_find(mg, name) : NULL;
	return t ? task_json(t) : NULL;
}

json_t *
mgmt_selections_json(const struct mgmt *mg)
{
	json_t *arr = json_array();
	for (size_t i = 0; mg && mg->m && i < mg->m->nsels; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", mg->m->sels[i].name,
		    "filter", mg->m->sels[i].filter, "source", mg->m->sels[i].source));
	return arr;
}

json_t *
mgmt_rules_json(const struct mgmt *mg)
{
	json_t *arr = json_array();
	for (size_t i = 0; mg && mg->m && i < mg->m->nrules; i++) {
		const struct reloc_rule *r = &mg->m->rules[i];
		json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "name", r->name,
		    "order", r->order, "group", r->group, "hostname", r->hostname, "subnet", r->subnet,
		    "os", r->os, "tag", r->tag, "source", mg->m->rule_source[i]));
	}
	return arr;
}

static json_t *
hosts_matching(const struct mgmt *mg, const struct selection *sel)
{
	json_t *names = json_array();
	size_t n;
	struct host **all = registry_hosts_sorted(mg->srv->reg, &n);
	for (size_t i = 0; all && i < n; i++) {
		char path[GROUP_PATH_MAX];
		struct sel_host f;
		mgmt_sel_facts(mg, all[i], path, sizeof(path), &f);
		if (selection_match(sel, &f))
			json_array_append_new(names, json_string(all[i]->name));
	}
	free(all);
	return names;
}

json_t *
mgmt_selection_hosts(const struct mgmt *mg, const char *name)
{
	for (size_t i = 0; mg && mg->m && i < mg->m->nsels; i++)
		if (strcmp(mg->m->sels[i].name, name) == 0)
			return hosts_matching(mg, mg->m->sels[i].sel);
	return NULL;
}

int
mgmt_filter_hosts(const struct mgmt *mg, const char *filter, json_t **names, char *err, size_t errlen)
{
	struct selection *sel;
	if (selection_parse(filter, &sel, err, errlen) < 0)
		return -1;
	*names = hosts_matching(mg, sel);
	selection_free(sel);
	return 0;
}

json_t *
mgmt_host_policy_json(struct mgmt *mg, struct host *h)
{
	if (mg == NULL || mg->m == NULL)
		return NULL;
	json_t *doc = mgmt_host_document(mg, h);
	char path[GROUP_PATH_MAX];
	mgmt_group_path(mg, h->group_id, path, sizeof(path));
	return json_pack("{s:s, s:s, s:o?, s:i, s:s, s:i, s:O?, s:O?}", "host", h->name, "group", path,
	    "document", doc, "version", h->policy_version, "hash", h->policy_hash,
	    "applied_version", h->policy_applied, "errors", h->policy_errors,
	    "local_settings", h->local_settings);
}

/* ---- changes ---- */

static int
submit(struct mgmt *mg, json_t *op, mgmt_done_fn done, void *arg, uint64_t wake, char *err, size_t errlen)
{
	json_t *ops = json_array();
	json_array_append_new(ops, op);
	return mgmt_change_submit(mg, ops, done, arg, wake, err, errlen);
}

int
mgmt_group_create(struct mgmt *mg, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	const char *path = json_string_value(json_object_get(body, "path"));
	if (!ready(mg, err, errlen))
		return -1;
	if (path == NULL || *path == '\0' || strlen(path) >= GROUP_PATH_MAX) {
		str_fmt(err, errlen, "a group needs a \"path\" such as \"Servers/Web\"");
		return -1;
	}
	char buf[GROUP_PATH_MAX];
	str_copy(buf, path, sizeof(buf));
	int depth = 0;
	for (char *save = NULL, *name = strtok_r(buf, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		if (!groups_name_valid(name, err, errlen))
			return -1;
		if (++depth > GROUP_DEPTH_MAX) {
			str_fmt(err, errlen, "group path \"%s\" is deeper than %d levels", path, GROUP_DEPTH_MAX);
			return -1;
		}
	}
	if (groups_find_path(mg->m->groups, path)) {
		str_fmt(err, errlen, "group \"%s\" exists already", path);
		return -1;
	}
	return submit(mg, json_pack("{s:s, s:s, s:s}", "op", "group_ensure", "path", path, "source", "api"),
	    done, arg, 0, err, errlen);
}

int
mgmt_group_delete(struct mgmt *mg, const char *path, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	const struct group *g = groups_find_path(mg->m->groups, path);
	if (g == NULL) {
		str_fmt(err, errlen, "no group \"%s\" (custosctl groups lists them)", path);
		return -1;
	}
	if (strcmp(g->source, "config") == 0) {
		owned_error(mg, "group", path, err, errlen);
		return -1;
	}
	size_t n;
	const struct group **kids = groups_children(mg->m->groups, g->id, &n);
	free(kids);
	if (n > 0) {
		str_fmt(err, errlen, "group \"%s\" has %zu child group(s); delete or move them first", path, n);
		return -1;
	}
	return submit(mg, json_pack("{s:s, s:I}", "op", "group_delete", "id", (json_int_t)g->id),
	    done, arg, 0, err, errlen);
}

int
mgmt_policy_put(struct mgmt *mg, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *group = json_string_value(json_object_get(body, "group"));
	const char *kind = json_string_value(json_object_get(body, "kind"));
	const struct group *g = group ? groups_find_path(mg->m->groups, group) : NULL;
	if (name == NULL || g == NULL) {
		str_fmt(err, errlen, "a policy needs a \"name\" and an existing \"group\"%s%s%s",
		    group ? " (no group \"" : "", group ? group : "", group ? "\")" : "");
		return -1;
	}
	const struct policy *old = policy_find(mg->m->pol, name);
	if (old && strcmp(old->source, "config") == 0) {
		owned_error(mg, "policy", name, err, errlen);
		return -1;
	}
	/* validate through the model's own checks on a scratch copy */
	struct policy p;
	policy_init(&p);
	p.id = old ? old->id : UINT64_MAX;
	str_copy(p.name, name, sizeof(p.name));
	p.group_id = g->id;
	str_copy(p.application, json_string_value(json_object_get(body, "application")) ?: "",
	    sizeof(p.application));
	int k = policy_kind_parse(kind ? kind : "normal");
	p.kind = k < 0 ? POLICY_NORMAL : (enum policy_kind)k;
	json_t *active = json_object_get(body, "active"), *inherit = json_object_get(body, "inherit");
	p.active = active ? json_is_true(active) : true;
	p.inherit = inherit ? json_is_true(inherit) : true;
	p.threshold = (int)json_integer_value(json_object_get(body, "threshold"));
	p.window_min = (int)json_integer_value(json_object_get(body, "window"));
	p.quiet_min = (int)json_integer_value(json_object_get(body, "quiet"));
	str_copy(p.source, "api", sizeof(p.source));
	json_t *settings = json_object_get(body, "settings");
	int rc = -1;
	if (k < 0)
		str_fmt(err, errlen, "policy kind must be normal, outbreak or mobile");
	else if (settings && policy_settings_from_json(&p, settings, err, errlen) < 0)
		;
	else if (policy_check(&p, err, errlen) == 0)
		rc = submit(mg, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:i, s:i, s:i, s:s}",
		    "op", "policy_upsert", "name", name, "group", group, "application", p.application,
		    "kind", policy_kind_name(p.kind), "active", p.active, "inherit", p.inherit,
		    "settings", policy_settings_json(&p), "threshold", p.threshold, "window", p.window_min,
		    "quiet", p.quiet_min, "source", "api"), done, arg, 0, err, errlen);
	policy_clear(&p);
	return rc;
}

int
mgmt_policy_delete(struct mgmt *mg, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	const struct policy *p = policy_find(mg->m->pol, name);
	if (p == NULL) {
		str_fmt(err, errlen, "no policy \"%s\"", name);
		return -1;
	}
	if (strcmp(p->source, "config") == 0) {
		owned_error(mg, "policy", name, err, errlen);
		return -1;
	}
	return submit(mg, json_pack("{s:s, s:s}", "op", "policy_delete", "name", name), done, arg, 0, err, errlen);
}

static const char *const task_types[] = { "update", "scan", "command", "posture", "server_purge_events" };

int
mgmt_task_put(struct mgmt *mg, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *type = json_string_value(json_object_get(body, "type"));
	const char *sched = json_string_value(json_object_get(body, "schedule"));
	json_t *params = json_object_get(body, "params");
	if (name == NULL || *name == '\0' || strlen(name) >= 128) {
		str_fmt(err, errlen, "a task needs a \"name\" of 1-127 characters");
		return -1;
	}
	const struct mtask *old = task_find(mg, name);
	if (old && strcmp(old->source, "config") == 0) {
		owned_error(mg, "task", name, err, errlen);
		return -1;
	}
	bool known = false;
	for (size_t i = 0; type && i < ARRAY_LEN(task_types); i++)
		known = known || strcmp(type, task_types[i]) == 0;
	if (!known) {
		str_fmt(err, errlen, "task type must be update, scan, command, posture or server_purge_events");
		return -1;
	}
	struct schedule s;
	if (schedule_parse(sched ? sched : "manual", &s, err, errlen) < 0)
		return -1;
	if (params && !json_is_object(params)) {
		str_fmt(err, errlen, "task params must be an object");
		return -1;
	}
	if (strcmp(type, "scan") == 0 && !json_is_array(json_object_get(params, "paths"))) {
		str_fmt(err, errlen, "a scan task needs params.paths (an array of paths)");
		return -1;
	}
	if (strcmp(type, "command") == 0 && !json_is_array(json_object_get(params, "argv"))) {
		str_fmt(err, errlen, "a command task needs params.argv (an array: program and arguments)");
		return -1;
	}
	static const char *scopes[] = { "group", "hosts", "selection", "host", "server" };
	json_t *scope = json_object();
	for (size_t i = 0; i < ARRAY_LEN(scopes); i++)
		if (json_object_get(body, scopes[i]))
			json_object_set(scope, scopes[i], json_object_get(body, scopes[i]));
	if (json_object_size(scope) != 1) {
		json_decref(scope);
		str_fmt(err, errlen, "a task needs exactly one scope: group, hosts, selection, host or server");
		return -1;
	}
	const char *gp = json_string_value(json_object_get(scope, "group"));
	if (gp && groups_find_path(mg->m->groups, gp) == NULL) {
		json_decref(scope);
		str_fmt(err, errlen, "no group \"%s\"", gp);
		return -1;
	}
	json_int_t delay = json_integer_value(json_object_get(body, "random_delay"));
	json_t *tl = json_object_get(body, "time_limit");
	json_int_t limit = tl ? json_integer_value(tl) : 3600;
	if (delay < 0 || delay > 86400 || limit < 1 || limit > 7 * 86400) {
		json_decref(scope);
		str_fmt(err, errlen, "random_delay must be 0..86400 and time_limit 1..604800 seconds");
		return -1;
	}
	return submit(mg, json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:s}", "op", "task_upsert",
	    "name", name, "type", type, "params", params ? json_incref(params) : json_object(), "scope", scope,
	    "schedule", sched ? sched : "manual", "random_delay", delay, "time_limit", limit, "source", "api"),
	    done, arg, 0, err, errlen);
}

static const struct mtask *
task_or_err(struct mgmt *mg, const char *name, char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return NULL;
	const struct mtask *t = task_find(mg, name);
	if (t == NULL)
		str_fmt(err, errlen, "no task \"%s\" (custosctl tasks lists them)", name);
	return t;
}

int
mgmt_task_delete(struct mgmt *mg, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	const struct mtask *t = task_or_err(mg, name, err, errlen);
	if (t == NULL)
		return -1;
	if (strcmp(t->source, "config") == 0) {
		owned_error(mg, "task", name, err, errlen);
		return -1;
	}
	return submit(mg, json_pack("{s:s, s:s}", "op", "task_delete", "name", name), done, arg, 0, err, errlen);
}

int
mgmt_task_start(struct mgmt *mg, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	const struct mtask *t = task_or_err(mg, name, err, errlen);
	if (t == NULL)
		return -1;
	if (strncmp(t->type, "server_", 7) == 0)
		return mgmt_server_task_run(mg, t, done, arg, err, errlen);
	log_info("mgmt", "task %s started by the console; waking its hosts", name);
	return submit(mg, json_pack("{s:s, s:s}", "op", "task_start", "name", name), done, arg, t->id, err, errlen);
}

int
mgmt_task_cancel(struct mgmt *mg, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	const struct mtask *t = task_or_err(mg, name, err, errlen);
	if (t == NULL)
		return -1;
	return submit(mg, json_pack("{s:s, s:s}", "op", "task_cancel", "name", name), done, arg, t->id, err, errlen);
}

struct results_ctx {
	struct mgmt_job job;
	mgmt_rows_fn cb;
	void *arg;
};

static void
results_done(void *arg, int rc, const char *err)
{
	struct results_ctx *r = arg;
	r->cb(r->arg, rc == 0 ? r->job.tables : NULL, err);
	json_decref(r->job.tables);
	free(r);
}

int
mgmt_task_results(struct mgmt *mg, const char *name, mgmt_rows_fn cb, void *arg,
    char *err, size_t errlen)
{
	const struct mtask *t = task_or_err(mg, name, err, errlen);
	if (t == NULL)
		return -1;
	struct results_ctx *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	r->job.task_id = t->id;
	r->cb = cb;
	r->arg = arg;
	if (db_submit(mg->srv->db, 0, mgmt_db_task_results, results_done, r) < 0) {
		free(r);
		str_fmt(err, errlen, "the database queue is full; retry later");
		return -1;
	}
	return 0;
}

int
mgmt_selection_put(struct mgmt *mg, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *filter = json_string_value(json_object_get(body, "filter"));
	if (name == NULL || *name == '\0' || strlen(name) >= 64 || filter == NULL) {
		str_fmt(err, errlen, "a selection needs a \"name\" (1-63 characters) and a \"filter\"");
		return -1;
	}
	for (size_t i = 0; i < mg->m->nsels; i++)
		if (strcmp(mg->m->sels[i].name, name) == 0 && strcmp(mg->m->sels[i].source, "config") == 0) {
			owned_error(mg, "selection", name, err, errlen);
			return -1;
		}
	struct selection *sel;
	if (selection_parse(filter, &sel, err, errlen) < 0)
		return -1;
	selection_free(sel);
	return submit(mg, json_pack("{s:s, s:s, s:s, s:s}", "op", "selection_upsert", "name", name,
	    "filter", filter, "source", "api"), done, arg, 0, err, errlen);
}

int
mgmt_selection_delete(struct mgmt *mg, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	for (size_t i = 0; i < mg->m->nsels; i++) {
		if (strcmp(mg->m->sels[i].name, name) != 0)
			continue;
		if (strcmp(mg->m->sels[i].source, "config") == 0) {
			owned_error(mg, "selection", name, err, errlen);
			return -1;
		}
		for (size_t k = 0; k < mg->m->ntasks; k++) {
			const char *used = json_string_value(json_object_get(mg->m->tasks[k].scope, "selection"));
			if (used && strcmp(used, name) == 0) {
				str_fmt(err, errlen, "selection \"%s\" is the scope of task \"%s\"; change or delete "
				    "the task first", name, mg->m->tasks[k].name);
				return -1;
			}
		}
		return submit(mg, json_pack("{s:s, s:s}", "op", "selection_delete", "name", name),
		    done, arg, 0, err, errlen);
	}
	str_fmt(err, errlen, "no selection \"%s\"", name);
	return -1;
}

int
mgmt_host_move(struct mgmt *mg, struct host *h, const char *group_path, char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	uint64_t gid = 0;
	if (group_path && *group_path && strcmp(group_path, GROUP_UNASSIGNED) != 0) {
		const struct group *g = groups_find_path(mg->m->groups, group_path);
		if (g == NULL) {
			str_fmt(err, errlen, "no group \"%s\" (custosctl groups lists them)", group_path);
			return -1;
		}
		gid = g->id;
	}
	h->group_id = gid;
	h->placed = true; /* a host moved by hand is not relocated again */
	mgmt_host_changed(mg, h);
	log_info("mgmt", "host %s moved to %s", h->name, gid ? group_path : GROUP_UNASSIGNED);
	return 0;
}

int
mgmt_host_settings(struct mgmt *mg, struct host *h, const json_t *local, char *err, size_t errlen)
{
	if (!ready(mg, err, errlen))
		return -1;
	if (local && !json_is_null(local) && policy_local_check(local, err, errlen) < 0)
		return -1;
	json_decref(h->local_settings);
	h->local_settings = local && !json_is_null(local) && json_object_size(local) ?
	    json_deep_copy(local) : NULL;
	mgmt_host_changed(mg, h);
	return 0;
}

size_t
mgmt_relocate_all(struct mgmt *mg, bool force)
{
	if (mg == NULL || mg->m == NULL)
		return 0;
	size_t n, moved = 0;
	struct host **all = registry_hosts(mg->srv->reg, &n);
	for (size_t i = 0; all && i < n; i++) {
		if ((all[i]->placed && !force) || all[i]->posture == NULL)
			continue;
		bool was_placed = all[i]->placed;
		if (mgmt_host_relocate(mg, all[i])) {
			moved++;
			mgmt_host_changed(mg, all[i]); /* status, document, write-back, NAC, once */
		} else if (!was_placed) {
			registry_host_changed(mg->srv->reg, all[i], 0); /* placed where it was */
		}
	}
	free(all);
	return moved;
}
