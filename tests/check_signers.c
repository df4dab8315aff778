/* check_signers.c - .bsi/signers parsing (OpenSSH allowed_signers). */
#include "error.h"
#include "signers.h"
#include "sigtool.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t pk1[32], sk1[64], pk2[32], sk2[64], pk3[32], sk3[64];
static char *line1, *line2, *line3;

static void setup(void)
{
	sigtool_keypair(pk1, sk1);
	sigtool_keypair(pk2, sk2);
	sigtool_keypair(pk3, sk3);
	line1 = sigtool_pubkey_line(pk1);
	line2 = sigtool_pubkey_line(pk2);
	line3 = sigtool_pubkey_line(pk3);
}

static void teardown(void)
{
	free(line1);
	free(line2);
	free(line3);
	tu_cleanup();
}

static int parse(bsi_signers **out, const char *text)
{
	bsi_error_clear();
	return bsi_signers_parse(out, text, strlen(text), "feed:.bsi/signers");
}

static void expect_error(const char *text, const char *want)
{
	bsi_signers *s = (bsi_signers *)1;

	ck_assert_int_eq(parse(&s, text), BSI_ETRUST);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(bsi_error_message(), want) != NULL, "message '%s' lacks '%s'",
	              bsi_error_message(), want);
}

START_TEST(test_signers_parses_comments_options_and_keys)
{
	char text[2048];
	bsi_signers *s = NULL;

	snprintf(text, sizeof(text),
	         "# the security team\n"
	         "\n"
	         "alice@example.org %s alice laptop\n"
	         "   \t\n"
	         "ssh-team@example.org,\"carol smith\" namespaces=\"git\" %s\r\n"
	         "  # indented comment\n",
	         line1, line2);
	ck_assert_int_eq(parse(&s, text), 0);
	ck_assert_uint_eq(bsi_signers_count(s), 2);
	ck_assert(bsi_signers_allows(s, pk1));
	ck_assert(bsi_signers_allows(s, pk2));
	ck_assert(!bsi_signers_allows(s, pk3));
	bsi_signers_free(s);
}
END_TEST

START_TEST(test_signers_accepts_ssh_keygen_public_key)
{
	char *dir = tu_tmpdir(), path[4200], *pub, *text;
	uint8_t pk[32], sk[64];
	bsi_signers *s = NULL;

	tu_must("cd '%s' && ssh-keygen -q -t ed25519 -N '' -C 'me@host' -f key", dir);
	snprintf(path, sizeof(path), "%s/key.pub", dir);
	pub = tu_read(path);
	snprintf(path, sizeof(path), "%s/key", dir);
	sigtool_load_key(path, pk, sk);
	ck_assert_int_ge(asprintf(&text, "me@host %s", pub), 0);
	ck_assert_int_eq(parse(&s, text), 0);
	ck_assert(bsi_signers_allows(s, pk));
	bsi_signers_free(s);
	free(text);
	free(pub);
}
END_TEST

START_TEST(test_signers_namespaces_honoured)
{
	char text[2048];
	bsi_signers *s = NULL;

	/* key1 only for files, key2 for git among others, key3 excluded by
	 * negation although '*' would match. */
	snprintf(text, sizeof(text),
	         "a namespaces=\"file\" %s\n"
	         "b namespaces=\"file,g?t\" %s\n"
	         "c namespaces=\"!git,*\" %s\n",
	         line1, line2, line3);
	ck_assert_int_eq(parse(&s, text), 0);
	ck_assert(!bsi_signers_allows(s, pk1));
	ck_assert(bsi_signers_allows(s, pk2));
	ck_assert(!bsi_signers_allows(s, pk3));
	ck_assert_uint_eq(bsi_signers_count(s), 1);
	bsi_signers_free(s);
}
END_TEST

START_TEST(test_signers_no_git_key_is_error)
{
	char text[2048];

	snprintf(text, sizeof(text), "a namespaces=\"file\" %s\n", line1);
	expect_error(text, "no key is authorized for namespace \"git\"");
}
END_TEST

START_TEST(test_signers_empty_is_error)
{
	expect_error("", "feed:.bsi/signers: lists no keys");
	expect_error("# only a comment\n\n   \n", "feed:.bsi/signers: lists no keys");
}
END_TEST

START_TEST(test_signers_cert_authority_refused)
{
	char text[2048];

	snprintf(text, sizeof(text), "a %s\n*@example.org cert-authority %s\n", line1, line2);
	expect_error(text, "feed:.bsi/signers:2: cert-authority is not supported");
}
END_TEST

START_TEST(test_signers_validity_options_refused)
{
	char text[2048];

	snprintf(text, sizeof(text), "a valid-after=\"20260101\" %s\n", line1);
	expect_error(text, "feed:.bsi/signers:1: valid-after is not supported");
	snprintf(text, sizeof(text), "# c\na namespaces=\"git\",valid-before=\"20300101\" %s\n",
	         line1);
	expect_error(text, "feed:.bsi/signers:2: valid-before is not supported");
}
END_TEST

START_TEST(test_signers_unknown_option_refused)
{
	char text[2048];

	snprintf(text, sizeof(text), "a %s\nb no-touch-required %s\n", line1, line2);
	expect_error(text, "feed:.bsi/signers:2: unknown option 'no-touch-required'");
}
END_TEST

START_TEST(test_signers_other_key_types_refused)
{
	char text[2048];

	snprintf(text, sizeof(text), "a %s\n\nb ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== x\n",
	         line1);
	expect_error(text, "feed:.bsi/signers:3: key type 'ssh-rsa' is not supported (only "
	                   "ssh-ed25519 is)");
	snprintf(text, sizeof(text), "b ecdsa-sha2-nistp256 AAAA\na %s\n", line1);
	expect_error(text, "feed:.bsi/signers:1: key type 'ecdsa-sha2-nistp256'");
	snprintf(text, sizeof(text), "b sk-ssh-ed25519@openssh.com AAAA\n");
	expect_error(text, "feed:.bsi/signers:1: key type 'sk-ssh-ed25519@openssh.com'");
}
END_TEST

START_TEST(test_signers_bad_lines_named)
{
	char text[2048];

	snprintf(text, sizeof(text), "a %s\nthis is not a key line\n", line1);
	expect_error(text, "feed:.bsi/signers:2:");
	snprintf(text, sizeof(text), "a %s\n%s comment\n", line1, line2); /* no principals */
	expect_error(text, "feed:.bsi/signers:2: line starts with a key type");
	snprintf(text, sizeof(text), "a ssh-ed25519 AAAA*bad\n");
	expect_error(text, "feed:.bsi/signers:1: key is not valid base64");
	snprintf(text, sizeof(text), "a ssh-ed25519\n");
	expect_error(text, "feed:.bsi/signers:1: missing base64 key");
	snprintf(text, sizeof(text), "\"a b %s\n", line1);
	expect_error(text, "feed:.bsi/signers:1: unterminated quote");
	/* The type word says ed25519 but the blob holds another type. */
	expect_error("a ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==\n",
	             "feed:.bsi/signers:1: key type 'ssh-rsa' is not supported");
	/* A key of the wrong size. */
	expect_error("a ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQA=\n",
	             "feed:.bsi/signers:1: SSHSIG: ssh-ed25519 public key is 1 bytes");
}
END_TEST

START_TEST(test_signers_nul_byte_refused)
{
	char text[2048];
	bsi_signers *s = NULL;
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "a %s\n", line1);
	text[n] = '\0';
	text[n + 1] = '#';
	ck_assert_int_eq(bsi_signers_parse(&s, text, n + 2, "f"), BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "NUL byte"));
}
END_TEST

START_TEST(test_signers_parse_key)
{
	char text[512];
	uint8_t key[32];

	snprintf(text, sizeof(text), "%s some comment", line2);
	ck_assert_int_eq(bsi_signers_parse_key(key, text), 0);
	ck_assert_mem_eq(key, pk2, 32);
	ck_assert_int_eq(bsi_signers_parse_key(key, "ssh-rsa AAAAB3NzaC1yc2E="), BSI_EUSAGE);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "'ssh-rsa' is not supported"));
	ck_assert_int_eq(bsi_signers_parse_key(key, "ssh-ed25519 !!!"), BSI_EUSAGE);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "bad ssh-ed25519 key"));
	ck_assert_int_eq(bsi_signers_parse_key(key, ""), BSI_EUSAGE);
}
END_TEST

/* ssh-keygen and bsi agree on which lines authorize a git signature. */
START_TEST(test_signers_namespaces_match_ssh_keygen)
{
	static const char *opts[] = {"",
	                             "namespaces=\"git\"",
	                             "namespaces=\"file\"",
	                             "namespaces=\"file,git\"",
	                             "namespaces=\"*\"",
	                             "namespaces=\"!git,*\"",
	                             "namespaces=\"gi*\""};
	char *dir = tu_tmpdir(), path[4200], text[2048], *armored;
	size_t i;

	armored = sigtool_sign(sk1, "data", 4, "git");
	snprintf(path, sizeof(path), "%s/data.sig", dir);
	tu_write(path, armored);
	snprintf(path, sizeof(path), "%s/data", dir);
	tu_write(path, "data");
	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		bsi_signers *s = NULL;
		bool ours;
		tu_result r;
		int theirs;

		/* key2 keeps the file usable when key1's line excludes git. */
		snprintf(text, sizeof(text), "a@x %s %s\nb@x %s\n", opts[i], line1, line2);
		snprintf(path, sizeof(path), "%s/allowed", dir);
		tu_write(path, text);
		ck_assert_int_eq(parse(&s, text), 0);
		ours = bsi_signers_allows(s, pk1);
		theirs = tu_sh(&r,
		               "cd '%s' && ssh-keygen -Y verify -f allowed -I a@x -n git -s "
		               "data.sig < data",
		               dir);
		ck_assert_msg(ours == (theirs == 0), "option '%s': bsi %d, ssh-keygen %d (%s)",
		              opts[i], ours, theirs, r.err);
		tu_result_free(&r);
		bsi_signers_free(s);
	}
	free(armored);
}
END_TEST

static Suite *signers_suite(void)
{
	Suite *s = suite_create("signers");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_signers_parses_comments_options_and_keys);
	tcase_add_test(tc, test_signers_accepts_ssh_keygen_public_key);
	tcase_add_test(tc, test_signers_namespaces_honoured);
	tcase_add_test(tc, test_signers_no_git_key_is_error);
	tcase_add_test(tc, test_signers_empty_is_error);
	tcase_add_test(tc, test_signers_cert_authority_refused);
	tcase_add_test(tc, test_signers_validity_options_refused);
	tcase_add_test(tc, test_signers_unknown_option_refused);
	tcase_add_test(tc, test_signers_other_key_types_refused);
	tcase_add_test(tc, test_signers_bad_lines_named);
	tcase_add_test(tc, test_signers_nul_byte_refused);
	tcase_add_test(tc, test_signers_parse_key);
	tcase_add_test(tc, test_signers_namespaces_match_ssh_keygen);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(signers_suite());
}
