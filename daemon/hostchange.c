/* hostchange.c — see hostchange.h */
#include "hostchange.h"

#include "fleet.h"
#include "mgmt.h"
#include "nac.h"
#include "registry.h"
#include "server.h"
#include "store.h"
#include "util.h"

void
host_changed(struct server *srv, struct host *h, unsigned flags)
{
	if (h == NULL)
		return;
	srv->stats.host_changes++;
	if (flags & HC_REEVALUATE)
		host_evaluate(h, mgmt_host_thresholds(srv, h), now_s());
	if (srv->store && !(flags & HC_NO_STORE)) {
		srv->stats.host_writes++;
		store_host_changed(srv->store, h);
	}
	fleet_host_changed(srv, h);
	nac_host_changed(srv, h);
}
