/*
 * fuzz_signers.c - libFuzzer target: a feed's `.bsi/signers` file
 * (bsi_signers_parse), and its first line as an enrollment key
 * (bsi_signers_parse_key).
 *
 * Oracle beyond the sanitizers: refusals are BSI_ETRUST (BSI_EUSAGE for
 * parse_key) with a message naming the origin; an accepted file authorizes
 * at least one key for "git", and a key it does not list is not allowed.
 */
#include "error.h"
#include "signers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define need(c)                                                                            \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "fuzz_signers: %s\n", #c);                         \
			abort();                                                           \
		}                                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t unlisted[32] = {0}; /* not a key anyone holds */
	bsi_signers *s = NULL;
	char *text = malloc(size + 1), *nl;
	uint8_t key[32];
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	rc = bsi_signers_parse(&s, text, size, "fuzz:.bsi/signers");
	if (rc < 0) {
		need(s == NULL);
		need(rc == BSI_ETRUST || rc == BSI_EFAIL);
		need(strstr(bsi_error_message(), "fuzz:.bsi/signers") != NULL ||
		     rc == BSI_EFAIL);
	} else {
		need(s != NULL && bsi_signers_count(s) > 0);
		need(!bsi_signers_allows(s, unlisted) || memchr(text, 'A', size) != NULL);
	}
	bsi_signers_free(s);

	text[size] = '\0';
	if ((nl = strchr(text, '\n')) != NULL)
		*nl = '\0';
	rc = bsi_signers_parse_key(key, text);
	need(rc == 0 || rc == BSI_EUSAGE);
	free(text);
	return 0;
}
