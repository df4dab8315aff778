#include "fsroot.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DEPTH 256   /* directories deep below the root */
#define MAX_LINKS 40    /* symlinks followed in one resolution, like the kernel */

struct bsi_root {
	int fd;
	char *path;
	uint64_t max_target; /* bytes; 0: no limit */
};

int bsi_root_open(bsi_root **out, const char *path)
{
	bsi_root *root = NULL;
	int rc = BSI_OK;

	*out = NULL;
	root = calloc(1, sizeof(*root));
	if (!root)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	root->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root->fd < 0) {
		rc = bsi_error_set(BSI_EFAIL, "%s: %s", path, strerror(errno));
		goto done;
	}
	root->path = strdup(path);
	if (!root->path) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	*out = root;
	root = NULL;
done:
	bsi_root_free(root);
	return rc;
}

void bsi_root_free(bsi_root *root)
{
	if (!root)
		return;
	if (root->fd >= 0)
		close(root->fd);
	free(root->path);
	free(root);
}

const char *bsi_root_path(const bsi_root *root) { return root->path; }

int bsi_root_fd(const bsi_root *root) { return root->fd; }

/*
 * The resolver's working state: a stack of directory descriptors from the
 * root (stack[0], borrowed) down to the current directory, and the part of
 * the path still to walk.  Symlink targets are spliced into `rest`.
 */
typedef struct {
	const char *rel; /* the path as the caller gave it, for messages */
	int stack[MAX_DEPTH];
	int depth;
	char rest[2 * PATH_MAX];
	size_t pos;
	int links;
} walk;

static void walk_close(walk *w)
{
	while (w->depth > 1)
		close(w->stack[--w->depth]);
}

static int refuse(const walk *w, const char *why)
{
	return bsi_error_set(BSI_ERECIPE, "path \"%s\" refused: %s", w->rel, why);
}

/* What a node is, for messages. */
static const char *kind_of(mode_t mode)
{
	if (S_ISREG(mode))
		return "a regular file";
	if (S_ISLNK(mode))
		return "a symlink";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	return "a file of unknown kind";
}

static int refuse_kind(const walk *w, mode_t mode)
{
	return bsi_error_set(BSI_ERECIPE, "path \"%s\" refused: it is %s, not a regular file or "
					  "directory",
			     w->rel, kind_of(mode));
}

/*
 * Open for real, with `flags`, the node the O_PATH descriptor pfd holds
 * (entry `name` of dirfd; st is pfd's fstat): through /proc/self/fd, which
 * names that very inode, so nothing can be swapped in between.  Without
 * /proc, by name again, never following and never blocking, and only the
 * same inode is accepted.  *out_fd = -1 when the entry went away.
 */
static int reopen(int pfd, const struct stat *st, int dirfd, const char *name, int flags,
		  const char *rel, int *out_fd)
{
	char proc[64];
	struct stat now;
	int fd;

	*out_fd = -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, (flags & ~O_NOFOLLOW) | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return BSI_OK;
		return bsi_error_set(errno == ELOOP ? BSI_ERECIPE : BSI_EFAIL,
				     "path \"%s\": open %s: %s", rel, name, strerror(errno));
	}
	if (fstat(fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
		close(fd);
		return bsi_error_set(BSI_EFAIL, "path \"%s\": %s changed while bsi opened it", rel,
				     name);
	}
	*out_fd = fd;
	return BSI_OK;
}

/* Take the next non-empty, non-"." component of rest into name; false at end. */
static bool next_component(walk *w, char name[NAME_MAX + 1], bool *is_last, int *rc)
{
	for (;;) {
		const char *s = w->rest + w->pos, *slash;
		size_t len;

		if (*s == '\0')
			return false;
		slash = strchr(s, '/');
		len = slash ? (size_t)(slash - s) : strlen(s);
		w->pos += len + (slash ? 1 : 0);
		if (len == 0 || (len == 1 && s[0] == '.'))
			continue;
		if (len > NAME_MAX) {
			*rc = refuse(w, "a component is longer than NAME_MAX");
			return false;
		}
		memcpy(name, s, len);
		name[len] = '\0';
		/* last when nothing but slashes and "." components follow */
		*is_last = true;
		for (const char *t = w->rest + w->pos; *t; ) {
			const char *e = strchr(t, '/');
			size_t l = e ? (size_t)(e - t) : strlen(t);

			if (l != 0 && !(l == 1 && t[0] == '.')) {
				*is_last = false;
				break;
			}
			t += l + (e ? 1 : 0);
		}
		return true;
	}
}

/* Replace the consumed component (a symlink) by its target: rest becomes
 * target + "/" + what was left. */
static int splice_link(walk *w, int dirfd, const char *name)
{
	char target[PATH_MAX + 1];
	size_t tail_len;
	ssize_t n;

	if (++w->links > MAX_LINKS)
		return refuse(w, "too many levels of symbolic links");
	n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return bsi_error_set(BSI_EFAIL, "path \"%s\": readlink %s: %s", w->rel, name,
				     strerror(errno));
	target[n] = '\0';
	/* An absolute target starts again at the root, as in a chroot (and
	 * openat2's RESOLVE_IN_ROOT): on a real system usr/bin/awk points to
	 * /etc/alternatives/awk, which means the one under this root. */
	if (target[0] == '/')
		walk_close(w);
	tail_len = strlen(w->rest + w->pos);
	if ((size_t)n + 1 + tail_len + 1 > sizeof(w->rest))
		return refuse(w, "path too long after following symlinks");
	memmove(w->rest + n + 1, w->rest + w->pos, tail_len + 1);
	memcpy(w->rest, target, (size_t)n);
	w->rest[n] = '/';
	w->pos = 0;
	return BSI_OK;
}

/*
 * Walk rel beneath the root.  With want_parent, stop before the final
 * component and hand back its directory and name; otherwise open the final
 * component with flags.  A missing component yields *out_fd = -1.
 */
static int resolve(const bsi_root *root, const char *rel, bool want_parent, int flags,
		   int *out_fd, char out_name[NAME_MAX + 1])
{
	walk w = {.rel = rel, .depth = 1};
	char name[NAME_MAX + 1];
	bool last = false;
	int rc = BSI_OK;

	*out_fd = -1;
	w.stack[0] = root->fd;
	if (rel[0] == '\0')
		return refuse(&w, "empty path");
	if (rel[0] == '/')
		return refuse(&w, "absolute paths are not allowed; paths are relative to the target root");
	if (strlen(rel) >= PATH_MAX)
		return refuse(&w, "path too long");
	snprintf(w.rest, sizeof(w.rest), "%s", rel);

	while (next_component(&w, name, &last, &rc)) {
		int top = w.stack[w.depth - 1], fd;
		struct stat st;

		if (strcmp(name, "..") == 0) {
			if (w.depth == 1) {
				rc = refuse(&w, "\"..\" leads outside the target root");
				goto done;
			}
			if (last && want_parent) {
				rc = refuse(&w, "the final component may not be \"..\"");
				goto done;
			}
			close(w.stack[--w.depth]);
			if (last)
				break;
			continue;
		}
		if (last && want_parent) {
			/* the walk holds O_PATH descriptors; hand back a real
			 * directory descriptor, which fsync and getdents accept */
			fd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				rc = bsi_error_set(BSI_EFAIL, "path \"%s\": open parent: %s", rel,
						   strerror(errno));
				goto done;
			}
			snprintf(out_name, NAME_MAX + 1, "%s", name);
			*out_fd = fd;
			goto done;
		}
		fd = openat(top, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				goto done; /* *out_fd stays -1: does not exist */
			rc = bsi_error_set(BSI_EFAIL, "path \"%s\": %s: %s", rel, name, strerror(errno));
			goto done;
		}
		if (fstat(fd, &st) < 0) {
			rc = bsi_error_set(BSI_EFAIL, "path \"%s\": stat %s: %s", rel, name,
					   strerror(errno));
			close(fd);
			goto done;
		}
		if (S_ISLNK(st.st_mode)) {
			close(fd);
			rc = splice_link(&w, top, name);
			if (rc < 0)
				goto done;
			continue;
		}
		if (last && (flags & O_PATH)) {
			*out_fd = fd; /* the caller looks before it opens */
			goto done;
		}
		if (last && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			/* never opened: a FIFO would block, a device may act */
			close(fd);
			rc = refuse_kind(&w, st.st_mode);
			goto done;
		}
		if (last) {
			rc = reopen(fd, &st, top, name, flags, rel, out_fd);
			close(fd);
			goto done;
		}
		if (!S_ISDIR(st.st_mode)) {
			close(fd);
			goto done; /* a file where a directory should be: does not exist */
		}
		if (w.depth == MAX_DEPTH) {
			close(fd);
			rc = refuse(&w, "too many directory levels");
			goto done;
		}
		w.stack[w.depth++] = fd;
	}
	if (rc < 0)
		goto done;
	/* The path named a directory reached through ".." or ended in "." */
	if (want_parent) {
		rc = refuse(&w, "does not name a file");
		goto done;
	}
	*out_fd = openat(w.stack[w.depth - 1], ".", flags | O_CLOEXEC);
	if (*out_fd < 0)
		rc = bsi_error_set(BSI_EFAIL, "path \"%s\": %s", rel, strerror(errno));
done:
	walk_close(&w);
	return rc;
}

int bsi_root_open_file(const bsi_root *root, const char *rel, int flags, int *out_fd)
{
	return resolve(root, rel, false, flags, out_fd, NULL);
}

int bsi_root_open_parent(const bsi_root *root, const char *rel, int *out_dirfd,
			 char out_name[NAME_MAX + 1])
{
	return resolve(root, rel, true, 0, out_dirfd, out_name);
}

void bsi_root_set_max_target(bsi_root *root, uint64_t bytes) { root->max_target = bytes; }

uint64_t bsi_root_max_target(const bsi_root *root) { return root->max_target; }

void bsi_root_target_close(bsi_root_target *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->dirfd >= 0)
		close(t->dirfd);
	t->fd = t->dirfd = -1;
}

/* Why a node that is not a regular file is no file to patch; for a symlink,
 * where it points, so that the recipe can name the real file. */
static int refuse_target(int pfd, const char *rel, mode_t mode)
{
	char to[PATH_MAX + 1];
	ssize_t n;

	if (!S_ISLNK(mode))
		return bsi_error_set(BSI_ERECIPE, "%s is %s; bsi replaces regular files only", rel,
				     kind_of(mode));
	/* readlinkat(2) on an O_PATH descriptor of the link itself */
	n = readlinkat(pfd, "", to, sizeof(to) - 1);
	if (n < 0)
		return bsi_error_set(BSI_ERECIPE,
				     "%s is a symlink; bsi replaces regular files only: name the "
				     "file it points to",
				     rel);
	to[n] = '\0';
	return bsi_error_set(BSI_ERECIPE,
			     "%s is a symlink to %s; bsi replaces regular files only: name the "
			     "file it points to",
			     rel, to);
}

/* The rules for a file bsi replaces, on top of being a regular file. */
static int check_target(const bsi_root *root, const char *rel, const struct stat *st)
{
	if (st->st_nlink > 1)
		return bsi_error_set(BSI_ERECIPE,
				     "%s has %ju hard links; bsi cannot find every name of such a "
				     "file, so it replaces files with one link only",
				     rel, (uintmax_t)st->st_nlink);
	if (root->max_target && (uint64_t)st->st_size > root->max_target)
		return bsi_error_set(BSI_ERECIPE,
				     "%s is %ju bytes, more than max_target_mib allows (%ju MiB); "
				     "raise it in bsi.conf to patch this file",
				     rel, (uintmax_t)st->st_size, (uintmax_t)(root->max_target >> 20));
	return BSI_OK;
}

static int open_final(const bsi_root *root, const char *rel, bool as_target, bsi_root_target *out)
{
	struct stat st;
	int pfd = -1, rc;

	memset(out, 0, sizeof(*out));
	out->dirfd = out->fd = -1;
	rc = bsi_root_open_parent(root, rel, &out->dirfd, out->name);
	if (rc < 0 || out->dirfd < 0)
		goto done;
	pfd = openat(out->dirfd, out->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0) {
		if (errno != ENOENT)
			rc = bsi_error_set(BSI_EFAIL, "%s: %s", rel, strerror(errno));
		goto done;
	}
	if (fstat(pfd, &st) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "stat %s: %s", rel, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = refuse_target(pfd, rel, st.st_mode);
		goto done;
	}
	if (as_target && (rc = check_target(root, rel, &st)) < 0)
		goto done;
	rc = reopen(pfd, &st, out->dirfd, out->name, O_RDONLY, rel, &out->fd);
	if (rc == 0 && out->fd >= 0)
		out->st = st;
done:
	if (pfd >= 0)
		close(pfd);
	if (rc < 0)
		bsi_root_target_close(out);
	return rc;
}

int bsi_root_open_regular(const bsi_root *root, const char *rel, bsi_root_target *out)
{
	return open_final(root, rel, false, out);
}

int bsi_root_open_target(const bsi_root *root, const char *rel, bsi_root_target *out)
{
	return open_final(root, rel, true, out);
}
