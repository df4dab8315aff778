/* check_sshsig.c - SSHSIG verification against real ssh-keygen output and
 * hand-built malformed blobs. */
#include "error.h"
#include "sigtool.h"
#include "sshsig.h"
#include "testutil.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char payload[] = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nhello\n";
static uint8_t pk[32], sk[64];

static void setup(void)
{
	sigtool_keypair(pk, sk);
}

static void teardown(void)
{
	tu_cleanup();
}

/* Verify armored over payload with namespace git; return the code. */
static int verify(const char *armored, const char *data, uint8_t key[32])
{
	bsi_error_clear();
	return bsi_sshsig_verify(key, armored, strlen(armored), data, strlen(data), "git");
}

/* Build a blob from spec, armor it, and expect a refusal mentioning want. */
static void expect_refused(const sigtool_spec *spec, const char *want)
{
	size_t len;
	uint8_t *blob = sigtool_blob(&len, spec, sk, payload, strlen(payload)), key[32];
	char *armored = sigtool_armor(blob, len);

	ck_assert_int_eq(verify(armored, payload, key), BSI_ETRUST);
	ck_assert_msg(strstr(bsi_error_message(), want) != NULL, "message '%s' lacks '%s'",
	              bsi_error_message(), want);
	free(blob);
	free(armored);
}

START_TEST(test_sshsig_sigtool_roundtrip)
{
	char *armored = sigtool_sign(sk, payload, strlen(payload), "git");
	uint8_t key[32] = {0};

	ck_assert_int_eq(verify(armored, payload, key), 0);
	ck_assert_mem_eq(key, pk, 32);
	free(armored);
}
END_TEST

START_TEST(test_sshsig_sha256_accepted)
{
	sigtool_spec spec = {.hash = "sha256"};
	size_t len;
	uint8_t *blob = sigtool_blob(&len, &spec, sk, payload, strlen(payload)), key[32];
	char *armored = sigtool_armor(blob, len);

	ck_assert_int_eq(verify(armored, payload, key), 0);
	ck_assert_mem_eq(key, pk, 32);
	free(blob);
	free(armored);
}
END_TEST

/*
 * The reserved field is not covered by the signature: OpenSSH verifies
 * over an empty one whatever the blob holds, and ssh-keygen writes it
 * empty.  A filled one is refused either way: signed over itself (which
 * `git verify-commit` refuses, so bsi must too), or left over the empty
 * field (which git accepts: a second form of a genuine signature).
 */
START_TEST(test_sshsig_reserved_field_refused)
{
	sigtool_spec over_itself = {.reserved = "anything"};
	sigtool_spec twin = {.reserved = "anything", .signed_reserved = ""};

	expect_refused(&over_itself, "the reserved field holds 8 bytes");
	expect_refused(&twin, "the reserved field holds 8 bytes");
}
END_TEST

/* OpenSSH reads version 0 as well as 1, and the version is not signed:
 * version 0 would be a second form of a version-1 signature. */
START_TEST(test_sshsig_version_0_refused)
{
	size_t len;
	uint8_t *blob = sigtool_blob(&len, NULL, sk, payload, strlen(payload)), key[32];
	char *armored;

	blob[9] = 0; /* "SSHSIG" then uint32 1, big-endian */
	armored = sigtool_armor(blob, len);
	ck_assert_int_eq(verify(armored, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "version 0 is not supported"));
	free(blob);
	free(armored);
}
END_TEST

/* The Ed25519 scalar S plus the group order L verifies in OpenSSH (which
 * only checks S's top three bits) and is a second form of one signature;
 * libsodium refuses a non-canonical S. */
START_TEST(test_sshsig_non_canonical_signature_refused)
{
	static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	                                  0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	                                  0,    0,    0,    0,    0,    0,    0,    0,
	                                  0,    0,    0,    0,    0,    0,    0,    0x10};
	size_t len;
	uint8_t *blob = sigtool_blob(&len, NULL, sk, payload, strlen(payload)), key[32];
	char *armored;

	/* S is the last 32 bytes of the blob, little-endian */
	sodium_add(blob + len - 32, order, 32);
	ck_assert_int_eq(blob[len - 1] & 0xe0, 0); /* still passes OpenSSH's check */
	armored = sigtool_armor(blob, len);
	ck_assert_int_eq(verify(armored, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "does not verify"));
	free(blob);
	free(armored);
}
END_TEST

/* good with every LF replaced by eol and extra_after appended (malloc'd). */
static char *rewrap(const char *good, const char *eol, const char *extra_after)
{
	size_t n = strlen(good);
	char *out = malloc(3 * n + 64), *w = out;

	for (const char *p = good; *p; p++) {
		if (*p == '\n') {
			w += sprintf(w, "%s", eol);
			continue;
		}
		*w++ = *p;
	}
	strcpy(w, extra_after);
	return out;
}

/*
 * Every re-wrapping of a genuine signature that ssh-keygen (and so `git
 * verify-commit`) still reads is refused: base64 in other line lengths, a
 * blank line, CRLF, whitespace or a line after END, a missing last LF.
 * Each would give one signed commit a second id.
 */
START_TEST(test_sshsig_rewrapped_armor_refused)
{
	char *good = sigtool_sign(sk, payload, strlen(payload), "git"), *forms[8];
	const char *b64 = strchr(good, '\n') + 1, *end = strstr(good, "-----END");
	char joined[512];
	size_t i, nforms = 0, k = 0;
	uint8_t key[32];

	ck_assert_int_eq(verify(good, payload, key), 0);
	for (const char *p = b64; p < end; p++)
		if (*p != '\n')
			joined[k++] = *p;
	joined[k] = '\0';
	/* base64 in lines of 64 */
	ck_assert_uint_eq(k, 232);
	ck_assert_int_ge(asprintf(&forms[nforms++], "-----BEGIN SSH SIGNATURE-----\n%.64s\n%.64s\n"
	                                            "%.64s\n%s\n-----END SSH SIGNATURE-----\n",
	                          joined, joined + 64, joined + 128, joined + 192),
	                 0);
	/* base64 on one line */
	ck_assert_int_ge(asprintf(&forms[nforms++], "-----BEGIN SSH SIGNATURE-----\n%s\n"
	                                            "-----END SSH SIGNATURE-----\n",
	                          joined),
	                 0);
	forms[nforms++] = rewrap(good, "\r\n", "");                 /* CRLF */
	forms[nforms++] = rewrap(good, "\n", "\n");                 /* a blank line after END */
	forms[nforms++] = rewrap(good, "\n", "  \n");               /* spaces after END */
	ck_assert_int_ge(asprintf(&forms[nforms++], "%.*s", (int)strlen(good) - 1, good), 0);
	/* a blank line inside the base64 */
	ck_assert_int_ge(asprintf(&forms[nforms++], "%.*s\n%s", (int)(b64 - good), good, b64), 0);
	/* a space before a base64 line */
	ck_assert_int_ge(asprintf(&forms[nforms++], "%.*s %s", (int)(b64 - good), good, b64), 0);
	for (i = 0; i < nforms; i++) {
		ck_assert_msg(verify(forms[i], payload, key) == BSI_ETRUST, "form %zu accepted:\n%s",
		              i, forms[i]);
		ck_assert_msg(strstr(bsi_error_message(), "from the form ssh-keygen writes") != NULL,
		              "form %zu: %s", i, bsi_error_message());
		free(forms[i]);
	}
	free(good);
}
END_TEST

START_TEST(test_sshsig_accepts_ssh_keygen_signature)
{
	char *dir = tu_tmpdir(), path[4200], *armored, *fp_line;
	uint8_t kpk[32], ksk[64], key[32];
	char fp[BSI_SSHSIG_FINGERPRINT_SIZE];
	tu_result r;

	snprintf(path, sizeof(path), "%s/data", dir);
	tu_write(path, payload);
	tu_must("cd '%s' && ssh-keygen -q -t ed25519 -N '' -C t -f key && "
	        "ssh-keygen -q -Y sign -n git -f key data",
	        dir);
	snprintf(path, sizeof(path), "%s/key", dir);
	sigtool_load_key(path, kpk, ksk);
	snprintf(path, sizeof(path), "%s/data.sig", dir);
	armored = tu_read(path);
	ck_assert_ptr_nonnull(armored);
	ck_assert_int_eq(verify(armored, payload, key), 0);
	ck_assert_mem_eq(key, kpk, 32);

	/* The fingerprint in our messages is the one ssh-keygen -lf prints. */
	bsi_sshsig_fingerprint(fp, key);
	ck_assert_int_eq(tu_sh(&r, "ssh-keygen -lf '%s/key.pub' | cut -d' ' -f2", dir), 0);
	fp_line = strtok(r.out, "\n");
	ck_assert_str_eq(fp, fp_line);
	tu_result_free(&r);

	/* The same signature over other content, or for another namespace, fails. */
	ck_assert_int_eq(verify(armored, "tampered", key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "does not verify"));
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), fp));
	ck_assert_int_eq(
	    bsi_sshsig_verify(key, armored, strlen(armored), payload, strlen(payload), "file"),
	    BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "namespace is 'git', expected 'file'"));
	free(armored);
}
END_TEST

START_TEST(test_sshsig_ssh_keygen_accepts_sigtool)
{
	char *dir = tu_tmpdir(), path[4200], *armored, *line;

	line = sigtool_pubkey_line(pk);
	snprintf(path, sizeof(path), "%s/allowed", dir);
	{
		char text[512];

		snprintf(text, sizeof(text), "dev@example.org %s\n", line);
		tu_write(path, text);
	}
	snprintf(path, sizeof(path), "%s/data", dir);
	tu_write(path, payload);
	armored = sigtool_sign(sk, payload, strlen(payload), "git");
	snprintf(path, sizeof(path), "%s/data.sig", dir);
	tu_write(path, armored);
	tu_must("cd '%s' && ssh-keygen -Y verify -f allowed -I dev@example.org -n git "
	        "-s data.sig < data",
	        dir);
	free(armored);
	free(line);
}
END_TEST

START_TEST(test_sshsig_git_accepts_sigtool_commit)
{
	char *dir = tu_tmpdir(), path[4200], *line, *raw, *signed_raw, text[512];
	tu_result r;

	line = sigtool_pubkey_line(pk);
	snprintf(text, sizeof(text), "dev@example.org %s\n", line);
	snprintf(path, sizeof(path), "%s/allowed", dir);
	tu_write(path, text);
	tu_must("cd '%s' && git init -q repo && cd repo && git config user.name T && "
	        "git config user.email t@example.org && echo x > f && git add f && "
	        "git commit -q -m first && git cat-file commit HEAD > ../raw",
	        dir);
	snprintf(path, sizeof(path), "%s/raw", dir);
	raw = tu_read(path);
	signed_raw = sigtool_commit_sign(sk, raw, strlen(raw));
	snprintf(path, sizeof(path), "%s/signed", dir);
	tu_write(path, signed_raw);
	ck_assert_int_eq(tu_sh(&r,
	                       "cd '%s/repo' && id=$(git hash-object -t commit -w ../signed) && "
	                       "git -c gpg.ssh.allowedSignersFile=../allowed verify-commit $id",
	                       dir),
	                 0);
	ck_assert_msg(strstr(r.err, "Good \"git\" signature") != NULL, "git said: %s", r.err);
	tu_result_free(&r);
	free(line);
	free(raw);
	free(signed_raw);
}
END_TEST

START_TEST(test_sshsig_corrupted_signature_refused)
{
	sigtool_spec spec = {0};
	size_t len;
	uint8_t *blob = sigtool_blob(&len, &spec, sk, payload, strlen(payload)), key[32];
	char *armored;

	blob[len - 10] ^= 0x01; /* inside the 64-byte signature */
	armored = sigtool_armor(blob, len);
	ck_assert_int_eq(verify(armored, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "does not verify"));
	free(blob);
	free(armored);
}
END_TEST

START_TEST(test_sshsig_bad_magic_refused)
{
	sigtool_spec spec = {.magic = "SSHSIH"};

	expect_refused(&spec, "bad magic");
}
END_TEST

START_TEST(test_sshsig_version_2_refused)
{
	sigtool_spec spec = {.version = 2};

	expect_refused(&spec, "version 2 is not supported");
}
END_TEST

START_TEST(test_sshsig_wrong_namespace_refused)
{
	sigtool_spec spec = {.ns = "file"};

	expect_refused(&spec, "namespace is 'file', expected 'git'");
}
END_TEST

START_TEST(test_sshsig_namespace_mismatch_with_signed_refused)
{
	/* The blob claims "git" but the signature covers "file". */
	sigtool_spec spec = {.ns = "git", .signed_ns = "file"};

	expect_refused(&spec, "does not verify");
}
END_TEST

START_TEST(test_sshsig_namespace_prefix_refused)
{
	sigtool_spec spec = {.ns = "gitx"};

	expect_refused(&spec, "namespace is 'gitx'");
}
END_TEST

START_TEST(test_sshsig_unknown_hash_refused)
{
	sigtool_spec spec = {.hash = "md5", .signed_hash = "sha512"};

	expect_refused(&spec, "hash algorithm 'md5' is not supported");
}
END_TEST

START_TEST(test_sshsig_hash_swap_refused)
{
	/* Says sha256 but signed a sha512 digest. */
	sigtool_spec spec = {.hash = "sha256", .signed_hash = "sha512"};

	expect_refused(&spec, "does not verify");
}
END_TEST

START_TEST(test_sshsig_rsa_key_refused)
{
	sigtool_spec spec = {.key_type = "ssh-rsa"};

	expect_refused(&spec, "key type 'ssh-rsa' is not supported (only ssh-ed25519 is)");
}
END_TEST

START_TEST(test_sshsig_other_key_types_refused)
{
	sigtool_spec a = {.key_type = "ecdsa-sha2-nistp256"};
	sigtool_spec b = {.key_type = "sk-ssh-ed25519@openssh.com"};
	sigtool_spec c = {.key_type = "ssh-ed25519-cert-v01@openssh.com"};

	expect_refused(&a, "'ecdsa-sha2-nistp256' is not supported (only ssh-ed25519");
	expect_refused(&b, "'sk-ssh-ed25519@openssh.com' is not supported (only ssh-ed25519");
	expect_refused(&c, "'ssh-ed25519-cert-v01@openssh.com' is not supported");
}
END_TEST

START_TEST(test_sshsig_signature_type_mismatch_refused)
{
	sigtool_spec spec = {.sig_type = "rsa-sha2-512"};

	expect_refused(&spec, "signature type 'rsa-sha2-512' is not supported");
}
END_TEST

START_TEST(test_sshsig_short_and_long_key_refused)
{
	sigtool_spec s = {.key_len = 31}, l = {.key_len = 33};

	expect_refused(&s, "public key is 31 bytes, not 32");
	expect_refused(&l, "public key is 33 bytes, not 32");
}
END_TEST

START_TEST(test_sshsig_short_and_long_signature_refused)
{
	sigtool_spec s = {.sig_len = 63}, l = {.sig_len = 65};

	expect_refused(&s, "signature is 63 bytes, not 64");
	expect_refused(&l, "signature is 65 bytes, not 64");
}
END_TEST

START_TEST(test_sshsig_trailing_bytes_refused)
{
	sigtool_spec k = {.key_trailing = 1}, s = {.sig_trailing = 1}, o = {.outer_trailing = 3};

	expect_refused(&k, "1 trailing bytes after the ssh-ed25519 public key");
	expect_refused(&s, "1 trailing bytes after the ssh-ed25519 signature");
	expect_refused(&o, "3 trailing bytes after the signature blob");
}
END_TEST

START_TEST(test_sshsig_truncated_blob_refused)
{
	size_t len, cut;
	uint8_t *blob = sigtool_blob(&len, NULL, sk, payload, strlen(payload)), key[32];

	/* Every proper prefix is refused, never read past. */
	for (cut = 0; cut < len; cut++) {
		char *armored = sigtool_armor(blob, cut);

		ck_assert_int_eq(verify(armored, payload, key), BSI_ETRUST);
		free(armored);
	}
	{
		char *armored = sigtool_armor(blob, len - 20);

		verify(armored, payload, key);
		ck_assert_msg(strstr(bsi_error_message(), "declares") != NULL, "%s",
		              bsi_error_message());
		free(armored);
	}
	free(blob);
}
END_TEST

START_TEST(test_sshsig_huge_length_refused)
{
	size_t len;
	uint8_t *blob = sigtool_blob(&len, NULL, sk, payload, strlen(payload)), key[32];
	char *armored;

	/* The public key string's length field is right after magic+version. */
	blob[10] = 0xff;
	blob[11] = 0xff;
	armored = sigtool_armor(blob, len);
	ck_assert_int_eq(verify(armored, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "public key declares"));
	free(blob);
	free(armored);
}
END_TEST

START_TEST(test_sshsig_bad_armor_refused)
{
	char *good = sigtool_sign(sk, payload, strlen(payload), "git"), *bad;
	uint8_t key[32];
	size_t n = strlen(good);

	ck_assert_int_eq(verify("hello", payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "does not start with"));

	bad = malloc(n + 16);
	snprintf(bad, n + 16, "%sgarbage\n", good);
	ck_assert_int_eq(verify(bad, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "unexpected text after"));

	strcpy(bad, good);
	bad[40] = '*';
	ck_assert_int_eq(verify(bad, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "not valid base64"));

	strcpy(bad, good);
	*strstr(bad, "-----END") = '\0';
	ck_assert_int_eq(verify(bad, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "no '-----END SSH SIGNATURE-----'"));

	/* Text before the BEGIN line is refused, as ssh-keygen refuses it. */
	snprintf(bad, n + 16, " %s", good);
	ck_assert_int_eq(verify(bad, payload, key), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "does not start with"));

	free(bad);
	free(good);
}
END_TEST

/* xorshift, so failures reproduce. */
static uint32_t rnd(uint32_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 17;
	*st ^= *st << 5;
	return *st;
}

/* Any change to the decoded blob is refused (never accepted, never a
 * crash under ASan): flips, truncations and extensions at random places. */
START_TEST(test_sshsig_random_blob_mutations_refused)
{
	size_t len, i;
	uint8_t *blob = sigtool_blob(&len, NULL, sk, payload, strlen(payload)), key[32];
	uint8_t *m = malloc(len + 16);
	uint32_t st = 0x9e3779b9u;

	for (i = 0; i < 3000; i++) {
		size_t n = len, k, flips = 1 + rnd(&st) % 3;
		char *armored;

		memcpy(m, blob, len);
		switch (rnd(&st) % 4) {
		case 0:
			n = rnd(&st) % len; /* truncate */
			break;
		case 1:
			n = len + 1 + rnd(&st) % 15; /* extend */
			for (k = len; k < n; k++)
				m[k] = (uint8_t)rnd(&st);
			break;
		default:
			for (k = 0; k < flips; k++)
				m[rnd(&st) % len] ^= (uint8_t)(1 + rnd(&st) % 255);
			break;
		}
		if (n == len && memcmp(m, blob, len) == 0)
			continue;
		armored = sigtool_armor(m, n);
		ck_assert_msg(verify(armored, payload, key) == BSI_ETRUST, "mutation %zu accepted",
		              i);
		free(armored);
	}
	free(m);
	free(blob);
}
END_TEST

/* Random edits of the armored text: all refused, whitespace too (only
 * ssh-keygen's exact armor is accepted); never a crash under ASan. */
START_TEST(test_sshsig_random_armor_mutations_safe)
{
	char *good = sigtool_sign(sk, payload, strlen(payload), "git");
	size_t n = strlen(good), i;
	char *m = malloc(n + 1);
	uint32_t st = 12345;
	static const char alphabet[] = "AZaz09+/=- \n\r\tQ";

	for (i = 0; i < 3000; i++) {
		uint8_t key[32];
		int rc;

		memcpy(m, good, n + 1);
		m[rnd(&st) % n] = alphabet[rnd(&st) % (sizeof(alphabet) - 1)];
		rc = bsi_sshsig_verify(key, m, n, payload, strlen(payload), "git");
		if (memcmp(m, good, n) == 0)
			ck_assert_int_eq(rc, 0);
		else
			ck_assert_msg(rc == BSI_ETRUST, "edit %zu accepted:\n%s", i, m);
	}
	free(m);
	free(good);
}
END_TEST

static Suite *sshsig_suite(void)
{
	Suite *s = suite_create("sshsig");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_sshsig_sigtool_roundtrip);
	tcase_add_test(tc, test_sshsig_sha256_accepted);
	tcase_add_test(tc, test_sshsig_reserved_field_refused);
	tcase_add_test(tc, test_sshsig_version_0_refused);
	tcase_add_test(tc, test_sshsig_non_canonical_signature_refused);
	tcase_add_test(tc, test_sshsig_rewrapped_armor_refused);
	tcase_add_test(tc, test_sshsig_accepts_ssh_keygen_signature);
	tcase_add_test(tc, test_sshsig_ssh_keygen_accepts_sigtool);
	tcase_add_test(tc, test_sshsig_git_accepts_sigtool_commit);
	tcase_add_test(tc, test_sshsig_corrupted_signature_refused);
	tcase_add_test(tc, test_sshsig_bad_magic_refused);
	tcase_add_test(tc, test_sshsig_version_2_refused);
	tcase_add_test(tc, test_sshsig_wrong_namespace_refused);
	tcase_add_test(tc, test_sshsig_namespace_mismatch_with_signed_refused);
	tcase_add_test(tc, test_sshsig_namespace_prefix_refused);
	tcase_add_test(tc, test_sshsig_unknown_hash_refused);
	tcase_add_test(tc, test_sshsig_hash_swap_refused);
	tcase_add_test(tc, test_sshsig_rsa_key_refused);
	tcase_add_test(tc, test_sshsig_other_key_types_refused);
	tcase_add_test(tc, test_sshsig_signature_type_mismatch_refused);
	tcase_add_test(tc, test_sshsig_short_and_long_key_refused);
	tcase_add_test(tc, test_sshsig_short_and_long_signature_refused);
	tcase_add_test(tc, test_sshsig_trailing_bytes_refused);
	tcase_add_test(tc, test_sshsig_truncated_blob_refused);
	tcase_add_test(tc, test_sshsig_huge_length_refused);
	tcase_add_test(tc, test_sshsig_bad_armor_refused);
	tcase_add_test(tc, test_sshsig_random_blob_mutations_refused);
	tcase_add_test(tc, test_sshsig_random_armor_mutations_safe);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(sshsig_suite());
}
