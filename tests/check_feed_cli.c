/*
 * The signed feed through the real binary: enroll, sync from a git daemon
 * on 127.0.0.1, refusals that change nothing, payload pins, staleness,
 * apply / rollback / verify on a device image, and concurrent applies.
 */
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir, feed[4096], key[4096], image[4096], state[4096], conf[4096], g[16384];
static char intro[41];

#define ASSERT_HAS(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

static void setup(void)
{
	dir = tu_tmpdir();
	snprintf(feed, sizeof(feed), "%s/feed", dir);
	snprintf(key, sizeof(key), "%s/team_key", dir);
	snprintf(image, sizeof(image), "%s/device", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	tu_signed_feed(feed, key, intro);
	tu_sample_image("current", image);
	tu_write(conf, "service_manager = \"record\"\n");
	snprintf(g, sizeof(g), "--root '%s' --state '%s' --config '%s'", image, state, conf);
}

static void teardown(void)
{
	tu_git_daemon_stop();
	tu_cleanup();
}

/* enroll this device in url with the team key */
static void enroll(const char *url)
{
	char *pub = tu_pubkey(key);
	tu_result r;

	ck_assert_msg(tu_bsi(&r, "%s enroll '%s' --introduction %s --signer '%s'", g, url, intro,
			     pub) == 0,
		      "enroll failed: %s", r.err);
	tu_result_free(&r);
	free(pub);
}

/* status --json, parsed */
static json_t *status_json(void)
{
	json_error_t jerr;
	json_t *doc;
	tu_result r;

	ck_assert_int_eq(tu_bsi(&r, "%s status --json", g), 0);
	doc = json_loads(r.out, 0, &jerr);
	ck_assert_msg(doc != NULL, "not JSON: %s\n%s", jerr.text, r.out);
	tu_result_free(&r);
	return doc;
}

static const char *head_of(json_t *status)
{
	return json_string_value(json_object_get(json_object_get(status, "feed"), "head"));
}

static const char *status_of(json_t *status, const char *id)
{
	size_t i;
	json_t *imp;

	json_array_foreach(json_object_get(status, "improvements"), i, imp)
		if (strcmp(json_string_value(json_object_get(imp, "id")), id) == 0)
			return json_string_value(json_object_get(imp, "status"));
	return "(absent)";
}

/*
 * README's "Start a feed" block, run as written by a newcomer (a HOME of
 * its own, bsi on PATH, an empty passphrase typed twice; setsid, so that
 * ssh-keygen reads it from stdin even under a terminal): it must make a
 * feed that `bsi feed verify` accepts and that a device enrolled with the
 * printed command syncs.
 */
START_TEST(test_feed_cli_readme_start_a_feed_block_works)
{
	char home[4200], bin[4200], *enroll_line, *nl, cmd[32768];
	tu_result r;

	snprintf(home, sizeof(home), "%s/home", dir);
	snprintf(bin, sizeof(bin), "%s", tu_build_path("bsi"));
	*strrchr(bin, '/') = '\0';
	tu_must("mkdir -p '%s/.ssh' && chmod 700 '%s' '%s/.ssh' && "
		"sed -n '/<!-- start-a-feed/,/<!-- end start-a-feed/p' README.md | "
		"sed -n '/^```sh$/,/^```$/p' | sed '1d;$d' > '%s/block.sh' && "
		"test $(wc -l < '%s/block.sh') -ge 8",
		home, home, home, home, home);
	ck_assert_int_eq(tu_sh(&r, "cd '%s' && printf '\\n\\n' | env HOME='%s' PATH='%s':\"$PATH\" "
				   "GIT_AUTHOR_NAME=Team GIT_AUTHOR_EMAIL=team@example.org "
				   "GIT_COMMITTER_NAME=Team GIT_COMMITTER_EMAIL=team@example.org "
				   "GIT_CONFIG_GLOBAL=/dev/null setsid -w bash -e block.sh",
			       home, home, bin),
			 0);
	ck_assert_msg(strstr(r.out, "bsi enroll URL --introduction ") != NULL, "%s\n%s", r.out,
		      r.err);
	enroll_line = strstr(r.out, "bsi enroll URL ");
	if ((nl = strchr(enroll_line, '\n')))
		*nl = '\0';
	/* the printed command, with the feed's path for URL */
	snprintf(cmd, sizeof(cmd), "%s enroll '%s/feed' %s", g, home,
		 enroll_line + strlen("bsi enroll URL "));
	tu_result_free(&r);
	ck_assert_msg(tu_bsi(&r, "%s", cmd) == 0, "enroll: %s", r.err);
	tu_result_free(&r);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "sync: %s", r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "1 new commit authenticated"));
	tu_result_free(&r);
	/* feed verify --json: the introduction and each commit with its signer */
	ck_assert_int_eq(tu_bsi(&r, "feed verify --json '%s/feed'", home), 0);
	{
		json_t *doc = json_loads(r.out, 0, NULL), *c;

		ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
		c = json_array_get(json_object_get(doc, "commits"), 0);
		ck_assert_int_eq(json_array_size(json_object_get(doc, "commits")), 1);
		ck_assert_str_eq(json_string_value(json_object_get(c, "id")),
				 json_string_value(json_object_get(doc, "introduction")));
		ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(c, "signer")),
					     "SHA256:"));
		json_decref(doc);
	}
	tu_result_free(&r);
}
END_TEST

START_TEST(test_feed_cli_sync_from_git_daemon)
{
	char url[4200];
	json_t *st;
	tu_result r;
	int port;

	tu_must("git clone -q --bare '%s' '%s/served/feed.git'", feed, dir);
	snprintf(url, sizeof(url), "%s/served", dir);
	port = tu_git_daemon_start(url);
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/feed.git", port);
	enroll(url);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "sync failed: %s", r.err);
	ASSERT_HAS(r.out, "1 new commit authenticated");
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(head_of(st), intro);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(st, "feed"), "url")), url);
	ck_assert_str_eq(status_of(st, "webkit-26.0.2-a"), "pending");
	json_decref(st);
	/* a second sync with nothing new is quick and says so */
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	ASSERT_HAS(r.out, "up to date");
	tu_result_free(&r);
	/* the same for a tool */
	ck_assert_int_eq(tu_bsi(&r, "%s sync --json", g), 0);
	st = json_loads(r.out, 0, NULL);
	ck_assert_msg(st != NULL, "not JSON: %s", r.out);
	ck_assert_str_eq(json_string_value(json_object_get(st, "head")), intro);
	ck_assert_str_eq(json_string_value(json_object_get(st, "previous")), intro);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "new_commits")), 0);
	ck_assert(json_is_true(json_object_get(st, "up_to_date")));
	ck_assert_int_eq(json_integer_value(json_object_get(st, "schema")), 1);
	json_decref(st);
	tu_result_free(&r);
	/* a server that went away: exit 1, head unchanged */
	tu_git_daemon_stop();
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 1);
	ASSERT_HAS(r.err, "fetch from git://127.0.0.1");
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(head_of(st), intro);
	json_decref(st);
}
END_TEST

/* rev in git repository repo, as 40 hex, into out. */
static void rev_of(char out[41], const char *repo, const char *rev)
{
	tu_result r;

	ck_assert_int_eq(tu_sh(&r, "git -C '%s' rev-parse '%s'", repo, rev), 0);
	snprintf(out, 41, "%.40s", r.out);
	tu_result_free(&r);
}

/*
 * A hostile server answers one sync with a "twin" of the team's next
 * commit: the same signed content and signature, one line added to the
 * signature header (git verify-commit still accepts it), so another id.
 * Trusted, it would make every genuine head after it "rewritten history"
 * and cut the device off for good.  Refused (exit 3, naming the commit
 * and why), it changes nothing: the next honest answer syncs.
 */
START_TEST(test_feed_cli_twin_served_once_does_not_cut_off)
{
	char served[4200], url[4200], genuine[41], twin[41], next[41];
	json_t *st;
	tu_result r;
	int port;

	snprintf(served, sizeof(served), "%s/served/feed.git", dir);
	tu_must("git clone -q --bare '%s' '%s'", feed, served);
	snprintf(url, sizeof(url), "%s/served", dir);
	port = tu_git_daemon_start(url);
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/feed.git", port);
	enroll(url);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);

	tu_must("echo 'release notes' > '%s/NOTES'", feed);
	tu_feed_commit(feed, key, "notes");
	rev_of(genuine, feed, "HEAD");
	tu_must("git -C '%s' push -q '%s' main", feed, served);
	/* the server swaps in the twin */
	tu_must("cd '%s' && git cat-file commit %s | "
		"sed 's/^ -----END SSH SIGNATURE-----$/&\\n /' > ../twin && "
		"git hash-object -t commit -w ../twin > ../twin.id && "
		"git update-ref refs/heads/main $(cat ../twin.id) && "
		"git -c gpg.ssh.allowedSignersFile='%s/.bsi/signers' verify-commit main 2>/dev/null",
		served, genuine, feed);
	rev_of(twin, served, "main");
	ck_assert_str_ne(twin, genuine);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 3);
	ASSERT_HAS(r.err, twin);
	ASSERT_HAS(r.err, "from the form ssh-keygen writes");
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(head_of(st), intro);
	json_decref(st);

	/* the server is honest again, and the team has moved on */
	tu_must("echo 'more notes' >> '%s/NOTES'", feed);
	tu_feed_commit(feed, key, "more notes");
	rev_of(next, feed, "HEAD");
	tu_must("git -C '%s' push -q --force '%s' main", feed, served);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "sync after the twin: %s", r.err);
	ASSERT_HAS(r.out, "2 new commits authenticated");
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(head_of(st), next);
	json_decref(st);
}
END_TEST

START_TEST(test_feed_cli_enroll_refuses_bad_anchor)
{
	char *pub = tu_pubkey(key);
	tu_result r;

	ck_assert_int_eq(tu_bsi(&r, "%s enroll '%s' --introduction abc --signer '%s'", g, feed, pub), 2);
	ASSERT_HAS(r.err, "not a full 40-digit commit id");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s enroll '%s' --introduction %s --signer 'ssh-rsa AAAAB3Nza'",
				g, feed, intro), 2);
	ASSERT_HAS(r.err, "--signer");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s enroll '%s' --introduction %s", g, feed, intro), 2);
	tu_result_free(&r);
	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s enroll '%s' --introduction %s --signer '%s'", g, feed, intro,
				pub), 2);
	ASSERT_HAS(r.err, "already enrolled");
	tu_result_free(&r);
	free(pub);
}
END_TEST

/* A commit by a key the feed does not authorize: exit 3, the message names
 * the commit, the signer and the rule; head, device and history unchanged. */
START_TEST(test_feed_cli_refused_sync_changes_nothing)
{
	char mallory[4200], *dev_before, *dev_after, bad[41];
	json_t *st;
	tu_result r, h1, h2;

	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	snprintf(mallory, sizeof(mallory), "%s/mallory_key", dir);
	tu_must("ssh-keygen -q -t ed25519 -N '' -f '%s' && echo evil >> '%s/payloads/safari/Safari-26.0.1'",
		mallory, feed);
	tu_feed_commit(feed, mallory, "update");
	tu_sh(&r, "git -C '%s' rev-parse HEAD", feed);
	snprintf(bad, sizeof(bad), "%.40s", r.out);
	tu_result_free(&r);
	dev_before = tu_tree_fingerprint(image);
	tu_bsi(&h1, "%s history", g);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 3);
	ASSERT_HAS(r.err, bad);
	ASSERT_HAS(r.err, "SHA256:");
	ASSERT_HAS(r.err, "not in .bsi/signers of parent");
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(head_of(st), intro);
	json_decref(st);
	tu_bsi(&h2, "%s history", g);
	ck_assert_str_eq(h1.out, h2.out);
	dev_after = tu_tree_fingerprint(image);
	ck_assert_str_eq(dev_before, dev_after);
	free(dev_before);
	free(dev_after);
	tu_result_free(&h1);
	tu_result_free(&h2);
}
END_TEST

/* The team signs a commit whose libc payload is not what its recipe pins;
 * the device enrolls and syncs it (authentic, so the sync succeeds). */
static void sync_a_signed_bad_payload(void)
{
	tu_result r;

	tu_must("echo oops >> '%s/payloads/corelibs/libSystem-26.0.1'", feed);
	tu_feed_commit(feed, key, "a bad payload, signed");
	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
}

/* The entry of improvement id in a status --json document (borrowed);
 * the test fails when there is none. */
static json_t *find_improvement(json_t *doc, const char *id)
{
	json_t *imp;
	size_t i;

	json_array_foreach(json_object_get(doc, "improvements"), i, imp)
		if (strcmp(json_string_value(json_object_get(imp, "id")), id) == 0)
			return imp;
	ck_abort_msg("no improvement %s", id);
	return NULL;
}

/* A signed commit whose payload does not match its recipe's pin: the sync
 * is authentic; that improvement is in error (exit 3, its file untouched),
 * and every other due improvement plans and applies; status, show, hold,
 * release and verify work and say which one is broken. */
START_TEST(test_feed_cli_payload_mismatch_refused)
{
	const char *libc = "usr/lib/libSystem.B.dylib";
	char *before, *after;
	json_t *doc, *imp;
	tu_result r;

	sync_a_signed_bad_payload();
	before = tu_file_digest(image, libc);
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 3);
	ASSERT_HAS(r.out, "corelibs corelibs-26.0.1-libc [medium] error\n");
	ASSERT_HAS(r.out, "payloads/corelibs/libSystem-26.0.1 has sha256:");
	ASSERT_HAS(r.out, "corelibs corelibs-26.0.1-imageio [critical] pending\n");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 3);
	ASSERT_HAS(r.err, "corelibs-26.0.1-libc: not applied: recipes/corelibs.lua:");
	ASSERT_HAS(r.err, "but the recipe pins sha256:a6ec9c9ccd50");
	ASSERT_HAS(r.out, "applied corelibs-26.0.1-imageio");
	ASSERT_HAS(r.out, "applied safari-26.0.1-a");
	tu_result_free(&r);
	after = tu_file_digest(image, libc);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);

	/* the admin sees it, with where and why; status itself succeeds */
	ck_assert_int_eq(tu_bsi(&r, "%s status --json", g), 0);
	doc = json_loads(r.out, 0, NULL);
	ck_assert_ptr_nonnull(doc);
	imp = find_improvement(doc, "corelibs-26.0.1-libc");
	ck_assert_str_eq(json_string_value(json_object_get(imp, "status")), "error");
	ck_assert_str_eq(json_string_value(json_object_get(imp, "file")), "recipes/corelibs.lua");
	ck_assert_int_gt(json_integer_value(json_object_get(imp, "line")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(imp, "code")), 3);
	ck_assert_msg(strstr(json_string_value(json_object_get(imp, "reason")),
			     "payloads/corelibs/libSystem-26.0.1 has sha256:") != NULL,
		      "%s", r.out);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "errors")), 0);
	json_decref(doc);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 0);
	ASSERT_HAS(r.out, "  error           medium    corelibs-26.0.1-libc");
	ASSERT_HAS(r.out, "  applied         critical  corelibs-26.0.1-imageio");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s show corelibs-26.0.1-libc", g), 0);
	ASSERT_HAS(r.out, "    error:      recipes/corelibs.lua:");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s hold corelibs-26.0.1-libc", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s release corelibs-26.0.1-libc", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s verify", g), 0);
	ASSERT_HAS(r.out, "applied   corelibs-26.0.1-imageio");
	tu_result_free(&r);
	/* asked for by name, a healthy one applies and says nothing of the rest */
	ck_assert_int_eq(tu_bsi(&r, "%s apply corelibs-26.0.1-imageio", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply corelibs-26.0.1-libc", g), 3);
	ASSERT_HAS(r.err, "corelibs-26.0.1-libc: not applied:");
	tu_result_free(&r);
}
END_TEST

/* Run one SQL statement on the device's state database; true when it
 * yields a row. */
static bool state_sql(const char *stmt)
{
	char db[4200];
	sqlite3 *h;
	sqlite3_stmt *q;
	int rc;

	snprintf(db, sizeof(db), "%s/state.db", state);
	ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(h, stmt, -1, &q, NULL) == SQLITE_OK, "%s: %s", stmt,
		      sqlite3_errmsg(h));
	rc = sqlite3_step(q);
	ck_assert_msg(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", stmt, sqlite3_errmsg(h));
	sqlite3_finalize(q);
	sqlite3_close(h);
	return rc == SQLITE_ROW;
}

/*
 * A pending improvement's payload is hashed once per git blob, not on
 * every plan while it waits (the payload cache).  What the cache says
 * never reaches the device unchecked: here the cache is made to vouch
 * for a payload that does not match its pin, the plan believes it, and
 * the apply still refuses it when staging hashes the bytes it copies.
 */
START_TEST(test_feed_cli_payload_cache_cannot_let_a_bad_payload_in)
{
	const char *pin = "sha256:a6ec9c9ccd50"; /* corelibs-26.0.1-libc's `to` */
	char blob[64], want[512], stmt[512], *before, *after;
	tu_result r;

	sync_a_signed_bad_payload();
	tu_sh(&r, "git -C '%s' rev-parse HEAD:payloads/corelibs/libSystem-26.0.1", feed);
	ck_assert_int_eq(r.status, 0);
	snprintf(blob, sizeof(blob), "%.40s", r.out);
	tu_result_free(&r);
	before = tu_tree_fingerprint(image);

	/* The plan hashes it, refuses it, and remembers the blob's digest. */
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 3);
	ASSERT_HAS(r.out, "payloads/corelibs/libSystem-26.0.1 has sha256:");
	tu_result_free(&r);
	tu_sh(&r, "sha256sum '%s/payloads/corelibs/libSystem-26.0.1'", feed);
	snprintf(want, sizeof(want), "SELECT 1 FROM payload_cache WHERE blob = '%s' AND "
				     "digest = 'sha256:%.64s'", blob, r.out);
	tu_result_free(&r);
	ck_assert_msg(state_sql(want), "the plan did not remember %s", blob);

	/* Poison the cache with the pinned digest: the plan now trusts it... */
	tu_sh(&r, "grep -o '%s[0-9a-f]*' '%s/recipes/corelibs.lua' | head -1", pin, feed);
	ck_assert_msg(strncmp(r.out, pin, strlen(pin)) == 0, "pin not found: %s", r.out);
	snprintf(stmt, sizeof(stmt), "UPDATE payload_cache SET digest = '%.71s' WHERE blob = '%s'",
		 r.out, blob);
	tu_result_free(&r);
	state_sql(stmt);
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 0);
	tu_result_free(&r);
	/* ...but staging hashes what it copies, and refuses it: nothing changed. */
	ck_assert_int_eq(tu_bsi(&r, "%s apply corelibs-26.0.1-libc", g), 3);
	ASSERT_HAS(r.err, "payload payloads/corelibs/libSystem-26.0.1 for ");
	ASSERT_HAS(r.err, "refusing it");
	tu_result_free(&r);
	after = tu_tree_fingerprint(image);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

/* The state grows with what the device does, not with what the feed
 * lists: a feed of 300 improvements that do not apply here (generated by a
 * loop in one recipe) leaves no row behind; what is applied does. */
START_TEST(test_feed_cli_state_grows_with_what_is_applied)
{
	char path[4200];
	tu_result r;

	snprintf(path, sizeof(path), "%s/recipes/zz-many.lua", feed);
	tu_write(path, "local list = {}\n"
		       "for i = 1, 300 do list[i] = { id = 'zz-' .. i, summary = 's', fixes = {},\n"
		       "  severity = 'low', apply = function(c)\n"
		       "    c:replace('opt/none-' .. i, { from = 'sha256:' .. ('0'):rep(64),\n"
		       "      to = 'sha256:' .. ('1'):rep(64), payload = 'payloads/none' }) end } end\n"
		       "return { component = 'zz', improvements = list }\n");
	tu_feed_commit(feed, key, "300 improvements for other devices");
	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 0);
	tu_result_free(&r);
	ck_assert(!state_sql("SELECT 1 FROM improvements WHERE id LIKE 'zz-%'"));
	ck_assert(state_sql("SELECT 1 FROM improvements WHERE id = 'webkit-26.0.2-a' AND "
			    "status = 'applied'"));
	ck_assert(state_sql("SELECT 1 WHERE (SELECT count(*) FROM improvements) = 6"));
}
END_TEST

/* A payload cache that cannot be used (here: a table of the wrong shape,
 * as a damaged or foreign state might hold) costs hashing, not the plan or
 * the apply. */
START_TEST(test_feed_cli_broken_payload_cache_is_only_slower)
{
	tu_result r;

	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	state_sql("DROP TABLE payload_cache");
	state_sql("CREATE TABLE payload_cache (x)");
	ck_assert_msg(tu_bsi(&r, "%s plan", g) == 0, "plan: %s", r.err);
	ASSERT_HAS(r.out, "corelibs-26.0.1-tls");
	tu_result_free(&r);
	ck_assert_msg(tu_bsi(&r, "%s apply", g) == 0, "apply: %s", r.err);
	ASSERT_HAS(r.out, "applied corelibs-26.0.1-tls");
	tu_result_free(&r);
}
END_TEST

/* `bsi status` (text, or parsed JSON when doc is non-NULL) with
 * max_feed_age set to max_age seconds. */
static void status_with_max_age(tu_result *text, json_t **doc, long max_age)
{
	char fast[4200], args[16384];
	json_error_t jerr;
	tu_result r;

	snprintf(fast, sizeof(fast), "%s/fast.conf", dir);
	{
		char text_conf[128];

		snprintf(text_conf, sizeof(text_conf),
			 "service_manager = \"record\"\nmax_feed_age = %ld\n", max_age);
		tu_write(fast, text_conf);
	}
	snprintf(args, sizeof(args), "--root '%s' --state '%s' --config '%s'", image, state, fast);
	ck_assert_int_eq(tu_bsi(text, "%s status", args), 0);
	ck_assert_int_eq(tu_bsi(&r, "%s status --json", args), 0);
	*doc = json_loads(r.out, 0, &jerr);
	ck_assert_msg(*doc != NULL, "not JSON: %s\n%s", jerr.text, r.out);
	tu_result_free(&r);
}

/* Text and JSON agree on staleness; returns it. */
static bool stale_with_max_age(long max_age)
{
	json_t *doc, *f;
	tu_result r;
	bool text_stale, json_stale;

	status_with_max_age(&r, &doc, max_age);
	f = json_object_get(doc, "feed");
	text_stale = strstr(r.out, "STALE:") != NULL;
	json_stale = json_is_true(json_object_get(f, "stale"));
	ck_assert_msg(text_stale == json_stale, "text says %s, JSON says %s:\n%s",
		      text_stale ? "stale" : "fresh", json_stale ? "stale" : "fresh", r.out);
	tu_result_free(&r);
	json_decref(doc);
	return json_stale;
}

static json_int_t feed_int(const char *field)
{
	json_t *st = status_json();
	json_int_t v = json_integer_value(json_object_get(json_object_get(st, "feed"), field));

	json_decref(st);
	return v;
}

/*
 * Staleness is measured by the device's clock from when it first trusted
 * the head, never from the head's commit date, which its signer wrote: a
 * head dated 1970 that was just synced is fresh, and a head dated 2100
 * (which used to silence the alarm for good) goes stale like any other
 * once the feed stops moving.  Text and JSON always agree.
 */
START_TEST(test_feed_cli_staleness_ignores_commit_dates)
{
	tu_result r;
	json_t *doc;

	tu_must("cd '%s' && echo 1970 > NOTES && git add -A && GIT_COMMITTER_DATE='@0 +0000' "
		"git -c user.name=T -c user.email=t@b -c gpg.format=ssh -c user.signingKey='%s' "
		"commit -q -S -m 'dated 1970'",
		feed, key);
	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(feed_int("head_time"), 0);
	ck_assert(!stale_with_max_age(14 * 86400));
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 0);
	ASSERT_HAS(r.out, "committed 1970-01-01 00:00 UTC");
	tu_result_free(&r);

	tu_must("cd '%s' && echo 2100 > NOTES && git add -A && "
		"GIT_COMMITTER_DATE='@4102444800 +0000' git -c user.name=T -c user.email=t@b "
		"-c gpg.format=ssh -c user.signingKey='%s' commit -q -S -m 'dated 2100'",
		feed, key);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(feed_int("head_time"), 4102444800);
	ck_assert(!stale_with_max_age(14 * 86400));
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 0);
	ASSERT_HAS(r.out, "committed 2100-01-01 00:00 UTC (in the future by this device's clock)");
	tu_result_free(&r);
	/* the feed stops moving: past max_feed_age (1 s here) it is stale,
	 * though its head claims to come from the future */
	sleep(2);
	ck_assert(stale_with_max_age(1));
	status_with_max_age(&r, &doc, 1);
	ASSERT_HAS(r.out, "STALE: this device has had the same feed head for");
	ck_assert_int_ge(json_integer_value(json_object_get(json_object_get(doc, "feed"),
							    "age_seconds")),
			 2);
	tu_result_free(&r);
	json_decref(doc);
}
END_TEST

/*
 * A feed that stops moving is flagged even while every sync succeeds: a
 * server withholding new commits (a freeze) answers each sync with the
 * head the device already has, and that must not count as fresh.  The
 * next new head clears the flag.
 */
START_TEST(test_feed_cli_feed_that_stops_moving_goes_stale)
{
	json_int_t seen, synced;
	tu_result r;

	enroll(feed);
	/* enrolled just now (an hour of slack: under valgrind two status runs
	 * take more than the 1 s this once allowed, and text and JSON then
	 * disagreed only because the clock moved between them) */
	ck_assert(!stale_with_max_age(3600));
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	seen = feed_int("head_seen_at");
	ck_assert_int_gt(seen, 0);
	sleep(2);
	ck_assert(stale_with_max_age(1));
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	ASSERT_HAS(r.out, "up to date");
	tu_result_free(&r);
	synced = feed_int("synced_at");
	ck_assert_int_gt(synced, seen);
	ck_assert_int_eq(feed_int("head_seen_at"), seen);
	ck_assert(stale_with_max_age(1));
	/* the team publishes: fresh again */
	tu_must("echo 'notes' > '%s/NOTES'", feed);
	tu_feed_commit(feed, key, "notes");
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_ge(feed_int("head_seen_at"), synced);
	ck_assert(!stale_with_max_age(14 * 86400));
}
END_TEST

/*
 * A superseded fix reads "superseded" only while its successor covers the
 * device.  Once the successor is rolled back here, the older fix keeps its
 * own status (pending: a signed fix for a live vulnerability), and after
 * both are rolled back both read rolled back, never "superseded by".
 */
START_TEST(test_feed_cli_superseded_only_while_the_successor_covers)
{
	json_t *st;
	tu_result r;

	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "webkit-26.0.1-a"), "not-applicable");
	json_decref(st);
	ck_assert_int_eq(tu_bsi(&r, "%s apply webkit-26.0.2-a", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s rollback webkit-26.0.2-a", g), 0);
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "webkit-26.0.2-a"), "rolled-back");
	ck_assert_str_eq(status_of(st, "webkit-26.0.1-a"), "pending");
	json_decref(st);
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 0);
	ck_assert_msg(strstr(r.out, "superseded by") == NULL, "%s", r.out);
	tu_result_free(&r);
	/* the older fix installs, then goes back too */
	ck_assert_int_eq(tu_bsi(&r, "%s apply webkit-26.0.1-a", g), 0);
	ASSERT_HAS(r.out, "applied webkit-26.0.1-a");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s rollback webkit-26.0.1-a", g), 0);
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "webkit-26.0.1-a"), "rolled-back");
	ck_assert_str_eq(status_of(st, "webkit-26.0.2-a"), "rolled-back");
	json_decref(st);
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 0);
	ck_assert_msg(strstr(r.out, "superseded by") == NULL, "%s", r.out);
	tu_result_free(&r);
	/* applying the successor on purpose covers the device again */
	ck_assert_int_eq(tu_bsi(&r, "%s apply webkit-26.0.2-a", g), 0);
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "webkit-26.0.2-a"), "applied");
	ck_assert_str_eq(status_of(st, "webkit-26.0.1-a"), "not-applicable");
	json_decref(st);
}
END_TEST

/* apply, rollback (byte-identical), apply again on purpose, verify tells
 * tampered apart; exit codes as documented. */
START_TEST(test_feed_cli_apply_rollback_verify)
{
	char *orig, *now, lib[4200];
	json_t *st;
	tu_result r;

	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	snprintf(lib, sizeof(lib), "%s/usr/lib/libboringssl.dylib", image);
	tu_must("chmod 0640 '%s'", lib);
	orig = tu_read(lib);
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 0);
	ASSERT_HAS(r.out, "applied corelibs-26.0.1-tls: 1 file replaced; restarted com.apple.trustd");
	tu_result_free(&r);
	now = tu_read(lib);
	ck_assert_str_ne(orig, now);
	free(now);
	ck_assert_int_eq(tu_sh(&r, "stat -c %%a '%s'", lib), 0);
	ck_assert_str_eq(r.out, "640\n");
	tu_result_free(&r);
	/* a second apply does nothing and restarts nothing */
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 0);
	ASSERT_HAS(r.out, "nothing to apply");
	tu_result_free(&r);
	ck_assert_int_eq(tu_sh(&r, "grep -c trustd '%s/restarts.log'", state), 0);
	ck_assert_str_eq(r.out, "1\n");
	tu_result_free(&r);
	/* rollback restores the original byte for byte, and sticks */
	ck_assert_int_eq(tu_bsi(&r, "%s rollback corelibs-26.0.1-tls", g), 0);
	tu_result_free(&r);
	now = tu_read(lib);
	ck_assert_str_eq(orig, now);
	free(now);
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 0);
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "corelibs-26.0.1-tls"), "rolled-back");
	ck_assert_str_eq(status_of(st, "safari-26.0.1-a"), "applied");
	json_decref(st);
	/* on purpose, for a tool: what was applied, what was not, and why */
	ck_assert_int_eq(tu_bsi(&r, "%s apply --json corelibs-26.0.1-tls", g), 0);
	st = json_loads(r.out, 0, NULL);
	ck_assert_msg(st != NULL, "not JSON: %s", r.out);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(st, "applied"), 0)),
			 "corelibs-26.0.1-tls");
	ck_assert_int_eq(json_array_size(json_object_get(st, "not_applied")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(st, "errors")), 0);
	json_decref(st);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s rollback --json corelibs-26.0.1-tls", g), 0);
	st = json_loads(r.out, 0, NULL);
	ck_assert_msg(st != NULL, "not JSON: %s", r.out);
	ck_assert_str_eq(json_string_value(json_object_get(st, "rolled_back")),
			 "corelibs-26.0.1-tls");
	json_decref(st);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply corelibs-26.0.1-tls", g), 0);
	ASSERT_HAS(r.out, "applied corelibs-26.0.1-tls");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s verify", g), 0);
	ASSERT_HAS(r.out, "applied   corelibs-26.0.1-tls");
	tu_result_free(&r);
	/* someone edits a patched file: tampered, exit 3 */
	tu_must("echo x >> '%s/Applications/Safari.app/Contents/MacOS/Safari'", image);
	ck_assert_int_eq(tu_bsi(&r, "%s verify", g), 3);
	ASSERT_HAS(r.out, "tampered  safari-26.0.1-a");
	ASSERT_HAS(r.err, "1 improvement is tampered");
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "safari-26.0.1-a"), "tampered");
	json_decref(st);
	ck_assert_int_eq(tu_bsi(&r, "%s apply no-such-fix", g), 2);
	ASSERT_HAS(r.err, "no improvement \"no-such-fix\"");
	tu_result_free(&r);
	free(orig);
}
END_TEST

START_TEST(test_feed_cli_hold_and_release)
{
	json_t *st;
	tu_result r;

	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s hold safari-26.0.1-a", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 0);
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "safari-26.0.1-a"), "held");
	ck_assert_str_eq(status_of(st, "safari-26.0.1-b"), "applied");
	json_decref(st);
	ck_assert_int_eq(tu_bsi(&r, "%s release safari-26.0.1-a", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 0);
	ASSERT_HAS(r.out, "applied safari-26.0.1-a");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s show safari-26.0.1-a --json", g), 0);
	ASSERT_HAS(r.out, "\"status\": \"applied\"");
	ASSERT_HAS(r.out, "\"action\": \"hold\"");
	tu_result_free(&r);
}
END_TEST

/* A full OS update replaces a patched file with a version the feed never
 * named and moves the OS version on: obsolete, not tampered (exit 0). */
START_TEST(test_feed_cli_full_update_is_obsolete)
{
	json_t *st;
	tu_result r;

	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s apply corelibs-26.0.1-libc", g), 0);
	tu_result_free(&r);
	tu_must("cd '%s' && sed -i 's/<string>26.0</<string>26.1</' "
		"System/Library/CoreServices/SystemVersion.plist && "
		"echo 'libSystem 26.1 from the full update' > usr/lib/libSystem.B.dylib",
		image);
	ck_assert_int_eq(tu_bsi(&r, "%s verify", g), 0);
	ASSERT_HAS(r.out, "obsolete  corelibs-26.0.1-libc: usr/lib/libSystem.B.dylib was replaced");
	ASSERT_HAS(r.out, "requires macOS 26.0 (device has 26.1)");
	tu_result_free(&r);
	st = status_json();
	ck_assert_str_eq(status_of(st, "corelibs-26.0.1-libc"), "obsolete");
	json_decref(st);
}
END_TEST

/* Two applies at once: one applies, the other waits (--wait) or exits 5;
 * files, state and the restart log are as after one apply. */
START_TEST(test_feed_cli_two_applies_at_once)
{
	tu_result r;

	enroll(feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_sh(&r,
			       "'%s' %s apply > '%s/a.out' 2>&1 & a=$!; '%s' %s apply > '%s/b.out' 2>&1 & "
			       "b=$!; wait $a; ea=$?; wait $b; eb=$?; echo $ea $eb",
			       tu_build_path("bsi"), g, dir, tu_build_path("bsi"), g, dir),
			 0);
	ck_assert_msg(strcmp(r.out, "0 0\n") == 0 || strcmp(r.out, "0 5\n") == 0 ||
			      strcmp(r.out, "5 0\n") == 0,
		      "exit statuses: %s", r.out);
	tu_result_free(&r);
	/* each service restarted exactly once */
	ck_assert_int_eq(tu_sh(&r, "sort '%s/restarts.log' | uniq -d | wc -l; wc -l < '%s/restarts.log'",
			       state, state), 0);
	ck_assert_str_eq(r.out, "0\n6\n");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s --wait=30 apply", g), 0);
	ASSERT_HAS(r.out, "nothing to apply");
	tu_result_free(&r);
}
END_TEST

/* The demo, the README's main command, still tells its story. */
START_TEST(test_feed_cli_demo_runs)
{
	char work[4200], *restarts;
	tu_result r;

	snprintf(work, sizeof(work), "%s/demo", dir);
	ck_assert_msg(tu_sh(&r, "sh tests/demo.sh '%s' '%s'", tu_build_path(""), work) == 0,
		      "demo failed:\n%s\n%s", r.out, r.err);
	ASSERT_HAS(r.out, "applied webkit-26.0.2-a: 2 files replaced");
	ASSERT_HAS(r.out, "rolled back safari-26.0.1-a");
	ASSERT_HAS(r.out, "bsi sync exited 3");
	ASSERT_HAS(r.err, "which is not in .bsi/signers of parent");
	tu_result_free(&r);
	/* files patched and one restored */
	ck_assert_int_eq(tu_sh(&r, "sha256sum '%s/device/usr/lib/libboringssl.dylib' "
				   "'%s/device/Applications/Safari.app/Contents/MacOS/Safari' | cut -c1-12",
			       work, work), 0);
	ck_assert_str_eq(r.out, "94a5f78ad7e6\n6c58a6abbaed\n");
	tu_result_free(&r);
	restarts = NULL;
	{
		char p[4300];

		snprintf(p, sizeof(p), "%s/state/restarts.log", work);
		restarts = tu_read(p);
	}
	ck_assert_ptr_nonnull(restarts);
	ASSERT_HAS(restarts, "com.apple.WebKit.Networking\n");
	free(restarts);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("feed_cli");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_feed_cli_sync_from_git_daemon);
	tcase_add_test(tc, test_feed_cli_readme_start_a_feed_block_works);
	tcase_add_test(tc, test_feed_cli_superseded_only_while_the_successor_covers);
	tcase_add_test(tc, test_feed_cli_twin_served_once_does_not_cut_off);
	tcase_add_test(tc, test_feed_cli_enroll_refuses_bad_anchor);
	tcase_add_test(tc, test_feed_cli_refused_sync_changes_nothing);
	tcase_add_test(tc, test_feed_cli_payload_mismatch_refused);
	tcase_add_test(tc, test_feed_cli_state_grows_with_what_is_applied);
	tcase_add_test(tc, test_feed_cli_payload_cache_cannot_let_a_bad_payload_in);
	tcase_add_test(tc, test_feed_cli_broken_payload_cache_is_only_slower);
	tcase_add_test(tc, test_feed_cli_staleness_ignores_commit_dates);
	tcase_add_test(tc, test_feed_cli_feed_that_stops_moving_goes_stale);
	tcase_add_test(tc, test_feed_cli_apply_rollback_verify);
	tcase_add_test(tc, test_feed_cli_hold_and_release);
	tcase_add_test(tc, test_feed_cli_full_update_is_obsolete);
	tcase_add_test(tc, test_feed_cli_two_applies_at_once);
	tcase_add_test(tc, test_feed_cli_demo_runs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
