/*
 * check_auth.c - the feed's authentication rule against real git histories
 * signed with real ssh-keygen keys, one test per attack.
 */
#include "auth.h"
#include "error.h"
#include "sigtool.h"
#include "sshsig.h"
#include "testutil.h"

#include <check.h>
#include <sodium.h>
#include <git2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *dir;
static char repo[4200];
static bsi_auth_anchor anchor;
static uint8_t pkA[32], skA[64], pkB[32], skB[64];
static char fpA[BSI_SSHSIG_FINGERPRINT_SIZE], fpB[BSI_SSHSIG_FINGERPRINT_SIZE];

static void setup(void)
{
	char path[4300];

	git_libgit2_init();
	dir = tu_tmpdir();
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	tu_must("cd '%s' && for k in A B C; do ssh-keygen -q -t ed25519 -N '' -C $k -f $k; done "
	        "&& git init -q -b main repo && cd repo && git config user.name T && "
	        "git config user.email t@example.org && git config gpg.format ssh && "
	        "git config commit.gpgsign false",
	        dir);
	snprintf(path, sizeof(path), "%s/A", dir);
	sigtool_load_key(path, pkA, skA);
	snprintf(path, sizeof(path), "%s/B", dir);
	sigtool_load_key(path, pkB, skB);
	bsi_sshsig_fingerprint(fpA, pkA);
	bsi_sshsig_fingerprint(fpB, pkB);
	memcpy(anchor.key, pkA, 32);
}

static void teardown(void)
{
	tu_cleanup();
	git_libgit2_shutdown();
}

/* 40 hex of id in one of 8 rotating buffers, so several can be passed to
 * one call (hexof() would be overwritten by the code under test). */
static const char *hexof(const git_oid *id)
{
	static char buf[8][GIT_OID_HEXSZ + 1];
	static int next;

	return git_oid_tostr(buf[next++ % 8], GIT_OID_HEXSZ + 1, id);
}

static void rev_parse(git_oid *out, const char *rev)
{
	tu_result r;

	ck_assert_int_eq(tu_sh(&r, "cd '%s' && git rev-parse --verify '%s^{commit}'", repo, rev),
	                 0);
	r.out[strcspn(r.out, "\n")] = '\0';
	ck_assert_int_eq(git_oid_fromstr(out, r.out), 0);
	tu_result_free(&r);
}

/* A shell snippet that writes .bsi/signers listing the given keys ("A B"). */
static const char *signers(const char *keys)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
	         "mkdir -p .bsi && (for k in %s; do printf '%%s@example.org ' $k; "
	         "cat '%s/'$k.pub; done) > .bsi/signers",
	         keys, dir);
	return buf;
}

/* Run script in the repo, stage everything and commit, signed by key
 * ("A", "B", "C") or unsigned (NULL); out gets the new HEAD. */
static void commit(git_oid *out, const char *key, const char *msg, const char *script)
{
	char sign[4400];

	if (key)
		snprintf(sign, sizeof(sign), "-c user.signingkey='%s/%s.pub' commit -S", dir, key);
	else
		snprintf(sign, sizeof(sign), "commit --no-gpg-sign");
	tu_must("cd '%s' && %s && git add -A && git %s -q --allow-empty -m '%s'", repo,
	        script ? script : "true", sign, msg);
	if (out)
		rev_parse(out, "HEAD");
}

/* Introduction: a root commit by A listing `keys`. */
static void introduce(const char *keys)
{
	commit(&anchor.introduction, "A", "introduction", signers(keys));
}

static int verify(bsi_auth_list **out, const git_oid *trusted, const git_oid *head)
{
	git_repository *r = NULL;
	int rc;

	ck_assert_int_eq(git_repository_open(&r, repo), 0);
	bsi_error_clear();
	rc = bsi_auth_verify_range(out, r, &anchor, trusted, head, NULL);
	git_repository_free(r);
	return rc;
}

/* Expect head refused, the message naming commit `who` and containing
 * each of the NULL-terminated strings. */
static void expect_refused(const git_oid *trusted, const git_oid *head, const git_oid *who, ...)
{
	bsi_auth_list *list = (bsi_auth_list *)1;
	char hex[GIT_OID_HEXSZ + 1];
	const char *want;
	va_list ap;

	ck_assert_int_eq(verify(&list, trusted, head), BSI_ETRUST);
	ck_assert_ptr_null(list);
	git_oid_tostr(hex, sizeof(hex), who);
	ck_assert_msg(strstr(bsi_error_message(), hex) != NULL, "message '%s' lacks commit %s",
	              bsi_error_message(), hex);
	va_start(ap, who);
	while ((want = va_arg(ap, const char *)) != NULL)
		ck_assert_msg(strstr(bsi_error_message(), want) != NULL, "message '%s' lacks '%s'",
		              bsi_error_message(), want);
	va_end(ap);
}

static size_t expect_accepted(const git_oid *trusted, const git_oid *head)
{
	bsi_auth_list *list = NULL;
	size_t n;

	ck_assert_msg(verify(&list, trusted, head) == 0, "refused: %s", bsi_error_message());
	ck_assert_ptr_nonnull(list);
	n = list->count;
	bsi_auth_list_free(list);
	return n;
}

/* Rewrite commit `rev` with sed expression `sed` and store it; out gets its id. */
static void rewrite(git_oid *out, const char *rev, const char *sed)
{
	tu_result r;

	ck_assert_int_eq(tu_sh(&r,
	                       "cd '%s' && git cat-file commit '%s' | sed '%s' | "
	                       "git hash-object -t commit -w --stdin",
	                       repo, rev, sed),
	                 0);
	r.out[strcspn(r.out, "\n")] = '\0';
	ck_assert_int_eq(git_oid_fromstr(out, r.out), 0);
	tu_result_free(&r);
}

/* Write raw commit bytes into the repo; out gets the id. */
static void store_raw(git_oid *out, const char *raw)
{
	char path[4300];
	tu_result r;

	snprintf(path, sizeof(path), "%s/raw-commit", dir);
	tu_write(path, raw);
	ck_assert_int_eq(tu_sh(&r, "cd '%s' && git hash-object -t commit -w '%s'", repo, path), 0);
	r.out[strcspn(r.out, "\n")] = '\0';
	ck_assert_int_eq(git_oid_fromstr(out, r.out), 0);
	tu_result_free(&r);
}

static char *cat_commit(const git_oid *id)
{
	tu_result r;
	char hex[GIT_OID_HEXSZ + 1];

	ck_assert_int_eq(tu_sh(&r, "cd '%s' && git cat-file commit %s", repo,
	                       git_oid_tostr(hex, sizeof(hex), id)),
	                 0);
	free(r.err);
	return r.out;
}

START_TEST(test_auth_accepts_signed_history)
{
	git_oid c1, c2, c3;
	bsi_auth_list *list = NULL;
	size_t i;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	commit(&c2, "A", "two", "echo 2 > f");
	commit(&c3, "A", "three", "echo 3 > f");
	ck_assert_int_eq(verify(&list, NULL, &c3), 0);
	ck_assert_uint_eq(list->count, 4);
	ck_assert(git_oid_equal(&list->items[0].id, &anchor.introduction));
	ck_assert(git_oid_equal(&list->items[3].id, &c3));
	for (i = 0; i < list->count; i++)
		ck_assert_mem_eq(list->items[i].key, pkA, 32);
	bsi_auth_list_free(list);
	/* Incremental: only what is new since the trusted head. */
	ck_assert_uint_eq(expect_accepted(&c1, &c3), 2);
	ck_assert_uint_eq(expect_accepted(&c3, &c3), 0);
	ck_assert_uint_eq(expect_accepted(NULL, &anchor.introduction), 1);
	ck_assert_uint_eq(expect_accepted(&anchor.introduction, &c2), 2);
}
END_TEST

START_TEST(test_auth_unsigned_commit_refused)
{
	git_oid c1, c2;

	introduce("A");
	commit(&c1, NULL, "unsigned", "echo 1 > f");
	commit(&c2, "A", "after", "echo 2 > f");
	expect_refused(NULL, &c2, &c1, "not signed (no gpgsig header)", NULL);
	expect_refused(&anchor.introduction, &c2, &c1, "not signed", NULL);
}
END_TEST

START_TEST(test_auth_unknown_key_refused)
{
	git_oid c1;

	introduce("A");
	commit(&c1, "B", "by B", "echo 1 > f");
	expect_refused(NULL, &c1, &c1, "signed by ", fpB, "which is not in .bsi/signers of parent",
	               hexof(&anchor.introduction), NULL);
}
END_TEST

START_TEST(test_auth_self_authorization_refused)
{
	git_oid c1;

	introduce("A");
	/* B adds itself to .bsi/signers in the very commit it signs. */
	commit(&c1, "B", "B adds itself", signers("A B"));
	expect_refused(NULL, &c1, &c1, fpB, "not in .bsi/signers of parent", NULL);
}
END_TEST

START_TEST(test_auth_rotation_accepted_and_old_key_revoked)
{
	git_oid rot, byB, byA;

	introduce("A");
	commit(&rot, "A", "rotate to B", signers("B"));
	commit(&byB, "B", "B works now", "echo b > f");
	ck_assert_uint_eq(expect_accepted(NULL, &byB), 3);
	commit(&byA, "A", "A after revocation", "echo a > f");
	expect_refused(&byB, &byA, &byA, fpA, "not in .bsi/signers of parent", hexof(&byB), NULL);
	expect_refused(NULL, &byA, &byA, fpA, "not in .bsi/signers", NULL);
}
END_TEST

START_TEST(test_auth_rollback_refused)
{
	git_oid c1, c2;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	commit(&c2, "A", "two", "echo 2 > f");
	expect_refused(&c2, &c1, &c1, "rollback refused", hexof(&c2), NULL);
	expect_refused(&c2, &anchor.introduction, &anchor.introduction, "rollback refused", NULL);
}
END_TEST

START_TEST(test_auth_rewritten_history_refused)
{
	git_oid c1, c2, c2b;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	commit(&c2, "A", "two", "echo 2 > f");
	tu_must("cd '%s' && git reset -q --hard HEAD~1", repo);
	/* Properly signed, but not a descendant of what the device trusts. */
	commit(&c2b, "A", "two, rewritten", "echo 2b > f");
	expect_refused(&c2, &c2b, &c2b, "does not descend from the trusted head", hexof(&c2), NULL);
}
END_TEST

START_TEST(test_auth_corrupted_signature_refused)
{
	git_oid c1, bad;
	char *raw, *line;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	raw = cat_commit(&c1);
	/* The third base64 line of the armor lies inside the 64-byte signature. */
	line = strstr(raw, "-----BEGIN SSH SIGNATURE-----\n");
	ck_assert_ptr_nonnull(line);
	line = strchr(line, '\n') + 1;
	line = strchr(line, '\n') + 1;
	line = strchr(line, '\n') + 1;
	line[20] = line[20] == 'A' ? 'B' : 'A';
	store_raw(&bad, raw);
	expect_refused(NULL, &bad, &bad, "does not verify", NULL);
	free(raw);
}
END_TEST

START_TEST(test_auth_content_changed_after_signing_refused)
{
	git_oid c1, evil, over;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	rewrite(&evil, "HEAD", "s/^one$/one, and something else/");
	expect_refused(NULL, &evil, &evil, fpA, "does not verify", NULL);
	/* Pointing to another tree is the same refusal. */
	rewrite(&over, "HEAD", "s/^tree .*/tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904/");
	expect_refused(NULL, &over, &over, "does not verify", NULL);
}
END_TEST

START_TEST(test_auth_other_namespace_refused)
{
	git_oid c1, spliced;
	char path[4300], *raw, *sig, *signed_raw;

	introduce("A");
	commit(&c1, NULL, "one", "echo 1 > f");
	raw = cat_commit(&c1);
	snprintf(path, sizeof(path), "%s/payload", dir);
	tu_write(path, raw);
	/* A valid signature by an authorized key, made for files, not git. */
	tu_must("cd '%s' && ssh-keygen -q -Y sign -n file -f A payload", dir);
	snprintf(path, sizeof(path), "%s/payload.sig", dir);
	sig = tu_read(path);
	signed_raw = sigtool_commit_add_sig(raw, strlen(raw), sig);
	store_raw(&spliced, signed_raw);
	expect_refused(NULL, &spliced, &spliced, "namespace is 'file', expected 'git'", fpA, NULL);
	free(raw);
	free(sig);
	free(signed_raw);
}
END_TEST

START_TEST(test_auth_merge_needs_key_of_every_parent)
{
	git_oid side, main1, mergeB, mergeA;

	introduce("A");
	tu_must("cd '%s' && git branch side", repo);
	commit(&main1, "A", "main work", "echo m > m");
	tu_must("cd '%s' && git checkout -q side", repo);
	commit(&side, "A", "side adds B", signers("A B"));
	tu_must("cd '%s' && git checkout -q main", repo);
	/* B is authorized on the side branch only. */
	tu_must("cd '%s' && git -c user.signingkey='%s/B.pub' merge -q -S --no-ff "
	        "-m 'merge by B' side",
	        repo, dir);
	rev_parse(&mergeB, "HEAD");
	expect_refused(NULL, &mergeB, &mergeB, fpB, "not in .bsi/signers of parent", hexof(&main1),
	               NULL);
	/* The same merge signed by A (authorized in both) is accepted. */
	tu_must("cd '%s' && git reset -q --hard HEAD~1 && git -c user.signingkey='%s/A.pub' "
	        "merge -q -S --no-ff -m 'merge by A' side",
	        repo, dir);
	rev_parse(&mergeA, "HEAD");
	ck_assert_uint_eq(expect_accepted(NULL, &mergeA), 4);
	ck_assert_uint_eq(expect_accepted(&main1, &mergeA), 2);
}
END_TEST

START_TEST(test_auth_introduction_by_other_key_refused)
{
	git_oid intro;

	commit(&intro, "B", "introduction by B", signers("A B"));
	anchor.introduction = intro;
	expect_refused(NULL, &intro, &intro, "the introduction is signed by", fpB,
	               "not by the pinned key", fpA, NULL);
}
END_TEST

START_TEST(test_auth_history_without_introduction_refused)
{
	git_oid c1, c2;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	/* The server serves an unrelated history, also signed by A. */
	tu_must("cd '%s' && git checkout -q --orphan other && git rm -q -rf . && "
	        "git commit -q --allow-empty --no-gpg-sign -m void",
	        repo);
	commit(&c2, "A", "other root", signers("A"));
	/* Delete the real history so the introduction is really absent. */
	tu_must("cd '%s' && git branch -D -q master main 2>/dev/null; "
	        "git reflog expire --expire=now --all && git gc -q --prune=now",
	        repo);
	expect_refused(NULL, &c2, &c2, "lacks the introduction", hexof(&anchor.introduction), NULL);
}
END_TEST

START_TEST(test_auth_unrelated_history_not_descending_refused)
{
	git_oid c1, other;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	tu_must("cd '%s' && git checkout -q --orphan other", repo);
	commit(&other, "A", "other root", signers("A"));
	expect_refused(NULL, &other, &other, "does not descend from the introduction", NULL);
}
END_TEST

START_TEST(test_auth_merged_unrelated_root_refused)
{
	git_oid c1, root, merge;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	tu_must("cd '%s' && git checkout -q --orphan other && git rm -q -rf .", repo);
	commit(&root, "A", "foreign root", signers("A"));
	tu_must("cd '%s' && git checkout -q main && git -c user.signingkey='%s/A.pub' merge -q -S "
	        "--allow-unrelated-histories -X ours -m 'pull in a root' other",
	        repo, dir);
	rev_parse(&merge, "HEAD");
	/* The head descends from the introduction, but one of its roots is
	 * not the introduction. */
	expect_refused(NULL, &merge, &root, "signed by", fpA,
	               "but has no parents and is not the introduction", NULL);
	expect_refused(&c1, &merge, &root, "has no parents and is not the introduction", NULL);
}
END_TEST

START_TEST(test_auth_ancestors_of_introduction_not_checked)
{
	git_oid c0, c2, merge;

	commit(&c0, NULL, "before the feed existed", "echo 0 > f");
	introduce("A");
	commit(&c2, "A", "two", "echo 2 > f");
	/* c0 (unsigned) is below the introduction: not examined. */
	ck_assert_uint_eq(expect_accepted(NULL, &c2), 2);
	/* But a signed merge may not make it a parent of the trusted history. */
	tu_must("cd '%s' && id=$(git -c user.signingkey='%s/A.pub' commit-tree -S "
	        "'HEAD^{tree}' -p HEAD -p %s -m 'merge old') && git reset -q --soft $id",
	        repo, dir, hexof(&c0));
	rev_parse(&merge, "HEAD");
	expect_refused(NULL, &merge, &merge, "signed by", fpA, "parent", hexof(&c0),
	               "is neither authenticated nor the introduction", NULL);
	expect_refused(&c2, &merge, &merge, "parent", hexof(&c0),
	               "is neither authenticated nor the introduction", NULL);
}
END_TEST

START_TEST(test_auth_signature_in_message_body_refused)
{
	git_oid c1;
	char path[4300], *sig, *msg;
	tu_result r;

	introduce("A");
	/* A real signature by A over this payload shape, pasted into the body. */
	snprintf(path, sizeof(path), "%s/x", dir);
	tu_write(path, "x");
	tu_must("cd '%s' && ssh-keygen -q -Y sign -n git -f A x", dir);
	snprintf(path, sizeof(path), "%s/x.sig", dir);
	sig = tu_read(path);
	ck_assert_int_ge(asprintf(&msg, "one\n\ngpgsig %s", sig), 0);
	snprintf(path, sizeof(path), "%s/msg", dir);
	tu_write(path, msg);
	ck_assert_int_eq(tu_sh(&r,
	                       "cd '%s' && echo 1 > f && git add f && "
	                       "git commit -q --no-gpg-sign --cleanup=verbatim -F ../msg",
	                       repo),
	                 0);
	tu_result_free(&r);
	rev_parse(&c1, "HEAD");
	{
		char *raw = cat_commit(&c1);

		ck_assert_ptr_nonnull(strstr(raw, "\n\none\n\ngpgsig -----BEGIN SSH SIGNATURE"));
		free(raw);
	}
	expect_refused(NULL, &c1, &c1, "not signed (no gpgsig header)", NULL);
	free(sig);
	free(msg);
}
END_TEST

START_TEST(test_auth_removing_signers_refused)
{
	git_oid c1;

	introduce("A");
	commit(&c1, "A", "remove signers", "git rm -q .bsi/signers");
	expect_refused(NULL, &c1, &c1, fpA, "its tree has no .bsi/signers", NULL);
}
END_TEST

START_TEST(test_auth_emptying_signers_refused)
{
	git_oid c1, c2;

	introduce("A");
	commit(&c1, "A", "empty signers", ": > .bsi/signers");
	expect_refused(NULL, &c1, &c1, ".bsi/signers: lists no keys", NULL);
	tu_must("cd '%s' && git reset -q --hard HEAD~1", repo);
	commit(&c2, "A", "comment out signers", "sed -i 's/^/# /' .bsi/signers");
	expect_refused(NULL, &c2, &c2, ".bsi/signers: lists no keys", NULL);
}
END_TEST

START_TEST(test_auth_unusable_signers_line_refused)
{
	git_oid c1;

	introduce("A");
	commit(&c1, "A", "bad line", "echo 'x ssh-rsa AAAAB3NzaC1yc2E=' >> .bsi/signers");
	expect_refused(NULL, &c1, &c1, ".bsi/signers:2: key type 'ssh-rsa' is not supported", NULL);
}
END_TEST

START_TEST(test_auth_signers_symlink_refused)
{
	git_oid c1;

	introduce("A");
	/* A symlink would make .bsi/signers depend on whatever it points to. */
	commit(&c1, "A", "signers as a symlink",
	       "cp .bsi/signers keys && rm .bsi/signers && ln -s ../keys .bsi/signers");
	expect_refused(NULL, &c1, &c1, fpA, ".bsi/signers is not a regular file", NULL);
}
END_TEST

START_TEST(test_auth_introduction_without_signers_refused)
{
	commit(&anchor.introduction, "A", "introduction without signers", "echo 1 > f");
	expect_refused(NULL, &anchor.introduction, &anchor.introduction,
	               "its tree has no .bsi/signers", NULL);
}
END_TEST

START_TEST(test_auth_gpgsig_sha256_only_refused)
{
	git_oid c1, renamed;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	rewrite(&renamed, "HEAD", "s/^gpgsig /gpgsig-sha256 /");
	expect_refused(NULL, &renamed, &renamed, "only a gpgsig-sha256", NULL);
}
END_TEST

/* known(): every id in the NULL-terminated array ctx. */
static int known_in(void *ctx, const git_oid *id)
{
	const git_oid **ids = ctx;

	for (; *ids; ids++)
		if (git_oid_equal(*ids, id))
			return 1;
	return 0;
}

static int known_all(void *ctx, const git_oid *id)
{
	return 1;
}

START_TEST(test_auth_cache_skips_known_commits_only_in_range)
{
	git_oid c1, c2, c3, forged, c2b;
	git_repository *r = NULL;
	bsi_auth_list *list = NULL;
	const git_oid *ids[3];
	bsi_auth_cache cache = {known_in, ids};
	bsi_auth_cache everything = {known_all, NULL};

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	commit(&c2, "A", "two", "echo 2 > f");
	commit(&c3, "A", "three", "echo 3 > f");
	ids[0] = &anchor.introduction;
	ids[1] = &c1;
	ids[2] = NULL;
	ck_assert_int_eq(git_repository_open(&r, repo), 0);
	ck_assert_int_eq(bsi_auth_verify_range(&list, r, &anchor, NULL, &c3, &cache), 0);
	ck_assert_uint_eq(list->count, 2);
	ck_assert(git_oid_equal(&list->items[0].id, &c2));
	ck_assert(git_oid_equal(&list->items[1].id, &c3));
	bsi_auth_list_free(list);

	/* A cache that claims everything cannot beat the ancestry rules. */
	ck_assert_int_eq(bsi_auth_verify_range(&list, r, &anchor, &c3, &c1, &everything),
	                 BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "rollback refused"));
	tu_must("cd '%s' && git reset -q --hard HEAD~1", repo);
	commit(&c2b, "A", "three, rewritten", "echo 3b > f");
	ck_assert_int_eq(bsi_auth_verify_range(&list, r, &anchor, &c3, &c2b, &everything),
	                 BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "does not descend from the trusted"));
	/* Commits the cache does not know are verified. */
	commit(&forged, NULL, "unsigned", "echo 4 > f");
	ck_assert_int_eq(bsi_auth_verify_range(&list, r, &anchor, &c2b, &forged, &cache),
	                 BSI_ETRUST);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "not signed"));
	git_repository_free(r);
}
END_TEST

/*
 * Interoperability: for every commit of a history mixing good, unsigned,
 * unknown-key, in-process-signed, tampered, other-namespace, corrupted,
 * gpgsig-sha256-only and signature-in-the-body commits, bsi's verdict equals `git verify-commit`
 * with gpg.ssh.allowedSignersFile set to the same .bsi/signers.
 */
START_TEST(test_auth_verdicts_match_git_verify_commit)
{
	git_repository *r = NULL;
	tu_result res;
	char path[4300], *line, *ids, *save = NULL;
	int i, good = 0, bad = 0;

	introduce("A");
	for (i = 0; i < 27; i++) {
		char msg[32], script[64];
		git_oid id;

		snprintf(msg, sizeof(msg), "msg-%d", i);
		snprintf(script, sizeof(script), "echo %d > f", i);
		switch (i % 9) {
		case 0:
			commit(NULL, "A", msg, script);
			break;
		case 1:
			commit(NULL, "B", msg, script);
			break;
		case 2:
			commit(NULL, NULL, msg, script);
			break;
		case 3: { /* signed in-process by A's key through sigtool */
			char *raw, *signed_raw;

			commit(&id, NULL, msg, script);
			raw = cat_commit(&id);
			signed_raw = sigtool_commit_sign(skA, raw, strlen(raw));
			store_raw(&id, signed_raw);
			tu_must("cd '%s' && git reset -q --soft %s", repo, hexof(&id));
			free(raw);
			free(signed_raw);
			break;
		}
		case 4: { /* signed by A, then the message edited */
			char sed[96];

			commit(NULL, "A", msg, script);
			snprintf(sed, sizeof(sed), "s/^%s$/%s-tampered/", msg, msg);
			rewrite(&id, "HEAD", sed);
			tu_must("cd '%s' && git reset -q --soft %s", repo, hexof(&id));
			break;
		}
		case 5: { /* A's signature made for namespace "file" */
			char *raw, *sig, *signed_raw;

			commit(&id, NULL, msg, script);
			raw = cat_commit(&id);
			snprintf(path, sizeof(path), "%s/payload", dir);
			tu_write(path, raw);
			tu_must("cd '%s' && rm -f payload.sig && "
			        "ssh-keygen -q -Y sign -n file -f A payload",
			        dir);
			snprintf(path, sizeof(path), "%s/payload.sig", dir);
			sig = tu_read(path);
			signed_raw = sigtool_commit_add_sig(raw, strlen(raw), sig);
			store_raw(&id, signed_raw);
			tu_must("cd '%s' && git reset -q --soft %s", repo, hexof(&id));
			free(raw);
			free(sig);
			free(signed_raw);
			break;
		}
		case 6: { /* signed by A, one signature byte flipped */
			char *raw, *p;

			commit(&id, "A", msg, script);
			raw = cat_commit(&id);
			p = strstr(raw, "-----BEGIN SSH SIGNATURE-----\n");
			p = strchr(strchr(strchr(p, '\n') + 1, '\n') + 1, '\n') + 1;
			p[30] = p[30] == 'Q' ? 'R' : 'Q';
			store_raw(&id, raw);
			tu_must("cd '%s' && git reset -q --soft %s", repo, hexof(&id));
			free(raw);
			break;
		}
		case 7: { /* signed by A, header renamed to gpgsig-sha256 */
			commit(NULL, "A", msg, script);
			rewrite(&id, "HEAD", "s/^gpgsig /gpgsig-sha256 /");
			tu_must("cd '%s' && git reset -q --soft %s", repo, hexof(&id));
			break;
		}
		case 8: { /* unsigned, A's signature block pasted into the body */
			char *signed_raw, *raw, *body_sig, *pasted;

			commit(&id, "A", msg, script);
			signed_raw = cat_commit(&id);
			body_sig = strstr(signed_raw, "gpgsig ");
			ck_assert_ptr_nonnull(body_sig);
			tu_must("cd '%s' && git reset -q --soft HEAD~1", repo);
			commit(&id, NULL, msg, script);
			raw = cat_commit(&id);
			ck_assert_int_ge(asprintf(&pasted, "%s%s", raw, body_sig), 0);
			store_raw(&id, pasted);
			tu_must("cd '%s' && git reset -q --soft %s", repo, hexof(&id));
			free(signed_raw);
			free(raw);
			free(pasted);
			break;
		}
		}
	}
	tu_must("cd '%s' && cp .bsi/signers ../allowed", repo);
	ck_assert_int_eq(tu_sh(&res, "cd '%s' && git rev-list HEAD", repo), 0);
	ids = res.out;
	free(res.err);
	ck_assert_int_eq(git_repository_open(&r, repo), 0);
	for (line = strtok_r(ids, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		git_oid id;
		uint8_t key[32];
		int ours, theirs;

		ck_assert_int_eq(git_oid_fromstr(&id, line), 0);
		ours = bsi_auth_check_commit(key, r, &anchor, &id);
		theirs = tu_sh(&res,
		               "cd '%s' && git -c gpg.ssh.allowedSignersFile=../allowed "
		               "verify-commit %s",
		               repo, line);
		ck_assert_msg((ours == 0) == (theirs == 0),
		              "commit %s: bsi %d (%s), git verify-commit %d (%s)", line, ours,
		              bsi_error_message(), theirs, res.err);
		if (ours == 0)
			good++;
		else
			bad++;
		tu_result_free(&res);
	}
	/* intro + 3 by A + 3 via sigtool are good; the other 7 kinds x 3 are not. */
	ck_assert_int_eq(good, 7);
	ck_assert_int_eq(bad, 21);
	git_repository_free(r);
	free(ids);
}
END_TEST

/* A signed raw commit split at its gpgsig header: the unsigned commit
 * (what the signature covers) and the armored signature. */
static void split_signed(const char *raw, char **out_unsigned, char **out_armor)
{
	const char *g = strstr(raw, "\ngpgsig ") + 1, *e = strstr(g, "\n\n") + 1, *p;
	char *a;

	ck_assert_int_ge(asprintf(out_unsigned, "%.*s%s", (int)(g - raw), raw, e), 0);
	a = *out_armor = malloc((size_t)(e - g));
	for (p = g + 7; p < e; p++) {
		*a++ = *p;
		if (*p == '\n' && p + 1 < e)
			p++; /* the continuation space */
	}
	*a = '\0';
}

/* One form of a signed commit, and the verdicts it must get. */
typedef struct {
	const char *name;
	char *raw;
	int want;        /* 1: both accept; 0: both refuse; -1: a twin, bsi refuses */
	const char *why; /* in bsi's message, or NULL */
} sig_form;

/* Add the form whose commit is `unsigned_raw` with `armor` as its gpgsig
 * header, written the way git writes it. */
static void add_form(sig_form *f, size_t *n, const char *name, const char *unsigned_raw,
                     const char *armor, int want, const char *why)
{
	f[*n].name = name;
	f[*n].raw = sigtool_commit_add_sig(unsigned_raw, strlen(unsigned_raw), armor);
	f[*n].want = want;
	f[*n].why = why;
	(*n)++;
}

/* Add the form whose SSHSIG blob is blob (len bytes), armored canonically. */
static void add_blob_form(sig_form *f, size_t *n, const char *name, const char *unsigned_raw,
                          const uint8_t *blob, size_t len, int want, const char *why)
{
	char *armor = sigtool_armor(blob, len);

	add_form(f, n, name, unsigned_raw, armor, want, why);
	free(armor);
}

/* The armor with each LF replaced by eol and `after` appended (malloc'd). */
static char *armor_variant(const char *armor, const char *eol, const char *after)
{
	char *out = malloc(3 * strlen(armor) + strlen(after) + 1), *w = out;

	for (const char *p = armor; *p; p++)
		w += *p == '\n' ? sprintf(w, "%s", eol) : sprintf(w, "%c", *p);
	strcpy(w, after);
	return out;
}

/*
 * One signed commit has one id.  A genuine commit signed by `git commit -S`
 * is re-encoded into "twins": the same signature in another form, which
 * anyone can make without the key.  Each form is stored with `git
 * hash-object -t commit -w` and judged by bsi and by `git verify-commit`
 * (allowed signers: the feed's .bsi/signers).  bsi refuses every twin; git
 * accepts most of them (ssh-keygen reads any armor layout and ignores the
 * reserved field), which is why bsi must be the stricter one.  bsi never
 * accepts what git refuses, and on the forms that are not twins both give
 * the same verdict.
 */
START_TEST(test_auth_signature_twins_refused_never_beyond_git)
{
	static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
	                                  0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	                                  0,    0,    0,    0,    0,    0,    0,    0,
	                                  0,    0,    0,    0,    0,    0,    0,    0x10};
	sig_form f[16];
	git_repository *r = NULL;
	git_oid c1;
	char *raw, *unsigned_raw, *armor, *v, *joined, *w;
	const char *b64, *b64_end, *g, *at, *end;
	uint8_t *blob, *m;
	size_t n = 0, len, i, git_accepted_twins = 0;
	sigtool_spec sha256 = {.hash = "sha256"}, reserved = {.reserved = "x"};

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	tu_must("cd '%s' && cp .bsi/signers ../allowed", repo);
	raw = cat_commit(&c1);
	split_signed(raw, &unsigned_raw, &armor);
	blob = sigtool_dearmor(armor, &len);
	m = malloc(len + 16);

	/* not twins: both must agree */
	f[n++] = (sig_form){"genuine (git commit -S)", strdup(raw), 1, NULL};
	v = sigtool_sign(skA, unsigned_raw, strlen(unsigned_raw), "git");
	add_form(f, &n, "signed in-process", unsigned_raw, v, 1, NULL);
	free(v);
	v = (char *)sigtool_blob(&len, &sha256, skA, unsigned_raw, strlen(unsigned_raw));
	add_blob_form(f, &n, "sha256", unsigned_raw, (uint8_t *)v, len, 1, NULL);
	free(v);
	v = (char *)sigtool_blob(&len, &reserved, skA, unsigned_raw, strlen(unsigned_raw));
	add_blob_form(f, &n, "reserved field signed over itself", unsigned_raw, (uint8_t *)v, len,
	              0, "reserved field holds 1 bytes");
	free(v);
	free(blob);
	blob = sigtool_dearmor(armor, &len);

	/* twins of the armor, in ways ssh-keygen reads */
	v = armor_variant(armor, "\r\n", "");
	add_form(f, &n, "CRLF line ends", unsigned_raw, v, -1, "differs at line 1");
	free(v);
	ck_assert_int_ge(asprintf(&v, "%.*s  \n", (int)strlen(armor) - 1, armor), 0);
	add_form(f, &n, "spaces after END", unsigned_raw, v, -1, "differs at line 6");
	free(v);
	v = armor_variant(armor, "\n", "\n");
	add_form(f, &n, "a blank line after END", unsigned_raw, v, -1, "differs at line 7");
	free(v);
	b64 = strchr(armor, '\n') + 1;
	b64_end = strstr(armor, "-----END");
	joined = w = malloc(strlen(armor));
	for (const char *p = b64; p < b64_end; p++)
		if (*p != '\n')
			*w++ = *p;
	*w = '\0';
	ck_assert_uint_eq(strlen(joined), 232);
	ck_assert_int_ge(asprintf(&v, "-----BEGIN SSH SIGNATURE-----\n%.64s\n%.64s\n%.64s\n%s\n"
	                              "-----END SSH SIGNATURE-----\n",
	                          joined, joined + 64, joined + 128, joined + 192),
	                 0);
	add_form(f, &n, "base64 in lines of 64", unsigned_raw, v, -1, "differs at line 2");
	free(v);
	free(joined);
	ck_assert_int_ge(asprintf(&v, "%.*s\n%s", (int)(b64 - armor), armor, b64), 0);
	add_form(f, &n, "a blank line before the base64", unsigned_raw, v, -1,
	         "differs at line 2");
	free(v);

	/* twin: the gpgsig header moved up, before author */
	at = strstr(raw, "\nauthor ") + 1;
	g = strstr(raw, "\ngpgsig ") + 1;
	end = strstr(g, "\n\n") + 1;
	ck_assert_int_ge(asprintf(&v, "%.*s%.*s%.*s%s", (int)(at - raw), raw, (int)(end - g), g,
	                          (int)(g - at), at, end),
	                 0);
	f[n++] = (sig_form){"gpgsig moved before author", v, -1, "not its last header"};

	/* twins in the blob, in fields the signature does not cover */
	memcpy(m, blob, len);
	m[9] = 0; /* "SSHSIG", then the version as a big-endian uint32 */
	add_blob_form(f, &n, "version 0", unsigned_raw, m, len, -1, "version 0 is not supported");
	/* reserved, an empty string at 6+4+(4+51)+(4+3), becomes "xyz" */
	memcpy(m, blob, 72);
	memcpy(m + 72, "\0\0\0\3xyz", 7);
	memcpy(m + 79, blob + 76, len - 76);
	add_blob_form(f, &n, "reserved field filled in", unsigned_raw, m, len + 3, -1,
	              "reserved field holds 3 bytes");
	memcpy(m, blob, len);
	sodium_add(m + len - 32, order, 32); /* S, little-endian, the blob's last bytes */
	add_blob_form(f, &n, "Ed25519 S + L", unsigned_raw, m, len, -1, "does not verify");

	ck_assert_int_eq(git_repository_open(&r, repo), 0);
	for (i = 0; i < n; i++) {
		git_oid id;
		uint8_t key[32];
		tu_result res;
		int ours, theirs;

		store_raw(&id, f[i].raw);
		ours = bsi_auth_check_commit(key, r, &anchor, &id) == 0;
		theirs = tu_sh(&res,
		               "cd '%s' && git -c gpg.ssh.allowedSignersFile=../allowed "
		               "verify-commit %s",
		               repo, hexof(&id)) == 0;
		fprintf(stderr, "  %-34s bsi %s, git verify-commit %s\n", f[i].name,
		        ours ? "accepts" : "refuses", theirs ? "accepts" : "refuses");
		ck_assert_msg(!ours || theirs, "%s: bsi accepts what git refuses", f[i].name);
		if (f[i].want >= 0)
			ck_assert_msg(ours == f[i].want && theirs == f[i].want,
			              "%s: bsi %d, git %d, expected both %d (%s)", f[i].name, ours,
			              theirs, f[i].want, bsi_error_message());
		else
			ck_assert_msg(!ours, "twin \"%s\" accepted by bsi", f[i].name);
		if (f[i].why)
			ck_assert_msg(strstr(bsi_error_message(), f[i].why) != NULL,
			              "%s: message '%s' lacks '%s'", f[i].name, bsi_error_message(),
			              f[i].why);
		git_accepted_twins += f[i].want < 0 && theirs;
		tu_result_free(&res);
		free(f[i].raw);
	}
	fprintf(stderr, "  git verify-commit accepted %zu of the twins\n", git_accepted_twins);
	git_repository_free(r);
	free(blob);
	free(m);
	free(armor);
	free(unsigned_raw);
	free(raw);
}
END_TEST

/* A malformed SSHSIG in a commit header is refused with the commit named. */
START_TEST(test_auth_malformed_signature_in_commit_refused)
{
	static const sigtool_spec specs[] = {
	    {.key_type = "ssh-rsa"}, {.version = 2},      {.outer_trailing = 1},
	    {.hash = "md5"},         {.magic = "SSHSIX"},
	};
	static const char *wants[] = {"key type 'ssh-rsa' is not supported (only ssh-ed25519",
	                              "version 2 is not supported", "trailing bytes",
	                              "hash algorithm 'md5'", "bad magic"};
	git_oid c1, bad;
	char *raw;
	size_t i;

	introduce("A");
	commit(&c1, NULL, "one", "echo 1 > f");
	raw = cat_commit(&c1);
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		size_t len;
		uint8_t *blob = sigtool_blob(&len, &specs[i], skA, raw, strlen(raw));
		char *armored = sigtool_armor(blob, len);
		char *signed_raw = sigtool_commit_add_sig(raw, strlen(raw), armored);

		store_raw(&bad, signed_raw);
		expect_refused(NULL, &bad, &bad, wants[i], NULL);
		free(blob);
		free(armored);
		free(signed_raw);
	}
	free(raw);
}
END_TEST

/*
 * Differential check on hostile signature headers: random edits inside the
 * gpgsig header of a good commit.  bsi may be stricter than git (it is on
 * purpose in a few places, see docs/trust.md), never more lenient: whatever
 * bsi accepts, git verify-commit accepts too.
 */
START_TEST(test_auth_mutated_headers_never_beyond_git)
{
	git_repository *r = NULL;
	git_oid c1, id;
	char *raw, *m, *start, *stop;
	uint32_t st = 4242;
	static const char alphabet[] = "AQz/+= \n-g";
	int i, accepted = 0;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	tu_must("cd '%s' && cp .bsi/signers ../allowed", repo);
	raw = cat_commit(&c1);
	start = strstr(raw, "gpgsig ");
	stop = strstr(raw, "-----END SSH SIGNATURE-----");
	ck_assert(start && stop);
	stop += 28;
	m = malloc(strlen(raw) + 1);
	ck_assert_int_eq(git_repository_open(&r, repo), 0);
	for (i = 0; i < 40; i++) {
		char path[4300];
		size_t pos;
		uint8_t key[32];
		tu_result res;
		int ours, theirs;

		strcpy(m, raw);
		st ^= st << 13;
		st ^= st >> 17;
		st ^= st << 5;
		pos = (size_t)(start - raw) + st % (size_t)(stop - start);
		m[pos] = alphabet[(st >> 8) % (sizeof(alphabet) - 1)];
		if (m[pos] == raw[pos])
			continue;
		snprintf(path, sizeof(path), "%s/mutant", dir);
		tu_write(path, m);
		if (tu_sh(&res, "cd '%s' && git hash-object --literally -t commit -w ../mutant",
		          repo) != 0) {
			tu_result_free(&res);
			continue;
		}
		res.out[strcspn(res.out, "\n")] = '\0';
		ck_assert_int_eq(git_oid_fromstr(&id, res.out), 0);
		tu_result_free(&res);
		ours = bsi_auth_check_commit(key, r, &anchor, &id);
		theirs = tu_sh(&res,
		               "cd '%s' && git -c gpg.ssh.allowedSignersFile=../allowed "
		               "verify-commit %s",
		               repo, hexof(&id));
		ck_assert_msg(ours != 0 || theirs == 0,
		              "bsi accepts a mutant git refuses (offset %zu): %s", pos, res.err);
		accepted += ours == 0;
		tu_result_free(&res);
	}
	/* Some mutants only touch whitespace git also ignores; most break it. */
	ck_assert_int_lt(accepted, 20);
	git_repository_free(r);
	free(m);
	free(raw);
}
END_TEST

/* feed verify on a working clone and a device's bare mirror: same verdicts. */
START_TEST(test_auth_working_clone_and_bare_mirror_agree)
{
	bsi_auth_list *a = NULL, *b = NULL;
	git_oid c1, bad;
	char mirror[4300], msg[4096];
	size_t i;

	introduce("A");
	commit(&c1, "A", "one", "echo 1 > f");
	snprintf(mirror, sizeof(mirror), "%s/mirror.git", dir);
	tu_must("git clone -q --mirror '%s' '%s'", repo, mirror);
	ck_assert_int_eq(bsi_auth_verify_path(&a, repo, NULL, &anchor), 0);
	ck_assert_int_eq(bsi_auth_verify_path(&b, mirror, "main", &anchor), 0);
	ck_assert_uint_eq(a->count, 2);
	ck_assert_uint_eq(b->count, a->count);
	for (i = 0; i < a->count; i++) {
		ck_assert(git_oid_equal(&a->items[i].id, &b->items[i].id));
		ck_assert_mem_eq(a->items[i].key, b->items[i].key, 32);
	}
	bsi_auth_list_free(a);
	bsi_auth_list_free(b);

	commit(&bad, "B", "by B", "echo 2 > f");
	tu_must("cd '%s' && git fetch -q", mirror);
	ck_assert_int_eq(bsi_auth_verify_path(&a, repo, NULL, &anchor), BSI_ETRUST);
	snprintf(msg, sizeof(msg), "%s", bsi_error_message());
	ck_assert_ptr_nonnull(strstr(msg, hexof(&bad)));
	ck_assert_int_eq(bsi_auth_verify_path(&b, mirror, "main", &anchor), BSI_ETRUST);
	ck_assert_str_eq(bsi_error_message(), msg);
	ck_assert_int_eq(bsi_auth_verify_path(&b, dir, NULL, &anchor), BSI_EFAIL);
	ck_assert_int_eq(bsi_auth_verify_path(&b, repo, "nosuchref", &anchor), BSI_EUSAGE);
}
END_TEST

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 10,000 commits from scratch: every one verified, each signers blob
 * parsed once.  Prints the rate next to git verify-commit's for the report;
 * `make bench` owns the real target. */
START_TEST(test_auth_ten_thousand_commits)
{
	git_repository *r = NULL;
	bsi_auth_list *list = NULL;
	git_oid head;
	char *pub = sigtool_pubkey_line(pkA), *text, hex[GIT_OID_HEXSZ + 1];
	double t0, ours, theirs;
	/* Under valgrind a tenth of the history keeps the suite bounded. */
	size_t n = getenv("BSI_VALGRIND") ? 1000 : 10000;
	int i;

	ck_assert_int_ge(asprintf(&text, "bench@example.org %s\n", pub), 0);
	ck_assert_int_eq(git_repository_open(&r, repo), 0);
	t0 = now();
	sigtool_history(&anchor.introduction, r, skA, NULL, 1, text);
	sigtool_history(&head, r, skA, &anchor.introduction, n - 1, text);
	fprintf(stderr, "auth bench: generated %zu signed commits in %.2fs\n", n, now() - t0);
	t0 = now();
	ck_assert_msg(bsi_auth_verify_range(&list, r, &anchor, NULL, &head, NULL) == 0, "%s",
	              bsi_error_message());
	ours = now() - t0;
	ck_assert_uint_eq(list->count, n);
	ck_assert(git_oid_equal(&list->items[n - 1].id, &head));
	bsi_auth_list_free(list);

	/* git's rate on a few of the same commits. */
	tu_must("cd '%s' && printf '%%s' '%s' > ../allowed", repo, text);
	t0 = now();
	for (i = 0; i < 5; i++)
		tu_must("cd '%s' && git -c gpg.ssh.allowedSignersFile=../allowed verify-commit "
		        "%s~%d 2>/dev/null",
		        repo, git_oid_tostr(hex, sizeof(hex), &head), i);
	theirs = (now() - t0) / 5;
	fprintf(stderr,
	        "auth bench: %zu commits in %.3fs (%.1f us/commit); git verify-commit "
	        "%.1f ms/commit; ratio %.0fx\n",
	        n, ours, ours / (double)n * 1e6, theirs * 1e3, theirs / (ours / (double)n));
	ck_assert_msg(ours < 20.0, "%zu commits took %.1fs", n, ours);
	git_repository_free(r);
	free(pub);
	free(text);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_auth_accepts_signed_history);
	tcase_add_test(tc, test_auth_unsigned_commit_refused);
	tcase_add_test(tc, test_auth_unknown_key_refused);
	tcase_add_test(tc, test_auth_self_authorization_refused);
	tcase_add_test(tc, test_auth_rotation_accepted_and_old_key_revoked);
	tcase_add_test(tc, test_auth_rollback_refused);
	tcase_add_test(tc, test_auth_rewritten_history_refused);
	tcase_add_test(tc, test_auth_corrupted_signature_refused);
	tcase_add_test(tc, test_auth_content_changed_after_signing_refused);
	tcase_add_test(tc, test_auth_other_namespace_refused);
	tcase_add_test(tc, test_auth_merge_needs_key_of_every_parent);
	tcase_add_test(tc, test_auth_introduction_by_other_key_refused);
	tcase_add_test(tc, test_auth_history_without_introduction_refused);
	tcase_add_test(tc, test_auth_unrelated_history_not_descending_refused);
	tcase_add_test(tc, test_auth_merged_unrelated_root_refused);
	tcase_add_test(tc, test_auth_ancestors_of_introduction_not_checked);
	tcase_add_test(tc, test_auth_signature_in_message_body_refused);
	tcase_add_test(tc, test_auth_removing_signers_refused);
	tcase_add_test(tc, test_auth_emptying_signers_refused);
	tcase_add_test(tc, test_auth_unusable_signers_line_refused);
	tcase_add_test(tc, test_auth_introduction_without_signers_refused);
	tcase_add_test(tc, test_auth_signers_symlink_refused);
	tcase_add_test(tc, test_auth_gpgsig_sha256_only_refused);
	tcase_add_test(tc, test_auth_cache_skips_known_commits_only_in_range);
	tcase_add_test(tc, test_auth_verdicts_match_git_verify_commit);
	tcase_add_test(tc, test_auth_malformed_signature_in_commit_refused);
	tcase_add_test(tc, test_auth_mutated_headers_never_beyond_git);
	tcase_add_test(tc, test_auth_signature_twins_refused_never_beyond_git);
	tcase_add_test(tc, test_auth_working_clone_and_bare_mirror_agree);
	tcase_add_test(tc, test_auth_ten_thousand_commits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(auth_suite());
}
