/*
 * plugin.h - loading service-manager plugins (see plugins/bsi_plugin.h).
 */
#ifndef BSI_PLUGIN_LOADER_H
#define BSI_PLUGIN_LOADER_H

#include <stddef.h>

typedef struct bsi_plugin bsi_plugin;

/*
 * Load <dir>/<name>.so and initialise it with state_dir.  `name` must be a
 * plain name (letters, digits, '-', '_'; no '/', no dots).  Refuses
 * (BSI_EUSAGE, naming the file) a missing file, a missing entry symbol, an
 * unknown ABI version, missing functions, and a failed init.
 */
int bsi_plugin_load(bsi_plugin **out, const char *dir, const char *name, const char *state_dir);
/* Finalise and unload; NULL-safe. */
void bsi_plugin_free(bsi_plugin *p);
/* The plugin's name (borrowed). */
const char *bsi_plugin_name(const bsi_plugin *p);
/* Restart one service; BSI_EFAIL with the plugin's reason on failure. */
int bsi_plugin_restart(bsi_plugin *p, const char *service);

/*
 * The default plugin directory: "<dir of /proc/self/exe>/plugins" when that
 * directory exists (the uninstalled build/bsi), else BSI_PLUGINDIR.
 */
int bsi_plugin_default_dir(char *out, size_t outlen);

#endif
