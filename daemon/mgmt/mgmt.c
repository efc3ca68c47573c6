/* mgmt.c — see mgmt.h. The model lives in groups.c, policy.c and
 * selection.c; the SQL in mgmt_db.c; this file ties them to the registry,
 * the store, the agents and the declaration in etc/custos.d. */
#include "mgmt/mgmt.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
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

/* ---- the model ---- */

static void
model_free(struct model *m)
{
	if (m == NULL)
		return;
	groups_free(m->groups);
	policy_store_free(m->pol);
	free(m->rules);
	free(m->rule_source);
	for (size_t i = 0; i < m->ntasks; i++) {
		json_decref(m->tasks[i].params);
		json_decref(m->tasks[i].scope);
	}
	free(m->tasks);
	for (size_t i = 0; i < m->nsels; i++)
		selection_free(m->sels[i].sel);
	free(m->sels);
	free(m->thr);
	json_decref(m->tasks_json);
	free(m);
}

static const char *
row_s(json_t *row, size_t i)
{
	const char *s = json_string_value(json_array_get(row, i));
	return s ? s : "";
}

static long long
row_i(json_t *row, size_t i)
{
	return json_integer_value(json_array_get(row, i));
}

/* Groups in id order may list a child before a parent that was re-parented
 * later: add in passes until nothing more can be added. */
static void
model_groups(struct model *m, json_t *rows)
{
	size_t n = json_array_size(rows);
	bool *done = calloc(n + 1, 1);
	char err[256];
	for (bool progress = true; progress && done;) {
		progress = false;
		for (size_t i = 0; i < n; i++) {
			json_t *r = json_array_get(rows, i);
			if (done[i])
				continue;
			uint64_t parent = (uint64_t)row_i(r, 2);
			if (parent != 0 && groups_get(m->groups, parent) == NULL)
				continue;
			if (groups_add(m->groups, (uint64_t)row_i(r, 0), row_s(r, 1), parent, row_s(r, 3),
			    err, sizeof(err)) < 0)
				log_warnx("mgmt", "group %s not loaded: %s", row_s(r, 1), err);
			done[i] = progress = true;
		}
	}
	free(done);
}

static void
model_policies(struct model *m, json_t *rows)
{
	size_t i;
	json_t *r;
	char err[256];
	json_array_foreach(rows, i, r) {
		struct policy p;
		policy_init(&p);
		p.id = (uint64_t)row_i(r, 0);
		str_copy(p.name, row_s(r, 1), sizeof(p.name));
		p.group_id = (uint64_t)row_i(r, 2);
		str_copy(p.application, row_s(r, 3), sizeof(p.application));
		int kind = policy_kind_parse(row_s(r, 4));
		p.kind = kind < 0 ? POLICY_NORMAL : (enum policy_kind)kind;
		p.active = row_i(r, 5) != 0;
		p.inherit = row_i(r, 6) != 0;
		json_t *settings = json_loads(row_s(r, 7), 0, NULL);
		p.threshold = (int)row_i(r, 8);
		p.window_min = (int)row_i(r, 9);
		p.quiet_min = (int)row_i(r, 10);
		str_copy(p.source, row_s(r, 11), sizeof(p.source));
		if ((settings && policy_settings_from_json(&p, settings, err, sizeof(err)) < 0) ||
		    policy_put(m->pol, &p, err, sizeof(err)) < 0)
			log_warnx("mgmt", "policy %s not loaded: %s", p.name, err);
		json_decref(settings);
		policy_clear(&p);
	}
}

static void
model_rules(struct model *m, json_t *rows)
{
	size_t n = json_array_size(rows);
	m->rules = calloc(n + 1, sizeof(*m->rules));
	m->rule_source = calloc(n + 1, sizeof(*m->rule_source));
	if (m->rules == NULL || m->rule_source == NULL)
		return;
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		struct reloc_rule *x = &m->rules[m->nrules];
		str_copy(x->name, row_s(r, 0), sizeof(x->name));
		x->order = (int)row_i(r, 1);
		str_copy(x->group, row_s(r, 2), sizeof(x->group));
		str_copy(x->hostname, row_s(r, 3), sizeof(x->hostname));
		str_copy(x->subnet, row_s(r, 4), sizeof(x->subnet));
		str_copy(x->os, row_s(r, 5), sizeof(x->os));
		str_copy(x->tag, row_s(r, 6), sizeof(x->tag));
		str_copy(m->rule_source[m->nrules], row_s(r, 7), sizeof(m->rule_source[0]));
		m->nrules++;
	}
}

static json_t *
task_agent_json(const struct mtask *t)
{
	return json_pack("{s:I, s:s, s:s, s:O, s:s, s:i, s:i, s:i, s:i}", "id", (json_int_t)t->id,
	    "name", t->name, "type", t->type, "params", t->params, "schedule", t->schedule,
	    "random_delay", t->random_delay, "time_limit", t->time_limit, "manual_seq", t->manual_seq,
	    "cancel_seq", t->cancel_seq);
}

static void
model_tasks(struct model *m, json_t *rows)
{
	size_t n = json_array_size(rows);
	m->tasks = calloc(n + 1, sizeof(*m->tasks));
	if (m->tasks == NULL)
		return;
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		struct mtask *t = &m->tasks[m->ntasks++];
		t->id = (uint64_t)row_i(r, 0);
		str_copy(t->name, row_s(r, 1), sizeof(t->name));
		str_copy(t->type, row_s(r, 2), sizeof(t->type));
		t->params = json_loads(row_s(r, 3), 0, NULL);
		t->scope = json_loads(row_s(r, 4), 0, NULL);
		if (t->params == NULL)
			t->params = json_object();
		if (t->scope == NULL)
			t->scope = json_object();
		str_copy(t->schedule, row_s(r, 5), sizeof(t->schedule));
		t->random_delay = (int)row_i(r, 6);
		t->time_limit = (int)row_i(r, 7);
		t->manual_seq = (int)row_i(r, 8);
		t->cancel_seq = (int)row_i(r, 9);
		str_copy(t->source, row_s(r, 10), sizeof(t->source));
	}
}

static void
model_selections(struct model *m, json_t *rows)
{
	size_t n = json_array_size(rows);
	m->sels = calloc(n + 1, sizeof(*m->sels));
	if (m->sels == NULL)
		return;
	size_t i;
	json_t *r;
	char err[256];
	json_array_foreach(rows, i, r) {
		struct msel *s = &m->sels[m->nsels];
		str_copy(s->name, row_s(r, 0), sizeof(s->name));
		str_copy(s->filter, row_s(r, 1), sizeof(s->filter));
		str_copy(s->source, row_s(r, 2), sizeof(s->source));
		if (selection_parse(s->filter, &s->sel, err, sizeof(err)) < 0) {
			log_warnx("mgmt", "selection %s not loaded: %s", s->name, err);
			continue;
		}
		m->nsels++;
	}
}

static void
model_thresholds(struct model *m, json_t *rows, const struct status_thresholds *global)
{
	size_t n = json_array_size(rows);
	m->thr = calloc(n + 1, sizeof(*m->thr));
	if (m->thr == NULL)
		return;
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		struct mthr *t = &m->thr[m->nthr++];
		t->group_id = (uint64_t)row_i(r, 0);
		t->t = *global;
		/* 0 = not set here: the global value */
		if (row_i(r, 1) > 0) t->t.db_warning_days = (int)row_i(r, 1);
		if (row_i(r, 2) > 0) t->t.db_critical_days = (int)row_i(r, 2);
		if (row_i(r, 3) > 0) t->t.not_connected_warning_days = (int)row_i(r, 3);
		if (row_i(r, 4) > 0) t->t.not_connected_critical_days = (int)row_i(r, 4);
		str_copy(t->source, row_s(r, 5), sizeof(t->source));
	}
}

static struct model *
model_build(struct mgmt *mg, json_t *tables)
{
	struct model *m = calloc(1, sizeof(*m));
	if (m == NULL || (m->groups = groups_new()) == NULL || (m->pol = policy_store_new()) == NULL) {
		model_free(m);
		return NULL;
	}
	model_groups(m, json_object_get(tables, "groups"));
	model_policies(m, json_object_get(tables, "policies"));
	model_rules(m, json_object_get(tables, "rules"));
	model_tasks(m, json_object_get(tables, "tasks"));
	model_selections(m, json_object_get(tables, "selections"));
	model_thresholds(m, json_object_get(tables, "thresholds"), &mg->srv->thr);
	/* outbreak state survives a reload */
	for (size_t i = 0; mg->m && i < mg->nob; i++)
		if (policy_outbreak(mg->m->pol, mg->ob[i].group_id))
			policy_set_outbreak(m->pol, mg->ob[i].group_id, true);
	return m;
}

/* ---- hosts and the model ---- */

const struct status_thresholds *
mgmt_thresholds(const struct mgmt *mg, uint64_t group_id)
{
	if (mg == NULL || mg->m == NULL)
		return NULL;
	uint64_t chain[GROUP_DEPTH_MAX];
	int n = groups_chain(mg->m->groups, group_id, chain);
	for (int i = n - 1; i >= 0; i--)
		for (size_t k = 0; k < mg->m->nthr; k++)
			if (mg->m->thr[k].group_id == chain[i])
				return &mg->m->thr[k].t;
	return NULL;
}

const struct status_thresholds *
mgmt_host_thresholds(const struct server *srv, const struct host *h)
{
	const struct status_thresholds *t = mgmt_thresholds(srv->mgmt, h->group_id);
	return t ? t : &srv->thr;
}

void
mgmt_group_path(const struct mgmt *mg, uint64_t group_id, char *buf, size_t len)
{
	if (mg == NULL || mg->m == NULL || groups_path(mg->m->groups, group_id, buf, len) < 0)
		str_copy(buf, "", len);
}

void
mgmt_sel_facts(const struct mgmt *mg, const struct host *h, char *path, size_t plen, struct sel_host *f)
{
	json_t *os = json_object_get(json_object_get(h->posture, "system"), "os");
	mgmt_group_path(mg, h->group_id, path, plen);
	*f = (struct sel_host){
		.status = h->st.status, .group_path = path,
		.os_id = json_string_value(json_object_get(os, "id")),
		.os_version_id = json_string_value(json_object_get(os, "version_id")),
		.os_pretty = json_string_value(json_object_get(os, "pretty_name")),
		.last_seen = h->last_seen, .db_time = h->sin.db_time, .name = h->name,
		.reasons = h->st.reasons, .now = now_s(),
	};
}

static bool
task_applies(const struct mgmt *mg, const struct mtask *t, const struct host *h)
{
	json_t *scope = t->scope;
	const char *s;
	if ((s = json_string_value(json_object_get(scope, "group")))) {
		const struct group *g = groups_find_path(mg->m->groups, s);
		return g && h->group_id && groups_in_subtree(mg->m->groups, h->group_id, g->id);
	}
	if ((s = json_string_value(json_object_get(scope, "host"))))
		return strcmp(s, h->name) == 0;
	json_t *hosts = json_object_get(scope, "hosts");
	if (hosts) {
		size_t i;
		json_t *v;
		json_array_foreach(hosts, i, v)
			if (json_string_value(v) && strcmp(json_string_value(v), h->name) == 0)
				return true;
		return false;
	}
	if ((s = json_string_value(json_object_get(scope, "selection")))) {
		for (size_t i = 0; i < mg->m->nsels; i++) {
			if (strcmp(mg->m->sels[i].name, s) != 0)
				continue;
			char path[GROUP_PATH_MAX];
			struct sel_host f;
			mgmt_sel_facts(mg, h, path, sizeof(path), &f);
			return selection_match(mg->m->sels[i].sel, &f);
		}
	}
	return false; /* server tasks and unknown scopes */
}

/* The agent's task list and its hash. */
static json_t *
host_tasks(const struct mgmt *mg, const struct host *h, char hash[65])
{
	json_t *list = json_array();
	for (size_t i = 0; i < mg->m->ntasks; i++)
		if (strncmp(mg->m->tasks[i].type, "server_", 7) != 0 && task_applies(mg, &mg->m->tasks[i], h))
			json_array_append_new(list, task_agent_json(&mg->m->tasks[i]));
	json_t *doc = json_pack("{s:O}", "list", list);
	policy_hash(doc, hash);
	json_decref(doc);
	return list;
}

/* Brings h->policy_hash / version up to date; returns the document.
 * *changed is set when they changed (the caller tells host_changed). */
static json_t *
host_policy(struct mgmt *mg, struct host *h, bool *changed)
{
	json_t *doc = NULL;
	char hash[65], err[256];
	if (policy_host_document(mg->m->pol, mg->m->groups, h->group_id, h->local_settings, &doc, hash,
	    err, sizeof(err)) < 0) {
		log_warnx("mgmt", "host %s: no policy document: %s", h->name, err);
		return NULL;
	}
	if (strcmp(hash, h->policy_hash) != 0) {
		str_copy(h->policy_hash, hash, sizeof(h->policy_hash));
		h->policy_version++;
		*changed = true;
	}
	return doc;
}

json_t *
mgmt_host_document(struct mgmt *mg, struct host *h)
{
	bool changed = false;
	json_t *doc = host_policy(mg, h, &changed);
	if (changed)
		registry_host_changed(mg->srv->reg, h, 0); /* the new version, written back */
	return doc;
}

static void
host_reevaluate(struct mgmt *mg, struct host *h)
{
	const struct status_thresholds *t = mgmt_thresholds(mg, h->group_id);
	host_evaluate(h, t ? t : &mg->srv->thr, now_s());
}

/* Places a host by the relocation rules; true when it moved. */
bool
mgmt_host_relocate(struct mgmt *mg, struct host *h)
{
	json_t *sys = json_object_get(h->posture, "system");
	json_t *os = json_object_get(sys, "os");
	const char *ips[64];
	const char *tags[32];
	size_t nips = 0, ntags = 0, i, k;
	json_t *ifc, *ip, *tag;
	json_array_foreach(json_object_get(sys, "interfaces"), i, ifc) {
		json_array_foreach(json_object_get(ifc, "ipv4"), k, ip)
			if (nips < ARRAY_LEN(ips) && json_string_value(ip))
				ips[nips++] = json_string_value(ip);
		json_array_foreach(json_object_get(ifc, "ipv6"), k, ip)
			if (nips < ARRAY_LEN(ips) && json_string_value(ip))
				ips[nips++] = json_string_value(ip);
	}
	if (nips < ARRAY_LEN(ips) && h->last_ip[0])
		ips[nips++] = h->last_ip;
	json_array_foreach(h->tags, i, tag)
		if (ntags < ARRAY_LEN(tags) && json_string_value(tag))
			tags[ntags++] = json_string_value(tag);
	struct reloc_host facts = {
		.hostname = h->hostname, .ips = ips, .nips = nips,
		.os_id = json_string_value(json_object_get(os, "id")),
		.os_version_id = json_string_value(json_object_get(os, "version_id")),
		.os_pretty = json_string_value(json_object_get(os, "pretty_name")),
		.tags = tags, .ntags = ntags,
	};
	h->placed = true;
	const char *target = reloc_match(mg->m->rules, mg->m->nrules, &facts);
	const struct group *g = target ? groups_find_path(mg->m->groups, target) : NULL;
	if (g == NULL || g->id == h->group_id)
		return false;
	log_info("mgmt", "host %s placed in group %s by a relocation rule", h->name, target);
	h->group_id = g->id;
	return true;
}

/* The host's document changed: a connected agent is told to sync now,
 * another one gets a wake-up datagram (main.c's hook). */
static void
notify_host(struct mgmt *mg, struct host *h)
{
	if (mg->hooks.notify)
		mg->hooks.notify(mg->hooks.arg, h);
}

void
mgmt_host_changed(struct mgmt *mg, struct host *h)
{
	bool changed = false;
	json_decref(host_policy(mg, h, &changed));
	registry_host_changed(mg->srv->reg, h, HOST_REEVALUATE);
	if (changed)
		notify_host(mg, h);
}

bool
mgmt_on_sync(struct mgmt *mg, struct host *h, const json_t *msg, json_t *reply)
{
	bool moved = false, changed = false;
	if (mg == NULL || mg->m == NULL)
		return false;
	json_t *tags = json_object_get(msg, "tags");
	if (json_is_array(tags) && !json_equal(tags, h->tags)) {
		json_decref(h->tags);
		h->tags = json_incref(tags);
	}
	if (!h->placed && h->posture)
		moved = mgmt_host_relocate(mg, h);
	json_t *pol = json_object_get(msg, "policy");
	if (json_is_object(pol)) {
		int applied = (int)json_integer_value(json_object_get(pol, "version"));
		json_t *errors = json_object_get(pol, "errors");
		/* absent: left out as too large on arrival (bounds.c); the stored
		 * list stays */
		if (errors == NULL)
			errors = h->policy_errors;
		if (applied != h->policy_applied || !json_equal(errors, h->policy_errors)) {
			h->policy_applied = applied;
			json_t *old = h->policy_errors;   /* errors may be it */
			h->policy_errors = json_array_size(errors) ? json_incref(errors) : NULL;
			json_decref(old);
			if (h->policy_errors)
				log_info("mgmt", "host %s could not apply %zu policy setting(s)", h->name,
				    json_array_size(errors));
		}
	}
	json_t *doc = host_policy(mg, h, &changed);
	const char *agent_hash = json_string_value(json_object_get(pol, "hash"));
	if (doc && (agent_hash == NULL || strcmp(agent_hash, h->policy_hash) != 0))
		json_object_set_new(reply, "policy", json_pack("{s:i, s:s, s:O}", "version", h->policy_version,
		    "hash", h->policy_hash, "document", doc));
	json_decref(doc);
	char thash[65];
	json_t *list = host_tasks(mg, h, thash);
	const char *agent_thash = json_string_value(json_object_get(msg, "tasks_hash"));
	if (agent_thash == NULL || strcmp(agent_thash, thash) != 0)
		json_object_set_new(reply, "tasks", json_pack("{s:s, s:O}", "hash", thash, "list", list));
	json_decref(list);
	(void)changed; /* the caller's host_changed writes the new version back */
	return moved;
}

/* ---- outbreaks ---- */

static struct outbreak *
outbreak_track(struct mgmt *mg, uint64_t group_id)
{
	for (size_t i = 0; i < mg->nob; i++)
		if (mg->ob[i].group_id == group_id)
			return &mg->ob[i];
	struct outbreak *n = realloc(mg->ob, (mg->nob + 1) * sizeof(*n));
	if (n == NULL)
		return NULL;
	mg->ob = n;
	memset(&n[mg->nob], 0, sizeof(n[0]));
	n[mg->nob].group_id = group_id;
	return &n[mg->nob++];
}

/* The agents of a subtree are told to sync (new documents). */
static void
push_subtree(struct mgmt *mg, uint64_t group_id)
{
	size_t n;
	struct host **all = registry_hosts(mg->srv->reg, &n);
	/* connected agents sync now; the others (agents hang up between syncs
	 * by default) get a paced wake-up datagram, as for any other change */
	for (size_t i = 0; all && i < n; i++)
		if (group_id == 0 || groups_in_subtree(mg->m->groups, all[i]->group_id, group_id))
			notify_host(mg, all[i]);
	free(all);
}

static const struct policy *
outbreak_policy(struct mgmt *mg, uint64_t group_id)
{
	size_t n;
	const struct policy **list = policy_list(mg->m->pol, group_id, &n);
	const struct policy *found = NULL;
	for (size_t i = 0; list && i < n && !found; i++)
		if (list[i]->kind == POLICY_OUTBREAK && list[i]->active && list[i]->threshold > 0)
			found = list[i];
	free(list);
	return found;
}

void
mgmt_on_threats(struct mgmt *mg, struct host *h, size_t threats)
{
	if (mg == NULL || threats == 0)
		return;
	if (mg->m == NULL) {
		/* the database (and with it the model) is not loaded yet: the
		 * fleet has seen these ids, so their resend will not count
		 * again; count them once the model is there (model_replace) */
		h->threats_uncounted += (uint32_t)threats;
		return;
	}
	if (h->group_id == 0)
		return;
	uint64_t chain[GROUP_DEPTH_MAX];
	int depth = groups_chain(mg->m->groups, h->group_id, chain);
	int64_t now = now_s();
	for (int d = 0; d < depth; d++) {
		const struct policy *p = outbreak_policy(mg, chain[d]);
		struct outbreak *ob = p ? outbreak_track(mg, chain[d]) : NULL;
		if (ob == NULL)
			continue;
		for (size_t k = 0; k < threats; k++) {
			ob->times[ob->next] = now;
			ob->next = (ob->next + 1) % OUTBREAK_RING;
			if (ob->count < OUTBREAK_RING)
				ob->count++;
		}
		ob->last = now;
		size_t recent = 0;
		for (size_t k = 0; k < ob->count; k++)
			recent += ob->times[k] > now - (int64_t)p->window_min * 60;
		if (recent >= (size_t)p->threshold && policy_set_outbreak(mg->m->pol, chain[d], true) == 1) {
			char path[GROUP_PATH_MAX];
			mgmt_group_path(mg, chain[d], path, sizeof(path));
			log_warnx("mgmt", "virus outbreak in group %s: %zu threats within %d minutes; "
			    "outbreak policy \"%s\" is active", path, recent, p->window_min, p->name);
			push_subtree(mg, chain[d]);
		}
	}
}

/* Server tasks (server_*) with a schedule run here; their next run time is
 * kept per task id (a reload keeps it when the schedule is unchanged). */
static void
server_tasks_tick(struct mgmt *mg, int64_t now)
{
	for (size_t i = 0; i < mg->m->ntasks; i++) {
		struct mtask *t = &mg->m->tasks[i];
		struct schedule s;
		char err[256];
		if (strncmp(t->type, "server_", 7) != 0 || schedule_parse(t->schedule, &s, err, sizeof(err)) < 0)
			continue;
		struct server_run *r = NULL;
		for (size_t k = 0; k < mg->nruns && !r; k++)
			if (mg->runs[k].task_id == t->id && strcmp(mg->runs[k].schedule, t->schedule) == 0)
				r = &mg->runs[k];
		if (r == NULL) {
			struct server_run *n = realloc(mg->runs, (mg->nruns + 1) * sizeof(*n));
			if (n == NULL)
				return;
			mg->runs = n;
			r = &n[mg->nruns++];
			r->task_id = t->id;
			str_copy(r->schedule, t->schedule, sizeof(r->schedule));
			r->next = schedule_next(&s, now);
			continue;
		}
		if (r->next < 0 || r->next > now)
			continue;
		r->next = schedule_next(&s, now);
		log_info("mgmt", "running server task %s (schedule %s)", t->name, t->schedule);
		if (mgmt_server_task_run(mg, t, NULL, NULL, err, sizeof(err)) < 0)
			log_warnx("mgmt", "server task %s: %s", t->name, err);
	}
}

void
mgmt_tick(struct mgmt *mg, int64_t now)
{
	if (mg == NULL || mg->m == NULL)
		return;
	server_tasks_tick(mg, now);
	for (size_t i = 0; i < mg->nob; i++) {
		struct outbreak *ob = &mg->ob[i];
		if (!policy_outbreak(mg->m->pol, ob->group_id))
			continue;
		const struct policy *p = outbreak_policy(mg, ob->group_id);
		int quiet = p ? (p->quiet_min ? p->quiet_min : p->window_min) : 0;
		if (p == NULL || ob->last < now - (int64_t)quiet * 60) {
			policy_set_outbreak(mg->m->pol, ob->group_id, false);
			ob->count = ob->next = 0;
			char path[GROUP_PATH_MAX];
			mgmt_group_path(mg, ob->group_id, path, sizeof(path));
			log_info("mgmt", "outbreak in group %s is over", path);
			push_subtree(mg, ob->group_id);
		}
	}
}

/* ---- changes: one job, then the model is rebuilt ---- */

struct change {
	struct mgmt_job job;      /* first: the DB thread sees a struct mgmt_job */
	struct mgmt *mg;
	mgmt_done_fn done;
	void *arg;
	uint64_t wake_task;       /* manual start: wake the hosts in its scope */
};

static void
model_replace(struct mgmt *mg, struct model *m)
{
	struct model *old = mg->m;
	mg->m = m;
	model_free(old);
	if (mg->hooks.groups_changed)
		mg->hooks.groups_changed(mg->hooks.arg);
	/* hosts in groups that are gone go to Unassigned; statuses follow the
	 * thresholds; connected agents with a new document sync now */
	size_t n;
	struct host **all = registry_hosts(mg->srv->reg, &n);
	for (size_t i = 0; all && i < n; i++) {
		struct host *h = all[i];
		struct status_result st = h->st;
		bool moved = false;
		if (h->group_id && groups_get(m->groups, h->group_id) == NULL) {
			h->group_id = 0;
			moved = true;
		}
		host_reevaluate(mg, h);
		bool changed = false;
		json_decref(host_policy(mg, h, &changed));
		if (moved || changed || st.status != h->st.status || st.reasons != h->st.reasons)
			registry_host_changed(mg->srv->reg, h, 0);
		if (changed)
			notify_host(mg, h);
		if (h->threats_uncounted) {
			size_t k = h->threats_uncounted;
			h->threats_uncounted = 0;
			mgmt_on_threats(mg, h, k);
		}
	}
	free(all);
}

void
mgmt_tables_loaded(struct mgmt *mg, json_t *tables)
{
	struct model *m = model_build(mg, tables);
	if (m)
		model_replace(mg, m);
}

static void
change_done(void *arg, int rc, const char *err)
{
	struct change *c = arg;
	struct mgmt *mg = c->mg;
	mg->busy = false;
	if (rc == 0) {
		mgmt_tables_loaded(mg, c->job.tables);
		if (c->wake_task) {
			for (size_t i = 0; i < mg->m->ntasks; i++) {
				struct mtask *t = &mg->m->tasks[i];
				if (t->id != c->wake_task)
					continue;
				size_t n;
				struct host **all = registry_hosts(mg->srv->reg, &n);
				size_t unreachable = 0;
				for (size_t k = 0; all && k < n; k++)
					if (task_applies(mg, t, all[k]) &&
					    (mg->hooks.wake == NULL || mg->hooks.wake(mg->hooks.arg, all[k]) < 0))
						unreachable++;
				free(all);
				if (unreachable > 0)
					log_info("mgmt", "task %s: %zu host(s) never told their wake port; they start "
					    "it at their next sync", t->name, unreachable);
			}
		}
	} else {
		log_warnx("mgmt", "change not stored: %s", err);
	}
	if (c->done)
		c->done(c->arg, rc == 0 ? 0 : -1, err);
	json_decref(c->job.ops);
	json_decref(c->job.tables);
	free(c);
}

int
mgmt_change_submit(struct mgmt *mg, json_t *ops, mgmt_done_fn done, void *arg, uint64_t wake_task,
    char *err, size_t errlen)
{
	struct change *c = calloc(1, sizeof(*c));
	if (c == NULL || ops == NULL) {
		free(c);
		json_decref(ops);
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	c->mg = mg;
	c->job.ops = ops;
	c->done = done;
	c->arg = arg;
	c->wake_task = wake_task;
	if (mg->srv->db == NULL || db_submit(mg->srv->db, DB_JOB_RETRY, mgmt_db_work, change_done, c) < 0) {
		json_decref(ops);
		free(c);
		str_fmt(err, errlen, "the database queue is full; retry later");
		return -1;
	}
	mg->busy = true;
	return 0;
}

/* ---- the declaration ---- */

static json_t *
declared_ops(const struct declared *d)
{
	json_t *ops = json_array(), *keep = json_array();
	for (size_t i = 0; i < d->n_groups; i++) {
		json_array_append_new(ops, json_pack("{s:s, s:s, s:s}", "op", "group_ensure",
		    "path", d->groups[i].path, "source", "config"));
		json_array_append_new(keep, json_string(d->groups[i].path));
	}
	json_t *rules = json_array();
	for (size_t i = 0; i < d->n_relocations; i++) {
		const struct declared_relocation *r = &d->relocations[i];
		json_array_append_new(rules, json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "name", r->name,
		    "order", r->order, "group", r->group, "hostname", r->hostname, "subnet", r->subnet,
		    "os", r->os, "tag", r->tag));
	}
	json_array_append_new(ops, json_pack("{s:s, s:o}", "op", "rules_replace", "rules", rules));
	json_t *names = json_array();
	for (size_t i = 0; i < d->n_policies; i++) {
		const struct declared_policy *p = &d->policies[i];
		json_array_append_new(ops, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:O, s:i, s:i, s:i, s:s}",
		    "op", "policy_upsert", "name", p->name, "group", p->group, "application", p->application,
		    "kind", p->kind, "active", p->active, "inherit", p->inherit, "settings", p->settings,
		    "threshold", p->threshold, "window", p->window, "quiet", p->quiet, "source", "config"));
		json_array_append_new(names, json_string(p->name));
	}
	json_array_append_new(ops, json_pack("{s:s, s:s, s:o}", "op", "prune", "table", "policies", "keep", names));
	names = json_array();
	for (size_t i = 0; i < d->n_tasks; i++) {
		const struct declared_task *t = &d->tasks[i];
		json_t *scope = json_object();
		const char *key = declare_scope_name(t->scope);
		if (t->scope == DECLARED_SCOPE_HOSTS) {
			json_t *hosts = json_array();
			for (size_t k = 0; k < t->n_hosts; k++)
				json_array_append_new(hosts, json_string(t->hosts[k]));
			json_object_set_new(scope, key, hosts);
		} else if (t->scope == DECLARED_SCOPE_SERVER) {
			json_object_set_new(scope, key, json_true());
		} else {
			json_object_set_new(scope, key, json_string(t->scope_name ? t->scope_name : ""));
		}
		json_array_append_new(ops, json_pack("{s:s, s:s, s:s, s:O, s:o, s:s, s:i, s:i, s:s}",
		    "op", "task_upsert", "name", t->name, "type", t->type, "params", t->params, "scope", scope,
		    "schedule", t->schedule, "random_delay", t->random_delay, "time_limit", t->time_limit,
		    "source", "config"));
		json_array_append_new(names, json_string(t->name));
	}
	json_array_append_new(ops, json_pack("{s:s, s:s, s:o}", "op", "prune", "table", "tasks", "keep", names));
	names = json_array();
	for (size_t i = 0; i < d->n_selections; i++) {
		json_array_append_new(ops, json_pack("{s:s, s:s, s:s, s:s}", "op", "selection_upsert",
		    "name", d->selections[i].name, "filter", d->selections[i].filter, "source", "config"));
		json_array_append_new(names, json_string(d->selections[i].name));
	}
	json_array_append_new(ops, json_pack("{s:s, s:s, s:o}", "op", "prune", "table", "selections", "keep", names));
	json_array_append_new(ops, json_pack("{s:s, s:o}", "op", "groups_prune", "keep", keep));
	json_t *thr = json_array();
	for (size_t i = 0; i < d->n_thresholds; i++) {
		const struct declared_thresholds *t = &d->thresholds[i];
		json_array_append_new(thr, json_pack("{s:s, s:i, s:i, s:i, s:i}", "group", t->group,
		    "db_warning_days", t->db_warning_days, "db_critical_days", t->db_critical_days,
		    "not_connected_warning_days", t->not_connected_warning_days,
		    "not_connected_critical_days", t->not_connected_critical_days));
	}
	json_array_append_new(ops, json_pack("{s:s, s:o}", "op", "thresholds_replace", "list", thr));
	return ops;
}

struct reload_ctx {
	struct mgmt *mg;
	struct declared *d;
	mgmt_done_fn done;
	void *arg;
};

static void
reload_done(void *arg, int rc, const char *err)
{
	struct reload_ctx *r = arg;
	if (rc == 0) {
		declare_free(r->mg->decl);
		r->mg->decl = r->d;
		log_info("mgmt", "applied etc/custos.d: %zu group(s), %zu polic(ies), %zu task(s), %zu rule(s)",
		    r->d->n_groups, r->d->n_policies, r->d->n_tasks, r->d->n_relocations);
	} else {
		declare_free(r->d);
	}
	if (r->done)
		r->done(r->arg, rc, err);
	free(r);
}

int
mgmt_reload(struct mgmt *mg, mgmt_done_fn done, void *arg, char *err, size_t errlen)
{
	struct declared *d;
	const char *dir = conf_str(mg->srv->cfg, "server.declare_dir");
	if (declare_load(dir, &d, err, errlen) < 0) {
		log_warnx("mgmt", "etc/custos.d not applied; the running state stays:\n%s", err);
		return -1;
	}
	struct reload_ctx *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		declare_free(d);
		str_fmt(err, errlen, "out of memory");
		return -1;
	}
	*r = (struct reload_ctx){ mg, d, done, arg };
	json_t *ops = declared_ops(d);
	log_debug("mgmt", "applying etc/custos.d: %zu operation(s)", json_array_size(ops));
	if (mgmt_change_submit(mg, ops, reload_done, r, 0, err, errlen) < 0) {
		declare_free(d);
		free(r);
		return -1;
	}
	return 0;
}

static void
loaded_apply(void *arg, int rc, const char *err)
{
	struct mgmt *mg = arg;
	char e[8192];
	(void)err;
	if (rc == 0 && mgmt_reload(mg, NULL, NULL, e, sizeof(e)) < 0)
		log_warnx("mgmt", "%s", e);
}

void
mgmt_db_loaded(struct mgmt *mg)
{
	char err[256];
	/* first read what the database holds, then apply the files over it */
	if (mgmt_change_submit(mg, json_array(), loaded_apply, mg, 0, err, sizeof(err)) < 0)
		log_warnx("mgmt", "%s", err);
}

/* ---- server tasks ---- */

struct purge {
	int64_t before;
	mgmt_done_fn done;
	void *arg;
	char name[128];
};

static int
purge_work(MYSQL *conn, void *arg, char *err, size_t errlen)
{
	struct purge *p = arg;
	MYSQL_STMT *st = mysql_stmt_init(conn);
	MYSQL_BIND b;
	int rc = 0;
	memset(&b, 0, sizeof(b));
	b.buffer_type = MYSQL_TYPE_LONGLONG;
	b.buffer = &p->before;
	if (st == NULL)
		return db_conn_fail(conn, "purge events", err, errlen);
	if (mysql_stmt_prepare(st, "DELETE FROM events WHERE time < ?", 33) ||
	    mysql_stmt_bind_param(st, &b) || mysql_stmt_execute(st))
		rc = db_stmt_fail(st, "purge events", err, errlen);
	else
		str_fmt(err, errlen, "%llu", (unsigned long long)mysql_stmt_affected_rows(st));
	mysql_stmt_close(st);
	return rc;
}

static void
purge_done(void *arg, int rc, const char *err)
{
	struct purge *p = arg;
	if (rc == 0)
		log_info("mgmt", "server task %s: purged events older than the limit", p->name);
	else
		log_warnx("mgmt", "server task %s failed: %s", p->name, err);
	if (p->done)
		p->done(p->arg, rc == 0 ? 0 : -1, rc == 0 ? "" : err);
	free(p);
}

int
mgmt_server_task_run(struct mgmt *mg, const struct mtask *t, mgmt_done_fn done, void *arg,
    char *err, size_t errlen)
{
	json_int_t days = json_integer_value(json_object_get(t->params, "days"));
	struct purge *p = calloc(1, sizeof(*p));
	if (p == NULL || days <= 0) {
		free(p);
		str_fmt(err, errlen, "task %s: params.days must be a positive number of days", t->name);
		return -1;
	}
	p->before = now_s() - (int64_t)days * 86400;
	p->done = done;
	p->arg = arg;
	str_copy(p->name, t->name, sizeof(p->name));
	if (db_submit(mg->srv->db, DB_JOB_RETRY, purge_work, purge_done, p) < 0) {
		free(p);
		str_fmt(err, errlen, "the database queue is full; retry later");
		return -1;
	}
	return 0;
}

struct mgmt *
mgmt_new(struct server *srv)
{
	struct mgmt *mg = calloc(1, sizeof(*mg));
	if (mg)
		mg->srv = srv;
	return mg;
}

void
mgmt_set_hooks(struct mgmt *mg, const struct mgmt_hooks *hooks)
{
	mg->hooks = *hooks;
}

void
mgmt_free(struct mgmt *mg)
{
	if (mg == NULL)
		return;
	model_free(mg->m);
	declare_free(mg->decl);
	free(mg->ob);
	free(mg->runs);
	free(mg);
}
