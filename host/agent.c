/* agent.c - the agent's conditions and sync backoff; see agent.h. */
#include "agent.h"

#include "config.h"
#include "digest.h"
#include "error.h"

#include <dirent.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_FAILURES "agent.sync_failures"
#define KEY_NEXT "agent.next_sync_at"
#define KEY_ERROR "agent.last_sync_error"

/* The first line of <dir>/<entry>/<name>, without the newline; "" if none. */
static void read_attr(char *out, size_t len, const char *dir, const char *entry,
		      const char *name)
{
	char path[4096];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s/%s", dir, entry, name);
	if (!(f = fopen(path, "re")))
		return;
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

bool bsi_agent_on_ac_power(const char *power_supply_dir)
{
	bool battery = false, mains = false;
	struct dirent *e;
	DIR *dir;

	if (!power_supply_dir || !(dir = opendir(power_supply_dir)))
		return true;
	while ((e = readdir(dir))) {
		char type[64], online[16];

		if (e->d_name[0] == '.')
			continue;
		read_attr(type, sizeof(type), power_supply_dir, e->d_name, "type");
		if (strcmp(type, "Battery") == 0) {
			battery = true;
		} else if (strcmp(type, "Mains") == 0) {
			read_attr(online, sizeof(online), power_supply_dir, e->d_name, "online");
			mains |= strcmp(online, "1") == 0;
		}
	}
	closedir(dir);
	return mains || !battery;
}

bool bsi_agent_in_window(const char *window, int minute)
{
	int start, end;

	if (!window || !bsi_config_parse_window(window, &start, &end))
		return true;
	if (start == end)
		return true;
	if (start < end)
		return minute >= start && minute < end;
	return minute >= start || minute < end;
}

int bsi_agent_severity_rank(const char *severity)
{
	static const char *const names[] = {"low", "medium", "high", "critical"};

	for (int i = 0; severity && i < 4; i++)
		if (strcmp(severity, names[i]) == 0)
			return i;
	return -1;
}

bool bsi_agent_deferral(char *out, size_t len, const bsi_config *cfg, const bsi_agent_now *now,
			const bsi_improvement *imp)
{
	if (!cfg->auto_install)
		snprintf(out, len, "waiting: auto_install is off; bsi apply %s installs it", imp->id);
	else if (cfg->require_ac_power && !now->on_ac)
		snprintf(out, len, "waiting: on battery power (require_ac_power)");
	else if (!bsi_agent_in_window(cfg->maintenance_window, now->minute_of_day))
		snprintf(out, len, "waiting: outside the maintenance window %s",
			 cfg->maintenance_window);
	else if (cfg->min_severity &&
		 bsi_agent_severity_rank(imp->severity) < bsi_agent_severity_rank(cfg->min_severity))
		snprintf(out, len, "waiting: severity %s is below min_severity %s; bsi apply %s "
				   "installs it",
			 imp->severity ? imp->severity : "(none)", cfg->min_severity, imp->id);
	else
		return false;
	return true;
}

/* ---- errors, logged once ---------------------------------------------- */

#define KEY_LOGGED "agent.logged_errors"
#define MAX_LOGGED 10000 /* digests remembered for one commit */

/* The digest that stands for one error: who (an id or a file) and why. */
static int error_print(char out[BSI_DIGEST_STRLEN + 1], const char *who, const char *why)
{
	char *text = NULL;
	int rc;

	if (asprintf(&text, "%s\n%s", who, why ? why : "") < 0)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	rc = bsi_digest_buf(text, strlen(text), out);
	free(text);
	return rc;
}

int bsi_agent_errors_news(bool **out_new, bool **out_new_file, bsi_state *st,
			  const bsi_changeset *cs, const char *commit)
{
	char *stored = NULL, *dumped = NULL, print[BSI_DIGEST_STRLEN + 1];
	json_t *old = NULL, *seen = NULL, *now = json_array();
	bool *news = calloc(cs->count + 1, sizeof(bool));
	bool *news_file = calloc(cs->nerrors + 1, sizeof(bool));
	const char *old_commit;
	size_t added;
	int rc;

	*out_new = NULL;
	*out_new_file = NULL;
	if (!now || !news || !news_file) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if ((rc = bsi_state_meta_get(st, KEY_LOGGED, &stored)) < 0)
		goto done;
	old = stored ? json_loads(stored, 0, NULL) : NULL;
	old_commit = json_string_value(json_object_get(old, "commit"));
	/* a new feed commit makes every error news again */
	if (old_commit && commit && strcmp(old_commit, commit) == 0)
		seen = json_object_get(old, "errors");
	for (size_t i = 0; rc == 0 && i < cs->count + cs->nerrors; i++) {
		bool known = false, file = i >= cs->count;
		const char *who, *why;
		json_t *v;
		size_t k;

		if (file) {
			who = cs->errors[i - cs->count].file;
			why = cs->errors[i - cs->count].reason;
		} else if (cs->items[i].status == BSI_STATUS_ERROR) {
			who = cs->items[i].id;
			why = cs->items[i].reason;
		} else {
			continue;
		}
		if ((rc = error_print(print, who, why)) < 0)
			break;
		json_array_foreach(seen, k, v)
			known |= strcmp(json_string_value(v) ? json_string_value(v) : "", print) == 0;
		if (file)
			news_file[i - cs->count] = !known;
		else
			news[i] = !known;
		if (!known && json_array_append_new(now, json_string(print)) < 0)
			rc = bsi_error_set(BSI_EFAIL, "out of memory");
	}
	/* Remembered: every error logged at this commit, not only this
	 * run's, so an error that comes and goes (a flaky disk) is still
	 * logged once per commit; the oldest go first past a bound. */
	added = json_array_size(now);
	if (rc == 0 && seen && json_array_extend(now, seen) < 0)
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
	while (rc == 0 && json_array_size(now) > MAX_LOGGED)
		json_array_remove(now, json_array_size(now) - 1);
	/* written only when it changes: an agent run with nothing new writes nothing */
	if (rc == 0 && (added > 0 || (!seen && stored))) {
		json_t *doc = json_pack("{s:s?, s:O}", "commit", commit, "errors", now);

		dumped = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
		json_decref(doc);
		rc = dumped ? bsi_state_meta_set(st, KEY_LOGGED, json_array_size(now) ? dumped : NULL)
			    : bsi_error_set(BSI_EFAIL, "out of memory");
	}
	if (rc == 0) {
		*out_new = news;
		*out_new_file = news_file;
		news = news_file = NULL;
	}
done:
	free(news);
	free(news_file);
	free(stored);
	free(dumped);
	json_decref(old);
	json_decref(now);
	return rc;
}

/* ---- deferrals -------------------------------------------------------- */

#define KEY_DEFERRED "agent.deferred"

int bsi_agent_deferrals_get(json_t **out, bsi_state *st)
{
	char *stored = NULL;
	json_t *doc;
	int rc;

	*out = NULL;
	if ((rc = bsi_state_meta_get(st, KEY_DEFERRED, &stored)) < 0)
		return rc;
	doc = stored ? json_loads(stored, 0, NULL) : NULL;
	free(stored);
	if (!json_is_object(doc)) { /* none, or not ours: no reasons */
		json_decref(doc);
		doc = json_object();
	}
	if (!doc)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	*out = doc;
	return BSI_OK;
}

int bsi_agent_deferrals_set(bsi_state *st, const json_t *reasons)
{
	char *text;
	int rc;

	if (json_object_size(reasons) == 0)
		return bsi_state_meta_set(st, KEY_DEFERRED, NULL);
	if (!(text = json_dumps(reasons, JSON_COMPACT | JSON_SORT_KEYS)))
		return bsi_error_set(BSI_EFAIL, "out of memory");
	rc = bsi_state_meta_set(st, KEY_DEFERRED, text);
	free(text);
	return rc;
}

/* ---- backoff --------------------------------------------------------- */

void bsi_agent_backoff_clear_struct(bsi_agent_backoff *b)
{
	free(b->last_error);
	memset(b, 0, sizeof(*b));
}

int bsi_agent_backoff_get(bsi_agent_backoff *out, bsi_state *st)
{
	char *failures = NULL, *next = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = bsi_state_meta_get(st, KEY_FAILURES, &failures);
	if (rc == 0)
		rc = bsi_state_meta_get(st, KEY_NEXT, &next);
	if (rc == 0)
		rc = bsi_state_meta_get(st, KEY_ERROR, &out->last_error);
	if (rc == 0) {
		out->failures = failures ? strtol(failures, NULL, 10) : 0;
		out->next_at = next ? (int64_t)strtoll(next, NULL, 10) : 0;
	}
	free(failures);
	free(next);
	return rc;
}

long bsi_agent_backoff_delay(long failures, long interval)
{
	long base = interval < 300 ? interval : 300, cap = interval > 6 * 3600 ? interval : 6 * 3600;
	long delay = base > 0 ? base : 1;

	for (long i = 1; i < failures && delay < cap; i++)
		delay *= 2;
	return delay < cap ? delay : cap;
}

int bsi_agent_backoff_fail(bsi_agent_backoff *out, bsi_state *st, long interval, int64_t now,
			   const char *error)
{
	bsi_agent_backoff b;
	char failures[32], next[32];
	long delay;
	int rc;

	rc = bsi_agent_backoff_get(&b, st);
	if (rc < 0)
		return rc;
	b.failures++;
	/* equal jitter: never less than half the delay, so a fleet that lost
	 * its server at once does not come back at once */
	delay = bsi_agent_backoff_delay(b.failures, interval);
	delay = delay / 2 + (long)randombytes_uniform((uint32_t)(delay - delay / 2) + 1);
	if (delay < 1)
		delay = 1;
	b.next_at = now + delay;
	snprintf(failures, sizeof(failures), "%ld", b.failures);
	snprintf(next, sizeof(next), "%" PRId64, b.next_at);
	rc = bsi_state_begin(st);
	if (rc == 0 && (rc = bsi_state_meta_set(st, KEY_FAILURES, failures)) == 0 &&
	    (rc = bsi_state_meta_set(st, KEY_NEXT, next)) == 0 &&
	    (rc = bsi_state_meta_set(st, KEY_ERROR, error)) == 0)
		rc = bsi_state_commit(st);
	else
		bsi_state_rollback(st);
	if (rc == 0 && out) {
		free(b.last_error);
		b.last_error = error ? strdup(error) : NULL;
		*out = b;
	} else {
		bsi_agent_backoff_clear_struct(&b);
	}
	return rc;
}

int bsi_agent_backoff_reset(bsi_state *st)
{
	int rc = bsi_state_begin(st);

	if (rc == 0 && (rc = bsi_state_meta_set(st, KEY_FAILURES, NULL)) == 0 &&
	    (rc = bsi_state_meta_set(st, KEY_NEXT, NULL)) == 0 &&
	    (rc = bsi_state_meta_set(st, KEY_ERROR, NULL)) == 0)
		return bsi_state_commit(st);
	bsi_state_rollback(st);
	return rc;
}
