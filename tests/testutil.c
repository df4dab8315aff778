#include "testutil.h"

#include "digest.h"

#include <check.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char *made[256];
static size_t nmade;

int tu_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	tu_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];

	snprintf(tmpl, sizeof(tmpl), "%s/bsi-test-XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	ck_assert_uint_lt(nmade, sizeof(made) / sizeof(made[0]));
	made[nmade] = strdup(tmpl);
	return made[nmade++];
}

void tu_cleanup(void)
{
	while (nmade > 0) {
		char *d = made[--nmade];
		tu_result r;

		if (!getenv("BSI_KEEP_TMP"))
			tu_sh(&r, "chmod -R u+w '%s' 2>/dev/null; rm -rf '%s'", d, d);
		else
			r.out = r.err = NULL;
		tu_result_free(&r);
		free(d);
	}
}

const char *tu_build_path(const char *name)
{
	static char buf[8][4096];
	static int next;
	const char *build = getenv("BSI_BUILD");
	char *b = buf[next++ % 8];

	snprintf(b, sizeof(buf[0]), "%s/%s", build && *build ? build : "build", name);
	return b;
}

static char *slurp_fd(int fd)
{
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	ssize_t n;

	ck_assert_ptr_nonnull(s);
	while ((n = read(fd, s + len, cap - len - 1)) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		len += (size_t)n;
		if (cap - len < 2) {
			char *grown;

			cap *= 2;
			grown = realloc(s, cap);
			if (!grown)
				free(s);
			ck_assert_ptr_nonnull(grown);
			s = grown;
		}
	}
	s[len] = '\0';
	return s;
}

static int run_sh(tu_result *res, const char *cmd)
{
	char outp[] = "/tmp/bsi-tu-out-XXXXXX", errp[] = "/tmp/bsi-tu-err-XXXXXX";
	int outfd = mkstemp(outp), errfd = mkstemp(errp), st;
	pid_t pid;

	ck_assert_int_ge(outfd, 0);
	ck_assert_int_ge(errfd, 0);
	unlink(outp);
	unlink(errp);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		dup2(outfd, 1);
		dup2(errfd, 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	lseek(outfd, 0, SEEK_SET);
	lseek(errfd, 0, SEEK_SET);
	res->out = slurp_fd(outfd);
	res->err = slurp_fd(errfd);
	close(outfd);
	close(errfd);
	res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return res->status;
}

static char *vfmt(const char *fmt, va_list ap)
{
	char *s;

	ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
	return s;
}

int tu_sh(tu_result *res, const char *fmt, ...)
{
	va_list ap;
	char *cmd;

	va_start(ap, fmt);
	cmd = vfmt(fmt, ap);
	va_end(ap);
	run_sh(res, cmd);
	free(cmd);
	return res->status;
}

static const char *srcdir(void);

static int run_bsi(tu_result *res, const char *env, const char *bin, const char *args)
{
	const char *vg = getenv("BSI_VALGRIND");
	char *cmd, *valgrind = NULL;

	if (vg && strcmp(vg, "1") == 0)
		ck_assert_int_ge(asprintf(&valgrind,
					  "valgrind -q --error-exitcode=99 --leak-check=full "
					  "--errors-for-leak-kinds=definite --trace-children=no "
					  "--suppressions='%s/tests/valgrind.supp'",
					  srcdir()),
				 0);
	ck_assert_int_ge(asprintf(&cmd, "%s %s '%s' %s", env ? env : "",
				  valgrind ? valgrind : "", tu_build_path(bin), args),
			 0);
	free(valgrind);
	run_sh(res, cmd);
	free(cmd);
	if (res->status == 99)
		fprintf(stderr, "valgrind reported errors in: bsi %s\n%s\n", args, res->err);
	return res->status;
}

int tu_bsi(tu_result *res, const char *fmt, ...)
{
	va_list ap;
	char *args;

	va_start(ap, fmt);
	args = vfmt(fmt, ap);
	va_end(ap);
	run_bsi(res, NULL, "bsi", args);
	free(args);
	return res->status;
}

int tu_bsi_env(tu_result *res, const char *env, const char *fmt, ...)
{
	va_list ap;
	char *args;

	va_start(ap, fmt);
	args = vfmt(fmt, ap);
	va_end(ap);
	run_bsi(res, env, "bsi-failpoint", args);
	free(args);
	return res->status;
}

void tu_result_free(tu_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

void tu_must(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	tu_result r;

	va_start(ap, fmt);
	cmd = vfmt(fmt, ap);
	va_end(ap);
	if (run_sh(&r, cmd) != 0)
		ck_abort_msg("command failed (%d): %s\nstdout: %s\nstderr: %s", r.status, cmd,
			     r.out, r.err);
	tu_result_free(&r);
	free(cmd);
}

void tu_write(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot write %s", path);
	fputs(content, f);
	ck_assert_int_eq(fclose(f), 0);
}

char *tu_read(const char *path)
{
	int fd = open(path, O_RDONLY);
	char *s;

	if (fd < 0)
		return NULL;
	s = slurp_fd(fd);
	close(fd);
	return s;
}

/* Lines "xattr PATH NAME HEXVALUE" for the entry being walked, collected
 * by xattr_line() into one buffer for tu_tree_fingerprint(). */
static char **xattr_lines;
static size_t xattr_nlines;
static size_t xattr_skip; /* length of the walked directory's path + 1 */

static int xattr_line(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	char names[65536], value[65536], *line, **grown;
	ssize_t len, n;

	(void)sb;
	(void)type;
	(void)ftw;
	len = llistxattr(path, names, sizeof(names));
	for (ssize_t off = 0; len > 0 && off < len; off += (ssize_t)strlen(names + off) + 1) {
		size_t used;

		n = lgetxattr(path, names + off, value, sizeof(value));
		ck_assert_msg(n >= 0, "read xattr %s of %s: %s", names + off, path, strerror(errno));
		line = malloc(strlen(path) + strlen(names + off) + 2 * (size_t)n + 16);
		ck_assert_ptr_nonnull(line);
		used = (size_t)sprintf(line, "xattr ./%s %s ",
				       strlen(path) > xattr_skip ? path + xattr_skip : "",
				       names + off);
		for (ssize_t i = 0; i < n; i++)
			used += (size_t)sprintf(line + used, "%02x", (unsigned char)value[i]);
		grown = realloc(xattr_lines, (xattr_nlines + 1) * sizeof(*xattr_lines));
		ck_assert_ptr_nonnull(grown);
		xattr_lines = grown;
		xattr_lines[xattr_nlines++] = line;
	}
	return 0;
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tu_tree_fingerprint(const char *dir)
{
	tu_result r;
	size_t len, i;
	char *fp;

	tu_sh(&r,
	      "cd '%s' && find . -printf '%%p %%y %%m %%U:%%G %%s %%l\\n' | LC_ALL=C sort && "
	      "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum",
	      dir);
	ck_assert_msg(r.status == 0, "fingerprint of %s failed: %s", dir, r.err);
	free(r.err);
	/* and every extended attribute: SELinux labels, capabilities, ACLs */
	xattr_skip = strlen(dir) + 1;
	ck_assert_int_eq(nftw(dir, xattr_line, 16, FTW_PHYS), 0);
	if (xattr_nlines) /* qsort(NULL, 0, ...) is undefined */
		qsort(xattr_lines, xattr_nlines, sizeof(*xattr_lines), cmp_lines);
	len = strlen(r.out);
	for (i = 0; i < xattr_nlines; i++)
		len += strlen(xattr_lines[i]) + 1;
	fp = malloc(len + 1);
	ck_assert_ptr_nonnull(fp);
	len = (size_t)sprintf(fp, "%s", r.out);
	for (i = 0; i < xattr_nlines; i++) {
		len += (size_t)sprintf(fp + len, "%s\n", xattr_lines[i]);
		free(xattr_lines[i]);
	}
	free(xattr_lines);
	xattr_lines = NULL;
	xattr_nlines = 0;
	free(r.out);
	return fp;
}

/* The source tree: tests run from the top of the repository. */
static const char *srcdir(void)
{
	const char *s = getenv("BSI_SRCDIR");

	return s && *s ? s : ".";
}

void tu_sample_tree(const char *dir)
{
	tu_must("mkdir -p '%s/recipes' && cp '%s'/recipes/*.lua '%s/recipes/' && "
		"sh '%s/recipes/sample.sh' payloads '%s/payloads'",
		dir, srcdir(), dir, srcdir(), dir);
}

void tu_sample_image(const char *variant, const char *dir)
{
	tu_must("sh '%s/recipes/sample.sh' image '%s' '%s'", srcdir(), variant, dir);
}

static void make_key(const char *key)
{
	if (access(key, R_OK) != 0)
		tu_must("ssh-keygen -q -t ed25519 -N '' -C test@bsi -f '%s'", key);
}

char *tu_pubkey(const char *key)
{
	char path[4200], *s;

	snprintf(path, sizeof(path), "%s.pub", key);
	s = tu_read(path);
	ck_assert_ptr_nonnull(s);
	s[strcspn(s, "\n")] = '\0';
	return s;
}

void tu_feed_commit(const char *feed, const char *key, const char *msg)
{
	tu_must("cd '%s' && git add -A && git -c user.name=Team -c user.email=team@bsi "
		"-c gpg.format=ssh -c user.signingKey='%s' commit -q -S -m '%s'",
		feed, key, msg);
}

void tu_signed_feed(const char *feed, const char *key, char intro[41])
{
	char signers[4200], *pub;
	tu_result r;

	make_key(key);
	tu_must("git init -q -b main '%s' && mkdir -p '%s/.bsi'", feed, feed);
	tu_sample_tree(feed);
	pub = tu_pubkey(key);
	snprintf(signers, sizeof(signers), "%s/.bsi/signers", feed);
	{
		char line[4200];

		snprintf(line, sizeof(line), "team@bsi namespaces=\"git\" %s\n", pub);
		tu_write(signers, line);
	}
	free(pub);
	tu_feed_commit(feed, key, "Improvements for 26.0");
	ck_assert_int_eq(tu_sh(&r, "git -C '%s' rev-parse HEAD", feed), 0);
	snprintf(intro, 41, "%.40s", r.out);
	tu_result_free(&r);
}

static pid_t daemon_pid = -1;

int tu_git_daemon_start(const char *base)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		int port = 20000 + (int)((getpid() * 7919 + attempt * 104729) % 30000);
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			char portarg[32], basearg[4200];
			int devnull = open("/dev/null", O_RDWR);

			snprintf(portarg, sizeof(portarg), "--port=%d", port);
			snprintf(basearg, sizeof(basearg), "--base-path=%s", base);
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			execlp("git", "git", "daemon", "--reuseaddr", "--export-all",
			       "--listen=127.0.0.1", portarg, basearg, base, (char *)NULL);
			_exit(127);
		}
		/* ready when it answers; gone when the port was taken */
		for (int i = 0; i < 50; i++) {
			tu_result r;
			int st;

			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			if (tu_sh(&r, "bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null", port) == 0) {
				tu_result_free(&r);
				daemon_pid = pid;
				return port;
			}
			tu_result_free(&r);
			usleep(100 * 1000);
		}
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	ck_abort_msg("could not start git daemon on 127.0.0.1");
	return -1;
}

void tu_git_daemon_stop(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = -1;
	}
}

char *tu_file_digest(const char *dir, const char *rel)
{
	char path[4200], *out = malloc(BSI_DIGEST_STRLEN + 1);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(bsi_digest_fd(fd, out), 0);
	close(fd);
	return out;
}
