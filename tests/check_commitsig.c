/* check_commitsig.c - splitting raw commits into signature and payload. */
#include "commitsig.h"
#include "error.h"
#include "sigtool.h"
#include "sshsig.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TREE "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
#define P1 "1111111111111111111111111111111111111111"
#define P2 "2222222222222222222222222222222222222222"
#define WHO "A U Thor <a@example.org> 1700000000 +0000"

static uint8_t pk[32], sk[64];

static void setup(void)
{
	sigtool_keypair(pk, sk);
}

static void teardown(void)
{
	tu_cleanup();
}

static int parse(bsi_commitsig **out, const char *raw)
{
	bsi_error_clear();
	return bsi_commitsig_parse(out, raw, strlen(raw));
}

static void expect_refused(const char *raw, const char *want)
{
	bsi_commitsig *cs = NULL;

	ck_assert_int_eq(parse(&cs, raw), BSI_ETRUST);
	ck_assert_ptr_null(cs);
	ck_assert_msg(strstr(bsi_error_message(), want) != NULL, "message '%s' lacks '%s'",
	              bsi_error_message(), want);
}

START_TEST(test_commitsig_git_signed_commit_roundtrip)
{
	char *dir = tu_tmpdir(), path[4200], *raw, *unsigned_raw;
	bsi_commitsig *cs = NULL;
	uint8_t kpk[32], ksk[64], key[32];

	tu_must("cd '%s' && ssh-keygen -q -t ed25519 -N '' -f key && git init -q r && cd r && "
	        "git config user.name T && git config user.email t@example.org && "
	        "git config gpg.format ssh && git config user.signingkey ../key.pub && "
	        "echo x > f && git add f && git commit -q -S -m 'first' -m 'body' && "
	        "git cat-file commit HEAD > ../raw && "
	        "git cat-file commit HEAD | sed '/^gpgsig /,/^ -----END/d' > ../unsigned",
	        dir);
	snprintf(path, sizeof(path), "%s/raw", dir);
	raw = tu_read(path);
	snprintf(path, sizeof(path), "%s/unsigned", dir);
	unsigned_raw = tu_read(path);
	snprintf(path, sizeof(path), "%s/key", dir);
	sigtool_load_key(path, kpk, ksk);

	ck_assert_int_eq(parse(&cs, raw), 0);
	ck_assert_str_eq(cs->payload, unsigned_raw);
	ck_assert_uint_eq(cs->payload_len, strlen(unsigned_raw));
	ck_assert_ptr_nonnull(strstr(cs->signature, "-----BEGIN SSH SIGNATURE-----\n"));
	ck_assert_uint_eq(cs->parent_count, 0);
	ck_assert_int_eq(bsi_sshsig_verify(key, cs->signature, cs->signature_len, cs->payload,
	                                   cs->payload_len, "git"),
	                 0);
	ck_assert_mem_eq(key, kpk, 32);
	bsi_commitsig_free(cs);
	free(raw);
	free(unsigned_raw);
}
END_TEST

START_TEST(test_commitsig_reads_tree_and_parents)
{
	const char *raw = "tree " TREE "\nparent " P1 "\nparent " P2 "\nauthor " WHO
	                  "\ncommitter " WHO "\n\nmerge\n";
	char *signed_raw = sigtool_commit_sign(sk, raw, strlen(raw)), hex[41];
	bsi_commitsig *cs = NULL;

	ck_assert_int_eq(parse(&cs, signed_raw), 0);
	ck_assert_str_eq(cs->payload, raw);
	ck_assert_str_eq(git_oid_tostr(hex, sizeof(hex), &cs->tree), TREE);
	ck_assert_uint_eq(cs->parent_count, 2);
	ck_assert_str_eq(git_oid_tostr(hex, sizeof(hex), &cs->parents[0]), P1);
	ck_assert_str_eq(git_oid_tostr(hex, sizeof(hex), &cs->parents[1]), P2);
	bsi_commitsig_free(cs);
	free(signed_raw);
}
END_TEST

START_TEST(test_commitsig_unsigned_refused)
{
	expect_refused("tree " TREE "\nauthor " WHO "\ncommitter " WHO "\n\nmsg\n",
	               "not signed (no gpgsig header)");
}
END_TEST

START_TEST(test_commitsig_signature_in_body_is_not_a_signature)
{
	const char *head = "tree " TREE "\nauthor " WHO "\ncommitter " WHO "\n";
	char *signed_head = sigtool_commit_sign(sk, head, strlen(head)), *raw;

	/* A well-formed gpgsig header, continuation lines and all, placed after
	 * the blank line is message text, not a signature. */
	ck_assert_int_ge(asprintf(&raw, "%s\nmsg\n%s", head, strstr(signed_head, "gpgsig ")), 0);
	expect_refused(raw, "not signed (no gpgsig header)");
	free(raw);
	free(signed_head);
}
END_TEST

START_TEST(test_commitsig_gpgsig_sha256_is_no_signature)
{
	const char *raw = "tree " TREE "\nauthor " WHO "\ncommitter " WHO "\n\nmsg\n";
	char *with = sigtool_commit_add_sig(raw, strlen(raw),
	                                    "-----BEGIN SSH SIGNATURE-----\n"
	                                    "AAAA\n-----END SSH SIGNATURE-----\n");
	char *p = strstr(with, "gpgsig ");
	char *renamed;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_ge(asprintf(&renamed, "%.*sgpgsig-sha256 %s", (int)(p - with), with, p + 7),
	                 0);
	expect_refused(renamed, "only a gpgsig-sha256");
	free(renamed);
	free(with);
}
END_TEST

START_TEST(test_commitsig_gpgsig_next_to_sha256_refused)
{
	const char *raw = "tree " TREE "\nauthor " WHO "\ncommitter " WHO
	                  "\ngpgsig-sha256 xyz\n continued\n\nmsg\n";
	char *signed_raw = sigtool_commit_sign(sk, raw, strlen(raw));

	expect_refused(signed_raw, "gpgsig-sha256 (or other gpgsig-*) header next to gpgsig");
	free(signed_raw);
}
END_TEST

START_TEST(test_commitsig_two_gpgsig_refused)
{
	const char *raw = "tree " TREE "\nauthor " WHO "\ncommitter " WHO "\n\nmsg\n";
	char *once = sigtool_commit_sign(sk, raw, strlen(raw));
	char *twice = sigtool_commit_sign(sk, once, strlen(once));

	expect_refused(twice, "more than one gpgsig header");
	free(once);
	free(twice);
}
END_TEST

/*
 * git finds a gpgsig header anywhere among the headers, so a genuine
 * signature moved up (here: before author, or before committer) verifies
 * for git under another commit id.  bsi takes it only where git writes it,
 * last.
 */
START_TEST(test_commitsig_gpgsig_not_last_refused)
{
	const char *raw = "tree " TREE "\nparent " P1 "\nauthor " WHO "\ncommitter " WHO
	                  "\n\nmsg\n";
	char *signed_raw = sigtool_commit_sign(sk, raw, strlen(raw)), *moved;
	const char *hdr[] = {"author ", "committer "};
	char *sig = strstr(signed_raw, "gpgsig "), *end = strstr(signed_raw, "\n\n") + 1;
	bsi_commitsig *cs = NULL;

	ck_assert_int_eq(parse(&cs, signed_raw), 0);
	bsi_commitsig_free(cs);
	for (size_t i = 0; i < 2; i++) {
		const char *at = strstr(signed_raw, hdr[i]);

		/* headers before `at`, the gpgsig lines, the rest without them */
		ck_assert_int_ge(asprintf(&moved, "%.*s%.*s%.*s%s", (int)(at - signed_raw),
		                          signed_raw, (int)(end - sig), sig, (int)(sig - at), at,
		                          end),
		                 0);
		expect_refused(moved, "gpgsig header is not its last header");
		free(moved);
	}
	free(signed_raw);
}
END_TEST

START_TEST(test_commitsig_malformed_headers_refused)
{
	expect_refused("author " WHO "\ntree " TREE "\n\nmsg\n",
	               "does not start with a tree header");
	expect_refused("tree " TREE "\nauthor " WHO "\nparent " P1 "\n\nmsg\n",
	               "misplaced tree or parent header");
	expect_refused("tree " TREE "\nparent 12345\n\nmsg\n", "bad parent header");
	expect_refused("tree "
	               "4B825DC642CB6EB9A060E54BF8D69288FBEE4904"
	               "\n\nmsg\n",
	               "does not start with a tree header");
	expect_refused("", "no tree header");
}
END_TEST

/*
 * Found by fuzz_commitsig (corpus regress-continuation-before-tree): a
 * continuation line was skipped wherever it stood, so a commit could start
 * with one (git and libgit2 refuse a commit that does not start with
 * "tree "), and one between tree and parent hid the parent from git, which
 * stops reading parents there, while bsi still counted it.
 */
START_TEST(test_commitsig_continuation_of_tree_or_parent_refused)
{
	char *sig = sigtool_sign(sk, "x", 1, "git"), *raw;
	const char *heads[] = {
		" junk\ntree " TREE "\nparent " P1 "\n",
		"tree " TREE "\n junk\nparent " P1 "\n",
		"tree " TREE "\nparent " P1 "\n junk\nparent " P2 "\n",
		"tree " TREE "\nparent " P1 "\n junk\n",
	};

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		char unsigned_raw[512];

		snprintf(unsigned_raw, sizeof(unsigned_raw), "%sauthor " WHO "\ncommitter " WHO
			 "\n\nmsg\n", heads[i]);
		raw = sigtool_commit_add_sig(unsigned_raw, strlen(unsigned_raw), sig);
		expect_refused(raw, "continuation line");
		free(raw);
	}
	free(sig);
}
END_TEST

START_TEST(test_commitsig_no_message_no_blank_line)
{
	const char *raw = "tree " TREE "\nauthor " WHO "\ncommitter " WHO "\n";
	char *signed_raw = sigtool_commit_sign(sk, raw, strlen(raw));
	bsi_commitsig *cs = NULL;
	uint8_t key[32];

	ck_assert_int_eq(parse(&cs, signed_raw), 0);
	ck_assert_str_eq(cs->payload, raw);
	ck_assert_int_eq(bsi_sshsig_verify(key, cs->signature, cs->signature_len, cs->payload,
	                                   cs->payload_len, "git"),
	                 0);
	bsi_commitsig_free(cs);
	free(signed_raw);
}
END_TEST

static uint32_t rnd(uint32_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 17;
	*st ^= *st << 5;
	return *st;
}

/* Whatever is done to a signed commit's bytes, nothing whose signed
 * content differs from the original verifies. */
START_TEST(test_commitsig_random_mutations_never_verify_other_content)
{
	const char *raw =
	    "tree " TREE "\nparent " P1 "\nauthor " WHO "\ncommitter " WHO "\n\nmessage\n";
	char *signed_raw = sigtool_commit_sign(sk, raw, strlen(raw)), *m;
	size_t n = strlen(signed_raw), i;
	uint32_t st = 777;
	static const char alphabet[] = "gpsi \n-AQ=01t";

	m = malloc(n + 1);
	for (i = 0; i < 3000; i++) {
		bsi_commitsig *cs = NULL;
		uint8_t key[32];
		size_t k, len = n;

		memcpy(m, signed_raw, n + 1);
		for (k = 0; k < 1 + rnd(&st) % 2; k++)
			m[rnd(&st) % n] = alphabet[rnd(&st) % (sizeof(alphabet) - 1)];
		if (rnd(&st) % 5 == 0)
			len = rnd(&st) % n;
		if (bsi_commitsig_parse(&cs, m, len) == 0) {
			if (bsi_sshsig_verify(key, cs->signature, cs->signature_len, cs->payload,
			                      cs->payload_len, "git") == 0)
				ck_assert_str_eq(cs->payload, raw);
			bsi_commitsig_free(cs);
		}
	}
	free(m);
	free(signed_raw);
}
END_TEST

static Suite *commitsig_suite(void)
{
	Suite *s = suite_create("commitsig");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_commitsig_git_signed_commit_roundtrip);
	tcase_add_test(tc, test_commitsig_reads_tree_and_parents);
	tcase_add_test(tc, test_commitsig_unsigned_refused);
	tcase_add_test(tc, test_commitsig_signature_in_body_is_not_a_signature);
	tcase_add_test(tc, test_commitsig_gpgsig_sha256_is_no_signature);
	tcase_add_test(tc, test_commitsig_gpgsig_next_to_sha256_refused);
	tcase_add_test(tc, test_commitsig_two_gpgsig_refused);
	tcase_add_test(tc, test_commitsig_gpgsig_not_last_refused);
	tcase_add_test(tc, test_commitsig_malformed_headers_refused);
	tcase_add_test(tc, test_commitsig_continuation_of_tree_or_parent_refused);
	tcase_add_test(tc, test_commitsig_no_message_no_blank_line);
	tcase_add_test(tc, test_commitsig_random_mutations_never_verify_other_content);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(commitsig_suite());
}
