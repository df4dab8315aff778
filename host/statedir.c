/* statedir.c - refuse a state directory someone else could change; see statedir.h. */
#include "statedir.h"

#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The user's name (true), or its number when it has none (false). */
static bool user_name(char out[64], uid_t uid)
{
	struct passwd pw, *found = NULL;
	char buf[1024];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found) {
		snprintf(out, 64, "%.63s", found->pw_name);
		return true;
	}
	snprintf(out, 64, "%ld", (long)uid);
	return false;
}

/* "uid 65534 (nobody)", or "uid 1234" when the name is unknown. */
static void who(char out[96], uid_t uid)
{
	char name[64];

	if (user_name(name, uid))
		snprintf(out, 96, "uid %ld (%s)", (long)uid, name);
	else
		snprintf(out, 96, "uid %ld", (long)uid);
}

static bool writable_by_others(const struct stat *sb)
{
	return (sb->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

/* mkdir -p: the missing parents 0755, the directory itself 0700. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return bsi_error_set(BSI_EUSAGE, "bad state directory \"%s\"", dir);
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return bsi_error_set(BSI_EFAIL, "state directory %s: create %s: %s", dir,
					     path, strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return bsi_error_set(BSI_EFAIL, "create state directory %s: %s", dir,
				     strerror(errno));
	return BSI_OK;
}

/*
 * Each directory above the state directory (real: no symbolic links left)
 * belongs to root or to us, and no one else may rename entries in it:
 * not writable by group or others, unless sticky.
 */
static int check_parents(const char *real, uid_t me)
{
	char path[PATH_MAX], owner[96], me_name[96];
	size_t len = strlen(real);

	for (size_t i = 0; i < len; i++) {
		struct stat sb;

		if (real[i] != '/')
			continue;
		/* the prefix before this slash; "/" for the first */
		memcpy(path, real, i ? i : 1);
		path[i ? i : 1] = '\0';
		if (lstat(path, &sb) != 0)
			return bsi_error_set(BSI_EFAIL, "state directory %s: %s: %s", real, path,
					     strerror(errno));
		if (!S_ISDIR(sb.st_mode))
			return bsi_error_set(BSI_EUSAGE,
					     "state directory %s: %s above it is not a directory "
					     "(it changed while bsi looked at it)",
					     real, path);
		if (sb.st_uid != 0 && sb.st_uid != me) {
			who(owner, sb.st_uid);
			who(me_name, me);
			return bsi_error_set(BSI_EUSAGE,
					     "state directory %s: %s above it is owned by %s, who "
					     "could put another state directory in its place; every "
					     "directory above the state must belong to root or to %s "
					     "who runs bsi: use another --state",
					     real, path, owner, me_name);
		}
		if (writable_by_others(&sb) && !(sb.st_mode & S_ISVTX))
			return bsi_error_set(BSI_EUSAGE,
					     "state directory %s: %s above it is writable by group "
					     "or others (mode %04o) and not sticky, so they could put "
					     "another state directory in its place; chmod go-w %s, "
					     "or use another --state",
					     real, path, (unsigned)(sb.st_mode & 07777), path);
	}
	return BSI_OK;
}

/* sb (of the state directory when name is NULL, else of its entry name)
 * is ours and writable by no one else. */
static int check_owner_mode(const char *real, const char *name, const struct stat *sb, uid_t me)
{
	char owner[96], me_name[96], me_user[64];
	unsigned mode = (unsigned)(sb->st_mode & 07777);

	if (sb->st_uid != me) {
		who(owner, sb->st_uid);
		who(me_name, me);
		user_name(me_user, me);
		if (!name)
			return bsi_error_set(BSI_EUSAGE,
					     "state directory %s is owned by %s, not by %s who runs "
					     "bsi: its owner could replace the state bsi trusts, and "
					     "so what it installs; chown %s %s, or use another "
					     "--state",
					     real, owner, me_name, me_user, real);
		return bsi_error_set(BSI_EUSAGE,
				     "state directory %s: %s is owned by %s, not by %s who runs bsi, "
				     "so its owner could change what bsi trusts; remove it or restore "
				     "it from a backup (or, after checking it, chown %s %s/%s)",
				     real, name, owner, me_name, me_user, real, name);
	}
	if (!writable_by_others(sb))
		return BSI_OK;
	if (!name)
		return bsi_error_set(BSI_EUSAGE,
				     "state directory %s is writable by group or others (mode %04o), "
				     "who could replace the state bsi trusts; chmod go-w %s",
				     real, mode, real);
	return bsi_error_set(BSI_EUSAGE,
			     "state directory %s: %s is writable by group or others (mode %04o), "
			     "who could change what bsi trusts; chmod go-w %s/%s after checking it",
			     real, name, mode, real, name);
}

/* Entry name of the state directory (open as dirfd): not a symbolic
 * link, ours, writable by no one else. */
static int check_entry(const char *real, int dirfd, const char *name, uid_t me)
{
	char target[256];
	struct stat sb;
	ssize_t n;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return BSI_OK; /* gone since it was listed */
		return bsi_error_set(BSI_EFAIL, "state directory %s: %s: %s", real, name,
				     strerror(errno));
	}
	if (S_ISLNK(sb.st_mode)) {
		n = readlinkat(dirfd, name, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		return bsi_error_set(BSI_EUSAGE,
				     "state directory %s: %s is a symbolic link (to %s); bsi never "
				     "follows links in its state: remove it (restoring the real "
				     "%s from a backup if it was replaced)",
				     real, name, target, name);
	}
	return check_owner_mode(real, name, &sb, me);
}

/* The state directory and every entry in it. */
static int check_dir(const char *real, uid_t me)
{
	struct dirent *e;
	struct stat sb;
	DIR *d = NULL;
	int fd, rc;

	fd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return bsi_error_set(errno == ELOOP || errno == ENOTDIR ? BSI_EUSAGE : BSI_EFAIL,
				     "state directory %s: %s", real, strerror(errno));
	if (fstat(fd, &sb) != 0) {
		rc = bsi_error_set(BSI_EFAIL, "state directory %s: %s", real, strerror(errno));
		goto done;
	}
	if ((rc = check_owner_mode(real, NULL, &sb, me)) != 0)
		goto done;
	if (!(d = fdopendir(fd))) {
		rc = bsi_error_set(BSI_EFAIL, "state directory %s: %s", real, strerror(errno));
		goto done;
	}
	fd = -1; /* d owns it */
	errno = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			rc = check_entry(real, dirfd(d), e->d_name, me);
		errno = 0;
	}
	if (rc == 0 && errno != 0)
		rc = bsi_error_set(BSI_EFAIL, "state directory %s: %s", real, strerror(errno));
done:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	return rc;
}

int bsi_statedir_prepare(char **out, const char *dir)
{
	uid_t me = geteuid();
	char *real = NULL;
	mode_t old;
	int rc;

	*out = NULL;
	old = umask(022);
	umask(old | 022);
	if ((rc = make_dirs(dir)) != 0)
		return rc;
	if (!(real = realpath(dir, NULL)))
		return bsi_error_set(BSI_EFAIL, "state directory %s: %s", dir, strerror(errno));
	rc = check_parents(real, me);
	if (rc == 0)
		rc = check_dir(real, me);
	if (rc == 0)
		*out = real;
	else
		free(real);
	return rc;
}
