/* mgmt.h — administration of the fleet in the running daemon: groups,
 * relocation rules, policies, tasks, selections and per-group status
 * thresholds (the model of groups.h / policy.h / selection.h), persisted in
 * MariaDB, declared by etc/custos.d/NAME.conf (declare.h) or changed through
 * the API, and handed to agents in their syncs.
 *
 * Persistence: every change is one DB job that writes the change and then
 * reloads the management tables; the in-memory model is replaced from that
 * reload in the job's completion. The API's callbacks therefore run after
 * the commit, with the new model in place.
 *
 * Objects carry a source: "config" (owned by custos.d; the API refuses to
 * change them, naming the file) or "api".
 *
 * Main thread only. */
#ifndef CUSTOS_MGMT_H
#define CUSTOS_MGMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "core/status.h"

struct server;
struct host;
struct mgmt;
struct group_tree;
struct policy_store;

struct mgmt *mgmt_new(struct server *srv);
void mgmt_free(struct mgmt *m);

/* What the model asks of the modules above it; main.c fills it in (mgmt
 * knows neither the listener nor the wake-ups nor the fleet). Every member
 * may be NULL. */
struct mgmt_hooks {
	/* host h's policy document changed: a connected agent is told to sync
	 * now, another one gets a paced wake-up datagram */
	void (*notify)(void *arg, struct host *h);
	/* a task was started by hand: wake host h (paced); -1 when it never
	 * told its wake port (it starts the task at its next sync) */
	int (*wake)(void *arg, struct host *h);
	/* the group tree was rebuilt (the SNMP group table follows it) */
	void (*groups_changed)(void *arg);
	void *arg;
};
void mgmt_set_hooks(struct mgmt *m, const struct mgmt_hooks *hooks);

/* The management tables as the DB thread read them back after a change
 * (store/mgmt_sql.h: {"groups": [[id, name, parent_id, source]],
 * "policies", "rules", "tasks", "selections", "thresholds"}): the model is
 * rebuilt from them; hosts of groups that are gone go to Unassigned, every
 * host whose status, group or policy document changed goes through
 * registry_host_changed once, and hooks.notify reaches those whose
 * document changed. The completion of every change calls it; tests too. */
void mgmt_tables_loaded(struct mgmt *m, json_t *tables);

/* The database is loaded (store.c calls this once hosts are in memory):
 * loads the management tables, then applies etc/custos.d. */
void mgmt_db_loaded(struct mgmt *m);
/* Re-reads etc/custos.d and applies it (SIGHUP, POST /api/v1/reload). On an
 * invalid file nothing changes and err lists every problem (FILE:LINE). done
 * (optional) runs after the commit, or at once with rc -1 on validation
 * errors. */
typedef void (*mgmt_done_fn)(void *arg, int rc, const char *err);
int mgmt_reload(struct mgmt *m, mgmt_done_fn done, void *arg, char *err, size_t errlen);

/* ---- agent protocol hooks (listener.c) ---- */

/* A sync arrived: records tags and the agent's applied policy, places a
 * never-placed host by the relocation rules once its posture is known, and
 * adds "policy" / "tasks" members to reply when the agent's hashes differ.
 * Tells no one: the caller calls registry_host_changed() once, with HOST_REEVALUATE
 * when this returns true (a relocation rule moved the host to another
 * group, whose thresholds apply). */
bool mgmt_on_sync(struct mgmt *m, struct host *h, const json_t *msg, json_t *reply);
/* New threats arrived from host h (threat_found events, resends already
 * left out by fleet_agent_events): they feed the outbreak policies of its
 * group and the groups above. */
void mgmt_on_threats(struct mgmt *m, struct host *h, size_t threats);
/* Periodic (main.c, every minute): ends quiet outbreaks. */
void mgmt_tick(struct mgmt *m, int64_t now);

/* The status thresholds that apply to a host's group (nearest group with
 * thresholds, else the global ones). */
const struct status_thresholds *mgmt_thresholds(const struct mgmt *m, uint64_t group_id);

/* The thresholds for host h: its group's, else the server's. */
const struct status_thresholds *mgmt_host_thresholds(const struct server *srv, const struct host *h);

/* ---- reading (API) ---- */

const struct group_tree *mgmt_groups(const struct mgmt *m);
const struct policy_store *mgmt_policies(const struct mgmt *m);
/* The group path of a host ("" = Unassigned). */
void mgmt_group_path(const struct mgmt *m, uint64_t group_id, char *buf, size_t len);

/* JSON views for the API: arrays of objects (new references). */
json_t *mgmt_groups_json(const struct mgmt *m);        /* path, id, parent, source, hosts: {total, ok, warning, critical} */
json_t *mgmt_policies_json(const struct mgmt *m, uint64_t group_id); /* 0 = all */
json_t *mgmt_policy_json(const struct mgmt *m, const char *name);    /* NULL when unknown */
json_t *mgmt_tasks_json(const struct mgmt *m);
json_t *mgmt_task_json(const struct mgmt *m, const char *name);      /* NULL when unknown */
json_t *mgmt_selections_json(const struct mgmt *m);
json_t *mgmt_rules_json(const struct mgmt *m);
/* Hosts matching a selection's filter, or NULL when there is no such selection. */
json_t *mgmt_selection_hosts(const struct mgmt *m, const char *name);
/* Does host h match the filter text? -1 (err) when the filter is invalid. */
int mgmt_filter_hosts(const struct mgmt *m, const char *filter, json_t **names, char *err, size_t errlen);
/* The effective policy document of a host with its hash and version. */
json_t *mgmt_host_policy_json(struct mgmt *m, struct host *h);

/* ---- changing (API); every call validates first and returns -1 with err
 * (nothing changed, done not called) or 0 (done called after the commit).
 * Objects whose source is "config" are refused. ---- */

/* {"path": "A/B"} */
int mgmt_group_create(struct mgmt *m, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
/* Removes an empty group (no child groups; its hosts go to Unassigned). */
int mgmt_group_delete(struct mgmt *m, const char *path, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
/* {"name","group","application","kind","active","inherit","settings":[{key,value,locked}],
 *  "threshold","window","quiet"}: creates or replaces the policy of that name. */
int mgmt_policy_put(struct mgmt *m, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
int mgmt_policy_delete(struct mgmt *m, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
/* {"name","type","params","group"|"hosts"|"selection"|"host"|"server","schedule",
 *  "random_delay","time_limit"}: creates or replaces the task of that name. */
int mgmt_task_put(struct mgmt *m, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
int mgmt_task_delete(struct mgmt *m, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
/* Manual start (wakes the agents in scope) and cancel; allowed for config
 * tasks too (they do not change the declaration). */
int mgmt_task_start(struct mgmt *m, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
int mgmt_task_cancel(struct mgmt *m, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
/* Results: cb gets an array of {host, run, state, exit_code, output_tail,
 * started, ended} (newest run first) or NULL with err. */
typedef void (*mgmt_rows_fn)(void *arg, json_t *rows, const char *err);
int mgmt_task_results(struct mgmt *m, const char *name, mgmt_rows_fn cb, void *arg,
    char *err, size_t errlen);
/* {"name","filter"} */
int mgmt_selection_put(struct mgmt *m, const json_t *body, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
int mgmt_selection_delete(struct mgmt *m, const char *name, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);
/* Moves a host to a group ("" = Unassigned); immediate in memory, written
 * with the next batch. */
int mgmt_host_move(struct mgmt *m, struct host *h, const char *group_path, char *err, size_t errlen);
/* Replaces a host's local settings ({application: {key: value}}; null clears). */
int mgmt_host_settings(struct mgmt *m, struct host *h, const json_t *local, char *err, size_t errlen);
/* Runs the relocation rules for every host (force: also already placed
 * ones); returns how many moved. */
size_t mgmt_relocate_all(struct mgmt *m, bool force);

#endif
