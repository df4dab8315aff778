/*
 * fuzz_recipe.c - libFuzzer target: a recipe file from a feed, evaluated
 * and schema-checked in check mode (no target root), through
 * bsi_recipe_load_buffer_in_process: the evaluation the sandbox child runs,
 * minus the fork, so the fuzzer gets thousands of runs a second and ASan
 * sees the Lua host code.  Limits are small (8 MiB of Lua heap, 0.5 s CPU):
 * the in-process defences must hold on their own.  A Lua string function
 * that runs for ever is the one thing only the forked sandbox stops; the
 * fuzzer reports it as a timeout.
 *
 * Oracle beyond the sanitizers: a refusal is BSI_ERECIPE (BSI_EFAIL only
 * when host memory runs out) with a message naming the file, and leaves the
 * change set untouched; an accepted recipe yields improvements that each
 * have a valid id, the file as recipe, status pending and actions that
 * passed the host's re-check, or status error (its entry, `when` or
 * `apply` failed) with a reason naming the file and no actions.
 */
#include "changeset.h"
#include "error.h"
#include "recipe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define need(c)                                                                            \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "fuzz_recipe: %s (%s)\n", #c, bsi_error_message()); \
			abort();                                                           \
		}                                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const bsi_recipe_limits lim = {(size_t)8 << 20, 0.5, 5.0};
	static const char name[] = "recipes/fuzz.lua";
	bsi_changeset *cs = NULL;
	char *text = malloc(size ? size : 1);
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	need(bsi_changeset_new(&cs) == 0);
	rc = bsi_recipe_load_buffer_in_process(cs, name, text, size, NULL, &lim);
	if (getenv("FUZZ_VERBOSE")) /* triage: what became of this input */
		fprintf(stderr, "rc %d, %zu improvements: %s\n", rc, cs->count,
			bsi_error_message());
	if (rc < 0) {
		need(rc == BSI_ERECIPE || rc == BSI_EFAIL);
		need(strstr(bsi_error_message(), name) != NULL || rc == BSI_EFAIL);
		need(cs->count == 0);
	} else {
		for (size_t i = 0; i < cs->count; i++) {
			const bsi_improvement *imp = &cs->items[i];

			need(imp->id && imp->id[0] != '\0');
			need(imp->recipe && strcmp(imp->recipe, name) == 0);
			/* an improvement's own error: named with the file, no actions */
			need(imp->status == BSI_STATUS_PENDING || imp->status == BSI_STATUS_ERROR);
			need(imp->status != BSI_STATUS_ERROR ||
			     (imp->error_code == BSI_ERECIPE && imp->nactions == 0 && imp->reason &&
			      strncmp(imp->reason, name, strlen(name)) == 0));
			for (size_t k = 0; k < imp->nactions; k++)
				need(imp->actions[k].op == BSI_ACTION_RESTART ||
				     (imp->actions[k].path && imp->actions[k].payload));
		}
	}
	bsi_changeset_free(cs);
	free(text);
	return 0;
}
