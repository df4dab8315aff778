/*
 * check_recipe.c - the recipe sandbox: every rule gets an escape attempt
 * that must fail for the right reason, quickly, and without side effects;
 * plus the schema, ids across files, and the happy path.
 *
 * Tests call the C API (bsi_recipe_*) directly on real files in temporary
 * directories.  Limits are small so the suite stays fast: 16 MiB, 0.25 s CPU
 * (the rlimit backstop rounds that up to 1 s), 20 s wall clock.
 */
#include "changeset.h"
#include "digest.h"
#include "error.h"
#include "fsroot.h"
#include "recipe.h"
#include "source.h"
#include "testutil.h"

#include <check.h>
#include <lauxlib.h>
#include <lualib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The wall clock is far above the CPU budget so that, even on a loaded
 * machine, the budget (what these tests are about) trips first; the time
 * bound the tests assert is the wall-clock kill plus slack: stopped, not
 * hung. */
#define WALL 20.0
#define STOPPED_WITHIN (WALL + 5.0)
static const bsi_recipe_limits limits = {(size_t)16 << 20, 0.25, WALL};
/* Memory bombs reach 16 MiB in milliseconds, but valgrind is slow: give
 * them CPU enough that only the memory ceiling can stop them. */
static const bsi_recipe_limits mem_limits = {(size_t)16 << 20, 10.0, 20.0};
static const bsi_recipe_limits *cur_limits = &limits;

/* A valid, empty recipe table to end snippets with. */
#define EMPTY_RECIPE "\nreturn { component = 'c', improvements = {} }\n"

static char *tmp;     /* scratch directory */
static char *rootdir; /* tmp/root: the target root */
static char *outside; /* tmp/outside: must never be read or written */
static char marker[4096];
static char old_digest[BSI_DIGEST_STRLEN + 1];

static void setup(void)
{
	char path[4096];

	bsi_error_clear();
	cur_limits = &limits;
	tmp = tu_tmpdir();
	tu_must("mkdir -p '%s/root/etc' '%s/root/System/lib' '%s/root/a/b' '%s/outside'", tmp, tmp,
		tmp, tmp);
	ck_assert_int_ge(asprintf(&rootdir, "%s/root", tmp), 0);
	ck_assert_int_ge(asprintf(&outside, "%s/outside", tmp), 0);
	snprintf(path, sizeof(path), "%s/etc/version", rootdir);
	tu_write(path, "26.0\n");
	snprintf(path, sizeof(path), "%s/System/lib/libfoo.dylib", rootdir);
	tu_write(path, "old library\n");
	snprintf(path, sizeof(path), "%s/secret", outside);
	tu_write(path, "outside secret\n");
	snprintf(marker, sizeof(marker), "%s/pwned", tmp);
	ck_assert_int_eq(bsi_digest_buf("old library\n", 12, old_digest), 0);
	/* Symlinks that leave the root, at each level, relative and absolute. */
	tu_must("cd '%s' && ln -s .. up && ln -s '%s' abs && ln -s ../outside/secret secretlink && "
		"ln -s ../../../outside a/b/up3 && ln -s ../.. a/up2 && ln -s etc/version ok && "
		"ln -s / slash",
		rootdir, outside);
}

static void teardown(void)
{
	free(outside);
	free(rootdir);
	tu_cleanup();
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Evaluate text as "recipes/t.lua" against the root (or in check mode
 * when with_root is false); returns the code, *out the change set. */
static int eval(const char *text, int with_root, bsi_changeset **out)
{
	bsi_root *root = NULL;
	int rc;

	ck_assert_int_eq(bsi_changeset_new(out), 0);
	if (with_root)
		ck_assert_int_eq(bsi_root_open(&root, rootdir), 0);
	rc = bsi_recipe_load_buffer(*out, "recipes/t.lua", text, strlen(text), root, cur_limits);
	bsi_root_free(root);
	return rc;
}

/* The error an evaluation ended in: the whole file's (rc) or, when the
 * file evaluated, the one improvement in error (its entry or apply was
 * refused, and it carries no actions). */
static const char *refusal(int rc, const bsi_changeset *cs, const char *text)
{
	if (rc != 0) {
		ck_assert_msg(rc == BSI_ERECIPE, "expected BSI_ERECIPE, got %d (%s) for:\n%s", rc,
			      bsi_error_message(), text);
		ck_assert_uint_eq(cs->count, 0);
		return bsi_error_message();
	}
	for (size_t i = 0; i < cs->count; i++) {
		if (cs->items[i].status != BSI_STATUS_ERROR)
			continue;
		ck_assert_int_eq(cs->items[i].error_code, BSI_ERECIPE);
		ck_assert_uint_eq(cs->items[i].nactions, 0);
		return cs->items[i].reason;
	}
	ck_abort_msg("nothing was refused in:\n%s", text);
	return NULL;
}

/* Evaluate and expect a recipe error whose message contains want, within
 * max_seconds, with the root and the outside untouched and no marker. */
static void expect_refused(const char *text, const char *want, double max_seconds)
{
	char *fp_root = tu_tree_fingerprint(rootdir), *fp_out = tu_tree_fingerprint(outside), *fp;
	bsi_changeset *cs;
	double t0 = now();
	int rc = eval(text, 1, &cs);
	double took = now() - t0;
	const char *msg = refusal(rc, cs, text);

	ck_assert_msg(strstr(msg, want) != NULL, "message \"%s\" lacks \"%s\" for:\n%s", msg,
		      want, text);
	ck_assert_msg(strncmp(msg, "recipes/t.lua", 13) == 0,
		      "message \"%s\" does not name the recipe", msg);
	ck_assert_msg(took < max_seconds, "took %.2f s (max %.2f) for:\n%s", took, max_seconds, text);
	ck_assert_msg(access(marker, F_OK) != 0, "side effect: %s exists", marker);
	fp = tu_tree_fingerprint(rootdir);
	ck_assert_str_eq(fp, fp_root);
	free(fp);
	fp = tu_tree_fingerprint(outside);
	ck_assert_str_eq(fp, fp_out);
	free(fp);
	free(fp_root);
	free(fp_out);
	bsi_changeset_free(cs);
}

/* tpl with every "%s" replaced by val (tpl is not a printf format). */
static char *subst(const char *tpl, const char *val)
{
	size_t n = 1;
	char *out, *p;

	for (const char *q = tpl; (q = strstr(q, "%s")) != NULL; q += 2)
		n++;
	out = p = malloc(strlen(tpl) + n * strlen(val) + 1);
	ck_assert_ptr_nonnull(out);
	for (const char *q = tpl; *q;) {
		if (q[0] == '%' && q[1] == 's') {
			p = stpcpy(p, val);
			q += 2;
		} else {
			*p++ = *q++;
		}
	}
	*p = '\0';
	return out;
}

/* Snippet (with %s for the marker path) run before an empty recipe. */
static void expect_snippet_refused(const char *snippet, const char *want, double max_seconds)
{
	char *code = subst(snippet, marker), *text;

	ck_assert_int_ge(asprintf(&text, "%s%s", code, EMPTY_RECIPE), 0);
	expect_refused(text, want, max_seconds);
	free(text);
	free(code);
}

/* ---- the happy path ---- */

static char *happy_recipe(void)
{
	char *text;

	ck_assert_int_ge(
		asprintf(&text,
			 "-- recipes/t.lua\n"                                              /* 1 */
			 "local v = bsi.read('etc/version', 4)\n"                        /* 2 */
			 "bsi.log('version ' .. tostring(v))\n"                           /* 3 */
			 "return {\n"                                                     /* 4 */
			 "  component = 'webkit',\n"                                      /* 5 */
			 "  improvements = {\n"                                           /* 6 */
			 "    {\n"                                                        /* 7 */
			 "      id = 'webkit-26.1-a',\n"                                  /* 8 */
			 "      summary = 'JavaScriptCore: use-after-free',\n"            /* 9 */
			 "      fixes = { 'CVE-2026-20101', 'CVE-2026-20102' },\n"        /* 10 */
			 "      severity = 'critical',\n"                                 /* 11 */
			 "      supersedes = { 'webkit-26.0-z' },\n"                      /* 12 */
			 "      when = function()\n"                                      /* 13 */
			 "        return v == '26.0' and bsi.verify('System/lib/libfoo.dylib', '%s')\n"
			 "      end,\n"                                                   /* 15 */
			 "      apply = function(change)\n"                               /* 16 */
			 "        change:replace('System/lib/libfoo.dylib', {\n"          /* 17 */
			 "          from = bsi.hash('System/lib/libfoo.dylib'),\n"        /* 18 */
			 "          to = 'sha256:%064d',\n"                               /* 19 */
			 "          payload = 'payloads/webkit/libfoo' })\n"              /* 20 */
			 "        change:restart('com.apple.WebKit')\n"                   /* 21 */
			 "      end,\n"                                                   /* 22 */
			 "    },\n"                                                       /* 23 */
			 "    {\n"                                                        /* 24 */
			 "      id = 'webkit-26.1-b',\n"                                  /* 25 */
			 "      summary = 'only on 25.x',\n"                              /* 26 */
			 "      fixes = {},\n"                                            /* 27 */
			 "      severity = 'low',\n"                                      /* 28 */
			 "      when = function() return false, 'needs 25.x' end,\n"      /* 29 */
			 "      apply = function(change) error('never runs') end,\n"      /* 30 */
			 "    },\n"                                                       /* 31 */
			 "  },\n"                                                         /* 32 */
			 "}\n",
			 old_digest, 1),
		0);
	return text;
}

/* bsi.os_version(): the plist first, then etc/os-release, else nil. */
START_TEST(test_recipe_os_version)
{
	static const char text[] =
		"return { component = 'c', improvements = { { id = 'c-1', summary = 's',\n"
		"  severity = 'low', fixes = {},\n"
		"  when = function() return false, 'v=' .. tostring(bsi.os_version()) end,\n"
		"  apply = function(change) end } } }\n";
	bsi_changeset *cs;

	ck_assert_int_eq(eval(text, 1, &cs), 0);
	ck_assert_str_eq(cs->items[0].reason, "v=nil");
	bsi_changeset_free(cs);
	tu_must("mkdir -p '%s/etc' && printf 'NAME=Debian\\nVERSION_ID=\"12\"\\n' > "
		"'%s/etc/os-release'", rootdir, rootdir);
	ck_assert_int_eq(eval(text, 1, &cs), 0);
	ck_assert_str_eq(cs->items[0].reason, "v=12");
	bsi_changeset_free(cs);
	tu_must("mkdir -p '%s/System/Library/CoreServices' && printf '<plist><dict>"
		"<key>ProductVersion</key>\\n\\t<string>26.0.1</string></dict></plist>' > "
		"'%s/System/Library/CoreServices/SystemVersion.plist'", rootdir, rootdir);
	ck_assert_int_eq(eval(text, 1, &cs), 0);
	ck_assert_str_eq(cs->items[0].reason, "v=26.0.1");
	bsi_changeset_free(cs);
}
END_TEST

START_TEST(test_recipe_happy_path)
{
	char *text = happy_recipe(), *fp = tu_tree_fingerprint(rootdir), *fp2;
	bsi_changeset *cs;
	bsi_improvement *a, *b;
	int rc = eval(text, 1, &cs);

	ck_assert_msg(rc == 0, "%s", bsi_error_message());
	ck_assert_uint_eq(cs->count, 2);
	a = &cs->items[0];
	ck_assert_str_eq(a->id, "webkit-26.1-a");
	ck_assert_str_eq(a->component, "webkit");
	ck_assert_str_eq(a->summary, "JavaScriptCore: use-after-free");
	ck_assert_str_eq(a->severity, "critical");
	ck_assert_str_eq(a->recipe, "recipes/t.lua");
	ck_assert_int_eq(a->line, 8);
	ck_assert_uint_eq(a->nfixes, 2);
	ck_assert_str_eq(a->fixes[1], "CVE-2026-20102");
	ck_assert_uint_eq(a->nsupersedes, 1);
	ck_assert_str_eq(a->supersedes[0], "webkit-26.0-z");
	ck_assert_int_eq(a->status, BSI_STATUS_PENDING);
	ck_assert_uint_eq(a->nactions, 2);
	ck_assert_int_eq(a->actions[0].op, BSI_ACTION_REPLACE);
	ck_assert_str_eq(a->actions[0].path, "System/lib/libfoo.dylib");
	ck_assert_str_eq(a->actions[0].from, old_digest);
	ck_assert_str_eq(a->actions[0].to,
			 "sha256:0000000000000000000000000000000000000000000000000000000000000001");
	ck_assert_str_eq(a->actions[0].payload, "payloads/webkit/libfoo");
	ck_assert_int_eq(a->actions[0].line, 17);
	ck_assert_int_eq(a->actions[1].op, BSI_ACTION_RESTART);
	ck_assert_str_eq(a->actions[1].service, "com.apple.WebKit");
	ck_assert_int_eq(a->actions[1].line, 21);

	b = &cs->items[1];
	ck_assert_str_eq(b->id, "webkit-26.1-b");
	ck_assert_int_eq(b->line, 25);
	ck_assert_int_eq(b->status, BSI_STATUS_NOT_APPLICABLE);
	ck_assert_str_eq(b->reason, "needs 25.x");
	ck_assert_uint_eq(b->nactions, 0);
	ck_assert_uint_eq(b->nfixes, 0);

	fp2 = tu_tree_fingerprint(rootdir);
	ck_assert_str_eq(fp, fp2);
	free(fp);
	free(fp2);
	free(text);
	bsi_changeset_free(cs);
}
END_TEST

/* recipe check: no root, `when` is not run, apply runs, queries answer nothing. */
START_TEST(test_recipe_check_mode)
{
	const char *text =
		"return { component = 'c', improvements = { {\n"
		"  id = 'c-1', summary = 's', fixes = {}, severity = 'high',\n"
		"  when = function() error('when must not run in check mode') end,\n"
		"  apply = function(change)\n"
		"    assert(bsi.hash('etc/version') == nil and bsi.read('etc/version') == nil)\n"
		"    assert(bsi.exists('etc/version') == false)\n"
		"    assert(bsi.verify('etc/version', 'sha256:' .. string.rep('0', 64)) == false)\n"
		"    change:restart('sshd')\n"
		"  end } } }\n";
	char path[4096];
	bsi_changeset *cs;

	snprintf(path, sizeof(path), "%s/check.lua", tmp);
	tu_write(path, text);
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_msg(bsi_recipe_check_file(cs, path, &limits) == 0, "%s", bsi_error_message());
	ck_assert_uint_eq(cs->count, 1);
	ck_assert_int_eq(cs->items[0].status, BSI_STATUS_PENDING);
	ck_assert_uint_eq(cs->items[0].nactions, 1);
	ck_assert_str_eq(cs->items[0].actions[0].service, "sshd");
	ck_assert_str_eq(cs->items[0].recipe, path);
	/* Checking the same file again into the same cs: ids must be unique. */
	ck_assert_int_eq(bsi_recipe_check_file(cs, path, &limits), BSI_ERECIPE);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "duplicate id \"c-1\" (also at "));
	ck_assert_uint_eq(cs->count, 1);
	bsi_changeset_free(cs);
}
END_TEST

/* Escaping paths are still refused in check mode (lexically). */
START_TEST(test_recipe_check_mode_refuses_escape)
{
	bsi_changeset *cs;

	ck_assert_int_eq(eval("bsi.read('../outside/secret')" EMPTY_RECIPE, 0, &cs), BSI_ERECIPE);
	ck_assert_str_eq(bsi_error_message(), "recipes/t.lua:1: bsi.read: path \"../outside/secret\" "
					      "refused: \"..\" leads outside the target root");
	bsi_changeset_free(cs);
}
END_TEST

/* ---- forbidden libraries and functions ---- */

static const struct {
	const char *code, *want;
} forbidden[] = {
	{"io.open('%s', 'w'):write('x')", "global 'io'"},
	{"os.execute('touch %s')", "global 'os'"},
	{"require('os').execute('touch %s')", "global 'require'"},
	{"package.loadlib('libc.so.6', 'system')('touch %s')", "global 'package'"},
	{"debug.sethook()", "global 'debug'"},
	{"dofile('/etc/passwd')", "global 'dofile'"},
	{"loadfile('/etc/passwd')", "global 'loadfile'"},
	{"collectgarbage('stop')", "global 'collectgarbage'"},
	{"print('x')", "global 'print'"},
	{"string.dump(function() end)", "field 'dump'"},
	{"(''):dump()", "method 'dump'"},
	{"getmetatable('').__index.dump = 1", "a boolean value"},
	{"getmetatable('').__gc = function() end", "a boolean value"},
	{"local f = load('return io'); assert(f() ~= nil, 'no io in load')", "no io in load"},
	{"assert(load('return bsi')() ~= nil, 'load sees no globals')", "load sees no globals"},
	{"setmetatable({}, {__gc = function() while true do end end})",
	 "__gc metamethods are not allowed"},
	{"setmetatable({}, {__gc = true})", "__gc metamethods are not allowed"},
	{"local x <close> = setmetatable({}, {__close = function() end})",
	 "__close metamethods are not allowed"},
	{"setmetatable({}, {__mode = 'k'})", "__mode metamethods are not allowed"},
	{"local x <close> = {}", "non-closable value"},
	/* added to a metatable after setmetatable: the seal refuses them */
	{"local mt = {}\nlocal t = setmetatable({}, mt)\nmt.__close = function() end\n"
	 "do local x <close> = t end",
	 "recipes/t.lua:3: __close metamethods are not allowed in recipes (not even added"},
	{"local mt = {}\nlocal t = setmetatable({}, mt)\nmt.__mode = 'k'",
	 "recipes/t.lua:3: __mode metamethods are not allowed"},
	{"local mt = {}\nsetmetatable({}, mt)\nrawset(mt, '__gc', function() end)",
	 "recipes/t.lua:3: rawset: __gc metamethods are not allowed"},
	{"local mt = {}\nsetmetatable({}, mt)\nsetmetatable(mt, nil)",
	 "is the metatable of another value"},
	{"local mt = setmetatable({}, {})\nsetmetatable({}, mt)",
	 "a metatable with a metatable of its own"},
	{"local t = {}\nsetmetatable(t, t)", "cannot be its own metatable"},
	{"local mt = {}\nsetmetatable({}, mt)\nload('__close = 1', 'x', 't', mt)()",
	 "__close metamethods are not allowed"},
	/* the crash of Lua 5.4.4 this reached: to-be-closed values closing
	 * coroutines inside one another until the C stack ran out */
	{"local mt, cos = {}, {}\nlocal obj = setmetatable({}, mt)\n"
	 "mt.__close = function() local co = table.remove(cos) if co then coroutine.close(co) end end\n"
	 "for i = 1, 30000 do\n"
	 "  local co = coroutine.create(function() local x <close> = obj; coroutine.yield() end)\n"
	 "  coroutine.resume(co)\n"
	 "  cos[#cos + 1] = co\n"
	 "end\n"
	 "coroutine.close(table.remove(cos))",
	 "recipes/t.lua:3: __close metamethods are not allowed"},
};

/* What stays allowed around metatables: a class table with __index, methods
 * and metamethods added to it after instances exist, getmetatable of an
 * instance giving the class back. */
START_TEST(test_recipe_metatables_still_work)
{
	bsi_changeset *cs;
	const char *text = "local C = {}\nC.__index = C\n"
			   "function C.new(v) return setmetatable({v = v}, C) end\n"
			   "local a, b = C.new(1), C.new(2)\n"
			   "function C:get() return self.v end\n"
			   "C.__lt = function(x, y) return x.v < y.v end\n"
			   "C.__tostring = function(x) return 'C' .. x.v end\n"
			   "assert(a:get() == 1 and a < b and tostring(b) == 'C2')\n"
			   "assert(getmetatable(a) == C, 'identity')\n"
			   "setmetatable(a, nil)\nassert(getmetatable(a) == nil)\n" EMPTY_RECIPE;

	ck_assert_msg(eval(text, 1, &cs) == 0, "%s", bsi_error_message());
	bsi_changeset_free(cs);
}
END_TEST

/* The standard functions whose stock results vary from run to run, as
 * recipes get them (host/luastd.h): one key order, no addresses, a fixed
 * random seed, a stable sort. */
START_TEST(test_recipe_stdlib_is_deterministic)
{
	bsi_changeset *cs;
	const char *text =
		"local t = { b = 1, a = 2, [3] = 'x', [1] = 'y', [true] = 1, [false] = 0, [2.5] = 0 }\n"
		"local ks = {}\n"
		"for k in pairs(t) do ks[#ks + 1] = tostring(k) end\n"
		"assert(table.concat(ks, ' ') == 'false true 1 2.5 3 a b', table.concat(ks, ' '))\n"
		"assert(next({}) == nil and next(t) == false and next(t, 3) == 'a')\n"
		"assert(next(t, 'b') == nil and select(2, next(t, 2.5)) == 'x')\n"
		"local ok, err = pcall(pairs, { [{}] = 1 })\n"
		"assert(not ok and err:find('not a boolean, number or string has no stable order'), err)\n"
		"assert(not pcall(next, { [print or type] = 1 }))\n"
		"ok, err = pcall(string.format, '%5p', {})\n"
		"assert(not ok and err:find('%%p is not allowed'), err)\n"
		"assert(string.format('%%p %s %d', 'x', 1) == '%p x 1')\n"
		"assert(string.format('%s', {}) == 'table' and tostring(type) == 'function')\n"
		"assert(tostring(setmetatable({}, {__tostring = function() return 'T' end})) == 'T')\n"
		"assert(tostring(setmetatable({}, {__name = 'Thing'})) == 'Thing')\n"
		"local r1 = math.random(1, 1000000000)\n"
		"math.randomseed() assert(math.random(1, 1000000000) == r1, 'seed 0 again')\n"
		"math.randomseed(7) local r7 = math.random(1, 1000000000)\n"
		"math.randomseed(7) assert(math.random(1, 1000000000) == r7 and r7 ~= r1)\n"
		"local rows = {}\n"
		"for i = 1, 250 do rows[i] = { id = i, k = i % 2 } end\n"
		"table.sort(rows, function(a, b) return a.k < b.k end)\n"
		"assert(rows[1].id == 2 and rows[2].id == 4 and rows[126].id == 1 and rows[250].id == 249)\n"
		"local n = { 5, 3, 1, 4, 2 } table.sort(n) assert(table.concat(n, ',') == '1,2,3,4,5')\n"
		"table.sort(n, function(a, b) return a > b end) assert(table.concat(n) == '54321')\n"
		"local c, got = { a = 1, b = 2, c = 3 }, {}\n"
		"for k in pairs(c) do got[#got + 1] = k; c.b = nil end\n"
		"assert(table.concat(got) == 'ac', table.concat(got))\n"
		"local p = setmetatable({}, { __pairs = function(s)\n"
		"  return function(_, k) if not k then return 1, 'one' end end, s, nil end })\n"
		"for k, v in pairs(p) do assert(k == 1 and v == 'one') end\n" EMPTY_RECIPE;

	ck_assert_msg(eval(text, 1, &cs) == 0, "%s", bsi_error_message());
	bsi_changeset_free(cs);
}
END_TEST

START_TEST(test_recipe_forbidden_functions)
{
	expect_snippet_refused(forbidden[_i].code, forbidden[_i].want, STOPPED_WITHIN);
}
END_TEST

/* ---- binary chunks, through every loader ---- */

/* A real binary chunk: string.dump in an unsandboxed state, of a function
 * that would run os.execute.  Caller frees; *len gets its size. */
static char *dumped_chunk(size_t *len)
{
	lua_State *L = luaL_newstate();
	const char *bin;
	char *out;

	luaL_openlibs(L);
	ck_assert_int_eq(luaL_dostring(L, "return string.dump(load('os.execute(\"touch /tmp/x\")'))"),
			 0);
	bin = lua_tolstring(L, -1, len);
	out = malloc(*len + 1);
	ck_assert_ptr_nonnull(out);
	memcpy(out, bin, *len);
	out[*len] = '\0';
	lua_close(L);
	return out;
}

/* The same as a Lua string literal of decimal escapes. */
static char *dumped_chunk_literal(void)
{
	size_t len;
	char *bin = dumped_chunk(&len), *lit = malloc(len * 4 + 3), *p = lit;

	ck_assert_ptr_nonnull(lit);
	*p++ = '"';
	for (size_t i = 0; i < len; i++)
		p += sprintf(p, "\\%u", (unsigned char)bin[i]);
	*p++ = '"';
	*p = '\0';
	free(bin);
	return lit;
}

START_TEST(test_recipe_binary_chunks_refused)
{
	char *lit = dumped_chunk_literal(), *text;
	static const char *const forms[] = {
		/* a dumped function as a string */
		"local f, err = load(%s); assert(f, err); f()",
		/* explicitly asking for binary mode */
		"local f, err = load(%s, 'x', 'b')",
		"local f, err = load(%s, 'x', 'bt')",
		/* a reader function handing out the binary chunk in pieces */
		"local s, i = %s, 0\n"
		"local f, err = load(function() i = i + 1; return s:sub(i, i) ~= '' and s:sub(i, i) or nil end)\n"
		"assert(f, err); f()",
		/* a reader with an explicit env */
		"local s = %s\n"
		"local f, err = load(function() local r = s; s = nil; return r end, 'x', nil, _ENV)\n"
		"assert(f, err); f()",
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		text = subst(forms[i], lit);
		expect_snippet_refused(text, i == 1 || i == 2 ? "only text chunks" : "binary chunk",
				       2.0);
		free(text);
	}
	free(lit);
}
END_TEST

/* A recipe file that is itself a binary chunk. */
START_TEST(test_recipe_binary_recipe_file_refused)
{
	size_t len;
	char *bin = dumped_chunk(&len);
	bsi_changeset *cs;
	bsi_root *root;
	int rc;

	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_root_open(&root, rootdir), 0);
	ck_assert_int_eq(bin[0], 0x1b);
	rc = bsi_recipe_load_buffer(cs, "recipes/t.lua", bin, len, root, &limits);
	ck_assert_int_eq(rc, BSI_ERECIPE);
	ck_assert_ptr_nonnull(strstr(bsi_error_message(), "attempt to load a binary chunk"));
	bsi_root_free(root);
	bsi_changeset_free(cs);
	free(bin);
}
END_TEST

/* ---- CPU ---- */

static const char *const cpu_bombs[] = {
	"while true do end",
	"while true do pcall(function() while true do end end) end",
	"pcall(function() while true do end end)",
	"for i = 1, 10 do pcall(function() while true do end end) end",
	"coroutine.wrap(function() while true do end end)()",
	"while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
	/* NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one two-line chunk */
	"local co = coroutine.wrap(function() while true do pcall(coroutine.yield) end end)\n"
	"while true do pcall(co) end",
	"xpcall(function() error('x') end, function() while true do end end)",
	"while true do xpcall(error, function() while true do end end) end",
	"local function f() return pcall(f) end while true do f() end",
	"table.sort({3, 2, 1, 5, 4}, function(a, b) while true do end end)",
	"string.gsub(string.rep('a', 100), 'a', function() while true do end end)",
	"local t = setmetatable({}, {__index = function(t, k) while true do end end}) local _ = t.x",
};

START_TEST(test_recipe_cpu_budget)
{
	expect_snippet_refused(cpu_bombs[_i], "CPU budget of 0.25 s exceeded", STOPPED_WITHIN);
}
END_TEST

/* A loop in `when` and in `apply` is stopped the same way. */
START_TEST(test_recipe_cpu_budget_in_functions)
{
	expect_refused("return { component = 'c', improvements = { {\n"
		       "  id = 'c-1', summary = 's', fixes = {}, severity = 'low',\n"
		       "  when = function() while true do end end,\n"
		       "  apply = function() end } } }\n",
		       "recipes/t.lua:3: CPU budget of 0.25 s exceeded", STOPPED_WITHIN);
	expect_refused("return { component = 'c', improvements = { {\n"
		       "  id = 'c-1', summary = 's', fixes = {}, severity = 'low',\n"
		       "  apply = function(change) while true do pcall(change.restart, change, 'x') end end } } }\n",
		       "CPU budget of 0.25 s exceeded", STOPPED_WITHIN);
}
END_TEST

/* A pattern that backtracks for ever inside one C call: only the child's
 * CPU rlimit can stop it. */
static const char *const c_bombs[] = {
	"string.find(string.rep('a', 1e5), '.-.-.-.-.-.-.-.-b')",
	"string.rep('', 1e15)",
	"table.move({}, 1, 1e15, 2)",
};

START_TEST(test_recipe_catastrophic_pattern)
{
	expect_snippet_refused(c_bombs[_i], "CPU budget of 0.25 s exceeded", STOPPED_WITHIN);
}
END_TEST

/* The wall clock is the last line: here the CPU budget is generous. */
START_TEST(test_recipe_wall_clock)
{
	const bsi_recipe_limits slow = {(size_t)16 << 20, 30.0, 0.5};
	const char *text = "string.find(string.rep('a', 1e5), '.-.-.-.-.-.-.-.-b')" EMPTY_RECIPE;
	bsi_changeset *cs;
	double t0 = now();

	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_recipe_load_buffer(cs, "recipes/t.lua", text, strlen(text), NULL, &slow),
			 BSI_ERECIPE);
	ck_assert_str_eq(bsi_error_message(), "recipes/t.lua: killed after 0.5 s wall clock");
	ck_assert_double_lt(now() - t0, STOPPED_WITHIN);
	ck_assert_uint_eq(cs->count, 0);
	bsi_changeset_free(cs);
}
END_TEST

/* ---- memory ---- */

static const char *const memory_bombs[] = {
	"local t = {} for i = 1, 1e9 do t[i] = i end",
	"local s = string.rep('x', 1e9)",
	"local s = ('x'):rep(1e8)",
	"local s = 'x' while true do s = s .. s end",
	"local t = {} for i = 1, 1e9 do t[i] = tostring(i) .. 'padding' end",
	"local t = {} for i = 1, 1e9 do t[#t + 1] = {i} end",
	"local s = table.concat(setmetatable({}, {__index = function() return ('y'):rep(1e6) end}), '', 1, 1e4)",
	"local t = {} while true do t[#t + 1] = coroutine.create(function() end) end",
};

START_TEST(test_recipe_memory_limit)
{
	cur_limits = &mem_limits;
	expect_snippet_refused(memory_bombs[_i], "memory limit of 16 MiB exceeded", 20.0);
}
END_TEST

/* ---- the bsi module is read-only ---- */

static const struct {
	const char *code, *want;
} readonly[] = {
	{"bsi.hash = function() return 'x' end", "read-only"},
	{"bsi.extra = 1", "read-only"},
	{"bsi = {}", "read-only"},
	{"_G.bsi = nil", "read-only"},
	{"_ENV.bsi = nil", "read-only"},
	{"rawset(_G, 'bsi', {})", "read-only"},
	{"rawset(bsi, 'hash', nil)", "table expected"},
	{"getmetatable(bsi).__index = {}", "a boolean value"},
	{"setmetatable(_G, {})", "protected metatable"},
	{"bsi.nope('x')", "bsi.nope does not exist"},
};

START_TEST(test_recipe_bsi_readonly)
{
	expect_snippet_refused(readonly[_i].code, readonly[_i].want, STOPPED_WITHIN);
}
END_TEST

/* ---- paths are confined to the root ---- */

static const struct {
	const char *code, *want;
} escapes[] = {
	{"bsi.read('../outside/secret', 100)", "\"..\" leads outside the target root"},
	{"bsi.read('etc/../../outside/secret', 100)", "\"..\" leads outside the target root"},
	{"bsi.hash('/etc/passwd')", "absolute paths are not allowed"},
	{"bsi.exists('/')", "absolute paths are not allowed"},
	{"bsi.read('')", "empty path"},
	/* symlinks leaving the root, at each level, relative and absolute */
	{"bsi.read('up/outside/secret', 100)", "bsi.read: path \"up/outside/secret\" refused"},
	{"bsi.read('a/up2/outside/secret', 100)", "bsi.read: path \"a/up2/outside/secret\" refused"},
	{"bsi.read('a/b/up3/secret', 100)", "bsi.read: path \"a/b/up3/secret\" refused"},
	{"bsi.hash('slash/../outside/secret')", "\"..\" leads outside the target root"},
	{"bsi.exists('up')", "bsi.exists: path \"up\" refused"},
	/* a symlink to a file outside */
	{"bsi.read('secretlink', 100)", "bsi.read: path \"secretlink\" refused"},
	{"bsi.verify('secretlink', 'sha256:' .. string.rep('0', 64))", "bsi.verify: path \"secretlink\" refused"},
	/* recorded paths must be plain */
	{"", "change:replace: path \"../outside/secret\" has a \"..\" component"},
	{"", "change:replace: path \"/etc/passwd\" is absolute"},
	{"", "change:replace: path \"up/outside/secret\" refused"}, /* through an escaping symlink */
};

START_TEST(test_recipe_paths_confined)
{
	static const char *const targets[] = {"../outside/secret", "/etc/passwd", "up/outside/secret"};

	if (escapes[_i].code[0]) {
		char *code;

		/* line 2, so the message must say recipes/t.lua:2 */
		ck_assert_int_ge(asprintf(&code, "\n%s", escapes[_i].code), 0);
		expect_snippet_refused(code, escapes[_i].want, STOPPED_WITHIN);
		expect_snippet_refused(code, "recipes/t.lua:2:", STOPPED_WITHIN);
		free(code);
	} else {
		char *text;
		const char *target = targets[_i - (sizeof(escapes) / sizeof(escapes[0]) - 3)];

		ck_assert_int_ge(
			asprintf(&text,
				 "return { component = 'c', improvements = { {\n"
				 "  id = 'c-1', summary = 's', fixes = {}, severity = 'low',\n"
				 "  apply = function(change)\n"
				 "    change:replace('%s', { from = 'sha256:%064d',\n"
				 "      to = 'sha256:%064d', payload = 'payloads/x' })\n"
				 "  end } } }\n",
				 target, 1, 2),
			0);
		expect_refused(text, escapes[_i].want, STOPPED_WITHIN);
		expect_refused(text, "recipes/t.lua:4:", STOPPED_WITHIN);
		free(text);
	}
}
END_TEST

/* A symlink that stays inside the root is followed. */
START_TEST(test_recipe_paths_inside_symlink_followed)
{
	bsi_changeset *cs;
	const char *text = "assert(bsi.read('ok') == '26.0\\n', 'follows an inner symlink')\n"
			   "assert(bsi.read('a/b/../../etc/version', 2) == '26', 'dot-dot inside')\n"
			   "assert(bsi.read('missing') == nil and bsi.hash('missing/x') == nil)\n"
			   "assert(bsi.exists('etc') and bsi.exists('etc/version'))\n"
			   "assert(#bsi.read('etc/version', 1e9) == 5, 'max is capped, not an error')\n"
			   /* abs names the outside directory by its absolute path: as
			    * in a chroot, that path under the root, where nothing is */
			   "assert(bsi.hash('abs/secret') == nil and bsi.read('abs/secret') == nil)\n"
			   "assert(not bsi.exists('abs'))\n" EMPTY_RECIPE;

	ck_assert_msg(eval(text, 1, &cs) == 0, "%s", bsi_error_message());
	bsi_changeset_free(cs);
}
END_TEST

/* A FIFO or device under the root exists, but is never opened: hashing or
 * reading one answers nil instead of blocking or touching the device. */
START_TEST(test_recipe_special_files_not_opened)
{
	bsi_changeset *cs;
	const char *text = "assert(bsi.exists('fifo'), 'a fifo exists')\n"
			   "assert(bsi.hash('fifo') == nil and bsi.read('fifo') == nil, 'not opened')\n"
			   "assert(bsi.verify('fifo', 'sha256:' .. ('0'):rep(64)) == false)\n" EMPTY_RECIPE;
	double t0 = now();

	tu_must("mkfifo '%s/fifo'", rootdir);
	ck_assert_msg(eval(text, 1, &cs) == 0, "%s", bsi_error_message());
	ck_assert_double_lt(now() - t0, STOPPED_WITHIN);
	bsi_changeset_free(cs);
}
END_TEST

/* Limits that make no sense are a usage error, not a hang or a crash. */
START_TEST(test_recipe_limits_validated)
{
	const bsi_recipe_limits bad = {0, 0, 0};
	bsi_changeset *cs;

	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_recipe_load_buffer(cs, "recipes/t.lua", "return {}", 9, NULL, &bad),
			 BSI_EUSAGE);
	bsi_changeset_free(cs);
}
END_TEST

/* ---- schema ---- */

static const struct {
	const char *field_line; /* replaces @ in the template */
	const char *want;
} schema[] = {
	{"severity = 'urgent',",
	 "recipes/t.lua:5: improvement \"webkit-26.1-a\": severity must be one of low, medium, "
	 "high, critical (got \"urgent\")"},
	{"severty = 'high',",
	 "recipes/t.lua:5: improvement \"webkit-26.1-a\": unknown field \"severty\""},
	{"when = 'yes',", "recipes/t.lua:5: improvement \"webkit-26.1-a\": when must be a function"},
	{"supersedes = 'webkit-1',",
	 "recipes/t.lua:5: improvement \"webkit-26.1-a\": supersedes must be a list"},
	{"supersedes = { 'webkit-26.1-a' },", "supersedes itself"},
	{"fixes = { 'CVE-26' },",
	 "recipes/t.lua:5: improvement \"webkit-26.1-a\": fixes[1] must be a CVE id like "
	 "\"CVE-2026-20101\" (got \"CVE-26\")"},
	{"summary = 'two\\nlines',",
	 "recipes/t.lua:5: improvement \"webkit-26.1-a\": summary must be one line of UTF-8 text"},
	{"summary = 'bad \\255 utf8',", "summary must be one line of UTF-8 text (got \"bad ? utf8\")"},
	{"apply = 42,", "recipes/t.lua:5: improvement \"webkit-26.1-a\": apply must be a function"},
	{"[1] = 'x',", "recipes/t.lua:4: improvement \"webkit-26.1-a\": unknown field \"[1]\""},
	/* several unknown fields: the same one is named in every run */
	{"zeta = 1, mid = 2, [7] = 3, alpha = 4, beta = 5,",
	 "recipes/t.lua:5: improvement \"webkit-26.1-a\": unknown field \"alpha\""},
};

START_TEST(test_recipe_schema_errors)
{
	const char *fl = schema[_i].field_line;
	char rest[256] = "", *text;
	bsi_changeset *cs;

	/* line 4: the id; line 5: the line under test; line 6: the other fields */
	if (!strstr(fl, "summary"))
		strcat(rest, "summary = 's', ");
	if (!strstr(fl, "fixes"))
		strcat(rest, "fixes = {}, ");
	if (!strstr(fl, "severity"))
		strcat(rest, "severity = 'high', ");
	if (!strstr(fl, "apply"))
		strcat(rest, "apply = function(change) end,");
	ck_assert_int_ge(asprintf(&text,
				  "return {\n"
				  "  component = 'webkit',\n"
				  "  improvements = { {\n"
				  "    id = 'webkit-26.1-a',\n"
				  "    %s\n"
				  "    %s\n"
				  "  }, { id = 'webkit-26.1-b', summary = 's', fixes = {}, severity = 'low',\n"
				  "       apply = function(c) c:restart('webkit') end } },\n"
				  "}\n",
				  fl, rest),
			 0);
	/* the malformed entry is that improvement's error; its sibling plans */
	ck_assert_msg(eval(text, 1, &cs) == 0, "%s", bsi_error_message());
	ck_assert_uint_eq(cs->count, 2);
	ck_assert_str_eq(cs->items[0].id, "webkit-26.1-a");
	ck_assert_int_eq(cs->items[0].status, BSI_STATUS_ERROR);
	ck_assert_int_eq(cs->items[0].error_code, BSI_ERECIPE);
	ck_assert_str_eq(cs->items[0].recipe, "recipes/t.lua");
	ck_assert_str_eq(cs->items[0].component, "webkit");
	ck_assert_msg(strstr(cs->items[0].reason, schema[_i].want) != NULL,
		      "message \"%s\" lacks \"%s\" in:\n%s", cs->items[0].reason, schema[_i].want,
		      text);
	ck_assert_int_eq(cs->items[0].error_line, strstr(schema[_i].want, "t.lua:4") ? 4 : 5);
	ck_assert_uint_eq(cs->items[0].nactions, 0);
	ck_assert_str_eq(cs->items[1].id, "webkit-26.1-b");
	ck_assert_int_eq(cs->items[1].status, BSI_STATUS_PENDING);
	ck_assert_uint_eq(cs->items[1].nactions, 1);
	bsi_changeset_free(cs);
	free(text);
}
END_TEST

static const struct {
	const char *text, *want;
} whole[] = {
	{"return 42", "recipes/t.lua: a recipe must return a table (got 42)"},
	{"return {", "recipes/t.lua:1:"},
	{"local x = \nreturn { component = 'c', improvements = {} }", "recipes/t.lua:2:"},
	{"return { component = 'c', improvements = {}, extra = 1 }",
	 "recipes/t.lua:1: unknown field \"extra\" in the recipe table"},
	{"return { improvements = {} }", "component must be a name"},
	{"return { component = 'c',\n improvements = { 1 } }",
	 "recipes/t.lua:2: improvements[1] must be a table (got 1)"},
	{"return { component = 'c', improvements = { [2] = {} } }", "improvements must be a list"},
	{"error('boom')", "recipes/t.lua:1: boom"},
	{"error({})", "recipes/t.lua: error object is a table value"},
	{"error(setmetatable({}, {__tostring = function() while true do end end}))",
	 "error object is a table value"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function() end },\n"
	 "  { id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function() end } } }",
	 "recipes/t.lua:3: improvement \"x-1\": duplicate id \"x-1\" (also at recipes/t.lua:2)"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'bad id', summary = 's', fixes = {}, severity = 'low', apply = function() end } } }",
	 "improvement #1: id must be a name"},
	{"error(42)", "recipes/t.lua: 42"},
};

/* Errors of one improvement: its `when` or `apply` raised, or an action it
 * recorded is refused.  That improvement is in error, with its line and no
 * actions; the file's other improvement (x-2, or x-1 before it) plans. */
static const struct {
	const char *text, *want;
} own[] = {
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', severity = 'low', apply = function() end } } }",
	 "recipes/t.lua:2: improvement \"x-1\": fixes is required"},
	/* actions: digests, payload, fields of the spec, service names */
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function(c)\n"
	 "    c:replace('a/b', { from = 'sha256:abc', to = 'sha256:abc', payload = 'p' }) end } } }",
	 "recipes/t.lua:3: change:replace(\"a/b\"): from must be a digest"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function(c)\n"
	 "    c:replace('a/b', { from = 'sha256:' .. ('0'):rep(64), to = 'sha256:' .. ('1'):rep(64),\n"
	 "      payload = 'p', mode = '0755' }) end } } }",
	 "recipes/t.lua:3: change:replace(\"a/b\"): unknown field \"mode\""},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function(c)\n"
	 "    c:replace('a/b', { from = 'sha256:' .. ('0'):rep(64), to = 'sha256:' .. ('1'):rep(64),\n"
	 "      payload = '../../etc/shadow' }) end } } }",
	 "recipes/t.lua:3: change:replace(\"a/b\"): payload path has a \"..\" component"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function(c)\n"
	 "    c:restart('--force') end } } }",
	 "recipes/t.lua:3: change:restart: \"--force\" is not a service name"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function(c)\n"
	 "    for i = 1, 1000 do c:restart('s' .. i) end end } } }",
	 "recipes/t.lua:3: change: more than 256 actions"},
	{"local saved\n"
	 "return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low', apply = function(c) saved = c end },\n"
	 "  { id = 'x-2', summary = 's', fixes = {}, severity = 'low', apply = function(c)\n"
	 "    saved:restart('sshd') end } } }",
	 "recipes/t.lua:5: change used outside the apply function"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low',\n"
	 "  when = function() return bsi.nothing.here end, apply = function(c) end } } }",
	 "recipes/t.lua:3: bsi.nothing does not exist"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low',\n"
	 "  when = function() error('no such device') end, apply = function(c) end } } }",
	 "recipes/t.lua:3: no such device"},
	{"return { component = 'c', improvements = { {\n"
	 "  id = 'x-1', summary = 's', fixes = {}, severity = 'low',\n"
	 "  when = function() return bsi.hash('../etc/passwd') end, apply = function(c) end } } }",
	 "recipes/t.lua:3: bsi.hash: path \"../etc/passwd\" refused"},
};

START_TEST(test_recipe_improvement_errors)
{
	const char *sibling = "  { id = 'x-2', summary = 's', fixes = {}, severity = 'low',\n"
			      "    apply = function(c) c:restart('sibling') end },\n";
	const char *text = own[_i].text, *tail = strstr(text, " } } }");
	bsi_changeset *cs;
	char *full;
	bool has_two = strstr(text, "'x-2'") != NULL;
	const bsi_improvement *bad, *good;

	/* put a healthy sibling after the improvement under test */
	ck_assert_ptr_nonnull(tail);
	ck_assert_int_ge(asprintf(&full, "%.*s },\n%s } }", (int)(tail - text), text,
				  has_two ? "" : sibling),
			 0);
	if (has_two) {
		free(full);
		full = strdup(text);
	}
	ck_assert_msg(eval(full, 1, &cs) == 0, "%s", bsi_error_message());
	ck_assert_uint_eq(cs->count, 2);
	bad = strstr(own[_i].want, "outside the apply") ? &cs->items[1] : &cs->items[0];
	good = bad == &cs->items[0] ? &cs->items[1] : &cs->items[0];
	ck_assert_int_eq(bad->status, BSI_STATUS_ERROR);
	ck_assert_int_eq(bad->error_code, BSI_ERECIPE);
	ck_assert_msg(strstr(bad->reason, own[_i].want) != NULL, "reason \"%s\" lacks \"%s\"",
		      bad->reason, own[_i].want);
	ck_assert_int_eq(bad->error_line, atoi(strchr(own[_i].want, ':') + 1));
	ck_assert_uint_eq(bad->nactions, 0);
	ck_assert_int_eq(good->status, BSI_STATUS_PENDING);
	bsi_changeset_free(cs);
	free(full);
}
END_TEST

START_TEST(test_recipe_whole_file_errors)
{
	bsi_changeset *cs;

	ck_assert_int_eq(eval(whole[_i].text, 1, &cs), BSI_ERECIPE);
	ck_assert_msg(strstr(bsi_error_message(), whole[_i].want) != NULL,
		      "message \"%s\" lacks \"%s\"", bsi_error_message(), whole[_i].want);
	ck_assert_uint_eq(cs->count, 0);
	bsi_changeset_free(cs);
}
END_TEST

/* ---- several files: ids unique across them; all or nothing ---- */

static void write_recipe(const char *tree, const char *name, const char *ids[], int n)
{
	char path[4096], body[4096];
	size_t off = 0;

	off += (size_t)snprintf(body + off, sizeof(body) - off,
				"return {\n  component = '%s',\n  improvements = {\n", name);
	for (int i = 0; i < n; i++)
		off += (size_t)snprintf(body + off, sizeof(body) - off,
					"    { id = '%s', summary = 's', fixes = {}, severity = 'low',\n"
					"      apply = function(c) c:restart('%s') end },\n",
					ids[i], name);
	snprintf(body + off, sizeof(body) - off, "  },\n}\n");
	snprintf(path, sizeof(path), "%s/recipes/%s.lua", tree, name);
	tu_write(path, body);
}

START_TEST(test_recipe_load_all_ids_unique_across_files)
{
	char *tree = tu_tmpdir();
	const char *a[] = {"a-1", "shared-1"}, *b[] = {"b-1"}, *c[] = {"c-1", "shared-1"};
	bsi_source *src;
	bsi_root *root;
	bsi_changeset *cs;

	tu_must("mkdir -p '%s/recipes'", tree);
	write_recipe(tree, "alpha", a, 2);
	write_recipe(tree, "beta", b, 1);
	ck_assert_int_eq(bsi_source_open_dir(&src, tree), 0);
	ck_assert_int_eq(bsi_root_open(&root, rootdir), 0);
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);

	ck_assert_msg(bsi_recipe_load_all(cs, src, root, &limits, NULL) == 0, "%s", bsi_error_message());
	ck_assert_uint_eq(cs->count, 3);
	ck_assert_str_eq(cs->items[0].id, "a-1");
	ck_assert_str_eq(cs->items[0].recipe, "recipes/alpha.lua");
	ck_assert_str_eq(cs->items[1].id, "shared-1");
	ck_assert_str_eq(cs->items[2].id, "b-1");
	ck_assert_str_eq(cs->items[2].component, "beta");
	ck_assert_str_eq(cs->items[2].actions[0].service, "beta");
	bsi_changeset_free(cs);

	/* A third file reusing an id: neither definition applies, each error
	 * names both places; everything else of all three files plans. */
	write_recipe(tree, "gamma", c, 2);
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_msg(bsi_recipe_load_all(cs, src, root, &limits, NULL) == 0, "%s",
		      bsi_error_message());
	ck_assert_uint_eq(cs->count, 4);
	ck_assert_str_eq(cs->items[1].id, "shared-1");
	ck_assert_int_eq(cs->items[1].status, BSI_STATUS_ERROR);
	ck_assert_int_eq(cs->items[1].error_code, BSI_ERECIPE);
	ck_assert_str_eq(cs->items[1].reason,
			 "recipes/alpha.lua:6: improvement \"shared-1\": duplicate id \"shared-1\" "
			 "(also at recipes/gamma.lua:6); neither applies");
	ck_assert_uint_eq(cs->items[1].nactions, 1); /* shown, never applied */
	ck_assert_uint_eq(cs->nerrors, 1);
	ck_assert_str_eq(cs->errors[0].file, "recipes/gamma.lua");
	ck_assert_int_eq(cs->errors[0].line, 6);
	ck_assert_str_eq(cs->errors[0].reason,
			 "recipes/gamma.lua:6: improvement \"shared-1\": duplicate id \"shared-1\" "
			 "(also at recipes/alpha.lua:6); neither applies");
	ck_assert_str_eq(cs->items[2].id, "b-1");
	ck_assert_int_eq(cs->items[2].status, BSI_STATUS_PENDING);
	ck_assert_str_eq(cs->items[3].id, "c-1");
	ck_assert_int_eq(cs->items[3].status, BSI_STATUS_PENDING);
	ck_assert_int_eq(bsi_changeset_worst_error(cs, NULL, NULL), BSI_ERECIPE);
	bsi_changeset_free(cs);
	bsi_root_free(root);
	bsi_source_free(src);
}
END_TEST

/* A file that fails as a whole is an error of that file, named with its
 * line; the other files evaluate as usual. */
START_TEST(test_recipe_load_all_isolates_a_failing_file)
{
	char *tree = tu_tmpdir(), path[4096];
	const char *a[] = {"a-1"};
	bsi_source *src;
	bsi_changeset *cs;

	tu_must("mkdir -p '%s/recipes'", tree);
	write_recipe(tree, "alpha", a, 1);
	snprintf(path, sizeof(path), "%s/recipes/zulu.lua", tree);
	tu_write(path, "while true do end\n");
	ck_assert_int_eq(bsi_source_open_dir(&src, tree), 0);
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_msg(bsi_recipe_load_all(cs, src, NULL, &limits, NULL) == 0, "%s",
		      bsi_error_message());
	ck_assert_uint_eq(cs->count, 1);
	ck_assert_str_eq(cs->items[0].id, "a-1");
	ck_assert_int_eq(cs->items[0].status, BSI_STATUS_PENDING);
	ck_assert_uint_eq(cs->nerrors, 1);
	ck_assert_str_eq(cs->errors[0].file, "recipes/zulu.lua");
	ck_assert_int_eq(cs->errors[0].line, 1);
	ck_assert_int_eq(cs->errors[0].code, BSI_ERECIPE);
	ck_assert_str_eq(cs->errors[0].reason, "recipes/zulu.lua:1: CPU budget of 0.25 s exceeded");
	bsi_changeset_free(cs);
	bsi_source_free(src);
}
END_TEST

/* The feed's budgets: a file that would pass one is an error of that file,
 * named with the budget and its configuration key; the files before and
 * after it that fit are evaluated. */
START_TEST(test_recipe_load_all_feed_budgets)
{
	char *tree = tu_tmpdir();
	const char *a[] = {"a-1"}, *b[] = {"b-1", "b-2"}, *c[] = {"c-1"};
	bsi_recipe_feed_limits feed;
	bsi_changeset *cs;
	bsi_source *src;

	tu_must("mkdir -p '%s/recipes'", tree);
	write_recipe(tree, "alpha", a, 1);
	write_recipe(tree, "beta", b, 2);
	write_recipe(tree, "gamma", c, 1);
	ck_assert_int_eq(bsi_source_open_dir(&src, tree), 0);

	bsi_recipe_feed_limits_default(&feed);
	feed.max_files = 2;
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_recipe_load_all(cs, src, NULL, &limits, &feed), 0);
	ck_assert_uint_eq(cs->count, 3);
	ck_assert_uint_eq(cs->nerrors, 1);
	ck_assert_str_eq(cs->errors[0].file, "recipes/gamma.lua");
	ck_assert_str_eq(cs->errors[0].reason, "recipes/gamma.lua: not evaluated: the feed has 3 "
					       "recipe files, more than feed_max_recipes (2)");
	bsi_changeset_free(cs);

	bsi_recipe_feed_limits_default(&feed);
	feed.max_improvements = 2;
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_recipe_load_all(cs, src, NULL, &limits, &feed), 0);
	ck_assert_uint_eq(cs->count, 2);
	ck_assert_str_eq(cs->items[0].id, "a-1");
	ck_assert_str_eq(cs->items[1].id, "c-1");
	ck_assert_uint_eq(cs->nerrors, 1);
	ck_assert_str_eq(cs->errors[0].reason,
			 "recipes/beta.lua: not evaluated: its 2 improvements would pass the feed's "
			 "budget of 2 (feed_max_improvements)");
	ck_assert_int_eq(cs->errors[0].code, BSI_ERECIPE);
	bsi_changeset_free(cs);

	bsi_recipe_feed_limits_default(&feed);
	feed.max_actions = 1;
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_recipe_load_all(cs, src, NULL, &limits, &feed), 0);
	ck_assert_uint_eq(cs->count, 1);
	ck_assert_uint_eq(cs->nerrors, 2);
	ck_assert_msg(strstr(cs->errors[1].reason, "recipes/gamma.lua: not evaluated: its 1 "
						   "actions would pass the feed's budget of 1 "
						   "(feed_max_actions)"),
		      "%s", cs->errors[1].reason);
	bsi_changeset_free(cs);

	/* time: a file that spends the feed's time leaves the rest out */
	write_recipe(tree, "alpha", a, 1);
	tu_write(strcat(strcpy((char[4200]){0}, tree), "/recipes/aaa.lua"),
		 "local x = 0\nfor i = 1, 3e6 do x = x + i end\n"
		 "return { component = 'slow', improvements = {} }\n");
	bsi_recipe_feed_limits_default(&feed);
	feed.max_seconds = 0.01;
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_recipe_load_all(cs, src, NULL, &limits, &feed), 0);
	ck_assert_uint_eq(cs->count, 0);
	/* aaa.lua ran (under valgrind its CPU budget may stop it: an error
	 * of its own); the three after it were not evaluated */
	ck_assert_uint_ge(cs->nerrors, 3);
	ck_assert_str_eq(cs->errors[cs->nerrors - 3].reason,
			 "recipes/alpha.lua: not evaluated: evaluating the feed took more than "
			 "feed_eval_seconds (0.01 s)");
	ck_assert_str_eq(cs->errors[cs->nerrors - 1].file, "recipes/gamma.lua");
	bsi_changeset_free(cs);
	bsi_source_free(src);
}
END_TEST

/* The reference recipes of the repository pass `recipe check`, and plan
 * against the sample images: every improvement comes back, and `when`
 * sees the device (applicable on "current", not on "old"). */
/*
 * The in-process entry point fuzz_recipe uses must judge a recipe as the
 * sandbox does, or fuzzing it proves nothing: same code, same message,
 * same change set, against a root and without one.
 */
START_TEST(test_recipe_in_process_matches_sandbox)
{
	static const char *const texts[] = {
		EMPTY_RECIPE,
		"return { component = 'c', improvements = { { id = 'c-1', summary = 's',\n"
		"  fixes = { 'CVE-2026-0001' }, severity = 'high',\n"
		"  when = function() return bsi.exists('etc/version') end,\n"
		"  apply = function(change)\n"
		"    change:replace('etc/version', { from = 'sha256:' .. string.rep('0', 64),\n"
		"      to = 'sha256:' .. string.rep('1', 64), payload = 'payloads/v' })\n"
		"    change:restart('demo.service') end } } }\n",
		"return { component = 'c', improvements = { { id = 'c-1', bogus = 1 } } }\n",
		"error('boom')\n",
		"local s = 'x' while true do s = s .. s end\n",
		"while true do end\n",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		for (int with_root = 0; with_root < 2; with_root++) {
			bsi_changeset *a, *b;
			bsi_root *root = NULL;
			char *msg_a, *ja, *jb;
			json_t *da, *db;
			int rc_a, rc_b;

			ck_assert_int_eq(bsi_changeset_new(&a), 0);
			ck_assert_int_eq(bsi_changeset_new(&b), 0);
			if (with_root)
				ck_assert_int_eq(bsi_root_open(&root, rootdir), 0);
			rc_a = bsi_recipe_load_buffer(a, "recipes/t.lua", texts[i], strlen(texts[i]),
						      root, &limits);
			msg_a = strdup(bsi_error_message());
			rc_b = bsi_recipe_load_buffer_in_process(b, "recipes/t.lua", texts[i],
								 strlen(texts[i]), root, &limits);
			ck_assert_msg(rc_a == rc_b, "%s: sandbox %d (%s), in process %d (%s)",
				      texts[i], rc_a, msg_a, rc_b, bsi_error_message());
			if (rc_a < 0)
				ck_assert_str_eq(msg_a, bsi_error_message());
			da = bsi_changeset_to_json(a);
			db = bsi_changeset_to_json(b);
			ja = json_dumps(da, JSON_SORT_KEYS | JSON_COMPACT);
			jb = json_dumps(db, JSON_SORT_KEYS | JSON_COMPACT);
			ck_assert_str_eq(ja, jb);
			json_decref(da);
			json_decref(db);
			free(ja);
			free(jb);
			free(msg_a);
			bsi_root_free(root);
			bsi_changeset_free(a);
			bsi_changeset_free(b);
		}
	}
}
END_TEST

START_TEST(test_recipe_reference_recipes)
{
	char *tree = tu_tmpdir(), *current = tu_tmpdir(), *old = tu_tmpdir();
	bsi_source *src;
	bsi_root *root;
	bsi_changeset *cs, *checked;
	char **files;
	size_t nfiles;

	tu_sample_tree(tree);
	tu_sample_image("current", current);
	tu_sample_image("old", old);
	ck_assert_int_eq(bsi_source_open_dir(&src, tree), 0);
	ck_assert_int_eq(bsi_source_list_recipes(src, &files, &nfiles), 0);
	ck_assert_uint_ge(nfiles, 3);
	ck_assert_int_eq(bsi_changeset_new(&checked), 0);
	for (size_t i = 0; i < nfiles; i++) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", tree, files[i]);
		ck_assert_msg(bsi_recipe_check_file(checked, path, NULL) == 0, "%s: %s", files[i],
			      bsi_error_message());
		free(files[i]);
	}
	free(files);

	ck_assert_int_eq(bsi_root_open(&root, current), 0);
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_msg(bsi_recipe_load_all(cs, src, root, NULL, NULL) == 0, "%s", bsi_error_message());
	ck_assert_uint_eq(cs->count, checked->count);
	for (size_t i = 0; i < cs->count; i++) {
		ck_assert_int_eq(cs->items[i].status, BSI_STATUS_PENDING);
		ck_assert_uint_gt(cs->items[i].nactions, 0);
		ck_assert_ptr_nonnull(strstr(cs->items[i].recipe, "recipes/"));
	}
	bsi_changeset_free(cs);
	bsi_root_free(root);

	ck_assert_int_eq(bsi_root_open(&root, old), 0);
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_msg(bsi_recipe_load_all(cs, src, root, NULL, NULL) == 0, "%s", bsi_error_message());
	for (size_t i = 0; i < cs->count; i++) {
		ck_assert_int_eq(cs->items[i].status, BSI_STATUS_NOT_APPLICABLE);
		ck_assert_ptr_nonnull(cs->items[i].reason);
		ck_assert_uint_eq(cs->items[i].nactions, 0);
	}
	bsi_changeset_free(cs);
	bsi_changeset_free(checked);
	bsi_root_free(root);
	bsi_source_free(src);
}
END_TEST

static Suite *recipe_suite(void)
{
	Suite *s = suite_create("recipe");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_recipe_happy_path);
	tcase_add_test(tc, test_recipe_os_version);
	tcase_add_test(tc, test_recipe_check_mode);
	tcase_add_test(tc, test_recipe_check_mode_refuses_escape);
	tcase_add_test(tc, test_recipe_metatables_still_work);
	tcase_add_test(tc, test_recipe_stdlib_is_deterministic);
	tcase_add_loop_test(tc, test_recipe_forbidden_functions, 0,
			    sizeof(forbidden) / sizeof(forbidden[0]));
	tcase_add_test(tc, test_recipe_binary_chunks_refused);
	tcase_add_test(tc, test_recipe_binary_recipe_file_refused);
	tcase_add_loop_test(tc, test_recipe_cpu_budget, 0, sizeof(cpu_bombs) / sizeof(cpu_bombs[0]));
	tcase_add_test(tc, test_recipe_cpu_budget_in_functions);
	tcase_add_loop_test(tc, test_recipe_catastrophic_pattern, 0,
			    sizeof(c_bombs) / sizeof(c_bombs[0]));
	tcase_add_test(tc, test_recipe_wall_clock);
	tcase_add_loop_test(tc, test_recipe_memory_limit, 0,
			    sizeof(memory_bombs) / sizeof(memory_bombs[0]));
	tcase_add_loop_test(tc, test_recipe_bsi_readonly, 0, sizeof(readonly) / sizeof(readonly[0]));
	tcase_add_loop_test(tc, test_recipe_paths_confined, 0, sizeof(escapes) / sizeof(escapes[0]));
	tcase_add_test(tc, test_recipe_paths_inside_symlink_followed);
	tcase_add_test(tc, test_recipe_special_files_not_opened);
	tcase_add_test(tc, test_recipe_limits_validated);
	tcase_add_loop_test(tc, test_recipe_schema_errors, 0, sizeof(schema) / sizeof(schema[0]));
	tcase_add_loop_test(tc, test_recipe_whole_file_errors, 0, sizeof(whole) / sizeof(whole[0]));
	tcase_add_loop_test(tc, test_recipe_improvement_errors, 0, sizeof(own) / sizeof(own[0]));
	tcase_add_test(tc, test_recipe_load_all_ids_unique_across_files);
	tcase_add_test(tc, test_recipe_load_all_isolates_a_failing_file);
	tcase_add_test(tc, test_recipe_load_all_feed_budgets);
	tcase_add_test(tc, test_recipe_reference_recipes);
	tcase_add_test(tc, test_recipe_in_process_matches_sandbox);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(recipe_suite());
}
