/*
 * cli.h - what a command handler is given.
 *
 * main() parses the command line (global options before or after the
 * command), reads the configuration, and calls one handler with this
 * context.  Handlers return 0 or a negative BSI_E* code with a message;
 * main() prints the message once and exits with the code DESIGN.md gives.
 */
#ifndef BSI_CLI_H
#define BSI_CLI_H

#include "config.h"

#include <stdbool.h>

typedef struct {
	/* global options */
	const char *root;        /* --root, default "/" */
	const char *state_dir;   /* --state, default /var/lib/bsi */
	const char *config_path; /* --config, default /etc/bsi/bsi.conf */
	bool json;               /* --json */
	int verbosity;           /* -q: -1, default 0, -v: 1 (repeatable) */
	double wait;             /* --wait[=SECONDS]: <0 fail fast, 0 forever */
	/* command options */
	const char *tree;         /* --tree DIR */
	const char *introduction; /* --introduction COMMIT */
	const char *signer;       /* --signer KEY */
	bool once;                /* --once */
	const char *target;       /* --target PATH */
	const char *image;        /* --image DIR */
	/* the words after the command (and subcommand) */
	int argc;
	char **argv;
	bsi_config cfg;
} bsi_cli;

#endif
