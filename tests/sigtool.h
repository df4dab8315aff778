/*
 * sigtool.h - SSHSIG signing for tests and benchmarks.
 *
 * Makes the signatures `ssh-keygen -Y sign` and `git commit -S` make, from a
 * libsodium Ed25519 secret key, in-process (no fork per signature), so a
 * large signed history can be generated quickly.  A spec can also build
 * deliberately malformed blobs: each field can be overridden while the
 * Ed25519 signature still covers what the spec says is signed, so a test
 * isolates exactly one defect.  Every function returns malloc'd memory the
 * caller frees, and aborts (failing the test) on failure.
 */
#ifndef BSI_SIGTOOL_H
#define BSI_SIGTOOL_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	const char *magic;       /* default "SSHSIG" */
	uint32_t version;        /* default 1 (0 means default) */
	const char *key_type;    /* default "ssh-ed25519" */
	size_t key_len;          /* bytes of key written (default 32; extra are zero) */
	size_t key_trailing;     /* zero bytes appended inside the key blob */
	const char *ns;          /* namespace written in the blob, default "git" */
	const char *signed_ns;   /* namespace covered by the signature, default ns */
	const char *reserved;    /* default "" */
	const char *signed_reserved; /* reserved covered by the signature, default reserved */
	const char *hash;        /* written hash name, default "sha512" */
	const char *signed_hash; /* hash actually used (sha512/sha256), default hash */
	const char *sig_type;    /* default "ssh-ed25519" */
	size_t sig_len;          /* bytes of signature written (default 64) */
	size_t sig_trailing;     /* zero bytes appended inside the signature blob */
	size_t outer_trailing;   /* zero bytes appended after the signature blob */
} sigtool_spec;

/* A fresh Ed25519 key pair (sk is libsodium's 64-byte seed||pk). */
void sigtool_keypair(uint8_t pk[32], uint8_t sk[64]);

/* Load an unencrypted OpenSSH ed25519 private key file (ssh-keygen -N ''). */
void sigtool_load_key(const char *path, uint8_t pk[32], uint8_t sk[64]);

/* "ssh-ed25519 AAAA..." for the public key (no comment, no newline). */
char *sigtool_pubkey_line(const uint8_t pk[32]);

/* The SSHSIG blob for spec (NULL for all defaults), unarmored. */
uint8_t *sigtool_blob(size_t *out_len, const sigtool_spec *spec, const uint8_t sk[64],
                      const void *payload, size_t len);

/* Armor a blob like ssh-keygen (70-column lines, trailing newline). */
char *sigtool_armor(const uint8_t *blob, size_t len);
/* Decode an armored signature (test helper; no validation beyond base64). */
uint8_t *sigtool_dearmor(const char *armored, size_t *out_len);

/* The armored signature ssh-keygen -Y sign -n ns would make. */
char *sigtool_sign(const uint8_t sk[64], const void *payload, size_t len, const char *ns);

/* Insert signature as a gpgsig header at the end of the headers of a raw
 * commit (the way git does).  Returns the new raw commit, NUL-terminated. */
char *sigtool_commit_add_sig(const char *raw, size_t len, const char *armored);

/* Sign a raw unsigned commit with namespace "git". */
char *sigtool_commit_sign(const uint8_t sk[64], const char *raw, size_t len);

/* Append n commits to the repository, each signed in-process with sk and
 * each changing the file "counter", with .bsi/signers holding
 * signers_text.  The first commit's parent is parent (NULL: a root).
 * *out gets the last commit; the objects are written loose.  Intended for
 * benchmarks: 10,000 commits take about a second. */
void sigtool_history(git_oid *out, git_repository *repo, const uint8_t sk[64],
                     const git_oid *parent, size_t n, const char *signers_text);

#endif
