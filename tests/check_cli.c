/* The command line, plan and recipe check, run as a user would run them. */
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir, tree[4096], image[4096], state[4096];

static void setup(void)
{
	dir = tu_tmpdir();
	snprintf(tree, sizeof(tree), "%s/feed", dir);
	snprintf(image, sizeof(image), "%s/image", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	tu_sample_tree(tree);
	tu_must("mkdir -p '%s'", state);
}

static void teardown(void) { tu_cleanup(); }

#define ASSERT_HAS(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

START_TEST(test_cli_help_lists_commands_and_exit_codes)
{
	tu_result r;

	ck_assert_int_eq(tu_bsi(&r, "--help"), 0);
	ASSERT_HAS(r.out, "bsi plan [--tree DIR]");
	ASSERT_HAS(r.out, "bsi rollback ID");
	ASSERT_HAS(r.out, "bsi feed verify [DIR]");
	ASSERT_HAS(r.out, "bsi recipe check FILE...");
	ASSERT_HAS(r.out, "3 trust refused");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "plan --help"), 0);
	ASSERT_HAS(r.out, "usage: bsi plan");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "--help recipe check"), 0);
	ASSERT_HAS(r.out, "usage: bsi recipe check");
	tu_result_free(&r);
}
END_TEST

START_TEST(test_cli_usage_errors_exit_2)
{
	tu_result r;

	ck_assert_int_eq(tu_bsi(&r, "frobnicate"), 2);
	ASSERT_HAS(r.err, "unknown command \"frobnicate\"");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "plan --frob"), 2);
	ASSERT_HAS(r.err, "unknown option --frob");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s", ""), 2);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "recipe check"), 2);
	ASSERT_HAS(r.err, "usage: bsi recipe check");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "plan --tree"), 2);
	ASSERT_HAS(r.err, "needs a value");
	tu_result_free(&r);
}
END_TEST

START_TEST(test_cli_bad_config_names_file_and_line)
{
	char conf[4200], want[4300];
	tu_result r;

	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	tu_write(conf, "auto_install = true\nservice_manger = \"record\"\n");
	tu_sample_image("current", image);
	ck_assert_int_eq(tu_bsi(&r, "--config '%s' plan --tree '%s' --root '%s'", conf, tree, image), 2);
	snprintf(want, sizeof(want), "%s:2: unknown key \"service_manger\"", conf);
	ASSERT_HAS(r.err, want);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "--config '%s/none.conf' plan --tree '%s' --root '%s'", dir,
				tree, image), 2);
	tu_result_free(&r);
}
END_TEST

START_TEST(test_cli_recipe_check_reference_recipes)
{
	tu_result r;

	ck_assert_int_eq(tu_bsi(&r, "recipe check recipes/safari.lua recipes/webkit.lua "
				    "recipes/corelibs.lua"), 0);
	ASSERT_HAS(r.out, "recipes/webkit.lua: ok, 2 improvements");
	tu_result_free(&r);
}
END_TEST

START_TEST(test_cli_recipe_check_syntax_error_exit_4_with_line)
{
	char bad[4200];
	tu_result r;

	snprintf(bad, sizeof(bad), "%s/bad.lua", dir);
	tu_write(bad, "return {\n  component = \"x\",\n  improvements = {\n    { id = ,\n");
	ck_assert_int_eq(tu_bsi(&r, "recipe check '%s'", bad), 4);
	ASSERT_HAS(r.err, "bad.lua:4:");
	tu_result_free(&r);
}
END_TEST

/* The plan of the current image: everything pending but the superseded fix. */
/* recipe check names every improvement in error, each at its line, not
 * only the first; the healthy one does not make the file pass. */
START_TEST(test_cli_recipe_check_reports_each_broken_improvement)
{
	char bad[4200];
	tu_result r;

	snprintf(bad, sizeof(bad), "%s/some.lua", dir);
	tu_write(bad, "return { component = 'c', improvements = {\n"
		      "  { id = 'a-1', summary = 's', fixes = {}, severity = 'low',\n"
		      "    apply = function(c) c:restart('x') end },\n"
		      "  { id = 'b-1', summary = 's', fixes = {}, severity = 'urgent',\n"
		      "    apply = function(c) end },\n"
		      "  { id = 'c-1', summary = 's', fixes = {}, severity = 'low',\n"
		      "    apply = function(c) error('oops') end },\n"
		      "} }\n");
	ck_assert_int_eq(tu_bsi(&r, "recipe check '%s'", bad), 4);
	ASSERT_HAS(r.err, "some.lua:4: improvement \"b-1\": severity must be one of");
	ASSERT_HAS(r.err, "some.lua:7: oops\n");
	ck_assert_ptr_null(strstr(r.out, "ok"));
	tu_result_free(&r);
}
END_TEST

START_TEST(test_cli_plan_current_image)
{
	tu_result r;

	tu_sample_image("current", image);
	ck_assert_int_eq(tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image), 0);
	ASSERT_HAS(r.out, "webkit webkit-26.0.2-a [high] pending");
	ASSERT_HAS(r.out, "replace System/Library/Frameworks/WebKit.framework/Versions/A/WebKit  "
			  "14d50e839255 -> 2c874a783c7b");
	ASSERT_HAS(r.out, "restart com.apple.WebKit.Networking");
	ASSERT_HAS(r.out, "fixes: CVE-2026-20101 CVE-2026-20144");
	ASSERT_HAS(r.out, "webkit-26.0.1-a [critical] not-applicable");
	ASSERT_HAS(r.out, "reason: superseded by webkit-26.0.2-a");
	ASSERT_HAS(r.out, "7 improvements: 6 pending, 0 applied, 1 not applicable");
	tu_result_free(&r);
}
END_TEST

START_TEST(test_cli_plan_old_image_not_applicable_with_reason)
{
	tu_result r;

	tu_sample_image("old", image);
	ck_assert_int_eq(tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image), 0);
	ASSERT_HAS(r.out, "corelibs-26.0.1-tls [high] not-applicable");
	ASSERT_HAS(r.out, "reason: requires macOS 26.0 (device has 25.6)");
	ASSERT_HAS(r.out, "7 improvements: 0 pending, 0 applied, 7 not applicable");
	tu_result_free(&r);
}
END_TEST

START_TEST(test_cli_plan_patched_image_applied)
{
	tu_result r;

	tu_sample_image("patched", image);
	ck_assert_int_eq(tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image), 0);
	ASSERT_HAS(r.out, "safari-26.0.1-a [critical] applied");
	ASSERT_HAS(r.out, "webkit-26.0.2-a [high] applied");
	ASSERT_HAS(r.out, "7 improvements: 0 pending, 6 applied, 1 not applicable");
	tu_result_free(&r);
}
END_TEST

/* --json before or after the command; the document has DESIGN.md's fields. */
START_TEST(test_cli_plan_json_shape)
{
	const char *forms[] = {"--json plan", "plan --json"};

	tu_sample_image("current", image);
	for (size_t f = 0; f < 2; f++) {
		json_error_t jerr;
		json_t *doc, *imps, *imp, *act;
		char args[9000];
		tu_result r;

		snprintf(args, sizeof(args), "%s --tree '%s' --root '%s'", forms[f], tree, image);
		ck_assert_int_eq(tu_bsi(&r, "%s", args), 0);
		doc = json_loads(r.out, 0, &jerr);
		ck_assert_msg(doc != NULL, "not JSON: %s\n%s", jerr.text, r.out);
		imps = json_object_get(doc, "improvements");
		ck_assert_int_eq(json_array_size(imps), 7);
		imp = json_array_get(imps, 0);
		ck_assert_str_eq(json_string_value(json_object_get(imp, "id")), "corelibs-26.0.1-tls");
		ck_assert_str_eq(json_string_value(json_object_get(imp, "component")), "corelibs");
		ck_assert_str_eq(json_string_value(json_object_get(imp, "status")), "pending");
		ck_assert(json_is_null(json_object_get(imp, "reason")));
		act = json_array_get(json_object_get(imp, "actions"), 0);
		ck_assert_str_eq(json_string_value(json_object_get(act, "op")), "replace");
		ck_assert_str_eq(json_string_value(json_object_get(act, "path")), "usr/lib/libboringssl.dylib");
		ck_assert(strncmp(json_string_value(json_object_get(act, "from")), "sha256:bdc4cb8c", 15) == 0);
		act = json_array_get(json_object_get(imp, "actions"), 1);
		ck_assert_str_eq(json_string_value(json_object_get(act, "op")), "restart");
		ck_assert_str_eq(json_string_value(json_object_get(act, "service")), "com.apple.trustd");
		json_decref(doc);
		tu_result_free(&r);
	}
}
END_TEST

/* A payload that is not what its recipe pins: that improvement is an
 * error (both digests in full), the others plan; exit 3; nothing changes. */
START_TEST(test_cli_plan_refuses_payload_digest_mismatch)
{
	char *before, *after;
	tu_result r;

	tu_sample_image("current", image);
	tu_must("echo tampered >> '%s/payloads/webkit/WebKit-26.0.2'", tree);
	before = tu_tree_fingerprint(dir);
	ck_assert_int_eq(tu_bsi(&r, "plan --tree '%s' --root '%s' --state '%s'", tree, image, state), 3);
	ASSERT_HAS(r.out, "webkit webkit-26.0.2-a [high] error\n");
	ASSERT_HAS(r.out, "    error: recipes/webkit.lua:");
	ASSERT_HAS(r.out, "payloads/webkit/WebKit-26.0.2 has sha256:");
	ASSERT_HAS(r.out, "but the recipe pins "
			  "sha256:2c874a783c7b663556793e360b2f79c634bff406ad90aa242078bcd62d904abc");
	ASSERT_HAS(r.out, "corelibs corelibs-26.0.1-tls [high] pending\n");
	ASSERT_HAS(r.err, "the plan has errors");
	after = tu_tree_fingerprint(dir);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	tu_result_free(&r);
}
END_TEST

/* A payload the tree does not have: refused (exit 3) with one clear line. */
START_TEST(test_cli_plan_refuses_missing_payload)
{
	tu_result r;

	tu_sample_image("current", image);
	tu_must("rm '%s/payloads/corelibs/libboringssl-26.0.1'", tree);
	ck_assert_int_eq(tu_bsi(&r, "plan --tree '%s' --root '%s'", tree, image), 3);
	ASSERT_HAS(r.out, "corelibs corelibs-26.0.1-tls [high] error\n");
	ASSERT_HAS(r.out, "    error: recipes/corelibs.lua:");
	ck_assert_msg(strchr("123456789", strstr(r.out, "recipes/corelibs.lua:")[21]) != NULL,
		      "no line number: %s", r.out);
	ASSERT_HAS(r.out, ": improvement \"corelibs-26.0.1-tls\": ");
	ASSERT_HAS(r.out, "payloads/corelibs/libboringssl-26.0.1 is not a file in the feed tree\n");
	ck_assert_msg(strstr(strstr(r.out, "improvement \"") + 1, "improvement \"") == NULL,
		      "message repeats itself: %s", r.out);
	ASSERT_HAS(r.out, "webkit webkit-26.0.2-a [high] pending\n");
	tu_result_free(&r);
}
END_TEST

/* A device checks the payloads it may stage, not every payload of the feed
 * on every run (docs/decisions.md): a bad payload of an improvement the
 * device already has stops nothing, while one it would stage is still
 * refused (exit 3): its files stay as they were, and every other due
 * improvement applies. */
START_TEST(test_cli_apply_checks_only_payloads_it_may_stage)
{
	char image2[4200], state2[4200], *before, *after;
	tu_result r;

	tu_must("echo tampered >> '%s/payloads/webkit/WebKit-26.0.2'", tree);
	tu_sample_image("patched", image);
	ck_assert_int_eq(tu_bsi(&r, "apply --tree '%s' --root '%s' --state '%s'", tree, image, state),
			 0);
	ASSERT_HAS(r.out, "nothing to apply");
	tu_result_free(&r);

	snprintf(image2, sizeof(image2), "%s/image2", dir);
	snprintf(state2, sizeof(state2), "%s/state2", dir);
	tu_sample_image("current", image2);
	before = tu_file_digest(image2, "System/Library/Frameworks/WebKit.framework/Versions/A/WebKit");
	ck_assert_int_eq(
		tu_bsi(&r, "apply --tree '%s' --root '%s' --state '%s'", tree, image2, state2), 3);
	ASSERT_HAS(r.err, "bsi: webkit-26.0.2-a: not applied: recipes/webkit.lua:");
	ASSERT_HAS(r.err, "payloads/webkit/WebKit-26.0.2 has sha256:");
	ASSERT_HAS(r.out, "applied corelibs-26.0.1-libc: 1 file replaced");
	after = tu_file_digest(image2, "System/Library/Frameworks/WebKit.framework/Versions/A/WebKit");
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	tu_result_free(&r);
}
END_TEST

/* Whatever the recipes do, plan changes nothing in the root or the state. */
START_TEST(test_cli_plan_changes_nothing)
{
	char *before, *after, path[4200];
	tu_result r;

	tu_sample_image("current", image);
	snprintf(path, sizeof(path), "%s/recipes/zz-hostile.lua", tree);
	tu_write(path,
		 "local n = 0\n"
		 "for _, p in ipairs({'usr/lib/libSystem.B.dylib', '../state/x', '/etc/passwd'}) do\n"
		 "  pcall(bsi.hash, p); pcall(bsi.read, p, 100); pcall(bsi.exists, p)\n"
		 "end\n"
		 "pcall(function() bsi.hash = nil end)\n"
		 "return { component = 'zz', improvements = { { id = 'zz-1', summary = 's',\n"
		 "  severity = 'low', fixes = {}, apply = function(c)\n"
		 "    c:replace('usr/lib/libboringssl.dylib', { from = 'sha256:bdc4cb8c8438b200394701ca66a3926419251c1f1ccfc7c7491694f8f09da661',\n"
		 "      to = 'sha256:94a5f78ad7e6c61d0ad2dc81f1c88414e284f7136713f87629fbee39627feb7d',\n"
		 "      payload = 'payloads/corelibs/libboringssl-26.0.1' })\n"
		 "    c:restart('x')\n"
		 "  end } } }\n");
	before = tu_tree_fingerprint(dir);
	ck_assert_int_eq(tu_bsi(&r, "plan --tree '%s' --root '%s' --state '%s'", tree, image, state), 0);
	ASSERT_HAS(r.out, "zz zz-1 [low] pending");
	after = tu_tree_fingerprint(dir);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	tu_result_free(&r);
}
END_TEST

/* What is previewed is what is applied: the same recipes evaluated by two
 * processes give the same change set, byte for byte, even from a recipe
 * that reaches for everything that varies between runs in stock Lua
 * (string-key order, addresses, the random seed, pivots of table.sort). */
START_TEST(test_cli_plan_is_deterministic)
{
	char path[4200];
	tu_result a, b;

	tu_sample_image("current", image);
	snprintf(path, sizeof(path), "%s/recipes/zz-det.lua", tree);
	tu_write(path,
		 "local services = {}\n"
		 "for i = 1, 40 do services['svc' .. i] = true end\n"
		 "local seen = {}\n"
		 "for k in pairs(services) do seen[#seen + 1] = k end\n"
		 "local rows = {}\n"
		 "for i = 1, 300 do rows[i] = { id = i, key = i % 3 } end\n"
		 "table.sort(rows, function(x, y) return x.key < y.key end)\n"
		 "local order = {}\n"
		 "for i = 1, 300 do order[i] = rows[i].id end\n"
		 "local why = table.concat(seen, ',') .. ' ' .. tostring(next(services)) .. ' ' ..\n"
		 "  tostring({}) .. ' ' .. tostring(function() end) .. ' ' ..\n"
		 "  string.format('%s %s', {}, coroutine.create(type)) .. ' ' ..\n"
		 "  math.random(1, 1000000000) .. ' ' .. table.concat(order, ',', 1, 6)\n"
		 "return { component = 'zz', improvements = {\n"
		 "  { id = 'zz-1', summary = 's', severity = 'low', fixes = {},\n"
		 "    when = function() return false, why end, apply = function(c) end },\n"
		 "  { id = 'zz-2', summary = 's', severity = 'low', fixes = {},\n"
		 "    apply = function(c) for name in pairs(services) do c:restart(name) end end },\n"
		 "} }\n");
	ck_assert_int_eq(tu_bsi(&a, "plan --tree '%s' --root '%s' --json", tree, image), 0);
	ck_assert_int_eq(tu_bsi(&b, "plan --tree '%s' --root '%s' --json", tree, image), 0);
	ck_assert_str_eq(a.out, b.out);
	/* the one order: keys bytewise; no addresses; stable sort */
	ASSERT_HAS(a.out, "\"reason\": \"svc1,svc10,svc11,svc12,");
	ASSERT_HAS(a.out, ",svc8,svc9 svc1 table function table thread ");
	ASSERT_HAS(a.out, " 3,6,9,12,15,18\"");
	ASSERT_HAS(a.out, "\"service\": \"svc1\"");
	ck_assert_ptr_null(strstr(a.out, "0x"));
	/* the sample recipes too */
	ASSERT_HAS(a.out, "\"id\": \"webkit-26.0.2-a\"");
	tu_result_free(&a);
	tu_result_free(&b);
}
END_TEST

/* ---- odd files on real devices ------------------------------------- */

/* The SHA-256 of a file as sha256sum prints it (symlinks followed). */
static void sha256_of(const char *path, char out[72])
{
	tu_result r;

	ck_assert_int_eq(tu_sh(&r, "sha256sum '%s'", path), 0);
	ck_assert_int_ge(strlen(r.out), 64);
	snprintf(out, 72, "sha256:%.64s", r.out);
	tu_result_free(&r);
}

/* A feed tree at `feed` with one recipe file (text) and payloads/p. */
static void one_recipe_feed(const char *feed, const char *text)
{
	char p[4400];

	tu_must("rm -rf '%s' && mkdir -p '%s/recipes' '%s/payloads' && "
		"printf 'the new bytes\\n' > '%s/payloads/p'",
		feed, feed, feed, feed);
	snprintf(p, sizeof(p), "%s/recipes/sys.lua", feed);
	tu_write(p, text);
}


/*
 * `--root /` on this Debian system: usr/bin/awk -> /etc/alternatives/awk ->
 * /usr/bin/mawk, and a directory reached through an absolute symlink
 * (usr/lib/ssl/certs -> /etc/ssl/certs, or the first such directory found),
 * both read as a chroot reads them: no confinement error, the digests of the
 * real files, a pending replace.  A preview only reads: the state directory
 * it is given is never created, and the target is as it was.
 */
START_TEST(test_cli_plan_root_slash_follows_absolute_symlinks)
{
	char feed[4200], none[4400], awk[72], target_digest[72], pay[72], *text, target[4096];
	struct stat before, after;
	tu_result r;

	if (tu_sh(&r, "readlink /usr/bin/awk | grep -q '^/'") != 0) {
		tu_result_free(&r);
		fprintf(stderr, "SKIP test_cli_plan_root_slash_follows_absolute_symlinks: "
				"/usr/bin/awk is no absolute symlink here\n");
		return;
	}
	tu_result_free(&r);
	/* a small regular file with one link behind an absolute directory symlink */
	tu_sh(&r, "for l in /usr/lib/ssl/certs $(find /usr /etc /var -xdev -maxdepth 4 -type l "
		  "-lname '/*' 2>/dev/null | sort); do [ -d \"$l\" ] || continue; "
		  "f=$(find \"$l/\" -maxdepth 1 -type f -links 1 -size -2048k -readable "
		  "2>/dev/null | sort | head -n 1); [ -n \"$f\" ] && echo \"$f\" && break; done");
	if (!r.out[0]) {
		tu_result_free(&r);
		fprintf(stderr, "SKIP test_cli_plan_root_slash_follows_absolute_symlinks: no "
				"absolute directory symlink with a small file here\n");
		return;
	}
	snprintf(target, sizeof(target), "%s", r.out + 1); /* relative to / */
	target[strcspn(target, "\n")] = '\0';
	tu_result_free(&r);
	sha256_of("/usr/bin/awk", awk);
	snprintf(none, sizeof(none), "/%s", target);
	sha256_of(none, target_digest);
	ck_assert_int_eq(stat(none, &before), 0);
	snprintf(feed, sizeof(feed), "%s/sysfeed", dir);
	snprintf(none, sizeof(none), "%s/no-state", dir);
	ck_assert_int_gt(
		asprintf(&text,
			 "local awk = bsi.hash('usr/bin/awk')\n"
			 "assert(awk == '%s', 'usr/bin/awk hashed as ' .. tostring(awk))\n"
			 "assert(bsi.verify('bin/awk', '%s'))\n"
			 "assert(bsi.read('usr/bin/awk', 4) == '\\127ELF')\n"
			 "assert(bsi.exists('etc/alternatives/awk'))\n"
			 "return { component = 'sys', improvements = { { id = 'sys-1',\n"
			 "  summary = 'a file behind absolute symlinks', severity = 'low', fixes = {},\n"
			 "  when = function() return bsi.hash('%s') == '%s', 'target moved' end,\n"
			 "  apply = function(c)\n"
			 "    c:replace('%s', { from = '%s', to = 'PAYLOAD', payload = 'payloads/p' })\n"
			 "  end } } }\n",
			 awk, awk, target, target_digest, target, target_digest),
		0);
	one_recipe_feed(feed, text);
	free(text);
	snprintf(none, sizeof(none), "%s/payloads/p", feed);
	sha256_of(none, pay);
	snprintf(none, sizeof(none), "%s/no-state", dir);
	tu_must("sed -i 's/PAYLOAD/%s/' '%s/recipes/sys.lua'", pay, feed);

	ck_assert_msg(tu_bsi(&r, "plan --tree '%s' --root / --state '%s'", feed, none) == 0,
		      "%s%s", r.out, r.err);
	ASSERT_HAS(r.out, "sys sys-1 [low] pending");
	ASSERT_HAS(r.out, target);
	ck_assert_msg(!strstr(r.err, "refused"), "%s", r.err);
	tu_result_free(&r);
	/* read only: no state, no staged file, the target untouched */
	ck_assert_int_ne(access(none, F_OK), 0);
	snprintf(none, sizeof(none), "/%s", target);
	ck_assert_int_eq(stat(none, &after), 0);
	ck_assert(before.st_ino == after.st_ino && before.st_size == after.st_size &&
		  before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
		  before.st_mtim.tv_nsec == after.st_mtim.tv_nsec &&
		  before.st_ctim.tv_nsec == after.st_ctim.tv_nsec);
	ck_assert_int_eq(tu_sh(&r, "ls -a \"$(dirname '%s')\" | grep -c '^\\.bsi-stage' ", none), 1);
	tu_result_free(&r);
}
END_TEST

/*
 * Symlinks in a test image that try to leave it: an absolute one to the
 * marker's real path means that path inside the image (nothing there), and
 * "/../../" or "../../../" above the root are refused.  The marker outside
 * the image is never read.
 */
START_TEST(test_cli_plan_symlink_escapes_stay_inside)
{
	static const char *const escapes[] = {"abs", "slashdotdot", "dotdot"};
	char feed[4200], marker[4200], *text;
	tu_result r;

	snprintf(marker, sizeof(marker), "%s/outside/marker", dir);
	snprintf(feed, sizeof(feed), "%s/escfeed", dir);
	tu_must("mkdir -p '%s/outside' '%s/usr/share' && echo MARKER-OUTSIDE > '%s' && "
		"ln -s '%s' '%s/usr/share/abs' && "
		"ln -s /../../outside/marker '%s/usr/share/slashdotdot' && "
		"ln -s ../../../outside/marker '%s/usr/share/dotdot'",
		dir, image, marker, marker, image, image, image);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_gt(
			asprintf(&text,
				 "return { component = 'esc', improvements = { { id = 'esc-1',\n"
				 "  summary = 's', severity = 'low', fixes = {},\n"
				 "  when = function()\n"
				 "    local got = bsi.read('usr/share/%s', 100)\n"
				 "    return got == nil, 'read ' .. tostring(got)\n"
				 "  end,\n"
				 "  apply = function(c) c:restart('x') end } } }\n",
				 escapes[i]),
			0);
		one_recipe_feed(feed, text);
		free(text);
		tu_bsi(&r, "plan --tree '%s' --root '%s'", feed, image);
		ck_assert_msg(!strstr(r.out, "MARKER") && !strstr(r.err, "MARKER"), "%s: %s%s",
			      escapes[i], r.out, r.err);
		if (i == 0) {
			ck_assert_msg(r.status == 0, "%s", r.err);
			ASSERT_HAS(r.out, "esc esc-1 [low] pending");
		} else {
			/* the escape is refused: that improvement's error */
			ck_assert_int_eq(r.status, 4);
			ASSERT_HAS(r.out, "esc esc-1 [low] error\n");
			ASSERT_HAS(r.out, "bsi.read: path \"usr/share/");
			ASSERT_HAS(r.out, "\" refused: \"..\" leads outside the target root");
		}
		tu_result_free(&r);
	}
}
END_TEST

/* What the target becomes in a test image, and what both plans must say. */
static const struct {
	const char *make; /* shell, run in the image's usr/bin */
	const char *want;
} odd_targets[] = {
	{"mv tool tool.real && ln -s /usr/bin/tool.real tool",
	 "usr/bin/tool is a symlink to /usr/bin/tool.real; bsi replaces regular files only: name "
	 "the file it points to"},
	{"rm tool && mkdir tool", "usr/bin/tool is a directory; bsi replaces regular files only"},
	{"rm tool && mkfifo tool", "usr/bin/tool is a FIFO; bsi replaces regular files only"},
	{"ln tool tool.alias",
	 "usr/bin/tool has 2 hard links; bsi cannot find every name of such a file"},
	{"head -c 2097152 /dev/zero >> tool", "usr/bin/tool is 2097160 bytes, more than "
					      "max_target_mib allows (1 MiB)"},
};

/*
 * A replace target that is no file to patch: the preview (`plan --tree`)
 * and the device (`apply --tree`, which plans with the state's hasher) give
 * that improvement the same error, exit 4, without hanging on a FIFO (the
 * recipe queries it too), and nothing in the image changes.
 */
START_TEST(test_cli_odd_target_same_verdict_preview_and_device)
{
	char feed[4200], conf[4200], *text, *before, *after, preview[2048];
	tu_result r;

	snprintf(feed, sizeof(feed), "%s/oddfeed", dir);
	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	tu_write(conf, "service_manager = \"record\"\nmax_target_mib = 1\n");
	tu_must("mkdir -p '%s/usr/bin' && printf 'old tool' > '%s/usr/bin/tool'", image, image);
	ck_assert_int_gt(
		asprintf(&text,
			 "return { component = 'odd', improvements = { { id = 'odd-1',\n"
			 "  summary = 's', severity = 'low', fixes = {},\n"
			 "  when = function()\n"
			 "    return bsi.hash('usr/bin/tool') ~= nil or bsi.read('usr/bin/tool') == nil\n"
			 "  end,\n"
			 "  apply = function(c)\n"
			 "    c:replace('usr/bin/tool', { from = "
			 "'sha256:2e9ab4d2d3b41b1a23e6d05d0d36b4ab3a1ef13f3a3c8c1f1e6a47e90f0ab3c1', "
			 "to = 'PAYLOAD', payload = 'payloads/p' })\n"
			 "  end } } }\n"),
		0);
	one_recipe_feed(feed, text);
	free(text);
	{
		char pay[72], p[4400];

		snprintf(p, sizeof(p), "%s/payloads/p", feed);
		sha256_of(p, pay);
		tu_must("sed -i 's/PAYLOAD/%s/' '%s/recipes/sys.lua'", pay, feed);
	}
	tu_must("cd '%s/usr/bin' && %s", image, odd_targets[_i].make);
	before = tu_tree_fingerprint(image);
	tu_bsi_env(&r, "timeout -k 5 30", "--config '%s' plan --tree '%s' --root '%s'", conf, feed,
		   image);
	ck_assert_msg(r.status == 4, "preview: exit %d: %s%s", r.status, r.out, r.err);
	ASSERT_HAS(r.out, "odd odd-1 [low] error\n");
	ASSERT_HAS(r.out, odd_targets[_i].want);
	/* the reason, as the preview shows it: "    error: <reason>\n" */
	ck_assert_ptr_nonnull(strstr(r.out, "    error: "));
	snprintf(preview, sizeof(preview), "bsi: odd-1: not applied: %s",
		 strstr(r.out, "    error: ") + 11);
	*strchr(preview, '\n') = '\0';
	tu_result_free(&r);
	tu_bsi_env(&r, "timeout -k 5 30", "--config '%s' apply --tree '%s' --root '%s' --state '%s'",
		   conf, feed, image, state);
	ck_assert_msg(r.status == 4, "device: exit %d: %s%s", r.status, r.out, r.err);
	ASSERT_HAS(r.err, preview);
	tu_result_free(&r);
	after = tu_tree_fingerprint(image);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

/* bsi digest: the recipe's form, byte for byte what sha256sum computes;
 * an unreadable file or a directory is named, the others still printed,
 * exit 1; --json carries the same. */
START_TEST(test_cli_digest_prints_the_recipe_form)
{
	char *where = tu_tmpdir(), want[256];
	json_error_t jerr;
	json_t *doc;
	tu_result r, sum;

	tu_must("cd '%s' && printf 'payload\\n' > a && head -c 300000 /dev/urandom > 'b c'", where);
	ck_assert_int_eq(tu_sh(&sum, "cd '%s' && sha256sum a", where), 0);
	snprintf(want, sizeof(want), "sha256:%.64s  %s/a\n", sum.out, where);
	tu_result_free(&sum);
	ck_assert_int_eq(tu_bsi(&r, "digest '%s/a'", where), 0);
	ck_assert_str_eq(r.out, want);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "digest '%s/a' '%s/missing' '%s' '%s/b c'", where, where, where, where), 1);
	ck_assert_ptr_nonnull(strstr(r.out, want));
	ck_assert_ptr_nonnull(strstr(r.out, "/b c\n"));
	ck_assert_ptr_nonnull(strstr(r.err, "/missing: No such file or directory"));
	ck_assert_ptr_nonnull(strstr(r.err, ": not a regular file"));
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "digest --json '%s/a'", where), 0);
	doc = json_loads(r.out, 0, &jerr);
	ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
	want[strlen("sha256:") + 64] = '\0'; /* the digest alone */
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(doc, "files"), 0), "digest")),
			 want);
	json_decref(doc);
	tu_result_free(&r);
}
END_TEST

/* Under --json a failing command still prints one JSON document: the
 * error, with the exit status and the message. */
START_TEST(test_cli_json_failure_is_a_json_document)
{
	json_error_t jerr;
	json_t *doc;
	tu_result r;

	tu_sample_image("current", image);
	ck_assert_int_eq(tu_bsi(&r, "--json --root '%s' --state '%s' show no-such-fix", image,
				state),
			 2);
	doc = json_loads(r.out, 0, &jerr);
	ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "error"), "code")),
			 2);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "schema")), 1);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
					     json_object_get(doc, "error"), "message")),
				     "no-such-fix"));
	ck_assert_ptr_nonnull(strstr(r.err, "no-such-fix"));
	json_decref(doc);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "--json digest /nonexistent"), 1);
	doc = json_loads(r.out, 0, &jerr);
	ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(doc, "errors"), 0), "path")),
			 "/nonexistent");
	json_decref(doc);
	tu_result_free(&r);
}
END_TEST

/* recipe check --json: one entry per file, every problem with its exit
 * code and file:line message; the exit status is the first failure's. */
START_TEST(test_cli_recipe_check_json)
{
	char bad[4200], good[4200];
	json_t *doc, *files;
	tu_result r;

	snprintf(bad, sizeof(bad), "%s/bad.lua", dir);
	snprintf(good, sizeof(good), "%s/recipes/safari.lua", tree);
	tu_write(bad, "return {\n");
	ck_assert_int_eq(tu_bsi(&r, "recipe check --json '%s' '%s'", good, bad), 4);
	doc = json_loads(r.out, 0, NULL);
	ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
	files = json_object_get(doc, "files");
	ck_assert_int_eq(json_array_size(files), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(files, 0),
							    "improvements")),
			 2);
	ck_assert_int_eq(json_array_size(json_object_get(json_array_get(files, 0), "errors")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(json_object_get(json_array_get(files, 1), "errors"),
						0),
				 "code")),
			 4);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
					     json_array_get(json_object_get(json_array_get(files, 1),
									    "errors"),
							    0),
					     "message")),
				     "bad.lua:2:"));
	json_decref(doc);
	tu_result_free(&r);
}
END_TEST

/*
 * bsi payload add: the block it prints, pasted as is into a recipe's apply
 * function, plans as pending on the image it was made from; the payload is
 * in payloads/ byte for byte; the same name with other content is refused.
 */
START_TEST(test_cli_payload_add_block_plans_as_pending)
{
	char newfile[4200], recipe[4200], *block, *text, *copied, *orig;
	const char *target = "usr/lib/libimage.dylib";
	tu_result r;

	tu_sample_image("current", image);
	tu_must("echo 'libimage, vulnerable' > '%s/%s'", image, target);
	snprintf(newfile, sizeof(newfile), "%s/ImageIO-26.0.1", dir);
	tu_write(newfile, "ImageIO, fixed\n");
	ck_assert_msg(tu_bsi(&r, "payload add '%s' --target %s --image '%s' --tree '%s'", newfile,
			     target, image, tree) == 0,
		      "%s", r.err);
	block = strdup(r.out);
	tu_result_free(&r);
	ck_assert_ptr_nonnull(strstr(block, "payload = \"payloads/ImageIO-26.0.1\""));
	snprintf(recipe, sizeof(recipe), "%s/payloads/ImageIO-26.0.1", tree);
	copied = tu_read(recipe);
	orig = tu_read(newfile);
	ck_assert_str_eq(copied, orig);
	free(copied);
	ck_assert_int_ge(asprintf(&text,
				  "return {\n  component = \"imageio\",\n  improvements = {{\n"
				  "    id = \"imageio-26.0.1-a\", summary = \"ImageIO: a fix\",\n"
				  "    fixes = { \"CVE-2026-30000\" }, severity = \"high\",\n"
				  "    apply = function(change)\n%s    end,\n  }},\n}\n",
				  block),
			 0);
	snprintf(recipe, sizeof(recipe), "%s/recipes/imageio.lua", tree);
	tu_write(recipe, text);
	free(text);
	ck_assert_msg(tu_bsi(&r, "plan --tree '%s' --root '%s' --json", tree, image) == 0, "%s",
		      r.err);
	{
		json_t *doc = json_loads(r.out, 0, NULL), *imp;
		size_t i;
		bool found = false;

		ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
		json_array_foreach(json_object_get(doc, "improvements"), i, imp)
			if (strcmp(json_string_value(json_object_get(imp, "id")),
				   "imageio-26.0.1-a") == 0) {
				ck_assert_str_eq(json_string_value(json_object_get(imp, "status")),
						 "pending");
				found = true;
			}
		ck_assert(found);
		json_decref(doc);
	}
	tu_result_free(&r);
	/* the same name, other content: refused, the payload unchanged */
	tu_write(newfile, "ImageIO, fixed differently\n");
	ck_assert_int_eq(tu_bsi(&r, "payload add '%s' --target %s --image '%s' --tree '%s'", newfile,
				target, image, tree),
			 2);
	ASSERT_HAS(r.err, "exists with other content");
	tu_result_free(&r);
	snprintf(recipe, sizeof(recipe), "%s/payloads/ImageIO-26.0.1", tree);
	copied = tu_read(recipe);
	ck_assert_str_eq(copied, orig);
	free(copied);
	free(orig);
	free(block);
}
END_TEST

/* `bsi recipe --help` and `bsi feed --help` list their commands; the
 * group alone is a usage error that lists them too. */
START_TEST(test_cli_command_groups_have_help)
{
	tu_result r;

	ck_assert_int_eq(tu_bsi(&r, "recipe --help"), 0);
	ck_assert_ptr_nonnull(strstr(r.out, "bsi recipe check FILE..."));
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "feed --help"), 0);
	ck_assert_ptr_nonnull(strstr(r.out, "bsi feed verify [DIR]"));
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "feed"), 2);
	ck_assert_ptr_nonnull(strstr(r.err, "bsi feed verify [DIR]"));
	ck_assert_ptr_nonnull(strstr(r.err, "bsi feed needs a command"));
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "frobnicate --help"), 2);
	ck_assert_ptr_nonnull(strstr(r.err, "unknown command \"frobnicate\""));
	tu_result_free(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cli_help_lists_commands_and_exit_codes);
	tcase_add_test(tc, test_cli_usage_errors_exit_2);
	tcase_add_test(tc, test_cli_bad_config_names_file_and_line);
	tcase_add_test(tc, test_cli_recipe_check_reference_recipes);
	tcase_add_test(tc, test_cli_recipe_check_syntax_error_exit_4_with_line);
	tcase_add_test(tc, test_cli_plan_current_image);
	tcase_add_test(tc, test_cli_plan_old_image_not_applicable_with_reason);
	tcase_add_test(tc, test_cli_plan_patched_image_applied);
	tcase_add_test(tc, test_cli_plan_json_shape);
	tcase_add_test(tc, test_cli_plan_refuses_payload_digest_mismatch);
	tcase_add_test(tc, test_cli_plan_changes_nothing);
	tcase_add_test(tc, test_cli_plan_is_deterministic);
	tcase_add_test(tc, test_cli_recipe_check_reports_each_broken_improvement);
	tcase_add_test(tc, test_cli_plan_refuses_missing_payload);
	tcase_add_test(tc, test_cli_apply_checks_only_payloads_it_may_stage);
	tcase_add_test(tc, test_cli_plan_root_slash_follows_absolute_symlinks);
	tcase_add_test(tc, test_cli_plan_symlink_escapes_stay_inside);
	tcase_add_test(tc, test_cli_digest_prints_the_recipe_form);
	tcase_add_test(tc, test_cli_command_groups_have_help);
	tcase_add_test(tc, test_cli_json_failure_is_a_json_document);
	tcase_add_test(tc, test_cli_recipe_check_json);
	tcase_add_test(tc, test_cli_payload_add_block_plans_as_pending);
	tcase_add_loop_test(tc, test_cli_odd_target_same_verdict_preview_and_device, 0,
			    sizeof(odd_targets) / sizeof(odd_targets[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
