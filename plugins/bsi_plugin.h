/*
 * bsi_plugin.h - the stable C ABI of bsi's native plugins.
 *
 * A plugin is a shared object <plugin_dir>/<name>.so exporting one symbol,
 * BSI_PLUGIN_ENTRY_SYMBOL, a function returning a pointer to a static
 * bsi_plugin_v1.  The host reads abi_version first and refuses any version
 * it does not know, so later versions may append fields.  Plugins keep no
 * global state: whatever they need lives behind the ctx their init returns,
 * and everything they may use of the host is handed to init in
 * bsi_host_services.
 *
 * Every function that can fail returns 0 on success and a nonzero value on
 * failure after writing a NUL-terminated, human-readable reason (no
 * trailing newline) into err[errlen].
 */
#ifndef BSI_PLUGIN_H
#define BSI_PLUGIN_H

#include <stddef.h>

#define BSI_PLUGIN_ABI_VERSION 1
#define BSI_PLUGIN_ENTRY_SYMBOL "bsi_plugin_entry"

enum { BSI_LOG_ERROR = 0, BSI_LOG_WARN = 1, BSI_LOG_INFO = 2, BSI_LOG_DEBUG = 3 };

/* What the host offers a plugin; valid from init until fini returns. */
typedef struct {
	unsigned abi_version;   /* BSI_PLUGIN_ABI_VERSION of the host */
	const char *state_dir;  /* the bsi state directory (e.g. /var/lib/bsi) */
	void *host;             /* opaque; pass back to log */
	void (*log)(void *host, int level, const char *msg);
} bsi_host_services;

typedef struct {
	unsigned abi_version; /* must be BSI_PLUGIN_ABI_VERSION; read first */
	const char *name;     /* the plugin's name, e.g. "systemd" */
	/* Create a context; config is the plugin's configuration text or NULL. */
	int (*init)(void **out_ctx, const bsi_host_services *host, const char *config,
		    char *err, size_t errlen);
	/* Restart (if running) one service by its name. */
	int (*restart)(void *ctx, const char *service, char *err, size_t errlen);
	/* Free the context; NULL-safe. */
	void (*fini)(void *ctx);
} bsi_plugin_v1;

/* The signature of the entry symbol. */
typedef const bsi_plugin_v1 *(*bsi_plugin_entry_fn)(void);

#endif
