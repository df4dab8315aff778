#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *made[256];
static size_t nmade;

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

static int run_bsi(tu_result *res, const char *env, const char *bin, const char *args)
{
	const char *vg = getenv("BSI_VALGRIND");
	char *cmd;

	ck_assert_int_ge(asprintf(&cmd, "%s %s '%s' %s", env ? env : "",
				  vg && strcmp(vg, "1") == 0
					  ? "valgrind -q --error-exitcode=99 --leak-check=full "
					    "--errors-for-leak-kinds=definite --trace-children=no"
					  : "",
				  tu_build_path(bin), args),
			 0);
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

char *tu_tree_fingerprint(const char *dir)
{
	tu_result r;
	char *fp;

	tu_sh(&r,
	      "cd '%s' && find . -printf '%%p %%y %%m %%U:%%G %%s %%l\\n' | LC_ALL=C sort && "
	      "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum",
	      dir);
	ck_assert_msg(r.status == 0, "fingerprint of %s failed: %s", dir, r.err);
	fp = r.out;
	free(r.err);
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
