/*
 * check_agent.c - bsi agent, run as a timer or an init system would run it.
 *
 * Every test builds a feed signed with a real ssh-keygen key in a real git
 * repository (as tests/demo.sh does), a device root, a fake sysfs
 * power_supply tree, and a configuration with service_manager = "record";
 * then runs the real binary.  Log lines go to stderr (BSI_LOG=stderr) so
 * the tests can read them; syslog is where they go in production.
 */
#include "agent.h"
#include "device.h"
#include "procs.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *dir, feed[4096], root[4096], state[4096], conf[4096], ps[4096], logfile[4096];
static char intro[41];
static pid_t daemon_pid, agent_pid, mapper_pid;

#define ASSERT_HAS(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))
#define ASSERT_LACKS(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) == NULL, "did not expect \"%s\" in:\n%s", (needle), (hay))

/* A supply in the fake sysfs tree. */
static void supply(const char *name, const char *type, const char *online)
{
	tu_must("mkdir -p '%s/%s' && printf '%%s\\n' '%s' > '%s/%s/type'", ps, name, type, ps, name);
	if (online)
		tu_must("printf '%%s\\n' '%s' > '%s/%s/online'", online, ps, name);
}

/* The configuration: record plugin, the fake sysfs tree, then `extra`. */
static void config(const char *extra)
{
	char text[8192];

	snprintf(text, sizeof(text), "service_manager = \"record\"\npower_supply_dir = \"%s\"\n%s\n",
		 ps, extra);
	tu_write(conf, text);
}

/*
 * Add improvement `id` to the feed working tree (not committed): it
 * replaces usr/lib/<id>.so, which the device has as "old <id>", with a
 * payload of `payload_mib` MiB of random bytes (0: the line "new <id>"),
 * and restarts <id>.service.  recipe: the file it goes in (several
 * improvements may share one, in the order added).
 */
static void improvement(const char *recipe, const char *id, const char *severity,
			size_t payload_mib)
{
	tu_must("mkdir -p '%s/payloads' '%s/recipes' '%s/usr/lib' && printf 'old %%s\\n' '%s' > "
		"'%s/usr/lib/%s.so'",
		feed, feed, root, id, root, id);
	if (payload_mib)
		tu_must("head -c %zuM /dev/urandom > '%s/payloads/%s'", payload_mib, feed, id);
	else
		tu_must("printf 'new %%s\\n' '%s' > '%s/payloads/%s'", id, feed, id);
	tu_must("cd '%s' && f=recipes/%s.lua && "
		"from=$(sha256sum < '%s/usr/lib/%s.so' | cut -d' ' -f1) && "
		"to=$(sha256sum < payloads/%s | cut -d' ' -f1) && "
		"{ [ -f $f ] || printf 'return { component = \"%s\", improvements = {\\n}}\\n' > $f; } && "
		"sed -i '$d' $f && "
		"printf '  { id = \"%s\", summary = \"fix for %s\", fixes = { \"CVE-2026-1000\" }, "
		"severity = \"%s\",\\n    apply = function(c)\\n"
		"      c:replace(\"usr/lib/%s.so\", { from = \"sha256:%%s\", to = \"sha256:%%s\", "
		"payload = \"payloads/%s\" })\\n      c:restart(\"%s.service\")\\n    end },\\n}}\\n' "
		"$from $to >> $f",
		feed, recipe, root, id, id, recipe, id, id, severity, id, id, id);
}

static void commit(const char *msg)
{
	tu_must("cd '%s' && git add -A && git commit -q -m '%s'", feed, msg);
}

static char *head(void)
{
	tu_result r;

	ck_assert_int_eq(tu_sh(&r, "git -C '%s' rev-parse HEAD | tr -d '\\n'", feed), 0);
	free(r.err);
	return r.out;
}

/* A feed whose introduction commit holds improvement lib-1 (high). */
static void setup(void)
{
	char *h;

	daemon_pid = agent_pid = mapper_pid = 0;
	ck_assert_int_eq(setenv("BSI_LOG", "stderr", 1), 0);
	dir = tu_tmpdir();
	snprintf(feed, sizeof(feed), "%s/feed", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	snprintf(ps, sizeof(ps), "%s/power_supply", dir);
	snprintf(logfile, sizeof(logfile), "%s/agent.log", dir);
	tu_must("cd '%s' && ssh-keygen -q -t ed25519 -N '' -C team@example -f team && "
		"ssh-keygen -q -t ed25519 -N '' -C mallory@example -f mallory && "
		"git init -q -b main feed && cd feed && git config user.name Team && "
		"git config user.email team@example && git config gpg.format ssh && "
		"git config user.signingKey '%s/team' && git config commit.gpgSign true && "
		"mkdir -p .bsi && printf 'team@example namespaces=\"git\" %%s\\n' \"$(cat ../team.pub)\" "
		"> .bsi/signers",
		dir, dir);
	tu_must("mkdir -p '%s'", root);
	supply("AC", "Mains", "1");
	supply("BAT0", "Battery", NULL);
	config("");
	improvement("lib-1", "lib-1", "high", 0);
	commit("lib-1");
	h = head();
	snprintf(intro, sizeof(intro), "%s", h);
	free(h);
}

static void teardown(void)
{
	tu_git_daemon_stop();
	pid_t *pids[] = {&agent_pid, &mapper_pid, &daemon_pid};

	for (size_t i = 0; i < 3; i++) {
		if (*pids[i] > 0) {
			kill(*pids[i], SIGKILL);
			waitpid(*pids[i], NULL, 0);
			*pids[i] = 0;
		}
	}
	tu_cleanup();
}

static void enroll(const char *url)
{
	tu_result r;

	ck_assert_msg(tu_bsi(&r, "--root '%s' --state '%s' --config '%s' enroll '%s' "
				 "--introduction %s --signer \"$(cat '%s/team.pub')\"",
			     root, state, conf, url, intro, dir) == 0,
		      "enroll: %s", r.err);
	tu_result_free(&r);
}

static void enroll_file(void)
{
	char url[4200];

	snprintf(url, sizeof(url), "file://%s", feed);
	enroll(url);
}

/* bsi ARGS against the test device; log lines on stderr (BSI_LOG=stderr,
 * set in setup, as a supervisor that collects stderr would). */
#define BSI(r, fmt, ...) \
	tu_bsi(r, "--root '%s' --state '%s' --config '%s' " fmt, root, state, conf, ##__VA_ARGS__)

static char *file_of(const char *rel)
{
	char path[4096 + 512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return tu_read(path);
}

static char *restarts(void)
{
	char path[4200];
	char *s;

	snprintf(path, sizeof(path), "%s/restarts.log", state);
	s = tu_read(path);
	return s ? s : strdup("");
}

/* bsi status --json, parsed. */
static json_t *status_json(void)
{
	json_error_t jerr;
	tu_result r;
	json_t *doc;

	ck_assert_msg(BSI(&r, "status --json") == 0, "status: %s", r.err);
	doc = json_loads(r.out, 0, &jerr);
	ck_assert_msg(doc != NULL, "status is not JSON: %s\n%s", jerr.text, r.out);
	tu_result_free(&r);
	return doc;
}

static json_t *find_imp(json_t *doc, const char *id)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(doc, "improvements"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
			return v;
	return NULL;
}

/* The status of id as bsi status --json reports it ("" if absent). */
static char *status_of(const char *id)
{
	json_t *doc = status_json(), *imp = find_imp(doc, id);
	char *s = strdup(imp ? json_string_value(json_object_get(imp, "status")) : "");

	json_decref(doc);
	return s;
}

static char *reason_of(const char *id)
{
	json_t *doc = status_json(), *imp = find_imp(doc, id);
	const char *r = imp ? json_string_value(json_object_get(imp, "reason")) : NULL;
	char *s = strdup(r ? r : "");

	json_decref(doc);
	return s;
}

#define ASSERT_STATUS(id, want)                                                   \
	do {                                                                      \
		char *got_ = status_of(id);                                       \
		ck_assert_msg(strcmp(got_, want) == 0, "%s is %s, expected %s", id, \
			      got_, want);                                        \
		free(got_);                                                       \
	} while (0)

/* ---- agent --once, one path each ------------------------------------- */

START_TEST(test_agent_once_applies_new_improvement)
{
	char *f, *rs, want[128];
	tu_result r;

	enroll_file();
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	snprintf(want, sizeof(want), "applied lib-1 from feed commit %s", intro);
	ASSERT_HAS(r.err, want);
	tu_result_free(&r);
	f = file_of("usr/lib/lib-1.so");
	ck_assert_str_eq(f, "new lib-1\n");
	rs = restarts();
	ck_assert_str_eq(rs, "lib-1.service\n");
	ASSERT_STATUS("lib-1", "applied");
	free(f);
	free(rs);
}
END_TEST

/* The integer field key of improvement id in a status --json document. */
static json_int_t imp_int(json_t *doc, const char *id, const char *key)
{
	json_t *imp = find_imp(doc, id);

	ck_assert_msg(imp != NULL, "no improvement %s", id);
	return json_integer_value(json_object_get(imp, key));
}

static const char *imp_str(json_t *doc, const char *id, const char *key)
{
	json_t *imp = find_imp(doc, id);

	ck_assert_msg(imp != NULL, "no improvement %s", id);
	return json_string_value(json_object_get(imp, key));
}

/*
 * One broken low fix never blocks a critical one.  A signed feed commit,
 * served by git daemon, holds a critical fix and, beside it, a fix whose
 * payload was left out of the commit, one whose `to` is off by one hex
 * digit (both in the same recipe file as the critical fix), one whose
 * `when` raises, and a recipe file that fails as a whole.  The agent
 * applies every healthy improvement, exits with the worst error (3: a
 * payload refused), logs each error once, with its id and the feed
 * commit, and says it again only for a new feed commit; status reads each
 * broken one as `error` with its reason, file and line.
 */
START_TEST(test_agent_once_broken_fixes_never_block_the_critical_one)
{
	char url[4200], want[512], *h, *f;
	json_t *doc, *err;
	tu_result r;
	int port;

	improvement("mixed", "crit-1", "critical", 0);
	improvement("mixed", "low-missing", "low", 0);
	improvement("mixed", "low-digest", "low", 0);
	improvement("when", "low-when", "low", 0);
	tu_must("cd '%s' && rm payloads/low-missing && "
		"sed -i -E '/low-digest/ s/(to = \"sha256:[0-9a-f]{63})[1-9a-f]\"/\\10\"/; t; "
		"/low-digest/ s/(to = \"sha256:[0-9a-f]{63})0\"/\\11\"/' recipes/mixed.lua && "
		"sed -i 's/severity = \"low\",/severity = \"low\", when = function() return "
		"bsi.nothing() end,/' recipes/when.lua && printf 'return {\\n' > recipes/broken.lua",
		feed);
	commit("a critical fix and four broken ones");
	h = head();
	tu_must("git clone -q --bare '%s' '%s/served/feed.git'", feed, dir);
	snprintf(url, sizeof(url), "%s/served", dir);
	port = tu_git_daemon_start(url);
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/feed.git", port);
	enroll(url);

	ck_assert_int_eq(BSI(&r, "agent --once"), 3);
	snprintf(want, sizeof(want), "applied crit-1 from feed commit %s", h);
	ASSERT_HAS(r.err, want);
	snprintf(want, sizeof(want), "low-missing (feed commit %s): not applied: recipes/mixed.lua:",
		 h);
	ASSERT_HAS(r.err, want);
	ASSERT_HAS(r.err, "payloads/low-missing is not a file in its tree");
	snprintf(want, sizeof(want), "low-digest (feed commit %s): not applied: recipes/mixed.lua:", h);
	ASSERT_HAS(r.err, want);
	ASSERT_HAS(r.err, "but the recipe pins sha256:");
	snprintf(want, sizeof(want), "low-when (feed commit %s): not applied: recipes/when.lua:2: "
				     "bsi.nothing does not exist", h);
	ASSERT_HAS(r.err, want);
	snprintf(want, sizeof(want), "recipe file recipes/broken.lua (feed commit %s): "
				     "recipes/broken.lua:", h);
	ASSERT_HAS(r.err, want);
	tu_result_free(&r);
	f = file_of("usr/lib/crit-1.so");
	ck_assert_str_eq(f, "new crit-1\n");
	free(f);
	f = file_of("usr/lib/lib-1.so");
	ck_assert_str_eq(f, "new lib-1\n");
	free(f);
	for (const char *const *id = (const char *const[]){"low-missing", "low-digest", "low-when", NULL};
	     *id; id++) {
		char path[256], old[256];

		snprintf(path, sizeof(path), "usr/lib/%s.so", *id);
		snprintf(old, sizeof(old), "old %s\n", *id);
		f = file_of(path);
		ck_assert_str_eq(f, old);
		free(f);
	}

	doc = status_json();
	ck_assert_str_eq(imp_str(doc, "crit-1", "status"), "applied");
	ck_assert_str_eq(imp_str(doc, "low-missing", "status"), "error");
	ck_assert_int_eq(imp_int(doc, "low-missing", "code"), 3);
	ck_assert_str_eq(imp_str(doc, "low-missing", "file"), "recipes/mixed.lua");
	ck_assert_int_gt(imp_int(doc, "low-missing", "line"), 1);
	ck_assert_int_eq(imp_int(doc, "low-digest", "code"), 3);
	ck_assert_str_eq(imp_str(doc, "low-when", "status"), "error");
	ck_assert_int_eq(imp_int(doc, "low-when", "code"), 4);
	ck_assert_int_eq(imp_int(doc, "low-when", "line"), 2);
	ck_assert_str_eq(imp_str(doc, "low-when", "reason"),
			 "recipes/when.lua:2: bsi.nothing does not exist");
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "errors")), 1);
	err = json_array_get(json_object_get(doc, "errors"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(err, "file")), "recipes/broken.lua");
	ck_assert_int_eq(json_integer_value(json_object_get(err, "code")), 4);
	json_decref(doc);

	/* the admin keeps control of every one of them */
	ck_assert_int_eq(BSI(&r, "hold low-when"), 0);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "verify"), 0);
	ASSERT_HAS(r.out, "applied   crit-1");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "history"), 0);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "rollback crit-1"), 0);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "apply crit-1"), 0);
	tu_result_free(&r);

	/* the same errors at the same commit: not logged again, still noticed */
	ck_assert_int_eq(BSI(&r, "agent --once"), 3);
	ASSERT_LACKS(r.err, "not applied");
	ASSERT_LACKS(r.err, "recipe file recipes/broken.lua");
	tu_result_free(&r);

	/* a new feed commit fixes low-when: it applies, the others are
	 * logged again, once, with the new commit */
	tu_must("cd '%s' && sed -i 's/ when = function() return bsi.nothing() end,//' "
		"recipes/when.lua", feed);
	commit("low-when fixed");
	free(h);
	h = head();
	tu_must("cd '%s' && git push -q '%s/served/feed.git' main", feed, dir);
	ck_assert_int_eq(BSI(&r, "release low-when"), 0);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "agent --once"), 3);
	snprintf(want, sizeof(want), "applied low-when from feed commit %s", h);
	ASSERT_HAS(r.err, want);
	snprintf(want, sizeof(want), "low-digest (feed commit %s): not applied", h);
	ASSERT_HAS(r.err, want);
	ASSERT_LACKS(r.err, "low-when (feed commit");
	tu_result_free(&r);
	tu_git_daemon_stop();
	free(h);
}
END_TEST

/*
 * A recipe file that breaks as a whole after the device applied one of its
 * improvements: that improvement keeps its recorded status, the file is
 * reported as an error (exit 4), and status, show, verify and rollback of
 * it work from what the device recorded.
 */
START_TEST(test_agent_applied_improvement_outlives_a_broken_file)
{
	char *f;
	json_t *doc, *err;
	tu_result r;

	enroll_file();
	ck_assert_int_eq(BSI(&r, "agent --once"), 0);
	tu_result_free(&r);
	improvement("other", "other-1", "medium", 0);
	tu_must("cd '%s' && sed -i '1i error(\"half-written\")' recipes/lib-1.lua", feed);
	commit("lib-1.lua broken at its top level");
	ck_assert_int_eq(BSI(&r, "agent --once"), 4);
	ASSERT_HAS(r.err, "recipe file recipes/lib-1.lua (feed commit");
	ASSERT_HAS(r.err, "applied other-1");
	tu_result_free(&r);
	doc = status_json();
	ck_assert_str_eq(imp_str(doc, "lib-1", "status"), "applied");
	ck_assert_str_eq(imp_str(doc, "other-1", "status"), "applied");
	err = json_array_get(json_object_get(doc, "errors"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(err, "file")), "recipes/lib-1.lua");
	ck_assert_str_eq(json_string_value(json_object_get(err, "reason")),
			 "recipes/lib-1.lua:1: half-written");
	json_decref(doc);
	ck_assert_int_eq(BSI(&r, "status"), 0);
	ASSERT_HAS(r.out, "error: recipes/lib-1.lua:1: half-written\n");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "show lib-1"), 0);
	ASSERT_HAS(r.out, "lib-1 (lib-1) [high] applied");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "verify"), 0);
	ASSERT_HAS(r.out, "applied   lib-1");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "rollback lib-1"), 0);
	tu_result_free(&r);
	f = file_of("usr/lib/lib-1.so");
	ck_assert_str_eq(f, "old lib-1\n");
	free(f);
}
END_TEST

/* A trusted head that cannot be planned at all (its objects gone from the
 * mirror): status, show, hold, verify and history still work from the
 * state and say why; apply refuses with the cause. */
START_TEST(test_agent_admin_commands_work_without_a_plan)
{
	tu_result r;

	enroll_file();
	ck_assert_int_eq(BSI(&r, "agent --once"), 0);
	tu_result_free(&r);
	tu_must("rm -rf '%s/feed.git/objects' && mkdir '%s/feed.git/objects'", state, state);
	ck_assert_int_eq(BSI(&r, "status"), 0);
	ASSERT_HAS(r.out, "error: the feed head cannot be planned: ");
	ASSERT_HAS(r.out, "applied");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "show lib-1"), 0);
	ASSERT_HAS(r.err, "warning: the feed head cannot be planned");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "verify"), 0);
	ASSERT_HAS(r.out, "applied   lib-1");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "hold lib-1"), 0);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "history"), 0);
	tu_result_free(&r);
	ck_assert_int_ne(BSI(&r, "apply"), 0);
	tu_result_free(&r);
}
END_TEST

START_TEST(test_agent_once_nothing_new_changes_nothing)
{
	char *before, *after, *rs;
	tu_result r;

	enroll_file();
	ck_assert_int_eq(BSI(&r, "agent --once"), 0);
	tu_result_free(&r);
	before = tu_tree_fingerprint(root);
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	ASSERT_HAS(r.err, "nothing to apply at feed commit");
	ASSERT_LACKS(r.err, "applied lib-1");
	tu_result_free(&r);
	after = tu_tree_fingerprint(root);
	ck_assert_str_eq(before, after);
	rs = restarts();
	ck_assert_str_eq(rs, "lib-1.service\n"); /* no second restart */
	free(before);
	free(after);
	free(rs);
}
END_TEST

START_TEST(test_agent_once_auto_install_off_reports_pending)
{
	char *before, *after, *reason, want[256];
	tu_result r;

	config("auto_install = false");
	enroll_file();
	before = tu_tree_fingerprint(root);
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	snprintf(want, sizeof(want), "pending lib-1 (feed commit %s): waiting: auto_install is off",
		 intro);
	ASSERT_HAS(r.err, want);
	tu_result_free(&r);
	after = tu_tree_fingerprint(root);
	ck_assert_str_eq(before, after);
	ASSERT_STATUS("lib-1", "pending");
	reason = reason_of("lib-1");
	ASSERT_HAS(reason, "auto_install is off; bsi apply lib-1 installs it");
	/* the admin's bsi apply still installs it */
	ck_assert_int_eq(BSI(&r, "apply lib-1"), 0);
	tu_result_free(&r);
	ASSERT_STATUS("lib-1", "applied");
	free(before);
	free(after);
	free(reason);
}
END_TEST

START_TEST(test_agent_once_on_battery_waits_for_mains)
{
	char *f, *reason;
	tu_result r;

	tu_must("printf '0\\n' > '%s/AC/online'", ps);
	enroll_file();
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	ASSERT_HAS(r.err, "pending lib-1");
	ASSERT_HAS(r.err, "on battery power");
	tu_result_free(&r);
	f = file_of("usr/lib/lib-1.so");
	ck_assert_str_eq(f, "old lib-1\n");
	free(f);
	reason = reason_of("lib-1");
	ASSERT_HAS(reason, "on battery power");
	free(reason);
	/* plugged in: the next run installs it */
	tu_must("printf '1\\n' > '%s/AC/online'", ps);
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	tu_result_free(&r);
	f = file_of("usr/lib/lib-1.so");
	ck_assert_str_eq(f, "new lib-1\n");
	free(f);
}
END_TEST

/* require_ac_power = false ignores the battery; a desktop (no battery at
 * all) counts as mains. */
START_TEST(test_agent_once_power_rules)
{
	tu_result r;

	tu_must("printf '0\\n' > '%s/AC/online'", ps);
	config("require_ac_power = false");
	enroll_file();
	ck_assert_int_eq(BSI(&r, "agent --once"), 0);
	tu_result_free(&r);
	ASSERT_STATUS("lib-1", "applied");
	ck_assert(!bsi_agent_on_ac_power(ps));
	tu_must("rm -rf '%s/BAT0'", ps);
	ck_assert(bsi_agent_on_ac_power(ps)); /* no battery: mains */
	supply("BAT1", "Battery", NULL);
	supply("USB", "USB", "1");
	ck_assert(!bsi_agent_on_ac_power(ps)); /* only Mains counts */
	tu_must("printf '1\\n' > '%s/AC/online'", ps);
	ck_assert(bsi_agent_on_ac_power(ps));
	ck_assert(bsi_agent_on_ac_power("/nonexistent/power_supply"));
}
END_TEST

START_TEST(test_agent_once_outside_window_waits)
{
	char extra[128], *f;
	time_t now = time(NULL);
	struct tm tm;
	tu_result r;

	/* a window that starts two hours from now (UTC) and lasts one hour */
	gmtime_r(&now, &tm);
	snprintf(extra, sizeof(extra), "maintenance_window = \"%02d:%02d-%02d:%02d\"",
		 (tm.tm_hour + 2) % 24, tm.tm_min, (tm.tm_hour + 3) % 24, tm.tm_min);
	config(extra);
	enroll_file();
	ck_assert_int_ge(setenv("TZ", "UTC", 1), 0);
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	ASSERT_HAS(r.err, "outside the maintenance window");
	tu_result_free(&r);
	f = file_of("usr/lib/lib-1.so");
	ck_assert_str_eq(f, "old lib-1\n");
	free(f);
	/* a window around now (wrapping midnight when now is late) */
	snprintf(extra, sizeof(extra), "maintenance_window = \"%02d:%02d-%02d:%02d\"",
		 (tm.tm_hour + 23) % 24, tm.tm_min, (tm.tm_hour + 1) % 24, tm.tm_min);
	config(extra);
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	tu_result_free(&r);
	unsetenv("TZ");
	ASSERT_STATUS("lib-1", "applied");
}
END_TEST

START_TEST(test_agent_window_rules)
{
	ck_assert(bsi_agent_in_window("02:00-05:00", 2 * 60));
	ck_assert(bsi_agent_in_window("02:00-05:00", 4 * 60 + 59));
	ck_assert(!bsi_agent_in_window("02:00-05:00", 5 * 60));
	ck_assert(!bsi_agent_in_window("02:00-05:00", 60));
	/* wraps midnight */
	ck_assert(bsi_agent_in_window("23:30-01:15", 23 * 60 + 45));
	ck_assert(bsi_agent_in_window("23:30-01:15", 0));
	ck_assert(bsi_agent_in_window("23:30-01:15", 60 + 14));
	ck_assert(!bsi_agent_in_window("23:30-01:15", 60 + 15));
	ck_assert(!bsi_agent_in_window("23:30-01:15", 12 * 60));
	ck_assert(bsi_agent_in_window(NULL, 12 * 60));
	ck_assert(bsi_agent_in_window("03:00-03:00", 12 * 60)); /* the whole day */
}
END_TEST

START_TEST(test_agent_once_min_severity_defers_lower)
{
	char *reason, *f;
	tu_result r;

	improvement("lib-2", "lib-2", "medium", 0);
	commit("lib-2");
	config("min_severity = \"high\"");
	enroll_file();
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	ASSERT_HAS(r.err, "applied lib-1");
	ASSERT_HAS(r.err, "pending lib-2");
	tu_result_free(&r);
	ASSERT_STATUS("lib-1", "applied");
	ASSERT_STATUS("lib-2", "pending");
	reason = reason_of("lib-2");
	ASSERT_HAS(reason, "severity medium is below min_severity high");
	free(reason);
	f = file_of("usr/lib/lib-2.so");
	ck_assert_str_eq(f, "old lib-2\n");
	free(f);
}
END_TEST

START_TEST(test_agent_once_skips_held)
{
	char *f;
	tu_result r;

	improvement("lib-2", "lib-2", "high", 0);
	commit("lib-2");
	enroll_file();
	ck_assert_int_eq(BSI(&r, "sync"), 0);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "hold lib-1"), 0);
	tu_result_free(&r);
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	ASSERT_HAS(r.err, "skipping lib-1");
	ASSERT_HAS(r.err, "applied lib-2");
	tu_result_free(&r);
	f = file_of("usr/lib/lib-1.so");
	ck_assert_str_eq(f, "old lib-1\n");
	free(f);
	ASSERT_STATUS("lib-1", "held");
	ASSERT_STATUS("lib-2", "applied");
}
END_TEST

/* bsi status --json without what moves with the clock (the feed's age). */
static char *stable_status(void)
{
	json_t *doc = status_json();
	char *s;

	json_object_del(json_object_get(doc, "feed"), "age_seconds");
	s = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(1));
	json_decref(doc);
	return s;
}

/* A commit signed by a key the feed does not authorize: exit 3, logged,
 * and the run applies nothing, not even what the trusted head had
 * pending. */
START_TEST(test_agent_once_refused_sync_changes_nothing)
{
	char *root_before, *root_after, *st_before, *st_after, *hist_before, *hist_after;
	tu_result r;

	config("auto_install = false");
	enroll_file();
	ck_assert_int_eq(BSI(&r, "agent --once"), 0);
	tu_result_free(&r);
	ASSERT_STATUS("lib-1", "pending");
	/* mallory adds an improvement; the admin turns auto-install on */
	improvement("lib-2", "lib-2", "critical", 0);
	tu_must("cd '%s' && git add -A && git -c user.signingKey='%s/mallory' commit -q -m evil",
		feed, dir);
	config("");
	root_before = tu_tree_fingerprint(root);
	st_before = stable_status();
	ck_assert_int_eq(BSI(&r, "history --json"), 0);
	hist_before = r.out;
	free(r.err);

	ck_assert_int_eq(BSI(&r, "agent --once"), 3);
	ASSERT_HAS(r.err, "error: feed REFUSED");
	ASSERT_HAS(r.err, "not in .bsi/signers");
	ASSERT_HAS(r.err, "nothing is applied until the feed is fixed");
	ASSERT_LACKS(r.err, "applied lib-");
	tu_result_free(&r);

	root_after = tu_tree_fingerprint(root);
	ck_assert_str_eq(root_before, root_after);
	st_after = stable_status();
	ck_assert_str_eq(st_before, st_after);
	ck_assert_int_eq(BSI(&r, "history --json"), 0);
	hist_after = r.out;
	free(r.err);
	ck_assert_str_eq(hist_before, hist_after);
	free(root_before);
	free(root_after);
	free(st_before);
	free(st_after);
	free(hist_before);
	free(hist_after);
}
END_TEST

/* ---- git daemon ------------------------------------------------------ */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool listening(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void start_daemon(int port)
{
	char portarg[32];

	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	daemon_pid = fork();
	ck_assert_int_ge(daemon_pid, 0);
	if (daemon_pid == 0) {
		char base[4200];

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		int devnull = open("/dev/null", O_RDWR);

		snprintf(base, sizeof(base), "--base-path=%s", dir);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execlp("git", "git", "daemon", "--reuseaddr", base, "--export-all",
		       "--listen=127.0.0.1", portarg, dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !listening(port); i++)
		usleep(10 * 1000);
	ck_assert_msg(listening(port), "git daemon did not start on port %d", port);
}

static void enroll_daemon(int port)
{
	char url[128];

	snprintf(url, sizeof(url), "git://127.0.0.1:%d/feed", port);
	enroll(url);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool valgrind(void)
{
	const char *vg = getenv("BSI_VALGRIND");

	return vg && strcmp(vg, "1") == 0;
}

/* Server down: exit 1; the next run inside the backoff does not try even
 * though the server is back; a run after it syncs and applies. */
START_TEST(test_agent_once_server_down_backs_off)
{
	json_t *doc, *backoff;
	json_int_t next;
	int port = free_port();
	tu_result r;

	config("interval = 20"); /* first backoff: 10 to 20 s */
	enroll_daemon(port);
	ck_assert_int_eq(BSI(&r, "agent --once"), 1);
	ASSERT_HAS(r.err, "sync failed (attempt 1)");
	ASSERT_HAS(r.err, "next attempt after");
	tu_result_free(&r);
	doc = status_json();
	backoff = json_object_get(json_object_get(doc, "feed"), "sync_backoff");
	ck_assert_int_eq(json_integer_value(json_object_get(backoff, "failures")), 1);
	next = json_integer_value(json_object_get(backoff, "next_attempt"));
	ck_assert_int_ge(next, (json_int_t)time(NULL) + 5);
	ck_assert_int_le(next, (json_int_t)time(NULL) + 20);
	json_decref(doc);

	start_daemon(port);
	ck_assert_int_eq(BSI(&r, "agent --once"), 1);
	ASSERT_HAS(r.err, "sync skipped: backing off after 1 failed attempt");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "status"), 0);
	ASSERT_HAS(r.out, "head: none yet");
	ASSERT_HAS(r.out, "sync failing: 1 attempt");
	tu_result_free(&r);

	while ((json_int_t)time(NULL) <= next)
		usleep(200 * 1000);
	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	ASSERT_HAS(r.err, "feed reachable again after 1 failed attempt");
	ASSERT_HAS(r.err, "applied lib-1");
	tu_result_free(&r);
	doc = status_json();
	ck_assert(json_is_null(json_object_get(json_object_get(doc, "feed"), "sync_backoff")));
	json_decref(doc);
}
END_TEST

START_TEST(test_agent_backoff_grows_to_a_cap)
{
	ck_assert_int_eq(bsi_agent_backoff_delay(1, 6 * 3600), 300);
	ck_assert_int_eq(bsi_agent_backoff_delay(2, 6 * 3600), 600);
	ck_assert_int_eq(bsi_agent_backoff_delay(5, 6 * 3600), 4800);
	ck_assert_int_eq(bsi_agent_backoff_delay(50, 6 * 3600), 6 * 3600);
	ck_assert_int_eq(bsi_agent_backoff_delay(1, 1), 1);
	ck_assert_int_eq(bsi_agent_backoff_delay(3, 1), 4);
	ck_assert_int_eq(bsi_agent_backoff_delay(1000, 1), 6 * 3600);
}
END_TEST

/* ---- the agent as a daemon ------------------------------------------- */

static void start_agent(void)
{
	agent_pid = fork();
	ck_assert_int_ge(agent_pid, 0);
	if (agent_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		int log = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int devnull = open("/dev/null", O_RDWR);
		const char *bsi = tu_build_path("bsi");

		dup2(devnull, 0);
		dup2(log, 1);
		dup2(log, 2);
		setenv("BSI_LOG", "stderr", 1);
		if (valgrind())
			execlp("valgrind", "valgrind", "-q", "--error-exitcode=99",
			       "--leak-check=full", "--errors-for-leak-kinds=definite",
			       "--suppressions=tests/valgrind.supp", bsi,
			       "--root", root, "--state", state, "--config", conf, "agent",
			       (char *)NULL);
		else
			execl(bsi, bsi, "--root", root, "--state", state, "--config", conf, "agent",
			      (char *)NULL);
		_exit(127);
	}
}

/* Wait up to `secs` for id to have status want; the seconds it took, or -1. */
static double wait_status(const char *id, const char *want, double secs)
{
	double start = now_s();

	while (now_s() - start < secs) {
		char *s = status_of(id);
		bool ok = strcmp(s, want) == 0;

		free(s);
		if (ok)
			return now_s() - start;
		usleep(100 * 1000);
	}
	return -1;
}

/* A staged temp file anywhere under root/usr/lib? */
static bool staging(void)
{
	char path[4200];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "%s/usr/lib", root);
	if (!(d = opendir(path)))
		return false;
	while ((e = readdir(d)))
		found |= strncmp(e->d_name, ".bsi-stage.", 11) == 0;
	closedir(d);
	return found;
}

START_TEST(test_agent_daemon_applies_pushed_fix_and_stops_cleanly_on_sigterm)
{
	double slow = valgrind() ? 10 : 1, took, start;
	int port = free_port(), st = 0;
	char *log, *big_digest, *f_digest;
	tu_result r;
	pid_t w;

	config("interval = \"2s\"");
	start_daemon(port);
	enroll_daemon(port);
	start_agent();
	ck_assert_msg(wait_status("lib-1", "applied", 20 * slow) >= 0, "lib-1 never applied");

	/* a fix pushed while the agent runs is applied within two intervals */
	improvement("lib-2", "lib-2", "high", 0);
	commit("lib-2");
	took = wait_status("lib-2", "applied", 4 * slow + 10);
	ck_assert_msg(took >= 0, "lib-2 never applied");
	ck_assert_msg(took <= 4 * slow, "lib-2 took %.1f s, more than two intervals", took);

	/* the lock is released between runs: a manual command gets it */
	ck_assert_msg(BSI(&r, "hold --wait=30 lib-2") == 0, "hold: %s", r.err);
	tu_result_free(&r);

	/* SIGTERM while a 48 MiB payload is being staged: that transaction
	 * completes, the next one does not start, the agent exits 0 */
	improvement("big", "big-1", "critical", 48);
	improvement("big", "big-2", "critical", 0);
	commit("big");
	start = now_s();
	while (!staging() && now_s() - start < 60 * slow)
		usleep(1000);
	ck_assert_msg(staging(), "never saw big-1 being staged");
	ck_assert_int_eq(kill(agent_pid, SIGTERM), 0);
	start = now_s();
	while ((w = waitpid(agent_pid, &st, WNOHANG)) == 0 && now_s() - start < 60 * slow)
		usleep(10 * 1000);
	ck_assert_int_eq(w, agent_pid);
	agent_pid = 0;
	log = tu_read(logfile);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exit %d; log:\n%s",
		      WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), log);
	ASSERT_HAS(log, "applied big-1");
	ASSERT_HAS(log, "stopping on signal 15");
	ASSERT_HAS(log, "agent stopped on signal 15");
	ASSERT_LACKS(log, "applied big-2");
	free(log);

	/* a whole file, no staged temp files, a consistent state */
	ck_assert(!staging());
	ck_assert_int_eq(tu_sh(&r, "sha256sum < '%s/payloads/big-1' | cut -d' ' -f1", feed), 0);
	big_digest = r.out;
	free(r.err);
	ck_assert_int_eq(tu_sh(&r, "sha256sum < '%s/usr/lib/big-1.so' | cut -d' ' -f1", root), 0);
	f_digest = r.out;
	free(r.err);
	ck_assert_str_eq(f_digest, big_digest);
	free(big_digest);
	free(f_digest);
	ASSERT_STATUS("big-1", "applied");
	ASSERT_STATUS("big-2", "pending");
	ASSERT_STATUS("lib-2", "applied"); /* held after it was applied */
	ck_assert_msg(BSI(&r, "verify") == 0, "verify: %s%s", r.out, r.err);
	ASSERT_HAS(r.out, "applied   big-1");
	ASSERT_LACKS(r.err, "recovered");
	tu_result_free(&r);
	ck_assert_int_eq(tu_sh(&r, "find '%s' -name '.bsi-stage.*' | wc -l", root), 0);
	ck_assert_str_eq(r.out, "0\n");
	tu_result_free(&r);
}
END_TEST

/* SIGHUP rereads the configuration: turning auto_install off stops installs. */
START_TEST(test_agent_daemon_sighup_rereads_config)
{
	double slow = valgrind() ? 10 : 1;
	char *log;
	tu_result r;

	config("interval = 1");
	enroll_file();
	start_agent();
	ck_assert_msg(wait_status("lib-1", "applied", 20 * slow) >= 0, "lib-1 never applied");
	config("interval = 1\nauto_install = false");
	ck_assert_int_eq(kill(agent_pid, SIGHUP), 0);
	usleep((useconds_t)(500 * 1000 * slow));
	improvement("lib-2", "lib-2", "critical", 0);
	commit("lib-2");
	/* it is noticed and left pending for the reason the new file gives */
	for (int i = 0; i < 100 * slow; i++) {
		char *reason = reason_of("lib-2");
		bool done = strstr(reason, "auto_install is off") != NULL;

		free(reason);
		if (done)
			break;
		usleep(100 * 1000);
	}
	ASSERT_STATUS("lib-2", "pending");
	log = tu_read(logfile);
	ASSERT_HAS(log, "read again");
	ASSERT_HAS(log, "pending lib-2");
	free(log);
	ck_assert_int_eq(kill(agent_pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(agent_pid, &(int){0}, 0), agent_pid);
	agent_pid = 0;
	(void)r;
}
END_TEST

/* A broken file on SIGHUP keeps the running configuration and the agent. */
START_TEST(test_agent_daemon_sighup_keeps_config_when_broken)
{
	double slow = valgrind() ? 10 : 1;
	char *log = NULL;
	int st = 0;

	config("interval = 1");
	enroll_file();
	start_agent();
	ck_assert_msg(wait_status("lib-1", "applied", 20 * slow) >= 0, "lib-1 never applied");
	tu_write(conf, "interval = 1\nauto_instal = false\n");
	ck_assert_int_eq(kill(agent_pid, SIGHUP), 0);
	for (int i = 0; i < 100 * slow; i++) {
		free(log);
		log = tu_read(logfile);
		if (log && strstr(log, "not reloaded"))
			break;
		usleep(50 * 1000);
	}
	ck_assert_ptr_nonnull(log);
	ASSERT_HAS(log, "not reloaded, keeping the old one");
	ASSERT_HAS(log, "unknown key \"auto_instal\"");
	free(log);
	/* still running, and still installing (the file is fixed for the
	 * test's own bsi status; the agent is not told) */
	config("interval = 1");
	improvement("lib-2", "lib-2", "critical", 0);
	commit("lib-2");
	ck_assert_msg(wait_status("lib-2", "applied", 10 * slow) >= 0, "lib-2 never applied");
	ck_assert_int_eq(kill(agent_pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(agent_pid, &st, 0), agent_pid);
	agent_pid = 0;
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* ---- processes still running old code --------------------------------- */

START_TEST(test_agent_reports_process_running_replaced_library)
{
	char src[4200], bin[4200], ready[4200], want[256];
	json_error_t jerr;
	json_t *doc, *old;
	tu_result r;

	snprintf(src, sizeof(src), "%s/mapper.c", dir);
	snprintf(bin, sizeof(bin), "%s/mapper", dir);
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	tu_write(src, "#include <fcntl.h>\n#include <stdio.h>\n#include <sys/mman.h>\n"
		      "#include <unistd.h>\n"
		      "int main(int argc, char **argv) {\n"
		      "  int fd = open(argv[1], O_RDONLY);\n"
		      "  if (fd < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)\n"
		      "    return 1;\n"
		      "  close(fd);\n"
		      "  FILE *f = fopen(argv[2], \"w\"); fputs(\"ok\", f); fclose(f);\n"
		      "  for (;;) pause();\n}\n");
	tu_must("cc -o '%s' '%s'", bin, src);
	enroll_file();
	mapper_pid = fork();
	ck_assert_int_ge(mapper_pid, 0);
	if (mapper_pid == 0) {
		char lib[4200];

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		snprintf(lib, sizeof(lib), "%s/usr/lib/lib-1.so", root);
		execl(bin, "mapper", lib, ready, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(ready, F_OK) != 0; i++)
		usleep(10 * 1000);
	ck_assert_int_eq(access(ready, F_OK), 0);

	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	snprintf(want, sizeof(want), "lib-1 (feed commit %s): pid %d (mapper, unit none) still "
				     "runs the old usr/lib/lib-1.so; restart it by hand",
		 intro, (int)mapper_pid);
	ASSERT_HAS(r.err, want);
	tu_result_free(&r);

	ck_assert_int_eq(BSI(&r, "status"), 0);
	snprintf(want, sizeof(want), "still running old code: pid %d (mapper), unit none",
		 (int)mapper_pid);
	ASSERT_HAS(r.out, want);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "show lib-1"), 0);
	ASSERT_HAS(r.out, want);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "show lib-1 --json"), 0);
	doc = json_loads(r.out, 0, &jerr);
	ck_assert_ptr_nonnull(doc);
	old = json_array_get(json_object_get(doc, "old_code"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(old, "pid")), mapper_pid);
	ck_assert_str_eq(json_string_value(json_object_get(old, "command")), "mapper");
	ck_assert_str_eq(json_string_value(json_object_get(old, "path")), "usr/lib/lib-1.so");
	json_decref(doc);
	tu_result_free(&r);

	/* once it restarts (here: exits), it is no longer reported */
	kill(mapper_pid, SIGKILL);
	waitpid(mapper_pid, NULL, 0);
	mapper_pid = 0;
	ck_assert_int_eq(BSI(&r, "status"), 0);
	ASSERT_LACKS(r.out, "still running old code");
	tu_result_free(&r);
}
END_TEST

/*
 * The recipe names the library through an alias (lib -> usr/lib, as merged
 * /usr has it), while the kernel shows the mapping under its real path:
 * only the old inode, which the backup keeps, identifies it.  The process
 * is reported, and with restart_affected its unit would be restarted.
 */
START_TEST(test_agent_reports_process_running_replaced_library_through_alias)
{
	char src[4200], bin[4200], ready[4200], want[256];
	tu_result r;

	tu_must("ln -s usr/lib '%s/lib' && cd '%s' && "
		"sed -i 's|\"usr/lib/lib-1.so\"|\"lib/lib-1.so\"|' recipes/lib-1.lua && "
		"grep -q '\"lib/lib-1.so\"' recipes/lib-1.lua",
		root, feed);
	commit("lib-1 through the alias");
	snprintf(src, sizeof(src), "%s/mapper.c", dir);
	snprintf(bin, sizeof(bin), "%s/mapper", dir);
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	tu_write(src, "#include <fcntl.h>\n#include <stdio.h>\n#include <sys/mman.h>\n"
		      "#include <unistd.h>\n"
		      "int main(int argc, char **argv) {\n"
		      "  int fd = open(argv[1], O_RDONLY);\n"
		      "  if (fd < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)\n"
		      "    return 1;\n"
		      "  close(fd);\n"
		      "  FILE *f = fopen(argv[2], \"w\"); fputs(\"ok\", f); fclose(f);\n"
		      "  for (;;) pause();\n}\n");
	tu_must("cc -o '%s' '%s'", bin, src);
	enroll_file();
	mapper_pid = fork();
	ck_assert_int_ge(mapper_pid, 0);
	if (mapper_pid == 0) {
		char lib[4200];

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
		snprintf(lib, sizeof(lib), "%s/usr/lib/lib-1.so", root);
		execl(bin, "mapper", lib, ready, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(ready, F_OK) != 0; i++)
		usleep(10 * 1000);
	ck_assert_int_eq(access(ready, F_OK), 0);

	ck_assert_msg(BSI(&r, "agent --once") == 0, "agent: %s", r.err);
	snprintf(want, sizeof(want), "pid %d (mapper, unit none) still runs the old lib/lib-1.so",
		 (int)mapper_pid);
	ASSERT_HAS(r.err, want);
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "status"), 0);
	snprintf(want, sizeof(want), "still running old code: pid %d (mapper), unit none",
		 (int)mapper_pid);
	ASSERT_HAS(r.out, want);
	tu_result_free(&r);
}
END_TEST

/* The scan on a fake /proc: "(deleted)" path, old inode, and the unit. */
START_TEST(test_agent_procs_scan_finds_unit)
{
	char proc[4200], old[4200];
	bsi_procs_file files[1];
	bsi_procs *procs = NULL;
	struct stat sb;

	snprintf(proc, sizeof(proc), "%s/proc", dir);
	snprintf(old, sizeof(old), "%s/old-inode", dir);
	tu_write(old, "x");
	ck_assert_int_eq(stat(old, &sb), 0);
	tu_must("mkdir -p '%s/10' '%s/20' '%s/30' '%s/self'", proc, proc, proc, proc);
	tu_must("cd '%s/10' && printf 'nginx\\n' > comm && "
		"printf '0::/system.slice/nginx.service\\n' > cgroup && "
		"printf '7f00-7f10 r-xp 00000000 fd:01 42 /srv/root/usr/lib/libssl.so (deleted)\\n' "
		"> maps",
		proc);
	tu_must("cd '%s/20' && printf 'app\\n' > comm && "
		"printf '0::/user.slice/user-1000.slice/user@1000.service/app.slice/app.service\\n' "
		"> cgroup && printf '7f00-7f10 r-xp 00000000 %x:%x %lu /srv/root/usr/lib/libssl.so\\n' "
		"> maps",
		proc, major(sb.st_dev), minor(sb.st_dev), (unsigned long)sb.st_ino);
	tu_must("cd '%s/30' && printf 'new\\n' > comm && printf '0::/\\n' > cgroup && "
		"printf '7f00-7f10 r-xp 00000000 fd:01 99 /srv/root/usr/lib/libssl.so\\n' > maps",
		proc);
	files[0] = (bsi_procs_file){.path = "/srv/root/usr/lib/libssl.so", .dev = sb.st_dev,
				    .ino = sb.st_ino, .label = "tls-1", .rel = "usr/lib/libssl.so"};
	ck_assert_int_eq(bsi_procs_find(&procs, proc, files, 1), 0);
	ck_assert_uint_eq(procs->count, 2);
	ck_assert_int_eq(procs->items[0].pid, 10);
	ck_assert_str_eq(procs->items[0].command, "nginx");
	ck_assert_str_eq(procs->items[0].unit, "nginx.service");
	ck_assert(!procs->items[0].user_unit);
	ck_assert_int_eq(procs->items[1].pid, 20);
	ck_assert_str_eq(procs->items[1].unit, "app.service");
	ck_assert(procs->items[1].user_unit);
	bsi_procs_free(procs);
}
END_TEST

/* restart_affected: each system unit running old code of the improvement
 * is restarted once through the plugin; a user's units and processes in no
 * unit are left alone; each restart is in the history. */
START_TEST(test_agent_restart_old_code_units_once)
{
	bsi_proc items[] = {
		{.pid = 10, .command = "nginx", .unit = "web.service", .user_unit = false, .label = "lib-1", .rel = "usr/lib/lib-1.so"},
		{.pid = 11, .command = "nginx", .unit = "web.service", .user_unit = false, .label = "lib-1", .rel = "usr/lib/lib-1.so"},
		{.pid = 12, .command = "app", .unit = "app.service", .user_unit = true, .label = "lib-1", .rel = "usr/lib/lib-1.so"},
		{.pid = 13, .command = "sh", .unit = NULL, .user_unit = false, .label = "lib-1", .rel = "usr/lib/lib-1.so"},
		{.pid = 14, .command = "other", .unit = "other.service", .user_unit = false, .label = "lib-9", .rel = "usr/lib/lib-9.so"},
	};
	bsi_procs procs = {items, sizeof(items) / sizeof(items[0])};
	bsi_cli cli = {.root = root, .state_dir = state, .config_path = conf, .wait = -1};
	size_t restarted = 99;
	char *rs;
	bsi_device d;
	tu_result r;

	enroll_file();
	ck_assert_int_eq(BSI(&r, "agent --once"), 0);
	tu_result_free(&r);
	ck_assert_int_eq(bsi_config_defaults(&cli.cfg), 0);
	free(cli.cfg.service_manager);
	cli.cfg.service_manager = strdup("record");
	cli.cfg.plugin_dir = realpath(tu_build_path("plugins"), NULL);
	ck_assert_int_eq(bsi_device_open(&d, &cli, BSI_DEVICE_LOCK | BSI_DEVICE_PLUGIN), 0);
	ck_assert_int_eq(bsi_device_restart_old_code(&restarted, &d, &procs, "lib-1"), 0);
	bsi_device_close(&d);
	bsi_config_clear(&cli.cfg);
	ck_assert_uint_eq(restarted, 1);
	rs = restarts();
	ck_assert_str_eq(rs, "lib-1.service\nweb.service\n");
	free(rs);
	ck_assert_int_eq(BSI(&r, "history lib-1"), 0);
	ASSERT_HAS(r.out, "restart-affected");
	ASSERT_HAS(r.out, "web.service (pid 10 nginx ran the old usr/lib/lib-1.so)");
	tu_result_free(&r);
}
END_TEST

START_TEST(test_agent_cgroup_unit_parsing)
{
	char *unit = NULL;
	bool user;

	ck_assert_int_eq(bsi_procs_unit_of_cgroup(&unit, &user, "0::/system.slice/sshd.service\n"), 0);
	ck_assert_str_eq(unit, "sshd.service");
	free(unit);
	ck_assert_int_eq(bsi_procs_unit_of_cgroup(&unit, &user,
						  "12:pids:/\n1:name=systemd:/system.slice/"
						  "cron.service\n0::/\n"),
			 0);
	ck_assert_str_eq(unit, "cron.service");
	free(unit);
	ck_assert_int_eq(bsi_procs_unit_of_cgroup(&unit, &user, "0::/user.slice/user-1.slice/"
								"session-3.scope\n"),
			 0);
	ck_assert_ptr_null(unit);
	ck_assert_int_eq(bsi_procs_unit_of_cgroup(&unit, &user, "0::/user.slice/user-1.slice/"
								"user@1.service/init.scope\n"),
			 0);
	ck_assert_str_eq(unit, "user@1.service");
	ck_assert(user); /* a user's manager: never restarted by bsi */
	free(unit);
}
END_TEST

START_TEST(test_agent_config_accepts_short_interval)
{
	tu_result r;

	config("interval = \"1s\"");
	ck_assert_int_eq(BSI(&r, "agent --once"), 2); /* not enrolled: a usage error */
	ASSERT_HAS(r.err, "not enrolled");
	tu_result_free(&r);
	config("interval = 0");
	ck_assert_int_eq(BSI(&r, "agent"), 2);
	ASSERT_HAS(r.err, "interval must be at least 1s");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "agent --once --tree x"), 2);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "--help"), 0);
	ASSERT_HAS(r.out, "bsi agent [--once]");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "agent --help"), 0);
	ASSERT_HAS(r.out, "SIGTERM lets the transaction in progress");
	ASSERT_HAS(r.out, "--wait");
	tu_result_free(&r);
}
END_TEST

/* -v shows what the agent decided from; the default does not. */
START_TEST(test_agent_verbose_shows_conditions)
{
	tu_result r;

	tu_must("printf '0\\n' > '%s/AC/online'", ps);
	config("min_severity = \"critical\"");
	enroll_file();
	ck_assert_int_eq(BSI(&r, "agent --once"), 0);
	ASSERT_LACKS(r.err, "conditions:");
	tu_result_free(&r);
	ck_assert_int_eq(BSI(&r, "-v agent --once"), 0);
	ASSERT_HAS(r.err, "conditions: auto_install on, battery power (required), maintenance "
			  "window none");
	ASSERT_HAS(r.err, "min_severity critical");
	ASSERT_HAS(r.err, "feed up to date at");
	tu_result_free(&r);
	/* -q: nothing but warnings and errors */
	ck_assert_int_eq(BSI(&r, "-q agent --once"), 0);
	ASSERT_LACKS(r.err, "bsi:"); /* (valgrind may add its own notes) */
	ck_assert_str_eq(r.out, "");
	tu_result_free(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("agent");
	TCase *once = tcase_create("once"), *daemon = tcase_create("daemon"),
	      *procs = tcase_create("procs");

	tcase_set_timeout(once, 120);
	tcase_add_checked_fixture(once, setup, teardown);
	tcase_add_test(once, test_agent_once_applies_new_improvement);
	tcase_add_test(once, test_agent_once_broken_fixes_never_block_the_critical_one);
	tcase_add_test(once, test_agent_applied_improvement_outlives_a_broken_file);
	tcase_add_test(once, test_agent_admin_commands_work_without_a_plan);
	tcase_add_test(once, test_agent_once_nothing_new_changes_nothing);
	tcase_add_test(once, test_agent_once_auto_install_off_reports_pending);
	tcase_add_test(once, test_agent_once_on_battery_waits_for_mains);
	tcase_add_test(once, test_agent_once_power_rules);
	tcase_add_test(once, test_agent_once_outside_window_waits);
	tcase_add_test(once, test_agent_window_rules);
	tcase_add_test(once, test_agent_once_min_severity_defers_lower);
	tcase_add_test(once, test_agent_once_skips_held);
	tcase_add_test(once, test_agent_once_refused_sync_changes_nothing);
	tcase_add_test(once, test_agent_once_server_down_backs_off);
	tcase_add_test(once, test_agent_backoff_grows_to_a_cap);
	tcase_add_test(once, test_agent_config_accepts_short_interval);
	tcase_add_test(once, test_agent_verbose_shows_conditions);
	suite_add_tcase(s, once);

	tcase_set_timeout(daemon, 300);
	tcase_add_checked_fixture(daemon, setup, teardown);
	tcase_add_test(daemon, test_agent_daemon_applies_pushed_fix_and_stops_cleanly_on_sigterm);
	tcase_add_test(daemon, test_agent_daemon_sighup_rereads_config);
	tcase_add_test(daemon, test_agent_daemon_sighup_keeps_config_when_broken);
	suite_add_tcase(s, daemon);

	tcase_set_timeout(procs, 120);
	tcase_add_checked_fixture(procs, setup, teardown);
	tcase_add_test(procs, test_agent_reports_process_running_replaced_library);
	tcase_add_test(procs, test_agent_procs_scan_finds_unit);
	tcase_add_test(procs, test_agent_cgroup_unit_parsing);
	tcase_add_test(procs, test_agent_restart_old_code_units_once);
	tcase_add_test(procs, test_agent_reports_process_running_replaced_library_through_alias);
	suite_add_tcase(s, procs);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
