/*
 * statedir.h - the state directory is bsi's own.
 *
 * What a device trusts lives in its state directory: the trusted head and
 * the cache of authenticated commits (state.db), the feed's objects
 * (feed.git), the originals a rollback puts back (backups/).  Whoever can
 * replace an entry there can have bsi, as root, install what no
 * authorized key signed: a state.db whose trusted head is an unsigned
 * commit in feed.git is enough.  So before bsi reads anything from it:
 *
 *  - the state directory must belong to the user running bsi and be
 *    writable by no one else (group or others);
 *  - every directory above it must belong to root or that user and be
 *    writable by no one else, or carry the sticky bit (as /tmp does), so
 *    no one else can rename the state directory away and put another in
 *    its place;
 *  - every entry in it must belong to that user, be writable by no one
 *    else, and not be a symbolic link (bsi never follows a link in its
 *    state, so a link planted while someone else could write there is
 *    refused, not followed).
 *
 * A directory that fails is a configuration error (BSI_EUSAGE, exit 2)
 * naming the path, the owner and mode found, and what to do; nothing in
 * it was read or changed.  The checks run on the path with every symbolic
 * link resolved, and that resolved path is the one bsi uses from then on.
 */
#ifndef BSI_STATEDIR_H
#define BSI_STATEDIR_H

/*
 * Create `dir` when absent (its missing parents mode 0755, itself 0700),
 * check it as above, and give its resolved path in *out (the caller frees
 * it).  Tightens the process umask to at least 022 first, so nothing bsi,
 * SQLite or libgit2 creates in the state afterwards is writable by group
 * or others.  A path that cannot be created or resolved is BSI_EFAIL.
 */
int bsi_statedir_prepare(char **out, const char *dir);

#endif
