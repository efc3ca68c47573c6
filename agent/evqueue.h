/* evqueue.h — the agent's durable on-disk event queue.
 *
 * A spool directory; each event is one file written atomically (tmp + fsync +
 * rename + fsync dir) named so that lexical order is enqueue order
 * ("<16-digit ms timestamp>-<seq>-<id>.json"). An event is a JSON object with at
 * least "id" (32 hex, unique), "time" (unix seconds), "severity"
 * ("critical"|"error"|"warning"|"info"), "kind" (short identifier) and
 * "message"; "data" (object) optional. The queue is bounded: when it holds
 * max_events, enqueueing drops the OLDEST event and increments a persistent
 * drop counter (file "dropped" in the directory). Events leave the queue only
 * through evq_ack() — after the server confirmed its commit — so a crash at
 * any point loses nothing that was enqueued and not dropped.
 *
 * Several processes may enqueue into one directory at once (the running agent
 * and `custos-agent event ...` invoked by e.g. clamd's VirusEvent): file
 * creation is atomic, the drop counter is updated under flock(2).
 * A struct evq is used by one thread. */
#ifndef CUSTOS_EVQUEUE_H
#define CUSTOS_EVQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct evq;

/* Opens (creating with mode 0700) the spool directory. */
struct evq *evq_open(const char *dir, size_t max_events, char *err, size_t errlen);
void evq_close(struct evq *q);

/* Builds an event object (new id, time = now) — caller owns the reference. */
json_t *evq_make_event(const char *severity, const char *kind, const char *message, json_t *data);
/* Validates and stores an event (steals nothing: ev is not consumed).
 * Fills "id"/"time" if absent. 0 or -1 (err filled). */
int evq_enqueue(struct evq *q, json_t *ev, char *err, size_t errlen);

/* Returns up to max oldest events as a new JSON array (never NULL on success),
 * without removing them. Unreadable/corrupt files are moved aside to
 * "<dir>/corrupt/" and logged, never returned. */
json_t *evq_peek(struct evq *q, size_t max);
/* Like evq_peek(), and the events' serialized sizes (compact JSON, plus one
 * byte each for the separating comma) add up to at most max_bytes. An event
 * that alone is larger than max_bytes can never be sent: it is replaced by a
 * small event of kind "event_too_large" {id, kind, size, limit} at the end
 * of the queue (queued first, with an id derived from the event's, so that
 * a crash before the move below queues the same report again), then moved
 * to "<dir>/rejected/" (the newest EVQ_REJECTED_KEEP are kept; both
 * directories fsynced), logged and counted (evq_oversized()). When it
 * cannot be moved (or its report cannot be queued) it stays in the spool,
 * held (evq_hold), and is logged and counted once. An event of kind
 * "event_too_large" is never replaced again. Held events are skipped. */
json_t *evq_peek_batch(struct evq *q, size_t max, size_t max_bytes);
#define EVQ_REJECTED_KEEP 100

/* Moves the queued event with this id to "<dir>/rejected/" and logs why
 * (the server refused it and would refuse it again). 0, or -1 when no
 * such event is queued or it cannot be moved (logged). */
int evq_reject_id(struct evq *q, const char *id, const char *why);

/* Leaves the event with this id out of evq_peek*() and evq_count() of this
 * struct evq (in memory: until the process ends), e.g. a refused event that
 * cannot be set aside; it stays in the spool. At most 256 ids are held, the
 * oldest is forgotten first. */
void evq_hold(struct evq *q, const char *id);
bool evq_is_held(const struct evq *q, const char *id);

/* Removes the events whose ids are listed (unknown ids are ignored).
 * Returns the number removed. */
size_t evq_ack(struct evq *q, const char *const *ids, size_t n);

/* Queued events, without those held by this process. */
size_t evq_count(struct evq *q);
uint64_t evq_dropped(struct evq *q);
/* Events set aside because they were larger than a message (persistent). */
uint64_t evq_oversized(struct evq *q);
/* The spool directory path (for inotify). */
const char *evq_dir(const struct evq *q);

#endif
