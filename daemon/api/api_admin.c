/* api_mgmt.c — the console API's administration endpoints (v1): groups,
 * host listing with paging and filters, moving hosts, local settings,
 * policies, tasks, selections, relocation rules and reload. The model and
 * its persistence are mgmt.h's; this file maps HTTP onto it. See api.h for
 * the list of paths. */
#include "api/api_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "model/groups.h"
#include "mgmt/mgmt.h"
#include "core/registry.h"
#include "core/server.h"
#include "core/status.h"
#include "util.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 10000
#define OP_ERR_MAX (16 * 1024)      /* a reload lists every FILE:LINE problem */
#define NAME_MAX_LEN GROUP_PATH_MAX  /* incl. NUL; the longest object name (a group path) */

/* How one kind of named object (policy, task, selection) is read and
 * changed; lets one set of handlers serve all three. */
struct kind {
	const char *what;        /* "policy" */
	const char *lister;      /* the custosctl command that lists them */
	json_t *(*get)(const struct mgmt *m, const char *name);
	int (*put)(struct mgmt *m, const json_t *body, mgmt_done_fn done, void *arg,
	    char *err, size_t errlen);
	int (*del)(struct mgmt *m, const char *name, mgmt_done_fn done, void *arg,
	    char *err, size_t errlen);
};

/* The element of arr (consumed) whose member key is the string value, as a
 * new reference, or NULL. */
static json_t *
json_find(json_t *arr, const char *key, const char *value)
{
	size_t i;
	json_t *v, *found = NULL;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(json_object_get(v, key));
		if (s && strcmp(s, value) == 0) {
			found = json_incref(v);
			break;
		}
	}
	json_decref(arr);
	return found;
}

static json_t *
selection_json(const struct mgmt *m, const char *name)
{
	return json_find(mgmt_selections_json(m), "name", name);
}

static const struct kind k_policy = { "policy", "policies", mgmt_policy_json,
	mgmt_policy_put, mgmt_policy_delete };
static const struct kind k_task = { "task", "tasks", mgmt_task_json,
	mgmt_task_put, mgmt_task_delete };
static const struct kind k_selection = { "selection", "selections", selection_json,
	mgmt_selection_put, mgmt_selection_delete };

static bool
is_config(const json_t *obj)
{
	const char *s = json_string_value(json_object_get(obj, "source"));
	return s && strcmp(s, "config") == 0;
}

/* ---- changes in flight ----
 *
 * mgmt calls done after the commit, normally later from the event loop but
 * possibly before the call returns (for instance when there was nothing to
 * write); in_call tells the two apart so the request gets exactly one
 * reply. */

enum reply { REPLY_OBJECT, REPLY_GROUP, REPLY_DELETED, REPLY_RELOAD, REPLY_ROWS };

struct op {
	struct api *a;
	struct evhttp_request *req;
	enum reply reply;
	const struct kind *k;     /* REPLY_OBJECT */
	int code;                 /* HTTP status on success */
	char name[NAME_MAX_LEN];
	size_t offset, limit;     /* REPLY_ROWS */
	bool in_call, done;
	int rc;
	json_t *rows;             /* REPLY_ROWS: what the callback got */
	char *done_err;           /* the callback's message (malloc'd) */
	char err[OP_ERR_MAX];     /* the call's refusal */
};

static struct op *
op_new(struct api *a, struct evhttp_request *req, enum reply reply, const struct kind *k,
    int code, const char *name)
{
	if (strlen(name) >= NAME_MAX_LEN) {
		api_error(req, 400, "name longer than %d bytes", NAME_MAX_LEN - 1);
		return NULL;
	}
	struct op *o = calloc(1, sizeof(*o));
	if (o == NULL) {
		api_error(req, 500, "out of memory");
		return NULL;
	}
	o->a = a;
	o->req = req;
	o->reply = reply;
	o->k = k;
	o->code = code;
	str_copy(o->name, name, sizeof(o->name));
	o->in_call = true;
	return o;
}

static void
op_free(struct op *o)
{
	json_decref(o->rows);
	free(o->done_err);
	free(o);
}

/* {"error": msg}; a reload adds "errors": one entry per line (FILE:LINE). */
static void
op_fail(struct op *o, int code, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);
	if (j && o->reply == REPLY_RELOAD && strchr(msg, '\n')) {
		json_t *lines = json_array();
		for (const char *s = msg; *s; ) {
			size_t n = strcspn(s, "\n");
			if (n > 0)
				json_array_append_new(lines, json_stringn(s, n));
			s += n + (s[n] == '\n');
		}
		json_object_set_new(j, "errors", lines);
	}
	api_reply(o->req, code, j);
}

static json_t *
page_json(json_t *rows, size_t offset, size_t limit)
{
	json_t *out = json_array();
	size_t n = json_array_size(rows);
	for (size_t i = offset; out && i < n && i - offset < limit; i++)
		json_array_append(out, json_array_get(rows, i));
	return out;
}

static void
op_succeed(struct op *o)
{
	struct mgmt *m = o->a->srv->mgmt;
	json_t *j = NULL;
	char path[GROUP_PATH_MAX];
	const struct group *g;

	switch (o->reply) {
	case REPLY_OBJECT:
		j = o->k->get(m, o->name);
		break;
	case REPLY_GROUP:
		/* the canonical path: the request may have had stray slashes */
		g = groups_find_path(mgmt_groups(m), o->name);
		if (g && groups_path(mgmt_groups(m), g->id, path, sizeof(path)) >= 0)
			j = json_find(mgmt_groups_json(m), "path", path);
		break;
	case REPLY_DELETED:
		j = json_pack("{s:s}", "deleted", o->name);
		break;
	case REPLY_RELOAD:
		j = json_pack("{s:s}", "result", "etc/custos.d applied");
		break;
	case REPLY_ROWS:
		j = json_pack("{s:s, s:I, s:I, s:I, s:o}", "task", o->name,
		    "total", (json_int_t)json_array_size(o->rows), "offset", (json_int_t)o->offset,
		    "limit", (json_int_t)o->limit, "results", page_json(o->rows, o->offset, o->limit));
		break;
	}
	if (j == NULL)
		j = json_pack("{s:s}", "name", o->name);
	api_reply(o->req, o->code, j);
}

/* The callback has run: reply and free. failcode is the status for a
 * failure it reported. */
static void
op_complete(struct op *o, int failcode)
{
	if (o->rc == 0) {
		op_succeed(o);
	} else if (failcode == 503) {
		char msg[1024];
		str_fmt(msg, sizeof(msg), "database: %s (nothing changed; try again)",
		    o->done_err ? o->done_err : "unknown error");
		op_fail(o, 503, msg);
	} else {
		op_fail(o, failcode, o->done_err ? o->done_err : "refused");
	}
	op_free(o);
}

static void
op_done(void *arg, int rc, const char *err)
{
	struct op *o = arg;
	o->done = true;
	o->rc = rc;
	if (rc != 0 && o->done_err == NULL)
		o->done_err = strdup(err ? err : "unknown error");
	if (!o->in_call)
		op_complete(o, 503);
}

static void
op_rows(void *arg, json_t *rows, const char *err)
{
	struct op *o = arg;
	o->done = true;
	o->rc = rows ? 0 : -1;
	o->rows = json_incref(rows);
	if (rows == NULL && o->done_err == NULL)
		o->done_err = strdup(err ? err : "unknown error");
	if (!o->in_call)
		op_complete(o, 503);
}

/* The mgmt call returned rc; failcode is the status for its refusal. */
static void
op_finish(struct op *o, int rc, int failcode)
{
	o->in_call = false;
	if (rc < 0) {
		op_fail(o, failcode, o->err[0] ? o->err : (o->done_err ? o->done_err : "refused"));
		op_free(o);
	} else if (o->done) {
		op_complete(o, failcode);
	}
}

static void
model_missing(struct evhttp_request *req)
{
	api_error(req, 503, "groups, policies and tasks are not loaded yet (is the database "
	    "up? custosctl status shows it)");
}

/* ---- query strings ---- */

/* Parses the query into q and checks that every parameter is one of
 * allowed (NULL-terminated). Returns how many there are (the caller clears
 * q), or -1 with the 400 reply sent and q cleared. */
static int
query_parse(struct evhttp_request *req, struct evkeyvalq *q, const char *const *allowed)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
	if (qs == NULL || *qs == '\0')
		return 0;
	if (evhttp_parse_query_str(qs, q) < 0) {
		evhttp_clear_headers(q);
		api_error(req, 400, "malformed query string");
		return -1;
	}
	int n = 0;
	for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next, n++) {
		size_t i;
		for (i = 0; allowed[i] && strcmp(allowed[i], kv->key) != 0; i++)
			;
		if (allowed[i] == NULL) {
			char list[256] = "";
			size_t off = 0;
			for (i = 0; allowed[i]; i++) {
				int w = str_fmt(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", allowed[i]);
				if (w < 0)
					break;
				off += (size_t)w;
			}
			api_error(req, 400, "unknown parameter \"%.64s\" (this path takes: %s)", kv->key,
			    allowed[0] ? list : "none");
			evhttp_clear_headers(q);
			return -1;
		}
	}
	return n;
}

/* A decimal number in [min, max]; false when absent-but-empty, signed,
 * malformed or out of range. */
static bool
parse_size(const char *s, size_t min, size_t max, size_t *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = (size_t)v;
	return true;
}

/* ?offset=&limit= (defaults 0 and 100). -1 with the 400 reply sent. */
static int
page_params(struct evhttp_request *req, struct evkeyvalq *q, size_t *offset, size_t *limit)
{
	const char *o = evhttp_find_header(q, "offset"), *l = evhttp_find_header(q, "limit");
	*offset = 0;
	*limit = PAGE_DEFAULT;
	if (o && !parse_size(o, 0, SIZE_MAX / 2, offset)) {
		api_error(req, 400, "offset must be a number >= 0");
		return -1;
	}
	if (l && !parse_size(l, 1, PAGE_MAX, limit)) {
		api_error(req, 400, "limit must be a number from 1 to %d", PAGE_MAX);
		return -1;
	}
	return 0;
}

/* ---- groups ---- */

static void
ep_groups_list(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)name;
	(void)k;
	json_t *j = mgmt_groups_json(a->srv->mgmt);
	if (j == NULL)
		api_error(req, 500, "out of memory");
	else
		api_reply(req, 200, j);
}

/* Group id of path: "" and "Unassigned" give 0 (the hosts in no group).
 * -1 with the 404 reply sent when there is no such group. */
static int
group_lookup(struct api *a, struct evhttp_request *req, const char *path, uint64_t *id)
{
	if (*path == '\0' || strcmp(path, GROUP_UNASSIGNED) == 0) {
		*id = 0;
		return 0;
	}
	const struct group *g = groups_find_path(mgmt_groups(a->srv->mgmt), path);
	if (g == NULL) {
		api_error(req, 404, "no group \"%.300s\" (custosctl groups lists them)", path);
		return -1;
	}
	*id = g->id;
	return 0;
}

static void
ep_group_get(struct api *a, struct evhttp_request *req, const char *path, const struct kind *k)
{
	(void)k;
	uint64_t id;
	char canon[GROUP_PATH_MAX];
	if (group_lookup(a, req, path, &id) < 0)
		return;
	if (id == 0) {
		api_error(req, 404, "\"Unassigned\" is not a group but the hosts in none "
		    "(GET /api/v1/hosts?group=Unassigned lists them)");
		return;
	}
	json_t *j = NULL;
	if (groups_path(mgmt_groups(a->srv->mgmt), id, canon, sizeof(canon)) >= 0)
		j = json_find(mgmt_groups_json(a->srv->mgmt), "path", canon);
	if (j == NULL)
		api_error(req, 500, "group \"%.300s\" vanished", path);
	else
		api_reply(req, 200, j);
}

static void
ep_group_create(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)name;
	(void)k;
	struct mgmt *m = a->srv->mgmt;
	char err[512];
	json_t *body = api_request_json(req, err, sizeof(err));
	if (body == NULL) {
		api_error(req, 400, "%s", err);
		return;
	}
	const char *path = json_string_value(json_object_get(body, "path"));
	if (path == NULL || *path == '\0') {
		api_error(req, 400, "a group needs a \"path\", e.g. {\"path\": \"Servers/Web\"}");
	} else if (groups_find_path(mgmt_groups(m), path)) {
		api_error(req, 409, "group \"%.300s\" exists already", path);
	} else {
		struct op *o = op_new(a, req, REPLY_GROUP, NULL, 201, path);
		if (o) {
			int rc = mgmt_group_create(m, body, op_done, o, o->err, sizeof(o->err));
			op_finish(o, rc, 400);
		}
	}
	json_decref(body);
}

static void
ep_group_delete(struct api *a, struct evhttp_request *req, const char *path, const struct kind *k)
{
	(void)k;
	uint64_t id;
	if (group_lookup(a, req, path, &id) < 0)
		return;
	if (id == 0) {
		api_error(req, 400, "\"Unassigned\" cannot be deleted");
		return;
	}
	struct op *o = op_new(a, req, REPLY_DELETED, NULL, 200, path);
	if (o == NULL)
		return;
	/* refusals: declared in custos.d, or it still has child groups */
	int rc = mgmt_group_delete(a->srv->mgmt, path, op_done, o, o->err, sizeof(o->err));
	op_finish(o, rc, 409);
}

/* ---- hosts ---- */

struct host_query {
	int status;               /* enum host_status, -1 = any */
	bool by_group;
	uint64_t group_id;        /* with by_group; 0 = Unassigned */
	const struct group_tree *tree;
	const char *glob;         /* ?name=, or NULL */
	json_t *names;            /* ?filter=: the matching names as object keys, or NULL */
	size_t offset, limit;
};

/* -1 with the reply sent. */
static int
host_query_parse(struct api *a, struct evhttp_request *req, struct evkeyvalq *q,
    struct host_query *hq)
{
	struct mgmt *m = a->srv->mgmt;
	const char *s;
	memset(hq, 0, sizeof(*hq));
	hq->status = -1;
	hq->tree = mgmt_groups(m);
	if (page_params(req, q, &hq->offset, &hq->limit) < 0)
		return -1;
	if ((s = evhttp_find_header(q, "status")) != NULL) {
		for (int i = STATUS_OK; i <= STATUS_CRITICAL; i++)
			if (strcasecmp(s, status_name((enum host_status)i)) == 0)
				hq->status = i;
		if (hq->status < 0) {
			api_error(req, 400, "status must be OK, Warning or Critical");
			return -1;
		}
	}
	if ((s = evhttp_find_header(q, "group")) != NULL) {
		if (group_lookup(a, req, s, &hq->group_id) < 0)
			return -1;
		hq->by_group = true;
	}
	if ((s = evhttp_find_header(q, "name")) != NULL) {
		if (strlen(s) > 255) {
			api_error(req, 400, "name pattern longer than 255 bytes");
			return -1;
		}
		hq->glob = s;
	}
	if ((s = evhttp_find_header(q, "filter")) != NULL) {
		char err[512];
		json_t *names = NULL;
		if (mgmt_filter_hosts(m, s, &names, err, sizeof(err)) < 0) {
			api_error(req, 400, "filter: %s", err);
			return -1;
		}
		hq->names = json_object();
		size_t i;
		json_t *v;
		json_array_foreach(names, i, v) {
			if (json_is_string(v))
				json_object_set_new(hq->names, json_string_value(v), json_true());
		}
		json_decref(names);
	}
	return 0;
}

static bool
host_query_match(const struct host_query *hq, const struct host *h)
{
	if (hq->status >= 0 && (int)h->st.status != hq->status)
		return false;
	if (hq->by_group && (hq->group_id == 0 ? h->group_id != 0 :
	    !groups_in_subtree(hq->tree, h->group_id, hq->group_id)))
		return false;
	if (hq->glob && fnmatch(hq->glob, h->name, FNM_CASEFOLD) != 0)
		return false;
	if (hq->names && json_object_get(hq->names, h->name) == NULL)
		return false;
	return true;
}

/* Without parameters the bare array of every host (what custosctl and
 * scripts before v1 paging expect); with any, {"total", "offset",
 * "limit", "hosts"}. */
static void
ep_hosts_list(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	static const char *const params[] = { "offset", "limit", "status", "group", "filter",
		"name", NULL };
	(void)name;
	(void)k;
	struct evkeyvalq q = { 0 };
	struct host_query hq;
	int nq = query_parse(req, &q, params);
	if (nq < 0)
		return;
	if (nq > 0 && mgmt_groups(a->srv->mgmt) == NULL) {
		model_missing(req);
		evhttp_clear_headers(&q);
		return;
	}
	if (nq > 0 && host_query_parse(a, req, &q, &hq) < 0) {
		evhttp_clear_headers(&q);
		return;
	}
	size_t n, total = 0;
	struct host **all = registry_hosts_sorted(a->srv->reg, &n);
	json_t *arr = json_array();
	for (size_t i = 0; all && i < n; i++) {
		if (nq > 0 && !host_query_match(&hq, all[i]))
			continue;
		if (nq == 0 || (total >= hq.offset && total - hq.offset < hq.limit))
			json_array_append_new(arr, api_host_json(a, all[i]));
		total++;
	}
	free(all);
	if (nq == 0) {
		api_reply(req, 200, arr);
	} else {
		api_reply(req, 200, json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total,
		    "offset", (json_int_t)hq.offset, "limit", (json_int_t)hq.limit, "hosts", arr));
		json_decref(hq.names);
	}
	evhttp_clear_headers(&q);
}

static struct host *
host_lookup(struct api *a, struct evhttp_request *req, const char *name)
{
	struct host *h = registry_host_by_name(a->srv->reg, name);
	if (h == NULL)
		api_error(req, 404, "no host named \"%.200s\" (custosctl hosts lists them)", name);
	return h;
}

static void
ep_host_move(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)k;
	char err[512];
	uint64_t id;
	struct host *h = host_lookup(a, req, name);
	if (h == NULL)
		return;
	json_t *body = api_request_json(req, err, sizeof(err));
	if (body == NULL) {
		api_error(req, 400, "%s", err);
		return;
	}
	json_t *g = json_object_get(body, "group");
	const char *path = json_is_null(g) ? "" : json_string_value(g);
	if (path == NULL) {
		api_error(req, 400, "give the target as {\"group\": \"A/B\"} (\"\" = Unassigned)");
	} else if (group_lookup(a, req, path, &id) == 0) {
		if (mgmt_host_move(a->srv->mgmt, h, id ? path : "", err, sizeof(err)) < 0)
			api_error(req, 400, "%s", err);
		else
			api_reply(req, 200, api_host_json(a, h));
	}
	json_decref(body);
}

static void
ep_host_settings(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)k;
	char err[512];
	struct host *h = host_lookup(a, req, name);
	if (h == NULL)
		return;
	json_t *body = api_request_json(req, err, sizeof(err));
	if (body == NULL) {
		api_error(req, 400, "%s", err);
		return;
	}
	/* {} clears them, like null */
	if (mgmt_host_settings(a->srv->mgmt, h, json_object_size(body) ? body : json_null(),
	    err, sizeof(err)) < 0)
		api_error(req, 400, "%s", err);
	else
		api_reply(req, 200, json_pack("{s:s, s:O}", "host", h->name, "local_settings",
		    h->local_settings ? h->local_settings : json_null()));
	json_decref(body);
}

static void
ep_host_policy(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)k;
	struct host *h = host_lookup(a, req, name);
	if (h == NULL)
		return;
	json_t *j = mgmt_host_policy_json(a->srv->mgmt, h);
	if (j == NULL)
		api_error(req, 500, "the policy of host \"%s\" could not be computed", h->name);
	else
		api_reply(req, 200, j);
}

/* ---- policies, tasks, selections ---- */

static void
ep_policies_list(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	static const char *const params[] = { "group", NULL };
	(void)name;
	(void)k;
	struct evkeyvalq q = { 0 };
	uint64_t gid = 0;
	if (query_parse(req, &q, params) < 0)
		return;
	const char *group = evhttp_find_header(&q, "group");
	if (group == NULL || group_lookup(a, req, group, &gid) == 0) {
		if (group && gid == 0)
			api_reply(req, 200, json_array());      /* Unassigned holds no policies */
		else
			api_reply(req, 200, mgmt_policies_json(a->srv->mgmt, gid));
	}
	evhttp_clear_headers(&q);
}

static void
ep_tasks_list(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)name;
	(void)k;
	api_reply(req, 200, mgmt_tasks_json(a->srv->mgmt));
}

static void
ep_selections_list(struct api *a, struct evhttp_request *req, const char *name,
    const struct kind *k)
{
	(void)name;
	(void)k;
	api_reply(req, 200, mgmt_selections_json(a->srv->mgmt));
}

static void
ep_rules_list(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)name;
	(void)k;
	api_reply(req, 200, mgmt_rules_json(a->srv->mgmt));
}

/* The object, or NULL with the 404 reply sent. */
static json_t *
obj_lookup(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	json_t *j = k->get(a->srv->mgmt, name);
	if (j == NULL)
		api_error(req, 404, "no %s named \"%.200s\" (custosctl %s lists them)", k->what, name,
		    k->lister);
	return j;
}

static void
ep_obj_get(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	json_t *j = obj_lookup(a, req, name, k);
	if (j)
		api_reply(req, 200, j);
}

/* POST /COLLECTION (name in the body) and PUT /COLLECTION/NAME: create or
 * replace. */
static void
ep_obj_put(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	struct mgmt *m = a->srv->mgmt;
	char err[512];
	json_t *body = api_request_json(req, err, sizeof(err));
	if (body == NULL) {
		api_error(req, 400, "%s", err);
		return;
	}
	const char *bname = json_string_value(json_object_get(body, "name"));
	if (name && bname == NULL) {
		json_object_set_new(body, "name", json_string(name));
		bname = name;
	}
	if (bname == NULL || *bname == '\0') {
		api_error(req, 400, "a %s needs a \"name\"", k->what);
	} else if (name && strcmp(name, bname) != 0) {
		api_error(req, 400, "the body names %s \"%.200s\" but the path \"%.200s\"; to rename, "
		    "create the new one and delete the old", k->what, bname, name);
	} else {
		json_t *old = k->get(m, bname);
		bool config = old && is_config(old);
		struct op *o = op_new(a, req, REPLY_OBJECT, k, old ? 200 : 201, bname);
		json_decref(old);
		if (o) {
			int rc = k->put(m, body, op_done, o, o->err, sizeof(o->err));
			op_finish(o, rc, config ? 409 : 400);
		}
	}
	json_decref(body);
}

/* DELETE, task start, task cancel: call fn on an existing object. */
static void
obj_call(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k,
    int (*fn)(struct mgmt *, const char *, mgmt_done_fn, void *, char *, size_t),
    enum reply reply, int code)
{
	json_t *old = obj_lookup(a, req, name, k);
	if (old == NULL)
		return;
	json_decref(old);
	struct op *o = op_new(a, req, reply, k, code, name);
	if (o == NULL)
		return;
	/* refusals: declared in custos.d, or still in use */
	int rc = fn(a->srv->mgmt, name, op_done, o, o->err, sizeof(o->err));
	op_finish(o, rc, 409);
}

static void
ep_obj_delete(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	obj_call(a, req, name, k, k->del, REPLY_DELETED, 200);
}

static void
ep_task_start(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	obj_call(a, req, name, k, mgmt_task_start, REPLY_OBJECT, 202);
}

static void
ep_task_cancel(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	obj_call(a, req, name, k, mgmt_task_cancel, REPLY_OBJECT, 202);
}

static void
ep_task_results(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	static const char *const params[] = { "offset", "limit", NULL };
	struct evkeyvalq q = { 0 };
	size_t offset, limit;
	if (query_parse(req, &q, params) < 0)
		return;
	int prc = page_params(req, &q, &offset, &limit);
	evhttp_clear_headers(&q);
	if (prc < 0)
		return;
	json_t *old = obj_lookup(a, req, name, k);
	if (old == NULL)
		return;
	json_decref(old);
	struct op *o = op_new(a, req, REPLY_ROWS, k, 200, name);
	if (o == NULL)
		return;
	o->offset = offset;
	o->limit = limit;
	int rc = mgmt_task_results(a->srv->mgmt, name, op_rows, o, o->err, sizeof(o->err));
	op_finish(o, rc, 503);
}

static void
ep_selection_hosts(struct api *a, struct evhttp_request *req, const char *name,
    const struct kind *k)
{
	(void)k;
	json_t *found = mgmt_selection_hosts(a->srv->mgmt, name);
	if (found == NULL) {
		api_error(req, 404, "no selection named \"%.200s\" (custosctl selections lists them)", name);
		return;
	}
	json_t *hosts = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(found, i, v) {
		/* names become the host objects the listings show */
		struct host *h = json_is_string(v) ?
		    registry_host_by_name(a->srv->reg, json_string_value(v)) : NULL;
		if (h)
			json_array_append_new(hosts, api_host_json(a, h));
		else if (!json_is_string(v))
			json_array_append(hosts, v);
	}
	json_decref(found);
	api_reply(req, 200, json_pack("{s:s, s:I, s:o}", "selection", name,
	    "total", (json_int_t)json_array_size(hosts), "hosts", hosts));
}

/* ---- relocation, reload ---- */

static void
ep_relocate(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)name;
	(void)k;
	char err[512];
	json_t *body = api_request_json(req, err, sizeof(err));
	if (body == NULL) {
		api_error(req, 400, "%s", err);
		return;
	}
	json_t *force = json_object_get(body, "force");
	if (force && !json_is_boolean(force)) {
		api_error(req, 400, "\"force\" must be true or false");
	} else {
		size_t moved = mgmt_relocate_all(a->srv->mgmt, json_is_true(force));
		api_reply(req, 200, json_pack("{s:I, s:b}", "moved", (json_int_t)moved,
		    "force", json_is_true(force)));
	}
	json_decref(body);
}

static void
ep_reload(struct api *a, struct evhttp_request *req, const char *name, const struct kind *k)
{
	(void)name;
	(void)k;
	struct op *o = op_new(a, req, REPLY_RELOAD, NULL, 200, "custos.d");
	if (o == NULL)
		return;
	int rc = mgmt_reload(a->srv->mgmt, op_done, o, o->err, sizeof(o->err));
	op_finish(o, rc, 400);
}

/* ---- routing ---- */

typedef void (*route_fn)(struct api *a, struct evhttp_request *req, const char *name,
    const struct kind *k);

struct route {
	enum evhttp_cmd_type method;
	const char *coll;         /* /api/v1/COLL */
	bool named;               /* /api/v1/COLL/NAME */
	const char *action;       /* /api/v1/COLL/NAME/ACTION, or NULL */
	route_fn fn;
	const struct kind *k;
};

static const struct route routes[] = {
	{ EVHTTP_REQ_GET, "groups", false, NULL, ep_groups_list, NULL },
	{ EVHTTP_REQ_POST, "groups", false, NULL, ep_group_create, NULL },
	{ EVHTTP_REQ_GET, "groups", true, NULL, ep_group_get, NULL },
	{ EVHTTP_REQ_DELETE, "groups", true, NULL, ep_group_delete, NULL },
	{ EVHTTP_REQ_GET, "hosts", false, NULL, ep_hosts_list, NULL },
	{ EVHTTP_REQ_POST, "hosts", true, "move", ep_host_move, NULL },
	{ EVHTTP_REQ_PUT, "hosts", true, "settings", ep_host_settings, NULL },
	{ EVHTTP_REQ_GET, "hosts", true, "policy", ep_host_policy, NULL },
	{ EVHTTP_REQ_GET, "policies", false, NULL, ep_policies_list, NULL },
	{ EVHTTP_REQ_POST, "policies", false, NULL, ep_obj_put, &k_policy },
	{ EVHTTP_REQ_GET, "policies", true, NULL, ep_obj_get, &k_policy },
	{ EVHTTP_REQ_PUT, "policies", true, NULL, ep_obj_put, &k_policy },
	{ EVHTTP_REQ_DELETE, "policies", true, NULL, ep_obj_delete, &k_policy },
	{ EVHTTP_REQ_GET, "tasks", false, NULL, ep_tasks_list, NULL },
	{ EVHTTP_REQ_POST, "tasks", false, NULL, ep_obj_put, &k_task },
	{ EVHTTP_REQ_GET, "tasks", true, NULL, ep_obj_get, &k_task },
	{ EVHTTP_REQ_PUT, "tasks", true, NULL, ep_obj_put, &k_task },
	{ EVHTTP_REQ_DELETE, "tasks", true, NULL, ep_obj_delete, &k_task },
	{ EVHTTP_REQ_POST, "tasks", true, "start", ep_task_start, &k_task },
	{ EVHTTP_REQ_POST, "tasks", true, "cancel", ep_task_cancel, &k_task },
	{ EVHTTP_REQ_GET, "tasks", true, "results", ep_task_results, &k_task },
	{ EVHTTP_REQ_GET, "selections", false, NULL, ep_selections_list, NULL },
	{ EVHTTP_REQ_POST, "selections", false, NULL, ep_obj_put, &k_selection },
	{ EVHTTP_REQ_GET, "selections", true, NULL, ep_obj_get, &k_selection },
	{ EVHTTP_REQ_PUT, "selections", true, NULL, ep_obj_put, &k_selection },
	{ EVHTTP_REQ_DELETE, "selections", true, NULL, ep_obj_delete, &k_selection },
	{ EVHTTP_REQ_GET, "selections", true, "hosts", ep_selection_hosts, &k_selection },
	{ EVHTTP_REQ_GET, "rules", false, NULL, ep_rules_list, NULL },
	{ EVHTTP_REQ_POST, "relocate", false, NULL, ep_relocate, NULL },
	{ EVHTTP_REQ_POST, "reload", false, NULL, ep_reload, NULL },
};

bool
api_mgmt_route(struct api *a, struct evhttp_request *req, char *const *seg, size_t nseg)
{
	if (nseg < 3 || nseg > 5)
		return false;
	for (size_t i = 0; i < nseg; i++)
		if (seg[i] == NULL)
			return false;
	const char *name = nseg >= 4 ? seg[3] : NULL;
	const char *action = nseg == 5 ? seg[4] : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool path_known = false;
	for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
		const struct route *r = &routes[i];
		if (strcmp(r->coll, seg[2]) != 0 || r->named != (name != NULL) ||
		    (r->action == NULL) != (action == NULL) ||
		    (action && strcmp(r->action, action) != 0))
			continue;
		path_known = true;
		if (r->method != cmd)
			continue;
		/* the plain host listing is served from memory even before the
		 * administration model is loaded (the database may be down) */
		if (mgmt_groups(a->srv->mgmt) == NULL && r->fn != ep_hosts_list)
			model_missing(req);
		else
			r->fn(a, req, name, r->k);
		return true;
	}
	if (path_known) {
		api_error(req, 405, "method not allowed here");
		return true;
	}
	return false;
}
