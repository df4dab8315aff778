/*
 * main.c - the bsi command line.
 *
 * Parses global options wherever they stand (`bsi status --json` and
 * `bsi --json status` are the same), reads the configuration, runs one
 * command, and is the only place that turns an error into output and an
 * exit status.
 */
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "mirror.h"
#include "output.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BSI_VERSION
#define BSI_VERSION "0.1.0"
#endif

/* Which command options a command takes. */
enum { O_TREE = 1, O_INTRO = 2, O_SIGNER = 4, O_ONCE = 8, O_WAIT = 16, O_TARGET = 32,
       O_IMAGE = 64 };

typedef struct {
	const char *name; /* "plan", "recipe check" */
	int (*run)(bsi_cli *cli);
	int options;
	int min_args, max_args; /* -1: no limit */
	const char *usage;
	const char *help;
} command;

static const command commands[] = {
	{"enroll", bsi_cmd_enroll, O_INTRO | O_SIGNER | O_WAIT, 1, 1,
	 "enroll URL --introduction COMMIT --signer KEY",
	 "Record the device's trust anchor: the feed URL (a path, file://, git://\n"
	 "or https://), the introduction commit (40 hex digits), and the\n"
	 "ssh-ed25519 key that signed it, as \"ssh-ed25519 AAAA... [comment]\".\n"
	 "Nothing is fetched; bsi sync does that."},
	{"sync", bsi_cmd_sync, O_WAIT, 0, 0, "sync",
	 "Fetch the feed and accept its new head only if it descends from the\n"
	 "trusted head and every new commit is signed by a key that .bsi/signers\n"
	 "of each of its parents authorizes.  A refused sync changes nothing\n"
	 "and exits 3, naming the commit, the signer and the rule it broke."},
	{"plan", bsi_cmd_plan, O_TREE, 0, 0, "plan [--tree DIR] [--root DIR] [--json]",
	 "Preview what the recipes would do to the device at --root, changing\n"
	 "nothing on it.  For each improvement: its status (pending, applied,\n"
	 "not-applicable with the reason, held, rolled-back, error with the\n"
	 "reason and line), the files it replaces with old and new digests, and\n"
	 "the services it restarts; then the recipe files in error.  Exits with\n"
	 "the worst error's code (3 before 4 before 1) after showing it all.\n"
	 "  --tree DIR   read recipes and payloads from a feed working tree\n"
	 "               instead of the trusted feed head (no state is read)"},
	{"apply", bsi_cmd_apply, O_TREE | O_WAIT, 0, -1, "apply [ID...] [--tree DIR]",
	 "Apply improvements, each as one crash-safe transaction, then restart\n"
	 "the services they name.  Without IDs: every pending improvement that\n"
	 "is not held or rolled back, in feed order.  With IDs: exactly those,\n"
	 "held or rolled back or not.  An improvement in error is never applied;\n"
	 "every healthy one is, then bsi exits with the worst error's code.\n"
	 "  --tree DIR   take recipes and payloads from a feed working tree\n"
	 "               (for a test device image)"},
	{"rollback", bsi_cmd_rollback, O_WAIT, 1, 1, "rollback ID",
	 "Put back the files improvement ID replaced, byte for byte with their\n"
	 "owner, mode and extended attributes, and restart the same services.\n"
	 "It is then never applied automatically again; bsi apply ID applies it\n"
	 "on purpose."},
	{"hold", bsi_cmd_hold, O_WAIT, 1, 1, "hold ID",
	 "Never apply improvement ID automatically (bsi apply ID still can)."},
	{"release", bsi_cmd_release, O_WAIT, 1, 1, "release ID", "Undo bsi hold ID."},
	{"agent", bsi_cmd_agent, O_ONCE | O_WAIT, 0, 0, "agent [--once]",
	 "Keep the device patched, unattended.  Each run takes the lock, recovers\n"
	 "an interrupted transaction, syncs the feed, and applies every pending\n"
	 "improvement that is not held, in feed order, one transaction each,\n"
	 "when auto_install is on, the device is on AC power (require_ac_power),\n"
	 "the local time is inside maintenance_window and the improvement is at\n"
	 "least min_severity; otherwise it stays pending with the reason, which\n"
	 "bsi status shows.  A refused feed (exit 3) changes nothing; a sync that\n"
	 "fails (exit 1) is retried with exponential backoff and jitter, and the\n"
	 "already trusted feed head is still applied.  Processes still running a\n"
	 "replaced file are reported, and their systemd units restarted when\n"
	 "restart_affected = true.\n"
	 "  --once       one run, for a systemd timer or cron; without it, a run\n"
	 "               every `interval` (with jitter); the lock is not held\n"
	 "               between runs.  SIGTERM lets the transaction in progress\n"
	 "               finish and exits 0; SIGHUP reads the configuration again.\n"
	 "Logs one line per event to syslog (daemon facility) when stderr is not\n"
	 "a terminal, else to stderr; BSI_LOG=stderr or BSI_LOG=syslog chooses."},
	{"status", bsi_cmd_status, 0, 0, 0, "status [--json]",
	 "The feed (URL, trusted head, how long this device has had it by its own\n"
	 "clock; flagged when longer than max_feed_age), every improvement with\n"
	 "its status (an improvement in error with the reason), and the recipe\n"
	 "files in error."},
	{"show", bsi_cmd_show, 0, 1, 1, "show ID [--json]",
	 "The notes of one improvement: summary, CVEs, severity, files with\n"
	 "digests, services, when and from which commit it was applied, and\n"
	 "its history."},
	{"history", bsi_cmd_history, 0, 0, 1, "history [ID] [--json]",
	 "Every action bsi took on this device, oldest first, with the feed\n"
	 "commit it came from."},
	{"verify", bsi_cmd_verify, O_WAIT, 0, 0, "verify [--json]",
	 "Re-hash every file bsi patched: applied, obsolete (a later full update\n"
	 "replaced it with a version the feed knows), or tampered (anything\n"
	 "else).  Exits 3 when anything is tampered."},
	{"recipe check", bsi_cmd_recipe_check, 0, 1, -1, "recipe check FILE...",
	 "Load each recipe file in the sandbox and check the table it returns.\n"
	 "Reports every problem as FILE:LINE with the field at fault.  Queries\n"
	 "such as bsi.hash see no device and return nil."},
	{"digest", bsi_cmd_digest, 0, 1, -1, "digest FILE... [--json]",
	 "Print each file's SHA-256 in the form a recipe's from and to take,\n"
	 "\"sha256:<64 hex digits>\", then two spaces and the file name (the\n"
	 "layout of sha256sum).  Exits 1 if any file cannot be read; the\n"
	 "others are still printed."},
	{"payload add", bsi_cmd_payload_add, O_TARGET | O_IMAGE | O_TREE, 1, 1,
	 "payload add FILE --target PATH --image DIR [--tree DIR] [--json]",
	 "Copy FILE, the new version of the device's file PATH, into payloads/ of\n"
	 "the feed working tree (--tree, default the current directory), and print\n"
	 "the change:replace block that installs it: from, the digest of PATH in\n"
	 "the device image DIR (resolved as a device resolves it), and to, FILE's.\n"
	 "Paste it into the recipe's apply function.  A payload of the same name\n"
	 "but other content is refused, never overwritten."},
	{"feed verify", bsi_cmd_feed_verify, O_INTRO | O_SIGNER, 0, 1,
	 "feed verify [DIR] [--introduction COMMIT --signer KEY]",
	 "Authenticate the history of DIR's HEAD (default: the current\n"
	 "directory) with the same code and verdicts as a device.  Without\n"
	 "--introduction and --signer, the first commit of the history and its\n"
	 "signer are the trust anchor.  -v lists every commit."},
};

static void usage_line(FILE *f)
{
	fprintf(f, "usage: bsi [--root DIR] [--state DIR] [--config FILE] [--json] [-q|-v] "
		   "COMMAND ...\n");
}

static void program_help(void)
{
	usage_line(stdout);
	printf("\nBackground security improvements: small signed fixes, applied safely.\n\n"
	       "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  bsi %s\n", commands[i].usage);
	printf("\nGlobal options (before or after the command):\n"
	       "  --root DIR      the device's root directory (default /)\n"
	       "  --state DIR     the state directory (default /var/lib/bsi)\n"
	       "  --config FILE   the configuration file (default %s/bsi/bsi.conf)\n"
	       "  --json          one JSON document on stdout: every command that reports\n"
	       "                  (plan, status, show, history, verify, sync, apply,\n"
	       "                  rollback, hold, release, enroll, digest, payload add,\n"
	       "                  recipe check, feed verify) and any command's failure\n"
	       "  -q, --quiet     only errors\n"
	       "  -v, --verbose   more detail (repeat for more)\n"
	       "  -h, --help      this help; `bsi COMMAND --help` for one command\n"
	       "  --version       the version\n"
	       "\nExit status: 0 success, 1 operational failure, 2 usage or configuration\n"
	       "error, 3 trust refused, 4 recipe error, 5 busy (another bsi holds the lock).\n",
	       BSI_SYSCONFDIR);
}

static void command_help(const command *c)
{
	printf("usage: bsi %s\n\n%s\n", c->usage, c->help);
	if (c->options & O_WAIT)
		printf("  --wait[=SECONDS]  wait for the lock instead of exiting 5 (0: forever)\n");
	printf("\nGlobal options: see bsi --help.\n");
}

/* word names a group of commands ("recipe", "feed"): print them to f. */
static bool group_help(FILE *f, const char *word)
{
	size_t len = strlen(word);
	bool any = false;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strncmp(commands[i].name, word, len) != 0 || commands[i].name[len] != ' ')
			continue;
		if (!any)
			fprintf(f, "usage: bsi %s COMMAND ...\n\nCommands:\n", word);
		fprintf(f, "  bsi %s\n", commands[i].usage);
		any = true;
	}
	if (any)
		fprintf(f, "\n`bsi %s COMMAND --help` for one command.\n", word);
	return any;
}

static const command *find_command(const char *word, const char *sub, bool *used_sub)
{
	char two[128];

	*used_sub = false;
	if (sub) {
		snprintf(two, sizeof(two), "%s %s", word, sub);
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(commands[i].name, two) == 0) {
				*used_sub = true;
				return &commands[i];
			}
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, word) == 0)
			return &commands[i];
	return NULL;
}

static int parse_wait(const char *arg, double *out)
{
	char *end;

	if (!arg) {
		*out = 0;
		return BSI_OK;
	}
	*out = strtod(arg, &end);
	if (end == arg || *end || *out < 0)
		return bsi_error_set(BSI_EUSAGE, "--wait: \"%s\" is not a number of seconds", arg);
	return BSI_OK;
}

/*
 * Parse argv into cli.  getopt_long with permutation collects options from
 * anywhere; the words left are the command, its subcommand and arguments.
 * Returns 1 when help or the version was printed.
 */
static int parse(bsi_cli *cli, int argc, char **argv, const command **out)
{
	enum { OPT_ROOT = 256, OPT_STATE, OPT_CONFIG, OPT_JSON, OPT_TREE, OPT_INTRO,
	       OPT_SIGNER, OPT_ONCE, OPT_WAIT, OPT_VERSION, OPT_TARGET, OPT_IMAGE };
	static const struct option longopts[] = {
		{"root", required_argument, NULL, OPT_ROOT},
		{"state", required_argument, NULL, OPT_STATE},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"json", no_argument, NULL, OPT_JSON},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{"tree", required_argument, NULL, OPT_TREE},
		{"introduction", required_argument, NULL, OPT_INTRO},
		{"signer", required_argument, NULL, OPT_SIGNER},
		{"once", no_argument, NULL, OPT_ONCE},
		{"wait", optional_argument, NULL, OPT_WAIT},
		{"target", required_argument, NULL, OPT_TARGET},
		{"image", required_argument, NULL, OPT_IMAGE},
		{0},
	};
	int given = 0, opt, nwords = 0;
	bool help = false, used_sub, words_only = false;
	const command *c;

	*out = NULL;
	opterr = 0;
	/* "+": stop at each word; we keep the word and carry on after it, so
	 * options may follow the command.  After "--" everything is a word. */
	while (optind < argc) {
		if (words_only ||
		    (opt = getopt_long(argc, argv, "+:qvh", longopts, NULL)) == -1) {
			if (optind >= argc)
				break;
			if (strcmp(argv[optind - 1], "--") == 0)
				words_only = true;
			argv[nwords++] = argv[optind++];
			continue;
		}
		switch (opt) {
		case OPT_ROOT: cli->root = optarg; break;
		case OPT_STATE: cli->state_dir = optarg; break;
		case OPT_CONFIG: cli->config_path = optarg; break;
		case OPT_JSON: cli->json = true; break;
		case 'q': cli->verbosity = -1; break;
		case 'v': cli->verbosity++; break;
		case 'h': help = true; break;
		case OPT_VERSION: printf("bsi %s\n", BSI_VERSION); return 1;
		case OPT_TREE: cli->tree = optarg; given |= O_TREE; break;
		case OPT_INTRO: cli->introduction = optarg; given |= O_INTRO; break;
		case OPT_SIGNER: cli->signer = optarg; given |= O_SIGNER; break;
		case OPT_ONCE: cli->once = true; given |= O_ONCE; break;
		case OPT_TARGET: cli->target = optarg; given |= O_TARGET; break;
		case OPT_IMAGE: cli->image = optarg; given |= O_IMAGE; break;
		case OPT_WAIT:
			given |= O_WAIT;
			if (parse_wait(optarg, &cli->wait) < 0)
				return BSI_EUSAGE;
			break;
		case ':':
			return bsi_error_set(BSI_EUSAGE, "option %s needs a value", argv[optind - 1]);
		default:
			return bsi_error_set(BSI_EUSAGE, "unknown option %s (see bsi --help)",
					     argv[optind - 1]);
		}
	}
	/* the words, in order, now stand at argv[0 .. nwords) */
	if (nwords == 0) {
		if (help) {
			program_help();
			return 1;
		}
		usage_line(stderr);
		return bsi_error_set(BSI_EUSAGE, "no command given (see bsi --help)");
	}
	c = find_command(argv[0], nwords > 1 ? argv[1] : NULL, &used_sub);
	if (!c && nwords == 1 && help && group_help(stdout, argv[0]))
		return 1;
	if (!c && nwords == 1 && group_help(stderr, argv[0]))
		return bsi_error_set(BSI_EUSAGE, "bsi %s needs a command (see bsi %s --help)",
				     argv[0], argv[0]);
	if (!c)
		return bsi_error_set(BSI_EUSAGE, "unknown command \"%s%s%s\" (see bsi --help)",
				     argv[0], nwords > 1 && (!strcmp(argv[0], "recipe") ||
							     !strcmp(argv[0], "feed")) ? " " : "",
				     nwords > 1 && (!strcmp(argv[0], "recipe") ||
						    !strcmp(argv[0], "feed")) ? argv[1] : "");
	if (help) {
		command_help(c);
		return 1;
	}
	cli->argv = argv + (used_sub ? 2 : 1);
	cli->argc = nwords - (used_sub ? 2 : 1);
	if (given & ~c->options)
		return bsi_error_set(BSI_EUSAGE, "bsi %s does not take that option; usage: bsi %s",
				     c->name, c->usage);
	if (cli->argc < c->min_args || (c->max_args >= 0 && cli->argc > c->max_args))
		return bsi_error_set(BSI_EUSAGE, "wrong number of arguments; usage: bsi %s",
				     c->usage);
	*out = c;
	return BSI_OK;
}

int main(int argc, char **argv)
{
	bsi_cli cli = {.root = "/", .state_dir = "/var/lib/bsi",
		       .config_path = BSI_SYSCONFDIR "/bsi/bsi.conf", .wait = -1};
	const command *c = NULL;
	bool config_named;
	int rc;

	rc = parse(&cli, argc, argv, &c);
	if (rc == 1)
		return 0;
	config_named = strcmp(cli.config_path, BSI_SYSCONFDIR "/bsi/bsi.conf") != 0;
	if (rc == 0)
		rc = bsi_config_defaults(&cli.cfg);
	if (rc == 0)
		rc = bsi_config_load(&cli.cfg, cli.config_path, config_named);
	if (rc == 0 && cli.cfg.ca_file)
		rc = bsi_mirror_check_ca_file(cli.cfg.ca_file, cli.config_path);
	if (rc == 0)
		rc = c->run(&cli);
	bsi_config_clear(&cli.cfg);
	if (rc < 0 && cli.json && !bsi_output_json_printed())
		/* one document on stdout, failures included */
		(void)bsi_output_json(stdout, json_pack("{s:{s:i, s:s}}", "error", "code",
							bsi_error_exit_status(rc), "message",
							bsi_error_message()));
	if (rc < 0) {
		fflush(stdout);
		fprintf(stderr, "bsi: %s\n", bsi_error_message());
	}
	return bsi_error_exit_status(rc);
}
