/* lock.c - the state lock; see lock.h. */
#include "lock.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct bsi_lock {
	int fd;
};

/* The pid the holder wrote, or 0 when unreadable. */
static long holder_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bsi_lock_acquire(bsi_lock **out, const char *state_dir, double wait)
{
	char path[4096], pid[32];
	double deadline = now() + wait;
	bsi_lock *lock = NULL;
	int fd = -1, ret = BSI_EFAIL, n;

	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/lock", state_dir) >= sizeof(path))
		return bsi_error_set(BSI_EUSAGE, "state directory path too long");
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return bsi_error_set(BSI_EFAIL, "create state directory %s: %s", state_dir,
				     strerror(errno));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return bsi_error_set(BSI_EFAIL, "open %s: %s", path, strerror(errno));
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			ret = bsi_error_set(BSI_EFAIL, "lock %s: %s", path, strerror(errno));
			goto done;
		}
		if (wait < 0 || (wait > 0 && now() >= deadline)) {
			long holder = holder_pid(fd);
			int tries;

			/* The holder may have locked but not yet written its pid. */
			for (tries = 0; holder <= 0 && tries < 20; tries++) {
				usleep(10 * 1000);
				holder = holder_pid(fd);
			}

			if (holder > 0)
				ret = bsi_error_set(BSI_EBUSY,
						    "another bsi (pid %ld) holds the lock on %s%s",
						    holder, path,
						    wait > 0 ? " (gave up waiting)" : "");
			else
				ret = bsi_error_set(BSI_EBUSY, "another bsi holds the lock on %s",
						    path);
			goto done;
		}
		usleep(50 * 1000);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	/* Write first, then cut: a reader never sees an empty file mid-way. */
	if (pwrite(fd, pid, (size_t)n, 0) != n || ftruncate(fd, n) != 0) {
		ret = bsi_error_set(BSI_EFAIL, "write %s: %s", path, strerror(errno));
		goto done;
	}
	if (!(lock = malloc(sizeof(*lock)))) {
		ret = bsi_error_set(BSI_EFAIL, "out of memory");
		goto done;
	}
	lock->fd = fd;
	fd = -1;
	*out = lock;
	ret = 0;
done:
	if (fd >= 0)
		close(fd);
	return ret;
}

void bsi_lock_free(bsi_lock *lock)
{
	if (!lock)
		return;
	/* Forget our pid while still holding the lock (a killed holder's pid
	 * stays, and is overwritten by the next one). */
	if (ftruncate(lock->fd, 0) != 0) {
		/* Harmless: the next holder overwrites it. */
	}
	close(lock->fd);
	free(lock);
}
