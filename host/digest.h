/*
 * digest.h - SHA-256 of files and byte streams, as "sha256:<64 hex>".
 *
 * Files are streamed in fixed-size blocks, never read whole into memory.
 */
#ifndef BSI_DIGEST_H
#define BSI_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define BSI_DIGEST_PREFIX "sha256:"
#define BSI_DIGEST_STRLEN (7 + 64) /* without the NUL */

typedef struct bsi_digest_ctx bsi_digest_ctx;

int bsi_digest_new(bsi_digest_ctx **out);
int bsi_digest_update(bsi_digest_ctx *ctx, const void *data, size_t len);
/* Write the digest string into out and reset ctx for reuse. */
int bsi_digest_final(bsi_digest_ctx *ctx, char out[BSI_DIGEST_STRLEN + 1]);
void bsi_digest_free(bsi_digest_ctx *ctx);

/*
 * Digest an open regular file from its current offset to the end its
 * fstat(2) size gives, and no further: a file that holds more than its
 * size says (a /proc file says 0) is refused with BSI_ERECIPE, so neither
 * such a file nor one that keeps growing is read without end; one that
 * holds less changed while it was read (BSI_EFAIL).
 */
int bsi_digest_fd(int fd, char out[BSI_DIGEST_STRLEN + 1]);
/* Digest a buffer. */
int bsi_digest_buf(const void *data, size_t len, char out[BSI_DIGEST_STRLEN + 1]);

/* True when s is exactly "sha256:" followed by 64 lowercase hex digits. */
bool bsi_digest_valid(const char *s);

#endif
