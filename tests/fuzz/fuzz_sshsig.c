/*
 * fuzz_sshsig.c - libFuzzer target: an armored SSHSIG from a commit's gpgsig
 * header, verified over a fixed payload (bsi_sshsig_verify).
 *
 * The input is the armored text as it arrives from the network.  Oracle
 * beyond the sanitizers: a refusal is BSI_ETRUST (BSI_EFAIL only when memory
 * runs out) with a message, and success is impossible without a signature
 * over the fixed payload, which the corpus does not hold for namespace "git"
 * and the fuzzer cannot forge; so a success names the key in the seed.
 */
#include "error.h"
#include "sshsig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char payload[] = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
			      "author A <a@example.org> 1700000000 +0000\n"
			      "committer A <a@example.org> 1700000000 +0000\n\nfuzz\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[32];
	/* a private copy, exactly size bytes, so reads past the end are caught */
	char *text = malloc(size ? size : 1);
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	memset(key, 0xA5, sizeof(key));
	rc = bsi_sshsig_verify(key, text, size, payload, sizeof(payload) - 1, "git");
	if (rc < 0) {
		if ((rc != BSI_ETRUST && rc != BSI_EFAIL) || bsi_error_message()[0] == '\0') {
			fprintf(stderr, "refusal with code %d and message '%s'\n", rc,
				bsi_error_message());
			abort();
		}
		/* out is written only on success */
		for (size_t i = 0; i < sizeof(key); i++)
			if (key[i] != 0xA5)
				abort();
	}
	free(text);
	return 0;
}
