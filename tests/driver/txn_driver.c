/*
 * txn_driver.c - a tiny program around the txn API, built by check_txn with
 * failpoints ON (host/failpoint.c compiled with -DBSI_FAILPOINTS and linked
 * with the suite's host objects), so that the crash and fault tests can run
 * the real transaction code in a child that BSI_FAILPOINT kills or
 * BSI_FAULT fails.  It is not part of bsi; the CLI does the same through
 * build/bsi-failpoint once it lands.
 *
 *   txn_driver [--wait N] STATE ROOT SOURCE PLUGINDIR PLUGIN COMMAND ...
 *     apply ID [r PATH FROM TO PAYLOAD]... [s SERVICE]...
 *     rollback ID
 *     recover
 *
 * Every command takes the lock and recovers first, like the CLI must.
 * Exit status as bsi's (error.h); the error message on stderr.
 */
#include "changeset.h"
#include "error.h"
#include "fsroot.h"
#include "lock.h"
#include "plugin.h"
#include "source.h"
#include "state.h"
#include "txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int build(bsi_changeset **out, int argc, char **argv)
{
	bsi_changeset *cs = NULL;
	bsi_improvement *imp;
	int i;

	bsi_changeset_new(&cs);
	bsi_changeset_add(cs, &imp);
	imp->id = strdup(argv[0]);
	imp->component = strdup("test");
	imp->summary = strdup("driver improvement");
	imp->severity = strdup("high");
	for (i = 1; i < argc;) {
		if (strcmp(argv[i], "r") == 0 && i + 4 < argc) {
			bsi_improvement_add_replace(imp, argv[i + 1], argv[i + 2], argv[i + 3],
						    argv[i + 4], 0);
			i += 5;
		} else if (strcmp(argv[i], "s") == 0 && i + 1 < argc) {
			bsi_improvement_add_restart(imp, argv[i + 1], 0);
			i += 2;
		} else {
			bsi_changeset_free(cs);
			return bsi_error_set(BSI_EUSAGE, "bad action at %s", argv[i]);
		}
	}
	*out = cs;
	return 0;
}

int main(int argc, char **argv)
{
	bsi_txn_ctx ctx = {0};
	bsi_txn_result res;
	bsi_changeset *cs = NULL;
	bsi_state *st = NULL;
	bsi_root *root = NULL;
	bsi_source *src = NULL;
	bsi_plugin *plugin = NULL;
	bsi_lock *lock = NULL;
	double wait = -1;
	int ret;

	if (argc > 2 && strcmp(argv[1], "--wait") == 0) {
		wait = atof(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc < 7) {
		fprintf(stderr, "usage: txn_driver [--wait N] STATE ROOT SOURCE PLUGINDIR PLUGIN CMD ...\n");
		return 2;
	}
	if ((ret = bsi_lock_acquire(&lock, argv[1], wait)) != 0 ||
	    (ret = bsi_state_open(&st, argv[1])) != 0 || (ret = bsi_root_open(&root, argv[2])) != 0 ||
	    (ret = bsi_source_open_dir(&src, argv[3])) != 0 ||
	    (ret = bsi_plugin_load(&plugin, argv[4], argv[5], argv[1])) != 0)
		goto done;
	ctx.state = st;
	ctx.root = root;
	ctx.source = src;
	ctx.plugin = plugin;
	if ((ret = bsi_txn_recover(&ctx, NULL)) != 0)
		goto done;
	if (strcmp(argv[6], "apply") == 0 && argc > 7) {
		if ((ret = build(&cs, argc - 7, argv + 7)) != 0)
			goto done;
		ret = bsi_txn_apply(&res, &ctx, &cs->items[0]);
		if (ret == 0)
			printf("%s%s%s\n", bsi_status_name(res.status), res.changed ? " changed" : "",
			       res.restart_pending ? " restart-pending" : "");
	} else if (strcmp(argv[6], "rollback") == 0 && argc > 7) {
		ret = bsi_txn_rollback(&res, &ctx, argv[7]);
		if (ret == 0)
			printf("%s\n", bsi_status_name(res.status));
	} else if (strcmp(argv[6], "recover") == 0) {
		ret = 0;
	} else {
		ret = bsi_error_set(BSI_EUSAGE, "unknown command %s", argv[6]);
	}
done:
	if (ret != 0)
		fprintf(stderr, "txn_driver: %s\n", bsi_error_message());
	bsi_changeset_free(cs);
	bsi_plugin_free(plugin);
	bsi_source_free(src);
	bsi_root_free(root);
	bsi_state_free(st);
	bsi_lock_free(lock);
	return bsi_error_exit_status(ret);
}
