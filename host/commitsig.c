/*
 * commitsig.c - signature and signed payload of a raw commit.
 *
 * One pass over the header lines.  The parse is deliberately stricter than
 * git's: the tree and parent headers must come first (as libgit2, which
 * walks the history, also requires), no header may repeat them later, and
 * no gpgsig-like header other than a single `gpgsig` is allowed, so git,
 * libgit2 and this code cannot read one commit three ways.  And the gpgsig
 * header must be the last one, where git puts it: git finds it anywhere,
 * so a signature moved up among the headers would verify for git under a
 * second commit id.
 */
#include "commitsig.h"

#include "error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool starts(const char *line, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && memcmp(line, prefix, k) == 0;
}

/* "<prefix><40 lowercase hex>" and nothing else on the line. */
static bool parse_oid_line(git_oid *out, const char *line, size_t n, const char *prefix)
{
	size_t k = strlen(prefix), i;
	char hex[GIT_OID_HEXSZ + 1];

	if (n != k + GIT_OID_HEXSZ || memcmp(line, prefix, k) != 0)
		return false;
	for (i = 0; i < GIT_OID_HEXSZ; i++) {
		char c = line[k + i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		hex[i] = c;
	}
	hex[GIT_OID_HEXSZ] = '\0';
	return git_oid_fromstr(out, hex) == 0;
}

void bsi_commitsig_free(bsi_commitsig *cs)
{
	if (cs == NULL)
		return;
	free(cs->signature);
	free(cs->payload);
	free(cs->parents);
	free(cs);
}

/*
 * Walks the header lines (up to the first empty line).  Records where the
 * gpgsig header and its continuation lines start and end; the payload is
 * everything else, the signature is those lines without "gpgsig " and the
 * leading continuation spaces.
 */
int bsi_commitsig_parse(bsi_commitsig **out, const char *raw, size_t len)
{
	const char *p = raw, *end = raw + len, *sig_start = NULL, *sig_end = NULL;
	bool in_sig = false, seen_tree = false, parents_done = false, other_sig = false;
	bsi_commitsig *cs = NULL;
	size_t cap = 0, sn = 0;
	int rc = 0;

	*out = NULL;
	if ((cs = calloc(1, sizeof(*cs))) == NULL || (cs->signature = malloc(len + 1)) == NULL) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		size_t n = (size_t)((nl ? nl : end) - p);

		if (n == 0)
			break; /* the blank line: headers end, the message begins */
		if (p[0] == ' ') {
			/* Only a header after tree and parents may continue:
			 * git stops reading parents at the first other line,
			 * and a commit must start with "tree ". */
			if (!parents_done) {
				rc = bsi_error_set(BSI_ETRUST,
				                   "malformed commit: continuation line before "
				                   "or within the tree and parent headers");
				goto done;
			}
			if (in_sig) {
				memcpy(cs->signature + sn, p + 1, (size_t)(next - p - 1));
				sn += (size_t)(next - p - 1);
				sig_end = next;
			}
			p = next;
			continue;
		}
		in_sig = false;
		if (sig_start != NULL && !starts(p, n, "gpgsig ")) {
			/* git writes the signature as the last header; moved
			 * among the others, it would sign the same payload
			 * under another commit id (a twin) */
			rc = bsi_error_set(BSI_ETRUST,
			                   "commit's gpgsig header is not its last header, where "
			                   "git writes it; refused, so one signed commit has one id");
			goto done;
		}
		if (!seen_tree) {
			if (!parse_oid_line(&cs->tree, p, n, "tree ")) {
				rc = bsi_error_set(
				    BSI_ETRUST,
				    "malformed commit: does not start with a tree header");
				goto done;
			}
			seen_tree = true;
		} else if (!parents_done && starts(p, n, "parent ")) {
			if (cs->parent_count == cap) {
				git_oid *np;

				cap = cap ? cap * 2 : 4;
				if ((np = realloc(cs->parents, cap * sizeof(*np))) == NULL) {
					rc = bsi_error_set(BSI_EFAIL, "out of memory");
					goto done;
				}
				cs->parents = np;
			}
			if (!parse_oid_line(&cs->parents[cs->parent_count], p, n, "parent ")) {
				rc = bsi_error_set(BSI_ETRUST,
				                   "malformed commit: bad parent header");
				goto done;
			}
			cs->parent_count++;
		} else if (starts(p, n, "tree ") || starts(p, n, "parent ")) {
			rc = bsi_error_set(BSI_ETRUST,
			                   "malformed commit: misplaced tree or parent header");
			goto done;
		} else if (starts(p, n, "gpgsig ")) {
			if (sig_start != NULL) {
				rc = bsi_error_set(
				    BSI_ETRUST, "commit has more than one gpgsig header; refused");
				goto done;
			}
			sig_start = p;
			sig_end = next;
			memcpy(cs->signature, p + 7, (size_t)(next - p - 7));
			sn = (size_t)(next - p - 7);
			in_sig = true;
		} else if (starts(p, n, "gpgsig")) {
			other_sig = true;
		}
		if (seen_tree && !starts(p, n, "tree ") && !starts(p, n, "parent "))
			parents_done = true;
		p = next;
	}
	if (!seen_tree) {
		rc = bsi_error_set(BSI_ETRUST, "malformed commit: no tree header");
		goto done;
	}
	if (sig_start == NULL) {
		rc = bsi_error_set(
		    BSI_ETRUST, other_sig ? "not signed: it has only a gpgsig-sha256 (or other "
		                            "gpgsig-*) header, which this SHA-1 feed does not use"
		                          : "not signed (no gpgsig header)");
		goto done;
	}
	if (other_sig) {
		rc = bsi_error_set(BSI_ETRUST, "commit has a gpgsig-sha256 (or other gpgsig-*) "
		                               "header next to gpgsig; refused");
		goto done;
	}
	cs->signature[sn] = '\0';
	cs->signature_len = sn;
	cs->payload_len = len - (size_t)(sig_end - sig_start);
	if ((cs->payload = malloc(cs->payload_len + 1)) == NULL) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	memcpy(cs->payload, raw, (size_t)(sig_start - raw));
	memcpy(cs->payload + (sig_start - raw), sig_end, (size_t)(end - sig_end));
	cs->payload[cs->payload_len] = '\0';
	*out = cs;
	cs = NULL;
done:
	bsi_commitsig_free(cs);
	return rc;
}

int bsi_commitsig_check_size(git_odb *odb, const git_oid *id)
{
	char hex[GIT_OID_HEXSZ + 1];
	git_object_t type;
	size_t size;
	int err;

	git_oid_tostr(hex, sizeof(hex), id);
	if ((err = git_odb_read_header(&size, &type, odb, id)) < 0) {
		const git_error *e = git_error_last();

		return bsi_error_set(err == GIT_ENOTFOUND ? BSI_ETRUST : BSI_EFAIL,
		                     "commit %s cannot be read: %s", hex,
		                     e ? e->message : "unknown error");
	}
	if (type != GIT_OBJECT_COMMIT)
		return bsi_error_set(BSI_ETRUST, "object %s is not a commit", hex);
	if (size > BSI_COMMIT_MAX_BYTES)
		return bsi_error_set(BSI_ETRUST, "commit %s is %zu bytes; commits over %d KiB are "
		                                 "refused unread",
		                     hex, size, BSI_COMMIT_MAX_BYTES / 1024);
	return 0;
}

int bsi_commitsig_read(bsi_commitsig **out, git_odb *odb, const git_oid *id)
{
	git_odb_object *obj = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc = 0;

	*out = NULL;
	git_oid_tostr(hex, sizeof(hex), id);
	if ((rc = bsi_commitsig_check_size(odb, id)) < 0)
		return rc;
	if ((rc = git_odb_read(&obj, odb, id)) < 0) {
		const git_error *e = git_error_last();

		/* missing: the server left it out, a refusal; anything else
		 * (out of memory, a damaged mirror) is this device's failure */
		rc = bsi_error_set(rc == GIT_ENOTFOUND ? BSI_ETRUST : BSI_EFAIL,
		                   "commit %s cannot be read: %s", hex,
		                   e ? e->message : "unknown error");
		goto done;
	}
	if (git_odb_object_type(obj) != GIT_OBJECT_COMMIT) {
		rc = bsi_error_set(BSI_ETRUST, "object %s is not a commit", hex);
		goto done;
	}
	rc = bsi_commitsig_parse(out, git_odb_object_data(obj), git_odb_object_size(obj));
done:
	git_odb_object_free(obj);
	return rc;
}
