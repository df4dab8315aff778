/* SHA-256 of buffers and streamed files (host/digest.c). */
#include "digest.h"
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(test_digest_known_vector)
{
	char d[BSI_DIGEST_STRLEN + 1];

	ck_assert_int_eq(bsi_digest_buf("abc", 3, d), 0);
	ck_assert_str_eq(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert(bsi_digest_valid(d));
}
END_TEST

START_TEST(test_digest_file_matches_sha256sum)
{
	char path[4096], d[BSI_DIGEST_STRLEN + 1], want[BSI_DIGEST_STRLEN + 1];
	tu_result r;
	int fd;

	/* larger than the 1 MiB block, not a multiple of it */
	snprintf(path, sizeof(path), "%s/f", tu_tmpdir());
	tu_must("head -c 3500001 /dev/urandom > '%s'", path);
	tu_sh(&r, "sha256sum '%s' | cut -c1-64", path);
	snprintf(want, sizeof(want), "sha256:%.64s", r.out);
	tu_result_free(&r);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bsi_digest_fd(fd, d), 0);
	close(fd);
	ck_assert_str_eq(d, want);
	tu_cleanup();
}
END_TEST

START_TEST(test_digest_validates_format)
{
	ck_assert(!bsi_digest_valid(NULL));
	ck_assert(!bsi_digest_valid("sha256:abc"));
	ck_assert(!bsi_digest_valid("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
	ck_assert(!bsi_digest_valid("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	ck_assert(!bsi_digest_valid("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adx"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("digest");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_digest_known_vector);
	tcase_add_test(tc, test_digest_file_matches_sha256sum);
	tcase_add_test(tc, test_digest_validates_format);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
