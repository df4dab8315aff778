/*
 * check_plugin.c - the plugin loader and the systemd and record plugins.
 */
#include "bsi_plugin.h"
#include "error.h"
#include "plugin.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Build plugins/<name>.so in dir from C source text. */
static void build_plugin(const char *dir, const char *name, const char *source)
{
	char src[4300];

	snprintf(src, sizeof(src), "%s/%s.c", dir, name);
	tu_write(src, source);
	tu_must("cd '%s' && ${CC:-cc} -shared -fPIC -I'%s/../plugins' -o '%s/%s.so' '%s'", dir,
		tu_build_path(""), dir, name, src);
}

START_TEST(test_plugin_record_appends_each_restart)
{
	char *state = tu_tmpdir(), log[4300], *text;
	bsi_plugin *p = NULL;

	ck_assert_msg(bsi_plugin_load(&p, tu_build_path("plugins"), "record", state) == 0, "%s",
		      bsi_error_message());
	ck_assert_str_eq(bsi_plugin_name(p), "record");
	ck_assert_int_eq(bsi_plugin_restart(p, "com.example.web"), 0);
	ck_assert_int_eq(bsi_plugin_restart(p, "sshd.service"), 0);
	bsi_plugin_free(p);
	snprintf(log, sizeof(log), "%s/restarts.log", state);
	text = tu_read(log);
	ck_assert_str_eq(text, "com.example.web\nsshd.service\n");
	free(text);
}
END_TEST

START_TEST(test_plugin_systemd_runs_systemctl_without_a_shell)
{
	char *dir = tu_tmpdir(), script[4300], args[4300], *text;
	bsi_plugin *p = NULL;

	snprintf(script, sizeof(script), "%s/systemctl", dir);
	snprintf(args, sizeof(args), "%s/args", dir);
	{
		char body[9000];

		snprintf(body, sizeof(body),
			 "#!/bin/sh\nfor a in \"$@\"; do printf '[%%s]' \"$a\" >> '%s'; done\n"
			 "case \"$3\" in bad*) echo \"Unit $3 not found.\" >&2; exit 5;; esac\n",
			 args);
		tu_write(script, body);
	}
	chmod(script, 0755);
	setenv("SYSTEMCTL", script, 1);
	ck_assert_msg(bsi_plugin_load(&p, tu_build_path("plugins"), "systemd", dir) == 0, "%s",
		      bsi_error_message());
	/* Shell metacharacters reach systemctl as one literal argument. */
	ck_assert_int_eq(bsi_plugin_restart(p, "web; touch /tmp/pwned.service"), 0);
	text = tu_read(args);
	ck_assert_str_eq(text, "[try-restart][--][web; touch /tmp/pwned.service]");
	free(text);
	/* A failure carries the exit status and systemctl's stderr. */
	ck_assert_int_eq(bsi_plugin_restart(p, "bad.service"), BSI_EFAIL);
	ck_assert_msg(strstr(bsi_error_message(), "status 5") &&
			      strstr(bsi_error_message(), "Unit bad.service not found."),
		      "%s", bsi_error_message());
	bsi_plugin_free(p);
	/* A missing systemctl is a clear error too. */
	setenv("SYSTEMCTL", "/nonexistent/systemctl", 1);
	ck_assert_int_eq(bsi_plugin_load(&p, tu_build_path("plugins"), "systemd", dir), 0);
	ck_assert_int_eq(bsi_plugin_restart(p, "x.service"), BSI_EFAIL);
	ck_assert_msg(strstr(bsi_error_message(), "/nonexistent/systemctl"), "%s",
		      bsi_error_message());
	bsi_plugin_free(p);
	unsetenv("SYSTEMCTL");
}
END_TEST

START_TEST(test_plugin_loader_refuses_wrong_abi_version)
{
	char *dir = tu_tmpdir();
	bsi_plugin *p = NULL;

	build_plugin(dir, "future",
		     "#include \"bsi_plugin.h\"\n"
		     "static int init(void **c, const bsi_host_services *h, const char *cf,\n"
		     "  char *e, size_t n) { *c = 0; return 0; }\n"
		     "static int rs(void *c, const char *s, char *e, size_t n) { return 0; }\n"
		     "static void fini(void *c) { }\n"
		     "static const bsi_plugin_v1 p = { 99, \"future\", init, rs, fini };\n"
		     "const bsi_plugin_v1 *bsi_plugin_entry(void) { return &p; }\n");
	ck_assert_int_eq(bsi_plugin_load(&p, dir, "future", dir), BSI_EUSAGE);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(bsi_error_message(), "ABI version 99") &&
			      strstr(bsi_error_message(), "future.so"),
		      "%s", bsi_error_message());
}
END_TEST

START_TEST(test_plugin_loader_refuses_missing_entry_symbol)
{
	char *dir = tu_tmpdir();
	bsi_plugin *p = NULL;

	build_plugin(dir, "noentry", "int some_other_function(void) { return 1; }\n");
	ck_assert_int_eq(bsi_plugin_load(&p, dir, "noentry", dir), BSI_EUSAGE);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(bsi_error_message(), BSI_PLUGIN_ENTRY_SYMBOL), "%s",
		      bsi_error_message());
}
END_TEST

START_TEST(test_plugin_loader_refuses_bad_names_and_missing_files)
{
	char *dir = tu_tmpdir();
	bsi_plugin *p = NULL;

	ck_assert_int_eq(bsi_plugin_load(&p, tu_build_path("plugins"), "../plugins/record", dir),
			 BSI_EUSAGE);
	ck_assert_int_eq(bsi_plugin_load(&p, tu_build_path("plugins"), "record.so", dir),
			 BSI_EUSAGE);
	ck_assert_int_eq(bsi_plugin_load(&p, tu_build_path("plugins"), "", dir), BSI_EUSAGE);
	ck_assert_int_eq(bsi_plugin_load(&p, tu_build_path("plugins"), "launchd", dir), BSI_EUSAGE);
	ck_assert_msg(strstr(bsi_error_message(), "launchd.so"), "%s", bsi_error_message());
	ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_plugin_default_dir)
{
	char out[4096];

	/* build/tests/ has no plugins/ beside it: the compiled-in directory. */
	ck_assert_int_eq(bsi_plugin_default_dir(out, sizeof(out)), 0);
	ck_assert_str_eq(out, BSI_PLUGINDIR);
}
END_TEST

static Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_add_test(tc, test_plugin_record_appends_each_restart);
	tcase_add_test(tc, test_plugin_systemd_runs_systemctl_without_a_shell);
	tcase_add_test(tc, test_plugin_loader_refuses_wrong_abi_version);
	tcase_add_test(tc, test_plugin_loader_refuses_missing_entry_symbol);
	tcase_add_test(tc, test_plugin_loader_refuses_bad_names_and_missing_files);
	tcase_add_test(tc, test_plugin_default_dir);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(plugin_suite());
}
