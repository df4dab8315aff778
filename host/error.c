#define BSI_ERROR_IMPL /* the definition below, not the analyzer's macro */
#include "error.h"

#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char message[4096];
static _Thread_local int last_code;

int bsi_error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	/* messages carry text from outside (server replies, file names):
	 * whatever prints or stores them gets it clean (text.h) */
	bsi_text_clean(message, sizeof(message), message, strlen(message));
	last_code = code;
	return code;
}

int bsi_error_wrap(const char *fmt, ...)
{
	char old[sizeof(message)];
	va_list ap;
	int n;

	memcpy(old, message, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(message))
		snprintf(message + n, sizeof(message) - (size_t)n, ": %.*s", (int)(sizeof(message) - (size_t)n - 3), old);
	bsi_text_clean(message, sizeof(message), message, strlen(message));
	return last_code;
}

int bsi_error_set_code(int code)
{
	last_code = code;
	return code;
}

const char *bsi_error_message(void) { return message; }

int bsi_error_code(void) { return last_code; }

void bsi_error_clear(void)
{
	message[0] = '\0';
	last_code = BSI_OK;
}

int bsi_error_exit_status(int code)
{
	if (code >= 0)
		return 0;
	if (code < BSI_EBUSY)
		return 1;
	return -code;
}

static int error_rank(int code)
{
	switch (code) {
	case BSI_OK:
		return 0;
	case BSI_ETRUST:
		return 5;
	case BSI_ERECIPE:
		return 4;
	case BSI_EUSAGE:
		return 3;
	case BSI_EBUSY:
		return 2;
	default:
		return 1;
	}
}

int bsi_error_worse(int a, int b)
{
	return error_rank(b) > error_rank(a) ? b : a;
}
