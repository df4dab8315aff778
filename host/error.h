/*
 * error.h - errors as values.
 *
 * Every fallible function returns int: 0 on success, one of the negative
 * BSI_E* codes on failure, after recording a message with bsi_error_set().
 * Only main() turns the code into an exit status (exit = -code) and prints
 * the message, once.  The message is per thread; the last one set wins.
 */
#ifndef BSI_ERROR_H
#define BSI_ERROR_H

enum {
	BSI_OK = 0,
	BSI_EFAIL = -1,   /* operational failure: I/O, network; nothing half-done */
	BSI_EUSAGE = -2,  /* usage or configuration error */
	BSI_ETRUST = -3,  /* trust refused: signature, authorization, rollback, digest */
	BSI_ERECIPE = -4, /* recipe error: syntax, runtime, sandbox, schema */
	BSI_EBUSY = -5,   /* another bsi holds the lock */
};

/* Record a message for code and return code, so callers can write
 * `return bsi_error_set(BSI_EFAIL, "open %s: %s", p, strerror(errno));` */
int bsi_error_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#if defined(__clang_analyzer__) && !defined(BSI_ERROR_IMPL)
/* The static analyzer (make lint) reads one file at a time and cannot see
 * that bsi_error_set returns its code; without this it follows paths where
 * `return bsi_error_set(BSI_ETRUST, ...)` returns 0. */
#define bsi_error_set(code, ...) (bsi_error_set((code), __VA_ARGS__), (code))
#endif

/* Prefix the current message with context ("while syncing: <old message>")
 * and return the current code unchanged. */
int bsi_error_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Keep the current message, change its code (e.g. an I/O failure that
 * means a trust refusal here); returns code. */
int bsi_error_set_code(int code);

/* The last message set on this thread ("" when none), and its code. */
const char *bsi_error_message(void);
int bsi_error_code(void);
void bsi_error_clear(void);

/* The worse of two codes when several things failed independently (0 is
 * none): trust refused before a recipe error before anything else, so a
 * script sees the failure that matters most. */
int bsi_error_worse(int a, int b);

/* The process exit status DESIGN.md gives for an error code (0..5). */
int bsi_error_exit_status(int code);

#endif
