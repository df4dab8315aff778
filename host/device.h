/*
 * device.h - everything a device command needs, opened in the right order.
 *
 * The CLI's device commands (apply, rollback, hold, release, verify,
 * status, show, history) all start the same way, and the order matters: take
 * the lock, open the state, bind it to the target root, finish whatever a
 * killed bsi left half done (bsi_txn_recover), and only then look or act.
 * bsi_device_open does exactly that, so no command can forget a step.
 */
#ifndef BSI_DEVICE_H
#define BSI_DEVICE_H

#include "fsroot.h"
#include "lock.h"
#include "plugin.h"
#include "state.h"
#include "txn.h"

#include <stdbool.h>

typedef struct {
	bsi_lock *lock;     /* NULL for a reader that found the lock busy */
	bsi_state *state;
	bsi_root *root;
	bsi_plugin *plugin; /* NULL unless a service manager was asked for */
	bsi_txn_ctx ctx;    /* state, root, plugin filled in; set source,
			       feed_commit and signer before bsi_txn_apply */
	size_t recovered;   /* transactions bsi_txn_recover repaired */
} bsi_device;

typedef struct {
	const char *root;            /* --root */
	const char *state_dir;       /* --state */
	double wait;                 /* bsi_cli.wait: <0 fail fast, 0 forever, N s */
	bool mutating;               /* apply, rollback, hold, release, verify, agent */
	const char *service_manager; /* plugin to load (cfg.service_manager), or NULL */
	const char *plugin_dir;      /* cfg.plugin_dir, or NULL for the default */
} bsi_device_options;

/*
 * Mutating: take the lock (waiting as opt->wait says; BSI_EBUSY when it
 * cannot), open the state and the root, load the plugin when named, and
 * recover; the lock is held until bsi_device_free.  Reading (status, show,
 * history): no lock, unless a transaction is left unfinished; then try the
 * lock without waiting, recover under it and let it go, or, when busy,
 * read without recovering (its holder recovers).  On error nothing stays
 * open.
 */
int bsi_device_open(bsi_device **out, const bsi_device_options *opt);
/* Close everything and release the lock; NULL-safe. */
void bsi_device_free(bsi_device *dev);

#endif
