/* config.c — the schema of etc/custosd.conf: every key, its type, default,
 * range and one line of help (custosd --help-config prints it). */
#include "config.h"

#include <stdint.h>

const struct conf_key custosd_schema[] = {
	{ "server.state_dir", CONF_PATH, "/var/lib/custos", 0, 0, false,
	  "CA, server certificate and administrator password live here (created at first start)" },
	{ "server.name", CONF_STRING, "custos", 0, 0, false, "CN of the server certificate" },
	{ "server.san", CONF_STRING, "localhost,127.0.0.1", 0, 0, false,
	  "comma-separated DNS names / IPs agents use to reach the server (used at first start)" },
	{ "server.migrations_dir", CONF_PATH, "/usr/share/custos/migrations", 0, 0, false,
	  "directory of the database migrations (NNNN_name.sql)" },
	{ "server.declare_dir", CONF_PATH, "/etc/custos/custos.d", 0, 0, false,
	  "declared groups, policies, tasks, selections (*.conf), applied at start and reload" },
	{ "log.level", CONF_STRING, "info", 0, 0, false, "error, warn, info or debug" },
	{ "log.target", CONF_STRING, "stderr", 0, 0, false, "stderr or syslog" },

	{ "listen.address", CONF_STRING, "0.0.0.0", 0, 0, false, "agent port address" },
	{ "listen.port", CONF_INT, "13000", 1, 65535, false, "agent port (TLS)" },
	{ "listen.max_connections", CONF_INT, "20000", 1, 1000000, false, "agent connections at most" },
	{ "listen.handshake_timeout", CONF_INT, "10", 1, 300, false, "seconds for the TLS handshake" },
	{ "listen.idle_timeout", CONF_INT, "600", 5, 86400, false,
	  "seconds without a message before a connection is closed" },
	{ "listen.max_frame", CONF_INT, "1048576", 1024, 67108864, false, "largest agent message in bytes" },

	{ "api.address", CONF_STRING, "127.0.0.1", 0, 0, false, "console API address" },
	{ "api.port", CONF_INT, "13299", 1, 65535, false, "console API port (HTTPS)" },

	{ "database.host", CONF_STRING, "", 0, 0, false, "MariaDB host (empty: use socket)" },
	{ "database.port", CONF_INT, "3306", 1, 65535, false, "MariaDB port" },
	{ "database.socket", CONF_PATH, "/run/mysqld/mysqld.sock", 0, 0, false, "MariaDB unix socket" },
	{ "database.user", CONF_STRING, "custos", 0, 0, false, "MariaDB user" },
	{ "database.password", CONF_STRING, "", 0, 0, false, "MariaDB password" },
	{ "database.password_file", CONF_PATH, "", 0, 0, false,
	  "file holding the MariaDB password (wins over database.password)" },
	{ "database.name", CONF_STRING, "custos", 0, 0, false, "database name" },
	{ "database.queue_max", CONF_INT, "10000", 16, 10000000, false, "database jobs waiting at most" },
	{ "database.events_max", CONF_INT, "100000", 100, 10000000, false,
	  "agent events waiting for commit at most (beyond: agents retry later)" },
	{ "database.batch_max", CONF_INT, "1000", 1, 100000, false, "rows per write batch" },
	{ "database.reconnect_max", CONF_INT, "10", 1, 3600, false, "reconnect backoff ceiling, seconds" },
	{ "database.timeout", CONF_INT, "10", 1, 600, false, "connect/read/write timeout, seconds" },

	{ "sync.interval", CONF_INT, "900", 10, 86400, false, "seconds between agent syncs" },
	{ "sync.jitter", CONF_INT, "90", 0, 86400, false, "random extra seconds added per sync" },

	{ "status.db_warning_days", CONF_INT, "3", 1, 3650, false, "databases older: Warning" },
	{ "status.db_critical_days", CONF_INT, "7", 1, 3650, false, "databases older: Critical" },
	{ "status.not_connected_warning_days", CONF_INT, "2", 1, 3650, false, "no contact: Warning" },
	{ "status.not_connected_critical_days", CONF_INT, "7", 1, 3650, false, "no contact: Critical" },

	{ "snmp.enabled", CONF_BOOL, "false", 0, 0, false,
	  "serve CUSTOS-MIB to the system's snmpd as an AgentX subagent" },
	{ "snmp.agentx_socket", CONF_STRING, "/var/agentx/master", 0, 0, false,
	  "snmpd's AgentX socket (agentXSocket in snmpd.conf): a path or tcp:HOST:PORT" },
	{ "snmp.reconnect_interval", CONF_INT, "1", 1, 300, false,
	  "seconds between pings of snmpd and between attempts to reach it" },
	{ "snmp.trap_rate", CONF_INT, "10", 1, 10000, false,
	  "notifications per second at most, on average; the rest are coalesced" },
	{ "snmp.trap_burst", CONF_INT, "50", 1, 100000, false,
	  "notifications that may be sent at once before snmp.trap_rate applies" },
	{ "snmp.queue_max", CONF_INT, "4096", 16, 1000000, false,
	  "notifications waiting for the SNMP thread at most (beyond: counted and coalesced)" },

	{ "outbreak.threshold", CONF_INT, "50", 1, 100000000, false,
	  "threats reported within outbreak.window that start a virus outbreak" },
	{ "outbreak.window", CONF_INT, "3600", 60, 86400, false,
	  "seconds of the outbreak window (whole minutes); it ends below half the threshold" },

	{ "enroll.tokens", CONF_LIST, NULL, 0, 0, false, "enrolment tokens owned by this file" },
	{ "enroll.tokens.[].name", CONF_STRING, NULL, 0, 0, true, "token name" },
	{ "enroll.tokens.[].secret", CONF_STRING, NULL, 0, 0, true, "the token agents present" },
	{ "enroll.tokens.[].expires", CONF_INT, "0", 0, INT64_MAX, false, "unix time; 0 = never" },
	{ "enroll.tokens.[].max_uses", CONF_INT, "0", 0, 1000000, false, "0 = unlimited" },
	{ NULL, 0, NULL, 0, 0, false, NULL },
};
