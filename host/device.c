#include "device.h"

#include "error.h"
#include "feed.h"
#include "plan.h"
#include "recipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bsi_recipe_limits limits_of(const bsi_cli *cli)
{
	bsi_recipe_limits lim = {
		.mem_limit = (size_t)cli->cfg.recipe_memory_mib << 20,
		.cpu_seconds = cli->cfg.recipe_cpu_seconds,
		.wall_seconds = cli->cfg.recipe_wall_seconds,
	};
	return lim;
}

/* What the state knows beats a fresh look at the files in these cases: an
 * admin's hold, a rollback (never re-applied by itself), and a verdict of
 * verify (tampered, obsolete) on files that are no longer what the plan
 * expects. */
static int overlay_state(bsi_changeset *cs, bsi_state *st)
{
	for (size_t i = 0; i < cs->count; i++) {
		bsi_improvement *imp = &cs->items[i];
		bsi_state_improvement *known = NULL;
		int rc = bsi_state_improvement_get(st, imp->id, &known);

		if (rc < 0)
			return rc;
		if (!known)
			continue;
		if (imp->status == BSI_STATUS_PENDING && known->held) {
			imp->status = BSI_STATUS_HELD;
			rc = bsi_improvement_set_reason(imp, "held; bsi release %s lets it apply",
							imp->id);
		} else if (imp->status == BSI_STATUS_PENDING &&
			   known->status == BSI_STATUS_ROLLED_BACK) {
			imp->status = BSI_STATUS_ROLLED_BACK;
			rc = bsi_improvement_set_reason(imp, "rolled back; bsi apply %s applies it again",
							imp->id);
		} else if (imp->status == BSI_STATUS_NOT_APPLICABLE &&
			   (known->status == BSI_STATUS_TAMPERED ||
			    known->status == BSI_STATUS_OBSOLETE)) {
			imp->status = known->status;
			rc = bsi_improvement_set_reason(imp, "%s", known->reason ? known->reason : "");
		} else if (imp->status == BSI_STATUS_APPLIED && known->restart_pending) {
			rc = bsi_improvement_set_reason(imp, "a service restart is pending; bsi apply "
							     "retries it");
		}
		bsi_state_improvement_free(known);
		if (rc < 0)
			return rc;
	}
	return BSI_OK;
}

int bsi_device_plan(bsi_changeset **out, const bsi_cli *cli, const bsi_source *src,
		    const bsi_root *root, bsi_state *st)
{
	bsi_recipe_limits lim = limits_of(cli);
	bsi_changeset *cs = NULL;
	int rc;

	*out = NULL;
	rc = bsi_changeset_new(&cs);
	if (rc == 0)
		rc = bsi_recipe_load_all(cs, src, root, &lim);
	/* A preview checks every payload; a device, only those it may stage
	 * (plan.h says why). */
	if (rc == 0 && !st)
		rc = bsi_plan_check_payloads(cs, src, false);
	if (rc == 0)
		rc = st ? bsi_plan_assess(cs, root, bsi_state_plan_hasher, st)
			: bsi_plan_assess(cs, root, bsi_plan_hash_file, NULL);
	if (rc == 0 && st)
		rc = bsi_plan_check_payloads(cs, src, true);
	if (rc == 0 && st)
		rc = overlay_state(cs, st);
	if (rc == 0)
		*out = cs;
	else
		bsi_changeset_free(cs);
	return rc;
}

/* mkdir -p for the state directory, private to root. */
static int make_state_dir(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return bsi_error_set(BSI_EUSAGE, "bad state directory \"%s\"", dir);
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return bsi_error_set(BSI_EFAIL, "state directory %s: %s", path, strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return bsi_error_set(BSI_EFAIL, "state directory %s: %s", path, strerror(errno));
	return BSI_OK;
}

bsi_txn_ctx bsi_device_txn_ctx(const bsi_device *d)
{
	bsi_txn_ctx ctx = {
		.state = d->st,
		.root = d->root,
		.source = d->src,
		.plugin = d->plugin,
		.feed_commit = d->src ? bsi_source_commit(d->src) : NULL,
		.signer = d->signer[0] ? d->signer : NULL,
	};
	return ctx;
}

/* Finish what a killed bsi left, under the lock.  Without the lock (a
 * read-only command), only when no one else holds it: a holder is alive
 * and will finish its own transaction. */
static int recover(bsi_device *d, bool have_lock)
{
	bsi_state_txn **left = NULL;
	bsi_lock *lock = NULL;
	bsi_txn_ctx ctx;
	size_t n = 0;
	int rc;

	if (!have_lock) {
		rc = bsi_state_txn_unfinished(d->st, &left, &n);
		bsi_state_txn_list_free(left, n);
		if (rc < 0 || n == 0)
			return rc;
		if (bsi_lock_acquire(&lock, bsi_state_dir(d->st), -1) < 0) {
			bsi_error_clear();
			return BSI_OK;
		}
	}
	ctx = bsi_device_txn_ctx(d);
	rc = bsi_txn_recover(&ctx, &d->recovered);
	if (rc == 0 && d->recovered > 0 && d->cli->verbosity >= 0)
		fprintf(stderr, "bsi: recovered %zu interrupted transaction%s\n", d->recovered,
			d->recovered == 1 ? "" : "s");
	bsi_lock_free(lock);
	return rc;
}

/* The signer of the trusted head, from the authenticated-commit cache. */
static void find_signer(bsi_device *d)
{
	const char *commit = d->src ? bsi_source_commit(d->src) : NULL;
	char *signer = NULL;
	bool found = false;

	if (commit && bsi_state_commit_lookup(d->st, commit, &found, &signer) == 0 && found &&
	    signer)
		snprintf(d->signer, sizeof(d->signer), "%s", signer);
	free(signer);
	bsi_error_clear();
}

static int open_source(bsi_device *d, bool optional)
{
	int rc;

	if (d->cli->tree)
		return bsi_source_open_dir(&d->src, d->cli->tree);
	rc = bsi_feed_open_trusted(&d->src, &d->repo, d->st);
	if (rc == BSI_EUSAGE && optional) {
		bsi_error_clear();
		return BSI_OK;
	}
	return rc;
}

int bsi_device_open(bsi_device *d, bsi_cli *cli, int flags)
{
	int rc;

	memset(d, 0, sizeof(*d));
	d->cli = cli;
	rc = make_state_dir(cli->state_dir);
	if (rc == 0)
		rc = bsi_state_open(&d->st, cli->state_dir);
	if (rc == 0 && (flags & BSI_DEVICE_LOCK))
		rc = bsi_lock_acquire(&d->lock, cli->state_dir, cli->wait);
	if (rc == 0 && (rc = bsi_root_open(&d->root, cli->root)) < 0)
		bsi_error_wrap("target root");
	if (rc == 0 && (flags & BSI_DEVICE_PLUGIN)) {
		char dir[4096];

		if (cli->cfg.plugin_dir)
			snprintf(dir, sizeof(dir), "%s", cli->cfg.plugin_dir);
		else
			rc = bsi_plugin_default_dir(dir, sizeof(dir));
		if (rc == 0)
			rc = bsi_plugin_load(&d->plugin, dir, cli->cfg.service_manager,
					     cli->state_dir);
	}
	if (rc == 0)
		rc = recover(d, d->lock != NULL);
	if (rc == 0 && (flags & (BSI_DEVICE_PLAN | BSI_DEVICE_TRY_PLAN)))
		rc = open_source(d, !(flags & BSI_DEVICE_PLAN));
	if (rc == 0 && d->src) {
		find_signer(d);
		rc = bsi_device_plan(&d->cs, cli, d->src, d->root, d->st);
	}
	if (rc < 0)
		bsi_device_close(d);
	return rc;
}

void bsi_device_close(bsi_device *d)
{
	bsi_changeset_free(d->cs);
	bsi_source_free(d->src);
	git_repository_free(d->repo);
	bsi_plugin_free(d->plugin);
	bsi_root_free(d->root);
	bsi_lock_free(d->lock);
	bsi_state_free(d->st);
	memset(d, 0, sizeof(*d));
}
