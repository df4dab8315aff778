/*
 * check_statedir.c - the state directory is bsi's own: a directory, a
 * parent or an entry that another user could change is refused before
 * anything in it is read.  The attacks are played as a local user would:
 * the tests run as root, so "another user" is uid 65534 (nobody), made
 * the owner with chown, or group and others given write permission.
 */
#include "error.h"
#include "statedir.h"
#include "testutil.h"

#include <check.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OTHER_UID 65534 /* nobody */

#define ASSERT_HAS(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir();
}

static void teardown(void)
{
	tu_cleanup();
}

/* bsi_statedir_prepare(path) must refuse with BSI_EUSAGE, its message
 * holding each of the NULL-terminated strings. */
static void expect_refused(const char *path, ...)
{
	const char *want;
	char *out = (char *)1;
	va_list ap;

	bsi_error_clear();
	ck_assert_int_eq(bsi_statedir_prepare(&out, path), BSI_EUSAGE);
	ck_assert_ptr_null(out);
	va_start(ap, path);
	while ((want = va_arg(ap, const char *)) != NULL)
		ASSERT_HAS(bsi_error_message(), want);
	va_end(ap);
}

static char *prepare_ok(const char *path)
{
	char *out = NULL;

	ck_assert_msg(bsi_statedir_prepare(&out, path) == 0, "%s", bsi_error_message());
	return out;
}

static mode_t mode_of(const char *path)
{
	struct stat sb;

	ck_assert_int_eq(lstat(path, &sb), 0);
	return sb.st_mode & 07777;
}

/* Another user exists to own things only when the tests run as root. */
static bool can_chown(void)
{
	if (geteuid() == 0)
		return true;
	fprintf(stderr, "  (not root: the parts played by another owner are skipped)\n");
	return false;
}

START_TEST(test_statedir_creates_private_dir_and_parents)
{
	char path[4200], link[4200], want[4400], *real;

	snprintf(path, sizeof(path), "%s/var/lib/bsi", dir);
	real = prepare_ok(path);
	ck_assert_str_eq(real, path);
	free(real);
	ck_assert_int_eq(mode_of(path), 0700);
	snprintf(want, sizeof(want), "%s/var", dir);
	ck_assert_int_eq(mode_of(want), 0755);
	/* a path through a symbolic link: checked, and used, as resolved */
	snprintf(link, sizeof(link), "%s/link", dir);
	ck_assert_int_eq(symlink(path, link), 0);
	snprintf(want, sizeof(want), "%s/link/", dir);
	real = prepare_ok(want);
	ck_assert_str_eq(real, path);
	free(real);
	/* and what is created there afterwards is writable only by its owner */
	umask(0);
	free(prepare_ok(path));
	snprintf(want, sizeof(want), "%s/new", path);
	tu_must("mkdir '%s' && touch '%s.f'", want, want);
	ck_assert_int_eq(mode_of(want), 0755);
	snprintf(want, sizeof(want), "%s/new.f", path);
	ck_assert_int_eq(mode_of(want), 0644);
}
END_TEST

START_TEST(test_statedir_of_another_user_refused)
{
	char path[4200];

	if (!can_chown())
		return;
	snprintf(path, sizeof(path), "%s/state", dir);
	tu_must("mkdir -m 0700 '%s' && chown %d '%s'", path, OTHER_UID, path);
	expect_refused(path, path, "is owned by uid 65534", "not by uid 0", "chown root", NULL);
}
END_TEST

START_TEST(test_statedir_writable_by_group_or_others_refused)
{
	static const char *modes[] = {"0770", "0777", "0720", "0702", "1777"};
	char path[4200];

	snprintf(path, sizeof(path), "%s/state", dir);
	tu_must("mkdir '%s'", path);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char want[64];

		tu_must("chmod %s '%s'", modes[i], path);
		snprintf(want, sizeof(want), "(mode %s)", modes[i]);
		expect_refused(path, path, "writable by group or others", want, "chmod go-w",
			       NULL);
	}
	tu_must("chmod 0755 '%s'", path);
	free(prepare_ok(path));
}
END_TEST

/* A parent another user owns, or may write without the sticky bit, lets
 * them put another state directory in place of the real one. */
START_TEST(test_statedir_unsafe_parent_refused)
{
	char parent[4200], path[4300], want[4400];

	snprintf(parent, sizeof(parent), "%s/shared", dir);
	snprintf(path, sizeof(path), "%s/bsi", parent);
	tu_must("mkdir -m 0777 '%s'", parent);
	snprintf(want, sizeof(want), "%s above it is writable by group or others (mode 0777) "
				     "and not sticky", parent);
	expect_refused(path, path, want, NULL);
	tu_must("chmod 0775 '%s'", parent);
	expect_refused(path, "(mode 0775)", NULL);
	tu_must("chmod 1777 '%s'", parent); /* as /tmp: others cannot rename our entries */
	free(prepare_ok(path));
	if (!can_chown())
		return;
	tu_must("chmod 0755 '%s' && chown %d '%s'", parent, OTHER_UID, parent);
	snprintf(want, sizeof(want), "%s above it is owned by uid 65534", parent);
	expect_refused(path, path, want, NULL);
}
END_TEST

/* Entries bsi would open, planted as links or left to another owner. */
START_TEST(test_statedir_planted_links_and_foreign_entries_refused)
{
	static const char *names[] = {"state.db", "state.db-wal", "state.db-shm", "lock",
				      "feed.git", "backups", "restarts.log"};
	char path[4200], entry[4400], elsewhere[4200];

	snprintf(path, sizeof(path), "%s/state", dir);
	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", dir);
	tu_must("mkdir -m 0700 '%s' && mkdir '%s'", path, elsewhere);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char want[4400];

		snprintf(entry, sizeof(entry), "%s/%s", path, names[i]);
		tu_must("ln -s '%s/%s' '%s'", elsewhere, names[i], entry);
		snprintf(want, sizeof(want), "%s is a symbolic link (to %s/%s)", names[i],
			 elsewhere, names[i]);
		expect_refused(path, path, want, "never follows links", NULL);
		tu_must("rm '%s'", entry);

		tu_must("touch '%s' && chmod 0666 '%s'", entry, entry);
		snprintf(want, sizeof(want), "%s is writable by group or others (mode 0666)",
			 names[i]);
		expect_refused(path, path, want, NULL);
		tu_must("chmod 0644 '%s'", entry);
		if (can_chown()) {
			tu_must("chown %d '%s'", OTHER_UID, entry);
			snprintf(want, sizeof(want), "%s is owned by uid 65534", names[i]);
			expect_refused(path, path, want, NULL);
		}
		tu_must("rm -f '%s'", entry);
	}
	free(prepare_ok(path));
}
END_TEST

/* ---- the attack through the real binary ------------------------------- */

static char feed[4200], key[4200], image[4200], state[4200], conf[4200], g[16384];
static char intro[41];

static void device_setup(void)
{
	tu_result r;
	char *pub;

	snprintf(feed, sizeof(feed), "%s/feed", dir);
	snprintf(key, sizeof(key), "%s/team_key", dir);
	snprintf(image, sizeof(image), "%s/device", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	tu_signed_feed(feed, key, intro);
	tu_sample_image("current", image);
	tu_write(conf, "service_manager = \"record\"\n");
	snprintf(g, sizeof(g), "--root '%s' --state '%s' --config '%s'", image, state, conf);
	pub = tu_pubkey(key);
	ck_assert_msg(tu_bsi(&r, "%s enroll '%s' --introduction %s --signer '%s'", g, feed, intro,
			     pub) == 0,
		      "enroll: %s", r.err);
	tu_result_free(&r);
	free(pub);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "sync: %s", r.err);
	tu_result_free(&r);
}

/* Run one SQL script on the state database, as its owner could. */
static void state_sql(const char *stmts)
{
	char db[4300], *msg = NULL;
	sqlite3 *h;

	snprintf(db, sizeof(db), "%s/state.db", state);
	ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(h, stmts, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", stmts, msg);
	sqlite3_close(h);
}

/*
 * What the owner of a state directory can do: commit, unsigned, a Safari
 * "fix" whose payload is their own file (the recipe's pin changed to
 * match), put it in the mirror, and make it the trusted head in state.db
 * with a forged entry in the authenticated-commit cache.
 */
static void forge_unsigned_head(void)
{
	char sql[512], evil[4200];
	tu_result r;

	snprintf(evil, sizeof(evil), "%s/evil", dir);
	tu_must("git clone -q '%s' '%s' && cd '%s' && echo 'not from the team' > "
		"payloads/safari/Safari-26.0.1 && "
		"new=$(sha256sum payloads/safari/Safari-26.0.1 | cut -d' ' -f1) && "
		"sed -i \"s/0182f4612fd99f3b525e4a236fbca4b0460abb3220dce1d5df60f64bda7e5651/$new/\" "
		"recipes/safari.lua && git add -A && git -c user.name=M -c user.email=m@x "
		"commit -q --no-gpg-sign -m evil && git -C '%s/feed.git' fetch -q '%s' "
		"main:refs/heads/evil",
		feed, evil, evil, state, evil);
	ck_assert_int_eq(tu_sh(&r, "git -C '%s' rev-parse HEAD", evil), 0);
	snprintf(sql, sizeof(sql),
		 "UPDATE feed SET head = '%.40s'; INSERT INTO commit_cache VALUES "
		 "('%.40s', 'SHA256:forged', 0);",
		 r.out, r.out);
	tu_result_free(&r);
	state_sql(sql);
}

/* bsi apply must exit 2 naming want, the device image untouched. */
static void apply_refused(const char *want)
{
	char *before = tu_tree_fingerprint(image), *after;
	tu_result r;

	ck_assert_int_eq(tu_bsi(&r, "%s apply", g), 2);
	ASSERT_HAS(r.err, "state directory ");
	ASSERT_HAS(r.err, want);
	tu_result_free(&r);
	after = tu_tree_fingerprint(image);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}

/*
 * A local user who owns the --state directory swaps in a state whose
 * trusted head is their unsigned commit: root's next `bsi apply` would
 * install their payload.  Refused (exit 2) before the state is read, for
 * an owner other than root and for a directory group or others may write.
 */
START_TEST(test_statedir_swapped_state_installs_nothing)
{
	char want[4400];

	device_setup();
	forge_unsigned_head();
	tu_must("chmod 0777 '%s'", state);
	snprintf(want, sizeof(want), "%s is writable by group or others (mode 0777)", state);
	apply_refused(want);
	if (!can_chown())
		return;
	tu_must("chmod 0700 '%s' && chown -R %d '%s'", state, OTHER_UID, state);
	snprintf(want, sizeof(want), "%s is owned by uid 65534", state);
	apply_refused(want);
	/* status too: nothing is read from it */
	{
		tu_result r;

		ck_assert_int_eq(tu_bsi(&r, "%s status", g), 2);
		ASSERT_HAS(r.err, want);
		tu_result_free(&r);
	}
}
END_TEST

/*
 * In a directory that is root's now, links planted while another user
 * could write there: state.db to their database, feed.git to their
 * repository.  Refused, not followed.
 */
START_TEST(test_statedir_planted_state_db_and_feed_links_refused)
{
	char theirs[4200];

	device_setup();
	forge_unsigned_head();
	snprintf(theirs, sizeof(theirs), "%s/theirs", dir);
	tu_must("mkdir '%s' && mv '%s/state.db' '%s/feed.git' '%s/' && "
		"ln -s '%s/state.db' '%s/state.db' && ln -s '%s/feed.git' '%s/feed.git'",
		theirs, state, state, theirs, theirs, state, theirs, state);
	if (geteuid() == 0)
		tu_must("chown -R %d '%s' && chown -h %d '%s/state.db' '%s/feed.git'", OTHER_UID,
			theirs, OTHER_UID, state, state);
	apply_refused("is a symbolic link");
	/* root puts its own state.db back; feed.git is still theirs */
	tu_must("rm '%s/state.db' && mv '%s/state.db' '%s/' && chown \"$(id -u)\" '%s/state.db'", state,
		theirs, state, state);
	apply_refused("feed.git is a symbolic link");
}
END_TEST

static Suite *statedir_suite(void)
{
	Suite *s = suite_create("statedir");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_statedir_creates_private_dir_and_parents);
	tcase_add_test(tc, test_statedir_of_another_user_refused);
	tcase_add_test(tc, test_statedir_writable_by_group_or_others_refused);
	tcase_add_test(tc, test_statedir_unsafe_parent_refused);
	tcase_add_test(tc, test_statedir_planted_links_and_foreign_entries_refused);
	tcase_add_test(tc, test_statedir_swapped_state_installs_nothing);
	tcase_add_test(tc, test_statedir_planted_state_db_and_feed_links_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(statedir_suite());
}
