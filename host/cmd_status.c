/*
 * cmd_status.c - what the owner reads: status, show, history, verify.
 */
#include "agent.h"
#include "commands.h"
#include "device.h"
#include "error.h"
#include "output.h"
#include "text.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "3 h", "20 d": an age a person reads at a glance. */
static void format_age(char out[32], int64_t seconds)
{
	if (seconds < 120)
		snprintf(out, 32, "%lld s", (long long)seconds);
	else if (seconds < 7200)
		snprintf(out, 32, "%lld min", (long long)(seconds / 60));
	else if (seconds < 2 * 86400)
		snprintf(out, 32, "%lld h", (long long)(seconds / 3600));
	else
		snprintf(out, 32, "%lld d", (long long)(seconds / 86400));
}

/* t as a UTC date; "?" if it has none. */
static void format_date(char out[32], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M UTC", &tm))
		snprintf(out, 32, "?");
}

/* A time bsi recorded, where 0 means "never". */
static void format_time(char out[32], int64_t t)
{
	if (t <= 0)
		snprintf(out, 32, "never");
	else
		format_date(out, t);
}

/*
 * Feed freshness, by this device's clock only: how long since it first
 * trusted the current head (or enrolled, before a first sync), and whether
 * that is past max_feed_age.  The head's commit time is its signer's word
 * and is never used (dated 2100 it would silence the alarm).  A recorded
 * time after `now` (the clock was set back) counts as now.  Text and JSON
 * print this one verdict.
 */
typedef struct {
	bool known;  /* false: no time recorded (a state older than this rule) */
	int64_t age; /* seconds, >= 0 */
	bool stale;
	int64_t since_sync; /* seconds since the last successful sync, -1 never */
} freshness;

static freshness feed_freshness(const bsi_state_feed *feed, const bsi_config *cfg, int64_t now)
{
	freshness f = {.known = feed->head_seen_at > 0, .since_sync = -1};

	if (f.known)
		f.age = feed->head_seen_at < now ? now - feed->head_seen_at : 0;
	f.stale = f.known && f.age > cfg->max_feed_age;
	if (feed->synced_at > 0)
		f.since_sync = feed->synced_at < now ? now - feed->synced_at : 0;
	return f;
}

static json_t *feed_json(const bsi_state_feed *feed, const bsi_config *cfg, int64_t now)
{
	freshness f;

	if (!feed)
		return json_null();
	f = feed_freshness(feed, cfg, now);
	return json_pack("{s:s, s:s, s:s?, s:o, s:o, s:o, s:o, s:b}", "url", feed->url,
			 "introduction", feed->introduction, "head", feed->head, "head_time",
			 feed->head ? json_integer(feed->head_time) : json_null(),
			 "head_seen_at",
			 feed->head_seen_at ? json_integer(feed->head_seen_at) : json_null(),
			 "synced_at", feed->synced_at ? json_integer(feed->synced_at) : json_null(),
			 "age_seconds", f.known ? json_integer(f.age) : json_null(), "stale",
			 f.stale);
}

static void print_feed(const bsi_state_feed *feed, const bsi_config *cfg, int64_t now)
{
	char when[32], age[32], synced[32], limit[32];
	freshness f;

	if (!feed) {
		printf("feed: not enrolled\n");
		return;
	}
	f = feed_freshness(feed, cfg, now);
	format_age(age, f.age);
	format_age(synced, f.since_sync);
	{
		char url[1024]; /* enrolled before URLs were checked: shown clean */

		bsi_text_clean(url, sizeof(url), feed->url, strlen(feed->url));
		printf("feed: %s\n", url);
	}
	if (!feed->head)
		printf("head: none yet (run bsi sync)\n");
	else {
		format_date(when, feed->head_time);
		printf("head: %.12s, committed %s%s; ", feed->head, when,
		       feed->head_time > now ? " (in the future by this device's clock)" : "");
		if (f.known)
			printf("unchanged here for %s, ", age);
		if (f.since_sync >= 0)
			printf("last synced %s ago\n", synced);
		else
			printf("never synced\n");
	}
	if (f.stale) {
		format_age(limit, cfg->max_feed_age);
		if (feed->head)
			printf("STALE: this device has had the same feed head for %s, more than "
			       "max_feed_age (%s)",
			       age, limit);
		else
			printf("STALE: enrolled %s ago and no sync has succeeded, more than "
			       "max_feed_age (%s)",
			       age, limit);
		if (f.since_sync >= 0 && f.since_sync > cfg->max_feed_age)
			printf("; the last successful sync was %s ago", synced);
		printf("; the feed may be frozen or this device cut off\n");
	}
}

/* One improvement for status/show: the plan's entry (or the state's when
 * the feed no longer has it) with what the device recorded about it. */
static json_t *improvement_json(const bsi_improvement *imp, const bsi_state_improvement *known)
{
	json_t *all, *j;

	if (!imp)
		return bsi_state_improvement_to_json(known);
	all = bsi_changeset_to_json(&(bsi_changeset){.items = (bsi_improvement *)imp, .count = 1});
	j = json_incref(json_array_get(json_object_get(all, "improvements"), 0));
	json_decref(all);
	if (!j || bsi_output_error_fields(j) < 0) {
		json_decref(j);
		return NULL;
	}
	json_object_set_new(j, "held", json_boolean(known && known->held));
	json_object_set_new(j, "restart_pending", json_boolean(known && known->restart_pending));
	json_object_set_new(j, "applied_at", known && known->applied_at
						     ? json_integer(known->applied_at)
						     : json_null());
	json_object_set_new(j, "feed_commit", known && known->feed_commit
						      ? json_string(known->feed_commit)
						      : json_null());
	json_object_set_new(j, "signer",
			    known && known->signer ? json_string(known->signer) : json_null());
	return j;
}

/* The processes still running replaced code; a scan that cannot run (no
 * /proc) is said once and leaves the list empty rather than failing the
 * command. */
static void old_code(bsi_procs **out, bsi_device *d, const char *id)
{
	if (bsi_device_old_code(out, d, id) < 0) {
		fprintf(stderr, "bsi: cannot look for processes running old code: %s\n",
			bsi_error_message());
		bsi_error_clear();
		*out = NULL;
	}
}

/* "old_code": the processes still running what improvement j replaced. */
static void add_old_code(json_t *j, const bsi_procs *procs)
{
	const char *id = json_string_value(json_object_get(j, "id"));
	json_t *list = json_array();

	for (size_t i = 0; procs && i < procs->count; i++) {
		const bsi_proc *p = &procs->items[i];

		if (strcmp(p->label, id) != 0)
			continue;
		json_array_append_new(list, json_pack("{s:i, s:s, s:s?, s:s}", "pid", (int)p->pid,
						      "command", p->command, "unit", p->unit,
						      "path", p->rel));
	}
	json_object_set_new(j, "old_code", list);
}

static void print_old_code(json_t *j, const char *indent)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(j, "old_code"), i, v)
		printf("%sstill running old code: pid %lld (%s), unit %s, maps the old %s\n",
		       indent, (long long)json_integer_value(json_object_get(v, "pid")),
		       json_string_value(json_object_get(v, "command")),
		       json_string_value(json_object_get(v, "unit")) ?: "none",
		       json_string_value(json_object_get(v, "path")));
}

/* The agent's sync backoff, for status: null when the last sync worked. */
static json_t *backoff_json(bsi_state *st)
{
	bsi_agent_backoff b;
	json_t *j;

	if (bsi_agent_backoff_get(&b, st) < 0 || b.failures == 0) {
		bsi_error_clear();
		bsi_agent_backoff_clear_struct(&b);
		return json_null();
	}
	j = json_pack("{s:I, s:I, s:s?}", "failures", (json_int_t)b.failures, "next_attempt",
		      (json_int_t)b.next_at, "last_error", b.last_error);
	bsi_agent_backoff_clear_struct(&b);
	return j;
}

/* The errors that are no one improvement's: recipe files that failed as a
 * whole, and a feed head that could not be planned at all. */
static json_t *errors_json(const bsi_device *d)
{
	json_t *list = json_array();

	for (size_t i = 0; list && d->cs && i < d->cs->nerrors; i++) {
		const bsi_file_error *e = &d->cs->errors[i];

		json_array_append_new(list, json_pack("{s:s, s:i, s:i, s:s}", "file", e->file, "line",
						      e->line, "code",
						      bsi_error_exit_status(e->code), "reason",
						      e->reason));
	}
	if (list && d->plan_rc < 0)
		json_array_append_new(list, json_pack("{s:n, s:i, s:i, s:s}", "file", "line", 0,
						      "code", bsi_error_exit_status(d->plan_rc),
						      "reason", d->plan_error));
	return list;
}

static void print_errors(const json_t *errors)
{
	json_t *v;
	size_t i;

	json_array_foreach(errors, i, v)
		printf("error: %s%s\n",
		       json_is_null(json_object_get(v, "file")) ? "the feed head cannot be planned: "
								  : "",
		       json_string_value(json_object_get(v, "reason")));
}

int bsi_cmd_status(bsi_cli *cli)
{
	bsi_state_improvement **known = NULL;
	bsi_state_feed *feed = NULL;
	int64_t now = (int64_t)time(NULL);
	json_t *list = NULL, *sync = NULL, *errors = NULL;
	bsi_procs *procs = NULL;
	size_t nknown = 0;
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_TRY_PLAN);
	if (rc < 0)
		return rc;
	rc = bsi_state_feed_get(d.st, &feed);
	if (rc == 0)
		rc = bsi_state_improvement_list(d.st, &known, &nknown);
	if (rc < 0)
		goto done;
	old_code(&procs, &d, NULL);
	sync = backoff_json(d.st);
	list = json_array();
	/* the feed's improvements in feed order, then any the device knows
	 * that the feed no longer lists */
	for (size_t i = 0; d.cs && i < d.cs->count; i++) {
		const bsi_state_improvement *k = NULL;

		for (size_t j = 0; j < nknown; j++)
			if (strcmp(known[j]->id, d.cs->items[i].id) == 0)
				k = known[j];
		json_array_append_new(list, improvement_json(&d.cs->items[i], k));
	}
	for (size_t j = 0; j < nknown; j++)
		if (!d.cs || !bsi_changeset_find(d.cs, known[j]->id))
			json_array_append_new(list, improvement_json(NULL, known[j]));
	for (size_t i = 0; i < json_array_size(list); i++)
		add_old_code(json_array_get(list, i), procs);
	errors = errors_json(&d);
	if (cli->json) {
		json_t *fj = feed_json(feed, &cli->cfg, now);

		if (json_is_object(fj))
			json_object_set(fj, "sync_backoff", sync);
		rc = bsi_output_json(stdout, json_pack("{s:o, s:o, s:O}", "feed", fj, "improvements",
						       list, "errors", errors));
		list = NULL;
		goto done;
	}
	if (cli->verbosity < 0)
		goto done;
	print_feed(feed, &cli->cfg, now);
	if (json_is_object(sync)) {
		char when[32];

		format_time(when, json_integer_value(json_object_get(sync, "next_attempt")));
		printf("sync failing: %lld attempt%s, last: %s; the agent tries again after %s\n",
		       (long long)json_integer_value(json_object_get(sync, "failures")),
		       json_integer_value(json_object_get(sync, "failures")) == 1 ? "" : "s",
		       json_string_value(json_object_get(sync, "last_error")) ?: "?", when);
	}
	print_errors(errors);
	printf("improvements: %zu\n", json_array_size(list));
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *j = json_array_get(list, i);
		const char *reason = json_string_value(json_object_get(j, "reason"));

		printf("  %-15s %-9s %-26s %s\n", json_string_value(json_object_get(j, "status")),
		       json_string_value(json_object_get(j, "severity")) ?: "",
		       json_string_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "summary")) ?: "");
		if (reason)
			printf("  %-15s %-9s %-26s (%s)\n", "", "", "", reason);
		print_old_code(j, "                  ");
	}
done:
	json_decref(errors);
	json_decref(sync);
	bsi_procs_free(procs);
	json_decref(list);
	bsi_state_improvement_list_free(known, nknown);
	bsi_state_feed_free(feed);
	bsi_device_close(&d);
	return rc;
}

static void print_show(json_t *j, json_t *history)
{
	json_t *v;
	size_t i;
	char when[32];

	printf("%s (%s) [%s] %s\n", json_string_value(json_object_get(j, "id")),
	       json_string_value(json_object_get(j, "component")) ?: "?",
	       json_string_value(json_object_get(j, "severity")) ?: "?",
	       json_string_value(json_object_get(j, "status")));
	printf("    %s\n", json_string_value(json_object_get(j, "summary")) ?: "");
	if (json_string_value(json_object_get(j, "reason")))
		printf("    %-11s %s\n",
		       strcmp(json_string_value(json_object_get(j, "status")), "error") == 0
			       ? "error:"
			       : "reason:",
		       json_string_value(json_object_get(j, "reason")));
	printf("    fixes:     ");
	json_array_foreach(json_object_get(j, "fixes"), i, v) printf(" %s", json_string_value(v));
	printf("\n");
	if (json_array_size(json_object_get(j, "supersedes")) > 0) {
		printf("    supersedes:");
		json_array_foreach(json_object_get(j, "supersedes"), i, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	}
	json_array_foreach(json_object_get(j, "actions"), i, v) {
		if (strcmp(json_string_value(json_object_get(v, "op")), "replace") == 0)
			printf("    file:       %s\n                from %s\n                to   %s\n",
			       json_string_value(json_object_get(v, "path")),
			       json_string_value(json_object_get(v, "from")),
			       json_string_value(json_object_get(v, "to")));
		else
			printf("    service:    %s\n", json_string_value(json_object_get(v, "service")));
	}
	if (json_is_integer(json_object_get(j, "applied_at"))) {
		format_time(when, json_integer_value(json_object_get(j, "applied_at")));
		printf("    applied:    %s from feed commit %s", when,
		       json_string_value(json_object_get(j, "feed_commit")) ?: "(a feed tree)");
		if (json_string_value(json_object_get(j, "signer")))
			printf(", signed by %s", json_string_value(json_object_get(j, "signer")));
		printf("\n");
	}
	if (json_is_true(json_object_get(j, "held")))
		printf("    held:       yes (bsi release to let it apply)\n");
	if (json_is_true(json_object_get(j, "restart_pending")))
		printf("    restart:    pending (bsi apply retries it)\n");
	print_old_code(j, "    ");
	if (json_array_size(history) > 0)
		printf("    history:\n");
	json_array_foreach(history, i, v) {
		format_time(when, json_integer_value(json_object_get(v, "time")));
		printf("      %s  %s%s%s\n", when, json_string_value(json_object_get(v, "action")),
		       json_string_value(json_object_get(v, "detail")) ? ": " : "",
		       json_string_value(json_object_get(v, "detail")) ?: "");
	}
}

int bsi_cmd_show(bsi_cli *cli)
{
	bsi_state_improvement *known = NULL;
	const bsi_improvement *imp;
	json_t *j = NULL, *history = NULL;
	bsi_procs *procs = NULL;
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_TRY_PLAN);
	if (rc < 0)
		return rc;
	bsi_device_warn_plan(&d);
	imp = d.cs ? bsi_changeset_find(d.cs, cli->argv[0]) : NULL;
	rc = bsi_state_improvement_get(d.st, cli->argv[0], &known);
	if (rc == 0 && !imp && !known)
		rc = bsi_device_no_such_improvement(&d, cli->argv[0]);
	if (rc == 0)
		rc = bsi_state_history_json(d.st, cli->argv[0], &history);
	if (rc < 0)
		goto done;
	old_code(&procs, &d, cli->argv[0]);
	j = improvement_json(imp, known);
	add_old_code(j, procs);
	if (cli->json) {
		json_object_set(j, "history", history);
		rc = bsi_output_json(stdout, j);
		j = NULL;
	} else if (cli->verbosity >= 0) {
		print_show(j, history);
	}
done:
	bsi_procs_free(procs);
	json_decref(j);
	json_decref(history);
	bsi_state_improvement_free(known);
	bsi_device_close(&d);
	return rc;
}

int bsi_cmd_history(bsi_cli *cli)
{
	json_t *history = NULL, *v;
	bsi_device d;
	size_t i;
	int rc;

	rc = bsi_device_open(&d, cli, 0);
	if (rc < 0)
		return rc;
	rc = bsi_state_history_json(d.st, cli->argc > 0 ? cli->argv[0] : NULL, &history);
	if (rc == 0 && cli->json) {
		rc = bsi_output_json(stdout, json_pack("{s:O}", "history", history));
	} else if (rc == 0 && cli->verbosity >= 0) {
		json_array_foreach(history, i, v) {
			char when[32];
			const char *commit = json_string_value(json_object_get(v, "feed_commit"));

			format_time(when, json_integer_value(json_object_get(v, "time")));
			printf("%s  %-9s %-26s %.12s%s%s\n", when,
			       json_string_value(json_object_get(v, "action")),
			       json_string_value(json_object_get(v, "improvement")) ?: "-",
			       commit ? commit : "-",
			       json_string_value(json_object_get(v, "detail")) ? "  " : "",
			       json_string_value(json_object_get(v, "detail")) ?: "");
		}
	}
	json_decref(history);
	bsi_device_close(&d);
	return rc;
}

int bsi_cmd_verify(bsi_cli *cli)
{
	bsi_state_improvement **known = NULL;
	size_t nknown = 0, tampered = 0;
	json_t *list = json_array();
	bsi_txn_ctx ctx;
	bsi_device d;
	int rc;

	rc = bsi_device_open(&d, cli, BSI_DEVICE_LOCK | BSI_DEVICE_TRY_PLAN);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	bsi_device_warn_plan(&d);
	ctx = bsi_device_txn_ctx(&d);
	rc = bsi_state_improvement_list(d.st, &known, &nknown);
	for (size_t i = 0; rc == 0 && i < nknown; i++) {
		bsi_status s = known[i]->status;
		bsi_txn_result res;

		if (s != BSI_STATUS_APPLIED && s != BSI_STATUS_OBSOLETE && s != BSI_STATUS_TAMPERED)
			continue;
		rc = bsi_txn_verify(&res, &ctx, known[i]->id, d.cs);
		if (rc < 0)
			break;
		tampered += res.status == BSI_STATUS_TAMPERED;
		json_array_append_new(list, json_pack("{s:s, s:s, s:s?}", "id", known[i]->id,
						      "status", bsi_status_name(res.status),
						      "reason", res.reason[0] ? res.reason : NULL));
		if (!cli->json && cli->verbosity >= 0)
			printf("%-9s %s%s%s\n", bsi_status_name(res.status), known[i]->id,
			       res.reason[0] ? ": " : "", res.reason);
	}
	if (rc == 0 && cli->json) {
		rc = bsi_output_json(stdout, json_pack("{s:O}", "improvements", list));
	} else if (rc == 0 && cli->verbosity >= 0 && json_array_size(list) == 0) {
		printf("no applied improvements to verify\n");
	}
	if (rc == 0 && tampered > 0)
		rc = bsi_error_set(BSI_ETRUST, "%zu improvement%s tampered: a patched file holds "
					       "content no one vouches for",
				   tampered, tampered == 1 ? " is" : "s are");
	json_decref(list);
	bsi_state_improvement_list_free(known, nknown);
	bsi_device_close(&d);
	return rc;
}
