/* nac_bench.c — NAC decision-time benchmark (issue 5).
 *
 * Builds a registry of 100,000 hosts with realistic postures (two
 * interfaces with their MACs and IPv4/IPv6 addresses, ClamAV state,
 * threats for some), indexes them (nac_new), then times:
 *   answer   one request line in, one reply line out: JSON parsing, the
 *            host lookup (MAC in four notations, IP, user name, CN, unknown
 *            MACs), profile and reply (what the query socket does per line)
 *   query    the same from an already parsed request object
 *   update   one host's sync (nac_host_update with a new posture)
 *   reeval   the periodic re-evaluation of every host
 * and prints p50 / p99 / max per request and the index's memory per host.
 * Target: decision p99 <= 100 us.
 *
 * usage: nac_bench [hosts [queries]]
 * Exit status 0 when the run completed and the answers were right (the
 * target is printed as PASS/MISS, not enforced). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "daemon/core/config.h"
#include "daemon/nacd/nac.h"
#include "daemon/core/registry.h"
#include "daemon/core/server.h"
#include "log.h"
#include "util.h"

#define DAY 86400
#define TARGET_P99_US 100.0

static const char *const conf_text =
    "nac: {\n"
    "  enabled = true;\n"
    "  conditions = (\n"
    "    { token = \"Infected\";   when = \"threats > 0\"; },\n"
    "    { token = \"Quarantine\"; when = \"rtp = false or db_age_days > 7 or no_antivirus\"; },\n"
    "    { token = \"Checkup\";    when = \"db_age_days > 1 or reboot_required\"; },\n"
    "    { token = \"Healthy\";    when = \"status != Critical\"; }\n"
    "  );\n"
    "  profiles = (\n"
    "    { token = \"Healthy\";    vlan = \"100\"; },\n"
    "    { token = \"Checkup\";    vlan = \"100\"; session_timeout = 3600; },\n"
    "    { token = \"Quarantine\"; vlan = \"666\"; filter_id = \"quarantine\";\n"
    "      url_redirect = \"https://custos.example/remediate\"; url_redirect_acl = \"REDIRECT\"; },\n"
    "    { token = \"Quarantine\"; nas_vendor = \"aruba\"; vlan = \"667\"; },\n"
    "    { token = \"Infected\";   reject = true; },\n"
    "    { token = \"Unknown\";    vlan = \"999\"; },\n"
    "    { token = \"Transition\"; vlan = \"999\"; session_timeout = 300; }\n"
    "  );\n"
    "  nas = (\n"
    "    { name = \"switch1\"; address = \"192.0.2.1\"; vendor = \"cisco\"; },\n"
    "    { name = \"ap1\"; address = \"192.0.2.2\"; vendor = \"aruba\"; }\n"
    "  );\n"
    "};\n";

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long
rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

struct pct {
	double p50, p99, max, mean;
};

static struct pct
percentiles(int64_t *ns, size_t n)
{
	struct pct p = { 0 };
	double sum = 0;
	qsort(ns, n, sizeof(*ns), cmp_i64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	p.p50 = (double)ns[n / 2] / 1000.0;
	p.p99 = (double)ns[(n * 99) / 100] / 1000.0;
	p.max = (double)ns[n - 1] / 1000.0;
	p.mean = sum / (double)n / 1000.0;
	return p;
}

static void
mac_of(size_t i, int iface, char out[18])
{
	snprintf(out, 18, "02:%02x:%02x:%02x:%02x:%02x", iface, (unsigned)(i >> 24) & 0xff,
	    (unsigned)(i >> 16) & 0xff, (unsigned)(i >> 8) & 0xff, (unsigned)i & 0xff);
}

static void
ip_of(size_t i, char out[32])
{
	snprintf(out, 32, "10.%u.%u.%u", (unsigned)(i >> 16) & 0xff, (unsigned)(i >> 8) & 0xff,
	    (unsigned)i & 0xff);
}

static json_t *
make_posture(size_t i, int64_t now)
{
	char m0[18], m1[18], ip[32], ip6[64];
	mac_of(i, 0, m0);
	mac_of(i, 1, m1);
	ip_of(i, ip);
	snprintf(ip6, sizeof(ip6), "2001:db8:%x::%x", (unsigned)(i >> 16), (unsigned)(i & 0xffff));
	unsigned r = (unsigned)(rnd() % 100);
	double age = r < 70 ? 0.3 : r < 85 ? 3 : 10;     /* days */
	bool rtp = rnd() % 100 < 95;
	int threats = rnd() % 100 < 2;
	return json_pack("{s:[{s:s, s:b, s:b, s:I, s:s}], s:{s:i}, s:{s:b, s:s, s:[{s:s, s:s, s:[s], s:[s, s]},"
	    " {s:s, s:s, s:[], s:[]}]}}",
	    "antivirus", "name", "clamav", "installed", 1, "rtp", rtp, "db_time",
	    (json_int_t)(now - (int64_t)(age * DAY)), "version", "1.0.7",
	    "threats", "unresolved", threats,
	    "system", "reboot_required", rnd() % 100 < 5, "os", "Debian GNU/Linux 12",
	    "interfaces", "name", "eth0", "mac", m0, "ipv4", ip, "ipv6", ip6, "fe80::1",
	    "name", "wlan0", "mac", m1, "ipv4", "ipv6");
}

int
main(int argc, char **argv)
{
	size_t nhosts = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	size_t nq = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
	static struct server srv;
	char err[4096], path[] = "/tmp/custos-nac-bench-XXXXXX";
	int64_t now = now_s();

	if (nhosts < 10 || nq < 100) {
		fprintf(stderr, "usage: nac_bench [hosts >= 10 [queries >= 100]]\n");
		return 2;
	}
	log_set_level(LOG_LVL_WARN);   /* every token change is logged at info */
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, conf_text, strlen(conf_text)) != (ssize_t)strlen(conf_text)) {
		fprintf(stderr, "nac_bench: cannot write %s\n", path);
		return 1;
	}
	close(fd);
	int rc = conf_load(&srv.cfg, path, custosd_schema, NULL, 0, err, sizeof(err));
	unlink(path);
	if (rc < 0) {
		fprintf(stderr, "nac_bench: %s\n", err);
		return 1;
	}
	status_defaults(&srv.thr);
	srv.reg = registry_new();
	srv.loaded = true;
	if (srv.reg == NULL)
		return 1;

	/* the fleet */
	int64_t t0 = now_ns();
	struct host **hosts = calloc(nhosts, sizeof(*hosts));
	if (hosts == NULL)
		return 1;
	for (size_t i = 0; i < nhosts; i++) {
		struct host *h = calloc(1, sizeof(*h));
		if (h == NULL || random_id(h->uid) < 0)
			return 1;
		snprintf(h->name, sizeof(h->name), "host-%06zu", i);
		ip_of(i, h->last_ip);
		h->enrolled_at = now - 30 * DAY;
		h->last_seen = now - (int64_t)(rnd() % 900);
		host_set_posture(h, make_posture(i, now), h->last_seen, &srv.thr, now);
		if (registry_add_host(srv.reg, h) < 0)
			return 1;
		hosts[i] = h;
	}
	double build_ms = (double)(now_ns() - t0) / 1e6;

	/* indexing: nac_new evaluates and indexes every host */
	long rss0 = rss_kib();
	t0 = now_ns();
	struct nac *n = nac_new(&srv, err, sizeof(err));
	double index_ms = (double)(now_ns() - t0) / 1e6;
	if (n == NULL) {
		fprintf(stderr, "nac_bench: %s\n", err);
		return 1;
	}
	long rss1 = rss_kib();
	srv.nac = n;
	uint64_t counts[NAC_TOKENS];
	nac_token_counts(n, counts);

	/* the requests: a mix of what rlm_custos sends */
	char **lines = calloc(nq, sizeof(*lines));
	json_t **objs = calloc(nq, sizeof(*objs));
	if (lines == NULL || objs == NULL)
		return 1;
	for (size_t q = 0; q < nq; q++) {
		size_t i = (size_t)(rnd() % nhosts);
		char mac[18], key[64], req[512];
		mac_of(i, (int)(q & 1), mac);
		switch (q % 8) {
		case 0: str_copy(key, mac, sizeof(key)); break;
		case 1:
			snprintf(key, sizeof(key), "%.2s-%.2s-%.2s-%.2s-%.2s-%.2s", mac, mac + 3, mac + 6,
			    mac + 9, mac + 12, mac + 15);
			break;
		case 2:
			snprintf(key, sizeof(key), "%.2s%.2s.%.2s%.2s.%.2s%.2s", mac, mac + 3, mac + 6,
			    mac + 9, mac + 12, mac + 15);
			break;
		case 3:
			snprintf(key, sizeof(key), "%.2s%.2s%.2s%.2s%.2s%.2s", mac, mac + 3, mac + 6,
			    mac + 9, mac + 12, mac + 15);
			break;
		default: break;
		}
		if (q % 8 < 4)
			snprintf(req, sizeof(req), "{\"mac\":\"%s\",\"user\":\"%s\",\"nas_ip\":\"192.0.2.%d\","
			    "\"nas_id\":\"switch1\",\"nas_port\":\"Gi1/0/%zu\",\"session_id\":\"%016zx\","
			    "\"phase\":\"%s\"}", key, key, 1 + (int)(q % 2), q % 48, q,
			    q % 3 ? "authorize" : "post-auth");
		else if (q % 8 == 4) {
			char ip[32];
			ip_of(i, ip);
			snprintf(req, sizeof(req), "{\"ip\":\"%s\",\"nas_ip\":\"192.0.2.1\",\"phase\":\"authorize\"}", ip);
		} else if (q % 8 == 5)
			snprintf(req, sizeof(req), "{\"user\":\"host/%s.example.com\",\"nas_ip\":\"192.0.2.2\","
			    "\"phase\":\"authorize\"}", hosts[i]->name);
		else if (q % 8 == 6)
			snprintf(req, sizeof(req), "{\"cn\":\"%s\",\"user\":\"%s\",\"nas_ip\":\"192.0.2.1\","
			    "\"phase\":\"post-auth\"}", hosts[i]->uid, hosts[i]->name);
		else
			snprintf(req, sizeof(req), "{\"mac\":\"06:00:00:%02x:%02x:%02x\",\"nas_ip\":\"192.0.2.1\","
			    "\"phase\":\"authorize\"}", (unsigned)(q >> 16) & 0xff, (unsigned)(q >> 8) & 0xff,
			    (unsigned)q & 0xff);
		lines[q] = strdup(req);
		objs[q] = json_loads(req, 0, NULL);
		if (lines[q] == NULL || objs[q] == NULL)
			return 1;
	}

	/* answer: line in, line out */
	int64_t *ns = calloc(nq, sizeof(*ns));
	if (ns == NULL)
		return 1;
	size_t unknown = 0, wrong = 0;
	for (size_t q = 0; q < nq; q++) {
		size_t len;
		int64_t a = now_ns();
		char *out = nac_answer(n, lines[q], strlen(lines[q]), now, &len);
		ns[q] = now_ns() - a;
		if (out == NULL)
			return 1;
		bool is_unknown = strstr(out, "\"host\":null") != NULL;
		unknown += is_unknown;
		if ((q % 8 == 7) != is_unknown || strstr(out, "\"error\"") != NULL)
			wrong++;
		free(out);
	}
	struct pct answer = percentiles(ns, nq);

	/* query: parsed request in, reply object out */
	for (size_t q = 0; q < nq; q++) {
		int64_t a = now_ns();
		json_t *r = nac_query(n, objs[q], now, err, sizeof(err));
		ns[q] = now_ns() - a;
		if (r == NULL)
			return 1;
		json_decref(r);
	}
	struct pct query = percentiles(ns, nq);

	/* update: a sync with a new posture, for 10,000 hosts */
	size_t nu = nhosts < 10000 ? nhosts : 10000;
	for (size_t k = 0; k < nu; k++) {
		size_t i = (size_t)(rnd() % nhosts);
		host_set_posture(hosts[i], make_posture(i, now), now, &srv.thr, now);
		hosts[i]->last_seen = now;
		int64_t a = now_ns();
		nac_host_update(n, hosts[i], now);
		ns[k] = now_ns() - a;
	}
	struct pct update = percentiles(ns, nu);

	/* the periodic re-evaluation of everyone */
	t0 = now_ns();
	nac_reevaluate(n, now + 60);
	double reeval_ms = (double)(now_ns() - t0) / 1e6;

	struct nac_stats st;
	nac_get_stats(n, &st);
	printf("hosts: %zu (built in %.0f ms); tokens: Healthy %llu, Checkup %llu, Transition %llu, "
	    "Quarantine %llu, Infected %llu, Unknown %llu\n", nhosts, build_ms,
	    (unsigned long long)counts[NAC_HEALTHY], (unsigned long long)counts[NAC_CHECKUP],
	    (unsigned long long)counts[NAC_TRANSITION], (unsigned long long)counts[NAC_QUARANTINE],
	    (unsigned long long)counts[NAC_INFECTED], (unsigned long long)counts[NAC_UNKNOWN]);
	printf("index: %.0f ms to evaluate and index every host; %.2f KiB per host (RSS)\n", index_ms,
	    (double)(rss1 - rss0) / (double)nhosts);
	printf("answer (request line -> reply line, %zu requests, %zu unknown MACs): "
	    "p50 %.1f us  p99 %.1f us  max %.1f us  mean %.1f us\n", nq, unknown, answer.p50, answer.p99,
	    answer.max, answer.mean);
	printf("query  (parsed request -> reply object):                     "
	    "p50 %.1f us  p99 %.1f us  max %.1f us\n", query.p50, query.p99, query.max);
	printf("update (one host's sync, %zu hosts):                          "
	    "p50 %.1f us  p99 %.1f us  max %.1f us\n", nu, update.p50, update.p99, update.max);
	printf("re-evaluation of every host: %.0f ms; post-auth sessions recorded: %llu\n", reeval_ms,
	    (unsigned long long)st.sessions);
	printf("decision time p99 %.1f us (target <= %.0f us) %s\n", answer.p99, TARGET_P99_US,
	    answer.p99 <= TARGET_P99_US ? "PASS" : "MISS");

	for (size_t q = 0; q < nq; q++) {
		free(lines[q]);
		json_decref(objs[q]);
	}
	free(lines);
	free(objs);
	free(ns);
	free(hosts);
	nac_free(n);
	registry_free(srv.reg);
	conf_free(srv.cfg);
	if (wrong) {
		fprintf(stderr, "nac_bench: %zu answers were wrong\n", wrong);
		return 1;
	}
	return 0;
}
