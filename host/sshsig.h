/*
 * sshsig.h - verification of OpenSSH SSHSIG signatures (ssh-ed25519 only).
 *
 * This is what `git commit -S` with gpg.format=ssh puts in a commit's gpgsig
 * header, and what `ssh-keygen -Y sign` writes: an armored blob
 *
 *   "SSHSIG" uint32(1) string(publickey) string(namespace) string(reserved)
 *   string(hash_algorithm) string(signature)
 *
 * whose Ed25519 signature covers
 *
 *   "SSHSIG" string(namespace) string(reserved) string(hash_algorithm)
 *   string(H(payload)).
 *
 * The input is hostile: every length is checked before use, trailing bytes
 * are refused at every level, and only ssh-ed25519 keys are accepted.  Only
 * the one form ssh-keygen writes is accepted (its armor byte for byte,
 * version 1, an empty reserved field, a canonical Ed25519 signature), so a
 * signature cannot be re-encoded into a second valid form: that would give
 * one signed commit a second id.
 */
#ifndef BSI_SSHSIG_H
#define BSI_SSHSIG_H

#include <stddef.h>
#include <stdint.h>

/* "SHA256:" + 43 base64 characters (no padding) + NUL. */
#define BSI_SSHSIG_FINGERPRINT_SIZE 51
/* string("ssh-ed25519") string(32-byte key) */
#define BSI_SSHSIG_KEYBLOB_LEN 51
/* Armored signatures larger than this are refused unread. */
#define BSI_SSHSIG_MAX_ARMORED 16384

/* Verify the armored SSHSIG `armored` (len bytes, need not be NUL-terminated)
 * over payload for namespace ns.  On success returns 0 and writes the
 * signer's Ed25519 public key to out.  Any defect (armor not exactly as
 * ssh-keygen writes it, framing, version, reserved field,
 * namespace, hash, key type, signature) is BSI_ETRUST with a message naming
 * the field and what was wrong; once the key is known the message names its
 * fingerprint.  out is written only on success. */
int bsi_sshsig_verify(uint8_t out[32], const char *armored, size_t len, const void *payload,
                      size_t payload_len, const char *ns);

/* Decode an SSH public key blob (string(type) string(key)), refusing any
 * type but ssh-ed25519 (the message names the type), a key that is not 32
 * bytes, and trailing bytes.  BSI_ETRUST on failure. */
int bsi_sshsig_parse_keyblob(uint8_t out[32], const uint8_t *blob, size_t len);

/* The SSH public key blob of an Ed25519 key. */
void bsi_sshsig_keyblob(uint8_t out[BSI_SSHSIG_KEYBLOB_LEN], const uint8_t key[32]);

/* OpenSSH's fingerprint of the key ("SHA256:<base64 without padding>"), the
 * string `ssh-keygen -lf` prints. */
void bsi_sshsig_fingerprint(char out[BSI_SSHSIG_FINGERPRINT_SIZE], const uint8_t key[32]);

#endif
