/* Text from outside made safe to print (host/text.c), and the places
 * that print it: error messages and log lines. */
#include "error.h"
#include "log.h"
#include "procs.h"
#include "testutil.h"
#include "text.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *clean(const char *s)
{
	static char buf[256];

	bsi_text_clean(buf, sizeof(buf), s, strlen(s));
	return buf;
}

START_TEST(test_text_controls_become_question_marks)
{
	/* an escape sequence that would clear the screen, a carriage return
	 * that would overwrite the line, a bell, DEL */
	ck_assert_str_eq(clean("a\033[2Jb\rc\ad\x7f"), "a?[2Jb?c?d?");
	/* C1: U+009B is CSI on terminals that honour 8-bit controls */
	ck_assert_str_eq(clean("x\xc2\x9b" "31my"), "x?31my");
	/* bidi overrides and isolates reorder what the reader sees */
	ck_assert_str_eq(clean("evil\xe2\x80\xae" "fdp.exe"), "evil?fdp.exe"); /* NOLINT(misc-misleading-bidirectional): the test input */
	ck_assert_str_eq(clean("\xe2\x81\xa6x\xe2\x81\xa9"), "?x?");
	ck_assert_str_eq(clean("\xe2\x80\x8f\xd8\x9c"), "??");
	/* line and paragraph separators split a log line for some readers */
	ck_assert_str_eq(clean("a\xe2\x80\xa8" "b"), "a?b");
	ck_assert(bsi_text_has_control("\xe2\x80\xae", 3)); /* NOLINT(misc-misleading-bidirectional): the test input */
	ck_assert(!bsi_text_has_control("caf\xc3\xa9 \xf0\x9f\x94\x92", 9));
}
END_TEST

START_TEST(test_text_keeps_printable_utf8_and_tab)
{
	ck_assert_str_eq(clean("caf\xc3\xa9\tna\xc3\xafve \xf0\x9f\x94\x92"),
			 "caf\xc3\xa9\tna\xc3\xafve \xf0\x9f\x94\x92");
	/* not UTF-8: an overlong NUL, a lone continuation byte, a surrogate */
	ck_assert_str_eq(clean("a\xc0\x80" "b\x80" "c\xed\xa0\x80"), "a??b?c???");
}
END_TEST

START_TEST(test_text_never_cuts_a_character)
{
	char buf[6];

	/* "abc" and a 4-byte character do not fit in 5 bytes and a NUL: dropped whole */
	bsi_text_clean(buf, sizeof(buf), "abc\xf0\x9f\x94\x92", 7);
	ck_assert_str_eq(buf, "abc");
	/* in place */
	char s[] = "x\033y";
	bsi_text_clean(s, sizeof(s), s, strlen(s));
	ck_assert_str_eq(s, "x?y");
}
END_TEST

START_TEST(test_text_error_messages_are_clean)
{
	/* a server's ERR text or a file name in a message */
	bsi_error_set(BSI_EFAIL, "remote said: %s", "denied\033]0;owned\a\nfake line");
	ck_assert_str_eq(bsi_error_message(), "remote said: denied?]0;owned??fake line");
	bsi_error_wrap("sync %s", "feed\xe2\x80\xae"); /* NOLINT(misc-misleading-bidirectional): the test input */
	ck_assert_str_eq(bsi_error_message(), "sync feed?: remote said: denied?]0;owned??fake line");
	bsi_error_clear();
}
END_TEST

START_TEST(test_text_log_lines_are_clean)
{
	char path[4096];
	tu_result r;
	FILE *f;
	int saved = dup(2);

	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	dup2(fileno(f), 2);
	setenv("BSI_LOG", "stderr", 1);
	bsi_log_open(0);
	bsi_log_info("proc %s", "\033[31mred\xc2\x9b\nforged: applied x");
	bsi_log_close();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fclose(f);
	tu_must("test \"$(wc -l < '%s')\" = 1", path);
	tu_sh(&r, "cat '%s'", path);
	ck_assert_str_eq(r.out, "bsi: proc ?[31mred??forged: applied x\n");
	tu_result_free(&r);
	tu_cleanup();
}
END_TEST

/* Any process names itself (prctl PR_SET_NAME): the name bsi reports
 * for a process running old code is shown clean. */
START_TEST(test_text_process_names_are_clean)
{
	char proc[4200], old[4200];
	bsi_procs_file files[1];
	bsi_procs *procs = NULL;
	struct stat sb;
	const char *dir = tu_tmpdir();

	snprintf(proc, sizeof(proc), "%s/proc", dir);
	snprintf(old, sizeof(old), "%s/old-inode", dir);
	tu_write(old, "x");
	ck_assert_int_eq(stat(old, &sb), 0);
	tu_must("mkdir -p '%s/10' && cd '%s/10' && printf 'ev\\033[8mil\\n' > comm && "
		"printf '0::/system.slice/x.service\\n' > cgroup && "
		"printf '7f00-7f10 r-xp 00000000 %x:%x %lu /r/usr/lib/x.so\\n' > maps",
		proc, proc, major(sb.st_dev), minor(sb.st_dev), (unsigned long)sb.st_ino);
	files[0] = (bsi_procs_file){.path = "/r/usr/lib/x.so", .dev = sb.st_dev, .ino = sb.st_ino,
				    .label = "x-1", .rel = "usr/lib/x.so"};
	ck_assert_int_eq(bsi_procs_find(&procs, proc, files, 1), 0);
	ck_assert_uint_eq(procs->count, 1);
	ck_assert_str_eq(procs->items[0].command, "ev?[8mil");
	bsi_procs_free(procs);
	tu_cleanup();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_text_controls_become_question_marks);
	tcase_add_test(tc, test_text_keeps_printable_utf8_and_tab);
	tcase_add_test(tc, test_text_never_cuts_a_character);
	tcase_add_test(tc, test_text_error_messages_are_clean);
	tcase_add_test(tc, test_text_log_lines_are_clean);
	tcase_add_test(tc, test_text_process_names_are_clean);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
