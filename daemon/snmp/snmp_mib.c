/* snmp_mib.c — CUSTOS-MIB as data: which OID holds which value, GET and
 * GETNEXT over a fleet snapshot, and the varbinds of each notification.
 * Pure functions without Net-SNMP (see snmp.h), so the unit tests check
 * them against smidump without an snmpd. */
#include "snmp/snmp.h"

#include <arpa/inet.h>
#include <string.h>
#include <time.h>

#include "snmp/agentx.h"
#include "fleet/fleet.h"
#include "core/server.h"
#include "core/status.h"
#include "util.h"

/* ---- the MIB: CUSTOS-MIB under enterprises.32473 (RFC 5612) ---- */

#define CUSTOS_MIB 1, 3, 6, 1, 4, 1, 32473, 1
#define MIB_LEN 8
#define OBJECTS_LEN (MIB_LEN + 1)          /* custosObjects = custosMIB.1 */
#define NOTIFY_OBJECTS 5                   /* custosNotifyObjects = custosObjects.5 */

static const uint32_t objects_oid[OBJECTS_LEN] = { CUSTOS_MIB, 1 };

enum value_id {
	/* custosServer */
	V_VERSION, V_UPTIME, V_DB_CONNECTED, V_DB_STATE, V_AGENTS, V_Q_EVENTS, V_Q_HOSTS,
	V_Q_JOBS, V_SHED,
	/* custosFleet */
	V_TOTAL, V_OK, V_WARNING, V_CRITICAL, V_UNASSIGNED, V_NEVER, V_DB_OUTDATED, V_RTP_OFF,
	V_NO_AV, V_THREATS_DAY, V_OUTBREAK, V_OUTBREAK_THREATS,
	/* custosNac: V_NAC_HEALTHY + enum nac_token */
	V_NAC_ENABLED, V_NAC_HEALTHY, V_NAC_CHECKUP, V_NAC_TRANSITION, V_NAC_QUARANTINE,
	V_NAC_INFECTED, V_NAC_UNKNOWN,
	/* custosHostEntry */
	H_NAME, H_GROUP, H_GROUP_NAME, H_ADDR_TYPE, H_ADDR, H_STATUS, H_REASONS, H_CRITICAL,
	H_AV, H_DB_TIME, H_RTP, H_LAST_SEEN, H_THREATS,
	/* custosGroupEntry */
	G_NAME, G_PARENT, G_HOSTS, G_OK, G_WARNING, G_CRITICAL,
};

struct object {
	const char *name;
	uint32_t sub;
	enum value_id id;
};

static const struct object server_scalars[] = {
	{ "custosServerVersion", 1, V_VERSION },
	{ "custosServerUptime", 2, V_UPTIME },
	{ "custosServerDatabaseConnected", 3, V_DB_CONNECTED },
	{ "custosServerDatabaseState", 4, V_DB_STATE },
	{ "custosServerAgentsConnected", 5, V_AGENTS },
	{ "custosServerQueueEvents", 6, V_Q_EVENTS },
	{ "custosServerQueueHosts", 7, V_Q_HOSTS },
	{ "custosServerQueueJobs", 8, V_Q_JOBS },
	{ "custosServerShed", 9, V_SHED },
};

static const struct object fleet_scalars[] = {
	{ "custosHostsTotal", 1, V_TOTAL },
	{ "custosHostsOK", 2, V_OK },
	{ "custosHostsWarning", 3, V_WARNING },
	{ "custosHostsCritical", 4, V_CRITICAL },
	{ "custosHostsUnassigned", 5, V_UNASSIGNED },
	{ "custosHostsNeverConnected", 6, V_NEVER },
	{ "custosHostsDatabasesOutdated", 7, V_DB_OUTDATED },
	{ "custosHostsRtpOff", 8, V_RTP_OFF },
	{ "custosHostsNoAntivirus", 9, V_NO_AV },
	{ "custosThreatsLastDay", 10, V_THREATS_DAY },
	{ "custosOutbreakActive", 11, V_OUTBREAK },
	{ "custosOutbreakThreats", 12, V_OUTBREAK_THREATS },
};

_Static_assert(V_NAC_UNKNOWN - V_NAC_HEALTHY + 1 == FLEET_NAC_TOKENS, "one custosNacHosts per token");

/* custosNacHosts*: sub-identifier 2 + enum nac_token (nac.h). */
static const struct object nac_scalars[] = {
	{ "custosNacEnabled", 1, V_NAC_ENABLED },
	{ "custosNacHostsHealthy", 2, V_NAC_HEALTHY },
	{ "custosNacHostsCheckup", 3, V_NAC_CHECKUP },
	{ "custosNacHostsTransition", 4, V_NAC_TRANSITION },
	{ "custosNacHostsQuarantine", 5, V_NAC_QUARANTINE },
	{ "custosNacHostsInfected", 6, V_NAC_INFECTED },
	{ "custosNacHostsUnknown", 7, V_NAC_UNKNOWN },
};

/* Column 1 (the index) is not-accessible and never served. */
static const struct object host_columns[] = {
	{ "custosHostName", 2, H_NAME },
	{ "custosHostGroupIndex", 3, H_GROUP },
	{ "custosHostGroupName", 4, H_GROUP_NAME },
	{ "custosHostAddressType", 5, H_ADDR_TYPE },
	{ "custosHostAddress", 6, H_ADDR },
	{ "custosHostStatus", 7, H_STATUS },
	{ "custosHostReasons", 8, H_REASONS },
	{ "custosHostCriticalReasons", 9, H_CRITICAL },
	{ "custosHostAntivirus", 10, H_AV },
	{ "custosHostDatabaseTime", 11, H_DB_TIME },
	{ "custosHostRealTimeProtection", 12, H_RTP },
	{ "custosHostLastSeen", 13, H_LAST_SEEN },
	{ "custosHostThreats", 14, H_THREATS },
};

static const struct object group_columns[] = {
	{ "custosGroupName", 2, G_NAME },
	{ "custosGroupParent", 3, G_PARENT },
	{ "custosGroupHosts", 4, G_HOSTS },
	{ "custosGroupHostsOK", 5, G_OK },
	{ "custosGroupHostsWarning", 6, G_WARNING },
	{ "custosGroupHostsCritical", 7, G_CRITICAL },
};

enum table_id { T_NONE, T_HOSTS, T_GROUPS };

struct section {
	const char *name;
	uint32_t sub;             /* under custosObjects */
	const struct object *objs;
	size_t nobjs;
	enum table_id table;      /* T_NONE: scalars */
	const char *entry, *index;
};

/* In ascending sub order: GETNEXT walks them in this order. */
static const struct section sections[] = {
	{ "custosServer", 1, server_scalars, ARRAY_LEN(server_scalars), T_NONE, NULL, NULL },
	{ "custosFleet", 2, fleet_scalars, ARRAY_LEN(fleet_scalars), T_NONE, NULL, NULL },
	{ "custosHostTable", 3, host_columns, ARRAY_LEN(host_columns), T_HOSTS,
	  "custosHostEntry", "custosHostId" },
	{ "custosGroupTable", 4, group_columns, ARRAY_LEN(group_columns), T_GROUPS,
	  "custosGroupEntry", "custosGroupIndex" },
	/* custosObjects.5 (custosNotifyObjects) is carried in notifications only */
	{ "custosNac", 6, nac_scalars, ARRAY_LEN(nac_scalars), T_NONE, NULL, NULL },
};

/* custosNotifyObjects: carried in notifications only (accessible-for-notify). */
#define NOTIFY_COUNT 1
#define NOTIFY_MESSAGE 2

/* Notification numbers under custosNotifications (custosMIB.0), by kind. */
static const struct {
	enum fleet_notice_kind kind;
	uint32_t sub;
	const char *name;
} notifications[] = {
	{ FLEET_NOTICE_HOST_CRITICAL, 1, "custosHostBecameCritical" },
	{ FLEET_NOTICE_THREAT, 2, "custosThreatDetected" },
	{ FLEET_NOTICE_OUTBREAK_START, 3, "custosOutbreakStarted" },
	{ FLEET_NOTICE_OUTBREAK_END, 4, "custosOutbreakEnded" },
	{ FLEET_NOTICE_DB_LOST, 5, "custosDatabaseLost" },
	{ FLEET_NOTICE_DB_RESTORED, 6, "custosDatabaseRestored" },
};

static void
served_add(struct snmp_served_oid *out, size_t max, size_t *n, const char *name,
    const uint32_t *prefix, size_t plen, const uint32_t *tail, size_t tlen)
{
	if (*n < max && plen + tlen <= SNMP_OID_MAX) {
		out[*n].name = name;
		memcpy(out[*n].oid, prefix, plen * sizeof(*prefix));
		memcpy(out[*n].oid + plen, tail, tlen * sizeof(*tail));
		out[*n].len = plen + tlen;
	}
	(*n)++;
}

size_t
snmp_served_oids(struct snmp_served_oid *out, size_t max)
{
	static const uint32_t mib[] = { CUSTOS_MIB };
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_LEN(sections); i++) {
		const struct section *sec = &sections[i];
		uint32_t t[3] = { sec->sub, 1, 1 };
		if (sec->table != T_NONE) {
			served_add(out, max, &n, sec->name, objects_oid, OBJECTS_LEN, t, 1);
			served_add(out, max, &n, sec->entry, objects_oid, OBJECTS_LEN, t, 2);
			served_add(out, max, &n, sec->index, objects_oid, OBJECTS_LEN, t, 3);
		}
		for (size_t k = 0; k < sec->nobjs; k++) {
			uint32_t s[3] = { sec->sub, sec->table != T_NONE ? 1 : sec->objs[k].sub,
			    sec->objs[k].sub };
			served_add(out, max, &n, sec->objs[k].name, objects_oid, OBJECTS_LEN, s,
			    sec->table != T_NONE ? 3 : 2);
		}
	}
	uint32_t nc[2] = { NOTIFY_OBJECTS, NOTIFY_COUNT }, nm[2] = { NOTIFY_OBJECTS, NOTIFY_MESSAGE };
	served_add(out, max, &n, "custosNotifyCount", objects_oid, OBJECTS_LEN, nc, 2);
	served_add(out, max, &n, "custosNotifyMessage", objects_oid, OBJECTS_LEN, nm, 2);
	for (size_t i = 0; i < ARRAY_LEN(notifications); i++) {
		uint32_t t[2] = { 0, notifications[i].sub };
		served_add(out, max, &n, notifications[i].name, mib, MIB_LEN, t, 2);
	}
	return n;
}

/* ---- values ---- */

static void
ans_num(struct snmp_answer *a, enum snmp_answer_type type, uint64_t v)
{
	a->type = type;
	a->num = v;
	a->len = 0;
}

static void
ans_gauge(struct snmp_answer *a, uint64_t v)
{
	ans_num(a, SNMP_ANS_GAUGE, v > UINT32_MAX ? UINT32_MAX : v);
}

static void
ans_bytes(struct snmp_answer *a, const void *p, size_t len)
{
	a->type = SNMP_ANS_STRING;
	a->num = 0;
	a->len = len < sizeof(a->buf) ? len : sizeof(a->buf);
	memcpy(a->buf, p, a->len);
}

static void
ans_str(struct snmp_answer *a, const char *s)
{
	ans_bytes(a, s, strlen(s));
}

/* DateAndTime in UTC; 8 zero octets when unknown (t <= 0). */
static void
ans_time(struct snmp_answer *a, int64_t t)
{
	uint8_t b[11] = { 0 };
	struct tm tm;
	time_t tt = (time_t)t;
	if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
		ans_bytes(a, b, 8);
		return;
	}
	int year = tm.tm_year + 1900;
	b[0] = (uint8_t)(year >> 8);
	b[1] = (uint8_t)year;
	b[2] = (uint8_t)(tm.tm_mon + 1);
	b[3] = (uint8_t)tm.tm_mday;
	b[4] = (uint8_t)tm.tm_hour;
	b[5] = (uint8_t)tm.tm_min;
	b[6] = (uint8_t)(tm.tm_sec > 59 ? 59 : tm.tm_sec);
	b[7] = 0;
	b[8] = '+';
	ans_bytes(a, b, 11);
}

/* BITS: bit n is the (n % 8)-th most significant bit of octet n / 8. */
static void
ans_reasons(struct snmp_answer *a, uint32_t reasons)
{
	uint8_t b = 0;
	for (unsigned n = 0; n < REASON_COUNT && n < 8; n++)
		if (reasons & (1u << n))
			b |= (uint8_t)(0x80u >> n);
	ans_bytes(a, &b, 1);
}

static void
ans_address(struct snmp_answer *a, const char *ip, bool want_type)
{
	uint8_t b[16];
	int type = 0;
	size_t len = 0;
	if (inet_pton(AF_INET, ip, b) == 1) {
		type = 1;
		len = 4;
	} else if (inet_pton(AF_INET6, ip, b) == 1) {
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(b, mapped, sizeof(mapped)) == 0) {
			memmove(b, b + 12, 4);
			type = 1;
			len = 4;
		} else {
			type = 2;
			len = 16;
		}
	}
	if (want_type)
		ans_num(a, SNMP_ANS_INTEGER, (uint64_t)type);
	else
		ans_bytes(a, b, len);
}

static const struct fleet_group *
group_by_index(const struct fleet_snapshot *s, uint32_t index)
{
	for (size_t i = 0; s && i < s->ngroups; i++)
		if (s->groups[i].index == index)
			return &s->groups[i];
	return NULL;
}

static void
scalar_value(const struct fleet_snapshot *s, int64_t now, enum value_id id, struct snmp_answer *a)
{
	const struct fleet_counts *c = &s->counts;
	switch (id) {
	case V_VERSION: ans_str(a, CUSTOS_VERSION); break;
	case V_UPTIME: {
		int64_t up = now > s->started && s->started > 0 ? now - s->started : 0;
		ans_num(a, SNMP_ANS_TIMETICKS, ((uint64_t)up * 100) & 0xffffffffu);
		break;
	}
	case V_DB_CONNECTED: ans_num(a, SNMP_ANS_INTEGER, s->db_state == FLEET_DB_UP ? 1 : 2); break;
	case V_DB_STATE: ans_num(a, SNMP_ANS_INTEGER, (uint64_t)s->db_state); break;
	case V_AGENTS: ans_gauge(a, s->agents_connected); break;
	case V_Q_EVENTS: ans_gauge(a, s->queue_events); break;
	case V_Q_HOSTS: ans_gauge(a, s->queue_hosts); break;
	case V_Q_JOBS: ans_gauge(a, s->queue_jobs); break;
	case V_SHED: ans_num(a, SNMP_ANS_COUNTER64, s->shed); break;
	case V_TOTAL: ans_gauge(a, c->total); break;
	case V_OK: ans_gauge(a, c->ok); break;
	case V_WARNING: ans_gauge(a, c->warning); break;
	case V_CRITICAL: ans_gauge(a, c->critical); break;
	case V_UNASSIGNED: ans_gauge(a, c->unassigned); break;
	case V_NEVER: ans_gauge(a, c->never_connected); break;
	case V_DB_OUTDATED: ans_gauge(a, c->db_outdated); break;
	case V_RTP_OFF: ans_gauge(a, c->rtp_off); break;
	case V_NO_AV: ans_gauge(a, c->no_av); break;
	case V_THREATS_DAY: ans_gauge(a, s->threats_24h); break;
	case V_OUTBREAK: ans_num(a, SNMP_ANS_INTEGER, s->outbreak ? 1 : 2); break;
	case V_OUTBREAK_THREATS: ans_gauge(a, s->outbreak_threats); break;
	case V_NAC_ENABLED: ans_num(a, SNMP_ANS_INTEGER, s->nac_enabled ? 1 : 2); break;
	case V_NAC_HEALTHY:
	case V_NAC_CHECKUP:
	case V_NAC_TRANSITION:
	case V_NAC_QUARANTINE:
	case V_NAC_INFECTED:
	case V_NAC_UNKNOWN:
		ans_gauge(a, s->nac_hosts[id - V_NAC_HEALTHY]);
		break;
	default: ans_num(a, SNMP_ANS_INTEGER, 0); break;
	}
}

static void
host_value(const struct fleet_snapshot *s, const struct fleet_host *h, enum value_id id,
    struct snmp_answer *a)
{
	const struct fleet_group *g;
	switch (id) {
	case H_NAME: ans_str(a, h->name); break;
	case H_GROUP: ans_num(a, SNMP_ANS_UNSIGNED, h->group); break;
	case H_GROUP_NAME:
		g = group_by_index(s, h->group);
		ans_str(a, g ? g->name : "");
		break;
	case H_ADDR_TYPE: ans_address(a, h->ip, true); break;
	case H_ADDR: ans_address(a, h->ip, false); break;
	case H_STATUS: ans_num(a, SNMP_ANS_INTEGER, (uint64_t)h->status + 1); break;
	case H_REASONS: ans_reasons(a, h->reasons); break;
	case H_CRITICAL: ans_reasons(a, h->critical); break;
	case H_AV: ans_str(a, h->av); break;
	case H_DB_TIME: ans_time(a, h->db_time); break;
	case H_RTP: ans_num(a, SNMP_ANS_INTEGER, h->rtp ? h->rtp : FLEET_RTP_UNKNOWN); break;
	case H_LAST_SEEN: ans_time(a, h->last_seen); break;
	case H_THREATS: ans_gauge(a, h->threats > 0 ? (uint64_t)h->threats : 0); break;
	default: ans_num(a, SNMP_ANS_INTEGER, 0); break;
	}
}

static void
group_value(const struct fleet_group *g, enum value_id id, struct snmp_answer *a)
{
	switch (id) {
	case G_NAME: ans_str(a, g->name); break;
	case G_PARENT: ans_num(a, SNMP_ANS_UNSIGNED, g->parent); break;
	case G_HOSTS: ans_gauge(a, g->hosts); break;
	case G_OK: ans_gauge(a, g->ok); break;
	case G_WARNING: ans_gauge(a, g->warning); break;
	case G_CRITICAL: ans_gauge(a, g->critical); break;
	default: ans_num(a, SNMP_ANS_INTEGER, 0); break;
	}
}

/* ---- lookup: GET and GETNEXT over the sorted instances ---- */

static size_t
rows_count(const struct fleet_snapshot *s, enum table_id t)
{
	return t == T_HOSTS ? s->nhosts : s->ngroups;
}

static uint64_t
row_id(const struct fleet_snapshot *s, enum table_id t, size_t i)
{
	return t == T_HOSTS ? fleet_host_at(s, i)->id : s->groups[i].index;
}

/* First row whose index is >= id. */
static size_t
row_lower_bound(const struct fleet_snapshot *s, enum table_id t, uint64_t id)
{
	if (t == T_HOSTS)
		return fleet_host_lower_bound(s, id);
	size_t lo = 0, hi = s->ngroups;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->groups[mid].index < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
answer(const struct fleet_snapshot *s, int64_t now, const struct section *sec,
    const struct object *o, size_t row, uint32_t *out, size_t *outlen, struct snmp_answer *a)
{
	memcpy(out, objects_oid, sizeof(objects_oid));
	out[OBJECTS_LEN] = sec->sub;
	if (sec->table == T_NONE) {
		out[OBJECTS_LEN + 1] = o->sub;
		out[OBJECTS_LEN + 2] = 0;
		*outlen = OBJECTS_LEN + 3;
		scalar_value(s, now, o->id, a);
		return;
	}
	out[OBJECTS_LEN + 1] = 1;
	out[OBJECTS_LEN + 2] = o->sub;
	out[OBJECTS_LEN + 3] = (uint32_t)row_id(s, sec->table, row);
	*outlen = OBJECTS_LEN + 4;
	if (sec->table == T_HOSTS)
		host_value(s, fleet_host_at(s, row), o->id, a);
	else
		group_value(&s->groups[row], o->id, a);
}

static enum snmp_found
get_in_section(const struct fleet_snapshot *s, int64_t now, const struct section *sec,
    const uint32_t *rel, size_t rlen, uint32_t *out, size_t *outlen, struct snmp_answer *a)
{
	if (sec->table == T_NONE) {
		for (size_t k = 0; rlen >= 1 && k < sec->nobjs; k++) {
			if (sec->objs[k].sub != rel[0])
				continue;
			if (rlen != 2 || rel[1] != 0)
				return SNMP_NO_INSTANCE;
			answer(s, now, sec, &sec->objs[k], 0, out, outlen, a);
			return SNMP_FOUND;
		}
		return SNMP_NO_OBJECT;
	}
	if (rlen < 2 || rel[0] != 1)
		return SNMP_NO_OBJECT;
	for (size_t k = 0; k < sec->nobjs; k++) {
		if (sec->objs[k].sub != rel[1])
			continue;
		if (rlen != 3)
			return SNMP_NO_INSTANCE;
		size_t i = row_lower_bound(s, sec->table, rel[2]);
		if (i == rows_count(s, sec->table) || row_id(s, sec->table, i) != rel[2])
			return SNMP_NO_INSTANCE;
		answer(s, now, sec, &sec->objs[k], i, out, outlen, a);
		return SNMP_FOUND;
	}
	return SNMP_NO_OBJECT;
}

/* The first instance in sec after rel (rlen 0: the first instance). */
static enum snmp_found
next_in_section(const struct fleet_snapshot *s, int64_t now, const struct section *sec,
    const uint32_t *rel, size_t rlen, uint32_t *out, size_t *outlen, struct snmp_answer *a)
{
	if (sec->table == T_NONE) {
		for (size_t k = 0; k < sec->nobjs; k++) {
			uint32_t inst[2] = { sec->objs[k].sub, 0 };
			if (rlen == 0 || agentx_oid_cmp(inst, 2, rel, rlen) > 0) {
				answer(s, now, sec, &sec->objs[k], 0, out, outlen, a);
				return SNMP_FOUND;
			}
		}
		return SNMP_END_OF_VIEW;
	}
	/* instances are entry(1).column.index */
	uint32_t col = 0;
	uint64_t min_id = 0;
	bool exact_col = false;
	if (rlen >= 1 && rel[0] > 1)
		return SNMP_END_OF_VIEW;
	if (rlen >= 2 && rel[0] == 1) {
		col = rel[1];
		exact_col = true;
		if (rlen >= 3)
			min_id = (uint64_t)rel[2] + 1;
	}
	size_t nrows = rows_count(s, sec->table);
	for (size_t k = 0; k < sec->nobjs && nrows > 0; k++) {
		if (exact_col && sec->objs[k].sub < col)
			continue;
		uint64_t from = exact_col && sec->objs[k].sub == col ? min_id : 0;
		size_t i = row_lower_bound(s, sec->table, from);
		if (i < nrows) {
			answer(s, now, sec, &sec->objs[k], i, out, outlen, a);
			return SNMP_FOUND;
		}
	}
	return SNMP_END_OF_VIEW;
}

enum snmp_found
snmp_resolve(const struct fleet_snapshot *s, int64_t now, const uint32_t *req, size_t len,
    bool next, uint32_t *out, size_t *outlen, struct snmp_answer *a)
{
	size_t m = len < OBJECTS_LEN ? len : OBJECTS_LEN;
	int cmp = agentx_oid_cmp(req, m, objects_oid, m);

	if (!next) {
		if (cmp != 0 || len <= OBJECTS_LEN)
			return SNMP_NO_OBJECT;
		for (size_t i = 0; i < ARRAY_LEN(sections); i++)
			if (sections[i].sub == req[OBJECTS_LEN])
				return get_in_section(s, now, &sections[i], req + OBJECTS_LEN + 1,
				    len - OBJECTS_LEN - 1, out, outlen, a);
		return SNMP_NO_OBJECT;
	}
	if (cmp > 0)
		return SNMP_END_OF_VIEW;
	bool inside = cmp == 0 && len > OBJECTS_LEN;
	for (size_t i = 0; i < ARRAY_LEN(sections); i++) {
		const struct section *sec = &sections[i];
		const uint32_t *rel = NULL;
		size_t rlen = 0;
		if (inside) {
			if (sec->sub < req[OBJECTS_LEN])
				continue;
			if (sec->sub == req[OBJECTS_LEN]) {
				rel = req + OBJECTS_LEN + 1;
				rlen = len - OBJECTS_LEN - 1;
			}
		}
		if (next_in_section(s, now, sec, rel, rlen, out, outlen, a) == SNMP_FOUND)
			return SNMP_FOUND;
	}
	return SNMP_END_OF_VIEW;
}


/* ---- notifications ---- */

static void
vb_put(struct snmp_varbind *vb, size_t max, size_t *n, uint32_t sec, bool table, uint32_t sub,
    uint32_t instance, const struct snmp_answer *a)
{
	if (*n >= max)
		return;
	size_t k = OBJECTS_LEN;
	memcpy(vb[*n].oid, objects_oid, sizeof(objects_oid));
	vb[*n].oid[k++] = sec;
	if (table)
		vb[*n].oid[k++] = 1;
	vb[*n].oid[k++] = sub;
	vb[*n].oid[k++] = instance;
	vb[*n].len = k;
	vb[*n].a = *a;
	(*n)++;
}

static void
vb_host(struct snmp_varbind *vb, size_t max, size_t *n, const struct fleet_host *h, uint32_t sub,
    enum value_id id)
{
	struct snmp_answer a;
	host_value(NULL, h, id, &a);
	vb_put(vb, max, n, 3, true, sub, (uint32_t)(h->id > UINT32_MAX ? 0 : h->id), &a);
}

static void
vb_scalar(struct snmp_varbind *vb, size_t max, size_t *n, const struct fleet_snapshot *s,
    uint32_t sec, uint32_t sub, enum value_id id)
{
	struct snmp_answer a;
	scalar_value(s, 0, id, &a);
	vb_put(vb, max, n, sec, false, sub, 0, &a);
}

size_t
snmp_notice_varbinds(const struct fleet_notice *n, uint64_t count, uint32_t *trap,
    size_t *traplen, struct snmp_varbind *vb, size_t max)
{
	static const uint32_t mib[] = { CUSTOS_MIB };
	struct fleet_host h = { .id = n->host_id, .status = n->status, .reasons = n->reasons,
	    .critical = n->critical, .threats = n->threats };
	struct fleet_snapshot fs = { 0 };
	struct snmp_answer a;
	size_t k = 0;

	memcpy(trap, mib, sizeof(mib));
	trap[MIB_LEN] = 0;
	trap[MIB_LEN + 1] = 0;
	*traplen = MIB_LEN + 2;
	for (size_t i = 0; i < ARRAY_LEN(notifications); i++)
		if (notifications[i].kind == n->kind)
			trap[MIB_LEN + 1] = notifications[i].sub;
	str_copy(h.name, n->host, sizeof(h.name));
	switch (n->kind) {
	case FLEET_NOTICE_HOST_CRITICAL:
		vb_host(vb, max, &k, &h, 2, H_NAME);
		vb_host(vb, max, &k, &h, 7, H_STATUS);
		vb_host(vb, max, &k, &h, 8, H_REASONS);
		vb_host(vb, max, &k, &h, 9, H_CRITICAL);
		break;
	case FLEET_NOTICE_THREAT:
		vb_host(vb, max, &k, &h, 2, H_NAME);
		vb_host(vb, max, &k, &h, 14, H_THREATS);
		ans_str(&a, n->text);
		vb_put(vb, max, &k, NOTIFY_OBJECTS, false, NOTIFY_MESSAGE, 0, &a);
		break;
	case FLEET_NOTICE_OUTBREAK_START:
	case FLEET_NOTICE_OUTBREAK_END:
		fs.outbreak = n->kind == FLEET_NOTICE_OUTBREAK_START;
		fs.outbreak_threats = n->threats > 0 ? (uint64_t)n->threats : 0;
		fs.threats_24h = n->threats_24h;
		vb_scalar(vb, max, &k, &fs, 2, 11, V_OUTBREAK);
		vb_scalar(vb, max, &k, &fs, 2, 12, V_OUTBREAK_THREATS);
		vb_scalar(vb, max, &k, &fs, 2, 10, V_THREATS_DAY);
		break;
	case FLEET_NOTICE_DB_LOST:
	case FLEET_NOTICE_DB_RESTORED:
		fs.db_state = n->db_state ? n->db_state :
		    n->kind == FLEET_NOTICE_DB_LOST ? FLEET_DB_DOWN : FLEET_DB_UP;
		vb_scalar(vb, max, &k, &fs, 1, 4, V_DB_STATE);
		ans_str(&a, n->text);
		vb_put(vb, max, &k, NOTIFY_OBJECTS, false, NOTIFY_MESSAGE, 0, &a);
		break;
	}
	ans_num(&a, SNMP_ANS_UNSIGNED, count > UINT32_MAX ? UINT32_MAX : count);
	vb_put(vb, max, &k, NOTIFY_OBJECTS, false, NOTIFY_COUNT, 0, &a);
	return k;
}
