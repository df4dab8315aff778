/*
 * lock.h - one mutating bsi at a time.
 *
 * The lock is an flock(2) on <state>/lock, so it is released by the kernel
 * when the holder exits or is killed: a crash never leaves a stale lock.
 * The holder writes its pid into the file so that a second bsi can say who
 * holds it.  Take the lock before bsi_txn_recover() and keep it until the
 * command has finished mutating files and state.
 */
#ifndef BSI_LOCK_H
#define BSI_LOCK_H

typedef struct bsi_lock bsi_lock;

/*
 * Take the lock in state directory `state_dir` (created if absent).  `wait`
 * has the meaning of bsi_cli.wait (cli.h), so the CLI passes it through:
 * < 0 fail at once (no --wait); 0 wait without limit (--wait); > 0 wait up
 * to that many seconds (--wait=N).  When still held by another process,
 * returns BSI_EBUSY with "another bsi (pid N) holds the lock on DIR/lock".
 */
int bsi_lock_acquire(bsi_lock **out, const char *state_dir, double wait);
/* Release the lock and free it; NULL-safe. */
void bsi_lock_free(bsi_lock *lock);

#endif
