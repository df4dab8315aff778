#include "failpoint.h"

#ifdef BSI_FAILPOINTS
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Does env var `var` name `name` (as NAME or NAME:N), and is this its Nth hit? */
static int hit(const char *var, const char *name, unsigned *count)
{
	const char *spec = getenv(var);
	size_t len = strlen(name);
	unsigned want = 1;

	if (!spec || strncmp(spec, name, len) != 0)
		return 0;
	if (spec[len] == ':')
		want = (unsigned)strtoul(spec + len + 1, NULL, 10);
	else if (spec[len] != '\0')
		return 0;
	return ++*count == want;
}

void bsi_failpoint(const char *name)
{
	static unsigned count;

	if (hit("BSI_FAILPOINT", name, &count))
		kill(getpid(), SIGKILL);
}

int bsi_fault(const char *name)
{
	static unsigned count;
	size_t len = strlen(name);

	if (!hit("BSI_FAULT", name, &count))
		return 0;
	if (len > 7 && strcmp(name + len - 7, ".enospc") == 0)
		return ENOSPC;
	return len > 6 && strcmp(name + len - 6, ".exdev") == 0 ? EXDEV : EIO;
}

#else

void bsi_failpoint(const char *name) { (void)name; }

int bsi_fault(const char *name)
{
	(void)name;
	return 0;
}

#endif
