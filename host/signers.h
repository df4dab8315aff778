/*
 * signers.h - the feed's `.bsi/signers`, in OpenSSH allowed_signers format.
 *
 *   principals [options] keytype base64-key [comment]
 *
 * with `#` comment lines and blank lines.  Only ssh-ed25519 keys are used.
 * Options:
 *   namespaces="p1,p2"  honoured: a key whose list does not match "git"
 *                       (OpenSSH pattern-list: `*`, `?`, `!negation`) is not
 *                       authorized for commits;
 *   cert-authority      refused (bsi pins plain keys, not CAs);
 *   valid-after=, valid-before=
 *                       refused as unsupported: the only time a device could
 *                       compare them with is the commit's own timestamp,
 *                       which the signer chooses, so they would promise a
 *                       revocation they cannot enforce; rotate keys by
 *                       editing the file instead;
 *   anything else       refused.
 * Every line that cannot be used is an error naming `origin:line`; nothing is
 * skipped silently.  A file with no key authorized for namespace "git" is an
 * error, because no one could sign a commit after it.
 */
#ifndef BSI_SIGNERS_H
#define BSI_SIGNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bsi_signers bsi_signers;

/* Parse text (len bytes, need not be NUL-terminated).  origin names the file
 * in messages ("<commit>:.bsi/signers").  BSI_ETRUST on any unusable line
 * or when no key is authorized for "git"; the caller frees *out. */
int bsi_signers_parse(bsi_signers **out, const char *text, size_t len, const char *origin);

/* True when key is listed and authorized for namespace "git". */
bool bsi_signers_allows(const bsi_signers *s, const uint8_t key[32]);

/* Number of keys authorized for namespace "git". */
size_t bsi_signers_count(const bsi_signers *s);

void bsi_signers_free(bsi_signers *s);

/* Parse one public key, "ssh-ed25519 AAAA... [comment]" (as given to
 * `bsi enroll --signer`), into out.  Other key types are BSI_EUSAGE naming
 * the type; so is a key blob that does not decode to a 32-byte ed25519 key. */
int bsi_signers_parse_key(uint8_t out[32], const char *text);

#endif
