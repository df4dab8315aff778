#include "feed.h"

#include "auth.h"
#include "commitsig.h"
#include "error.h"
#include "failpoint.h"
#include "text.h"
#include "mirror.h"
#include "output.h"
#include "signers.h"
#include "sshsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIRROR_NAME "feed.git"

/* The fetch child's address space: libgit2 may hold up to about twice the
 * largest object in memory while it indexes a pack (bench: a 256 MiB
 * payload peaks at 518 MiB), plus its own code and maps. */
#define FETCH_MEMORY(max_bytes) (3 * (max_bytes) + ((size_t)512 << 20))

static int mirror_path(char out[4096], bsi_state *st)
{
	if (snprintf(out, 4096, "%s/" MIRROR_NAME, bsi_state_dir(st)) >= 4096)
		return bsi_error_set(BSI_EUSAGE, "state directory path too long");
	return BSI_OK;
}

static int parse_oid(git_oid *out, const char *hex, const char *what)
{
	if (!hex || strlen(hex) != GIT_OID_HEXSZ || git_oid_fromstr(out, hex) < 0)
		return bsi_error_set(BSI_EUSAGE, "%s \"%s\" is not a full 40-digit commit id", what,
				     hex ? hex : "");
	return BSI_OK;
}

int bsi_feed_enroll(bsi_state *st, const char *url, const char *introduction,
		    const char *signer)
{
	bsi_state_feed *feed = NULL;
	uint8_t key[32];
	git_oid intro;
	int rc;

	if (bsi_text_has_control(url, strlen(url)))
		return bsi_error_set(BSI_EUSAGE, "the feed URL holds control characters; a URL "
						 "is printed in every status and log line");
	rc = parse_oid(&intro, introduction, "--introduction");
	if (rc < 0)
		return rc;
	if (bsi_signers_parse_key(key, signer) < 0)
		return bsi_error_wrap("--signer");
	rc = bsi_state_feed_get(st, &feed);
	if (rc < 0)
		return rc;
	if (feed) {
		rc = bsi_error_set(BSI_EUSAGE,
				   "this device is already enrolled to %s (introduction %s); "
				   "enrolling again would replace its trust anchor, so remove %s "
				   "first if that is what you mean",
				   feed->url, feed->introduction, bsi_state_dir(st));
		bsi_state_feed_free(feed);
		return rc;
	}
	rc = bsi_state_feed_set_anchor(st, url, introduction, signer);
	if (rc == 0)
		rc = bsi_state_history_add(st, "enroll", NULL, introduction, NULL, url);
	return rc;
}

static int anchor_of(bsi_auth_anchor *out, const bsi_state_feed *feed)
{
	int rc = parse_oid(&out->introduction, feed->introduction, "introduction");

	if (rc == 0 && bsi_signers_parse_key(out->key, feed->signer_key) < 0)
		rc = bsi_error_wrap("enrolled signer");
	return rc;
}

/* Remember the newly verified commits and advance the head, in one state
 * transaction; then a history entry. */
static int record_sync(bsi_state *st, const bsi_auth_list *list, git_repository *repo,
		       const git_oid *head, const char *previous)
{
	char hex[GIT_OID_HEXSZ + 1], detail[128];
	char (*ids)[GIT_OID_HEXSZ + 1] = NULL, (*fps)[BSI_SSHSIG_FINGERPRINT_SIZE] = NULL;
	const char **idv = NULL, **fpv = NULL;
	git_commit *commit = NULL;
	size_t n = list->count;
	int rc = BSI_OK;

	git_oid_tostr(hex, sizeof(hex), head);
	if (git_commit_lookup(&commit, repo, head) < 0)
		return bsi_error_set(BSI_EFAIL, "feed commit %s: cannot read", hex);
	ids = calloc(n + 1, sizeof(*ids));
	fps = calloc(n + 1, sizeof(*fps));
	idv = calloc(n + 1, sizeof(*idv));
	fpv = calloc(n + 1, sizeof(*fpv));
	if (!ids || !fps || !idv || !fpv) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		git_oid_tostr(ids[i], sizeof(ids[i]), &list->items[i].id);
		bsi_sshsig_fingerprint(fps[i], list->items[i].key);
		idv[i] = ids[i];
		fpv[i] = fps[i];
	}
	rc = bsi_state_feed_advance(st, hex, (int64_t)git_commit_time(commit), (int64_t)time(NULL),
				    idv, fpv, n);
	snprintf(detail, sizeof(detail), "%zu new commit%s verified; previous head %.12s", n,
		 n == 1 ? "" : "s", previous[0] ? previous : "none");
	if (rc == 0)
		rc = bsi_state_history_add(st, "sync", NULL, hex, fpv[n ? n - 1 : 0], detail);
done:
	free(ids);
	free(fps);
	free(idv);
	free(fpv);
	git_commit_free(commit);
	return rc;
}

int bsi_feed_sync(bsi_feed_sync_result *out, bsi_state *st, const bsi_config *cfg,
		  bool progress)
{
	bsi_mirror_limits lim = {
		.max_bytes = (size_t)cfg->fetch_max_mib << 20,
		.max_memory = FETCH_MEMORY((size_t)cfg->fetch_max_mib << 20),
		.max_commits = (size_t)cfg->feed_max_new_commits,
		.stall_seconds = cfg->fetch_timeout,
		.deadline_seconds = cfg->fetch_deadline,
		.ca_file = cfg->ca_file,
		.progress = progress,
	};
	bsi_auth_cache cache = {.known = bsi_state_commit_known, .ctx = st};
	bsi_mirror_fetched fetched = {0};
	bsi_state_feed *feed = NULL;
	bsi_auth_list *list = NULL;
	bsi_auth_anchor anchor;
	git_oid trusted;
	char path[4096];
	bool accepted = false;
	int rc, settled;

	memset(out, 0, sizeof(*out));
	rc = bsi_state_feed_get(st, &feed);
	if (rc < 0)
		return rc;
	if (!feed)
		return bsi_error_set(BSI_EUSAGE, "this device is not enrolled in a feed; "
						 "run bsi enroll URL --introduction COMMIT --signer KEY");
	rc = anchor_of(&anchor, feed);
	if (rc == 0)
		rc = mirror_path(path, st);
	if (rc == 0 && feed->head)
		rc = parse_oid(&trusted, feed->head, "trusted head");
	if (rc == 0)
		rc = bsi_mirror_fetch(&fetched, path, feed->url, feed->head ? &trusted : NULL, &lim);
	if (rc < 0)
		goto done;
	rc = bsi_auth_verify_range(&list, fetched.repo, &anchor, feed->head ? &trusted : NULL,
				   &fetched.head, &cache);
	if (rc == 0)
		rc = bsi_mirror_adopt(&fetched, path);
	if (rc == 0)
		bsi_failpoint("feed.adopted");
	if (rc == 0) {
		snprintf(out->previous, sizeof(out->previous), "%s", feed->head ? feed->head : "");
		git_oid_tostr(out->head, sizeof(out->head), &fetched.head);
		out->verified = list->count;
		if (!feed->head || strcmp(out->head, feed->head) != 0 || list->count > 0)
			rc = record_sync(st, list, fetched.repo, &fetched.head, out->previous);
		else
			rc = bsi_state_feed_set_head(st, feed->head, feed->head_time,
						     (int64_t)time(NULL));
		accepted = rc == 0;
	}
	/* the mirror keeps what the state now trusts, and nothing else */
	settled = bsi_mirror_settle(&fetched, path, accepted ? &fetched.head
							       : feed->head ? &trusted : NULL);
	if (rc == 0)
		rc = settled;
done:
	git_repository_free(fetched.repo);
	bsi_auth_list_free(list);
	bsi_state_feed_free(feed);
	return rc;
}

int bsi_feed_open_trusted(bsi_source **out, git_repository **out_repo, bsi_state *st)
{
	bsi_state_feed *feed = NULL;
	git_repository *repo = NULL;
	char path[4096];
	git_oid head;
	int rc;

	*out = NULL;
	*out_repo = NULL;
	rc = bsi_state_feed_get(st, &feed);
	if (rc < 0)
		return rc;
	if (!feed || !feed->head) {
		rc = bsi_error_set(BSI_EUSAGE, feed ? "the feed has not been synced yet; run bsi sync"
						    : "this device is not enrolled in a feed; run bsi "
						      "enroll, or preview a tree with --tree DIR");
		goto done;
	}
	rc = parse_oid(&head, feed->head, "trusted head");
	if (rc == 0)
		rc = mirror_path(path, st);
	if (rc == 0)
		rc = bsi_mirror_open(&repo, path);
	if (rc == 0)
		rc = bsi_source_open_commit(out, repo, &head);
	if (rc == 0) {
		*out_repo = repo;
		repo = NULL;
	}
done:
	git_repository_free(repo);
	bsi_state_feed_free(feed);
	return rc;
}

/* The signer of commit id, whoever it is (no authorization implied). */
static int signer_of(uint8_t out[32], git_repository *repo, const git_oid *id)
{
	bsi_commitsig *cs = NULL;
	git_odb *odb = NULL;
	int rc;

	if (git_repository_odb(&odb, repo) < 0)
		return bsi_error_set(BSI_EFAIL, "cannot open the object database");
	rc = bsi_commitsig_read(&cs, odb, id);
	if (rc == 0)
		rc = bsi_sshsig_verify(out, cs->signature, cs->signature_len, cs->payload,
				       cs->payload_len, "git");
	bsi_commitsig_free(cs);
	git_odb_free(odb);
	return rc;
}

/* The root commit of HEAD's first-parent history. */
static int root_commit(git_oid *out, git_repository *repo)
{
	git_commit *c = NULL, *parent;

	if (git_revparse_single((git_object **)&c, repo, "HEAD^{commit}") < 0)
		return bsi_error_set(BSI_EUSAGE, "no HEAD commit: %s",
				     git_error_last() ? git_error_last()->message : "?");
	while (git_commit_parentcount(c) > 0) {
		if (git_commit_parent(&parent, c, 0) < 0) {
			git_commit_free(c);
			return bsi_error_set(BSI_EFAIL, "cannot read a parent commit");
		}
		git_commit_free(c);
		c = parent;
	}
	git_oid_cpy(out, git_commit_id(c));
	git_commit_free(c);
	return BSI_OK;
}

int bsi_feed_verify_dir(const char *dir, const char *introduction, const char *signer,
			int verbosity, bool json)
{
	git_repository *repo = NULL;
	bsi_auth_list *list = NULL;
	bsi_auth_anchor anchor;
	int rc;

	if ((introduction == NULL) != (signer == NULL))
		return bsi_error_set(BSI_EUSAGE, "--introduction and --signer go together");
	rc = bsi_mirror_init();
	if (rc < 0)
		return rc;
	if (git_repository_open_ext(&repo, dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return bsi_error_set(BSI_EFAIL, "%s is not a git repository", dir);
	if (introduction) {
		rc = parse_oid(&anchor.introduction, introduction, "--introduction");
		if (rc == 0 && bsi_signers_parse_key(anchor.key, signer) < 0)
			rc = bsi_error_wrap("--signer");
	} else {
		rc = root_commit(&anchor.introduction, repo);
		if (rc == 0 && (rc = signer_of(anchor.key, repo, &anchor.introduction)) < 0) {
			char hex[GIT_OID_HEXSZ + 1];

			bsi_error_wrap("commit %s (taken as the introduction)",
				       git_oid_tostr(hex, sizeof(hex), &anchor.introduction));
		}
	}
	git_repository_free(repo);
	if (rc < 0)
		return rc;
	rc = bsi_auth_verify_path(&list, dir, NULL, &anchor);
	if (rc == 0) {
		char intro[GIT_OID_HEXSZ + 1], fp[BSI_SSHSIG_FINGERPRINT_SIZE];

		json_t *commits = json ? json_array() : NULL;

		git_oid_tostr(intro, sizeof(intro), &anchor.introduction);
		bsi_sshsig_fingerprint(fp, anchor.key);
		for (size_t i = 0; (verbosity > 0 || commits) && i < list->count; i++) {
			char id[GIT_OID_HEXSZ + 1], kfp[BSI_SSHSIG_FINGERPRINT_SIZE];

			bsi_sshsig_fingerprint(kfp, list->items[i].key);
			git_oid_tostr(id, sizeof(id), &list->items[i].id);
			if (commits)
				json_array_append_new(commits, json_pack("{s:s, s:s}", "id", id,
									 "signer", kfp));
			else
				printf("%s authentic, signed by %s\n", id, kfp);
		}
		if (json)
			rc = bsi_output_json(stdout, json_pack("{s:s, s:s, s:o}", "introduction", intro,
							       "introduction_signer", fp, "commits",
							       commits));
		else if (verbosity >= 0)
			printf("%s: %zu commit%s authentic from introduction %s (signed by %s)\n", dir,
			       list->count, list->count == 1 ? "" : "s", intro, fp);
	}
	bsi_auth_list_free(list);
	return rc;
}
