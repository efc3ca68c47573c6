/* config.c — the schema of etc/custos-agent.conf. */
#include "config.h"

#include <stddef.h>

const struct conf_key agent_schema[] = {
	{ "agent.state_dir", CONF_PATH, "/var/lib/custos-agent", 0, 0, false,
	  "keys, certificates, pinned server certificate and the event queue" },
	{ "agent.server", CONF_STRING, "", 0, 0, false,
	  "HOST[:PORT] of the Administration Server (empty: the one enrolled with)" },
	{ "agent.server_fingerprint", CONF_STRING, "", 0, 0, false,
	  "expected SHA-256 of the server certificate (empty: pin on first contact)" },
	{ "agent.hostname", CONF_STRING, "", 0, 0, false, "report this host name (empty: the system's)" },
	{ "agent.keep_connection", CONF_BOOL, "false", 0, 0, false,
	  "do not disconnect: keep the connection to the server open" },
	{ "agent.keepalive", CONF_INT, "60", 5, 3600, false, "seconds between pings on a kept connection" },
	{ "agent.sync_interval", CONF_INT, "900", 10, 86400, false,
	  "seconds between syncs until the server says otherwise" },
	{ "agent.wake_address", CONF_STRING, "0.0.0.0", 0, 0, false, "address for wake-up datagrams" },
	{ "agent.wake_port", CONF_INT, "15000", 0, 65535, false, "UDP port for wake-ups (0: off)" },
	{ "agent.wake_max_skew", CONF_INT, "120", 5, 3600, false,
	  "seconds a wake-up's timestamp may differ from this clock" },
	{ "agent.queue_max", CONF_INT, "10000", 10, 10000000, false,
	  "events kept on disk at most (the oldest are dropped and counted)" },
	{ "agent.posture_check_interval", CONF_INT, "10", 0, 3600, false,
	  "seconds between cheap checks of real-time protection and the database version; a change "
	  "is reported at once as an event and the server then asks for the posture (0: off)" },
	{ "agent.max_frame", CONF_INT, "1048576", 1024, 67108864, false, "largest message in bytes" },
	{ "agent.timeout", CONF_INT, "30", 1, 600, false, "seconds for connect, handshake and a reply" },
	{ "agent.tags", CONF_STRING, "", 0, 0, false,
	  "comma-separated tags sent to the server (relocation rules can match them)" },
	{ "agent.mobile_after", CONF_INT, "3600", 0, 31536000, false,
	  "seconds without reaching the server before the mobile policy applies, unless the "
	  "policy sets mobile_after (0: never)" },
	{ "log.level", CONF_STRING, "info", 0, 0, false, "error, warn, info or debug" },
	{ "log.target", CONF_STRING, "stderr", 0, 0, false, "stderr or syslog" },

	{ "system.os_release", CONF_PATH, "/etc/os-release", 0, 0, false, "os-release file" },
	{ "system.reboot_flag", CONF_PATH, "/var/run/reboot-required", 0, 0, false,
	  "this file exists when a reboot is required" },
	{ "clamav.enabled", CONF_BOOL, "true", 0, 0, false, "report ClamAV" },
	{ "clamav.database_dir", CONF_PATH, "/var/lib/clamav", 0, 0, false, "ClamAV databases (.cvd/.cld)" },
	{ "clamav.clamd_socket", CONF_PATH, "/var/run/clamav/clamd.ctl", 0, 0, false,
	  "clamd's local socket (PING)" },
	{ "clamav.clamonacc_pidfile", CONF_PATH, "", 0, 0, false,
	  "clamonacc pid file (empty: look for a clamonacc process)" },
	{ "clamav.clamd_conf", CONF_PATH, "/etc/clamav/clamd.conf", 0, 0, false,
	  "clamd's configuration; policies rewrite only the block between \"# BEGIN custos "
	  "managed\" and \"# END custos managed\" (put at the top: clamd takes the first value)" },
	{ "clamav.freshclam_conf", CONF_PATH, "/etc/clamav/freshclam.conf", 0, 0, false,
	  "freshclam's configuration; managed the same way" },
	{ "clamav.reload_command", CONF_STRING, "", 0, 0, false,
	  "run after a managed block changed, e.g. \"/bin/systemctl restart clamav-daemon "
	  "clamav-freshclam\"; words split on spaces (empty: send RELOAD to clamd, which reloads "
	  "its databases but reads clamd.conf only when it starts)" },
	{ "clamav.rtp_start_command", CONF_STRING, "", 0, 0, false,
	  "starts on-access scanning when a policy sets rtp = true, e.g. \"/bin/systemctl start "
	  "clamav-clamonacc\"; words split on spaces (empty: rtp cannot be applied)" },
	{ "clamav.rtp_stop_command", CONF_STRING, "", 0, 0, false,
	  "stops on-access scanning when a policy sets rtp = false (empty: rtp cannot be applied)" },
	{ "tasks.update_command", CONF_STRING, "/usr/bin/freshclam --quiet", 0, 0, false,
	  "updater run by update tasks; words split on spaces (no quoting: no spaces inside one)" },
	{ "tasks.scan_command", CONF_STRING, "/usr/bin/clamdscan --fdpass --no-summary --infected", 0, 0,
	  false, "scanner run by scan tasks, the task's paths appended; words split on spaces" },
	{ "tasks.scan_fallback_command", CONF_STRING, "/usr/bin/clamscan --no-summary --infected --recursive",
	  0, 0, false, "scanner used instead when scan_command is clamdscan and clamd does not answer "
	  "PING (empty: no fallback)" },
	{ "tasks.max_concurrent", CONF_INT, "2", 1, 64, false,
	  "task runs at once at most; the others wait" },
	{ "software.enabled", CONF_BOOL, "true", 0, 0, false, "report installed packages" },
	{ "software.dpkg_status", CONF_PATH, "/var/lib/dpkg/status", 0, 0, false, "dpkg status file" },
	{ "software.max", CONF_INT, "5000", 0, 100000, false, "packages reported at most" },
	{ "command.enabled", CONF_BOOL, "false", 0, 0, false, "run an admin's posture program" },
	{ "command.path", CONF_PATH, "", 0, 0, false, "program printing a JSON object" },
	{ "command.timeout", CONF_INT, "10", 1, 600, false, "seconds before it is killed" },
	{ NULL, 0, NULL, 0, 0, false, NULL },
};
