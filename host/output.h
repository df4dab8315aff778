/*
 * output.h - how bsi shows things to people and to fleet tools.
 *
 * Human output is for a terminal and reads like `git diff --stat`: short
 * digests, one line per file or service.  JSON output is one document on
 * stdout, produced with jansson (never by hand), so file names and recipe
 * text are escaped correctly whatever bytes they hold.
 */
#ifndef BSI_OUTPUT_H
#define BSI_OUTPUT_H

#include "changeset.h"

#include <jansson.h>
#include <stdio.h>

/* The plan, for people. */
void bsi_output_plan(FILE *f, const bsi_changeset *cs);
/* The plan as DESIGN.md section 8 gives it (new reference). */
json_t *bsi_output_plan_json(const bsi_changeset *cs);
/* Print a JSON document (steals the reference); BSI_EFAIL if it cannot. */
int bsi_output_json(FILE *f, json_t *doc);

#endif
