/* net.h — blocking TCP client connections (enrolment, custosctl). */
#ifndef CUSTOS_NET_H
#define CUSTOS_NET_H

#include <stddef.h>

/* Connects to host:port (every resolved address in turn) within timeout_s
 * seconds; returns a blocking socket whose reads and writes also time out
 * after timeout_s, or -1 with err ("cannot connect to HOST:PORT: why"). */
int net_connect(const char *host, int port, int timeout_s, char *err, size_t errlen);

#endif
