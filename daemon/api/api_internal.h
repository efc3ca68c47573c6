/* api_internal.h — what the console API's files share (api.c: transport,
 * authentication, status/hosts/events/tokens; api_mgmt.c: the
 * administration endpoints). Not a public interface. Main thread only. */
#ifndef CUSTOS_API_INTERNAL_H
#define CUSTOS_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <openssl/ssl.h>

struct accept_guard;
struct evhttp;
struct evhttp_request;
struct server;
struct host;

struct api {
	struct server *srv;
	struct evhttp *http;
	SSL_CTX *ctx;
	struct accept_guard *guard;  /* accept() out of file descriptors pauses */
	size_t nconns, max_conns;    /* open connections; api.max_connections */
	bool stopping;
	int64_t last_cap_log;
};

/* Sends body (consumed) as JSON with the HTTP status code. */
void api_reply(struct evhttp_request *req, int code, json_t *body);
/* Sends {"error": message} (at most 511 bytes of message). */
void api_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The request body as a JSON object ({} when empty), or NULL with err. */
json_t *api_request_json(struct evhttp_request *req, char *err, size_t errlen);
/* A host as the listings show it (name, status, reasons, group, ...). */
json_t *api_host_json(struct api *a, const struct host *h);

/* api_mgmt.c: serves /api/v1/{groups,hosts,policies,tasks,selections,rules,
 * relocate,reload}/... seg[0..nseg-1] are the decoded path segments
 * ("api", "v1", ...). Returns false, having sent nothing, for a path it does
 * not own (GET /hosts/NAME, POST /hosts/NAME/wake, status, events, tokens). */
bool api_mgmt_route(struct api *a, struct evhttp_request *req, char *const *seg, size_t nseg);

#endif
