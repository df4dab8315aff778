/*
 * systemd.c - a service-manager plugin that runs
 * `systemctl try-restart -- UNIT` through posix_spawnp (no shell, so a unit
 * name is never interpreted), and reports a nonzero exit status or a
 * signal together with what systemctl wrote on stderr.  try-restart leaves
 * a stopped unit stopped.  SYSTEMCTL in the environment names another
 * binary (used by the tests).
 */
#include "bsi_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct {
	const bsi_host_services *host;
} systemd_ctx;

static int systemd_init(void **out_ctx, const bsi_host_services *host, const char *config,
			char *err, size_t errlen)
{
	systemd_ctx *c = calloc(1, sizeof(*c));

	*out_ctx = NULL;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->host = host;
	*out_ctx = c;
	return 0;
}

/* Trim trailing whitespace and newlines in place. */
static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static int systemd_restart(void *ctx, const char *service, char *err, size_t errlen)
{
	const char *bin = getenv("SYSTEMCTL");
	char *argv[] = {(char *)"systemctl", (char *)"try-restart", (char *)"--",
			(char *)service, NULL};
	char msg[512] = "";
	posix_spawn_file_actions_t fa;
	int pipefd[2] = {-1, -1}, st, ret = -1, rc;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (!bin || !*bin)
		bin = "systemctl";
	if (!*service || service[0] == '-') {
		snprintf(err, errlen, "invalid unit name '%s'", service);
		return -1;
	}
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		snprintf(err, errlen, "cannot run %s: %s", bin, strerror(rc));
		goto done;
	}
	/* Keep the first part of stderr, drain the rest so the child never blocks. */
	for (;;) {
		char buf[512];

		n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len < sizeof(msg) - 1) {
			size_t k = (size_t)n < sizeof(msg) - 1 - len ? (size_t)n : sizeof(msg) - 1 - len;

			memcpy(msg + len, buf, k);
			len += k;
		}
	}
	msg[len] = '\0';
	rtrim(msg);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			goto done;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		ret = 0;
	} else if (WIFEXITED(st)) {
		snprintf(err, errlen, "%s try-restart %s exited with status %d%s%s%s", bin, service,
			 WEXITSTATUS(st), WEXITSTATUS(st) == 127 ? " (could not be run)" : "",
			 msg[0] ? ": " : "", msg);
	} else {
		snprintf(err, errlen, "%s try-restart %s killed by signal %d%s%s", bin, service,
			 WTERMSIG(st), msg[0] ? ": " : "", msg);
	}
done:
	close(pipefd[0]);
	return ret;
}

static void systemd_fini(void *ctx) { free(ctx); }

static const bsi_plugin_v1 plugin = {
	.abi_version = BSI_PLUGIN_ABI_VERSION,
	.name = "systemd",
	.init = systemd_init,
	.restart = systemd_restart,
	.fini = systemd_fini,
};

const bsi_plugin_v1 *bsi_plugin_entry(void);
const bsi_plugin_v1 *bsi_plugin_entry(void) { return &plugin; }
