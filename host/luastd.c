/* luastd.c - a deterministic next, pairs, tostring, string.format,
 * math.random and table.sort for recipes; see luastd.h. */
#include "luastd.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- one order for table keys ---- */

/* A key as the sort sees it; strings point into the key, which a table of
 * the keys keeps alive while the sort runs. */
typedef struct {
	int rank; /* 0 boolean, 1 number, 2 string */
	bool is_int;
	lua_Integer i;
	lua_Number n;
	const char *s;
	size_t len;
} key_view;

/* View the key at idx; raises for a key that has no stable order. */
static void view_key(lua_State *L, int idx, key_view *out, const char *fn)
{
	memset(out, 0, sizeof(*out));
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		out->rank = 0;
		out->i = lua_toboolean(L, idx);
		out->is_int = true;
		return;
	case LUA_TNUMBER:
		out->rank = 1;
		out->is_int = lua_isinteger(L, idx);
		if (out->is_int)
			out->i = lua_tointeger(L, idx);
		else
			out->n = lua_tonumber(L, idx);
		return;
	case LUA_TSTRING:
		out->rank = 2;
		out->s = lua_tolstring(L, idx, &out->len);
		return;
	default:
		/* the message names no type: which such key lua_next meets
		 * first changes from run to run */
		luaL_error(L,
			   "%s: a table with a key that is not a boolean, number or string has "
			   "no stable order in recipes; use a list (ipairs) or keys that are "
			   "strings or numbers",
			   fn);
	}
}

/* An integer against a float key: float keys with an integer value within
 * lua_Integer's range are stored as integers, so equal doubles can only mean
 * a float just past the largest integer. */
static int cmp_int_float(lua_Integer i, lua_Number f)
{
	lua_Number d = (lua_Number)i;

	if (d < f)
		return -1;
	if (d > f)
		return 1;
	return f > 0 ? -1 : 1;
}

static int cmp_keys(const key_view *a, const key_view *b)
{
	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	if (a->rank == 2) {
		size_t n = a->len < b->len ? a->len : b->len;
		int c = memcmp(a->s, b->s, n);

		return c ? c : (a->len < b->len ? -1 : a->len > b->len);
	}
	if (a->is_int && b->is_int)
		return a->i < b->i ? -1 : a->i > b->i;
	if (!a->is_int && !b->is_int)
		return a->n < b->n ? -1 : a->n > b->n;
	return a->is_int ? cmp_int_float(a->i, b->n) : -cmp_int_float(b->i, a->n);
}

static int cmp_views(const void *a, const void *b)
{
	return cmp_keys(a, b);
}

/*
 * [-0, +1, e] Push a list of the keys of the table at t in the one order.
 * The views live in a userdata, so the memory ceiling counts them and an
 * error frees them.
 */
static lua_Integer sorted_keys(lua_State *L, int t, const char *fn)
{
	lua_Integer n = 0;
	key_view *views;
	int keys;

	t = lua_absindex(L, t);
	lua_newtable(L);
	keys = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, t) != 0) {
		key_view v;

		lua_pop(L, 1);
		view_key(L, -1, &v, fn);
		lua_pushvalue(L, -1);
		lua_rawseti(L, keys, ++n);
	}
	views = lua_newuserdatauv(L, (size_t)n * sizeof(*views) + 1, 1);
	lua_pushvalue(L, keys); /* keeps the strings the views point into */
	lua_setiuservalue(L, -2, 1);
	for (lua_Integer i = 0; i < n; i++) {
		lua_rawgeti(L, keys, i + 1);
		view_key(L, -1, &views[i], fn);
		lua_pop(L, 1);
	}
	qsort(views, (size_t)n, sizeof(*views), cmp_views);
	lua_newtable(L);
	for (lua_Integer i = 0; i < n; i++) {
		const key_view *v = &views[i];

		if (v->rank == 0)
			lua_pushboolean(L, (int)v->i);
		else if (v->rank == 1 && v->is_int)
			lua_pushinteger(L, v->i);
		else if (v->rank == 1)
			lua_pushnumber(L, v->n);
		else
			lua_pushlstring(L, v->s, v->len);
		lua_rawseti(L, -2, i + 1);
	}
	lua_replace(L, keys);
	lua_pop(L, 1); /* the views */
	return n;
}

/* [-(1|2), +(1|2), e] next(t [, k]): the key after k in the one order (the
 * first for nil), with its value; nil at the end.  O(n) a call: `pairs`
 * is the fast way to walk a table. */
static int l_luastd_next(lua_State *L)
{
	key_view after, best, v;
	bool have = false;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 3); /* 3: the best key so far, which keeps best.s alive */
	if (!lua_isnil(L, 2))
		view_key(L, 2, &after, "next");
	lua_pushnil(L);
	while (lua_next(L, 1) != 0) {
		lua_pop(L, 1);
		view_key(L, -1, &v, "next");
		if ((lua_isnil(L, 2) || cmp_keys(&v, &after) > 0) && (!have || cmp_keys(&v, &best) < 0)) {
			best = v;
			have = true;
			lua_pushvalue(L, -1);
			lua_replace(L, 3);
		}
	}
	if (!have) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushvalue(L, 3);
	lua_rawget(L, 1);
	return 2;
}

/* [-2, +(0|2), -] The iterator pairs returns: upvalues the table, its keys
 * in order and the position reached.  A key whose value became nil since
 * (a recipe may clear fields while it walks) is skipped. */
static int l_luastd_pairs_step(lua_State *L)
{
	lua_Integer pos = lua_tointeger(L, lua_upvalueindex(3));

	for (;;) {
		pos++;
		if (lua_rawgeti(L, lua_upvalueindex(2), pos) == LUA_TNIL)
			return 0;
		lua_pushvalue(L, -1);
		if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
			break;
		lua_pop(L, 2);
	}
	lua_pushinteger(L, pos);
	lua_replace(L, lua_upvalueindex(3));
	return 2;
}

/* [-1, +3, e] pairs(t): __pairs as in Lua, else the keys in the one order. */
static int l_luastd_pairs(lua_State *L)
{
	luaL_checkany(L, 1);
	if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) {
		lua_pushvalue(L, 1);
		lua_call(L, 1, 3);
		return 3;
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushvalue(L, 1);
	sorted_keys(L, 1, "pairs");
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, l_luastd_pairs_step, 3);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

/* ---- values as text, without addresses ---- */

/* Would tostring print an address for the value at idx? */
static bool shows_address(lua_State *L, int idx)
{
	int t = lua_type(L, idx);

	if (t != LUA_TTABLE && t != LUA_TFUNCTION && t != LUA_TUSERDATA && t != LUA_TTHREAD &&
	    t != LUA_TLIGHTUSERDATA)
		return false;
	if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
		lua_pop(L, 1);
		return false;
	}
	return true;
}

/* [-0, +1, -] The text for a value shows_address() said yes to. */
static void push_typename(lua_State *L, int idx)
{
	int t = luaL_getmetafield(L, idx, "__name");

	if (t == LUA_TSTRING)
		return;
	if (t != LUA_TNIL)
		lua_pop(L, 1);
	lua_pushstring(L, luaL_typename(L, idx));
}

/* [-1, +1, e] tostring(v) */
static int l_luastd_tostring(lua_State *L)
{
	luaL_checkany(L, 1);
	lua_settop(L, 1);
	if (shows_address(L, 1)) {
		push_typename(L, 1);
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

/* [-(1..), +1, e] string.format(fmt, ...): %p refused; a value whose %s
 * would show an address shows its type instead. */
static int l_luastd_format(lua_State *L)
{
	size_t len;
	const char *fmt = luaL_checklstring(L, 1, &len), *end = fmt + len;
	int n = lua_gettop(L);

	for (const char *p = fmt; p < end; p++) {
		if (*p != '%')
			continue;
		if (++p < end && *p == '%')
			continue;
		while (p < end && strchr("-+ #0123456789.", *p))
			p++;
		if (p < end && *p == 'p')
			return luaL_error(L, "string.format: %%p is not allowed in recipes (an "
					     "address differs from run to run)");
	}
	for (int i = 2; i <= n; i++) {
		if (!shows_address(L, i))
			continue;
		push_typename(L, i);
		lua_replace(L, i);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, 1);
	return 1;
}

/* ---- math.random from a fixed seed ---- */

/* [-(0..2), +0, e] math.randomseed([x [, y]]): without an argument, 0. */
static int l_luastd_randomseed(lua_State *L)
{
	if (lua_gettop(L) == 0)
		lua_pushinteger(L, 0);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 0);
	return 0;
}

/* ---- table.sort, stable ---- */

/* Is a[i] < a[j], for the tables at src, by the comparator at 2 (nil: <)? */
static bool sort_less(lua_State *L, int src, lua_Integer i, lua_Integer j)
{
	bool less;

	if (lua_isnil(L, 2)) {
		lua_rawgeti(L, src, i);
		lua_rawgeti(L, src, j);
		less = lua_compare(L, -2, -1, LUA_OPLT);
		lua_pop(L, 2);
		return less;
	}
	lua_pushvalue(L, 2);
	lua_rawgeti(L, src, i);
	lua_rawgeti(L, src, j);
	lua_call(L, 2, 1);
	less = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return less;
}

/* Merge src[lo..mid] and src[mid+1..hi] into dst; on a tie the left one
 * goes first, which is what makes the sort stable. */
static void sort_merge(lua_State *L, int src, int dst, lua_Integer lo, lua_Integer mid,
		       lua_Integer hi)
{
	lua_Integer i = lo, j = mid + 1, k = lo;

	while (i <= mid || j <= hi) {
		lua_Integer take = j > hi || (i <= mid && !sort_less(L, src, j, i)) ? i++ : j++;

		lua_rawgeti(L, src, take);
		lua_rawseti(L, dst, k++);
	}
}

/* [-(1|2), +0, e] table.sort(list [, comp]): a bottom-up merge sort over a
 * copy of the list, written back at the end; the same list and comparator
 * give the same order in every run. */
static int l_luastd_sort(lua_State *L)
{
	lua_Integer n;
	int a = 3, b = 4;

	luaL_checktype(L, 1, LUA_TTABLE);
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	n = luaL_len(L, 1);
	if (n < 2)
		return 0;
	luaL_argcheck(L, n < INT_MAX, 1, "array too big");
	lua_createtable(L, (int)n, 0);
	lua_createtable(L, (int)n, 0);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, 1, i);
		lua_rawseti(L, a, i);
	}
	for (lua_Integer width = 1; width < n; width *= 2) {
		for (lua_Integer lo = 1; lo <= n; lo += 2 * width) {
			lua_Integer mid = lo + width - 1 < n ? lo + width - 1 : n;
			lua_Integer hi = lo + 2 * width - 1 < n ? lo + 2 * width - 1 : n;

			sort_merge(L, a, b, lo, mid, hi);
		}
		a ^= 7; /* swap 3 and 4 */
		b ^= 7;
	}
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, a, i);
		lua_seti(L, 1, i);
	}
	return 0;
}

/* ---- installing them ---- */

/* [-0, +0, e] Replace lib[name] (lib at idx; NULL name: a global) with fn,
 * which gets the stock function as its upvalue when wrap is true. */
static void replace(lua_State *L, int idx, const char *name, lua_CFunction fn, bool wrap)
{
	idx = lua_absindex(L, idx);
	if (wrap) {
		lua_getfield(L, idx, name);
		lua_pushcclosure(L, fn, 1);
	} else {
		lua_pushcfunction(L, fn);
	}
	lua_setfield(L, idx, name);
}

void bsi_luastd_open(lua_State *L)
{
	lua_pushglobaltable(L);
	replace(L, -1, "next", l_luastd_next, false);
	replace(L, -1, "pairs", l_luastd_pairs, false);
	replace(L, -1, "tostring", l_luastd_tostring, true);
	lua_getfield(L, -1, "string");
	replace(L, -1, "format", l_luastd_format, true);
	lua_pop(L, 1);
	lua_getfield(L, -1, "table");
	replace(L, -1, "sort", l_luastd_sort, false);
	lua_pop(L, 1);
	lua_getfield(L, -1, "math");
	replace(L, -1, "randomseed", l_luastd_randomseed, true);
	lua_getfield(L, -1, "randomseed");
	lua_call(L, 0, 0); /* seed 0 */
	lua_pop(L, 2);
}
