#include "source.h"

#include "error.h"
#include "fsroot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct bsi_source {
	bsi_root *dir;        /* directory source */
	git_repository *repo; /* commit source */
	git_tree *tree;
	char label[GIT_OID_HEXSZ + 1];
	char *dir_label;
};

struct bsi_reader {
	int fd;          /* directory source */
	git_blob *blob;  /* commit source */
	size_t off;
};

int bsi_source_open_dir(bsi_source **out, const char *dir)
{
	bsi_source *src = calloc(1, sizeof(*src));
	int rc;

	*out = NULL;
	if (!src)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	rc = bsi_root_open(&src->dir, dir);
	if (rc < 0) {
		bsi_error_wrap("feed tree");
		goto done;
	}
	if (!(src->dir_label = strdup(dir))) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	*out = src;
	src = NULL;
done:
	bsi_source_free(src);
	return rc;
}

int bsi_source_open_commit(bsi_source **out, git_repository *repo, const git_oid *id)
{
	bsi_source *src = calloc(1, sizeof(*src));
	git_commit *commit = NULL;
	int rc = BSI_OK;

	*out = NULL;
	if (!src)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	git_oid_tostr(src->label, sizeof(src->label), id);
	if (git_commit_lookup(&commit, repo, id) < 0 || git_commit_tree(&src->tree, commit) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "feed commit %s: %s", src->label,
				   git_error_last() ? git_error_last()->message : "cannot read");
		goto done;
	}
	src->repo = repo;
	*out = src;
	src = NULL;
done:
	git_commit_free(commit);
	bsi_source_free(src);
	return rc;
}

void bsi_source_free(bsi_source *src)
{
	if (!src)
		return;
	bsi_root_free(src->dir);
	git_tree_free(src->tree);
	free(src->dir_label);
	free(src);
}

const char *bsi_source_label(const bsi_source *src)
{
	return src->dir ? src->dir_label : src->label;
}

const char *bsi_source_commit(const bsi_source *src) { return src->dir ? NULL : src->label; }

/* Feed paths are plain relative paths: no empty, "." or ".." components. */
static int check_feed_path(const bsi_source *src, const char *path)
{
	const char *p = path;

	if (!*path || *path == '/')
		goto bad;
	while (*p) {
		size_t len = strcspn(p, "/");

		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		p += len;
		if (*p == '/')
			p++;
	}
	return BSI_OK;
bad:
	return bsi_error_set(BSI_ERECIPE,
			     "%s: path \"%s\" refused: feed paths are relative, without \".\" "
			     "or \"..\" components",
			     bsi_source_label(src), path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_recipe_name(const char *name)
{
	size_t len = strlen(name);

	return len > 4 && name[0] != '.' && strcmp(name + len - 4, ".lua") == 0;
}

static int push_name(char ***v, size_t *n, const char *name)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));

	if (!nv)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	*v = nv;
	if (asprintf(&nv[*n], "recipes/%s", name) < 0)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	(*n)++;
	return BSI_OK;
}

/*
 * Open path in a directory source the way a commit reads it: no component
 * may be a symbolic link (git stores a link as a blob of its own, which is
 * no file and no directory), so a preview reaches the verdict a device
 * does.  path is plain (check_feed_path).  A component that is missing or
 * a link leaves *out_fd -1, and the caller says "not a file".
 */
static int open_plain(const bsi_source *src, const char *path, int *out_fd)
{
	char part[PATH_MAX];
	const char *p = path;
	int dirfd = bsi_root_fd(src->dir), fd = -1;

	*out_fd = -1;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		int next;

		if (len >= sizeof(part))
			break;
		memcpy(part, p, len);
		part[len] = '\0';
		next = openat(dirfd, part,
			      (slash ? O_PATH | O_DIRECTORY : O_RDONLY | O_NONBLOCK | O_NOCTTY) |
				      O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		if (next < 0) {
			if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
				return BSI_OK;
			return bsi_error_set(BSI_EFAIL, "%s: %s: %s", src->dir_label, path,
					     strerror(errno));
		}
		if (!slash) {
			*out_fd = next;
			return BSI_OK;
		}
		fd = dirfd = next;
		p = slash + 1;
	}
	if (fd >= 0)
		close(fd);
	return BSI_OK;
}

static int list_dir(const bsi_source *src, char ***v, size_t *n)
{
	int fd, rc = BSI_OK;
	DIR *d;
	struct dirent *e;

	struct stat rs;

	if (fstatat(bsi_root_fd(src->dir), "recipes", &rs, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !S_ISDIR(rs.st_mode))
		return bsi_error_set(BSI_ERECIPE, "%s: recipes is not a directory", src->dir_label);
	rc = open_plain(src, "recipes", &fd);
	if (rc < 0 || fd < 0)
		return rc;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return bsi_error_set(BSI_EFAIL, "%s/recipes: %s", src->dir_label, strerror(errno));
	}
	while (rc == 0 && (e = readdir(d))) {
		struct stat st;

		/* a recipe name that is not a regular file (a symlink, a
		 * directory) is listed too: reading it says what is wrong,
		 * rather than its improvements vanishing without a word */
		if (!is_recipe_name(e->d_name) ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		rc = push_name(v, n, e->d_name);
	}
	closedir(d);
	return rc;
}

/*
 * Whether the parsed tree holds every entry of the stored object: the
 * object's size (read from the header) equals the sum of the entries'
 * "<octal mode> <name>\0<20-byte id>".  libgit2 1.5.1 can hand back a tree
 * with entries missing when an allocation fails while it reads one, and a
 * recipes/ that looks empty would be "no improvements" with exit 0.
 */
static bool tree_is_whole(git_repository *repo, const git_tree *tree)
{
	git_odb *odb = NULL;
	git_object_t type;
	size_t size = 0, sum = 0;
	bool ok;

	if (git_repository_odb(&odb, repo) < 0)
		return false;
	ok = git_odb_read_header(&size, &type, odb, git_tree_id(tree)) == 0;
	git_odb_free(odb);
	for (size_t i = 0; ok && i < git_tree_entrycount(tree); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(tree, i);
		char mode[16];

		sum += (size_t)snprintf(mode, sizeof(mode), "%o",
					(unsigned)git_tree_entry_filemode_raw(e)) +
		       1 + strlen(git_tree_entry_name(e)) + 1 + GIT_OID_RAWSZ;
	}
	return ok && sum == size;
}

static int list_tree(const bsi_source *src, char ***v, size_t *n)
{
	git_tree_entry *entry = NULL;
	git_tree *sub = NULL;
	int rc = BSI_OK;

	rc = git_tree_entry_bypath(&entry, src->tree, "recipes");
	if (rc == GIT_ENOTFOUND)
		return BSI_OK; /* no recipes/ directory: no recipes */
	if (rc < 0) /* out of memory, a damaged mirror: never "no recipes" */
		return bsi_error_set(BSI_EFAIL, "feed commit %s: cannot read recipes/: %s",
				     src->label,
				     git_error_last() ? git_error_last()->message : "?");
	if (git_tree_entry_type(entry) != GIT_OBJECT_TREE) {
		rc = bsi_error_set(BSI_ERECIPE, "feed commit %s: recipes is not a directory",
				   src->label);
		goto done;
	}
	if (git_tree_lookup(&sub, src->repo, git_tree_entry_id(entry)) < 0 ||
	    !tree_is_whole(src->repo, sub)) {
		rc = bsi_error_set(BSI_EFAIL, "feed commit %s: cannot read recipes/", src->label);
		goto done;
	}
	/* every recipe name, whatever its mode: a symlink, a submodule or a
	 * directory named x.lua is then an error of that file when read */
	for (size_t i = 0; rc == 0 && i < git_tree_entrycount(sub); i++) {
		const git_tree_entry *e = git_tree_entry_byindex(sub, i);

		if (is_recipe_name(git_tree_entry_name(e)))
			rc = push_name(v, n, git_tree_entry_name(e));
	}
done:
	git_tree_free(sub);
	git_tree_entry_free(entry);
	return rc;
}

int bsi_source_list_recipes(const bsi_source *src, char ***out, size_t *out_count)
{
	char **v = NULL;
	size_t n = 0;
	int rc = src->dir ? list_dir(src, &v, &n) : list_tree(src, &v, &n);

	*out = NULL;
	*out_count = 0;
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return rc;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	*out_count = n;
	return BSI_OK;
}

int bsi_source_open(const bsi_source *src, const char *path, bsi_reader **out,
		    size_t *out_size)
{
	bsi_reader *r = NULL;
	git_tree_entry *entry = NULL;
	int rc;

	*out = NULL;
	rc = check_feed_path(src, path);
	if (rc < 0)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	r->fd = -1;
	if (src->dir) {
		struct stat st;

		rc = open_plain(src, path, &r->fd);
		if (rc < 0)
			goto done;
		if (r->fd < 0 || fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			rc = bsi_error_set(BSI_ETRUST, "%s: %s is not a file in the feed tree",
					   src->dir_label, path);
			goto done;
		}
		*out_size = (size_t)st.st_size;
	} else {
		git_filemode_t mode;

		rc = git_tree_entry_bypath(&entry, src->tree, path);
		if (rc < 0 && rc != GIT_ENOTFOUND) {
			rc = bsi_error_set(BSI_EFAIL, "feed commit %s: cannot read %s: %s",
					   src->label, path,
					   git_error_last() ? git_error_last()->message : "?");
			goto done;
		}
		if (rc < 0 || ((mode = git_tree_entry_filemode(entry)) != GIT_FILEMODE_BLOB &&
			       mode != GIT_FILEMODE_BLOB_EXECUTABLE)) {
			rc = bsi_error_set(BSI_ETRUST, "feed commit %s: %s is not a file in its tree",
					   src->label, path);
			goto done;
		}
		if (git_blob_lookup(&r->blob, src->repo, git_tree_entry_id(entry)) < 0) {
			rc = bsi_error_set(BSI_EFAIL, "feed commit %s: cannot read %s: %s",
					   src->label, path,
					   git_error_last() ? git_error_last()->message : "?");
			goto done;
		}
		*out_size = (size_t)git_blob_rawsize(r->blob);
	}
	*out = r;
	r = NULL;
done:
	git_tree_entry_free(entry);
	bsi_reader_free(r);
	return rc;
}

int bsi_source_blob_id(const bsi_source *src, const char *path, char out[GIT_OID_HEXSZ + 1])
{
	git_tree_entry *entry = NULL;
	git_filemode_t mode;
	int rc;

	out[0] = '\0';
	if (src->dir || check_feed_path(src, path) < 0)
		return BSI_OK;
	rc = git_tree_entry_bypath(&entry, src->tree, path);
	if (rc == GIT_ENOTFOUND)
		return BSI_OK;
	if (rc < 0)
		return bsi_error_set(BSI_EFAIL, "feed commit %s: cannot read %s: %s", src->label, path,
				     git_error_last() ? git_error_last()->message : "?");
	mode = git_tree_entry_filemode(entry);
	if (mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE)
		git_oid_tostr(out, GIT_OID_HEXSZ + 1, git_tree_entry_id(entry));
	git_tree_entry_free(entry);
	return BSI_OK;
}

int bsi_reader_read(bsi_reader *r, void *buf, size_t cap, size_t *out_n)
{
	*out_n = 0;
	if (r->blob) {
		size_t size = (size_t)git_blob_rawsize(r->blob), n = size - r->off;

		if (n > cap)
			n = cap;
		memcpy(buf, (const char *)git_blob_rawcontent(r->blob) + r->off, n);
		r->off += n;
		*out_n = n;
		return BSI_OK;
	}
	for (;;) {
		ssize_t n = read(r->fd, buf, cap);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return bsi_error_set(BSI_EFAIL, "read payload: %s", strerror(errno));
		*out_n = (size_t)n;
		return BSI_OK;
	}
}

void bsi_reader_free(bsi_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	git_blob_free(r->blob);
	free(r);
}

/* The size of the blob at path in a commit source, from the object's
 * header; nonzero when there is none to read (bsi_source_open says why). */
static int blob_size(const bsi_source *src, const char *path, size_t *out)
{
	git_tree_entry *entry = NULL;
	git_object_t type;
	git_odb *odb = NULL;
	int rc = -1;

	if (check_feed_path(src, path) == 0 && git_tree_entry_bypath(&entry, src->tree, path) == 0 &&
	    git_tree_entry_type(entry) == GIT_OBJECT_BLOB && git_repository_odb(&odb, src->repo) == 0)
		rc = git_odb_read_header(out, &type, odb, git_tree_entry_id(entry));
	git_odb_free(odb);
	git_tree_entry_free(entry);
	bsi_error_clear();
	return rc;
}

int bsi_source_read(const bsi_source *src, const char *path, size_t max, char **out,
		    size_t *out_len)
{
	bsi_reader *r = NULL;
	size_t size = 0, len = 0, n;
	char *buf = NULL;
	int rc;

	*out = NULL;
	/* in a commit, the size is read from the object's header first, so a
	 * huge blob is refused before it is inflated */
	if (!src->dir && blob_size(src, path, &size) == 0 && size > max)
		return bsi_error_set(BSI_ERECIPE, "%s: %s is %zu bytes, more than the %zu allowed",
				     bsi_source_label(src), path, size, max);
	rc = bsi_source_open(src, path, &r, &size);
	if (rc == BSI_ETRUST) /* not a file: the recipe is at fault */
		rc = bsi_error_set_code(BSI_ERECIPE);
	if (rc < 0)
		return rc;
	if (size > max) {
		rc = bsi_error_set(BSI_ERECIPE, "%s: %s is %zu bytes, more than the %zu allowed",
				   bsi_source_label(src), path, size, max);
		goto done;
	}
	buf = malloc(size + 1);
	if (!buf) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	while (len < size && (rc = bsi_reader_read(r, buf + len, size - len, &n)) == 0 && n > 0)
		len += n;
	if (rc < 0)
		goto done;
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	buf = NULL;
done:
	free(buf);
	bsi_reader_free(r);
	return rc;
}
