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
host_changed(struct server *srv, struct host *h, bool reevaluate)
{
	if (h == NULL)
		return;
	if (reevaluate)
		host_evaluate(h, mgmt_host_thresholds(srv, h), now_s());
	if (srv->store)
		store_host_changed(srv->store, h);
	fleet_host_changed(srv, h);
	nac_host_changed(srv, h);
}
