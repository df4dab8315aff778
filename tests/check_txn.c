/*
 * check_txn.c - the file-replacing transaction: apply, rollback, recovery
 * after SIGKILL at every failpoint and at random times, injected I/O errors,
 * a real full disk, two applies at once, and verify.
 *
 * Crash and fault tests run tests/driver/txn_driver.c, which this suite
 * compiles (once, in an unchecked fixture) with failpoints on and links
 * with the suite's own host objects: see build_driver().
 */
#include "changeset.h"
#include "digest.h"
#include "error.h"
#include "fsroot.h"
#include "lock.h"
#include "plan.h"
#include "plugin.h"
#include "source.h"
#include "state.h"
#include "testutil.h"
#include "txn.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NFILES 3
#define IMP "imp-1"

static const char *const paths[NFILES] = {"usr/lib/libfoo.so.1", "usr/bin/tool",
					  "etc/tool/tool.conf"};
static const mode_t modes[NFILES] = {0755, 04751, 0640};

static char driver[4096];

typedef struct {
	char *dir;
	char root[4200], state[4200], feed[4200];
	char from[NFILES][BSI_DIGEST_STRLEN + 1];
	char to[NFILES][BSI_DIGEST_STRLEN + 1];
	char *old_fp; /* fingerprint of root before */
} env;

/* Deterministic bytes for file i, version v. */
static void fill(unsigned char *buf, size_t n, unsigned seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1);
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
}

static void write_bytes(const char *path, const unsigned char *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
	close(fd);
}

/*
 * A target root with NFILES files (owner 1234:4321 when root, distinct
 * modes), payloads for new versions in feed/payloads, and digests.
 * Old file i has size `size` + i; the new one size `size` + 7 * i + 3.
 */
static void env_setup_sized(env *e, size_t size)
{
	unsigned char *buf = malloc(size + 64);
	size_t i;

	ck_assert_ptr_nonnull(buf);
	e->dir = tu_tmpdir();
	snprintf(e->root, sizeof(e->root), "%s/root", e->dir);
	snprintf(e->state, sizeof(e->state), "%s/state", e->dir);
	snprintf(e->feed, sizeof(e->feed), "%s/feed", e->dir);
	tu_must("mkdir -p '%s/usr/lib' '%s/usr/bin' '%s/etc/tool' '%s/payloads'", e->root, e->root,
		e->root, e->feed);
	for (i = 0; i < NFILES; i++) {
		char p[4400];

		fill(buf, size + i, (unsigned)i);
		bsi_digest_buf(buf, size + i, e->from[i]);
		snprintf(p, sizeof(p), "%s/%s", e->root, paths[i]);
		write_bytes(p, buf, size + i);
		if (geteuid() == 0)
			ck_assert_int_eq(chown(p, 1234, 4321), 0);
		ck_assert_int_eq(chmod(p, modes[i]), 0);
		fill(buf, size + 7 * i + 3, (unsigned)(100 + i));
		bsi_digest_buf(buf, size + 7 * i + 3, e->to[i]);
		snprintf(p, sizeof(p), "%s/payloads/f%zu", e->feed, i);
		write_bytes(p, buf, size + 7 * i + 3);
	}
	free(buf);
	e->old_fp = tu_tree_fingerprint(e->root);
}

static void env_setup(env *e) { env_setup_sized(e, 1000); }

static void env_free(env *e) { free(e->old_fp); }

static bsi_status verify(const env *e, const bsi_changeset *known, char *reason, size_t len);

/* The fingerprint root has after a clean apply of the same improvement. */
static char *new_fingerprint(size_t size);

static void build_imp(bsi_changeset **out, const env *e, bool services)
{
	bsi_improvement *imp;
	size_t i;

	ck_assert_int_eq(bsi_changeset_new(out), 0);
	ck_assert_int_eq(bsi_changeset_add(*out, &imp), 0);
	imp->id = strdup(IMP);
	imp->component = strdup("tool");
	imp->summary = strdup("tool: fix a parser overflow");
	imp->severity = strdup("high");
	for (i = 0; i < NFILES; i++) {
		char payload[64];

		snprintf(payload, sizeof(payload), "payloads/f%zu", i);
		ck_assert_int_eq(bsi_improvement_add_replace(imp, paths[i], e->from[i], e->to[i],
							     payload, 10),
				 0);
	}
	if (services) {
		bsi_improvement_add_restart(imp, "svc-a", 11);
		bsi_improvement_add_restart(imp, "svc-b", 12);
	}
}

typedef struct {
	bsi_state *st;
	bsi_root *root;
	bsi_source *src;
	bsi_plugin *plugin;
	bsi_txn_ctx ctx;
} session;

static void session_open(session *s, const env *e)
{
	memset(s, 0, sizeof(*s));
	ck_assert_msg(bsi_state_open(&s->st, e->state) == 0, "%s", bsi_error_message());
	ck_assert_msg(bsi_root_open(&s->root, e->root) == 0, "%s", bsi_error_message());
	ck_assert_msg(bsi_source_open_dir(&s->src, e->feed) == 0, "%s", bsi_error_message());
	ck_assert_msg(bsi_plugin_load(&s->plugin, tu_build_path("plugins"), "record", e->state) == 0,
		      "%s", bsi_error_message());
	s->ctx.state = s->st;
	s->ctx.root = s->root;
	s->ctx.source = s->src;
	s->ctx.plugin = s->plugin;
}

static void session_close(session *s)
{
	bsi_plugin_free(s->plugin);
	bsi_source_free(s->src);
	bsi_root_free(s->root);
	bsi_state_free(s->st);
}

static void apply_ok(const env *e, bool services)
{
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;

	build_imp(&cs, e, services);
	session_open(&s, e);
	ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_APPLIED);
	session_close(&s);
	bsi_changeset_free(cs);
}

static char *new_fingerprint(size_t size)
{
	env e;
	char *fp;

	env_setup_sized(&e, size);
	apply_ok(&e, false);
	fp = tu_tree_fingerprint(e.root);
	env_free(&e);
	return fp;
}

static int count_open_fds(void)
{
	tu_result r;
	int n;

	/* This process's descriptors, as the kernel lists them. */
	tu_sh(&r, "ls /proc/%ld/fd | wc -l", (long)getpid());
	n = atoi(r.out);
	tu_result_free(&r);
	return n;
}

static int count_stage_files(const env *e)
{
	tu_result r;
	int n;

	tu_sh(&r, "find '%s' -name '.bsi-stage.*' | wc -l", e->root);
	n = atoi(r.out);
	tu_result_free(&r);
	return n;
}

static bsi_status status_of(const env *e, size_t *out_unfinished)
{
	bsi_state *st = NULL;
	bsi_state_improvement *imp = NULL;
	bsi_state_txn **list = NULL;
	bsi_status status;
	size_t n = 0;

	ck_assert_msg(bsi_state_open(&st, e->state) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(bsi_state_improvement_get(st, IMP, &imp), 0);
	status = imp ? imp->status : BSI_STATUS_PENDING;
	ck_assert_int_eq(bsi_state_txn_unfinished(st, &list, &n), 0);
	if (out_unfinished)
		*out_unfinished = n;
	bsi_state_txn_list_free(list, n);
	bsi_state_improvement_free(imp);
	bsi_state_free(st);
	return status;
}

static char *read_file(const env *e, const char *name)
{
	char p[4400];
	char *s;

	snprintf(p, sizeof(p), "%s/%s", e->state, name);
	s = tu_read(p);
	return s ? s : strdup("");
}

/* Build the failpoint driver (see the file comment). */
static void build_driver(void)
{
	const char *build = getenv("BSI_BUILD");
	tu_result r;

	if (!build || !*build)
		build = "build";
	snprintf(driver, sizeof(driver), "%s/tests/txn_driver", build);
	tu_sh(&r,
	      "cd '%s/..' && ${CC:-cc} -std=c11 -D_GNU_SOURCE -g -O1 -DBSI_FAILPOINTS -Ihost -Iplugins "
	      "$(pkg-config --cflags lua5.4 libgit2 libsodium sqlite3 jansson libcrypto) %s "
	      "-o '%s' tests/driver/txn_driver.c host/failpoint.c "
	      "$(ls '%s'/host/*.o | grep -v -e '/main\\.o$' -e '/failpoint') "
	      "$(pkg-config --libs lua5.4 libgit2 libsodium sqlite3 jansson libcrypto) -ldl -lm",
	      build,
#if defined(__SANITIZE_ADDRESS__)
	      "-fsanitize=address,undefined -fno-sanitize-recover=all",
#else
	      "",
#endif
	      driver, build);
	if (r.status != 0) {
		fprintf(stderr, "building the txn driver failed:\n%s\n%s\n", r.out, r.err);
		driver[0] = '\0';
	}
	tu_result_free(&r);
}

/* The driver's arguments for applying the improvement of e. */
static char *apply_args(const env *e)
{
	char *s;
	int n = asprintf(&s,
			 "'%s' '%s' '%s' '%s' record apply " IMP " r '%s' %s %s payloads/f0 "
			 "r '%s' %s %s payloads/f1 r '%s' %s %s payloads/f2 s svc-a s svc-b",
			 e->state, e->root, e->feed, tu_build_path("plugins"), paths[0], e->from[0],
			 e->to[0], paths[1], e->from[1], e->to[1], paths[2], e->from[2], e->to[2]);

	ck_assert_int_gt(n, 0);
	return s;
}

static char *rollback_args(const env *e)
{
	char *s;

	ck_assert_int_gt(asprintf(&s, "'%s' '%s' '%s' '%s' record rollback " IMP, e->state, e->root,
				  e->feed, tu_build_path("plugins")),
			 0);
	return s;
}

static int drive(tu_result *r, const char *envs, const char *args)
{
	ck_assert_msg(driver[0], "the txn driver could not be built");
	return tu_sh(r, "%s '%s' %s", envs ? envs : "", driver, args);
}

static int drive_recover(const env *e)
{
	tu_result r;
	int st;

	st = tu_sh(&r, "'%s' '%s' '%s' '%s' '%s' record recover", driver, e->state, e->root,
		   e->feed, tu_build_path("plugins"));
	ck_assert_msg(st == 0, "recover failed (%d): %s", st, r.err);
	tu_result_free(&r);
	return st;
}

/* ---- plain behaviour ------------------------------------------------- */

START_TEST(test_txn_apply_replaces_files_keeps_owner_and_mode)
{
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	struct stat sb;
	char p[4400], digest[BSI_DIGEST_STRLEN + 1], *log;
	size_t i;

	env_setup(&e);
	build_imp(&cs, &e, true);
	session_open(&s, &e);
	ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_APPLIED);
	ck_assert(res.changed);
	ck_assert(!res.restart_pending);
	for (i = 0; i < NFILES; i++) {
		snprintf(p, sizeof(p), "%s/%s", e.root, paths[i]);
		ck_assert_int_eq(stat(p, &sb), 0);
		ck_assert_int_eq(sb.st_mode & 07777, modes[i]);
		if (geteuid() == 0) {
			ck_assert_int_eq(sb.st_uid, 1234);
			ck_assert_int_eq(sb.st_gid, 4321);
		}
		ck_assert_int_eq(bsi_state_hash_file(s.st, s.root, paths[i], digest), 0);
		ck_assert_str_eq(digest, e.to[i]);
	}
	ck_assert_int_eq(count_stage_files(&e), 0);
	log = read_file(&e, "restarts.log");
	ck_assert_str_eq(log, "svc-a\nsvc-b\n");
	free(log);

	/* Applying again is a no-op: no second restart. */
	ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_APPLIED);
	ck_assert(!res.changed);
	log = read_file(&e, "restarts.log");
	ck_assert_str_eq(log, "svc-a\nsvc-b\n");
	free(log);
	session_close(&s);
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_APPLIED);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

/* A file capability (what lets a replaced ping open raw sockets) as the
 * kernel stores it: VFS_CAP_REVISION_2 with the effective flag,
 * CAP_NET_RAW (13) permitted. */
static const unsigned char cap_net_raw[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20};

/* An IMA digest (IMA_XATTR_DIGEST_NG, SHA-256) of some old content. */
static const unsigned char ima_sha256[34] = {0x04, 0x04, 0xab};
static bool have_ima; /* set_xattrs() could give file 2 one */

/* Give every file of e an xattr user.bsi-test ("file N"), and file 1 a
 * capability when root; the old fingerprint then includes them.  False
 * when the file system of the test directory keeps no user xattrs. */
static bool set_xattrs(env *e)
{
	char p[4400], v[16];

	for (size_t i = 0; i < NFILES; i++) {
		snprintf(p, sizeof(p), "%s/%s", e->root, paths[i]);
		snprintf(v, sizeof(v), "file %zu", i);
		if (setxattr(p, "user.bsi-test", v, strlen(v), 0) != 0) {
			ck_assert_msg(errno == ENOTSUP, "setxattr %s: %s", p, strerror(errno));
			return false;
		}
	}
	if (geteuid() == 0) {
		snprintf(p, sizeof(p), "%s/%s", e->root, paths[1]);
		ck_assert_msg(setxattr(p, "security.capability", cap_net_raw, sizeof(cap_net_raw),
				       0) == 0,
			      "setxattr security.capability: %s", strerror(errno));
		/* an IMA hash of the old bytes: it must not follow them */
		snprintf(p, sizeof(p), "%s/%s", e->root, paths[2]);
		have_ima = setxattr(p, "security.ima", ima_sha256, sizeof(ima_sha256), 0) == 0;
	}
	free(e->old_fp);
	e->old_fp = tu_tree_fingerprint(e->root);
	ck_assert_ptr_nonnull(strstr(e->old_fp, " user.bsi-test 66696c652030\n"));
	return true;
}

/*
 * Extended attributes (SELinux labels, file capabilities, ACLs) belong to
 * the file as much as its mode: the new version of each file gets the
 * original's, but not an IMA hash of the old bytes; a rollback brings the
 * originals back with all of theirs.  With BSI_FAULT=txn.link.exdev the
 * first backup and the first restore are copies (what a state directory
 * on another file system gets), not links; with txn.link.exdev:3 the
 * third (file 2, the one with the IMA hash), which the copy must keep.
 */
START_TEST(test_txn_apply_and_rollback_keep_extended_attributes)
{
	static const char *const faults[] = {NULL, "BSI_FAULT=txn.link.exdev",
					     "BSI_FAULT=txn.link.exdev:3"};
	const char *fault = faults[_i];
	char p[4400], v[64];
	unsigned char cap[64];
	tu_result r;
	char *args;
	env e;

	env_setup(&e);
	if (!set_xattrs(&e)) {
		env_free(&e);
		return; /* no user xattrs here: nothing to preserve */
	}
	args = apply_args(&e);
	ck_assert_msg(drive(&r, fault, args) == 0, "apply: %s", r.err);
	tu_result_free(&r);
	free(args);
	for (size_t i = 0; i < NFILES; i++) {
		char want[16];
		ssize_t n;

		snprintf(p, sizeof(p), "%s/%s", e.root, paths[i]);
		snprintf(want, sizeof(want), "file %zu", i);
		n = getxattr(p, "user.bsi-test", v, sizeof(v));
		ck_assert_msg(n == (ssize_t)strlen(want) && memcmp(v, want, (size_t)n) == 0,
			      "%s lost its user.bsi-test attribute", paths[i]);
	}
	if (geteuid() == 0) {
		snprintf(p, sizeof(p), "%s/%s", e.root, paths[1]);
		ck_assert_int_eq(getxattr(p, "security.capability", cap, sizeof(cap)),
				 (ssize_t)sizeof(cap_net_raw));
		ck_assert_mem_eq(cap, cap_net_raw, sizeof(cap_net_raw));
		/* and set-user-ID survives beside it */
		{
			struct stat sb;

			ck_assert_int_eq(stat(p, &sb), 0);
			ck_assert_int_eq(sb.st_mode & 07777, modes[1]);
		}
	}
	if (have_ima) {
		snprintf(p, sizeof(p), "%s/%s", e.root, paths[2]);
		ck_assert_msg(getxattr(p, "security.ima", cap, sizeof(cap)) < 0 && errno == ENODATA,
			      "the old file's IMA hash was copied onto the new one");
	}
	args = rollback_args(&e);
	ck_assert_msg(drive(&r, fault, args) == 0, "rollback: %s", r.err);
	tu_result_free(&r);
	free(args);
	{
		char *fp = tu_tree_fingerprint(e.root);

		ck_assert_str_eq(fp, e.old_fp);
		free(fp);
	}
	env_free(&e);
}
END_TEST

START_TEST(test_txn_apply_partly_patched_device_replaces_the_rest)
{
	env e;
	char p[4400], q[4400];
	char *fp_new = new_fingerprint(1000);

	env_setup(&e);
	/* The second file already has its new version. */
	snprintf(p, sizeof(p), "%s/payloads/f1", e.feed);
	snprintf(q, sizeof(q), "%s/%s", e.root, paths[1]);
	tu_must("cp '%s' '%s' && chmod %o '%s'", p, q, modes[1], q);
	apply_ok(&e, false);
	{
		char *fp = tu_tree_fingerprint(e.root);

		ck_assert_str_eq(fp, fp_new);
		free(fp);
	}
	free(fp_new);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_not_applicable_touches_nothing)
{
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	char p[4400], digest[BSI_DIGEST_STRLEN + 1], *fp;
	int fds;

	env_setup(&e);
	snprintf(p, sizeof(p), "%s/%s", e.root, paths[2]);
	tu_write(p, "a locally edited configuration\n");
	bsi_digest_buf("a locally edited configuration\n", 31, digest);
	free(e.old_fp);
	e.old_fp = tu_tree_fingerprint(e.root);
	build_imp(&cs, &e, true);
	session_open(&s, &e);
	fds = count_open_fds();
	ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_NOT_APPLICABLE);
	ck_assert_int_eq(count_open_fds(), fds); /* no descriptor leaked */
	ck_assert_msg(strstr(res.reason, paths[2]) && strstr(res.reason, digest) &&
			      strstr(res.reason, e.from[2]),
		      "reason should name the file and both digests: %s", res.reason);
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_NOT_APPLICABLE);
	{
		char *log = read_file(&e, "restarts.log");

		ck_assert_str_eq(log, "");
		free(log);
	}
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_payload_with_wrong_digest_is_refused)
{
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	char p[4400], *fp;

	env_setup(&e);
	snprintf(p, sizeof(p), "%s/payloads/f1", e.feed);
	tu_write(p, "a payload someone swapped\n");
	build_imp(&cs, &e, true);
	session_open(&s, &e);
	ck_assert_int_eq(bsi_txn_apply(&res, &s.ctx, &cs->items[0]), BSI_ETRUST);
	ck_assert_msg(strstr(bsi_error_message(), "payloads/f1") &&
			      strstr(bsi_error_message(), e.to[1]),
		      "%s", bsi_error_message());
	ck_assert_int_eq(bsi_error_exit_status(BSI_ETRUST), 3);
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_stage_files(&e), 0);
	ck_assert_int_ne(status_of(&e, NULL), BSI_STATUS_APPLIED);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_symlink_target_is_refused)
{
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	char p[4400], q[4400], *fp;

	env_setup(&e);
	snprintf(p, sizeof(p), "%s/%s", e.root, paths[0]);
	snprintf(q, sizeof(q), "%s/usr/lib/libfoo.real", e.root);
	ck_assert_int_eq(rename(p, q), 0);
	ck_assert_int_eq(symlink("libfoo.real", p), 0);
	free(e.old_fp);
	e.old_fp = tu_tree_fingerprint(e.root);
	build_imp(&cs, &e, false);
	session_open(&s, &e);
	ck_assert_int_eq(bsi_txn_apply(&res, &s.ctx, &cs->items[0]), BSI_ERECIPE);
	ck_assert_msg(strstr(bsi_error_message(), "symlink"), "%s", bsi_error_message());
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

static int count_backup_files(const env *e)
{
	tu_result r;
	int n;

	tu_sh(&r, "find '%s/backups' -type f 2>/dev/null | wc -l", e->state);
	n = atoi(r.out);
	tu_result_free(&r);
	return n;
}

/* A socket bound at path (left bound: only its node matters). */
static void make_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

/* What the first target becomes, and what the refusal must say. */
static const struct {
	const char *kind, *want;
} odd_targets[] = {
	{"symlink", "usr/lib/libfoo.so.1 is a symlink to libfoo.real; bsi replaces regular files "
		    "only: name the file it points to"},
	{"directory", "usr/lib/libfoo.so.1 is a directory; bsi replaces regular files only"},
	{"fifo", "usr/lib/libfoo.so.1 is a FIFO; bsi replaces regular files only"},
	{"socket", "usr/lib/libfoo.so.1 is a socket; bsi replaces regular files only"},
	{"device", "usr/lib/libfoo.so.1 is a character device; bsi replaces regular files only"},
	{"hardlink", "usr/lib/libfoo.so.1 has 2 hard links; bsi cannot find every name of such a "
		     "file, so it replaces files with one link only"},
	{"large", "usr/lib/libfoo.so.1 is 1000 bytes, more than max_target_mib allows"},
};

/*
 * A target that is no file to patch is refused before anything is written,
 * whatever a plan said before (the transaction looks again): the error
 * names the path and what it is, and the root, the backups and the state
 * are as they were.  A FIFO is never opened, so the apply cannot hang on it.
 */
START_TEST(test_txn_odd_target_is_refused_untouched)
{
	const char *kind = odd_targets[_i].kind;
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	char p[4400], q[4400], *fp;

	env_setup(&e);
	snprintf(p, sizeof(p), "%s/%s", e.root, paths[0]);
	snprintf(q, sizeof(q), "%s/usr/lib/libfoo.real", e.root);
	if (strcmp(kind, "symlink") == 0) {
		ck_assert_int_eq(rename(p, q), 0);
		ck_assert_int_eq(symlink("libfoo.real", p), 0);
	} else if (strcmp(kind, "directory") == 0) {
		ck_assert_int_eq(unlink(p), 0);
		ck_assert_int_eq(mkdir(p, 0755), 0);
	} else if (strcmp(kind, "fifo") == 0) {
		ck_assert_int_eq(unlink(p), 0);
		ck_assert_int_eq(mkfifo(p, 0644), 0);
	} else if (strcmp(kind, "socket") == 0) {
		ck_assert_int_eq(unlink(p), 0);
		make_socket(p);
	} else if (strcmp(kind, "device") == 0) {
		ck_assert_int_eq(unlink(p), 0);
		if (mknod(p, S_IFCHR | 0600, makedev(1, 3)) != 0) {
			fprintf(stderr, "SKIP test_txn_odd_target_is_refused_untouched (device): "
					"mknod: %s\n",
				strerror(errno));
			env_free(&e);
			return;
		}
	} else if (strcmp(kind, "hardlink") == 0) {
		ck_assert_int_eq(link(p, q), 0);
	}
	free(e.old_fp);
	e.old_fp = tu_tree_fingerprint(e.root);
	build_imp(&cs, &e, true);
	session_open(&s, &e);
	if (strcmp(kind, "large") == 0)
		bsi_root_set_max_target(s.root, 999);
	ck_assert_int_eq(bsi_txn_apply(&res, &s.ctx, &cs->items[0]), BSI_ERECIPE);
	ck_assert_msg(strstr(bsi_error_message(), odd_targets[_i].want), "%s: %s", kind,
		      bsi_error_message());
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_stage_files(&e), 0);
	ck_assert_int_eq(count_backup_files(&e), 0);
	ck_assert_int_ne(status_of(&e, NULL), BSI_STATUS_APPLIED);
	fp = read_file(&e, "restarts.log");
	ck_assert_str_eq(fp, "");
	free(fp);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

/*
 * A payload larger than max_target_mib is refused at staging, before
 * anything is replaced: what bsi installs must be a file the next plan and
 * a rollback may open as a target.
 */
START_TEST(test_txn_payload_over_size_limit_is_refused_untouched)
{
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	char *fp;

	env_setup(&e); /* targets of 1000-1002 bytes, payloads of 1003, 1010, 1017 */
	build_imp(&cs, &e, true);
	session_open(&s, &e);
	bsi_root_set_max_target(s.root, 1005);
	ck_assert_int_eq(bsi_txn_apply(&res, &s.ctx, &cs->items[0]), BSI_ERECIPE);
	ck_assert_msg(strstr(bsi_error_message(), "payload payloads/f1 for usr/bin/tool is 1010 "
						  "bytes, more than max_target_mib allows") &&
			      strstr(bsi_error_message(), "nothing was changed"),
		      "%s", bsi_error_message());
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_stage_files(&e), 0);
	ck_assert_int_eq(count_backup_files(&e), 0);
	ck_assert_int_ne(status_of(&e, NULL), BSI_STATUS_APPLIED);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

/*
 * Two actions that reach one file by two paths (lib -> usr/lib, as merged
 * /usr has it) are refused by (device, inode), in apply and in the plan,
 * before anything is written.
 */
START_TEST(test_txn_same_file_by_two_paths_is_refused)
{
	env e;
	bsi_changeset *cs;
	bsi_improvement *imp;
	bsi_txn_result res;
	session s;
	char p[4400], *fp;
	bool exists;

	env_setup(&e);
	snprintf(p, sizeof(p), "%s/lib", e.root);
	ck_assert_int_eq(symlink("usr/lib", p), 0);
	free(e.old_fp);
	e.old_fp = tu_tree_fingerprint(e.root);
	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_changeset_add(cs, &imp), 0);
	imp->id = strdup(IMP);
	imp->component = strdup("tool");
	imp->summary = strdup("tool: one file, two names");
	imp->severity = strdup("high");
	imp->recipe = strdup("recipes/tool.lua");
	ck_assert_int_eq(bsi_improvement_add_replace(imp, paths[0], e.from[0], e.to[0], "payloads/f0",
						     10),
			 0);
	ck_assert_int_eq(bsi_improvement_add_replace(imp, "lib/libfoo.so.1", e.from[0], e.to[0],
						     "payloads/f0", 11),
			 0);
	session_open(&s, &e);
	ck_assert_int_eq(bsi_txn_apply(&res, &s.ctx, imp), BSI_ERECIPE);
	ck_assert_msg(strstr(bsi_error_message(), "usr/lib/libfoo.so.1 and lib/libfoo.so.1 are the "
						  "same file"),
		      "%s", bsi_error_message());
	/* the plan says so too, with either hasher: that improvement's error */
	ck_assert_int_eq(bsi_plan_assess(cs, s.root, bsi_plan_hash_file, NULL), 0);
	ck_assert_int_eq(cs->items[0].status, BSI_STATUS_ERROR);
	ck_assert_int_eq(cs->items[0].error_code, BSI_ERECIPE);
	ck_assert_int_eq(cs->items[0].error_line, 11);
	ck_assert_msg(strstr(cs->items[0].reason, "are the same file"), "%s", cs->items[0].reason);
	cs->items[0].status = BSI_STATUS_PENDING;
	ck_assert_int_eq(bsi_plan_assess(cs, s.root, bsi_state_plan_hasher, s.st), 0);
	ck_assert_int_eq(cs->items[0].status, BSI_STATUS_ERROR);
	ck_assert_msg(strstr(cs->items[0].reason, "are the same file"), "%s", cs->items[0].reason);
	/* one of them alone is fine */
	ck_assert_int_eq(bsi_plan_hash_file(NULL, s.root, "lib/libfoo.so.1", p, &exists), 0);
	ck_assert(exists);
	ck_assert_str_eq(p, e.from[0]);
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_stage_files(&e), 0);
	ck_assert_int_eq(count_backup_files(&e), 0);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_rollback_restores_byte_identical_originals)
{
	env e;
	bsi_txn_result res;
	session s;
	char *fp, *log, path[4400];
	tu_result r;

	env_setup(&e);
	apply_ok(&e, true);
	session_open(&s, &e);
	ck_assert_msg(bsi_txn_rollback(&res, &s.ctx, IMP) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_ROLLED_BACK);
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_ROLLED_BACK);
	log = read_file(&e, "restarts.log");
	ck_assert_str_eq(log, "svc-a\nsvc-b\nsvc-a\nsvc-b\n");
	free(log);
	/* Backups are gone once the originals are live again. */
	snprintf(path, sizeof(path), "%s/backups", e.state);
	tu_sh(&r, "find '%s' -type f | wc -l", path);
	ck_assert_int_eq(atoi(r.out), 0);
	tu_result_free(&r);
	/* A second rollback is refused: nothing is applied. */
	session_open(&s, &e);
	ck_assert_int_eq(bsi_txn_rollback(&res, &s.ctx, IMP), BSI_EUSAGE);
	session_close(&s);
	/* Re-applying on purpose works. */
	apply_ok(&e, false);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_rollback_after_reapply_restores_every_file)
{
	env e;
	bsi_txn_result res;
	session s;
	unsigned char buf[1100];
	char p[4400], *fp;
	tu_result r;

	env_setup(&e);
	apply_ok(&e, false);
	/* Someone puts the old second file back (same owner and mode). */
	snprintf(p, sizeof(p), "%s/%s", e.root, paths[1]);
	fill(buf, 1001, 1);
	write_bytes(p, buf, 1001);
	/* A second apply replaces only that file (a second transaction). */
	apply_ok(&e, false);
	session_open(&s, &e);
	ck_assert_msg(bsi_txn_rollback(&res, &s.ctx, IMP) == 0, "%s", bsi_error_message());
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	tu_sh(&r, "find '%s/backups' -type f | wc -l", e.state);
	ck_assert_int_eq(atoi(r.out), 0);
	tu_result_free(&r);
	env_free(&e);
}
END_TEST

/*
 * The feed revises an applied improvement under the same id: a new payload
 * for the second file, `from` its earlier `to`; then once more.  Each
 * revision is a transaction on top; no backup is deleted on the way (the
 * first one holds the only copy of the original); rollback puts back the
 * file as it was before the FIRST apply, and only then are the backups
 * gone.
 */
START_TEST(test_txn_rollback_after_revision_restores_the_first_original)
{
	char rev[2][BSI_DIGEST_STRLEN + 1], p[4400], *fp;
	const char *prev = NULL;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	env e;

	env_setup(&e);
	apply_ok(&e, false);
	ck_assert_int_eq(count_backup_files(&e), NFILES);
	for (int k = 0; k < 2; k++) {
		char text[64], payload[64];

		snprintf(text, sizeof(text), "revision %d of the second file\n", k + 1);
		snprintf(payload, sizeof(payload), "payloads/f1-rev%d", k + 1);
		snprintf(p, sizeof(p), "%s/%s", e.feed, payload);
		tu_write(p, text);
		bsi_digest_buf(text, strlen(text), rev[k]);
		build_imp(&cs, &e, false);
		/* the revision: the second file goes from what the device has */
		free(cs->items[0].actions[1].from);
		free(cs->items[0].actions[1].to);
		free(cs->items[0].actions[1].payload);
		cs->items[0].actions[1].from = strdup(prev ? prev : e.to[1]);
		cs->items[0].actions[1].to = strdup(rev[k]);
		cs->items[0].actions[1].payload = strdup(payload);
		session_open(&s, &e);
		ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s",
			      bsi_error_message());
		ck_assert_int_eq(res.status, BSI_STATUS_APPLIED);
		ck_assert(res.changed);
		session_close(&s);
		bsi_changeset_free(cs);
		prev = rev[k];
		/* every backup is kept while the improvement is applied */
		ck_assert_int_eq(count_backup_files(&e), NFILES + k + 1);
		ck_assert_int_eq(verify(&e, NULL, NULL, 0), BSI_STATUS_APPLIED);
	}
	session_open(&s, &e);
	ck_assert_msg(bsi_txn_rollback(&res, &s.ctx, IMP) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_ROLLED_BACK);
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_backup_files(&e), 0);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_edited_recipe_does_not_disown_applied_files)
{
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	char p[4400];

	env_setup(&e);
	apply_ok(&e, false);
	/* The feed later pins another payload for the second file. */
	snprintf(p, sizeof(p), "%s/payloads/f1", e.feed);
	tu_write(p, "a rebuilt payload\n");
	bsi_digest_buf("a rebuilt payload\n", 18, e.to[1]);
	build_imp(&cs, &e, false);
	session_open(&s, &e);
	ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_NOT_APPLICABLE);
	ck_assert_msg(strstr(res.reason, paths[1]), "%s", res.reason);
	session_close(&s);
	/* What is on disk is still the applied improvement, and verify agrees. */
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_APPLIED);
	ck_assert_int_eq(verify(&e, NULL, NULL, 0), BSI_STATUS_APPLIED);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_rollback_refuses_to_clobber_a_changed_file)
{
	env e;
	bsi_txn_result res;
	session s;
	char p[4400], *fp;

	env_setup(&e);
	apply_ok(&e, false);
	snprintf(p, sizeof(p), "%s/%s", e.root, paths[1]);
	tu_write(p, "changed after the apply\n");
	fp = tu_tree_fingerprint(e.root);
	session_open(&s, &e);
	ck_assert_int_eq(bsi_txn_rollback(&res, &s.ctx, IMP), BSI_EFAIL);
	ck_assert_msg(strstr(bsi_error_message(), paths[1]), "%s", bsi_error_message());
	session_close(&s);
	{
		char *after = tu_tree_fingerprint(e.root);

		ck_assert_str_eq(after, fp);
		free(after);
	}
	free(fp);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_failed_restart_is_pending_and_retried)
{
	env e;
	bsi_changeset *cs;
	bsi_txn_result res;
	session s;
	bsi_state_improvement *imp;
	char *log, script[4400];

	env_setup(&e);
	build_imp(&cs, &e, true);
	session_open(&s, &e);
	/* The systemd plugin with a systemctl that always fails. */
	snprintf(script, sizeof(script), "%s/systemctl", e.dir);
	tu_write(script, "#!/bin/sh\necho \"Failed to restart $3: Unit $3 not found.\" >&2\nexit 5\n");
	chmod(script, 0755);
	setenv("SYSTEMCTL", script, 1);
	bsi_plugin_free(s.plugin);
	ck_assert_int_eq(bsi_plugin_load(&s.plugin, tu_build_path("plugins"), "systemd", e.state), 0);
	s.ctx.plugin = s.plugin;
	ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s", bsi_error_message());
	ck_assert_int_eq(res.status, BSI_STATUS_APPLIED);
	ck_assert(res.restart_pending);
	ck_assert_msg(strstr(res.reason, "svc-a") && strstr(res.reason, "not found"), "%s",
		      res.reason);
	ck_assert_int_eq(bsi_state_improvement_get(s.st, IMP, &imp), 0);
	ck_assert(imp->restart_pending);
	bsi_state_improvement_free(imp);
	unsetenv("SYSTEMCTL");

	/* The next apply (with a working service manager) retries the restart. */
	bsi_plugin_free(s.plugin);
	ck_assert_int_eq(bsi_plugin_load(&s.plugin, tu_build_path("plugins"), "record", e.state), 0);
	s.ctx.plugin = s.plugin;
	ck_assert_msg(bsi_txn_apply(&res, &s.ctx, &cs->items[0]) == 0, "%s", bsi_error_message());
	ck_assert(!res.changed);
	ck_assert(!res.restart_pending);
	log = read_file(&e, "restarts.log");
	ck_assert_str_eq(log, "svc-a\nsvc-b\n");
	free(log);
	ck_assert_int_eq(bsi_state_improvement_get(s.st, IMP, &imp), 0);
	ck_assert(!imp->restart_pending);
	bsi_state_improvement_free(imp);
	/* And a third apply restarts nothing. */
	ck_assert_int_eq(bsi_txn_apply(&res, &s.ctx, &cs->items[0]), 0);
	log = read_file(&e, "restarts.log");
	ck_assert_str_eq(log, "svc-a\nsvc-b\n");
	free(log);
	session_close(&s);
	bsi_changeset_free(cs);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_hold_release_and_history)
{
	env e;
	session s;
	bsi_state_improvement *imp;
	bsi_txn_result res;
	json_t *h;
	const char *want[] = {"apply", "hold", "release", "rollback"};
	size_t i;

	env_setup(&e);
	apply_ok(&e, false);
	session_open(&s, &e);
	ck_assert_int_eq(bsi_txn_hold(&s.ctx, IMP, true), 0);
	ck_assert_int_eq(bsi_state_improvement_get(s.st, IMP, &imp), 0);
	ck_assert(imp->held);
	ck_assert_int_eq(imp->status, BSI_STATUS_APPLIED);
	bsi_state_improvement_free(imp);
	ck_assert_int_eq(bsi_txn_hold(&s.ctx, IMP, false), 0);
	ck_assert_int_eq(bsi_state_improvement_get(s.st, IMP, &imp), 0);
	ck_assert(!imp->held);
	bsi_state_improvement_free(imp);
	ck_assert_int_eq(bsi_txn_hold(&s.ctx, "no-such-thing", true), BSI_EUSAGE);
	ck_assert_int_eq(bsi_txn_rollback(&res, &s.ctx, IMP), 0);
	ck_assert_int_eq(bsi_state_history_json(s.st, IMP, &h), 0);
	ck_assert_int_eq(json_array_size(h), 4);
	for (i = 0; i < 4; i++)
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, i), "action")),
				 want[i]);
	json_decref(h);
	session_close(&s);
	env_free(&e);
}
END_TEST

/* ---- verify ---------------------------------------------------------- */

static bsi_status verify(const env *e, const bsi_changeset *known, char *reason, size_t len)
{
	bsi_txn_result res;
	session s;

	session_open(&s, e);
	ck_assert_msg(bsi_txn_verify(&res, &s.ctx, IMP, known) == 0, "%s", bsi_error_message());
	session_close(&s);
	if (reason)
		snprintf(reason, len, "%s", res.reason);
	return res.status;
}

START_TEST(test_txn_verify_tells_tampered_from_obsolete)
{
	env e;
	bsi_changeset *later;
	bsi_improvement *imp;
	char p[4400], q[4400], reason[1024], newer[BSI_DIGEST_STRLEN + 1];
	const char *update = "tool 2.0 from the full OS update\n";

	env_setup(&e);
	apply_ok(&e, false);
	ck_assert_int_eq(verify(&e, NULL, NULL, 0), BSI_STATUS_APPLIED);

	snprintf(p, sizeof(p), "%s/%s", e.root, paths[1]);
	snprintf(q, sizeof(q), "%s/keep", e.dir);
	tu_must("cp -p '%s' '%s'", p, q);

	/* Unknown content: tampered, naming the file. */
	tu_write(p, "#!/bin/sh\necho pwned\n");
	ck_assert_int_eq(verify(&e, NULL, reason, sizeof(reason)), BSI_STATUS_TAMPERED);
	ck_assert_msg(strstr(reason, paths[1]), "%s", reason);
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_TAMPERED);

	/* Back to the payload: applied again. */
	tu_must("cp -p '%s' '%s'", q, p);
	ck_assert_int_eq(verify(&e, NULL, NULL, 0), BSI_STATUS_APPLIED);

	/* Back at `from` without a rollback: tampered. */
	{
		unsigned char buf[1100];

		fill(buf, 1001, 1);
		write_bytes(p, buf, 1001);
	}
	ck_assert_int_eq(verify(&e, NULL, reason, sizeof(reason)), BSI_STATUS_TAMPERED);
	ck_assert_msg(strstr(reason, "unpatched"), "%s", reason);

	/* A newer version that the feed knows (a later improvement's from): obsolete. */
	tu_write(p, update);
	bsi_digest_buf(update, strlen(update), newer);
	ck_assert_int_eq(bsi_changeset_new(&later), 0);
	ck_assert_int_eq(bsi_changeset_add(later, &imp), 0);
	imp->id = strdup("imp-2");
	bsi_improvement_add_replace(imp, paths[1], newer,
				    "sha256:1111111111111111111111111111111111111111111111111111111111111111",
				    "payloads/x", 1);
	/* Without that knowledge the same bytes are tampered... */
	ck_assert_int_eq(verify(&e, NULL, NULL, 0), BSI_STATUS_TAMPERED);
	/* ...with it, obsolete. */
	ck_assert_int_eq(verify(&e, later, reason, sizeof(reason)), BSI_STATUS_OBSOLETE);
	ck_assert_msg(strstr(reason, paths[1]) && strstr(reason, newer), "%s", reason);
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_OBSOLETE);
	/* A file removed is tampered, even with the later plan at hand. */
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(verify(&e, later, reason, sizeof(reason)), BSI_STATUS_TAMPERED);
	ck_assert_msg(strstr(reason, "missing"), "%s", reason);
	bsi_changeset_free(later);
	env_free(&e);
}
END_TEST

/* ---- crashes --------------------------------------------------------- */

/*
 * After recovery: every target wholly old or wholly new, for the whole
 * improvement; no temp file; the state agrees with the files.  Returns
 * true when the files are new.
 */
static bool check_consistent(const env *e, const char *new_fp, const char *when)
{
	char *fp = tu_tree_fingerprint(e->root);
	bool is_new = strcmp(fp, new_fp) == 0, is_old = strcmp(fp, e->old_fp) == 0;
	size_t unfinished;
	bsi_status st;

	ck_assert_msg(is_new || is_old, "%s: the root is neither wholly old nor wholly new:\n%s",
		      when, fp);
	free(fp);
	ck_assert_msg(count_stage_files(e) == 0, "%s: staged files left behind", when);
	st = status_of(e, &unfinished);
	ck_assert_msg(unfinished == 0, "%s: %zu transactions left unfinished", when, unfinished);
	if (is_new)
		ck_assert_msg(st == BSI_STATUS_APPLIED, "%s: files are new but status is %s", when,
			      bsi_status_name(st));
	else
		ck_assert_msg(st != BSI_STATUS_APPLIED, "%s: files are old but status is applied",
			      when);
	return is_new;
}

static const char *const apply_points[] = {
	"apply.prepared",  "apply.staged",    "apply.backed-up",  "apply.recorded",
	"apply.renamed.1", "apply.renamed.2", "apply.renamed.3",  "apply.renamed.all",
	"apply.committed", "apply.restarted",
};

START_TEST(test_txn_crash_at_each_apply_failpoint_recovers)
{
	const char *point = apply_points[_i];
	char *new_fp = new_fingerprint(1000), *args, envs[128], *log;
	tu_result r;
	env e;

	env_setup(&e);
	args = apply_args(&e);
	snprintf(envs, sizeof(envs), "BSI_FAILPOINT=%s", point);
	drive(&r, envs, args);
	ck_assert_msg(r.status == 128 + SIGKILL, "%s: expected SIGKILL, got %d: %s", point, r.status,
		      r.err);
	tu_result_free(&r);
	drive_recover(&e);
	check_consistent(&e, new_fp, point);
	/* Whatever was reached, a later apply completes it, restarting once. */
	ck_assert_int_eq(drive(&r, NULL, args), 0);
	tu_result_free(&r);
	ck_assert(check_consistent(&e, new_fp, point));
	log = read_file(&e, "restarts.log");
	/* Restarts are at least once: killed after restarting but before
	 * recording it, the next apply restarts again. */
	ck_assert_msg(strcmp(log, strcmp(point, "apply.restarted") == 0
					  ? "svc-a\nsvc-b\nsvc-a\nsvc-b\n"
					  : "svc-a\nsvc-b\n") == 0,
		      "%s: restarts.log is %s", point, log);
	free(log);
	free(args);
	free(new_fp);
	env_free(&e);
}
END_TEST

/* The same improvement as a recipe in e's feed tree, and a config that
 * picks the record plugin, for the real command line. */
static char *cli_setup(const env *e)
{
	char p[4400], *recipe, *global;
	int n;

	snprintf(p, sizeof(p), "%s/recipes", e->feed);
	tu_must("mkdir -p '%s'", p);
	n = asprintf(&recipe,
		     "return {\n  component = 'tool',\n  improvements = {\n    {\n"
		     "      id = '" IMP "', summary = 'tool: fix a parser overflow',\n"
		     "      fixes = { 'CVE-2026-0001' }, severity = 'high',\n"
		     "      apply = function(change)\n"
		     "        change:replace('%s', { from = '%s', to = '%s', payload = 'payloads/f0' })\n"
		     "        change:replace('%s', { from = '%s', to = '%s', payload = 'payloads/f1' })\n"
		     "        change:replace('%s', { from = '%s', to = '%s', payload = 'payloads/f2' })\n"
		     "        change:restart('svc-a')\n        change:restart('svc-b')\n"
		     "      end,\n    },\n  },\n}\n",
		     paths[0], e->from[0], e->to[0], paths[1], e->from[1], e->to[1], paths[2],
		     e->from[2], e->to[2]);
	ck_assert_int_gt(n, 0);
	snprintf(p, sizeof(p), "%s/recipes/tool.lua", e->feed);
	tu_write(p, recipe);
	free(recipe);
	snprintf(p, sizeof(p), "%s/bsi.conf", e->dir);
	tu_write(p, "service_manager = \"record\"\n");
	ck_assert_int_gt(asprintf(&global, "--root '%s' --state '%s' --config '%s/bsi.conf'",
				  e->root, e->state, e->dir),
			 0);
	return global;
}

/* The whole chain through build/bsi-failpoint: killed at each point of
 * `bsi apply --tree`, the next `bsi status` recovers, then `bsi apply`
 * finishes the job. */
START_TEST(test_txn_cli_crash_at_each_apply_failpoint_recovers)
{
	const char *point = apply_points[_i];
	char *new_fp = new_fingerprint(1000), *global, envs[128], *log;
	tu_result r;
	env e;

	env_setup(&e);
	global = cli_setup(&e);
	snprintf(envs, sizeof(envs), "BSI_FAILPOINT=%s", point);
	tu_bsi_env(&r, envs, "%s apply --tree '%s'", global, e.feed);
	ck_assert_msg(r.status == 128 + SIGKILL, "%s: expected SIGKILL, got %d: %s%s", point,
		      r.status, r.out, r.err);
	tu_result_free(&r);
	ck_assert_msg(tu_bsi(&r, "%s status", global) == 0, "%s: status: %s", point, r.err);
	tu_result_free(&r);
	check_consistent(&e, new_fp, point);
	ck_assert_msg(tu_bsi(&r, "%s apply --tree '%s'", global, e.feed) == 0, "%s: apply: %s%s",
		      point, r.out, r.err);
	tu_result_free(&r);
	ck_assert(check_consistent(&e, new_fp, point));
	log = read_file(&e, "restarts.log");
	ck_assert_msg(strcmp(log, strcmp(point, "apply.restarted") == 0
					  ? "svc-a\nsvc-b\nsvc-a\nsvc-b\n"
					  : "svc-a\nsvc-b\n") == 0,
		      "%s: restarts.log is %s", point, log);
	free(log);
	/* And the command line rolls it back to the byte-identical originals. */
	ck_assert_msg(tu_bsi(&r, "%s rollback " IMP, global) == 0, "%s: rollback: %s", point, r.err);
	tu_result_free(&r);
	{
		char *fp = tu_tree_fingerprint(e.root);

		ck_assert_str_eq(fp, e.old_fp);
		free(fp);
	}
	free(global);
	free(new_fp);
	env_free(&e);
}
END_TEST

/*
 * The same through the command line: the feed revises imp-1 (the second
 * file gets a new payload, `from` its earlier `to`), the device plans it
 * pending and applies it, and `bsi rollback` returns every file to the
 * original from before the first apply.
 */
START_TEST(test_txn_cli_revision_then_rollback_restores_original)
{
	char *global, p[4400], rev[BSI_DIGEST_STRLEN + 1], *fp;
	const char *text = "a revised second file\n";
	tu_result r;
	env e;

	env_setup(&e);
	global = cli_setup(&e);
	ck_assert_msg(tu_bsi(&r, "%s apply --tree '%s'", global, e.feed) == 0, "%s", r.err);
	tu_result_free(&r);
	snprintf(p, sizeof(p), "%s/payloads/f1-rev", e.feed);
	tu_write(p, text);
	bsi_digest_buf(text, strlen(text), rev);
	tu_must("sed -i \"s|'%s', to = '%s', payload = 'payloads/f1'|'%s', to = '%s', "
		"payload = 'payloads/f1-rev'|\" '%s/recipes/tool.lua'",
		e.from[1], e.to[1], e.to[1], rev, e.feed);
	ck_assert_msg(tu_bsi(&r, "%s plan --tree '%s' --root '%s'", global, e.feed, e.root) == 0,
		      "%s", r.err);
	ck_assert_msg(strstr(r.out, IMP " [high] pending"), "%s", r.out);
	tu_result_free(&r);
	ck_assert_msg(tu_bsi(&r, "%s apply --tree '%s'", global, e.feed) == 0, "%s", r.err);
	tu_result_free(&r);
	snprintf(p, sizeof(p), "%s/%s", e.root, paths[1]);
	fp = tu_read(p);
	ck_assert_str_eq(fp, text);
	free(fp);
	ck_assert_msg(tu_bsi(&r, "%s rollback " IMP, global) == 0, "%s", r.err);
	tu_result_free(&r);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_backup_files(&e), 0);
	free(global);
	env_free(&e);
}
END_TEST

/*
 * `bsi rollback` killed (build/bsi-failpoint) after its commit, before it
 * deleted the backups: the next command that takes the lock (here `bsi
 * verify`) finishes the cleanup; `bsi status`, which only reads, leaves
 * it.  Before, those backups stayed forever.
 */
START_TEST(test_txn_cli_kill_after_rollback_commit_cleans_backups_on_recovery)
{
	char *global, *fp;
	tu_result r;
	env e;

	env_setup(&e);
	global = cli_setup(&e);
	ck_assert_msg(tu_bsi(&r, "%s apply --tree '%s'", global, e.feed) == 0, "%s", r.err);
	tu_result_free(&r);
	ck_assert_int_eq(count_backup_files(&e), NFILES);
	tu_bsi_env(&r, "BSI_FAILPOINT=rollback.committed", "%s rollback " IMP, global);
	ck_assert_msg(r.status == 128 + SIGKILL, "expected SIGKILL, got %d: %s", r.status, r.err);
	tu_result_free(&r);
	/* the originals are back; the backups of both transactions are left */
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_backup_files(&e), 2 * NFILES);
	ck_assert_msg(tu_bsi(&r, "%s status", global) == 0, "%s", r.err);
	tu_result_free(&r);
	ck_assert_msg(tu_bsi(&r, "%s verify", global) == 0, "%s", r.err);
	tu_result_free(&r);
	ck_assert_int_eq(count_backup_files(&e), 0);
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_ROLLED_BACK);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	free(global);
	env_free(&e);
}
END_TEST

static const char *const rollback_points[] = {
	"rollback.prepared",  "rollback.staged",    "rollback.backed-up",
	"rollback.recorded",  "rollback.renamed.1", "rollback.renamed.2",
	"rollback.renamed.3", "rollback.renamed.all", "rollback.committed",
};

START_TEST(test_txn_crash_at_each_rollback_failpoint_recovers)
{
	const char *point = rollback_points[_i];
	char *new_fp = new_fingerprint(1000), envs[128], *args;
	tu_result r;
	env e;

	env_setup(&e);
	apply_ok(&e, false);
	args = rollback_args(&e);
	snprintf(envs, sizeof(envs), "BSI_FAILPOINT=%s", point);
	drive(&r, envs, args);
	ck_assert_msg(r.status == 128 + SIGKILL, "%s: expected SIGKILL, got %d: %s", point, r.status,
		      r.err);
	tu_result_free(&r);
	drive_recover(&e);
	if (!check_consistent(&e, new_fp, point)) {
		ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_ROLLED_BACK);
	} else {
		/* Still applied: the apply's backups are all that is left (the
		 * undone rollback's are gone); rolling back again completes it. */
		ck_assert_msg(count_backup_files(&e) == NFILES, "%s: %d backup files", point,
			      count_backup_files(&e));
		ck_assert_msg(drive(&r, NULL, args) == 0, "%s: %s", point, r.err);
		tu_result_free(&r);
		ck_assert(!check_consistent(&e, new_fp, point));
	}
	/* Rolled back, whenever it was killed: no backup is left behind. */
	ck_assert_msg(count_backup_files(&e) == 0, "%s: %d backup files left", point,
		      count_backup_files(&e));
	free(args);
	free(new_fp);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_crash_during_recovery_recovers)
{
	char *new_fp = new_fingerprint(1000), *args, *rec;
	tu_result r;
	env e;

	env_setup(&e);
	args = apply_args(&e);
	/* Renames 1 and 2 happened; then recovery itself dies after restoring one. */
	drive(&r, "BSI_FAILPOINT=apply.renamed.2", args);
	ck_assert_int_eq(r.status, 128 + SIGKILL);
	tu_result_free(&r);
	ck_assert_int_gt(asprintf(&rec, "'%s' '%s' '%s' '%s' record recover", e.state, e.root,
				  e.feed, tu_build_path("plugins")),
			 0);
	drive(&r, "BSI_FAILPOINT=recover.restored.1", rec);
	ck_assert_int_eq(r.status, 128 + SIGKILL);
	tu_result_free(&r);
	drive_recover(&e);
	ck_assert(!check_consistent(&e, new_fp, "recovery killed"));
	free(rec);
	free(args);
	free(new_fp);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_recovery_refuses_another_root)
{
	char *new_fp = new_fingerprint(1000), *args, *rec, other[4300], *fp;
	tu_result r;
	env e;

	env_setup(&e);
	args = apply_args(&e);
	drive(&r, "BSI_FAILPOINT=apply.renamed.2", args);
	ck_assert_int_eq(r.status, 128 + SIGKILL);
	tu_result_free(&r);
	fp = tu_tree_fingerprint(e.root);
	/* The same state with the wrong --root: refused, nothing touched. */
	snprintf(other, sizeof(other), "%s/other-root", e.dir);
	tu_must("mkdir '%s'", other);
	ck_assert_int_gt(asprintf(&rec, "'%s' '%s' '%s' '%s' record recover", e.state, other,
				  e.feed, tu_build_path("plugins")),
			 0);
	drive(&r, NULL, rec);
	ck_assert_msg(r.status == 2 && strstr(r.err, "belongs to target root"), "%d %s", r.status,
		      r.err);
	tu_result_free(&r);
	{
		char *after = tu_tree_fingerprint(e.root);

		ck_assert_str_eq(after, fp);
		free(after);
	}
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_PENDING);
	/* The right root recovers it. */
	drive_recover(&e);
	ck_assert(!check_consistent(&e, new_fp, "after the right root"));
	free(fp);
	free(rec);
	free(args);
	free(new_fp);
	env_free(&e);
}
END_TEST

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the driver with args (split by the shell) and SIGKILL it after delay_us. */
static int run_and_kill(const char *args, useconds_t delay_us)
{
	char *cmd;
	pid_t pid;
	int st;

	ck_assert_int_gt(asprintf(&cmd, "exec '%s' %s >/dev/null 2>&1", driver, args), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	usleep(delay_us);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return st;
}

START_TEST(test_txn_random_sigkill_of_large_apply_recovers)
{
	const size_t size = 12 << 20; /* 3 files, ~36 MiB of payload */
	char *new_fp = new_fingerprint(size), *args;
	double t0, full;
	int round, nold = 0, nnew = 0;
	tu_result r;
	env e;

	/* How long does a full apply take here? */
	env_setup_sized(&e, size);
	args = apply_args(&e);
	t0 = now_s();
	ck_assert_int_eq(drive(&r, NULL, args), 0);
	tu_result_free(&r);
	full = now_s() - t0;
	free(args);
	env_free(&e);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (round = 0; round < 6; round++) {
		useconds_t delay = (useconds_t)(full * 1e6 * (rand() % 1000) / 1000.0);
		char when[64];

		env_setup_sized(&e, size);
		args = apply_args(&e);
		run_and_kill(args, delay);
		drive_recover(&e);
		snprintf(when, sizeof(when), "killed after %u us", (unsigned)delay);
		if (check_consistent(&e, new_fp, when))
			nnew++;
		else
			nold++;
		free(args);
		env_free(&e);
		tu_cleanup();
	}
	fprintf(stderr, "random SIGKILL: full apply %.2fs; %d rounds ended old, %d new\n", full,
		nold, nnew);
	free(new_fp);
}
END_TEST

/* ---- injected faults ------------------------------------------------- */

static const char *const apply_faults[] = {
	"stage.write",	   "stage.write.enospc", "stage.write:3",	"stage.fsync",
	"stage.fsync:2",   "backup.fsync",	 "backup.fsync:2",	"txn.dirsync",
	"txn.dirsync:5",   "txn.rename",	 "txn.rename:2",	"txn.rename.enospc:3",
	"state.begin",	   "state.commit:2",	 "state.commit:3",	"backup.fsync.enospc",
	"state.commit.enospc:2",
};

START_TEST(test_txn_fault_at_each_step_rolls_back)
{
	const char *fault = apply_faults[_i];
	char *new_fp = new_fingerprint(1000), *args, envs[128], *fp, *log;
	tu_result r;
	env e;

	env_setup(&e);
	args = apply_args(&e);
	snprintf(envs, sizeof(envs), "BSI_FAULT=%s", fault);
	drive(&r, envs, args);
	ck_assert_msg(r.status == 1, "%s: expected exit 1, got %d: %s%s", fault, r.status, r.out,
		      r.err);
	ck_assert_msg(strstr(r.err, strstr(fault, "enospc") ? "No space left on device"
							    : "Input/output error") ||
			      (strstr(fault, "enospc") && strncmp(fault, "stage.", 6) != 0 &&
			       strncmp(fault, "txn.", 4) != 0),
		      "%s: the error does not say what failed: %s", fault, r.err);
	/* a full disk where the state is (its database, its backups) is
	 * named as such, never as damage */
	if (strstr(fault, "enospc") && (!strncmp(fault, "state.", 6) || !strncmp(fault, "backup.", 7)))
		ck_assert_msg(strstr(r.err, "no space left on the device holding the state (") &&
				      strstr(r.err, e.state) && !strstr(r.err, "damaged"),
			      "%s: %s", fault, r.err);
	ck_assert_msg(strstr(r.err, "nothing was changed"), "%s: %s", fault, r.err);
	tu_result_free(&r);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_msg(strcmp(fp, e.old_fp) == 0, "%s: files changed:\n%s", fault, fp);
	free(fp);
	ck_assert_int_eq(count_stage_files(&e), 0);
	{
		size_t unfinished;

		ck_assert_int_ne(status_of(&e, &unfinished), BSI_STATUS_APPLIED);
		ck_assert_int_eq(unfinished, 0);
	}
	log = read_file(&e, "restarts.log");
	ck_assert_str_eq(log, "");
	free(log);
	/* Nothing lost: the same apply then succeeds. */
	ck_assert_msg(drive(&r, NULL, args) == 0, "%s: %s", fault, r.err);
	tu_result_free(&r);
	ck_assert(check_consistent(&e, new_fp, fault));
	free(args);
	free(new_fp);
	env_free(&e);
}
END_TEST

START_TEST(test_txn_fault_during_rollback_keeps_it_applied)
{
	char *new_fp = new_fingerprint(1000), *args, *fp;
	tu_result r;
	env e;

	env_setup(&e);
	apply_ok(&e, false);
	args = rollback_args(&e);
	drive(&r, "BSI_FAULT=txn.rename.enospc:2", args);
	ck_assert_msg(r.status == 1, "%d %s", r.status, r.err);
	ck_assert_msg(strstr(r.err, "No space left on device") && strstr(r.err, paths[1]), "%s",
		      r.err);
	tu_result_free(&r);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, new_fp);
	free(fp);
	ck_assert(check_consistent(&e, new_fp, "rollback fault"));
	ck_assert_int_eq(drive(&r, NULL, args), 0);
	tu_result_free(&r);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	free(args);
	free(new_fp);
	env_free(&e);
}
END_TEST

/* ---- a real full disk ------------------------------------------------ */

START_TEST(test_txn_full_disk_rolls_back)
{
	const size_t big = 1200 * 1024;
	unsigned char *buf;
	char *args, p[4400], *fp;
	tu_result r;
	bsi_txn_result res;
	session s;
	env e;
	size_t i;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP test_txn_full_disk_rolls_back: needs root to mount a tmpfs\n");
		return;
	}
	env_setup(&e);
	tu_must("mv '%s' '%s.orig' && mkdir '%s'", e.root, e.root, e.root);
	if (mount("tmpfs", e.root, "tmpfs", 0, "size=2m") != 0) {
		fprintf(stderr, "SKIP test_txn_full_disk_rolls_back: mount tmpfs: %s\n",
			strerror(errno));
		return;
	}
	tu_must("cp -a '%s.orig/.' '%s/' && rm -rf '%s.orig'", e.root, e.root, e.root);
	free(e.old_fp);
	e.old_fp = tu_tree_fingerprint(e.root);
	/* Payloads of 1.2 MiB each: the first fits on the 2 MiB disk, the second does not. */
	buf = malloc(big + 16);
	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < NFILES; i++) {
		fill(buf, big + i, (unsigned)(200 + i));
		bsi_digest_buf(buf, big + i, e.to[i]);
		snprintf(p, sizeof(p), "%s/payloads/f%zu", e.feed, i);
		write_bytes(p, buf, big + i);
	}
	free(buf);
	args = apply_args(&e);
	drive(&r, NULL, args);
	ck_assert_msg(r.status == 1, "expected exit 1 on a full disk, got %d: %s", r.status, r.err);
	ck_assert_msg(strstr(r.err, "No space left on device") && strstr(r.err, "nothing was changed"),
		      "%s", r.err);
	tu_result_free(&r);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	ck_assert_int_eq(count_stage_files(&e), 0);
	free(args);

	/* Small payloads fit: apply works across filesystems (backups are copies)
	 * and rollback restores the originals byte for byte. */
	for (i = 0; i < NFILES; i++) {
		char small[64];

		snprintf(small, sizeof(small), "small payload %zu\n", i);
		bsi_digest_buf(small, strlen(small), e.to[i]);
		snprintf(p, sizeof(p), "%s/payloads/f%zu", e.feed, i);
		tu_write(p, small);
	}
	args = apply_args(&e);
	ck_assert_msg(drive(&r, NULL, args) == 0, "%s", r.err);
	tu_result_free(&r);
	ck_assert_int_eq(status_of(&e, NULL), BSI_STATUS_APPLIED);
	session_open(&s, &e);
	ck_assert_msg(bsi_txn_rollback(&res, &s.ctx, IMP) == 0, "%s", bsi_error_message());
	session_close(&s);
	fp = tu_tree_fingerprint(e.root);
	ck_assert_str_eq(fp, e.old_fp);
	free(fp);
	free(args);
	umount2(e.root, MNT_DETACH);
	env_free(&e);
}
END_TEST

/* ---- two at once ----------------------------------------------------- */

START_TEST(test_txn_two_applies_at_once_apply_once)
{
	const size_t size = 4 << 20;
	char *new_fp = new_fingerprint(size), *args, *log, *cmd;
	int wait = _i, st[2], ok = 0, busy = 0;
	pid_t pid[2];
	env e;
	int k;

	env_setup_sized(&e, size);
	args = apply_args(&e);
	for (k = 0; k < 2; k++) {
		ck_assert_int_gt(asprintf(&cmd, "exec '%s' %s %s >/dev/null 2>'%s/err.%d'", driver,
					  wait ? "--wait 60" : "", args, e.dir, k),
				 0);
		pid[k] = fork();
		ck_assert_int_ge(pid[k], 0);
		if (pid[k] == 0) {
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		free(cmd);
	}
	for (k = 0; k < 2; k++) {
		char errp[4400], *err;

		ck_assert_int_eq(waitpid(pid[k], &st[k], 0), pid[k]);
		ck_assert(WIFEXITED(st[k]));
		snprintf(errp, sizeof(errp), "%s/err.%d", e.dir, k);
		err = tu_read(errp);
		if (WEXITSTATUS(st[k]) == 0) {
			ok++;
		} else {
			ck_assert_msg(WEXITSTATUS(st[k]) == 5, "exit %d: %s", WEXITSTATUS(st[k]), err);
			ck_assert_msg(strstr(err, "another bsi (pid"), "%s", err);
			busy++;
		}
		free(err);
	}
	if (wait)
		ck_assert_int_eq(ok, 2);
	ck_assert_int_eq(ok + busy, 2);
	ck_assert_int_ge(ok, 1);
	ck_assert(check_consistent(&e, new_fp, "two applies"));
	log = read_file(&e, "restarts.log");
	ck_assert_str_eq(log, "svc-a\nsvc-b\n");
	free(log);
	free(args);
	free(new_fp);
	env_free(&e);
}
END_TEST

static Suite *txn_suite(void)
{
	Suite *s = suite_create("txn");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, build_driver, NULL);
	tcase_add_checked_fixture(tc, NULL, tu_cleanup);
	tcase_add_test(tc, test_txn_apply_replaces_files_keeps_owner_and_mode);
	tcase_add_loop_test(tc, test_txn_apply_and_rollback_keep_extended_attributes, 0, 3);
	tcase_add_test(tc, test_txn_apply_partly_patched_device_replaces_the_rest);
	tcase_add_test(tc, test_txn_not_applicable_touches_nothing);
	tcase_add_test(tc, test_txn_payload_with_wrong_digest_is_refused);
	tcase_add_test(tc, test_txn_symlink_target_is_refused);
	tcase_add_loop_test(tc, test_txn_odd_target_is_refused_untouched, 0,
			    sizeof(odd_targets) / sizeof(odd_targets[0]));
	tcase_add_test(tc, test_txn_payload_over_size_limit_is_refused_untouched);
	tcase_add_test(tc, test_txn_same_file_by_two_paths_is_refused);
	tcase_add_test(tc, test_txn_rollback_restores_byte_identical_originals);
	tcase_add_test(tc, test_txn_rollback_after_reapply_restores_every_file);
	tcase_add_test(tc, test_txn_rollback_after_revision_restores_the_first_original);
	tcase_add_test(tc, test_txn_cli_revision_then_rollback_restores_original);
	tcase_add_test(tc, test_txn_edited_recipe_does_not_disown_applied_files);
	tcase_add_test(tc, test_txn_rollback_refuses_to_clobber_a_changed_file);
	tcase_add_test(tc, test_txn_failed_restart_is_pending_and_retried);
	tcase_add_test(tc, test_txn_hold_release_and_history);
	tcase_add_test(tc, test_txn_verify_tells_tampered_from_obsolete);
	tcase_add_loop_test(tc, test_txn_crash_at_each_apply_failpoint_recovers, 0,
			    (int)(sizeof(apply_points) / sizeof(apply_points[0])));
	tcase_add_loop_test(tc, test_txn_cli_crash_at_each_apply_failpoint_recovers, 0,
			    (int)(sizeof(apply_points) / sizeof(apply_points[0])));
	tcase_add_loop_test(tc, test_txn_crash_at_each_rollback_failpoint_recovers, 0,
			    (int)(sizeof(rollback_points) / sizeof(rollback_points[0])));
	tcase_add_test(tc, test_txn_cli_kill_after_rollback_commit_cleans_backups_on_recovery);
	tcase_add_test(tc, test_txn_crash_during_recovery_recovers);
	tcase_add_test(tc, test_txn_recovery_refuses_another_root);
	tcase_add_test(tc, test_txn_random_sigkill_of_large_apply_recovers);
	tcase_add_loop_test(tc, test_txn_fault_at_each_step_rolls_back, 0,
			    (int)(sizeof(apply_faults) / sizeof(apply_faults[0])));
	tcase_add_test(tc, test_txn_fault_during_rollback_keeps_it_applied);
	tcase_add_test(tc, test_txn_full_disk_rolls_back);
	tcase_add_loop_test(tc, test_txn_two_applies_at_once_apply_once, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(txn_suite());
}
