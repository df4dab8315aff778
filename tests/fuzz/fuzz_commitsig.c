/*
 * fuzz_commitsig.c - libFuzzer target: a raw commit object as a hostile
 * server sends it (bsi_commitsig_parse), then its signature verified over
 * its payload as authentication does (bsi_sshsig_verify).
 *
 * Oracle beyond the sanitizers: a parse either fails with BSI_ETRUST and a
 * message, or splits the commit so that payload + gpgsig header = the input
 * (the payload is shorter by at least "gpgsig \n"), both outputs are
 * NUL-terminated at their stated lengths, and the payload starts with the
 * tree header the parse reports.
 */
#include "commitsig.h"
#include "error.h"
#include "sshsig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define need(c)                                                                            \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "fuzz_commitsig: %s\n", #c);                       \
			abort();                                                           \
		}                                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bsi_commitsig *cs = NULL;
	char *raw = malloc(size ? size : 1), hex[GIT_OID_HEXSZ + 1];
	uint8_t key[32];
	int rc;

	if (!raw)
		return 0;
	memcpy(raw, data, size);
	rc = bsi_commitsig_parse(&cs, raw, size);
	if (rc < 0) {
		need(cs == NULL);
		need(rc == BSI_ETRUST || rc == BSI_EFAIL);
		need(bsi_error_message()[0] != '\0');
		goto done;
	}
	need(cs != NULL);
	need(cs->payload_len + sizeof("gpgsig \n") - 2 <= size);
	need(cs->payload[cs->payload_len] == '\0');
	need(cs->signature[cs->signature_len] == '\0');
	need(cs->signature_len < size);
	git_oid_tostr(hex, sizeof(hex), &cs->tree);
	need(cs->payload_len >= 5 + GIT_OID_HEXSZ && memcmp(cs->payload, "tree ", 5) == 0 &&
	     memcmp(cs->payload + 5, hex, GIT_OID_HEXSZ) == 0);
	/* The payload keeps every byte of the input outside the gpgsig header:
	 * the prefix before it and the suffix after it are the input's own. */
	{
		size_t pre = 0;

		while (pre < cs->payload_len && cs->payload[pre] == raw[pre])
			pre++;
		need(memcmp(cs->payload + pre, raw + size - (cs->payload_len - pre),
			    cs->payload_len - pre) == 0);
	}
	rc = bsi_sshsig_verify(key, cs->signature, cs->signature_len, cs->payload,
			       cs->payload_len, "git");
	need(rc == 0 || rc == BSI_ETRUST || rc == BSI_EFAIL);
done:
	bsi_commitsig_free(cs);
	free(raw);
	return 0;
}
