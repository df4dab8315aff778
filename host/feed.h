/*
 * feed.h - the device's feed: enrollment, sync, and the trusted head.
 *
 * Sync is fetch (mirror.h) -> authenticate (auth.h) -> record, and only
 * the last step changes anything the device trusts: the new head and the
 * newly authenticated commits are written in one state transaction.  A
 * refused or failed sync records nothing.
 */
#ifndef BSI_FEED_H
#define BSI_FEED_H

#include "config.h"
#include "source.h"
#include "state.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	char head[GIT_OID_HEXSZ + 1];     /* trusted head after the sync */
	char previous[GIT_OID_HEXSZ + 1]; /* before it ("" on first sync) */
	size_t verified;                  /* commits verified by this sync */
} bsi_feed_sync_result;

/* Record the trust anchor: the feed URL, the introduction commit (40 hex)
 * and the key that signed it ("ssh-ed25519 AAAA... [comment]").  Refuses a
 * device already enrolled (BSI_EUSAGE). */
int bsi_feed_enroll(bsi_state *st, const char *url, const char *introduction,
		    const char *signer);

/* Fetch the feed, authenticate every new commit, advance the trusted head. */
int bsi_feed_sync(bsi_feed_sync_result *out, bsi_state *st, const bsi_config *cfg,
		  bool progress);

/* The trusted head as a source of recipes and payloads (blobs of that
 * commit, never a checkout).  BSI_EUSAGE when not enrolled or never
 * synced.  *out_repo is the mirror, which the caller frees after the
 * source. */
int bsi_feed_open_trusted(bsi_source **out, git_repository **out_repo, bsi_state *st);

/* `bsi feed verify DIR`: authenticate DIR's HEAD from its introduction, as
 * a device would.  Without an introduction and signer, the root commit of
 * HEAD's history is taken as the introduction and its signer as the key
 * (the check then proves the history is consistent with its first signer).
 * Prints one line per commit verified when verbose; json: one document
 * with the introduction, its signer and every commit with its signer. */
int bsi_feed_verify_dir(const char *dir, const char *introduction, const char *signer,
			int verbosity, bool json);

#endif
