/* log.c - event lines to syslog or stderr; see log.h. */
#include "log.h"

#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static bool use_syslog;
static int level = 0; /* the verbosity: -1 quiet, 0 default, 1+ verbose */

void bsi_log_open(int verbosity)
{
	const char *force = getenv("BSI_LOG");

	level = verbosity;
	if (force && strcmp(force, "syslog") == 0)
		use_syslog = true;
	else if (force && strcmp(force, "stderr") == 0)
		use_syslog = false;
	else
		use_syslog = !isatty(STDERR_FILENO);
	if (use_syslog)
		openlog("bsi", LOG_PID, LOG_DAEMON);
}

void bsi_log_close(void)
{
	if (use_syslog)
		closelog();
	use_syslog = false;
	level = 0;
}

bool bsi_log_to_syslog(void) { return use_syslog; }

/* priority: a syslog priority; shown: the least verbosity that shows it. */
__attribute__((format(printf, 4, 0)))
static void vlog(int priority, int shown, const char *tag, const char *fmt, va_list ap)
{
	char line[2048];

	if (level < shown)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* one event, one line: a newline in a message (a server's error
	 * text) must not forge a second event, nor an escape sequence
	 * rewrite the terminal (text.h) */
	bsi_text_clean(line, sizeof(line), line, strlen(line));
	if (use_syslog) {
		syslog(priority, "%s%s", tag, line);
		return;
	}
	fflush(stdout);
	fprintf(stderr, "bsi: %s%s\n", tag, line);
}

#define LOG_FN(name, priority, shown, tag)                                                      \
	void name(const char *fmt, ...)                                                         \
	{                                                                                       \
		va_list ap;                                                                     \
		va_start(ap, fmt);                                                              \
		vlog(priority, shown, tag, fmt, ap);                                            \
		va_end(ap);                                                                     \
	}

LOG_FN(bsi_log_error, LOG_ERR, -1, "error: ")
LOG_FN(bsi_log_warn, LOG_WARNING, -1, "warning: ")
LOG_FN(bsi_log_info, LOG_INFO, 0, "")
LOG_FN(bsi_log_debug, LOG_DEBUG, 1, "")
