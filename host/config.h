/*
 * config.h - the configuration file.
 *
 * `key = value` lines in Lua syntax, run as a Lua chunk in an empty
 * environment (no functions reachable, an instruction budget).  Every
 * assignment is checked as it happens: an unknown key or a value of the
 * wrong type is an error naming file:line (BSI_EUSAGE).  A missing file at
 * the default path means defaults; a missing file the user named is an
 * error.
 */
#ifndef BSI_CONFIG_H
#define BSI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	bool auto_install;          /* apply pending improvements unattended */
	bool require_ac_power;      /* ... only on mains power */
	long interval;              /* seconds between agent runs */
	long max_feed_age;          /* seconds before status flags the feed stale */
	char *service_manager;      /* plugin name: "systemd", "record" */
	char *plugin_dir;           /* NULL: next to the binary, else the install dir */
	char *ca_file;              /* extra CA bundle for https feeds */
	double recipe_cpu_seconds;  /* per recipe file */
	long recipe_memory_mib;     /* per recipe file */
	double recipe_wall_seconds; /* per recipe file, backstop */
	long feed_max_recipes;      /* recipe files evaluated, in name order */
	long feed_max_improvements; /* improvements in the whole feed */
	long feed_max_actions;      /* actions in the whole feed */
	long feed_eval_seconds;     /* wall clock for evaluating the whole feed */
	long fetch_max_mib;         /* most a sync may download */
	long fetch_timeout;         /* seconds a server may stall a sync */
	long fetch_deadline;        /* seconds a whole fetch may take */
	long feed_max_new_commits;  /* most new commits one sync may bring */
	char *maintenance_window;   /* "HH:MM-HH:MM" or NULL */
	char *min_severity;         /* lowest severity applied unattended, or NULL */
	bool restart_affected;      /* restart units still running replaced code */
	char *power_supply_dir;     /* sysfs power_supply class directory */
	long max_target_mib;        /* largest file bsi hashes or replaces */
} bsi_config;

/* Fill cfg with the defaults. */
int bsi_config_defaults(bsi_config *cfg);
/* Read path over the defaults already in cfg.  must_exist: the user named
 * the file, so a missing one is an error. */
int bsi_config_load(bsi_config *cfg, const char *path, bool must_exist);
/* The same for configuration text already in memory (len bytes, at most
 * 64 KiB, need not be NUL-terminated); name stands for the file in
 * messages. */
int bsi_config_load_buffer(bsi_config *cfg, const char *text, size_t len, const char *name);
/* Free the strings cfg owns (not cfg itself). */
void bsi_config_clear(bsi_config *cfg);

/* "HH:MM-HH:MM" exactly: true with the start and end as minutes after
 * midnight (either out may be NULL). */
bool bsi_config_parse_window(const char *text, int *out_start, int *out_end);

/* "90s", "15m", "6h", "14d", "2w" or a plain number of seconds. */
int bsi_config_parse_duration(const char *text, long *out);

#endif
