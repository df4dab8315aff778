#include "changeset.h"

#include "error.h"
#include "text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
	[BSI_STATUS_PENDING] = "pending",
	[BSI_STATUS_APPLIED] = "applied",
	[BSI_STATUS_NOT_APPLICABLE] = "not-applicable",
	[BSI_STATUS_HELD] = "held",
	[BSI_STATUS_ROLLED_BACK] = "rolled-back",
	[BSI_STATUS_OBSOLETE] = "obsolete",
	[BSI_STATUS_TAMPERED] = "tampered",
	[BSI_STATUS_ERROR] = "error",
};

/* Open addressing over item indexes + 1 (0: empty); at most half full. */
struct bsi_changeset_index {
	size_t *slots;
	size_t mask;    /* slots - 1, a power of two minus one */
	size_t indexed; /* items [0, indexed) are in the table */
};

const char *bsi_status_name(bsi_status s)
{
	if ((size_t)s < sizeof(status_names) / sizeof(status_names[0]))
		return status_names[s];
	return "unknown";
}

int bsi_status_parse(const char *name, bsi_status *out)
{
	for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++) {
		if (name && strcmp(name, status_names[i]) == 0) {
			*out = (bsi_status)i;
			return BSI_OK;
		}
	}
	return bsi_error_set(BSI_EFAIL, "unknown status \"%s\"", name ? name : "(null)");
}

int bsi_changeset_new(bsi_changeset **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? BSI_OK : bsi_error_set(BSI_EFAIL, "out of memory");
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void improvement_clear(bsi_improvement *imp)
{
	free(imp->id);
	free(imp->component);
	free(imp->summary);
	free(imp->severity);
	free_strv(imp->fixes, imp->nfixes);
	free_strv(imp->supersedes, imp->nsupersedes);
	free(imp->recipe);
	free(imp->reason);
	for (size_t i = 0; i < imp->nactions; i++) {
		bsi_action *a = &imp->actions[i];

		free(a->path);
		free(a->from);
		free(a->to);
		free(a->payload);
		free(a->service);
	}
	free(imp->actions);
}

static void index_free(bsi_changeset_index *ix)
{
	if (ix)
		free(ix->slots);
	free(ix);
}

void bsi_changeset_free(bsi_changeset *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < cs->count; i++)
		improvement_clear(&cs->items[i]);
	free(cs->items);
	for (size_t i = 0; i < cs->nerrors; i++) {
		free(cs->errors[i].file);
		free(cs->errors[i].reason);
	}
	free(cs->errors);
	index_free(cs->index);
	free(cs);
}

/* Room for one more of n elements of size each at *v with capacity *cap:
 * doubling, so appending n elements costs O(n). */
static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t want = *cap ? *cap * 2 : 8;
	void *p;

	if (n < *cap)
		return BSI_OK;
	if (want > SIZE_MAX / size / 2 || !(p = realloc(*v, want * size)))
		return bsi_error_set(BSI_EFAIL, "out of memory");
	*v = p;
	*cap = want;
	return BSI_OK;
}

int bsi_changeset_add(bsi_changeset *cs, bsi_improvement **out)
{
	void *items = cs->items;
	int rc;

	*out = NULL;
	/* a change set built by hand (cap 0) may hold items already */
	if (cs->cap < cs->count)
		cs->cap = cs->count;
	if ((rc = grow(&items, &cs->cap, cs->count, sizeof(*cs->items))) < 0)
		return rc;
	cs->items = items;
	memset(&cs->items[cs->count], 0, sizeof(cs->items[0]));
	*out = &cs->items[cs->count++];
	return BSI_OK;
}

int bsi_changeset_add_error(bsi_changeset *cs, const char *file, int line, int code,
			    const char *reason)
{
	bsi_file_error *e;
	size_t cap = cs->nerrors; /* exact size: few, and appended rarely */
	void *v = cs->errors;
	int rc = grow(&v, &cap, cs->nerrors, sizeof(*e));

	if (rc < 0)
		return rc;
	cs->errors = v;
	e = &cs->errors[cs->nerrors];
	e->file = strdup(file ? file : "");
	e->reason = strdup(reason ? reason : "");
	e->line = line;
	e->code = code;
	if (!e->file || !e->reason) {
		free(e->file);
		free(e->reason);
		return bsi_error_set(BSI_EFAIL, "out of memory");
	}
	bsi_text_clean(e->reason, strlen(e->reason) + 1, e->reason, strlen(e->reason));
	cs->nerrors++;
	return BSI_OK;
}

/* strdup that keeps NULL and reports failure through *ok. */
static char *dup_or_null(const char *s, int *ok)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*ok = 0;
	return d;
}

static int add_action(bsi_improvement *imp, const bsi_action *a)
{
	bsi_action *acts, *n;
	int ok = 1;

	/* doubling at powers of two: the capacity is implied by nactions */
	if ((imp->nactions & (imp->nactions - 1)) == 0) {
		acts = realloc(imp->actions, (imp->nactions ? imp->nactions * 2 : 1) * sizeof(*acts));
		if (!acts)
			return bsi_error_set(BSI_EFAIL, "out of memory");
		imp->actions = acts;
	}
	acts = imp->actions;
	n = &acts[imp->nactions];
	memset(n, 0, sizeof(*n));
	n->op = a->op;
	n->line = a->line;
	n->path = dup_or_null(a->path, &ok);
	n->from = dup_or_null(a->from, &ok);
	n->to = dup_or_null(a->to, &ok);
	n->payload = dup_or_null(a->payload, &ok);
	n->service = dup_or_null(a->service, &ok);
	imp->nactions++; /* counted even on failure so improvement_clear frees it */
	return ok ? BSI_OK : bsi_error_set(BSI_EFAIL, "out of memory");
}

int bsi_improvement_add_replace(bsi_improvement *imp, const char *path, const char *from,
				const char *to, const char *payload, int line)
{
	bsi_action a = {.op = BSI_ACTION_REPLACE, .path = (char *)path, .from = (char *)from,
			.to = (char *)to, .payload = (char *)payload, .line = line};

	return add_action(imp, &a);
}

int bsi_improvement_add_restart(bsi_improvement *imp, const char *service, int line)
{
	bsi_action a = {.op = BSI_ACTION_RESTART, .service = (char *)service, .line = line};

	return add_action(imp, &a);
}

int bsi_improvement_set_reason(bsi_improvement *imp, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	bsi_text_clean(s, (size_t)n + 1, s, (size_t)n); /* file names, a `when`'s words */
	free(imp->reason);
	imp->reason = s;
	return BSI_OK;
}

int bsi_improvement_set_error(bsi_improvement *imp, int code, int line, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	bsi_text_clean(s, (size_t)n + 1, s, (size_t)n);
	free(imp->reason);
	imp->reason = s;
	imp->status = BSI_STATUS_ERROR;
	imp->error_code = code < 0 ? code : BSI_EFAIL;
	imp->error_line = line;
	imp->when_false = false;
	return BSI_OK;
}

int bsi_changeset_worst_error(const bsi_changeset *cs, bool (*only)(void *ctx, const char *id),
			      void *ctx)
{
	int worst = BSI_OK;

	for (size_t i = 0; !only && i < cs->nerrors; i++)
		worst = bsi_error_worse(worst, cs->errors[i].code);
	for (size_t i = 0; i < cs->count; i++) {
		const bsi_improvement *imp = &cs->items[i];

		if (imp->status == BSI_STATUS_ERROR && (!only || only(ctx, imp->id)))
			worst = bsi_error_worse(worst, imp->error_code);
	}
	return worst;
}

static size_t id_hash(const char *s)
{
	size_t h = 1469598103934665603u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

/* Put item i into the table (which has room). */
static void index_put(bsi_changeset_index *ix, const bsi_changeset *cs, size_t i)
{
	size_t h = id_hash(cs->items[i].id) & ix->mask;

	while (ix->slots[h])
		h = (h + 1) & ix->mask;
	ix->slots[h] = i + 1;
}

/* Bring the index up to the items appended since; false when it cannot
 * (out of memory: the caller searches linearly).  Indexing stops at an item
 * without an id yet (added, not filled in), to be taken up next time. */
static bool index_update(bsi_changeset *cs)
{
	bsi_changeset_index *ix = cs->index;

	if (!ix && !(ix = cs->index = calloc(1, sizeof(*ix))))
		return false;
	if (ix->indexed > cs->count) { /* items were taken away: start over */
		free(ix->slots);
		memset(ix, 0, sizeof(*ix));
	}
	if (!ix->slots || (cs->count + 1) * 2 > ix->mask + 1) {
		size_t n = 64;
		size_t *slots;

		while (n < (cs->count + 1) * 2)
			n *= 2;
		if (!(slots = calloc(n, sizeof(*slots))))
			return false;
		free(ix->slots);
		ix->slots = slots;
		ix->mask = n - 1;
		for (size_t i = 0; i < ix->indexed; i++)
			index_put(ix, cs, i);
	}
	while (ix->indexed < cs->count && cs->items[ix->indexed].id)
		index_put(ix, cs, ix->indexed++);
	return true;
}

bsi_improvement *bsi_changeset_find(const bsi_changeset *ccs, const char *id)
{
	bsi_changeset *cs = (bsi_changeset *)ccs; /* the index is a cache */
	size_t from = 0;

	if (cs->count >= 16 && index_update(cs)) {
		bsi_changeset_index *ix = cs->index;

		for (size_t h = id_hash(id) & ix->mask; ix->slots[h]; h = (h + 1) & ix->mask) {
			bsi_improvement *imp = &cs->items[ix->slots[h] - 1];

			if (imp->id && strcmp(imp->id, id) == 0)
				return imp;
		}
		from = ix->indexed;
	}
	for (size_t i = from; i < cs->count; i++)
		if (cs->items[i].id && strcmp(cs->items[i].id, id) == 0)
			return &cs->items[i];
	return NULL;
}

/* --- JSON ------------------------------------------------------------------ */

/* A JSON string for s; bytes that are not UTF-8 (a file name can hold any)
 * become U+FFFD, so output never fails and never emits invalid JSON.
 * Recipes are refused before this when their strings are not UTF-8. */
static json_t *str_or_null(const char *s)
{
	json_t *j;
	char *clean;
	size_t o = 0;

	if (!s)
		return json_null();
	if ((j = json_string(s)))
		return j;
	clean = malloc(strlen(s) * 3 + 1);
	if (!clean)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x80) {
			clean[o++] = (char)*p;
		} else {
			memcpy(clean + o, "\xEF\xBF\xBD", 3);
			o += 3;
		}
	}
	clean[o] = '\0';
	j = json_string(clean);
	free(clean);
	return j;
}

/* Append v (stolen) to array a; on failure (v NULL, out of memory) drop
 * a and return NULL, so a partial document never stands for a whole one. */
static json_t *append(json_t *a, json_t *v)
{
	if (a && v && json_array_append_new(a, v) == 0)
		return a;
	json_decref(a);
	json_decref(v);
	return NULL;
}

/* A list of strings, each as str_or_null makes it: json_string() alone
 * returns NULL for bytes that are not UTF-8, and the append then dropped
 * that entry silently (found by fuzz_changeset_json).  NULL on failure. */
static json_t *strv_to_json(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		a = append(a, str_or_null(v[i]));
	return a;
}

static json_t *action_to_json(const bsi_action *a)
{
	if (a->op == BSI_ACTION_RESTART)
		return json_pack("{s:s, s:o, s:i}", "op", "restart", "service",
				 str_or_null(a->service), "line", a->line);
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:i}", "op", "replace", "path",
			 str_or_null(a->path), "from", str_or_null(a->from), "to",
			 str_or_null(a->to), "payload", str_or_null(a->payload), "line", a->line);
}

/*
 * The change set as one JSON document, or NULL when any part of it could
 * not be made (out of memory): never a document with an action or an
 * improvement missing, which would read back as a smaller change set.
 * (json_pack consumes its "o" arguments also when it fails, and fails on
 * a NULL one.)
 */
json_t *bsi_changeset_to_json(const bsi_changeset *cs)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < cs->count; i++) {
		const bsi_improvement *imp = &cs->items[i];
		json_t *acts = json_array();

		for (size_t j = 0; acts && j < imp->nactions; j++)
			acts = append(acts, action_to_json(&imp->actions[j]));
		json_t *j = json_pack(
			"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:s, s:o, s:b, s:o}", "id",
			str_or_null(imp->id), "component", str_or_null(imp->component), "summary",
			str_or_null(imp->summary), "severity", str_or_null(imp->severity), "fixes",
			strv_to_json(imp->fixes, imp->nfixes), "supersedes",
			strv_to_json(imp->supersedes, imp->nsupersedes), "recipe",
			str_or_null(imp->recipe), "line", imp->line, "status",
			bsi_status_name(imp->status), "reason", str_or_null(imp->reason),
			"when_false", imp->when_false, "actions", acts);

		if (j && imp->status == BSI_STATUS_ERROR &&
		    (json_object_set_new(j, "code",
					 json_integer(bsi_error_exit_status(imp->error_code))) < 0 ||
		     json_object_set_new(j, "error_line", json_integer(imp->error_line)) < 0)) {
			json_decref(j);
			j = NULL;
		}
		list = append(list, j);
	}
	if (list && cs->nerrors > 0) {
		json_t *errors = json_array();

		for (size_t i = 0; errors && i < cs->nerrors; i++) {
			const bsi_file_error *e = &cs->errors[i];

			errors = append(errors, json_pack("{s:o, s:i, s:i, s:o}", "file",
							  str_or_null(e->file), "line", e->line,
							  "code", bsi_error_exit_status(e->code),
							  "reason", str_or_null(e->reason)));
		}
		return errors ? json_pack("{s:o, s:o}", "improvements", list, "errors", errors)
			      : (json_decref(list), NULL);
	}
	return list ? json_pack("{s:o}", "improvements", list) : NULL;
}

/* Copy an optional string member; false if present but not a string. */
static int get_str(const json_t *obj, const char *key, char **out)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return BSI_OK;
	if (!json_is_string(v))
		return bsi_error_set(BSI_ERECIPE, "change set: \"%s\" is not a string", key);
	*out = strdup(json_string_value(v));
	return *out ? BSI_OK : bsi_error_set(BSI_EFAIL, "out of memory");
}

static int get_strv(const json_t *obj, const char *key, char ***out, size_t *out_n)
{
	const json_t *v = json_object_get(obj, key);
	size_t n;

	*out = NULL;
	*out_n = 0;
	if (!v || json_is_null(v))
		return BSI_OK;
	if (!json_is_array(v))
		return bsi_error_set(BSI_ERECIPE, "change set: \"%s\" is not a list", key);
	n = json_array_size(v);
	if (n == 0)
		return BSI_OK;
	*out = calloc(n, sizeof(char *));
	if (!*out)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const json_t *s = json_array_get(v, i);

		if (!json_is_string(s))
			return bsi_error_set(BSI_ERECIPE, "change set: \"%s\" holds a non-string", key);
		if (!((*out)[i] = strdup(json_string_value(s))))
			return bsi_error_set(BSI_EFAIL, "out of memory");
		(*out_n)++;
	}
	return BSI_OK;
}

static int action_from_json(bsi_improvement *imp, const json_t *j)
{
	bsi_action a = {0};
	const char *op = json_string_value(json_object_get(j, "op"));
	const json_t *line = json_object_get(j, "line");
	int rc;

	if (!json_is_object(j) || !op)
		return bsi_error_set(BSI_ERECIPE, "change set: an action without \"op\"");
	a.line = json_is_integer(line) ? (int)json_integer_value(line) : 0;
	if (strcmp(op, "restart") == 0) {
		a.op = BSI_ACTION_RESTART;
		rc = get_str(j, "service", &a.service);
	} else if (strcmp(op, "replace") == 0) {
		a.op = BSI_ACTION_REPLACE;
		rc = get_str(j, "path", &a.path);
		if (rc == 0)
			rc = get_str(j, "from", &a.from);
		if (rc == 0)
			rc = get_str(j, "to", &a.to);
		if (rc == 0)
			rc = get_str(j, "payload", &a.payload);
	} else {
		rc = bsi_error_set(BSI_ERECIPE, "change set: unknown action \"%s\"", op);
	}
	if (rc == 0)
		rc = add_action(imp, &a);
	free(a.path);
	free(a.from);
	free(a.to);
	free(a.payload);
	free(a.service);
	return rc;
}

int bsi_changeset_from_json(bsi_changeset **out, const json_t *doc)
{
	const json_t *list = json_object_get(doc, "improvements");
	bsi_changeset *cs = NULL;
	int rc;

	*out = NULL;
	if (!json_is_array(list))
		return bsi_error_set(BSI_ERECIPE, "change set: no \"improvements\" list");
	rc = bsi_changeset_new(&cs);
	for (size_t i = 0; rc == 0 && i < json_array_size(list); i++) {
		const json_t *j = json_array_get(list, i), *acts, *line;
		const char *status;
		bsi_improvement *imp;

		if (!json_is_object(j)) {
			rc = bsi_error_set(BSI_ERECIPE, "change set: improvement is not an object");
			break;
		}
		rc = bsi_changeset_add(cs, &imp);
		if (rc < 0)
			break; /* no imp: the code below would write through NULL */
		rc = get_str(j, "id", &imp->id);
		if (rc == 0)
			rc = get_str(j, "component", &imp->component);
		if (rc == 0)
			rc = get_str(j, "summary", &imp->summary);
		if (rc == 0)
			rc = get_str(j, "severity", &imp->severity);
		if (rc == 0)
			rc = get_strv(j, "fixes", &imp->fixes, &imp->nfixes);
		if (rc == 0)
			rc = get_strv(j, "supersedes", &imp->supersedes, &imp->nsupersedes);
		if (rc == 0)
			rc = get_str(j, "recipe", &imp->recipe);
		if (rc == 0)
			rc = get_str(j, "reason", &imp->reason);
		status = json_string_value(json_object_get(j, "status"));
		if (rc == 0 && status)
			rc = bsi_status_parse(status, &imp->status);
		imp->when_false = json_is_true(json_object_get(j, "when_false"));
		line = json_object_get(j, "line");
		imp->line = json_is_integer(line) ? (int)json_integer_value(line) : 0;
		if (imp->status == BSI_STATUS_ERROR) {
			json_int_t code = json_integer_value(json_object_get(j, "code"));

			imp->error_code = code >= 1 && code <= 5 ? -(int)code : BSI_EFAIL;
			imp->error_line =
				(int)json_integer_value(json_object_get(j, "error_line"));
		}
		acts = json_object_get(j, "actions");
		if (rc == 0 && acts && !json_is_array(acts))
			rc = bsi_error_set(BSI_ERECIPE, "change set: \"actions\" is not a list");
		for (size_t k = 0; rc == 0 && k < json_array_size(acts); k++)
			rc = action_from_json(imp, json_array_get(acts, k));
	}
	list = json_object_get(doc, "errors");
	for (size_t i = 0; rc == 0 && i < json_array_size(list); i++) {
		const json_t *e = json_array_get(list, i);
		json_int_t code = json_integer_value(json_object_get(e, "code"));

		rc = bsi_changeset_add_error(cs, json_string_value(json_object_get(e, "file")),
					     (int)json_integer_value(json_object_get(e, "line")),
					     code >= 1 && code <= 5 ? -(int)code : BSI_EFAIL,
					     json_string_value(json_object_get(e, "reason")));
	}
	if (rc == 0)
		*out = cs;
	else
		bsi_changeset_free(cs);
	return rc;
}
