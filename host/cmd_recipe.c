/*
 * cmd_recipe.c - the team's commands: recipe check, digest, plan (--tree: a
 * preview).
 */
#include "commands.h"
#include "device.h"
#include "digest.h"
#include "error.h"
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
