/*
 * sandbox.h - run a piece of untrusted evaluation in a forked, limited child.
 *
 * The recipe engine's in-process defences (a Lua count hook, a counting
 * allocator) cannot stop a C function that runs for ever (a pathological
 * string.find) or a bug below Lua.  So the evaluation runs in a child
 * process with setrlimit limits (CPU seconds, address space, no core, no
 * file writes), only the descriptors it needs, no new privileges, and a
 * parent that kills it after a wall-clock deadline.  The child hands its
 * result back as one JSON document over a pipe; the parent bounds what it
 * reads, always reaps the child, and turns a killed or crashed child into a
 * BSI_ERECIPE naming the label and the limit that was hit.
 */
#ifndef BSI_SANDBOX_H
#define BSI_SANDBOX_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
	size_t mem_limit;    /* bytes of heap the evaluation may use */
	double cpu_seconds;  /* CPU time budget */
	double wall_seconds; /* wall-clock time before the parent kills the child */
} bsi_sandbox_limits;

/* Largest JSON document the parent accepts from a child. */
#define BSI_SANDBOX_MAX_OUTPUT ((size_t)16 << 20)

/*
 * The work done in the child.  Returns 0 with *out set to a JSON document
 * (a new reference), or a negative BSI_E* code with bsi_error_message() set;
 * on failure it may still set *out (for example to carry log lines), which
 * then reaches the caller of bsi_sandbox_run too.
 */
typedef int (*bsi_sandbox_fn)(json_t **out, void *arg);

/*
 * Run fn(arg) in a forked child under lim.  keep_fds lists the descriptors
 * (besides 0-2) the child needs; every other inherited descriptor is closed
 * in the child before fn runs.  label names the evaluation in messages
 * ("recipes/webkit.lua").
 *
 * Returns fn's code and message.  *out receives the document fn produced
 * (caller owns it), also on failure when fn produced one; otherwise NULL.
 * A child killed by a limit, crashed, or producing too much or malformed
 * output is BSI_ERECIPE: "<label>: CPU budget of 2 s exceeded",
 * "<label>: killed after 5 s wall clock", ...
 */
int bsi_sandbox_run(json_t **out, bsi_sandbox_fn fn, void *arg, const int *keep_fds,
		    size_t nkeep, const bsi_sandbox_limits *lim, const char *label);

/* Format a byte count for messages: "64 MiB", "512 KiB", "1000 bytes". */
void bsi_sandbox_format_size(char *buf, size_t cap, size_t bytes);

#endif
