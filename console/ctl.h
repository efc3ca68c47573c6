/* ctl.h — what custosctl's files share: the connection, the API call and
 * printing helpers (main.c) and the administration commands (mgmt.c). */
#ifndef CUSTOS_CTL_H
#define CUSTOS_CTL_H

#include <stddef.h>
#include <jansson.h>

#include "http.h"

struct ctl {
	struct http_target t;
	int json;                 /* --json: print the API's JSON */
	char password[256];
};

/* Calls the API; returns the parsed body or NULL (message printed). */
json_t *ctl_call(struct ctl *c, const char *method, const char *path, json_t *body);
/* "/api/v1/COLLECTION/NAME[SUFFIX]" with NAME percent-encoded. */
void ctl_object_path(char *out, size_t len, const char *collection, const char *name,
    const char *suffix);
void ctl_print_json(json_t *j);
/* The hosts table (an array of API host objects) with its count line. */
void ctl_print_hosts(json_t *hosts);

/* mgmt.c: groups, policies, tasks, selections, rules, relocate, reload,
 * move, host-settings, host-policy. Returns the exit status, or -1 when
 * args[0] is none of these commands. */
int ctl_mgmt_command(struct ctl *c, int nargs, char **args);

#endif
