/*
 * procs.h - processes still running code bsi replaced.
 *
 * Replacing a shared library or an executable renames a new file over the
 * old name; a process that mapped the old file keeps running the old code
 * until it restarts.  The kernel still shows such a mapping in
 * /proc/PID/maps: as the old path followed by " (deleted)", and with the
 * old file's device and inode (bsi keeps the old inode alive as a hard-link
 * backup, so the inode identifies it even where the path would not).  The
 * systemd unit a process belongs to is the last "*.service" component of
 * its cgroup path (/proc/PID/cgroup).
 *
 * Processes whose maps cannot be read (another user's, when not root; one
 * that exited during the scan) are skipped: the scan reports what it can
 * see, never fails because of one process.
 */
#ifndef BSI_PROCS_H
#define BSI_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One file bsi replaced, as the scan looks for it. */
typedef struct {
	const char *path;  /* absolute, as /proc shows it: realpath(root) + "/" + rel */
	dev_t dev;         /* the old file's device and inode; 0 and 0 when unknown */
	ino_t ino;
	const char *label; /* the caller's name for it (the improvement id), copied out */
	const char *rel;   /* the path relative to the root, copied out */
} bsi_procs_file;

typedef struct {
	char *command;  /* /proc/PID/comm */
	char *unit;     /* "foo.service", or NULL when the process is in none */
	char *label;    /* of the file it maps */
	char *rel;
	pid_t pid;
	bool user_unit; /* a user@UID.service manager or a unit under one */
} bsi_proc;

typedef struct {
	bsi_proc *items;
	size_t count;
} bsi_procs;

/*
 * Scan every process under proc_dir ("/proc"; tests pass a fake tree) for
 * mappings of the old versions of files[0..n).  A process is listed once
 * per file it maps (by label and rel), in pid order.  Errors only for
 * proc_dir itself or memory.
 */
int bsi_procs_find(bsi_procs **out, const char *proc_dir, const bsi_procs_file *files, size_t n);
void bsi_procs_free(bsi_procs *procs);

/*
 * The systemd unit in the text of a /proc/PID/cgroup file: the last
 * component ending in ".service" of the unified ("0::") line, else of the
 * "name=systemd" line.  *out = NULL when none; *out_user tells whether a
 * "user@*.service" component encloses it.
 */
int bsi_procs_unit_of_cgroup(char **out, bool *out_user, const char *cgroup_text);

#endif
