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
 * pipe; it stops itself past max_bytes (pack and progress text), and the
 * parent kills it after stall_seconds without progress or deadline_seconds
 * in all.  The child holds none of the parent's descriptors (so never the
 * state lock), dies with its parent, and has a bounded address space.
 *
 * Nor can one answer poison the mirror for later syncs: only the server's
 * HEAD is fetched, into a quarantine ref; the closure of the new head is
 * checked before authentication; afterwards the mirror keeps exactly one
 * ref, the trusted head.  A fetch or closure check that fails for a reason
 * other than the network or a limit is tried again from scratch, in a
 * fresh mirror that replaces the old one once its head is accepted.
 */
#ifndef BSI_MIRROR_H
#define BSI_MIRROR_H

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
	size_t max_bytes;      /* most a fetch may receive */
	size_t max_memory;     /* address space of the fetch child; 0: unbounded */
	size_t max_commits;    /* most new commits one fetch may bring */
	long stall_seconds;    /* longest silence from the server */
	long deadline_seconds; /* longest fetch in all */
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

/* Load ca_file as the TLS library will for https feeds: a file it cannot
 * use is a configuration error (BSI_EUSAGE naming config_path), for every
 * command, not a failure of the next sync. */
int bsi_mirror_check_ca_file(const char *ca_file, const char *config_path);

/* What a fetch leaves for authentication. */
typedef struct {
	git_repository *repo; /* the mirror holding head's whole closure */
	git_oid head;         /* what the server's HEAD names; not trusted */
	bool fresh;           /* repo is a rebuilt mirror, not yet in place */
	bool adopted;         /* bsi_mirror_adopt() kept what was fetched */
} bsi_mirror_fetched;

/* Fetch the server's HEAD into the mirror at path and check its closure
 * (trusted: the head the device trusts, or NULL).  Nothing is trusted by
 * this.  Refusals (a commit or tree over its size cap, too many new
 * commits) are BSI_ETRUST, anything else BSI_EFAIL; either way the mirror
 * is as before.  On success call bsi_mirror_settle() whatever
 * authentication decides. */
int bsi_mirror_fetch(bsi_mirror_fetched *out, const char *path, const char *url,
		     const git_oid *trusted, const bsi_mirror_limits *lim);

/* The fetched head was accepted: keep what was fetched (a fresh mirror
 * takes the old one's place) before the head is recorded, so a kill
 * after recording never leaves a trusted head the mirror lacks.  f->repo
 * is the mirror at path afterwards. */
int bsi_mirror_adopt(bsi_mirror_fetched *f, const char *path);

/* End a sync: free f->repo; unless adopted, take back what the fetch
 * added (a fresh mirror is removed, new packs are dropped); then keep
 * exactly one ref, naming trusted: the head the state now trusts. */
int bsi_mirror_settle(bsi_mirror_fetched *f, const char *path, const git_oid *trusted);

#endif
