/* posture.c — see posture.h. Runs the plug-ins and merges their sections. */
#include "posture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugins.h"

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

/* Length of the valid UTF-8 sequence at s (at most left bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t left)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return s[0] == 0 ? 0 : 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
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
		size_t n = utf8_seq(u + i, len - i);
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
