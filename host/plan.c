#include "plan.h"

#include "error.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAYLOAD_BLOCK (1u << 20)

int bsi_plan_hash_file(void *ctx, const bsi_root *root, const char *rel,
		       char out[BSI_DIGEST_STRLEN + 1], bool *out_exists)
{
	bsi_root_target t;
	int rc;

	(void)ctx;
	*out_exists = false;
	rc = bsi_root_open_target(root, rel, &t);
	if (rc == 0 && t.fd >= 0) {
		rc = bsi_digest_fd(t.fd, out);
		if (rc < 0)
			bsi_error_wrap("%s", rel);
		else
			*out_exists = true;
	}
	bsi_root_target_close(&t);
	return rc;
}

static int payload_digest(const bsi_source *src, const char *path,
			  const bsi_plan_payload_cache *cache, char out[BSI_DIGEST_STRLEN + 1])
{
	static unsigned char buf[PAYLOAD_BLOCK];
	char blob[GIT_OID_HEXSZ + 1] = "";
	bsi_digest_ctx *ctx = NULL;
	bsi_reader *r = NULL;
	size_t size, n;
	int rc;

	/* The cache only saves work: one that cannot be read or written (busy,
	 * a full disk) means hashing, never a failed plan. */
	if (cache && bsi_source_blob_id(src, path, blob) < 0)
		blob[0] = '\0'; /* bsi_source_open below says what is wrong */
	if (blob[0] && cache->get(cache->ctx, blob, out) == 0 && out[0])
		return BSI_OK;
	rc = bsi_source_open(src, path, &r, &size);
	if (rc == 0)
		rc = bsi_digest_new(&ctx);
	while (rc == 0 && (rc = bsi_reader_read(r, buf, sizeof(buf), &n)) == 0 && n > 0)
		rc = bsi_digest_update(ctx, buf, n);
	if (rc == 0)
		rc = bsi_digest_final(ctx, out);
	bsi_digest_free(ctx);
	bsi_reader_free(r);
	if (rc == 0 && blob[0])
		(void)cache->put(cache->ctx, blob, out);
	return rc;
}

/* Check the payloads of one improvement; the first bad one is its error. */
static int check_improvement_payloads(bsi_improvement *imp, const bsi_source *src,
				      const bsi_plan_payload_cache *cache)
{
	for (size_t j = 0; j < imp->nactions; j++) {
		const bsi_action *a = &imp->actions[j];
		char got[BSI_DIGEST_STRLEN + 1];
		int rc;

		if (a->op != BSI_ACTION_REPLACE)
			continue;
		/* keeps the reason's code: a payload missing from the signed
		 * feed is refused (3); one that cannot be read here, for
		 * memory or I/O, is an operational failure */
		rc = payload_digest(src, a->payload, cache, got);
		/* the source's message names the payload when it is missing */
		if (rc < 0 && strstr(bsi_error_message(), a->payload))
			return bsi_improvement_set_error(imp, rc, a->line,
							 "%s:%d: improvement \"%s\": %s", imp->recipe,
							 a->line, imp->id, bsi_error_message());
		if (rc < 0)
			return bsi_improvement_set_error(imp, rc, a->line,
							 "%s:%d: improvement \"%s\": payload %s: %s",
							 imp->recipe, a->line, imp->id, a->payload,
							 bsi_error_message());
		if (strcmp(got, a->to) != 0)
			return bsi_improvement_set_error(
				imp, BSI_ETRUST, a->line,
				"%s:%d: improvement \"%s\": payload %s has %s, but the recipe pins %s; "
				"refusing it",
				imp->recipe, a->line, imp->id, a->payload, got, a->to);
	}
	return BSI_OK;
}

int bsi_plan_check_payloads(bsi_changeset *cs, const bsi_source *src, bool pending_only,
			    const bsi_plan_payload_cache *cache)
{
	for (size_t i = 0; i < cs->count; i++) {
		bsi_improvement *imp = &cs->items[i];
		int rc;

		if (imp->status == BSI_STATUS_ERROR ||
		    (pending_only && imp->status != BSI_STATUS_PENDING))
			continue;
		if ((rc = check_improvement_payloads(imp, src, cache)) < 0)
			return rc;
	}
	return BSI_OK;
}

/*
 * The `to` digest an improvement that imp supersedes leaves at path, when
 * the device holds exactly that; such a file is where imp may start from.
 */
static const char *superseded_to(const bsi_changeset *cs, const bsi_improvement *imp,
				 const char *path, const char *cur)
{
	for (size_t s = 0; s < imp->nsupersedes; s++) {
		const bsi_improvement *old = bsi_changeset_find(cs, imp->supersedes[s]);

		for (size_t k = 0; old && k < old->nactions; k++) {
			const bsi_action *a = &old->actions[k];

			if (a->op == BSI_ACTION_REPLACE && strcmp(a->path, path) == 0 &&
			    strcmp(a->to, cur) == 0)
				return a->to;
		}
	}
	return NULL;
}

/*
 * Two replace targets of imp that are one file (a symlinked directory,
 * merged /usr: lib/x and usr/lib/x), told by (device, inode), never by
 * the strings: BSI_ERECIPE naming both.  The transaction refuses the same
 * (txn.h); here a preview and a device's plan say so first.  Each target
 * is opened as the hashers open it, so a target that is no file to patch
 * gets the hashers' verdict.
 */
int bsi_plan_check_distinct(const bsi_improvement *imp, const bsi_root *root, int *out_line)
{
	struct stat *seen = NULL;
	const char **names = NULL;
	size_t n = 0, replaces = 0;
	int rc = BSI_OK;

	for (size_t j = 0; j < imp->nactions; j++)
		replaces += imp->actions[j].op == BSI_ACTION_REPLACE;
	if (replaces < 2)
		return BSI_OK; /* the common case costs no second open */
	seen = calloc(imp->nactions, sizeof(*seen));
	names = calloc(imp->nactions, sizeof(*names));
	if (!seen || !names) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	for (size_t j = 0; rc == 0 && j < imp->nactions; j++) {
		const bsi_action *a = &imp->actions[j];
		bsi_root_target t;

		if (a->op != BSI_ACTION_REPLACE)
			continue;
		rc = bsi_root_open_target(root, a->path, &t);
		for (size_t k = 0; rc == 0 && t.fd >= 0 && k < n; k++)
			if (seen[k].st_dev == t.st.st_dev && seen[k].st_ino == t.st.st_ino)
				rc = bsi_error_set(BSI_ERECIPE,
						   "%s and %s are the same file (through a "
						   "symlink); an improvement replaces each file "
						   "once, by one path",
						   names[k], a->path);
		if (rc < 0)
			*out_line = a->line;
		if (rc == 0 && t.fd >= 0) {
			seen[n] = t.st;
			names[n++] = a->path;
		}
		bsi_root_target_close(&t);
	}
done:
	free(seen);
	free(names);
	return rc;
}

/* The status of one improvement from its targets' digests. */
static int assess_one(const bsi_changeset *cs, bsi_improvement *imp, const bsi_root *root,
		      bsi_plan_hasher hash, void *ctx, int *out_line)
{
	size_t replaces = 0, done = 0;
	int distinct = bsi_plan_check_distinct(imp, root, out_line);

	if (distinct < 0)
		return bsi_error_wrap("%s:%d: improvement \"%s\"", imp->recipe, *out_line, imp->id);
	for (size_t j = 0; j < imp->nactions; j++) {
		const bsi_action *a = &imp->actions[j];
		char cur[BSI_DIGEST_STRLEN + 1];
		bool exists;
		int rc;

		if (a->op != BSI_ACTION_REPLACE)
			continue;
		replaces++;
		rc = hash(ctx, root, a->path, cur, &exists);
		if (rc < 0) {
			*out_line = a->line;
			return bsi_error_wrap("%s:%d: improvement \"%s\"", imp->recipe, a->line,
					      imp->id);
		}
		if (!exists) {
			imp->status = BSI_STATUS_NOT_APPLICABLE;
			return bsi_improvement_set_reason(imp, "%s does not exist", a->path);
		}
		if (strcmp(cur, a->to) == 0) {
			done++;
		} else if (strcmp(cur, a->from) != 0 && superseded_to(cs, imp, a->path, cur)) {
			/* the device has what an improvement this one supersedes
			 * left there: start from that (rollback returns to it) */
			char *from = strdup(cur);

			if (!from)
				return bsi_error_set(BSI_EFAIL, "out of memory");
			free(imp->actions[j].from);
			imp->actions[j].from = from;
		} else if (strcmp(cur, a->from) != 0) {
			imp->status = BSI_STATUS_NOT_APPLICABLE;
			return bsi_improvement_set_reason(imp, "%s has %s, expected %s", a->path, cur,
							  a->from);
		}
	}
	imp->status = replaces > 0 && done == replaces ? BSI_STATUS_APPLIED : BSI_STATUS_PENDING;
	return BSI_OK;
}

int bsi_plan_mark_superseded(bsi_changeset *cs)
{
	for (size_t i = 0; i < cs->count; i++) {
		const bsi_improvement *imp = &cs->items[i];

		if (imp->status != BSI_STATUS_PENDING && imp->status != BSI_STATUS_APPLIED)
			continue;
		for (size_t s = 0; s < imp->nsupersedes; s++) {
			bsi_improvement *old = bsi_changeset_find(cs, imp->supersedes[s]);
			int rc;

			if (!old || old->status == BSI_STATUS_APPLIED)
				continue;
			old->status = BSI_STATUS_NOT_APPLICABLE;
			rc = bsi_improvement_set_reason(old, "superseded by %s", imp->id);
			if (rc < 0)
				return rc;
		}
	}
	return BSI_OK;
}

int bsi_plan_assess(bsi_changeset *cs, const bsi_root *root, bsi_plan_hasher hash, void *ctx)
{
	for (size_t i = 0; i < cs->count; i++) {
		bsi_improvement *imp = &cs->items[i];
		int rc, line = 0;

		if (imp->status == BSI_STATUS_NOT_APPLICABLE || imp->status == BSI_STATUS_ERROR)
			continue; /* its `when` said so, or it failed already */
		rc = assess_one(cs, imp, root, hash, ctx, &line);
		/* a target that cannot be read or is no file to patch is this
		 * improvement's error; the others are assessed as usual */
		if (rc < 0 && (rc = bsi_improvement_set_error(imp, rc, line, "%s",
							       bsi_error_message())) < 0)
			return rc;
	}
	return BSI_OK;
}
