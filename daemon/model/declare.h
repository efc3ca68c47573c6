/* declare.h — the declared state: every NAME.conf file of etc/custos.d
 * loaded and validated into plain data (groups, relocation rules, policies, tasks,
 * selections, status thresholds). Nothing is applied here: the caller
 * compares the result with the running state.
 *
 * Files are read in name order (strcmp); names beginning with '.' and files
 * not ending in ".conf" are ignored. Every array keeps declaration order
 * (files by name, then line), except groups: by depth (parents first), then
 * in declaration order.
 * Every object records the file and line that declared it.
 *
 * Main thread only while loading (strerror); a loaded struct declared is
 * read-only plain data. */
#ifndef CUSTOS_DECLARE_H
#define CUSTOS_DECLARE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define DECLARE_NAME_MAX 64        /* names are 1 to DECLARE_NAME_MAX - 1 bytes */
#define DECLARE_FILE_MAX (4 * 1024 * 1024) /* larger files are refused */
#define DECLARE_FILES_MAX 1024     /* more files in the directory are refused */

struct declared_group {
	char *path;                /* "Servers/Web" */
	const char *file;          /* into struct declared.files */
	int line;
};

struct declared_relocation {
	char *name;
	int order;                 /* 0, 1, ... in declaration order */
	char *group;               /* target group path */
	char *hostname;            /* fnmatch glob; "" = any */
	char *subnet;              /* "10.0.0.0/8", "fd00::/8", an address; "" = any */
	char *os;                  /* glob; "" = any */
	char *tag;                 /* glob; "" = any */
	const char *file;
	int line;
};

struct declared_policy {
	char *name;
	char *group;               /* group path */
	char *application;         /* "clamav", "agent", ... */
	char *kind;                /* "normal", "outbreak" or "mobile" */
	bool active;               /* default true */
	bool inherit;              /* default true */
	int threshold;             /* outbreak: threshold events ... */
	int window;                /* ... within window minutes start it; */
	int quiet;                 /* it ends after quiet minutes without (default window) */
	                           /* all three 0 for other kinds */
	json_t *settings;          /* array of {"key": s, "value": any, "locked": b} */
	const char *file;
	int line;
};

enum declared_scope {
	DECLARED_SCOPE_GROUP = 0,  /* scope_name: group path (child groups too) */
	DECLARED_SCOPE_HOSTS,      /* hosts[] */
	DECLARED_SCOPE_SELECTION,  /* scope_name: selection name */
	DECLARED_SCOPE_HOST,       /* scope_name: host name (a local task) */
	DECLARED_SCOPE_SERVER,     /* runs on the server (type server_*) */
};

struct declared_task {
	char *name;
	char *type;                /* update, scan, command, posture, server_purge_events */
	json_t *params;            /* object; {} when not given */
	enum declared_scope scope;
	char *scope_name;          /* GROUP, SELECTION, HOST; NULL otherwise */
	char **hosts;              /* HOSTS: n_hosts names; NULL otherwise */
	size_t n_hosts;
	char *schedule;            /* as written (lib/schedule.h); "manual" when absent */
	int random_delay;          /* seconds, default 0 */
	int time_limit;            /* seconds, default 3600 */
	const char *file;
	int line;
};

struct declared_selection {
	char *name;
	char *filter;              /* daemon/selection.h grammar */
	const char *file;
	int line;
};

/* Status thresholds for a group and the groups below it; 0 = not set here
 * (the nearest group above, else the global status.* setting, applies). */
struct declared_thresholds {
	char *group;
	int db_warning_days;
	int db_critical_days;
	int not_connected_warning_days;
	int not_connected_critical_days;
	const char *file;
	int line;
};

struct declared {
	struct declared_group *groups;
	size_t n_groups;
	struct declared_relocation *relocations;
	size_t n_relocations;
	struct declared_policy *policies;
	size_t n_policies;
	struct declared_task *tasks;
	size_t n_tasks;
	struct declared_selection *selections;
	size_t n_selections;
	struct declared_thresholds *thresholds;
	size_t n_thresholds;
	char **files;              /* every file read, in order */
	size_t n_files;
};

/* Loads and validates every *.conf file of dir; a missing dir gives an
 * empty declaration. Returns 0 and *out (free with declare_free), or -1 with
 * *out untouched and err holding every problem found, one
 * "FILE:LINE: message" per line, sorted by file and line (a problem with the
 * directory itself is "DIR: message"). */
int declare_load(const char *dir, struct declared **out, char *err, size_t errlen);
void declare_free(struct declared *d);

/* "group", "hosts", "selection", "host", "server". */
const char *declare_scope_name(enum declared_scope s);

#endif
