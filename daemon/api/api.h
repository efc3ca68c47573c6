/* api.h — the console API: REST/JSON over HTTPS (default port 13299).
 *
 *   GET    /api/v1/status              server, database and fleet summary
 *   GET    /api/v1/hosts               every host: status, reasons, group, anti-virus
 *                                      (a bare array); with any of ?offset= &limit=
 *                                      (default 100, max 10000) &status= &group=
 *                                      (subtree) &filter= (selection grammar) &name=
 *                                      (glob): {"total","offset","limit","hosts"}
 *   GET    /api/v1/hosts/NAME          one host with its full posture
 *   POST   /api/v1/hosts/NAME/wake     ask the agent to sync now
 *   POST   /api/v1/hosts/NAME/move     {"group": "A/B"} ("" = Unassigned)
 *   PUT    /api/v1/hosts/NAME/settings {application: {key: value}} local settings
 *   GET    /api/v1/hosts/NAME/policy   effective document, version, hash, applied, errors
 *   GET    /api/v1/events?host=&since=&limit=
 *   GET    /api/v1/tokens              enrolment tokens (never their secrets)
 *   POST   /api/v1/tokens              {"name","expires_in","max_uses"} -> secret, shown once
 *   DELETE /api/v1/tokens/NAME         (tokens from the configuration file are refused)
 *
 * Administration (api_mgmt.c; names and group paths percent-encoded):
 *   GET|POST        /api/v1/groups            POST {"path": "A/B"}
 *   GET|DELETE      /api/v1/groups/PATH       (Servers%2FWeb)
 *   GET|POST        /api/v1/policies[?group=] POST creates or replaces (mgmt_policy_put)
 *   GET|PUT|DELETE  /api/v1/policies/NAME
 *   GET|POST        /api/v1/tasks             POST creates or replaces (mgmt_task_put)
 *   GET|PUT|DELETE  /api/v1/tasks/NAME
 *   POST            /api/v1/tasks/NAME/start, /api/v1/tasks/NAME/cancel
 *   GET             /api/v1/tasks/NAME/results?offset=&limit=
 *   GET|POST        /api/v1/selections        POST {"name","filter"}
 *   GET|PUT|DELETE  /api/v1/selections/NAME
 *   GET             /api/v1/selections/NAME/hosts
 *   GET             /api/v1/rules             relocation rules
 *   POST            /api/v1/relocate          {"force": bool}
 *   POST            /api/v1/reload            re-reads etc/custos.d (400 lists FILE:LINE)
 * Errors are {"error": "..."}: 400 bad request, 404 unknown object, 409
 * declared in custos.d / exists / in use, 503 the database failed.
 * docs/openapi.yaml describes all of it.
 *
 * HTTP Basic authentication against the administrators (PBKDF2 hashes).
 * Main thread only. */
#ifndef CUSTOS_API_H
#define CUSTOS_API_H

#include <stddef.h>

struct server;
struct api;

struct api *api_start(struct server *srv, char *err, size_t errlen);
void api_stop(struct api *a);

#endif
