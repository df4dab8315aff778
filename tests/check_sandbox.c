/*
 * check_sandbox.c - the forked child the recipe engine runs in: what it
 * inherits, how its result or its end comes back, and that the parent
 * always bounds, kills and reaps it.
 */
#include "error.h"
#include "sandbox.h"
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const bsi_sandbox_limits limits = {(size_t)16 << 20, 1.0, 2.0};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* No child of this process is left unreaped. */
static void assert_no_children(void)
{
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
}

/* Reports which of the descriptors in arg (-1 terminated) are open. */
static int fn_fds(json_t **out, void *arg)
{
	const int *fds = arg;

	*out = json_array();
	for (; *fds >= 0; fds++)
		json_array_append_new(*out, json_boolean(fcntl(*fds, F_GETFD) >= 0));
	return 0;
}

START_TEST(test_sandbox_closes_inherited_fds)
{
	int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY);
	int fds[] = {a, b, 2, -1};
	json_t *doc;

	ck_assert_int_ge(a, 3);
	ck_assert_int_ge(b, 3);
	ck_assert_int_eq(bsi_sandbox_run(&doc, fn_fds, fds, &b, 1, &limits, "t"), 0);
	ck_assert_msg(json_is_false(json_array_get(doc, 0)), "inherited fd %d stayed open", a);
	ck_assert(json_is_true(json_array_get(doc, 1)));  /* asked to keep */
	ck_assert(json_is_true(json_array_get(doc, 2)));  /* stderr */
	json_decref(doc);
	close(a);
	close(b);
	assert_no_children();
}
END_TEST

/* Reports the child's rlimits. */
static int fn_limits(json_t **out, void *arg)
{
	struct rlimit cpu, core, fsize;

	getrlimit(RLIMIT_CPU, &cpu);
	getrlimit(RLIMIT_CORE, &core);
	getrlimit(RLIMIT_FSIZE, &fsize);
	*out = json_pack("{s:I,s:I,s:I}", "cpu", (json_int_t)cpu.rlim_cur, "core",
			 (json_int_t)core.rlim_cur, "fsize", (json_int_t)fsize.rlim_cur);
	return 0;
}

START_TEST(test_sandbox_sets_rlimits)
{
	json_t *doc;

	ck_assert_int_eq(bsi_sandbox_run(&doc, fn_limits, NULL, NULL, 0, &limits, "t"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "cpu")), 2); /* 1 s * 1.25 + 0.5 */
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "core")), 0);
	if (!getenv("BSI_VALGRIND"))
		ck_assert_int_eq(json_integer_value(json_object_get(doc, "fsize")), 0);
	json_decref(doc);
}
END_TEST

static int fn_fail(json_t **out, void *arg)
{
	*out = json_pack("{s:s}", "log", "partial");
	return bsi_error_set(BSI_EFAIL, "disk on fire");
}

/* An error in the child comes back with its code, message and document. */
START_TEST(test_sandbox_error_passes_through)
{
	json_t *doc;

	ck_assert_int_eq(bsi_sandbox_run(&doc, fn_fail, NULL, NULL, 0, &limits, "t"), BSI_EFAIL);
	ck_assert_str_eq(bsi_error_message(), "disk on fire");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "log")), "partial");
	json_decref(doc);
}
END_TEST

static int fn_sleep(json_t **out, void *arg)
{
	for (;;)
		pause();
	return 0;
}

/* A child that blocks without using CPU is killed at the deadline. */
START_TEST(test_sandbox_wall_clock_kill)
{
	const bsi_sandbox_limits lim = {(size_t)16 << 20, 5.0, 0.3};
	double t0 = now();
	json_t *doc;

	ck_assert_int_eq(bsi_sandbox_run(&doc, fn_sleep, NULL, NULL, 0, &lim, "recipes/s.lua"),
			 BSI_ERECIPE);
	ck_assert_str_eq(bsi_error_message(), "recipes/s.lua: killed after 0.3 s wall clock");
	ck_assert_ptr_null(doc);
	ck_assert_double_lt(now() - t0, 2.0);
	assert_no_children();
}
END_TEST

static int fn_spin(json_t **out, void *arg)
{
	volatile unsigned long n = 0;

	for (;;)
		n++;
	return 0;
}

/* A C loop no hook can see dies by RLIMIT_CPU. */
START_TEST(test_sandbox_cpu_rlimit)
{
	const bsi_sandbox_limits lim = {(size_t)16 << 20, 0.1, 10.0};
	json_t *doc;

	ck_assert_int_eq(bsi_sandbox_run(&doc, fn_spin, NULL, NULL, 0, &lim, "recipes/c.lua"),
			 BSI_ERECIPE);
	ck_assert_str_eq(bsi_error_message(), "recipes/c.lua: CPU budget of 0.1 s exceeded");
	assert_no_children();
}
END_TEST

static int fn_die(json_t **out, void *arg)
{
	kill(getpid(), SIGTERM);
	return 0;
}

START_TEST(test_sandbox_crash_reported)
{
	json_t *doc;

	ck_assert_int_eq(bsi_sandbox_run(&doc, fn_die, NULL, NULL, 0, &limits, "recipes/d.lua"),
			 BSI_ERECIPE);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "recipes/d.lua: evaluation crashed (signal 15"));
	assert_no_children();
}
END_TEST

static int fn_flood(json_t **out, void *arg)
{
	size_t n = BSI_SANDBOX_MAX_OUTPUT + 1024;
	char *big = malloc(n + 1);

	memset(big, 'x', n);
	big[n] = '\0';
	*out = json_string(big);
	free(big);
	return 0;
}

/* The parent reads a bounded amount and kills a child that sends more. */
START_TEST(test_sandbox_output_bounded)
{
	const bsi_sandbox_limits lim = {(size_t)64 << 20, 5.0, 10.0};
	json_t *doc;

	ck_assert_int_eq(bsi_sandbox_run(&doc, fn_flood, NULL, NULL, 0, &lim, "recipes/f.lua"),
			 BSI_ERECIPE);
	ck_assert_str_eq(bsi_error_message(), "recipes/f.lua: evaluation output exceeds 16 MiB");
	ck_assert_ptr_null(doc);
	assert_no_children();
}
END_TEST

static Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_sandbox_closes_inherited_fds);
	tcase_add_test(tc, test_sandbox_sets_rlimits);
	tcase_add_test(tc, test_sandbox_error_passes_through);
	tcase_add_test(tc, test_sandbox_wall_clock_kill);
	tcase_add_test(tc, test_sandbox_cpu_rlimit);
	tcase_add_test(tc, test_sandbox_crash_reported);
	tcase_add_test(tc, test_sandbox_output_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(sandbox_suite());
}
