/*
 * record.c - a service-manager plugin that restarts nothing and records
 * each restart as one line (the service's name) in <state>/restarts.log,
 * fsync'ed, so the demo and the tests can see exactly which restarts
 * happened, and how many times.
 */
#include "bsi_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	char *path;
} record_ctx;

static int record_init(void **out_ctx, const bsi_host_services *host, const char *config,
		       char *err, size_t errlen)
{
	record_ctx *c = calloc(1, sizeof(*c));

	*out_ctx = NULL;
	if (!c || !host->state_dir || asprintf(&c->path, "%s/restarts.log", host->state_dir) < 0) {
		snprintf(err, errlen, "out of memory or no state directory");
		free(c);
		return -1;
	}
	*out_ctx = c;
	return 0;
}

static int record_restart(void *ctx, const char *service, char *err, size_t errlen)
{
	record_ctx *c = ctx;
	size_t len = strlen(service);
	char *line;
	int fd, ret = -1;

	if (strchr(service, '\n')) {
		snprintf(err, errlen, "service name contains a newline");
		return -1;
	}
	fd = open(c->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", c->path, strerror(errno));
		return -1;
	}
	if (!(line = malloc(len + 1))) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	memcpy(line, service, len);
	line[len] = '\n';
	/* One write(2) with O_APPEND: lines from concurrent writers never mix. */
	if (write(fd, line, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
		snprintf(err, errlen, "write %s: %s", c->path, strerror(errno));
		goto done;
	}
	ret = 0;
done:
	free(line);
	close(fd);
	return ret;
}

static void record_fini(void *ctx)
{
	record_ctx *c = ctx;

	if (!c)
		return;
	free(c->path);
	free(c);
}

static const bsi_plugin_v1 plugin = {
	.abi_version = BSI_PLUGIN_ABI_VERSION,
	.name = "record",
	.init = record_init,
	.restart = record_restart,
	.fini = record_fini,
};

const bsi_plugin_v1 *bsi_plugin_entry(void);
const bsi_plugin_v1 *bsi_plugin_entry(void) { return &plugin; }
