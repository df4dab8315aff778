#include "mirror.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What the fetch child writes to the parent: progress ticks, then one
 * result record. */
enum { MSG_TICK = 'T', MSG_DONE = 'D', MSG_FAIL = 'F' };

typedef struct {
	int fd;                  /* write end of the pipe */
	const bsi_mirror_limits *lim;
	size_t received;
	time_t last_shown;
} fetch_ctx;

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

static void send_msg(int fd, char kind, const char *text)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%c%s\n", kind, text ? text : "");

	if (n > 0 && write(fd, buf, (size_t)n > sizeof(buf) ? sizeof(buf) : (size_t)n) < 0)
		_exit(1);
}

static int on_progress(const git_indexer_progress *stats, void *payload)
{
	fetch_ctx *ctx = payload;
	time_t now = time(NULL);

	ctx->received = stats->received_bytes;
	send_msg(ctx->fd, MSG_TICK, NULL);
	if (ctx->received > ctx->lim->max_bytes) {
		git_error_set_str(GIT_ERROR_NET, "the server sent more than the allowed download");
		return -1;
	}
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

/* The child: fetch, then report the server's HEAD. Never returns.  Frees
 * what it made before _exit, so a leak check of this child (make
 * valgrind) sees a clean exit. */
static void fetch_child(int fd, const char *path, const char *url, const bsi_mirror_limits *lim)
{
	static char *refspec = "+refs/heads/*:refs/bsi/heads/*";
	git_strarray specs = {&refspec, 1};
	git_fetch_options opts;
	fetch_ctx ctx = {.fd = fd, .lim = lim};
	const git_remote_head **heads;
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	size_t nheads;
	int status = 1;

	git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
	if (lim->ca_file && git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, lim->ca_file, NULL) < 0)
		goto fail;
	if (bsi_mirror_open(&repo, path) < 0) {
		send_msg(fd, MSG_FAIL, bsi_error_message());
		goto done;
	}
	opts.callbacks.transfer_progress = on_progress;
	opts.callbacks.sideband_progress = on_sideband;
	opts.callbacks.payload = &ctx;
	opts.prune = GIT_FETCH_NO_PRUNE;
	opts.update_fetchhead = 0;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	if (git_remote_create_anonymous(&remote, repo, url) < 0 ||
	    git_remote_fetch(remote, &specs, &opts, NULL) < 0 ||
	    git_remote_ls(&heads, &nheads, remote) < 0)
		goto fail;
	if (lim->progress && ctx.last_shown)
		fputc('\n', stderr);
	for (size_t i = 0; i < nheads; i++) {
		if (strcmp(heads[i]->name, "HEAD") == 0) {
			git_oid_tostr(hex, sizeof(hex), &heads[i]->oid);
			send_msg(fd, MSG_DONE, hex);
			status = 0;
			goto done;
		}
	}
	send_msg(fd, MSG_FAIL, "the server names no HEAD");
	goto done;
fail:
	send_msg(fd, MSG_FAIL, git_error_last() ? git_error_last()->message : "fetch failed");
done:
	git_remote_free(remote);
	git_repository_free(repo);
	git_libgit2_shutdown();
	_exit(status);
}

/* Read the child's messages until it is done, silent too long, or gone. */
static int watch_child(int fd, pid_t pid, long stall, git_oid *out_head, const char *url)
{
	char buf[2048];
	size_t len = 0;
	int rc = BSI_EFAIL;
	bool finished = false;

	bsi_error_set(BSI_EFAIL, "fetch from %s ended without a result", url);
	while (!finished) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, stall > 0 ? (int)(stall * 1000) : -1);
		ssize_t got;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			kill(pid, SIGKILL);
			rc = bsi_error_set(BSI_EFAIL, "fetch from %s: no progress for %ld s; gave up",
					   url, stall);
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
				rc = bsi_error_set(BSI_EFAIL, "fetch from %s: %s", url, buf + 1);
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

int bsi_mirror_fetch(git_oid *out_head, const char *path, const char *url,
		     const bsi_mirror_limits *lim)
{
	int pipefd[2], st, rc;
	pid_t pid;

	rc = bsi_mirror_init();
	if (rc < 0)
		return rc;
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
		fetch_child(pipefd[1], path, url, lim);
	}
	close(pipefd[1]);
	rc = watch_child(pipefd[0], pid, lim->stall_seconds, out_head, url);
	close(pipefd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		rc = bsi_error_set(BSI_EFAIL, "fetch from %s failed", url);
	return rc;
}
