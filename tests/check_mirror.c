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
	return s;
}

int main(void)
{
	return tu_run_suite(mirror_suite());
}
