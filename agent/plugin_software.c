/* plugin_software.c — the "software" section: installed Debian packages
 * from dpkg's status file. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plugins.h"
#include "util.h"

#define DPKG_STATUS_MAX	((size_t)64 * 1024 * 1024)

/* One paragraph's fields of interest, as pointers into the text. */
struct dpkg_pkg {
	const char *name, *version, *status;
	size_t name_len, version_len, status_len;
};

/* "install ok installed" and "hold ok installed" are installed packages
 * (a held package is still installed); config-files, half-installed,
 * not-installed and the like are not. */
static bool
dpkg_installed(const char *s, size_t len)
{
	static const char *const ok[] = { "install ok installed", "hold ok installed" };

	for (size_t i = 0; i < ARRAY_LEN(ok); i++)
		if (len == strlen(ok[i]) && memcmp(s, ok[i], len) == 0)
			return true;
	return false;
}

/* Appends the paragraph's package when installed; false when max is reached. */
static bool
dpkg_flush(json_t *list, struct dpkg_pkg *p, size_t max)
{
	bool room = true;

	if (p->name_len > 0 && p->version_len > 0 && p->status != NULL &&
	    dpkg_installed(p->status, p->status_len)) {
		if (json_array_size(list) >= max)
			room = false;
		else
			json_array_append_new(list, json_pack("{s:o,s:o}",
			    "name", plugin_string(p->name, p->name_len),
			    "version", plugin_string(p->version, p->version_len)));
	}
	memset(p, 0, sizeof(*p));
	return room;
}

/* Matches "Key:" case-insensitively (deb822) and returns the trimmed value. */
static bool
dpkg_field(const char *line, size_t len, const char *key, const char **val, size_t *vlen)
{
	size_t klen = strlen(key);

	if (len <= klen || line[klen] != ':' || strncasecmp(line, key, klen) != 0)
		return false;
	const char *v = line + klen + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*val = v;
	*vlen = (size_t)(end - v);
	return true;
}

json_t *
dpkg_parse_status(const char *text, size_t max)
{
	struct dpkg_pkg p;
	json_t *list = json_array();
	const char *line = text;

	if (list == NULL || text == NULL)
		return list;
	memset(&p, 0, sizeof(p));
	while (*line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);

		/* A line of only blanks ends the paragraph, as in deb822. */
		if (strspn(line, " \t\r") >= len) {
			if (!dpkg_flush(list, &p, max))
				return list;
		} else if (line[0] != ' ' && line[0] != '\t') {
			/* Continuation lines (leading blank) never hold our fields. */
			if (!dpkg_field(line, len, "Package", &p.name, &p.name_len) &&
			    !dpkg_field(line, len, "Version", &p.version, &p.version_len))
				dpkg_field(line, len, "Status", &p.status, &p.status_len);
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	dpkg_flush(list, &p, max);
	return list;
}

json_t *
plugin_software(const struct posture_config *cfg, json_t *errors)
{
	const char *path = plugin_path(cfg->dpkg_status, "/var/lib/dpkg/status");
	size_t max = cfg->software_max;
	json_t *list;
	char *text;

	text = file_read(path, DPKG_STATUS_MAX, NULL);
	if (text == NULL) {
		plugin_error(errors, "software: cannot read %s: %s; check dpkg_status in the "
		    "agent configuration or disable the software plug-in", path, strerror(errno));
		return NULL;
	}
	/* One more than allowed tells whether the list was cut. */
	list = dpkg_parse_status(text, max < SIZE_MAX ? max + 1 : max);
	free(text);
	if (list == NULL) {
		plugin_error(errors, "software: out of memory");
		return NULL;
	}
	if (json_array_size(list) > max) {
		json_array_remove(list, max);
		plugin_error(errors, "software: more than %zu packages installed; only the "
		    "first %zu are reported (raise software_max)", max, max);
	}
	return list;
}
