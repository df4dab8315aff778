/*
 * Attacks from an adversarial review of fault isolation, deterministic
 * evaluation, state growth and text from outside (issue 10).  Each test
 * states a promise of DESIGN.md or docs/decisions.md ("Fault isolation",
 * "Deterministic evaluation", text.h), attacks it with a real signed feed
 * or a real working tree, and asserts that the attack fails.  The comment
 * above each says what the attack achieved when it was found.
 */
#include "procs.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir, feed[4096], key[4096], image[4096], state[4096], conf[4096], tree[4096];
static char g[16384], intro[41];

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
	snprintf(tree, sizeof(tree), "%s/tree", dir);
	tu_sample_image("current", image);
	tu_write(conf, "service_manager = \"record\"\n");
	snprintf(g, sizeof(g), "--root '%s' --state '%s' --config '%s'", image, state, conf);
	ck_assert_int_eq(setenv("BSI_LOG", "stderr", 1), 0);
}

static void teardown(void)
{
	tu_cleanup();
}

/* A signed sample feed, this device enrolled in it and synced. */
static void enrolled_device(void)
{
	char *pub;
	tu_result r;

	tu_signed_feed(feed, key, intro);
	pub = tu_pubkey(key);
	ck_assert_msg(tu_bsi(&r, "%s enroll '%s' --introduction %s --signer '%s'", g, feed, intro,
			     pub) == 0,
		      "enroll: %s", r.err);
	tu_result_free(&r);
	free(pub);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
}

/* Write recipes/NAME in the feed, commit it signed, sync the device. */
static void publish(const char *name, const char *text)
{
	char path[4300];
	tu_result r;

	snprintf(path, sizeof(path), "%s/recipes/%s", feed, name);
	tu_write(path, text);
	tu_feed_commit(feed, key, name);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "sync: %s", r.err);
	tu_result_free(&r);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
			return true;
	return false;
}

/*
 * `plan --tree --json` of a working tree holding `text` as
 * recipes/zz.lua, `runs` times in fresh processes: the number of
 * distinct documents (1 when evaluation is deterministic).
 */
static int distinct_plans(const char *text, int runs)
{
	char path[4300], *seen[64];
	int n = 0;

	ck_assert(runs <= 64);
	tu_sample_tree(tree);
	snprintf(path, sizeof(path), "%s/recipes/zz.lua", tree);
	tu_write(path, text);
	for (int i = 0; i < runs; i++) {
		tu_result r;
		bool known = false;

		tu_bsi(&r, "plan --tree '%s' --root '%s' --json", tree, image);
		for (int k = 0; k < n; k++)
			known |= strcmp(seen[k], r.out) == 0;
		if (!known)
			seen[n++] = strdup(r.out);
		tu_result_free(&r);
	}
	for (int k = 0; k < n; k++)
		free(seen[k]);
	return n;
}

/* ---- determinism ---------------------------------------------------- */

/*
 * Lua names a C function that raised without a call-site name by
 * searching package.loaded with lua_next: string-key order, which the
 * randomized hash seed changes per process.  A recipe reads that name and
 * records a different action in a different run.
 */
START_TEST(test_redteam_error_names_follow_the_hash_seed)
{
	int n = distinct_plans(
		"for i = 1, 30 do _ENV['alias' .. i] = string.rep end\n"
		"local _, msg = pcall(string.rep)\n"
		"local svc = msg:find(\"'string.rep'\") and 'svc-a' or 'svc-b'\n"
		"return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
		"  fixes = {}, severity = 'low', apply = function(c) c:restart(svc) end } } }\n",
		12);

	ck_assert_msg(n == 1, "%d different change sets from one recipe in 12 runs", n);
}
END_TEST

/* pairs' error names the type of the first unorderable key lua_next
 * meets: pointer hashing, so it differs from run to run. */
START_TEST(test_redteam_pairs_error_names_a_random_key_type)
{
	int n = distinct_plans(
		"local t = {}\n"
		"for i = 1, 8 do t[{}] = i; t[function() end] = i;\n"
		"  t[coroutine.create(function() end)] = i end\n"
		"local _, err = pcall(pairs, t)\n"
		"return { component = 'zz', improvements = { { id = 'zz-1', summary = err,\n"
		"  fixes = {}, severity = 'low', apply = function(c) end } } }\n",
		12);

	ck_assert_msg(n == 1, "%d different change sets from one recipe in 12 runs", n);
}
END_TEST

/* "Where the C side reports one of several problems (an unknown field),
 * it names the same one every time": not for keys of different
 * non-string types (report_first() ranks only strings and numbers). */
START_TEST(test_redteam_unknown_field_of_mixed_key_types)
{
	int n = distinct_plans(
		"local imp = { id = 'zz-1', summary = 's', fixes = {}, severity = 'low',\n"
		"  apply = function(c) end }\n"
		"imp[{}] = 1; imp[math.floor] = 2; imp[coroutine.create(print or next)] = 3\n"
		"return { component = 'zz', improvements = { imp } }\n",
		12);

	ck_assert_msg(n == 1, "%d different change sets from one recipe in 12 runs", n);
}
END_TEST

/* ---- fault isolation ------------------------------------------------- */

/*
 * "An improvement whose target cannot be hashed gets status error; every
 * other improvement plans as usual."  A target under /proc (a regular
 * file to stat) is read to its end by the host, without a budget:
 * /proc/self/pagemap is 256 GiB of zeros and holds the whole plan (and
 * status, show, hold, verify, the agent) for minutes per action.
 */
START_TEST(test_redteam_one_target_stalls_the_whole_plan)
{
	char path[4300];
	tu_result r;
	int rc;

	tu_sample_tree(tree);
	snprintf(path, sizeof(path), "%s/payloads/p", tree);
	tu_write(path, "x\n");
	snprintf(path, sizeof(path), "%s/recipes/zz.lua", tree);
	tu_write(path, "return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
		       "  fixes = {}, severity = 'low', apply = function(c)\n"
		       "    c:replace('proc/self/pagemap', { from = 'sha256:' .. ('1'):rep(64),\n"
		       "      to = 'sha256:' .. ('2'):rep(64), payload = 'payloads/p' }) end } } }\n");
	snprintf(path, sizeof(path), "%s/recipes/zy.lua", tree);
	tu_write(path, "return { component = 'zy', improvements = { { id = 'healthy', summary = 's',\n"
		       "  fixes = {}, severity = 'low', apply = function(c) c:restart('x') end } } }\n");
	rc = tu_sh(&r, "timeout 60 '%s' plan --tree '%s' --root /", tu_build_path("bsi"), tree);
	ck_assert_msg(rc != 124, "plan still hashing /proc/self/pagemap after 60 s");
	ASSERT_HAS(r.out, "healthy [low] pending");
	tu_result_free(&r);
}
END_TEST

/* The preview opens every target with a blocking O_RDONLY before it
 * looks at its type: a FIFO in the image hangs `plan --tree` for good
 * (a device node is opened, with whatever its driver does on open). */
START_TEST(test_redteam_fifo_target_hangs_the_preview)
{
	char path[4300];
	tu_result r;
	int rc;

	tu_sample_tree(tree);
	tu_must("mkfifo '%s/usr/lib/fifo'", image);
	snprintf(path, sizeof(path), "%s/payloads/p", tree);
	tu_write(path, "x\n");
	snprintf(path, sizeof(path), "%s/recipes/zz.lua", tree);
	tu_write(path, "return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
		       "  fixes = {}, severity = 'low', apply = function(c)\n"
		       "    c:replace('usr/lib/fifo', { from = 'sha256:' .. ('1'):rep(64),\n"
		       "      to = 'sha256:' .. ('2'):rep(64), payload = 'payloads/p' }) end } } }\n");
	rc = tu_sh(&r, "timeout 20 '%s' plan --tree '%s' --root '%s'", tu_build_path("bsi"), tree,
		   image);
	ck_assert_msg(rc != 124, "plan --tree blocked opening a FIFO");
	tu_result_free(&r);
}
END_TEST

/* "The agent logs each error once per feed commit": the set of logged
 * errors is replaced every run, so an error whose text varies (here by
 * the hash seed, above) is logged again on most runs. */
START_TEST(test_redteam_agent_logs_a_flapping_error_every_run)
{
	size_t logged = 0;

	enrolled_device();
	publish("zz.lua", "for i = 1, 30 do _ENV['alias' .. i] = string.rep end\n"
			  "return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
			  "  fixes = {}, severity = 'low', apply = function(c) end,\n"
			  "  when = function() local ok, e = pcall(string.rep); error(e, 0) end } } }\n");
	for (int i = 0; i < 8; i++) {
		tu_result r;

		tu_bsi(&r, "%s agent --once", g);
		logged += count(r.err, "zz-1 (feed commit");
		tu_result_free(&r);
	}
	ck_assert_msg(logged == 1, "one error at one feed commit logged %zu times in 8 runs",
		      logged);
}
END_TEST

/* "apply and agent --once ... exit with the worst error's code (3 before
 * 4 before 1)": a failed sync returns 1 before the feed's errors are
 * looked at, so a payload refusal (3) reads as a network hiccup. */
START_TEST(test_redteam_failed_sync_hides_a_trust_error)
{
	tu_result r;
	int rc;

	enrolled_device();
	publish("zz.lua",
		"return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
		"  fixes = {}, severity = 'low', apply = function(c)\n"
		"    c:replace('usr/lib/libSystem.B.dylib', { from = bsi.hash('usr/lib/libSystem.B.dylib'),\n"
		"      to = 'sha256:' .. ('a'):rep(64), payload = 'payloads/corelibs/libSystem-26.0.1' })\n"
		"  end } } }\n");
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 3);
	tu_result_free(&r);
	tu_must("mv '%s' '%s.away'", feed, feed);
	rc = tu_bsi(&r, "%s agent --once", g);
	ck_assert_msg(rc == 3, "agent --once exited %d with a payload refused in the trusted head:\n%s",
		      rc, r.err);
	tu_result_free(&r);
}
END_TEST

/* An improvement that replaces no file (restart only, or nothing on this
 * device) is recorded applied, but every plan calls it pending again:
 * status says pending for ever, `apply ID` says "already applied", and
 * each agent run logs a restart it does not do. */
START_TEST(test_redteam_restart_only_improvement_never_settles)
{
	tu_result r;
	char *restarts, path[4300];

	enrolled_device();
	publish("zz.lua", "return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
			  "  fixes = {}, severity = 'low', apply = function(c) c:restart('x') end } } }\n");
	ck_assert_int_eq(tu_bsi(&r, "%s agent --once", g), 0);
	tu_result_free(&r);
	tu_bsi(&r, "%s agent --once", g);
	ck_assert_msg(strstr(r.err, "zz-1") == NULL, "second run:\n%s", r.err);
	tu_result_free(&r);
	snprintf(path, sizeof(path), "%s/restarts.log", state);
	restarts = tu_read(path);
	ck_assert_int_eq(count(restarts, "x\n"), 1);
	free(restarts);
	tu_bsi(&r, "%s status", g);
	ck_assert_msg(strstr(r.out, "pending         low       zz-1") == NULL, "%s", r.out);
	tu_result_free(&r);
}
END_TEST

/* ---- the state grows with what is applied ---------------------------- */

/* A device that defers (auto_install off, on battery, outside its
 * window) keeps a row, with the whole entry as JSON, for every id any
 * feed commit listed, for ever: a feed that names its fixes per release
 * grows every such device by the feed's size at each commit, and status
 * lists the vanished ones as pending. */
START_TEST(test_redteam_deferring_device_keeps_every_id_ever_listed)
{
	tu_result r;
	char recipe[1024];

	enrolled_device();
	tu_write(conf, "service_manager = \"record\"\nauto_install = false\n");
	for (int rel = 1; rel <= 3; rel++) {
		snprintf(recipe, sizeof(recipe),
			 "local l = {}\n"
			 "for i = 1, 100 do l[i] = { id = 'r%d-' .. i, summary = ('x'):rep(4000),\n"
			 "  fixes = {}, severity = 'low', apply = function(c) c:restart('s' .. i) end } end\n"
			 "return { component = 'zz', improvements = l }\n",
			 rel);
		publish("zz.lua", recipe);
		tu_bsi(&r, "%s agent --once", g);
		tu_result_free(&r);
	}
	tu_bsi(&r, "%s status", g);
	ck_assert_msg(strstr(r.out, "r1-1 ") == NULL,
		      "an id two releases gone is still listed (as pending)");
	tu_result_free(&r);
}
END_TEST

/* ---- text from outside ----------------------------------------------- */

/* A recipe file's name reaches the terminal raw through the reason of an
 * improvement in error (plan, status, show, apply): recipe.c prefixes
 * the unclean c->name to the cleaned message. */
START_TEST(test_redteam_recipe_file_name_drives_the_terminal)
{
	char path[4300];
	tu_result r;

	tu_sample_tree(tree);
	snprintf(path, sizeof(path), "%s/recipes/e\033]0;PWNED\007\033[2J.lua", tree);
	tu_write(path, "return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
		       "  fixes = {}, severity = 'low', apply = function(c) end,\n"
		       "  when = function() error('broken') end } } }\n");
	tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image);
	ASSERT_HAS(r.out, "zz-1 [low] error");
	ck_assert_msg(!has_control(r.out), "a control character on stdout:\n%s", r.out);
	tu_result_free(&r);
}
END_TEST

/* The unit of a process still running old code comes from its cgroup
 * path, which a user names freely under their delegated
 * user@UID.service; status prints it as is. */
START_TEST(test_redteam_cgroup_unit_name_is_not_cleaned)
{
	char *unit = NULL;
	bool user = false;

	ck_assert_int_eq(bsi_procs_unit_of_cgroup(&unit, &user,
						  "0::/user.slice/user-1000.slice/user@1000.service/"
						  "app.slice/\033]0;PWNED\007\033[2J.service\n"),
			 0);
	ck_assert_ptr_nonnull(unit);
	ck_assert_msg(!has_control(unit), "unit with control characters: %s", unit);
	free(unit);
}
END_TEST

/* ---- the smaller gaps of the same review ------------------------------ */

/* A tree holding recipes/zz.lua = text (and the sample recipes): plan
 * --tree, its exit status in *rc. */
static tu_result plan_tree(const char *text, int *rc)
{
	char path[4300];
	tu_result r;

	tu_sample_tree(tree);
	snprintf(path, sizeof(path), "%s/recipes/zz.lua", tree);
	if (text)
		tu_write(path, text);
	*rc = tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image);
	return r;
}

/* A malformed entry (no severity) was shown as "[(null)]": printf of NULL. */
START_TEST(test_redteam_malformed_entry_shows_no_null)
{
	int rc;
	tu_result r = plan_tree("return { component = 'zz', improvements = { { id = 'zz-1',\n"
				"  summary = 's', fixes = {}, apply = function(c) end } } }\n",
				&rc);

	ck_assert_int_eq(rc, 4);
	ASSERT_HAS(r.out, "zz zz-1 [?] error\n");
	ck_assert_ptr_null(strstr(r.out, "(null)"));
	tu_result_free(&r);
}
END_TEST

/* An error object without a line (error({}), a yield outside a coroutine)
 * left the reason without one: it names the improvement and its line. */
START_TEST(test_redteam_error_without_a_line_names_the_improvement)
{
	int rc;
	tu_result r = plan_tree("return { component = 'zz', improvements = {\n"
				"  { id = 'zz-1', summary = 's', fixes = {}, severity = 'low',\n"
				"    when = function() error({}) end, apply = function(c) end } } }\n",
				&rc);

	ck_assert_int_eq(rc, 4);
	ASSERT_HAS(r.out, "    error: recipes/zz.lua:2: improvement \"zz-1\": error object is a "
			  "table value\n");
	tu_result_free(&r);
}
END_TEST

/* A recipe over 1 MiB was an error of exit 1 (as if I/O failed), not 4. */
START_TEST(test_redteam_oversized_recipe_is_a_recipe_error)
{
	int rc;
	tu_result r;
	char path[4300];

	tu_sample_tree(tree);
	snprintf(path, sizeof(path), "%s/recipes/zz.lua", tree);
	tu_must("{ printf 'return { component = \"zz\", improvements = {} }\\n--'; "
		"head -c 1100000 /dev/zero | tr '\\0' x; } > '%s'", path);
	rc = tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image);
	ck_assert_int_eq(rc, 4);
	ASSERT_HAS(r.out, "error: ");
	ASSERT_HAS(r.out, "recipes/zz.lua is 11000");
	ASSERT_HAS(r.out, " bytes, more than the 1048576 allowed");
	ASSERT_HAS(r.out, "webkit webkit-26.0.2-a [high] pending");
	tu_result_free(&r);
}
END_TEST

/* A recipe name that is no regular file (a symlink, a directory; in git a
 * symlink or a submodule) was skipped without a word: its improvements
 * vanished.  Now each is an error of that file; a `recipes` that is a file
 * is an error too. */
START_TEST(test_redteam_recipe_entries_that_are_no_files_are_errors)
{
	char *pub;
	int rc;
	tu_result r;

	tu_sample_tree(tree);
	tu_must("cd '%s/recipes' && ln -s webkit.lua alias.lua && mkdir dir.lua", tree);
	rc = tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image);
	ck_assert_int_eq(rc, 4);
	ASSERT_HAS(r.out, "error: ");
	ASSERT_HAS(r.out, "recipes/alias.lua is not a file in the feed tree");
	ASSERT_HAS(r.out, "recipes/dir.lua is not a file in the feed tree");
	tu_result_free(&r);

	/* in a signed feed: a symlink committed as recipes/link.lua */
	enrolled_device();
	tu_must("cd '%s/recipes' && ln -s safari.lua link.lua", feed);
	tu_feed_commit(feed, key, "a symlink among the recipes");
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 4);
	ASSERT_HAS(r.out, "recipes/link.lua is not a file in its tree");
	tu_result_free(&r);
	/* and a `recipes` that is a file */
	tu_must("cd '%s' && git rm -rq recipes && echo oops > recipes", feed);
	tu_feed_commit(feed, key, "recipes is a file");
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 4);
	ASSERT_HAS(r.out, "recipes is not a directory");
	tu_result_free(&r);
	/* an id of a file in error: not "no such improvement" (exit 2) */
	ck_assert_int_eq(tu_bsi(&r, "%s apply safari-26.0.1-a", g), 4);
	ASSERT_HAS(r.err, "1 recipe file is in error");
	tu_result_free(&r);
	pub = tu_pubkey(key);
	free(pub);
}
END_TEST

/* With --root /, bsi.read of a /proc file gave each process its own bytes
 * (a random uuid): a plan that differs from run to run. */
START_TEST(test_redteam_read_of_a_proc_file_is_refused)
{
	char path[4300];
	tu_result r;

	tu_sample_tree(tree);
	snprintf(path, sizeof(path), "%s/recipes/zz.lua", tree);
	tu_write(path, "return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
		       "  fixes = {}, severity = 'low',\n"
		       "  when = function() return false, bsi.read('proc/sys/kernel/random/uuid') end,\n"
		       "  apply = function(c) end } } }\n");
	ck_assert_int_eq(tu_bsi(&r, "plan --tree '%s' --root /", tree), 4);
	ASSERT_HAS(r.out, "recipes/zz.lua:3: bsi.read: it holds more than the 0 bytes its size "
			  "says");
	tu_result_free(&r);
}
END_TEST

/* A feed URL with an escape sequence was printed raw by enroll and status. */
START_TEST(test_redteam_enroll_refuses_a_url_with_controls)
{
	char *pub;
	tu_result r;

	tu_signed_feed(feed, key, intro);
	pub = tu_pubkey(key);
	ck_assert_int_eq(tu_bsi(&r, "%s enroll \"$(printf 'file://%s\\033[2J')\" --introduction %s "
				    "--signer '%s'",
				g, feed, intro, pub),
			 2);
	ASSERT_HAS(r.err, "the feed URL holds control characters");
	ck_assert(!has_control(r.err));
	tu_result_free(&r);
	free(pub);
}
END_TEST

/* A manual `bsi sync` that worked left the agent backing off: the agent
 * kept exiting 1 ("backing off") on a fresh head. */
START_TEST(test_redteam_sync_ends_the_agents_backoff)
{
	tu_result r;

	enrolled_device();
	tu_must("mv '%s' '%s.away'", feed, feed);
	ck_assert_int_eq(tu_bsi(&r, "%s agent --once", g), 1);
	tu_result_free(&r);
	tu_must("mv '%s.away' '%s'", feed, feed);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s agent --once", g), 0);
	ck_assert_ptr_null(strstr(r.err, "backing off"));
	tu_result_free(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("redteam");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_redteam_error_names_follow_the_hash_seed);
	tcase_add_test(tc, test_redteam_pairs_error_names_a_random_key_type);
	tcase_add_test(tc, test_redteam_unknown_field_of_mixed_key_types);
	tcase_add_test(tc, test_redteam_one_target_stalls_the_whole_plan);
	tcase_add_test(tc, test_redteam_fifo_target_hangs_the_preview);
	tcase_add_test(tc, test_redteam_agent_logs_a_flapping_error_every_run);
	tcase_add_test(tc, test_redteam_failed_sync_hides_a_trust_error);
	tcase_add_test(tc, test_redteam_restart_only_improvement_never_settles);
	tcase_add_test(tc, test_redteam_deferring_device_keeps_every_id_ever_listed);
	tcase_add_test(tc, test_redteam_recipe_file_name_drives_the_terminal);
	tcase_add_test(tc, test_redteam_cgroup_unit_name_is_not_cleaned);
	tcase_add_test(tc, test_redteam_malformed_entry_shows_no_null);
	tcase_add_test(tc, test_redteam_error_without_a_line_names_the_improvement);
	tcase_add_test(tc, test_redteam_oversized_recipe_is_a_recipe_error);
	tcase_add_test(tc, test_redteam_recipe_entries_that_are_no_files_are_errors);
	tcase_add_test(tc, test_redteam_read_of_a_proc_file_is_refused);
	tcase_add_test(tc, test_redteam_enroll_refuses_a_url_with_controls);
	tcase_add_test(tc, test_redteam_sync_ends_the_agents_backoff);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
