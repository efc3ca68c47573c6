/* accept.c — see accept.h. */
#include "core/accept.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "log.h"
#include "util.h"

struct accept_guard {
	struct accept_guard *next;
	struct evconnlistener *evl;
	struct event *resume;
	const char *module, *what, *hint;
	uint64_t *pauses;
	bool paused, held;
	int64_t last_log;
	uint64_t quiet;            /* not logged since the last line */
};

/* every guard (a handful); the error callback's argument is the
 * listener's owner's, so the guard is found by its listener */
static struct accept_guard *guards;

static void
apply(struct accept_guard *g)
{
	if (g->paused || g->held)
		evconnlistener_disable(g->evl);
	else
		evconnlistener_enable(g->evl);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct accept_guard *g = arg;
	(void)fd;
	(void)what;
	g->paused = false;
	apply(g);
}

static bool
log_now(struct accept_guard *g, uint64_t *quiet)
{
	int64_t now = mono_ms();
	if (g->last_log != 0 && now - g->last_log < 1000) {
		g->quiet++;
		return false;
	}
	*quiet = g->quiet;
	g->quiet = 0;
	g->last_log = now;
	return true;
}

static void
error_cb(struct evconnlistener *evl, void *arg)
{
	int err = errno;
	uint64_t quiet;
	struct accept_guard *g = guards;
	(void)arg;
	while (g && g->evl != evl)
		g = g->next;
	if (g == NULL)
		return;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* the connection stays in the backlog and the socket readable:
		 * retrying at once would spin */
		struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
		g->paused = true;
		evconnlistener_disable(evl);
		evtimer_add(g->resume, &tv);
		if (g->pauses)
			(*g->pauses)++;
		if (log_now(g, &quiet))
			log_warnx(g->module, "%s: accept failed: %s; not accepting for %d ms (%llu more pause(s) "
			    "since the last line); %s", g->what, strerror(err), ACCEPT_PAUSE_MS,
			    (unsigned long long)quiet, g->hint);
		return;
	}
	if (log_now(g, &quiet))
		log_warnx(g->module, "%s: accept failed: %s (%llu more failure(s) since the last line)",
		    g->what, strerror(err), (unsigned long long)quiet);
}

struct accept_guard *
accept_guard_new(struct event_base *base, struct evconnlistener *evl, const char *module,
    const char *what, const char *hint, uint64_t *pauses)
{
	struct accept_guard *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->resume = evtimer_new(base, resume_cb, g);
	if (g->resume == NULL) {
		free(g);
		return NULL;
	}
	g->evl = evl;
	g->module = module;
	g->what = what;
	g->hint = hint;
	g->pauses = pauses;
	g->next = guards;
	guards = g;
	evconnlistener_set_error_cb(evl, error_cb);
	return g;
}

void
accept_guard_free(struct accept_guard *g)
{
	if (g == NULL)
		return;
	for (struct accept_guard **p = &guards; *p; p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
	event_free(g->resume);
	free(g);
}

void
accept_guard_hold(struct accept_guard *g, bool held)
{
	if (g == NULL || g->held == held)
		return;
	g->held = held;
	apply(g);
}
