/*
 * changeset.h - the plan as plain data.
 *
 * A change set is what the recipes of one feed tree say should happen on one
 * device: a list of improvements, each with its notes, its status on this
 * device and its recorded actions.  Recipes only *record* actions into it;
 * the preview prints it and the transaction executes exactly it.  It has a
 * single owner (whoever holds the bsi_changeset *) and crosses the process
 * boundary from the recipe sandbox as JSON (bsi_changeset_to_json /
 * bsi_changeset_from_json), so it must stay free of pointers into other
 * objects.
 */
#ifndef BSI_CHANGESET_H
#define BSI_CHANGESET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
	BSI_ACTION_REPLACE,
	BSI_ACTION_RESTART,
} bsi_action_op;

typedef struct {
	bsi_action_op op;
	char *path;    /* replace: relative to the target root */
	char *from;    /* replace: "sha256:<hex>" the device must have now */
	char *to;      /* replace: "sha256:<hex>" of the payload and the result */
	char *payload; /* replace: path of the payload in the feed tree */
	char *service; /* restart: the service name */
	int line;      /* line in the recipe file that recorded it (0 unknown) */
} bsi_action;

typedef enum {
	BSI_STATUS_PENDING,
	BSI_STATUS_APPLIED,
	BSI_STATUS_NOT_APPLICABLE,
	BSI_STATUS_HELD,
	BSI_STATUS_ROLLED_BACK,
	BSI_STATUS_OBSOLETE,
	BSI_STATUS_TAMPERED,
	BSI_STATUS_ERROR, /* its payload, `when`, target or actions are broken */
} bsi_status;

typedef struct {
	char *id;
	char *component;
	char *summary;
	char *severity;   /* low | medium | high | critical */
	char **fixes;     /* CVE ids */
	size_t nfixes;
	char **supersedes; /* ids of earlier improvements this one replaces */
	size_t nsupersedes;
	char *recipe;     /* recipe file (path in the feed tree) */
	int line;         /* line of the improvement's table in that file */
	bsi_status status;
	char *reason;     /* why not-applicable (or other status detail); may be NULL */
	bool when_false;  /* not-applicable because its `when` said so on this device */
	int error_code;   /* status error: the BSI_E* code its error exits with */
	int error_line;   /* status error: the recipe line at fault (0: none known) */
	bsi_action *actions;
	size_t nactions;
} bsi_improvement;

/* A recipe file that failed as a whole (syntax, a budget, a runtime error
 * at its top level), or a feed-wide limit: none of its improvements are
 * in the change set. */
typedef struct {
	char *file;   /* path in the feed tree */
	int line;     /* 0 when none is known */
	int code;     /* BSI_E* */
	char *reason; /* the whole message, starting "file:line:" */
} bsi_file_error;

typedef struct bsi_changeset_index bsi_changeset_index;

typedef struct {
	bsi_improvement *items;
	size_t count;
	bsi_file_error *errors;
	size_t nerrors;
	/* private: allocated slots, and the id index bsi_changeset_find keeps */
	size_t cap;
	bsi_changeset_index *index;
} bsi_changeset;

int bsi_changeset_new(bsi_changeset **out);
void bsi_changeset_free(bsi_changeset *cs);

/* Append an empty improvement (all fields NULL/0, status pending); the
 * change set owns it; the pointer is valid until the next append. */
int bsi_changeset_add(bsi_changeset *cs, bsi_improvement **out);
/* Append an action to imp; strings are copied (NULL allowed). */
int bsi_improvement_add_replace(bsi_improvement *imp, const char *path, const char *from,
				const char *to, const char *payload, int line);
int bsi_improvement_add_restart(bsi_improvement *imp, const char *service, int line);
/* Replace imp->reason with a copy of the formatted text. */
int bsi_improvement_set_reason(bsi_improvement *imp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Mark imp as in error: status error, code (BSI_E*), the recipe line at
 * fault (0: the improvement's own) and the formatted reason. */
int bsi_improvement_set_error(bsi_improvement *imp, int code, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Record a whole-file failure (strings copied). */
int bsi_changeset_add_error(bsi_changeset *cs, const char *file, int line, int code,
			    const char *reason);
/*
 * The exit code of the worst error in cs: a trust refusal (payload digest,
 * BSI_ETRUST) before a recipe error (BSI_ERECIPE) before an operational one
 * (BSI_EFAIL); 0 when there is none.  Counts every improvement and every
 * whole-file error; with only non-NULL, just the improvements only(id) says
 * yes to.
 */
int bsi_changeset_worst_error(const bsi_changeset *cs, bool (*only)(void *ctx, const char *id),
			      void *ctx);
/* The improvement with id, or NULL: hashed, so looking up every id of a
 * large feed stays linear.  Items appended since the last call are
 * indexed on the next. */
bsi_improvement *bsi_changeset_find(const bsi_changeset *cs, const char *id);

const char *bsi_status_name(bsi_status s);      /* "pending", "not-applicable", ... */
int bsi_status_parse(const char *name, bsi_status *out);

/* The full change set as JSON (new reference): {"improvements": [...]},
 * each improvement with id, component, summary, severity, fixes, supersedes,
 * recipe, line, status, reason, when_false, error_code and error_line (status
 * error), actions [{op, path, from, to, payload} | {op, service}]; and
 * "errors": [{file, line, code, reason}] when there are whole-file errors. */
json_t *bsi_changeset_to_json(const bsi_changeset *cs);
/* The inverse; refuses (BSI_EFAIL) anything not of that shape. */
int bsi_changeset_from_json(bsi_changeset **out, const json_t *doc);

#endif
