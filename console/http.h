/* http.h — blocking HTTPS requests to the console API (custosctl only). */
#ifndef CUSTOS_CTL_HTTP_H
#define CUSTOS_CTL_HTTP_H

#include <stddef.h>

struct http_target {
	char host[256];
	int port;
	const char *ca_file;   /* the server CA (state_dir/ca.pem) */
	const char *user;
	const char *password;
};

/* "https://HOST[:PORT][/...]" -> host, port (default 13299). */
int http_parse_url(const char *url, char *host, size_t hostlen, int *port);

/* Sends one request; *status gets the HTTP status and *response the body
 * (malloc'd). 0, or -1 with err when no answer was had. */
int http_request(const struct http_target *t, const char *method, const char *path, const char *body,
    int *status, char **response, char *err, size_t errlen);

#endif
