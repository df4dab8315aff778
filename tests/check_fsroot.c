/* Confinement of paths to the target root (host/fsroot.c). */
#include "error.h"
#include "fsroot.h"
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *base, *root_dir, *outside;
static bsi_root *root;

/* root/ holds a small framework bundle with internal symlinks; outside/
 * holds a secret the recipes must never reach. */
static void setup(void)
{
	base = tu_tmpdir();
	ck_assert_int_ge(asprintf(&root_dir, "%s/root", base), 0);
	ck_assert_int_ge(asprintf(&outside, "%s/outside", base), 0);
	tu_must("mkdir -p '%s/F.framework/Versions/A' '%s' && "
		"echo lib > '%s/F.framework/Versions/A/F' && "
		"ln -s A '%s/F.framework/Versions/Current' && "
		"ln -s Versions/Current/F '%s/F.framework/F' && "
		"echo secret > '%s/secret'",
		root_dir, outside, root_dir, root_dir, root_dir, outside);
	ck_assert_int_eq(bsi_root_open(&root, root_dir), 0);
}

static void teardown(void)
{
	bsi_root_free(root);
	free(root_dir);
	free(outside);
	tu_cleanup();
}

static char *read_fd(int fd)
{
	static char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* Open rel and expect a refusal whose message contains why. */
static void expect_refused(const char *rel, const char *why)
{
	int fd = -7, rc = bsi_root_open_file(root, rel, O_RDONLY, &fd);

	ck_assert_msg(rc == BSI_ERECIPE, "%s: expected refusal, got rc %d fd %d", rel, rc, fd);
	ck_assert_int_eq(fd, -1);
	ck_assert_msg(strstr(bsi_error_message(), why), "%s: message \"%s\" lacks \"%s\"", rel,
		      bsi_error_message(), why);
	ck_assert_msg(strstr(bsi_error_message(), rel), "message does not name the path");
}

START_TEST(test_fsroot_follows_symlinks_inside_root)
{
	int fd;

	ck_assert_int_eq(bsi_root_open_file(root, "F.framework/F", O_RDONLY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "lib\n");
	ck_assert_int_eq(bsi_root_open_file(root, "F.framework/Versions/../F", O_RDONLY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "lib\n");
}
END_TEST

START_TEST(test_fsroot_missing_is_not_an_error)
{
	int fd = 5;

	ck_assert_int_eq(bsi_root_open_file(root, "nope/nothing", O_RDONLY, &fd), 0);
	ck_assert_int_eq(fd, -1);
	/* a file where a directory is expected: also absent */
	ck_assert_int_eq(bsi_root_open_file(root, "F.framework/F/x", O_RDONLY, &fd), 0);
	ck_assert_int_eq(fd, -1);
}
END_TEST

START_TEST(test_fsroot_refuses_dotdot_escape)
{
	expect_refused("../outside/secret", "outside the target root");
	expect_refused("F.framework/../../outside/secret", "outside the target root");
	expect_refused("..", "outside the target root");
}
END_TEST

START_TEST(test_fsroot_refuses_absolute_paths)
{
	expect_refused("/etc/passwd", "absolute");
	expect_refused("", "empty");
}
END_TEST

START_TEST(test_fsroot_refuses_symlink_out_at_each_level)
{
	/* absolute target at the top, relative escapes deeper down, and a
	 * symlink to a file outside */
	tu_must("ln -s '%s' '%s/abs' && ln -s ../../../../outside '%s/F.framework/Versions/A/up' "
		"&& ln -s ../outside/secret '%s/leak' && mkdir '%s/d' && "
		"ln -s ../../outside '%s/d/deep'",
		outside, root_dir, root_dir, root_dir, root_dir, root_dir);
	expect_refused("abs/secret", "absolute target");
	expect_refused("F.framework/Versions/A/up/secret", "outside the target root");
	expect_refused("leak", "outside the target root");
	expect_refused("d/deep/secret", "outside the target root");
	/* the secret is untouched */
	{
		char p[4096], *s;

		snprintf(p, sizeof(p), "%s/secret", outside);
		s = tu_read(p);
		ck_assert_str_eq(s, "secret\n");
		free(s);
	}
}
END_TEST

START_TEST(test_fsroot_refuses_symlink_loops)
{
	tu_must("ln -s b '%s/a' && ln -s a '%s/b'", root_dir, root_dir);
	expect_refused("a", "too many levels");
}
END_TEST

START_TEST(test_fsroot_parent_gives_dir_and_name)
{
	char name[NAME_MAX + 1];
	int dfd, fd;

	ck_assert_int_eq(bsi_root_open_parent(root, "F.framework/Versions/Current/F", &dfd, name), 0);
	ck_assert_int_ge(dfd, 0);
	ck_assert_str_eq(name, "F");
	fd = openat(dfd, name, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "lib\n");
	close(dfd);
	/* the final component is not followed: a symlink stays a symlink */
	ck_assert_int_eq(bsi_root_open_parent(root, "F.framework/F", &dfd, name), 0);
	ck_assert_str_eq(name, "F");
	close(dfd);
	ck_assert_int_eq(bsi_root_open_parent(root, "../x", &dfd, name), BSI_ERECIPE);
	ck_assert_int_eq(bsi_root_open_parent(root, "F.framework/..", &dfd, name), BSI_ERECIPE);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fsroot");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_fsroot_follows_symlinks_inside_root);
	tcase_add_test(tc, test_fsroot_missing_is_not_an_error);
	tcase_add_test(tc, test_fsroot_refuses_dotdot_escape);
	tcase_add_test(tc, test_fsroot_refuses_absolute_paths);
	tcase_add_test(tc, test_fsroot_refuses_symlink_out_at_each_level);
	tcase_add_test(tc, test_fsroot_refuses_symlink_loops);
	tcase_add_test(tc, test_fsroot_parent_gives_dir_and_name);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
