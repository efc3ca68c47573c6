/* test_listener.c — unit tests for daemon/agents/listener.c's pure part: the key
 * by which unauthenticated connections are counted per address (IPv4 as
 * is, IPv4-mapped IPv6 as IPv4, other IPv6 by /64). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "daemon/agents/listener.h"

static void
key_of(const char *addr, int port, char *ip, char *key, int *gotport)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
	}
	*gotport = listener_addr_key((struct sockaddr *)&ss, ip, 64, key, 64);
}

static void
test_addr_key(void **state)
{
	char ip[64], key[64], ip2[64], key2[64];
	int port;
	(void)state;

	key_of("192.0.2.7", 40000, ip, key, &port);
	assert_string_equal(ip, "192.0.2.7");
	assert_string_equal(key, "192.0.2.7");
	assert_int_equal(port, 40000);

	/* a dual-stack socket's IPv4 client counts as that IPv4 address */
	key_of("::ffff:192.0.2.7", 40001, ip2, key2, &port);
	assert_string_equal(ip2, "192.0.2.7");
	assert_string_equal(key2, key);
	assert_int_equal(port, 40001);

	/* every address of one /64 is one client */
	key_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 1, ip, key, &port);
	assert_string_equal(ip, "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
	assert_string_equal(key, "2001:db8:1:2::/64");
	key_of("2001:db8:1:2::1", 2, ip2, key2, &port);
	assert_string_equal(ip2, "2001:db8:1:2::1");
	assert_string_equal(key2, key);
	/* the next /64 is another one */
	key_of("2001:db8:1:3:aaaa:bbbb:cccc:dddd", 3, ip2, key2, &port);
	assert_string_equal(key2, "2001:db8:1:3::/64");
	/* loopback */
	key_of("::1", 4, ip, key, &port);
	assert_string_equal(ip, "::1");
	assert_string_equal(key, "::/64");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
