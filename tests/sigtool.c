/* sigtool.c - SSHSIG signing for tests and benchmarks; see sigtool.h. */
#include "sigtool.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not Check assertions: sigtool also serves benchmarks that run outside a
 * Check suite.  Inside a suite, abort() fails the test like an assertion. */
#define need(cond, ...)                                                                            \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "sigtool:%d: ", __LINE__);                                 \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

typedef struct {
	uint8_t *p;
	size_t len, cap;
} buf;

static void buf_add(buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		need(b->p != NULL, "out of memory");
	}
	if (n) /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): cap > 0 => p */
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_u32(buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	buf_add(b, x, 4);
}

static void buf_str(buf *b, const void *p, size_t n)
{
	buf_u32(b, (uint32_t)n);
	buf_add(b, p, n);
}

static void buf_zeros(buf *b, size_t n)
{
	while (n--)
		buf_add(b, "", 1);
}

void sigtool_keypair(uint8_t pk[32], uint8_t sk[64])
{
	need((sodium_init()) >= (0), "libsodium failed to initialise");
	crypto_sign_keypair(pk, sk);
}

static uint32_t rd_u32(const uint8_t **p, const uint8_t *end)
{
	uint32_t v;

	need(end - *p >= 4, "truncated OpenSSH key");
	v = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 | (*p)[3];
	*p += 4;
	return v;
}

static const uint8_t *rd_str(const uint8_t **p, const uint8_t *end, size_t *n)
{
	const uint8_t *s;

	*n = rd_u32(p, end);
	need((size_t)(end - *p) >= *n, "truncated OpenSSH key");
	s = *p;
	*p += *n;
	return s;
}

void sigtool_load_key(const char *path, uint8_t pk[32], uint8_t sk[64])
{
	static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
	static const char end_marker[] = "-----END OPENSSH PRIVATE KEY-----";
	FILE *f = fopen(path, "r");
	char text[8192], *b, *e;
	size_t n, blen, l;
	uint8_t bin[8192];
	const uint8_t *p, *end, *s, *priv, *pend;

	need(f != NULL, "cannot open %s", path);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	b = strstr(text, begin);
	e = strstr(text, end_marker);
	need(b && e && e > b, "check failed");
	b += sizeof(begin) - 1;
	need((sodium_base642bin(bin, sizeof(bin), b, (size_t)(e - b), " \r\n\t", &blen, NULL,
	                        sodium_base64_VARIANT_ORIGINAL)) == (0),
	     "bad base64");
	p = bin;
	end = bin + blen;
	need(blen > 15 && memcmp(p, "openssh-key-v1\0", 15) == 0, "check failed");
	p += 15;
	s = rd_str(&p, end, &l);
	need(l == 4 && memcmp(s, "none", 4) == 0, "%s is encrypted", path);
	rd_str(&p, end, &l); /* kdfname */
	rd_str(&p, end, &l); /* kdfoptions */
	need((rd_u32(&p, end)) == (1), "check failed");
	rd_str(&p, end, &l); /* public key blob */
	priv = rd_str(&p, end, &l);
	pend = priv + l;
	rd_u32(&priv, pend);
	rd_u32(&priv, pend);
	s = rd_str(&priv, pend, &l);
	need(l == 11 && memcmp(s, "ssh-ed25519", 11) == 0, "%s is not ed25519", path);
	s = rd_str(&priv, pend, &l);
	need((l) == (32), "check failed");
	memcpy(pk, s, 32);
	s = rd_str(&priv, pend, &l);
	need((l) == (64), "check failed");
	memcpy(sk, s, 64);
	need(memcmp(sk + 32, pk, 32) == 0, "check failed");
}

char *sigtool_pubkey_line(const uint8_t pk[32])
{
	buf b = {0};
	char *line;
	size_t cap;

	buf_str(&b, "ssh-ed25519", 11);
	buf_str(&b, pk, 32);
	cap = 12 + sodium_base64_ENCODED_LEN(b.len, sodium_base64_VARIANT_ORIGINAL);
	line = malloc(cap);
	need(line != NULL, "out of memory");
	memcpy(line, "ssh-ed25519 ", 12);
	sodium_bin2base64(line + 12, cap - 12, b.p, b.len, sodium_base64_VARIANT_ORIGINAL);
	free(b.p);
	return line;
}

uint8_t *sigtool_blob(size_t *out_len, const sigtool_spec *spec, const uint8_t sk[64],
                      const void *payload, size_t len)
{
	static const sigtool_spec defaults = {0};
	const sigtool_spec *sp = spec ? spec : &defaults;
	const char *magic = sp->magic ? sp->magic : "SSHSIG";
	const char *key_type = sp->key_type ? sp->key_type : "ssh-ed25519";
	const char *ns = sp->ns ? sp->ns : "git";
	const char *signed_ns = sp->signed_ns ? sp->signed_ns : ns;
	const char *reserved = sp->reserved ? sp->reserved : "";
	const char *signed_reserved = sp->signed_reserved ? sp->signed_reserved : reserved;
	const char *hash = sp->hash ? sp->hash : "sha512";
	const char *signed_hash = sp->signed_hash ? sp->signed_hash : hash;
	const char *sig_type = sp->sig_type ? sp->sig_type : "ssh-ed25519";
	size_t key_len = sp->key_len ? sp->key_len : 32, sig_len = sp->sig_len ? sp->sig_len : 64;
	uint8_t digest[64], sig[64];
	size_t digest_len;
	buf tbs = {0}, key = {0}, sigb = {0}, out = {0};

	need((sodium_init()) >= (0), "libsodium failed to initialise");
	if (strcmp(signed_hash, "sha256") == 0) {
		crypto_hash_sha256(digest, payload, len);
		digest_len = 32;
	} else {
		crypto_hash_sha512(digest, payload, len);
		digest_len = 64;
	}
	buf_add(&tbs, "SSHSIG", 6);
	buf_str(&tbs, signed_ns, strlen(signed_ns));
	buf_str(&tbs, signed_reserved, strlen(signed_reserved));
	buf_str(&tbs, signed_hash, strlen(signed_hash));
	buf_str(&tbs, digest, digest_len);
	crypto_sign_detached(sig, NULL, tbs.p, tbs.len, sk);

	buf_str(&key, key_type, strlen(key_type));
	buf_u32(&key, (uint32_t)key_len);
	buf_add(&key, sk + 32, key_len < 32 ? key_len : 32);
	buf_zeros(&key, key_len > 32 ? key_len - 32 : 0);
	buf_zeros(&key, sp->key_trailing);

	buf_str(&sigb, sig_type, strlen(sig_type));
	buf_u32(&sigb, (uint32_t)sig_len);
	buf_add(&sigb, sig, sig_len < 64 ? sig_len : 64);
	buf_zeros(&sigb, sig_len > 64 ? sig_len - 64 : 0);
	buf_zeros(&sigb, sp->sig_trailing);

	buf_add(&out, magic, strlen(magic));
	buf_u32(&out, sp->version ? sp->version : 1);
	buf_str(&out, key.p, key.len);
	buf_str(&out, ns, strlen(ns));
	buf_str(&out, reserved, strlen(reserved));
	buf_str(&out, hash, strlen(hash));
	buf_str(&out, sigb.p, sigb.len);
	buf_zeros(&out, sp->outer_trailing);
	free(tbs.p);
	free(key.p);
	free(sigb.p);
	*out_len = out.len;
	return out.p;
}

char *sigtool_armor(const uint8_t *blob, size_t len)
{
	size_t b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), i;
	char *b64 = malloc(b64len);
	buf out = {0};

	need(b64 != NULL, "out of memory");
	sodium_bin2base64(b64, b64len, blob, len, sodium_base64_VARIANT_ORIGINAL);
	buf_add(&out, "-----BEGIN SSH SIGNATURE-----\n", 30);
	for (i = 0; b64[i]; i += 70) {
		size_t n = strlen(b64 + i) < 70 ? strlen(b64 + i) : 70;

		buf_add(&out, b64 + i, n);
		buf_add(&out, "\n", 1);
		if (n < 70)
			break;
	}
	buf_add(&out, "-----END SSH SIGNATURE-----\n", 29); /* with the NUL */
	free(b64);
	return (char *)out.p;
}

uint8_t *sigtool_dearmor(const char *armored, size_t *out_len)
{
	const char *b = strstr(armored, "-----BEGIN SSH SIGNATURE-----");
	const char *e = strstr(armored, "-----END SSH SIGNATURE-----");
	size_t cap;
	uint8_t *bin;

	need(b && e && e > b, "check failed");
	b += 29;
	cap = (size_t)(e - b);
	bin = malloc(cap + 1);
	need(bin != NULL, "out of memory");
	need((sodium_base642bin(bin, cap + 1, b, (size_t)(e - b), " \r\n\t", out_len, NULL,
	                        sodium_base64_VARIANT_ORIGINAL)) == (0),
	     "bad base64");
	return bin;
}

char *sigtool_sign(const uint8_t sk[64], const void *payload, size_t len, const char *ns)
{
	sigtool_spec spec = {0};
	size_t blen;
	uint8_t *blob;
	char *armored;

	spec.ns = ns;
	blob = sigtool_blob(&blen, &spec, sk, payload, len);
	armored = sigtool_armor(blob, blen);
	free(blob);
	return armored;
}

char *sigtool_commit_add_sig(const char *raw, size_t len, const char *armored)
{
	const char *blank = NULL, *p;
	size_t hdr_len;
	buf out = {0};

	for (p = raw; p < raw + len; p++) {
		if (*p == '\n' && p + 1 < raw + len && p[1] == '\n') {
			blank = p + 1;
			break;
		}
	}
	hdr_len = blank ? (size_t)(blank - raw) : len;
	buf_add(&out, raw, hdr_len);
	buf_add(&out, "gpgsig ", 7);
	for (p = armored; *p; p++) {
		buf_add(&out, p, 1);
		if (*p == '\n' && p[1] != '\0')
			buf_add(&out, " ", 1);
	}
	buf_add(&out, raw + hdr_len, len - hdr_len);
	buf_add(&out, "", 1);
	return (char *)out.p;
}

char *sigtool_commit_sign(const uint8_t sk[64], const char *raw, size_t len)
{
	char *armored = sigtool_sign(sk, raw, len, "git");
	char *signed_raw = sigtool_commit_add_sig(raw, len, armored);

	free(armored);
	return signed_raw;
}

/* A tree holding .bsi/signers (blob signers) and counter (blob counter). */
static void history_tree(git_oid *out, git_odb *odb, const git_oid *bsi_tree, const char *counter)
{
	git_oid blob;
	buf t = {0};

	need((git_odb_write(&blob, odb, counter, strlen(counter), GIT_OBJECT_BLOB)) == (0),
	     "cannot write to the object database");
	buf_add(&t, "40000 .bsi", 11);
	buf_add(&t, bsi_tree->id, GIT_OID_RAWSZ);
	buf_add(&t, "100644 counter", 15);
	buf_add(&t, blob.id, GIT_OID_RAWSZ);
	need((git_odb_write(out, odb, t.p, t.len, GIT_OBJECT_TREE)) == (0),
	     "cannot write to the object database");
	free(t.p);
}

void sigtool_history(git_oid *out, git_repository *repo, const uint8_t sk[64],
                     const git_oid *parent, size_t n, const char *signers_text)
{
	git_odb *odb = NULL;
	git_oid signers_blob, bsi_tree, tree, prev;
	buf t = {0};
	size_t i;
	bool have_prev = parent != NULL;

	need((git_repository_odb(&odb, repo)) == (0), "cannot write to the object database");
	need((git_odb_write(&signers_blob, odb, signers_text, strlen(signers_text),
	                    GIT_OBJECT_BLOB)) == (0),
	     "cannot write to the object database");
	buf_add(&t, "100644 signers", 15);
	buf_add(&t, signers_blob.id, GIT_OID_RAWSZ);
	need((git_odb_write(&bsi_tree, odb, t.p, t.len, GIT_OBJECT_TREE)) == (0),
	     "cannot write to the object database");
	free(t.p);
	if (parent)
		prev = *parent;
	for (i = 0; i < n; i++) {
		char counter[32], raw[512], thex[41], phex[41], *signed_raw;
		int len;

		snprintf(counter, sizeof(counter), "%zu\n", i);
		history_tree(&tree, odb, &bsi_tree, counter);
		git_oid_tostr(thex, sizeof(thex), &tree);
		if (have_prev)
			git_oid_tostr(phex, sizeof(phex), &prev);
		len = snprintf(raw, sizeof(raw),
		               "tree %s\n%s%s%s"
		               "author Bench <b@example.org> %zu +0000\n"
		               "committer Bench <b@example.org> %zu +0000\n\ncommit %zu\n",
		               thex, have_prev ? "parent " : "", have_prev ? phex : "",
		               have_prev ? "\n" : "", 1700000000 + i, 1700000000 + i, i);
		signed_raw = sigtool_commit_sign(sk, raw, (size_t)len);
		need((git_odb_write(&prev, odb, signed_raw, strlen(signed_raw),
		                    GIT_OBJECT_COMMIT)) == (0),
		     "cannot write to the object database");
		have_prev = true;
		free(signed_raw);
	}
	*out = prev;
	git_odb_free(odb);
}
