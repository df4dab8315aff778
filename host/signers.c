/*
 * signers.c - parse `.bsi/signers` (OpenSSH allowed_signers subset).
 *
 * The grammar follows ssh-keygen(1) ALLOWED SIGNERS: after the principals
 * comes either the key type or an options field; a key type is recognised
 * by its prefix (ssh-, ecdsa-, sk-), so an options field never needs to be
 * guessed from its contents.
 */
#include "signers.h"

#include "error.h"
#include "sshsig.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
	uint8_t key[32];
	bool git_ok; /* authorized for namespace "git" */
} signer;

struct bsi_signers {
	signer *keys;
	size_t count, cap;
	size_t git_count;
};

typedef struct {
	const char *p;
	size_t n;
} tok;

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static void skip_ws(tok *line)
{
	while (line->n && is_ws(*line->p)) {
		line->p++;
		line->n--;
	}
}

/* Next whitespace-delimited token, where whitespace inside double quotes
 * does not count.  Returns false on an unterminated quote. */
static bool next_token(tok *line, tok *out)
{
	bool quoted = false;
	size_t i;

	skip_ws(line);
	for (i = 0; i < line->n; i++) {
		if (line->p[i] == '"')
			quoted = !quoted;
		else if (!quoted && is_ws(line->p[i]))
			break;
	}
	out->p = line->p;
	out->n = i;
	line->p += i;
	line->n -= i;
	return !quoted;
}

static bool tok_eq(tok t, const char *s)
{
	return t.n == strlen(s) && memcmp(t.p, s, t.n) == 0;
}

static bool tok_starts(tok t, const char *s)
{
	return t.n >= strlen(s) && memcmp(t.p, s, strlen(s)) == 0;
}

static bool is_keytype(tok t)
{
	return tok_starts(t, "ssh-") || tok_starts(t, "ecdsa-") || tok_starts(t, "sk-");
}

/* Exactly an OpenSSH key type name: a principal like "ssh-team@x" is not. */
static bool is_keytype_name(tok t)
{
	static const char *const names[] = {"ssh-ed25519",
	                                    "ssh-rsa",
	                                    "ssh-dss",
	                                    "ecdsa-sha2-nistp256",
	                                    "ecdsa-sha2-nistp384",
	                                    "ecdsa-sha2-nistp521",
	                                    "sk-ecdsa-sha2-nistp256@openssh.com",
	                                    "sk-ssh-ed25519@openssh.com"};
	static const char cert[] = "-cert-v01@openssh.com";
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (tok_eq(t, names[i]))
			return true;
	return t.n > strlen(cert) && memcmp(t.p + t.n - strlen(cert), cert, strlen(cert)) == 0;
}

/* Shell-style glob with * and ?, linear backtracking on the last star. */
static bool glob_match(const char *s, size_t sn, const char *pat, size_t pn)
{
	size_t si = 0, pi = 0, star = (size_t)-1, mark = 0;

	while (si < sn) {
		if (pi < pn && (pat[pi] == '?' || pat[pi] == s[si])) {
			si++;
			pi++;
		} else if (pi < pn && pat[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (star != (size_t)-1) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < pn && pat[pi] == '*')
		pi++;
	return pi == pn;
}

/* OpenSSH match_pattern_list(): a negated match wins, otherwise any
 * positive match. */
static bool pattern_list_allows(const char *ns, tok list)
{
	bool positive = false;
	size_t i = 0;

	while (i <= list.n) {
		size_t j = i;
		bool neg;

		while (j < list.n && list.p[j] != ',')
			j++;
		neg = j > i && list.p[i] == '!';
		if (glob_match(ns, strlen(ns), list.p + i + neg, j - i - neg)) {
			if (neg)
				return false;
			positive = true;
		}
		i = j + 1;
	}
	return positive;
}

/* Parse the options field of line `lineno`; sets *git_ok from namespaces=. */
static int parse_options(tok opts, bool *git_ok, const char *origin, size_t lineno)
{
	size_t i = 0;

	*git_ok = true;
	while (i < opts.n) {
		size_t j = i;
		bool quoted = false;
		tok o, name, value = {NULL, 0};
		const char *eq;

		while (j < opts.n && (quoted || opts.p[j] != ',')) {
			if (opts.p[j] == '"')
				quoted = !quoted;
			j++;
		}
		o.p = opts.p + i;
		o.n = j - i;
		eq = memchr(o.p, '=', o.n);
		name.p = o.p;
		name.n = eq ? (size_t)(eq - o.p) : o.n;
		if (eq) {
			value.p = eq + 1;
			value.n = o.n - name.n - 1;
		}
		if (name.n == 14 && strncasecmp(name.p, "cert-authority", 14) == 0)
			return bsi_error_set(BSI_ETRUST,
			                     "%s:%zu: cert-authority is not supported (list each "
			                     "signing key itself)",
			                     origin, lineno);
		if ((name.n == 11 && strncasecmp(name.p, "valid-after", 11) == 0) ||
		    (name.n == 12 && strncasecmp(name.p, "valid-before", 12) == 0))
			return bsi_error_set(
			    BSI_ETRUST,
			    "%s:%zu: %.*s is not supported (a device cannot trust "
			    "a commit's own timestamp; remove the key to revoke it)",
			    origin, lineno, (int)name.n, name.p);
		if (name.n == 10 && strncasecmp(name.p, "namespaces", 10) == 0) {
			if (value.n < 2 || value.p[0] != '"' || value.p[value.n - 1] != '"')
				return bsi_error_set(BSI_ETRUST,
				                     "%s:%zu: namespaces= needs a quoted list",
				                     origin, lineno);
			value.p++;
			value.n -= 2;
			if (!pattern_list_allows("git", value))
				*git_ok = false;
		} else {
			return bsi_error_set(BSI_ETRUST, "%s:%zu: unknown option '%.*s'", origin,
			                     lineno, (int)(name.n > 40 ? 40 : name.n), name.p);
		}
		i = j + 1;
	}
	return 0;
}

/* Decode the base64 key of an ssh-ed25519 key line into out. */
static int decode_key(uint8_t out[32], tok b64)
{
	uint8_t blob[128];
	size_t n = 0;
	const char *b64_end = NULL;

	if (b64.n == 0)
		return bsi_error_set(BSI_ETRUST, "missing base64 key");
	if (sodium_base642bin(blob, sizeof(blob), b64.p, b64.n, NULL, &n, &b64_end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    b64_end != b64.p + b64.n)
		return bsi_error_set(BSI_ETRUST, "key is not valid base64");
	return bsi_sshsig_parse_keyblob(out, blob, n);
}

static int add_key(bsi_signers *s, const uint8_t key[32], bool git_ok)
{
	if (s->count == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		signer *k = realloc(s->keys, cap * sizeof(*k));

		if (k == NULL)
			return bsi_error_set(BSI_EFAIL, "out of memory");
		s->keys = k;
		s->cap = cap;
	}
	memcpy(s->keys[s->count].key, key, 32);
	s->keys[s->count].git_ok = git_ok;
	s->count++;
	if (git_ok)
		s->git_count++;
	return 0;
}

/* One non-comment line: principals [options] keytype key [comment]. */
static int parse_line(bsi_signers *s, tok line, const char *origin, size_t lineno)
{
	tok principals, t, opts = {NULL, 0};
	bool git_ok = true;
	uint8_t key[32];
	int rc;

	if (!next_token(&line, &principals))
		return bsi_error_set(BSI_ETRUST, "%s:%zu: unterminated quote in principals", origin,
		                     lineno);
	if (is_keytype_name(principals))
		return bsi_error_set(BSI_ETRUST,
		                     "%s:%zu: line starts with a key type; expected 'principals "
		                     "[options] ssh-ed25519 AAAA...'",
		                     origin, lineno);
	if (!next_token(&line, &t))
		return bsi_error_set(BSI_ETRUST, "%s:%zu: unterminated quote in options", origin,
		                     lineno);
	if (t.n != 0 && !is_keytype(t)) {
		opts = t;
		if (!next_token(&line, &t))
			return bsi_error_set(BSI_ETRUST, "%s:%zu: unterminated quote", origin,
			                     lineno);
	}
	if (t.n == 0)
		return bsi_error_set(BSI_ETRUST,
		                     "%s:%zu: no key (expected 'principals [options] "
		                     "ssh-ed25519 AAAA...')",
		                     origin, lineno);
	if (!tok_eq(t, "ssh-ed25519"))
		return bsi_error_set(
		    BSI_ETRUST, "%s:%zu: key type '%.*s' is not supported (only ssh-ed25519 is)",
		    origin, lineno, (int)(t.n > 40 ? 40 : t.n), t.p);
	if (opts.n && (rc = parse_options(opts, &git_ok, origin, lineno)) < 0)
		return rc;
	next_token(&line, &t);
	if (decode_key(key, t) < 0)
		return bsi_error_wrap("%s:%zu", origin, lineno);
	return add_key(s, key, git_ok);
}

int bsi_signers_parse(bsi_signers **out, const char *text, size_t len, const char *origin)
{
	bsi_signers *s = NULL;
	const char *p = text, *end = text + len;
	size_t lineno = 0;
	int rc = 0;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if (memchr(text, '\0', len) != NULL) {
		rc = bsi_error_set(BSI_ETRUST, "%s: contains a NUL byte", origin);
		goto done;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		tok line = {p, (size_t)((nl ? nl : end) - p)};

		lineno++;
		p = nl ? nl + 1 : end;
		skip_ws(&line);
		if (line.n == 0 || line.p[0] == '#')
			continue;
		if ((rc = parse_line(s, line, origin, lineno)) < 0)
			goto done;
	}
	if (s->count == 0) {
		rc = bsi_error_set(BSI_ETRUST, "%s: lists no keys, so no one could sign after it",
		                   origin);
		goto done;
	}
	if (s->git_count == 0) {
		rc = bsi_error_set(BSI_ETRUST,
		                   "%s: no key is authorized for namespace \"git\", so no one "
		                   "could sign after it",
		                   origin);
		goto done;
	}
	*out = s;
	s = NULL;
done:
	bsi_signers_free(s);
	return rc;
}

bool bsi_signers_allows(const bsi_signers *s, const uint8_t key[32])
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < s->count; i++)
		if (s->keys[i].git_ok && memcmp(s->keys[i].key, key, 32) == 0)
			return true;
	return false;
}

size_t bsi_signers_count(const bsi_signers *s)
{
	return s ? s->git_count : 0;
}

void bsi_signers_free(bsi_signers *s)
{
	if (s == NULL)
		return;
	free(s->keys);
	free(s);
}

int bsi_signers_parse_key(uint8_t out[32], const char *text)
{
	tok line = {text, strlen(text)}, type, b64;
	uint8_t key[32];

	next_token(&line, &type);
	if (type.n == 0)
		return bsi_error_set(BSI_EUSAGE, "empty key (expected 'ssh-ed25519 AAAA...')");
	if (!tok_eq(type, "ssh-ed25519"))
		return bsi_error_set(BSI_EUSAGE,
		                     "key type '%.*s' is not supported (only ssh-ed25519 is)",
		                     (int)(type.n > 40 ? 40 : type.n), type.p);
	next_token(&line, &b64);
	if (decode_key(key, b64) < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", bsi_error_message());
		return bsi_error_set(BSI_EUSAGE, "bad ssh-ed25519 key: %s", why);
	}
	memcpy(out, key, 32);
	return 0;
}
