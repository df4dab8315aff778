/* sandbox.c - forked, rlimited evaluation with a wall-clock kill; see sandbox.h. */
#include "sandbox.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define BSI_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BSI_SANITIZED 1
#endif
#endif
#ifndef BSI_SANITIZED
#define BSI_SANITIZED 0
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BSI_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef BSI_ON_VALGRIND
#define BSI_ON_VALGRIND() 0
#endif

/* Heap the child may use outside the recipe's own allocator (JSON, stdio,
 * digests, the resolver) on top of the Lua ceiling. */
#define CHILD_SLACK ((size_t)64 << 20)

void bsi_sandbox_format_size(char *buf, size_t cap, size_t bytes)
{
	if (bytes >= ((size_t)1 << 20) && bytes % ((size_t)1 << 20) == 0)
		snprintf(buf, cap, "%zu MiB", bytes >> 20);
	else if (bytes >= 1024 && bytes % 1024 == 0)
		snprintf(buf, cap, "%zu KiB", bytes >> 10);
	else
		snprintf(buf, cap, "%zu bytes", bytes);
}

static double now_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The RLIMIT_CPU backstop, in whole seconds: a margin above the budget so
 * the evaluator's own check (which knows the recipe line) trips first for
 * Lua code, and the rlimit only for C calls that never return. */
static rlim_t cpu_rlimit(double seconds)
{
	double s = ceil(seconds * 1.25 + 0.5);

	return s < 1 ? 1 : (rlim_t)s;
}

/* Virtual memory the child has mapped right now (it inherits the parent's). */
static size_t current_vm_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long pages = 0;

	if (!f)
		return 0;
	/* NOLINTNEXTLINE(cert-err34-c): the kernel's number; 0 on a mismatch is fine */
	if (fscanf(f, "%lu", &pages) != 1)
		pages = 0;
	fclose(f);
	return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Close every descriptor >= 3 that is not in keep (at most 16 entries). */
static void close_other_fds(const int *keep, size_t nkeep)
{
	int sorted[17] = {0};
	size_t n = 0;
	unsigned lo = 3;

	for (size_t i = 0; i < nkeep && n < 16; i++)
		if (keep[i] >= 3)
			sorted[n++] = keep[i];
	qsort(sorted, n, sizeof(sorted[0]), cmp_int);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)sorted[i] > lo)
			close_range(lo, (unsigned)sorted[i] - 1, 0);
		if ((unsigned)sorted[i] + 1 > lo)
			lo = (unsigned)sorted[i] + 1;
	}
	/* valgrind keeps its own descriptors above the soft limit it shows us */
	if (BSI_ON_VALGRIND()) {
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > lo)
			close_range(lo, (unsigned)rl.rlim_cur - 1, 0);
		return;
	}
	close_range(lo, ~0U, 0);
}

static void set_limit(int resource, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = {soft, hard};

	setrlimit(resource, &rl);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The child: confine, run fn, send {"result": doc} or
 * {"error": {"code", "message"}, "result": doc?}, and _exit without running
 * the parent's atexit handlers or flushing its stdio buffers.
 */
static void __attribute__((noreturn))
child_main(int wfd, pid_t parent, bsi_sandbox_fn fn, void *arg, const int *keep_fds,
	   size_t nkeep, const bsi_sandbox_limits *lim)
{
	int keep[17], devnull, rc;
	size_t n = 0;
	json_t *doc = NULL, *env;
	char *text;
	rlim_t cpu = cpu_rlimit(lim->cpu_seconds);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* The parent's signal handlers (cleanup, forwarding) must not run
	 * here: every signal gets its default action and none is blocked. */
	{
		sigset_t none;

		for (int sig = 1; sig < NSIG; sig++) {
			/* ASan's crash reports stay (they come from its handlers) */
			if (BSI_SANITIZED && (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE))
				continue;
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		}
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	signal(SIGPIPE, SIG_IGN);

	/* stdin/stdout go nowhere; stderr stays so sanitizer reports are seen. */
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		if (devnull > 2)
			close(devnull);
	}
	keep[n++] = wfd;
	for (size_t i = 0; i < nkeep && n < 16; i++)
		keep[n++] = keep_fds[i];
	close_other_fds(keep, n);

	set_limit(RLIMIT_CORE, 0, 0);
	/* No file writes; under valgrind its reports may go to a log file. */
	if (!BSI_ON_VALGRIND())
		set_limit(RLIMIT_FSIZE, 0, 0);
	/* SIGXCPU at the budget, SIGKILL a second later if it is ignored. */
	set_limit(RLIMIT_CPU, cpu, cpu + 1);
	/* ASan and valgrind reserve terabytes of address space; there the
	 * recipe allocator's ceiling is the memory limit. */
	if (!BSI_SANITIZED && !BSI_ON_VALGRIND()) {
		size_t as = current_vm_bytes() + lim->mem_limit + CHILD_SLACK;

		set_limit(RLIMIT_AS, (rlim_t)as, (rlim_t)as);
	}

	bsi_error_clear();
	rc = fn(&doc, arg);
	if (rc == 0 && !doc)
		rc = bsi_error_set(BSI_EFAIL, "evaluation produced no result");
	if (rc == 0)
		env = json_pack("{s:o}", "result", doc);
	else
		env = json_pack("{s:{s:i,s:s},s:o?}", "error", "code", rc, "message",
				bsi_error_message(), "result", doc);
	text = env ? json_dumps(env, JSON_COMPACT) : NULL;
	rc = text && write_all(wfd, text, strlen(text)) == 0 ? 0 : 125;
	/* freed although _exit follows, so valgrind's leak check of this
	 * child (make valgrind) sees a clean exit */
	free(text);
	json_decref(env);
	_exit(rc);
}

/* Wait for pid until deadline, then SIGKILL it; always reaps. */
static void reap(pid_t pid, double deadline, int *status, struct rusage *ru, bool *killed)
{
	for (;;) {
		pid_t r = wait4(pid, status, WNOHANG, ru);

		if (r == pid)
			return;
		if (r < 0 && errno != EINTR)
			return;
		if (now_monotonic() >= deadline && !*killed) {
			kill(pid, SIGKILL);
			*killed = true;
			while (wait4(pid, status, 0, ru) < 0 && errno == EINTR)
				;
			return;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

/* Read the child's output until EOF, the deadline or the size cap. */
static int read_output(int rfd, double deadline, char **out, size_t *out_len, bool *timed_out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	for (;;) {
		double left = deadline - now_monotonic();
		struct pollfd p = {rfd, POLLIN, 0};
		ssize_t n;
		int pr;

		if (left <= 0) {
			*timed_out = true;
			break;
		}
		pr = poll(&p, 1, (int)(left * 1000) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			free(buf);
			return bsi_error_set(BSI_EFAIL, "poll: %s", strerror(errno));
		}
		if (pr == 0)
			continue;
		if (len + 1 >= cap) {
			char *nb;

			if (cap > BSI_SANDBOX_MAX_OUTPUT)
				break; /* too much: the caller sees len > max */
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return bsi_error_set(BSI_EFAIL, "out of memory");
			}
			buf = nb;
			cap *= 2;
		}
		n = read(rfd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

/* Turn the child's envelope into (*out, return code). */
/*
 * Parse the child's envelope, exactly.  jansson 2.14 is not reliable when
 * an allocation fails while it parses: it may report no error at all, a
 * syntax error that is not there, or return a document with a part
 * silently missing.  So a document is accepted only when it prints back to
 * exactly the text the child sent (printed by the same library with the
 * same flags), and a parse that fails is tried once more before the
 * output is called malformed.  *oom tells an allocation failure seen on
 * the way.
 */
static json_t *load_exact(const char *text, size_t len, bool *oom)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, 0, &jerr);
	char *back;

	if (!doc) {
		if (json_error_code(&jerr) == json_error_out_of_memory ||
		    (json_error_code(&jerr) == json_error_unknown && !jerr.text[0]))
			*oom = true;
		return NULL;
	}
	back = json_dumps(doc, JSON_COMPACT);
	if (!back)
		*oom = true;
	if (!back || strlen(back) != len || memcmp(back, text, len) != 0) {
		json_decref(doc);
		doc = NULL;
	}
	free(back);
	return doc;
}

static int parse_envelope(json_t **out, const char *text, size_t len, const char *label)
{
	json_t *env = NULL, *err, *res;
	bool oom = false;
	int rc;

	for (int attempt = 0; attempt < 2 && !env; attempt++)
		env = load_exact(text, len, &oom);
	/* this process running out of memory is not the recipe's fault */
	if (!env && oom)
		return bsi_error_set(BSI_EFAIL, "%s: out of memory reading the evaluation's result",
				     label);
	if (!env || !json_is_object(env)) {
		json_decref(env);
		return bsi_error_set(BSI_ERECIPE, "%s: evaluation returned malformed output", label);
	}
	res = json_object_get(env, "result");
	err = json_object_get(env, "error");
	if (res)
		*out = json_incref(res);
	if (!err) {
		rc = res ? 0 : bsi_error_set(BSI_ERECIPE, "%s: evaluation returned no result", label);
	} else {
		json_t *code = json_object_get(err, "code");
		const char *msg = json_string_value(json_object_get(err, "message"));

		rc = json_is_integer(code) ? (int)json_integer_value(code) : BSI_ERECIPE;
		if (rc >= 0 || rc < BSI_EBUSY)
			rc = BSI_ERECIPE;
		bsi_error_set(rc, "%s", msg && *msg ? msg : "evaluation failed");
	}
	json_decref(env);
	return rc;
}

int bsi_sandbox_run(json_t **out, bsi_sandbox_fn fn, void *arg, const int *keep_fds,
		    size_t nkeep, const bsi_sandbox_limits *lim, const char *label)
{
	int fds[2] = {-1, -1}, status = 0, rc;
	pid_t pid, self = getpid();
	double deadline = now_monotonic() + lim->wall_seconds;
	bool timed_out = false, killed = false;
	struct rusage ru;
	char *text = NULL;
	size_t len = 0;

	*out = NULL;
	memset(&ru, 0, sizeof(ru));
	if (pipe2(fds, O_CLOEXEC) < 0)
		return bsi_error_set(BSI_EFAIL, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		rc = bsi_error_set(BSI_EFAIL, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	if (pid == 0) {
		close(fds[0]);
		child_main(fds[1], self, fn, arg, keep_fds, nkeep, lim);
	}
	close(fds[1]);

	rc = read_output(fds[0], deadline, &text, &len, &timed_out);
	close(fds[0]);
	if (timed_out || rc < 0 || len > BSI_SANDBOX_MAX_OUTPUT) {
		kill(pid, SIGKILL);
		killed = true;
	}
	reap(pid, deadline, &status, &ru, &killed);
	if (rc < 0)
		goto done;

	if (killed && !WIFEXITED(status) && (timed_out || len <= BSI_SANDBOX_MAX_OUTPUT)) {
		rc = bsi_error_set(BSI_ERECIPE, "%s: killed after %g s wall clock", label,
				   lim->wall_seconds);
	} else if (len > BSI_SANDBOX_MAX_OUTPUT) {
		char size[32];

		bsi_sandbox_format_size(size, sizeof(size), BSI_SANDBOX_MAX_OUTPUT);
		rc = bsi_error_set(BSI_ERECIPE, "%s: evaluation output exceeds %s", label, size);
	} else if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
			     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;

		if (sig == SIGXCPU || (sig == SIGKILL && cpu >= (double)cpu_rlimit(lim->cpu_seconds)))
			rc = bsi_error_set(BSI_ERECIPE, "%s: CPU budget of %g s exceeded", label,
					   lim->cpu_seconds);
		else
			rc = bsi_error_set(BSI_ERECIPE, "%s: evaluation crashed (signal %d, %s)",
					   label, sig, strsignal(sig));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		rc = bsi_error_set(BSI_ERECIPE, "%s: evaluation failed (exit status %d)", label,
				   WEXITSTATUS(status));
	} else {
		rc = parse_envelope(out, text, len, label);
	}

done:
	free(text);
	return rc;
}
