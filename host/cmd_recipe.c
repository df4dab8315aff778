/*
 * cmd_recipe.c - the team's commands: recipe check, digest, plan (--tree: a
 * preview).
 */
#include "commands.h"
#include "device.h"
#include "digest.h"
#include "error.h"
#include "fsroot.h"
#include "output.h"
#include "plan.h"
#include "recipe.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One problem of a checked file: on stderr, and in the JSON errors. */
static void check_problem(json_t *errors, int code, const char *message)
{
	fprintf(stderr, "bsi: %s\n", message);
	if (errors)
		json_array_append_new(errors, json_pack("{s:i, s:s}", "code",
							 bsi_error_exit_status(code), "message",
							 message));
}

int bsi_cmd_recipe_check(bsi_cli *cli)
{
	bsi_recipe_limits lim = bsi_device_recipe_limits(cli);
	json_t *files = cli->json ? json_array() : NULL;
	int rc = BSI_OK;

	if (cli->json && !files)
		return bsi_error_set(BSI_EFAIL, "out of memory");
	for (int i = 0; i < cli->argc; i++) {
		json_t *errors = files ? json_array() : NULL;
		bsi_changeset *cs = NULL;
		int one = bsi_changeset_new(&cs);

		if (one == 0)
			one = bsi_recipe_check_file(cs, cli->argv[i], &lim);
		if (one < 0) {
			/* report each bad file, exit with the first failure's code */
			check_problem(errors, one, bsi_error_message());
			if (rc == 0)
				rc = one;
		}
		/* an improvement whose entry or apply failed is reported alone */
		for (size_t k = 0; one == 0 && k < cs->count; k++) {
			if (cs->items[k].status != BSI_STATUS_ERROR)
				continue;
			check_problem(errors, cs->items[k].error_code, cs->items[k].reason);
			if (rc == 0)
				rc = cs->items[k].error_code;
		}
		if (files)
			json_array_append_new(files, json_pack("{s:s, s:I, s:o}", "file", cli->argv[i],
							       "improvements",
							       (json_int_t)(cs ? cs->count : 0),
							       "errors", errors));
		else if (cli->verbosity >= 0 && one == 0 &&
			 bsi_changeset_worst_error(cs, NULL, NULL) == 0)
			printf("%s: ok, %zu improvement%s\n", cli->argv[i], cs->count,
			       cs->count == 1 ? "" : "s");
		bsi_changeset_free(cs);
	}
	if (files && bsi_output_json(stdout, json_pack("{s:o}", "files", files)) < 0 && rc == 0)
		rc = BSI_EFAIL;
	if (rc < 0)
		bsi_error_set(rc, "%s", "recipe check failed");
	return rc;
}

/* One file's digest: a regular file, opened without following a final
 * symlink's target type surprises (a FIFO would block). */
static int digest_file(const char *path, char out[BSI_DIGEST_STRLEN + 1])
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC), rc;

	if (fd < 0)
		return bsi_error_set(BSI_EFAIL, "%s: %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0)
		rc = bsi_error_set(BSI_EFAIL, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		rc = bsi_error_set(BSI_EFAIL, "%s: not a regular file", path);
	else if ((rc = bsi_digest_fd(fd, out)) < 0)
		bsi_error_wrap("%s", path);
	close(fd);
	return rc;
}

int bsi_cmd_digest(bsi_cli *cli)
{
	json_t *doc = NULL, *files = NULL, *errors = NULL;
	char digest[BSI_DIGEST_STRLEN + 1];
	int rc = BSI_OK;

	if (cli->json && ((doc = json_object()) == NULL || (files = json_array()) == NULL ||
			  json_object_set_new(doc, "files", files) < 0 ||
			  (errors = json_array()) == NULL ||
			  json_object_set_new(doc, "errors", errors) < 0)) {
		json_decref(doc);
		return bsi_error_set(BSI_EFAIL, "out of memory");
	}
	for (int i = 0; i < cli->argc; i++) {
		int one = digest_file(cli->argv[i], digest);

		if (one < 0) {
			/* report each file it cannot read, like sha256sum */
			fprintf(stderr, "bsi: %s\n", bsi_error_message());
			if (errors)
				json_array_append_new(errors,
						      json_pack("{s:s, s:s}", "path", cli->argv[i],
								"message", bsi_error_message()));
			if (rc == 0)
				rc = one;
		} else if (files) {
			json_array_append_new(files, json_pack("{s:s, s:s}", "path", cli->argv[i],
								"digest", digest));
		} else {
			printf("%s  %s\n", digest, cli->argv[i]);
		}
	}
	if (doc && bsi_output_json(stdout, doc) < 0 && rc == 0)
		rc = BSI_EFAIL;
	if (rc < 0)
		bsi_error_set(rc, "%s", "some files could not be read");
	return rc;
}

/* Copy the open regular file in to dir/name, whole or not at all (a
 * temporary name, fsync, rename). */
static int copy_into(int in, int dirfd, const char *name, const char *label)
{
	char tmp[300], buf[1 << 16];
	ssize_t n = 0;
	int out, rc = BSI_OK;

	if ((size_t)snprintf(tmp, sizeof(tmp), ".%s.bsi-new", name) >= sizeof(tmp))
		return bsi_error_set(BSI_EUSAGE, "%s: name too long", label);
	out = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return bsi_error_set(BSI_EFAIL, "%s: %s", label, strerror(errno));
	while (rc == BSI_OK && (n = read(in, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; rc == BSI_OK && off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0)
				rc = bsi_error_set(BSI_EFAIL, "%s: %s", label, strerror(errno));
			else
				off += w;
		}
	if (rc == BSI_OK && n < 0)
		rc = bsi_error_set(BSI_EFAIL, "read: %s", strerror(errno));
	if (rc == BSI_OK && fsync(out) < 0)
		rc = bsi_error_set(BSI_EFAIL, "%s: %s", label, strerror(errno));
	if (close(out) < 0 && rc == BSI_OK)
		rc = bsi_error_set(BSI_EFAIL, "%s: %s", label, strerror(errno));
	if (rc == BSI_OK && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = bsi_error_set(BSI_EFAIL, "%s: %s", label, strerror(errno));
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

int bsi_cmd_payload_add(bsi_cli *cli)
{
	const char *file = cli->argv[0], *base = strrchr(file, '/');
	char from[BSI_DIGEST_STRLEN + 1], to[BSI_DIGEST_STRLEN + 1], have[BSI_DIGEST_STRLEN + 1];
	char rel[512], block[2048];
	const char *tree = cli->tree ? cli->tree : ".";
	bsi_root *image = NULL;
	int in = -1, dirfd = -1, old = -1, rc;
	bool exists = false;

	base = base ? base + 1 : file;
	if (!cli->target || !cli->image)
		return bsi_error_set(BSI_EUSAGE, "payload add needs --target PATH (the file on the "
						 "device) and --image DIR (a device image that has it)");
	for (const char *p = cli->target; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			return bsi_error_set(BSI_EUSAGE, "--target: a path with quotes, backslashes "
							 "or control characters is not written here");
	if (cli->target[0] == '/')
		return bsi_error_set(BSI_EUSAGE, "--target %s: a recipe names paths relative to the "
						 "device's root; write %s",
				     cli->target, cli->target + strspn(cli->target, "/"));
	if (!*base || strchr(base, '"') || strchr(base, '\\') ||
	    (size_t)snprintf(rel, sizeof(rel), "payloads/%s", base) >= sizeof(rel))
		return bsi_error_set(BSI_EUSAGE, "%s: not a name a payload can have", file);
	/* the new version: a regular file, read once for its digest and once
	 * for the copy */
	in = open(file, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (in < 0)
		return bsi_error_set(BSI_EUSAGE, "%s: %s", file, strerror(errno));
	rc = digest_file(file, to);
	/* from: the file as a device resolves it in the image */
	if (rc == 0 && (rc = bsi_root_open(&image, cli->image)) < 0)
		bsi_error_wrap("--image");
	if (rc == 0 && (rc = bsi_plan_hash_file(NULL, image, cli->target, from, &exists)) == 0 &&
	    !exists)
		rc = bsi_error_set(BSI_EUSAGE, "the image %s has no %s to replace", cli->image,
				   cli->target);
	if (rc == 0 && strcmp(from, to) == 0)
		rc = bsi_error_set(BSI_EUSAGE, "%s is the same as %s in the image: nothing to "
					       "replace",
				   file, cli->target);
	/* into the feed tree: payloads/, made if absent; never over another
	 * payload of the same name */
	if (rc == 0) {
		char dir[4200];

		snprintf(dir, sizeof(dir), "%s/payloads", tree);
		if ((mkdir(dir, 0755) < 0 && errno != EEXIST) ||
		    (dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			rc = bsi_error_set(BSI_EFAIL, "%s: %s", dir, strerror(errno));
	}
	if (rc == 0 && (old = openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) >= 0) {
		rc = bsi_digest_fd(old, have);
		if (rc == 0 && strcmp(have, to) != 0)
			rc = bsi_error_set(BSI_EUSAGE, "%s/%s exists with other content (%s); rename "
						       "the new file or remove the old payload",
					   tree, rel, have);
	} else if (rc == 0 && errno != ENOENT) {
		rc = bsi_error_set(BSI_EUSAGE, "%s/%s: %s", tree, rel, strerror(errno));
	} else if (rc == 0 && (rc = copy_into(in, dirfd, base, rel)) == 0) {
		/* what was copied is what the block pins (FILE may have changed) */
		if ((old = openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			rc = bsi_error_set(BSI_EFAIL, "%s: %s", rel, strerror(errno));
		else if ((rc = bsi_digest_fd(old, have)) == 0 && strcmp(have, to) != 0)
			rc = bsi_error_set(BSI_EFAIL, "%s changed while it was copied; run again",
					   file);
	}
	snprintf(block, sizeof(block),
		 "change:replace(\"%s\", {\n  from = \"%s\",\n  to = \"%s\",\n"
		 "  payload = \"%s\",\n})\n",
		 cli->target, from, to, rel);
	if (rc == 0 && cli->json)
		rc = bsi_output_json(stdout, json_pack("{s:s, s:s, s:s, s:s, s:s}", "payload", rel,
						       "target", cli->target, "from", from, "to", to,
						       "lua", block));
	else if (rc == 0)
		fputs(block, stdout);
	if (old >= 0)
		close(old);
	if (dirfd >= 0)
		close(dirfd);
	close(in);
	bsi_root_free(image);
	return rc;
}

int bsi_cmd_plan(bsi_cli *cli)
{
	bsi_source *src = NULL;
	bsi_root *root = NULL;
	bsi_changeset *cs = NULL;
	int rc;

	/* Without --tree, the device's plan: the trusted head, with its state.
	 * With it, a pure preview that never opens the state directory. */
	if (!cli->tree)
		return bsi_cmd_device_plan(cli);
	rc = bsi_source_open_dir(&src, cli->tree);
	if (rc == 0 && (rc = bsi_root_open(&root, cli->root)) < 0)
		bsi_error_wrap("target root");
	if (rc == 0)
		bsi_root_set_max_target(root, (uint64_t)cli->cfg.max_target_mib << 20);
	if (rc == 0)
		rc = bsi_device_plan(&cs, cli, src, root, NULL);
	if (rc == 0)
		rc = bsi_output_show_plan(cli, cs);

	bsi_changeset_free(cs);
	bsi_root_free(root);
	bsi_source_free(src);
	return rc;
}
