/* plugins.h — private to agent/posture.c and agent/plugin_*.c: the posture
 * plug-ins and the helpers they share. Not part of the agent's public API;
 * tests/unit/test_posture.c includes it to reach the test hooks.
 *
 * Each plug-in returns its section of the posture document (a new
 * reference), or NULL when it has nothing trustworthy to report; every
 * failure is appended to `errors` as "<plug-in>: <what failed>" and logged.
 * Same thread rules as posture.h: the agent's single thread. */
#ifndef CUSTOS_AGENT_PLUGINS_H
#define CUSTOS_AGENT_PLUGINS_H

#include <jansson.h>

#include "posture.h"

json_t *plugin_system(const struct posture_config *cfg, json_t *errors);
json_t *plugin_clamav(const struct posture_config *cfg, json_t *errors);
json_t *plugin_software(const struct posture_config *cfg, json_t *errors);
json_t *plugin_command(const struct posture_config *cfg, json_t *errors);

/* Appends a formatted line to errors and logs it as a warning. */
void plugin_error(json_t *errors, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* JSON string of len bytes from an untrusted source: bytes that are not
 * valid UTF-8 (and NULs) become '?', so the value is never dropped. */
json_t *plugin_string(const char *s, size_t len);
/* Default for a NULL config string. */
const char *plugin_path(const char *value, const char *fallback);

/* ---- test hooks (plugin_clamav.c) ---- */

/* The ClamAV entry array as plugin_clamav() builds it, with the clamd /
 * clamscan binaries to look for (NULL-terminated) and the proc directory
 * scanned for clamonacc given explicitly. */
json_t *clamav_collect(const struct posture_config *cfg, const char *const *binaries,
    const char *procdir, json_t *errors);
/* true when clamd at the Unix socket path answers PING with PONG within
 * timeout_ms; never blocks longer. */
bool clamav_ping(const char *socket_path, int timeout_ms);
/* true when pidfile (may be NULL/"") names a live process or a process
 * whose comm is "clamonacc" runs under procdir. */
bool clamav_onacc_running(const char *pidfile, const char *procdir);
/* The database version the posture reports (daily's, else the highest of
 * main and bytecode) read from the headers in dir, quietly; -1 when none. */
int64_t clamav_db_version(const char *dir);

#endif
