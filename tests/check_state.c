/*
 * check_state.c - the state database and the lock.
 */
#include "auth.h"
#include "changeset.h"
#include "digest.h"
#include "error.h"
#include "fsroot.h"
#include "lock.h"
#include "plan.h"
#include "state.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bsi_state *open_ok(const char *dir)
{
	bsi_state *st = NULL;

	ck_assert_msg(bsi_state_open(&st, dir) == 0, "%s", bsi_error_message());
	return st;
}

static void sql(const char *db_path, const char *stmt, int expect_ok)
{
	sqlite3 *db;
	char *msg = NULL;
	int rc;

	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	rc = sqlite3_exec(db, stmt, NULL, NULL, &msg);
	if (expect_ok)
		ck_assert_msg(rc == SQLITE_OK, "%s: %s", stmt, msg);
	else
		ck_assert_msg(rc != SQLITE_OK, "%s should have failed", stmt);
	sqlite3_free(msg);
	sqlite3_close(db);
}

START_TEST(test_state_creates_and_reopens)
{
	char *dir = tu_tmpdir(), sub[4200], db[4300];
	bsi_state *st;
	struct stat sb;

	snprintf(sub, sizeof(sub), "%s/var/lib/bsi", dir);
	tu_must("mkdir -p '%s/var/lib'", dir);
	st = open_ok(sub);
	ck_assert_str_eq(bsi_state_dir(st), sub);
	bsi_state_free(st);
	snprintf(db, sizeof(db), "%s/state.db", sub);
	ck_assert_int_eq(stat(db, &sb), 0);
	ck_assert_int_eq(stat(sub, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	/* Reopening keeps what was written. */
	st = open_ok(sub);
	ck_assert_int_eq(bsi_state_history_add(st, "enroll", NULL, NULL, NULL, "x"), 0);
	bsi_state_free(st);
	st = open_ok(sub);
	{
		json_t *h;

		ck_assert_int_eq(bsi_state_history_json(st, NULL, &h), 0);
		ck_assert_int_eq(json_array_size(h), 1);
		json_decref(h);
	}
	bsi_state_free(st);
	/* WAL and a versioned schema. */
	{
		sqlite3 *h;
		sqlite3_stmt *s;

		ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
		ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &s, NULL), 0);
		ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
		ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
		sqlite3_finalize(s);
		ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &s, NULL), 0);
		ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
		ck_assert_int_eq(sqlite3_column_int(s, 0), BSI_STATE_SCHEMA_VERSION);
		sqlite3_finalize(s);
		sqlite3_close(h);
	}
}
END_TEST

START_TEST(test_state_concurrent_first_opens_share_one_database)
{
	char *dir = tu_tmpdir(), sub[4300];
	pid_t pids[8];
	bsi_state *st;
	json_t *h;
	tu_result r;
	int k, status;

	snprintf(sub, sizeof(sub), "%s/state", dir);
	for (k = 0; k < 8; k++) {
		pids[k] = fork();
		ck_assert_int_ge(pids[k], 0);
		if (pids[k] == 0) {
			bsi_state *mine = NULL;

			if (bsi_state_open(&mine, sub) != 0 ||
			    bsi_state_history_add(mine, "hello", NULL, NULL, NULL, NULL) != 0) {
				fprintf(stderr, "child: %s\n", bsi_error_message());
				_exit(1);
			}
			bsi_state_free(mine);
			_exit(0);
		}
	}
	for (k = 0; k < 8; k++) {
		ck_assert_int_eq(waitpid(pids[k], &status, 0), pids[k]);
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	}
	st = open_ok(sub);
	ck_assert_int_eq(bsi_state_history_json(st, NULL, &h), 0);
	ck_assert_int_eq(json_array_size(h), 8); /* nobody's database was replaced */
	json_decref(h);
	bsi_state_free(st);
	tu_sh(&r, "ls -A '%s' | grep -c new", sub);
	ck_assert_int_eq(atoi(r.out), 0);
	tu_result_free(&r);
}
END_TEST

START_TEST(test_state_damaged_database_is_an_error_not_recreated)
{
	char *dir = tu_tmpdir(), db[4300], *before, *after;
	bsi_state *st = NULL;
	int i;

	snprintf(db, sizeof(db), "%s/state.db", dir);
	/* Garbage where the database should be. */
	{
		FILE *f = fopen(db, "w");

		for (i = 0; i < 2000; i++)
			fputs("not a database at all ", f);
		fclose(f);
	}
	before = tu_read(db);
	ck_assert_int_eq(bsi_state_open(&st, dir), BSI_EFAIL);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(bsi_error_message(), db) && strstr(bsi_error_message(), "damaged"),
		      "%s", bsi_error_message());
	after = tu_read(db);
	ck_assert_str_eq(after, before);
	free(before);
	free(after);

	/* A real database whose pages were overwritten in the middle. */
	dir = tu_tmpdir();
	snprintf(db, sizeof(db), "%s/state.db", dir);
	st = open_ok(dir);
	for (i = 0; i < 200; i++)
		bsi_state_history_add(st, "filler", "imp", NULL, NULL,
				      "some detail text that fills a few database pages");
	bsi_state_free(st);
	tu_must("dd if=/dev/urandom of='%s' bs=1024 seek=2 count=6 conv=notrunc 2>/dev/null", db);
	ck_assert_int_eq(bsi_state_open(&st, dir), BSI_EFAIL);
	ck_assert_msg(strstr(bsi_error_message(), "damaged"), "%s", bsi_error_message());

	/* An SQLite file that bsi did not make. */
	dir = tu_tmpdir();
	snprintf(db, sizeof(db), "%s/state.db", dir);
	sql(db, "CREATE TABLE other (x)", 1);
	ck_assert_int_eq(bsi_state_open(&st, dir), BSI_EFAIL);
	ck_assert_msg(strstr(bsi_error_message(), "not a bsi database"), "%s", bsi_error_message());
}
END_TEST

START_TEST(test_state_migrates_an_older_schema)
{
	char *dir = tu_tmpdir(), db[4300], rootdir[4300], other[4300];
	bsi_state *st;
	bsi_root *root, *root2;

	snprintf(db, sizeof(db), "%s/state.db", dir);
	st = open_ok(dir);
	ck_assert_int_eq(bsi_state_history_add(st, "apply", "kept", NULL, NULL, NULL), 0);
	bsi_state_free(st);
	/* Make it a version 1 database, as the first release wrote it. */
	sql(db, "DROP TABLE meta; DROP TABLE payload_cache; "
		"ALTER TABLE feed DROP COLUMN head_seen_at; PRAGMA user_version = 1", 1);
	st = open_ok(dir);
	/* The payload cache, outside the versioned schema, is there too. */
	{
		const char *blob = "0123456789abcdef0123456789abcdef01234567";
		char d[BSI_DIGEST_STRLEN + 1], want[BSI_DIGEST_STRLEN + 1];

		bsi_digest_buf("x", 1, want);
		ck_assert_int_eq(bsi_state_payload_get(st, blob, d), 0);
		ck_assert_str_eq(d, "");
		ck_assert_msg(bsi_state_payload_put(st, blob, want) == 0, "%s", bsi_error_message());
		ck_assert_int_eq(bsi_state_payload_get(st, blob, d), 0);
		ck_assert_str_eq(d, want);
		ck_assert_int_eq(bsi_state_synchronous(st), 2);
	}
	/* Version 2's table works, and version 1's data is still there. */
	snprintf(rootdir, sizeof(rootdir), "%s/root", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	tu_must("mkdir '%s' '%s'", rootdir, other);
	ck_assert_int_eq(bsi_root_open(&root, rootdir), 0);
	ck_assert_int_eq(bsi_root_open(&root2, other), 0);
	ck_assert_msg(bsi_state_bind_root(st, root) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(bsi_state_bind_root(st, root), 0);
	ck_assert_int_eq(bsi_state_bind_root(st, root2), BSI_EUSAGE);
	ck_assert_msg(strstr(bsi_error_message(), rootdir) && strstr(bsi_error_message(), other),
		      "%s", bsi_error_message());
	{
		json_t *h;

		ck_assert_int_eq(bsi_state_history_json(st, "kept", &h), 0);
		ck_assert_int_eq(json_array_size(h), 1);
		json_decref(h);
	}
	bsi_root_free(root);
	bsi_root_free(root2);
	bsi_state_free(st);
}
END_TEST

/* head_seen_at of st's enrolled feed. */
static int64_t head_seen_at(bsi_state *st)
{
	bsi_state_feed *f = NULL;
	int64_t t;

	ck_assert_int_eq(bsi_state_feed_get(st, &f), 0);
	ck_assert_ptr_nonnull(f);
	t = f->head_seen_at;
	bsi_state_feed_free(f);
	return t;
}

/* A version-2 state learns when its head was first trusted: the head's
 * commit time when earlier than the last sync, else the last sync; with
 * no head yet, the enrollment. */
START_TEST(test_state_migration_estimates_head_seen_at)
{
	static const struct {
		const char *head;
		int64_t head_time, synced_at, want;
	} cases[] = {
	    {"2222", 1700000000, 1700000500, 1700000000},
	    {"2222", 4102444800, 1700000500, 1700000500}, /* dated 2100 */
	    {"2222", 0, 1700000500, 1700000500},          /* dated 1970 */
	    {NULL, 0, 0, -1},                             /* enrolled, never synced */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dir = tu_tmpdir(), db[4300];
		bsi_state *st = open_ok(dir);
		int64_t enrolled;

		snprintf(db, sizeof(db), "%s/state.db", dir);
		ck_assert_int_eq(bsi_state_feed_set_anchor(st, "u", "1111", "ssh-ed25519 A"), 0);
		ck_assert_int_eq(bsi_state_history_add(st, "enroll", NULL, "1111", NULL, "u"), 0);
		if (cases[i].head)
			ck_assert_int_eq(bsi_state_feed_set_head(st, cases[i].head, cases[i].head_time,
								 cases[i].synced_at),
					 0);
		enrolled = head_seen_at(st);
		bsi_state_free(st);
		sql(db, "ALTER TABLE feed DROP COLUMN head_seen_at; PRAGMA user_version = 2", 1);
		st = open_ok(dir);
		if (cases[i].want < 0)
			ck_assert_int_ge(head_seen_at(st), enrolled - 5);
		else
			ck_assert_int_eq(head_seen_at(st), cases[i].want);
		bsi_state_free(st);
	}
}
END_TEST

START_TEST(test_state_newer_schema_is_refused)
{
	char *dir = tu_tmpdir(), db[4300];
	bsi_state *st;

	snprintf(db, sizeof(db), "%s/state.db", dir);
	bsi_state_free(open_ok(dir));
	sql(db, "PRAGMA user_version = 99", 1);
	ck_assert_int_eq(bsi_state_open(&st, dir), BSI_EFAIL);
	ck_assert_msg(strstr(bsi_error_message(), "99"), "%s", bsi_error_message());
}
END_TEST

static void make_imp(bsi_changeset **cs, const char *id)
{
	bsi_improvement *imp;

	ck_assert_int_eq(bsi_changeset_new(cs), 0);
	ck_assert_int_eq(bsi_changeset_add(*cs, &imp), 0);
	imp->id = strdup(id);
	imp->component = strdup("webkit");
	imp->summary = strdup("JavaScriptCore: use-after-free");
	imp->severity = strdup("critical");
	imp->fixes = calloc(2, sizeof(char *));
	imp->fixes[0] = strdup("CVE-2026-20101");
	imp->nfixes = 1;
	bsi_improvement_add_replace(imp, "lib/jsc", "sha256:aa", "sha256:bb", "payloads/jsc", 3);
	bsi_improvement_add_restart(imp, "webcontent", 4);
}

START_TEST(test_state_improvements_roundtrip)
{
	char *dir = tu_tmpdir();
	bsi_state *st = open_ok(dir);
	bsi_state_improvement *imp, **list;
	bsi_changeset *cs;
	json_t *notes;
	size_t n;

	make_imp(&cs, "webkit-26.1-a");
	ck_assert_int_eq(bsi_state_improvement_note(st, &cs->items[0]), 0);
	ck_assert_int_eq(bsi_state_improvement_get(st, "webkit-26.1-a", &imp), 0);
	ck_assert_ptr_nonnull(imp);
	ck_assert_int_eq(imp->status, BSI_STATUS_PENDING);
	ck_assert_str_eq(imp->severity, "critical");
	ck_assert_str_eq(imp->fixes, "[\"CVE-2026-20101\"]");
	notes = json_loads(imp->notes, 0, NULL);
	ck_assert_ptr_nonnull(notes);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(notes, "actions"), 1), "service")),
			 "webcontent");
	json_decref(notes);
	bsi_state_improvement_free(imp);

	ck_assert_int_eq(bsi_state_improvement_set_applied(st, "webkit-26.1-a", "c0ffee", "SHA256:k",
							   true),
			 0);
	ck_assert_int_eq(bsi_state_improvement_set_held(st, "webkit-26.1-a", true), 0);
	/* Noting it again (a later sync) keeps status and hold. */
	ck_assert_int_eq(bsi_state_improvement_note(st, &cs->items[0]), 0);
	ck_assert_int_eq(bsi_state_improvement_get(st, "webkit-26.1-a", &imp), 0);
	ck_assert_int_eq(imp->status, BSI_STATUS_APPLIED);
	ck_assert(imp->held);
	ck_assert(imp->restart_pending);
	ck_assert_str_eq(imp->feed_commit, "c0ffee");
	ck_assert_str_eq(imp->signer, "SHA256:k");
	ck_assert_int_gt(imp->applied_at, 0);
	bsi_state_improvement_free(imp);

	/* As status --json shows it: applied stays applied even when held. */
	{
		json_t *j;

		ck_assert_int_eq(bsi_state_improvement_get(st, "webkit-26.1-a", &imp), 0);
		j = bsi_state_improvement_to_json(imp);
		ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "applied");
		ck_assert(json_is_true(json_object_get(j, "held")));
		ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "fixes"), 0)),
				 "CVE-2026-20101");
		ck_assert_int_eq(json_array_size(json_object_get(j, "actions")), 2);
		json_decref(j);
		bsi_state_improvement_free(imp);
		ck_assert_int_eq(bsi_state_improvement_set_status(st, "webkit-26.1-a",
								  BSI_STATUS_ROLLED_BACK, NULL),
				 0);
		ck_assert_int_eq(bsi_state_improvement_get(st, "webkit-26.1-a", &imp), 0);
		j = bsi_state_improvement_to_json(imp);
		ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "held");
		json_decref(j);
		bsi_state_improvement_free(imp);
	}
	ck_assert_int_eq(bsi_state_improvement_set_status(st, "nope", BSI_STATUS_APPLIED, NULL),
			 BSI_EUSAGE);
	ck_assert_int_eq(bsi_state_improvement_get(st, "nope", &imp), 0);
	ck_assert_ptr_null(imp);
	ck_assert_int_eq(bsi_state_improvement_list(st, &list, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(list[0]->id, "webkit-26.1-a");
	bsi_state_improvement_list_free(list, n);
	bsi_changeset_free(cs);
	bsi_state_free(st);
}
END_TEST

START_TEST(test_state_history_is_append_only)
{
	char *dir = tu_tmpdir(), db[4300];
	bsi_state *st = open_ok(dir);
	json_t *h;

	snprintf(db, sizeof(db), "%s/state.db", dir);
	ck_assert_int_eq(bsi_state_history_add(st, "apply", "a", "c1", "SHA256:k", "replaced 1"), 0);
	ck_assert_int_eq(bsi_state_history_add(st, "rollback", "a", NULL, NULL, NULL), 0);
	ck_assert_int_eq(bsi_state_history_add(st, "apply", "b", NULL, NULL, NULL), 0);
	ck_assert_int_eq(bsi_state_history_json(st, "a", &h), 0);
	ck_assert_int_eq(json_array_size(h), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 0), "action")), "apply");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 0), "feed_commit")),
			 "c1");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 1), "action")),
			 "rollback");
	json_decref(h);
	bsi_state_free(st);
	sql(db, "UPDATE history SET action = 'nothing'", 0);
	sql(db, "DELETE FROM history", 0);
	st = open_ok(dir);
	ck_assert_int_eq(bsi_state_history_json(st, NULL, &h), 0);
	ck_assert_int_eq(json_array_size(h), 3);
	json_decref(h);
	bsi_state_free(st);
}
END_TEST

START_TEST(test_state_feed_and_commit_cache)
{
	char *dir = tu_tmpdir(), *signer;
	bsi_state *st = open_ok(dir);
	bsi_state_feed *f;
	bool found;

	ck_assert_int_eq(bsi_state_feed_get(st, &f), 0);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(bsi_state_feed_set_head(st, "abc", 1, 2), BSI_EUSAGE);
	{
		/* All or nothing: a refused head remembers none of its commits. */
		const char *ids[] = {"5555555555555555555555555555555555555555"};

		ck_assert_int_eq(bsi_state_feed_advance(st, ids[0], 1, 2, ids, NULL, 1), BSI_EUSAGE);
		ck_assert_int_eq(bsi_state_commit_lookup(st, ids[0], &found, NULL), 0);
		ck_assert(!found);
	}
	ck_assert_int_eq(bsi_state_feed_set_anchor(st, "https://feed.example/bsi.git", "1111",
						   "ssh-ed25519 AAAAC3Nza"),
			 0);
	ck_assert_int_eq(bsi_state_feed_set_head(st, "2222", 1700000000, 1700000100), 0);
	bsi_state_free(st);
	st = open_ok(dir);
	ck_assert_int_eq(bsi_state_feed_get(st, &f), 0);
	ck_assert_ptr_nonnull(f);
	ck_assert_str_eq(f->url, "https://feed.example/bsi.git");
	ck_assert_str_eq(f->introduction, "1111");
	ck_assert_str_eq(f->signer_key, "ssh-ed25519 AAAAC3Nza");
	ck_assert_str_eq(f->head, "2222");
	ck_assert_int_eq(f->head_time, 1700000000);
	ck_assert_int_eq(f->synced_at, 1700000100);
	ck_assert_int_eq(f->head_seen_at, 1700000100);
	bsi_state_feed_free(f);
	/* Finding the same head again does not renew it (a frozen feed stays
	 * stale); a time recorded ahead of the clock comes down to it; a new
	 * head is seen now. */
	ck_assert_int_eq(bsi_state_feed_set_head(st, "2222", 1700000000, 1700000900), 0);
	ck_assert_int_eq(head_seen_at(st), 1700000100);
	ck_assert_int_eq(bsi_state_feed_set_head(st, "2222", 1700000000, 1700000050), 0);
	ck_assert_int_eq(head_seen_at(st), 1700000050);
	ck_assert_int_eq(bsi_state_feed_set_head(st, "2223", 1600000000, 1700001000), 0);
	ck_assert_int_eq(head_seen_at(st), 1700001000);
	ck_assert_int_eq(bsi_state_feed_set_head(st, "2222", 1700000000, 1700000100), 0);

	ck_assert_int_eq(bsi_state_commit_lookup(st, "2222", &found, &signer), 0);
	ck_assert(!found);
	ck_assert_ptr_null(signer);
	ck_assert_int_eq(bsi_state_commit_remember(st, "2222", "SHA256:abc"), 0);
	ck_assert_int_eq(bsi_state_commit_lookup(st, "2222", &found, &signer), 0);
	ck_assert(found);
	ck_assert_str_eq(signer, "SHA256:abc");
	free(signer);
	/* The shapes the feed module uses. */
	{
		const char *ids[] = {"3333333333333333333333333333333333333333",
				     "4444444444444444444444444444444444444444"};
		const char *signers[] = {"SHA256:k1", "SHA256:k2"};
		bsi_auth_cache cache = {bsi_state_commit_known, st};
		git_oid oid;

		ck_assert_int_eq(git_oid_fromstr(&oid, ids[1]), 0);
		ck_assert_int_eq(cache.known(cache.ctx, &oid), 0);
		ck_assert_int_eq(bsi_state_feed_advance(st, ids[1], 1700000200, 1700000300, ids,
							signers, 2),
				 0);
		ck_assert_int_eq(cache.known(cache.ctx, &oid), 1);
		ck_assert_int_eq(bsi_state_feed_get(st, &f), 0);
		ck_assert_str_eq(f->head, ids[1]);
		ck_assert_int_eq(f->head_time, 1700000200);
		bsi_state_feed_free(f);
	}
	bsi_state_free(st);
}
END_TEST

START_TEST(test_state_hash_cache_skips_unchanged_files)
{
	char *dir = tu_tmpdir(), root_dir[4200], file[4300], db[4300];
	char digest[BSI_DIGEST_STRLEN + 1], want[BSI_DIGEST_STRLEN + 1];
	const char *fake = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	bsi_state *st;
	bsi_root *root;
	struct timespec pause = {0, 20 * 1000 * 1000};

	snprintf(root_dir, sizeof(root_dir), "%s/root", dir);
	snprintf(file, sizeof(file), "%s/root/etc/f", dir);
	snprintf(db, sizeof(db), "%s/state/state.db", dir);
	tu_must("mkdir -p '%s/etc' && printf 'version 1\\n' > '%s'", root_dir, file);
	ck_assert_int_eq(bsi_root_open(&root, root_dir), 0);
	{
		char sdir[4300];

		snprintf(sdir, sizeof(sdir), "%s/state", dir);
		st = open_ok(sdir);
	}
	bsi_digest_buf("version 1\n", 10, want);
	ck_assert_int_eq(bsi_state_synchronous(st), 2);
	ck_assert_int_eq(bsi_state_hash_file(st, root, "etc/f", digest), 0);
	/* the entry was written relaxed; the connection is FULL again */
	ck_assert_int_eq(bsi_state_synchronous(st), 2);
	ck_assert_str_eq(digest, want);
	/* The cache answers for an unchanged file: plant a fake digest and see it. */
	sql(db, "UPDATE hash_cache SET digest = "
		"'sha256:0000000000000000000000000000000000000000000000000000000000000000'",
	    1);
	ck_assert_int_eq(bsi_state_hash_file(st, root, "etc/f", digest), 0);
	ck_assert_str_eq(digest, fake);
	/* Any change (here: same size, new content) is seen: ctime/mtime moved. */
	nanosleep(&pause, NULL);
	tu_must("printf 'version 2\\n' > '%s'", file);
	bsi_digest_buf("version 2\n", 10, want);
	ck_assert_int_eq(bsi_state_hash_file(st, root, "etc/f", digest), 0);
	ck_assert_str_eq(digest, want);
	/* Missing: empty digest, not an error.  Symlink: refused. */
	ck_assert_int_eq(bsi_state_hash_file(st, root, "etc/none", digest), 0);
	ck_assert_str_eq(digest, "");
	tu_must("ln -s f '%s/etc/link'", root_dir);
	ck_assert_int_eq(bsi_state_hash_file(st, root, "etc/link", digest), BSI_ERECIPE);
	/* The same through the plan's hasher interface. */
	{
		bsi_plan_hasher h = bsi_state_plan_hasher;
		bool exists = true;

		ck_assert_int_eq(h(st, root, "etc/none", digest, &exists), 0);
		ck_assert(!exists);
		ck_assert_int_eq(h(st, root, "etc/f", digest, &exists), 0);
		ck_assert(exists);
		ck_assert_str_eq(digest, want);
	}
	/* A cache that cannot be read or written is no reason to fail: the
	 * file is hashed, and the state is written durably as before. */
	sql(db, "DROP TABLE hash_cache", 1);
	ck_assert_msg(bsi_state_hash_file(st, root, "etc/f", digest) == 0, "%s",
		      bsi_error_message());
	ck_assert_str_eq(digest, want);
	ck_assert_int_eq(bsi_state_synchronous(st), 2);
	ck_assert_int_eq(bsi_state_history_add(st, "apply", "after", NULL, NULL, NULL), 0);
	bsi_root_free(root);
	bsi_state_free(st);
}
END_TEST

static int count_rows(const char *db_path, const char *table)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	char q[128];
	int n;

	snprintf(q, sizeof(q), "SELECT COUNT(*) FROM %s", table);
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* Both hashers on rel: the same refusal, word for word, naming rel and why. */
static void expect_both_refuse(bsi_state *st, const bsi_root *root, const char *rel,
			       const char *why)
{
	char digest[BSI_DIGEST_STRLEN + 1], preview[1024];
	bool exists = true;
	int rc;

	rc = bsi_plan_hash_file(NULL, root, rel, digest, &exists);
	ck_assert_msg(rc == BSI_ERECIPE, "preview of %s: %d (%s)", rel, rc, bsi_error_message());
	ck_assert(!exists);
	snprintf(preview, sizeof(preview), "%s", bsi_error_message());
	ck_assert_msg(strstr(preview, rel) && strstr(preview, why), "%s lacks %s", preview, why);
	exists = true;
	rc = bsi_state_plan_hasher(st, root, rel, digest, &exists);
	ck_assert_msg(rc == BSI_ERECIPE, "device plan of %s: %d (%s)", rel, rc, bsi_error_message());
	ck_assert(!exists);
	ck_assert_str_eq(bsi_error_message(), preview);
}

/*
 * A preview (no state) and a device's plan (the state's cached hasher) give
 * the same verdict on every kind of target that is no file to patch, never
 * open a FIFO (it would hang the plan), never read a /proc file without end,
 * and cache nothing for any of them.
 */
START_TEST(test_state_plan_hashers_agree_on_odd_targets)
{
	char *dir = tu_tmpdir(), root_dir[4200], sdir[4200], db[4300];
	bsi_state *st;
	bsi_root *root, *slash;

	snprintf(root_dir, sizeof(root_dir), "%s/root", dir);
	snprintf(sdir, sizeof(sdir), "%s/state", dir);
	snprintf(db, sizeof(db), "%s/state.db", sdir);
	tu_must("mkdir -p '%s/etc/dir' && cd '%s/etc' && echo f > f && ln -s f link && "
		"ln -s /etc/f abslink && mkfifo fifo && echo two > hard && ln hard hard2 && "
		"head -c 3000 /dev/zero > big",
		root_dir, root_dir);
	ck_assert_int_eq(bsi_root_open(&root, root_dir), 0);
	st = open_ok(sdir);
	expect_both_refuse(st, root, "etc/link", "is a symlink to f;");
	expect_both_refuse(st, root, "etc/abslink", "is a symlink to /etc/f;");
	expect_both_refuse(st, root, "etc/dir", "is a directory");
	expect_both_refuse(st, root, "etc/fifo", "is a FIFO");
	expect_both_refuse(st, root, "etc/hard", "has 2 hard links");
	bsi_root_set_max_target(root, 2048);
	expect_both_refuse(st, root, "etc/big", "max_target_mib");
	/* A /proc file says it holds 0 bytes and holds more. */
	ck_assert_int_eq(bsi_root_open(&slash, "/"), 0);
	expect_both_refuse(st, slash, "proc/self/status", "holds more than the 0 bytes");
	bsi_root_free(slash);
	ck_assert_int_eq(count_rows(db, "hash_cache"), 0);
	bsi_root_free(root);
	bsi_state_free(st);
}
END_TEST

/*
 * A full disk under the state directory (a real tmpfs, in a private mount
 * namespace so nothing outlives the test) is reported as such, exit 1,
 * never as a damaged database to move away (which would forget every
 * backup): when the database cannot even be opened (SQLite fails to grow
 * its -shm file: "disk I/O error" with errno ENOSPC), and when a write
 * fails (SQLITE_FULL).  The database and the target root are unchanged.
 */
START_TEST(test_state_full_disk_is_no_space_not_damage)
{
	char *dir = tu_tmpdir(), sdir[4200], root[4200], feed[4200], want[4400], *script;
	tu_result r;

	if (geteuid() != 0 || tu_sh(&r, "unshare -m true") != 0) {
		tu_result_free(&r);
		fprintf(stderr, "SKIP test_state_full_disk_is_no_space_not_damage: needs root and "
				"unshare -m to mount a tmpfs\n");
		return;
	}
	tu_result_free(&r);
	snprintf(sdir, sizeof(sdir), "%s/state", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(feed, sizeof(feed), "%s/feed", dir);
	tu_must("mkdir -p '%s' '%s/usr/bin' '%s/recipes' '%s/payloads' && "
		"printf 'old tool\\n' > '%s/usr/bin/tool' && printf 'new tool\\n' > '%s/payloads/t' && "
		"from=$(sha256sum < '%s/usr/bin/tool' | cut -d' ' -f1) && "
		"to=$(sha256sum < '%s/payloads/t' | cut -d' ' -f1) && "
		"printf 'return { component = \"t\", improvements = { { id = \"t-1\", summary = \"s\",\\n"
		"  severity = \"low\", fixes = {}, apply = function(c)\\n"
		"    c:replace(\"usr/bin/tool\", { from = \"sha256:%%s\", to = \"sha256:%%s\", "
		"payload = \"payloads/t\" })\\n  end } } }\\n' $from $to > '%s/recipes/t.lua'",
		sdir, root, feed, feed, root, feed, root, feed, feed);
	/* fill: leave `free` KiB; then run one bsi command; report what it said */
	ck_assert_int_gt(
		asprintf(&script,
			 "set -e; mount -t tmpfs -o size=512k,mode=0700 tmpfs '%s'; "
			 "b() { '%s' --root '%s' --state '%s' \"$@\"; }; "
			 "b status > /dev/null; sum=$(sha256sum < '%s/state.db'); "
			 "fill() { rm -f '%s/fill'; "
			 "  head -c $(( $(df -k --output=avail '%s' | tail -n 1) * 1024 - $1 * 1024 )) "
			 "  /dev/zero > '%s/fill' || true; }; "
			 "fill 0; set +e; b status; echo \"status exit $?\"; b verify; "
			 "echo \"verify exit $?\"; fill 36; b apply --tree '%s'; echo \"apply exit $?\"; "
			 "[ \"$sum\" = \"$(sha256sum < '%s/state.db')\" ] && echo 'state.db unchanged'",
			 sdir, tu_build_path("bsi"), root, sdir, sdir, sdir, sdir, sdir, feed, sdir),
		0);
	snprintf(want, sizeof(want), "%s/full.sh", dir);
	tu_write(want, script);
	free(script);
	tu_sh(&r, "unshare -m sh '%s'", want);
	snprintf(want, sizeof(want), "no space left on the device holding the state (%s): ",
		 sdir);
	ck_assert_msg(strstr(r.out, "status exit 1\n") && strstr(r.out, "verify exit 1\n") &&
			      strstr(r.out, "apply exit 1\n") && strstr(r.out, "state.db unchanged"),
		      "%s\n%s", r.out, r.err);
	/* three commands, three times the same diagnosis */
	ck_assert_msg(strstr(r.err, want) && strstr(strstr(r.err, want) + 1, want) &&
			      strstr(strstr(strstr(r.err, want) + 1, want) + 1, want),
		      "%s", r.err);
	ck_assert_msg(!strstr(r.err, "damaged") && !strstr(r.err, "move it away"), "%s", r.err);
	tu_result_free(&r);
	ck_assert_int_eq(tu_sh(&r, "cat '%s/usr/bin/tool'", root), 0);
	ck_assert_str_eq(r.out, "old tool\n");
	tu_result_free(&r);
}
END_TEST

/* ---- lock ------------------------------------------------------------ */

START_TEST(test_lock_second_fails_fast_naming_the_holder)
{
	char *dir = tu_tmpdir();
	bsi_lock *lock = NULL, *again = NULL;
	int pipefd[2], st;
	char expect[64], buf[512] = "";
	pid_t pid;
	ssize_t n;

	ck_assert_int_eq(bsi_lock_acquire(&lock, dir, -1), 0);
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int ret = bsi_lock_acquire(&again, dir, -1);
		const char *m = bsi_error_message();

		if (write(pipefd[1], m, strlen(m)) < 0)
			_exit(9);
		_exit(ret == BSI_EBUSY ? 5 : 1);
	}
	close(pipefd[1]);
	n = read(pipefd[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(st), 5);
	snprintf(expect, sizeof(expect), "another bsi (pid %ld) holds the lock", (long)getpid());
	ck_assert_msg(strstr(buf, expect), "%s", buf);
	bsi_lock_free(lock);
	/* Released: the next one gets it. */
	ck_assert_int_eq(bsi_lock_acquire(&again, dir, -1), 0);
	bsi_lock_free(again);
}
END_TEST

START_TEST(test_lock_waits_for_the_holder)
{
	char *dir = tu_tmpdir();
	bsi_lock *lock = NULL;
	struct timespec t0, t1;
	double waited;
	int st;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		bsi_lock *held;

		if (bsi_lock_acquire(&held, dir, -1) != 0)
			_exit(1);
		usleep(600 * 1000);
		_exit(0); /* the kernel drops the lock */
	}
	usleep(150 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Fail fast while held (no --wait)... */
	ck_assert_int_eq(bsi_lock_acquire(&lock, dir, -1), BSI_EBUSY);
	/* ...but --wait=5 gets it when the holder dies. */
	ck_assert_msg(bsi_lock_acquire(&lock, dir, 5) == 0, "%s", bsi_error_message());
	clock_gettime(CLOCK_MONOTONIC, &t1);
	waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_double_gt(waited, 0.2);
	ck_assert_double_lt(waited, 4.0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(st), 0);

	/* A wait that runs out is BSI_EBUSY too; --wait alone (0) waits forever. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		bsi_lock *again;
		int ret = bsi_lock_acquire(&again, dir, 1);

		_exit(ret == BSI_EBUSY ? 5 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(st), 5);
	bsi_lock_free(lock);
	/* (A forked child shares the parent's lock, so the holder is a child.) */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		bsi_lock *held;

		if (bsi_lock_acquire(&held, dir, -1) != 0)
			_exit(1);
		/* longer than a bounded wait of 1 s would last (usleep takes < 1 s) */
		nanosleep(&(struct timespec){1, 500 * 1000 * 1000}, NULL);
		_exit(0);
	}
	usleep(150 * 1000);
	ck_assert_msg(bsi_lock_acquire(&lock, dir, 0) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	bsi_lock_free(lock);
}
END_TEST

static Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_add_test(tc, test_state_creates_and_reopens);
	tcase_add_test(tc, test_state_concurrent_first_opens_share_one_database);
	tcase_add_test(tc, test_state_damaged_database_is_an_error_not_recreated);
	tcase_add_test(tc, test_state_migrates_an_older_schema);
	tcase_add_test(tc, test_state_migration_estimates_head_seen_at);
	tcase_add_test(tc, test_state_newer_schema_is_refused);
	tcase_add_test(tc, test_state_improvements_roundtrip);
	tcase_add_test(tc, test_state_history_is_append_only);
	tcase_add_test(tc, test_state_feed_and_commit_cache);
	tcase_add_test(tc, test_state_hash_cache_skips_unchanged_files);
	tcase_add_test(tc, test_state_plan_hashers_agree_on_odd_targets);
	tcase_add_test(tc, test_state_full_disk_is_no_space_not_damage);
	tcase_add_test(tc, test_lock_second_fails_fast_naming_the_holder);
	tcase_add_test(tc, test_lock_waits_for_the_holder);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(state_suite());
}
