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

START_TEST(test_sshsig_sha256_and_reserved_accepted)
{
	sigtool_spec spec = {.hash = "sha256", .reserved = "anything"};
	size_t len;
	uint8_t *blob = sigtool_blob(&len, &spec, sk, payload, strlen(payload)), key[32];
	char *armored = sigtool_armor(blob, len);

	ck_assert_int_eq(verify(armored, payload, key), 0);
	ck_assert_mem_eq(key, pk, 32);
	free(blob);
	free(armored);
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

	/* Trailing whitespace and CRLF line ends are fine. */
	{
		char *crlf = malloc(2 * n + 8), *w = crlf, *p;

		for (p = good; *p; p++) {
			if (*p == '\n')
				*w++ = '\r';
			*w++ = *p;
		}
		strcpy(w, "  \n");
		ck_assert_int_eq(verify(crlf, payload, key), 0);
		free(crlf);
	}
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

/* Random edits of the armored text: refused, or (when the edit only moved
 * whitespace) the original key. */
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
		ck_assert(rc == 0 || rc == BSI_ETRUST);
		if (rc == 0)
			ck_assert_mem_eq(key, pk, 32);
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
	tcase_add_test(tc, test_sshsig_sha256_and_reserved_accepted);
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
