/*
 * testutil.h - helpers shared by the Check suites.
 *
 * Tests run the real binary (BSI_BUILD/bsi, or bsi-failpoint), with real git
 * and ssh-keygen building fixtures in temporary directories.  Under
 * BSI_VALGRIND=1 every bsi started through tu_bsi() runs inside valgrind,
 * and an error found there fails the test (exit status 99).
 */
#ifndef BSI_TESTUTIL_H
#define BSI_TESTUTIL_H

#include <check.h>
#include <stddef.h>

typedef struct {
	int status; /* exit status, or 128+signal */
	char *out;  /* captured stdout (NUL-terminated) */
	char *err;  /* captured stderr */
} tu_result;

/* Run a suite (Check's fork mode unless CK_FORK says otherwise), free it,
 * remove the temporary directories, and return the process exit status:
 * what each suite's main() returns. */
int tu_run_suite(Suite *s);

/* A fresh temporary directory (removed by tu_cleanup()). */
char *tu_tmpdir(void);
/* Remove every directory tu_tmpdir() made in this process. */
void tu_cleanup(void);

/* Path of a built artefact: tu_build_path("bsi"), tu_build_path("plugins"). */
const char *tu_build_path(const char *name);

/* Run `sh -c CMD`, capture output; the result's strings are freed by
 * tu_result_free().  Returns res->status. */
int tu_sh(tu_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run `bsi ARGS` (ARGS is shell words, already quoted). */
int tu_bsi(tu_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with the failpoint build and an environment prefix (e.g.
 * "BSI_FAILPOINT=apply.renamed"). */
int tu_bsi_env(tu_result *res, const char *env, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tu_result_free(tu_result *res);

/* Run a shell command and fail the test (ck_abort) unless it exits 0. */
void tu_must(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void tu_write(const char *path, const char *content);
/* Whole file, NUL-terminated, or NULL if it cannot be read. */
char *tu_read(const char *path);

/* A fingerprint of a directory tree: every entry's path, type, mode, owner,
 * size, link target, content digest and extended attributes.  Equal fingerprints mean the trees
 * are byte-identical.  Caller frees. */
char *tu_tree_fingerprint(const char *dir);

/* "sha256:<hex>" of dir/rel (caller frees); the test fails if it cannot
 * be read. */
char *tu_file_digest(const char *dir, const char *rel);

#endif

#ifndef BSI_TESTUTIL_CA
#define BSI_TESTUTIL_CA
/* A self-signed CA certificate (PEM), for a ca_file that loads. */
#define TU_TEST_CA_PEM                                                      \
	"-----BEGIN CERTIFICATE-----\n"                                      \
	"MIIBgjCCASmgAwIBAgIUQMDEe3SRKhixHbPX9zZtom554/4wCgYIKoZIzj0EAwIw\n" \
	"FjEUMBIGA1UEAwwLYnNpLXRlc3QtY2EwIBcNMjYxMjAyMTcxNzE1WhgPMjEyNjEx\n" \
	"MDgxNzE3MTVaMBYxFDASBgNVBAMMC2JzaS10ZXN0LWNhMFkwEwYHKoZIzj0CAQYI\n" \
	"KoZIzj0DAQcDQgAEUceS3w6dnlerYh9D9mHYCfiatfZGBguqvY3A+DorcPv97Y0r\n" \
	"UlOBq6odGB9nnm0WGGRuq8T9OzlkL7+Rw9njsqNTMFEwHQYDVR0OBBYEFOBrgGDU\n" \
	"s6uRIe9/FQIqx0c8VaL4MB8GA1UdIwQYMBaAFOBrgGDUs6uRIe9/FQIqx0c8VaL4\n" \
	"MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgYBIeyBDjRb4ydb4O\n" \
	"sz7IuIKuPus6H1TqRV44omtdf0kCIBts5mtqzJP03jgER2tWrnswfT9sjgLwWgTK\n" \
	"d0aLhOu+\n"                                                         \
	"-----END CERTIFICATE-----\n"
#endif

#ifndef BSI_TESTUTIL_SAMPLE
#define BSI_TESTUTIL_SAMPLE
/* Make a feed working tree at dir from the reference recipes and the
 * generated payloads (recipes/sample.sh), without .bsi/signers or git. */
void tu_sample_tree(const char *dir);
/* Make the sample device image `variant` (old, current, patched) at dir. */
void tu_sample_image(const char *variant, const char *dir);
#endif

#ifndef BSI_TESTUTIL_FEED
#define BSI_TESTUTIL_FEED
/* A signed sample feed: an ed25519 key at DIR/KEYNAME (made if absent), a
 * git repository at FEED with .bsi/signers authorizing that key, the
 * reference recipes and payloads, and one commit signed with the key.
 * Writes the commit id (40 hex) to intro. */
void tu_signed_feed(const char *feed, const char *key, char intro[41]);
/* Commit everything in feed, signed with key (a private key path); extra
 * is put before `commit` (e.g. an environment for dates). */
void tu_feed_commit(const char *feed, const char *key, const char *msg);
/* The public key line of a private key path ("ssh-ed25519 AAAA... c"). */
char *tu_pubkey(const char *key);

/* git daemon serving base on 127.0.0.1: returns its port; stop with
 * tu_git_daemon_stop(). */
int tu_git_daemon_start(const char *base);
void tu_git_daemon_stop(void);
#endif
