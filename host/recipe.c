/* recipe.c - the Lua recipe sandbox and schema; see recipe.h and docs/recipes.md. */
#include "recipe.h"

#include "digest.h"
#include "error.h"
#include "luastd.h"
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HOOK_COUNT 10000        /* instructions between CPU checks */
#define MAX_IMPROVEMENTS 1024   /* per recipe file */
#define MAX_ACTIONS 256         /* per improvement */
#define MAX_FILE_ACTIONS 4096   /* per recipe file: bounds the child's output */
#define MAX_LIST 256            /* fixes, supersedes */
#define MAX_NAME 128            /* ids, components, services */
#define MAX_TEXT 4096           /* summary */
#define MAX_REASON 1024         /* `when` reason, one log line */
#define MAX_LOG_LINES 200
#define MAX_LOG_BYTES ((size_t)64 << 10)
#define CHANGE_MT "bsi.change"

static const char *const severities[] = {"low", "medium", "high", "critical", NULL};
static const char *const top_fields[] = {"component", "improvements", NULL};
static const char *const imp_fields[] = {"id",   "summary", "fixes",      "severity",
					 "when", "apply",   "supersedes", NULL};
static const char *const replace_fields[] = {"from", "to", "payload", NULL};

/* Everything one evaluation (one recipe file, in the child) needs. */
typedef struct {
	const char *name; /* recipe file, for messages and imp->recipe */
	const char *text;
	size_t len;
	const bsi_root *root; /* NULL: check mode */
	char short_src[LUA_IDSIZE];
	/* memory ceiling */
	size_t mem_limit, mem_used;
	bool mem_refused;
	/* CPU budget */
	double cpu_seconds, cpu_start;
	bool cpu_tripped;
	int cpu_line;
	/* results */
	bsi_changeset *cs;
	json_t *log;
	size_t log_bytes;
	size_t nactions; /* recorded in this file */
	int host_code; /* a host-side failure behind the last Lua error */
} recipe_ctx;

/* The userdata passed to apply as `change`. */
typedef struct {
	size_t index; /* improvement in ctx->cs */
	bool live;    /* false once its apply returned */
} recipe_change;

/* ---- small helpers (no Lua) ---- */

static bool valid_name(const char *s, size_t len)
{
	if (len == 0 || len > MAX_NAME || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

/* Service names go to a service manager's argv: no option look-alikes. */
static bool valid_service(const char *s, size_t len)
{
	if (len == 0 || len > MAX_NAME || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-@:", s[i]))
			return false;
	return true;
}

static bool valid_cve(const char *s, size_t len)
{
	size_t digits = 0;

	if (len < 13 || len > 32 || strncmp(s, "CVE-", 4) != 0)
		return false;
	for (size_t i = 4; i < 8; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	if (s[8] != '-')
		return false;
	for (size_t i = 9; i < len; i++, digits++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return digits >= 4;
}

/* Fields a recipe sets are stricter than text shown: no tab either. */
static bool has_control(const char *s, size_t len)
{
	return memchr(s, '\t', len) != NULL || bsi_text_has_control(s, len);
}

/*
 * A path recorded for the host to act on (replace target, payload): plain
 * and canonical, "a/b/c" - not empty, not absolute, no "", "." or ".."
 * components, no control characters.  Returns NULL or what is wrong.
 */
static const char *plain_path_problem(const char *p, size_t len)
{
	const char *c = p, *end = p + len;

	if (len == 0)
		return "is empty";
	if (len >= PATH_MAX || strlen(p) != len || has_control(p, len) || !bsi_text_is_utf8(p, len))
		return "is not a plain path (control characters, or not UTF-8)";
	if (p[0] == '/')
		return "is absolute (paths are relative to the target root)";
	while (c <= end) {
		const char *slash = memchr(c, '/', (size_t)(end - c));
		size_t n = slash ? (size_t)(slash - c) : (size_t)(end - c);

		if (n == 0 || (n == 1 && c[0] == '.'))
			return "has an empty or \".\" component";
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return "has a \"..\" component";
		c += n + 1;
	}
	return NULL;
}

/*
 * Check mode has no root to resolve against, so a query path is checked
 * lexically there, refusing what fsroot.h would refuse in its words: empty,
 * absolute, or climbing above the root by its own ".." components.  With a
 * root, fsroot.h alone decides (symlinks included).
 */
static const char *query_path_problem(const char *p, size_t len)
{
	const char *c = p, *end = p + len;
	long depth = 0;

	if (len == 0)
		return "empty path";
	if (len >= PATH_MAX || strlen(p) != len)
		return "path too long, or holds a NUL byte";
	if (p[0] == '/')
		return "absolute paths are not allowed; paths are relative to the target root";
	while (c < end) {
		const char *slash = memchr(c, '/', (size_t)(end - c));
		size_t n = slash ? (size_t)(slash - c) : (size_t)(end - c);

		if (n == 2 && c[0] == '.' && c[1] == '.') {
			if (--depth < 0)
				return "\"..\" leads outside the target root";
		} else if (n > 0 && !(n == 1 && c[0] == '.')) {
			depth++;
		}
		c += n + 1;
	}
	return NULL;
}

/*
 * Best-effort source line for messages about table fields (Lua keeps no
 * line numbers for table constructors): the first line in [from, to) that
 * assigns `key` ("key =", not "=="), and whose rest contains value when
 * value is given.  to == 0 means to the end.  0 when none.
 */
static int key_line(const recipe_ctx *c, const char *key, const char *value, int from, int to)
{
	const char *p = c->text, *end = c->text + c->len;
	size_t klen = strlen(key);
	int line = 1;

	while (p < end && (to == 0 || line < to)) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *q = p;

		if (!eol)
			eol = end;
		while (line >= from && (q = memmem(q, (size_t)(eol - q), key, klen)) != NULL) {
			const char *r = q + klen;
			bool word = (q == p || !(isalnum((unsigned char)q[-1]) || q[-1] == '_')) &&
				    (r >= eol || !(isalnum((unsigned char)*r) || *r == '_'));

			while (r < eol && (*r == ' ' || *r == '\t'))
				r++;
			if (word && r < eol && *r == '=' && (r + 1 >= eol || r[1] != '=') &&
			    (!value || memmem(r, (size_t)(eol - r), value, strlen(value))))
				return line;
			q += klen;
		}
		p = eol + 1;
		line++;
	}
	return 0;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- limits: the allocator and the count hook ---- */

/*
 * lua_Alloc with a ceiling: refuses growth past mem_limit (Lua then runs an
 * emergency collection and raises "not enough memory" if that does not
 * help).  The ceiling counts live bytes, so garbage does not count once
 * collected.
 */
static void *recipe_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	recipe_ctx *c = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		c->mem_used -= old;
		return NULL;
	}
	if (nsize > old && nsize - old > c->mem_limit - c->mem_used) {
		c->mem_refused = true;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (!p) {
		c->mem_refused = true;
		return NULL;
	}
	c->mem_used = c->mem_used - old + nsize;
	return p;
}

/*
 * Count hook: once the CPU budget is spent it raises, and re-arms itself to
 * run on every instruction, so a pcall that catches the error gets no
 * further than its next instruction.  Coroutines inherit the hook.
 */
static void l_recipe_hook(lua_State *L, lua_Debug *ar)
{
	void *ud;
	recipe_ctx *c;

	lua_getallocf(L, &ud);
	c = ud;
	if (!c->cpu_tripped && cpu_now() - c->cpu_start < c->cpu_seconds)
		return;
	if (!c->cpu_tripped) {
		c->cpu_tripped = true;
		if (lua_getinfo(L, "l", ar))
			c->cpu_line = ar->currentline > 0 ? ar->currentline : 0;
	}
	lua_sethook(L, l_recipe_hook, LUA_MASKCOUNT, 1);
	lua_pushliteral(L, "CPU budget exceeded");
	lua_error(L);
}

/* ---- raising errors with file:line ---- */

static recipe_ctx *ctx_of(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* The current line of the Lua function `level` levels up (1: our caller). */
static int caller_line(lua_State *L, int level)
{
	lua_Debug ar;

	if (lua_getstack(L, level, &ar) && lua_getinfo(L, "l", &ar) && ar.currentline > 0)
		return ar.currentline;
	return 0;
}

/* Raise "<file>:<line>: <message>" (no line when 0).  Never returns. */
static int __attribute__((format(printf, 3, 4)))
raise_at(lua_State *L, int line, const char *fmt, ...)
{
	void *ud;
	recipe_ctx *c;
	char msg[1536];
	va_list ap;

	lua_getallocf(L, &ud);
	c = ud;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		lua_pushfstring(L, "%s:%d: %s", c->name, line, msg);
	else
		lua_pushfstring(L, "%s: %s", c->name, msg);
	return lua_error(L);
}

/* Raise a host-side failure (bsi_error_message()) as a Lua error. */
static int raise_host(lua_State *L, int code, const char *what)
{
	void *ud;

	lua_getallocf(L, &ud);
	((recipe_ctx *)ud)->host_code = code == BSI_ERECIPE ? 0 : code;
	return raise_at(L, caller_line(L, 1), "%s: %s", what, bsi_error_message());
}

/* A short description of the value at idx for "(got ...)". */
static const char *describe(lua_State *L, int idx, char *buf, size_t cap)
{
	size_t len;
	const char *s;

	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		if (len > 60) {
			char part[61];

			bsi_text_clean(part, sizeof(part), s, 60);
			snprintf(buf, cap, "\"%s...\"", part);
		} else {
			char all[61];

			bsi_text_clean(all, sizeof(all), s, len);
			snprintf(buf, cap, "\"%s\"", all);
		}
		return buf;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			snprintf(buf, cap, "%lld", (long long)lua_tointeger(L, idx));
		else
			snprintf(buf, cap, "%g", lua_tonumber(L, idx));
		return buf;
	case LUA_TBOOLEAN:
		return lua_toboolean(L, idx) ? "true" : "false";
	case LUA_TNIL:
		return "nil";
	default:
		snprintf(buf, cap, "a %s", lua_typename(L, lua_type(L, idx)));
		return buf;
	}
}

/* The table key at idx as text for "unknown field ..." messages. */
static const char *key_text(lua_State *L, int idx, char *buf, size_t cap)
{
	if (lua_type(L, idx) == LUA_TSTRING) {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);

		bsi_text_clean(buf, cap, s, len);
		return buf;
	}
	snprintf(buf, cap, "[%s]", describe(L, idx, (char[64]){0}, 64));
	return buf;
}

/* The string at idx if it is a string without NUL bytes, else NULL. */
static const char *plain_string(lua_State *L, int idx, size_t *len)
{
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		return NULL;
	s = lua_tolstring(L, idx, len);
	return strlen(s) == *len ? s : NULL;
}

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* [-0, +1, -] Push t[key] without metamethods; returns its type. */
static int rawfield(lua_State *L, int idx, const char *key)
{
	idx = lua_absindex(L, idx);
	lua_pushstring(L, key);
	return lua_rawget(L, idx);
}

/* Is every key of the table at idx a string in allowed?  If not, leaves
 * the offending key on the stack top and returns false. */
/* Is the key at a a better one to report than the key at b: a string
 * before a number before the other types by name, then the smallest
 * (bytewise, by value, false first); keys of other types read the same in
 * the message ("[a table]").  Table order changes from run to run; the
 * message must not. */
static bool report_first(lua_State *L, int a, int b)
{
	int ta = lua_type(L, a), tb = lua_type(L, b);

	if (ta != tb)
		return ta == LUA_TSTRING ||
		       (tb != LUA_TSTRING &&
			(ta == LUA_TNUMBER ||
			 (tb != LUA_TNUMBER && strcmp(lua_typename(L, ta), lua_typename(L, tb)) < 0)));
	if (ta == LUA_TBOOLEAN)
		return !lua_toboolean(L, a) && lua_toboolean(L, b);
	if (ta == LUA_TSTRING) {
		size_t la, lb;
		const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
		int c = memcmp(sa, sb, la < lb ? la : lb);

		return c < 0 || (c == 0 && la < lb);
	}
	return ta == LUA_TNUMBER && lua_compare(L, a, b, LUA_OPLT);
}

/* True when every key of the table at idx is one of allowed; else false,
 * with the key to report pushed (the same one in every run). */
static bool only_fields(lua_State *L, int idx, const char *const *allowed)
{
	int bad = 0;

	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING && in_list(allowed, lua_tostring(L, -1)))
			continue;
		if (!bad) {
			lua_pushvalue(L, -1);
			lua_insert(L, -2);
			bad = lua_gettop(L) - 1;
		} else if (report_first(L, -1, bad)) {
			lua_pushvalue(L, -1);
			lua_replace(L, bad);
		}
	}
	return bad == 0;
}

/* Length of the table at idx if it is a list (keys exactly 1..n), else -1. */
static lua_Integer list_length(lua_State *L, int idx)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;

	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
			lua_pop(L, 1);
			return -1;
		}
		count++;
	}
	return count == n ? n : -1;
}

/* ---- queries: the bsi module ---- */

/*
 * Resolve a query path under the root (fsroot.h) and open it for reading
 * if it is a regular file; with any_type, return the O_PATH descriptor of
 * whatever it is.  Returns the descriptor, or -1 when it is missing, of
 * another type, or there is no root (check mode).  Raises on a path that is
 * refused.
 *
 * The final component is first opened O_PATH and checked with fstat, so a
 * device node or FIFO under the root is never opened for real (opening some
 * devices has side effects); a regular file is then reopened through
 * /proc/self/fd, which names that same inode.
 */
static int query_open(lua_State *L, recipe_ctx *c, const char *fn, bool any_type)
{
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len);
	struct stat st, st2;
	char shown[256], proc[64];
	int pfd = -1, fd, rc;

	bsi_text_clean(shown, sizeof(shown), path, len);
	if (!c->root) {
		const char *problem = query_path_problem(path, len);

		if (problem)
			return raise_at(L, caller_line(L, 1), "%s: path \"%s\" refused: %s", fn,
					shown, problem);
		return -1;
	}
	if (strlen(path) != len)
		return raise_at(L, caller_line(L, 1), "%s: path \"%s\" holds a NUL byte", fn, shown);
	rc = bsi_root_open_file(c->root, path, O_PATH, &pfd);
	if (rc < 0)
		return raise_host(L, rc, fn);
	if (pfd < 0)
		return -1;
	if (any_type)
		return pfd; /* existence is all that is asked */
	if (fstat(pfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(pfd);
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		/* No /proc: resolve again, and insist on the same inode. */
		rc = bsi_root_open_file(c->root, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, &fd);
		if (rc < 0) {
			close(pfd);
			return raise_host(L, rc, fn);
		}
	}
	close(pfd);
	if (fd >= 0 && (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Digest of a query path into out; false when missing or not a file. */
static bool query_hash(lua_State *L, recipe_ctx *c, const char *fn, char out[BSI_DIGEST_STRLEN + 1])
{
	int fd = query_open(L, c, fn, false), rc;

	if (fd < 0)
		return false;
	rc = bsi_digest_fd(fd, out);
	close(fd);
	if (rc < 0)
		return raise_host(L, rc, fn);
	return true;
}

/* bsi.hash(path) -> "sha256:<hex>" | nil */
static int l_recipe_hash(lua_State *L) /* [-1, +1, e] */
{
	char digest[BSI_DIGEST_STRLEN + 1];

	if (!query_hash(L, ctx_of(L), "bsi.hash", digest))
		lua_pushnil(L);
	else
		lua_pushstring(L, digest);
	return 1;
}

/* bsi.verify(path, digest) -> boolean */
static int l_recipe_verify(lua_State *L) /* [-2, +1, e] */
{
	const char *want = luaL_checkstring(L, 2);
	char digest[BSI_DIGEST_STRLEN + 1];

	if (!bsi_digest_valid(want))
		return raise_at(L, caller_line(L, 1),
				"bsi.verify: %s is not a digest (\"sha256:\" and 64 lowercase hex digits)",
				describe(L, 2, (char[96]){0}, 96));
	lua_pushboolean(L, query_hash(L, ctx_of(L), "bsi.verify", digest) &&
				   strcmp(digest, want) == 0);
	return 1;
}

/* bsi.exists(path) -> boolean (any type; the node is never opened for real) */
static int l_recipe_exists(lua_State *L) /* [-1, +1, e] */
{
	int fd = query_open(L, ctx_of(L), "bsi.exists", true);

	if (fd >= 0)
		close(fd);
	lua_pushboolean(L, fd >= 0);
	return 1;
}

/* bsi.read(path [, max]) -> at most min(max, 64 KiB) bytes of a file | nil */
static int l_recipe_read(lua_State *L) /* [-(1|2), +1, e] */
{
	lua_Integer max = luaL_optinteger(L, 2, (lua_Integer)BSI_RECIPE_READ_MAX);
	char buf[BSI_RECIPE_READ_MAX];
	size_t len = 0;
	struct stat st;
	int fd;

	if (max < 0)
		return raise_at(L, caller_line(L, 1), "bsi.read: max must not be negative");
	if ((size_t)max > sizeof(buf))
		max = (lua_Integer)sizeof(buf);
	fd = query_open(L, ctx_of(L), "bsi.read", false);
	if (fd < 0) {
		lua_pushnil(L);
		return 1;
	}
	/* No further than the size the file states, as hashing does: a file
	 * of /proc or /sys states 0 and makes up its bytes as it is read (a
	 * random uuid, a pid), which would make the plan differ from run to
	 * run.  Reading one byte more tells such a file. */
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		bsi_error_set(BSI_EFAIL, "%s", strerror(e));
		return raise_host(L, BSI_EFAIL, "bsi.read");
	}
	if ((uint64_t)st.st_size < (uint64_t)max) {
		char extra;
		ssize_t n;

		max = (lua_Integer)st.st_size;
		while ((n = pread(fd, &extra, 1, st.st_size)) < 0 && errno == EINTR)
			;
		if (n > 0) {
			close(fd);
			return raise_at(L, caller_line(L, 1),
					"bsi.read: it holds more than the %jd bytes its size says (a "
					"file of /proc or /sys, or one being written to); bsi reads "
					"files of a settled size only",
					(intmax_t)st.st_size);
		}
	}
	while (len < (size_t)max) {
		ssize_t n = read(fd, buf + len, (size_t)max - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			bsi_error_set(BSI_EFAIL, "%s", strerror(e));
			return raise_host(L, BSI_EFAIL, "bsi.read");
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	lua_pushlstring(L, buf, len);
	return 1;
}

/* Read at most cap-1 bytes of the file at `path` under the root into buf
 * (NUL-terminated); false when absent or not a regular file. */
static bool query_small_file(lua_State *L, recipe_ctx *c, const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	int fd;

	lua_settop(L, 0);
	lua_pushstring(L, path);
	fd = query_open(L, c, "bsi.os_version", false);
	if (fd < 0)
		return false;
	while (len < cap - 1) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return true;
}

/* Copy the version-like prefix of s ([0-9A-Za-z._-]) into out. */
static bool take_version(const char *s, char out[64])
{
	size_t n = strspn(s, "0123456789abcdefghijklmnopqrstuvwxyz"
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZ._-");

	if (n == 0 || n >= 64)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/*
 * bsi.os_version() -> "26.0" | nil: the device's OS version, from
 * System/Library/CoreServices/SystemVersion.plist (ProductVersion) or else
 * etc/os-release (VERSION_ID), both under the target root.  nil without a
 * root (recipe check) or when neither file says.
 */
static int l_recipe_os_version(lua_State *L) /* [-0, +1, e] */
{
	recipe_ctx *c = ctx_of(L);
	char buf[8192], version[64];
	const char *p;
	bool found = false;

	if (c->root && query_small_file(L, c, "System/Library/CoreServices/SystemVersion.plist",
					buf, sizeof(buf)) &&
	    (p = strstr(buf, "<key>ProductVersion</key>")) && (p = strstr(p, "<string>")))
		found = take_version(p + strlen("<string>"), version);
	if (!found && c->root && query_small_file(L, c, "etc/os-release", buf, sizeof(buf))) {
		for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
			if (strncmp(p, "VERSION_ID=", 11) == 0) {
				p += 11;
				found = take_version(p + (*p == '"' || *p == '\''), version);
				break;
			}
		}
	}
	lua_settop(L, 0);
	if (found)
		lua_pushstring(L, version);
	else
		lua_pushnil(L);
	return 1;
}

/* bsi.log(msg): one line, "<file>:<line>: msg", printed by the host. */
static int l_recipe_log(lua_State *L) /* [-1, +0, e] */
{
	recipe_ctx *c = ctx_of(L);
	size_t len;
	const char *msg = luaL_checklstring(L, 1, &len);
	char text[MAX_REASON], line[MAX_REASON + 200];

	if (json_array_size(c->log) >= MAX_LOG_LINES || c->log_bytes >= MAX_LOG_BYTES)
		return 0;
	bsi_text_clean(text, sizeof(text), msg, len);
	snprintf(line, sizeof(line), "%s:%d: %s", c->name, caller_line(L, 1), text);
	c->log_bytes += strlen(line);
	json_array_append_new(c->log, json_string(line));
	return 0;
}

/* __index of the bsi module: a known function or an error (typos show). */
static int l_recipe_bsi_index(lua_State *L) /* [-2, +1, e] */
{
	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNIL)
		return raise_at(L, caller_line(L, 1), "bsi.%s does not exist",
				key_text(L, 2, (char[80]){0}, 80));
	return 1;
}

/* __newindex of bsi and of change objects. */
static int l_recipe_readonly(lua_State *L) /* [-3, +0, e] */
{
	return raise_at(L, caller_line(L, 1), "bsi objects are read-only (assigning %s)",
			key_text(L, 2, (char[80]){0}, 80));
}

/* ---- the globals table and base-library replacements ---- */

/* __index of _G: "bsi" is served from here, never stored in _G. */
static int l_recipe_globals_index(lua_State *L) /* [-2, +1, -] */
{
	if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "bsi") == 0)
		lua_pushvalue(L, lua_upvalueindex(1));
	else
		lua_pushnil(L);
	return 1;
}

static bool is_bsi_global(lua_State *L, int t, int k)
{
	bool hit;

	if (lua_type(L, k) != LUA_TSTRING || strcmp(lua_tostring(L, k), "bsi") != 0)
		return false;
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	hit = lua_rawequal(L, t, -1);
	lua_pop(L, 1);
	return hit;
}

/* __newindex of _G: refuses "bsi", stores anything else. */
static int l_recipe_globals_newindex(lua_State *L) /* [-3, +0, e] */
{
	if (is_bsi_global(L, 1, 2))
		return raise_at(L, caller_line(L, 1), "the bsi module is read-only (assigning bsi)");
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 0;
}

/* Metamethods a recipe may never have: a finalizer or a to-be-closed
 * handler runs where the CPU hook cannot stop it (and reaches interpreter
 * bugs: Lua 5.4.4 crashes on deeply nested coroutine.close), and weak
 * tables make the result depend on when the collector ran. */
static const char *const refused_metamethods[] = {"__gc", "__close", "__mode", NULL};

static const char *refused_metamethod(lua_State *L, int key)
{
	if (lua_type(L, key) != LUA_TSTRING)
		return NULL;
	for (const char *const *f = refused_metamethods; *f; f++)
		if (strcmp(lua_tostring(L, key), *f) == 0)
			return *f;
	return NULL;
}

/* Is the table at idx a sealed metatable: is its metatable the seal, the
 * upvalue number seal of the running C function? */
static bool is_sealed(lua_State *L, int idx, int seal)
{
	bool sealed;

	if (!lua_getmetatable(L, idx))
		return false;
	sealed = lua_rawequal(L, -1, lua_upvalueindex(seal));
	lua_pop(L, 1);
	return sealed;
}

/* [-3, +0, e] __newindex of the seal: a new field of a metatable, unless
 * it is a refused metamethod. */
static int l_recipe_meta_newindex(lua_State *L)
{
	const char *bad = refused_metamethod(L, 2);

	if (bad)
		return raise_at(L, caller_line(L, 1),
				"%s metamethods are not allowed in recipes (not even added to a "
				"metatable later)",
				bad);
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 0;
}

/* rawset(t, k, v), refusing to shadow the bsi global or to put a refused
 * metamethod into a metatable; upvalue 1 is the seal. */
static int l_recipe_rawset(lua_State *L) /* [-3, +1, e] */
{
	const char *bad;

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	if (is_bsi_global(L, 1, 2))
		return raise_at(L, caller_line(L, 1), "the bsi module is read-only (assigning bsi)");
	if (is_sealed(L, 1, 1) && (bad = refused_metamethod(L, 2)))
		return raise_at(L, caller_line(L, 1),
				"rawset: %s metamethods are not allowed in recipes", bad);
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 1;
}

/*
 * setmetatable(t, mt) without a refused metamethod in mt, and with mt
 * sealed: mt's own metatable becomes the seal (upvalue 2), whose
 * __newindex refuses such fields later and whose __metatable keeps a recipe
 * from taking the seal off.  So a metatable cannot have a metatable of its
 * own, and a table that is one cannot get one.  Upvalue 1 is Lua's
 * setmetatable.
 */
static int l_recipe_setmetatable(lua_State *L) /* [-2, +1, e] */
{
	if (lua_type(L, 1) == LUA_TTABLE && is_sealed(L, 1, 2))
		return raise_at(L, caller_line(L, 1),
				"setmetatable: this table is the metatable of another value and "
				"cannot have one of its own in recipes");
	if (lua_type(L, 2) == LUA_TTABLE) {
		for (const char *const *f = refused_metamethods; *f; f++) {
			bool present = rawfield(L, 2, *f) != LUA_TNIL;

			lua_pop(L, 1);
			if (present)
				return raise_at(L, caller_line(L, 1),
						"setmetatable: %s metamethods are not allowed in recipes",
						*f);
		}
		if (lua_rawequal(L, 1, 2))
			return raise_at(L, caller_line(L, 1),
					"setmetatable: a table cannot be its own metatable in recipes");
		if (!is_sealed(L, 2, 2)) {
			if (lua_getmetatable(L, 2))
				return raise_at(L, caller_line(L, 1),
						"setmetatable: a metatable with a metatable of its own is "
						"not allowed in recipes (use __index to chain tables)");
			lua_pushvalue(L, lua_upvalueindex(2));
			lua_setmetatable(L, 2);
		}
	}
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

/* load(chunk [, name [, mode [, env]]]): text only; without env the chunk
 * gets an empty environment, not the recipe's globals. */
static int l_recipe_load(lua_State *L) /* [-(1..4), +(1|2), e] */
{
	const char *mode = luaL_optstring(L, 3, "t");
	int n = lua_gettop(L);

	if (strcmp(mode, "t") != 0)
		return raise_at(L, caller_line(L, 1),
				"load: only text chunks are allowed (mode must be \"t\", got \"%s\")",
				mode);
	lua_settop(L, 4);
	if (n < 4)
	{
		lua_newtable(L);
		lua_replace(L, 4);
	}
	lua_pushliteral(L, "t");
	lua_replace(L, 3);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 4, LUA_MULTRET);
	return lua_gettop(L);
}

/* ---- the change object ---- */

static recipe_change *live_change(lua_State *L)
{
	recipe_change *ch = luaL_checkudata(L, 1, CHANGE_MT);

	if (!ch->live)
		raise_at(L, caller_line(L, 1), "change used outside the apply function it was given to");
	return ch;
}

/* change:replace(path, {from = digest, to = digest, payload = path}) */
static int l_recipe_replace(lua_State *L) /* [-3, +0, e] */
{
	recipe_ctx *c = ctx_of(L);
	recipe_change *ch = live_change(L);
	int line = caller_line(L, 1);
	size_t len, flen = 0, tlen = 0, plen = 0;
	const char *path = luaL_checklstring(L, 2, &len), *from, *to, *payload, *problem;
	bsi_improvement *imp = &c->cs->items[ch->index];
	char shown[256];
	int rc;

	bsi_text_clean(shown, sizeof(shown), path, len);
	if ((problem = plain_path_problem(path, len)) != NULL)
		return raise_at(L, line, "change:replace: path \"%s\" %s", shown, problem);
	luaL_checktype(L, 3, LUA_TTABLE);
	if (!only_fields(L, 3, replace_fields))
		return raise_at(L, line, "change:replace(\"%s\"): unknown field \"%s\" (expected from, to, payload)",
				shown, key_text(L, -1, (char[80]){0}, 80));
	rawfield(L, 3, "from");
	rawfield(L, 3, "to");
	rawfield(L, 3, "payload");
	from = plain_string(L, -3, &flen);
	to = plain_string(L, -2, &tlen);
	payload = plain_string(L, -1, &plen);
	if (!from || !bsi_digest_valid(from))
		return raise_at(L, line, "change:replace(\"%s\"): from must be a digest like \"sha256:<64 hex>\" (got %s)",
				shown, describe(L, -3, (char[96]){0}, 96));
	if (!to || !bsi_digest_valid(to))
		return raise_at(L, line, "change:replace(\"%s\"): to must be a digest like \"sha256:<64 hex>\" (got %s)",
				shown, describe(L, -2, (char[96]){0}, 96));
	if (strcmp(from, to) == 0)
		return raise_at(L, line, "change:replace(\"%s\"): from and to are the same digest", shown);
	if (!payload)
		return raise_at(L, line, "change:replace(\"%s\"): payload must be a path in the feed (got %s)",
				shown, describe(L, -1, (char[96]){0}, 96));
	if ((problem = plain_path_problem(payload, plen)) != NULL)
		return raise_at(L, line, "change:replace(\"%s\"): payload path %s", shown, problem);
	for (size_t i = 0; i < imp->nactions; i++)
		if (imp->actions[i].op == BSI_ACTION_REPLACE && strcmp(imp->actions[i].path, path) == 0)
			return raise_at(L, line, "change:replace: \"%s\" is already replaced at line %d",
					shown, imp->actions[i].line);
	if (imp->nactions >= MAX_ACTIONS || c->nactions >= MAX_FILE_ACTIONS)
		return raise_at(L, line, "change: more than %d actions (%d in a file)", MAX_ACTIONS,
				MAX_FILE_ACTIONS);
	if (c->root) {
		/* Refuse now, with the recipe's line, a target whose directory
		 * resolves outside the root; apply resolves it again. */
		char name[NAME_MAX + 1];
		int dirfd = -1;

		rc = bsi_root_open_parent(c->root, path, &dirfd, name);
		if (dirfd >= 0)
			close(dirfd);
		if (rc < 0)
			return raise_host(L, rc, "change:replace");
	}
	rc = bsi_improvement_add_replace(imp, path, from, to, payload, line);
	c->nactions++;
	if (rc < 0)
		return raise_host(L, rc, "change:replace");
	return 0;
}

/* change:restart(service) - recorded once per improvement. */
static int l_recipe_restart(lua_State *L) /* [-2, +0, e] */
{
	recipe_ctx *c = ctx_of(L);
	recipe_change *ch = live_change(L);
	int line = caller_line(L, 1), rc;
	size_t len;
	const char *svc = luaL_checklstring(L, 2, &len);
	bsi_improvement *imp = &c->cs->items[ch->index];

	if (!valid_service(svc, len))
		return raise_at(L, line, "change:restart: %s is not a service name",
				describe(L, 2, (char[96]){0}, 96));
	for (size_t i = 0; i < imp->nactions; i++)
		if (imp->actions[i].op == BSI_ACTION_RESTART && strcmp(imp->actions[i].service, svc) == 0)
			return 0;
	if (imp->nactions >= MAX_ACTIONS || c->nactions >= MAX_FILE_ACTIONS)
		return raise_at(L, line, "change: more than %d actions (%d in a file)", MAX_ACTIONS,
				MAX_FILE_ACTIONS);
	rc = bsi_improvement_add_restart(imp, svc, line);
	c->nactions++;
	if (rc < 0)
		return raise_host(L, rc, "change:restart");
	return 0;
}

/* ---- the sandbox ---- */

static const luaL_Reg bsi_funcs[] = {
	{"hash", l_recipe_hash},     {"verify", l_recipe_verify}, {"exists", l_recipe_exists},
	{"read", l_recipe_read},     {"log", l_recipe_log},       {"os_version", l_recipe_os_version},
	{NULL, NULL},
};

static const luaL_Reg change_funcs[] = {
	{"replace", l_recipe_replace},
	{"restart", l_recipe_restart},
	{NULL, NULL},
};

/* Make the table on top a metatable that hides itself, refuses writes,
 * and serves `funcs` (with c as upvalue) through __index, or through
 * indexer (with the function table as upvalue) when given. */
static void fill_protected_mt(lua_State *L, recipe_ctx *c, const luaL_Reg *funcs,
			      lua_CFunction indexer)
{
	lua_createtable(L, 0, 8);
	lua_pushlightuserdata(L, c);
	luaL_setfuncs(L, funcs, 1);
	if (indexer)
		lua_pushcclosure(L, indexer, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, l_recipe_readonly);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
}

/* [-0, +0, e] Open the safe libraries and install the bsi module. */
static void open_sandbox(lua_State *L, recipe_ctx *c)
{
	static const luaL_Reg libs[] = {
		{LUA_GNAME, luaopen_base},	   {LUA_STRLIBNAME, luaopen_string},
		{LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
		{LUA_UTF8LIBNAME, luaopen_utf8},   {LUA_COLIBNAME, luaopen_coroutine},
		{NULL, NULL},
	};
	static const char *const removed[] = {"dofile", "loadfile", "collectgarbage",
					      "print",  "warn",     NULL};
	int g;

	for (const luaL_Reg *lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	/* Lua names a C function that raised without a call-site name by
	 * searching package.loaded in table order, which the hash seed
	 * changes from run to run; an empty one makes that name "?". */
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_pushglobaltable(L);
	g = lua_gettop(L);
	for (const char *const *r = removed; *r; r++) {
		lua_pushnil(L);
		lua_setfield(L, g, *r);
	}
	lua_getfield(L, g, "load");
	lua_pushcclosure(L, l_recipe_load, 1);
	lua_setfield(L, g, "load");
	/* the seal every metatable gets (l_recipe_setmetatable) */
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, l_recipe_meta_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_getfield(L, g, "setmetatable");
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, l_recipe_setmetatable, 2);
	lua_setfield(L, g, "setmetatable");
	lua_pushcclosure(L, l_recipe_rawset, 1);
	lua_setfield(L, g, "rawset");
	bsi_luastd_open(L);

	lua_getfield(L, g, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
	/* Strings share one metatable; hide it so a recipe cannot reach it. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);

	/* bsi: a userdata (rawset cannot touch it) behind a protected metatable. */
	lua_newuserdatauv(L, 0, 0);
	lua_newtable(L);
	fill_protected_mt(L, c, bsi_funcs, l_recipe_bsi_index);
	lua_setmetatable(L, -2);
	lua_newtable(L);
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, l_recipe_globals_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, l_recipe_globals_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, g);
	lua_pop(L, 2);

	/* change objects (luaL_newmetatable's __name names them in messages). */
	luaL_newmetatable(L, CHANGE_MT);
	fill_protected_mt(L, c, change_funcs, NULL);
	lua_pop(L, 1);
}

/* ---- the schema ---- */

typedef struct {
	int idx;        /* stack index of the improvement table */
	size_t n;       /* 1-based position in improvements */
	const char *id; /* NULL until valid */
	int line, from, to; /* its line and the line range its fields are in */
} imp_view;

static const char *imp_label(const imp_view *v, char *buf, size_t cap)
{
	if (v->id)
		snprintf(buf, cap, "improvement \"%s\"", v->id);
	else
		snprintf(buf, cap, "improvement #%zu", v->n);
	return buf;
}

/* Line of field key of improvement v, falling back to the improvement's. */
static int field_line(const recipe_ctx *c, const imp_view *v, const char *key)
{
	int l = v->line ? key_line(c, key, NULL, v->line, v->to) : 0;

	if (!l && v->from)
		l = key_line(c, key, NULL, v->from, v->line);
	return l ? l : v->line;
}

/* Raise "<file>:<line>: improvement "<id>": <message>". */
static int __attribute__((format(printf, 5, 6)))
imp_error(lua_State *L, const recipe_ctx *c, const imp_view *v, const char *field,
	  const char *fmt, ...)
{
	char label[MAX_NAME + 32], msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return raise_at(L, field ? field_line(c, v, field) : v->line, "%s: %s",
			imp_label(v, label, sizeof(label)), msg);
}

/* Copy the list of strings in field `field` (a list, or nil when optional)
 * after checking each with ok(); *out NULL for an absent field. */
static void take_list(lua_State *L, const recipe_ctx *c, const imp_view *v, const char *field,
		      bool (*ok)(const char *, size_t), const char *what, const char *one,
		      char ***out, size_t *out_n)
{
	lua_Integer n = 0;
	int t;

	*out = NULL;
	*out_n = 0;
	rawfield(L, v->idx, field);
	t = lua_gettop(L);
	if (lua_isnil(L, t)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, t) || (n = list_length(L, t)) < 0 || n > MAX_LIST)
		imp_error(L, c, v, field, "%s must be a list of %s (got %s)", field, what,
			  describe(L, t, (char[96]){0}, 96));
	for (lua_Integer i = 1; i <= n; i++) {
		size_t len;
		const char *s;

		lua_rawgeti(L, t, i);
		s = plain_string(L, -1, &len);
		if (!s || !ok(s, len))
			imp_error(L, c, v, field, "%s[%lld] must be %s (got %s)", field,
				  (long long)i, one, describe(L, -1, (char[96]){0}, 96));
		lua_pop(L, 1);
	}
	/* Allocate only after every check: errors longjmp. */
	*out = calloc((size_t)n + 1, sizeof(char *));
	if (!*out)
		raise_at(L, 0, "out of memory");
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, t, i);
		/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): raise_at longjmps */
		(*out)[i - 1] = strdup(lua_tostring(L, -1));
		lua_pop(L, 1);
		if (!(*out)[i - 1])
			raise_at(L, 0, "out of memory");
		*out_n = (size_t)i;
	}
	lua_pop(L, 1);
}

static bool ok_cve(const char *s, size_t len) { return valid_cve(s, len); }
static bool ok_id(const char *s, size_t len) { return valid_name(s, len); }

/* Check one improvement table and record it into c->cs (index v->n - 1). */
static void check_improvement(lua_State *L, recipe_ctx *c, imp_view *v)
{
	bsi_improvement *imp;
	size_t len;
	const char *s;
	int top = lua_gettop(L);
	char **list;
	size_t nlist;

	if (!only_fields(L, v->idx, imp_fields)) {
		char key[80];

		key_text(L, -1, key, sizeof(key));
		imp_error(L, c, v, lua_type(L, -1) == LUA_TSTRING ? key : NULL,
			  "unknown field \"%s\" (expected id, summary, fixes, severity, when, apply, supersedes)",
			  key);
	}
	if (!v->id) {
		rawfield(L, v->idx, "id");
		imp_error(L, c, v, "id",
			  "id must be a name of letters, digits, '.', '_' and '-' (got %s)",
			  describe(L, -1, (char[96]){0}, 96));
	}
	rawfield(L, v->idx, "summary");
	s = plain_string(L, -1, &len);
	if (!s || len == 0 || len > MAX_TEXT || has_control(s, len) || !bsi_text_is_utf8(s, len))
		imp_error(L, c, v, "summary", "summary must be one line of UTF-8 text (got %s)",
			  describe(L, -1, (char[96]){0}, 96));
	rawfield(L, v->idx, "severity");
	s = plain_string(L, -1, &len);
	if (!s || !in_list(severities, s))
		imp_error(L, c, v, "severity",
			  "severity must be one of low, medium, high, critical (got %s)",
			  describe(L, -1, (char[96]){0}, 96));
	if (rawfield(L, v->idx, "when") != LUA_TNIL && !lua_isfunction(L, -1))
		imp_error(L, c, v, "when", "when must be a function (got %s)",
			  describe(L, -1, (char[96]){0}, 96));
	rawfield(L, v->idx, "apply");
	if (!lua_isfunction(L, -1))
		imp_error(L, c, v, "apply", "apply must be a function (got %s)",
			  describe(L, -1, (char[96]){0}, 96));
	if (rawfield(L, v->idx, "fixes") == LUA_TNIL)
		imp_error(L, c, v, NULL, "fixes is required (a list of CVE ids, may be empty)");
	lua_settop(L, top);

	/* Every scalar is valid: record it (the lists are checked as taken). */
	if (bsi_changeset_add(c->cs, &imp) < 0)
		raise_host(L, bsi_error_code(), "recipe");
	imp->line = v->line;
	imp->status = BSI_STATUS_PENDING;
	rawfield(L, v->idx, "summary");
	rawfield(L, v->idx, "severity");
	/* Strings checked above (the checks longjmp out, which the analyzer
	 * does not follow). */
	/* NOLINTBEGIN(clang-analyzer-core.NonNullParamChecker) */
	imp->id = strdup(v->id);
	imp->summary = strdup(lua_tostring(L, -2));
	imp->severity = strdup(lua_tostring(L, -1));
	/* NOLINTEND(clang-analyzer-core.NonNullParamChecker) */
	imp->recipe = strdup(c->name);
	lua_settop(L, top);
	if (!imp->id || !imp->summary || !imp->severity || !imp->recipe)
		raise_at(L, 0, "out of memory");

	take_list(L, c, v, "fixes", ok_cve, "CVE ids", "a CVE id like \"CVE-2026-20101\"", &list,
		  &nlist);
	imp = &c->cs->items[c->cs->count - 1];
	imp->fixes = list;
	imp->nfixes = nlist;
	take_list(L, c, v, "supersedes", ok_id, "improvement ids", "an improvement id", &list,
		  &nlist);
	imp = &c->cs->items[c->cs->count - 1];
	imp->supersedes = list;
	imp->nsupersedes = nlist;
	for (size_t i = 0; i < nlist; i++)
		if (strcmp(list[i], v->id) == 0)
			imp_error(L, c, v, "supersedes", "supersedes itself");
}

/* The first line a function at idx was defined on (0 if not a Lua function). */
static int function_line(lua_State *L, int idx)
{
	lua_Debug ar;

	if (!lua_isfunction(L, idx))
		return 0;
	lua_pushvalue(L, idx);
	return lua_getinfo(L, ">S", &ar) && ar.linedefined > 0 ? ar.linedefined : 0;
}

/*
 * The error object on top of L as "<file>:<line>: <message>" in out, the
 * file named in full (Lua shortens long chunk names: "...cipes/x.lua:3:"),
 * and its line in *out_line (0 when it names none).
 */
static void error_text(lua_State *L, const recipe_ctx *c, char *out, size_t cap, int *out_line)
{
	int t = lua_type(L, -1);
	const char *msg = t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(L, -1) : NULL;
	const char *rest = NULL, *text;
	size_t slen = strlen(c->short_src), nlen = strlen(c->name), used;

	*out_line = 0;
	if (!msg) {
		snprintf(out, cap, "%s: error object is a %s value", c->name, luaL_typename(L, -1));
		return;
	}
	if (slen > 0 && strncmp(msg, c->short_src, slen) == 0 && msg[slen] == ':')
		rest = msg + slen;
	else if (strncmp(msg, c->name, nlen) == 0 && msg[nlen] == ':')
		rest = msg + nlen;
	if (rest && rest[1] >= '1' && rest[1] <= '9')
		*out_line = (int)strtol(rest + 1, NULL, 10);
	text = rest ? rest : msg;
	used = (size_t)snprintf(out, cap, "%s%s", c->name, rest ? "" : ": ");
	if (used < cap)
		bsi_text_clean(out + used, cap - used, text, strlen(text));
}

/* Whether the error a pcall just caught must end the whole file: a spent
 * CPU budget (the hook stays tripped), the memory ceiling, or a failure on
 * the host's side; a recipe's own error is its improvement's alone. */
static bool fatal_error(lua_State *L, const recipe_ctx *c, int status)
{
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;

	return c->cpu_tripped || status == LUA_ERRMEM || c->host_code != 0 ||
	       (c->mem_refused && msg && strstr(msg, "not enough memory"));
}

/*
 * After the protected check or run of improvement v (index i of c->cs):
 * on an error of its own, record it as that improvement's error (status
 * error, the message and line, no actions) and go on; a fatal error, or
 * one in an improvement without a valid id to name it by, is raised again
 * for the whole file.
 */
static void isolate(lua_State *L, recipe_ctx *c, const imp_view *v, size_t i, int status)
{
	bsi_improvement *imp;
	char msg[2048];
	int line;

	if (status == LUA_OK)
		return;
	if (fatal_error(L, c, status) || !v->id) {
		lua_error(L);
		return; /* not reached: lua_error longjmps (the analyzer cannot tell) */
	}
	error_text(L, c, msg, sizeof(msg), &line);
	lua_pop(L, 1);
	if (line == 0) { /* error({}), a yield: say which improvement, where */
		char rest[sizeof(msg)];
		size_t skip = strlen(c->name) + 2; /* "<file>: " */

		memcpy(rest, strlen(msg) > skip ? msg + skip : msg, sizeof(rest) - skip);
		rest[sizeof(rest) - skip - 1] = '\0';
		line = v->line;
		if (snprintf(msg, sizeof(msg), "%s:%d: improvement \"%s\": ", c->name, line, v->id) <
		    (int)sizeof(msg))
			strncat(msg, rest, sizeof(msg) - strlen(msg) - 1);
	}
	if (c->cs->count == i && bsi_changeset_add(c->cs, &imp) < 0)
		raise_host(L, bsi_error_code(), "recipe");
	imp = &c->cs->items[i];
	for (size_t k = 0; k < imp->nactions; k++) {
		free(imp->actions[k].path);
		free(imp->actions[k].from);
		free(imp->actions[k].to);
		free(imp->actions[k].payload);
		free(imp->actions[k].service);
	}
	imp->nactions = 0;
	imp->line = v->line;
	if ((!imp->id && !(imp->id = strdup(v->id))) ||
	    (!imp->recipe && !(imp->recipe = strdup(c->name))) ||
	    bsi_improvement_set_error(imp, BSI_ERECIPE, line, "%s", msg) < 0)
		raise_at(L, 0, "out of memory");
}

/* [-2, +0, e] Check one improvement: (view, its table). */
static int l_recipe_check_one(lua_State *L)
{
	void *ud;
	imp_view v = *(imp_view *)lua_touserdata(L, 1);

	lua_getallocf(L, &ud);
	v.idx = 2;
	check_improvement(L, ud, &v);
	return 0;
}

/*
 * Check the table the chunk returned (at t) and record every improvement
 * into c->cs in order, pending, without actions.  Every error names the
 * file, the best line found and the field.
 */
static void check_recipe(lua_State *L, recipe_ctx *c, int t, imp_view **out, size_t *out_n)
{
	int comp_line = key_line(c, "component", NULL, 1, 0);
	int imps_line = key_line(c, "improvements", NULL, 1, 0);
	const char *component;
	lua_Integer n = 0;
	size_t len;
	imp_view *views;

	if (!lua_istable(L, t))
		raise_at(L, 0, "a recipe must return a table (got %s)", describe(L, t, (char[96]){0}, 96));
	if (!only_fields(L, t, top_fields)) {
		char key[80];

		key_text(L, -1, key, sizeof(key));
		raise_at(L, lua_type(L, -1) == LUA_TSTRING ? key_line(c, key, NULL, 1, 0) : 0,
			 "unknown field \"%s\" in the recipe table (expected component, improvements)", key);
	}
	rawfield(L, t, "component");
	component = plain_string(L, -1, &len);
	if (!component || !valid_name(component, len))
		raise_at(L, comp_line, "component must be a name of letters, digits, '.', '_' and '-' (got %s)",
			 describe(L, -1, (char[96]){0}, 96));
	rawfield(L, t, "improvements");
	if (!lua_istable(L, -1) || (n = list_length(L, lua_gettop(L))) < 0)
		raise_at(L, imps_line, "improvements must be a list of tables (got %s)",
			 describe(L, -1, (char[96]){0}, 96));
	if (n > MAX_IMPROVEMENTS)
		raise_at(L, imps_line, "more than %d improvements", MAX_IMPROVEMENTS);
	/* The views live in a userdata so an error cannot leak them. */
	views = lua_newuserdatauv(L, sizeof(imp_view) * ((size_t)n + 1), 0);
	lua_insert(L, -2); /* keep views below the improvements list */
	{
		int list = lua_gettop(L);

		lua_checkstack(L, (int)n + 20);
		for (lua_Integer i = 1; i <= n; i++) {
			imp_view *v = &views[i - 1];
			const char *id;

			memset(v, 0, sizeof(*v));
			lua_rawgeti(L, list, i);
			v->idx = lua_gettop(L);
			v->n = (size_t)i;
			if (!lua_istable(L, v->idx))
				raise_at(L, imps_line, "improvements[%lld] must be a table (got %s)",
					 (long long)i, describe(L, v->idx, (char[96]){0}, 96));
			rawfield(L, v->idx, "id");
			id = plain_string(L, -1, &len);
			lua_pop(L, 1);
			if (id && valid_name(id, len)) {
				/* after the previous improvement's line, if it has one */
				int from = i > 1 && views[i - 2].line ? views[i - 2].line + 1 : 1;
				char quoted[MAX_NAME + 3];

				v->id = id; /* kept alive by the table */

				for (int pass = 0; pass < 4 && !v->line; pass++) {
					snprintf(quoted, sizeof(quoted), pass % 2 ? "'%s'" : "\"%s\"", id);
					v->line = key_line(c, "id", quoted, pass < 2 ? from : 1, 0);
				}
			}
			if (!v->line) {
				rawfield(L, v->idx, "apply");
				v->line = function_line(L, -1);
				lua_pop(L, 1);
			}
			if (!v->line)
				v->line = imps_line;
		}
		/* Each improvement's fields are searched between its line and the next's. */
		for (lua_Integer i = 0; i < n; i++) {
			for (lua_Integer j = 0; j < n; j++) {
				int lj = views[j].line;

				if (lj > views[i].line && (!views[i].to || lj < views[i].to))
					views[i].to = lj;
				if (lj < views[i].line && lj + 1 > views[i].from)
					views[i].from = lj + 1;
			}
		}
		for (lua_Integer i = 0; i < n; i++) {
			imp_view *v = &views[i];

			for (lua_Integer j = 0; j < i; j++)
				if (views[j].id && v->id && strcmp(views[j].id, v->id) == 0)
					imp_error(L, c, v, "id", "duplicate id \"%s\" (also at %s:%d)",
						  v->id, c->name, views[j].line);
			lua_pushcfunction(L, l_recipe_check_one);
			lua_pushlightuserdata(L, v);
			lua_pushvalue(L, v->idx);
			isolate(L, c, v, (size_t)i, lua_pcall(L, 2, 0, 0));
			c->cs->items[i].component = strdup(component);
			if (!c->cs->items[i].component)
				raise_at(L, 0, "out of memory");
		}
	}
	*out = views;
	*out_n = (size_t)n;
}

/* [-2, +0, e] Run `when` (with a root) and `apply` of one improvement:
 * (its table, its change object). */
static int l_recipe_run_one(lua_State *L)
{
	recipe_change *ch = lua_touserdata(L, 2);
	void *ud;
	recipe_ctx *c;

	lua_getallocf(L, &ud);
	c = ud;
	if (c->root && rawfield(L, 1, "when") != LUA_TNIL) {
		lua_call(L, 0, 2);
		if (!lua_toboolean(L, -2)) {
			bsi_improvement *imp = &c->cs->items[ch->index];
			char reason[MAX_REASON];
			size_t len;
			const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;

			if (s)
				bsi_text_clean(reason, sizeof(reason), s, len);
			else
				snprintf(reason, sizeof(reason), "when returned %s",
					 lua_isnil(L, -2) ? "nil" : "false");
			imp->status = BSI_STATUS_NOT_APPLICABLE;
			imp->when_false = true;
			if (bsi_improvement_set_reason(imp, "%s", reason) < 0)
				raise_host(L, bsi_error_code(), "recipe");
			return 0;
		}
		lua_pop(L, 2);
	} else if (c->root) {
		lua_pop(L, 1);
	}
	rawfield(L, 1, "apply");
	lua_pushvalue(L, 2);
	lua_call(L, 1, 0);
	return 0;
}

/*
 * Run `when` (with a root only) and `apply` of every improvement.  A false
 * `when` makes it not-applicable with the reason it returned and skips
 * apply.  Without a root (check mode) `when` is not run, since its queries
 * would all answer nothing, and apply always runs.  Each improvement runs
 * under its own pcall: an error in its `when` or `apply` is its own
 * (isolate()), and the rest of the file goes on.
 */
static void run_improvements(lua_State *L, recipe_ctx *c, imp_view *views, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		recipe_change *ch;
		int st;

		if (c->cs->items[i].status == BSI_STATUS_ERROR)
			continue; /* its schema check failed */
		ch = lua_newuserdatauv(L, sizeof(*ch), 0);
		ch->index = i;
		ch->live = true;
		luaL_setmetatable(L, CHANGE_MT);
		lua_pushcfunction(L, l_recipe_run_one);
		lua_pushvalue(L, views[i].idx);
		lua_pushvalue(L, -3);
		st = lua_pcall(L, 2, 0, 0);
		/* a change object kept past its apply (a global, a closure)
		 * records nothing, whether apply returned or raised */
		ch->live = false;
		isolate(L, c, &views[i], i, st);
		lua_pop(L, 1);
	}
}

/* [-1, +0, e] The whole evaluation, under the outer lua_pcall. */
static int l_recipe_main(lua_State *L)
{
	recipe_ctx *c = lua_touserdata(L, 1);
	char chunkname[PATH_MAX + 2];
	imp_view *views = NULL;
	size_t n = 0;
	lua_Debug ar;
	int t;

	lua_settop(L, 0);
	open_sandbox(L, c);
	snprintf(chunkname, sizeof(chunkname), "@%s", c->name);
	if (luaL_loadbufferx(L, c->text, c->len, chunkname, "t") != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, -1);
	if (lua_getinfo(L, ">S", &ar))
		snprintf(c->short_src, sizeof(c->short_src), "%s", ar.short_src);
	lua_call(L, 0, 1);
	t = lua_gettop(L);
	check_recipe(L, c, t, &views, &n);
	run_improvements(L, c, views, n);
	if (c->cpu_tripped)
		return raise_at(L, c->cpu_line, "CPU budget of %g s exceeded", c->cpu_seconds);
	return 0;
}

/* Turn a failed evaluation (error object on top of L) into bsi_error_set(). */
static int recipe_failure(lua_State *L, const recipe_ctx *c, int status)
{
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	char text[2048];
	int line;

	if (c->cpu_tripped) {
		if (c->cpu_line > 0)
			return bsi_error_set(BSI_ERECIPE, "%s:%d: CPU budget of %g s exceeded", c->name,
					     c->cpu_line, c->cpu_seconds);
		return bsi_error_set(BSI_ERECIPE, "%s: CPU budget of %g s exceeded", c->name,
				     c->cpu_seconds);
	}
	if (status == LUA_ERRMEM || (c->mem_refused && msg && strstr(msg, "not enough memory"))) {
		char size[32];

		bsi_sandbox_format_size(size, sizeof(size), c->mem_limit);
		return bsi_error_set(BSI_ERECIPE, "%s: memory limit of %s exceeded", c->name, size);
	}
	error_text(L, c, text, sizeof(text), &line);
	return bsi_error_set(c->host_code ? c->host_code : BSI_ERECIPE, "%s", text);
}

typedef struct {
	const char *name;
	const char *text;
	size_t len;
	const bsi_root *root;
	const bsi_recipe_limits *lim;
} eval_job;

/* The sandbox_fn: evaluate in this (child) process; *out is
 * {"changeset": {...}, "log": [...]}, or {"log": [...]} on failure. */
static int eval_child(json_t **out, void *arg)
{
	const eval_job *job = arg;
	recipe_ctx c;
	bsi_changeset *cs = NULL;
	lua_State *L = NULL;
	json_t *log = json_array(), *csj;
	int rc = 0, st;

	memset(&c, 0, sizeof(c));
	c.name = job->name;
	c.text = job->text;
	c.len = job->len;
	c.root = job->root;
	c.mem_limit = job->lim->mem_limit;
	c.cpu_seconds = job->lim->cpu_seconds;
	c.cpu_start = cpu_now();
	c.log = log;
	if (!log) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if ((rc = bsi_changeset_new(&cs)) < 0)
		goto done;
	c.cs = cs;
	L = lua_newstate(recipe_alloc, &c);
	if (!L) {
		rc = bsi_error_set(BSI_ERECIPE, "%s: cannot create a Lua state", c.name);
		goto done;
	}
	lua_sethook(L, l_recipe_hook, LUA_MASKCOUNT, HOOK_COUNT);
	lua_pushcfunction(L, l_recipe_main);
	lua_pushlightuserdata(L, &c);
	st = lua_pcall(L, 1, 0, 0);
	if (st != LUA_OK)
		rc = recipe_failure(L, &c, st);
	lua_close(L);
	if (rc < 0)
		goto done;
	csj = bsi_changeset_to_json(cs);
	if (!csj) {
		rc = bsi_error_set(BSI_EFAIL, "%s: cannot serialize the change set", c.name);
		goto done;
	}
	*out = json_pack("{s:o,s:O}", "changeset", csj, "log", log);

done:
	if (rc < 0 && log)
		*out = json_pack("{s:O}", "log", log);
	json_decref(log);
	bsi_changeset_free(cs);
	return rc;
}

/* ---- the parent side ---- */

void bsi_recipe_limits_default(bsi_recipe_limits *out)
{
	out->mem_limit = BSI_RECIPE_MEM_LIMIT;
	out->cpu_seconds = BSI_RECIPE_CPU_SECONDS;
	out->wall_seconds = BSI_RECIPE_WALL_SECONDS;
}

static void print_log(const json_t *doc)
{
	const json_t *lines = json_object_get(doc, "log");
	size_t i;
	json_t *line;

	json_array_foreach(lines, i, line) {
		char clean[MAX_REASON + 256];
		const char *s = json_string_value(line);

		if (i >= MAX_LOG_LINES)
			break; /* the child caps its log; do not trust that it did */
		if (!s)
			continue;
		bsi_text_clean(clean, sizeof(clean), s, strlen(s));
		fprintf(stderr, "bsi: %s\n", clean);
	}
}

static bool valid_action(const bsi_action *a)
{
	if (a->op == BSI_ACTION_RESTART)
		return a->service && valid_service(a->service, strlen(a->service));
	return a->op == BSI_ACTION_REPLACE && a->path && a->payload &&
	       !plain_path_problem(a->path, strlen(a->path)) &&
	       !plain_path_problem(a->payload, strlen(a->payload)) && bsi_digest_valid(a->from) &&
	       bsi_digest_valid(a->to);
}

/*
 * What came back from the child is re-checked before the host relies on
 * it: the child ran untrusted code, so its output is data to validate.
 */
static int check_result(bsi_changeset *got, const char *name)
{
	for (size_t i = 0; i < got->count; i++) {
		bsi_improvement *imp = &got->items[i];

		if (!imp->id || !valid_name(imp->id, strlen(imp->id)) || !imp->component ||
		    !valid_name(imp->component, strlen(imp->component)) ||
		    (imp->severity && !in_list(severities, imp->severity)) ||
		    (imp->status != BSI_STATUS_PENDING && imp->status != BSI_STATUS_NOT_APPLICABLE &&
		     imp->status != BSI_STATUS_ERROR) ||
		    (imp->status == BSI_STATUS_ERROR && (imp->nactions > 0 || !imp->reason)))
			goto bad;
		/* an error the child reports is the recipe's, whatever it claims */
		if (imp->status == BSI_STATUS_ERROR)
			imp->error_code = BSI_ERECIPE;
		if (imp->error_line < 0)
			imp->error_line = 0;
		/* text the recipe wrote (or its file's name in a reason) is
		 * shown: clean whatever the child sent */
		if (imp->reason)
			bsi_text_clean(imp->reason, strlen(imp->reason) + 1, imp->reason,
				       strlen(imp->reason));
		if (imp->summary)
			bsi_text_clean(imp->summary, strlen(imp->summary) + 1, imp->summary,
				       strlen(imp->summary));
		free(imp->recipe);
		imp->recipe = strdup(name);
		if (!imp->recipe)
			return bsi_error_set(BSI_EFAIL, "out of memory");
		for (size_t j = 0; j < imp->nactions; j++)
			if (!valid_action(&imp->actions[j]))
				goto bad;
	}
	return 0;
bad:
	return bsi_error_set(BSI_ERECIPE, "%s: evaluation returned an invalid change set", name);
}

/* Move every improvement of from into to, all or nothing on duplicate ids. */
static int merge(bsi_changeset *to, bsi_changeset *from)
{
	for (size_t i = 0; i < from->count; i++) {
		const bsi_improvement *imp = &from->items[i], *old = bsi_changeset_find(to, imp->id);

		if (old)
			return bsi_error_set(BSI_ERECIPE,
					     "%s:%d: improvement \"%s\": duplicate id \"%s\" (also at %s:%d)",
					     imp->recipe, imp->line, imp->id, imp->id,
					     old->recipe ? old->recipe : "?", old->line);
	}
	for (size_t i = 0; i < from->count; i++) {
		bsi_improvement *slot;
		int rc = bsi_changeset_add(to, &slot);

		if (rc < 0)
			return rc; /* earlier ones moved: only on out-of-memory */
		*slot = from->items[i];
		memset(&from->items[i], 0, sizeof(from->items[i]));
	}
	return 0;
}

static int check_limits(const bsi_recipe_limits *lim)
{
	if (lim->mem_limit < ((size_t)1 << 20) || !(lim->cpu_seconds > 0) || !(lim->wall_seconds > 0))
		return bsi_error_set(BSI_EUSAGE, "recipe limits: memory must be at least 1 MiB, "
						 "CPU and wall-clock seconds positive");
	return 0;
}

/* Read back, re-check and merge into cs what an evaluation returned. */
static int accept_result(bsi_changeset *cs, const char *name, const json_t *doc)
{
	bsi_changeset *got = NULL;
	int rc;

	rc = bsi_changeset_from_json(&got, json_object_get(doc, "changeset"));
	if (rc < 0) {
		/* malformed: ERECIPE; out of memory reading it: EFAIL */
		rc = bsi_error_wrap("%s: evaluation returned an unreadable change set", name);
		goto done;
	}
	if ((rc = check_result(got, name)) < 0)
		goto done;
	rc = merge(cs, got);
done:
	bsi_changeset_free(got);
	return rc;
}

int bsi_recipe_load_buffer(bsi_changeset *cs, const char *name, const char *text, size_t len,
			   const bsi_root *root, const bsi_recipe_limits *lim)
{
	bsi_recipe_limits def;
	eval_job job = {name, text, len, root, lim};
	int keep[1], rc;
	size_t nkeep = 0;
	json_t *doc = NULL;

	if (!lim) {
		bsi_recipe_limits_default(&def);
		job.lim = lim = &def;
	}
	if ((rc = check_limits(lim)) < 0)
		return rc;
	if (root)
		keep[nkeep++] = bsi_root_fd(root);
	rc = bsi_sandbox_run(&doc, eval_child, &job, keep, nkeep, lim, name);
	print_log(doc);
	if (rc == 0)
		rc = accept_result(cs, name, doc);
	json_decref(doc);
	return rc;
}

int bsi_recipe_load_buffer_in_process(bsi_changeset *cs, const char *name, const char *text,
				      size_t len, const bsi_root *root,
				      const bsi_recipe_limits *lim)
{
	bsi_recipe_limits def;
	eval_job job = {name, text, len, root, lim};
	json_t *doc = NULL;
	int rc;

	if (!lim) {
		bsi_recipe_limits_default(&def);
		job.lim = lim = &def;
	}
	if ((rc = check_limits(lim)) < 0)
		return rc;
	rc = eval_child(&doc, &job);
	if (rc == 0)
		rc = accept_result(cs, name, doc);
	json_decref(doc);
	return rc;
}

int bsi_recipe_check_file(bsi_changeset *cs, const char *path, const bsi_recipe_limits *lim)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc = 0;
	struct stat st;
	char *text = NULL;
	size_t len = 0;

	if (fd < 0)
		return bsi_error_set(BSI_EFAIL, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = bsi_error_set(BSI_EFAIL, "%s: not a regular file", path);
		goto done;
	}
	if ((size_t)st.st_size > BSI_RECIPE_MAX_SIZE) {
		rc = bsi_error_set(BSI_ERECIPE, "%s: recipe larger than %zu bytes", path,
				   BSI_RECIPE_MAX_SIZE);
		goto done;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = bsi_error_set(BSI_EFAIL, "%s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	rc = bsi_recipe_load_buffer(cs, path, text, len, NULL, lim);

done:
	free(text);
	close(fd);
	return rc;
}

void bsi_recipe_feed_limits_default(bsi_recipe_feed_limits *out)
{
	out->max_files = 500;
	out->max_improvements = 5000;
	out->max_actions = 20000;
	out->max_seconds = 120.0;
}

static double monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Record the current error as a failure of file as a whole; its line is
 * read back from the message ("file:line: ..."). */
static int file_failed(bsi_changeset *cs, const char *file)
{
	const char *msg = bsi_error_message();
	size_t n = strlen(file);
	int line = 0;

	if (strncmp(msg, file, n) == 0 && msg[n] == ':' && msg[n + 1] >= '1' && msg[n + 1] <= '9')
		line = (int)strtol(msg + n + 1, NULL, 10);
	return bsi_changeset_add_error(cs, file, line, bsi_error_code(), msg);
}

/*
 * Move the improvements of one evaluated file (from) into to, unless the
 * feed's budgets would be passed (then the whole file is an error).  An id
 * that to already holds: the first definition becomes an error, and this
 * one is dropped and recorded as an error of its file.
 */
static int merge_file(bsi_changeset *to, bsi_changeset *from, const char *file,
		      const bsi_recipe_feed_limits *feed, size_t *nactions)
{
	size_t acts = 0;
	int rc = BSI_OK;

	for (size_t i = 0; i < from->count; i++)
		acts += from->items[i].nactions;
	if (to->count + from->count > feed->max_improvements) {
		bsi_error_set(BSI_ERECIPE,
			      "%s: not evaluated: its %zu improvements would pass the feed's budget of "
			      "%zu (feed_max_improvements)",
			      file, from->count, feed->max_improvements);
		return file_failed(to, file);
	}
	if (*nactions + acts > feed->max_actions) {
		bsi_error_set(BSI_ERECIPE,
			      "%s: not evaluated: its %zu actions would pass the feed's budget of %zu "
			      "(feed_max_actions)",
			      file, acts, feed->max_actions);
		return file_failed(to, file);
	}
	*nactions += acts;
	for (size_t i = 0; rc == 0 && i < from->count; i++) {
		bsi_improvement *imp = &from->items[i], *old = bsi_changeset_find(to, imp->id), *slot;
		char msg[1024];

		if (old) {
			snprintf(msg, sizeof(msg),
				 "%s:%d: improvement \"%s\": duplicate id \"%s\" (also at %s:%d); "
				 "neither applies",
				 imp->recipe, imp->line, imp->id, imp->id, old->recipe, old->line);
			rc = bsi_changeset_add_error(to, imp->recipe, imp->line, BSI_ERECIPE, msg);
			if (rc == 0 && old->status != BSI_STATUS_ERROR)
				rc = bsi_improvement_set_error(
					old, BSI_ERECIPE, old->line,
					"%s:%d: improvement \"%s\": duplicate id \"%s\" (also at %s:%d); "
					"neither applies",
					old->recipe, old->line, old->id, old->id, imp->recipe, imp->line);
			continue;
		}
		if ((rc = bsi_changeset_add(to, &slot)) == 0) {
			*slot = *imp;
			memset(imp, 0, sizeof(*imp));
		}
	}
	return rc;
}

int bsi_recipe_load_all(bsi_changeset *cs, const bsi_source *src, const bsi_root *root,
			const bsi_recipe_limits *lim, const bsi_recipe_feed_limits *feed)
{
	bsi_recipe_feed_limits def;
	char **files = NULL, *text = NULL;
	size_t nfiles = 0, len, nactions = 0;
	double started = monotonic_now();
	int rc;

	if (!feed) {
		bsi_recipe_feed_limits_default(&def);
		feed = &def;
	}
	for (size_t i = 0; i < cs->count; i++)
		nactions += cs->items[i].nactions;
	rc = bsi_source_list_recipes(src, &files, &nfiles);
	if (rc == BSI_ERECIPE) /* recipes/ itself is wrong: an error of it */
		rc = file_failed(cs, "recipes");
	if (rc < 0)
		goto done;
	for (size_t i = 0; rc == 0 && i < nfiles; i++) {
		bsi_changeset *one = NULL;
		double spent = monotonic_now() - started;

		if (i >= feed->max_files) {
			bsi_error_set(BSI_ERECIPE,
				      "%s: not evaluated: the feed has %zu recipe files, more than "
				      "feed_max_recipes (%zu)",
				      files[i], nfiles, feed->max_files);
			rc = file_failed(cs, files[i]);
			continue;
		}
		if (spent > feed->max_seconds) {
			bsi_error_set(BSI_ERECIPE,
				      "%s: not evaluated: evaluating the feed took more than "
				      "feed_eval_seconds (%g s)",
				      files[i], feed->max_seconds);
			rc = file_failed(cs, files[i]);
			continue;
		}
		rc = bsi_changeset_new(&one);
		if (rc == 0 && (rc = bsi_source_read(src, files[i], BSI_RECIPE_MAX_SIZE, &text,
						     &len)) == 0)
			rc = bsi_recipe_load_buffer(one, files[i], text, len, root, lim);
		free(text);
		text = NULL;
		if (rc < 0 && one)
			rc = file_failed(cs, files[i]);
		else if (rc == 0)
			rc = merge_file(cs, one, files[i], feed, &nactions);
		bsi_changeset_free(one);
	}

done:
	for (size_t i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	return rc;
}
