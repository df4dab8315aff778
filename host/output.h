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
#include "cli.h"

#include <jansson.h>
#include <stdio.h>

/* The plan, for people. */
void bsi_output_plan(FILE *f, const bsi_changeset *cs);
/* "<indent>error: <reason>" for each recipe file that failed as a whole. */
void bsi_output_file_errors(FILE *f, const bsi_changeset *cs, const char *indent);
/* The plan as DESIGN.md section 8 gives it (new reference), with
 * "errors": [{file, line, code, reason}] for whole-file failures (docs/json.md). */
json_t *bsi_output_plan_json(const bsi_changeset *cs);
/* An improvement of bsi_changeset_to_json() as output shows it: in error,
 * it says where with "file" and "line" (the line at fault) and "code" (the
 * exit status of its error). */
int bsi_output_error_fields(json_t *improvement);
/* `bsi plan`: the plan as text or JSON, as cli asks; then the worst error
 * of the plan (changeset.h), so a script notices one. */
int bsi_output_show_plan(const bsi_cli *cli, const bsi_changeset *cs);
/* Print a JSON document (steals the reference); BSI_EFAIL if it cannot. */
/* The version of the JSON documents' shapes (docs/json.md): raised when a
 * field changes meaning or goes away, not when one is added. */
#define BSI_JSON_SCHEMA 1

/* Print doc (stolen) as one document, with "schema": BSI_JSON_SCHEMA. */
int bsi_output_json(FILE *f, json_t *doc);
/* Whether a JSON document went to stdout: a command that fails after
 * printing its document (plan, apply with errors) carries its errors
 * there; one that fails before gets {"error": ...} from main. */
bool bsi_output_json_printed(void);

#endif
