/*
 * log.h - one line per event, for unattended runs.
 *
 * Where lines go is decided once, by bsi_log_open(): to syslog
 * (openlog("bsi", LOG_PID, LOG_DAEMON)) when stderr is not a terminal, as
 * under a systemd timer or cron; to stderr, prefixed "bsi: ", when it is.
 * BSI_LOG=stderr or BSI_LOG=syslog in the environment overrides the choice
 * (a supervisor that collects stderr; the tests).  Each event line names
 * the improvement and the feed commit it concerns, so a fleet's logs can
 * be searched by either.
 *
 * Levels follow -q/-v: -q keeps errors and warnings, the default adds one
 * info line per event, -v adds debug detail.  Before bsi_log_open() (or
 * after bsi_log_close()) lines go to stderr at the default level.
 */
#ifndef BSI_LOG_H
#define BSI_LOG_H

#include <stdbool.h>

void bsi_log_open(int verbosity);
void bsi_log_close(void);
/* True when lines go to syslog. */
bool bsi_log_to_syslog(void);

void bsi_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bsi_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bsi_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bsi_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
