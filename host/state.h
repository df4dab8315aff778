/*
 * state.h - the device's state database, <state>/state.db.
 *
 * One SQLite database (WAL, synchronous=FULL, busy_timeout) holds what bsi
 * knows about this device: the improvements it has seen and their status,
 * the transactions that replaced files (and each file action in them), the
 * feed's trust anchor and trusted head, the cache of authenticated commits,
 * a cache of file digests, and an append-only history.
 *
 * The schema is versioned with PRAGMA user_version and migrated in code.  A
 * new database is built under a temporary name and renamed into place, so
 * state.db either does not exist or is a complete bsi database.  A database
 * that exists but cannot be read, is not a bsi database, fails
 * quick_check, or is newer than this program is a clear BSI_EFAIL naming
 * the file: it is never silently recreated (that would forget backups and
 * applied improvements).
 *
 * Strings returned through out-parameters are owned by the caller and freed
 * with the matching _free function.  Every time is seconds since the epoch.
 */
#ifndef BSI_STATE_H
#define BSI_STATE_H

#include "changeset.h"
#include "digest.h"
#include "fsroot.h"

#include <git2.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bsi_state bsi_state;

/* The schema version this program writes (PRAGMA user_version). */
#define BSI_STATE_SCHEMA_VERSION 3

/*
 * Open (creating the directory and the database when absent) the state in
 * directory `dir`.  Refuses a directory someone else could change
 * (statedir.h: BSI_EUSAGE, nothing read), and a damaged or newer database
 * as described above.  bsi_state_dir() is then dir with every symbolic
 * link resolved, the path to use for everything in the state.
 */
int bsi_state_open(bsi_state **out, const char *dir);
void bsi_state_free(bsi_state *st);
/* The state directory (borrowed). */
const char *bsi_state_dir(const bsi_state *st);

/* Explicit SQL transactions, so several updates commit together (durably:
 * synchronous=FULL).  Nesting is not supported. */
int bsi_state_begin(bsi_state *st);
int bsi_state_commit(bsi_state *st);
/* Never fails; safe to call after a failed statement or without begin. */
void bsi_state_rollback(bsi_state *st);

/* ---- improvements ---------------------------------------------------- */

typedef struct {
	char *id;
	char *component;
	char *summary;
	char *severity;
	char *fixes;       /* JSON array text of CVE ids */
	bsi_status status; /* last status bsi decided; never BSI_STATUS_HELD */
	char *reason;      /* NULL or why (not-applicable, tampered, ...) */
	bool held;         /* `bsi hold`: never applied automatically */
	bool restart_pending; /* files applied, a service restart still owed */
	int64_t applied_at;   /* 0 when never applied */
	char *feed_commit;    /* commit the applied payloads came from, or NULL */
	char *signer;         /* fingerprint of that commit's signer, or NULL */
	char *notes;          /* JSON text of the change set entry (see below) */
} bsi_state_improvement;

void bsi_state_improvement_free(bsi_state_improvement *imp);

/*
 * Record the notes of a change set entry (id, component, summary, severity,
 * fixes, and `notes`: the entry as JSON with its actions).  A new id starts
 * `pending`; an existing one keeps status, held, restart and history, and
 * gets the new notes.
 */
int bsi_state_improvement_note(bsi_state *st, const bsi_improvement *imp);
/* *out = NULL (and 0) when the id is unknown. */
int bsi_state_improvement_get(bsi_state *st, const char *id, bsi_state_improvement **out);
/* Every known improvement, ordered by id.  Free with
 * bsi_state_improvement_list_free. */
int bsi_state_improvement_list(bsi_state *st, bsi_state_improvement ***out, size_t *out_count);
void bsi_state_improvement_list_free(bsi_state_improvement **list, size_t count);
/* Set status and reason (NULL clears it).  Unknown id: BSI_EUSAGE. */
int bsi_state_improvement_set_status(bsi_state *st, const char *id, bsi_status status,
				     const char *reason);
int bsi_state_improvement_set_held(bsi_state *st, const char *id, bool held);
int bsi_state_improvement_set_restart_pending(bsi_state *st, const char *id, bool pending);
/* Mark applied now, from feed_commit/signer (either may be NULL). */
int bsi_state_improvement_set_applied(bsi_state *st, const char *id, const char *feed_commit,
				      const char *signer, bool restart_pending);

/* One improvement for `status --json` / `show --json` (new reference):
 * {id, component, summary, severity, fixes: [...], status, reason, held,
 *  restart_pending, applied_at (null if never), feed_commit, signer,
 *  actions: [...] (from the notes)}.  `status` is the stored status, one of
 * DESIGN.md section 5's names; a held improvement reports "held" unless it
 * is applied, obsolete or tampered (what is on disk matters more). */
json_t *bsi_state_improvement_to_json(const bsi_state_improvement *imp);

/* The change set entry as the JSON kept in `notes` (new reference):
 * {id, component, summary, severity, fixes, supersedes, recipe, line,
 *  actions: [{op:"replace", path, from, to, payload} | {op:"restart", service}]} */
json_t *bsi_state_notes_json(const bsi_improvement *imp);

/* ---- history (append-only; a trigger refuses UPDATE and DELETE) ------ */

/* Append one entry; improvement, feed_commit, signer and detail may be NULL. */
int bsi_state_history_add(bsi_state *st, const char *action, const char *improvement,
			  const char *feed_commit, const char *signer, const char *detail);
/* The history, oldest first, as a JSON array of {seq, time, action,
 * improvement, feed_commit, signer, detail} (new reference in *out).
 * improvement NULL means all; else only that improvement's entries. */
int bsi_state_history_json(bsi_state *st, const char *improvement, json_t **out);

/* ---- feed trust anchor and head (single row) ------------------------- */

/*
 * Times are this device's clock, except head_time, which the head's signer
 * wrote and which says nothing about freshness (a head dated 2100 is not
 * fresh).  head_seen_at is what feed staleness is measured from: when this
 * device first trusted the current head (set by the sync that moved the
 * head there; a sync that finds the same head again does not renew it, or
 * a server withholding new commits could keep a frozen feed fresh), or
 * enrolled while it has no head yet.
 */
typedef struct {
	char *url;
	char *introduction;   /* commit id of the introduction */
	char *signer_key;     /* the pinned key, "ssh-ed25519 AAAA..." */
	char *head;           /* trusted head commit id, or NULL before first sync */
	int64_t head_time;    /* committer time of the trusted head (0 unknown) */
	int64_t synced_at;    /* last successful sync (0 never) */
	int64_t head_seen_at; /* head trusted (or enrolled) at; 0 unknown */
} bsi_state_feed;

void bsi_state_feed_free(bsi_state_feed *feed);
/* *out = NULL (and 0) when no feed is enrolled. */
int bsi_state_feed_get(bsi_state *st, bsi_state_feed **out);
/* Enroll: replaces url, introduction and key, clears the head, and sets
 * head_seen_at to now (staleness counts from enrollment until a sync). */
int bsi_state_feed_set_anchor(bsi_state *st, const char *url, const char *introduction,
			      const char *signer_key);
/* Record a successful sync at synced_at (the device's clock: time(NULL)):
 * head is the trusted head after it.  When head differs from the recorded
 * one, head_seen_at becomes synced_at; when it is the same, head_seen_at is
 * kept, lowered to synced_at if it lies after it.  BSI_EUSAGE when no feed
 * is enrolled. */
int bsi_state_feed_set_head(bsi_state *st, const char *head, int64_t head_time,
			    int64_t synced_at);

/* ---- authenticated-commit cache -------------------------------------- */

/* *out_found tells whether commit_id was authenticated before; when found
 * and out_signer is non-NULL, *out_signer gets the signer fingerprint. */
int bsi_state_commit_lookup(bsi_state *st, const char *commit_id, bool *out_found,
			    char **out_signer);
int bsi_state_commit_remember(bsi_state *st, const char *commit_id, const char *signer);
/* bsi_state_commit_lookup in the shape of auth.h's bsi_auth_cache.known:
 * pass {bsi_state_commit_known, st}.  1 known, 0 not, or a BSI_E* code. */
int bsi_state_commit_known(void *st, const git_oid *id);
/*
 * After an authenticated sync: remember the n newly authenticated commits
 * (ids[i] signed by signers[i], hex ids, signer as the caller names it)
 * and advance the trusted head, all in one SQL transaction, so a crash
 * leaves either the old head or the new head with its commits.
 */
int bsi_state_feed_advance(bsi_state *st, const char *head, int64_t head_time, int64_t synced_at,
			   const char *const *ids, const char *const *signers, size_t n);

/* ---- file digests ---------------------------------------------------- */

/*
 * Digest of regular file `rel` under root into out_digest, "" when the
 * file (or a parent) does not exist.  The file is opened through the
 * confined resolver and fstat'ed on that descriptor; the digest is taken
 * from the cache when (device, inode, size, mtime ns, ctime ns) all match,
 * else computed from the same descriptor and cached.  A final component
 * that is not a regular file is refused (BSI_ERECIPE) without being opened
 * (bsi_root_open_regular()).  What verify uses: it asks what a file holds,
 * not whether bsi could replace it.
 */
int bsi_state_hash_file(bsi_state *st, const bsi_root *root, const char *rel,
			char out_digest[BSI_DIGEST_STRLEN + 1]);
/*
 * A state directory describes one target root: its transactions name paths
 * relative to it.  The first call records realpath(root); later calls with
 * another root fail (BSI_EUSAGE, naming both), so that recovering, rolling
 * back or verifying never looks at the wrong tree.  txn.c calls it before
 * touching anything.
 */
int bsi_state_bind_root(bsi_state *st, const bsi_root *root);

/*
 * Small named values kept in the `meta` table beside the bound root (the
 * agent's sync backoff: "agent.sync_failures", ...).  Keys starting with
 * "root" are bsi_state_bind_root's and refused here.  meta_get gives
 * *out = NULL (and 0) for a key never set; meta_set with value NULL
 * deletes the key.
 */
int bsi_state_meta_get(bsi_state *st, const char *key, char **out);
int bsi_state_meta_set(bsi_state *st, const char *key, const char *value);

/* bsi_state_hash_file in the shape of plan.h's bsi_plan_hasher, so the plan
 * uses the cache: pass (bsi_state_plan_hasher, st).  It opens `rel` as a
 * replace target (bsi_root_open_target()), with that function's refusals,
 * exactly as the preview's hasher (plan.h) does. */
int bsi_state_plan_hasher(void *st, const bsi_root *root, const char *rel,
			  char out[BSI_DIGEST_STRLEN + 1], bool *out_exists);
/* Same, for a descriptor already open (regular file); reads from offset 0.
 * A new cache entry is written without an fsync of its own (it is only a
 * cache); everything else in the state is written at synchronous=FULL.  A
 * cache that cannot be read or written never fails the call: the file is
 * hashed. */
int bsi_state_hash_fd(bsi_state *st, int fd, char out_digest[BSI_DIGEST_STRLEN + 1]);

/*
 * The payload cache: the SHA-256 of a feed payload by its git blob id, so a
 * device's plan hashes a pending improvement's payload once, not on every
 * run while it waits (a blob id names its bytes for good).  get leaves out
 * "" when the blob is unknown.  The table is created at open, outside the
 * versioned schema (state.c says why).  In the shape of plan.h's
 * bsi_plan_payload_cache, with the state as ctx.
 */
int bsi_state_payload_get(void *st, const char *blob, char out[BSI_DIGEST_STRLEN + 1]);
int bsi_state_payload_put(void *st, const char *blob, const char *digest);

/* The connection's PRAGMA synchronous (2 is FULL), for tests. */
int bsi_state_synchronous(bsi_state *st);

/* ---- transactions (used by txn.c) ------------------------------------ */

typedef enum {
	BSI_TXN_PREPARING, /* recorded before staging; nothing renamed yet */
	BSI_TXN_STAGED,    /* every file staged and backed up; renames may start */
	BSI_TXN_COMMITTED, /* every target renamed; done */
	BSI_TXN_UNDONE,    /* failed or recovered backwards; targets as before */
} bsi_txn_state;

typedef struct {
	char *path;   /* relative to the target root */
	char *before; /* digest the target had before this transaction */
	char *after;  /* digest it has after */
	char *backup; /* path of the backup of `before`, relative to <state>/backups,
			 NULL when the target was already at `after` (skipped) */
	char *stage;  /* name of the staged temp file in the target's directory */
} bsi_state_action;

typedef struct {
	int64_t id;
	char *improvement;
	char *kind; /* "apply" or "rollback" */
	bsi_txn_state state;
	int64_t started_at;
	bsi_state_action *actions;
	size_t nactions;
} bsi_state_txn;

void bsi_state_txn_free(bsi_state_txn *txn);
/* Insert a transaction (state PREPARING) with its actions; *out_id gets its id. */
int bsi_state_txn_insert(bsi_state *st, const bsi_state_txn *txn, int64_t *out_id);
int bsi_state_txn_set_state(bsi_state *st, int64_t id, bsi_txn_state state);
/* Transactions left PREPARING or STAGED, oldest first. */
int bsi_state_txn_unfinished(bsi_state *st, bsi_state_txn ***out, size_t *out_count);
/*
 * Whether <state>/backups/<id> may still be needed: transaction id is
 * unfinished (recovery restores from it), or a committed apply that no
 * committed rollback of its improvement followed (rollback restores from
 * it).  Otherwise (undone, a committed rollback, an apply rolled back
 * since) its backups are garbage.  *out_needed stays true for an id the
 * state does not know: never delete what cannot be explained.
 */
int bsi_state_txn_backups_needed(bsi_state *st, int64_t id, bool *out_needed);
/* The COMMITTED apply transactions of improvement with an id below
 * `before` (0: no limit) since its last COMMITTED rollback below `before`,
 * oldest first: together they hold a backup of every file bsi replaced for
 * it (the newest per path is the one to restore). */
int bsi_state_txn_applied(bsi_state *st, const char *improvement, int64_t before,
			  bsi_state_txn ***out, size_t *out_count);
void bsi_state_txn_list_free(bsi_state_txn **list, size_t count);
const char *bsi_txn_state_name(bsi_txn_state s);

#endif
