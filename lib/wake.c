/* wake.c — see wake.h. */
#include "wake.h"

#include <string.h>

#include "pki.h"
#include "util.h"

int
wake_build(EVP_PKEY *key, const char *uid, int64_t now, uint8_t *buf, size_t buflen)
{
	if (buflen < WAKE_MAX_LEN || strlen(uid) != 32)
		return -1;
	memcpy(buf, "CWK1", 4);
	for (int i = 0; i < 8; i++)
		buf[4 + i] = (uint8_t)((uint64_t)now >> (56 - 8 * i));
	if (random_bytes(buf + 12, 16) < 0)
		return -1;
	memcpy(buf + 28, uid, 32);
	size_t siglen = 0;
	if (pki_sign(key, buf, WAKE_SIGNED_LEN, buf + WAKE_SIGNED_LEN + 1, &siglen) < 0 || siglen > 80)
		return -1;
	buf[WAKE_SIGNED_LEN] = (uint8_t)siglen;
	return (int)(WAKE_SIGNED_LEN + 1 + siglen);
}

enum wake_rc
wake_verify(X509 *cert, const char *uid, const uint8_t *buf, size_t len, int64_t now,
    int max_skew, struct wake_replay *rp)
{
	if (len < WAKE_SIGNED_LEN + 2 || len > WAKE_MAX_LEN || memcmp(buf, "CWK1", 4) != 0)
		return WAKE_MALFORMED;
	size_t siglen = buf[WAKE_SIGNED_LEN];
	if (siglen == 0 || WAKE_SIGNED_LEN + 1 + siglen != len)
		return WAKE_MALFORMED;
	if (pki_verify(cert, buf, WAKE_SIGNED_LEN, buf + WAKE_SIGNED_LEN + 1, siglen) != 0)
		return WAKE_BAD_SIG;
	if (strlen(uid) != 32 || memcmp(buf + 28, uid, 32) != 0)
		return WAKE_WRONG_HOST;
	uint64_t ts = 0;
	for (int i = 0; i < 8; i++)
		ts = ts << 8 | buf[4 + i];
	int64_t t = (int64_t)ts;
	if (t < now - max_skew || t > now + max_skew)
		return WAKE_STALE;
	for (size_t i = 0; i < WAKE_REPLAY_SLOTS; i++)
		if (rp->ts[i] != 0 && rp->ts[i] >= now - 2 * max_skew &&
		    memcmp(rp->nonce[i], buf + 12, 16) == 0)
			return WAKE_REPLAY;
	memcpy(rp->nonce[rp->next], buf + 12, 16);
	rp->ts[rp->next] = t ? t : 1;
	rp->next = (rp->next + 1) % WAKE_REPLAY_SLOTS;
	return WAKE_OK;
}

const char *
wake_rc_text(enum wake_rc rc)
{
	switch (rc) {
	case WAKE_OK: return "ok";
	case WAKE_MALFORMED: return "malformed";
	case WAKE_BAD_SIG: return "bad signature (forged or another server)";
	case WAKE_WRONG_HOST: return "addressed to another host";
	case WAKE_STALE: return "timestamp outside the allowed window";
	case WAKE_REPLAY: return "replayed";
	}
	return "?";
}
