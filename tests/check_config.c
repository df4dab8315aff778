/* The configuration file (host/config.c). */
#include "config.h"
#include "error.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char path[4096];
static bsi_config cfg;

static void setup(void)
{
	snprintf(path, sizeof(path), "%s/bsi.conf", tu_tmpdir());
	ck_assert_int_eq(bsi_config_defaults(&cfg), 0);
}

static void teardown(void)
{
	bsi_config_clear(&cfg);
	tu_cleanup();
}

/* Load text and expect a usage error whose message holds want. */
static void expect_error(const char *text, const char *want)
{
	tu_write(path, text);
	ck_assert_int_eq(bsi_config_load(&cfg, path, true), BSI_EUSAGE);
	ck_assert_msg(strstr(bsi_error_message(), want), "message \"%s\" lacks \"%s\"",
		      bsi_error_message(), want);
}

START_TEST(test_config_defaults_when_default_file_missing)
{
	ck_assert_int_eq(bsi_config_load(&cfg, "/nonexistent/bsi.conf", false), 0);
	ck_assert(cfg.auto_install);
	ck_assert(cfg.require_ac_power);
	ck_assert_int_eq(cfg.interval, 6 * 3600);
	ck_assert_int_eq(cfg.max_feed_age, 14 * 86400);
	ck_assert_str_eq(cfg.service_manager, "systemd");
}
END_TEST

START_TEST(test_config_named_file_missing_is_error)
{
	ck_assert_int_eq(bsi_config_load(&cfg, "/nonexistent/bsi.conf", true), BSI_EUSAGE);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "/nonexistent/bsi.conf"));
}
END_TEST

START_TEST(test_config_reads_every_kind_of_value)
{
	tu_write(path, "-- a device on a schedule\n"
		       "auto_install = false\n"
		       "interval = \"15m\"\n"
		       "max_feed_age = 3600\n"
		       "service_manager = \"record\"\n"
		       "recipe_cpu_seconds = 0.5\n"
		       "recipe_memory_mib = 32\n"
		       "maintenance_window = \"02:00-05:00\"\n"
		       "min_severity = \"high\"\n");
	ck_assert_int_eq(bsi_config_load(&cfg, path, true), 0);
	ck_assert(!cfg.auto_install);
	ck_assert_int_eq(cfg.interval, 900);
	ck_assert_int_eq(cfg.max_feed_age, 3600);
	ck_assert_str_eq(cfg.service_manager, "record");
	ck_assert(cfg.recipe_cpu_seconds == 0.5);
	ck_assert_int_eq(cfg.recipe_memory_mib, 32);
	ck_assert_str_eq(cfg.maintenance_window, "02:00-05:00");
	ck_assert_str_eq(cfg.min_severity, "high");
}
END_TEST

START_TEST(test_config_unknown_key_names_file_and_line)
{
	char want[4200];

	snprintf(want, sizeof(want), "%s:3: unknown key \"auto_instal\"", path);
	expect_error("interval = \"1h\"\n\nauto_instal = true\n", want);
}
END_TEST

START_TEST(test_config_wrong_type_names_file_and_line)
{
	char want[4200];

	snprintf(want, sizeof(want), "%s:2: auto_install must be a boolean", path);
	expect_error("interval = 60\nauto_install = \"yes\"\n", want);
	expect_error("interval = \"6 hours\"\n", "interval must be a duration");
	expect_error("maintenance_window = \"2am-5am\"\n", "maintenance_window must be a time window");
	expect_error("min_severity = \"urgent\"\n", "min_severity must be one of");
}
END_TEST

START_TEST(test_config_has_no_functions)
{
	expect_error("x = print\n", "\"print\" is not defined");
	expect_error("os.execute(\"touch /tmp/x\")\n", "\"os\" is not defined");
	expect_error("interval = (", "expected");
}
END_TEST

START_TEST(test_config_endless_loop_is_stopped)
{
	expect_error("while true do end\n", "takes too long");
}
END_TEST

/* Found by fuzz_config: sscanf's %u skips blanks and takes a sign. */
START_TEST(test_config_window_is_exactly_hh_mm)
{
	tu_write(path, "maintenance_window = \"02:00-05:00\"\n");
	ck_assert_int_eq(bsi_config_load(&cfg, path, true), 0);
	ck_assert_str_eq(cfg.maintenance_window, "02:00-05:00");
	expect_error("maintenance_window = \" 1:00-05:00\"\n", "maintenance_window must be");
	expect_error("maintenance_window = \"+1:00-05:00\"\n", "maintenance_window must be");
	expect_error("maintenance_window = \"01:00- 5:00\"\n", "maintenance_window must be");
	expect_error("maintenance_window = \"24:00-05:00\"\n", "maintenance_window must be");
	ck_assert_str_eq(cfg.maintenance_window, "02:00-05:00");
}
END_TEST

/* Without a heap ceiling this asks for a terabyte within the instruction
 * budget (fuzz_config's corpus has it as regress-config-memory). */
START_TEST(test_config_memory_is_bounded)
{
	expect_error("local s = \"x\" for i = 1, 40 do s = s .. s end\n",
		     "bsi.conf: uses too much memory");
}
END_TEST

/* Never more than a few hundred KiB live, but 18 GB copied in all: the
 * fuzzer's out-of-memory finding (regress-config-churn in its corpus).
 * Refused by the allocation budget, and the values set before stay. */
START_TEST(test_config_allocation_is_bounded)
{
	expect_error("interval = \"15m\"\n"
		     "local s = \"x\" for i = 1, 90000 do s = s .. #s end\n",
		     "bsi.conf: uses too much memory");
	ck_assert_int_eq(cfg.interval, 15 * 60);
}
END_TEST

/* Deep recursion with wide frames: the stack growth is refused by the
 * budget, then Lua shrinks the stack while it unwinds (a successful
 * allocation after the failed one).  Still the budget's refusal, exit 2,
 * not "out of memory". */
START_TEST(test_config_stack_over_budget_is_a_usage_error)
{
	char text[4096];
	size_t n = 0;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "local function f()\n local a0");
	for (int i = 1; i < 190; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, ", a%d", i);
	snprintf(text + n, sizeof(text) - n, " = 1\n return 1 + f()\nend\nf()\n");
	expect_error(text, "bsi.conf: uses too much memory");
}
END_TEST

START_TEST(test_config_load_buffer_names_the_source)
{
	const char text[] = "interval = \"15m\"\nauto_install = 1\n";

	ck_assert_int_eq(bsi_config_load_buffer(&cfg, text, sizeof(text) - 1, "conf.d/x"),
			 BSI_EUSAGE);
	ck_assert_int_eq(cfg.interval, 15 * 60);
	ck_assert_msg(strstr(bsi_error_message(), "conf.d/x:2:"), "message \"%s\"",
		      bsi_error_message());
}
END_TEST

START_TEST(test_config_durations)
{
	long s;

	ck_assert_int_eq(bsi_config_parse_duration("90s", &s), 0);
	ck_assert_int_eq(s, 90);
	ck_assert_int_eq(bsi_config_parse_duration("2w", &s), 0);
	ck_assert_int_eq(s, 14 * 86400);
	ck_assert_int_lt(bsi_config_parse_duration("6hours", &s), 0);
	ck_assert_int_lt(bsi_config_parse_duration("-1h", &s), 0);
	ck_assert_int_lt(bsi_config_parse_duration("", &s), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_defaults_when_default_file_missing);
	tcase_add_test(tc, test_config_named_file_missing_is_error);
	tcase_add_test(tc, test_config_reads_every_kind_of_value);
	tcase_add_test(tc, test_config_unknown_key_names_file_and_line);
	tcase_add_test(tc, test_config_wrong_type_names_file_and_line);
	tcase_add_test(tc, test_config_has_no_functions);
	tcase_add_test(tc, test_config_endless_loop_is_stopped);
	tcase_add_test(tc, test_config_durations);
	tcase_add_test(tc, test_config_window_is_exactly_hh_mm);
	tcase_add_test(tc, test_config_memory_is_bounded);
	tcase_add_test(tc, test_config_allocation_is_bounded);
	tcase_add_test(tc, test_config_stack_over_budget_is_a_usage_error);
	tcase_add_test(tc, test_config_load_buffer_names_the_source);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
