#include "output.h"

#include "error.h"

#include <stdio.h>
#include <string.h>

/* "sha256:0123456789ab" -> "0123456789ab": enough to tell files apart. */
static const char *short_digest(const char *d, char buf[16])
{
	if (!d)
		return "-";
	snprintf(buf, 16, "%.12s", strncmp(d, "sha256:", 7) == 0 ? d + 7 : d);
	return buf;
}

void bsi_output_plan(FILE *f, const bsi_changeset *cs)
{
	size_t counts[BSI_STATUS_ERROR + 1] = {0};

	for (size_t i = 0; i < cs->count; i++) {
		const bsi_improvement *imp = &cs->items[i];
		char a[16], b[16];

		counts[imp->status]++;
		fprintf(f, "%s %s [%s] %s\n", imp->component ? imp->component : "?", imp->id,
			imp->severity ? imp->severity : "?", bsi_status_name(imp->status));
		if (imp->summary)
			fprintf(f, "    %s\n", imp->summary);
		if (imp->nfixes > 0) {
			fprintf(f, "    fixes:");
			for (size_t k = 0; k < imp->nfixes; k++)
				fprintf(f, " %s", imp->fixes[k]);
			fputc('\n', f);
		}
		if (imp->reason)
			fprintf(f, "    %s: %s\n", imp->status == BSI_STATUS_ERROR ? "error" : "reason",
				imp->reason);
		for (size_t k = 0; k < imp->nactions; k++) {
			const bsi_action *act = &imp->actions[k];

			if (act->op == BSI_ACTION_REPLACE)
				fprintf(f, "    replace %s  %s -> %s\n", act->path,
					short_digest(act->from, a), short_digest(act->to, b));
			else
				fprintf(f, "    restart %s\n", act->service);
		}
	}
	bsi_output_file_errors(f, cs, "");
	fprintf(f, "%zu improvement%s: %zu pending, %zu applied, %zu not applicable", cs->count,
		cs->count == 1 ? "" : "s", counts[BSI_STATUS_PENDING], counts[BSI_STATUS_APPLIED],
		counts[BSI_STATUS_NOT_APPLICABLE]);
	if (counts[BSI_STATUS_ERROR] > 0)
		fprintf(f, ", %zu in error", counts[BSI_STATUS_ERROR]);
	if (cs->nerrors > 0)
		fprintf(f, "; %zu recipe file error%s", cs->nerrors, cs->nerrors == 1 ? "" : "s");
	fputc('\n', f);
}

void bsi_output_file_errors(FILE *f, const bsi_changeset *cs, const char *indent)
{
	for (size_t i = 0; i < cs->nerrors; i++)
		fprintf(f, "%serror: %s\n", indent, cs->errors[i].reason);
}

int bsi_output_error_fields(json_t *j)
{
	json_t *line = json_object_get(j, "error_line");

	if (!line)
		return BSI_OK;
	if (json_integer_value(line) > 0 &&
	    json_object_set(j, "line", line) < 0)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	if (json_object_set(j, "file", json_object_get(j, "recipe")) < 0)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	json_object_del(j, "error_line");
	return BSI_OK;
}

json_t *bsi_output_plan_json(const bsi_changeset *cs)
{
	json_t *doc = bsi_changeset_to_json(cs), *v;
	size_t i;

	if (!doc)
		return NULL;
	json_array_foreach(json_object_get(doc, "improvements"), i, v) {
		if (bsi_output_error_fields(v) < 0) {
			json_decref(doc);
			return NULL;
		}
	}
	if (!json_object_get(doc, "errors") && json_object_set_new(doc, "errors", json_array()) < 0) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static bool json_printed;

bool bsi_output_json_printed(void)
{
	return json_printed;
}

int bsi_output_json(FILE *f, json_t *doc)
{
	int rc = BSI_OK;

	if (f == stdout)
		json_printed = true;
	/* every document says which version of these shapes it follows */
	if (json_is_object(doc) && !json_object_get(doc, "schema") &&
	    json_object_set_new(doc, "schema", json_integer(BSI_JSON_SCHEMA)) < 0) {
		json_decref(doc);
		doc = NULL;
	}
	if (!doc || json_dumpf(doc, f, JSON_INDENT(2) | JSON_ENSURE_ASCII) < 0 || fputc('\n', f) == EOF)
		rc = bsi_error_set(BSI_EFAIL, "cannot write JSON output");
	json_decref(doc);
	return rc;
}

int bsi_output_show_plan(const bsi_cli *cli, const bsi_changeset *cs)
{
	int rc = BSI_OK, worst;

	if (cli->json)
		rc = bsi_output_json(stdout, bsi_output_plan_json(cs));
	else if (cli->verbosity >= 0)
		bsi_output_plan(stdout, cs);
	if (rc < 0)
		return rc;
	worst = bsi_changeset_worst_error(cs, NULL, NULL);
	if (worst < 0)
		return bsi_error_set(worst, "%s", "the plan has errors (see above); the other "
						  "improvements are planned as usual");
	return BSI_OK;
}
