/*
 * digest.c - SHA-256 through OpenSSL's EVP interface.
 *
 * libcrypto is already in the process (libgit2 links it) and its SHA-256
 * uses the CPU's SHA extensions where they exist, several times faster than
 * portable code; this file is the only place that knows which
 * implementation is used.
 */
#include "digest.h"

#include "error.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (1u << 20)

struct bsi_digest_ctx {
	EVP_MD_CTX *md;
};

int bsi_digest_new(bsi_digest_ctx **out)
{
	bsi_digest_ctx *ctx = calloc(1, sizeof(*ctx));

	*out = NULL;
	if (!ctx || !(ctx->md = EVP_MD_CTX_new()) ||
	    EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1) {
		bsi_digest_free(ctx);
		return bsi_error_set(BSI_EFAIL, "cannot set up SHA-256");
	}
	*out = ctx;
	return BSI_OK;
}

int bsi_digest_update(bsi_digest_ctx *ctx, const void *data, size_t len)
{
	if (EVP_DigestUpdate(ctx->md, data, len) != 1)
		return bsi_error_set(BSI_EFAIL, "SHA-256 update failed");
	return BSI_OK;
}

int bsi_digest_final(bsi_digest_ctx *ctx, char out[BSI_DIGEST_STRLEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(ctx->md, md, &len) != 1 || len != sizeof(md) ||
	    EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1)
		return bsi_error_set(BSI_EFAIL, "SHA-256 final failed");
	memcpy(out, BSI_DIGEST_PREFIX, 7);
	for (size_t i = 0; i < sizeof(md); i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[BSI_DIGEST_STRLEN] = '\0';
	return BSI_OK;
}

void bsi_digest_free(bsi_digest_ctx *ctx)
{
	if (!ctx)
		return;
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

int bsi_digest_fd(int fd, char out[BSI_DIGEST_STRLEN + 1])
{
	bsi_digest_ctx *ctx = NULL;
	unsigned char *buf = NULL;
	uint64_t left, got = 0;
	struct stat st;
	off_t pos;
	int rc;

	if (fstat(fd, &st) < 0)
		return bsi_error_set(BSI_EFAIL, "fstat: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return bsi_error_set(BSI_EFAIL, "not a regular file");
	pos = lseek(fd, 0, SEEK_CUR);
	if (pos < 0)
		return bsi_error_set(BSI_EFAIL, "seek: %s", strerror(errno));
	left = st.st_size > pos ? (uint64_t)(st.st_size - pos) : 0;
	rc = bsi_digest_new(&ctx);
	if (rc < 0)
		goto done;
	buf = malloc(BLOCK);
	if (!buf) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	for (;;) {
		ssize_t n = read(fd, buf, BLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = bsi_error_set(BSI_EFAIL, "read: %s", strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
		if (got > left) {
			rc = bsi_error_set(BSI_ERECIPE,
					   "it holds more than the %ju bytes its size says (a file "
					   "of /proc or /sys, or one being written to); bsi hashes "
					   "files of a settled size only",
					   (uintmax_t)left);
			goto done;
		}
		rc = bsi_digest_update(ctx, buf, (size_t)n);
		if (rc < 0)
			goto done;
	}
	if (got < left) {
		rc = bsi_error_set(BSI_EFAIL, "it shrank from %ju to %ju bytes while bsi read it",
				   (uintmax_t)left, (uintmax_t)got);
		goto done;
	}
	rc = bsi_digest_final(ctx, out);
done:
	free(buf);
	bsi_digest_free(ctx);
	return rc;
}

int bsi_digest_buf(const void *data, size_t len, char out[BSI_DIGEST_STRLEN + 1])
{
	bsi_digest_ctx *ctx = NULL;
	int rc = bsi_digest_new(&ctx);

	if (rc == 0)
		rc = bsi_digest_update(ctx, data, len);
	if (rc == 0)
		rc = bsi_digest_final(ctx, out);
	bsi_digest_free(ctx);
	return rc;
}

bool bsi_digest_valid(const char *s)
{
	if (!s || strncmp(s, BSI_DIGEST_PREFIX, 7) != 0 || strlen(s) != BSI_DIGEST_STRLEN)
		return false;
	for (s += 7; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}
