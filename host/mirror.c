#include "mirror.h"

#include "commitsig.h"
#include "error.h"
#include "failpoint.h"
#include "oidmap.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* The only refs a mirror keeps: the head this device trusts, and for the
 * length of one sync the server's head, until it is checked. */
#define REF_TRUSTED "refs/bsi/head"
#define REF_QUARANTINE "refs/bsi/quarantine"

/* What the fetch child writes to the parent: progress ticks, then one
 * result record: D<hex> or F<libgit2 error class> <message>. */
enum { MSG_TICK = 'T', MSG_DONE = 'D', MSG_FAIL = 'F' };

typedef struct {
	int fd;                  /* write end of the pipe */
	const bsi_mirror_limits *lim;
	size_t received;         /* bytes from the server, all of them */
	bool pack_started;       /* the indexer has seen pack data */
	time_t last_shown;
} fetch_ctx;

/* What a server may send before its pack: the list of refs (a feed has a
 * handful; libgit2 holds them all in memory, at about twice their size on
 * the wire) and any progress text. */
#define BEFORE_PACK_MAX ((size_t)4 << 20)

/* The fetch child's one fetch (a child process runs one). */
static fetch_ctx *child_ctx;

/*
 * libgit2 maps pack files in windows of up to 1 GiB and keeps up to 8 GiB
 * mapped; every page it touches stays resident.  Reading a 256 MiB payload
 * from the mirror thus cost the inflated copy plus the mapped pack: 524 MiB
 * of peak RSS for plan and apply.  8 MiB windows, 32 MiB mapped at most,
 * make it 307 MiB (docs/bench.md); commits and trees are small, and read
 * through the same windows, so authentication is not slowed.
 */
int bsi_mirror_init(void)
{
	static bool done;

	if (done)
		return BSI_OK;
	if (git_libgit2_init() < 0 || git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1) < 0 ||
	    git_libgit2_opts(GIT_OPT_SET_MWINDOW_SIZE, (size_t)8 << 20) < 0 ||
	    git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT, (size_t)32 << 20) < 0)
		return bsi_error_set(BSI_EFAIL, "cannot initialise libgit2");
	done = true;
	return BSI_OK;
}

int bsi_mirror_check_ca_file(const char *ca_file, const char *config_path)
{
	int rc = bsi_mirror_init();

	if (rc == BSI_OK && git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca_file, NULL) < 0)
		rc = bsi_error_set(BSI_EUSAGE, "%s: ca_file \"%s\": %s", config_path, ca_file,
				   git_error_last() ? git_error_last()->message
						    : "not a bundle of CA certificates");
	return rc;
}

static int remove_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return (type == FTW_DP ? rmdir(p) : unlink(p)) < 0 && errno != ENOENT ? -1 : 0;
}

/*
 * Create the mirror as a whole: initialise it under a temporary name, then
 * rename it into place.  A failure half-way through git_repository_init
 * (out of memory, a full disk, a kill) can leave a config.lock or a partial
 * repository behind, which every later sync would trip over; under the
 * temporary name it is removed by the next attempt instead.
 */
static int mirror_create(git_repository **out, const char *path)
{
	git_repository *repo = NULL;
	char tmp[4200];
	int rc = BSI_OK;

	*out = NULL;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
		return bsi_error_set(BSI_EFAIL, "feed mirror %s: path too long", path);
	if (nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return bsi_error_set(BSI_EFAIL, "feed mirror: remove %s: %s", tmp, strerror(errno));
	if (git_repository_init(&repo, tmp, 1) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "feed mirror %s: %s", path,
				   git_error_last() ? git_error_last()->message : "cannot create");
		goto done;
	}
	git_repository_free(repo);
	repo = NULL;
	if (rename(tmp, path) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "feed mirror: rename %s to %s: %s", tmp, path,
				   strerror(errno));
		goto done;
	}
	if (git_repository_open_bare(&repo, path) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "feed mirror %s: %s", path,
				   git_error_last() ? git_error_last()->message : "cannot open");
		goto done;
	}
	*out = repo;
	repo = NULL;
done:
	git_repository_free(repo);
	return rc;
}

int bsi_mirror_open(git_repository **out, const char *path)
{
	int rc = bsi_mirror_init();

	if (rc < 0)
		return rc;
	if (git_repository_open_bare(out, path) == 0)
		return BSI_OK;
	/* an existing mirror that does not open is never replaced here: the
	 * failure may be passing (memory, descriptors) */
	if (access(path, F_OK) == 0 || errno != ENOENT)
		return bsi_error_set(BSI_EFAIL, "feed mirror %s: %s", path,
				     git_error_last() ? git_error_last()->message : "cannot open");
	return mirror_create(out, path);
}

static const char *git_msg(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown error";
}

/*
 * Keep exactly one ref: REF_TRUSTED naming trusted (when given and
 * present), and delete every other, whatever made it (a quarantine left by
 * a killed sync, the refs/bsi/heads/ of older versions).  So the haves a
 * fetch offers a server are authenticated commits whose closure was
 * checked, never something a hostile server left behind.
 */
static int keep_only_trusted(git_repository *repo, const git_oid *trusted)
{
	git_reference_iterator *it = NULL;
	git_reference *ref;
	git_odb *odb = NULL;
	int rc = BSI_OK, err;

	if (git_reference_iterator_new(&it, repo) < 0)
		return bsi_error_set(BSI_EFAIL, "feed mirror: cannot list refs: %s", git_msg());
	while (rc == BSI_OK && (err = git_reference_next(&ref, it)) == 0) {
		if (!(trusted && strcmp(git_reference_name(ref), REF_TRUSTED) == 0) &&
		    git_reference_delete(ref) < 0)
			rc = bsi_error_set(BSI_EFAIL, "feed mirror: cannot delete %s: %s",
					   git_reference_name(ref), git_msg());
		git_reference_free(ref);
	}
	if (rc == BSI_OK && err != GIT_ITEROVER)
		rc = bsi_error_set(BSI_EFAIL, "feed mirror: cannot list refs: %s", git_msg());
	git_reference_iterator_free(it);
	if (rc == BSI_OK && trusted) {
		if (git_repository_odb(&odb, repo) < 0)
			rc = bsi_error_set(BSI_EFAIL, "feed mirror: %s", git_msg());
		else if (git_odb_exists(odb, trusted) &&
			 git_reference_create(&ref, repo, REF_TRUSTED, trusted, 1, "bsi") == 0)
			git_reference_free(ref);
		else if (git_odb_exists(odb, trusted))
			rc = bsi_error_set(BSI_EFAIL, "feed mirror: cannot write %s: %s",
					   REF_TRUSTED, git_msg());
		else
			git_reference_remove(repo, REF_TRUSTED);
	}
	git_odb_free(odb);
	return rc;
}

static void send_msg(int fd, char kind, const char *text)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%c%s\n", kind, text ? text : "");

	/* one record per line: a server's text cannot forge another */
	for (int i = 1; n > 1 && i < n - 1 && i < (int)sizeof(buf) - 1; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	if (n > 0 && write(fd, buf, (size_t)n > sizeof(buf) ? sizeof(buf) : (size_t)n) < 0)
		_exit(1);
}

static void send_failure(int fd, int klass, const char *text)
{
	char buf[1000];

	snprintf(buf, sizeof(buf), "%d %s", klass, text);
	send_msg(fd, MSG_FAIL, buf);
}

static int over_limit(fetch_ctx *ctx, size_t more)
{
	ctx->received += more;
	if (!ctx->pack_started && ctx->received > BEFORE_PACK_MAX) {
		git_error_set(GIT_ERROR_NET, "the server sent more than %zu MiB before any pack "
					     "(a list of refs, or progress text)",
			      BEFORE_PACK_MAX >> 20);
		return -1;
	}
	if (ctx->received <= ctx->lim->max_bytes)
		return 0;
	git_error_set_str(GIT_ERROR_NET, "the server sent more than the allowed download "
					 "(fetch_max_mib)");
	return -1;
}

/*
 * The fetch child's network connections (libgit2 uses this stream for
 * git:// and http://, and under its TLS for https://): a plain TCP socket
 * that counts every byte the server sends against max_bytes (the list of
 * refs, the pack, progress text alike) and reports each read as progress.
 */
typedef struct {
	git_stream parent;
	char *host, *port;
	int fd;
} counted_stream;

static int cs_connect(git_stream *stream)
{
	counted_stream *cs = (counted_stream *)stream;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	int err = getaddrinfo(cs->host, cs->port, &hints, &res);

	if (err != 0) {
		git_error_set(GIT_ERROR_NET, "cannot resolve %s: %s", cs->host, gai_strerror(err));
		return -1;
	}
	for (ai = res; ai && cs->fd < 0; ai = ai->ai_next) {
		cs->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (cs->fd >= 0 && connect(cs->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			err = errno;
			close(cs->fd);
			cs->fd = -1;
			errno = err;
		}
	}
	freeaddrinfo(res);
	if (cs->fd < 0) {
		git_error_set(GIT_ERROR_NET, "cannot connect to %s port %s: %s", cs->host, cs->port,
			      strerror(errno));
		return -1;
	}
	return 0;
}

static ssize_t cs_read(git_stream *stream, void *data, size_t len)
{
	counted_stream *cs = (counted_stream *)stream;
	ssize_t got;

	while ((got = recv(cs->fd, data, len, 0)) < 0 && errno == EINTR)
		;
	if (got < 0) {
		git_error_set(GIT_ERROR_NET, "read from %s: %s", cs->host, strerror(errno));
		return -1;
	}
	send_msg(child_ctx->fd, MSG_TICK, NULL);
	return over_limit(child_ctx, (size_t)got) < 0 ? -1 : got;
}

static ssize_t cs_write(git_stream *stream, const char *data, size_t len, int flags)
{
	counted_stream *cs = (counted_stream *)stream;
	size_t done = 0;

	(void)flags;
	while (done < len) {
		ssize_t put = send(cs->fd, data + done, len - done, MSG_NOSIGNAL);

		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0) {
			git_error_set(GIT_ERROR_NET, "write to %s: %s", cs->host, strerror(errno));
			return -1;
		}
		done += (size_t)put;
	}
	return (ssize_t)len;
}

static int cs_close(git_stream *stream)
{
	counted_stream *cs = (counted_stream *)stream;

	if (cs->fd >= 0)
		close(cs->fd);
	cs->fd = -1;
	return 0;
}

static void cs_free(git_stream *stream)
{
	counted_stream *cs = (counted_stream *)stream;

	cs_close(stream);
	free(cs->host);
	free(cs->port);
	free(cs);
}

static int cs_init(git_stream **out, const char *host, const char *port)
{
	counted_stream *cs = calloc(1, sizeof(*cs));

	if (!cs || !(cs->host = strdup(host)) || !(cs->port = strdup(port))) {
		if (cs)
			free(cs->host);
		free(cs);
		git_error_set_oom();
		return -1;
	}
	cs->fd = -1;
	cs->parent.version = GIT_STREAM_VERSION;
	cs->parent.connect = cs_connect;
	cs->parent.read = cs_read;
	cs->parent.write = cs_write;
	cs->parent.close = cs_close;
	cs->parent.free = cs_free;
	*out = &cs->parent;
	return 0;
}

static int on_progress(const git_indexer_progress *stats, void *payload)
{
	fetch_ctx *ctx = payload;
	time_t now = time(NULL);

	send_msg(ctx->fd, MSG_TICK, NULL);
	ctx->pack_started = true;
	/* a local transport reads no stream: count the pack here */
	if (stats->received_bytes > ctx->lim->max_bytes)
		return over_limit(ctx, stats->received_bytes);
	if (ctx->lim->progress && now != ctx->last_shown) {
		ctx->last_shown = now;
		fprintf(stderr, "\rbsi: receiving feed: %u/%u objects, %.1f MiB",
			stats->received_objects, stats->total_objects,
			(double)stats->received_bytes / (1 << 20));
	}
	return 0;
}

static int on_sideband(const char *str, int len, void *payload)
{
	fetch_ctx *ctx = payload;

	(void)str;
	(void)len;
	send_msg(ctx->fd, MSG_TICK, NULL);
	return 0;
}

/*
 * The child keeps nothing of its parent's it does not need: it dies with
 * the parent (PR_SET_PDEATHSIG; and if the parent is already gone), holds
 * only stdin, stdout, stderr and the pipe (not the state database nor the
 * state lock, which must never outlive the command that took it), cannot
 * gain privileges, and has a bounded address space: the pack is written to
 * disk as it arrives, but a server can make libgit2 hold what it sends in
 * memory (an endless list of refs), so memory is bounded in proportion to
 * the download cap.
 */
static void harden_child(int *fd, pid_t parent, const bsi_mirror_limits *lim)
{
	struct rlimit as;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(1);
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (*fd != 3) {
		if (dup2(*fd, 3) < 0)
			_exit(1);
		*fd = 3;
	}
	if (close_range(4, ~0U, 0) < 0)
		for (int i = 4; i < 1024; i++)
			close(i);
#ifndef UNDER_SANITIZER
	if (!RUNNING_ON_VALGRIND && lim->max_memory > 0) {
		as.rlim_cur = as.rlim_max = (rlim_t)lim->max_memory;
		(void)setrlimit(RLIMIT_AS, &as);
	}
#else
	(void)as;
	(void)lim;
#endif
}

/* The child: fetch the server's HEAD into the quarantine ref, then report
 * it.  Never returns.  Frees what it made before _exit, so a leak check of
 * this child (make valgrind) sees a clean exit. */
static void fetch_child(int fd, const char *path, const char *url, const bsi_mirror_limits *lim)
{
	static char *refspec = "+HEAD:" REF_QUARANTINE;
	git_strarray specs = {&refspec, 1};
	git_fetch_options opts;
	fetch_ctx ctx = {.fd = fd, .lim = lim};
	git_repository *repo = NULL;
	git_reference *ref = NULL;
	git_remote *remote = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int status = 1;

	git_stream_registration reg = {.version = GIT_STREAM_VERSION, .init = cs_init};

	child_ctx = &ctx;
	git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
	if (git_stream_register(GIT_STREAM_STANDARD, &reg) < 0)
		goto fail;
	if (lim->ca_file && git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, lim->ca_file, NULL) < 0)
		goto fail;
	if (bsi_mirror_open(&repo, path) < 0) {
		send_failure(fd, GIT_ERROR_REPOSITORY, bsi_error_message());
		goto done;
	}
	opts.callbacks.transfer_progress = on_progress;
	opts.callbacks.sideband_progress = on_sideband;
	opts.callbacks.payload = &ctx;
	opts.prune = GIT_FETCH_NO_PRUNE;
	opts.update_fetchhead = 0;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	if (git_remote_create_anonymous(&remote, repo, url) < 0 ||
	    git_remote_fetch(remote, &specs, &opts, NULL) < 0)
		goto fail;
	if (lim->progress && ctx.last_shown)
		fputc('\n', stderr);
	if (git_reference_lookup(&ref, repo, REF_QUARANTINE) < 0 || !git_reference_target(ref)) {
		send_failure(fd, GIT_ERROR_NET, "the server names no HEAD");
		goto done;
	}
	send_msg(fd, MSG_DONE, git_oid_tostr(hex, sizeof(hex), git_reference_target(ref)));
	status = 0;
	goto done;
fail:
	send_failure(fd, git_error_last() ? git_error_last()->klass : GIT_ERROR_NONE, git_msg());
done:
	git_reference_free(ref);
	git_remote_free(remote);
	git_repository_free(repo);
	git_libgit2_shutdown();
	_exit(status);
}

/* Failures worth a second try from scratch: those of the local repository
 * or of what the server sent, not the network's or a limit's. */
static bool worth_rebuilding(int klass)
{
	return klass != GIT_ERROR_NET && klass != GIT_ERROR_SSL && klass != GIT_ERROR_HTTP &&
	       klass != GIT_ERROR_SSH && klass != GIT_ERROR_CALLBACK && klass != GIT_ERROR_NONE;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the child's messages until it is done, silent too long, out of
 * time, or gone.  *rebuild says whether the failure is worth a second try
 * in a fresh mirror. */
static int watch_child(int fd, pid_t pid, const bsi_mirror_limits *lim, long end_ms,
		       git_oid *out_head, const char *url, bool *rebuild)
{
	char buf[2048];
	size_t len = 0;
	int rc = BSI_EFAIL;
	bool finished = false;

	*rebuild = false;
	bsi_error_set(BSI_EFAIL, "fetch from %s ended without a result", url);
	while (!finished) {
		long left = end_ms >= 0 ? (end_ms > now_ms() ? end_ms - now_ms() : 0) : -1;
		long wait = lim->stall_seconds > 0 &&
					    (left < 0 || lim->stall_seconds * 1000 < left)
				    ? lim->stall_seconds * 1000
				    : left < 0 ? -1 : left;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = wait == 0 ? 0 : poll(&p, 1, wait > INT_MAX ? INT_MAX : (int)wait);
		ssize_t got;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			kill(pid, SIGKILL);
			if (left >= 0 && left <= wait)
				rc = bsi_error_set(BSI_EFAIL, "fetch from %s: not done after %ld s "
							      "(fetch_deadline); gave up",
						   url, lim->deadline_seconds);
			else
				rc = bsi_error_set(BSI_EFAIL, "fetch from %s: no progress for %ld s "
							      "(fetch_timeout); gave up",
						   url, lim->stall_seconds);
			break;
		}
		got = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (got <= 0)
			break;
		len += (size_t)got;
		buf[len] = '\0';
		/* consume whole lines */
		for (char *nl; (nl = memchr(buf, '\n', len)); ) {
			*nl = '\0';
			if (buf[0] == MSG_DONE) {
				rc = git_oid_fromstr(out_head, buf + 1) == 0
					     ? BSI_OK
					     : bsi_error_set(BSI_EFAIL, "bad fetch result");
				finished = true;
			} else if (buf[0] == MSG_FAIL) {
				char *text = strchr(buf + 1, ' ');

				*rebuild = worth_rebuilding((int)strtol(buf + 1, NULL, 10));
				rc = bsi_error_set(BSI_EFAIL, "fetch from %s: %s", url,
						   text ? text + 1 : buf + 1);
				finished = true;
			}
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
		if (len == sizeof(buf) - 1)
			len = 0; /* an overlong line: drop it */
	}
	return rc;
}

static int run_fetch(git_oid *out_head, const char *path, const char *url,
		     const bsi_mirror_limits *lim, long end_ms, bool *rebuild)
{
	int pipefd[2], st, rc;
	pid_t pid, parent = getpid();

	*rebuild = false;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return bsi_error_set(BSI_EFAIL, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return bsi_error_set(BSI_EFAIL, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(pipefd[0]);
		signal(SIGPIPE, SIG_IGN);
		harden_child(&pipefd[1], parent, lim);
		fetch_child(pipefd[1], path, url, lim);
	}
	close(pipefd[1]);
	rc = watch_child(pipefd[0], pid, lim, end_ms, out_head, url, rebuild);
	close(pipefd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		rc = bsi_error_set(BSI_EFAIL, "fetch from %s failed", url);
	if (rc < 0 && WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
		*rebuild = false;
	return rc;
}

/* ---- the closure check ---- */

/* Trees are read whole to be walked: one over this is refused by its
 * object header (a feed's directories hold tens of entries, not tens of
 * thousands), and one closure check reads at most CLOSURE_TREE_BYTES of
 * them in all.  A server's tree bomb (20 million entries in a 1.4 MB pack)
 * cost 1.2 GiB of the parent's memory before. */
#define TREE_MAX_BYTES ((size_t)1 << 20)
#define CLOSURE_TREE_BYTES ((size_t)512 << 20)

typedef struct {
	git_repository *repo;
	git_odb *odb;
	bsi_oidmap seen;    /* trees and blobs known present */
	git_oid *stack;     /* trees still to read */
	size_t depth, cap;
	size_t tree_bytes;  /* read so far */
} closure;

static int push_tree(closure *c, const git_oid *id)
{
	if (c->depth == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		git_oid *s = realloc(c->stack, cap * sizeof(*s));

		if (!s)
			return bsi_error_set(BSI_EFAIL, "out of memory");
		c->stack = s;
		c->cap = cap;
	}
	c->stack[c->depth++] = *id;
	return BSI_OK;
}

static int missing(const char *what, const git_oid *id, const git_oid *commit)
{
	char hex[GIT_OID_HEXSZ + 1], chex[GIT_OID_HEXSZ + 1];

	return bsi_error_set(BSI_EFAIL, "the served history is incomplete: %s %s of commit %s is "
					"missing",
			     what, git_oid_tostr(hex, sizeof(hex), id),
			     git_oid_tostr(chex, sizeof(chex), commit));
}

/* Tree id may be read: present, a tree, within the caps. */
static int check_tree_size(closure *c, const git_oid *id, const git_oid *commit)
{
	char hex[GIT_OID_HEXSZ + 1], chex[GIT_OID_HEXSZ + 1];
	git_object_t type;
	size_t size;
	int err = git_odb_read_header(&size, &type, c->odb, id);

	if (err == GIT_ENOTFOUND)
		return missing("tree", id, commit);
	if (err < 0)
		return bsi_error_set(BSI_EFAIL, "tree %s cannot be read: %s",
				     git_oid_tostr(hex, sizeof(hex), id), git_msg());
	git_oid_tostr(hex, sizeof(hex), id);
	git_oid_tostr(chex, sizeof(chex), commit);
	if (type != GIT_OBJECT_TREE)
		return bsi_error_set(BSI_ETRUST, "commit %s: object %s is not a tree", chex, hex);
	if (size > TREE_MAX_BYTES)
		return bsi_error_set(BSI_ETRUST, "commit %s: tree %s is %zu bytes; trees over %zu "
						 "KiB are refused unread",
				     chex, hex, size, TREE_MAX_BYTES >> 10);
	if ((c->tree_bytes += size) > CLOSURE_TREE_BYTES)
		return bsi_error_set(BSI_ETRUST, "commit %s: the served history holds more than "
						 "%zu MiB of trees; refused before verifying any",
				     chex, CLOSURE_TREE_BYTES >> 20);
	return BSI_OK;
}

/* Every tree and blob below root is present (each read once per check). */
static int check_tree(closure *c, const git_oid *root, const git_oid *commit)
{
	int rc = push_tree(c, root);

	while (rc == BSI_OK && c->depth > 0) {
		git_oid id = c->stack[--c->depth];
		git_tree *tree = NULL;

		if (bsi_oidmap_get(&c->seen, &id))
			continue;
		if ((rc = check_tree_size(c, &id, commit)) < 0)
			return rc;
		if (git_tree_lookup(&tree, c->repo, &id) < 0)
			return bsi_error_set(BSI_EFAIL, "tree %s cannot be read: %s",
					     git_oid_tostr_s(&id), git_msg());
		for (size_t i = 0; rc == BSI_OK && i < git_tree_entrycount(tree); i++) {
			const git_tree_entry *e = git_tree_entry_byindex(tree, i);
			const git_oid *eid = git_tree_entry_id(e);

			if (bsi_oidmap_get(&c->seen, eid))
				continue;
			if (git_tree_entry_type(e) == GIT_OBJECT_TREE)
				rc = push_tree(c, eid);
			else if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
				continue; /* a submodule's commit is not part of the feed */
			else if (!git_odb_exists(c->odb, eid))
				rc = missing("blob", eid, commit);
			else
				rc = bsi_oidmap_put(&c->seen, eid, c);
		}
		git_tree_free(tree);
		if (rc == BSI_OK)
			rc = bsi_oidmap_put(&c->seen, &id, c);
	}
	return rc;
}

/* Commit id is present, within the size cap; check its tree. */
static int check_commit(closure *c, const git_oid *id)
{
	git_commit *commit = NULL;
	int rc = bsi_commitsig_check_size(c->odb, id);

	if (rc < 0)
		return rc;
	if (git_commit_lookup(&commit, c->repo, id) < 0)
		return bsi_error_set(BSI_EFAIL, "commit %s cannot be read: %s", git_oid_tostr_s(id),
				     git_msg());
	rc = check_tree(c, git_commit_tree_id(commit), id);
	git_commit_free(commit);
	return rc;
}

/*
 * Everything the device will read is present: every commit reachable from
 * head and not from trusted (when the mirror has it), with its tree,
 * every subtree and every blob; and the trusted head's own tree, which a
 * mirror damaged or left hollow by an interrupted sync may lack.  Checked
 * before authentication, so a server that announced a commit and withheld
 * part of it is told apart from a forgery.  The walk is unsorted, so its
 * cost is bounded by max_commits before anything is verified; commits and
 * trees are refused by their object header past their caps, unread.
 */
static int check_closure(git_repository *repo, const git_oid *head, const git_oid *trusted,
			 size_t max_commits)
{
	closure c = {.repo = repo};
	git_revwalk *walk = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	size_t count = 0;
	bool hide;
	git_oid id;
	int rc = BSI_OK, err = GIT_ITEROVER;

	if (git_repository_odb(&c.odb, repo) < 0)
		return bsi_error_set(BSI_EFAIL, "feed mirror: %s", git_msg());
	hide = trusted && git_odb_exists(c.odb, trusted);
	if ((rc = bsi_oidmap_init(&c.seen, 64)) < 0)
		goto done;
	if (hide && (rc = check_commit(&c, trusted)) < 0)
		goto done;
	if (git_revwalk_new(&walk, repo) < 0 || git_revwalk_sorting(walk, GIT_SORT_NONE) < 0 ||
	    (hide && git_revwalk_hide(walk, trusted) < 0)) {
		rc = bsi_error_set(BSI_EFAIL, "feed mirror: cannot walk the history: %s", git_msg());
		goto done;
	}
	if (git_revwalk_push(walk, head) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "the served head %s cannot be read: %s",
				   git_oid_tostr(hex, sizeof(hex), head), git_msg());
		goto done;
	}
	while (rc == BSI_OK && (err = git_revwalk_next(&id, walk)) == 0) {
		if (++count > max_commits) {
			rc = bsi_error_set(BSI_ETRUST, "commit %s: the served history brings more "
						       "than %zu new commits (feed_max_new_commits); "
						       "refused before verifying any",
					   git_oid_tostr(hex, sizeof(hex), head), max_commits);
			break;
		}
		rc = check_commit(&c, &id);
	}
	if (rc == BSI_OK && err != GIT_ITEROVER)
		rc = bsi_error_set(BSI_EFAIL, "the served history is incomplete: %s", git_msg());
done:
	git_revwalk_free(walk);
	free(c.seen.slots);
	free(c.stack);
	git_odb_free(c.odb);
	return rc;
}

/* ---- what a sync adds to the mirror, and taking it back ----
 *
 * libgit2 never asks a server again for an object the mirror holds, so a
 * commit a hostile answer left hollow would stay hollow for good.  Every
 * fetch adds packs and nothing else, so before it the mirror's packs are
 * listed in MARK_NAME; a sync whose head is not accepted removes every
 * pack not listed, and so does the next sync when a killed one left the
 * list behind.  An accepted head's packs are kept by removing the list
 * before the head is recorded.
 */
#define MARK_NAME "bsi-packs-before-fetch"

static int pack_dir(char out[4200], const char *path)
{
	if ((size_t)snprintf(out, 4200, "%s/objects/pack", path) >= 4200)
		return bsi_error_set(BSI_EFAIL, "feed mirror %s: path too long", path);
	return BSI_OK;
}

static int mark_path(char out[4200], const char *path)
{
	if ((size_t)snprintf(out, 4200, "%s/" MARK_NAME, path) >= 4200)
		return bsi_error_set(BSI_EFAIL, "feed mirror %s: path too long", path);
	return BSI_OK;
}

/* Record the packs path holds now. */
static int mark_packs(const char *path)
{
	char dir[4200], mark[4200];
	struct dirent *e;
	DIR *d;
	FILE *f;
	int rc;

	if ((rc = pack_dir(dir, path)) < 0 || (rc = mark_path(mark, path)) < 0)
		return rc;
	if ((f = fopen(mark, "we")) == NULL)
		return bsi_error_set(BSI_EFAIL, "feed mirror: %s: %s", mark, strerror(errno));
	fputc('\n', f); /* every name between newlines */
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL)
			if (strncmp(e->d_name, "pack-", 5) == 0)
				fprintf(f, "%s\n", e->d_name);
		closedir(d);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		rc = bsi_error_set(BSI_EFAIL, "feed mirror: %s: %s", mark, strerror(errno));
	if (fclose(f) != 0 && rc == BSI_OK)
		rc = bsi_error_set(BSI_EFAIL, "feed mirror: %s: %s", mark, strerror(errno));
	return rc;
}

/* The list, NUL-terminated (NULL with errno set when it cannot be read). */
static char *read_mark(const char *mark)
{
	FILE *f = fopen(mark, "re");
	char *text = NULL;
	size_t len;

	if (!f)
		return NULL;
	if ((text = malloc((1 << 20) + 1)) != NULL) {
		len = fread(text, 1, 1 << 20, f);
		text[len] = '\0';
		if (ferror(f)) {
			free(text);
			text = NULL;
			errno = EIO;
		}
	}
	fclose(f);
	return text;
}

/* Remove every pack file not in the list (and libgit2's temporary packs),
 * then the list.  Nothing to do without a list. */
static int drop_unmarked_packs(const char *path)
{
	char dir[4200], mark[4200], line[512], *text;
	struct dirent *e;
	DIR *d;
	int rc;

	if ((rc = pack_dir(dir, path)) < 0 || (rc = mark_path(mark, path)) < 0)
		return rc;
	if ((text = read_mark(mark)) == NULL)
		return errno == ENOENT ? BSI_OK
				       : bsi_error_set(BSI_EFAIL, "feed mirror: %s: %s", mark,
						       strerror(errno));
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strncmp(e->d_name, "pack-", 5) != 0 && strncmp(e->d_name, "tmp_", 4) != 0)
				continue;
			snprintf(line, sizeof(line), "\n%s\n", e->d_name);
			if (strstr(text, line))
				continue;
			if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
				rc = bsi_error_set(BSI_EFAIL, "feed mirror: remove %s/%s: %s", dir,
						   e->d_name, strerror(errno));
		}
		closedir(d);
	}
	free(text);
	if (rc == BSI_OK && unlink(mark) < 0 && errno != ENOENT)
		rc = bsi_error_set(BSI_EFAIL, "feed mirror: remove %s: %s", mark, strerror(errno));
	return rc;
}

/* ---- a sync's fetch, as a whole ---- */

static int remove_tree(const char *path)
{
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return bsi_error_set(BSI_EFAIL, "feed mirror: remove %s: %s", path, strerror(errno));
	return BSI_OK;
}

static int fresh_path(char out[4200], const char *path)
{
	if ((size_t)snprintf(out, 4200, "%s.fresh", path) >= 4200)
		return bsi_error_set(BSI_EFAIL, "feed mirror %s: path too long", path);
	return BSI_OK;
}

/* Take back what a failed attempt added to the mirror at path, keeping
 * the error it failed with. */
static void undo_attempt(const char *path, const git_oid *trusted)
{
	char *msg = strdup(bsi_error_message());
	int code = bsi_error_code();
	git_repository *repo = NULL;

	drop_unmarked_packs(path);
	if (bsi_mirror_open(&repo, path) == BSI_OK)
		keep_only_trusted(repo, trusted);
	git_repository_free(repo);
	if (msg)
		bsi_error_set(code, "%s", msg);
	free(msg);
}

/* One attempt: fetch into the mirror at path, then check the closure. */
static int attempt(git_repository **out_repo, git_oid *head, const char *path, const char *url,
		   const git_oid *trusted, const bsi_mirror_limits *lim, long end_ms,
		   bool *rebuild)
{
	git_repository *repo = NULL;
	int rc;

	*out_repo = NULL;
	/* what an interrupted sync left goes first */
	rc = drop_unmarked_packs(path);
	if (rc == BSI_OK)
		rc = bsi_mirror_open(&repo, path);
	if (rc == BSI_OK)
		rc = keep_only_trusted(repo, trusted);
	git_repository_free(repo); /* the child opens its own */
	repo = NULL;
	if (rc == BSI_OK)
		rc = mark_packs(path);
	if (rc < 0) {
		*rebuild = true;
		return rc;
	}
	if ((rc = run_fetch(head, path, url, lim, end_ms, rebuild)) == BSI_OK &&
	    (rc = bsi_mirror_open(&repo, path)) == BSI_OK &&
	    (rc = check_closure(repo, head, trusted, lim->max_commits)) < 0)
		*rebuild = rc != BSI_ETRUST; /* refusals stand; a hole may be the mirror's own */
	if (rc == BSI_OK) {
		*out_repo = repo;
		return rc;
	}
	git_repository_free(repo);
	undo_attempt(path, trusted);
	return rc;
}

int bsi_mirror_fetch(bsi_mirror_fetched *out, const char *path, const char *url,
		     const git_oid *trusted, const bsi_mirror_limits *lim)
{
	char fresh[4200], *first = NULL;
	long end_ms = lim->deadline_seconds > 0 ? now_ms() + lim->deadline_seconds * 1000 : -1;
	bool rebuild = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = bsi_mirror_init()) < 0 || (rc = fresh_path(fresh, path)) < 0 ||
	    (rc = remove_tree(fresh)) < 0) /* left by a killed sync */
		return rc;
	rc = attempt(&out->repo, &out->head, path, url, trusted, lim, end_ms, &rebuild);
	if (rc == BSI_OK || !rebuild)
		return rc;
	/* Again from scratch, in a fresh mirror beside the old one: no haves,
	 * no object of earlier fetches.  It replaces the old mirror only once
	 * its head is accepted (bsi_mirror_adopt).  The deadline is the same. */
	if ((first = strdup(bsi_error_message())) == NULL)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	rc = attempt(&out->repo, &out->head, fresh, url, trusted, lim, end_ms, &rebuild);
	if (rc == BSI_OK)
		out->fresh = true;
	else {
		bsi_error_wrap("%s; again from scratch", first);
		remove_tree(fresh);
	}
	free(first);
	return rc;
}

/* Forget the pack list: what the fetch added is the mirror's now. */
static int keep_fetched_packs(const char *path)
{
	char mark[4200];
	int rc = mark_path(mark, path);

	if (rc == BSI_OK && unlink(mark) < 0 && errno != ENOENT)
		rc = bsi_error_set(BSI_EFAIL, "feed mirror: remove %s: %s", mark, strerror(errno));
	return rc;
}

int bsi_mirror_adopt(bsi_mirror_fetched *f, const char *path)
{
	char fresh[4200];
	int rc = fresh_path(fresh, path);

	if (rc == BSI_OK && f->fresh) {
		git_repository_free(f->repo);
		f->repo = NULL;
		bsi_failpoint("mirror.exchange");
		if (renameat2(AT_FDCWD, fresh, AT_FDCWD, path, RENAME_EXCHANGE) < 0 &&
		    (errno != ENOENT || rename(fresh, path) < 0))
			return bsi_error_set(BSI_EFAIL, "feed mirror: cannot put %s in place: %s",
					     fresh, strerror(errno));
		f->fresh = false;
		rc = remove_tree(fresh); /* now the old mirror */
		if (rc == BSI_OK)
			rc = bsi_mirror_open(&f->repo, path);
	}
	if (rc == BSI_OK)
		rc = keep_fetched_packs(path);
	if (rc == BSI_OK)
		f->adopted = true;
	return rc;
}

int bsi_mirror_settle(bsi_mirror_fetched *f, const char *path, const git_oid *trusted)
{
	git_repository *repo = NULL;
	char fresh[4200];
	int rc = fresh_path(fresh, path);

	git_repository_free(f->repo);
	f->repo = NULL;
	if (rc == BSI_OK && f->fresh)
		rc = remove_tree(fresh);
	else if (rc == BSI_OK && !f->adopted)
		rc = drop_unmarked_packs(path);
	f->fresh = false;
	if (rc == BSI_OK)
		rc = bsi_mirror_open(&repo, path);
	if (rc == BSI_OK)
		rc = keep_only_trusted(repo, trusted);
	git_repository_free(repo);
	return rc;
}
