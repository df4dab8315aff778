/*
 * recipe.h - evaluate Lua recipes in a sandbox into a change set.
 *
 * Each recipe file runs in its own lua_State inside a forked child (see
 * sandbox.h): text chunks only; base (without dofile, loadfile,
 * collectgarbage, print, warn; load forced to text mode and, without an env
 * argument, to an empty environment; setmetatable refusing __gc, __close and
 * __mode; rawset refusing the bsi global), string (without dump, its
 * metatable hidden), table, math, utf8 and coroutine; no io, os, package,
 * require or debug.  A count hook enforces the CPU budget and stays tripped
 * (pcall cannot swallow it), a counting allocator the memory ceiling; the
 * child's rlimits and a wall-clock kill are the backstop.
 *
 * The global `bsi` is read-only: bsi.hash, bsi.verify, bsi.exists, bsi.read
 * and bsi.log; every path goes through fsroot.h and an escaping path is an
 * error naming file:line.  The returned table is schema-checked (unknown
 * fields are errors); `when` and `apply` run when a target root is given;
 * without one (recipe check) `when` is skipped, `apply` runs with queries
 * answering nil/false, and the result is all pending.
 *
 * Every error is BSI_ERECIPE (except I/O on the recipe file itself and
 * out-of-memory on the host side) with a message starting "file:line:" when
 * a line is known.  See docs/recipes.md.
 */
#ifndef BSI_RECIPE_H
#define BSI_RECIPE_H

#include "changeset.h"
#include "fsroot.h"
#include "sandbox.h"
#include "source.h"

#include <stddef.h>

/* mem_limit bytes of Lua heap, cpu_seconds of CPU, wall_seconds before a kill. */
typedef bsi_sandbox_limits bsi_recipe_limits;

#define BSI_RECIPE_MEM_LIMIT ((size_t)64 << 20)
#define BSI_RECIPE_CPU_SECONDS 2.0
#define BSI_RECIPE_WALL_SECONDS 10.0
/* Largest recipe file accepted. */
#define BSI_RECIPE_MAX_SIZE ((size_t)1 << 20)
/* Largest read bsi.read() does, whatever max the recipe asks for. */
#define BSI_RECIPE_READ_MAX ((size_t)64 << 10)

/* The defaults: 64 MiB, 2 s CPU, 10 s wall clock (as docs/decisions.md). */
void bsi_recipe_limits_default(bsi_recipe_limits *out);

/* Budgets for a whole feed (each file has its own bsi_recipe_limits). */
typedef struct {
	size_t max_files;        /* recipe files evaluated, in name order */
	size_t max_improvements; /* improvements in all files */
	size_t max_actions;      /* actions in all files */
	double max_seconds;      /* wall clock for all evaluations */
} bsi_recipe_feed_limits;

/* The defaults: 500 files, 5000 improvements, 20000 actions, 120 s. */
void bsi_recipe_feed_limits_default(bsi_recipe_feed_limits *out);

/*
 * Evaluate every recipe file of src (bsi_source_list_recipes) against root
 * and append the improvements to cs, in file order.  root may be NULL
 * (then like bsi_recipe_check_file: no `when`, queries answer nothing).
 * lim and feed NULL mean the defaults.  Each improvement has recipe = the
 * file's path in the feed, line, status pending, not-applicable (with the
 * reason `when` gave) or error (its `when` or `apply` raised, or its
 * entry is malformed: the reason says where), and its actions; payload
 * digests are not checked here.  bsi.log lines go to stderr.
 *
 * Faults stay where they are: a file that fails as a whole (unreadable,
 * syntax, a budget, an error at its top level), or that the feed's budgets
 * leave out, is recorded in cs->errors and the other files are evaluated
 * as usual.  An id defined twice makes the first definition an error and
 * the second an entry of cs->errors, so neither applies.  Returns an error
 * only for what stops everything (out of memory, the recipe list unreadable).
 */
int bsi_recipe_load_all(bsi_changeset *cs, const bsi_source *src, const bsi_root *root,
			const bsi_recipe_limits *lim, const bsi_recipe_feed_limits *feed);

/*
 * `bsi recipe check FILE`: evaluate the recipe file at path (on disk) with
 * no target root, schema-check it, run every `apply`, and append the result
 * to cs (all or nothing; ids must be unique against cs, so checking several
 * files into one cs also checks uniqueness across them).
 */
int bsi_recipe_check_file(bsi_changeset *cs, const char *path, const bsi_recipe_limits *lim);

/*
 * The building block of both: evaluate the recipe text (len bytes) named
 * name (used in messages and as each improvement's recipe) against root
 * (NULL: check mode) and append to cs, all or nothing.
 */
int bsi_recipe_load_buffer(bsi_changeset *cs, const char *name, const char *text, size_t len,
			   const bsi_root *root, const bsi_recipe_limits *lim);

/*
 * For fuzzing and tests only: bsi_recipe_load_buffer with the evaluation
 * the sandbox child would run done in the calling process, without the
 * fork, the rlimits and the wall-clock kill, so only the in-process
 * defences (count hook, counting allocator) bound it, and they cannot stop
 * a C function that never returns (a pathological string.find).  The
 * result still crosses JSON and is re-checked as the child's is; bsi.log
 * lines are dropped.  Never use it on a recipe from a feed.
 */
int bsi_recipe_load_buffer_in_process(bsi_changeset *cs, const char *name, const char *text,
				      size_t len, const bsi_root *root,
				      const bsi_recipe_limits *lim);

#endif
