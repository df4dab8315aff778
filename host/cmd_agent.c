/*
 * cmd_agent.c - bsi agent: sync, decide and apply, unattended.
 *
 * One run takes the lock, recovers, syncs (unless the sync backoff says
 * wait), plans the trusted head, and applies each pending improvement
 * that is not held, in feed order, one transaction each, when the
 * conditions of agent.h hold; otherwise it records the improvement as
 * pending with the reason.  `--once` is one run, for a systemd timer;
 * without it the agent runs on `interval` with jitter and never holds
 * the lock while it sleeps.
 *
 * Signals only set flags.  SIGTERM and SIGINT: the transaction in progress
 * completes (it is crash-safe either way, but completing it leaves the
 * device in the state the admin reads about), no further one starts, and
 * the agent exits 0.  SIGHUP: the configuration is read again before the
 * next run; a broken file keeps the old configuration and says why.
 */
#include "agent.h"
#include "commands.h"
#include "device.h"
#include "error.h"
#include "feed.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t reload_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_signal = 1;
	else
		stop_signal = sig;
}

static int install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART; /* transaction I/O carries on; sleeps wake */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return bsi_error_set(BSI_EFAIL, "sigaction: %s", strerror(errno));
	return BSI_OK;
}

static void format_when(char out[40], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm) || !strftime(out, 40, "%Y-%m-%d %H:%M:%S %Z", &tm))
		snprintf(out, 40, "%lld", (long long)t);
}

typedef struct {
	int sync_rc;      /* the sync's error, 0 when it synced */
	char sync_msg[1024]; /* and its message */
	int first_error;  /* the first failure of the run */
	int feed_error;   /* the worst error in the plan itself (changeset.h) */
	size_t applied, deferred, failed;
} run_report;

static void note_error(run_report *rep, int rc)
{
	if (rep->first_error == 0)
		rep->first_error = rc;
}

/*
 * The sync step.  0: synced.  BSI_ETRUST: refused (logged loudly; the
 * caller applies nothing).  BSI_EFAIL: could not sync now, either because
 * it failed (the failure is recorded for backoff) or because the backoff
 * says wait; the caller goes on with the trusted head it already has.
 */
static int sync_step(bsi_device *d)
{
	int64_t now = (int64_t)time(NULL);
	bsi_feed_sync_result res;
	bsi_agent_backoff b;
	char when[40];
	int rc;

	rc = bsi_agent_backoff_get(&b, d->st);
	if (rc < 0)
		return rc;
	if (b.failures > 0 && now < b.next_at) {
		format_when(when, b.next_at);
		bsi_log_warn("sync skipped: backing off after %ld failed attempt%s (last: %s); "
			     "next attempt after %s",
			     b.failures, b.failures == 1 ? "" : "s",
			     b.last_error ? b.last_error : "?", when);
		rc = bsi_error_set(BSI_EFAIL, "feed not synced: backing off until %s", when);
		bsi_agent_backoff_clear_struct(&b);
		return rc;
	}
	rc = bsi_feed_sync(&res, d->st, &d->cli->cfg, false);
	if (rc == 0) {
		if (b.failures > 0) {
			bsi_log_info("feed reachable again after %ld failed attempt%s", b.failures,
				     b.failures == 1 ? "" : "s");
			rc = bsi_agent_backoff_reset(d->st);
		}
		if (strcmp(res.head, res.previous) == 0)
			bsi_log_debug("feed up to date at %s", res.head);
		else
			bsi_log_info("synced feed commit %s: %zu new commit%s authenticated", res.head,
				     res.verified, res.verified == 1 ? "" : "s");
	} else if (rc == BSI_ETRUST) {
		bsi_state_feed *feed = NULL;

		bsi_error_wrap("feed REFUSED");
		bsi_state_feed_get(d->st, &feed);
		bsi_log_error("%s; the trusted head stays %s and nothing is applied until the feed "
			      "is fixed",
			      bsi_error_message(), feed && feed->head ? feed->head : "(none)");
		bsi_state_feed_free(feed);
		rc = bsi_error_set(BSI_ETRUST, "the feed was refused; nothing was applied");
	} else if (rc == BSI_EFAIL && stop_signal) {
		/* the fetch was cut short by our own stop (a service manager
		 * signals the whole group): not the server's failure */
		bsi_log_info("sync interrupted by signal %d", (int)stop_signal);
	} else if (rc == BSI_EFAIL) {
		char *msg = strdup(bsi_error_message());
		bsi_agent_backoff nb;

		if (bsi_agent_backoff_fail(&nb, d->st, d->cli->cfg.interval, now, msg) == 0) {
			format_when(when, nb.next_at);
			bsi_log_error("sync failed (attempt %ld): %s; next attempt after %s",
				      nb.failures, msg ? msg : "?", when);
			bsi_agent_backoff_clear_struct(&nb);
		} else {
			bsi_log_error("sync failed: %s (and recording it failed: %s)", msg ? msg : "?",
				      bsi_error_message());
		}
		rc = bsi_error_set(BSI_EFAIL, "feed not synced: %s", msg ? msg : "?");
		free(msg);
	}
	bsi_agent_backoff_clear_struct(&b);
	return rc;
}

/* Log each error of the plan the first time this agent sees it at this
 * feed commit (agent.h), with the improvement's id (or the recipe file)
 * and the commit.  Errors are reported, never fatal: the healthy
 * improvements apply regardless. */
static void log_errors(bsi_device *d)
{
	const char *commit = bsi_source_commit(d->src);
	bool *news = NULL, *news_file = NULL;

	if (bsi_agent_errors_news(&news, &news_file, d->st, d->cs, commit) < 0) {
		bsi_log_warn("cannot tell which errors were logged before: %s", bsi_error_message());
		bsi_error_clear();
	}
	for (size_t i = 0; i < d->cs->count; i++) {
		const bsi_improvement *imp = &d->cs->items[i];

		if (imp->status == BSI_STATUS_ERROR && (!news || news[i]))
			bsi_log_error("%s (feed commit %s): not applied: %s", imp->id,
				      commit ? commit : "-", imp->reason);
	}
	for (size_t i = 0; i < d->cs->nerrors; i++)
		if (!news_file || news_file[i])
			bsi_log_error("recipe file %s (feed commit %s): %s", d->cs->errors[i].file,
				      commit ? commit : "-", d->cs->errors[i].reason);
	free(news);
	free(news_file);
}

/* Keep imp pending with the reason (agent.h, deferrals); said in the log
 * when the reason is new since the last run, so a laptop on battery for a
 * week does not fill its log. */
static int defer(bsi_device *d, const bsi_improvement *imp, const char *reason,
		 const json_t *before, json_t *now)
{
	const char *commit = bsi_source_commit(d->src);
	const char *was = json_string_value(json_object_get(before, imp->id));

	if (json_object_set_new(now, imp->id, json_string(reason)) < 0)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	if (!was || strcmp(was, reason) != 0)
		bsi_log_info("pending %s (feed commit %s): %s", imp->id, commit ? commit : "-",
			     reason);
	return BSI_OK;
}

static void old_code(bsi_device *d, const bsi_improvement *imp, run_report *rep)
{
	const char *commit = bsi_source_commit(d->src);
	bsi_procs *procs = NULL;
	size_t restarted = 0;
	int rc;

	if (bsi_device_old_code(&procs, d, imp->id) < 0) {
		bsi_log_warn("%s (feed commit %s): cannot look for processes running old code: %s",
			     imp->id, commit, bsi_error_message());
		return;
	}
	rc = BSI_OK;
	if (procs->count > 0 && d->cli->cfg.restart_affected)
		rc = bsi_device_restart_old_code(&restarted, d, procs, imp->id);
	if (rc < 0) {
		bsi_log_error("%s (feed commit %s): %s", imp->id, commit, bsi_error_message());
		note_error(rep, rc);
	}
	for (size_t i = 0; procs && i < procs->count; i++) {
		const bsi_proc *p = &procs->items[i];
		bool restarts = d->cli->cfg.restart_affected && p->unit && !p->user_unit;

		bsi_log_warn("%s (feed commit %s): pid %d (%s, unit %s) still runs the old %s%s",
			     imp->id, commit, (int)p->pid, p->command, p->unit ? p->unit : "none", p->rel,
			     restarts ? "; restarted its unit"
			     : p->unit && !p->user_unit ? "; restart_affected = true would restart it"
						       : "; restart it by hand");
	}
	bsi_procs_free(procs);
}

static void apply_step(bsi_device *d, const bsi_improvement *imp, run_report *rep)
{
	const char *commit = bsi_source_commit(d->src);
	bsi_txn_result res;
	char summary[1024];
	int rc;

	rc = bsi_device_apply(&res, d, imp);
	if (rc < 0) {
		bsi_log_error("not applied (feed commit %s): %s", commit, bsi_error_message());
		rep->failed++;
		note_error(rep, rc);
		return;
	}
	if (res.status == BSI_STATUS_NOT_APPLICABLE) {
		bsi_log_info("%s is not applicable (feed commit %s): %s", imp->id, commit,
			     res.reason);
		return;
	}
	if (res.changed) {
		bsi_device_summary(summary, sizeof(summary), imp);
		bsi_log_info("applied %s from feed commit %s: %s", imp->id, commit, summary);
		rep->applied++;
		old_code(d, imp, rep);
	} else {
		bsi_log_info("%s (feed commit %s): retried its pending service restart", imp->id,
			     commit);
	}
	if (res.restart_pending) {
		bsi_log_error("%s (feed commit %s): %s", imp->id, commit, res.reason);
		rep->failed++;
		note_error(rep, bsi_error_set(BSI_EFAIL, "%s: restart pending", imp->id));
	}
}

/*
 * One run.  Returns what the run as a whole should exit with: the refused
 * sync, else the first failure (a sync that could not happen counts), else
 * 0.  Everything worth knowing has been logged by then; the error message
 * left for main() is a one-line summary.
 */
static int run_once(bsi_cli *cli)
{
	run_report rep = {0};
	bsi_agent_now now;
	bsi_device d;
	size_t wanted = 0;
	time_t t = time(NULL);
	json_t *deferred_before = NULL, *deferred = NULL;
	struct tm tm;
	int rc, worst;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK | BSI_DEVICE_PLUGIN);
	if (rc < 0)
		return rc;
	rep.sync_rc = sync_step(&d);
	snprintf(rep.sync_msg, sizeof(rep.sync_msg), "%s", bsi_error_message());
	if (rep.sync_rc == BSI_ETRUST || (rep.sync_rc < 0 && rep.sync_rc != BSI_EFAIL)) {
		rc = rep.sync_rc;
		goto done;
	}
	if (stop_signal)
		goto stopped;
	/* a failed sync still leaves the trusted head: what it holds is
	 * authenticated, and a fix that waited for AC power should not also
	 * wait for the network */
	rc = bsi_device_load_plan(&d, rep.sync_rc < 0);
	if (rc < 0 || !d.cs) {
		if (rc < 0)
			bsi_log_error("%s", bsi_error_message());
		goto done;
	}
	now.on_ac = bsi_agent_on_ac_power(cli->cfg.power_supply_dir);
	localtime_r(&t, &tm);
	now.minute_of_day = tm.tm_hour * 60 + tm.tm_min;
	bsi_log_debug("conditions: auto_install %s, %s power%s, maintenance window %s (now "
		      "%02d:%02d), min_severity %s",
		      cli->cfg.auto_install ? "on" : "off", now.on_ac ? "mains" : "battery",
		      cli->cfg.require_ac_power ? " (required)" : "",
		      cli->cfg.maintenance_window ? cli->cfg.maintenance_window : "none", tm.tm_hour,
		      tm.tm_min, cli->cfg.min_severity ? cli->cfg.min_severity : "none");
	log_errors(&d);
	rep.feed_error = bsi_changeset_worst_error(d.cs, NULL, NULL);
	if ((rc = bsi_agent_deferrals_get(&deferred_before, d.st)) < 0 ||
	    !(deferred = json_object())) {
		rc = rc < 0 ? rc : bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < d.cs->count; i++) {
		const bsi_improvement *imp = &d.cs->items[i];
		char reason[512];

		if (stop_signal)
			goto stopped;
		/* what bsi apply would take: pending, or applied with a restart
		 * owed; never one in error (log_errors said why) */
		if (!(imp->status == BSI_STATUS_PENDING ||
		      (imp->status == BSI_STATUS_APPLIED && imp->reason))) {
			if (imp->status == BSI_STATUS_HELD || imp->status == BSI_STATUS_ROLLED_BACK)
				bsi_log_info("skipping %s (feed commit %s): %s", imp->id,
					     bsi_source_commit(d.src), imp->reason ? imp->reason : "");
			continue;
		}
		wanted++;
		if (bsi_agent_deferral(reason, sizeof(reason), &cli->cfg, &now, imp)) {
			if ((rc = defer(&d, imp, reason, deferred_before, deferred)) < 0)
				goto done;
			rep.deferred++;
			continue;
		}
		apply_step(&d, imp, &rep);
	}
	/* every improvement was looked at: these are the deferrals now */
	if ((rc = bsi_agent_deferrals_set(d.st, deferred)) < 0)
		goto done;
	if (wanted == 0)
		bsi_log_info("nothing to apply at feed commit %s", bsi_source_commit(d.src));
	else
		bsi_log_info("run done at feed commit %s: %zu applied, %zu pending, %zu failed",
			     bsi_source_commit(d.src), rep.applied, rep.deferred, rep.failed);
	rc = BSI_OK;
	goto done;
stopped:
	rc = BSI_OK;
	bsi_log_info("stopping on signal %d; what is still pending waits for the next run",
		     (int)stop_signal);
done:
	json_decref(deferred_before);
	json_decref(deferred);
	bsi_device_close(&d);
	if (rc < 0)
		return rc;
	/* the worst of the sync, the applies and the feed's own errors: a
	 * network that is down must not hide a payload the feed got wrong */
	worst = bsi_error_worse(rep.first_error, rep.feed_error);
	if (rep.sync_rc < 0 && bsi_error_worse(rep.sync_rc, worst) == rep.sync_rc)
		return bsi_error_set(rep.sync_rc, "%s", rep.sync_msg);
	if (worst < 0)
		return bsi_error_set(worst, "%zu improvement%s could not be applied%s%s (see the log)",
				     rep.failed, rep.failed == 1 ? "" : "s",
				     rep.feed_error < 0 ? ", and the feed has errors" : "",
				     rep.sync_rc < 0 ? "; the feed was not synced" : "");
	return BSI_OK;
}

/* Read the configuration again; keep the old one when the new is broken. */
static void reload(bsi_cli *cli, bool named)
{
	bsi_config cfg;

	if (bsi_config_defaults(&cfg) == 0 && bsi_config_load(&cfg, cli->config_path, named) == 0 &&
	    cfg.interval >= 1) {
		bsi_config_clear(&cli->cfg);
		cli->cfg = cfg;
		bsi_log_info("configuration %s read again", cli->config_path);
		return;
	}
	bsi_log_error("configuration %s not reloaded, keeping the old one: %s", cli->config_path,
		      cfg.interval < 1 ? "interval must be at least 1s" : bsi_error_message());
	bsi_config_clear(&cfg);
}

/* Sleep until `until` (CLOCK_MONOTONIC seconds) or a signal.  The signals
 * are blocked while the flags are checked and pselect unblocks them
 * atomically, so one that arrives just before the sleep is not lost. */
static void sleep_until(double until)
{
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (;;) {
		struct timespec now, left;
		double secs;

		if (stop_signal || reload_signal)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		secs = until - ((double)now.tv_sec + (double)now.tv_nsec / 1e9);
		if (secs <= 0)
			break;
		left.tv_sec = (time_t)secs;
		left.tv_nsec = (long)((secs - (double)left.tv_sec) * 1e9);
		if (pselect(0, NULL, NULL, NULL, &left, &old) == 0)
			break;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static double monotonic(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* When the next run starts: interval with jitter (0.9 to 1.1 of it), or
 * later when the sync backoff says so.  Never holds the lock: the state is
 * opened just to read the backoff. */
static double next_run(bsi_cli *cli, double started)
{
	double jitter = 0.9 + 0.2 * (double)randombytes_uniform(1000001) / 1e6;
	double next = started + (double)cli->cfg.interval * jitter;
	bsi_agent_backoff b = {0};
	bsi_state *st = NULL;

	if (bsi_state_open(&st, cli->state_dir) == 0 && bsi_agent_backoff_get(&b, st) == 0 &&
	    b.failures > 0) {
		double wait = (double)(b.next_at - (int64_t)time(NULL));

		if (monotonic() + wait > next)
			next = monotonic() + wait;
	}
	bsi_error_clear();
	bsi_agent_backoff_clear_struct(&b);
	bsi_state_free(st);
	return next;
}

int bsi_cmd_agent(bsi_cli *cli)
{
	bool named = strcmp(cli->config_path, BSI_SYSCONFDIR "/bsi/bsi.conf") != 0;
	int rc;

	if (sodium_init() < 0)
		return bsi_error_set(BSI_EFAIL, "cannot initialise libsodium");
	if (!cli->once && cli->cfg.interval < 1)
		return bsi_error_set(BSI_EUSAGE, "interval must be at least 1s for bsi agent");
	rc = install_handlers();
	if (rc < 0)
		return rc;
	bsi_log_open(cli->verbosity);
	if (cli->once) {
		rc = run_once(cli);
		goto done;
	}
	bsi_log_info("agent started: a run every %ld s, with jitter", cli->cfg.interval);
	while (!stop_signal) {
		double started = monotonic();

		rc = run_once(cli);
		if (rc == BSI_EBUSY)
			bsi_log_warn("%s; trying again at the next run", bsi_error_message());
		else if (rc < 0 && rc != BSI_ETRUST && rc != BSI_EFAIL)
			bsi_log_error("%s", bsi_error_message());
		bsi_error_clear();
		for (double until = next_run(cli, started); !stop_signal;) {
			sleep_until(until);
			if (!reload_signal)
				break;
			reload_signal = 0;
			reload(cli, named);
			until = next_run(cli, started);
		}
	}
	bsi_log_info("agent stopped on signal %d", (int)stop_signal);
	rc = BSI_OK;
done:
	bsi_log_close();
	return rc;
}
