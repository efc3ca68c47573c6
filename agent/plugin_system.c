/* plugin_system.c — the "system" section: host name, OS release, kernel,
 * uptime, pending reboot and network interfaces. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "plugins.h"
#include "util.h"

#define OS_RELEASE_MAX	(64 * 1024)
#define IFACES_MAX	256	/* interfaces reported */
#define ADDRS_MAX	64	/* addresses per family per interface */

/* Unquotes an os-release value in place (shell-like: "..." with \ escapes,
 * '...' literal, or bare up to the end of the line). Returns its length. */
static size_t
osrel_value(char *v)
{
	size_t len = strlen(v);
	char q;

	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r'))
		v[--len] = '\0';
	if (len == 0 || (v[0] != '"' && v[0] != '\''))
		return len;
	q = v[0];
	size_t out = 0;
	for (size_t i = 1; i < len; i++) {
		if (v[i] == q)
			break;
		if (q == '"' && v[i] == '\\' && i + 1 < len &&
		    strchr("\"\\$`", v[i + 1]) != NULL)
			i++;
		v[out++] = v[i];
	}
	v[out] = '\0';
	return out;
}

static json_t *
os_release(const char *path, json_t *errors)
{
	static const struct { const char *key, *name; } keys[] = {
		{ "ID", "id" },
		{ "VERSION_ID", "version_id" },
		{ "PRETTY_NAME", "pretty_name" },
	};
	const char *used = path;
	char *text, *line, *save = NULL;
	json_t *os;

	text = file_read(path, OS_RELEASE_MAX, NULL);
	/* os-release(5): /usr/lib/os-release is the fallback for the default. */
	if (text == NULL && errno == ENOENT && strcmp(path, "/etc/os-release") == 0) {
		used = "/usr/lib/os-release";
		text = file_read(used, OS_RELEASE_MAX, NULL);
	}
	if (text == NULL) {
		plugin_error(errors, "system: cannot read %s: %s; check os_release in the agent "
		    "configuration", used, strerror(errno));
		return NULL;
	}
	os = json_object();
	if (os == NULL) {
		free(text);
		return NULL;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (line[0] == '#' || eq == NULL)
			continue;
		*eq = '\0';
		for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
			if (strcmp(line, keys[i].key) != 0)
				continue;
			size_t len = osrel_value(eq + 1);
			json_object_set_new(os, keys[i].name, plugin_string(eq + 1, len));
		}
	}
	free(text);
	return os;
}

/* The entry for interface name in ifs, created on first sight; NULL when
 * the list is full. */
static json_t *
iface_entry(json_t *ifs, const char *name)
{
	size_t i;
	json_t *e;

	json_array_foreach(ifs, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
			return e;
	}
	if (json_array_size(ifs) >= IFACES_MAX)
		return NULL;
	e = json_pack("{s:o,s:[],s:[]}", "name", plugin_string(name, strnlen(name, IFNAMSIZ)),
	    "ipv4", "ipv6");
	if (e == NULL || json_array_append_new(ifs, e) < 0)
		return NULL;
	return e;
}

static void
iface_add(json_t *e, const struct sockaddr *sa)
{
	char buf[INET6_ADDRSTRLEN];
	json_t *list;

	switch (sa->sa_family) {
	case AF_PACKET: {
		const struct sockaddr_ll *ll = (const struct sockaddr_ll *)sa;
		if (ll->sll_halen != 6)
			return;	/* tunnels and the like have no MAC */
		snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x",
		    ll->sll_addr[0], ll->sll_addr[1], ll->sll_addr[2],
		    ll->sll_addr[3], ll->sll_addr[4], ll->sll_addr[5]);
		json_object_set_new(e, "mac", json_string(buf));
		return;
	}
	case AF_INET:
		if (inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, sizeof(buf)) == NULL)
			return;
		list = json_object_get(e, "ipv4");
		break;
	case AF_INET6:
		if (inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    buf, sizeof(buf)) == NULL)
			return;
		list = json_object_get(e, "ipv6");
		break;
	default:
		return;
	}
	if (json_array_size(list) < ADDRS_MAX)
		json_array_append_new(list, json_string(buf));
}

static json_t *
interfaces(json_t *errors)
{
	struct ifaddrs *ifa, *p;
	json_t *ifs;

	if (getifaddrs(&ifa) < 0) {
		plugin_error(errors, "system: cannot list network interfaces: %s", strerror(errno));
		return NULL;
	}
	ifs = json_array();
	for (p = ifa; ifs != NULL && p != NULL; p = p->ifa_next) {
		if (p->ifa_name == NULL || (p->ifa_flags & IFF_LOOPBACK))
			continue;
		json_t *e = iface_entry(ifs, p->ifa_name);
		if (e != NULL && p->ifa_addr != NULL)
			iface_add(e, p->ifa_addr);
	}
	freeifaddrs(ifa);
	return ifs;
}

json_t *
plugin_system(const struct posture_config *cfg, json_t *errors)
{
	const char *reboot_flag = plugin_path(cfg->reboot_flag, "/var/run/reboot-required");
	char host[256];
	struct utsname u;
	struct sysinfo si;
	json_t *sys, *v;

	sys = json_object();
	if (sys == NULL)
		return NULL;

	if (cfg->hostname != NULL && cfg->hostname[0] != '\0')
		json_object_set_new(sys, "hostname",
		    plugin_string(cfg->hostname, strlen(cfg->hostname)));
	else if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		json_object_set_new(sys, "hostname", plugin_string(host, strlen(host)));
	} else
		plugin_error(errors, "system: gethostname: %s; set hostname in the agent "
		    "configuration", strerror(errno));

	if ((v = os_release(plugin_path(cfg->os_release, "/etc/os-release"), errors)) != NULL)
		json_object_set_new(sys, "os", v);

	if (uname(&u) == 0) {
		json_object_set_new(sys, "kernel", plugin_string(u.release, strnlen(u.release,
		    sizeof(u.release))));
		json_object_set_new(sys, "arch", plugin_string(u.machine, strnlen(u.machine,
		    sizeof(u.machine))));
	} else
		plugin_error(errors, "system: uname: %s", strerror(errno));

	if (sysinfo(&si) == 0)
		json_object_set_new(sys, "uptime", json_integer((json_int_t)si.uptime));
	else
		plugin_error(errors, "system: sysinfo: %s", strerror(errno));

	json_object_set_new(sys, "reboot_required",
	    json_boolean(reboot_flag[0] != '\0' && access(reboot_flag, F_OK) == 0));

	if ((v = interfaces(errors)) != NULL)
		json_object_set_new(sys, "interfaces", v);
	return sys;
}
