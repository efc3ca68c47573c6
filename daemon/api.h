/* api.h — the console API: REST/JSON over HTTPS (default port 13299).
 *
 *   GET    /api/v1/status              server, database and fleet summary
 *   GET    /api/v1/hosts               every host: status, reasons, anti-virus
 *   GET    /api/v1/hosts/NAME          one host with its full posture
 *   POST   /api/v1/hosts/NAME/wake     ask the agent to sync now
 *   GET    /api/v1/events?host=&since=&limit=
 *   GET    /api/v1/tokens              enrolment tokens (never their secrets)
 *   POST   /api/v1/tokens              {"name","expires_in","max_uses"} -> secret, shown once
 *   DELETE /api/v1/tokens/NAME         (tokens from the configuration file are refused)
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
