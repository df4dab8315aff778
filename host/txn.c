/* txn.c - the file-replacing transaction; see txn.h for the contract. */
#include "txn.h"

#include "digest.h"
#include "error.h"
#include "failpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define COPY_BLOCK (256 * 1024)

/* One file of a transaction, while it runs. */
typedef struct {
	const char *path;   /* relative to the root (borrowed) */
	const char *before; /* digest now */
	const char *after;  /* digest afterwards */
	const char *payload; /* apply: path in the source; rollback: NULL */
	char *source_backup; /* rollback: absolute path of the original to put back */
	int dirfd;
	char name[NAME_MAX + 1];
	char stage[NAME_MAX + 1];
	char backup[32];
	int fd;             /* the target as it was checked (O_RDONLY), or -1 */
	struct stat orig;
	bool staged, backed, renamed;
} step;

typedef struct {
	const bsi_txn_ctx *ctx;
	const char *improvement;
	const char *kind; /* "apply" | "rollback" */
	int64_t id;
	char *backup_dir; /* <state>/backups/<id> */
	int backup_dirfd;
	step *steps;
	size_t n;   /* steps in use */
	size_t cap; /* steps allocated (slot n may hold an open dirfd) */
} run;

/* Allocate room for cap steps, every dirfd closed. */
static int run_alloc(run *r, size_t cap)
{
	size_t i;

	if (!(r->steps = calloc(cap, sizeof(*r->steps))))
		return bsi_error_set(BSI_EFAIL, "out of memory");
	r->cap = cap;
	for (i = 0; i < cap; i++)
		r->steps[i].dirfd = r->steps[i].fd = -1;
	return 0;
}

/* An injected error for `site` (EIO), or for `site`.enospc (ENOSPC), or 0. */
static int fault(const char *site)
{
	char name[96];
	int e = bsi_fault(site);

	if (e)
		return e;
	snprintf(name, sizeof(name), "%s.enospc", site);
	return bsi_fault(name);
}

/* errno after a syscall, or an injected fault for site; 0 when fine.
 * For fsync only: the call has happened either way, as a real fsync that
 * reports an error has. */
static int check(int failed, const char *site)
{
	int e = failed ? errno : fault(site);

	return failed && e == 0 ? EIO : e;
}

/* renameat, or an injected fault for txn.rename *instead of* it: a failed
 * rename must not have happened. */
static int do_rename(int dirfd, const char *from, const char *to)
{
	int e = fault("txn.rename");

	if (e)
		return e;
	return renameat(dirfd, from, dirfd, to) == 0 ? 0 : errno;
}

/* linkat, or an injected EXDEV (txn.link.exdev) instead of it: the copy a
 * backup on another file system than the target gets. */
static int do_link(int olddirfd, const char *old, int newdirfd, const char *new)
{
	if (bsi_fault("txn.link.exdev")) {
		errno = EXDEV;
		return -1;
	}
	return linkat(olddirfd, old, newdirfd, new, 0);
}

static void failpoint(const char *kind, const char *what)
{
	char name[96];

	snprintf(name, sizeof(name), "%s.%s", kind, what);
	bsi_failpoint(name);
}

static void failpoint_n(const char *kind, const char *what, size_t n)
{
	char name[96];

	snprintf(name, sizeof(name), "%s.%s.%zu", kind, what, n);
	bsi_failpoint(name);
}

static int stage_name(const char *name, char out[NAME_MAX + 1])
{
	unsigned char rnd[6];
	size_t off = 0;
	int i;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return bsi_error_set(BSI_EFAIL, "getrandom: %s", strerror(errno));
	/* ".bsi-stage." + name (cut to fit) + "." + 12 hex <= NAME_MAX */
	off = (size_t)snprintf(out, NAME_MAX + 1, ".bsi-stage.%.*s.", NAME_MAX - 24, name);
	for (i = 0; i < 6; i++)
		off += (size_t)snprintf(out + off, NAME_MAX + 1 - off, "%02x", rnd[i]);
	return 0;
}

/* On failure errno is the failure's (also an injected one). */
static int fsync_fd(int fd, const char *site, const char *what)
{
	int e = check(fsync(fd) != 0, site);

	if (e) {
		bsi_error_set(BSI_EFAIL, "fsync %s: %s", what, strerror(e));
		errno = e;
		return BSI_EFAIL;
	}
	return 0;
}

/* A source of bytes: a payload reader or a plain descriptor. */
typedef struct {
	bsi_reader *reader;
	int fd;
} input;

static int input_read(input *in, void *buf, size_t cap, size_t *out_n)
{
	ssize_t n;

	if (in->reader)
		return bsi_reader_read(in->reader, buf, cap, out_n);
	do
		n = read(in->fd, buf, cap);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return bsi_error_set(BSI_EFAIL, "read: %s", strerror(errno));
	*out_n = (size_t)n;
	return 0;
}

/*
 * The whole value of fd's attribute `name`, or with name NULL the list of
 * its attribute names (a run of NUL-terminated strings), in a new buffer:
 * *out NULL when there is nothing (the attribute is gone; no names, or a
 * file system that keeps none).  Asks for the size, then reads, again when it
 * grew in between (ERANGE).  0, or an errno value.
 */
static int xattr_fetch(int fd, const char *name, char **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	for (;;) {
		ssize_t n = name ? fgetxattr(fd, name, NULL, 0) : flistxattr(fd, NULL, 0);
		char *buf = NULL;
		int e;

		if (n == 0 && !name)
			return 0;
		if (n >= 0 && !(buf = malloc(n > 0 ? (size_t)n : 1)))
			return ENOMEM;
		if (n > 0 && (n = name ? fgetxattr(fd, name, buf, (size_t)n)
				       : flistxattr(fd, buf, (size_t)n)) < 0)
			free(buf);
		if (n >= 0) {
			*out = buf;
			*out_len = (size_t)n;
			return 0;
		}
		e = errno;
		/* the attribute is gone; a file system without xattrs has no names */
		if (e == ENODATA || (!name && (e == ENOTSUP || e == ENOSYS)))
			return 0;
		if (e != ERANGE)
			return e;
	}
}

/* The names of fd's extended attributes (xattr_fetch()). */
static int list_xattrs(int fd, const char *what, char **out, size_t *out_len)
{
	int e = xattr_fetch(fd, NULL, out, out_len);

	if (e == ENOMEM)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	if (e)
		return bsi_error_set(BSI_EFAIL, "list extended attributes of %s: %s", what,
				     strerror(e));
	return 0;
}

static bool has_name(const char *names, size_t len, const char *name)
{
	for (size_t off = 0; off < len; off += strlen(names + off) + 1)
		if (strcmp(names + off, name) == 0)
			return true;
	return false;
}

/*
 * The extended attributes a replaced file keeps: what it may do and who may
 * touch it, not what it holds.  security.ima and security.evm describe the
 * old bytes (the kernel computes them for the new ones; a copied signature
 * would make IMA refuse the new file), and other LSM labels (Smack,
 * AppArmor) need CAP_MAC_ADMIN; neither is carried over.
 */
static bool kept_xattr(const char *name)
{
	return strcmp(name, "security.capability") == 0 ||
	       strcmp(name, "security.selinux") == 0 ||
	       strcmp(name, "system.posix_acl_access") == 0 || strncmp(name, "user.", 5) == 0 ||
	       strncmp(name, "trusted.", 8) == 0;
}

/* Why setting `name` may be refused, for the message. */
static const char *xattr_needs(const char *name)
{
	if (strncmp(name, "security.", 9) == 0 && strcmp(name, "security.capability") != 0 &&
	    strcmp(name, "security.selinux") != 0)
		return " (this security attribute needs CAP_SYS_ADMIN or CAP_MAC_ADMIN)";
	if (strcmp(name, "security.capability") == 0)
		return " (setting file capabilities needs CAP_SETFCAP)";
	if (strcmp(name, "security.selinux") == 0)
		return " (the SELinux policy must let bsi relabel the file)";
	if (strncmp(name, "trusted.", 8) == 0)
		return " (trusted.* attributes need CAP_SYS_ADMIN)";
	return "";
}

/* The value of fd's attribute `name` (*out NULL when it is gone). */
static int read_xattr(int fd, const char *name, const char *what, char **out, size_t *out_len)
{
	int e = xattr_fetch(fd, name, out, out_len);

	if (e == ENOMEM)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	if (e)
		return bsi_error_set(BSI_EFAIL, "read extended attribute %s of %s: %s", name, what,
				     strerror(e));
	return 0;
}

/*
 * Give to_fd the extended attributes of from_fd that bsi can see: for a
 * copy of the same bytes (a backup, a restore) all of them, IMA/EVM hashes
 * included; for new bytes only the kept ones (kept_xattr()): the SELinux
 * label, file capabilities, the POSIX access ACL, user.* ones, and
 * trusted.* ones when bsi may see them (CAP_SYS_ADMIN; the agent's unit
 * does not grant it).  An access ACL the new file inherited from its
 * directory's default ACL goes when the original had none.  After fchown,
 * which clears security.capability.
 */
static int copy_xattrs(int from_fd, int to_fd, bool same_bytes, const char *from,
		       const char *what)
{
	const char *acl = "system.posix_acl_access";
	char *names = NULL, *have = NULL, *value = NULL;
	size_t len = 0, have_len = 0, n, off;
	int ret;

	if ((ret = list_xattrs(from_fd, from, &names, &len)) != 0 ||
	    (ret = list_xattrs(to_fd, what, &have, &have_len)) != 0)
		goto done;
	if (has_name(have, have_len, acl) && !has_name(names, len, acl) &&
	    fremovexattr(to_fd, acl) != 0 && errno != ENODATA) {
		ret = bsi_error_set(BSI_EFAIL, "remove the inherited ACL of %s: %s", what,
				    strerror(errno));
		goto done;
	}
	for (off = 0; off < len; off += strlen(names + off) + 1) {
		const char *name = names + off;

		if (!same_bytes && !kept_xattr(name))
			continue;
		free(value);
		if ((ret = read_xattr(from_fd, name, from, &value, &n)) != 0)
			goto done;
		if (value && fsetxattr(to_fd, name, value, n, 0) != 0) {
			int e = errno;

			ret = bsi_error_set(BSI_EFAIL, "copy extended attribute %s of %s to %s: %s%s",
					    name, from, what, strerror(e),
					    e == EPERM || e == EACCES ? xattr_needs(name) : "");
			goto done;
		}
	}
done:
	free(value);
	free(names);
	free(have);
	return ret;
}

/*
 * Create (dirfd, name) with O_EXCL, copy `in` into it while hashing, give it
 * owner/group/mode of `like` and the extended attributes of the open file
 * like_fd (named like_what; all of them when `in` holds the same bytes as
 * like_fd, see copy_xattrs()), fsync it.  The digest goes to out_digest.
 * On failure the partial file is removed.  `what` names it for messages;
 * faults are injected at <site>.write and <site>.fsync.
 */
static int place_copy(input *in, int dirfd, const char *name, const struct stat *like,
		      int like_fd, bool same_bytes, const char *like_what, const char *site,
		      const char *what, char out_digest[BSI_DIGEST_STRLEN + 1])
{
	char fault_site[64];
	bsi_digest_ctx *dg = NULL;
	char *buf = NULL;
	size_t n, off;
	ssize_t w;
	int fd = -1, ret = BSI_EFAIL, e = 0;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		bsi_error_set(BSI_EFAIL, "create %s: %s", what, strerror(e));
		errno = e;
		return BSI_EFAIL;
	}
	if (!(buf = malloc(COPY_BLOCK)) || bsi_digest_new(&dg) != 0) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	snprintf(fault_site, sizeof(fault_site), "%s.write", site);
	for (;;) {
		if ((ret = input_read(in, buf, COPY_BLOCK, &n)) != 0) {
			bsi_error_wrap("copying into %s", what);
			goto done;
		}
		if (n == 0)
			break;
		bsi_digest_update(dg, buf, n);
		for (off = 0; off < n; off += (size_t)w) {
			if ((e = fault(fault_site)) != 0) {
				ret = bsi_error_set(BSI_EFAIL, "write %s: %s", what, strerror(e));
				goto done;
			}
			w = write(fd, buf + off, n - off);
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w < 0 && (e = errno) != 0) {
				ret = bsi_error_set(BSI_EFAIL, "write %s: %s", what, strerror(e));
				goto done;
			}
		}
	}
	bsi_digest_final(dg, out_digest);
	/* chown first: it clears set-user-ID bits that fchmod then restores. */
	if (fchown(fd, like->st_uid, like->st_gid) != 0 ||
	    fchmod(fd, like->st_mode & 07777) != 0) {
		ret = bsi_error_set(BSI_EFAIL, "set owner and mode of %s: %s", what, strerror(errno));
		goto done;
	}
	if ((ret = copy_xattrs(like_fd, fd, same_bytes, like_what, what)) != 0)
		goto done;
	snprintf(fault_site, sizeof(fault_site), "%s.fsync", site);
	if ((ret = fsync_fd(fd, fault_site, what)) != 0) {
		e = errno;
		goto done;
	}
	ret = 0;
done:
	if (fd >= 0)
		close(fd);
	if (ret != 0)
		unlinkat(dirfd, name, 0);
	bsi_digest_free(dg);
	free(buf);
	/* what failed, for a caller that tells a full disk apart */
	if (ret != 0)
		errno = e;
	return ret;
}

/* Remove <dir>/<name> if present; ENOENT is fine. */
static int remove_name(int dirfd, const char *name, const char *what)
{
	if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
		return bsi_error_set(BSI_EFAIL, "remove %s: %s", what, strerror(errno));
	return 0;
}

/*
 * Put the file at absolute path `src` in place as (dirfd, name): a hard
 * link when possible, else a copy with src's owner and mode; then check
 * that it has digest `expect` (a backup that lost its bytes is refused
 * before it can replace anything).
 */
static int install_copy_of(bsi_state *st, const char *src, int dirfd, const char *name,
			   const char *expect, const char *site, const char *what)
{
	char digest[BSI_DIGEST_STRLEN + 1];
	struct stat sb;
	input in = {NULL, -1};
	bool placed = false;
	int fd = -1, ret = 0;

	if (do_link(AT_FDCWD, src, dirfd, name) != 0) {
		if (errno != EXDEV && errno != EPERM && errno != EMLINK)
			return bsi_error_set(BSI_EFAIL, "link %s to %s: %s", src, what,
					     strerror(errno));
		in.fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (in.fd < 0 || fstat(in.fd, &sb) != 0) {
			ret = bsi_error_set(BSI_EFAIL, "open %s: %s", src, strerror(errno));
			goto done;
		}
		if ((ret = place_copy(&in, dirfd, name, &sb, in.fd, true, src, site, what,
				      digest)) != 0)
			goto done;
		placed = true;
	} else {
		placed = true;
		fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			ret = bsi_error_set(BSI_EFAIL, "open %s: %s", what, strerror(errno));
			goto done;
		}
		if ((ret = bsi_state_hash_fd(st, fd, digest)) != 0) {
			bsi_error_wrap("%s", src);
			goto done;
		}
	}
	if (strcmp(digest, expect) != 0) {
		ret = bsi_error_set(BSI_EFAIL, "backup %s is damaged: it has %s, expected %s", src,
				    digest, expect);
		goto done;
	}
done:
	if (in.fd >= 0)
		close(in.fd);
	if (fd >= 0)
		close(fd);
	/* like place_copy: on failure, nothing is left at name (the link
	 * would be a stray file beside the target that no undo knows of) */
	if (ret != 0 && placed)
		remove_name(dirfd, name, what);
	return ret;
}

/*
 * bsi_root_open_parent, with a descriptor that can be fsync'ed: the
 * resolver may hand back an O_PATH descriptor, on which fsync(2) fails with
 * EBADF.  Reopening "." through it names the same directory inode, so the
 * confinement is kept.
 */
static int open_parent(const bsi_root *root, const char *path, int *out_dirfd,
		       char name[NAME_MAX + 1])
{
	int fd = -1, ret = bsi_root_open_parent(root, path, &fd, name);

	*out_dirfd = -1;
	if (ret != 0 || fd < 0)
		return ret;
	*out_dirfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*out_dirfd < 0)
		ret = bsi_error_set(BSI_EFAIL, "open directory of %s: %s", path, strerror(errno));
	close(fd);
	return ret;
}

/*
 * Open the target of s (bsi_root_open_target(): a regular file with one
 * link, within the size limit, else BSI_ERECIPE naming what it is) and put
 * its digest in `digest` ("" when it is missing).  s keeps the directory,
 * the name, the open file and its fstat: staging takes the original's
 * attributes from that very descriptor.  The refusals come before anything
 * is written, whatever the plan said: the file may have changed since.
 */
static int look_at_target(bsi_state *st, const bsi_root *root, const char *path, step *s,
			  char digest[BSI_DIGEST_STRLEN + 1])
{
	bsi_root_target t;
	int ret = bsi_root_open_target(root, path, &t);

	digest[0] = '\0';
	if (ret == 0 && t.fd >= 0 && (ret = bsi_state_hash_fd(st, t.fd, digest)) != 0)
		bsi_error_wrap("%s", path);
	if (ret == 0) {
		s->dirfd = t.dirfd;
		s->fd = t.fd;
		s->orig = t.st;
		snprintf(s->name, sizeof(s->name), "%s", t.name);
		t.dirfd = t.fd = -1;
	}
	bsi_root_target_close(&t);
	return ret;
}

/* Done with the files of a step that has nothing to do. */
static void step_close(step *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->fd = s->dirfd = -1;
}

/* An existing target of one transaction, by (device, inode). */
typedef struct {
	dev_t dev;
	ino_t ino;
	const char *path;
} file_id;

/*
 * Refuse a second path to a file already named (a symlinked directory,
 * merged /usr: lib/x and usr/lib/x): two renames over one inode would
 * leave the first one's backup describing a file that is gone.  By
 * (device, inode), never by the strings.
 */
static int check_distinct(file_id *seen, size_t *n, const step *s, const char *path)
{
	for (size_t i = 0; i < *n; i++)
		if (seen[i].dev == s->orig.st_dev && seen[i].ino == s->orig.st_ino)
			return bsi_error_set(BSI_ERECIPE,
					     "%s and %s are the same file (through a symlink); an "
					     "improvement replaces each file once, by one path",
					     seen[i].path, path);
	seen[*n].dev = s->orig.st_dev;
	seen[*n].ino = s->orig.st_ino;
	seen[*n].path = path;
	(*n)++;
	return 0;
}

/*
 * Digest of (dirfd, name) through the hash cache, for recovery: "" when
 * missing, and also when it is anything but a regular file (looked at, not
 * opened: a FIFO put there would block), which recovery counts as neither
 * version.
 */
static int hash_at(bsi_state *st, int dirfd, const char *name, const char *path,
		   char out[BSI_DIGEST_STRLEN + 1])
{
	struct stat sb, now;
	int fd, ret;

	out[0] = '\0';
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;
		return bsi_error_set(BSI_EFAIL, "stat %s: %s", path, strerror(errno));
	}
	if (!S_ISREG(sb.st_mode))
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return 0;
		return bsi_error_set(BSI_EFAIL, "open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &now) != 0 || !S_ISREG(now.st_mode)) {
		close(fd);
		return 0;
	}
	if ((ret = bsi_state_hash_fd(st, fd, out)) != 0)
		bsi_error_wrap("%s", path);
	close(fd);
	return ret;
}

static int fsync_dirs(run *r, const char *what)
{
	size_t i;
	int e;

	for (i = 0; i < r->n; i++) {
		e = check(fsync(r->steps[i].dirfd) != 0, "txn.dirsync");
		if (e)
			return bsi_error_set(BSI_EFAIL, "%s: fsync directory of %s: %s", what,
					     r->steps[i].path, strerror(e));
	}
	return 0;
}

/* Remove every file in <state>/backups/<id> and the directory itself. */
static void remove_backups(bsi_state *st, int64_t id)
{
	char path[4096];
	struct dirent *de;
	DIR *d;
	int fd;

	snprintf(path, sizeof(path), "%s/backups/%lld", bsi_state_dir(st), (long long)id);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(path);
}

static int make_dir(const char *path)
{
	int e;

	if (mkdir(path, 0700) != 0 && (e = errno) != EEXIST) {
		bsi_error_set(BSI_EFAIL, "create %s: %s", path, strerror(e));
		errno = e;
		return BSI_EFAIL;
	}
	return 0;
}

/*
 * ret from a step that writes into the state directory (a backup, its
 * directory), which left errno at its failure: a full disk there is said
 * as such, as the state database says it (state.h).
 */
static int in_state(const run *r, int ret)
{
	if (ret != 0 && errno == ENOSPC)
		bsi_error_wrap("no space left on the device holding the state (%s)",
			       bsi_state_dir(r->ctx->state));
	return ret;
}

static int open_backup_dir(run *r)
{
	char base[4096];
	int fd, ret;

	errno = 0; /* in_state() reads it */
	snprintf(base, sizeof(base), "%s/backups", bsi_state_dir(r->ctx->state));
	if ((ret = make_dir(base)) != 0)
		return ret;
	if (asprintf(&r->backup_dir, "%s/%lld", base, (long long)r->id) < 0) {
		r->backup_dir = NULL;
		return bsi_error_set(BSI_EFAIL, "out of memory");
	}
	if ((ret = make_dir(r->backup_dir)) != 0)
		return ret;
	r->backup_dirfd = open(r->backup_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->backup_dirfd < 0)
		return bsi_error_set(BSI_EFAIL, "open %s: %s", r->backup_dir, strerror(errno));
	/* The new directory entry must survive a power cut as well. */
	fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bsi_error_set(BSI_EFAIL, "open %s: %s", base, strerror(errno));
	ret = fsync_fd(fd, "backup.fsync", base);
	close(fd);
	return ret;
}

/* Stage the new content of s beside its target. */
static int stage_step(run *r, step *s)
{
	char digest[BSI_DIGEST_STRLEN + 1], what[4200];
	input in = {NULL, -1};
	size_t size;
	int ret;

	snprintf(what, sizeof(what), "staged file for %s", s->path);
	if (s->payload) {
		struct stat sb;

		/* the original whose digest was checked (s->fd) gives its
		 * attributes; its name must still be that file */
		if (fstatat(s->dirfd, s->name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
			return bsi_error_set(BSI_EFAIL, "stat %s: %s", s->path, strerror(errno));
		if (sb.st_dev != s->orig.st_dev || sb.st_ino != s->orig.st_ino)
			return bsi_error_set(BSI_EFAIL, "%s changed while its replacement was staged",
					     s->path);
		if (bsi_source_open(r->ctx->source, s->payload, &in.reader, &size) != 0)
			return bsi_error_wrap("payload %s for %s", s->payload, s->path);
		/* what bsi puts in place must be a file it may replace again:
		 * the next plan and a rollback open it as a target */
		if (bsi_root_max_target(r->ctx->root) &&
		    (uint64_t)size > bsi_root_max_target(r->ctx->root)) {
			bsi_reader_free(in.reader);
			return bsi_error_set(BSI_ERECIPE,
					     "payload %s for %s is %zu bytes, more than "
					     "max_target_mib allows (%ju MiB); raise it in bsi.conf "
					     "to install it",
					     s->payload, s->path, size,
					     (uintmax_t)(bsi_root_max_target(r->ctx->root) >> 20));
		}
		ret = place_copy(&in, s->dirfd, s->stage, &s->orig, s->fd, false, s->path, "stage",
				 what, digest);
		bsi_reader_free(in.reader);
		if (ret != 0)
			return ret;
		s->staged = true;
		if (strcmp(digest, s->after) != 0)
			return bsi_error_set(BSI_ETRUST,
					     "payload %s for %s has digest %s, but the recipe says %s; "
					     "refusing it",
					     s->payload, s->path, digest, s->after);
		return 0;
	}
	ret = install_copy_of(r->ctx->state, s->source_backup, s->dirfd, s->stage, s->after,
			      "stage", what);
	if (ret == 0)
		s->staged = true;
	return ret;
}

/* Keep the current target of s in the backup directory. */
static int backup_step(run *r, step *s)
{
	char digest[BSI_DIGEST_STRLEN + 1], what[4200];
	struct stat sb;
	input in = {NULL, -1};
	int ret;

	snprintf(what, sizeof(what), "backup of %s", s->path);
	errno = 0; /* in_state() reads it */
	if (do_link(s->dirfd, s->name, r->backup_dirfd, s->backup) == 0) {
		s->backed = true;
		/* The link must name the very inode whose digest we checked. */
		if (fstatat(r->backup_dirfd, s->backup, &sb, AT_SYMLINK_NOFOLLOW) != 0)
			return bsi_error_set(BSI_EFAIL, "stat %s: %s", what, strerror(errno));
		if (sb.st_dev != s->orig.st_dev || sb.st_ino != s->orig.st_ino)
			return bsi_error_set(BSI_EFAIL, "%s changed while it was being backed up",
					     s->path);
		/* ...and have no name but these two: once renamed over, the
		 * backup must be the only name of the original */
		if (sb.st_nlink != 2)
			return bsi_error_set(BSI_ERECIPE,
					     "%s gained a hard link while it was being backed up; bsi "
					     "replaces files with one link only",
					     s->path);
		return 0;
	}
	if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
		int e = errno;

		bsi_error_set(BSI_EFAIL, "link %s into %s: %s", s->path, r->backup_dir, strerror(e));
		errno = e;
		return BSI_EFAIL;
	}
	/* a copy of the very file whose digest was checked */
	if (lseek(s->fd, 0, SEEK_SET) < 0)
		return bsi_error_set(BSI_EFAIL, "seek %s: %s", s->path, strerror(errno));
	in.fd = s->fd;
	ret = place_copy(&in, r->backup_dirfd, s->backup, &s->orig, in.fd, true, s->path, "backup",
			 what, digest);
	if (ret != 0)
		return ret;
	s->backed = true;
	if (strcmp(digest, s->before) != 0)
		return bsi_error_set(BSI_EFAIL, "%s changed while it was being backed up (%s, not %s)",
				     s->path, digest, s->before);
	return 0;
}

static int rename_step(step *s)
{
	int e = do_rename(s->dirfd, s->stage, s->name);

	if (e)
		return bsi_error_set(BSI_EFAIL, "rename staged file over %s: %s", s->path,
				     strerror(e));
	s->renamed = true;
	return 0;
}

/* Put the backup of one renamed target back (recovery and undo). */
static int restore_step(bsi_state *st, const char *backup_dir, int dirfd, const char *name,
			const char *stage, const char *path, const char *backup, const char *before)
{
	char src[4200], what[4200];
	int ret, e;

	snprintf(src, sizeof(src), "%s/%s", backup_dir, backup);
	snprintf(what, sizeof(what), "restored copy of %s", path);
	if ((ret = remove_name(dirfd, stage, what)) != 0)
		return ret;
	if ((ret = install_copy_of(st, src, dirfd, stage, before, "restore", what)) != 0)
		return ret;
	e = do_rename(dirfd, stage, name);
	if (e) {
		remove_name(dirfd, stage, what);
		return bsi_error_set(BSI_EFAIL, "restore %s: rename: %s", path, strerror(e));
	}
	return fsync_fd(dirfd, "txn.dirsync", path);
}

/*
 * Undo a transaction that failed in this process: restore renamed targets,
 * remove staged files and backups, record it undone.  Keeps the caller's
 * error message; when undoing fails as well it says so, and the
 * transaction stays recorded so that bsi_txn_recover() finishes it.
 */
static int undo(run *r, int err)
{
	char saved[4096], undo_err[2048] = "";
	bsi_state *st = r->ctx->state;
	bool clean = true;
	size_t i;

	snprintf(saved, sizeof(saved), "%s", bsi_error_message());
	for (i = r->n; i-- > 0;) {
		step *s = &r->steps[i];

		if (s->renamed) {
			if (restore_step(st, r->backup_dir, s->dirfd, s->name, s->stage, s->path,
					 s->backup, s->before) != 0) {
				if (clean)
					snprintf(undo_err, sizeof(undo_err), "%s", bsi_error_message());
				clean = false;
				continue;
			}
			s->renamed = false;
		} else if (s->staged && remove_name(s->dirfd, s->stage, s->path) != 0) {
			if (clean)
				snprintf(undo_err, sizeof(undo_err), "%s", bsi_error_message());
			clean = false;
		}
	}
	bsi_state_rollback(st);
	if (clean && r->id > 0) {
		if (bsi_state_txn_set_state(st, r->id, BSI_TXN_UNDONE) == 0) {
			remove_backups(st, r->id);
		} else {
			snprintf(undo_err, sizeof(undo_err), "%s", bsi_error_message());
			clean = false;
		}
	}
	bsi_state_history_add(st, strcmp(r->kind, "apply") == 0 ? "apply-failed" : "rollback-failed",
			      r->improvement, NULL, NULL, saved);
	if (!clean)
		return bsi_error_set(err,
				     "%s; undoing it failed as well (%s): the next bsi run will "
				     "finish undoing it",
				     saved, undo_err);
	return bsi_error_set(err, "%s; nothing was changed", saved);
}

static void run_free(run *r)
{
	size_t i;

	for (i = 0; r->steps && i < r->cap; i++) {
		step_close(&r->steps[i]);
		free(r->steps[i].source_backup);
	}
	free(r->steps);
	if (r->backup_dirfd >= 0)
		close(r->backup_dirfd);
	free(r->backup_dir);
}

static int record_txn(run *r)
{
	bsi_state_txn t = {0};
	bsi_state_action *acts;
	size_t i;
	int ret;

	if (!(acts = calloc(r->n, sizeof(*acts))))
		return bsi_error_set(BSI_EFAIL, "out of memory");
	for (i = 0; i < r->n; i++) {
		acts[i].path = (char *)r->steps[i].path;
		acts[i].before = (char *)r->steps[i].before;
		acts[i].after = (char *)r->steps[i].after;
		acts[i].backup = r->steps[i].backup;
		acts[i].stage = r->steps[i].stage;
	}
	t.improvement = (char *)r->improvement;
	t.kind = (char *)r->kind;
	t.actions = acts;
	t.nactions = r->n;
	if ((ret = bsi_state_begin(r->ctx->state)) == 0) {
		if ((ret = bsi_state_txn_insert(r->ctx->state, &t, &r->id)) == 0)
			ret = bsi_state_commit(r->ctx->state);
		else
			bsi_state_rollback(r->ctx->state);
	}
	free(acts);
	return ret;
}

/*
 * Steps 2-7 of the transaction for the prepared steps of r: record, stage,
 * back up, record staged, rename, and finally `commit_fn` (which records the
 * outcome in the same SQL transaction as the committed state).  Any failure
 * is undone.
 */
typedef int (*commit_fn)(run *r, void *arg);

static int execute(run *r, commit_fn commit, void *arg)
{
	const char *k = r->kind;
	size_t i;
	int ret;

	if ((ret = record_txn(r)) != 0) {
		char saved[4096];

		snprintf(saved, sizeof(saved), "%s", bsi_error_message());
		return bsi_error_set(ret, "%s %s: record transaction: %s; nothing was changed", k,
				     r->improvement, saved);
	}
	failpoint(k, "prepared");
	if ((ret = in_state(r, open_backup_dir(r))) != 0)
		goto fail;
	for (i = 0; i < r->n; i++)
		if ((ret = stage_step(r, &r->steps[i])) != 0)
			goto fail;
	if ((ret = fsync_dirs(r, "after staging")) != 0)
		goto fail;
	failpoint(k, "staged");
	for (i = 0; i < r->n; i++)
		if ((ret = in_state(r, backup_step(r, &r->steps[i]))) != 0)
			goto fail;
	if ((ret = in_state(r, fsync_fd(r->backup_dirfd, "backup.fsync", r->backup_dir))) != 0)
		goto fail;
	failpoint(k, "backed-up");
	if ((ret = bsi_state_begin(r->ctx->state)) != 0 ||
	    (ret = bsi_state_txn_set_state(r->ctx->state, r->id, BSI_TXN_STAGED)) != 0 ||
	    (ret = bsi_state_commit(r->ctx->state)) != 0) {
		bsi_error_wrap("record transaction staged");
		goto fail;
	}
	failpoint(k, "recorded");
	for (i = 0; i < r->n; i++) {
		if ((ret = rename_step(&r->steps[i])) != 0)
			goto fail;
		failpoint_n(k, "renamed", i + 1);
	}
	if ((ret = fsync_dirs(r, "after renaming")) != 0)
		goto fail;
	failpoint(k, "renamed.all");
	if ((ret = bsi_state_begin(r->ctx->state)) != 0 ||
	    (ret = bsi_state_txn_set_state(r->ctx->state, r->id, BSI_TXN_COMMITTED)) != 0 ||
	    (ret = commit(r, arg)) != 0 || (ret = bsi_state_commit(r->ctx->state)) != 0) {
		bsi_error_wrap("record transaction committed");
		goto fail;
	}
	failpoint(k, "committed");
	return 0;
fail:
	bsi_error_wrap("%s %s", k, r->improvement);
	return undo(r, ret);
}

/* Restart each service; a failure leaves restart_pending set and is
 * reported in out->reason (all services are tried). */
static int restart_services(bsi_txn_result *out, const bsi_txn_ctx *ctx, const char *id,
			    char **services, size_t n, const char *kind)
{
	char failed[900] = "";
	size_t i;
	int ret;

	if (n == 0)
		return 0;
	if (!ctx->plugin) {
		snprintf(failed, sizeof(failed), "no service manager configured");
	} else {
		for (i = 0; i < n; i++) {
			if (bsi_plugin_restart(ctx->plugin, services[i]) != 0 && !failed[0])
				snprintf(failed, sizeof(failed), "%s", bsi_error_message());
		}
	}
	if (failed[0]) {
		out->restart_pending = true;
		snprintf(out->reason, sizeof(out->reason),
			 "files are in place but a restart failed: %s; it is retried by the next "
			 "apply",
			 failed);
		return bsi_state_history_add(ctx->state, "restart-failed", id, NULL, NULL, failed);
	}
	failpoint(kind, "restarted");
	if ((ret = bsi_state_begin(ctx->state)) != 0)
		return ret;
	if ((ret = bsi_state_improvement_set_restart_pending(ctx->state, id, false)) != 0 ||
	    (ret = bsi_state_history_add(ctx->state, "restart", id, NULL, NULL, NULL)) != 0) {
		bsi_state_rollback(ctx->state);
		return ret;
	}
	out->restart_pending = false;
	return bsi_state_commit(ctx->state);
}

/* The services an improvement restarts, borrowed from imp. */
static char **imp_services(const bsi_improvement *imp, size_t *out_n)
{
	char **v = calloc(imp->nactions + 1, sizeof(*v));
	size_t i, n = 0;

	for (i = 0; v && i < imp->nactions; i++)
		if (imp->actions[i].op == BSI_ACTION_RESTART && imp->actions[i].service)
			v[n++] = imp->actions[i].service;
	*out_n = n;
	return v;
}

/* The services named in the notes JSON (borrowed from *json, which the
 * caller decrefs); NULL when the notes cannot be read (out of memory),
 * never a shorter list. */
static char **notes_services(const char *notes, json_t **json, size_t *out_n)
{
	json_t *acts, *a;
	char **v;
	size_t i, n = 0;

	*out_n = 0;
	*json = notes ? json_loads(notes, 0, NULL) : NULL;
	if (notes && !*json)
		return NULL;
	acts = json_object_get(*json, "actions");
	if (!(v = calloc(json_array_size(acts) + 1, sizeof(*v))))
		return NULL;
	json_array_foreach(acts, i, a) {
		const char *op = json_string_value(json_object_get(a, "op"));
		const char *svc = json_string_value(json_object_get(a, "service"));

		if (op && strcmp(op, "restart") == 0 && svc)
			v[n++] = (char *)svc;
	}
	*out_n = n;
	return v;
}

static void result_init(bsi_txn_result *out, bsi_status status)
{
	memset(out, 0, sizeof(*out));
	out->status = status;
}

/* ---- apply ----------------------------------------------------------- */

typedef struct {
	const bsi_txn_ctx *ctx;
	const bsi_improvement *imp;
	const char *feed_commit;
	bool restart;
	size_t replaced;
} apply_arg;

static int apply_commit(run *r, void *arg)
{
	apply_arg *a = arg;
	char detail[64];
	int ret;

	snprintf(detail, sizeof(detail), "replaced %zu file(s)", a->replaced);
	/* The notes (what verify checks) now describe the files on disk. */
	if ((ret = bsi_state_improvement_note(r->ctx->state, a->imp)) != 0)
		return ret;
	if ((ret = bsi_state_improvement_set_applied(r->ctx->state, r->improvement, a->feed_commit,
						     a->ctx->signer, a->restart)) != 0)
		return ret;
	return bsi_state_history_add(r->ctx->state, "apply", r->improvement, a->feed_commit,
				     a->ctx->signer, detail);
}

static int validate(const bsi_improvement *imp)
{
	size_t i, j;

	for (i = 0; i < imp->nactions; i++) {
		const bsi_action *a = &imp->actions[i];

		if (a->op == BSI_ACTION_RESTART) {
			if (!a->service || !*a->service)
				return bsi_error_set(BSI_ERECIPE, "%s: restart without a service",
						     imp->id);
			continue;
		}
		if (!a->path || !*a->path || !a->payload || !bsi_digest_valid(a->from) ||
		    !bsi_digest_valid(a->to))
			return bsi_error_set(BSI_ERECIPE,
					     "%s: replace %s needs a path, a payload and sha256 "
					     "digests from and to",
					     imp->id, a->path ? a->path : "(no path)");
		if (strcmp(a->from, a->to) == 0)
			return bsi_error_set(BSI_ERECIPE, "%s: replace %s: from and to are equal",
					     imp->id, a->path);
		for (j = 0; j < i; j++)
			if (imp->actions[j].op == BSI_ACTION_REPLACE &&
			    strcmp(imp->actions[j].path, a->path) == 0)
				return bsi_error_set(BSI_ERECIPE, "%s: %s is replaced twice",
						     imp->id, a->path);
	}
	return 0;
}

/*
 * Nothing left to replace: record applied when it was not, or retry a
 * pending restart.  A restart-only improvement restarts on its first apply.
 */
static int apply_nothing(bsi_txn_result *out, const bsi_txn_ctx *ctx, const bsi_improvement *imp,
			 const char *feed_commit, size_t nreplace)
{
	bsi_state_improvement *cur = NULL;
	char **services = NULL;
	size_t nservices = 0;
	bool restart;
	int ret;

	if ((ret = bsi_state_improvement_note(ctx->state, imp)) != 0 ||
	    (ret = bsi_state_improvement_get(ctx->state, imp->id, &cur)) != 0)
		return ret;
	services = imp_services(imp, &nservices);
	if (cur->status == BSI_STATUS_APPLIED) {
		restart = cur->restart_pending;
	} else {
		restart = nreplace == 0 && nservices > 0;
		if ((ret = bsi_state_begin(ctx->state)) != 0)
			goto done;
		if ((ret = bsi_state_improvement_set_applied(ctx->state, imp->id, feed_commit,
							     ctx->signer, restart)) != 0 ||
		    (ret = bsi_state_history_add(ctx->state, "apply", imp->id, feed_commit,
						 ctx->signer,
						 nreplace ? "every file already had its new digest"
							  : "nothing to replace")) != 0) {
			bsi_state_rollback(ctx->state);
			goto done;
		}
		if ((ret = bsi_state_commit(ctx->state)) != 0)
			goto done;
	}
	out->status = BSI_STATUS_APPLIED;
	if (restart)
		ret = restart_services(out, ctx, imp->id, services, nservices, "apply");
done:
	free(services);
	bsi_state_improvement_free(cur);
	return ret;
}

int bsi_txn_apply(bsi_txn_result *out, const bsi_txn_ctx *ctx, const bsi_improvement *imp)
{
	char digest[BSI_DIGEST_STRLEN + 1];
	const char *feed_commit = ctx->feed_commit;
	run r = {.ctx = ctx, .improvement = imp->id, .kind = "apply", .backup_dirfd = -1};
	apply_arg arg = {.ctx = ctx, .imp = imp};
	char **services = NULL;
	bsi_state_improvement *known = NULL;
	size_t i, nservices = 0, nreplace = 0, nseen = 0;
	file_id *seen = NULL;
	bool in_place;
	int ret;

	result_init(out, BSI_STATUS_PENDING);
	if (!imp->id || !*imp->id)
		return bsi_error_set(BSI_ERECIPE, "improvement without an id");
	if ((ret = validate(imp)) != 0 || (ret = bsi_state_bind_root(ctx->state, ctx->root)) != 0)
		return ret;
	if (!feed_commit && ctx->source)
		feed_commit = bsi_source_commit(ctx->source);
	/*
	 * An improvement whose files are in place (applied, obsolete, tampered)
	 * keeps the notes that describe them until this apply changes them: a
	 * feed that later edits the recipe must not make verify judge the
	 * files on disk against digests they never had.
	 */
	if ((ret = bsi_state_improvement_get(ctx->state, imp->id, &known)) != 0)
		return ret;
	in_place = known && (known->status == BSI_STATUS_APPLIED ||
			     known->status == BSI_STATUS_OBSOLETE ||
			     known->status == BSI_STATUS_TAMPERED);
	bsi_state_improvement_free(known);
	if (!in_place && (ret = bsi_state_improvement_note(ctx->state, imp)) != 0)
		return ret;
	if ((ret = run_alloc(&r, imp->nactions + 1)) != 0)
		return ret;
	if (!(seen = calloc(imp->nactions + 1, sizeof(*seen)))) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}

	/* 1. Every target must be at `from` (to do) or `to` (done). */
	for (i = 0; i < imp->nactions; i++) {
		const bsi_action *a = &imp->actions[i];
		step *s = &r.steps[r.n];

		if (a->op != BSI_ACTION_REPLACE)
			continue;
		nreplace++;
		if ((ret = look_at_target(ctx->state, ctx->root, a->path, s, digest)) != 0 ||
		    (digest[0] && (ret = check_distinct(seen, &nseen, s, a->path)) != 0))
			goto done;
		if (strcmp(digest, a->to) == 0) {
			step_close(s);
			continue;
		}
		if (strcmp(digest, a->from) != 0) {
			out->status = BSI_STATUS_NOT_APPLICABLE;
			if (!digest[0])
				snprintf(out->reason, sizeof(out->reason), "%s is missing (expected %s)",
					 a->path, a->from);
			else
				snprintf(out->reason, sizeof(out->reason),
					 "%s has %s, expected %s (or %s when already patched)",
					 a->path, digest, a->from, a->to);
			/* Files of an earlier apply stay, and so does its status. */
			if (in_place ||
			    (ret = bsi_state_improvement_set_status(ctx->state, imp->id,
								    BSI_STATUS_NOT_APPLICABLE,
								    out->reason)) == 0)
				ret = bsi_state_history_add(ctx->state, "not-applicable", imp->id,
							    feed_commit, ctx->signer, out->reason);
			goto done;
		}
		s->path = a->path;
		s->before = a->from;
		s->after = a->to;
		s->payload = a->payload;
		snprintf(s->backup, sizeof(s->backup), "%zu", r.n);
		if ((ret = stage_name(s->name, s->stage)) != 0)
			goto done;
		r.n++;
	}
	if (r.n == 0) {
		ret = apply_nothing(out, ctx, imp, feed_commit, nreplace);
		goto done;
	}
	if (!ctx->source) {
		ret = bsi_error_set(BSI_EUSAGE, "apply %s: no payload source", imp->id);
		goto done;
	}

	/* 2-7. */
	services = imp_services(imp, &nservices);
	arg.feed_commit = feed_commit;
	arg.restart = nservices > 0;
	arg.replaced = r.n;
	if ((ret = execute(&r, apply_commit, &arg)) != 0)
		goto done;
	out->status = BSI_STATUS_APPLIED;
	out->changed = true;
	out->restart_pending = arg.restart;
	ret = restart_services(out, ctx, imp->id, services, nservices, "apply");
done:
	free(services);
	free(seen);
	run_free(&r);
	return ret;
}

/* ---- rollback -------------------------------------------------------- */

static int rollback_commit(run *r, void *arg)
{
	bool *restart = arg;
	int ret;

	if ((ret = bsi_state_improvement_set_status(r->ctx->state, r->improvement,
						    BSI_STATUS_ROLLED_BACK, NULL)) != 0 ||
	    (ret = bsi_state_improvement_set_restart_pending(r->ctx->state, r->improvement,
							     *restart)) != 0)
		return ret;
	return bsi_state_history_add(r->ctx->state, "rollback", r->improvement, NULL, NULL, NULL);
}

/* The action for `path` in txns[t] (a transaction replaces a path once),
 * or NULL. */
static const bsi_state_action *action_for(const bsi_state_txn *txn, const char *path)
{
	for (size_t i = 0; i < txn->nactions; i++)
		if (strcmp(txn->actions[i].path, path) == 0)
			return &txn->actions[i];
	return NULL;
}

/* The newest apply action for `path` among txns[0..n) (oldest first). */
static const bsi_state_action *newest_action(bsi_state_txn **txns, size_t n, const char *path)
{
	const bsi_state_action *a;

	for (size_t t = n; t-- > 0;)
		if ((a = action_for(txns[t], path)))
			return a;
	return NULL;
}

/*
 * What rollback puts back for the path of a, the action of txns[t]: the
 * oldest action of the unbroken chain that ends in a, each link's `before`
 * the `after` of the one before it (a revision of the improvement applied
 * on top of an earlier one, docs/transactions.md).  Its `before` is the
 * file as it was before bsi first replaced it, and its transaction
 * (*out_txn) holds that backup.  The chain breaks where someone else
 * changed the file between two applies (reverted it, or a full update
 * replaced it): what bsi found then is what it puts back.
 */
static const bsi_state_action *chain_start(bsi_state_txn **txns, size_t t,
					   const bsi_state_action *a, const bsi_state_txn **out_txn)
{
	*out_txn = txns[t];
	while (t-- > 0) {
		const bsi_state_action *older = action_for(txns[t], a->path);

		if (!older)
			continue;
		if (strcmp(older->after, a->before) != 0)
			break;
		a = older;
		*out_txn = txns[t];
	}
	return a;
}

/* Record a rollback that had nothing to put back (every file was already
 * at its original): a committed rollback transaction without actions marks
 * the boundary for bsi_state_txn_applied. */
static int record_empty_rollback(const bsi_txn_ctx *ctx, const char *id)
{
	bsi_state_txn t = {.improvement = (char *)id, .kind = (char *)"rollback"};
	run r = {.ctx = ctx, .improvement = id, .kind = "rollback", .backup_dirfd = -1};
	int64_t txn_id;
	int ret;

	if ((ret = bsi_state_begin(ctx->state)) != 0)
		return ret;
	if ((ret = bsi_state_txn_insert(ctx->state, &t, &txn_id)) != 0 ||
	    (ret = bsi_state_txn_set_state(ctx->state, txn_id, BSI_TXN_COMMITTED)) != 0 ||
	    (ret = rollback_commit(&r, &(bool){false})) != 0) {
		bsi_state_rollback(ctx->state);
		return ret;
	}
	return bsi_state_commit(ctx->state);
}

/*
 * Start of rollback and verify: bind the state to this root and load the
 * recorded improvement id (unknown: BSI_EUSAGE); out starts with its
 * status.
 */
static int load_recorded(bsi_txn_result *out, const bsi_txn_ctx *ctx, const char *id,
			 bsi_state_improvement **cur)
{
	int ret;

	result_init(out, BSI_STATUS_PENDING);
	if ((ret = bsi_state_bind_root(ctx->state, ctx->root)) != 0 ||
	    (ret = bsi_state_improvement_get(ctx->state, id, cur)) != 0)
		return ret;
	if (!*cur)
		return bsi_error_set(BSI_EUSAGE, "unknown improvement %s", id);
	out->status = (*cur)->status;
	return 0;
}

/* Whether files of cur's are on record as replaced. */
static bool has_files(const bsi_state_improvement *cur)
{
	return cur->status == BSI_STATUS_APPLIED || cur->status == BSI_STATUS_TAMPERED ||
	       cur->status == BSI_STATUS_OBSOLETE;
}

int bsi_txn_rollback(bsi_txn_result *out, const bsi_txn_ctx *ctx, const char *id)
{
	char digest[BSI_DIGEST_STRLEN + 1];
	run r = {.ctx = ctx, .improvement = id, .kind = "rollback", .backup_dirfd = -1};
	bsi_state_improvement *cur = NULL;
	bsi_state_txn **applied = NULL;
	json_t *notes = NULL;
	char **services = NULL;
	size_t i, t, napplied = 0, nactions = 0, nservices = 0, nseen = 0;
	file_id *seen = NULL;
	bool restart;
	int ret;

	if ((ret = load_recorded(out, ctx, id, &cur)) != 0)
		goto done;
	if (!has_files(cur)) {
		ret = bsi_error_set(BSI_EUSAGE, "%s is %s, not applied: nothing to roll back", id,
				    bsi_status_name(cur->status));
		goto done;
	}
	/* An improvement re-applied after a file was reverted, or revised and
	 * applied again, has several apply transactions; each file must be at
	 * the `to` of its newest one and goes back to the start of its chain
	 * (chain_start()). */
	if ((ret = bsi_state_txn_applied(ctx->state, id, 0, &applied, &napplied)) != 0)
		goto done;
	for (t = 0; t < napplied; t++)
		nactions += applied[t]->nactions;
	if ((ret = run_alloc(&r, nactions + 1)) != 0)
		goto done;
	if (!(seen = calloc(nactions + 1, sizeof(*seen)))) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	/* Every replaced file must still be the payload (or already the original). */
	for (t = 0; t < napplied; t++) {
		for (i = 0; i < applied[t]->nactions; i++) {
			const bsi_state_txn *owner = NULL;
			const bsi_state_action *a = &applied[t]->actions[i], *first;
			step *s = &r.steps[r.n];

			if (newest_action(applied, napplied, a->path) != a)
				continue;
			first = chain_start(applied, t, a, &owner);
			if ((ret = look_at_target(ctx->state, ctx->root, a->path, s, digest)) != 0 ||
			    (digest[0] && (ret = check_distinct(seen, &nseen, s, a->path)) != 0))
				goto done;
			if (strcmp(digest, first->before) == 0) {
				step_close(s);
				continue;
			}
			if (strcmp(digest, a->after) != 0) {
				ret = bsi_error_set(BSI_EFAIL,
						    "cannot roll back %s: %s %s since it was applied "
						    "(it has %s, not %s); rolling back would destroy "
						    "that change; nothing was changed",
						    id, a->path, digest[0] ? "changed" : "was removed",
						    digest[0] ? digest : "nothing", a->after);
				goto done;
			}
			s->path = a->path;
			s->before = a->after;
			s->after = first->before;
			if (asprintf(&s->source_backup, "%s/backups/%lld/%s",
				     bsi_state_dir(ctx->state), (long long)owner->id, first->backup) < 0) {
				s->source_backup = NULL;
				ret = bsi_error_set(BSI_EFAIL, "out of memory");
				goto done;
			}
			snprintf(s->backup, sizeof(s->backup), "%zu", r.n);
			if ((ret = stage_name(s->name, s->stage)) != 0)
				goto done;
			r.n++;
		}
	}
	services = notes_services(cur->notes, &notes, &nservices);
	if (!services) {
		/* a rollback that forgot its restarts would look complete */
		ret = bsi_error_set(BSI_EFAIL, "rollback %s: cannot read its notes (out of memory)",
				    id);
		goto done;
	}
	restart = nservices > 0;
	if (r.n == 0) {
		/* Nothing of ours is left in place: just record it. */
		if ((ret = record_empty_rollback(ctx, id)) != 0)
			goto done;
		out->status = BSI_STATUS_ROLLED_BACK;
	} else {
		if ((ret = execute(&r, rollback_commit, &restart)) != 0)
			goto done;
		remove_backups(ctx->state, r.id);
		out->status = BSI_STATUS_ROLLED_BACK;
		out->changed = true;
		out->restart_pending = restart;
	}
	/* The originals are live again; the backups are not needed any more. */
	for (t = 0; t < napplied; t++)
		remove_backups(ctx->state, applied[t]->id);
	if (r.n > 0)
		ret = restart_services(out, ctx, id, services, nservices, "rollback");
done:
	free(seen);
	free(services);
	json_decref(notes);
	run_free(&r);
	bsi_state_txn_list_free(applied, napplied);
	bsi_state_improvement_free(cur);
	return ret;
}

/* ---- recovery -------------------------------------------------------- */

/* Finish one transaction a dead bsi left preparing or staged. */
static int recover_one(const bsi_txn_ctx *ctx, bsi_state_txn *t)
{
	char digest[BSI_DIGEST_STRLEN + 1], name[NAME_MAX + 1], backup_dir[4096], detail[1200];
	bsi_state *st = ctx->state;
	bool apply = strcmp(t->kind, "apply") == 0, forward = t->state == BSI_TXN_STAGED;
	int *dirfds = NULL;
	char (*names)[NAME_MAX + 1] = NULL;
	enum { OLD, NEW, OTHER } *cls = NULL;
	const char *odd = NULL;
	size_t i, nrestored = 0;
	int ret = 0;

	snprintf(backup_dir, sizeof(backup_dir), "%s/backups/%lld", bsi_state_dir(st),
		 (long long)t->id);
	dirfds = malloc((t->nactions + 1) * sizeof(*dirfds));
	names = malloc((t->nactions + 1) * sizeof(*names));
	cls = malloc((t->nactions + 1) * sizeof(*cls));
	/* before any goto done: done closes every dirfds[i] >= 0 (clang-tidy
	 * found it closing uninitialized values when names or cls was NULL) */
	for (i = 0; dirfds && i < t->nactions; i++)
		dirfds[i] = -1;
	if (!dirfds || !names || !cls) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	/* Where is each target?  Renames only start once the txn is STAGED. */
	for (i = 0; i < t->nactions; i++) {
		bsi_state_action *a = &t->actions[i];

		if ((ret = open_parent(ctx->root, a->path, &dirfds[i], names[i])) != 0)
			goto done;
		cls[i] = OTHER;
		if (dirfds[i] < 0)
			continue;
		if ((ret = remove_name(dirfds[i], a->stage, a->path)) != 0)
			goto done;
		if ((ret = hash_at(st, dirfds[i], names[i], a->path, digest)) != 0)
			goto done;
		cls[i] = strcmp(digest, a->after) == 0    ? NEW
			 : strcmp(digest, a->before) == 0 ? OLD
							  : OTHER;
		if (cls[i] != NEW)
			forward = false;
		if (cls[i] == OTHER && !odd)
			odd = a->path;
	}
	if (forward && t->nactions > 0) {
		/* Every rename happened: finish it. */
		if ((ret = bsi_state_begin(st)) != 0)
			goto done;
		if ((ret = bsi_state_txn_set_state(st, t->id, BSI_TXN_COMMITTED)) == 0) {
			if (apply)
				ret = bsi_state_improvement_set_applied(st, t->improvement, NULL, NULL,
									true);
			else if ((ret = bsi_state_improvement_set_status(
					  st, t->improvement, BSI_STATUS_ROLLED_BACK, NULL)) == 0)
				ret = bsi_state_improvement_set_restart_pending(st, t->improvement,
										true);
		}
		if (ret == 0)
			ret = bsi_state_history_add(st, "recover", t->improvement, NULL, NULL,
						    apply ? "interrupted apply completed; service "
							    "restarts are pending"
							  : "interrupted rollback completed; service "
							    "restarts are pending");
		if (ret != 0) {
			bsi_state_rollback(st);
			goto done;
		}
		if ((ret = bsi_state_commit(st)) != 0)
			goto done;
		if (!apply) {
			bsi_state_txn **applied = NULL;
			size_t n = 0, k;

			remove_backups(st, t->id);
			/* Those of the applies it undid are not needed either; the
			 * rollback is committed, so ask for the ones before it. */
			if (bsi_state_txn_applied(st, t->improvement, t->id, &applied, &n) == 0)
				for (k = 0; k < n; k++)
					remove_backups(st, applied[k]->id);
			bsi_state_txn_list_free(applied, n);
		}
		goto done;
	}
	/* Otherwise put back every target that was already renamed. */
	for (i = 0; i < t->nactions; i++) {
		bsi_state_action *a = &t->actions[i];

		if (cls[i] != NEW)
			continue;
		snprintf(name, sizeof(name), "%s", names[i]);
		if ((ret = restore_step(st, backup_dir, dirfds[i], name, a->stage, a->path, a->backup,
					a->before)) != 0) {
			bsi_error_wrap("recovering %s %s", t->kind, t->improvement);
			goto done;
		}
		failpoint_n("recover", "restored", ++nrestored);
	}
	if ((ret = bsi_state_begin(st)) != 0)
		goto done;
	if (odd)
		snprintf(detail, sizeof(detail),
			 "interrupted %s undone, but %s has neither its old nor its new digest",
			 t->kind, odd);
	else
		snprintf(detail, sizeof(detail), "interrupted %s undone; files are as before",
			 t->kind);
	if ((ret = bsi_state_txn_set_state(st, t->id, BSI_TXN_UNDONE)) != 0 ||
	    (odd && (ret = bsi_state_improvement_set_status(st, t->improvement,
							    BSI_STATUS_TAMPERED, detail)) != 0) ||
	    (ret = bsi_state_history_add(st, "recover", t->improvement, NULL, NULL, detail)) != 0) {
		bsi_state_rollback(st);
		goto done;
	}
	if ((ret = bsi_state_commit(st)) != 0)
		goto done;
	remove_backups(st, t->id);
done:
	for (i = 0; dirfds && i < t->nactions; i++)
		if (dirfds[i] >= 0)
			close(dirfds[i]);
	free(dirfds);
	free(names);
	free(cls);
	return ret;
}

/*
 * Delete the backup directories nothing needs any more
 * (bsi_state_txn_backups_needed()).  A rollback records itself committed
 * before it deletes its own backups and those of the applies it undid; an
 * undo and a recovery record undone before they delete: a kill in between
 * left them behind for good.  Names that are not transaction ids are left
 * alone.  What cannot be read or deleted costs disk space, never the
 * command: no error.
 */
static void sweep_backups(bsi_state *st)
{
	char path[4096];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/backups", bsi_state_dir(st));
	if (!(d = opendir(path)))
		return;
	while ((de = readdir(d))) {
		char *end;
		long long id;
		bool needed;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		errno = 0;
		id = strtoll(de->d_name, &end, 10);
		if (*end || errno)
			continue;
		if (bsi_state_txn_backups_needed(st, id, &needed) != 0) {
			bsi_error_clear();
			break;
		}
		if (!needed)
			remove_backups(st, id);
	}
	closedir(d);
}

int bsi_txn_recover(const bsi_txn_ctx *ctx, size_t *out_count)
{
	bsi_state_txn **list = NULL;
	size_t i, n = 0;
	int ret;

	if (out_count)
		*out_count = 0;
	if ((ret = bsi_state_txn_unfinished(ctx->state, &list, &n)) != 0)
		return ret;
	/* Never "recover" against another tree than the one the transactions
	 * were made in: it would look like tampering and restore nothing. */
	if (n > 0 && (ret = bsi_state_bind_root(ctx->state, ctx->root)) != 0) {
		bsi_error_wrap("cannot recover the interrupted %s of %s", list[0]->kind,
			       list[0]->improvement);
		bsi_state_txn_list_free(list, n);
		return ret;
	}
	for (i = 0; i < n; i++) {
		if ((ret = recover_one(ctx, list[i])) != 0)
			break;
		if (out_count)
			(*out_count)++;
	}
	bsi_state_txn_list_free(list, n);
	if (ret == 0)
		sweep_backups(ctx->state);
	return ret;
}

/* ---- verify ---------------------------------------------------------- */

/* Does the plan say improvement id's own `when` no longer holds here (the
 * device moved on, as after a full OS update)?  Its reason, or NULL. */
static const char *outgrown(const bsi_changeset *known, const char *id)
{
	const bsi_improvement *imp = known ? bsi_changeset_find(known, id) : NULL;

	return imp && imp->when_false ? (imp->reason ? imp->reason : "its condition is false")
				      : NULL;
}

/* Does the plan name `digest` for `path` in an improvement other than id? */
static bool known_version(const bsi_changeset *known, const char *id, const char *path,
			  const char *digest)
{
	size_t i, j;

	for (i = 0; known && i < known->count; i++) {
		const bsi_improvement *imp = &known->items[i];

		if (imp->id && strcmp(imp->id, id) == 0)
			continue;
		for (j = 0; j < imp->nactions; j++) {
			const bsi_action *a = &imp->actions[j];

			if (a->op == BSI_ACTION_REPLACE && a->path && strcmp(a->path, path) == 0 &&
			    ((a->from && strcmp(a->from, digest) == 0) ||
			     (a->to && strcmp(a->to, digest) == 0)))
				return true;
		}
	}
	return false;
}

int bsi_txn_verify(bsi_txn_result *out, const bsi_txn_ctx *ctx, const char *id,
		   const bsi_changeset *known)
{
	char digest[BSI_DIGEST_STRLEN + 1];
	bsi_state_improvement *cur = NULL;
	bsi_status verdict = BSI_STATUS_APPLIED;
	json_t *notes = NULL, *acts, *a;
	size_t i;
	int ret;

	if ((ret = load_recorded(out, ctx, id, &cur)) != 0 || !has_files(cur))
		goto done;
	if (!(notes = json_loads(cur->notes ? cur->notes : "", 0, NULL))) {
		ret = bsi_error_set(BSI_EFAIL, "state: notes of %s are not JSON", id);
		goto done;
	}
	acts = json_object_get(notes, "actions");
	json_array_foreach(acts, i, a) {
		const char *op = json_string_value(json_object_get(a, "op"));
		const char *path = json_string_value(json_object_get(a, "path"));
		const char *from = json_string_value(json_object_get(a, "from"));
		const char *to = json_string_value(json_object_get(a, "to"));
		bool tampered = false;

		if (!op || strcmp(op, "replace") != 0 || !path || !from || !to)
			continue;
		ret = bsi_state_hash_file(ctx->state, ctx->root, path, digest);
		if (ret == BSI_ERECIPE) {
			/* Replaced by a symlink or a directory: not ours any more. */
			snprintf(digest, sizeof(digest), "%s", "not-a-regular-file");
			ret = 0;
		} else if (ret != 0) {
			goto done;
		}
		if (strcmp(digest, to) == 0)
			continue;
		if (!digest[0]) {
			snprintf(out->reason, sizeof(out->reason), "%s is missing", path);
			tampered = true;
		} else if (strcmp(digest, from) == 0) {
			snprintf(out->reason, sizeof(out->reason),
				 "%s is back at its unpatched version %s without a rollback", path,
				 from);
			tampered = true;
		} else if (known_version(known, id, path, digest)) {
			if (verdict == BSI_STATUS_APPLIED) {
				verdict = BSI_STATUS_OBSOLETE;
				snprintf(out->reason, sizeof(out->reason),
					 "%s was replaced by a newer version %s", path, digest);
			}
		} else if (outgrown(known, id)) {
			if (verdict == BSI_STATUS_APPLIED) {
				verdict = BSI_STATUS_OBSOLETE;
				snprintf(out->reason, sizeof(out->reason),
					 "%s was replaced (%s) and the improvement no longer applies "
					 "to this device: %s",
					 path, digest, outgrown(known, id));
			}
		} else {
			snprintf(out->reason, sizeof(out->reason),
				 "%s has %s, which is neither the patched version %s nor a known "
				 "newer version",
				 path, digest, to);
			tampered = true;
		}
		if (tampered) {
			verdict = BSI_STATUS_TAMPERED;
			break;
		}
	}
	if (verdict == BSI_STATUS_APPLIED)
		out->reason[0] = '\0';
	out->status = verdict;
	if (verdict == cur->status && (verdict == BSI_STATUS_APPLIED ||
				       (cur->reason && strcmp(cur->reason, out->reason) == 0)))
		goto done;
	if ((ret = bsi_state_begin(ctx->state)) != 0)
		goto done;
	if ((ret = bsi_state_improvement_set_status(ctx->state, id, verdict,
						    out->reason[0] ? out->reason : NULL)) != 0 ||
	    (ret = bsi_state_history_add(ctx->state, "verify", id, NULL, NULL,
					 out->reason[0] ? out->reason : bsi_status_name(verdict))) !=
		    0) {
		bsi_state_rollback(ctx->state);
		goto done;
	}
	ret = bsi_state_commit(ctx->state);
done:
	json_decref(notes);
	bsi_state_improvement_free(cur);
	return ret;
}

int bsi_txn_hold(const bsi_txn_ctx *ctx, const char *id, bool held)
{
	int ret;

	if ((ret = bsi_state_begin(ctx->state)) != 0)
		return ret;
	if ((ret = bsi_state_improvement_set_held(ctx->state, id, held)) != 0 ||
	    (ret = bsi_state_history_add(ctx->state, held ? "hold" : "release", id, NULL, NULL,
					 NULL)) != 0) {
		bsi_state_rollback(ctx->state);
		return ret;
	}
	return bsi_state_commit(ctx->state);
}
