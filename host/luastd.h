/*
 * luastd.h - the parts of Lua's standard library that recipes get in a
 * deterministic form.
 *
 * What is previewed must be what is applied: the same recipes at the same
 * commit on the same device yield the same change set, in every process.
 * Stock Lua 5.4 breaks that in a few places: string keys are hashed with a
 * seed made from the time and addresses, so `pairs` and `next` visit them in
 * an order that changes from run to run; `tostring` and `%s`/`%p` of a
 * table, function, thread or userdata print its address; `math.random` is
 * seeded from the time; and `table.sort` picks some pivots from the clock,
 * which can reorder elements its comparator calls equal.  This module
 * replaces exactly those, in a state already holding the base, string,
 * table and math libraries:
 *
 *   next, pairs   visit keys in one order: false, true, then numbers in
 *                 ascending order, then strings bytewise.  A key of another
 *                 type (a table, a function) has no such order and is an
 *                 error; `__pairs` is honoured as in Lua.
 *   tostring      for a value without __tostring, the type (or __name)
 *                 without an address: "table", "function".
 *   string.format the same for %s; %p is refused.
 *   math.random   seeded with 0 when the state opens; math.randomseed()
 *                 without an argument seeds with 0 again.
 *   table.sort    a stable merge sort: equal elements keep their order.
 */
#ifndef BSI_LUASTD_H
#define BSI_LUASTD_H

#include <lua.h>

/* [-0, +0, e] Install the deterministic functions over the stock ones. */
void bsi_luastd_open(lua_State *L);

#endif
