/* state.c - the SQLite state database; see state.h for the contracts. */
#include "state.h"

#include "error.h"
#include "failpoint.h"
#include "statedir.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A plan with nothing to do runs the same few statements thousands of
 * times (hash cache, improvement rows); preparing each anew was a sixth
 * of its time. */
#define STMT_CACHE 16

struct bsi_state {
	sqlite3 *db;
	char *dir;
	char *path;
	bool relaxed; /* synchronous=NORMAL for a hash-cache write (durable()) */
	/* Prepared statements kept for reuse (prepare(), finish()) */
	struct {
		sqlite3_stmt *stmt;
		bool busy;
	} cache[STMT_CACHE];
};

/*
 * Migrations, index i brings user_version i to i+1.  Append only: a
 * released migration is never edited.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE improvements ("
	"  id TEXT PRIMARY KEY,"
	"  component TEXT, summary TEXT, severity TEXT, fixes TEXT,"
	"  status TEXT NOT NULL DEFAULT 'pending',"
	"  reason TEXT,"
	"  held INTEGER NOT NULL DEFAULT 0,"
	"  restart_pending INTEGER NOT NULL DEFAULT 0,"
	"  applied_at INTEGER NOT NULL DEFAULT 0,"
	"  feed_commit TEXT, signer TEXT, notes TEXT);"
	"CREATE TABLE transactions ("
	"  id INTEGER PRIMARY KEY,"
	"  improvement TEXT NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('apply', 'rollback')),"
	"  state TEXT NOT NULL,"
	"  started_at INTEGER NOT NULL,"
	"  finished_at INTEGER);"
	"CREATE TABLE actions ("
	"  txn INTEGER NOT NULL REFERENCES transactions(id),"
	"  seq INTEGER NOT NULL,"
	"  path TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL,"
	"  backup TEXT, stage TEXT NOT NULL,"
	"  PRIMARY KEY (txn, seq));"
	"CREATE TABLE commit_cache ("
	"  commit_id TEXT PRIMARY KEY, signer TEXT NOT NULL, verified_at INTEGER NOT NULL);"
	"CREATE TABLE feed ("
	"  one INTEGER PRIMARY KEY CHECK (one = 1),"
	"  url TEXT NOT NULL, introduction TEXT NOT NULL, signer_key TEXT NOT NULL,"
	"  head TEXT, head_time INTEGER NOT NULL DEFAULT 0,"
	"  synced_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE hash_cache ("
	"  dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,"
	"  mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, digest TEXT NOT NULL,"
	"  PRIMARY KEY (dev, ino));"
	"CREATE TABLE history ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
	"  action TEXT NOT NULL, improvement TEXT, feed_commit TEXT, signer TEXT,"
	"  detail TEXT);"
	"CREATE TRIGGER history_no_update BEFORE UPDATE ON history"
	"  BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;"
	"CREATE TRIGGER history_no_delete BEFORE DELETE ON history"
	"  BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;",
	/* 1 -> 2: the target root this state belongs to (bsi_state_bind_root) */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
	/* 2 -> 3: when, by this device's clock, the trusted head last changed
	 * (feed staleness, bsi_state_feed).  An older state never recorded it:
	 * the head's commit time, when earlier than the last sync, bounds it
	 * from below (the device cannot have fetched a commit before it was
	 * made, unless its signer's clock ran fast), else the last sync; so
	 * the estimate errs towards the alarm, and a state that status called
	 * stale before the upgrade is still stale after it.  Without a head,
	 * the enrollment's time from the history. */
	"ALTER TABLE feed ADD COLUMN head_seen_at INTEGER NOT NULL DEFAULT 0;"
	"UPDATE feed SET head_seen_at = CASE"
	"  WHEN head IS NULL THEN"
	"    COALESCE((SELECT MAX(time) FROM history WHERE action = 'enroll'), 0)"
	"  WHEN head_time > 0 AND head_time < synced_at THEN head_time"
	"  ELSE synced_at END;",
};

/*
 * Tables that only cache what can be computed again live outside the
 * versioned schema: created at open when missing, ignored by a bsi that
 * does not know them.  So adding one does not lock an older bsi out of the
 * state (an older bsi refuses a newer schema version, and bsi may itself
 * be rolled back to one).  If one cannot be created, its cache just misses.
 */
static const char caches[] =
	/* SHA-256 of feed payloads by git blob id (bsi_state_payload_get) */
	"CREATE TABLE IF NOT EXISTS payload_cache ("
	"  blob TEXT PRIMARY KEY, digest TEXT NOT NULL);";

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(NMIGRATIONS == BSI_STATE_SCHEMA_VERSION, "one migration per schema version");

/*
 * A text bind copies the text (SQLITE_TRANSIENT) and fails when that
 * copy cannot be allocated, leaving the parameter NULL; sqlite3_step would
 * then run the statement with a NULL in its place (an UPDATE matching no
 * row, an INSERT of a NULL).  So a failed bind is remembered, and step()
 * refuses to run the next statement; db_error() then says why.
 */
static _Thread_local bool bind_failed, step_refused;

/*
 * Did the last call on st's connection fail for want of space?  SQLITE_FULL,
 * or an I/O error whose system errno is ENOSPC (growing the -shm or -wal
 * file fails as "disk I/O error").  Only for an error code that comes from
 * the file system: the system errno is what the last failing OS call left.
 */
static bool no_space(bsi_state *st)
{
	int code = st->db ? sqlite3_extended_errcode(st->db) & 0xff : SQLITE_OK;

	return code == SQLITE_FULL ||
	       ((code == SQLITE_IOERR || code == SQLITE_CANTOPEN) &&
		sqlite3_system_errno(st->db) == ENOSPC);
}

/* A full disk is a full disk: never a "damaged" database to move away,
 * which would forget every backup bsi keeps. */
static int space_error(bsi_state *st, const char *what)
{
	return bsi_error_set(BSI_EFAIL,
			     "no space left on the device holding the state (%s): %s failed; "
			     "free some space there and run bsi again",
			     st->dir, what);
}

static int db_error(bsi_state *st, const char *what)
{
	const char *why = step_refused ? "out of memory binding a value" : sqlite3_errmsg(st->db);

	if (!step_refused && no_space(st))
		return space_error(st, what);
	step_refused = false;
	return bsi_error_set(BSI_EFAIL, "state database %s: %s: %s", st->path, what, why);
}

static int exec(bsi_state *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		if (no_space(st))
			space_error(st, sql);
		else
			bsi_error_set(BSI_EFAIL, "state database %s: %s", st->path,
				      msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return BSI_EFAIL;
	}
	return 0;
}

/*
 * Back to synchronous=FULL if a hash-cache write left the connection
 * relaxed and could not restore it (out of memory): every statement is
 * prepared through here and every transaction begins through here, so
 * nothing else is ever written without its fsync.
 */
static int durable(bsi_state *st)
{
	if (st->relaxed && exec(st, "PRAGMA synchronous=FULL") != 0)
		return BSI_EFAIL;
	st->relaxed = false;
	return 0;
}

/*
 * Prepare sql, or take the idle cached statement with the same text.  The
 * first STMT_CACHE distinct statements are kept; finish() hands one back
 * (reset, bindings cleared) or finalizes one that is not kept.
 */
static int prepare(bsi_state *st, sqlite3_stmt **out, const char *sql)
{
	size_t i, slot = STMT_CACHE;

	*out = NULL;
	if (durable(st) != 0)
		return BSI_EFAIL;
	bind_failed = false; /* a new statement: nothing of it is bound yet */
	for (i = 0; i < STMT_CACHE; i++) {
		sqlite3_stmt *c = st->cache[i].stmt;

		if (!c) {
			if (slot == STMT_CACHE)
				slot = i;
		} else if (!st->cache[i].busy && strcmp(sqlite3_sql(c), sql) == 0) {
			st->cache[i].busy = true;
			*out = c;
			return 0;
		}
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, slot < STMT_CACHE ? SQLITE_PREPARE_PERSISTENT : 0,
			       out, NULL) != SQLITE_OK)
		return db_error(st, "prepare");
	if (slot < STMT_CACHE && *out) {
		st->cache[slot].stmt = *out;
		st->cache[slot].busy = true;
	}
	return 0;
}

/* Close the connection, with the statements kept for it. */
static void close_db(bsi_state *st)
{
	for (size_t i = 0; i < STMT_CACHE; i++) {
		sqlite3_finalize(st->cache[i].stmt);
		st->cache[i].stmt = NULL;
		st->cache[i].busy = false;
	}
	if (st->db)
		sqlite3_close(st->db);
	st->db = NULL;
}

/* Done with a statement from prepare(); NULL is fine. */
static void finish(bsi_state *st, sqlite3_stmt *s)
{
	for (size_t i = 0; s && i < STMT_CACHE; i++)
		if (st->cache[i].stmt == s) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			st->cache[i].busy = false;
			return;
		}
	sqlite3_finalize(s);
}


/* Bind text or NULL. */
static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	int rc = v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);

	if (rc != SQLITE_OK)
		bind_failed = true;
}

static int step(sqlite3_stmt *s)
{
	if (bind_failed) {
		bind_failed = false;
		step_refused = true;
		return SQLITE_NOMEM;
	}
	return sqlite3_step(s);
}

static char *col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? strdup((const char *)t) : NULL;
}

/* Step a statement that returns no rows, finalize it either way. */
static int run(bsi_state *st, sqlite3_stmt *s, const char *what)
{
	int rc = step(s);
	int ret = 0;

	if (rc != SQLITE_DONE)
		ret = db_error(st, what);
	finish(st, s);
	return ret;
}

/*
 * run(), for an entry of a cache: it need not survive a power cut (what it
 * says is computed again), so it is written without an fsync of its own.
 * synchronous=NORMAL keeps a WAL database consistent, and the next FULL
 * commit makes the entry durable too.  A first plan over 1,000 files
 * waited for 1,000 fdatasyncs.  Inside a transaction, the transaction's
 * commit decides.
 */
static int run_cache_write(bsi_state *st, sqlite3_stmt *s, const char *what)
{
	int ret;

	if (sqlite3_get_autocommit(st->db) && exec(st, "PRAGMA synchronous=NORMAL") == 0)
		st->relaxed = true;
	ret = run(st, s, what);
	if (st->relaxed && exec(st, "PRAGMA synchronous=FULL") == 0)
		st->relaxed = false; /* else durable() retries before the next write */
	return ret;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0 || fsync(fd) != 0)
		ret = bsi_error_set(BSI_EFAIL, "fsync %s: %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	return ret;
}

static int configure(bsi_state *st)
{
	sqlite3_busy_timeout(st->db, 10000);
	sqlite3_extended_result_codes(st->db, 1);
	return exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
			"PRAGMA foreign_keys=ON;");
}

static int user_version(bsi_state *st, int *out)
{
	sqlite3_stmt *s = NULL;
	int ret = prepare(st, &s, "PRAGMA user_version");

	if (ret == 0 && step(s) == SQLITE_ROW)
		*out = sqlite3_column_int(s, 0);
	else if (ret == 0)
		ret = db_error(st, "read schema version");
	finish(st, s);
	return ret;
}

/*
 * Bring the schema up to BSI_STATE_SCHEMA_VERSION, one migration per SQL
 * transaction together with its user_version bump.  The version is read
 * again inside each write transaction, so two bsi opening an old database
 * at once migrate it once.
 */
static int migrate(bsi_state *st, int from)
{
	char sql[64];
	int v = from;

	for (;;) {
		if (exec(st, "BEGIN IMMEDIATE") != 0)
			return BSI_EFAIL;
		if (user_version(st, &v) != 0) {
			bsi_state_rollback(st);
			return BSI_EFAIL;
		}
		if (v >= (int)NMIGRATIONS) {
			bsi_state_rollback(st);
			return 0;
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
		if (exec(st, migrations[v]) != 0 || exec(st, sql) != 0) {
			bsi_state_rollback(st);
			return bsi_error_wrap("migrating schema %d to %d", v, v + 1);
		}
		if (exec(st, "COMMIT") != 0) {
			bsi_state_rollback(st);
			return BSI_EFAIL;
		}
	}
}

/*
 * Build a fresh database under a temporary name of our own, then link(2) it
 * to `path`: link never replaces an existing file, so when two bsi (one
 * without the lock, e.g. `status`) create the state at once, exactly one
 * database wins and neither clobbers what the other may already have
 * written.
 */
static int create_db(bsi_state *st)
{
	char *tmp = NULL;
	int ret = BSI_EFAIL;

	if (asprintf(&tmp, "%s/.state.db.new.%ld", st->dir, (long)getpid()) < 0) {
		tmp = NULL;
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	unlink(tmp);
	if (sqlite3_open_v2(tmp, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
			    NULL) != SQLITE_OK) {
		ret = db_error(st, "create");
		goto done;
	}
	if ((ret = configure(st)) != 0 || (ret = migrate(st, 0)) != 0)
		goto done;
	/* Closing the last connection checkpoints and removes the WAL. */
	close_db(st);
	if (link(tmp, st->path) != 0 && errno != EEXIST) {
		ret = bsi_error_set(BSI_EFAIL, "create %s: %s", st->path, strerror(errno));
		goto done;
	}
	if ((ret = fsync_dir(st->dir)) != 0)
		goto done;
	ret = 0;
done:
	close_db(st);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return ret;
}

static int check_integrity(bsi_state *st)
{
	sqlite3_stmt *s = NULL;
	int ret = 0;
	const unsigned char *r;

	int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return bsi_error_set(BSI_EFAIL, "state database %s is busy: %s", st->path,
				     sqlite3_errmsg(st->db));
	if (rc != SQLITE_OK && no_space(st))
		return space_error(st, "opening state.db");
	if (rc != SQLITE_OK)
		return bsi_error_set(BSI_EFAIL,
				     "state database %s is damaged or not a bsi database (%s); "
				     "it was left untouched: restore it from a backup or move it "
				     "away to start over (forgetting applied improvements)",
				     st->path, sqlite3_errmsg(st->db));
	rc = step(s);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		ret = bsi_error_set(BSI_EFAIL, "state database %s is busy: %s", st->path,
				    sqlite3_errmsg(st->db));
	else if (rc != SQLITE_ROW && no_space(st))
		ret = space_error(st, "checking state.db");
	else if (rc != SQLITE_ROW || !(r = sqlite3_column_text(s, 0)) ||
		 strcmp((const char *)r, "ok") != 0)
		ret = bsi_error_set(BSI_EFAIL,
				    "state database %s is damaged (%s); it was left untouched: "
				    "restore it from a backup or move it away to start over",
				    st->path, sqlite3_errmsg(st->db));
	finish(st, s);
	return ret;
}

int bsi_state_open(bsi_state **out, const char *dir)
{
	bsi_state *st = NULL;
	struct stat sb;
	int ret = BSI_EFAIL, version = 0;

	*out = NULL;
	if (!(st = calloc(1, sizeof(*st)))) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	/* Nothing is read from a directory someone else could change. */
	if ((ret = bsi_statedir_prepare(&st->dir, dir)) != 0)
		goto done;
	if (asprintf(&st->path, "%s/state.db", st->dir) < 0) {
		st->path = NULL;
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if (lstat(st->path, &sb) != 0) {
		if (errno != ENOENT) {
			ret = bsi_error_set(BSI_EFAIL, "state database %s: %s", st->path,
					    strerror(errno));
			goto done;
		}
		if ((ret = create_db(st)) != 0)
			goto done;
	}
	/* NOFOLLOW: a symbolic link at state.db is refused (its -wal and -shm
	 * are opened with O_NOFOLLOW by SQLite in any case). */
	if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
			    NULL) != SQLITE_OK) {
		if (no_space(st))
			ret = space_error(st, "opening state.db");
		else
			ret = bsi_error_set(BSI_EFAIL, "state database %s cannot be opened: %s",
					    st->path,
					    st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto done;
	}
	sqlite3_busy_timeout(st->db, 10000);
	if ((ret = check_integrity(st)) != 0 || (ret = configure(st)) != 0)
		goto done;
	if ((ret = user_version(st, &version)) != 0)
		goto done;
	if (version == 0) {
		/* create_db never leaves version 0 behind: this file was not made
		 * by bsi, or lost its contents. */
		ret = bsi_error_set(BSI_EFAIL,
				    "state database %s is not a bsi database (schema version 0); "
				    "it was left untouched",
				    st->path);
		goto done;
	}
	if (version > BSI_STATE_SCHEMA_VERSION) {
		ret = bsi_error_set(BSI_EFAIL,
				    "state database %s has schema version %d, newer than this bsi "
				    "understands (%d); refusing to touch it",
				    st->path, version, BSI_STATE_SCHEMA_VERSION);
		goto done;
	}
	if (version < BSI_STATE_SCHEMA_VERSION && (ret = migrate(st, version)) != 0)
		goto done;
	(void)exec(st, caches);
	*out = st;
	st = NULL;
	ret = 0;
done:
	bsi_state_free(st);
	return ret;
}

void bsi_state_free(bsi_state *st)
{
	if (!st)
		return;
	close_db(st);
	free(st->dir);
	free(st->path);
	free(st);
}

const char *bsi_state_dir(const bsi_state *st) { return st->dir; }

/* An injected error for `site` (EIO), or for `site`.enospc (ENOSPC, which
 * txn.h promises for every site; bsi_fault() sees one name at a time). */
static int fault(const char *site)
{
	char name[64];
	int e = bsi_fault(site);

	if (e)
		return e;
	snprintf(name, sizeof(name), "%s.enospc", site);
	return bsi_fault(name);
}

int bsi_state_begin(bsi_state *st)
{
	int e = fault("state.begin");

	if (e == ENOSPC)
		return space_error(st, "begin");
	if (e)
		return bsi_error_set(BSI_EFAIL, "state database %s: begin: %s", st->path,
				     strerror(e));
	if (durable(st) != 0)
		return BSI_EFAIL;
	return exec(st, "BEGIN IMMEDIATE");
}

int bsi_state_commit(bsi_state *st)
{
	int e = fault("state.commit");

	if (e) {
		bsi_state_rollback(st);
		if (e == ENOSPC)
			return space_error(st, "commit");
		return bsi_error_set(BSI_EFAIL, "state database %s: commit: %s", st->path,
				     strerror(e));
	}
	if (exec(st, "COMMIT") != 0) {
		bsi_state_rollback(st);
		return BSI_EFAIL;
	}
	return 0;
}

void bsi_state_rollback(bsi_state *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- improvements ---------------------------------------------------- */

void bsi_state_improvement_free(bsi_state_improvement *imp)
{
	if (!imp)
		return;
	free(imp->id);
	free(imp->component);
	free(imp->summary);
	free(imp->severity);
	free(imp->fixes);
	free(imp->reason);
	free(imp->feed_commit);
	free(imp->signer);
	free(imp->notes);
	free(imp);
}

void bsi_state_improvement_list_free(bsi_state_improvement **list, size_t count)
{
	size_t i;

	for (i = 0; list && i < count; i++)
		bsi_state_improvement_free(list[i]);
	free(list);
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *str_array(char **v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		if (json_array_append_new(a, str_or_null(v[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

/* json_object_set_new that counts failures in *bad (v NULL, out of memory);
 * v is consumed either way. */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
	if (json_object_set_new(o, key, v) < 0)
		(*bad)++;
}

/* The notes kept for an improvement, or NULL when any part could not be
 * made: a record with a file missing would mislead show and verify. */
json_t *bsi_state_notes_json(const bsi_improvement *imp)
{
	json_t *o = json_object(), *acts = json_array();
	int bad = 0;
	size_t i;

	if (!o || !acts) {
		json_decref(o);
		json_decref(acts);
		return NULL;
	}
	put(o, "id", str_or_null(imp->id), &bad);
	put(o, "component", str_or_null(imp->component), &bad);
	put(o, "summary", str_or_null(imp->summary), &bad);
	put(o, "severity", str_or_null(imp->severity), &bad);
	put(o, "fixes", str_array(imp->fixes, imp->nfixes), &bad);
	put(o, "supersedes", str_array(imp->supersedes, imp->nsupersedes), &bad);
	put(o, "recipe", str_or_null(imp->recipe), &bad);
	put(o, "line", json_integer(imp->line), &bad);
	for (i = 0; i < imp->nactions; i++) {
		const bsi_action *a = &imp->actions[i];
		json_t *j = json_object();

		if (!j) {
			bad++;
			break;
		}
		if (a->op == BSI_ACTION_REPLACE) {
			put(j, "op", json_string("replace"), &bad);
			put(j, "path", str_or_null(a->path), &bad);
			put(j, "from", str_or_null(a->from), &bad);
			put(j, "to", str_or_null(a->to), &bad);
			put(j, "payload", str_or_null(a->payload), &bad);
		} else {
			put(j, "op", json_string("restart"), &bad);
			put(j, "service", str_or_null(a->service), &bad);
		}
		if (json_array_append_new(acts, j) < 0)
			bad++;
	}
	json_incref(acts);
	put(o, "actions", acts, &bad);
	if (bad) {
		json_decref(o);
		o = NULL;
	}
	json_decref(acts);
	return o;
}

json_t *bsi_state_improvement_to_json(const bsi_state_improvement *imp)
{
	json_t *o = json_object(), *fixes, *notes;
	bsi_status shown = imp->status;

	if (!o)
		return NULL;
	if (imp->held && shown != BSI_STATUS_APPLIED && shown != BSI_STATUS_OBSOLETE &&
	    shown != BSI_STATUS_TAMPERED)
		shown = BSI_STATUS_HELD;
	fixes = imp->fixes ? json_loads(imp->fixes, 0, NULL) : NULL;
	notes = imp->notes ? json_loads(imp->notes, 0, NULL) : NULL;
	json_object_set_new(o, "id", str_or_null(imp->id));
	json_object_set_new(o, "component", str_or_null(imp->component));
	json_object_set_new(o, "summary", str_or_null(imp->summary));
	json_object_set_new(o, "severity", str_or_null(imp->severity));
	json_object_set_new(o, "fixes", fixes ? fixes : json_array());
	json_object_set_new(o, "status", json_string(bsi_status_name(shown)));
	json_object_set_new(o, "reason", str_or_null(imp->reason));
	json_object_set_new(o, "held", json_boolean(imp->held));
	json_object_set_new(o, "restart_pending", json_boolean(imp->restart_pending));
	json_object_set_new(o, "applied_at",
			    imp->applied_at ? json_integer(imp->applied_at) : json_null());
	json_object_set_new(o, "feed_commit", str_or_null(imp->feed_commit));
	json_object_set_new(o, "signer", str_or_null(imp->signer));
	if (json_is_array(json_object_get(notes, "actions")))
		json_object_set(o, "actions", json_object_get(notes, "actions"));
	else
		json_object_set_new(o, "actions", json_array());
	json_decref(notes);
	return o;
}

int bsi_state_improvement_note(bsi_state *st, const bsi_improvement *imp)
{
	sqlite3_stmt *s = NULL;
	json_t *j = NULL, *fixes = NULL;
	char *notes = NULL, *fixes_text = NULL;
	int ret = BSI_EFAIL;

	if (!imp->id || !*imp->id)
		return bsi_error_set(BSI_EUSAGE, "improvement without an id");
	j = bsi_state_notes_json(imp);
	fixes = str_array(imp->fixes, imp->nfixes);
	if (!j || !fixes || !(notes = json_dumps(j, JSON_COMPACT)) ||
	    !(fixes_text = json_dumps(fixes, JSON_COMPACT))) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if ((ret = prepare(st, &s,
			   "INSERT INTO improvements (id, component, summary, severity, fixes, "
			   "notes) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET "
			   "component=?2, summary=?3, severity=?4, fixes=?5, notes=?6")) != 0)
		goto done;
	bind_text(s, 1, imp->id);
	bind_text(s, 2, imp->component);
	bind_text(s, 3, imp->summary);
	bind_text(s, 4, imp->severity);
	bind_text(s, 5, fixes_text);
	bind_text(s, 6, notes);
	ret = run(st, s, "record improvement");
	s = NULL;
done:
	finish(st, s);
	json_decref(j);
	json_decref(fixes);
	free(notes);
	free(fixes_text);
	return ret;
}

#define IMP_COLUMNS                                                                       \
	"id, component, summary, severity, fixes, status, reason, held, restart_pending, " \
	"applied_at, feed_commit, signer, notes"

static int read_improvement(bsi_state *st, sqlite3_stmt *s, bsi_state_improvement **out)
{
	bsi_state_improvement *imp = calloc(1, sizeof(*imp));
	const unsigned char *status;

	if (!imp)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	imp->id = col_text(s, 0);
	imp->component = col_text(s, 1);
	imp->summary = col_text(s, 2);
	imp->severity = col_text(s, 3);
	imp->fixes = col_text(s, 4);
	status = sqlite3_column_text(s, 5);
	if (!status || bsi_status_parse((const char *)status, &imp->status) != 0) {
		bsi_error_set(BSI_EFAIL, "state database %s: improvement %s has unknown status %s",
			      st->path, imp->id ? imp->id : "?",
			      status ? (const char *)status : "NULL");
		bsi_state_improvement_free(imp);
		return BSI_EFAIL;
	}
	imp->reason = col_text(s, 6);
	imp->held = sqlite3_column_int(s, 7) != 0;
	imp->restart_pending = sqlite3_column_int(s, 8) != 0;
	imp->applied_at = sqlite3_column_int64(s, 9);
	imp->feed_commit = col_text(s, 10);
	imp->signer = col_text(s, 11);
	imp->notes = col_text(s, 12);
	*out = imp;
	return 0;
}

int bsi_state_improvement_get(bsi_state *st, const char *id, bsi_state_improvement **out)
{
	sqlite3_stmt *s = NULL;
	int ret, rc;

	*out = NULL;
	if ((ret = prepare(st, &s, "SELECT " IMP_COLUMNS " FROM improvements WHERE id = ?1")) != 0)
		return ret;
	bind_text(s, 1, id);
	rc = step(s);
	if (rc == SQLITE_ROW)
		ret = read_improvement(st, s, out);
	else if (rc != SQLITE_DONE)
		ret = db_error(st, "read improvement");
	finish(st, s);
	return ret;
}

int bsi_state_improvement_list(bsi_state *st, bsi_state_improvement ***out, size_t *out_count)
{
	sqlite3_stmt *s = NULL;
	bsi_state_improvement **list = NULL, **grown;
	size_t n = 0;
	int ret, rc;

	*out = NULL;
	*out_count = 0;
	if ((ret = prepare(st, &s, "SELECT " IMP_COLUMNS " FROM improvements ORDER BY id")) != 0)
		return ret;
	while ((rc = step(s)) == SQLITE_ROW) {
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): a list of pointers */
		if (!(grown = realloc(list, (n + 1) * sizeof(*list)))) {
			ret = bsi_error_set(BSI_EFAIL, "out of memory");
			goto done;
		}
		list = grown;
		if ((ret = read_improvement(st, s, &list[n])) != 0)
			goto done;
		n++;
	}
	if (rc != SQLITE_DONE) {
		ret = db_error(st, "list improvements");
		goto done;
	}
	*out = list;
	*out_count = n;
	list = NULL;
	n = 0;
done:
	finish(st, s);
	bsi_state_improvement_list_free(list, n);
	return ret;
}

/* Run an UPDATE of one improvement; BSI_EUSAGE when no row matched. */
static int update_improvement(bsi_state *st, sqlite3_stmt *s, const char *id)
{
	int rc = step(s);

	finish(st, s);
	if (rc != SQLITE_DONE)
		return db_error(st, "update improvement");
	if (sqlite3_changes(st->db) == 0)
		return bsi_error_set(BSI_EUSAGE, "unknown improvement %s", id);
	return 0;
}

int bsi_state_improvement_set_status(bsi_state *st, const char *id, bsi_status status,
				     const char *reason)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if (status == BSI_STATUS_HELD)
		return bsi_state_improvement_set_held(st, id, true);
	if ((ret = prepare(st, &s, "UPDATE improvements SET status = ?2, reason = ?3 WHERE id = ?1")) !=
	    0)
		return ret;
	bind_text(s, 1, id);
	bind_text(s, 2, bsi_status_name(status));
	bind_text(s, 3, reason);
	return update_improvement(st, s, id);
}

int bsi_state_improvement_set_held(bsi_state *st, const char *id, bool held)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if ((ret = prepare(st, &s, "UPDATE improvements SET held = ?2 WHERE id = ?1")) != 0)
		return ret;
	bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, held);
	return update_improvement(st, s, id);
}

int bsi_state_improvement_set_restart_pending(bsi_state *st, const char *id, bool pending)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if ((ret = prepare(st, &s, "UPDATE improvements SET restart_pending = ?2 WHERE id = ?1")) !=
	    0)
		return ret;
	bind_text(s, 1, id);
	sqlite3_bind_int(s, 2, pending);
	return update_improvement(st, s, id);
}

int bsi_state_improvement_set_applied(bsi_state *st, const char *id, const char *feed_commit,
				      const char *signer, bool restart_pending)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if ((ret = prepare(st, &s,
			   "UPDATE improvements SET status = 'applied', reason = NULL, "
			   "applied_at = ?2, feed_commit = ?3, signer = ?4, restart_pending = ?5 "
			   "WHERE id = ?1")) != 0)
		return ret;
	bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)time(NULL));
	bind_text(s, 3, feed_commit);
	bind_text(s, 4, signer);
	sqlite3_bind_int(s, 5, restart_pending);
	return update_improvement(st, s, id);
}

/* ---- history --------------------------------------------------------- */

int bsi_state_history_add(bsi_state *st, const char *action, const char *improvement,
			  const char *feed_commit, const char *signer, const char *detail)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if ((ret = prepare(st, &s,
			   "INSERT INTO history (time, action, improvement, feed_commit, signer, "
			   "detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")) != 0)
		return ret;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)time(NULL));
	bind_text(s, 2, action);
	bind_text(s, 3, improvement);
	bind_text(s, 4, feed_commit);
	bind_text(s, 5, signer);
	bind_text(s, 6, detail);
	return run(st, s, "append history");
}

int bsi_state_history_json(bsi_state *st, const char *improvement, json_t **out)
{
	sqlite3_stmt *s = NULL;
	json_t *arr = json_array();
	int ret, rc;

	*out = NULL;
	if (!arr)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	if ((ret = prepare(st, &s,
			   "SELECT seq, time, action, improvement, feed_commit, signer, detail "
			   "FROM history WHERE ?1 IS NULL OR improvement = ?1 ORDER BY seq")) != 0)
		goto done;
	bind_text(s, 1, improvement);
	while ((rc = step(s)) == SQLITE_ROW) {
		static const char *const keys[] = {"action", "improvement", "feed_commit",
						   "signer", "detail"};
		json_t *e = json_object();
		int i;

		json_object_set_new(e, "seq", json_integer(sqlite3_column_int64(s, 0)));
		json_object_set_new(e, "time", json_integer(sqlite3_column_int64(s, 1)));
		for (i = 0; i < 5; i++)
			json_object_set_new(e, keys[i],
					    str_or_null((const char *)sqlite3_column_text(s, 2 + i)));
		json_array_append_new(arr, e);
	}
	if (rc != SQLITE_DONE) {
		ret = db_error(st, "read history");
		goto done;
	}
	*out = arr;
	arr = NULL;
done:
	finish(st, s);
	json_decref(arr);
	return ret;
}

/* ---- feed ------------------------------------------------------------ */

void bsi_state_feed_free(bsi_state_feed *feed)
{
	if (!feed)
		return;
	free(feed->url);
	free(feed->introduction);
	free(feed->signer_key);
	free(feed->head);
	free(feed);
}

int bsi_state_feed_get(bsi_state *st, bsi_state_feed **out)
{
	sqlite3_stmt *s = NULL;
	bsi_state_feed *f;
	int ret, rc;

	*out = NULL;
	if ((ret = prepare(st, &s,
			   "SELECT url, introduction, signer_key, head, head_time, synced_at, "
			   "head_seen_at FROM feed WHERE one = 1")) != 0)
		return ret;
	rc = step(s);
	if (rc == SQLITE_ROW) {
		if (!(f = calloc(1, sizeof(*f)))) {
			ret = bsi_error_set(BSI_EFAIL, "out of memory");
		} else {
			f->url = col_text(s, 0);
			f->introduction = col_text(s, 1);
			f->signer_key = col_text(s, 2);
			f->head = col_text(s, 3);
			f->head_time = sqlite3_column_int64(s, 4);
			f->synced_at = sqlite3_column_int64(s, 5);
			f->head_seen_at = sqlite3_column_int64(s, 6);
			*out = f;
		}
	} else if (rc != SQLITE_DONE) {
		ret = db_error(st, "read feed");
	}
	finish(st, s);
	return ret;
}

int bsi_state_feed_set_anchor(bsi_state *st, const char *url, const char *introduction,
			      const char *signer_key)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if (!url || !introduction || !signer_key)
		return bsi_error_set(BSI_EUSAGE, "enrolling needs a URL, an introduction and a key");
	if ((ret = prepare(st, &s,
			   "INSERT OR REPLACE INTO feed (one, url, introduction, signer_key, head, "
			   "head_time, synced_at, head_seen_at) VALUES (1, ?1, ?2, ?3, NULL, 0, 0, ?4)")) != 0)
		return ret;
	bind_text(s, 1, url);
	bind_text(s, 2, introduction);
	bind_text(s, 3, signer_key);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)time(NULL));
	return run(st, s, "enroll feed");
}

int bsi_state_feed_set_head(bsi_state *st, const char *head, int64_t head_time,
			    int64_t synced_at)
{
	sqlite3_stmt *s = NULL;
	int ret;

	/* SET expressions read the row as it was: head_seen_at moves to now
	 * when the head changes, and otherwise only down to now (a time
	 * recorded while the clock ran ahead must not hide staleness). */
	if ((ret = prepare(st, &s,
			   "UPDATE feed SET head = ?1, head_time = ?2, synced_at = ?3, "
			   "head_seen_at = CASE WHEN head IS ?1 AND head_seen_at > 0 "
			   "THEN MIN(head_seen_at, ?3) ELSE ?3 END WHERE one = 1")) != 0)
		return ret;
	bind_text(s, 1, head);
	sqlite3_bind_int64(s, 2, head_time);
	sqlite3_bind_int64(s, 3, synced_at);
	if (step(s) != SQLITE_DONE) {
		ret = db_error(st, "update feed head");
	} else if (sqlite3_changes(st->db) == 0) {
		ret = bsi_error_set(BSI_EUSAGE, "no feed is enrolled");
	}
	finish(st, s);
	return ret;
}

/* ---- commit cache ---------------------------------------------------- */

int bsi_state_commit_lookup(bsi_state *st, const char *commit_id, bool *out_found,
			    char **out_signer)
{
	sqlite3_stmt *s = NULL;
	int ret, rc;

	*out_found = false;
	if (out_signer)
		*out_signer = NULL;
	if ((ret = prepare(st, &s, "SELECT signer FROM commit_cache WHERE commit_id = ?1")) != 0)
		return ret;
	bind_text(s, 1, commit_id);
	rc = step(s);
	if (rc == SQLITE_ROW) {
		*out_found = true;
		if (out_signer)
			*out_signer = col_text(s, 0);
	} else if (rc != SQLITE_DONE) {
		ret = db_error(st, "read commit cache");
	}
	finish(st, s);
	return ret;
}

int bsi_state_commit_remember(bsi_state *st, const char *commit_id, const char *signer)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if ((ret = prepare(st, &s,
			   "INSERT OR REPLACE INTO commit_cache (commit_id, signer, verified_at) "
			   "VALUES (?1, ?2, ?3)")) != 0)
		return ret;
	bind_text(s, 1, commit_id);
	bind_text(s, 2, signer ? signer : "");
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	return run(st, s, "remember commit");
}

int bsi_state_commit_known(void *st, const git_oid *id)
{
	char hex[GIT_OID_HEXSZ + 1];
	bool found = false;
	int ret;

	git_oid_tostr(hex, sizeof(hex), id);
	if ((ret = bsi_state_commit_lookup(st, hex, &found, NULL)) != 0)
		return ret;
	return found ? 1 : 0;
}

int bsi_state_feed_advance(bsi_state *st, const char *head, int64_t head_time, int64_t synced_at,
			   const char *const *ids, const char *const *signers, size_t n)
{
	size_t i;
	int ret;

	if ((ret = bsi_state_begin(st)) != 0)
		return ret;
	for (i = 0; i < n; i++)
		if ((ret = bsi_state_commit_remember(st, ids[i], signers ? signers[i] : NULL)) != 0)
			goto fail;
	if ((ret = bsi_state_feed_set_head(st, head, head_time, synced_at)) != 0)
		goto fail;
	return bsi_state_commit(st);
fail:
	bsi_state_rollback(st);
	return ret;
}

/* ---- hash cache ------------------------------------------------------ */

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

/* A hash-cache entry's key, parameters 1 to 5: device, inode, size, mtime
 * and ctime (ns). */
static void bind_file_key(sqlite3_stmt *s, const struct stat *sb)
{
	sqlite3_bind_int64(s, 1, (sqlite3_int64)sb->st_dev);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)sb->st_ino);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)sb->st_size);
	sqlite3_bind_int64(s, 4, ns(sb->st_mtim));
	sqlite3_bind_int64(s, 5, ns(sb->st_ctim));
}

int bsi_state_hash_fd(bsi_state *st, int fd, char out_digest[BSI_DIGEST_STRLEN + 1])
{
	sqlite3_stmt *s = NULL;
	struct stat sb, after;
	int ret, rc;

	out_digest[0] = '\0';
	if (fstat(fd, &sb) != 0)
		return bsi_error_set(BSI_EFAIL, "fstat: %s", strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return bsi_error_set(BSI_ERECIPE, "not a regular file");
	/* A cache that cannot be read or written (busy past the timeout, a
	 * full disk, out of memory) is no reason to fail: the file is hashed. */
	if (prepare(st, &s,
		    "SELECT digest FROM hash_cache WHERE dev = ?1 AND ino = ?2 AND "
		    "size = ?3 AND mtime_ns = ?4 AND ctime_ns = ?5") == 0) {
		bind_file_key(s, &sb);
		rc = step(s);
		if (rc == SQLITE_ROW && sqlite3_column_text(s, 0) &&
		    bsi_digest_valid((const char *)sqlite3_column_text(s, 0))) {
			snprintf(out_digest, BSI_DIGEST_STRLEN + 1, "%s",
				 (const char *)sqlite3_column_text(s, 0));
			finish(st, s);
			return 0;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			db_error(st, "read hash cache"); /* clears step()'s flags */
		finish(st, s);
		s = NULL;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return bsi_error_set(BSI_EFAIL, "seek: %s", strerror(errno));
	if ((ret = bsi_digest_fd(fd, out_digest)) != 0)
		return ret;
	/* Cache only when the file did not change while we read it. */
	if (fstat(fd, &after) != 0 || after.st_size != sb.st_size ||
	    ns(after.st_mtim) != ns(sb.st_mtim) || ns(after.st_ctim) != ns(sb.st_ctim))
		return 0;
	if (prepare(st, &s,
		    "INSERT OR REPLACE INTO hash_cache (dev, ino, size, mtime_ns, ctime_ns, "
		    "digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") != 0)
		return 0;
	bind_file_key(s, &sb);
	bind_text(s, 6, out_digest);
	run_cache_write(st, s, "update hash cache");
	return 0;
}

int bsi_state_payload_get(void *ctx, const char *blob, char out[BSI_DIGEST_STRLEN + 1])
{
	bsi_state *st = ctx;
	sqlite3_stmt *s = NULL;
	int ret, rc;

	out[0] = '\0';
	if ((ret = prepare(st, &s, "SELECT digest FROM payload_cache WHERE blob = ?1")) != 0)
		return ret;
	bind_text(s, 1, blob);
	rc = step(s);
	if (rc == SQLITE_ROW && sqlite3_column_text(s, 0) &&
	    bsi_digest_valid((const char *)sqlite3_column_text(s, 0)))
		snprintf(out, BSI_DIGEST_STRLEN + 1, "%s", (const char *)sqlite3_column_text(s, 0));
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = db_error(st, "read payload cache");
	finish(st, s);
	return ret;
}

int bsi_state_payload_put(void *ctx, const char *blob, const char *digest)
{
	bsi_state *st = ctx;
	sqlite3_stmt *s = NULL;
	int ret;

	if ((ret = prepare(st, &s, "INSERT OR REPLACE INTO payload_cache (blob, digest) "
				   "VALUES (?1, ?2)")) != 0)
		return ret;
	bind_text(s, 1, blob);
	bind_text(s, 2, digest);
	return run_cache_write(st, s, "update payload cache");
}

/* The digest of rel, opened by `open` (bsi_root_open_regular or
 * bsi_root_open_target), through the cache; "" when it does not exist. */
static int hash_under_root(bsi_state *st, const bsi_root *root, const char *rel,
			   int (*open)(const bsi_root *, const char *, bsi_root_target *),
			   char out_digest[BSI_DIGEST_STRLEN + 1])
{
	bsi_root_target t;
	int ret;

	out_digest[0] = '\0';
	ret = open(root, rel, &t);
	if (ret == 0 && t.fd >= 0 && (ret = bsi_state_hash_fd(st, t.fd, out_digest)) != 0)
		bsi_error_wrap("%s", rel);
	bsi_root_target_close(&t);
	return ret;
}

int bsi_state_hash_file(bsi_state *st, const bsi_root *root, const char *rel,
			char out_digest[BSI_DIGEST_STRLEN + 1])
{
	return hash_under_root(st, root, rel, bsi_root_open_regular, out_digest);
}

int bsi_state_bind_root(bsi_state *st, const bsi_root *root)
{
	char real[PATH_MAX];
	sqlite3_stmt *s = NULL;
	int ret, rc;

	if (!realpath(bsi_root_path(root), real))
		return bsi_error_set(BSI_EFAIL, "target root %s: %s", bsi_root_path(root),
				     strerror(errno));
	if ((ret = prepare(st, &s, "SELECT value FROM meta WHERE key = 'root'")) != 0)
		return ret;
	rc = step(s);
	if (rc == SQLITE_ROW) {
		const char *bound = (const char *)sqlite3_column_text(s, 0);

		if (!bound || strcmp(bound, real) != 0)
			ret = bsi_error_set(BSI_EUSAGE,
					    "state %s belongs to target root %s, not %s; use --root "
					    "%s, or another --state for this root",
					    st->dir, bound ? bound : "?", real, bound ? bound : "?");
		finish(st, s);
		return ret;
	}
	finish(st, s);
	if (rc != SQLITE_DONE)
		return db_error(st, "read target root");
	if ((ret = prepare(st, &s, "INSERT INTO meta (key, value) VALUES ('root', ?1)")) != 0)
		return ret;
	bind_text(s, 1, real);
	return run(st, s, "record target root");
}

int bsi_state_meta_get(bsi_state *st, const char *key, char **out)
{
	sqlite3_stmt *s = NULL;
	int ret, rc;

	*out = NULL;
	if (strncmp(key, "root", 4) == 0)
		return bsi_error_set(BSI_EUSAGE, "state key %s is reserved", key);
	if ((ret = prepare(st, &s, "SELECT value FROM meta WHERE key = ?1")) != 0)
		return ret;
	bind_text(s, 1, key);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && !(*out = col_text(s, 0)))
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = db_error(st, "read meta");
	finish(st, s);
	return ret;
}

int bsi_state_meta_set(bsi_state *st, const char *key, const char *value)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if (strncmp(key, "root", 4) == 0)
		return bsi_error_set(BSI_EUSAGE, "state key %s is reserved", key);
	if ((ret = prepare(st, &s, value ? "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"
					 : "DELETE FROM meta WHERE key = ?1")) != 0)
		return ret;
	bind_text(s, 1, key);
	if (value)
		bind_text(s, 2, value);
	return run(st, s, "write meta");
}

int bsi_state_synchronous(bsi_state *st)
{
	sqlite3_stmt *s = NULL;
	int level = -1;

	if (prepare(st, &s, "PRAGMA synchronous") == 0 && step(s) == SQLITE_ROW)
		level = sqlite3_column_int(s, 0);
	finish(st, s);
	return level;
}

int bsi_state_plan_hasher(void *st, const bsi_root *root, const char *rel,
			  char out[BSI_DIGEST_STRLEN + 1], bool *out_exists)
{
	int ret = hash_under_root(st, root, rel, bsi_root_open_target, out);

	*out_exists = ret == 0 && out[0] != '\0';
	return ret;
}

/* ---- transactions ---------------------------------------------------- */

static const char *const txn_states[] = {"preparing", "staged", "committed", "undone"};

const char *bsi_txn_state_name(bsi_txn_state s)
{
	return (unsigned)s < 4 ? txn_states[s] : "?";
}

static int txn_state_parse(const char *name, bsi_txn_state *out)
{
	int i;

	for (i = 0; name && i < 4; i++)
		if (strcmp(name, txn_states[i]) == 0) {
			*out = (bsi_txn_state)i;
			return 0;
		}
	return bsi_error_set(BSI_EFAIL, "state database: unknown transaction state %s",
			     name ? name : "NULL");
}

void bsi_state_txn_free(bsi_state_txn *txn)
{
	size_t i;

	if (!txn)
		return;
	for (i = 0; i < txn->nactions; i++) {
		free(txn->actions[i].path);
		free(txn->actions[i].before);
		free(txn->actions[i].after);
		free(txn->actions[i].backup);
		free(txn->actions[i].stage);
	}
	free(txn->actions);
	free(txn->improvement);
	free(txn->kind);
	free(txn);
}

void bsi_state_txn_list_free(bsi_state_txn **list, size_t count)
{
	size_t i;

	for (i = 0; list && i < count; i++)
		bsi_state_txn_free(list[i]);
	free(list);
}

int bsi_state_txn_insert(bsi_state *st, const bsi_state_txn *txn, int64_t *out_id)
{
	sqlite3_stmt *s = NULL;
	int64_t id;
	size_t i;
	int ret;

	if ((ret = prepare(st, &s,
			   "INSERT INTO transactions (improvement, kind, state, started_at) "
			   "VALUES (?1, ?2, 'preparing', ?3)")) != 0)
		return ret;
	bind_text(s, 1, txn->improvement);
	bind_text(s, 2, txn->kind);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	if ((ret = run(st, s, "record transaction")) != 0)
		return ret;
	id = sqlite3_last_insert_rowid(st->db);
	for (i = 0; i < txn->nactions; i++) {
		const bsi_state_action *a = &txn->actions[i];

		if ((ret = prepare(st, &s,
				   "INSERT INTO actions (txn, seq, path, before, after, backup, stage) "
				   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")) != 0)
			return ret;
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
		bind_text(s, 3, a->path);
		bind_text(s, 4, a->before);
		bind_text(s, 5, a->after);
		bind_text(s, 6, a->backup);
		bind_text(s, 7, a->stage);
		if ((ret = run(st, s, "record transaction action")) != 0)
			return ret;
	}
	*out_id = id;
	return 0;
}

int bsi_state_txn_set_state(bsi_state *st, int64_t id, bsi_txn_state state)
{
	sqlite3_stmt *s = NULL;
	int ret;

	if ((ret = prepare(st, &s,
			   "UPDATE transactions SET state = ?2, finished_at = "
			   "CASE WHEN ?2 IN ('committed', 'undone') THEN ?3 END WHERE id = ?1")) != 0)
		return ret;
	sqlite3_bind_int64(s, 1, id);
	bind_text(s, 2, bsi_txn_state_name(state));
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	return run(st, s, "update transaction");
}

static int load_actions(bsi_state *st, bsi_state_txn *txn)
{
	sqlite3_stmt *s = NULL;
	bsi_state_action *grown;
	int ret, rc;

	if ((ret = prepare(st, &s,
			   "SELECT path, before, after, backup, stage FROM actions WHERE txn = ?1 "
			   "ORDER BY seq")) != 0)
		return ret;
	sqlite3_bind_int64(s, 1, txn->id);
	while ((rc = step(s)) == SQLITE_ROW) {
		if (!(grown = realloc(txn->actions, (txn->nactions + 1) * sizeof(*grown)))) {
			ret = bsi_error_set(BSI_EFAIL, "out of memory");
			goto done;
		}
		txn->actions = grown;
		grown[txn->nactions].path = col_text(s, 0);
		grown[txn->nactions].before = col_text(s, 1);
		grown[txn->nactions].after = col_text(s, 2);
		grown[txn->nactions].backup = col_text(s, 3);
		grown[txn->nactions].stage = col_text(s, 4);
		txn->nactions++;
	}
	if (rc != SQLITE_DONE)
		ret = db_error(st, "read transaction actions");
done:
	finish(st, s);
	return ret;
}

/* Run a SELECT of transactions (id, improvement, kind, state, started_at)
 * and load each with its actions. */
static int load_txns(bsi_state *st, sqlite3_stmt *s, bsi_state_txn ***out, size_t *out_count)
{
	bsi_state_txn **list = NULL, **grown, *t;
	size_t n = 0;
	int ret = 0, rc;

	while ((rc = step(s)) == SQLITE_ROW) {
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): a list of pointers */
		if (!(grown = realloc(list, (n + 1) * sizeof(*list))) ||
		    !(t = calloc(1, sizeof(*t)))) {
			if (grown)
				list = grown;
			ret = bsi_error_set(BSI_EFAIL, "out of memory");
			goto done;
		}
		list = grown;
		list[n++] = t;
		t->id = sqlite3_column_int64(s, 0);
		t->improvement = col_text(s, 1);
		t->kind = col_text(s, 2);
		t->started_at = sqlite3_column_int64(s, 4);
		if ((ret = txn_state_parse((const char *)sqlite3_column_text(s, 3), &t->state)) != 0)
			goto done;
	}
	if (rc != SQLITE_DONE) {
		ret = db_error(st, "read transactions");
		goto done;
	}
	finish(st, s);
	s = NULL;
	for (size_t i = 0; i < n; i++)
		if ((ret = load_actions(st, list[i])) != 0)
			goto done;
	*out = list;
	*out_count = n;
	list = NULL;
	n = 0;
done:
	finish(st, s);
	bsi_state_txn_list_free(list, n);
	return ret;
}

int bsi_state_txn_unfinished(bsi_state *st, bsi_state_txn ***out, size_t *out_count)
{
	sqlite3_stmt *s = NULL;
	int ret;

	*out = NULL;
	*out_count = 0;
	if ((ret = prepare(st, &s,
			   "SELECT id, improvement, kind, state, started_at FROM transactions "
			   "WHERE state IN ('preparing', 'staged') ORDER BY id")) != 0)
		return ret;
	return load_txns(st, s, out, out_count);
}

int bsi_state_txn_backups_needed(bsi_state *st, int64_t id, bool *out_needed)
{
	sqlite3_stmt *s = NULL;
	int ret, rc;

	*out_needed = true;
	if ((ret = prepare(st, &s,
			   "SELECT state IN ('preparing', 'staged') OR (kind = 'apply' AND "
			   "state = 'committed' AND NOT EXISTS (SELECT 1 FROM transactions r "
			   "WHERE r.improvement = t.improvement AND r.kind = 'rollback' AND "
			   "r.state = 'committed' AND r.id > t.id)) FROM transactions t "
			   "WHERE t.id = ?1")) != 0)
		return ret;
	sqlite3_bind_int64(s, 1, id);
	rc = step(s);
	if (rc == SQLITE_ROW)
		*out_needed = sqlite3_column_int(s, 0) != 0;
	else if (rc != SQLITE_DONE)
		ret = db_error(st, "read transaction");
	finish(st, s);
	return ret;
}

int bsi_state_txn_applied(bsi_state *st, const char *improvement, int64_t before,
			  bsi_state_txn ***out, size_t *out_count)
{
	sqlite3_stmt *s = NULL;
	int ret;

	*out = NULL;
	*out_count = 0;
	if ((ret = prepare(st, &s,
			   "SELECT id, improvement, kind, state, started_at FROM transactions "
			   "WHERE improvement = ?1 AND kind = 'apply' AND state = 'committed' "
			   "AND id < ?2 AND id > (SELECT COALESCE(MAX(id), 0) FROM transactions "
			   "WHERE improvement = ?1 AND kind = 'rollback' AND state = 'committed' "
			   "AND id < ?2) ORDER BY id")) != 0)
		return ret;
	bind_text(s, 1, improvement);
	sqlite3_bind_int64(s, 2, before > 0 ? before : INT64_MAX);
	return load_txns(st, s, out, out_count);
}
