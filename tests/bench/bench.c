/*
 * bench.c - `make bench`: bsi's speed beside a baseline measured in the
 * same run, as one table.
 *
 *   build/tests/bench BUILD_DIR
 *
 * Generates every input in a new directory under $TMPDIR (default /tmp),
 * runs the release binary BUILD_DIR/bsi (and, for the rows that measure a
 * library call, the same code linked in), and removes the directory at the
 * end (BSI_BENCH_KEEP=1 keeps it).  BSI_BENCH_RUNS sets the number of runs
 * of the quick cases (default 5); slow cases run 3 times.  Every figure is
 * the median of its runs (BSI_BENCH_ONLY=auth,hash,plan,apply,feed runs some); bsi and its baseline are run alternately so a
 * burst of load from elsewhere hits both.  docs/bench.md explains the rows.
 *
 * Not a test: nothing here is part of `make check`.
 */
#include "auth.h"
#include "changeset.h"
#include "digest.h"
#include "error.h"
#include "recipe.h"
#include "source.h"
#include "sigtool.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static const char *bsi_bin;  /* BUILD_DIR/bsi */
static char work[4096];      /* the temporary directory */
static int runs = 5;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static char *fmt_str(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	return s;
}

/* BSI_BENCH_KEEP=1: leave the generated data for a closer look. */
static bool keep(void)
{
	return getenv("BSI_BENCH_KEEP") && strcmp(getenv("BSI_BENCH_KEEP"), "1") == 0;
}

/* ---- running and timing children ------------------------------------ */

typedef struct {
	double secs;   /* wall-clock time */
	double cpu;    /* user + system CPU time of the child and its descendants */
	long maxrss;   /* KiB, the child's and its descendants' peak (wait4) */
} measure;

/*
 * Run `sh -c cmd`, stdout to out_path (NULL: /dev/null), stderr to
 * <work>/stderr.log.  Dies when it fails, unless `may_fail`.  Returns the
 * exit status.  The time includes the shell's start (about a millisecond).
 *
 * Peak memory: the ru_maxrss that wait4 reports for a child forked from
 * this process is at least this process's own peak (the forked copy of
 * our pages counts until exec), which after the auth case is larger than
 * some of what we measure.  So with `rss` the command runs under GNU
 * time (/usr/bin/time -f %M), a small process whose children's peaks are
 * their own; m->maxrss is what it reports.
 */
static int run_sh_to(measure *m, const char *out_path, bool may_fail, bool rss, const char *cmd)
{
	struct rusage ru;
	char log[4200], rssfile[4200];
	double t0;
	pid_t pid;
	int st;

	snprintf(log, sizeof(log), "%s/stderr.log", work);
	snprintf(rssfile, sizeof(rssfile), "%s/rss.out", work);
	t0 = now();
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (out < 0 || err < 0)
			_exit(127);
		dup2(out, 1);
		dup2(err, 2);
		if (rss)
			execl("/usr/bin/time", "time", "-f", "%M", "-o", rssfile, "/bin/sh", "-c", cmd,
			      (char *)NULL);
		else
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			die("wait4: %s", strerror(errno));
	if (m) {
		m->secs = now() - t0;
		m->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		m->maxrss = 0;
		if (rss) {
			FILE *f = fopen(rssfile, "r");

			if (!f || fscanf(f, "%ld", &m->maxrss) != 1)
				die("no peak memory from /usr/bin/time for: %s", cmd);
			fclose(f);
		}
	}
	if (!may_fail && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		die("command failed (see %s): %s", log, cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	run_sh_to(NULL, NULL, false, false, cmd);
	free(cmd);
}

/* Run and time a command; timed_rss also takes its peak memory. */
static measure timed_v(bool rss, const char *fmt, va_list ap)
{
	measure m;
	char *cmd;

	if (vasprintf(&cmd, fmt, ap) < 0)
		die("out of memory");
	run_sh_to(&m, NULL, false, rss, cmd);
	free(cmd);
	return m;
}

static measure timed_rss(const char *fmt, ...)
{
	va_list ap;
	measure m;

	va_start(ap, fmt);
	m = timed_v(true, fmt, ap);
	va_end(ap);
	return m;
}

static measure timed(const char *fmt, ...)
{
	va_list ap;
	measure m;

	va_start(ap, fmt);
	m = timed_v(false, fmt, ap);
	va_end(ap);
	return m;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of v[0..n), after printing the sorted samples to stderr
 * under `label`, so the spread behind each figure is on record. */
static double median_of(const char *fn, const char *label, double *v, int n)
{
	char name[80];

	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	snprintf(name, sizeof(name), "%s/%s", strncmp(fn, "bench_", 6) == 0 ? fn + 6 : fn, label);
	fprintf(stderr, "bench:   %-40s", name);
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %.4f", v[i]);
	fprintf(stderr, "\n");
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define median(v, n) median_of(__func__, #v, v, n)

/* ---- the table ------------------------------------------------------- */

typedef struct {
	char what[80], ours[32], base[40], ratio[16], target[24], met[8];
} row;

static row rows[32];
static int nrows;

static row *add_row(const char *what, const char *ours, const char *base, const char *ratio,
		    const char *target, int met /* 1 yes, 0 no, -1 no target */)
{
	row *r = &rows[nrows++];

	snprintf(r->what, sizeof(r->what), "%s", what);
	snprintf(r->ours, sizeof(r->ours), "%s", ours);
	snprintf(r->base, sizeof(r->base), "%s", base);
	snprintf(r->ratio, sizeof(r->ratio), "%s", ratio);
	snprintf(r->target, sizeof(r->target), "%s", target);
	snprintf(r->met, sizeof(r->met), "%s", met < 0 ? "-" : met ? "met" : "NOT MET");
	return r;
}

static const char *human_time(char buf[32], double secs)
{
	if (secs < 1e-3)
		snprintf(buf, 32, "%.1f us", secs * 1e6);
	else if (secs < 1)
		snprintf(buf, 32, "%.1f ms", secs * 1e3);
	else
		snprintf(buf, 32, "%.2f s", secs);
	return buf;
}

static void print_table(void)
{
	static const char *head[6] = {"what", "bsi", "baseline (same run)", "ratio", "target",
				      "met"};
	size_t w[6] = {0};

	for (int k = 0; k < 6; k++)
		w[k] = strlen(head[k]);
	for (int i = 0; i < nrows; i++) {
		const char *c[6] = {rows[i].what, rows[i].ours, rows[i].base, rows[i].ratio,
				    rows[i].target, rows[i].met};

		for (int k = 0; k < 6; k++)
			if (strlen(c[k]) > w[k])
				w[k] = strlen(c[k]);
	}
	printf("\n");
	printf("| %-*s | %-*s | %-*s | %-*s | %-*s | %-*s |\n", (int)w[0], head[0], (int)w[1],
	       head[1], (int)w[2], head[2], (int)w[3], head[3], (int)w[4], head[4], (int)w[5],
	       head[5]);
	printf("|");
	for (int k = 0; k < 6; k++) {
		for (size_t j = 0; j < w[k] + 2; j++)
			putchar('-');
		printf("|");
	}
	printf("\n");
	for (int i = 0; i < nrows; i++)
		printf("| %-*s | %*s | %*s | %*s | %-*s | %-*s |\n", (int)w[0], rows[i].what,
		       (int)w[1], rows[i].ours, (int)w[2], rows[i].base, (int)w[3], rows[i].ratio,
		       (int)w[4], rows[i].target, (int)w[5], rows[i].met);
}

/* ---- data ------------------------------------------------------------ */

/* A file of `bytes` pseudo-random bytes (xorshift; SHA-256 speed does not
 * depend on the content, and /dev/urandom would take seconds per GiB). */
static void write_random(const char *path, long bytes, uint64_t seed)
{
	static uint64_t buf[MIB / 8];
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	for (long done = 0; done < bytes; done += MIB) {
		size_t n = (size_t)(bytes - done < MIB ? bytes - done : MIB);

		for (size_t i = 0; i < MIB / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = x;
		}
		if (write(fd, buf, n) != (ssize_t)n)
			die("write %s: %s", path, strerror(errno));
	}
	close(fd);
}

static void digest_of_path(const char *path, char out[BSI_DIGEST_STRLEN + 1])
{
	int fd = open(path, O_RDONLY);

	if (fd < 0 || bsi_digest_fd(fd, out) != 0)
		die("hash %s", path);
	close(fd);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die("write %s: %s", path, strerror(errno));
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		die("read %s: %s", path, strerror(errno));
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	return buf;
}

/* bsi with the bench's config and the given root and state, as a command. */
static char *bsi_cmd(const char *root, const char *state, const char *args)
{
	return fmt_str("'%s' --root '%s' --state '%s' --config '%s/bsi.conf' %s", bsi_bin, root,
		       state, work, args);
}

/* ---- 1. feed authentication ------------------------------------------ */

static void set_branch(git_repository *r, const git_oid *head)
{
	git_reference *ref = NULL;

	if (git_reference_create(&ref, r, "refs/heads/main", head, 1, "bench") < 0)
		die("update refs/heads/main: %s", git_error_last()->message);
	git_reference_free(ref);
}

static long rss_sync;

static void bench_auth(void)
{
	const size_t n = 10000, git_n = 300;
	char feed[4200], hex[GIT_OID_HEXSZ + 1], intro_hex[GIT_OID_HEXSZ + 1], b1[32], b2[32];
	char *pub, *text, *cmd, *out, *state;
	uint8_t pk[32], sk[64];
	double ours[16] = {0}, gits[16] = {0}, api[16] = {0}, one[16] = {0}, none[16] = {0},
	       scratch[16] = {0}, ocpu[16] = {0}, gcpu[16] = {0};
	double nonecpu[16] = {0};
	git_repository *r = NULL;
	git_oid intro, head;
	int nr = runs, i;

	note("auth: generating %zu signed commits", n);
	snprintf(feed, sizeof(feed), "%s/feed", work);
	sh("git init -q -b main '%s'", feed);
	if (git_repository_open(&r, feed) < 0)
		die("open %s", feed);
	sigtool_keypair(pk, sk);
	pub = sigtool_pubkey_line(pk);
	text = fmt_str("bench@example.org %s\n", pub);
	sigtool_history(&intro, r, sk, NULL, 1, text);
	sigtool_history(&head, r, sk, &intro, n - 1, text);
	set_branch(r, &head);
	git_oid_tostr(intro_hex, sizeof(intro_hex), &intro);
	/* a feed on a server is packed; both sides read the same pack */
	sh("git -C '%s' repack -adq", feed);
	cmd = fmt_str("%s/allowed_signers", work);
	write_text(cmd, text);
	free(cmd);

	/* git's baseline must really verify: count its good signatures once. */
	out = fmt_str("%s/git-log.out", work);
	cmd = fmt_str("git -C '%s' -c gpg.ssh.allowedSignersFile='%s/allowed_signers' log "
		      "--show-signature -n %zu --format=%%H HEAD",
		      feed, work, git_n);
	run_sh_to(NULL, out, false, false, cmd);
	{
		char *log = read_text(out), *p = log;
		size_t good = 0;

		while ((p = strstr(p, "Good \"git\" signature"))) {
			good++;
			p++;
		}
		if (good != git_n)
			die("git log --show-signature found %zu good signatures of %zu", good, git_n);
		free(log);
	}

	note("auth: from scratch, %d runs each of bsi feed verify, the C API and git log", nr);
	for (i = 0; i < nr; i++) {
		bsi_auth_list *list = NULL;
		bsi_auth_anchor anchor;
		git_repository *rr = NULL;
		double t0;
		char *fv = fmt_str("'%s' feed verify '%s' --introduction %s --signer '%s'", bsi_bin,
				   feed, intro_hex, pub);

		{
			measure m = timed("%s", fv), g = timed("%s", cmd);

			ours[i] = m.secs;
			ocpu[i] = m.cpu;
			gits[i] = g.secs / (double)git_n;
			gcpu[i] = g.cpu / (double)git_n;
		}
		free(fv);
		/* the C API in this process, on a freshly opened repository */
		memcpy(anchor.key, pk, 32);
		anchor.introduction = intro;
		t0 = now();
		if (git_repository_open(&rr, feed) < 0 ||
		    bsi_auth_verify_range(&list, rr, &anchor, NULL, &head, NULL) != 0 ||
		    list->count != n)
			die("bsi_auth_verify_range failed");
		api[i] = now() - t0;
		bsi_auth_list_free(list);
		git_repository_free(rr);
	}
	free(cmd);
	free(out);

	/* bsi sync through the real CLI: enroll, first sync (fetch + auth). */
	note("auth: bsi enroll + first bsi sync, 3 runs");
	for (i = 0; i < 3; i++) {
		measure m;

		state = fmt_str("%s/auth-state-%d", work, i);
		cmd = bsi_cmd(work, state, "");
		sh("%s enroll '%s' --introduction %s --signer '%s'", cmd, feed, intro_hex, pub);
		m = timed_rss("%s sync", cmd);
		scratch[i] = m.secs;
		if (m.maxrss > rss_sync)
			rss_sync = m.maxrss;
		free(cmd);
		if (i < 2) {
			sh("rm -rf '%s'", state);
			free(state);
		}
	}
	/* incremental: one new commit, then nothing new, on the last state */
	note("auth: incremental bsi sync, %d runs", nr);
	cmd = bsi_cmd(work, state, "");
	for (i = 0; i < nr; i++) {
		sigtool_history(&head, r, sk, &head, 1, text);
		set_branch(r, &head);
		one[i] = timed("%s sync", cmd).secs;
		{
			measure m = timed("%s sync", cmd);

			none[i] = m.secs;
			nonecpu[i] = m.cpu;
		}
	}
	/* the last sync must have accepted the last commit */
	out = fmt_str("%s/status.out", work);
	run_sh_to(NULL, out, false, false, fmt_str("%s status --json", cmd));
	{
		char *st = read_text(out);

		if (!strstr(st, git_oid_tostr(hex, sizeof(hex), &head)))
			die("bsi status does not show head %s", hex);
		free(st);
	}
	free(out);
	free(cmd);
	free(state);

	{
		double o = median(ours, nr), g = median(gits, nr), a = median(api, nr);
		double s = median(scratch, 3), o1 = median(one, nr), o0 = median(none, nr);
		char what[80], x[32], y[48], ratio[16];

		snprintf(what, sizeof(what), "auth %zu commits from scratch: bsi feed verify", n);
		snprintf(x, sizeof(x), "%s", human_time(b1, o));
		snprintf(y, sizeof(y), "git %s/commit", human_time(b2, g));
		snprintf(ratio, sizeof(ratio), "%.0fx", g / (o / (double)n));
		add_row(what, x, y, ratio, ">= 200x git/commit", g / (o / (double)n) >= 200);
		snprintf(x, sizeof(x), "%s/commit", human_time(b1, o / (double)n));
		add_row("  per commit", x, y, ratio, "", -1);
		{
			double oc = median(ocpu, nr), gc = median(gcpu, nr);

			snprintf(x, sizeof(x), "%s/commit", human_time(b1, oc / (double)n));
			snprintf(y, sizeof(y), "git %s/commit", human_time(b2, gc));
			snprintf(ratio, sizeof(ratio), "%.0fx", gc / (oc / (double)n));
			add_row("  CPU time (user+sys) per commit", x, y, ratio, "", -1);
			snprintf(y, sizeof(y), "git %s/commit", human_time(b2, g));
		}
		snprintf(x, sizeof(x), "%s", human_time(b1, a));
		snprintf(ratio, sizeof(ratio), "%.0fx", g / (a / (double)n));
		add_row("  same, C API bsi_auth_verify_range", x, y, ratio, ">= 200x git/commit",
			g / (a / (double)n) >= 200);
		snprintf(x, sizeof(x), "%s", human_time(b1, s));
		snprintf(ratio, sizeof(ratio), "%.0fx", g / (s / (double)n));
		add_row("  first bsi sync (fetch + auth, CLI)", x, y, ratio, ">= 200x git/commit",
			g / (s / (double)n) >= 200);
		snprintf(x, sizeof(x), "%s", human_time(b1, o1));
		add_row("bsi sync, 1 new commit", x, "-", "-", "", -1);
		snprintf(x, sizeof(x), "%s", human_time(b1, o0));
		add_row("bsi sync, nothing new", x, "-", "-", "< 50 ms", o0 < 0.050);
		snprintf(x, sizeof(x), "%s", human_time(b1, median(nonecpu, nr)));
		add_row("  CPU time (user+sys)", x, "-", "-", "", -1);
	}
	git_repository_free(r);
	free(pub);
	free(text);
	if (!keep())
		sh("rm -rf '%s' '%s'/auth-state-*", feed, work);
}

/* ---- 4. hashing ------------------------------------------------------- */

static double sodium_hash_path(const char *path, unsigned char out[32])
{
	static unsigned char buf[MIB];
	crypto_hash_sha256_state h;
	double t0 = now();
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		die("open %s", path);
	crypto_hash_sha256_init(&h);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crypto_hash_sha256_update(&h, buf, (unsigned long long)n);
	crypto_hash_sha256_final(&h, out);
	close(fd);
	return now() - t0;
}

static void bench_hash(void)
{
	const long size = 1024 * MIB;
	double ours[16] = {0}, ossl[16] = {0}, sod[16] = {0};
	char path[4200], outp[4200], d[BSI_DIGEST_STRLEN + 1];
	unsigned char sd[32] = {0};
	int nr = runs;

	note("hash: writing a 1 GiB file; %d runs each of bsi_digest_fd, openssl dgst, libsodium",
	     nr);
	snprintf(path, sizeof(path), "%s/hash.bin", work);
	snprintf(outp, sizeof(outp), "%s/openssl.out", work);
	write_random(path, size, 42);
	for (int i = 0; i < nr; i++) {
		double t0 = now();
		char *cmd;

		digest_of_path(path, d);
		ours[i] = now() - t0;
		cmd = fmt_str("openssl dgst -sha256 '%s'", path);
		{
			measure m;

			run_sh_to(&m, outp, false, false, cmd);
			ossl[i] = m.secs;
		}
		free(cmd);
		sod[i] = sodium_hash_path(path, sd);
	}
	{
		char *o = read_text(outp), hex[65];

		for (int k = 0; k < 32; k++)
			snprintf(hex + 2 * k, 3, "%02x", sd[k]);
		if (!strstr(o, d + 7) || strcmp(hex, d + 7) != 0)
			die("the three SHA-256 implementations disagree");
		free(o);
	}
	{
		double o = (double)size / MIB / median(ours, nr), b = (double)size / MIB / median(ossl, nr);
		double s = (double)size / MIB / median(sod, nr);
		char x[32], y[40], ratio[16];

		snprintf(x, sizeof(x), "%.0f MiB/s", o);
		snprintf(y, sizeof(y), "openssl dgst %.0f MiB/s", b);
		snprintf(ratio, sizeof(ratio), "%.2fx", o / b);
		add_row("SHA-256 of 1 GiB: bsi_digest_fd (EVP)", x, y, ratio, ">= 0.9x openssl",
			o / b >= 0.9);
		snprintf(x, sizeof(x), "%.0f MiB/s", s);
		snprintf(ratio, sizeof(ratio), "%.2fx", s / b);
		add_row("  libsodium crypto_hash_sha256 (reference)", x, y, ratio, "", -1);
	}
	unlink(path);
}

/* ---- 3. plan over 1,000 improvements, 1 GiB of targets ---------------- */

static long rss_plan;

static void bench_plan(void)
{
	enum { NIMP = 1000, NRECIPES = 10, NPAYLOADS = 10 };
	const long fsize = MIB; /* 1,000 x 1 MiB = 1 GiB of target files */
	char dir[4200], feed[4300], image[4300], path[4400], to[NPAYLOADS][BSI_DIGEST_STRLEN + 1];
	char from[BSI_DIGEST_STRLEN + 1], b1[32], b2[32], *pub, *cmd, *out, *intro;
	double first[8] = {0}, second[8] = {0};
	int nr = 3;

	note("plan: %d improvements in %d recipe files over %d MiB of target files", NIMP,
	     NRECIPES, (int)(NIMP * fsize / MIB));
	snprintf(dir, sizeof(dir), "%s/plan", work);
	snprintf(feed, sizeof(feed), "%s/feed", dir);
	snprintf(image, sizeof(image), "%s/image", dir);
	sh("mkdir -p '%s/.bsi' '%s/recipes' '%s/payloads' '%s/usr/lib/plan'", feed, feed, feed,
	   image);
	sh("ssh-keygen -q -t ed25519 -N '' -C bench@example.org -f '%s/key'", dir);
	snprintf(path, sizeof(path), "%s/key.pub", dir);
	pub = read_text(path);
	pub[strcspn(pub, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s/.bsi/signers", feed);
	{
		char *s = fmt_str("bench@example.org namespaces=\"git\" %s\n", pub);

		write_text(path, s);
		free(s);
	}
	bsi_digest_buf("the vulnerable version", 22, from);
	/* The payloads: a few distinct 1 MiB files.  Every target file is its
	 * own inode (its own hash-cache entry), with the content of one. */
	for (int p = 0; p < NPAYLOADS; p++) {
		snprintf(path, sizeof(path), "%s/payloads/p%d", feed, p);
		write_random(path, fsize, 1000 + (uint64_t)p);
		digest_of_path(path, to[p]);
	}
	for (int k = 0; k < NRECIPES; k++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/recipes/r%02d.lua", feed, k);
		if (!(f = fopen(path, "w")))
			die("write %s", path);
		fprintf(f, "return {\n  component = \"r%02d\",\n  improvements = {\n", k);
		for (int j = 0; j < NIMP / NRECIPES; j++) {
			int i = k * (NIMP / NRECIPES) + j, p = i % NPAYLOADS;

			fprintf(f,
				"    {\n      id = \"bench-%04d\",\n      summary = \"bench %d\",\n"
				"      fixes = { \"CVE-2026-%05d\" },\n      severity = \"high\",\n"
				"      apply = function(change)\n"
				"        change:replace(\"usr/lib/plan/f%04d\", {\n"
				"          from = \"%s\",\n          to = \"%s\",\n"
				"          payload = \"payloads/p%d\",\n        })\n"
				"      end,\n    },\n",
				i, i, i, i, from, to[p], p);
		}
		fprintf(f, "  },\n}\n");
		fclose(f);
	}
	/* the device already has every improvement: nothing to do */
	for (int i = 0; i < NIMP; i++) {
		snprintf(path, sizeof(path), "%s/usr/lib/plan/f%04d", image, i);
		write_random(path, fsize, 1000 + (uint64_t)(i % NPAYLOADS));
	}
	sh("cd '%s' && git init -q -b main && git config user.name Bench && "
	   "git config user.email bench@example.org && git config gpg.format ssh && "
	   "git config user.signingKey '%s/key' && git add -A && git commit -q -S -m bench",
	   feed, dir);
	out = fmt_str("%s/head.out", dir);
	run_sh_to(NULL, out, false, false, fmt_str("git -C '%s' rev-parse HEAD", feed));
	intro = read_text(out);
	intro[strcspn(intro, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s/state0", dir);
	cmd = bsi_cmd(image, path, "");
	sh("%s enroll '%s' --introduction %s --signer '%s' && %s sync", cmd, feed, intro, pub, cmd);
	free(cmd);

	note("plan: %d runs of (fresh copy of the synced state, bsi plan, bsi plan)", nr);
	for (int i = 0; i < nr; i++) {
		char *state = fmt_str("%s/state-%d", dir, i), *c;
		measure m;

		sh("rm -rf '%s' && cp -a '%s/state0' '%s'", state, dir, state);
		c = bsi_cmd(image, state, "plan");
		run_sh_to(&m, out, false, true, c);
		first[i] = m.secs;
		if (m.maxrss > rss_plan)
			rss_plan = m.maxrss;
		{
			char *o = read_text(out);

			if (!strstr(o, "1000 improvements: 0 pending, 1000 applied"))
				die("plan did not find all 1000 improvements applied:\n%s",
				    o + (strlen(o) > 200 ? strlen(o) - 200 : 0));
			free(o);
		}
		run_sh_to(&m, out, false, false, c);
		second[i] = m.secs;
		free(c);
		sh("rm -rf '%s'", state);
		free(state);
	}
	{
		double a = median(first, nr), b = median(second, nr);
		char x[32], y[48], ratio[16];

		snprintf(x, sizeof(x), "%s", human_time(b1, b));
		snprintf(y, sizeof(y), "first run %s", human_time(b2, a));
		snprintf(ratio, sizeof(ratio), "%.1fx", a / b);
		add_row("plan, 1000 improvements / 1 GiB, 2nd run", x, y, ratio,
			">= 20x faster", a / b >= 20);
	}
	free(out);
	free(intro);
	free(pub);
	if (!keep())
		sh("rm -rf '%s'", dir);
}

/* ---- 2. apply one 256 MiB payload ------------------------------------ */

static long rss_apply, rss_cp, rss_feed_sync, rss_feed_plan, rss_feed_apply;
static double feed_sync_secs, feed_apply_secs;

/*
 * The same payload through the device path, once (it is slow, and what it
 * adds is peak memory): the feed tree becomes a signed git feed, a fresh
 * device enrolls, syncs, plans and applies.
 */
static void apply_via_feed(const char *dir, const char *feed, const char *image, const char *old)
{
	char *state = fmt_str("%s/feed-state", dir), *c = bsi_cmd(image, state, ""), *out, *head, *pub;
	measure m;

	note("apply: the same payload through a signed feed: enroll, sync, plan, apply (1 run)");
	sh("ssh-keygen -q -t ed25519 -N '' -C bench@example.org -f '%s/key'", dir);
	out = fmt_str("%s/key.pub", dir);
	pub = read_text(out);
	pub[strcspn(pub, "\n")] = '\0';
	free(out);
	out = fmt_str("%s/.bsi/signers", feed);
	{
		char *t = fmt_str("bench@example.org namespaces=\"git\" %s\n", pub);

		write_text(out, t);
		free(t);
	}
	free(out);
	sh("cd '%s' && git init -q -b main && git config user.name Bench && "
	   "git config user.email bench@example.org && git config gpg.format ssh && "
	   "git config user.signingKey '%s/key' && git add -A && git commit -q -S -m big",
	   feed, dir);
	out = fmt_str("%s/head.out", dir);
	run_sh_to(NULL, out, false, false, fmt_str("git -C '%s' rev-parse HEAD", feed));
	head = read_text(out);
	head[strcspn(head, "\n")] = '\0';
	sh("cp '%s' '%s/usr/lib/big' && rm -rf '%s' && sync", old, image, state);
	sh("%s enroll '%s' --introduction %s --signer '%s'", c, feed, head, pub);
	m = timed_rss("%s sync", c);
	rss_feed_sync = m.maxrss;
	feed_sync_secs = m.secs;
	m = timed_rss("%s plan", c);
	rss_feed_plan = m.maxrss;
	m = timed_rss("%s apply", c);
	rss_feed_apply = m.maxrss;
	feed_apply_secs = m.secs;
	free(out);
	free(head);
	free(pub);
	free(c);
	free(state);
}

static void bench_apply(void)
{
	const long size = 256 * MIB;
	char dir[4200], feed[4300], image[4300], path[4400], old[4300], from[BSI_DIGEST_STRLEN + 1];
	char to[BSI_DIGEST_STRLEN + 1], b1[32], b2[32], *base;
	double ours[16] = {0}, theirs[16] = {0}, ocpu[16] = {0}, tcpu[16] = {0};
	int nr = runs;

	note("apply: a 256 MiB payload, %d runs each of bsi apply --tree and cp+sync+mv", nr);
	snprintf(dir, sizeof(dir), "%s/apply", work);
	snprintf(feed, sizeof(feed), "%s/feed", dir);
	snprintf(image, sizeof(image), "%s/image", dir);
	snprintf(old, sizeof(old), "%s/old", dir);
	sh("mkdir -p '%s/.bsi' '%s/recipes' '%s/payloads' '%s/usr/lib'", feed, feed, feed, image);
	snprintf(path, sizeof(path), "%s/payloads/big", feed);
	write_random(path, size, 7);
	digest_of_path(path, to);
	write_random(old, size, 8);
	digest_of_path(old, from);
	snprintf(path, sizeof(path), "%s/recipes/big.lua", feed);
	{
		char *r = fmt_str("return {\n  component = \"big\",\n  improvements = {\n    {\n"
				  "      id = \"big-1\",\n      summary = \"a 256 MiB framework\",\n"
				  "      fixes = { \"CVE-2026-10001\" },\n      severity = \"critical\",\n"
				  "      apply = function(change)\n"
				  "        change:replace(\"usr/lib/big\", {\n"
				  "          from = \"%s\",\n          to = \"%s\",\n"
				  "          payload = \"payloads/big\",\n        })\n"
				  "      end,\n    },\n  },\n}\n",
				  from, to);

		write_text(path, r);
		free(r);
	}
	base = fmt_str("cp '%s/payloads/big' '%s/usr/lib/.big.tmp' && sync '%s/usr/lib/.big.tmp' && "
		       "mv '%s/usr/lib/.big.tmp' '%s/usr/lib/big' && sync '%s/usr/lib'",
		       feed, image, image, image, image, image);
	for (int i = 0; i < nr; i++) {
		char *state = fmt_str("%s/state-%d", dir, i);
		char *c = bsi_cmd(image, state, "apply --tree");
		measure m;

		/* a fresh device each time: the old file, an empty state */
		/* and nothing dirty left for either side's fsync to write */
		sh("cp '%s' '%s/usr/lib/big' && rm -rf '%s' && sync", old, image, state);
		m = timed_rss("%s '%s'", c, feed);
		ours[i] = m.secs;
		ocpu[i] = m.cpu;
		if (m.maxrss > rss_apply)
			rss_apply = m.maxrss;
		{
			char d[BSI_DIGEST_STRLEN + 1];

			snprintf(path, sizeof(path), "%s/usr/lib/big", image);
			digest_of_path(path, d);
			if (strcmp(d, to) != 0)
				die("bsi apply did not leave the payload in place");
		}
		sh("rm -rf '%s' && cp '%s' '%s/usr/lib/big' && sync", state, old, image);
		m = timed_rss("%s", base);
		theirs[i] = m.secs;
		tcpu[i] = m.cpu;
		if (m.maxrss > rss_cp)
			rss_cp = m.maxrss;
		free(c);
		free(state);
	}
	apply_via_feed(dir, feed, image, old);
	{
		double a = median(ours, nr), b = median(theirs, nr);
		char x[32], y[48], ratio[16];

		snprintf(x, sizeof(x), "%s", human_time(b1, a));
		snprintf(y, sizeof(y), "cp+sync+mv %s", human_time(b2, b));
		snprintf(ratio, sizeof(ratio), "%.2fx", a / b);
		add_row("apply 256 MiB payload (apply --tree)", x, y, ratio, "<= 1.3x", a / b <= 1.3);
		a = median(ocpu, nr);
		b = median(tcpu, nr);
		snprintf(x, sizeof(x), "%s", human_time(b1, a));
		snprintf(y, sizeof(y), "cp+sync+mv %s", human_time(b2, b));
		snprintf(ratio, sizeof(ratio), "%.2fx", a / b);
		add_row("  CPU time (user+sys)", x, y, ratio, "", -1);
		b = median(theirs, nr);
		snprintf(x, sizeof(x), "%s", human_time(b1, feed_apply_secs));
		snprintf(y, sizeof(y), "cp+sync+mv %s", human_time(b2, b));
		snprintf(ratio, sizeof(ratio), "%.2fx", feed_apply_secs / b);
		add_row("  same via the feed: bsi apply (1 run)", x, y, ratio, "<= 1.3x",
			feed_apply_secs / b <= 1.3);
		snprintf(x, sizeof(x), "%s", human_time(b1, feed_sync_secs));
		add_row("  its bsi sync (fetch 256 MiB, 1 run)", x, "-", "-", "", -1);
	}
	free(base);
	if (!keep())
		sh("rm -rf '%s'", dir);
}

static void memory_rows(void)
{
	char x[32], y[48];

	if (!rss_sync && !rss_plan && !rss_apply)
		return; /* BSI_BENCH_ONLY=hash */

	snprintf(x, sizeof(x), "%.1f MiB", (double)rss_sync / 1024);
	add_row("peak RSS: first bsi sync, 10,000 commits", x, "-", "-", "report", -1);
	snprintf(x, sizeof(x), "%.1f MiB", (double)rss_plan / 1024);
	add_row("peak RSS: bsi plan, 1000 improvements", x, "-", "-", "report", -1);
	snprintf(x, sizeof(x), "%.1f MiB", (double)rss_apply / 1024);
	snprintf(y, sizeof(y), "cp+sync+mv %.1f MiB", (double)rss_cp / 1024);
	add_row("peak RSS: bsi apply --tree, 256 MiB payload", x, y, "-", "report", -1);
	if (rss_feed_sync) {
		snprintf(x, sizeof(x), "%.1f MiB", (double)rss_feed_sync / 1024);
		add_row("peak RSS: bsi sync, feed with 256 MiB payload", x, "-", "-", "report", -1);
		snprintf(x, sizeof(x), "%.1f MiB", (double)rss_feed_plan / 1024);
		add_row("peak RSS: bsi plan, same", x, "-", "-", "report", -1);
		snprintf(x, sizeof(x), "%.1f MiB", (double)rss_feed_apply / 1024);
		add_row("peak RSS: bsi apply, same", x, y, "-", "report", -1);
	}
}

/* The data goes at exit, also when a case fails (its GiB with it). */
static void remove_work(void)
{
	char *cmd;

	if (keep()) {
		note("kept %s", work);
		return;
	}
	cmd = fmt_str("rm -rf '%s'", work);
	if (system(cmd) != 0)
		note("could not remove %s", work);
	free(cmd);
}

/* ---- 5. evaluating a large feed -------------------------------------- */

/* Evaluate the first nfiles generated recipe files of dir (each in its own
 * sandbox child, as a device does) and merge them; seconds it took. */
static double eval_feed(const char *dir, int nfiles, int per_file)
{
	bsi_recipe_feed_limits feed = {(size_t)nfiles, (size_t)nfiles * per_file,
				       (size_t)nfiles * per_file, 3600.0};
	bsi_changeset *cs = NULL;
	bsi_source *src = NULL;
	double t0 = now();

	if (bsi_source_open_dir(&src, dir) < 0 || bsi_changeset_new(&cs) < 0 ||
	    bsi_recipe_load_all(cs, src, NULL, NULL, &feed) < 0)
		die("evaluate %s: %s", dir, bsi_error_message());
	t0 = now() - t0;
	if (cs->count != (size_t)nfiles * per_file || cs->nerrors != 0)
		die("evaluate %s: %zu improvements, %zu errors", dir, cs->count, cs->nerrors);
	bsi_changeset_free(cs);
	bsi_source_free(src);
	return t0;
}

static void bench_feed(void)
{
	enum { NFILES = 150, PER_FILE = 1000, SMALL = 15 };
	char dir[4200], small[4200], path[4400];
	double big[3], base[3];

	note("feed: %d recipe files of %d improvements each, against the first %d of them",
	     NFILES, PER_FILE, SMALL);
	snprintf(dir, sizeof(dir), "%s/feed-eval/big", work);
	snprintf(small, sizeof(small), "%s/feed-eval/small", work);
	sh("mkdir -p '%s/recipes' '%s/recipes'", dir, small);
	for (int k = 0; k < NFILES; k++) {
		char *text = fmt_str("local list = {}\n"
				     "for i = 1, %d do list[i] = { id = 'g%03d-' .. i, summary = 's',\n"
				     "  fixes = {}, severity = 'low',\n"
				     "  apply = function(c) c:restart('s' .. i) end } end\n"
				     "return { component = 'g%03d', improvements = list }\n",
				     PER_FILE, k, k);

		snprintf(path, sizeof(path), "%s/recipes/g%03d.lua", dir, k);
		write_text(path, text);
		if (k < SMALL) {
			snprintf(path, sizeof(path), "%s/recipes/g%03d.lua", small, k);
			write_text(path, text);
		}
		free(text);
	}
	for (int i = 0; i < 3; i++) {
		base[i] = eval_feed(small, SMALL, PER_FILE);
		big[i] = eval_feed(dir, NFILES, PER_FILE);
	}
	{
		double a = median(big, 3), b = median(base, 3);
		char x[32], y[48], ratio[16], b1[32], b2[32];

		snprintf(x, sizeof(x), "%s", human_time(b1, a));
		snprintf(y, sizeof(y), "%d files: %s", SMALL, human_time(b2, b));
		snprintf(ratio, sizeof(ratio), "%.1fx", a / b);
		add_row("evaluate 150 recipe files x 1000 improvements", x, y, ratio,
			"<= 13x (linear)", a / b <= 13.0);
	}
	if (!keep())
		sh("rm -rf '%s/feed-eval'", work);
}

/* BSI_BENCH_ONLY=auth,plan runs only those cases (while working on one). */
static bool want(const char *name)
{
	const char *only = getenv("BSI_BENCH_ONLY");

	return !only || !*only || strstr(only, name) != NULL;
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	char conf[4200];
	double t0 = now();

	if (argc != 2)
		die("usage: bench BUILD_DIR");
	bsi_bin = fmt_str("%s/bsi", argv[1]);
	if (access(bsi_bin, X_OK) != 0)
		die("%s: %s", bsi_bin, strerror(errno));
	if (getenv("BSI_BENCH_RUNS") && atoi(getenv("BSI_BENCH_RUNS")) > 0)
		runs = atoi(getenv("BSI_BENCH_RUNS")) > 15 ? 15 : atoi(getenv("BSI_BENCH_RUNS"));
	if (sodium_init() < 0 || git_libgit2_init() < 0)
		die("cannot initialise libsodium or libgit2");
	snprintf(work, sizeof(work), "%s/bsi-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(work))
		die("mkdtemp: %s", strerror(errno));
	note("working in %s", work);
	atexit(remove_work);
	snprintf(conf, sizeof(conf), "%s/bsi.conf", work);
	write_text(conf, "service_manager = \"record\"\n");

	if (want("auth"))
		bench_auth();
	if (want("hash"))
		bench_hash();
	if (want("plan"))
		bench_plan();
	if (want("apply"))
		bench_apply();
	if (want("feed"))
		bench_feed();
	memory_rows();

	print_table();
	printf("\nMedians: %d runs (auth, hashing, apply), 3 runs (first sync, plan).  "
	       "%ld cores, total %.0f s.\n",
	       runs, sysconf(_SC_NPROCESSORS_ONLN), now() - t0);
	return 0;
}
