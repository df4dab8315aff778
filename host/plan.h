/*
 * plan.h - from recipes to a change set with a status for each improvement.
 *
 * The recipe engine (recipe.h) records what the recipes ask for.  This
 * step then checks, in the parent process, what the engine cannot cheaply
 * check inside its limits:
 *   - every payload exists in the source and its SHA-256 is the `to`
 *     digest its recipe pins (else BSI_ETRUST, exit 3);
 *   - every replace target's current digest on the device: `to` means
 *     done, `from` means to do, anything else or a missing file makes the
 *     improvement not-applicable, with the file and both digests as reason.
 * Nothing here writes anywhere.
 */
#ifndef BSI_PLAN_H
#define BSI_PLAN_H

#include "changeset.h"
#include "digest.h"
#include "fsroot.h"
#include "source.h"

#include <stdbool.h>

/* How the plan reads a target's digest; lets the state's hash cache stand
 * in for hashing.  *out_exists false (and 0 returned) when it is absent.
 * A target that is no file bsi may replace (bsi_root_open_target(): a
 * symlink, a directory, a special file, more than one hard link, over the
 * size limit) is BSI_ERECIPE, naming the path and what it is. */
typedef int (*bsi_plan_hasher)(void *ctx, const bsi_root *root, const char *rel,
			       char out[BSI_DIGEST_STRLEN + 1], bool *out_exists);

/* The hasher that reads and hashes the file every time. */
int bsi_plan_hash_file(void *ctx, const bsi_root *root, const char *rel,
		       char out[BSI_DIGEST_STRLEN + 1], bool *out_exists);

/* What a device remembers of payload digests by git blob id (the state's
 * payload cache, state.h): get leaves out "" for a blob it does not know. */
typedef struct {
	int (*get)(void *ctx, const char *blob, char out[BSI_DIGEST_STRLEN + 1]);
	int (*put)(void *ctx, const char *blob, const char *digest);
	void *ctx;
} bsi_plan_payload_cache;

/*
 * Check that every payload's SHA-256 is its `to` digest.  A payload that is
 * missing or has another digest makes its improvement an error (BSI_ETRUST,
 * the recipe line of the replace, both digests in full); the others are
 * untouched.  pending_only limits this to the improvements bsi_plan_assess()
 * left pending: the only ones whose payloads a device may stage.  The
 * device's plan uses it after assessing, so a device that has everything
 * does not re-read and re-hash every payload of the feed on each run
 * (docs/bench.md measured that as all of a plan with nothing to do); the
 * staging step hashes what it copies in any case (txn.h), so no payload is
 * ever written unverified.  A preview (`plan --tree`, no state) checks
 * every payload, so the team sees a bad one whatever its test image holds.
 * With a cache (NULL: none), a payload of a commit source is hashed once
 * per blob: an improvement a device leaves pending (auto-install off, on
 * battery) is not re-read and re-hashed on every agent run.  Returns an
 * error only when an error cannot even be recorded (out of memory).
 */
int bsi_plan_check_payloads(bsi_changeset *cs, const bsi_source *src, bool pending_only,
			    const bsi_plan_payload_cache *cache);
/*
 * Each improvement's status from its targets' digests (improvements that
 * are not-applicable by their `when`, or in error, are left as they are).
 * A target that cannot be hashed (unreadable, not a regular file) makes
 * its improvement an error, with the code and message hash gave.
 */
int bsi_plan_assess(bsi_changeset *cs, const bsi_root *root, bsi_plan_hasher hash, void *ctx);

/*
 * An improvement superseded by one that is pending or applied here is
 * not-applicable ("superseded by ID"), unless the device has it already.
 * Called last, once the state's statuses are in (device.c): a successor
 * that is held or rolled back on this device covers nothing, so what it
 * supersedes keeps its own status.
 */
int bsi_plan_mark_superseded(bsi_changeset *cs);

/* BSI_ERECIPE when two replace targets of imp are one file by (device,
 * inode), reached by two paths (a symlinked directory, merged /usr);
 * *out_line is then the recipe line of the second. */
int bsi_plan_check_distinct(const bsi_improvement *imp, const bsi_root *root, int *out_line);

#endif
