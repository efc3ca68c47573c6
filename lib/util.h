/* util.h — small helpers shared by every program. Thread-safe unless noted. */
#ifndef CUSTOS_UTIL_H
#define CUSTOS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Copies src into dst (size dstsz, NUL-terminated); returns strlen(src), so a
 * result >= dstsz means truncation. */
size_t str_copy(char *dst, const char *src, size_t dstsz);
/* snprintf that returns -1 on truncation or error, else the length; a NULL
 * or empty dst writes nothing (and returns -1). */
int str_fmt(char *dst, size_t dstsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Fills buf with cryptographically random bytes; 0 or -1. */
int random_bytes(void *buf, size_t len);
/* 32 hex chars of randomness (+NUL): ids for events and hosts. */
int random_id(char out[33]);

/* Reads a whole file (at most max bytes) into a NUL-terminated malloc'd
 * buffer. Returns NULL with errno set (EFBIG when larger than max). */
char *file_read(const char *path, size_t max, size_t *len);
/* Writes data to path atomically (tmp file, fsync, rename, fsync dir). */
int file_write_atomic(const char *path, const void *data, size_t len, int mode);
/* mkdir -p with the given mode for created directories. */
int mkdir_p(const char *path, int mode);
/* fsync the directory holding path. */
int fsync_parent(const char *path);

/* Grows a malloc'd array (*arr, capacity *cap elements of size elsz) to hold
 * at least need elements, doubling; 0, or -1 with the array unchanged. */
int array_grow(void **arr, size_t *cap, size_t need, size_t elsz);

/* Wall clock in seconds / milliseconds; monotonic milli- and microseconds. */
int64_t now_s(void);
int64_t now_ms(void);
int64_t mono_ms(void);
int64_t mono_us(void);
/* ISO-8601 UTC ("2026-11-23T21:07:18Z") for t; out needs 21 bytes. */
void time_iso(int64_t t, char out[32]);

#endif
