/* test_wakeup.c — unit tests for daemon/wakeup.c: the paced queue sends
 * signed datagrams to a real UDP socket on loopback at wakeup.rate, once per
 * host, and skips hosts deleted meanwhile. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "daemon/agents/wakeup.h"
#include "log.h"
#include "pki.h"
#include "util.h"
#include "wake.h"

#define HOSTS 20
#define RATE 20

struct fx {
	char dir[PATH_MAX];
	struct server srv;
	struct host *h[HOSTS];
	int udp;
	int got[HOSTS];
	struct wake_replay replay;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	if (f == NULL)
		return -1;
	str_copy(f->dir, "/tmp/custos-wakeup-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL ||
	    pki_server_init(&f->srv.pki, f->dir, "custos-test", "localhost", err, sizeof(err)) < 0)
		return -1;
	f->srv.base = event_base_new();
	f->srv.reg = registry_new();
	f->udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (f->srv.base == NULL || f->srv.reg == NULL || f->udp < 0 ||
	    bind(f->udp, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(f->udp, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	for (int i = 0; i < HOSTS; i++) {
		struct host *h = calloc(1, sizeof(*h));
		if (h == NULL)
			return -1;
		h->id = (uint64_t)i + 1;
		str_fmt(h->uid, sizeof(h->uid), "%032x", i + 1);
		str_fmt(h->name, sizeof(h->name), "pc-%d", i);
		str_copy(h->last_ip, "127.0.0.1", sizeof(h->last_ip));
		h->wake_port = ntohs(sa.sin_port);
		if (registry_add_host(f->srv.reg, h) < 0)
			return -1;
		f->h[i] = h;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	static const char *const files[] = { "ca.key", "ca.pem", "server.key", "server.pem" };
	char p[PATH_MAX];
	registry_free(f->srv.reg);
	event_base_free(f->srv.base);
	pki_server_free(&f->srv.pki);
	close(f->udp);
	for (size_t i = 0; i < ARRAY_LEN(files); i++)
		if (str_fmt(p, sizeof(p), "%s/%s", f->dir, files[i]) > 0)
			unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Receives what arrived: every datagram must verify for one of the hosts. */
static int
drain(struct fx *f)
{
	uint8_t buf[WAKE_MAX_LEN + 16];
	int n = 0;
	ssize_t len;
	while ((len = recv(f->udp, buf, sizeof(buf), 0)) > 0) {
		int who = -1;
		for (int i = 0; i < HOSTS && who < 0; i++)
			if (f->h[i] != NULL && wake_verify(f->srv.pki.server_cert, f->h[i]->uid, buf, (size_t)len, now_s(), 60,
			    &f->replay) == WAKE_OK)
				who = i;
		assert_true(who >= 0);
		f->got[who]++;
		n++;
	}
	return n;
}

static void
run_ms(struct fx *f, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_base_loopexit(f->srv.base, &tv);
	event_base_dispatch(f->srv.base);
}

static void
test_paced_once_per_host(void **state)
{
	struct fx *f = *state;
	char err[256];
	struct wakeup *w = wakeup_new(&f->srv, RATE, err, sizeof(err));
	assert_non_null(w);
	for (int i = 0; i < HOSTS; i++)
		assert_int_equal(wakeup_host_later(w, f->h[i]), 0);
	/* the first goes at once, the others wait for the next tick, each
	 * once */
	size_t waiting = HOSTS - 1;
	assert_int_equal(wakeup_queued(w), waiting);
	assert_int_equal(wakeup_host_later(w, f->h[HOSTS - 1]), 0);
	assert_int_equal(wakeup_queued(w), waiting);

	run_ms(f, 100);
	int early = drain(f);
	/* 100 ms at 20/s: the first, the bucket (a fifth of a second's
	 * worth) and a few more; all 20 take most of a second */
	assert_true(early >= 2);
	assert_true(early <= 1 + RATE / 5 + 1 + 7);
	assert_true(wakeup_queued(w) > 0);

	for (int t = 0; t < 50 && wakeup_queued(w) > 0; t++)
		run_ms(f, 100);
	drain(f);
	assert_int_equal(wakeup_queued(w), 0);
	for (int i = 0; i < HOSTS; i++)
		assert_int_equal(f->got[i], 1);
	wakeup_free(w);
}

static void
test_deleted_and_unreachable(void **state)
{
	struct fx *f = *state;
	char err[256];
	struct wakeup *w = wakeup_new(&f->srv, RATE, err, sizeof(err));
	assert_non_null(w);
	f->h[3]->wake_port = 0;
	assert_int_equal(wakeup_host_later(w, f->h[3]), -1);   /* never told its port */
	wakeup_set_rate(w, 1);                                 /* bucket of 1 */
	assert_int_equal(wakeup_host_later(w, f->h[0]), 0);    /* sent at once */
	assert_int_equal(wakeup_host_later(w, f->h[1]), 0);    /* queued */
	assert_int_equal(wakeup_queued(w), 1);
	registry_remove_host(f->srv.reg, f->h[1]);               /* deleted meanwhile */
	f->h[1] = NULL;
	for (int t = 0; t < 30 && wakeup_queued(w) > 0; t++)
		run_ms(f, 100);
	assert_int_equal(wakeup_queued(w), 0);
	drain(f);
	assert_int_equal(f->got[0], 1);
	assert_int_equal(f->got[3], 0);
	/* one to the API's immediate path too */
	assert_int_equal(wakeup_host(w, f->h[2], err, sizeof(err)), 0);
	drain(f);
	assert_int_equal(f->got[2], 1);
	wakeup_free(w);
}

int
main(void)
{
	log_init("test_wakeup", "stderr", LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_paced_once_per_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_and_unreachable, setup, teardown),
	};
	return cmocka_run_group_tests_name("wakeup", tests, NULL, NULL);
}
