#include "config.h"

#include "error.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (64 * 1024)
#define CONFIG_MAX_INSTRUCTIONS 1000000
/* Lua heap a configuration may use: a real one needs well under 100 KiB,
 * and without a ceiling `local s = "x" for i = 1, 40 do s = s .. s end`
 * stays within the instruction budget while it asks for a terabyte. */
#define CONFIG_MAX_MEMORY ((size_t)8 << 20)
/* Bytes a configuration may allocate in total, freed or not: the ceiling
 * above bounds what is live, this bounds the copying.  Without it
 * `local s = "x" for i = 1, 90000 do s = s .. #s end` stays under both
 * other limits while it copies 18 GB (4 s of CPU); a real configuration
 * allocates under 100 KiB in total. */
#define CONFIG_MAX_ALLOCATED ((size_t)64 << 20)

typedef enum { T_BOOL, T_STRING, T_DURATION, T_INT, T_NUMBER, T_WINDOW, T_SEVERITY } key_type;

typedef struct {
	const char *name;
	key_type type;
	size_t offset;
} key_spec;

#define KEY(n, t) {#n, t, offsetof(bsi_config, n)}
static const key_spec keys[] = {
	KEY(auto_install, T_BOOL),
	KEY(require_ac_power, T_BOOL),
	KEY(interval, T_DURATION),
	KEY(max_feed_age, T_DURATION),
	KEY(service_manager, T_STRING),
	KEY(plugin_dir, T_STRING),
	KEY(ca_file, T_STRING),
	KEY(recipe_cpu_seconds, T_NUMBER),
	KEY(recipe_memory_mib, T_INT),
	KEY(recipe_wall_seconds, T_NUMBER),
	KEY(feed_max_recipes, T_INT),
	KEY(feed_max_improvements, T_INT),
	KEY(feed_max_actions, T_INT),
	KEY(feed_eval_seconds, T_DURATION),
	KEY(fetch_max_mib, T_INT),
	KEY(fetch_timeout, T_DURATION),
	KEY(fetch_deadline, T_DURATION),
	KEY(feed_max_new_commits, T_INT),
	KEY(maintenance_window, T_WINDOW),
	KEY(min_severity, T_SEVERITY),
	KEY(restart_affected, T_BOOL),
	KEY(power_supply_dir, T_STRING),
	KEY(max_target_mib, T_INT),
};

static const char *const type_names[] = {
	[T_BOOL] = "a boolean (true or false)",
	[T_STRING] = "a string",
	[T_DURATION] = "a duration such as \"6h\" or a number of seconds",
	[T_INT] = "a positive whole number",
	[T_NUMBER] = "a positive number",
	[T_WINDOW] = "a time window such as \"02:00-05:00\"",
	[T_SEVERITY] = "one of \"low\", \"medium\", \"high\", \"critical\"",
};

int bsi_config_defaults(bsi_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->auto_install = true;
	cfg->require_ac_power = true;
	cfg->interval = 6 * 3600;
	cfg->max_feed_age = 14 * 86400;
	cfg->recipe_cpu_seconds = 2.0;
	cfg->recipe_memory_mib = 64;
	cfg->recipe_wall_seconds = 10.0;
	cfg->feed_max_recipes = 500;
	cfg->feed_max_improvements = 5000;
	cfg->feed_max_actions = 20000;
	cfg->feed_eval_seconds = 120;
	cfg->fetch_max_mib = 1024;
	cfg->fetch_timeout = 60;
	cfg->fetch_deadline = 1800;
	cfg->feed_max_new_commits = 100000;
	cfg->max_target_mib = 1024;
	cfg->service_manager = strdup("systemd");
	cfg->power_supply_dir = strdup("/sys/class/power_supply");
	if (!cfg->service_manager || !cfg->power_supply_dir)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	return BSI_OK;
}

void bsi_config_clear(bsi_config *cfg)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (keys[i].type == T_STRING || keys[i].type == T_WINDOW || keys[i].type == T_SEVERITY) {
			char **p = (char **)((char *)cfg + keys[i].offset);

			free(*p);
			*p = NULL;
		}
	}
}

int bsi_config_parse_duration(const char *text, long *out)
{
	char *end;
	long n, unit = 1;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno || end == text || n < 0)
		return BSI_EUSAGE;
	switch (*end) {
	case '\0': case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400; break;
	default: return BSI_EUSAGE;
	}
	if (*end && end[1] != '\0')
		return BSI_EUSAGE;
	if (n > 100L * 365 * 86400 / unit)
		return BSI_EUSAGE;
	*out = n * unit;
	return BSI_OK;
}

/* Exactly "HH:MM-HH:MM", digits where digits go (sscanf's %u would also
 * take " 1:00-05:00" and "+1:00-05:00"). */
bool bsi_config_parse_window(const char *s, int *out_start, int *out_end)
{
	int v[4];

	if (strlen(s) != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':')
		return false;
	for (int i = 0; i < 4; i++) {
		const char *d = s + 3 * i;

		if (d[0] < '0' || d[0] > '9' || d[1] < '0' || d[1] > '9')
			return false;
		v[i] = (d[0] - '0') * 10 + (d[1] - '0');
	}
	if (!(v[0] < 24 && v[1] < 60 && v[2] < 24 && v[3] < 60))
		return false;
	if (out_start)
		*out_start = v[0] * 60 + v[1];
	if (out_end)
		*out_end = v[2] * 60 + v[3];
	return true;
}

static bool valid_severity(const char *s)
{
	return strcmp(s, "low") == 0 || strcmp(s, "medium") == 0 || strcmp(s, "high") == 0 ||
	       strcmp(s, "critical") == 0;
}

/* __newindex of the chunk's environment: check and store one assignment.
 * Upvalue 1: the bsi_config being filled. */
static int l_config_assign(lua_State *L) /* [-0, +0, e] */
{
	bsi_config *cfg = lua_touserdata(L, lua_upvalueindex(1));
	const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
	const key_spec *k = NULL;
	void *field;

	for (size_t i = 0; name && i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			k = &keys[i];
	if (!k)
		return luaL_error(L, "unknown key \"%s\"", name ? name : luaL_typename(L, 2));
	field = (char *)cfg + k->offset;
	switch (k->type) {
	case T_BOOL:
		if (!lua_isboolean(L, 3))
			goto wrong;
		*(bool *)field = lua_toboolean(L, 3);
		break;
	case T_DURATION: {
		long secs;

		if (lua_isinteger(L, 3) && lua_tointeger(L, 3) >= 0)
			secs = (long)lua_tointeger(L, 3);
		else if (lua_type(L, 3) != LUA_TSTRING ||
			 bsi_config_parse_duration(lua_tostring(L, 3), &secs) < 0)
			goto wrong;
		*(long *)field = secs;
		break;
	}
	case T_INT:
		if (!lua_isinteger(L, 3) || lua_tointeger(L, 3) <= 0 || lua_tointeger(L, 3) > 1 << 30)
			goto wrong;
		*(long *)field = (long)lua_tointeger(L, 3);
		break;
	case T_NUMBER:
		if (lua_type(L, 3) != LUA_TNUMBER || !(lua_tonumber(L, 3) > 0) ||
		    lua_tonumber(L, 3) > 86400)
			goto wrong;
		*(double *)field = (double)lua_tonumber(L, 3);
		break;
	case T_STRING:
	case T_WINDOW:
	case T_SEVERITY: {
		const char *s;
		char *copy;

		if (lua_type(L, 3) != LUA_TSTRING)
			goto wrong;
		s = lua_tostring(L, 3);
		if ((k->type == T_WINDOW && !bsi_config_parse_window(s, NULL, NULL)) ||
		    (k->type == T_SEVERITY && !valid_severity(s)))
			goto wrong;
		copy = strdup(s);
		if (!copy)
			return luaL_error(L, "out of memory");
		free(*(char **)field);
		*(char **)field = copy;
		break;
	}
	}
	return 0;
wrong:
	return luaL_error(L, "%s must be %s", k->name, type_names[k->type]);
}

static int l_config_undefined(lua_State *L) /* [-0, +0, e] */
{
	return luaL_error(L, "\"%s\" is not defined here: the configuration holds only "
			     "key = value lines",
			  lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, 1); /* stay tripped */
	luaL_error(L, "configuration takes too long to evaluate");
}

typedef struct {
	size_t used;      /* live bytes */
	size_t allocated; /* bytes of every growth so far */
	bool over;        /* the latest failed growth was refused for a limit */
} config_heap;

/* lua_Alloc counting live and allocated bytes, refusing growth past
 * CONFIG_MAX_MEMORY or CONFIG_MAX_ALLOCATED (Lua then raises "not enough
 * memory"). */
static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	config_heap *h = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		h->used -= old;
		return NULL;
	}
	/* `over` tells what made the latest *failed* allocation fail (Lua
	 * retries one after a full collection, and frees and shrinks after
	 * the error); a success leaves it alone */
	if (nsize > old && (nsize - old > CONFIG_MAX_MEMORY - h->used ||
			    nsize > CONFIG_MAX_ALLOCATED - h->allocated)) {
		h->over = true;
		return NULL;
	}
	if ((p = realloc(ptr, nsize)) == NULL) {
		h->over = false;
		return NULL;
	}
	h->used = h->used - old + nsize;
	if (nsize > old)
		h->allocated += nsize;
	return p;
}

static int read_file(const char *path, bool must_exist, char **out, size_t *out_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len;
	int rc = BSI_OK;

	*out = NULL;
	if (!f) {
		if (errno == ENOENT && !must_exist)
			return BSI_OK;
		return bsi_error_set(errno == ENOENT ? BSI_EUSAGE : BSI_EFAIL, "%s: %s", path,
				     strerror(errno));
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	if (!buf) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f) || len > CONFIG_MAX_BYTES) {
		rc = bsi_error_set(BSI_EUSAGE, "%s: %s", path,
				   ferror(f) ? strerror(errno) : "larger than 64 KiB");
		goto done;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	buf = NULL;
done:
	free(buf);
	fclose(f);
	return rc;
}

/*
 * Run the configuration text (len bytes, need not be NUL-terminated) over
 * the values already in cfg; name is the chunk name in messages ("file:3:").
 * On error cfg holds the assignments made before the failing line.
 */
int bsi_config_load_buffer(bsi_config *cfg, const char *text, size_t len, const char *name)
{
	lua_State *L = NULL;
	char *chunkname = NULL;
	config_heap heap = {0};
	int rc = BSI_OK, status;

	if (len > CONFIG_MAX_BYTES)
		return bsi_error_set(BSI_EUSAGE, "%s: larger than 64 KiB", name);
	L = lua_newstate(config_alloc, &heap);
	if (!L || asprintf(&chunkname, "@%s", name) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if (luaL_loadbufferx(L, text, len, chunkname, "t") != LUA_OK) {
		rc = bsi_error_set(BSI_EUSAGE, "%s", lua_tostring(L, -1));
		goto done;
	}
	/* The environment: an empty table whose metatable checks each write
	 * and refuses each read of an undefined name. */
	lua_newtable(L);
	lua_newtable(L);
	lua_pushlightuserdata(L, cfg);
	lua_pushcclosure(L, l_config_assign, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, l_config_undefined);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
	if (!lua_setupvalue(L, -2, 1)) {
		rc = bsi_error_set(BSI_EFAIL, "configuration chunk has no environment");
		goto done;
	}
	lua_sethook(L, count_hook, LUA_MASKCOUNT, CONFIG_MAX_INSTRUCTIONS);
	status = lua_pcall(L, 0, 0, 0);
	if (status == LUA_ERRMEM && !heap.over) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if (status == LUA_ERRMEM) {
		rc = bsi_error_set(BSI_EUSAGE,
				   "%s: uses too much memory (a configuration may hold %zu MiB "
				   "and allocate %zu MiB in all)",
				   name, CONFIG_MAX_MEMORY >> 20, CONFIG_MAX_ALLOCATED >> 20);
		goto done;
	}
	if (status != LUA_OK) {
		const char *msg = lua_tostring(L, -1);

		rc = bsi_error_set(BSI_EUSAGE, "%s", msg ? msg : "error in configuration");
		goto done;
	}
done:
	if (L)
		lua_close(L);
	free(chunkname);
	return rc;
}

int bsi_config_load(bsi_config *cfg, const char *path, bool must_exist)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = read_file(path, must_exist, &text, &len);
	if (rc < 0 || !text)
		goto done;
	rc = bsi_config_load_buffer(cfg, text, len, path);
	/* found out here, not at the first sync's certificate check (its
	 * content is checked by the TLS library: bsi_mirror_check_ca_file) */
	if (rc == BSI_OK && cfg->ca_file) {
		struct stat sb;

		if (access(cfg->ca_file, R_OK) < 0 || stat(cfg->ca_file, &sb) < 0)
			rc = bsi_error_set(BSI_EUSAGE, "%s: ca_file \"%s\": %s", path,
					   cfg->ca_file, strerror(errno));
		else if (!S_ISREG(sb.st_mode))
			rc = bsi_error_set(BSI_EUSAGE, "%s: ca_file \"%s\": not a regular file (a "
						       "PEM bundle of CA certificates)",
					   path, cfg->ca_file);
	}
done:
	free(text);
	return rc;
}
