/* mgmt_priv.h — what mgmt.c and mgmt_api.c share (not part of the public
 * surface in mgmt.h). Main thread only. */
#ifndef CUSTOS_MGMT_PRIV_H
#define CUSTOS_MGMT_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "model/groups.h"
#include "mgmt/mgmt.h"
#include "model/policy.h"
#include "schedule.h"
#include "model/selection.h"
#include "core/status.h"

struct host;
struct server;
struct declared;

#define OUTBREAK_RING 4096

struct mtask {
	uint64_t id;
	char name[128];
	char type[32];
	json_t *params;           /* owned */
	json_t *scope;            /* owned: {"group": P} | {"hosts": [..]} | {"selection": N} | {"host": N} | {"server": true} */
	char schedule[SCHEDULE_TEXT_MAX];
	int random_delay, time_limit, manual_seq, cancel_seq;
	char source[8];
};

struct msel {
	char name[64];
	char filter[SELECTION_TEXT_MAX];
	struct selection *sel;
	char source[8];
};

struct mthr {
	uint64_t group_id;
	struct status_thresholds t;
	char source[8];
};

struct outbreak {
	uint64_t group_id;
	int64_t times[OUTBREAK_RING]; /* threat arrival times, a ring */
	size_t next, count;
	int64_t last;
};

struct server_run {
	uint64_t task_id;
	char schedule[SCHEDULE_TEXT_MAX];
	int64_t next;             /* -1: manual only */
};

struct model {
	struct group_tree *groups;
	struct policy_store *pol;
	struct reloc_rule *rules;
	char (*rule_source)[8];
	size_t nrules;
	struct mtask *tasks;
	size_t ntasks;
	struct msel *sels;
	size_t nsels;
	struct mthr *thr;
	size_t nthr;
	json_t *tasks_json;       /* cached per-task objects sent to agents */
};

struct mgmt {
	struct server *srv;
	struct mgmt_hooks hooks;  /* main.c's: notify, wake, groups_changed */
	struct model *m;
	struct declared *decl;    /* last applied declaration (for "declared in FILE") */
	struct outbreak *ob;
	size_t nob;
	bool busy;                /* a change job is running */
	struct server_run *runs;  /* server tasks' next run times */
	size_t nruns;
};


/* The selection facts of a host (path is filled, f points into it). */
void mgmt_sel_facts(const struct mgmt *mg, const struct host *h, char *path, size_t plen,
    struct sel_host *f);
/* Runs the relocation rules for h (and marks it placed); true when it
 * moved. Tells no one: the caller calls registry_host_changed() once (moved: with
 * HOST_REEVALUATE, or mgmt_host_changed()). */
bool mgmt_host_relocate(struct mgmt *mg, struct host *h);
/* A host's group, local settings or placement changed: status, policy
 * document, write-back, and a sync push when connected. */
void mgmt_host_changed(struct mgmt *mg, struct host *h);
/* The host's effective policy document (new reference), refreshing its hash
 * and version. */
json_t *mgmt_host_document(struct mgmt *mg, struct host *h);
/* Runs ops in one DB job, then rebuilds the model; wake_task: wake the
 * hosts of that task afterwards. */
int mgmt_change_submit(struct mgmt *mg, json_t *ops, mgmt_done_fn done, void *arg,
    uint64_t wake_task, char *err, size_t errlen);
/* Runs a server task (server_*) now. */
int mgmt_server_task_run(struct mgmt *mg, const struct mtask *t, mgmt_done_fn done, void *arg,
    char *err, size_t errlen);

#endif
