/* frame.c — see frame.h. */
#include "frame.h"

#include <string.h>
#include <event2/buffer.h>

#include "util.h"

int
frame_encode(struct evbuffer *out, const json_t *msg, size_t max, char *err, size_t errlen)
{
	char *body = json_dumps(msg, JSON_COMPACT);
	if (body == NULL) {
		str_fmt(err, errlen, "frame: message cannot be serialised");
		return -1;
	}
	size_t len = strlen(body);
	if (len == 0 || len > max) {
		str_fmt(err, errlen, "frame: message of %zu bytes exceeds the limit of %zu", len, max);
		free(body);
		return -1;
	}
	uint8_t hdr[FRAME_HDR_LEN] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16),
		(uint8_t)(len >> 8), (uint8_t)len };
	int rc = evbuffer_add(out, hdr, sizeof(hdr)) == 0 && evbuffer_add(out, body, len) == 0 ? 0 : -1;
	if (rc < 0)
		str_fmt(err, errlen, "frame: out of memory");
	free(body);
	return rc;
}

static enum frame_rc
frame_parse_body(const char *body, size_t len, json_t **msg, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		str_fmt(err, errlen, "frame: invalid JSON at byte %d: %s", jerr.position, jerr.text);
		return FRAME_BAD;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		str_fmt(err, errlen, "frame: body is not a JSON object");
		return FRAME_BAD;
	}
	*msg = j;
	return FRAME_OK;
}

static enum frame_rc
frame_check_len(const uint8_t hdr[FRAME_HDR_LEN], size_t max, size_t *len, char *err, size_t errlen)
{
	*len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (*len == 0 || *len > max) {
		str_fmt(err, errlen, "frame: declared length %zu outside 1..%zu", *len, max);
		return FRAME_TOO_BIG;
	}
	return FRAME_OK;
}

enum frame_rc
frame_decode(struct evbuffer *in, size_t max, json_t **msg, char *err, size_t errlen)
{
	uint8_t hdr[FRAME_HDR_LEN];
	size_t len;

	*msg = NULL;
	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return FRAME_NEED_MORE;
	if (frame_check_len(hdr, max, &len, err, errlen) != FRAME_OK)
		return FRAME_TOO_BIG;
	if (evbuffer_get_length(in) < FRAME_HDR_LEN + len)
		return FRAME_NEED_MORE;
	evbuffer_drain(in, FRAME_HDR_LEN);
	/* pullup makes the body contiguous without an extra copy when it already is */
	const char *body = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	if (body == NULL) {
		str_fmt(err, errlen, "frame: out of memory");
		return FRAME_BAD;
	}
	enum frame_rc rc = frame_parse_body(body, len, msg, err, errlen);
	evbuffer_drain(in, len);
	return rc;
}

enum frame_rc
frame_decode_buf(const uint8_t *buf, size_t blen, size_t max, json_t **msg, size_t *used,
    char *err, size_t errlen)
{
	size_t len;

	*msg = NULL;
	*used = 0;
	if (blen < FRAME_HDR_LEN)
		return FRAME_NEED_MORE;
	if (frame_check_len(buf, max, &len, err, errlen) != FRAME_OK)
		return FRAME_TOO_BIG;
	if (blen - FRAME_HDR_LEN < len)
		return FRAME_NEED_MORE;
	*used = FRAME_HDR_LEN + len;
	return frame_parse_body((const char *)buf + FRAME_HDR_LEN, len, msg, err, errlen);
}
