/*
 * sshsig.c - SSHSIG verification for hostile input.
 *
 * The blob format is OpenSSH's PROTOCOL.sshsig.  Parsing goes through a
 * cursor that refuses to read past its end; every field is checked in the
 * order it appears, so the first message names the first defect.
 */
#include "sshsig.h"

#include "error.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char armor_begin[] = "-----BEGIN SSH SIGNATURE-----";
static const char armor_end[] = "-----END SSH SIGNATURE-----";
static const char magic[6] = {'S', 'S', 'H', 'S', 'I', 'G'};
static const char ed25519_type[] = "ssh-ed25519";

typedef struct {
	const uint8_t *p;
	size_t len;
} span;

static bool span_eq(span s, const char *str)
{
	size_t n = strlen(str);

	return s.len == n && memcmp(s.p, str, n) == 0;
}

/* Copy at most 48 bytes of untrusted text into dst for a message, replacing
 * anything that is not printable ASCII. */
static void printable(char dst[64], span s)
{
	size_t i, n = s.len > 48 ? 48 : s.len, j = 0;

	for (i = 0; i < n; i++)
		/* NOLINTNEXTLINE(bugprone-narrowing-conversions): '?' and a byte < 0x7f fit */
		dst[j++] = (s.p[i] >= 0x20 && s.p[i] < 0x7f && s.p[i] != '\'') ? (char)s.p[i] : '?';
	if (n < s.len) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
}

static int read_u32(span *s, const char *field, uint32_t *out)
{
	if (s->len < 4)
		return bsi_error_set(BSI_ETRUST, "SSHSIG: %s is truncated (%zu of 4 bytes)", field,
		                     s->len);
	*out = (uint32_t)s->p[0] << 24 | (uint32_t)s->p[1] << 16 | (uint32_t)s->p[2] << 8 |
	       (uint32_t)s->p[3];
	s->p += 4;
	s->len -= 4;
	return 0;
}

/* An SSH string: uint32 big-endian length, then that many bytes, which must
 * all be present. */
static int read_string(span *s, const char *field, span *out)
{
	uint32_t n = 0;

	if (read_u32(s, field, &n) < 0)
		return bsi_error_set(BSI_ETRUST, "SSHSIG: %s is missing (length truncated)", field);
	if (n > s->len)
		return bsi_error_set(BSI_ETRUST, "SSHSIG: %s declares %u bytes but only %zu remain",
		                     field, n, s->len);
	out->p = s->p;
	out->len = n;
	s->p += n;
	s->len -= n;
	return 0;
}

static int no_trailing(span s, const char *where)
{
	if (s.len != 0)
		return bsi_error_set(BSI_ETRUST, "SSHSIG: %zu trailing bytes after %s", s.len,
		                     where);
	return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void bsi_sshsig_keyblob(uint8_t out[BSI_SSHSIG_KEYBLOB_LEN], const uint8_t key[32])
{
	put_u32(out, 11);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): a binary blob */
	memcpy(out + 4, ed25519_type, 11);
	put_u32(out + 15, 32);
	memcpy(out + 19, key, 32);
}

void bsi_sshsig_fingerprint(char out[BSI_SSHSIG_FINGERPRINT_SIZE], const uint8_t key[32])
{
	uint8_t blob[BSI_SSHSIG_KEYBLOB_LEN], digest[crypto_hash_sha256_BYTES];

	bsi_sshsig_keyblob(blob, key);
	crypto_hash_sha256(digest, blob, sizeof(blob));
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): base64 terminates it */
	memcpy(out, "SHA256:", 7);
	sodium_bin2base64(out + 7, BSI_SSHSIG_FINGERPRINT_SIZE - 7, digest, sizeof(digest),
	                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
}

int bsi_sshsig_parse_keyblob(uint8_t out[32], const uint8_t *blob, size_t len)
{
	span s = {blob, len}, type, key;
	char shown[64];
	int rc;

	if ((rc = read_string(&s, "public key type", &type)) < 0)
		return rc;
	if (!span_eq(type, ed25519_type)) {
		printable(shown, type);
		return bsi_error_set(BSI_ETRUST,
		                     "key type '%s' is not supported (only ssh-ed25519 is)", shown);
	}
	if ((rc = read_string(&s, "ssh-ed25519 public key", &key)) < 0)
		return rc;
	if (key.len != crypto_sign_PUBLICKEYBYTES)
		return bsi_error_set(
		    BSI_ETRUST, "SSHSIG: ssh-ed25519 public key is %zu bytes, not 32", key.len);
	if ((rc = no_trailing(s, "the ssh-ed25519 public key")) < 0)
		return rc;
	memcpy(out, key.p, 32);
	return 0;
}

/* ssh-keygen wraps the armored base64 at this many characters. */
#define ARMOR_LINE 70

/* The armor ssh-keygen writes for blob (OpenSSH's sshsig_armor): the BEGIN
 * line, the base64 in lines of ARMOR_LINE characters, the END line, each
 * ended by one LF.  NUL-terminated, malloc'd; NULL when out of memory. */
static char *armor(const uint8_t *blob, size_t len, size_t *out_len)
{
	size_t b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	size_t chars = b64len - 1, lines = (chars + ARMOR_LINE - 1) / ARMOR_LINE;
	size_t n = 0, i;
	char *b64 = malloc(b64len);
	char *out = malloc(sizeof(armor_begin) + chars + lines + sizeof(armor_end) + 1);

	if (b64 == NULL || out == NULL) {
		free(b64);
		free(out);
		return NULL;
	}
	sodium_bin2base64(b64, b64len, blob, len, sodium_base64_VARIANT_ORIGINAL);
	memcpy(out, armor_begin, sizeof(armor_begin) - 1);
	n = sizeof(armor_begin) - 1;
	out[n++] = '\n';
	for (i = 0; i < chars; i += ARMOR_LINE) {
		size_t k = chars - i < ARMOR_LINE ? chars - i : ARMOR_LINE;

		memcpy(out + n, b64 + i, k);
		n += k;
		out[n++] = '\n';
	}
	memcpy(out + n, armor_end, sizeof(armor_end) - 1);
	n += sizeof(armor_end) - 1;
	out[n++] = '\n';
	out[n] = '\0';
	free(b64);
	*out_len = n;
	return out;
}

/* 1-based number of the line holding offset off of text. */
static size_t line_of(const char *text, size_t off)
{
	size_t line = 1;

	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

/*
 * Decode the armored signature into a malloc'd blob, accepting only the
 * armor exactly as ssh-keygen writes it (armor() above), byte for byte.
 * ssh-keygen itself reads much more: CR, blank lines, any line length,
 * whitespace or text after the END line.  So `git verify-commit` accepts
 * every such re-wrapping of one signature, and each would give a signed
 * commit another id, just as authentic (a "twin"), which a hostile server
 * could get a device to trust in place of the real commit.  Hence: decode
 * leniently, armor again, compare.
 */
static int dearmor(uint8_t **out, size_t *out_len, const char *text, size_t len)
{
	const char *body, *body_end, *after;
	size_t cap, n = 0, canon_len = 0, i;
	const char *b64_end = NULL;
	uint8_t *bin = NULL;
	char *canon = NULL;
	int rc = 0;

	if (len > BSI_SSHSIG_MAX_ARMORED)
		return bsi_error_set(BSI_ETRUST,
		                     "SSHSIG: armored signature is %zu bytes (limit %d)", len,
		                     BSI_SSHSIG_MAX_ARMORED);
	if (len < sizeof(armor_begin) - 1 ||
	    memcmp(text, armor_begin, sizeof(armor_begin) - 1) != 0)
		return bsi_error_set(BSI_ETRUST, "SSHSIG: does not start with '%s'", armor_begin);
	body = text + sizeof(armor_begin) - 1;
	body_end = memmem(body, len - (size_t)(body - text), armor_end, sizeof(armor_end) - 1);
	if (body_end == NULL)
		return bsi_error_set(BSI_ETRUST, "SSHSIG: no '%s' line", armor_end);
	for (after = body_end + sizeof(armor_end) - 1; after < text + len; after++)
		if (*after != ' ' && *after != '\t' && *after != '\r' && *after != '\n')
			return bsi_error_set(BSI_ETRUST, "SSHSIG: unexpected text after '%s'",
			                     armor_end);
	cap = (size_t)(body_end - body) / 4 * 3 + 3;
	if ((bin = malloc(cap)) == NULL) {
		rc = bsi_error_set(BSI_EFAIL, "SSHSIG: out of memory");
		goto done;
	}
	if (sodium_base642bin(bin, cap, body, (size_t)(body_end - body), " \t\r\n", &n, &b64_end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    b64_end != body_end) {
		rc = bsi_error_set(BSI_ETRUST, "SSHSIG: armored body is not valid base64");
		goto done;
	}
	if ((canon = armor(bin, n, &canon_len)) == NULL) {
		rc = bsi_error_set(BSI_EFAIL, "SSHSIG: out of memory");
		goto done;
	}
	if (canon_len != len || memcmp(canon, text, len) != 0) {
		for (i = 0; i < len && i < canon_len && canon[i] == text[i]; i++)
			;
		rc = bsi_error_set(BSI_ETRUST,
		                   "SSHSIG: the armor differs at line %zu from the form ssh-keygen "
		                   "writes (base64 in lines of %d characters, LF line ends, nothing "
		                   "after the END line); a re-wrapped signature is refused, so one "
		                   "signed commit has one id",
		                   line_of(text, i), ARMOR_LINE);
		goto done;
	}
	*out = bin;
	*out_len = n;
	bin = NULL;
done:
	free(bin);
	free(canon);
	return rc;
}

/* "SSHSIG" string(ns) string(reserved) string(hash_alg) string(H(payload)):
 * the bytes the Ed25519 signature covers, with reserved empty as OpenSSH
 * builds them (it never signs or verifies over the blob's reserved field). */
static int signed_data(uint8_t **out, size_t *out_len, span ns, span hash_alg,
                       const uint8_t *digest, size_t digest_len)
{
	size_t n = sizeof(magic) + 16 + ns.len + hash_alg.len + digest_len;
	uint8_t *buf = malloc(n), *w = buf;

	if (buf == NULL)
		return bsi_error_set(BSI_EFAIL, "SSHSIG: out of memory");
	memcpy(w, magic, sizeof(magic));
	w += sizeof(magic);
	put_u32(w, (uint32_t)ns.len);
	memcpy(w + 4, ns.p, ns.len);
	w += 4 + ns.len;
	put_u32(w, 0); /* reserved */
	w += 4;
	put_u32(w, (uint32_t)hash_alg.len);
	memcpy(w + 4, hash_alg.p, hash_alg.len);
	w += 4 + hash_alg.len;
	put_u32(w, (uint32_t)digest_len);
	memcpy(w + 4, digest, digest_len);
	*out = buf;
	*out_len = n;
	return 0;
}

/*
 * The armor must be ssh-keygen's, byte for byte (dearmor()).  Fields are
 * then checked in blob order: magic, version (1; OpenSSH also takes 0),
 * public key (type, size, trailing), namespace (exactly ns), reserved
 * (empty, as ssh-keygen writes it), hash (sha512/sha256), signature (type
 * ssh-ed25519, 64 bytes, trailing), outer trailing bytes, then the Ed25519
 * verification itself, which libsodium does strictly (canonical S, no
 * small-order points).  Neither the version nor the reserved field is
 * covered by the signature: accepting a second value of either would make
 * a second form of one signature, so each admits exactly one.
 */
int bsi_sshsig_verify(uint8_t out[32], const char *armored, size_t len, const void *payload,
                      size_t payload_len, const char *ns)
{
	uint8_t *blob = NULL, *msg = NULL, key[32], digest[crypto_hash_sha512_BYTES];
	size_t blob_len = 0, msg_len = 0, digest_len;
	span s, keyblob, sig_ns, reserved, hash_alg, sigblob, sigtype, sig;
	char fp[BSI_SSHSIG_FINGERPRINT_SIZE], shown[64];
	uint32_t version = 0;
	int rc;

	if (sodium_init() < 0)
		return bsi_error_set(BSI_EFAIL, "libsodium failed to initialise");
	if ((rc = dearmor(&blob, &blob_len, armored, len)) < 0)
		goto done;
	s.p = blob;
	s.len = blob_len;
	if (s.len < sizeof(magic) || memcmp(s.p, magic, sizeof(magic)) != 0) {
		rc = bsi_error_set(BSI_ETRUST,
		                   "SSHSIG: bad magic (blob does not start with SSHSIG)");
		goto done;
	}
	s.p += sizeof(magic);
	s.len -= sizeof(magic);
	if ((rc = read_u32(&s, "version", &version)) < 0)
		goto done;
	if (version != 1) {
		rc = bsi_error_set(BSI_ETRUST, "SSHSIG: version %u is not supported (only 1 is)",
		                   version);
		goto done;
	}
	if ((rc = read_string(&s, "public key", &keyblob)) < 0)
		goto done;
	if ((rc = bsi_sshsig_parse_keyblob(key, keyblob.p, keyblob.len)) < 0) {
		bsi_error_wrap("SSHSIG public key");
		goto done;
	}
	bsi_sshsig_fingerprint(fp, key);
	if ((rc = read_string(&s, "namespace", &sig_ns)) < 0)
		goto done;
	if (!span_eq(sig_ns, ns)) {
		printable(shown, sig_ns);
		rc = bsi_error_set(BSI_ETRUST,
		                   "SSHSIG by %s: namespace is '%s', expected '%s' (a signature "
		                   "made for another purpose)",
		                   fp, shown, ns);
		goto done;
	}
	if ((rc = read_string(&s, "reserved", &reserved)) < 0)
		goto done;
	if (reserved.len != 0) {
		rc = bsi_error_set(BSI_ETRUST,
		                   "SSHSIG by %s: the reserved field holds %zu bytes; ssh-keygen "
		                   "leaves it empty, and the signature never covers it",
		                   fp, reserved.len);
		goto done;
	}
	if ((rc = read_string(&s, "hash algorithm", &hash_alg)) < 0)
		goto done;
	if (span_eq(hash_alg, "sha512")) {
		crypto_hash_sha512(digest, payload, payload_len);
		digest_len = crypto_hash_sha512_BYTES;
	} else if (span_eq(hash_alg, "sha256")) {
		crypto_hash_sha256(digest, payload, payload_len);
		digest_len = crypto_hash_sha256_BYTES;
	} else {
		printable(shown, hash_alg);
		rc = bsi_error_set(BSI_ETRUST,
		                   "SSHSIG by %s: hash algorithm '%s' is not supported (sha512 "
		                   "or sha256)",
		                   fp, shown);
		goto done;
	}
	if ((rc = read_string(&s, "signature", &sigblob)) < 0)
		goto done;
	if ((rc = no_trailing(s, "the signature blob")) < 0)
		goto done;
	if ((rc = read_string(&sigblob, "signature type", &sigtype)) < 0)
		goto done;
	if (!span_eq(sigtype, ed25519_type)) {
		printable(shown, sigtype);
		rc = bsi_error_set(BSI_ETRUST,
		                   "SSHSIG by %s: signature type '%s' is not supported (only "
		                   "ssh-ed25519 is)",
		                   fp, shown);
		goto done;
	}
	if ((rc = read_string(&sigblob, "ssh-ed25519 signature", &sig)) < 0)
		goto done;
	if (sig.len != crypto_sign_BYTES) {
		rc = bsi_error_set(BSI_ETRUST, "SSHSIG by %s: signature is %zu bytes, not 64", fp,
		                   sig.len);
		goto done;
	}
	if ((rc = no_trailing(sigblob, "the ssh-ed25519 signature")) < 0)
		goto done;
	if ((rc = signed_data(&msg, &msg_len, sig_ns, hash_alg, digest, digest_len)) < 0)
		goto done;
	if (crypto_sign_verify_detached(sig.p, msg, msg_len, key) != 0) {
		rc = bsi_error_set(BSI_ETRUST,
		                   "SSHSIG by %s does not verify (content changed after signing, "
		                   "or a corrupted signature)",
		                   fp);
		goto done;
	}
	memcpy(out, key, 32);
	rc = 0;
done:
	free(blob);
	free(msg);
	return rc;
}
