/*
 * mirror.h - fetching the feed into a bare mirror in the state directory.
 *
 * The mirror is untrusted storage: a fetch may put anything in it.  What
 * the device trusts is only the head that auth.c accepted and the state
 * database recorded.  Transport is libgit2's (local paths, file://, git://,
 * https:// with the system CA store or ca_file; certificate failures are
 * refusals, never overridden).
 *
 * A server cannot make the device download without bound or stall it
 * forever: the fetch runs in a child process that reports progress over a
 * pipe; it stops itself past max_bytes, and the parent kills it after
 * stall_seconds without progress.
 */
#ifndef BSI_MIRROR_H
#define BSI_MIRROR_H

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
	size_t max_bytes;      /* most a fetch may receive */
	long stall_seconds;    /* longest silence from the server */
	const char *ca_file;   /* extra CA bundle, or NULL */
	bool progress;         /* show progress on stderr (a terminal) */
} bsi_mirror_limits;

/* Initialise libgit2 for bsi (fsync of git directories on).  Idempotent. */
int bsi_mirror_init(void);

/* Open the bare mirror at path, creating it if absent: as a whole, under a
 * temporary name then renamed, so a failed creation leaves nothing behind
 * that a later sync would trip over.  An existing mirror that does not open
 * is an error, never replaced. */
int bsi_mirror_open(git_repository **out, const char *path);

/* Fetch url's branches into the mirror and return the commit the server's
 * HEAD names.  Nothing is trusted by this. */
int bsi_mirror_fetch(git_oid *out_head, const char *path, const char *url,
		     const bsi_mirror_limits *lim);

#endif
