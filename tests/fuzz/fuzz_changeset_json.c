/*
 * fuzz_changeset_json.c - libFuzzer target: arbitrary bytes as the strings
 * of a change set (ids, file names, reasons, services), through every JSON
 * step they take: bsi_changeset_to_json -> json_dumps (and bsi_output_json,
 * what `bsi plan --json` prints) -> json_loads -> bsi_changeset_from_json.
 *
 * The input is NUL-separated strings, used in order as an improvement's id,
 * component, summary, severity, a fix, recipe, reason, then a replace
 * action's path, from, to and payload, a restart's service, a supersedes
 * entry; further strings start another improvement.
 *
 * Oracle: the output is always produced and always parses back; the
 * printed form is ASCII; the change set read back has the same shape
 * (improvements, actions, fixes, supersedes); a string that is valid UTF-8
 * comes back byte for byte, any other comes back as valid UTF-8 that keeps
 * its ASCII characters in order (the rest become U+FFFD).
 */
#include "changeset.h"
#include "error.h"
#include "output.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define need(c)                                                                            \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "fuzz_changeset_json: %s\n", #c);                  \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s, n, cp, i;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (i = 1; i <= n; i++) {
			if ((s[i] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		s += n + 1;
	}
	return true;
}

/* got is what came back for want. */
static void same_string(const char *want, const char *got)
{
	const char *w = want, *g = got;

	if (want == NULL) {
		need(got == NULL);
		return;
	}
	need(got != NULL);
	need(utf8_valid((const unsigned char *)got));
	if (utf8_valid((const unsigned char *)want)) {
		need(strcmp(want, got) == 0);
		return;
	}
	/* the ASCII characters survive, in order */
	for (;;) {
		while (*w && (unsigned char)*w >= 0x80)
			w++;
		while (*g && (unsigned char)*g >= 0x80)
			g++;
		need(*w == *g);
		if (!*w)
			break;
		w++;
		g++;
	}
}

static void same_changeset(const bsi_changeset *a, const bsi_changeset *b)
{
	need(a->count == b->count && a->nerrors == b->nerrors);
	for (size_t i = 0; i < a->nerrors; i++) {
		same_string(a->errors[i].file, b->errors[i].file);
		same_string(a->errors[i].reason, b->errors[i].reason);
		need(a->errors[i].line == b->errors[i].line && a->errors[i].code == b->errors[i].code);
	}
	for (size_t i = 0; i < a->count; i++) {
		const bsi_improvement *x = &a->items[i], *y = &b->items[i];

		same_string(x->id, y->id);
		same_string(x->component, y->component);
		same_string(x->summary, y->summary);
		same_string(x->severity, y->severity);
		same_string(x->recipe, y->recipe);
		same_string(x->reason, y->reason);
		need(x->line == y->line && x->status == y->status);
		need(x->status != BSI_STATUS_ERROR ||
		     (x->error_code == y->error_code && x->error_line == y->error_line));
		need(x->nfixes == y->nfixes && x->nsupersedes == y->nsupersedes);
		for (size_t k = 0; k < x->nfixes; k++)
			same_string(x->fixes[k], y->fixes[k]);
		for (size_t k = 0; k < x->nsupersedes; k++)
			same_string(x->supersedes[k], y->supersedes[k]);
		need(x->nactions == y->nactions);
		for (size_t k = 0; k < x->nactions; k++) {
			const bsi_action *p = &x->actions[k], *q = &y->actions[k];

			need(p->op == q->op && p->line == q->line);
			same_string(p->path, q->path);
			same_string(p->from, q->from);
			same_string(p->to, q->to);
			same_string(p->payload, q->payload);
			same_string(p->service, q->service);
		}
	}
}

static char **push(char **v, size_t *n, const char *s)
{
	char **nv = realloc(v, (*n + 1) * sizeof(*nv));

	need(nv != NULL);
	nv[*n] = strdup(s);
	need(nv[*n] != NULL);
	(*n)++;
	return nv;
}

/* Round-trip a serialized change set and compare it with cs. */
static void round_trip(const bsi_changeset *cs, const char *text, size_t len)
{
	json_error_t err;
	json_t *back = json_loadb(text, len, 0, &err);
	bsi_changeset *got = NULL;

	if (!back)
		fprintf(stderr, "not JSON (%s at %d): %.*s\n", err.text, err.position, (int)len,
			text);
	need(back != NULL);
	need(bsi_changeset_from_json(&got, back) == 0);
	same_changeset(cs, got);
	bsi_changeset_free(got);
	json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *p, *end, *text, *printed = NULL;
	const char *f[13];
	bsi_changeset *cs = NULL;
	json_t *doc;
	size_t nf = 0, plen = 0;
	FILE *mem;

	need(buf != NULL);
	memcpy(buf, data, size);
	buf[size] = '\0';
	need(bsi_changeset_new(&cs) == 0);
	for (p = buf, end = buf + size; p <= end && cs->count < 8;) {
		bsi_improvement *imp;

		for (nf = 0; nf < 13 && p <= end; nf++) {
			f[nf] = p;
			p += strlen(p) + 1;
		}
		while (nf < 13)
			f[nf++] = NULL;
		need(bsi_changeset_add(cs, &imp) == 0);
		imp->id = f[0] ? strdup(f[0]) : NULL;
		imp->component = f[1] ? strdup(f[1]) : NULL;
		imp->summary = f[2] ? strdup(f[2]) : NULL;
		imp->severity = f[3] ? strdup(f[3]) : NULL;
		if (f[4])
			imp->fixes = push(imp->fixes, &imp->nfixes, f[4]);
		imp->recipe = f[5] ? strdup(f[5]) : NULL;
		if (f[6])
			need(bsi_improvement_set_reason(imp, "%s", f[6]) == 0);
		imp->line = (int)(size % 1000);
		imp->status = (bsi_status)(cs->count % (BSI_STATUS_ERROR + 1));
		if (imp->status == BSI_STATUS_ERROR) {
			imp->error_code = -(int)(1 + size % 5);
			imp->error_line = (int)(size % 97);
			/* a whole-file error beside it */
			need(bsi_changeset_add_error(cs, f[5] ? f[5] : "", (int)(size % 89),
						     imp->error_code, f[6] ? f[6] : "") == 0);
		}
		if (f[7])
			need(bsi_improvement_add_replace(imp, f[7], f[8], f[9], f[10], 3) == 0);
		if (f[11])
			need(bsi_improvement_add_restart(imp, f[11], 4) == 0);
		if (f[12])
			imp->supersedes = push(imp->supersedes, &imp->nsupersedes, f[12]);
	}

	/* the child -> parent path: compact JSON */
	doc = bsi_changeset_to_json(cs);
	need(doc != NULL);
	text = json_dumps(doc, JSON_COMPACT);
	need(text != NULL);
	round_trip(cs, text, strlen(text));
	free(text);

	/* what `bsi plan --json` prints: ASCII only */
	mem = open_memstream(&printed, &plen);
	need(mem != NULL);
	need(bsi_output_json(mem, doc) == 0); /* steals doc */
	need(fclose(mem) == 0);
	for (size_t i = 0; i < plen; i++)
		need((unsigned char)printed[i] < 0x80);
	round_trip(cs, printed, plen);
	free(printed);

	bsi_changeset_free(cs);
	free(buf);
	return 0;
}
