/*
 * agent.h - what `bsi agent` decides, apart from the running of it.
 *
 * The agent installs a pending improvement unattended only when every
 * condition holds: auto_install is on, the device is on mains power (when
 * require_ac_power), the local time is inside maintenance_window (when
 * set), and the improvement's severity is at least min_severity (when
 * set).  Otherwise the improvement stays pending with the reason, which
 * `bsi status` shows, until the conditions hold or an admin runs
 * `bsi apply`.
 *
 * A sync that fails for an operational reason (network, server) is
 * retried with exponential backoff and jitter, kept in the state's meta
 * table so that it holds across runs of `bsi agent --once` from a timer:
 * after the n-th consecutive failure the next attempt waits
 * min(base * 2^(n-1), cap) seconds, times a random factor in [0.5, 1],
 * with base = min(interval, 5 min) and cap = max(interval, 6 h).  A
 * successful sync clears it.  A refused sync (trust) is not a failure of
 * that kind and is not backed off: it is tried again on every run.
 */
#ifndef BSI_AGENT_H
#define BSI_AGENT_H

#include "changeset.h"
#include "config.h"
#include "state.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Mains power, from a sysfs power_supply class directory: on AC when any
 * supply has type "Mains" and online "1", or when no supply has type
 * "Battery" (a desktop, a server, a VM; also a missing directory).
 */
bool bsi_agent_on_ac_power(const char *power_supply_dir);

/* Is minute_of_day (0..1439, local time) inside "HH:MM-HH:MM"?  The start
 * is inside, the end is not; a window whose end is before its start wraps
 * midnight; equal ends mean the whole day.  NULL window: always. */
bool bsi_agent_in_window(const char *window, int minute_of_day);

/* low 0, medium 1, high 2, critical 3; anything else -1. */
int bsi_agent_severity_rank(const char *severity);

/* Facts about now, gathered once per run. */
typedef struct {
	bool on_ac;
	int minute_of_day;
} bsi_agent_now;

/*
 * Why the agent must not install imp now, written into out (a sentence a
 * person reads in `bsi status`), or false when it may.
 */
bool bsi_agent_deferral(char *out, size_t len, const bsi_config *cfg, const bsi_agent_now *now,
			const bsi_improvement *imp);

/* ---- errors, logged once ---------------------------------------------- */

/*
 * Which errors of the plan cs (at feed commit, NULL for a tree) are news:
 * new[i] for improvement i in error, new_file[k] for whole-file error k,
 * true when the agent has not logged that error at that commit yet.  The
 * errors logged at the current commit are remembered in the state's meta
 * table (one row of digests, at most 10,000, forgotten when the commit
 * changes), so a broken fix that waits for weeks, or an error that comes
 * and goes, is logged once per feed commit, not on every run.
 * The caller owns both arrays (NULL when there is nothing).
 */
int bsi_agent_errors_news(bool **out_new, bool **out_new_file, bsi_state *st,
			  const bsi_changeset *cs, const char *commit);

/* ---- deferrals ------------------------------------------------------- */

/*
 * Why the agent left improvements pending at its last run: an object of
 * id -> reason (a new reference, empty when there is none), kept in one
 * meta row and replaced by each run, so it holds the improvements of the
 * current plan only.  Deferring records no row per improvement and no
 * history: the state grows with what is applied, not with what a feed
 * lists and a device waits for.
 */
int bsi_agent_deferrals_get(json_t **out, bsi_state *st);
/* Replace them with reasons (borrowed; empty: forget them). */
int bsi_agent_deferrals_set(bsi_state *st, const json_t *reasons);

/* ---- sync backoff ---------------------------------------------------- */

typedef struct {
	long failures;    /* consecutive failed syncs; 0: none */
	int64_t next_at;  /* no sync before this time (epoch seconds) */
	char *last_error; /* the last failure's message, or NULL */
} bsi_agent_backoff;

void bsi_agent_backoff_clear_struct(bsi_agent_backoff *b);
int bsi_agent_backoff_get(bsi_agent_backoff *out, bsi_state *st);
/* Record one more failure at `now`; out (may be NULL) gets the new record. */
int bsi_agent_backoff_fail(bsi_agent_backoff *out, bsi_state *st, long interval, int64_t now,
			   const char *error);
/* Forget the failures after a successful sync. */
int bsi_agent_backoff_reset(bsi_state *st);
/* The longest wait after `failures` failures (before jitter), in seconds. */
long bsi_agent_backoff_delay(long failures, long interval);

#endif
