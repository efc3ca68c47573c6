/* policy_apply.h — applies the server's policy document on this host.
 *
 * The document (sent in sync_ok only when its hash changed) is
 *   {"applications": {app: {key: value}}, "mobile": {app: {key: value}},
 *    "mobile_after": N}
 * It is kept in STATE/policy.json, and applied again at start (applying is
 * idempotent: files are rewritten and services reloaded only on change).
 *
 * Application "clamav": settings become lines of a marked block
 * ("# BEGIN custos managed" .. "# END custos managed") in clamd.conf and
 * freshclam.conf; only that block is ever rewritten (atomically, keeping the
 * file's mode and owner). A new block goes at the top of the file because
 * clamd and freshclam take the FIRST value of an option.
 *   max_file_size_mb (1..4095)     -> MaxFileSize NM
 *   scan_archives (bool)           -> ScanArchive yes|no
 *   onaccess_paths (list of paths) -> OnAccessIncludePath PATH (one line each)
 *   onaccess_prevention (bool)     -> OnAccessPrevention yes|no
 *   update_checks_per_day (1..50)  -> Checks N            (freshclam.conf)
 *   update_interval_hours (1..24)  -> Checks 24/N         (freshclam.conf)
 *   rtp (bool)                     -> clamav.rtp_start_command / rtp_stop_command
 *                                     when clamonacc's state differs
 * After a change clamav.reload_command runs (empty: "zRELOAD" to clamd's
 * socket; clamd then reloads its databases only).
 * Application "agent": sync_interval (10..86400 s), keep_connection (bool)
 * and mobile_after (s) override the local configuration while in effect.
 * Other keys and applications are reported as errors
 * {"application", "key", "message"} and skipped; an error never stops the
 * rest from being applied.
 *
 * Mobile policy: while the agent has not reached the server for longer
 * than mobile_after seconds (the document's, else agent.mobile_after; 0 =
 * never) the document's "mobile" settings are applied over the normal ones;
 * the next successful sync switches back. Both transitions are logged.
 *
 * Event loop thread only. Applying may block for the commands it runs
 * (at most POLICY_APPLY_COMMAND_TIMEOUT s each). */
#ifndef CUSTOS_AGENT_POLICY_APPLY_H
#define CUSTOS_AGENT_POLICY_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct agent;

#define POLICY_APPLY_BEGIN "# BEGIN custos managed"
#define POLICY_APPLY_END "# END custos managed"
#define POLICY_APPLY_COMMAND_TIMEOUT 30
#define POLICY_APPLY_MOBILE_CHECK_S 30

/* Creates a->policy: loads STATE/policy.json and STATE/last_contact,
 * applies the stored document again and watches for the mobile switch
 * (timer on a->base when it is set). 0 or -1 with err. */
int policy_apply_init(struct agent *a, char *err, size_t errlen);
void policy_apply_free(struct agent *a);

/* Stores and applies a document received from the server. A document that
 * is not an object is recorded as an error. 0, or -1 when it could not be
 * stored (it is still applied). */
int policy_apply(struct agent *a, json_t *document, int64_t version, const char *hash);

/* {"version": N, "hash": H, "errors": [...]} for the next sync (new
 * reference; version 0 and hash "" before any document). */
json_t *policy_apply_report(const struct agent *a);

/* The server answered a sync: remembers the time and leaves mobile mode. */
void policy_apply_contact(struct agent *a);
/* Checks whether the mobile policy is due now (the timer calls this). */
void policy_apply_check_mobile(struct agent *a);
bool policy_apply_is_mobile(const struct agent *a);

/* agent.keep_connection / the sync interval, overridden by the policy. */
bool policy_apply_keep_connection(const struct agent *a);
int64_t policy_apply_sync_interval(const struct agent *a, int64_t fallback);

/* ---- pieces exposed for unit tests ---- */

/* Replaces the managed block of text (len bytes) with body (lines ending
 * in '\n'; "" removes the block), or puts a new block at the top. Every
 * other byte is kept. *out is malloc'd. -1 with err when the markers are
 * broken (one without the other, or twice). */
int policy_apply_block_replace(const char *text, size_t len, const char *body, char **out,
    size_t *outlen, char *err, size_t errlen);

/* Rewrites the block of the file at path when it differs from body;
 * *changed tells. A missing file is fine when body is "" (nothing to
 * manage). 0 or -1 with err. */
int policy_apply_file_update(const char *path, const char *body, bool *changed, char *err,
    size_t errlen);

/* Renders clamav settings (object or NULL) into the block bodies of
 * clamd.conf and freshclam.conf (malloc'd, "" when empty; in a fixed key
 * order). Invalid or unknown keys are appended to errors; the keys that
 * went into each body are appended to clamd_keys / freshclam_keys when
 * those are not NULL. 0 or -1 (no memory). */
int policy_apply_clamav_render(const json_t *settings, char **clamd_body, char **freshclam_body,
    json_t *errors, json_t *clamd_keys, json_t *freshclam_keys);

/* The "agent" application's settings; -1 fields are not set. */
struct policy_apply_agent {
	int64_t sync_interval;
	int keep_connection;     /* -1, 0, 1 */
	int64_t mobile_after;
};
void policy_apply_agent_settings(const json_t *settings, struct policy_apply_agent *out,
    json_t *errors);

/* True when the mobile policy should be in effect. */
bool policy_apply_mobile_due(int64_t now, int64_t last_contact, int64_t mobile_after);

/* The applications to apply: a copy of document.applications, with each
 * mobile application's keys laid over it when mobile. Never NULL (an
 * empty object for a bad document) unless out of memory. */
json_t *policy_apply_effective(const json_t *document, bool mobile);

/* Appends {"application", "key", "message"} to errors. */
void policy_apply_error(json_t *errors, const char *app, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
