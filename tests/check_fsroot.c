/* Confinement of paths to the target root (host/fsroot.c). */
#include "error.h"
#include "fsroot.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
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
	/* an absolute target means the same path under the root (as in a
	 * chroot), where there is nothing: absent, and the secret unread */
	{
		int fd = 7;

		ck_assert_int_eq(bsi_root_open_file(root, "abs/secret", O_RDONLY, &fd), 0);
		ck_assert_int_eq(fd, -1);
	}
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

/*
 * A stock Debian system: usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk,
 * bin -> usr/bin, lib -> /usr/lib.  Absolute targets start again at the root,
 * as in a chroot; every escape is still refused or lands inside.  outside/
 * holds a marker that must never be read, at the absolute path the symlinks
 * name as well.
 */
START_TEST(test_fsroot_absolute_symlinks_resolve_inside_root)
{
	char name[NAME_MAX + 1], *s, p[4096];
	int fd, dfd;

	tu_must("cd '%s' && mkdir -p usr/bin usr/lib etc/alternatives d/e && "
		"echo mawk > usr/bin/mawk && echo libc > usr/lib/libc.so && "
		"ln -s /usr/bin/mawk etc/alternatives/awk && "
		"ln -s /etc/alternatives/awk usr/bin/awk && ln -s usr/bin bin && "
		"ln -s /usr/lib lib && ln -s / d/e/top && "
		"ln -s /../../outside/secret dotdot && ln -s ../../../outside/secret up && "
		"ln -s '%s/secret' marker && ln -s /d/e/../../etc/alternatives/awk d/again",
		root_dir, outside);
	ck_assert_int_eq(bsi_root_open_file(root, "usr/bin/awk", O_RDONLY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "mawk\n");
	ck_assert_int_eq(bsi_root_open_file(root, "bin/awk", O_RDONLY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "mawk\n");
	ck_assert_int_eq(bsi_root_open_file(root, "lib/libc.so", O_RDONLY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "libc\n");
	/* "/" means the root; ".." below it goes back up inside */
	ck_assert_int_eq(bsi_root_open_file(root, "d/e/top/usr/bin/awk", O_RDONLY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "mawk\n");
	ck_assert_int_eq(bsi_root_open_file(root, "d/again", O_RDONLY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(read_fd(fd), "mawk\n");
	/* the parent of a target behind absolute symlinks, inside the root */
	ck_assert_int_eq(bsi_root_open_parent(root, "lib/libc.so", &dfd, name), 0);
	ck_assert_int_ge(dfd, 0);
	ck_assert_str_eq(name, "libc.so");
	fd = openat(dfd, name, O_RDONLY);
	close(dfd);
	ck_assert_str_eq(read_fd(fd), "libc\n");
	/* escapes: ".." above the root is refused, an absolute path to the
	 * marker means that path under the root, where nothing is */
	expect_refused("dotdot", "outside the target root");
	expect_refused("up", "outside the target root");
	expect_refused("d/e/top/..", "outside the target root");
	expect_refused("d/e/top/../etc/alternatives/awk", "outside the target root");
	ck_assert_int_eq(bsi_root_open_file(root, "marker", O_RDONLY, &fd), 0);
	ck_assert_int_eq(fd, -1);
	snprintf(p, sizeof(p), "%s/secret", outside);
	s = tu_read(p);
	ck_assert_str_eq(s, "secret\n");
	free(s);
}
END_TEST

START_TEST(test_fsroot_refuses_symlink_loops)
{
	tu_must("ln -s b '%s/a' && ln -s a '%s/b' && ln -s /c '%s/c'", root_dir, root_dir,
		root_dir);
	expect_refused("a", "too many levels");
	expect_refused("c", "too many levels");
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

/* A socket bound at path (left bound: only its node matters here). */
static void make_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

/* root/odd/ holds one of every kind of node; true when a device node could
 * be made (root only). */
static bool make_odd_files(void)
{
	char p[4200];
	bool dev;

	tu_must("cd '%s' && mkdir odd odd/dir && mkfifo odd/fifo && echo two > odd/linked && "
		"ln odd/linked odd/linked2 && ln -s ../F.framework/Versions/A/F odd/link && "
		"ln -s /F.framework/F odd/abslink && head -c 3000 /dev/zero > odd/big && "
		"echo ok > odd/plain",
		root_dir);
	snprintf(p, sizeof(p), "%s/odd/sock", root_dir);
	make_socket(p);
	snprintf(p, sizeof(p), "%s/odd/null", root_dir);
	dev = mknod(p, S_IFCHR | 0600, makedev(1, 3)) == 0;
	if (!dev)
		fprintf(stderr, "note: cannot make a device node (%s); not tested\n",
			strerror(errno));
	return dev;
}

/* bsi_root_open_target(rel) is refused, naming rel and why, with nothing left open. */
static void expect_not_target(const char *rel, const char *why)
{
	bsi_root_target t;
	int rc = bsi_root_open_target(root, rel, &t);

	ck_assert_msg(rc == BSI_ERECIPE, "%s: expected a refusal, got %d", rel, rc);
	ck_assert_int_eq(t.fd, -1);
	ck_assert_int_eq(t.dirfd, -1);
	ck_assert_msg(strstr(bsi_error_message(), why) && strstr(bsi_error_message(), rel),
		      "%s: message \"%s\" lacks \"%s\"", rel, bsi_error_message(), why);
	bsi_root_target_close(&t);
}

/*
 * Only a regular file is opened; a FIFO (which would block the opener),
 * a socket and a device node (which may act on open) are refused from an
 * O_PATH look; O_PATH itself hands back any node.
 */
START_TEST(test_fsroot_special_files_are_never_opened)
{
	const char *odd[] = {"odd/fifo", "odd/sock", "odd/null"};
	const char *kind[] = {"a FIFO", "a socket", "a character device"};
	bool dev = make_odd_files();
	int fd;

	for (size_t i = 0; i < 3; i++) {
		if (i == 2 && !dev)
			continue;
		fd = 7;
		ck_assert_int_eq(bsi_root_open_file(root, odd[i], O_RDONLY, &fd), BSI_ERECIPE);
		ck_assert_int_eq(fd, -1);
		ck_assert_msg(strstr(bsi_error_message(), kind[i]), "%s", bsi_error_message());
		ck_assert_int_eq(bsi_root_open_file(root, odd[i], O_PATH, &fd), 0);
		ck_assert_int_ge(fd, 0);
		close(fd);
	}
	/* a directory still opens, for those who ask for one */
	ck_assert_int_eq(bsi_root_open_file(root, "odd/dir", O_RDONLY | O_DIRECTORY, &fd), 0);
	ck_assert_int_ge(fd, 0);
	close(fd);
}
END_TEST

/*
 * What bsi may replace: a regular file with one link within the size
 * limit.  Everything else is refused naming the path and what it is (for a
 * symlink, where it points); the regular file reached through the same
 * directory opens.
 */
START_TEST(test_fsroot_target_is_a_plain_file)
{
	bsi_root_target t;
	bool dev = make_odd_files();

	expect_not_target("odd/link", "is a symlink to ../F.framework/Versions/A/F");
	expect_not_target("odd/abslink", "is a symlink to /F.framework/F");
	expect_not_target("odd/dir", "is a directory");
	expect_not_target("odd/fifo", "is a FIFO");
	expect_not_target("odd/sock", "is a socket");
	if (dev)
		expect_not_target("odd/null", "is a character device");
	expect_not_target("odd/linked", "has 2 hard links");
	expect_not_target("odd/linked2", "has 2 hard links");
	/* the limit: 3000 bytes pass a 4 KiB limit and not a 2 KiB one */
	bsi_root_set_max_target(root, 4096);
	ck_assert_int_eq(bsi_root_open_target(root, "odd/big", &t), 0);
	ck_assert_int_ge(t.fd, 0);
	ck_assert_int_eq(t.st.st_size, 3000);
	bsi_root_target_close(&t);
	bsi_root_set_max_target(root, 2048);
	expect_not_target("odd/big", "max_target_mib");
	/* a regular file opens, with its directory; a missing one is absent */
	ck_assert_int_eq(bsi_root_open_target(root, "odd/plain", &t), 0);
	ck_assert_int_ge(t.fd, 0);
	ck_assert_int_ge(t.dirfd, 0);
	ck_assert_str_eq(t.name, "plain");
	ck_assert_str_eq(read_fd(dup(t.fd)), "ok\n");
	bsi_root_target_close(&t);
	ck_assert_int_eq(bsi_root_open_target(root, "odd/none", &t), 0);
	ck_assert_int_eq(t.fd, -1);
	bsi_root_target_close(&t);
	ck_assert_int_eq(bsi_root_open_target(root, "nodir/none", &t), 0);
	ck_assert_int_eq(t.fd, -1);
	ck_assert_int_eq(t.dirfd, -1);
	/* bsi_root_open_regular() keeps the kind rules, not the target rules */
	ck_assert_int_eq(bsi_root_open_regular(root, "odd/linked", &t), 0);
	ck_assert_int_ge(t.fd, 0);
	bsi_root_target_close(&t);
	ck_assert_int_eq(bsi_root_open_regular(root, "odd/fifo", &t), BSI_ERECIPE);
	bsi_root_target_close(&t);
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
	tcase_add_test(tc, test_fsroot_absolute_symlinks_resolve_inside_root);
	tcase_add_test(tc, test_fsroot_refuses_symlink_loops);
	tcase_add_test(tc, test_fsroot_parent_gives_dir_and_name);
	tcase_add_test(tc, test_fsroot_special_files_are_never_opened);
	tcase_add_test(tc, test_fsroot_target_is_a_plain_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
