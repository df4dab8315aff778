/*
 * fsroot.h - paths confined to a target root.
 *
 * Every path a recipe names is relative to the target root (--root).  It is
 * resolved here component by component under a directory descriptor of the
 * root, never as a string: each component is opened with O_NOFOLLOW; a
 * symlink is read and followed only if it is relative and its target stays
 * beneath the root; ".." is tracked on our own stack of directory
 * descriptors and refused above the root; absolute paths and absolute
 * symlink targets are refused.  Nothing is ever resolved through the
 * kernel's view of "..", so a concurrent rename cannot move us outside.
 *
 * Refusals return BSI_ERECIPE with a message naming the path and why.
 */
#ifndef BSI_FSROOT_H
#define BSI_FSROOT_H

#include <limits.h>
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
 * When a component does not exist, returns 0 with *out_fd = -1.
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

#endif
