/*
 * source.h - where recipes and payloads are read from.
 *
 * A source is either a feed working tree on disk (`--tree DIR`, for teams
 * previewing before they sign) or one authenticated commit of the feed,
 * read as blobs through libgit2 (never a checkout).  Both are read-only and
 * confined: a directory source resolves paths like the target root does
 * (see fsroot.h); a commit source looks paths up in the commit's tree.
 */
#ifndef BSI_SOURCE_H
#define BSI_SOURCE_H

#include <git2.h>
#include <stddef.h>

typedef struct bsi_source bsi_source;
typedef struct bsi_reader bsi_reader;

int bsi_source_open_dir(bsi_source **out, const char *dir);
/* A source over commit `id` of the (bare) repository; the source keeps its
 * own reference to the repository. */
int bsi_source_open_commit(bsi_source **out, git_repository *repo, const git_oid *id);
void bsi_source_free(bsi_source *src);

/* A short name for messages: the directory, or the commit id (40 hex). */
const char *bsi_source_label(const bsi_source *src);
/* The commit id for a commit source, NULL for a directory source. */
const char *bsi_source_commit(const bsi_source *src);

/* The recipe files, "recipes/<name>.lua", sorted by name (caller frees the
 * array and each string): every entry with such a name, even one that is
 * no regular file (reading it then says so).  A missing recipes/ directory
 * yields none; a recipes that is no directory is BSI_ERECIPE. */
int bsi_source_list_recipes(const bsi_source *src, char ***out, size_t *out_count);

/* Read all of recipe file `path` into a NUL-terminated buffer the caller
 * frees.  One larger than max bytes (in a commit: told by the object's
 * header, before it is read) or that is not a regular file is BSI_ERECIPE
 * naming it; BSI_EFAIL is left for I/O and memory. */
int bsi_source_read(const bsi_source *src, const char *path, size_t max, char **out,
		    size_t *out_len);

/* Open `path` for streaming; *out_size gets its size in bytes. */
int bsi_source_open(const bsi_source *src, const char *path, bsi_reader **out,
		    size_t *out_size);
/* The git blob id (40 hex) of `path` in a commit source, so what is known
 * about its bytes can be remembered by id; "" for a directory source or a
 * path that is no blob (bsi_source_open then says why). */
int bsi_source_blob_id(const bsi_source *src, const char *path, char out[GIT_OID_HEXSZ + 1]);

/* Read up to cap bytes; *out_n == 0 at the end. */
int bsi_reader_read(bsi_reader *r, void *buf, size_t cap, size_t *out_n);
void bsi_reader_free(bsi_reader *r);

#endif
