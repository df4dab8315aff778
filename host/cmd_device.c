/*
 * cmd_device.c - the device's commands: enroll, sync, plan, apply,
 * rollback, hold, release, status, show, history, verify; and feed verify
 * for teams.
 */
#include "agent.h"
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
	if (rc == 0 && cli->json)
		rc = bsi_output_json(stdout, json_pack("{s:s, s:s}", "url", cli->argv[0],
						       "introduction", cli->introduction));
	else if (rc == 0 && cli->verbosity >= 0)
		printf("enrolled in %s from introduction %s; run bsi sync to fetch it\n",
		       cli->argv[0], cli->introduction);
	bsi_device_close(&d);
	return rc;
}

/* A sync that worked ends the agent's backoff (agent.h): the feed is
 * reachable, and the next agent run should not wait to find that out. */
static int forget_failed_syncs(bsi_device *d)
{
	bsi_agent_backoff b;
	int rc = bsi_agent_backoff_get(&b, d->st);

	if (rc == 0 && b.failures > 0)
		rc = bsi_agent_backoff_reset(d->st);
	bsi_agent_backoff_clear_struct(&b);
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
	if (rc == 0)
		rc = forget_failed_syncs(&d);
	if (rc == 0 && cli->json)
		rc = bsi_output_json(stdout, json_pack("{s:s, s:s?, s:I, s:b}", "head", res.head,
						       "previous",
						       res.previous[0] ? res.previous : NULL,
						       "new_commits", (json_int_t)res.verified,
						       "up_to_date",
						       strcmp(res.head, res.previous) == 0));
	else if (rc == 0 && cli->verbosity >= 0) {
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
				   cli->signer, cli->verbosity, cli->json);
}

/* plan without --tree: the trusted feed head, with the state's statuses. */
int bsi_cmd_device_plan(bsi_cli *cli)
{
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_PLAN);
	if (rc < 0)
		return rc;
	rc = bsi_output_show_plan(cli, d.cs);
	bsi_device_close(&d);
	return rc;
}

/* Report processes that still run the old code of imp, and restart their
 * units when the configuration says so. */
static int handle_old_code(bsi_device *d, const bsi_improvement *imp)
{
	bsi_procs *procs = NULL;
	size_t restarted = 0;
	int rc;

	if (bsi_device_old_code(&procs, d, imp->id) < 0) {
		fprintf(stderr, "bsi: %s: cannot look for processes running old code: %s\n",
			imp->id, bsi_error_message());
		return BSI_OK;
	}
	rc = BSI_OK;
	if (d->cli->cfg.restart_affected)
		rc = bsi_device_restart_old_code(&restarted, d, procs, imp->id);
	for (size_t i = 0; procs && i < procs->count && d->cli->verbosity >= 0; i++)
		fprintf(stderr, "bsi: %s: pid %d (%s%s%s) still runs the old %s%s\n", imp->id,
			(int)procs->items[i].pid, procs->items[i].command,
			procs->items[i].unit ? ", " : "",
			procs->items[i].unit ? procs->items[i].unit : "", procs->items[i].rel,
			d->cli->cfg.restart_affected && procs->items[i].unit &&
					!procs->items[i].user_unit
				? "; restarted its unit"
				: "");
	bsi_procs_free(procs);
	return rc;
}

/* Apply one improvement and say what happened (*changed: files or
 * restarts were done now).  Returns its error, or BSI_EFAIL after printing
 * when it could not be applied as asked. */
static int apply_one(bsi_device *d, const bsi_improvement *imp, bool asked, bool *changed)
{
	bool text = d->cli->verbosity >= 0 && !d->cli->json;
	bsi_txn_result res;
	char summary[1024];
	int rc;

	*changed = false;
	rc = bsi_device_apply(&res, d, imp);
	if (rc < 0)
		return rc;
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
	*changed = res.changed;
	if (res.changed && text) {
		bsi_device_summary(summary, sizeof(summary), imp);
		printf("applied %s: %s\n", imp->id, summary);
	} else if (asked && text) {
		printf("%s is already applied\n", imp->id);
	}
	return res.changed ? handle_old_code(d, imp) : BSI_OK;
}

static bool is_asked(void *ctx, const char *id)
{
	const bsi_cli *cli = ctx;

	for (int k = 0; k < cli->argc; k++)
		if (strcmp(cli->argv[k], id) == 0)
			return true;
	return false;
}

/*
 * Apply what is due (or the improvements named), one transaction each.  An
 * improvement in error is never applied; the others are, and the exit code
 * is then the worst error among them: of the feed's errors (whole recipe
 * files included) without ids, of the ones asked for with ids.
 */
/* An improvement that was not applied, for apply --json. */
static void not_applied(json_t *list, const char *id, int code, const char *message)
{
	if (list)
		json_array_append_new(list, json_pack("{s:s, s:i, s:s}", "id", id, "code",
						       bsi_error_exit_status(code), "message", message));
}

int bsi_cmd_apply(bsi_cli *cli)
{
	json_t *done = cli->json ? json_array() : NULL, *failed = cli->json ? json_array() : NULL;
	size_t applied = 0, broken = 0;
	bsi_device d;
	int rc, worst = BSI_OK;
	bool changed;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK | BSI_DEVICE_PLAN | BSI_DEVICE_PLUGIN);
	if (rc < 0)
		return rc;
	for (int i = 0; i < cli->argc; i++) {
		if (!bsi_changeset_find(d.cs, cli->argv[i])) {
			rc = bsi_device_no_such_improvement(&d, cli->argv[i]);
			goto done;
		}
	}
	for (size_t i = 0; cli->argc == 0 && i < d.cs->nerrors && cli->verbosity >= 0; i++)
		fprintf(stderr, "bsi: %s\n", d.cs->errors[i].reason);
	for (size_t i = 0; i < d.cs->count; i++) {
		const bsi_improvement *imp = &d.cs->items[i];
		bool asked = cli->argc > 0 && is_asked(cli, imp->id);

		if (imp->status == BSI_STATUS_ERROR) {
			if (cli->argc == 0 || asked) {
				fprintf(stderr, "bsi: %s: not applied: %s\n", imp->id, imp->reason);
				not_applied(failed, imp->id, imp->error_code, imp->reason);
				broken++;
			}
			continue;
		}
		/* by default: what is pending (not held, not rolled back), and
		 * what is applied with a restart still owed */
		if (cli->argc > 0 ? !asked
				  : !(imp->status == BSI_STATUS_PENDING ||
				      (imp->status == BSI_STATUS_APPLIED && imp->reason)))
			continue;
		rc = apply_one(&d, imp, asked, &changed);
		if (rc < 0) {
			fprintf(stderr, "bsi: %s\n", bsi_error_message());
			not_applied(failed, imp->id, rc, bsi_error_message());
			worst = bsi_error_worse(worst, rc);
			broken++;
		} else if (imp->status == BSI_STATUS_PENDING || asked) {
			applied++;
			if (done && changed)
				json_array_append_new(done, json_string(imp->id));
		}
	}
	if (cli->json) {
		json_t *plan = bsi_output_plan_json(d.cs);

		rc = bsi_output_json(stdout, json_pack("{s:o, s:o, s:O}", "applied", done,
						       "not_applied", failed, "errors",
						       plan ? json_object_get(plan, "errors") : NULL));
		done = failed = NULL;
		json_decref(plan);
		if (rc < 0)
			goto done;
	} else if (applied == 0 && broken == 0 && cli->verbosity >= 0 && cli->argc == 0) {
		printf("nothing to apply\n");
	}
	worst = bsi_error_worse(worst, bsi_changeset_worst_error(d.cs, cli->argc ? is_asked : NULL,
								 cli));
	rc = worst;
	if (rc < 0)
		bsi_error_set(rc, "%zu applied; %s not applied (see above)", applied,
			      cli->argc == 0 && d.cs->nerrors > 0 ? "errors in the feed were"
								  : "some improvements were");
done:
	json_decref(done);
	json_decref(failed);
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
	else if (rc == 0 && cli->json)
		rc = bsi_output_json(stdout, json_pack("{s:s}", "rolled_back", cli->argv[0]));
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
	bsi_device_warn_plan(&d);
	/* an improvement the device has not recorded yet, but the feed has */
	if (d.cs && bsi_changeset_find(d.cs, cli->argv[0]))
		rc = bsi_state_improvement_note(d.st, bsi_changeset_find(d.cs, cli->argv[0]));
	ctx = bsi_device_txn_ctx(&d);
	if (rc == 0)
		rc = bsi_txn_hold(&ctx, cli->argv[0], held);
	if (rc == 0 && cli->json)
		rc = bsi_output_json(stdout, json_pack("{s:s}", held ? "held" : "released",
						       cli->argv[0]));
	else if (rc == 0 && cli->verbosity >= 0)
		printf(held ? "held %s: it will not be applied automatically\n"
			    : "released %s: it applies with the next bsi apply\n",
		       cli->argv[0]);
	bsi_device_close(&d);
	return rc;
}

int bsi_cmd_hold(bsi_cli *cli) { return hold_or_release(cli, true); }

int bsi_cmd_release(bsi_cli *cli) { return hold_or_release(cli, false); }
