/*
 * cmd_device.c - the device's commands: enroll, sync, plan, apply,
 * rollback, hold, release, status, show, history, verify; and feed verify
 * for teams.
 */
#include "commands.h"
#include "device.h"
#include "error.h"
#include "feed.h"
#include "output.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int bsi_cmd_enroll(bsi_cli *cli)
{
	bsi_device d;
	int rc;

	if (!cli->introduction || !cli->signer)
		return bsi_error_set(BSI_EUSAGE, "enroll needs --introduction COMMIT and --signer KEY");
	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK);
	if (rc < 0)
		return rc;
	rc = bsi_feed_enroll(d.st, cli->argv[0], cli->introduction, cli->signer);
	if (rc == 0 && cli->verbosity >= 0)
		printf("enrolled in %s from introduction %s; run bsi sync to fetch it\n",
		       cli->argv[0], cli->introduction);
	bsi_device_close(&d);
	return rc;
}

int bsi_cmd_sync(bsi_cli *cli)
{
	bsi_feed_sync_result res;
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK);
	if (rc < 0)
		return rc;
	rc = bsi_feed_sync(&res, d.st, &cli->cfg, cli->verbosity >= 0 && isatty(2));
	if (rc == 0 && cli->verbosity >= 0) {
		if (strcmp(res.head, res.previous) == 0)
			printf("feed is up to date at %.12s\n", res.head);
		else
			printf("feed head %.12s: %zu new commit%s authenticated\n", res.head,
			       res.verified, res.verified == 1 ? "" : "s");
	}
	bsi_device_close(&d);
	return rc;
}

int bsi_cmd_feed_verify(bsi_cli *cli)
{
	return bsi_feed_verify_dir(cli->argc > 0 ? cli->argv[0] : ".", cli->introduction,
				   cli->signer, cli->verbosity);
}

/* plan without --tree: the trusted feed head, with the state's statuses. */
int bsi_cmd_device_plan(bsi_cli *cli)
{
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_PLAN);
	if (rc < 0)
		return rc;
	if (cli->json)
		rc = bsi_output_json(stdout, bsi_output_plan_json(d.cs));
	else if (cli->verbosity >= 0)
		bsi_output_plan(stdout, d.cs);
	bsi_device_close(&d);
	return rc;
}

static void print_services(const bsi_improvement *imp)
{
	const char *sep = " ";

	for (size_t k = 0; k < imp->nactions; k++) {
		if (imp->actions[k].op == BSI_ACTION_RESTART) {
			printf("%s%s", sep, imp->actions[k].service);
			sep = ", ";
		}
	}
}

static size_t count_replaces(const bsi_improvement *imp)
{
	size_t n = 0;

	for (size_t k = 0; k < imp->nactions; k++)
		n += imp->actions[k].op == BSI_ACTION_REPLACE;
	return n;
}

/* Apply one improvement and say what happened.  Returns its error, or
 * BSI_EFAIL after printing when it could not be applied as asked. */
static int apply_one(bsi_device *d, const bsi_improvement *imp, bool asked)
{
	bsi_txn_ctx ctx = bsi_device_txn_ctx(d);
	bsi_txn_result res;
	int rc;

	rc = bsi_state_improvement_note(d->st, imp);
	if (rc == 0)
		rc = bsi_txn_apply(&res, &ctx, imp);
	if (rc != 0) /* not < 0: res is unset whatever the code */
		return bsi_error_wrap("%s", imp->id);
	if (res.status == BSI_STATUS_NOT_APPLICABLE) {
		if (asked)
			return bsi_error_set(BSI_EFAIL, "%s is not applicable: %s", imp->id, res.reason);
		return BSI_OK;
	}
	if (res.restart_pending) {
		fprintf(stderr, "bsi: %s: files applied, but a restart failed: %s\n", imp->id,
			res.reason);
		return bsi_error_set(BSI_EFAIL, "%s: restart pending; the next bsi apply retries it",
				     imp->id);
	}
	if (d->cli->verbosity < 0)
		return BSI_OK;
	if (res.changed) {
		printf("applied %s: %zu file%s replaced", imp->id, count_replaces(imp),
		       count_replaces(imp) == 1 ? "" : "s");
		if (count_replaces(imp) < imp->nactions) {
			printf("; restarted");
			print_services(imp);
		}
		printf("\n");
	} else if (asked) {
		printf("%s is already applied\n", imp->id);
	}
	return BSI_OK;
}

int bsi_cmd_apply(bsi_cli *cli)
{
	size_t applied = 0;
	bsi_device d;
	int rc, first = BSI_OK;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK | BSI_DEVICE_PLAN | BSI_DEVICE_PLUGIN);
	if (rc < 0)
		return rc;
	for (int i = 0; i < cli->argc; i++) {
		if (!bsi_changeset_find(d.cs, cli->argv[i])) {
			rc = bsi_error_set(BSI_EUSAGE, "no improvement \"%s\" in the feed", cli->argv[i]);
			goto done;
		}
	}
	for (size_t i = 0; i < d.cs->count; i++) {
		const bsi_improvement *imp = &d.cs->items[i];
		bool asked = false;

		for (int k = 0; k < cli->argc; k++)
			asked |= strcmp(cli->argv[k], imp->id) == 0;
		/* by default: what is pending (not held, not rolled back), and
		 * what is applied with a restart still owed */
		if (cli->argc > 0 ? !asked
				  : !(imp->status == BSI_STATUS_PENDING ||
				      (imp->status == BSI_STATUS_APPLIED && imp->reason))) {
			rc = bsi_state_improvement_note(d.st, imp);
			if (rc < 0)
				goto done;
			continue;
		}
		rc = apply_one(&d, imp, asked);
		if (rc < 0) {
			fprintf(stderr, "bsi: %s\n", bsi_error_message());
			if (first == 0)
				first = rc;
			if (rc != BSI_EFAIL || asked)
				continue;
		} else if (imp->status == BSI_STATUS_PENDING || asked) {
			applied++;
		}
	}
	if (applied == 0 && first == 0 && cli->verbosity >= 0 && cli->argc == 0)
		printf("nothing to apply\n");
	rc = first;
	if (rc < 0)
		bsi_error_set(rc, "some improvements were not applied (see above)");
done:
	bsi_device_close(&d);
	return rc;
}

int bsi_cmd_rollback(bsi_cli *cli)
{
	bsi_txn_result res;
	bsi_txn_ctx ctx;
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK | BSI_DEVICE_PLUGIN);
	if (rc < 0)
		return rc;
	ctx = bsi_device_txn_ctx(&d);
	rc = bsi_txn_rollback(&res, &ctx, cli->argv[0]);
	if (rc == 0 && res.restart_pending)
		rc = bsi_error_set(BSI_EFAIL, "%s rolled back, but a restart failed: %s",
				   cli->argv[0], res.reason);
	else if (rc == 0 && cli->verbosity >= 0)
		printf("rolled back %s; it will not be applied again unless you run bsi apply %s\n",
		       cli->argv[0], cli->argv[0]);
	bsi_device_close(&d);
	return rc;
}

static int hold_or_release(bsi_cli *cli, bool held)
{
	bsi_txn_ctx ctx;
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK | BSI_DEVICE_TRY_PLAN);
	if (rc < 0)
		return rc;
	/* an improvement the device has not recorded yet, but the feed has */
	if (d.cs && bsi_changeset_find(d.cs, cli->argv[0]))
		rc = bsi_state_improvement_note(d.st, bsi_changeset_find(d.cs, cli->argv[0]));
	ctx = bsi_device_txn_ctx(&d);
	if (rc == 0)
		rc = bsi_txn_hold(&ctx, cli->argv[0], held);
	if (rc == 0 && cli->verbosity >= 0)
		printf(held ? "held %s: it will not be applied automatically\n"
			    : "released %s: it applies with the next bsi apply\n",
		       cli->argv[0]);
	bsi_device_close(&d);
	return rc;
}

int bsi_cmd_hold(bsi_cli *cli) { return hold_or_release(cli, true); }

int bsi_cmd_release(bsi_cli *cli) { return hold_or_release(cli, false); }
