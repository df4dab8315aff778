/*
 * auth.h - which commits of the feed are authentic (DESIGN.md section 4).
 *
 * The rule, over any libgit2 repository (a device's bare mirror or a team's
 * working clone, with the same verdicts):
 *
 *   - The introduction commit is authentic when its gpgsig header holds an
 *     SSHSIG (namespace "git") by the pinned key.  Its parents and their
 *     history are never examined.
 *   - Any other commit is authentic when its SSHSIG verifies, it has at
 *     least one parent, every parent is authentic, and the signing key is
 *     listed (for namespace "git") in `.bsi/signers` of the tree of *each*
 *     parent.  A key cannot authorize itself: the commit that adds it is
 *     judged by its parents' file.
 *   - Every authentic commit's own tree must hold a usable `.bsi/signers`
 *     (a regular file with at least one ssh-ed25519 key for "git");
 *     a commit that removes or empties it is refused, since no one could
 *     sign after it.
 *
 * A new head is accepted when it equals or descends from the trusted head
 * (on first sync: from the introduction, which must be present) and every
 * commit between them is authentic.  Refusals are BSI_ETRUST; the message
 * names the commit (40 hex), the signer's fingerprint when there is one and
 * the rule broken.
 */
#ifndef BSI_AUTH_H
#define BSI_AUTH_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

/* What a device is enrolled with. */
typedef struct {
	git_oid introduction; /* the first commit trusted */
	uint8_t key[32];      /* the ssh-ed25519 key that signed it */
} bsi_auth_anchor;

/* Ids authenticated earlier for the same anchor (e.g. rows of the state
 * database).  known() returns 1 for such an id, 0 otherwise, or a negative
 * BSI_E* code after bsi_error_set().  A commit the cache knows is not
 * verified again; the cache is only consulted for commits that lie between
 * the trusted head (or the introduction) and the new head, so it can save
 * time but never make a commit outside that range trusted. */
typedef struct {
	int (*known)(void *ctx, const git_oid *id);
	void *ctx;
} bsi_auth_cache;

typedef struct {
	git_oid id;
	uint8_t key[32]; /* the key that signed it */
} bsi_auth_commit;

/* Newly authenticated commits, parents before children. */
typedef struct {
	bsi_auth_commit *items;
	size_t count;
} bsi_auth_list;

/*
 * Authenticate head against the trust anchor.  trusted is the last trusted
 * head, or NULL on first sync (then the introduction must be in repo and
 * head must be it or descend from it).  With trusted set, head must equal
 * or descend from it: an ancestor is a rollback, anything else a rewritten
 * history, both refused.  Every commit reachable from head and not from
 * trusted (first sync: not from the introduction's parents) is checked,
 * oldest first, skipping those cache (may be NULL) knows.
 *
 * On success *out lists the commits verified now (not the cached ones), for
 * the caller to persist together with the new trusted head; caller frees it
 * with bsi_auth_list_free().  On refusal (BSI_ETRUST) or failure *out is
 * NULL and nothing is to be recorded.  Call git_libgit2_init() first.
 *
 * `bsi feed verify DIR` reaches this through bsi_auth_verify_path() (repo =
 * DIR, head = HEAD, trusted = NULL); a device sync calls it with its bare
 * mirror, the fetched head and its trusted head.
 */
int bsi_auth_verify_range(bsi_auth_list **out, git_repository *repo, const bsi_auth_anchor *anchor,
                          const git_oid *trusted, const git_oid *head, const bsi_auth_cache *cache);

/*
 * The verdict on one commit alone, as `git verify-commit` would give it with
 * gpg.ssh.allowedSignersFile set to the parents' .bsi/signers: its SSHSIG
 * verifies, the key is authorized in .bsi/signers of each parent's tree (the
 * introduction: is the pinned key), and its own tree has usable
 * .bsi/signers.  Whether the parents are themselves authentic is NOT
 * checked; use bsi_auth_verify_range() to accept history.  On success
 * writes the signer's key to out.
 */
int bsi_auth_check_commit(uint8_t out[32], git_repository *repo, const bsi_auth_anchor *anchor,
                          const git_oid *id);

/*
 * `bsi feed verify DIR`: open the repository at path (a working clone or a
 * bare mirror; no search upwards), resolve rev (NULL: HEAD) and
 * authenticate it from scratch with bsi_auth_verify_range(), so the team
 * sees the verdict a device would reach.  BSI_EFAIL when path is not a
 * repository, BSI_EUSAGE when rev does not resolve.
 */
int bsi_auth_verify_path(bsi_auth_list **out, const char *path, const char *rev,
                         const bsi_auth_anchor *anchor);

void bsi_auth_list_free(bsi_auth_list *list);

#endif
