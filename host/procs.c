/* procs.c - processes still mapping replaced files; see procs.h. */
#include "procs.h"

#include "error.h"
#include "text.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#define DELETED " (deleted)"

void bsi_procs_free(bsi_procs *procs)
{
	if (!procs)
		return;
	for (size_t i = 0; i < procs->count; i++) {
		free(procs->items[i].command);
		free(procs->items[i].unit);
		free(procs->items[i].label);
		free(procs->items[i].rel);
	}
	free(procs->items);
	free(procs);
}

/* Only what systemd allows in a unit name (systemd.unit(5)): a cgroup a
 * user made under their own delegated subtree can be named anything,
 * escape sequences included, and is then no unit of ours to show. */
static bool unit_name(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(":-_.\\@", s[i]))
			return false;
	return true;
}

/* Last ".service" component of a cgroup path that is a valid unit name;
 * user: under user@*.service. */
static int unit_of_path(char **out, bool *out_user, const char *path)
{
	const char *p = path, *best = NULL;
	size_t best_len = 0;
	bool user = false, best_user = false;

	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > 8 && memcmp(p + len - 8, ".service", 8) == 0 && unit_name(p, len)) {
			if (strncmp(p, "user@", 5) == 0)
				user = true;
			best = p;
			best_len = len;
			best_user = user;
		}
		p += len;
		while (*p == '/')
			p++;
	}
	if (!best)
		return BSI_OK;
	if (!(*out = strndup(best, best_len)))
		return bsi_error_set(BSI_EFAIL, "out of memory");
	*out_user = best_user;
	return BSI_OK;
}

int bsi_procs_unit_of_cgroup(char **out, bool *out_user, const char *text)
{
	const char *unified = NULL, *named = NULL;
	char *line = NULL;
	int rc;

	*out = NULL;
	*out_user = false;
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');

		if (strncmp(p, "0::", 3) == 0)
			unified = p + 3;
		else if (strstr(p, ":name=systemd:") && (!nl || strstr(p, ":name=systemd:") < nl))
			named = strstr(p, ":name=systemd:") + 14;
		p = nl ? nl + 1 : NULL;
	}
	for (int pass = 0; pass < 2 && !*out; pass++) {
		const char *start = pass == 0 ? unified : named;

		if (!start)
			continue;
		if (!(line = strndup(start, strcspn(start, "\n"))))
			return bsi_error_set(BSI_EFAIL, "out of memory");
		rc = unit_of_path(out, out_user, line);
		free(line);
		if (rc < 0)
			return rc;
	}
	return BSI_OK;
}

/* A file of /proc/PID as a string (NULL when unreadable). */
static char *read_small(const char *proc_dir, const char *pid, const char *name)
{
	char path[512], *buf = NULL;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", proc_dir, pid, name);
	if (!(f = fopen(path, "re")))
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int add(bsi_procs *procs, pid_t pid, const char *proc_dir, const char *pidname,
	       const bsi_procs_file *file)
{
	bsi_proc *p, *grown;
	char *comm, *cgroup;
	int rc;

	for (size_t i = 0; i < procs->count; i++)
		if (procs->items[i].pid == pid && strcmp(procs->items[i].label, file->label) == 0 &&
		    strcmp(procs->items[i].rel, file->rel) == 0)
			return BSI_OK;
	if (!(grown = realloc(procs->items, (procs->count + 1) * sizeof(*grown))))
		return bsi_error_set(BSI_EFAIL, "out of memory");
	procs->items = grown;
	p = &procs->items[procs->count];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	comm = read_small(proc_dir, pidname, "comm");
	if (comm) {
		/* any process names itself: shown, it must not drive the terminal */
		comm[strcspn(comm, "\n")] = '\0';
		bsi_text_clean(comm, strlen(comm) + 1, comm, strlen(comm));
	}
	p->command = comm ? comm : strdup("?");
	cgroup = read_small(proc_dir, pidname, "cgroup");
	rc = bsi_procs_unit_of_cgroup(&p->unit, &p->user_unit, cgroup ? cgroup : "");
	free(cgroup);
	p->label = strdup(file->label);
	p->rel = strdup(file->rel);
	procs->count++;
	if (rc == 0 && (!p->command || !p->label || !p->rel))
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
	return rc;
}

/* Check one maps line against the files; add the process for each match. */
static int match_line(bsi_procs *procs, const char *line, pid_t pid, const char *proc_dir,
		      const char *pidname, const bsi_procs_file *files, size_t n)
{
	unsigned maj, min;
	unsigned long long ino;
	int path_at = 0;
	const char *path;
	size_t plen;
	int rc;

	/* the kernel writes these fields; a line that does not match fails
	 * the count, and overflow cannot come from a well-formed maps line */
	/* NOLINTNEXTLINE(cert-err34-c) */
	if (sscanf(line, "%*x-%*x %*s %*x %x:%x %llu %n", &maj, &min, &ino, &path_at) < 3 ||
	    path_at == 0)
		return BSI_OK;
	path = line + path_at;
	plen = strcspn(path, "\n");
	for (size_t i = 0; i < n; i++) {
		size_t flen = strlen(files[i].path);
		bool by_path = plen == flen + strlen(DELETED) &&
			       memcmp(path, files[i].path, flen) == 0 &&
			       memcmp(path + flen, DELETED, strlen(DELETED)) == 0;
		bool by_inode = files[i].ino != 0 && ino == (unsigned long long)files[i].ino &&
				maj == major(files[i].dev) && min == minor(files[i].dev);

		if ((by_path || by_inode) &&
		    (rc = add(procs, pid, proc_dir, pidname, &files[i])) < 0)
			return rc;
	}
	return BSI_OK;
}

static int cmp_pid(const void *a, const void *b)
{
	const bsi_proc *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int bsi_procs_find(bsi_procs **out, const char *proc_dir, const bsi_procs_file *files, size_t n)
{
	bsi_procs *procs = calloc(1, sizeof(*procs));
	struct dirent *e;
	char *line = NULL;
	size_t cap = 0;
	DIR *dir = NULL;
	int rc = BSI_OK;

	*out = NULL;
	if (!procs)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	if (n == 0)
		goto done;
	if (!(dir = opendir(proc_dir))) {
		rc = bsi_error_set(BSI_EFAIL, "%s: %s", proc_dir, strerror(errno));
		goto done;
	}
	while (rc == 0 && (e = readdir(dir))) {
		char path[512];
		FILE *maps;
		pid_t pid;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = (pid_t)strtol(e->d_name, NULL, 10);
		snprintf(path, sizeof(path), "%s/%s/maps", proc_dir, e->d_name);
		if (!(maps = fopen(path, "re")))
			continue; /* exited, or not ours to read */
		while (rc == 0 && getline(&line, &cap, maps) > 0)
			rc = match_line(procs, line, pid, proc_dir, e->d_name, files, n);
		fclose(maps);
	}
	if (procs->count > 1)
		qsort(procs->items, procs->count, sizeof(*procs->items), cmp_pid);
done:
	if (dir)
		closedir(dir);
	free(line);
	if (rc == 0)
		*out = procs;
	else
		bsi_procs_free(procs);
	return rc;
}
