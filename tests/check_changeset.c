/*
 * check_changeset.c - the change set as JSON (host/changeset.c): what the
 * recipe sandbox hands back and what `--json` prints, whatever bytes the
 * file names, reasons and notes hold.
 */
#include "changeset.h"
#include "error.h"
#include "testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* to_json -> dumps -> loads -> from_json */
static bsi_changeset *round_trip(const bsi_changeset *cs)
{
	json_t *doc = bsi_changeset_to_json(cs), *back;
	bsi_changeset *got = NULL;
	char *text;

	ck_assert_ptr_nonnull(doc);
	text = json_dumps(doc, JSON_COMPACT);
	ck_assert_ptr_nonnull(text);
	back = json_loads(text, 0, NULL);
	ck_assert_msg(back != NULL, "not JSON: %s", text);
	ck_assert_int_eq(bsi_changeset_from_json(&got, back), 0);
	json_decref(back);
	json_decref(doc);
	free(text);
	return got;
}

START_TEST(test_changeset_json_keeps_utf8_quotes_and_controls)
{
	static const char odd[] = "caf\xc3\xa9 \xf0\x9f\x94\x92 \"q\" \\ \x01\x1f";
	bsi_changeset *cs, *got;
	bsi_improvement *imp;

	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_changeset_add(cs, &imp), 0);
	imp->id = strdup("demo-1");
	imp->summary = strdup(odd);
	imp->fixes = calloc(1, sizeof(char *));
	imp->fixes[0] = strdup(odd);
	imp->nfixes = 1;
	ck_assert_int_eq(bsi_improvement_add_replace(imp, odd, "sha256:00", "sha256:11", odd, 7), 0);
	got = round_trip(cs);
	ck_assert_uint_eq(got->count, 1);
	ck_assert_str_eq(got->items[0].summary, odd);
	ck_assert_uint_eq(got->items[0].nfixes, 1);
	ck_assert_str_eq(got->items[0].fixes[0], odd);
	ck_assert_str_eq(got->items[0].actions[0].path, odd);
	ck_assert_int_eq(got->items[0].actions[0].line, 7);
	bsi_changeset_free(got);
	bsi_changeset_free(cs);
}
END_TEST

/* Found by fuzz_changeset_json (corpus regress-fix-not-utf8): a fix or a
 * supersedes entry that is not UTF-8 vanished from the JSON without a word,
 * where every other string turns its bad bytes into U+FFFD. */
START_TEST(test_changeset_json_keeps_lists_that_are_not_utf8)
{
	bsi_changeset *cs, *got;
	bsi_improvement *imp;

	ck_assert_int_eq(bsi_changeset_new(&cs), 0);
	ck_assert_int_eq(bsi_changeset_add(cs, &imp), 0);
	imp->id = strdup("demo-1");
	imp->fixes = calloc(2, sizeof(char *));
	imp->fixes[0] = strdup("CVE-\xff-1");
	imp->fixes[1] = strdup("CVE-2026-0002");
	imp->nfixes = 2;
	imp->supersedes = calloc(1, sizeof(char *));
	imp->supersedes[0] = strdup("old-\xc0\x80");
	imp->nsupersedes = 1;
	got = round_trip(cs);
	ck_assert_uint_eq(got->items[0].nfixes, 2);
	ck_assert_str_eq(got->items[0].fixes[0], "CVE-\xef\xbf\xbd-1");
	ck_assert_str_eq(got->items[0].fixes[1], "CVE-2026-0002");
	ck_assert_uint_eq(got->items[0].nsupersedes, 1);
	ck_assert_str_eq(got->items[0].supersedes[0], "old-\xef\xbf\xbd\xef\xbf\xbd");
	bsi_changeset_free(got);
	bsi_changeset_free(cs);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("changeset");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_changeset_json_keeps_utf8_quotes_and_controls);
	tcase_add_test(tc, test_changeset_json_keeps_lists_that_are_not_utf8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run_suite(suite());
}
