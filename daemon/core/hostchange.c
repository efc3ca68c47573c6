/* hostchange.c — see hostchange.h */
#include "core/hostchange.h"

#include "fleet/fleet.h"
#include "mgmt/mgmt.h"
#include "nacd/nac.h"
#include "core/registry.h"
#include "core/server.h"
#include "store/store.h"
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
