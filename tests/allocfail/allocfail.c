/*
 * allocfail.c - make the Nth heap allocation fail, for the allocation-failure
 * sweep (tests/allocfail/sweep.sh, `make allocfail`).
 *
 * Built two ways from this one file:
 *   build/allocfail.so       LD_PRELOAD shim for the ordinary build/bsi
 *   BUILD/bsi-allocfail      linked into the executable of a sanitizer build,
 *                            where the executable's malloc comes before
 *                            libasan's in symbol lookup (an LD_PRELOAD shim
 *                            cannot: ASan insists on being first), so
 *                            LeakSanitizer checks every failing run
 * Either way malloc, calloc, realloc, posix_memalign, aligned_alloc and
 * memalign are wrapped; the real ones are found with dlsym(RTLD_NEXT).
 * (glibc's strdup, asprintf, getline, fopen ... call malloc through the
 * interposable symbol, so they are covered.)
 *
 * Environment:
 *   BSI_ALLOC_FAIL=N        the Nth allocation of the main process returns
 *                           NULL with errno ENOMEM; later ones succeed
 *   BSI_ALLOC_FAIL_CHILD=N  the Nth allocation of every forked child (the
 *                           recipe sandbox, the fetch child) fails instead
 *   BSI_ALLOC_TRACE=1       print the stack of the failing allocation on
 *                           stderr (symbolised in a sanitizer build)
 *   BSI_ALLOC_COUNT=FILE    at exit of the main process, append
 *                           "main M" and "child C" (the most any child
 *                           made) to FILE.  Children may not write files
 *                           (the sandbox sets RLIMIT_FSIZE to 0), so they
 *                           record their count in a shared page when they
 *                           _exit (the wrapper below)
 *
 * Counting is per process: a pthread_atfork child handler resets the count,
 * so the numbers are deterministic (the parent's allocations while it waits
 * for a child do not interleave with the child's).  The "main process" is
 * the one that first initialised the shim; an exec'd program (a service
 * manager's systemctl) starts a new main process, which is why the sweep
 * uses the record plugin, which execs nothing.
 *
 * A free() of a pointer this shim handed out before the real allocator was
 * found (dlsym itself allocates) is ignored.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*pmalign_fn)(void **, size_t, size_t);
typedef void *(*aalloc_fn)(size_t, size_t);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static pmalign_fn real_posix_memalign;
static aalloc_fn real_aligned_alloc, real_memalign;

/* Bootstrap heap for allocations made while dlsym looks the real ones up. */
static _Alignas(16) char boot[16384];
static size_t boot_used;
static int resolving;

static atomic_ulong count;
static unsigned long fail_main, fail_child;
static int is_child, trace;
static char count_file[4096];

static void *boot_alloc(size_t n)
{
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (boot_used + n > sizeof(boot))
		return NULL;
	p = boot + boot_used;
	boot_used += n;
	return p;
}

static int in_boot(const void *p)
{
	return (const char *)p >= boot && (const char *)p < boot + sizeof(boot);
}

static void report(const char *who, unsigned long value)
{
	char line[64];
	int fd, n;

	n = snprintf(line, sizeof(line), "%s %lu\n", who, value);
	fd = open(count_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) < 0) {
		/* nothing to do: the sweep then sees no count */
	}
	close(fd);
}

/* The most allocations any child made, in a page shared with them. */
static atomic_ulong *child_max;

static void at_exit(void)
{
	if (is_child)
		return;
	report("main", atomic_load(&count));
	if (child_max)
		report("child", atomic_load(child_max));
}

static void child_done(void)
{
	unsigned long mine = atomic_load(&count), seen;

	if (!child_max)
		return;
	seen = atomic_load(child_max);
	while (mine > seen && !atomic_compare_exchange_weak(child_max, &seen, mine))
		;
}

static void on_fork_child(void)
{
	atomic_store(&count, 0);
	is_child = 1;
}

static unsigned long env_num(const char *name)
{
	const char *s = getenv(name);

	return s && *s ? strtoul(s, NULL, 10) : 0;
}

/* The environment, read by a constructor: in a sanitizer build the first
 * allocations happen in ASan's initialisation, before the executable is
 * relocated and libc has set environ.  Allocations before it are counted
 * (none of them is bsi's) but never fail. */
__attribute__((constructor)) static void read_env(void)
{
	const char *cf;

	fail_main = env_num("BSI_ALLOC_FAIL");
	fail_child = env_num("BSI_ALLOC_FAIL_CHILD");
	trace = env_num("BSI_ALLOC_TRACE") != 0;
	cf = getenv("BSI_ALLOC_COUNT");
	if (cf && strlen(cf) < sizeof(count_file))
		strcpy(count_file, cf);
	pthread_atfork(NULL, NULL, on_fork_child);
	if (count_file[0]) {
		void *page = mmap(NULL, sizeof(*child_max), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (page != MAP_FAILED)
			child_max = page;
		atexit(at_exit);
	}
}

static void resolve(void)
{
	if (real_malloc || resolving)
		return;
	resolving = 1;
	real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
	real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
	real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
	real_free = (free_fn)dlsym(RTLD_NEXT, "free");
	real_posix_memalign = (pmalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
	real_aligned_alloc = (aalloc_fn)dlsym(RTLD_NEXT, "aligned_alloc");
	real_memalign = (aalloc_fn)dlsym(RTLD_NEXT, "memalign");
	resolving = 0;
}

/* ASan's, when linked into a sanitizer build. */
extern void __sanitizer_print_stack_trace(void) __attribute__((weak));

/* Count one allocation; true when this one is to fail. */
static int should_fail(void)
{
	unsigned long n = atomic_fetch_add(&count, 1) + 1;
	unsigned long want = is_child ? fail_child : fail_main;

	if (want && n == want) {
		if (trace) {
			static const char msg[] = "allocfail: this allocation fails:\n";

			if (write(2, msg, sizeof(msg) - 1) < 0) {
				/* the trace is a debugging aid only */
			}
			if (__sanitizer_print_stack_trace)
				__sanitizer_print_stack_trace();
			else {
				void *frames[64];

				backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
			}
		}
		errno = ENOMEM;
		return 1;
	}
	return 0;
}

void *malloc(size_t n)
{
	resolve();
	if (!real_malloc)
		return boot_alloc(n);
	if (should_fail())
		return NULL;
	return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	resolve();
	if (!real_calloc)
		return boot_alloc(a * b); /* static storage is zeroed */
	if (should_fail())
		return NULL;
	return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	resolve();
	if (in_boot(p)) {
		void *q = malloc(n);

		if (q)
			memcpy(q, p, n < sizeof(boot) - (size_t)((char *)p - boot)
					     ? n : sizeof(boot) - (size_t)((char *)p - boot));
		return q;
	}
	if (!real_realloc)
		return boot_alloc(n);
	/* realloc(p, 0) frees; it is no allocation to fail */
	if ((p == NULL || n > 0) && should_fail())
		return NULL;
	return real_realloc(p, n);
}

void free(void *p)
{
	if (!p || in_boot(p))
		return;
	resolve();
	if (real_free)
		real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	resolve();
	if (should_fail())
		return ENOMEM;
	return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	resolve();
	if (should_fail())
		return NULL;
	return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
	resolve();
	if (should_fail())
		return NULL;
	return real_memalign(align, n);
}

/* Children leave by _exit (no atexit handlers): report their count here. */
void _exit(int status)
{
	static void (*real_exit)(int);

	if (is_child)
		child_done();
	if (!real_exit)
		real_exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
	real_exit(status);
	for (;;)
		;
}
