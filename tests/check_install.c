/*
 * make install / make uninstall, and the installed files: the binary run
 * from a staging DESTDIR against a signed sample feed, the default
 * configuration, the systemd units, and the man pages and bash completion
 * checked against `bsi --help` and host/config.c so they cannot drift.
 *
 * The suite builds its own copy of the program with PREFIX=/usr into a
 * temporary BUILD directory once (the suites' own build has PREFIX
 * /usr/local compiled in, and may be a sanitizer build); each test then
 * installs it into its own DESTDIR.
 */
#include "testutil.h"

#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Made in the parent process by the unchecked fixture; removed by it. */
static char src[PATH_MAX], build[PATH_MAX + 16], builddir_tmp[PATH_MAX];
/* Per test (checked fixture). */
static char *dir, dest[PATH_MAX];

/* `make` as a user runs it: not as a child of the make running the suites. */
/* Paths made of the ones above and a suffix. */
#define BUF (2 * PATH_MAX)

#define MAKE "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory"

#define ASSERT_HAS(hay, needle) \
	ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

static void build_once(void)
{
	const char *s = getenv("BSI_SRCDIR");
	const char *base = getenv("TMPDIR");

	ck_assert_ptr_nonnull(realpath(s && *s ? s : ".", src));
	snprintf(builddir_tmp, sizeof(builddir_tmp), "%s/bsi-install-build-XXXXXX",
		 base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(builddir_tmp));
	snprintf(build, sizeof(build), "%s/build", builddir_tmp);
	tu_must(MAKE " -C '%s' -j2 BUILD='%s' PREFIX=/usr all", src, build);
}

static void unbuild(void)
{
	tu_result r;

	if (!getenv("BSI_KEEP_TMP") && builddir_tmp[0]) {
		tu_sh(&r, "rm -rf '%s'", builddir_tmp);
		tu_result_free(&r);
	}
}

static void setup(void)
{
	dir = tu_tmpdir();
	snprintf(dest, sizeof(dest), "%s/dest", dir);
}

static void teardown(void) { tu_cleanup(); }

/* make TARGET with the suite's build, PREFIX=/usr, DESTDIR=dest. */
static int make_target(tu_result *r, const char *target)
{
	return tu_sh(r, MAKE " -C '%s' BUILD='%s' PREFIX=/usr DESTDIR='%s' %s", src, build, dest,
		     target);
}

static void install(void)
{
	tu_result r;

	ck_assert_msg(make_target(&r, "install") == 0, "make install failed:\n%s%s", r.out, r.err);
	tu_result_free(&r);
}

/* Where the units went: PREFIX/lib/systemd/system, or systemd's own
 * directory when pkg-config says PREFIX is systemd's prefix. */
static const char *unit_dir(void)
{
	static char path[BUF];
	tu_result r;

	tu_sh(&r, "pkg-config --variable=prefix systemd 2>/dev/null | grep -qx /usr && "
		  "pkg-config --variable=systemdsystemunitdir systemd || echo /usr/lib/systemd/system");
	r.out[strcspn(r.out, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s%s", dest, r.out);
	tu_result_free(&r);
	return path;
}

static void assert_mode(const char *rel, mode_t mode)
{
	char path[BUF];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dest, rel);
	ck_assert_msg(stat(path, &st) == 0 && S_ISREG(st.st_mode), "%s not installed", path);
	ck_assert_msg((st.st_mode & 07777) == mode, "%s has mode %o, expected %o", path,
		      (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

/* Every file and symlink under dest, one per line, sorted. */
static char *installed_files(void)
{
	tu_result r;
	char *out;

	tu_sh(&r, "cd '%s' && find . \\( -type f -o -type l \\) | LC_ALL=C sort", dest);
	ck_assert_int_eq(r.status, 0);
	out = r.out;
	free(r.err);
	return out;
}

START_TEST(test_install_puts_every_file_in_place)
{
	char unit[BUF], *s;
	const char *units = unit_dir();
	tu_result r;

	install();
	assert_mode("usr/bin/bsi", 0755);
	assert_mode("usr/lib/bsi/plugins/systemd.so", 0644);
	assert_mode("usr/lib/bsi/plugins/record.so", 0644);
	assert_mode("usr/share/man/man1/bsi.1", 0644);
	assert_mode("usr/share/man/man5/bsi.conf.5", 0644);
	assert_mode("usr/share/man/man5/bsi-recipe.5", 0644);
	assert_mode("etc/bsi/bsi.conf", 0644);
	assert_mode("usr/share/bash-completion/completions/bsi", 0644);
	snprintf(unit, sizeof(unit), "%s/bsi-agent.service", units);
	s = tu_read(unit);
	ck_assert_msg(s != NULL, "no %s", unit);
	ASSERT_HAS(s, "\nExecStart=/usr/bin/bsi agent --once\n");
	ASSERT_HAS(s, "\nConditionPathExists=/var/lib/bsi/state.db\n");
	free(s);
	snprintf(unit, sizeof(unit), "%s/bsi-agent.timer", units);
	s = tu_read(unit);
	ck_assert_msg(s != NULL, "no %s", unit);
	free(s);
	/* every template placeholder was filled in */
	ck_assert_int_eq(tu_sh(&r, "grep -rnI '@[A-Z][A-Z]*@' '%s'", dest), 1);
	tu_result_free(&r);
	/* the binary was built for PREFIX=/usr: it looks for plugins there */
	ck_assert_int_eq(tu_sh(&r, "grep -c /usr/lib/bsi/plugins '%s/usr/bin/bsi'", dest), 0);
	tu_result_free(&r);
	ck_assert_int_eq(tu_sh(&r, "'%s/usr/bin/bsi' --version", dest), 0);
	ASSERT_HAS(r.out, "bsi ");
	tu_result_free(&r);
}
END_TEST

/* The installed binary, its plugins and the installed configuration
 * (one line changed) run the device path on a signed sample feed. */
START_TEST(test_install_binary_runs_signed_feed)
{
	char conf[BUF], device[BUF], bsi[BUF * 3], *s;
	tu_result r;

	install();
	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	tu_must("cp '%s/etc/bsi/bsi.conf' '%s' && printf '%%s\\n' 'service_manager = \"record\"' "
		"'plugin_dir = \"%s/usr/lib/bsi/plugins\"' >> '%s'",
		dest, conf, dest, conf);
	/* the security team: a key, a signed feed */
	tu_must("cd '%s' && ssh-keygen -q -t ed25519 -N '' -C team@example -f key && "
		"git init -q -b main feed && cd feed && git config user.name Team && "
		"git config user.email team@example && git config gpg.format ssh && "
		"git config user.signingKey '%s/key' && git config commit.gpgSign true && "
		"mkdir .bsi recipes && "
		"printf 'team@example namespaces=\"git\" %%s\\n' \"$(cat ../key.pub)\" > .bsi/signers && "
		"cp '%s'/recipes/*.lua recipes/ && sh '%s/recipes/sample.sh' payloads payloads && "
		"git add -A && git commit -q -m 'sample feed'",
		dir, dir, src, src);
	snprintf(device, sizeof(device), "%s/device", dir);
	tu_sample_image("current", device);
	snprintf(bsi, sizeof(bsi), "'%s/usr/bin/bsi' --root '%s/device' --state '%s/state' --config '%s'",
		 dest, dir, dir, conf);

	ck_assert_msg(tu_sh(&r, "cd '%s' && %s enroll \"file://$PWD/feed\" "
				"--introduction $(git -C feed rev-parse HEAD) --signer \"$(cat key.pub)\"",
			    dir, bsi) == 0, "enroll: %s", r.err);
	tu_result_free(&r);
	ck_assert_msg(tu_sh(&r, "%s sync", bsi) == 0, "sync: %s", r.err);
	tu_result_free(&r);
	ck_assert_msg(tu_sh(&r, "%s plan", bsi) == 0, "plan: %s", r.err);
	ASSERT_HAS(r.out, "webkit webkit-26.0.2-a [high] pending");
	tu_result_free(&r);
	ck_assert_msg(tu_sh(&r, "%s apply", bsi) == 0, "apply: %s", r.err);
	tu_result_free(&r);
	ck_assert_msg(tu_sh(&r, "%s status | grep -c '^  applied '", bsi) == 0, "status: %s", r.err);
	ck_assert_int_eq(atoi(r.out), 6);
	tu_result_free(&r);
	/* the record plugin, loaded from DESTDIR, logged the restarts */
	snprintf(bsi, sizeof(bsi), "%s/state/restarts.log", dir);
	s = tu_read(bsi);
	ck_assert_msg(s != NULL, "no restarts.log: the record plugin did not run");
	ASSERT_HAS(s, "com.apple.WebKit.Networking\n");
	free(s);
	/* the device's file is now the payload */
	tu_must("cmp '%s/device/System/Library/Frameworks/WebKit.framework/Versions/A/WebKit' "
		"'%s/feed/payloads/webkit/WebKit-26.0.2'",
		dir, dir);
}
END_TEST

START_TEST(test_install_uninstall_leaves_nothing)
{
	char *files;
	tu_result r;

	install();
	files = installed_files();
	ck_assert_msg(strstr(files, "./usr/bin/bsi\n") != NULL, "nothing installed:\n%s", files);
	free(files);
	ck_assert_int_eq(make_target(&r, "uninstall"), 0);
	tu_result_free(&r);
	files = installed_files();
	ck_assert_msg(files[0] == '\0', "left behind by make uninstall:\n%s", files);
	free(files);
	ck_assert_int_eq(tu_sh(&r, "cd '%s' && ls -d usr/lib/bsi etc/bsi 2>/dev/null", dest), 2);
	tu_result_free(&r);
}
END_TEST

/* Like a Debian conffile: an admin's configuration survives install and
 * uninstall; the new default lands beside it and goes with uninstall. */
START_TEST(test_install_keeps_changed_config)
{
	char path[BUF], *s, *files;
	tu_result r;

	install();
	snprintf(path, sizeof(path), "%s/etc/bsi/bsi.conf", dest);
	tu_write(path, "auto_install = false\n");
	ck_assert_int_eq(make_target(&r, "install"), 0);
	ASSERT_HAS(r.out, "kept");
	tu_result_free(&r);
	s = tu_read(path);
	ck_assert_str_eq(s, "auto_install = false\n");
	free(s);
	assert_mode("etc/bsi/bsi.conf.dist", 0644);
	ck_assert_int_eq(make_target(&r, "uninstall"), 0);
	tu_result_free(&r);
	files = installed_files();
	ck_assert_str_eq(files, "./etc/bsi/bsi.conf\n");
	free(files);
	s = tu_read(path);
	ck_assert_str_eq(s, "auto_install = false\n");
	free(s);
}
END_TEST

/* Every key of host/config.c, one per line. */
static char *config_keys(void)
{
	tu_result r;
	char *out;

	tu_sh(&r, "sed -n 's/^[[:space:]]*KEY(\\([a-z_]*\\),.*/\\1/p' '%s/host/config.c'", src);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strlen(r.out) > 100, "no keys found in host/config.c:\n%s", r.out);
	out = r.out;
	free(r.err);
	return out;
}

START_TEST(test_install_default_config_lists_every_key_and_loads)
{
	char conf[BUF], unc[BUF], want[128], *text, *keys, *k, *save = NULL;
	int nkeys = 0;
	tu_result r;

	install();
	snprintf(conf, sizeof(conf), "%s/etc/bsi/bsi.conf", dest);
	/* as installed: all commented out, loads cleanly */
	ck_assert_msg(tu_sh(&r, "'%s/usr/bin/bsi' --config '%s' --state '%s/state' status", dest,
			    conf, dir) == 0,
		      "installed bsi.conf does not load: %s", r.err);
	tu_result_free(&r);
	text = tu_read(conf);
	keys = config_keys();
	for (k = strtok_r(keys, "\n", &save); k; k = strtok_r(NULL, "\n", &save), nkeys++) {
		snprintf(want, sizeof(want), "\n-- %s = ", k);
		ck_assert_msg(strstr(text, want) != NULL, "bsi.conf has no line \"-- %s = ...\"", k);
	}
	free(keys);
	free(text);
	/* every documented default (or example) is a valid value */
	snprintf(unc, sizeof(unc), "%s/uncommented.conf", dir);
	tu_must("sed -n 's/^-- \\([a-z_]* = \\)/\\1/p' '%s' > '%s'", conf, unc);
	ck_assert_int_eq(tu_sh(&r, "grep -c . '%s'", unc), 0);
	ck_assert_int_eq(atoi(r.out), nkeys);
	tu_result_free(&r);
	/* the example CA bundle's path is the one value that names a file:
	 * a ca_file that cannot be read is refused at load (exit 2) */
	ck_assert_int_eq(tu_sh(&r, "'%s/usr/bin/bsi' --config '%s' --state '%s/state' status",
			       dest, unc, dir),
			 2);
	ck_assert_msg(strstr(r.err, "ca_file") != NULL, "%s", r.err);
	tu_result_free(&r);
	{
		char ca[BUF];

		snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
		tu_write(ca, TU_TEST_CA_PEM);
	}
	tu_must("sed -i 's|^ca_file = .*|ca_file = \"%s/ca.pem\"|' '%s'", dir, unc);
	ck_assert_msg(tu_sh(&r, "'%s/usr/bin/bsi' --config '%s' --state '%s/state' status", dest,
			    unc, dir) == 0,
		      "uncommented bsi.conf does not load: %s", r.err);
	tu_result_free(&r);
}
END_TEST

START_TEST(test_install_units_have_schedule_and_hardening)
{
	static const char *timer_lines[] = {"OnBootSec=", "OnUnitActiveSec=", "RandomizedDelaySec=",
					    "Persistent=true", "WantedBy=timers.target"};
	static const char *service_lines[] = {
		"Type=oneshot", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
		"ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
		"ProtectControlGroups=yes", "RestrictNamespaces=yes", "RestrictRealtime=yes",
		"LockPersonality=yes", "MemoryDenyWriteExecute=yes", "SystemCallArchitectures=native",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "StateDirectory=bsi"};
	/* each of these would stop bsi from replacing system files */
	static const char *forbidden[] = {"ProtectSystem=", "ReadOnlyPaths=", "RestrictSUIDSGID=",
					  "DynamicUser=", "User="};
	char path[BUF], line[256], *s;
	tu_result r;

	install();
	snprintf(path, sizeof(path), "%s/bsi-agent.timer", unit_dir());
	s = tu_read(path);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < sizeof(timer_lines) / sizeof(*timer_lines); i++) {
		snprintf(line, sizeof(line), "\n%s", timer_lines[i]);
		ASSERT_HAS(s, line);
	}
	free(s);
	snprintf(path, sizeof(path), "%s/bsi-agent.service", unit_dir());
	s = tu_read(path);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < sizeof(service_lines) / sizeof(*service_lines); i++) {
		snprintf(line, sizeof(line), "\n%s\n", service_lines[i]);
		ASSERT_HAS(s, line);
	}
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(*forbidden); i++) {
		snprintf(line, sizeof(line), "\n%s", forbidden[i]);
		ck_assert_msg(strstr(s, line) == NULL, "bsi-agent.service sets %s", forbidden[i]);
	}
	free(s);

	if (tu_sh(&r, "command -v systemd-analyze") != 0) {
		fprintf(stderr, "check_install: systemd-analyze not found; unit files not verified\n");
		tu_result_free(&r);
		return;
	}
	tu_result_free(&r);
	/* systemd-analyze verify checks that ExecStart is executable: point it
	 * at the staged binary.  It reports unknown keys and bad values on
	 * stderr with exit status 0, so any output is a failure. */
	tu_must("mkdir '%s/units' && cp '%s/bsi-agent.timer' '%s/units/' && "
		"sed 's|^ExecStart=/usr/bin/bsi |ExecStart=%s/usr/bin/bsi |' '%s/bsi-agent.service' "
		"> '%s/units/bsi-agent.service'",
		dir, unit_dir(), dir, dest, unit_dir(), dir);
	tu_sh(&r, "cd '%s/units' && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "
		  "bsi-agent.service bsi-agent.timer",
	      dir);
	ck_assert_msg(r.status == 0 && r.err[0] == '\0' && r.out[0] == '\0',
		      "systemd-analyze verify (exit %d):\n%s%s", r.status, r.out, r.err);
	tu_result_free(&r);
}
END_TEST

/* Man page source as text: font changes and escapes removed. */
static char *man_text(const char *rel)
{
	char path[BUF], *s, *o, *p;

	snprintf(path, sizeof(path), "%s/%s", src, rel);
	s = tu_read(path);
	ck_assert_msg(s != NULL, "cannot read %s", path);
	for (p = o = s; *p;) {
		if (p[0] == '\\' && p[1] == '-') {
			*o++ = '-';
			p += 2;
		} else if (p[0] == '\\' && p[1] == 'f' && p[2]) {
			p += 3;
		} else if (p[0] == '\\' && p[1] == '&') {
			p += 2;
		} else if (p[0] == '\\' && p[1] == 'e') {
			*o++ = '\\';
			p += 2;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return s;
}

/* Each "--word" in text, one per line, unique. */
static char *long_options(const char *text)
{
	tu_result r;
	char *out, tmp[BUF];

	snprintf(tmp, sizeof(tmp), "%s/help.txt", dir);
	tu_write(tmp, text);
	tu_sh(&r, "grep -o -- '--[a-z][a-z-]*' '%s' | sort -u", tmp);
	out = r.out;
	free(r.err);
	return out;
}

/* The commands `bsi --help` lists, as their usage lines. */
static char *help_usages(void)
{
	tu_result r;
	char *out;

	ck_assert_int_eq(tu_bsi(&r, "--help"), 0);
	free(r.err);
	/* keep "bsi USAGE" lines, without the indent */
	{
		tu_result s;
		char tmp[BUF];

		snprintf(tmp, sizeof(tmp), "%s/usage.txt", dir);
		tu_write(tmp, r.out);
		tu_sh(&s, "sed -n 's/^  bsi //p' '%s'", tmp);
		out = s.out;
		free(s.err);
	}
	free(r.out);
	ck_assert_msg(strlen(out) > 100, "bsi --help lists no commands:\n%s", out);
	return out;
}

START_TEST(test_install_man_pages_match_help)
{
	char *man = man_text("docs/bsi.1"), *usages = help_usages(), *u, *save = NULL, want[512];
	char *opts, *o, *osave = NULL;
	int n = 0;
	tu_result r;

	for (u = strtok_r(usages, "\n", &save); u; u = strtok_r(NULL, "\n", &save), n++) {
		char cmd[256];
		size_t len;

		/* the usage line, as bsi CMD --help prints it, as a line of its own */
		snprintf(want, sizeof(want), "\nbsi %s\n", u);
		ck_assert_msg(strstr(man, want) != NULL, "docs/bsi.1 lacks the usage line \"bsi %s\"", u);
		/* the command's words: up to the first argument in capitals or [ */
		for (len = 0; u[len] && !(u[len] == ' ' && (u[len + 1] == '[' ||
							    (u[len + 1] >= 'A' && u[len + 1] <= 'Z')));
		     len++)
			;
		snprintf(cmd, sizeof(cmd), "%.*s", (int)len, u);
		ck_assert_int_eq(tu_bsi(&r, "%s --help", cmd), 0);
		snprintf(want, sizeof(want), "usage: bsi %s\n", u);
		ASSERT_HAS(r.out, want);
		opts = long_options(r.out);
		for (o = strtok_r(opts, "\n", &osave); o; o = strtok_r(NULL, "\n", &osave))
			ck_assert_msg(strstr(man, o) != NULL, "docs/bsi.1 does not document %s of bsi %s",
				      o, cmd);
		free(opts);
		tu_result_free(&r);
	}
	ck_assert_int_ge(n, 13);
	/* the global options and the exit codes */
	ck_assert_int_eq(tu_bsi(&r, "--help"), 0);
	opts = long_options(r.out);
	for (o = strtok_r(opts, "\n", &osave); o; o = strtok_r(NULL, "\n", &osave))
		ck_assert_msg(strstr(man, o) != NULL, "docs/bsi.1 does not document %s", o);
	free(opts);
	tu_result_free(&r);
	for (int code = 0; code <= 5; code++) {
		snprintf(want, sizeof(want), ".TP\n.B %d\n", code);
		ck_assert_msg(strstr(man, want) != NULL, "docs/bsi.1 lacks exit status %d", code);
	}
	free(usages);
	free(man);
}
END_TEST

/* bsi.conf.5 has an entry for each key of host/config.c, and no other. */
START_TEST(test_install_man_config_keys_match_source)
{
	char *man = man_text("docs/bsi.conf.5"), *keys = config_keys(), *k, *save = NULL;
	char want[128], tmp[BUF];
	int nkeys = 0;
	tu_result r;

	for (k = strtok_r(keys, "\n", &save); k; k = strtok_r(NULL, "\n", &save), nkeys++) {
		snprintf(want, sizeof(want), ".TP\n%s = ", k);
		ck_assert_msg(strstr(man, want) != NULL, "docs/bsi.conf.5 does not document %s", k);
	}
	free(keys);
	keys = config_keys();
	snprintf(tmp, sizeof(tmp), "%s/keys.txt", dir);
	tu_write(tmp, keys);
	/* entries: a key name at the start of a line after .TP */
	snprintf(want, sizeof(want), "%s/entries.txt", dir);
	tu_must("sed -n '/^\\.TP$/{n;s/^\\\\fB\\([a-z_]*\\)\\\\fR = .*/\\1/p;}' '%s/docs/bsi.conf.5' "
		"> '%s'",
		src, want);
	ck_assert_int_eq(tu_sh(&r, "grep -c . '%s'", want), 0);
	ck_assert_int_eq(atoi(r.out), nkeys);
	tu_result_free(&r);
	tu_sh(&r, "grep -vxF -f '%s' '%s'", tmp, want);
	ck_assert_msg(r.status == 1, "docs/bsi.conf.5 documents keys host/config.c lacks:\n%s",
		      r.out);
	tu_result_free(&r);
	free(keys);
	free(man);
}
END_TEST

/* Every page renders without a single warning. */
START_TEST(test_install_man_pages_render_cleanly)
{
	static const char *pages[] = {"docs/bsi.1", "docs/bsi.conf.5", "docs/bsi-recipe.5"};
	tu_result r;

	if (tu_sh(&r, "command -v groff") != 0) {
		fprintf(stderr, "check_install: groff not found; man pages not linted\n");
		tu_result_free(&r);
		return;
	}
	tu_result_free(&r);
	for (size_t i = 0; i < sizeof(pages) / sizeof(*pages); i++) {
		tu_sh(&r, "groff -ww -man -z '%s/%s'", src, pages[i]);
		ck_assert_msg(r.status == 0 && r.err[0] == '\0', "%s: groff warns:\n%s", pages[i],
			      r.err);
		tu_result_free(&r);
		/* and man itself, as an admin would read it */
		tu_sh(&r, "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '%s/%s' 2>&1 >/dev/null",
		      src, pages[i]);
		ck_assert_msg(r.out[0] == '\0', "%s: man warns:\n%s", pages[i], r.out);
		tu_result_free(&r);
	}
}
END_TEST

/* What the completion offers after `bsi WORDS`, one word per line. */
static char *complete(const char *words)
{
	tu_result r;
	char *out;

	char script[BUF], bin[BUF];

	ck_assert_ptr_nonnull(realpath(tu_build_path(""), bin));
	snprintf(script, sizeof(script), "%s/complete.bash", dir);
	tu_write(script, "COMP_WORDS=(bsi \"$@\")\n"
			 "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
			 "_bsi\n"
			 "printf '%s\\n' \"${COMPREPLY[@]}\"\n");
	tu_sh(&r, "PATH='%s':\"$PATH\" bash -c '. \"$0\"; s=$1; shift; . \"$s\" \"$@\"' '%s/dist/bsi.bash-completion' "
		  "'%s' %s",
	      bin, src, script, words);
	ck_assert_msg(r.status == 0, "completion failed: %s", r.err);
	out = r.out;
	free(r.err);
	return out;
}

static void assert_offers(const char *offered, const char *word, const char *after)
{
	char line[256];

	snprintf(line, sizeof(line), "\n%s\n", word);
	ck_assert_msg(strncmp(offered, line + 1, strlen(line + 1)) == 0 || strstr(offered, line),
		      "completing \"bsi %s\" does not offer %s; it offers:\n%s", after, word, offered);
}

START_TEST(test_install_completion_matches_help)
{
	char *usages = help_usages(), *u, *save = NULL, *offered, words[300];
	tu_result r;

	offered = complete("''");
	for (u = strtok_r(usages, "\n", &save); u; u = strtok_r(NULL, "\n", &save)) {
		char cmd[64], sub[64] = "", *opts, *o, *osave = NULL;
		int n = sscanf(u, "%63s %63[a-z]", cmd, sub);

		assert_offers(offered, cmd, "");
		if (n == 2 && (strcmp(cmd, "recipe") == 0 || strcmp(cmd, "feed") == 0 ||
			       strcmp(cmd, "payload") == 0)) {
			char *subs;

			snprintf(words, sizeof(words), "%s ''", cmd);
			subs = complete(words);
			assert_offers(subs, sub, cmd);
			free(subs);
			snprintf(words, sizeof(words), "%s %s", cmd, sub);
		} else {
			snprintf(words, sizeof(words), "%s", cmd);
		}
		/* every option bsi CMD --help shows */
		ck_assert_int_eq(tu_bsi(&r, "%s --help", words), 0);
		opts = long_options(r.out);
		tu_result_free(&r);
		{
			char w2[340], *copts;

			snprintf(w2, sizeof(w2), "%s --", words);
			copts = complete(w2);
			for (o = strtok_r(opts, "\n", &osave); o; o = strtok_r(NULL, "\n", &osave))
				assert_offers(copts, o, w2);
			free(copts);
		}
		free(opts);
	}
	free(offered);
	free(usages);
	/* a wrong word is not offered: the check above can fail */
	offered = complete("--json pla");
	ck_assert_str_eq(offered, "plan\n");
	free(offered);
}
END_TEST

/* On an enrolled device, the commands that take an ID complete the
 * improvement ids `bsi status --json` reports. */
START_TEST(test_install_completion_offers_improvement_ids)
{
	char args[BUF * 3], *offered;
	char image[BUF], tree[BUF], conf[BUF];

	snprintf(image, sizeof(image), "%s/device", dir);
	snprintf(tree, sizeof(tree), "%s/tree", dir);
	snprintf(conf, sizeof(conf), "%s/bsi.conf", dir);
	tu_sample_image("current", image);
	tu_sample_tree(tree);
	tu_write(conf, "service_manager = \"record\"\n");
	{
		tu_result r;

		ck_assert_msg(tu_bsi(&r, "--root '%s' --state '%s/state' --config '%s' apply --tree '%s'",
				     image, dir, conf, tree) == 0,
			      "apply --tree: %s", r.err);
		tu_result_free(&r);
	}
	/* with no feed enrolled, status knows what the device applied; the
	 * superseded webkit-26.0.1-a was never applied, so the state does not
	 * list it (its growth is bounded by what is applied) */
	snprintf(args, sizeof(args), "--state '%s/state' --root '%s' rollback web", dir, image);
	offered = complete(args);
	ck_assert_str_eq(offered, "webkit-26.0.2-a\n");
	free(offered);
	/* no state database: nothing offered, and none created */
	snprintf(args, sizeof(args), "--state '%s/nostate' show ''", dir);
	offered = complete(args);
	ck_assert_str_eq(offered, "\n");
	free(offered);
	snprintf(args, sizeof(args), "%s/nostate", dir);
	ck_assert_int_ne(access(args, F_OK), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("install");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, build_once, unbuild);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_install_puts_every_file_in_place);
	tcase_add_test(tc, test_install_binary_runs_signed_feed);
	tcase_add_test(tc, test_install_uninstall_leaves_nothing);
	tcase_add_test(tc, test_install_keeps_changed_config);
	tcase_add_test(tc, test_install_default_config_lists_every_key_and_loads);
	tcase_add_test(tc, test_install_units_have_schedule_and_hardening);
	tcase_add_test(tc, test_install_man_pages_match_help);
	tcase_add_test(tc, test_install_man_config_keys_match_source);
	tcase_add_test(tc, test_install_man_pages_render_cleanly);
	tcase_add_test(tc, test_install_completion_matches_help);
	tcase_add_test(tc, test_install_completion_offers_improvement_ids);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
