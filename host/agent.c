/* agent.c - the agent's conditions and sync backoff; see agent.h. */
#include "agent.h"

#include "config.h"
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
