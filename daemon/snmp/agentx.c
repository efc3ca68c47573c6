/* agentx.c — see agentx.h. */
#include "snmp/agentx.h"

#include <stdio.h>
#include <string.h>

/* The 1.3.6.1 prefix a PDU may abbreviate (RFC 2741 5.1). */
static const uint32_t internet[] = { 1, 3, 6, 1 };

enum agentx_parse
agentx_header_read(const uint8_t *buf, size_t len, struct agentx_header *h)
{
	if (len < AGENTX_HEADER_LEN)
		return AGENTX_PARSE_SHORT;
	struct agentx_reader r = { .p = buf, .len = AGENTX_HEADER_LEN,
	    .net = (buf[2] & AGENTX_FLAG_NETWORK_BYTE_ORDER) != 0 };
	h->version = agentx_get_u8(&r);
	h->type = agentx_get_u8(&r);
	h->flags = agentx_get_u8(&r);
	(void)agentx_get_u8(&r);
	h->session = agentx_get_u32(&r);
	h->transaction = agentx_get_u32(&r);
	h->packet = agentx_get_u32(&r);
	h->length = agentx_get_u32(&r);
	if (h->version != 1 || h->length % 4 != 0 || h->length > AGENTX_PAYLOAD_MAX)
		return AGENTX_PARSE_BAD;
	return AGENTX_PARSE_OK;
}

void
agentx_reader_init(struct agentx_reader *r, const struct agentx_header *h, const uint8_t *payload)
{
	r->p = payload;
	r->len = h->length;
	r->off = 0;
	r->net = (h->flags & AGENTX_FLAG_NETWORK_BYTE_ORDER) != 0;
	r->bad = false;
}

static const uint8_t *
take(struct agentx_reader *r, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t
agentx_get_u8(struct agentx_reader *r)
{
	const uint8_t *p = take(r, 1);
	return p ? p[0] : 0;
}

uint16_t
agentx_get_u16(struct agentx_reader *r)
{
	const uint8_t *p = take(r, 2);
	if (p == NULL)
		return 0;
	return r->net ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

uint32_t
agentx_get_u32(struct agentx_reader *r)
{
	const uint8_t *p = take(r, 4);
	if (p == NULL)
		return 0;
	if (r->net)
		return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

bool
agentx_get_oid(struct agentx_reader *r, struct agentx_oid *o)
{
	uint8_t n = agentx_get_u8(r);
	uint8_t prefix = agentx_get_u8(r);
	uint8_t include = agentx_get_u8(r);
	(void)agentx_get_u8(r);
	o->len = 0;
	o->include = include != 0;
	if (r->bad)
		return false;
	if (prefix != 0) {
		if (n + 5u > AGENTX_OID_MAX) {
			r->bad = true;
			return false;
		}
		memcpy(o->sub, internet, sizeof(internet));
		o->sub[4] = prefix;
		o->len = 5;
	} else if (n > AGENTX_OID_MAX) {
		r->bad = true;
		return false;
	}
	for (uint8_t i = 0; i < n; i++)
		o->sub[o->len++] = agentx_get_u32(r);
	if (r->bad) {
		o->len = 0;
		return false;
	}
	return true;
}

bool
agentx_skip_octets(struct agentx_reader *r)
{
	uint32_t n = agentx_get_u32(r);
	if (r->bad)
		return false;
	size_t padded = ((size_t)n + 3) & ~(size_t)3;
	return take(r, padded) != NULL;
}

bool
agentx_get_range(struct agentx_reader *r, struct agentx_oid *start, struct agentx_oid *end)
{
	if (!agentx_get_oid(r, start) || !agentx_get_oid(r, end))
		return false;
	end->include = false;
	return true;
}

/* ---- writing ---- */

void
agentx_writer_init(struct agentx_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->len = 0;
	w->cap = cap;
	w->pdu = 0;
	w->overflow = false;
}

static uint8_t *
room(struct agentx_writer *w, size_t n)
{
	if (w->overflow || w->cap - w->len < n) {
		w->overflow = true;
		return NULL;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

void
agentx_put_u8(struct agentx_writer *w, uint8_t v)
{
	uint8_t *p = room(w, 1);
	if (p)
		p[0] = v;
}

void
agentx_put_u16(struct agentx_writer *w, uint16_t v)
{
	uint8_t *p = room(w, 2);
	if (p) {
		p[0] = (uint8_t)(v >> 8);
		p[1] = (uint8_t)v;
	}
}

static void
put_u32_at(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void
agentx_put_u32(struct agentx_writer *w, uint32_t v)
{
	uint8_t *p = room(w, 4);
	if (p)
		put_u32_at(p, v);
}

void
agentx_put_u64(struct agentx_writer *w, uint64_t v)
{
	agentx_put_u32(w, (uint32_t)(v >> 32));
	agentx_put_u32(w, (uint32_t)v);
}

void
agentx_pdu_begin(struct agentx_writer *w, uint8_t type, uint8_t flags, uint32_t session,
    uint32_t transaction, uint32_t packet)
{
	w->pdu = w->len;
	agentx_put_u8(w, 1);
	agentx_put_u8(w, type);
	agentx_put_u8(w, (uint8_t)(flags | AGENTX_FLAG_NETWORK_BYTE_ORDER));
	agentx_put_u8(w, 0);
	agentx_put_u32(w, session);
	agentx_put_u32(w, transaction);
	agentx_put_u32(w, packet);
	agentx_put_u32(w, 0);
}

void
agentx_pdu_end(struct agentx_writer *w)
{
	if (w->overflow)
		return;
	size_t payload = w->len - w->pdu - AGENTX_HEADER_LEN;
	put_u32_at(w->buf + w->pdu + 16, (uint32_t)payload);
}

void
agentx_put_oid(struct agentx_writer *w, const uint32_t *sub, size_t len, bool include)
{
	size_t skip = 0;
	uint8_t prefix = 0;
	/* 1.3.6.1.N.rest with 0 < N < 256 shortens to prefix N */
	if (len >= 5 && memcmp(sub, internet, sizeof(internet)) == 0 && sub[4] > 0 && sub[4] < 256) {
		prefix = (uint8_t)sub[4];
		skip = 5;
	}
	if (len - skip > 255 || len > AGENTX_OID_MAX) {
		w->overflow = true;
		return;
	}
	agentx_put_u8(w, (uint8_t)(len - skip));
	agentx_put_u8(w, prefix);
	agentx_put_u8(w, include ? 1 : 0);
	agentx_put_u8(w, 0);
	for (size_t i = skip; i < len; i++)
		agentx_put_u32(w, sub[i]);
}

void
agentx_put_octets(struct agentx_writer *w, const void *p, size_t len)
{
	if (len > UINT32_MAX) {
		w->overflow = true;
		return;
	}
	size_t padded = (len + 3) & ~(size_t)3;
	agentx_put_u32(w, (uint32_t)len);
	uint8_t *d = room(w, padded);
	if (d == NULL)
		return;
	if (len > 0)
		memcpy(d, p, len);
	memset(d + len, 0, padded - len);
}

void
agentx_put_varbind_head(struct agentx_writer *w, uint16_t type, const uint32_t *name, size_t len)
{
	agentx_put_u16(w, type);
	agentx_put_u16(w, 0);
	agentx_put_oid(w, name, len, false);
}

void
agentx_put_open(struct agentx_writer *w, uint32_t packet, uint8_t timeout, const uint32_t *id,
    size_t idlen, const char *descr)
{
	agentx_pdu_begin(w, AGENTX_OPEN, 0, 0, 0, packet);
	agentx_put_u8(w, timeout);
	agentx_put_u8(w, 0);
	agentx_put_u16(w, 0);
	agentx_put_oid(w, id, idlen, false);
	agentx_put_octets(w, descr, strlen(descr));
	agentx_pdu_end(w);
}

void
agentx_put_close(struct agentx_writer *w, uint32_t session, uint32_t packet, uint8_t reason)
{
	agentx_pdu_begin(w, AGENTX_CLOSE, 0, session, 0, packet);
	agentx_put_u8(w, reason);
	agentx_put_u8(w, 0);
	agentx_put_u16(w, 0);
	agentx_pdu_end(w);
}

void
agentx_put_register(struct agentx_writer *w, uint32_t session, uint32_t packet, uint8_t timeout,
    uint8_t priority, const uint32_t *subtree, size_t len)
{
	agentx_pdu_begin(w, AGENTX_REGISTER, 0, session, 0, packet);
	agentx_put_u8(w, timeout);
	agentx_put_u8(w, priority);
	agentx_put_u8(w, 0);              /* range_subid: a plain subtree */
	agentx_put_u8(w, 0);
	agentx_put_oid(w, subtree, len, false);
	agentx_pdu_end(w);
}

void
agentx_put_ping(struct agentx_writer *w, uint32_t session, uint32_t packet)
{
	agentx_pdu_begin(w, AGENTX_PING, 0, session, 0, packet);
	agentx_pdu_end(w);
}

void
agentx_put_response_head(struct agentx_writer *w, const struct agentx_header *h, uint16_t error,
    uint16_t index)
{
	agentx_pdu_begin(w, AGENTX_RESPONSE, 0, h->session, h->transaction, h->packet);
	agentx_put_u32(w, 0);
	agentx_put_u16(w, error);
	agentx_put_u16(w, index);
}

int
agentx_oid_cmp(const uint32_t *a, size_t alen, const uint32_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

const char *
agentx_type_name(uint8_t type, char *buf, size_t len)
{
	static const char *const names[] = {
		[AGENTX_OPEN] = "Open", [AGENTX_CLOSE] = "Close", [AGENTX_REGISTER] = "Register",
		[AGENTX_UNREGISTER] = "Unregister", [AGENTX_GET] = "Get", [AGENTX_GETNEXT] = "GetNext",
		[AGENTX_GETBULK] = "GetBulk", [AGENTX_TESTSET] = "TestSet",
		[AGENTX_COMMITSET] = "CommitSet", [AGENTX_UNDOSET] = "UndoSet",
		[AGENTX_CLEANUPSET] = "CleanupSet", [AGENTX_NOTIFY] = "Notify", [AGENTX_PING] = "Ping",
		[14] = "IndexAllocate", [15] = "IndexDeallocate", [16] = "AddAgentCaps",
		[17] = "RemoveAgentCaps", [AGENTX_RESPONSE] = "Response",
	};
	if (type < sizeof(names) / sizeof(names[0]) && names[type] != NULL)
		return names[type];
	snprintf(buf, len, "type %u", (unsigned)type);
	return buf;
}
