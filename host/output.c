#include "output.h"

#include "error.h"

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
	size_t counts[BSI_STATUS_TAMPERED + 1] = {0};

	for (size_t i = 0; i < cs->count; i++) {
		const bsi_improvement *imp = &cs->items[i];
		char a[16], b[16];

		counts[imp->status]++;
		fprintf(f, "%s %s [%s] %s\n", imp->component, imp->id, imp->severity,
			bsi_status_name(imp->status));
		if (imp->summary)
			fprintf(f, "    %s\n", imp->summary);
		if (imp->nfixes > 0) {
			fprintf(f, "    fixes:");
			for (size_t k = 0; k < imp->nfixes; k++)
				fprintf(f, " %s", imp->fixes[k]);
			fputc('\n', f);
		}
		if (imp->reason)
			fprintf(f, "    reason: %s\n", imp->reason);
		for (size_t k = 0; k < imp->nactions; k++) {
			const bsi_action *act = &imp->actions[k];

			if (act->op == BSI_ACTION_REPLACE)
				fprintf(f, "    replace %s  %s -> %s\n", act->path,
					short_digest(act->from, a), short_digest(act->to, b));
			else
				fprintf(f, "    restart %s\n", act->service);
		}
	}
	fprintf(f, "%zu improvement%s: %zu pending, %zu applied, %zu not applicable\n", cs->count,
		cs->count == 1 ? "" : "s", counts[BSI_STATUS_PENDING], counts[BSI_STATUS_APPLIED],
		counts[BSI_STATUS_NOT_APPLICABLE]);
}

json_t *bsi_output_plan_json(const bsi_changeset *cs)
{
	json_t *doc = bsi_changeset_to_json(cs);

	return doc;
}

int bsi_output_json(FILE *f, json_t *doc)
{
	int rc = BSI_OK;

	if (!doc || json_dumpf(doc, f, JSON_INDENT(2) | JSON_ENSURE_ASCII) < 0 || fputc('\n', f) == EOF)
		rc = bsi_error_set(BSI_EFAIL, "cannot write JSON output");
	json_decref(doc);
	return rc;
}
