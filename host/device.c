#include "device.h"

#include "agent.h"
#include "error.h"
#include "log.h"
#include "feed.h"
#include "plan.h"
#include "recipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>

bsi_recipe_feed_limits bsi_device_feed_limits(const bsi_cli *cli)
{
	bsi_recipe_feed_limits lim = {
		.max_files = (size_t)cli->cfg.feed_max_recipes,
		.max_improvements = (size_t)cli->cfg.feed_max_improvements,
		.max_actions = (size_t)cli->cfg.feed_max_actions,
		.max_seconds = (double)cli->cfg.feed_eval_seconds,
	};
	return lim;
}

bsi_recipe_limits bsi_device_recipe_limits(const bsi_cli *cli)
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
static bool replaces_files(const bsi_improvement *imp)
{
	for (size_t k = 0; k < imp->nactions; k++)
		if (imp->actions[k].op == BSI_ACTION_REPLACE)
			return true;
	return false;
}

static int overlay_state(bsi_changeset *cs, bsi_state *st)
{
	json_t *deferred = NULL;
	int rc = bsi_agent_deferrals_get(&deferred, st);

	for (size_t i = 0; rc == 0 && i < cs->count; i++) {
		bsi_improvement *imp = &cs->items[i];
		bsi_state_improvement *known = NULL;
		const char *waits = json_string_value(json_object_get(deferred, imp->id));

		/* why the agent left it pending (agent.h) */
		if (imp->status == BSI_STATUS_PENDING && waits &&
		    (rc = bsi_improvement_set_reason(imp, "%s", waits)) < 0)
			break;
		if ((rc = bsi_state_improvement_get(st, imp->id, &known)) < 0)
			break;
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
		} else if (imp->status == BSI_STATUS_PENDING && known->status == BSI_STATUS_APPLIED &&
			   !replaces_files(imp)) {
			/* nothing on disk tells that a restart-only improvement
			 * was applied: the state does */
			imp->status = BSI_STATUS_APPLIED;
		}
		if (rc == 0 && imp->status == BSI_STATUS_APPLIED && known->restart_pending)
			rc = bsi_improvement_set_reason(imp, "a service restart is pending; bsi apply "
							     "retries it");
		bsi_state_improvement_free(known);
	}
	json_decref(deferred);
	return rc;
}

int bsi_device_plan(bsi_changeset **out, const bsi_cli *cli, const bsi_source *src,
		    const bsi_root *root, bsi_state *st)
{
	bsi_recipe_limits lim = bsi_device_recipe_limits(cli);
	bsi_recipe_feed_limits feed = bsi_device_feed_limits(cli);
	bsi_plan_payload_cache cache = {bsi_state_payload_get, bsi_state_payload_put, st};
	bsi_changeset *cs = NULL;
	int rc;

	*out = NULL;
	/* each step records what fails in one improvement or file as that
	 * one's error and carries on with the rest (changeset.h) */
	rc = bsi_changeset_new(&cs);
	if (rc == 0)
		rc = bsi_recipe_load_all(cs, src, root, &lim, &feed);
	if (rc == 0)
		rc = st ? bsi_plan_assess(cs, root, bsi_state_plan_hasher, st)
			: bsi_plan_assess(cs, root, bsi_plan_hash_file, NULL);
	/* A preview checks every payload; a device, only those it may stage
	 * (plan.h says why). */
	if (rc == 0)
		rc = bsi_plan_check_payloads(cs, src, st != NULL, st ? &cache : NULL);
	if (rc == 0 && st)
		rc = overlay_state(cs, st);
	if (rc == 0)
		rc = bsi_plan_mark_superseded(cs);
	if (rc == 0)
		*out = cs;
	else
		bsi_changeset_free(cs);
	return rc;
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
	if (rc == 0 && d->recovered > 0)
		bsi_log_warn("recovered %zu interrupted transaction%s", d->recovered,
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
	/* creates the state directory, and refuses one others could change */
	rc = bsi_state_open(&d->st, cli->state_dir);
	if (rc == 0 && (flags & BSI_DEVICE_LOCK))
		rc = bsi_lock_acquire(&d->lock, bsi_state_dir(d->st), cli->wait);
	if (rc == 0 && (rc = bsi_root_open(&d->root, cli->root)) < 0)
		bsi_error_wrap("target root");
	if (rc == 0)
		bsi_root_set_max_target(d->root, (uint64_t)cli->cfg.max_target_mib << 20);
	if (rc == 0 && (flags & BSI_DEVICE_PLUGIN)) {
		char dir[4096];

		if (cli->cfg.plugin_dir)
			snprintf(dir, sizeof(dir), "%s", cli->cfg.plugin_dir);
		else
			rc = bsi_plugin_default_dir(dir, sizeof(dir));
		if (rc == 0)
			rc = bsi_plugin_load(&d->plugin, dir, cli->cfg.service_manager,
					     bsi_state_dir(d->st));
	}
	if (rc == 0)
		rc = recover(d, d->lock != NULL);
	if (rc == 0 && (flags & (BSI_DEVICE_PLAN | BSI_DEVICE_TRY_PLAN))) {
		rc = bsi_device_load_plan(d, !(flags & BSI_DEVICE_PLAN));
		if (rc < 0 && !(flags & BSI_DEVICE_PLAN)) {
			/* status, show, hold, verify work from the state alone
			 * and say why the feed's head could not be planned */
			d->plan_rc = rc;
			snprintf(d->plan_error, sizeof(d->plan_error), "%s", bsi_error_message());
			bsi_error_clear();
			rc = BSI_OK;
		}
	}
	if (rc < 0)
		bsi_device_close(d);
	return rc;
}

int bsi_device_load_plan(bsi_device *d, bool optional)
{
	int rc;

	bsi_changeset_free(d->cs);
	bsi_source_free(d->src);
	git_repository_free(d->repo);
	d->cs = NULL;
	d->src = NULL;
	d->repo = NULL;
	d->signer[0] = '\0';
	d->plan_rc = BSI_OK;
	d->plan_error[0] = '\0';
	rc = open_source(d, optional);
	if (rc == 0 && d->src) {
		find_signer(d);
		rc = bsi_device_plan(&d->cs, d->cli, d->src, d->root, d->st);
	}
	return rc;
}

int bsi_device_no_such_improvement(const bsi_device *d, const char *id)
{
	int worst = BSI_OK;

	for (size_t i = 0; d->cs && i < d->cs->nerrors; i++)
		worst = bsi_error_worse(worst, d->cs->errors[i].code);
	if (worst < 0)
		return bsi_error_set(worst,
				     "no improvement \"%s\" in the feed; %zu recipe file%s in error "
				     "(bsi status lists %s), and it may be in one of them",
				     id, d->cs->nerrors, d->cs->nerrors == 1 ? " is" : "s are",
				     d->cs->nerrors == 1 ? "it" : "them");
	if (d->plan_rc < 0)
		return bsi_error_set(d->plan_rc, "no improvement \"%s\" on this device, and the "
						 "feed head cannot be planned: %s",
				     id, d->plan_error);
	return bsi_error_set(BSI_EUSAGE, "no improvement \"%s\" in the feed%s", id,
			     d->cs ? "" : " or on this device");
}

void bsi_device_warn_plan(const bsi_device *d)
{
	if (d->plan_rc < 0 && d->cli->verbosity >= 0)
		fprintf(stderr, "bsi: warning: the feed head cannot be planned, so this works from "
				"what the device recorded: %s\n",
			d->plan_error);
}

size_t bsi_device_summary(char *out, size_t len, const bsi_improvement *imp)
{
	size_t replaces = 0, used;
	const char *sep = "; restarted ";

	for (size_t k = 0; k < imp->nactions; k++)
		replaces += imp->actions[k].op == BSI_ACTION_REPLACE;
	used = (size_t)snprintf(out, len, "%zu file%s replaced", replaces,
				replaces == 1 ? "" : "s");
	for (size_t k = 0; k < imp->nactions && used < len; k++) {
		if (imp->actions[k].op != BSI_ACTION_RESTART)
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s%s", sep,
					 imp->actions[k].service);
		sep = ", ";
	}
	return used;
}

int bsi_device_apply(bsi_txn_result *out, bsi_device *d, const bsi_improvement *imp)
{
	bsi_txn_ctx ctx = bsi_device_txn_ctx(d);
	int rc;

	rc = bsi_state_improvement_note(d->st, imp);
	if (rc == 0)
		rc = bsi_txn_apply(out, &ctx, imp);
	if (rc != 0) /* not < 0: *out is unset whatever the code */
		return bsi_error_wrap("%s", imp->id);
	return BSI_OK;
}

/* The files bsi replaced for applied improvements, as procs.h looks for
 * them; `owned` holds every string the files point to. */
typedef struct {
	bsi_procs_file *files;
	size_t n;
	char **owned;
	size_t nowned;
} old_set;

static void old_set_clear(old_set *set)
{
	for (size_t i = 0; i < set->nowned; i++)
		free(set->owned[i]);
	free(set->owned);
	free(set->files);
	memset(set, 0, sizeof(*set));
}

static char *own(old_set *set, char *s)
{
	char **grown;

	if (!s)
		return NULL;
	if (!(grown = realloc(set->owned, (set->nowned + 1) * sizeof(*grown)))) {
		free(s);
		return NULL;
	}
	set->owned = grown;
	return set->owned[set->nowned++] = s;
}

/* Add the files improvement id replaced (its committed applies since its
 * last rollback): the path under the root, and the inode of the original
 * that the backup keeps alive. */
static int old_set_add(old_set *set, bsi_device *d, const char *real_root, const char *id)
{
	bsi_state_txn **txns = NULL;
	size_t ntxns = 0;
	int rc;

	rc = bsi_state_txn_applied(d->st, id, 0, &txns, &ntxns);
	for (size_t t = 0; rc == 0 && t < ntxns; t++) {
		for (size_t a = 0; rc == 0 && a < txns[t]->nactions; a++) {
			const bsi_state_action *act = &txns[t]->actions[a];
			bsi_procs_file *grown, *f;
			char *abs = NULL, *backup = NULL;
			struct stat sb;

			if (!act->backup)
				continue;
			if (!(grown = realloc(set->files, (set->n + 1) * sizeof(*grown)))) {
				rc = bsi_error_set(BSI_EFAIL, "out of memory");
				break;
			}
			set->files = grown;
			f = &set->files[set->n];
			memset(f, 0, sizeof(*f));
			if (asprintf(&abs, "%s/%s", strcmp(real_root, "/") ? real_root : "",
				     act->path) < 0)
				abs = NULL;
			f->path = own(set, abs);
			f->rel = own(set, strdup(act->path));
			f->label = own(set, strdup(id));
			if (!f->path || !f->rel || !f->label) {
				rc = bsi_error_set(BSI_EFAIL, "out of memory");
				break;
			}
			set->n++;
			/* where txn.c keeps it: backups/<transaction>/<n>; the kernel
			 * shows a mapping under the file's real path, so for a recipe
			 * path through an alias (bin -> usr/bin) only this inode
			 * finds the process */
			if (asprintf(&backup, "%s/backups/%lld/%s", bsi_state_dir(d->st),
				     (long long)txns[t]->id, act->backup) >= 0 &&
			    stat(backup, &sb) == 0) {
				f->dev = sb.st_dev;
				f->ino = sb.st_ino;
			}
			free(backup);
		}
	}
	bsi_state_txn_list_free(txns, ntxns);
	return rc;
}

int bsi_device_old_code(bsi_procs **out, bsi_device *d, const char *id)
{
	bsi_state_improvement **known = NULL;
	old_set set = {0};
	char real[PATH_MAX];
	size_t nknown = 0;
	int rc;

	*out = NULL;
	if (!realpath(bsi_root_path(d->root), real))
		return bsi_error_set(BSI_EFAIL, "target root %s: %s", bsi_root_path(d->root),
				     strerror(errno));
	rc = bsi_state_improvement_list(d->st, &known, &nknown);
	for (size_t i = 0; rc == 0 && i < nknown; i++)
		if (known[i]->status == BSI_STATUS_APPLIED && (!id || !strcmp(id, known[i]->id)))
			rc = old_set_add(&set, d, real, known[i]->id);
	if (rc == 0)
		rc = bsi_procs_find(out, "/proc", set.files, set.n);
	old_set_clear(&set);
	bsi_state_improvement_list_free(known, nknown);
	return rc;
}

int bsi_device_restart_old_code(size_t *out_restarted, bsi_device *d, const bsi_procs *procs,
				const char *id)
{
	int rc = BSI_OK, first = BSI_OK;

	*out_restarted = 0;
	for (size_t i = 0; i < procs->count; i++) {
		const bsi_proc *p = &procs->items[i];
		bool seen = false;
		char detail[512];

		if (strcmp(p->label, id) != 0 || !p->unit || p->user_unit)
			continue;
		for (size_t k = 0; k < i; k++)
			seen |= procs->items[k].unit && !strcmp(procs->items[k].label, id) &&
				!strcmp(procs->items[k].unit, p->unit);
		if (seen)
			continue;
		snprintf(detail, sizeof(detail), "%s (pid %d %s ran the old %s)", p->unit,
			 (int)p->pid, p->command, p->rel);
		if (!d->plugin)
			rc = bsi_error_set(BSI_EFAIL, "no service manager to restart %s", p->unit);
		else
			rc = bsi_plugin_restart(d->plugin, p->unit);
		if (rc == 0) {
			(*out_restarted)++;
			rc = bsi_state_history_add(d->st, "restart-affected", id, NULL, NULL, detail);
		} else {
			bsi_error_wrap("restart %s, which still runs old code of %s", p->unit, id);
		}
		if (rc < 0 && first == 0)
			first = rc;
	}
	return first;
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
