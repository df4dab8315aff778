/* plugin.c - dlopen a service-manager plugin; see plugin.h. */
#include "plugin.h"

#include "bsi_plugin.h"
#include "error.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BSI_PLUGINDIR
#define BSI_PLUGINDIR "/usr/local/lib/bsi/plugins"
#endif

struct bsi_plugin {
	void *handle;
	const bsi_plugin_v1 *api;
	void *ctx;
	char *path;
	bsi_host_services services;
	char *state_dir;
};

static void host_log(void *host, int level, const char *msg)
{
	bsi_plugin *p = host;

	/* Warnings and errors only; the host's own log module may replace this. */
	if (level <= BSI_LOG_WARN)
		fprintf(stderr, "bsi: plugin %s: %s\n", p->api ? p->api->name : "?", msg);
}

static int valid_name(const char *name)
{
	const char *c;

	if (!name || !*name || strlen(name) > 64)
		return 0;
	for (c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
			return 0;
	return 1;
}

int bsi_plugin_load(bsi_plugin **out, const char *dir, const char *name, const char *state_dir)
{
	bsi_plugin *p = NULL;
	bsi_plugin_entry_fn entry;
	char err[512] = "", *path = NULL;
	int ret = BSI_EUSAGE;

	*out = NULL;
	if (!valid_name(name))
		return bsi_error_set(BSI_EUSAGE,
				     "plugin name '%s' is not a plain name (letters, digits, - and _)",
				     name ? name : "");
	if (!(p = calloc(1, sizeof(*p))) || asprintf(&path, "%s/%s.so", dir, name) < 0 ||
	    !(p->path = path) || (path = NULL) || !(p->state_dir = strdup(state_dir ? state_dir : ""))) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if (access(p->path, F_OK) != 0) {
		ret = bsi_error_set(BSI_EUSAGE, "plugin %s: no such file %s", name, p->path);
		goto done;
	}
	if (!(p->handle = dlopen(p->path, RTLD_NOW | RTLD_LOCAL))) {
		ret = bsi_error_set(BSI_EUSAGE, "plugin %s: cannot load: %s", p->path, dlerror());
		goto done;
	}
	*(void **)&entry = dlsym(p->handle, BSI_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		ret = bsi_error_set(BSI_EUSAGE, "plugin %s: not a bsi plugin (no symbol %s)", p->path,
				    BSI_PLUGIN_ENTRY_SYMBOL);
		goto done;
	}
	if (!(p->api = entry())) {
		ret = bsi_error_set(BSI_EUSAGE, "plugin %s: entry returned nothing", p->path);
		goto done;
	}
	if (p->api->abi_version != BSI_PLUGIN_ABI_VERSION) {
		ret = bsi_error_set(BSI_EUSAGE,
				    "plugin %s has ABI version %u; this bsi knows version %d only",
				    p->path, p->api->abi_version, BSI_PLUGIN_ABI_VERSION);
		p->api = NULL;
		goto done;
	}
	if (!p->api->name || !p->api->init || !p->api->restart || !p->api->fini) {
		ret = bsi_error_set(BSI_EUSAGE, "plugin %s: incomplete (missing name or function)",
				    p->path);
		p->api = NULL;
		goto done;
	}
	p->services.abi_version = BSI_PLUGIN_ABI_VERSION;
	p->services.state_dir = p->state_dir;
	p->services.host = p;
	p->services.log = host_log;
	if (p->api->init(&p->ctx, &p->services, NULL, err, sizeof(err)) != 0) {
		err[sizeof(err) - 1] = '\0';
		ret = bsi_error_set(BSI_EUSAGE, "plugin %s: init failed: %s", p->path, err);
		p->api = NULL;
		goto done;
	}
	*out = p;
	p = NULL;
	ret = 0;
done:
	free(path);
	bsi_plugin_free(p);
	return ret;
}

void bsi_plugin_free(bsi_plugin *p)
{
	if (!p)
		return;
	if (p->api)
		p->api->fini(p->ctx);
	if (p->handle)
		dlclose(p->handle);
	free(p->path);
	free(p->state_dir);
	free(p);
}

const char *bsi_plugin_name(const bsi_plugin *p) { return p->api->name; }

int bsi_plugin_restart(bsi_plugin *p, const char *service)
{
	char err[1024] = "";

	if (p->api->restart(p->ctx, service, err, sizeof(err)) != 0) {
		err[sizeof(err) - 1] = '\0';
		return bsi_error_set(BSI_EFAIL, "restart %s (%s): %s", service, p->api->name,
				     err[0] ? err : "failed");
	}
	return 0;
}

int bsi_plugin_default_dir(char *out, size_t outlen)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct stat sb;
	char *slash;

	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/'))) {
			*slash = '\0';
			if ((size_t)snprintf(out, outlen, "%s/plugins", exe) < outlen &&
			    stat(out, &sb) == 0 && S_ISDIR(sb.st_mode))
				return 0;
		}
	}
	if ((size_t)snprintf(out, outlen, "%s", BSI_PLUGINDIR) >= outlen)
		return bsi_error_set(BSI_EUSAGE, "plugin directory path too long");
	return 0;
}
