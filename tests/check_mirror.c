/*
 * A hostile server or mirror can never cut a device off.  Each test answers
 * one sync with a hostile answer, then has the genuine feed move on, and
 * asserts that the device syncs it (exit 0): the hostile answer was
 * refused or survived and left nothing a later sync depends on.
 *
 * The server is scripted here, on 127.0.0.1, because git cannot be made to
 * send these answers: per connection it reads the git:// request line and
 * then either hands the connection to the real `git upload-pack` over a
 * repository (the genuine feed, or one a test made hostile with real git),
 * or writes the hostile bytes itself (a pack with holes, endless refs,
 * endless progress text, an ERR line, silence).
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *dir, feed[4096], key[4096], image[4096], state[4096], conf[4096], g[16384];
static char served[4200], mode_path[4200], url[4200], intro[41];
static pid_t server_pid = -1;

#define ASSERT_HAS(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

/* ---- the scripted server ---- */

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			_exit(0); /* the client hung up */
		p += n;
		len -= (size_t)n;
	}
}

static void pkt(int fd, const char *data, size_t len)
{
	char head[5];

	snprintf(head, sizeof(head), "%04zx", len + 4);
	put(fd, head, 4);
	put(fd, data, len);
}

static void pkt_str(int fd, const char *s)
{
	pkt(fd, s, strlen(s));
}

/* One pkt-line into buf (NUL-terminated): its length, 0 for a flush, -1 at
 * the end of the connection. */
static int read_pkt(int fd, char *buf, size_t cap)
{
	char head[5] = {0};
	size_t got = 0, len;

	while (got < 4) {
		ssize_t n = read(fd, head + got, 4 - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	len = strtoul(head, NULL, 16);
	if (len == 0)
		return 0;
	if (len < 4 || len - 4 >= cap)
		return -1;
	len -= 4;
	for (got = 0; got < len;) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	buf[len] = '\0';
	return (int)len;
}

/* Read wants and haves until "done", answering NAK to each round of haves
 * (a server without multi_ack that finds nothing in common). */
static void negotiate(int c)
{
	char buf[1024];
	int flushes = 0, n;

	while ((n = read_pkt(c, buf, sizeof(buf))) >= 0) {
		if (n == 0 && flushes++ > 0)
			pkt_str(c, "NAK\n");
		if (n > 0 && strncmp(buf, "done", 4) == 0)
			break;
	}
	if (n < 0)
		_exit(0);
	pkt_str(c, "NAK\n");
}

static void advertise(int c, const char *head, const char *caps)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s HEAD%c%s\n", head, '\0', caps);

	pkt(c, line, (size_t)n);
	snprintf(line, sizeof(line), "%s refs/heads/main\n", head);
	pkt_str(c, line);
	put(c, "0000", 4);
}

static void serve_one(int c)
{
	char req[1024], mode[8192] = {0}, arg1[4200] = {0}, arg2[4200] = {0};
	FILE *f;

	if (read_pkt(c, req, sizeof(req)) < 0)
		_exit(0);
	if ((f = fopen(mode_path, "r")) == NULL)
		_exit(1);
	if (fscanf(f, "%63s %4199s %4199s", mode, arg1, arg2) < 1)
		_exit(1);
	fclose(f);
	if (strcmp(mode, "genuine") == 0) {
		/* what git daemon does: the rest is upload-pack's */
		dup2(c, 0);
		dup2(c, 1);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		execlp("git", "git", "upload-pack", "--strict", "--timeout=60", arg1, (char *)NULL);
		_exit(127);
	} else if (strcmp(mode, "pack") == 0) {
		/* announce arg1, send the pack in file arg2, whatever it holds */
		char buf[65536];
		int fd = open(arg2, O_RDONLY);
		ssize_t n;

		advertise(c, arg1, "ofs-delta");
		negotiate(c);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			put(c, buf, (size_t)n);
	} else if (strcmp(mode, "chatter") == 0) {
		/* "Counting objects" for ever: arg1 bytes every arg2 ms */
		size_t size = strtoul(arg1, NULL, 10);
		long ms = strtol(arg2, NULL, 10);
		char *msg = malloc(size + 1);

		advertise(c, "1111111111111111111111111111111111111111", "side-band-64k ofs-delta");
		negotiate(c);
		memset(msg, 'x', size + 1);
		msg[0] = 2; /* band 2: progress text */
		snprintf(msg + 1, size, "Counting objects\r");
		msg[18] = 'x';
		for (;;) {
			struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

			pkt(c, msg, size + 1);
			if (ms > 0)
				nanosleep(&ts, NULL);
		}
	} else if (strcmp(mode, "refs") == 0) {
		/* a list of refs that never ends */
		char line[128];

		snprintf(line, sizeof(line), "%040d HEAD%cofs-delta\n", 1, '\0');
		pkt(c, line, strlen("0000000000000000000000000000000000000001 HEAD") + 11);
		for (unsigned long i = 0;; i++) {
			snprintf(line, sizeof(line), "%040d refs/heads/branch-%lu\n", 1, i);
			pkt_str(c, line);
		}
	} else if (strcmp(mode, "chatterjunk") == 0) {
		/* progress text for arg1 ms, then a pack that is junk */
		long ms = strtol(arg1, NULL, 10), start = mono_ms();
		char msg[64];
		struct timespec ts = {0, 100 * 1000000};

		advertise(c, "1111111111111111111111111111111111111111", "side-band-64k ofs-delta");
		negotiate(c);
		msg[0] = 2;
		snprintf(msg + 1, sizeof(msg) - 1, "Counting objects\r");
		while (mono_ms() - start < ms) {
			pkt(c, msg, 18);
			nanosleep(&ts, NULL);
		}
		{
			/* band 1: a pack header (version 2, one object), then junk */
			static const char junk[33] = {1, 'P', 'A', 'C', 'K', 0, 0, 0, 2, 0, 0, 0, 1,
						      'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k',
						      'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k',
						      'j', 'u', 'n', 'k'};

			pkt(c, junk, sizeof(junk));
		}
		put(c, "0000", 4);
		sleep(600);
	} else if (strcmp(mode, "errfile") == 0) {
		/* one pkt-line, its bytes from file arg1 */
		char *text = tu_read(arg1);

		pkt(c, text, strlen(text));
	} else if (strcmp(mode, "err") == 0) {
		pkt_str(c, "ERR \x1b[2J\x1b]0;owned\x07 feed moved\r\n\xe2\x80\xae to evil.example\n");
	} else if (strcmp(mode, "silent") == 0) {
		sleep(600);
	}
	_exit(0);
}

/* Listen on 127.0.0.1 (a port of the kernel's choice); a process group of
 * its own, so teardown ends it and every connection it forked. */
static int server_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s, 16), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	server_pid = fork();
	ck_assert_int_ge(server_pid, 0);
	if (server_pid == 0) {
		char log[4200];
		int devnull = open("/dev/null", O_RDWR), logfd;

		/* gone with the test, even one that failed before teardown */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
			_exit(1);
		setpgid(0, 0);
		snprintf(log, sizeof(log), "%s/server.log", dir);
		logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(logfd, 2);
		signal(SIGCHLD, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		for (;;) {
			int c = accept(s, NULL, NULL);

			if (c < 0)
				continue;
			if (fork() == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				close(s);
				serve_one(c);
			}
			close(c);
		}
	}
	setpgid(server_pid, server_pid);
	close(s);
	return ntohs(sa.sin_port);
}

static void server_stop(void)
{
	if (server_pid > 0) {
		kill(-server_pid, SIGKILL);
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
	}
	server_pid = -1;
}

static void server_mode(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void server_mode(const char *fmt, ...)
{
	char text[9000];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	tu_write(mode_path, text);
}

/* ---- fixture ---- */

static void setup(void)
{
	char *pub;
	tu_result r;

	dir = tu_tmpdir();
	snprintf(feed, sizeof(feed), "%s/feed", dir);
	snprintf(key, sizeof(key), "%s/team_key", dir);
	snprintf(image, sizeof(image), "%s/device", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	snprintf(served, sizeof(served), "%s/served.git", dir);
	snprintf(mode_path, sizeof(mode_path), "%s/server-mode", dir);
	tu_signed_feed(feed, key, intro);
	tu_sample_image("current", image);
	tu_write(conf, "service_manager = \"record\"\n");
	snprintf(g, sizeof(g), "--root '%s' --state '%s' --config '%s'", image, state, conf);
	tu_must("git clone -q --bare '%s' '%s'", feed, served);
	server_mode("genuine %s", served);
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/feed.git", server_start());
	pub = tu_pubkey(key);
	ck_assert_msg(tu_bsi(&r, "%s enroll '%s' --introduction %s --signer '%s'", g, url, intro,
			     pub) == 0,
		      "enroll: %s", r.err);
	tu_result_free(&r);
	free(pub);
	if (tu_bsi(&r, "%s sync", g) != 0) {
		char log[4200], *text;

		snprintf(log, sizeof(log), "%s/server.log", dir);
		text = tu_read(log);
		ck_abort_msg("first sync: %s\nserver: %s", r.err, text ? text : "");
	}
	tu_result_free(&r);
}

static void teardown(void)
{
	server_stop();
	tu_cleanup();
}

static void rev_of(char out[41], const char *repo, const char *rev)
{
	tu_result r;

	ck_assert_int_eq(tu_sh(&r, "git -C '%s' rev-parse '%s'", repo, rev), 0);
	snprintf(out, 41, "%.40s", r.out);
	tu_result_free(&r);
}

static char *trusted_head(void)
{
	json_error_t jerr;
	json_t *doc;
	tu_result r;
	char *head;

	ck_assert_int_eq(tu_bsi(&r, "%s status --json", g), 0);
	doc = json_loads(r.out, 0, &jerr);
	ck_assert_msg(doc != NULL, "not JSON: %s", r.out);
	head = strdup(json_string_value(json_object_get(json_object_get(doc, "feed"), "head")));
	json_decref(doc);
	tu_result_free(&r);
	return head;
}

/* The mirror keeps exactly one ref, naming the trusted head, and no fresh
 * mirror is left beside it. */
static void assert_mirror_clean(void)
{
	char *head = trusted_head(), want[128], fresh[4200];
	struct stat sb;
	tu_result r;

	ck_assert_int_eq(tu_sh(&r, "git -C '%s/feed.git' for-each-ref --format='%%(refname) "
				   "%%(objectname)'",
			       state),
			 0);
	snprintf(want, sizeof(want), "refs/bsi/head %s\n", head);
	ck_assert_str_eq(r.out, want);
	tu_result_free(&r);
	snprintf(fresh, sizeof(fresh), "%s/feed.git.fresh", state);
	ck_assert_int_ne(stat(fresh, &sb), 0);
	free(head);
}

/* The team moves on: a new signed commit, pushed to the served repository,
 * which the server serves honestly again.  The device must take it. */
static void genuine_moves_on_and_syncs(const char *why)
{
	char next[41], *head;
	tu_result r;

	tu_must("echo '%s' >> '%s/NOTES'", why, feed);
	tu_feed_commit(feed, key, why);
	rev_of(next, feed, "HEAD");
	tu_must("git -C '%s' push -q --force '%s' main", feed, served);
	server_mode("genuine %s", served);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "genuine sync after %s: exit %d: %s", why,
		      r.status, r.err);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, next);
	free(head);
	assert_mirror_clean();
}

/* Wall time and peak RSS (of the largest process waited for) of one run. */
static int timed_sync(tu_result *r, double *seconds)
{
	struct timespec a, b;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = tu_bsi(r, "%s sync", g);
	clock_gettime(CLOCK_MONOTONIC, &b);
	*seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	return rc;
}

static long peak_rss_mib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return ru.ru_maxrss / 1024;
}

/* ---- the attacks ---- */

/*
 * The server's branches never become the mirror's refs.  Here it serves
 * `main/x` (whose name clashed with an earlier `main` when every branch
 * was mirrored) holding an unsigned commit: refused, and nothing of it
 * stays named in the mirror.
 */
START_TEST(test_mirror_hostile_branches_leave_no_ref)
{
	char hostile[4200];
	tu_result r;

	snprintf(hostile, sizeof(hostile), "%s/hostile.git", dir);
	tu_must("git clone -q --bare '%s' '%s' && cd '%s' && "
		"c=$(git -c user.name=M -c user.email=m@x commit-tree -p main -m evil main^{tree}) && "
		"git update-ref refs/heads/main/x \"$c\" 2>/dev/null || "
		"{ git update-ref -d refs/heads/main && git update-ref refs/heads/main/x \"$c\"; } && "
		"git symbolic-ref HEAD refs/heads/main/x && "
		"for i in 1 2 3; do git update-ref refs/heads/junk$i \"$c\"; done",
		feed, hostile, hostile);
	server_mode("genuine %s", hostile);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 3);
	ASSERT_HAS(r.err, "not signed");
	tu_result_free(&r);
	assert_mirror_clean();
	genuine_moves_on_and_syncs("after hostile branches");
}
END_TEST

/* A pack of just the given objects of repo (one id per word). */
static void make_pack(const char *repo, const char *ids, const char *out)
{
	tu_must("printf '%%s\\n' %s | git -C '%s' pack-objects --stdout > '%s'", ids, repo, out);
}

/*
 * A head whose parent the server left out: the history is incomplete, a
 * failure of this sync (exit 1, naming what is missing), tried once more
 * from scratch; the genuine feed then syncs.
 */
START_TEST(test_mirror_missing_parent_is_survived)
{
	char work[4200], pack[4200], a[41], b[41], tree[41];
	tu_result r;

	snprintf(work, sizeof(work), "%s/work", dir);
	snprintf(pack, sizeof(pack), "%s/hole.pack", dir);
	tu_must("git clone -q '%s' '%s' && cd '%s' && echo a > A && git add A && "
		"git -c user.name=M -c user.email=m@x commit -q -m a && echo b > B && git add B && "
		"git -c user.name=M -c user.email=m@x commit -q -m b",
		feed, work, work);
	rev_of(a, work, "HEAD^");
	rev_of(b, work, "HEAD");
	rev_of(tree, work, "HEAD^{tree}");
	/* b, its tree, subtrees and blobs; not its parent a */
	tu_must("cd '%s' && git ls-tree -rt %s | awk '{print $3}' > ../objs && echo %s >> ../objs",
		work, b, tree);
	tu_must("cd '%s' && (echo %s; cat ../objs) | sort -u | git pack-objects --stdout > '%s'",
		work, b, pack);
	server_mode("pack %s %s", b, pack);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 1);
	ASSERT_HAS(r.err, "incomplete");
	ASSERT_HAS(r.err, a);
	ASSERT_HAS(r.err, "again from scratch");
	tu_result_free(&r);
	assert_mirror_clean();
	genuine_moves_on_and_syncs("after a missing parent");
}
END_TEST

/*
 * The server announces the team's real next commit and withholds its tree.
 * Before, the commit stayed in the mirror, was never sent again, and the
 * genuine feed read as forged (exit 3) for ever.  Now: exit 1, "incomplete";
 * and when the genuine server then serves that same commit, the device
 * rebuilds its mirror from scratch and accepts it.
 */
START_TEST(test_mirror_withheld_tree_is_rebuilt)
{
	char pack[4200], next[41], *head;
	tu_result r;

	snprintf(pack, sizeof(pack), "%s/commit-only.pack", dir);
	tu_must("echo 'withheld' > '%s/NEW' && mkdir -p '%s/payloads/extra' && "
		"echo data > '%s/payloads/extra/blob'",
		feed, feed, feed);
	tu_feed_commit(feed, key, "next");
	rev_of(next, feed, "HEAD");
	make_pack(feed, next, pack);
	server_mode("pack %s %s", next, pack);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 1);
	ASSERT_HAS(r.err, "incomplete");
	ASSERT_HAS(r.err, next);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, intro);
	free(head);
	assert_mirror_clean();
	/* the genuine server serves the very commit the mirror holds a hollow
	 * copy of */
	tu_must("git -C '%s' push -q --force '%s' main", feed, served);
	server_mode("genuine %s", served);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "genuine sync: %s", r.err);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, next);
	free(head);
	assert_mirror_clean();
	/* and the mirror serves plan with the payload it now holds */
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 0);
	tu_result_free(&r);
	genuine_moves_on_and_syncs("after a withheld tree");
}
END_TEST

/* Progress text that never ends cannot hold a sync (or the state lock)
 * past fetch_deadline. */
START_TEST(test_mirror_endless_progress_meets_the_deadline)
{
	double secs;
	tu_result r;

	tu_write(conf, "service_manager = \"record\"\nfetch_deadline = 3\nfetch_timeout = 60\n");
	server_mode("chatter 40 200");
	ck_assert_int_eq(timed_sync(&r, &secs), 1);
	ASSERT_HAS(r.err, "fetch_deadline");
	tu_result_free(&r);
	ck_assert_msg(secs < 30, "the deadline held the sync for %.1f s", secs);
	printf("hostile: endless progress text: sync ended after %.1f s (fetch_deadline 3 s), "
	       "peak RSS %ld MiB\n", secs, peak_rss_mib());
	assert_mirror_clean();
	genuine_moves_on_and_syncs("after endless progress");
}
END_TEST

/* Progress text counts against fetch_max_mib like the pack does. */
START_TEST(test_mirror_progress_text_counts_against_the_cap)
{
	double secs;
	tu_result r;

	tu_write(conf, "service_manager = \"record\"\nfetch_max_mib = 2\n");
	server_mode("chatter 60000 0");
	ck_assert_int_eq(timed_sync(&r, &secs), 1);
	ASSERT_HAS(r.err, "more than the allowed download (fetch_max_mib)");
	tu_result_free(&r);
	printf("hostile: fast progress text: refused after %.2f s (fetch_max_mib 2), peak RSS "
	       "%ld MiB\n", secs, peak_rss_mib());
	genuine_moves_on_and_syncs("after fast progress text");
}
END_TEST

/* A list of refs that never ends: libgit2 would hold it all in memory
 * (2.2 GiB at the default fetch_max_mib), so what comes before the pack
 * has a cap of its own. */
START_TEST(test_mirror_endless_refs_meet_a_cap_of_their_own)
{
	double secs;
	tu_result r;

	server_mode("refs");
	ck_assert_int_eq(timed_sync(&r, &secs), 1);
	ASSERT_HAS(r.err, "more than 4 MiB before any pack");
	tu_result_free(&r);
	ck_assert_int_lt(peak_rss_mib(), 500); /* valgrind included; 2200 before */
	printf("hostile: endless ref list: refused after %.2f s (default fetch_max_mib), peak RSS "
	       "%ld MiB\n", secs, peak_rss_mib());
	genuine_moves_on_and_syncs("after endless refs");
}
END_TEST

/* A commit over the size cap is refused by its header, unread. */
START_TEST(test_mirror_huge_commit_refused_unread)
{
	char hostile[4200];
	double secs;
	tu_result r;

	snprintf(hostile, sizeof(hostile), "%s/hostile.git", dir);
	tu_must("git clone -q --bare '%s' '%s' && cd '%s' && "
		"head -c 3000000 /dev/zero | tr '\\0' x > ../msg && "
		"c=$(git -c user.name=M -c user.email=m@x commit-tree -p main -F ../msg main^{tree}) && "
		"git update-ref refs/heads/main \"$c\"",
		feed, hostile, hostile);
	server_mode("genuine %s", hostile);
	ck_assert_int_eq(timed_sync(&r, &secs), 3);
	ASSERT_HAS(r.err, "refused unread");
	tu_result_free(&r);
	printf("hostile: a 3 MB commit: refused after %.2f s, peak RSS %ld MiB\n", secs,
	       peak_rss_mib());
	assert_mirror_clean();
	genuine_moves_on_and_syncs("after a huge commit");
}
END_TEST

/* More new commits than feed_max_new_commits: refused before any is
 * verified. */
START_TEST(test_mirror_too_many_commits_refused_before_verifying)
{
	char hostile[4200];
	double secs;
	tu_result r;

	tu_write(conf, "service_manager = \"record\"\nfeed_max_new_commits = 200\n");
	snprintf(hostile, sizeof(hostile), "%s/hostile.git", dir);
	tu_must("git clone -q --bare '%s' '%s' && cd '%s' && t=$(git rev-parse main^{tree}) && "
		"c=$(git rev-parse main) && for i in $(seq 1 300); do "
		"c=$(echo $i | git -c user.name=M -c user.email=m@x commit-tree -p $c $t); done && "
		"git update-ref refs/heads/main $c",
		feed, hostile, hostile);
	server_mode("genuine %s", hostile);
	ck_assert_int_eq(timed_sync(&r, &secs), 3);
	ASSERT_HAS(r.err, "more than 200 new commits (feed_max_new_commits)");
	tu_result_free(&r);
	printf("hostile: 300 unsigned commits: refused after %.2f s, peak RSS %ld MiB\n", secs,
	       peak_rss_mib());
	assert_mirror_clean();
	genuine_moves_on_and_syncs("after too many commits");
}
END_TEST

/* The server's ERR text reaches the admin cleaned of control characters,
 * on stderr and in status. */
START_TEST(test_mirror_server_error_text_is_cleaned)
{
	tu_result r;

	server_mode("err");
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 1);
	ASSERT_HAS(r.err, "feed moved");
	ck_assert_msg(strpbrk(r.err, "\x1b\x07\r") == NULL, "control characters in: %s", r.err);
	/* U+202E RIGHT-TO-LEFT OVERRIDE, as bytes */
	static const char rlo[] = {(char)0xe2, (char)0x80, (char)0xae, 0};

	ck_assert_msg(strstr(r.err, rlo) == NULL, "a bidi override in: %s", r.err);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 0);
	ck_assert_msg(strpbrk(r.out, "\x1b\x07\r") == NULL, "control characters in: %s", r.out);
	tu_result_free(&r);
	genuine_moves_on_and_syncs("after an ERR line");
}
END_TEST

/*
 * The device's own mirror is damaged: the trusted head's parent is gone.
 * The verdict on a server's head never rests on the damaged copy: the
 * closure walk trips over the hole, the fetch is done again into a fresh
 * mirror, and the verdict is taken there (an unrelated root: rewritten
 * history, exit 3).  The genuine next commit then syncs, the mirror
 * rebuilt from scratch.
 */
START_TEST(test_mirror_damaged_mirror_is_rebuilt)
{
	char hostile[4200], mirror[4200], c1[41], other[41];
	tu_result r;

	/* the device trusts c1, whose parent is the introduction */
	tu_must("echo one > '%s/NOTES'", feed);
	tu_feed_commit(feed, key, "one");
	rev_of(c1, feed, "HEAD");
	tu_must("git -C '%s' push -q '%s' main", feed, served);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	/* every object loose, then the introduction lost */
	snprintf(mirror, sizeof(mirror), "%s/feed.git", state);
	tu_must("cd '%s' && mkdir ../packs && mv objects/pack/* ../packs/ && "
		"for p in ../packs/*.pack; do git unpack-objects -q < \"$p\"; done && "
		"rm -rf ../packs && rm objects/%.2s/%s",
		mirror, intro, intro + 2);
	/* a server offers an unrelated root, signed by the team */
	snprintf(hostile, sizeof(hostile), "%s/other", dir);
	tu_must("git init -q -b main '%s' && cp -r '%s/.bsi' '%s/' && echo x > '%s/X'", hostile,
		feed, hostile, hostile);
	tu_feed_commit(hostile, key, "unrelated");
	rev_of(other, hostile, "HEAD");
	server_mode("genuine %s/.git", hostile);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 3);
	ASSERT_HAS(r.err, other);
	ASSERT_HAS(r.err, "rewritten history: the served history lacks it");
	tu_result_free(&r);
	assert_mirror_clean();
	genuine_moves_on_and_syncs("after damage to the mirror");
}
END_TEST

static pid_t child_of(pid_t parent)
{
	for (int tries = 0; tries < 100; tries++) {
		tu_result r;
		pid_t pid = 0;

		tu_sh(&r, "for p in /proc/[0-9]*; do "
			  "[ \"$(awk '{print $4}' $p/stat 2>/dev/null)\" = %d ] && basename $p; done",
		      (int)parent);
		pid = (pid_t)atoi(r.out);
		tu_result_free(&r);
		if (pid > 0)
			return pid;
		usleep(100 * 1000);
	}
	return -1;
}

static int gone(pid_t pid)
{
	char path[64], *stat;
	int dead;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	stat = tu_read(path);
	dead = stat == NULL || strstr(stat, ") Z ") != NULL;
	free(stat);
	return dead;
}

/* `bsi sync` killed alone (SIGKILL to it, not its group): its fetch child
 * dies with it, and the state lock is free for the next command. */
START_TEST(test_mirror_killed_sync_leaves_no_orphan_holding_the_lock)
{
	pid_t bsi, child;
	int i;

	server_mode("silent");
	bsi = fork();
	ck_assert_int_ge(bsi, 0);
	if (bsi == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(devnull, 1);
		dup2(devnull, 2);
		execl(tu_build_path("bsi"), "bsi", "--state", state, "--config", conf, "sync",
		      (char *)NULL);
		_exit(127);
	}
	child = child_of(bsi);
	ck_assert_msg(child > 0, "no fetch child appeared");
	/* it holds nothing of the state directory's: not the database, not
	 * the lock (the mirror it opens itself, by path) */
	{
		tu_result fds;

		usleep(300 * 1000);
		ck_assert_int_eq(tu_sh(&fds, "for f in /proc/%d/fd/*; do readlink \"$f\"; done | "
					    "grep -F '%s' | grep -v '/feed.git' || true",
				       (int)child, state),
				 0);
		ck_assert_msg(fds.out[0] == '\0', "the fetch child holds: %s", fds.out);
		tu_result_free(&fds);
	}
	kill(bsi, SIGKILL);
	waitpid(bsi, NULL, 0);
	for (i = 0; i < 50 && !gone(child); i++)
		usleep(100 * 1000);
	ck_assert_msg(gone(child), "the fetch child %d outlived its parent", (int)child);
	genuine_moves_on_and_syncs("after a killed sync");
}
END_TEST

/* A ca_file that does not exist is a configuration error (exit 2) when
 * the configuration loads, for any command. */
START_TEST(test_mirror_missing_ca_file_is_a_config_error)
{
	tu_result r;

	tu_write(conf, "service_manager = \"record\"\nca_file = \"/nonexistent/ca.pem\"\n");
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 2);
	ASSERT_HAS(r.err, "ca_file \"/nonexistent/ca.pem\": No such file or directory");
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 2);
	tu_result_free(&r);
	/* a directory, or a file the TLS library cannot load, is the same */
	tu_write(conf, "service_manager = \"record\"\nca_file = \"/\"\n");
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 2);
	ASSERT_HAS(r.err, "not a regular file");
	tu_result_free(&r);
	{
		char ca[4200], text[8400];

		snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
		tu_write(ca, "not a certificate\n");
		snprintf(text, sizeof(text), "service_manager = \"record\"\nca_file = \"%s\"\n", ca);
		tu_write(conf, text);
		ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 2);
		ASSERT_HAS(r.err, "ca_file");
		tu_result_free(&r);
		/* and a real bundle loads: the git:// feed syncs */
		tu_write(ca, TU_TEST_CA_PEM);
		ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "%s", r.err);
		tu_result_free(&r);
	}
}
END_TEST

/* ---- a red team's attacks (a helper with a fresh context, told only the
 * promises above) ---- */

static void team_next(char next[41], const char *why)
{
	static int n;
	long tag = (long)++n; /* one name for all three paths */

	tu_must("echo '%s' > '%s/NEW-%ld' && mkdir -p '%s/extra-%ld' && echo '%s' > "
		"'%s/extra-%ld/blob'",
		why, feed, tag, feed, tag, why, feed, tag);
	tu_feed_commit(feed, key, why);
	rev_of(next, feed, "HEAD");
}

/* One hostile answer: the team's real next commit, its tree withheld.  The
 * sync fails (exit 1) and the mirror keeps a hollow copy of the commit. */
static void serve_hollow_next(char next[41])
{
	char pack[4200];
	tu_result r;

	snprintf(pack, sizeof(pack), "%s/commit-only.pack", dir);
	team_next(next, "hollow");
	make_pack(feed, next, pack);
	server_mode("pack %s %s", next, pack);
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 1);
	ASSERT_HAS(r.err, "incomplete");
	tu_result_free(&r);
	/* the refused answer left nothing behind: not even the hollow commit */
	ck_assert_int_ne(tu_sh(&r, "git -C '%s/feed.git' cat-file -e %s", state, next), 0);
	tu_result_free(&r);
}

/* What an older version, or a mirror damaged by other means, may hold: the
 * team's next commit N without its tree, as a loose object no sync made.
 * The next genuine sync of N must rebuild the mirror. */
static void plant_hollow_next(char next[41])
{
	char pack[4200];

	snprintf(pack, sizeof(pack), "%s/commit-only.pack", dir);
	team_next(next, "hollow");
	make_pack(feed, next, pack);
	tu_must("git -C '%s/feed.git' unpack-objects -q < '%s'", state, pack);
}

/* The genuine server serves what the team has (feed's main). */
static void serve_genuine(void)
{
	tu_must("git -C '%s' push -q --force '%s' main", feed, served);
	server_mode("genuine %s", served);
}

/* One hollow answer, then the genuine server serving that very commit:
 * the device must sync it (exit 0) and keep a clean mirror. */
static void hollow_then_genuine_syncs(const char *what)
{
	char next[41], *head;
	tu_result r;

	serve_hollow_next(next);
	serve_genuine();
	tu_bsi(&r, "%s sync", g);
	ck_assert_msg(r.status == 0, "%s after one hollow answer: exit %d: %s", what, r.status,
		      r.err);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, next);
	free(head);
	assert_mirror_clean();
}

/* A sync run from a process of its own, so that its peak RSS (the largest
 * of bsi and its fetch child) is not mixed with the fixtures' git. */
typedef struct {
	int status;
	double secs;
	long rss_mib;
	char err[4096];
} measured;

static void measured_sync(measured *m)
{
	int p[2];
	pid_t pid;
	size_t got = 0;

	memset(m, 0, sizeof(*m));
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		measured x = {0};
		struct rusage ru;
		tu_result r;

		close(p[0]);
		x.status = timed_sync(&r, &x.secs);
		getrusage(RUSAGE_CHILDREN, &ru);
		x.rss_mib = ru.ru_maxrss / 1024;
		snprintf(x.err, sizeof(x.err), "%s", r.err ? r.err : "");
		if (write(p[1], &x, sizeof(x)) != (ssize_t)sizeof(x))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	while (got < sizeof(*m)) {
		ssize_t n = read(p[0], (char *)m + got, sizeof(*m) - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	waitpid(pid, NULL, 0);
	ck_assert_int_eq(got, sizeof(*m));
}

static pid_t start_bsi_sync(const char *env_preload)
{
	pid_t bsi = fork();

	ck_assert_int_ge(bsi, 0);
	if (bsi == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(devnull, 1);
		dup2(devnull, 2);
		if (env_preload)
			setenv("LD_PRELOAD", env_preload, 1);
		execl(tu_build_path("bsi"), "bsi", "--root", image, "--state", state, "--config",
		      conf, "sync", (char *)NULL);
		_exit(127);
	}
	return bsi;
}

/* ---- promise 1: one hostile answer never prevents a later genuine sync ---- */

/*
 * A hollow commit makes the next genuine sync rebuild the mirror from
 * scratch; the rebuild walks the whole history (trusted head: none) and
 * counts every commit against feed_max_new_commits, a limit meant for the
 * commits one sync brings.  With a history longer than the limit, the
 * team's genuine next commit is refused (exit 3) after one hostile answer,
 * though without it the very same sync brings one commit.
 */
START_TEST(test_rt11_rebuild_counts_the_whole_history_against_max_new_commits)
{
	tu_write(conf, "service_manager = \"record\"\nfeed_max_new_commits = 3\n");
	genuine_moves_on_and_syncs("one");
	genuine_moves_on_and_syncs("two");
	genuine_moves_on_and_syncs("three");
	hollow_then_genuine_syncs("the team's next commit (one new commit)");
}
END_TEST

/*
 * The same rebuild downloads the whole history, counted against
 * fetch_max_mib, "the most one sync may download".  A device whose syncs
 * each bring far less than the cap is cut off by one hollow answer once the
 * feed as a whole outgrows the cap.
 */
START_TEST(test_rt11_rebuild_downloads_the_whole_history_against_fetch_max_mib)
{
	tu_result r;

	tu_must("head -c 3000000 /dev/urandom > '%s/BIG'", feed);
	tu_feed_commit(feed, key, "a big payload, long ago");
	serve_genuine();
	ck_assert_int_eq(tu_bsi(&r, "%s sync", g), 0);
	tu_result_free(&r);
	tu_write(conf, "service_manager = \"record\"\nfetch_max_mib = 2\n");
	genuine_moves_on_and_syncs("a small step, under the cap");
	hollow_then_genuine_syncs("the team's next (small) commit");
}
END_TEST

/* ---- promise 2: one ref, no feed.git.fresh, after every sync ---- */

/* A feed.git.fresh left behind (a sync killed while it rebuilt) must not
 * outlive the next sync. */
START_TEST(test_rt11_leftover_fresh_mirror_is_removed)
{
	tu_must("cp -a '%s/feed.git' '%s/feed.git.fresh'", state, state);
	genuine_moves_on_and_syncs("with a leftover feed.git.fresh");
}
END_TEST

/* bsi killed (SIGKILL) while it fetches into feed.git.fresh; the team
 * moves on; the next sync must leave no feed.git.fresh. */
START_TEST(test_rt11_kill_during_rebuild_leaves_no_fresh_mirror)
{
	char next[41], fresh[4200];
	struct stat sb;
	pid_t bsi;
	int i;

	tu_write(conf, "service_manager = \"record\"\nfetch_timeout = 30\n");
	plant_hollow_next(next);
	/* the genuine server serves N: the mirror's hollow N fails the closure
	 * check and bsi rebuilds in feed.git.fresh; it is killed there */
	serve_genuine();
	snprintf(fresh, sizeof(fresh), "%s/feed.git.fresh", state);
	bsi = start_bsi_sync(NULL);
	for (i = 0; i < 20000 && stat(fresh, &sb) != 0; i++)
		usleep(500);
	ck_assert_msg(stat(fresh, &sb) == 0, "no rebuild started");
	kill(bsi, SIGKILL);
	waitpid(bsi, NULL, 0);
	genuine_moves_on_and_syncs("after a sync killed while rebuilding");
}
END_TEST

/*
 * SIGKILL at the one moment between recording the new head (state.db) and
 * putting the rebuilt mirror in place (renameat2 RENAME_EXCHANGE), reached
 * exactly with a failpoint (the mirror is now put in place first).  The state then trusts N while feed.git
 * is the old mirror holding a hollow N.  The next sync of the same genuine
 * head must leave a mirror that serves plan.
 */
START_TEST(test_rt11_kill_between_record_and_exchange)
{
	char next[41], *head;
	tu_result r;

	plant_hollow_next(next);
	serve_genuine();
	tu_bsi_env(&r, "BSI_FAILPOINT=mirror.exchange", "%s sync", g);
	ck_assert_msg(r.status == 128 + SIGKILL, "the failpoint did not kill bsi: exit %d: %s",
		      r.status, r.err);
	tu_result_free(&r);
	head = trusted_head();
	printf("rt11: killed between record and exchange: state trusts %.12s (next %.12s)\n",
	       head, next);
	free(head);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "sync after the kill: exit %d: %s", r.status,
		      r.err);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, next);
	free(head);
	{
		char fresh[4200], plan_err[600];
		struct stat sb;
		int plan_rc, fresh_left;

		tu_bsi(&r, "%s plan", g);
		plan_rc = r.status;
		snprintf(plan_err, sizeof(plan_err), "%s", r.err);
		tu_result_free(&r);
		snprintf(fresh, sizeof(fresh), "%s/feed.git.fresh", state);
		fresh_left = stat(fresh, &sb) == 0;
		printf("rt11: after the kill, a sync of the same head exits 0; then plan exits %d "
		       "(%.200s), feed.git.fresh left: %d\n",
		       plan_rc, plan_err, fresh_left);
		/* does the team's next commit repair it? */
		{
			char n2[41];

			team_next(n2, "after the kill");
			serve_genuine();
			tu_bsi(&r, "%s sync", g);
			printf("rt11: then the team's next commit: sync exit %d: %.200s\n", r.status,
			       r.err);
			tu_result_free(&r);
			tu_bsi(&r, "%s plan", g);
			printf("rt11: then plan exit %d: %.200s\n", r.status, r.err);
			tu_result_free(&r);
		}
		ck_assert_msg(plan_rc == 0, "plan after a sync that exited 0: exit %d: %s", plan_rc,
			      plan_err);
		ck_assert_msg(!fresh_left, "feed.git.fresh left after a sync that exited 0");
	}
}
END_TEST

/* SIGKILL after the rebuilt mirror is in place, before the head is
 * recorded: the state still trusts the old head, which the new mirror
 * holds; the next sync records the new one and plan reads it. */
START_TEST(test_mirror_kill_after_adopting_before_recording)
{
	char next[41], *head;
	tu_result r;

	plant_hollow_next(next);
	serve_genuine();
	tu_bsi_env(&r, "BSI_FAILPOINT=feed.adopted", "%s sync", g);
	ck_assert_int_eq(r.status, 128 + SIGKILL);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, intro);
	free(head);
	/* the killed sync left its quarantine ref; the mirror serves plan */
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 0);
	tu_result_free(&r);
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "%s", r.err);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, next);
	free(head);
	ck_assert_int_eq(tu_bsi(&r, "%s plan", g), 0);
	tu_result_free(&r);
	assert_mirror_clean();
}
END_TEST

/* SIGKILL of bsi at many moments of a genuine sync (a 4 MB payload, so the
 * fetch takes a while); each time the next genuine sync exits 0 and leaves
 * the mirror clean. */
START_TEST(test_rt11_kill_at_any_moment_of_a_sync)
{
	static const int delays_ms[] = {1, 5, 15, 30, 60, 100, 150, 250, 400, 700};
	/* the moments are the plain binary's; under valgrind, where every
	 * recovery sync costs seconds, a few of them keep the suite bounded */
	size_t step = getenv("BSI_VALGRIND") ? 4 : 1;

	for (size_t i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i += step) {
		char why[64];
		pid_t bsi;

		tu_must("head -c 4000000 /dev/urandom > '%s/BIG%zu'", feed, i);
		tu_feed_commit(feed, key, "payload");
		serve_genuine();
		bsi = start_bsi_sync(NULL);
		usleep((useconds_t)delays_ms[i] * 1000);
		kill(bsi, SIGKILL);
		waitpid(bsi, NULL, 0);
		snprintf(why, sizeof(why), "after SIGKILL at %d ms", delays_ms[i]);
		genuine_moves_on_and_syncs(why);
	}
}
END_TEST

/* The same, with the kill during a rebuild after a hollow answer. */
START_TEST(test_rt11_kill_at_any_moment_of_a_rebuild)
{
	static const int delays_ms[] = {5, 20, 50, 100, 200, 400};
	size_t step = getenv("BSI_VALGRIND") ? 3 : 1; /* as above */

	for (size_t i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i += step) {
		char why[64], next[41];
		pid_t bsi;

		serve_hollow_next(next);
		serve_genuine();
		bsi = start_bsi_sync(NULL);
		usleep((useconds_t)delays_ms[i] * 1000);
		kill(bsi, SIGKILL);
		waitpid(bsi, NULL, 0);
		snprintf(why, sizeof(why), "after SIGKILL at %d ms of a rebuild", delays_ms[i]);
		genuine_moves_on_and_syncs(why);
	}
}
END_TEST

/* Stale lock files a killed sync can leave in the mirror. */
START_TEST(test_rt11_stale_locks_in_the_mirror)
{
	tu_must("cd '%s/feed.git' && mkdir -p refs/bsi && : > refs/bsi/head.lock && "
		": > refs/bsi/quarantine.lock && : > packed-refs.lock",
		state);
	genuine_moves_on_and_syncs("after stale lock files");
}
END_TEST

/* A quarantine ref and foreign refs left behind, naming a hollow commit. */
START_TEST(test_rt11_leftover_quarantine_naming_a_hollow_commit)
{
	char next[41];

	plant_hollow_next(next);
	tu_must("git -C '%s/feed.git' update-ref refs/bsi/quarantine %s && "
		"git -C '%s/feed.git' update-ref refs/heads/main %s",
		state, next, state, next);
	serve_genuine();
	genuine_moves_on_and_syncs("after a leftover quarantine naming a hollow commit");
}
END_TEST

/* ---- HEAD that is not a branch of commits ---- */

static void hostile_head(const char *what_sh)
{
	char hostile[4200];

	snprintf(hostile, sizeof(hostile), "%s/hostile.git", dir);
	tu_must("rm -rf '%s' && git clone -q --bare '%s' '%s' && cd '%s' && %s", hostile, served,
		hostile, hostile, what_sh);
	server_mode("genuine %s", hostile);
}

START_TEST(test_rt11_head_is_a_tag_of_the_next_genuine_commit)
{
	char next[41], cmd[8400], *head;
	tu_result r;

	team_next(next, "tagged");
	snprintf(cmd, sizeof(cmd),
		 "git fetch -q '%s' main:refs/heads/next && "
		 "t=$(printf 'object %s\\ntype commit\\ntag t\\ntagger M <m@x> 1 +0000\\n\\nx\\n' | "
		 "git hash-object -t tag -w --stdin) && echo $t > HEAD",
		 feed, next);
	hostile_head(cmd);
	tu_bsi(&r, "%s sync", g);
	printf("rt11: HEAD a tag of the next commit: exit %d: %.200s\n", r.status, r.err);
	ck_assert_int_ne(r.status, 0);
	tu_result_free(&r);
	assert_mirror_clean();
	serve_genuine();
	ck_assert_msg(tu_bsi(&r, "%s sync", g) == 0, "genuine: %s", r.err);
	tu_result_free(&r);
	head = trusted_head();
	ck_assert_str_eq(head, next);
	free(head);
	assert_mirror_clean();
}
END_TEST

START_TEST(test_rt11_head_is_a_tree_blob_or_nowhere)
{
	static const char *cmds[] = {
		"git rev-parse main^{tree} > ../h && cat ../h > HEAD",
		"git rev-parse main:.bsi/signers > ../h && cat ../h > HEAD",
		"git symbolic-ref HEAD refs/heads/nowhere",
		"echo 'ref: HEAD' > HEAD",
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char why[64];
		tu_result r;

		hostile_head(cmds[i]);
		tu_bsi(&r, "%s sync", g);
		printf("rt11: HEAD variant %zu: exit %d: %.200s\n", i, r.status, r.err);
		ck_assert_int_ne(r.status, 0);
		ck_assert_msg(r.status == 1 || r.status == 3, "exit %d", r.status);
		tu_result_free(&r);
		assert_mirror_clean();
		snprintf(why, sizeof(why), "after HEAD variant %zu", i);
		genuine_moves_on_and_syncs(why);
	}
}
END_TEST

/* ---- packs ---- */

START_TEST(test_rt11_junk_corrupt_truncated_thin_packs)
{
	char pack[4200], good[4200], next[41], x[41];
	tu_result r;

	snprintf(pack, sizeof(pack), "%s/bad.pack", dir);
	snprintf(good, sizeof(good), "%s/good.pack", dir);
	for (int v = 0; v < 5; v++) {
		char why[64];

		/* X: a commit the device never gets; N on top, a small change of
		 * a big text file, so N's blob is a delta against X's */
		tu_must("seq 1 200000 > '%s/TEXT%d'", feed, v);
		tu_feed_commit(feed, key, "x");
		rev_of(x, feed, "HEAD");
		tu_must("echo changed >> '%s/TEXT%d'", feed, v);
		tu_feed_commit(feed, key, "n");
		rev_of(next, feed, "HEAD");
		tu_must("printf '%%s\\n' %s ^%s | git -C '%s' pack-objects --revs --stdout %s > '%s'",
			next, v == 3 ? x : intro, feed, v == 3 ? "--thin" : "", good);
		switch (v) {
		case 0: /* junk */
			tu_must("head -c 100000 /dev/urandom > '%s'", pack);
			break;
		case 1: /* a flipped byte in the trailing checksum */
			tu_must("cp '%s' '%s' && s=$(stat -c %%s '%s') && printf '\\377' | "
				"dd of='%s' bs=1 seek=$((s-1)) conv=notrunc 2>/dev/null",
				good, pack, pack, pack);
			break;
		case 2: /* truncated */
			tu_must("s=$(stat -c %%s '%s') && head -c $((s/2)) '%s' > '%s'", good, good,
				pack);
			break;
		case 3: /* thin, against a base the device never had */
			tu_must("cp '%s' '%s'", good, pack);
			break;
		case 4: /* a flipped byte inside an object's compressed data */
			tu_must("cp '%s' '%s' && printf '\\377' | dd of='%s' bs=1 seek=200 "
				"conv=notrunc 2>/dev/null",
				good, pack, pack);
			break;
		}
		server_mode("pack %s %s", next, pack);
		tu_bsi(&r, "%s sync", g);
		printf("rt11: pack variant %d: exit %d: %.200s\n", v, r.status, r.err);
		ck_assert_int_eq(r.status, 1);
		tu_result_free(&r);
		assert_mirror_clean();
		snprintf(why, sizeof(why), "after pack variant %d", v);
		genuine_moves_on_and_syncs(why);
	}
}
END_TEST

/* ---- promise 3: every fetch ends; bounded memory ---- */

/*
 * fetch_deadline bounds "how long one fetch may take in all", and (bsi.conf.5)
 * "how long a server can keep bsi apply waiting".  The server talks for
 * most of the deadline, then sends a junk pack: a failure worth a rebuild,
 * so a second fetch gets the whole deadline again.
 */
START_TEST(test_rt11_rebuild_doubles_the_deadline)
{
	double secs, base;
	tu_result r;

	tu_write(conf, "service_manager = \"record\"\nfetch_deadline = 4\nfetch_timeout = 60\n");
	/* what a sync costs here besides the server's time (valgrind, a busy
	 * machine): one that the server ends at once */
	server_mode("err");
	ck_assert_int_eq(timed_sync(&r, &base), 1);
	tu_result_free(&r);
	server_mode("chatterjunk 3500");
	tu_bsi(&r, "%s sync", g);
	tu_result_free(&r);
	ck_assert_int_eq(timed_sync(&r, &secs), 1);
	printf("rt11: progress 3.5 s then a junk pack: sync held the lock %.1f s "
	       "(fetch_deadline 4 s; a sync the server ends at once: %.1f s): %.300s\n", secs,
	       base, r.err);
	tu_result_free(&r);
	/* two attempts of 3.5 s each would be 7 s */
	ck_assert_msg(secs < base + 4 + 1.5,
		      "one sync held the state lock %.1f s, fetch_deadline is 4 s (%.1f s of it "
		      "is the sync's own cost)",
		      secs, base);
	genuine_moves_on_and_syncs("after progress then junk");
}
END_TEST

/*
 * A tree of 20 million entries (the same entry, repeated) is 580 MB, and
 * zlib makes it about half a megabyte on the wire.  The fetch child only
 * streams it; the closure check in the parent, which has no memory bound,
 * reads and parses all of it before authentication refuses the unsigned
 * commit.  Asserted: the sync stays within the address space bsi grants
 * its fetch child for this fetch_max_mib (3 x cap + 512 MiB).
 */
START_TEST(test_rt11_tree_bomb_memory_of_the_parent)
{
	char hostile[4200];
	measured m;
	long limit = 3 * 4 + 512;
	tu_result r;

	tu_write(conf, "service_manager = \"record\"\nfetch_max_mib = 4\n");
	snprintf(hostile, sizeof(hostile), "%s/hostile.git", dir);
	tu_must("git clone -q --bare '%s' '%s' && cd '%s' && git hash-object -w /dev/null "
		">/dev/null && perl -e 'print((\"100644 a\\0\" . "
		"pack(\"H*\", \"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\")) x 20000000)' > ../bomb && "
		"t=$(git hash-object --literally -t tree -w ../bomb) && rm ../bomb && "
		"c=$(git -c user.name=M -c user.email=m@x commit-tree -p main -m bomb $t) && "
		"git update-ref refs/heads/main $c && git repack -q -a -d",
		served, hostile, hostile);
	tu_sh(&r, "du -sk '%s/objects/pack'", hostile);
	printf("rt11: tree bomb: served pack %ld KiB\n", atol(r.out));
	tu_result_free(&r);
	server_mode("genuine %s", hostile);
	measured_sync(&m);
	printf("rt11: tree bomb (580 MB tree, fetch_max_mib 4): exit %d after %.1f s, peak RSS "
	       "%ld MiB: %.200s\n",
	       m.status, m.secs, m.rss_mib, m.err);
	ck_assert_int_ne(m.status, 0);
	ck_assert_msg(m.rss_mib <= limit,
		      "a download under fetch_max_mib 4 made the sync peak at %ld MiB (fetch child "
		      "capped at %ld MiB)",
		      m.rss_mib, limit);
	tu_write(conf, "service_manager = \"record\"\n");
	genuine_moves_on_and_syncs("after a tree bomb");
}
END_TEST

/* The fetch child: only fds 0-3, the documented address space, gone with
 * its parent. */
START_TEST(test_rt11_fetch_child_descriptors_and_limits)
{
	char path[256], *limits;
	pid_t bsi, child;
	tu_result r;
	int i;

	tu_write(conf, "service_manager = \"record\"\nfetch_max_mib = 10\nfetch_timeout = 30\n");
	server_mode("silent");
	bsi = start_bsi_sync(NULL);
	child = child_of(bsi);
	ck_assert_msg(child > 0, "no fetch child appeared");
	usleep(300 * 1000);
	tu_sh(&r, "for f in /proc/%d/fd/*; do echo \"${f##*/} -> $(readlink $f)\"; done", (int)child);
	printf("rt11: fetch child fds:\n%s", r.out);
	ck_assert_msg(strstr(r.out, state) == NULL, "the fetch child holds a state file:\n%s", r.out);
	ck_assert_msg(strstr(r.out, "\n4 -> socket:") != NULL || strstr(r.out, "\n4 ") == NULL,
		      "fd 4 is not the server's socket:\n%s", r.out);
	ck_assert_msg(strstr(r.out, "\n5 ") == NULL, "more fds than 0-3 and the socket:\n%s", r.out);
	tu_result_free(&r);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)child);
	limits = tu_read(path);
	ck_assert_ptr_nonnull(limits);
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes: bsi sets no cap there */
	{
		char want[128];

		snprintf(want, sizeof(want), "%lu", (3UL * 10 + 512) << 20);
		ck_assert_msg(strstr(strstr(limits, "Max address space"), want) != NULL,
			      "address space of the fetch child: %s", limits);
	}
#endif
	free(limits);
	kill(bsi, SIGKILL);
	waitpid(bsi, NULL, 0);
	for (i = 0; i < 50 && !gone(child); i++)
		usleep(100 * 1000);
	ck_assert(gone(child));
	tu_write(conf, "service_manager = \"record\"\n");
	genuine_moves_on_and_syncs("after a look at the fetch child");
}
END_TEST

/* ---- promise 5: server text without control characters ---- */

START_TEST(test_rt11_err_text_with_c1_del_isolates_and_a_forged_result_line)
{
	char errfile[4200];
	tu_result r;

	snprintf(errfile, sizeof(errfile), "%s/err.txt", dir);
	tu_write(errfile, "ERR a\x7f b\xc2\x9b[31m c\xe2\x81\xa6 d\xe2\x80\xa8 e\x1b[2J f\tg\xff\xfe "
			  "h\nD1111111111111111111111111111111111111111\nT\n");
	server_mode("errfile %s", errfile);
	tu_bsi(&r, "%s sync", g);
	printf("rt11: ERR text: exit %d: %s", r.status, r.err);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strpbrk(r.err, "\x1b\x7f\r") == NULL, "control characters in: %s", r.err);
	ck_assert_msg(strstr(r.err, "\xc2\x9b") == NULL, "C1 CSI in: %s", r.err);
	/* U+2066 LEFT-TO-RIGHT ISOLATE, as bytes */
	static const char lri[] = {(char)0xe2, (char)0x81, (char)0xa6, 0};

	ck_assert_msg(strstr(r.err, lri) == NULL, "bidi isolate in: %s", r.err);
	ck_assert_msg(strstr(r.err, "\xe2\x80\xa8") == NULL, "line separator in: %s", r.err);
	ck_assert_msg(strstr(r.err, "\xff") == NULL, "invalid UTF-8 in: %s", r.err);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s status", g), 0);
	ck_assert_msg(strpbrk(r.out, "\x1b\x7f\r") == NULL, "control characters in: %s", r.out);
	ck_assert_msg(strstr(r.out, "\xc2\x9b") == NULL, "C1 CSI in: %s", r.out);
	tu_result_free(&r);
	ck_assert_int_eq(tu_bsi(&r, "%s status --json", g), 0);
	ck_assert_msg(strstr(r.out, "\\u001b") == NULL && strstr(r.out, "\\u009b") == NULL,
		      "control characters in: %s", r.out);
	tu_result_free(&r);
	genuine_moves_on_and_syncs("after an ERR with C1 and a forged result line");
}
END_TEST

static Suite *mirror_suite(void)
{
	Suite *s = suite_create("mirror");
	TCase *tc = tcase_create("hostile");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_mirror_hostile_branches_leave_no_ref);
	tcase_add_test(tc, test_mirror_missing_parent_is_survived);
	tcase_add_test(tc, test_mirror_withheld_tree_is_rebuilt);
	tcase_add_test(tc, test_mirror_endless_progress_meets_the_deadline);
	tcase_add_test(tc, test_mirror_progress_text_counts_against_the_cap);
	tcase_add_test(tc, test_mirror_endless_refs_meet_a_cap_of_their_own);
	tcase_add_test(tc, test_mirror_huge_commit_refused_unread);
	tcase_add_test(tc, test_mirror_too_many_commits_refused_before_verifying);
	tcase_add_test(tc, test_mirror_server_error_text_is_cleaned);
	tcase_add_test(tc, test_mirror_damaged_mirror_is_rebuilt);
	tcase_add_test(tc, test_mirror_killed_sync_leaves_no_orphan_holding_the_lock);
	tcase_add_test(tc, test_mirror_missing_ca_file_is_a_config_error);
	suite_add_tcase(s, tc);
	tc = tcase_create("redteam");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_rt11_rebuild_counts_the_whole_history_against_max_new_commits);
	tcase_add_test(tc, test_rt11_rebuild_downloads_the_whole_history_against_fetch_max_mib);
	tcase_add_test(tc, test_rt11_leftover_fresh_mirror_is_removed);
	tcase_add_test(tc, test_rt11_kill_during_rebuild_leaves_no_fresh_mirror);
	tcase_add_test(tc, test_rt11_kill_between_record_and_exchange);
	tcase_add_test(tc, test_mirror_kill_after_adopting_before_recording);
	tcase_add_test(tc, test_rt11_kill_at_any_moment_of_a_sync);
	tcase_add_test(tc, test_rt11_kill_at_any_moment_of_a_rebuild);
	tcase_add_test(tc, test_rt11_stale_locks_in_the_mirror);
	tcase_add_test(tc, test_rt11_leftover_quarantine_naming_a_hollow_commit);
	tcase_add_test(tc, test_rt11_head_is_a_tag_of_the_next_genuine_commit);
	tcase_add_test(tc, test_rt11_head_is_a_tree_blob_or_nowhere);
	tcase_add_test(tc, test_rt11_junk_corrupt_truncated_thin_packs);
	tcase_add_test(tc, test_rt11_rebuild_doubles_the_deadline);
	tcase_add_test(tc, test_rt11_tree_bomb_memory_of_the_parent);
	tcase_add_test(tc, test_rt11_fetch_child_descriptors_and_limits);
	tcase_add_test(tc, test_rt11_err_text_with_c1_del_isolates_and_a_forged_result_line);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return tu_run_suite(mirror_suite());
}
