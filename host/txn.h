/*
 * txn.h - applying and undoing one improvement, all or nothing.
 *
 * The transaction of DESIGN.md section 6.  For each file it replaces, an
 * apply
 *
 *   1. checks the target is a regular file (not a symlink) at `from` (a
 *      target already at `to` is left alone; any other digest, or a missing
 *      file, makes the improvement not-applicable and touches nothing);
 *   2. records the transaction as *preparing* (the names it will create);
 *   3. streams the payload into .bsi-stage.<name>.<random> beside the
 *      target (O_EXCL), hashing as it copies (a payload whose SHA-256 is not
 *      `to` is BSI_ETRUST), gives it the original's owner, group and mode,
 *      fsyncs it and the directory;
 *   4. keeps the original in <state>/backups/<txn-id>/<n> (a hard link of
 *      the original inode when on the same filesystem: the rename in step 6
 *      takes the name away from that inode but never changes its bytes;
 *      otherwise a copy, hashed and fsynced);
 *   5. records the transaction *staged*, durably;
 *   6. renames each staged file over its target and fsyncs the directories;
 *   7. records it *committed* and the improvement applied (restart pending
 *      when it names services), then restarts the services through the
 *      plugin and records the result.
 *
 * Any failure before step 7 puts every target back (from the backups),
 * removes the staged files and backups, records the transaction undone and
 * returns the error, which names the step, the file and strerror.  A crash
 * at any point is repaired by bsi_txn_recover().  Rollback is the same
 * machinery with the backups as payloads.
 *
 * All functions here mutate files and state: the caller holds the state
 * lock (lock.h) and has run bsi_txn_recover() first.  A state directory
 * belongs to one target root (bsi_state_bind_root): apply, rollback, verify
 * and a recovery with work to do refuse (BSI_EUSAGE) another --root.
 *
 * Failpoints (BSI_FAILPOINT): apply.prepared, apply.staged,
 * apply.backed-up, apply.recorded, apply.renamed.<n> (after the n-th
 * rename, from 1), apply.renamed.all, apply.committed, apply.restarted;
 * the same names with rollback.* for a rollback, and recover.restored.<n>
 * inside recovery.  Faults (BSI_FAULT, each also as NAME.enospc):
 * stage.write, stage.fsync, backup.write, backup.fsync, restore.write,
 * restore.fsync, txn.rename, txn.dirsync, state.begin, state.commit.
 */
#ifndef BSI_TXN_H
#define BSI_TXN_H

#include "changeset.h"
#include "fsroot.h"
#include "plugin.h"
#include "source.h"
#include "state.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	bsi_state *state;
	const bsi_root *root;
	const bsi_source *source; /* payloads; needed by apply only */
	bsi_plugin *plugin;       /* service manager; NULL leaves restarts pending */
	const char *feed_commit;  /* recorded with an apply; NULL: the source's commit */
	const char *signer;       /* signer fingerprint of that commit, or NULL */
} bsi_txn_ctx;

typedef struct {
	bsi_status status;    /* the improvement's status afterwards */
	bool changed;         /* files were replaced by this call */
	bool restart_pending; /* files are in place but a restart failed (see reason) */
	char reason[1024];    /* why not-applicable / tampered / restart failure; "" if none */
} bsi_txn_result;

/*
 * Apply improvement imp (its replace and restart actions) as one
 * transaction.  Returns 0 with out->status:
 *   applied         files replaced now (changed), or already all at `to`
 *                   (idempotent: no restart, unless a restart was still
 *                   pending from an earlier apply, which is retried);
 *   not-applicable  a target is missing or at neither digest; nothing was
 *                   touched; out->reason names the file and both digests.
 *                   An improvement already in place (applied, obsolete,
 *                   tampered) keeps its stored status and notes then: its
 *                   files are still those of the earlier apply.
 * out->restart_pending with out->reason when the files were applied but a
 * restart failed (the caller should report it and exit nonzero).  Errors:
 * BSI_ETRUST for a payload whose digest is not `to`; BSI_ERECIPE for a
 * target that is a symlink or not a regular file, or a malformed action;
 * BSI_EFAIL for I/O (after everything was put back).  Applies held and
 * rolled-back improvements too: choosing what to apply is the caller's.
 */
int bsi_txn_apply(bsi_txn_result *out, const bsi_txn_ctx *ctx, const bsi_improvement *imp);

/*
 * Undo improvement `id`: every file its applies since its last rollback
 * replaced goes back to the byte-identical original with its owner, group
 * and mode (for a file applied again by a revision whose `from` was the
 * earlier `to`, the original before the first of those applies; see
 * docs/transactions.md), the same services are restarted, and the status
 * becomes rolled-back.  Refuses
 * (BSI_EFAIL, nothing touched) when a replaced file no longer has the
 * payload's digest (it was changed since: rolling back would destroy that
 * change), and BSI_EUSAGE when bsi never applied `id`.
 */
int bsi_txn_rollback(bsi_txn_result *out, const bsi_txn_ctx *ctx, const char *id);

/*
 * Repair what a killed bsi left behind: every transaction recorded
 * preparing or staged is finished.  When every target already has its new
 * digest the transaction is rolled forward (recorded committed, restarts
 * left pending); otherwise each renamed target is restored from the
 * backups.  Staged temp files are removed either way.  Then the backups
 * nothing needs any more (those of undone transactions and rollbacks, and
 * of applies a committed rollback undid), which a kill between a commit
 * and the deletion left behind, are deleted.  *out_count (may be NULL)
 * gets the number of transactions repaired.  Run before any other
 * command, under the lock.
 */
int bsi_txn_recover(const bsi_txn_ctx *ctx, size_t *out_count);

/*
 * Re-hash every file improvement `id` replaces (it must be applied,
 * obsolete or tampered) and decide, recording a change of status:
 *
 *   applied   every file has its `to` digest;
 *   obsolete  no file is at `from` or missing, and every file not at `to`
 *             has a newer version, shown by either piece of evidence in
 *             `known` (the current plan, may be NULL): the digest is named
 *             for that same path by another improvement (as its `from` or
 *             `to`), or the improvement's own `when` now says it does not
 *             apply to this device (its precondition, such as the OS
 *             version, moved on, as a full OS update does);
 *   tampered  anything else: a file back at `from` without a rollback
 *             (a full update never reinstalls the vulnerable version), a
 *             missing file, or content nobody vouches for.
 *
 * Unknown content on a device whose recipe still applies is tampered, not
 * obsolete, on purpose: "obsolete" tells the admin to stop worrying, so it
 * needs evidence.  out->reason names the
 * first offending file and its digest.
 */
int bsi_txn_verify(bsi_txn_result *out, const bsi_txn_ctx *ctx, const char *id,
		   const bsi_changeset *known);

/* Hold (never apply automatically) or release improvement `id`, with a
 * history entry.  BSI_EUSAGE for an unknown id. */
int bsi_txn_hold(const bsi_txn_ctx *ctx, const char *id, bool held);

#endif
