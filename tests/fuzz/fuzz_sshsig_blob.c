/*
 * fuzz_sshsig_blob.c - libFuzzer target: SSHSIG blobs that are structurally
 * valid and really signed, so the fuzzer spends its time on the fields deep
 * inside (namespace, reserved, hash, signature type and length) instead of
 * on base64 and framing.
 *
 * The input describes a blob:
 *
 *   byte 0      flags: 1 sign the other digest (sha256 <-> sha512),
 *               2 flip a bit of the signature, 4 sign with another key,
 *               8 armor on one line instead of ssh-keygen's 70 columns
 *               (refused: only ssh-keygen's exact armor is accepted)
 *   then fields [len:1][len bytes] in blob order, each optional (the input
 *   may end anywhere; a missing field takes the valid default):
 *     magic, version (raw bytes), key type, key, bytes appended inside the
 *     key blob, namespace, reserved, hash name, signature type, signature
 *     (replaces the real one), bytes appended inside the signature blob
 *   then the rest: bytes appended after the signature blob.
 *
 * The harness signs "SSHSIG" ns reserved hash H(payload) with a fixed key
 * (the fields as written, so the signature is genuine), armors the blob and
 * calls bsi_sshsig_verify for namespace "git".  Oracle, both directions:
 * bsi accepts exactly when the blob is a well-formed genuine signature
 * (magic, version 1, ssh-ed25519 key and signature types, 32-byte key,
 * 64-byte signature, no trailing bytes, namespace "git", hash sha512 or
 * sha256 and signed with that hash, signed by the key it names: a fixed
 * key, or with flag 4 another fixed one), with an empty reserved field (as
 * ssh-keygen writes it) and armored as ssh-keygen does (not flag 8), and
 * then returns that key.
 */
#include "error.h"
#include "sshsig.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define need(c)                                                                            \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "fuzz_sshsig_blob: %s (rc %d: %s)\n", #c, rc,      \
				bsi_error_message());                                      \
			abort();                                                           \
		}                                                                          \
	} while (0)

static const char payload[] = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
			      "author A <a@example.org> 1700000000 +0000\n\nfuzz\n";

typedef struct {
	uint8_t *p;
	size_t len, cap;
} buf;

static bool add(buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = (b->len + n) * 2 + 64;
		uint8_t *q = realloc(b->p, cap);

		if (!q)
			return false;
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return true;
}

static bool add_u32(buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	return add(b, x, 4);
}

static bool add_str(buf *b, const void *p, size_t n)
{
	return add_u32(b, (uint32_t)n) && add(b, p, n);
}

typedef struct {
	const uint8_t *p;
	size_t n;
	bool given;
} field;

/* Next [len][bytes] field of the input, or the default when it has ended. */
static field next_field(const uint8_t **in, size_t *left, const void *def, size_t def_n)
{
	field f = {def, def_n, false};
	size_t n;

	if (*left == 0)
		return f;
	n = (*in)[0];
	(*in)++;
	(*left)--;
	if (n > *left)
		n = *left;
	f.p = *in;
	f.n = n;
	f.given = true;
	*in += n;
	*left -= n;
	return f;
}

static bool field_is(field f, const char *s)
{
	return f.n == strlen(s) && memcmp(f.p, s, f.n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pk[32], sk[64], pk2[32], sk2[64];
	static bool keys;
	static const uint8_t version1[4] = {0, 0, 0, 1};
	const uint8_t *in = data;
	size_t left = size;
	uint8_t flags = 0, digest[64], sig[64], out[32];
	field magic, version, ktype, key, ktrail, ns, reserved, hash, stype, sigf, strail;
	bool sha256, expect;
	buf tbs = {0}, kb = {0}, sb = {0}, blob = {0};
	char *armored = NULL;
	int rc = 0;

	if (!keys) {
		uint8_t seed[32];

		if (sodium_init() < 0)
			abort();
		memset(seed, 1, sizeof(seed));
		crypto_sign_seed_keypair(pk, sk, seed);
		memset(seed, 2, sizeof(seed));
		crypto_sign_seed_keypair(pk2, sk2, seed);
		keys = true;
	}
	if (left) {
		flags = in[0];
		in++;
		left--;
	}
	magic = next_field(&in, &left, "SSHSIG", 6);
	version = next_field(&in, &left, version1, 4);
	ktype = next_field(&in, &left, "ssh-ed25519", 11);
	key = next_field(&in, &left, pk, 32);
	ktrail = next_field(&in, &left, "", 0);
	ns = next_field(&in, &left, "git", 3);
	reserved = next_field(&in, &left, "", 0);
	hash = next_field(&in, &left, "sha512", 6);
	stype = next_field(&in, &left, "ssh-ed25519", 11);
	sigf = next_field(&in, &left, NULL, 0);
	strail = next_field(&in, &left, "", 0);

	/* the signature over the fields as written */
	sha256 = field_is(hash, "sha256");
	if (sha256 != ((flags & 1) != 0))
		crypto_hash_sha256(digest, (const uint8_t *)payload, sizeof(payload) - 1);
	else
		crypto_hash_sha512(digest, (const uint8_t *)payload, sizeof(payload) - 1);
	if (!add(&tbs, "SSHSIG", 6) || !add_str(&tbs, ns.p, ns.n) ||
	    !add_str(&tbs, reserved.p, reserved.n) || !add_str(&tbs, hash.p, hash.n) ||
	    !add_str(&tbs, digest, sha256 != ((flags & 1) != 0) ? 32 : 64))
		goto done;
	crypto_sign_detached(sig, NULL, tbs.p, tbs.len, flags & 4 ? sk2 : sk);
	if (flags & 2)
		sig[flags >> 4 & 0xf] ^= 0x10;

	if (!add_str(&kb, ktype.p, ktype.n) || !add_str(&kb, key.p, key.n) ||
	    !add(&kb, ktrail.p, ktrail.n))
		goto done;
	if (!add_str(&sb, stype.p, stype.n) ||
	    !(sigf.given ? add_str(&sb, sigf.p, sigf.n) : add_str(&sb, sig, sizeof(sig))) ||
	    !add(&sb, strail.p, strail.n))
		goto done;
	if (!add(&blob, magic.p, magic.n) || !add(&blob, version.p, version.n) ||
	    !add_str(&blob, kb.p, kb.len) || !add_str(&blob, ns.p, ns.n) ||
	    !add_str(&blob, reserved.p, reserved.n) || !add_str(&blob, hash.p, hash.n) ||
	    !add_str(&blob, sb.p, sb.len) || !add(&blob, in, left))
		goto done;

	/* armor like ssh-keygen: BEGIN, base64 in 70 columns (or one line), END */
	{
		size_t b64n = sodium_base64_ENCODED_LEN(blob.len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = malloc(b64n), *w;
		size_t i, n;

		armored = malloc(b64n + b64n / 70 + 80);
		if (!b64 || !armored) {
			free(b64);
			goto done;
		}
		sodium_bin2base64(b64, b64n, blob.p, blob.len, sodium_base64_VARIANT_ORIGINAL);
		n = strlen(b64);
		w = armored + sprintf(armored, "-----BEGIN SSH SIGNATURE-----\n");
		for (i = 0; i < n; i += (flags & 8) ? n : 70) {
			size_t k = (flags & 8) || n - i < 70 ? n - i : 70;

			memcpy(w, b64 + i, k);
			w += k;
			*w++ = '\n';
		}
		w += sprintf(w, "-----END SSH SIGNATURE-----\n");
		free(b64);
		rc = bsi_sshsig_verify(out, armored, (size_t)(w - armored), payload,
				       sizeof(payload) - 1, "git");
	}

	expect = field_is(magic, "SSHSIG") && version.n == 4 && memcmp(version.p, version1, 4) == 0 &&
		 field_is(ktype, "ssh-ed25519") && key.n == 32 &&
		 memcmp(key.p, flags & 4 ? pk2 : pk, 32) == 0 && ktrail.n == 0 &&
		 field_is(ns, "git") && reserved.n == 0 && !(flags & 8) &&
		 (sha256 || field_is(hash, "sha512")) && !(flags & 1) &&
		 !(flags & 2) && field_is(stype, "ssh-ed25519") &&
		 !sigf.given && strail.n == 0 && left == 0;
	/* a given signature or key that happens to equal the genuine one */
	if (!expect && sigf.given && sigf.n == 64 && memcmp(sigf.p, sig, 64) == 0 &&
	    !(flags & 2))
		expect = field_is(magic, "SSHSIG") && version.n == 4 &&
			 memcmp(version.p, version1, 4) == 0 && field_is(ktype, "ssh-ed25519") &&
			 key.n == 32 && memcmp(key.p, flags & 4 ? pk2 : pk, 32) == 0 &&
			 ktrail.n == 0 && field_is(ns, "git") && reserved.n == 0 && !(flags & 8) &&
			 (sha256 || field_is(hash, "sha512")) && !(flags & 1) &&
			 field_is(stype, "ssh-ed25519") && strail.n == 0 && left == 0;
	if (expect) {
		need(rc == 0);
		need(memcmp(out, key.p, 32) == 0);
	} else {
		need(rc == BSI_ETRUST || rc == BSI_EFAIL);
		need(bsi_error_message()[0] != '\0');
	}
done:
	free(tbs.p);
	free(kb.p);
	free(sb.p);
	free(blob.p);
	free(armored);
	return 0;
}
