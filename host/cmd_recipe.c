/*
 * cmd_recipe.c - the team's commands: recipe check, plan (--tree: a preview).
 */
#include "commands.h"
#include "device.h"
#include "error.h"
#include "output.h"
#include "plan.h"
#include "recipe.h"

#include <stdio.h>

int bsi_cmd_recipe_check(bsi_cli *cli)
{
	bsi_recipe_limits lim = bsi_device_recipe_limits(cli);
	int rc = BSI_OK;

	for (int i = 0; i < cli->argc; i++) {
		bsi_changeset *cs = NULL;
		int one = bsi_changeset_new(&cs);

		if (one == 0)
			one = bsi_recipe_check_file(cs, cli->argv[i], &lim);
		if (one < 0) {
			/* report each bad file, exit with the first failure's code */
			fprintf(stderr, "bsi: %s\n", bsi_error_message());
			if (rc == 0)
				rc = one;
			bsi_changeset_free(cs);
			continue;
		}
		/* an improvement whose entry or apply failed is reported alone */
		for (size_t k = 0; k < cs->count; k++) {
			if (cs->items[k].status != BSI_STATUS_ERROR)
				continue;
			fprintf(stderr, "bsi: %s\n", cs->items[k].reason);
			if (rc == 0)
				rc = cs->items[k].error_code;
			one = cs->items[k].error_code;
		}
		if (one == 0 && cli->verbosity >= 0)
			printf("%s: ok, %zu improvement%s\n", cli->argv[i], cs->count,
			       cs->count == 1 ? "" : "s");
		bsi_changeset_free(cs);
	}
	if (rc < 0)
		bsi_error_set(rc, "%s", "recipe check failed");
	return rc;
}

int bsi_cmd_plan(bsi_cli *cli)
{
	bsi_source *src = NULL;
	bsi_root *root = NULL;
	bsi_changeset *cs = NULL;
	int rc;

	/* Without --tree, the device's plan: the trusted head, with its state.
	 * With it, a pure preview that never opens the state directory. */
	if (!cli->tree)
		return bsi_cmd_device_plan(cli);
	rc = bsi_source_open_dir(&src, cli->tree);
	if (rc == 0 && (rc = bsi_root_open(&root, cli->root)) < 0)
		bsi_error_wrap("target root");
	if (rc == 0)
		bsi_root_set_max_target(root, (uint64_t)cli->cfg.max_target_mib << 20);
	if (rc == 0)
		rc = bsi_device_plan(&cs, cli, src, root, NULL);
	if (rc == 0)
		rc = bsi_output_show_plan(cli, cs);

	bsi_changeset_free(cs);
	bsi_root_free(root);
	bsi_source_free(src);
	return rc;
}
