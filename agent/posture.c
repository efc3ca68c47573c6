/* posture.c — see posture.h. Runs the plug-ins and merges their sections. */
#include "posture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugins.h"
#include "utf8.h"

void
plugin_error(json_t *errors, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Messages embed paths and program output: truncation is acceptable. */
	log_warnx("posture", "%s", msg);
	if (errors != NULL)
		json_array_append_new(errors, plugin_string(msg, strlen(msg)));
}

json_t *
plugin_string(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	char *clean;
	json_t *j;
	size_t i = 0;

	if (s == NULL)
		return json_string("");
	clean = malloc(len + 1);
	if (clean == NULL)
		return NULL;
	while (i < len) {
		/* a NUL would cut the JSON string short: replaced like bad bytes */
		size_t n = u[i] == 0 ? 0 : utf8_seq_len(u + i, len - i);
		if (n == 0) {
			clean[i++] = '?';
			continue;
		}
		memcpy(clean + i, s + i, n);
		i += n;
	}
	clean[len] = '\0';
	j = json_stringn(clean, len);
	free(clean);
	return j;
}

const char *
plugin_path(const char *value, const char *fallback)
{
	return value != NULL ? value : fallback;
}

/* Adds a plug-in's section; a NULL section is simply left out (the plug-in
 * already said why in "errors"). */
static void
add_section(json_t *doc, const char *name, json_t *section)
{
	if (section != NULL)
		json_object_set_new(doc, name, section);
}

json_t *
posture_collect(const struct posture_config *cfg)
{
	json_t *doc, *errors, *threats;

	if (cfg == NULL)
		return NULL;
	doc = json_object();
	errors = json_array();
	if (doc == NULL || errors == NULL) {
		json_decref(doc);
		json_decref(errors);
		return NULL;
	}

	add_section(doc, "system", plugin_system(cfg, errors));
	if (cfg->clamav_enabled)
		add_section(doc, "antivirus", plugin_clamav(cfg, errors));
	if (cfg->software_enabled)
		add_section(doc, "software", plugin_software(cfg, errors));

	threats = json_pack("{s:I}", "unresolved", (json_int_t)cfg->threats_unresolved);
	if (threats == NULL)
		plugin_error(errors, "threats: out of memory");
	add_section(doc, "threats", threats);

	if (cfg->command_enabled)
		add_section(doc, "command", plugin_command(cfg, errors));

	if (json_object_set_new(doc, "errors", errors) < 0) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}
