/* plugin_clamav.c — the "antivirus" section for ClamAV: database versions
 * from the .cvd/.cld headers, clamd liveness (PING) and on-access scanning
 * (clamonacc). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "plugins.h"
#include "util.h"

#define CVD_HDR_LEN	512
#define CVD_MAGIC	"ClamAV-VDB:"
#define CVD_FIELDS	8	/* after the magic: time .. stime */
#define PING_MS		1000

/* ---- header parsing ---- */

/* Strict unsigned decimal: digits only, no sign, no overflow past max. */
static int
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Exactly n digits at *p (n <= 4); advances *p. */
static int
take_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method). */
static int64_t
days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "23 Nov 2026 07-36 -0500" -> unix seconds. */
static int
parse_cvd_time(const char *s, int64_t *out)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int day, mon = -1, year, hh, mm, zh, zm, sign;
	const char *p = s;

	/* The day has one or two digits. */
	if (p[0] == '\0' || take_digits(&p, p[1] == ' ' ? 1 : 2, &day) < 0 || *p++ != ' ')
		return -1;
	for (int i = 0; i < 12; i++)
		if (strncmp(p, months + 3 * i, 3) == 0)
			mon = i;
	if (mon < 0)
		return -1;
	p += 3;
	if (*p++ != ' ' || take_digits(&p, 4, &year) < 0 || *p++ != ' ' ||
	    take_digits(&p, 2, &hh) < 0 || *p++ != '-' || take_digits(&p, 2, &mm) < 0 ||
	    *p++ != ' ')
		return -1;
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if (take_digits(&p, 2, &zh) < 0 || take_digits(&p, 2, &zm) < 0 || *p != '\0')
		return -1;
	if (day < 1 || day > mdays[mon] || year < 1970 || hh > 23 || mm > 59 ||
	    zh > 14 || zm > 59)
		return -1;
	if (mon == 1 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		return -1;
	/* Local time = UTC + offset. */
	*out = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 -
	    sign * (zh * 3600 + zm * 60);
	return 0;
}

int
cvd_parse_header(const uint8_t *buf, size_t len, struct cvd_header *out)
{
	char hdr[CVD_HDR_LEN + 1];
	char *field[CVD_FIELDS];
	size_t n, nf = 0;
	uint64_t version, sigs, flevel, stime;
	int64_t t;

	if (buf == NULL || out == NULL || len < CVD_HDR_LEN)
		return -1;
	memcpy(hdr, buf, CVD_HDR_LEN);
	hdr[CVD_HDR_LEN] = '\0';
	n = strlen(hdr);
	while (n > 0 && hdr[n - 1] == ' ')
		hdr[--n] = '\0';
	if (strncmp(hdr, CVD_MAGIC, strlen(CVD_MAGIC)) != 0)
		return -1;
	/* A real header is printable ASCII; anything else is not a header. */
	for (size_t i = 0; i < n; i++)
		if (hdr[i] < 0x20 || hdr[i] > 0x7e)
			return -1;

	for (char *p = hdr + strlen(CVD_MAGIC); p != NULL && nf < CVD_FIELDS; nf++) {
		field[nf] = p;
		p = strchr(p, ':');
		if (p != NULL)
			*p++ = '\0';
	}
	/* time, version, signatures, flevel, md5, dsig, builder; stime optional. */
	if (nf < 7)
		return -1;
	if (parse_uint(field[1], UINT32_MAX, &version) < 0 ||
	    parse_uint(field[2], UINT32_MAX, &sigs) < 0 ||
	    parse_uint(field[3], UINT32_MAX, &flevel) < 0)
		return -1;
	if (nf > 7 && parse_uint(field[7], INT64_MAX, &stime) == 0 && stime > 0)
		t = (int64_t)stime;
	else if (parse_cvd_time(field[0], &t) < 0)
		return -1;

	memset(out, 0, sizeof(*out));
	out->build_time = t;
	out->version = (uint32_t)version;
	out->signatures = (uint32_t)sigs;
	out->flevel = (uint32_t)flevel;
	str_copy(out->builder, field[6], sizeof(out->builder));
	return 0;
}

int
cvd_read_file(const char *path, struct cvd_header *out)
{
	uint8_t buf[CVD_HDR_LEN];
	size_t got = 0;
	struct stat st;
	int fd;

	/* O_NONBLOCK: a FIFO planted in the directory must not hang the agent. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	while (got < sizeof(buf)) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return cvd_parse_header(buf, got, out);
}

/* ---- clamd ---- */

/* Waits until fd is ready for events or the deadline (mono ms) passes. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mono_ms();
		struct pollfd pfd = { .fd = fd, .events = events };
		if (left <= 0)
			return -1;
		int r = poll(&pfd, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static bool
ping_fd(int fd, const struct sockaddr_un *sun, int64_t deadline)
{
	static const char cmd[] = "zPING";	/* sent with its NUL */
	char reply[16];
	size_t sent = 0, got = 0;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) < 0) {
		if (errno != EINPROGRESS)
			return false;
		if (wait_fd(fd, POLLOUT, deadline) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0)
			return false;
	}
	while (sent < sizeof(cmd)) {
		ssize_t w = send(fd, cmd + sent, sizeof(cmd) - sent, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(fd, POLLOUT, deadline) < 0)
				return false;
			continue;
		}
		if (w <= 0)
			return false;
		sent += (size_t)w;
	}
	/* "PONG" then NUL (z-command) or newline; clamd may also just close. */
	while (got < 5) {
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return false;
		ssize_t r = recv(fd, reply + got, sizeof(reply) - got, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return false;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return got >= 4 && memcmp(reply, "PONG", 4) == 0 &&
	    (got == 4 || reply[4] == '\0' || reply[4] == '\n');
}

bool
clamav_ping(const char *socket_path, int timeout_ms)
{
	struct sockaddr_un sun;
	bool ok;
	int fd;

	if (socket_path == NULL || socket_path[0] == '\0')
		return false;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, socket_path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	ok = ping_fd(fd, &sun, mono_ms() + timeout_ms);
	close(fd);
	return ok;
}

/* ---- clamonacc ---- */

/* Reads at most size-1 bytes of a small file into buf; -1 on error. */
static ssize_t
read_small(const char *path, char *buf, size_t size)
{
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return -1;
	while (got + 1 < size) {
		ssize_t r = read(fd, buf + got, size - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

static bool
pidfile_alive(const char *pidfile)
{
	char buf[32];
	uint64_t pid;
	size_t n;

	if (read_small(pidfile, buf, sizeof(buf)) < 0)
		return false;
	n = strspn(buf, "0123456789");
	buf[n] = '\0';
	if (parse_uint(buf, INT32_MAX, &pid) < 0 || pid == 0)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static bool
proc_has_onacc(const char *procdir)
{
	struct dirent *de;
	bool found = false;
	DIR *d = opendir(procdir);

	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		char path[512], comm[32];
		if (de->d_name[strspn(de->d_name, "0123456789")] != '\0' ||
		    str_fmt(path, sizeof(path), "%s/%s/comm", procdir, de->d_name) < 0 ||
		    read_small(path, comm, sizeof(comm)) < 0)
			continue;
		comm[strcspn(comm, "\n")] = '\0';
		found = strcmp(comm, "clamonacc") == 0;
	}
	closedir(d);
	return found;
}

bool
clamav_onacc_running(const char *pidfile, const char *procdir)
{
	if (pidfile != NULL && pidfile[0] != '\0' && pidfile_alive(pidfile))
		return true;
	return procdir != NULL && proc_has_onacc(procdir);
}

/* ---- databases ---- */

/* Any file clamd would load as signatures makes ClamAV "installed". */
static bool
dir_has_signatures(const char *dir, json_t *errors)
{
	static const char *const exts[] = {
		".cvd", ".cld", ".cud", ".hdb", ".hsb", ".hdu", ".hsu", ".mdb", ".msb",
		".ndb", ".ndu", ".ldb", ".ldu", ".idb", ".cdb", ".cbc", ".pdb", ".gdb",
		".wdb", ".yar", ".yara",
	};
	struct dirent *de;
	bool found = false;
	DIR *d = opendir(dir);

	if (d == NULL) {
		if (errno != ENOENT)
			plugin_error(errors, "clamav: cannot list %s: %s; check clamav_db_dir "
			    "and the agent's permissions", dir, strerror(errno));
		return false;
	}
	while (!found && (de = readdir(d)) != NULL) {
		const char *dot = strrchr(de->d_name, '.');
		for (size_t i = 0; dot != NULL && i < ARRAY_LEN(exts); i++)
			if (strcmp(dot, exts[i]) == 0)
				found = true;
	}
	closedir(d);
	return found;
}

/* Best (highest version) header of <dir>/<name>.cvd or .cld; fills file
 * with the chosen file name. 1 found, 0 none, -1 present but unreadable. */
static int
read_database(const char *dir, const char *name, struct cvd_header *best, char *file,
    size_t filelen, json_t *errors)
{
	static const char *const exts[] = { "cvd", "cld" };
	int rc = 0;

	for (size_t i = 0; i < ARRAY_LEN(exts); i++) {
		char path[4096], fname[64];
		struct cvd_header h;
		struct stat st;

		if (str_fmt(fname, sizeof(fname), "%s.%s", name, exts[i]) < 0 ||
		    str_fmt(path, sizeof(path), "%s/%s", dir, fname) < 0)
			continue;
		if (stat(path, &st) < 0)
			continue;
		if (cvd_read_file(path, &h) < 0) {
			plugin_error(errors, "clamav: %s has no valid database header; run "
			    "freshclam to replace it", path);
			if (rc == 0)
				rc = -1;
			continue;
		}
		if (rc <= 0 || h.version > best->version) {
			*best = h;
			str_copy(file, fname, filelen);
		}
		rc = 1;
	}
	return rc;
}

int64_t
clamav_db_version(const char *dir)
{
	static const char *const names[] = { "daily", "main", "bytecode" };
	static const char *const exts[] = { "cvd", "cld" };
	int64_t best = -1;

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		for (size_t j = 0; j < ARRAY_LEN(exts); j++) {
			char path[4096];
			struct cvd_header h;
			if (str_fmt(path, sizeof(path), "%s/%s.%s", dir, names[i], exts[j]) < 0 ||
			    cvd_read_file(path, &h) < 0)
				continue;
			if ((int64_t)h.version > best)
				best = (int64_t)h.version;
		}
		if (i == 0 && best >= 0)
			break; /* daily moves every few hours: it is the version users compare */
	}
	return best;
}

static json_t *
clamav_entry(const struct posture_config *cfg, const char *dir, const char *procdir,
    json_t *errors)
{
	static const char *const names[] = { "main", "daily", "bytecode" };
	json_t *e, *dbs = json_array();
	json_t *db_version = json_null(), *db_time = json_null();
	int64_t newest = -1;
	uint32_t highest = 0;
	bool daily = false, any = false;

	if (dbs == NULL)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		struct cvd_header h;
		char file[64];
		if (read_database(dir, names[i], &h, file, sizeof(file), errors) != 1)
			continue;
		json_array_append_new(dbs, json_pack("{s:s,s:I,s:I,s:I}", "file", file,
		    "version", (json_int_t)h.version, "time", (json_int_t)h.build_time,
		    "signatures", (json_int_t)h.signatures));
		if (h.build_time > newest)
			newest = h.build_time;
		if (strcmp(names[i], "daily") == 0) {
			daily = true;
			highest = h.version;
		} else if (!daily && (!any || h.version > highest))
			highest = h.version;
		any = true;
	}
	if (any) {
		/* daily moves every few hours: it is the version users compare. */
		db_version = json_integer((json_int_t)highest);
		db_time = json_integer((json_int_t)newest);
	}
	e = json_pack("{s:s,s:b,s:o,s:o,s:o,s:b,s:b}",
	    "name", "clamav",
	    "installed", 1,
	    "db_version", db_version,
	    "db_time", db_time,
	    "databases", dbs,
	    "running", clamav_ping(plugin_path(cfg->clamd_socket, ""), PING_MS),
	    "rtp", clamav_onacc_running(cfg->clamonacc_pidfile, procdir));
	return e;
}

json_t *
clamav_collect(const struct posture_config *cfg, const char *const *binaries,
    const char *procdir, json_t *errors)
{
	const char *dir = plugin_path(cfg->clamav_db_dir, "/var/lib/clamav");
	json_t *list = json_array();
	bool installed;

	if (list == NULL)
		return NULL;
	installed = dir[0] != '\0' && dir_has_signatures(dir, errors);
	for (size_t i = 0; !installed && binaries != NULL && binaries[i] != NULL; i++)
		installed = access(binaries[i], F_OK) == 0;
	/* Not installed is a fact, reported as an empty list. */
	if (!installed)
		return list;
	json_t *e = clamav_entry(cfg, dir, procdir, errors);
	if (e == NULL || json_array_append_new(list, e) < 0) {
		plugin_error(errors, "clamav: out of memory");
		json_decref(list);
		return NULL;
	}
	return list;
}

json_t *
plugin_clamav(const struct posture_config *cfg, json_t *errors)
{
	static const char *const binaries[] = { "/usr/sbin/clamd", "/usr/bin/clamscan", NULL };

	return clamav_collect(cfg, binaries, "/proc", errors);
}
