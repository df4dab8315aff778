/*
 * fsroot.h - paths confined to a target root.
 *
 * Every path a recipe names is relative to the target root (--root).  It is
 * resolved here component by component under a directory descriptor of the
 * root, never as a string: each component is opened with O_NOFOLLOW; a
 * symlink is read and followed by us, as in a chroot: a relative target
 * from the symlink's directory, an absolute one from the root again (so
 * usr/bin/awk -> /etc/alternatives/awk means etc/alternatives/awk under
 * the root, and `--root /` is a real system); ".." is tracked on our own
 * stack of directory descriptors and refused above the root; a path the
 * recipe names must be relative.  Nothing is ever resolved through the
 * kernel's view of "..", so a concurrent rename cannot move us outside.
 * A FIFO, socket or device node is never opened (a FIFO would block, a
 * device may act on open): it is looked at through an O_PATH descriptor.
 *
 * Refusals return BSI_ERECIPE with a message naming the path and why.
 */
#ifndef BSI_FSROOT_H
#define BSI_FSROOT_H

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct bsi_root bsi_root;

/* Open the directory `path` as a target root. */
int bsi_root_open(bsi_root **out, const char *path);
void bsi_root_free(bsi_root *root);
/* The path the root was opened with (borrowed). */
const char *bsi_root_path(const bsi_root *root);
/* The root's directory descriptor (borrowed). */
int bsi_root_fd(const bsi_root *root);

/*
 * Open `rel` under the root with open(2) `flags` (O_CLOEXEC and O_NOFOLLOW
 * are added; symlinks are followed by the resolver, never by the kernel).
 * When a component does not exist, returns 0 with *out_fd = -1.  Without
 * O_PATH in flags, only a regular file or a directory is opened; anything
 * else is refused (BSI_ERECIPE) without being opened.
 */
int bsi_root_open_file(const bsi_root *root, const char *rel, int flags, int *out_fd);

/*
 * Open the directory holding `rel`'s final component (confined as above,
 * O_RDONLY|O_DIRECTORY) and copy the final component's name into out_name.
 * The final component is not resolved: it may not exist, and if it is a
 * symlink it is returned as is (callers that write refuse that).
 * When a parent component does not exist, returns 0 with *out_dirfd = -1.
 */
int bsi_root_open_parent(const bsi_root *root, const char *rel, int *out_dirfd,
			 char out_name[NAME_MAX + 1]);

/* The largest file bsi_root_open_target() accepts (the configuration's
 * max_target_mib, in bytes); 0, the default, means no limit. */
void bsi_root_set_max_target(bsi_root *root, uint64_t bytes);
uint64_t bsi_root_max_target(const bsi_root *root);

/* A file found under the root, with the directory that holds it. */
typedef struct {
	int dirfd;               /* O_RDONLY|O_DIRECTORY; -1 when a directory on the way is missing */
	char name[NAME_MAX + 1]; /* its entry in dirfd */
	int fd;                  /* the file, O_RDONLY; -1 when it does not exist */
	struct stat st;          /* its fstat, when fd >= 0 */
} bsi_root_target;

/*
 * Open the regular file `rel`: its directory resolved as
 * bsi_root_open_parent(), its final component never followed and looked at
 * (O_PATH, fstat) before it is opened, so a FIFO or device is never opened.
 * A final component that is not a regular file is BSI_ERECIPE naming the
 * path and what it is (for a symlink, where it points).  Returns 0 with
 * out->fd = -1 when the file does not exist.  Close with
 * bsi_root_target_close(), also after an error (which leaves nothing open).
 */
int bsi_root_open_regular(const bsi_root *root, const char *rel, bsi_root_target *out);

/*
 * The same for a file bsi is to replace, with its further rules
 * (BSI_ERECIPE, naming the path and the reason): one hard link only (bsi
 * cannot find the other names, and its backup must never share an inode
 * with a name that stays live), and no larger than the root's max target.
 * The plan (both its hashers) and the transaction open targets through
 * here, so a preview and a device reach the same verdict on the same image.
 */
int bsi_root_open_target(const bsi_root *root, const char *rel, bsi_root_target *out);
void bsi_root_target_close(bsi_root_target *t);

#endif
