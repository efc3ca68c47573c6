/* wake_tool.c — sends hand-made wake-up datagrams for the integration tests:
 * signed by any key (forged), with any timestamp (stale), or the same datagram
 * several times (replayed).
 *
 *   wake_tool KEYFILE UID HOST PORT [--ts UNIXTIME] [--count N]
 *
 * KEYFILE is a PEM private key (the server's state_dir/server.key, or a
 * foreign EC P-256 key); UID the agent's host_id (32 hex digits). Exit 0 when
 * every copy was sent. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "pki.h"
#include "util.h"
#include "wake.h"

#define COUNT_MAX 1000

static void
usage(void)
{
	fprintf(stderr, "usage: wake_tool KEYFILE UID HOST PORT [--ts UNIXTIME] [--count N]\n");
	exit(2);
}

/* Strict decimal in [min, max]; -1 when s is anything else. */
static int
parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A UDP socket connected to host:port; -1 with a message printed. */
static int
udp_connect(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res, *ai;
	int fd = -1;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "wake_tool: cannot resolve %s:%s: %s\n", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fprintf(stderr, "wake_tool: cannot reach %s:%s: %s\n", host, port, strerror(errno));
	return fd;
}

int
main(int argc, char **argv)
{
	long long ts = -1, count = 1, port;
	char err[512];

	if (argc < 5)
		usage();
	for (int i = 5; i < argc; i++) {
		if (strcmp(argv[i], "--ts") == 0 && i + 1 < argc) {
			if (parse_ll(argv[++i], 0, INT64_MAX, &ts) < 0)
				usage();
		} else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			if (parse_ll(argv[++i], 1, COUNT_MAX, &count) < 0)
				usage();
		} else
			usage();
	}
	if (strlen(argv[2]) != 32 || parse_ll(argv[4], 1, 65535, &port) < 0)
		usage();

	EVP_PKEY *key = pki_load_key(argv[1], err, sizeof(err));
	if (key == NULL) {
		fprintf(stderr, "wake_tool: %s\n", err);
		return 1;
	}
	uint8_t pkt[WAKE_MAX_LEN];
	int len = wake_build(key, argv[2], ts >= 0 ? (int64_t)ts : now_s(), pkt, sizeof(pkt));
	EVP_PKEY_free(key);
	if (len < 0) {
		fprintf(stderr, "wake_tool: cannot build the datagram with key %s\n", argv[1]);
		return 1;
	}
	int fd = udp_connect(argv[3], argv[4]);
	if (fd < 0)
		return 1;
	for (long long i = 0; i < count; i++) {
		if (send(fd, pkt, (size_t)len, 0) != (ssize_t)len) {
			fprintf(stderr, "wake_tool: sending copy %lld failed: %s\n", i + 1, strerror(errno));
			close(fd);
			return 1;
		}
	}
	close(fd);
	printf("sent %lld datagram(s) of %d bytes\n", count, len);
	return 0;
}
