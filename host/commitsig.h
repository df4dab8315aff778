/*
 * commitsig.h - split a raw commit object into its signature and the bytes
 * the signature covers.
 *
 * The raw commit is what `git cat-file commit X` prints.  The signature is
 * the value of the `gpgsig` header: its first line after "gpgsig " and every
 * following continuation line (one that starts with a space), with that
 * space removed, found only among the headers, i.e. strictly before the
 * first blank line.  The payload is the raw commit with that header (and its
 * continuation lines) removed, byte for byte what git hands to ssh-keygen
 * when it verifies the commit.  Text in the message body is never a
 * signature.
 *
 * This is a SHA-1 feed: a `gpgsig-sha256` header is not a signature here;
 * a commit carrying one (alone or next to gpgsig) is refused, so one commit
 * has exactly one reading.  Two `gpgsig` headers are refused, and so is a
 * `gpgsig` header that is not the last header (git always writes it last):
 * together with sshsig.c's canonical armor, one signed commit has one id.
 */
#ifndef BSI_COMMITSIG_H
#define BSI_COMMITSIG_H

#include <git2.h>
#include <stddef.h>

typedef struct bsi_commitsig {
	char *signature; /* the armored SSHSIG, NUL-terminated */
	size_t signature_len;
	char *payload; /* the signed bytes, NUL-terminated */
	size_t payload_len;
	git_oid tree;     /* from the signed "tree" header */
	git_oid *parents; /* from the signed "parent" headers, in order */
	size_t parent_count;
} bsi_commitsig;

/* Split raw (len bytes) into signature and payload and read the tree and
 * parents from the signed headers.  A commit with no gpgsig header is
 * BSI_ETRUST "not signed" (saying why when it has a gpgsig-sha256 header);
 * malformed headers are BSI_ETRUST.  The caller frees *out. */
int bsi_commitsig_parse(bsi_commitsig **out, const char *raw, size_t len);

/* The largest commit object bsi reads.  A commit is a few hundred bytes
 * of headers, a signature and a message; one over this is refused by its
 * object header, before it is read into memory. */
#define BSI_COMMIT_MAX_BYTES (1024 * 1024)

/* Check commit id's size by its object header alone: BSI_ETRUST naming the
 * id when it is over BSI_COMMIT_MAX_BYTES or not a commit, BSI_ETRUST when
 * missing, BSI_EFAIL when it cannot be read. */
int bsi_commitsig_check_size(git_odb *odb, const git_oid *id);

/* Read commit id from odb (after bsi_commitsig_check_size) and parse it as
 * above.  A missing object or one that is not a commit is BSI_ETRUST
 * naming the id. */
int bsi_commitsig_read(bsi_commitsig **out, git_odb *odb, const git_oid *id);

void bsi_commitsig_free(bsi_commitsig *cs);

#endif
