/* agentx.h — the AgentX protocol (RFC 2741) as custosd's subagent needs
 * it: PDU headers, object identifiers, search ranges and varbinds, read
 * from and written to byte buffers. No I/O and no state, so the unit tests
 * check every PDU byte for byte; snmp.c runs the session.
 *
 * Readers accept either byte order (each PDU says its own); writers always
 * send network byte order and set NETWORK_BYTE_ORDER. Contexts other than
 * the default one are not supported: custosd registers in the default
 * context only, so a master never sends it another. */
#ifndef CUSTOS_AGENTX_H
#define CUSTOS_AGENTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENTX_HEADER_LEN 20
#define AGENTX_OID_MAX 128           /* sub-identifiers in an AgentX OID (RFC 2741 5.1) */
#define AGENTX_PAYLOAD_MAX 65536     /* larger PDUs are refused as a protocol error */

enum agentx_type {
	AGENTX_OPEN = 1,
	AGENTX_CLOSE = 2,
	AGENTX_REGISTER = 3,
	AGENTX_UNREGISTER = 4,
	AGENTX_GET = 5,
	AGENTX_GETNEXT = 6,
	AGENTX_GETBULK = 7,
	AGENTX_TESTSET = 8,
	AGENTX_COMMITSET = 9,
	AGENTX_UNDOSET = 10,
	AGENTX_CLEANUPSET = 11,
	AGENTX_NOTIFY = 12,
	AGENTX_PING = 13,
	AGENTX_RESPONSE = 18,
};

#define AGENTX_FLAG_INSTANCE_REGISTRATION 0x01
#define AGENTX_FLAG_NON_DEFAULT_CONTEXT 0x08
#define AGENTX_FLAG_NETWORK_BYTE_ORDER 0x10

/* res.error values (RFC 2741 6.2.16) and the SNMP ones used for sets */
enum agentx_error {
	AGENTX_ERR_NONE = 0,
	AGENTX_ERR_NOT_WRITABLE = 17,
	AGENTX_ERR_OPEN_FAILED = 256,
	AGENTX_ERR_NOT_OPEN = 257,
	AGENTX_ERR_UNSUPPORTED_CONTEXT = 262,
	AGENTX_ERR_DUPLICATE_REGISTRATION = 263,
	AGENTX_ERR_PARSE = 266,
	AGENTX_ERR_REQUEST_DENIED = 267,
	AGENTX_ERR_PROCESSING = 268,
};

/* Close-PDU reasons */
enum agentx_close_reason {
	AGENTX_CLOSE_OTHER = 1,
	AGENTX_CLOSE_PARSE_ERROR = 2,
	AGENTX_CLOSE_PROTOCOL_ERROR = 3,
	AGENTX_CLOSE_SHUTDOWN = 5,
};

/* varbind types (RFC 2741 5.4) */
enum agentx_vtype {
	AGENTX_V_INTEGER = 2,
	AGENTX_V_OCTETS = 4,
	AGENTX_V_NULL = 5,
	AGENTX_V_OID = 6,
	AGENTX_V_GAUGE32 = 66,           /* also Unsigned32 */
	AGENTX_V_TIMETICKS = 67,
	AGENTX_V_COUNTER64 = 70,
	AGENTX_V_NO_SUCH_OBJECT = 128,
	AGENTX_V_NO_SUCH_INSTANCE = 129,
	AGENTX_V_END_OF_MIB_VIEW = 130,
};

struct agentx_header {
	uint8_t version, type, flags;
	uint32_t session, transaction, packet;
	uint32_t length;                 /* payload bytes after the header */
};

struct agentx_oid {
	uint32_t sub[AGENTX_OID_MAX];
	size_t len;
	bool include;
};

/* ---- reading ---- */

enum agentx_parse {
	AGENTX_PARSE_OK,
	AGENTX_PARSE_SHORT,               /* need more bytes */
	AGENTX_PARSE_BAD,                 /* not AgentX (version, size or alignment) */
};

/* Reads the header at buf (len bytes available); BAD when the version is
 * not 1, the payload is not a multiple of 4 or exceeds AGENTX_PAYLOAD_MAX. */
enum agentx_parse agentx_header_read(const uint8_t *buf, size_t len, struct agentx_header *h);

/* A cursor over one PDU's payload; every read past the end or of a
 * malformed field sets bad and returns zeros, so a caller checks once. */
struct agentx_reader {
	const uint8_t *p;
	size_t len, off;
	bool net;                         /* network byte order */
	bool bad;
};

void agentx_reader_init(struct agentx_reader *r, const struct agentx_header *h,
    const uint8_t *payload);
uint8_t agentx_get_u8(struct agentx_reader *r);
uint16_t agentx_get_u16(struct agentx_reader *r);
uint32_t agentx_get_u32(struct agentx_reader *r);
/* An OID (with the 1.3.6.1 prefix expanded); false and r->bad when malformed. */
bool agentx_get_oid(struct agentx_reader *r, struct agentx_oid *o);
/* Skips an octet string (a context); its length is bounded by the payload. */
bool agentx_skip_octets(struct agentx_reader *r);
/* A search range: start (with its include flag) and end (len 0: no end). */
bool agentx_get_range(struct agentx_reader *r, struct agentx_oid *start, struct agentx_oid *end);

/* ---- writing ---- */

/* A bounded output buffer; a write past cap sets overflow (nothing more is
 * written) so a caller checks once at the end. */
struct agentx_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t pdu;                       /* where the open PDU's header starts */
	bool overflow;
};

void agentx_writer_init(struct agentx_writer *w, uint8_t *buf, size_t cap);
/* Starts a PDU; agentx_pdu_end fills in its payload length. */
void agentx_pdu_begin(struct agentx_writer *w, uint8_t type, uint8_t flags, uint32_t session,
    uint32_t transaction, uint32_t packet);
void agentx_pdu_end(struct agentx_writer *w);
void agentx_put_u8(struct agentx_writer *w, uint8_t v);
void agentx_put_u16(struct agentx_writer *w, uint16_t v);
void agentx_put_u32(struct agentx_writer *w, uint32_t v);
void agentx_put_u64(struct agentx_writer *w, uint64_t v);
/* An OID, using the 1.3.6.1 prefix form where it applies. */
void agentx_put_oid(struct agentx_writer *w, const uint32_t *sub, size_t len, bool include);
void agentx_put_octets(struct agentx_writer *w, const void *p, size_t len);
/* A varbind's type and name; the value follows with the put functions
 * (nothing for NULL and the three exceptions). */
void agentx_put_varbind_head(struct agentx_writer *w, uint16_t type, const uint32_t *name,
    size_t len);

/* Whole PDUs the subagent sends. */
void agentx_put_open(struct agentx_writer *w, uint32_t packet, uint8_t timeout,
    const uint32_t *id, size_t idlen, const char *descr);
void agentx_put_close(struct agentx_writer *w, uint32_t session, uint32_t packet, uint8_t reason);
void agentx_put_register(struct agentx_writer *w, uint32_t session, uint32_t packet,
    uint8_t timeout, uint8_t priority, const uint32_t *subtree, size_t len);
void agentx_put_ping(struct agentx_writer *w, uint32_t session, uint32_t packet);
/* The start of a Response to request h (res.sysUpTime 0); varbinds follow,
 * then agentx_pdu_end. */
void agentx_put_response_head(struct agentx_writer *w, const struct agentx_header *h,
    uint16_t error, uint16_t index);

/* Orders two OIDs like SNMP does: <0, 0, >0. */
int agentx_oid_cmp(const uint32_t *a, size_t alen, const uint32_t *b, size_t blen);

/* A name for a PDU type in logs ("Get", "Response", "type 99"). */
const char *agentx_type_name(uint8_t type, char *buf, size_t len);

#endif
