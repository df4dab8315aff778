/*
 * device.h - what a device command works on, opened in one place.
 *
 * Every device command needs some of: the state database, the lock (for
 * commands that change anything), recovery of a transaction a killed bsi
 * left (always first), the target root, the source of recipes (the
 * trusted feed head, or --tree), the plan with the state's statuses laid
 * over it, and the service plugin.  bsi_device_open() gets exactly the
 * parts the flags ask for, in that order, and bsi_device_close() releases
 * them; a command is then a few lines over these parts.
 */
#ifndef BSI_DEVICE_H
#define BSI_DEVICE_H

#include "changeset.h"
#include "cli.h"
#include "fsroot.h"
#include "lock.h"
#include "plugin.h"
#include "recipe.h"
#include "procs.h"
#include "source.h"
#include "state.h"
#include "txn.h"

enum {
	BSI_DEVICE_LOCK = 1,   /* take the lock (and recover) */
	BSI_DEVICE_PLAN = 2,   /* evaluate the recipes and assess them */
	BSI_DEVICE_PLUGIN = 4, /* load the service manager */
	BSI_DEVICE_TRY_PLAN = 8, /* plan if it can: no source, or a plan that
				    fails, leaves cs NULL (plan_rc says why) */
};

typedef struct {
	bsi_cli *cli;
	bsi_state *st;
	bsi_lock *lock;
	bsi_root *root;
	git_repository *repo;
	bsi_source *src; /* NULL when no plan was asked for or possible */
	bsi_plugin *plugin;
	bsi_changeset *cs; /* the plan, statuses overlaid with the state's */
	int plan_rc;       /* TRY_PLAN: why there is no plan (0: none needed) */
	char plan_error[1024];
	char signer[64];   /* fingerprint of the trusted head's signer, or "" */
	size_t recovered;  /* transactions recovery repaired */
} bsi_device;

int bsi_device_open(bsi_device *d, bsi_cli *cli, int flags);
/* (Re)load the plan from the trusted head (or --tree) into d->src/d->cs,
 * after a sync moved the head.  optional: no error when there is no
 * source yet (d->cs stays NULL). */
int bsi_device_load_plan(bsi_device *d, bool optional);
void bsi_device_close(bsi_device *d);
/* The error for an id the plan does not hold: a usage error (2), unless
 * recipe files are in error or the head cannot be planned, which may be
 * why: then that error's code, and the message says so. */
int bsi_device_no_such_improvement(const bsi_device *d, const char *id);
/* After a TRY_PLAN open whose plan failed: say so on stderr (not quiet). */
void bsi_device_warn_plan(const bsi_device *d);

/* The recipe limits the configuration sets (recipe_memory_mib,
 * recipe_cpu_seconds, recipe_wall_seconds), and the feed's (feed_max_*,
 * feed_eval_seconds). */
bsi_recipe_limits bsi_device_recipe_limits(const bsi_cli *cli);
bsi_recipe_feed_limits bsi_device_feed_limits(const bsi_cli *cli);

/* The transaction context over d's parts. */
bsi_txn_ctx bsi_device_txn_ctx(const bsi_device *d);

/* Plan src against root with the given hasher and lay the state's
 * statuses over it (held, rolled-back, tampered, obsolete).  st may be
 * NULL (a pure preview).  Shared by plan --tree and the device commands. */
int bsi_device_plan(bsi_changeset **out, const bsi_cli *cli, const bsi_source *src,
		    const bsi_root *root, bsi_state *st);

/*
 * Apply one improvement of the plan as one transaction (txn.h), recording
 * its notes first.  Errors are wrapped with the improvement's id; what
 * happened (applied, not-applicable, restart pending) is in *out for the
 * caller to report.  Shared by bsi apply and bsi agent.
 */
int bsi_device_apply(bsi_txn_result *out, bsi_device *d, const bsi_improvement *imp);
/* "2 files replaced; restarted a, b" for imp, into out; returns the length. */
size_t bsi_device_summary(char *out, size_t len, const bsi_improvement *imp);

/*
 * Processes still running code bsi replaced (procs.h): for the applied
 * improvement id, or every applied improvement when id is NULL.  Each
 * process's label is the improvement's id.
 */
int bsi_device_old_code(bsi_procs **out, bsi_device *d, const char *id);
/*
 * Restart, through the service plugin, each systemd unit in procs that
 * runs old code of improvement id (once per unit; units of a user's
 * manager are left alone), with a "restart-affected" history entry each.
 * Returns the first failure after trying them all.
 */
int bsi_device_restart_old_code(size_t *out_restarted, bsi_device *d, const bsi_procs *procs,
				const char *id);

#endif
