/*
 * fuzz_config.c - libFuzzer target: the configuration file
 * (bsi_config_load_buffer, what bsi_config_load runs on the file's bytes).
 *
 * Oracle beyond the sanitizers and the timeout: a refusal is BSI_EUSAGE
 * (BSI_EFAIL only when memory runs out) with a message; whatever happens,
 * every value in the configuration stays one its key allows (positive
 * numbers within their bounds, a valid window and severity or none), and
 * clearing it frees everything (the leak checker sees the rest).
 */
#include "config.h"
#include "error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define need(c)                                                                            \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "fuzz_config: %s\n", #c);                          \
			abort();                                                           \
		}                                                                          \
	} while (0)

static const char *const severities[] = {"low", "medium", "high", "critical"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bsi_config cfg;
	char *text = malloc(size ? size : 1);
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	need(bsi_config_defaults(&cfg) == 0);
	rc = bsi_config_load_buffer(&cfg, text, size, "fuzz.conf");
	if (rc < 0) {
		need(rc == BSI_EUSAGE || rc == BSI_EFAIL);
		need(bsi_error_message()[0] != '\0');
	}
	need(cfg.interval >= 0 && cfg.max_feed_age >= 0 && cfg.fetch_timeout >= 0);
	need(cfg.recipe_cpu_seconds > 0 && cfg.recipe_cpu_seconds <= 86400);
	need(cfg.recipe_wall_seconds > 0 && cfg.recipe_wall_seconds <= 86400);
	need(cfg.recipe_memory_mib > 0 && cfg.recipe_memory_mib <= 1L << 30);
	need(cfg.fetch_max_mib > 0 && cfg.fetch_max_mib <= 1L << 30);
	need(cfg.service_manager != NULL && cfg.power_supply_dir != NULL);
	if (cfg.maintenance_window) {
		const char *w = cfg.maintenance_window;

		need(strlen(w) == 11 && w[2] == ':' && w[5] == '-' && w[8] == ':');
		for (int i = 0; i < 11; i++)
			need(i == 2 || i == 5 || i == 8 || (w[i] >= '0' && w[i] <= '9'));
	}
	if (cfg.min_severity) {
		size_t i = 0;

		while (i < 4 && strcmp(cfg.min_severity, severities[i]) != 0)
			i++;
		need(i < 4);
	}
	bsi_config_clear(&cfg);
	free(text);
	return 0;
}
