/*
 * auth.c - the authentication rule over a libgit2 repository.
 *
 * Performance shape (10,000 commits from scratch): one revwalk, one
 * git_odb_read per verified commit (tree and parents come from the signed
 * bytes themselves, see commitsig.h), one tree lookup per verified commit to
 * find .bsi/signers, and one parse per distinct signers blob (cached by
 * blob id).  Commits and blobs are indexed in hash maps (oidmap.h) keyed with a random
 * SipHash key, so crafted ids cannot make lookups quadratic.
 */
#include "auth.h"

#include "commitsig.h"
#include "error.h"
#include "oidmap.h"
#include "signers.h"
#include "sshsig.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIGNERS_MAX_BYTES (1024 * 1024)

/* ---- the authentication context ---- */

typedef enum { NODE_PENDING, NODE_VERIFIED, NODE_CACHED } node_state;

/* A commit of the walk.  signers is borrowed from ctx.by_blob. */
typedef struct {
	git_oid id;
	node_state state;
	const bsi_signers *signers; /* its own tree's; NULL until loaded */
	bsi_commitsig *cs;          /* read ahead for the batch; owned */
	uint8_t key[32];            /* the signer, when sig_ok */
	bool sig_ok;                /* the batch verified cs's signature */
} node;

typedef struct {
	git_repository *repo;
	git_odb *odb;
	const bsi_auth_anchor *anchor;
	bsi_oidmap by_blob;  /* signers blob id -> bsi_signers * (owned) */
	bsi_oidmap by_dir;   /* .bsi tree id -> bsi_signers * (borrowed) */
	bsi_oidmap walk;     /* commit id -> node * (in nodes) */
	bsi_oidmap boundary; /* hidden authentic parent id -> bsi_signers * (borrowed) */
	node *nodes;
	size_t node_count;
	const git_oid *trusted;
} authctx;

static int ctx_init(authctx *c, git_repository *repo, const bsi_auth_anchor *anchor)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->repo = repo;
	c->anchor = anchor;
	if (sodium_init() < 0)
		return bsi_error_set(BSI_EFAIL, "libsodium failed to initialise");
	if (git_repository_odb(&c->odb, repo) < 0)
		return bsi_error_set(BSI_EFAIL, "cannot open the object database: %s",
		                     git_error_last() ? git_error_last()->message : "?");
	if ((rc = bsi_oidmap_init(&c->by_blob, 8)) < 0 || (rc = bsi_oidmap_init(&c->by_dir, 8)) < 0 ||
	    (rc = bsi_oidmap_init(&c->walk, 8)) < 0 || (rc = bsi_oidmap_init(&c->boundary, 8)) < 0)
		return rc;
	return 0;
}

static void ctx_free(authctx *c)
{
	size_t i;

	for (i = 0; c->by_blob.slots && i < c->by_blob.cap; i++)
		if (c->by_blob.slots[i].used)
			bsi_signers_free(c->by_blob.slots[i].value);
	free(c->by_blob.slots);
	free(c->by_dir.slots);
	free(c->walk.slots);
	free(c->boundary.slots);
	for (i = 0; i < c->node_count; i++)
		bsi_commitsig_free(c->nodes[i].cs);
	free(c->nodes);
	git_odb_free(c->odb);
}

static const char *git_msg(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown error";
}

/* The code for a failed read of an object the trust decision needs: a
 * missing object is the server's doing (refused); any other failure (out
 * of memory, zlib, a damaged mirror) is this device's (operational). */
static int read_failure(int git_err)
{
	return git_err == GIT_ENOTFOUND ? BSI_ETRUST : BSI_EFAIL;
}

/* "commit <hex>", with " (signed by <fingerprint>)" when key is known. */
static void describe(char out[160], const git_oid *id, const uint8_t *key)
{
	char hex[GIT_OID_HEXSZ + 1], fp[BSI_SSHSIG_FINGERPRINT_SIZE];

	git_oid_tostr(hex, sizeof(hex), id);
	if (key == NULL) {
		snprintf(out, 160, "commit %s", hex);
		return;
	}
	bsi_sshsig_fingerprint(fp, key);
	snprintf(out, 160, "commit %s (signed by %s)", hex, fp);
}

/*
 * The parsed .bsi/signers of tree tree_id, the tree of commit id (signed by
 * key, or NULL when not known here); borrowed, owned by the context.
 * Refuses a tree without the file, a file that is not a regular blob, and
 * a file bsi_signers_parse() refuses.  Results are cached by the id of the
 * .bsi directory, so a commit that does not touch it costs one tree read.
 */
static int signers_of_tree(const bsi_signers **out, authctx *c, const git_oid *tree_id,
                           const git_oid *id, const uint8_t *key)
{
	git_tree *tree = NULL, *dir = NULL;
	const git_tree_entry *e;
	git_blob *blob = NULL;
	bsi_signers *parsed = NULL;
	const bsi_signers *found;
	const git_oid *dir_id, *blob_id;
	char who[160], origin[200];
	int rc = 0;

	if ((rc = git_tree_lookup(&tree, c->repo, tree_id)) < 0) {
		describe(who, id, key);
		rc = bsi_error_set(read_failure(rc), "%s: cannot read its tree: %s", who, git_msg());
		goto done;
	}
	e = git_tree_entry_byname(tree, ".bsi");
	if (e == NULL || git_tree_entry_filemode(e) != GIT_FILEMODE_TREE)
		goto missing;
	dir_id = git_tree_entry_id(e);
	if ((*out = bsi_oidmap_get(&c->by_dir, dir_id)) != NULL)
		goto done;
	if ((rc = git_tree_lookup(&dir, c->repo, dir_id)) < 0) {
		describe(who, id, key);
		rc = bsi_error_set(read_failure(rc), "%s: cannot read .bsi: %s", who, git_msg());
		goto done;
	}
	if ((e = git_tree_entry_byname(dir, "signers")) == NULL)
		goto missing;
	if (git_tree_entry_filemode(e) != GIT_FILEMODE_BLOB &&
	    git_tree_entry_filemode(e) != GIT_FILEMODE_BLOB_EXECUTABLE) {
		describe(who, id, key);
		rc = bsi_error_set(BSI_ETRUST, "%s: .bsi/signers is not a regular file", who);
		goto done;
	}
	blob_id = git_tree_entry_id(e);
	if ((found = bsi_oidmap_get(&c->by_blob, blob_id)) == NULL) {
		describe(who, id, key);
		if ((rc = git_blob_lookup(&blob, c->repo, blob_id)) < 0) {
			rc = bsi_error_set(read_failure(rc), "%s: cannot read .bsi/signers: %s", who,
			                   git_msg());
			goto done;
		}
		if (git_blob_rawsize(blob) > SIGNERS_MAX_BYTES) {
			rc = bsi_error_set(BSI_ETRUST, "%s: .bsi/signers is larger than %d bytes",
			                   who, SIGNERS_MAX_BYTES);
			goto done;
		}
		snprintf(origin, sizeof(origin), "%s:.bsi/signers", who);
		if ((rc = bsi_signers_parse(&parsed, git_blob_rawcontent(blob),
		                            (size_t)git_blob_rawsize(blob), origin)) < 0)
			goto done;
		if ((rc = bsi_oidmap_put(&c->by_blob, blob_id, parsed)) < 0)
			goto done;
		found = parsed;
		parsed = NULL;
	}
	if ((rc = bsi_oidmap_put(&c->by_dir, dir_id, (void *)found)) < 0)
		goto done;
	*out = found;
	goto done;
missing:
	describe(who, id, key);
	rc = bsi_error_set(BSI_ETRUST,
	                   "%s: its tree has no .bsi/signers, so no one could sign after it", who);
done:
	bsi_signers_free(parsed);
	git_blob_free(blob);
	git_tree_free(dir);
	git_tree_free(tree);
	return rc;
}

/* Signers of a commit that is not being verified now (a parent): read its
 * tree id through libgit2. */
static int signers_of_commit(const bsi_signers **out, authctx *c, const git_oid *id)
{
	git_commit *commit = NULL;
	int rc;

	if ((rc = git_commit_lookup(&commit, c->repo, id)) < 0)
		return bsi_error_set(read_failure(rc), "commit %s cannot be read: %s",
		                     git_oid_tostr_s(id), git_msg());
	rc = signers_of_tree(out, c, git_commit_tree_id(commit), id, NULL);
	git_commit_free(commit);
	return rc;
}

/*
 * Read commit id and verify its SSHSIG.  On success *out_cs is the parsed
 * commit (caller frees) and key the signer.  Every refusal names the
 * commit.  This is also the path that produces the message for a commit
 * whose batch verification failed.
 */
static int read_and_verify(bsi_commitsig **out_cs, uint8_t key[32], authctx *c, const git_oid *id)
{
	bsi_commitsig *cs = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc;

	git_oid_tostr(hex, sizeof(hex), id);
	if ((rc = bsi_commitsig_read(&cs, c->odb, id)) < 0) {
		if (strstr(bsi_error_message(), hex) == NULL)
			bsi_error_wrap("commit %s", hex);
		goto done;
	}
	if ((rc = bsi_sshsig_verify(key, cs->signature, cs->signature_len, cs->payload,
	                            cs->payload_len, "git")) < 0) {
		bsi_error_wrap("commit %s", hex);
		goto done;
	}
	*out_cs = cs;
	cs = NULL;
done:
	bsi_commitsig_free(cs);
	return rc;
}

/*
 * The checks on a commit whose signature verified, other than its parents':
 * the introduction must be signed by the pinned key, and the commit's own
 * tree must keep a usable .bsi/signers (*out_signers, borrowed).
 */
static int check_signed(const bsi_signers **out_signers, authctx *c, const git_oid *id,
                        const bsi_commitsig *cs, const uint8_t key[32])
{
	if (git_oid_equal(id, &c->anchor->introduction) &&
	    sodium_memcmp(key, c->anchor->key, 32) != 0) {
		char hex[GIT_OID_HEXSZ + 1], fp[BSI_SSHSIG_FINGERPRINT_SIZE],
		    want[BSI_SSHSIG_FINGERPRINT_SIZE];

		bsi_sshsig_fingerprint(fp, key);
		bsi_sshsig_fingerprint(want, c->anchor->key);
		return bsi_error_set(BSI_ETRUST,
		                     "commit %s: the introduction is signed by %s, not by the "
		                     "pinned key %s",
		                     git_oid_tostr(hex, sizeof(hex), id), fp, want);
	}
	return signers_of_tree(out_signers, c, &cs->tree, id, key);
}

static int refuse_unauthorized(const git_oid *id, const uint8_t key[32], const git_oid *parent)
{
	char hex[GIT_OID_HEXSZ + 1], phex[GIT_OID_HEXSZ + 1], fp[BSI_SSHSIG_FINGERPRINT_SIZE];

	bsi_sshsig_fingerprint(fp, key);
	return bsi_error_set(
	    BSI_ETRUST, "commit %s: signed by %s which is not in .bsi/signers of parent %s",
	    git_oid_tostr(hex, sizeof(hex), id), fp, git_oid_tostr(phex, sizeof(phex), parent));
}

static int refuse_rootless(const git_oid *id, const uint8_t key[32], const git_oid *intro)
{
	char hex[GIT_OID_HEXSZ + 1], ihex[GIT_OID_HEXSZ + 1], fp[BSI_SSHSIG_FINGERPRINT_SIZE];

	bsi_sshsig_fingerprint(fp, key);
	return bsi_error_set(BSI_ETRUST,
	                     "commit %s: signed by %s, but has no parents and is not the "
	                     "introduction %s",
	                     git_oid_tostr(hex, sizeof(hex), id), fp,
	                     git_oid_tostr(ihex, sizeof(ihex), intro));
}

int bsi_auth_check_commit(uint8_t out[32], git_repository *repo, const bsi_auth_anchor *anchor,
                          const git_oid *id)
{
	authctx c;
	bsi_commitsig *cs = NULL;
	const bsi_signers *own = NULL, *ps = NULL;
	uint8_t key[32];
	size_t i;
	int rc;

	if ((rc = ctx_init(&c, repo, anchor)) < 0)
		goto done;
	if ((rc = read_and_verify(&cs, key, &c, id)) < 0 ||
	    (rc = check_signed(&own, &c, id, cs, key)) < 0)
		goto done;
	if (!git_oid_equal(id, &anchor->introduction)) {
		if (cs->parent_count == 0) {
			rc = refuse_rootless(id, key, &anchor->introduction);
			goto done;
		}
		for (i = 0; i < cs->parent_count; i++) {
			if ((rc = signers_of_commit(&ps, &c, &cs->parents[i])) < 0)
				goto done;
			if (!bsi_signers_allows(ps, key)) {
				rc = refuse_unauthorized(id, key, &cs->parents[i]);
				goto done;
			}
		}
	}
	memcpy(out, key, 32);
done:
	bsi_commitsig_free(cs);
	ctx_free(&c);
	return rc;
}

/*
 * The signers of parent p of a commit being verified in a range, or a
 * refusal when p is not authentic.  p is authentic when the walk verified
 * it (or the cache knew it), or, with a trusted head, when the walk hid it
 * (it is an ancestor of the trusted head) and it is the trusted head, the
 * introduction, or descends from the introduction: everything between the
 * introduction and the trusted head was authenticated when that head was
 * accepted.  (Only the last case needs a graph query.)
 */
static int parent_signers(const bsi_signers **out, authctx *c, const git_oid *child,
                          const uint8_t key[32], const git_oid *p)
{
	node *n = bsi_oidmap_get(&c->walk, p);
	const bsi_signers *s;
	char hex[GIT_OID_HEXSZ + 1], phex[GIT_OID_HEXSZ + 1];
	int rc, d;

	if (n != NULL) {
		if (n->state == NODE_PENDING)
			return bsi_error_set(BSI_EFAIL,
			                     "commit %s: parent %s not yet verified "
			                     "(walk order)",
			                     git_oid_tostr(hex, sizeof(hex), child),
			                     git_oid_tostr(phex, sizeof(phex), p));
		if (n->signers == NULL && (rc = signers_of_commit(&n->signers, c, p)) < 0)
			return rc;
		*out = n->signers;
		return 0;
	}
	if ((s = bsi_oidmap_get(&c->boundary, p)) != NULL) {
		*out = s;
		return 0;
	}
	d = 0;
	if (c->trusted != NULL) {
		d = git_oid_equal(p, c->trusted) || git_oid_equal(p, &c->anchor->introduction)
		        ? 1
		        : git_graph_descendant_of(c->repo, p, &c->anchor->introduction);
		if (d < 0)
			return bsi_error_set(BSI_EFAIL, "commit %s: %s", git_oid_tostr_s(p),
			                     git_msg());
	}
	if (d != 1) {
		char fp[BSI_SSHSIG_FINGERPRINT_SIZE];

		bsi_sshsig_fingerprint(fp, key);
		return bsi_error_set(BSI_ETRUST,
		                     "commit %s: signed by %s, but parent %s is neither "
		                     "authenticated nor the introduction",
		                     git_oid_tostr(hex, sizeof(hex), child), fp,
		                     git_oid_tostr(phex, sizeof(phex), p));
	}
	if ((rc = signers_of_commit(&s, c, p)) < 0)
		return rc;
	if ((rc = bsi_oidmap_put(&c->boundary, p, (void *)s)) < 0)
		return rc;
	*out = s;
	return 0;
}

/* Verify walk node n: signature (verified ahead by the batch when it
 * could be; otherwise, and to word any refusal, here), own signers, and
 * authorization by each parent (or the pinned key for the introduction). */
static int verify_node(authctx *c, node *n, uint8_t key[32])
{
	bsi_commitsig *cs = NULL;
	const bsi_signers *ps = NULL;
	size_t i;
	int rc;

	if (n->cs != NULL && n->sig_ok) {
		cs = n->cs;
		n->cs = NULL;
		memcpy(key, n->key, 32);
	} else if ((rc = read_and_verify(&cs, key, c, &n->id)) < 0) {
		goto done;
	}
	if ((rc = check_signed(&n->signers, c, &n->id, cs, key)) < 0)
		goto done;
	if (!git_oid_equal(&n->id, &c->anchor->introduction)) {
		if (cs->parent_count == 0) {
			rc = refuse_rootless(&n->id, key, &c->anchor->introduction);
			goto done;
		}
		for (i = 0; i < cs->parent_count; i++) {
			if ((rc = parent_signers(&ps, c, &n->id, key, &cs->parents[i])) < 0)
				goto done;
			if (!bsi_signers_allows(ps, key)) {
				rc = refuse_unauthorized(&n->id, key, &cs->parents[i]);
				goto done;
			}
		}
	}
	n->state = NODE_VERIFIED;
done:
	bsi_commitsig_free(cs);
	return rc;
}

/*
 * With a trusted head, head must equal or descend from it (libgit2's merge
 * base search stops at the trusted head, so this costs about the new
 * commits).  On first sync the introduction must be present; whether head
 * reaches it is decided from the walk (see bsi_auth_verify_range), because
 * a descendant query from scratch would cost a walk of the whole history.
 */
static int check_ancestry(authctx *c, const git_oid *trusted, const git_oid *head)
{
	char hex[GIT_OID_HEXSZ + 1], thex[GIT_OID_HEXSZ + 1], ihex[GIT_OID_HEXSZ + 1];
	git_object_t type;
	size_t size;
	int err;

	git_oid_tostr(hex, sizeof(hex), head);
	git_oid_tostr(ihex, sizeof(ihex), &c->anchor->introduction);
	if ((err = git_odb_read_header(&size, &type, c->odb, head)) < 0)
		return err == GIT_ENOTFOUND
		           ? bsi_error_set(BSI_ETRUST,
		                           "commit %s: the new head is not in the repository", hex)
		           : bsi_error_set(BSI_EFAIL, "commit %s cannot be read: %s", hex, git_msg());
	if (type != GIT_OBJECT_COMMIT)
		return bsi_error_set(BSI_ETRUST, "object %s: the new head is not a commit", hex);
	if (trusted == NULL) {
		if (!git_odb_exists(c->odb, &c->anchor->introduction))
			return bsi_error_set(BSI_ETRUST,
			                     "commit %s: the served history lacks the "
			                     "introduction %s",
			                     hex, ihex);
		return 0;
	}
	git_oid_tostr(thex, sizeof(thex), trusted);
	if (git_oid_equal(head, trusted))
		return 0;
	/* A mirror rebuilt from the served history alone lacks the trusted
	 * head exactly when the new head does not descend from it. */
	if ((err = git_odb_read_header(&size, &type, c->odb, trusted)) == GIT_ENOTFOUND)
		return bsi_error_set(BSI_ETRUST,
		                     "commit %s: does not descend from the trusted head %s "
		                     "(rewritten history: the served history lacks it)",
		                     hex, thex);
	if (err < 0)
		return bsi_error_set(BSI_EFAIL, "the trusted head %s cannot be read: %s", thex,
		                     git_msg());
	if ((err = git_graph_descendant_of(c->repo, head, trusted)) == 1)
		return 0;
	if (err == 0)
		err = git_graph_descendant_of(c->repo, trusted, head);
	if (err < 0)
		return bsi_error_set(BSI_EFAIL,
		                     "commit %s: cannot tell whether it descends from the trusted "
		                     "head %s: %s",
		                     hex, thex, git_msg());
	if (err == 1)
		return bsi_error_set(
		    BSI_ETRUST,
		    "commit %s: rollback refused: it is an ancestor of the trusted "
		    "head %s",
		    hex, thex);
	return bsi_error_set(BSI_ETRUST,
	                     "commit %s: does not descend from the trusted head %s (rewritten "
	                     "history)",
	                     hex, thex);
}

/* The commits to check, oldest first: reachable from head, not from
 * trusted (or, on first sync, from the introduction's parents). */
static int collect_walk(authctx *c, const git_oid *trusted, const git_oid *head)
{
	git_revwalk *walk = NULL;
	git_commit *intro = NULL;
	git_oid id;
	size_t cap = 0, i;
	unsigned int p;
	int rc = 0, err;

	if (git_revwalk_new(&walk, c->repo) < 0 ||
	    git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE) < 0 ||
	    git_revwalk_push(walk, head) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "cannot walk the history: %s", git_msg());
		goto done;
	}
	if (trusted != NULL) {
		if (git_revwalk_hide(walk, trusted) < 0) {
			rc = bsi_error_set(BSI_EFAIL, "cannot walk the history: %s", git_msg());
			goto done;
		}
	} else {
		if (git_commit_lookup(&intro, c->repo, &c->anchor->introduction) < 0) {
			rc = bsi_error_set(BSI_ETRUST, "the introduction %s is not a commit: %s",
			                   git_oid_tostr_s(&c->anchor->introduction), git_msg());
			goto done;
		}
		for (p = 0; p < git_commit_parentcount(intro); p++)
			if (git_revwalk_hide(walk, git_commit_parent_id(intro, p)) < 0) {
				rc = bsi_error_set(BSI_EFAIL,
				                   "cannot walk the history below the "
				                   "introduction: %s",
				                   git_msg());
				goto done;
			}
	}
	while ((err = git_revwalk_next(&id, walk)) == 0) {
		if (c->node_count == cap) {
			node *nn;

			cap = cap ? cap * 2 : 256;
			if ((nn = realloc(c->nodes, cap * sizeof(*nn))) == NULL) {
				rc = bsi_error_set(BSI_EFAIL, "out of memory");
				goto done;
			}
			c->nodes = nn;
		}
		c->nodes[c->node_count].id = id;
		c->nodes[c->node_count].state = NODE_PENDING;
		c->nodes[c->node_count].signers = NULL;
		c->nodes[c->node_count].cs = NULL;
		c->nodes[c->node_count].sig_ok = false;
		c->node_count++;
	}
	if (err != GIT_ITEROVER) {
		rc = bsi_error_set(BSI_EFAIL, "cannot walk the history: %s", git_msg());
		goto done;
	}
	/* Index only once nodes no longer moves. */
	for (i = 0; i < c->node_count; i++)
		if ((rc = bsi_oidmap_put(&c->walk, &c->nodes[i].id, &c->nodes[i])) < 0)
			goto done;
done:
	git_commit_free(intro);
	git_revwalk_free(walk);
	return rc;
}

/* ---- signatures verified ahead, in parallel, one batch at a time ----
 *
 * Ed25519 verification is most of the cost of a commit, and independent
 * of every other commit, so a batch of commits is read serially (libgit2)
 * and their signatures are then checked on all CPUs.  The verdicts are
 * still taken serially, oldest first, by verify_node(), which repeats the
 * work of a commit whose batch check failed in order to word the refusal;
 * so results and messages are exactly those of a serial run.
 */

#define BATCH 1024
#define READAHEAD_BYTES ((size_t)16 << 20)
#define MAX_THREADS 8

typedef struct {
	node *nodes;
	size_t count, stride, first;
} batch_job;

static void *verify_slice(void *arg)
{
	batch_job *job = arg;
	size_t i;

	for (i = job->first; i < job->count; i += job->stride) {
		node *n = &job->nodes[i];

		n->sig_ok = n->cs != NULL &&
		            bsi_sshsig_verify(n->key, n->cs->signature, n->cs->signature_len,
		                              n->cs->payload, n->cs->payload_len, "git") == 0;
	}
	return NULL;
}

static size_t cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (size_t)n;
}

/* Read ahead and verify the signatures of the next nodes (those not
 * cached): at most BATCH commits and READAHEAD_BYTES of them, at least one.
 * Stops reading at the first commit that cannot be read or parsed: the
 * serial pass will refuse it there.  Returns how many nodes it covered. */
static size_t prepare_batch(authctx *c, node *nodes, size_t count)
{
	pthread_t tid[MAX_THREADS];
	bool started[MAX_THREADS] = {false};
	batch_job jobs[MAX_THREADS];
	size_t i, t, threads, bytes = 0;

	if (count > BATCH)
		count = BATCH;
	for (i = 0; i < count && bytes < READAHEAD_BYTES; i++) {
		if (nodes[i].state != NODE_PENDING)
			continue;
		if (bsi_commitsig_read(&nodes[i].cs, c->odb, &nodes[i].id) < 0) {
			i++;
			break;
		}
		bytes += nodes[i].cs->payload_len + nodes[i].cs->signature_len;
	}
	count = i;
	threads = count < 64 ? 1 : cpu_count();
	for (t = 0; t < threads; t++) {
		jobs[t].nodes = nodes;
		jobs[t].count = count;
		jobs[t].stride = threads;
		jobs[t].first = t;
	}
	for (t = 1; t < threads; t++)
		started[t] = pthread_create(&tid[t], NULL, verify_slice, &jobs[t]) == 0;
	verify_slice(&jobs[0]);
	for (t = 1; t < threads; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else
			verify_slice(&jobs[t]);
	}
	return count;
}

int bsi_auth_verify_range(bsi_auth_list **out, git_repository *repo, const bsi_auth_anchor *anchor,
                          const git_oid *trusted, const git_oid *head, const bsi_auth_cache *cache)
{
	authctx c;
	bsi_auth_list *list = NULL;
	size_t i, next;
	int rc;

	*out = NULL;
	if ((rc = ctx_init(&c, repo, anchor)) < 0)
		goto done;
	c.trusted = trusted;
	if ((list = calloc(1, sizeof(*list))) == NULL) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	if ((rc = check_ancestry(&c, trusted, head)) < 0)
		goto done;
	if (trusted != NULL && git_oid_equal(head, trusted))
		goto success;
	if ((rc = collect_walk(&c, trusted, head)) < 0)
		goto done;
	/* The walk hides only the introduction's parents, so it contains the
	 * introduction exactly when head reaches it. */
	if (trusted == NULL && bsi_oidmap_get(&c.walk, &anchor->introduction) == NULL) {
		char hex[GIT_OID_HEXSZ + 1], ihex[GIT_OID_HEXSZ + 1];

		/* libgit2 1.5 ends a walk with GIT_ITEROVER, its error cleared,
		 * when an allocation fails inside it; so a refusal is confirmed
		 * with a graph query (this path is rare: the cost is fine). */
		if (git_oid_equal(head, &anchor->introduction) ||
		    git_graph_descendant_of(repo, head, &anchor->introduction) != 0) {
			rc = bsi_error_set(BSI_EFAIL, "cannot walk the history: it came back "
			                              "incomplete (out of memory?)");
			goto done;
		}
		rc = bsi_error_set(BSI_ETRUST,
		                   "commit %s: does not descend from the introduction %s",
		                   git_oid_tostr(hex, sizeof(hex), head),
		                   git_oid_tostr(ihex, sizeof(ihex), &anchor->introduction));
		goto done;
	}
	if (c.node_count && (list->items = malloc(c.node_count * sizeof(*list->items))) == NULL) {
		rc = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	for (i = 0; i < c.node_count; i++) {
		node *n = &c.nodes[i];

		if (cache != NULL && cache->known != NULL) {
			int k = cache->known(cache->ctx, &n->id);

			if (k < 0) {
				rc = k;
				goto done;
			}
			if (k == 1)
				n->state = NODE_CACHED;
		}
	}
	for (i = 0, next = 0; i < c.node_count; i++) {
		node *n = &c.nodes[i];
		bsi_auth_commit *item = &list->items[list->count];

		if (i == next)
			next = i + prepare_batch(&c, n, c.node_count - i);
		if (n->state == NODE_CACHED)
			continue;
		rc = verify_node(&c, n, item->key);
		bsi_commitsig_free(n->cs);
		n->cs = NULL;
		if (rc < 0)
			goto done;
		item->id = n->id;
		list->count++;
	}
success:
	*out = list;
	list = NULL;
	rc = 0;
done:
	bsi_auth_list_free(list);
	ctx_free(&c);
	return rc;
}

int bsi_auth_verify_path(bsi_auth_list **out, const char *path, const char *rev,
                         const bsi_auth_anchor *anchor)
{
	git_repository *repo = NULL;
	git_object *obj = NULL;
	int rc = 0;

	*out = NULL;
	if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
		rc = bsi_error_set(BSI_EFAIL, "%s: not a git repository: %s", path, git_msg());
		goto done;
	}
	if (git_revparse_single(&obj, repo, rev ? rev : "HEAD") < 0) {
		rc = bsi_error_set(BSI_EUSAGE, "%s: cannot resolve %s: %s", path,
		                   rev ? rev : "HEAD", git_msg());
		goto done;
	}
	rc = bsi_auth_verify_range(out, repo, anchor, NULL, git_object_id(obj), NULL);
done:
	git_object_free(obj);
	git_repository_free(repo);
	return rc;
}

void bsi_auth_list_free(bsi_auth_list *list)
{
	if (list == NULL)
		return;
	free(list->items);
	free(list);
}
