/*
 * A single-threaded stand-in for a container's init: it blocks in one
 * system call the way runc's and crun's inits wait on their sync pipe,
 * reports how the call ended, then execs the program given after the mode
 * (which reports its session keyring). Built by the tests with cc.
 *
 *   standin read|recvfrom|nanosleep|read-signals|read-bump PROGRAM [ARGS...]
 *
 * read and recvfrom read from fd 3 (a pipe or a socket); SIGUSR2 is
 * blocked first so the tests can check the signal mask survives.
 * read-signals is read with SA_RESTART handlers that count SIGUSR1 and
 * real-time signal 40 (queued: every one sent is delivered; 40 is a
 * real-time signal for glibc and musl alike), so the tests can check
 * that no signal sent while the hook holds the process is lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RT_SIG 40

static volatile sig_atomic_t usr1, rt;

static void count(int sig)
{
	if (sig == SIGUSR1)
		usr1++;
	else
		rt++;
}

/*
 * read-bump: read(3, buf, len) from hand-written code in which the
 * instruction just before the syscall instruction advances the buffer
 * pointer. Restarted from the syscall instruction, as the kernel and the
 * engine must do, the data lands at buf; restarted one instruction early,
 * at buf + 1, and the report's data comes out empty.
 */
static long read_bump(char *buf, long len)
{
	long r;
#if defined(__aarch64__)
	register long x0 __asm__("x0") = 3;
	register long x1 __asm__("x1") = (long)buf - 1;
	register long x2 __asm__("x2") = len;
	register long x8 __asm__("x8") = SYS_read;
	__asm__ volatile("add x1, x1, #1\n\tsvc #0"
			 : "+r"(x0), "+r"(x1) : "r"(x2), "r"(x8) : "memory");
	r = x0;
#elif defined(__x86_64__)
	long p = (long)buf - 1;
	__asm__ volatile("incq %%rsi\n\tsyscall"
			 : "=a"(r), "+S"(p) : "0"((long)SYS_read), "D"(3L), "d"(len)
			 : "rcx", "r11", "memory");
#else
	(void)buf;
	(void)len;
	r = -ENOSYS;
#endif
	if (r < 0 && r > -4096) {
		errno = -r;
		return -1;
	}
	return r;
}

static long ms_since(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

int main(int argc, char **argv)
{
	char buf[256] = {0};
	long ret;
	int err;
	struct timespec start;
	sigset_t set;

	if (argc < 3) {
		fprintf(stderr, "usage: %s read|recvfrom|nanosleep PROGRAM [ARGS...]\n", argv[0]);
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	clock_gettime(CLOCK_MONOTONIC, &start);

	if (strcmp(argv[1], "read-signals") == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = count;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR1, &sa, NULL);
		sigaction(RT_SIG, &sa, NULL);
	}
	if (strcmp(argv[1], "read") == 0 || strcmp(argv[1], "read-signals") == 0) {
		ret = syscall(SYS_read, 3, buf, sizeof(buf) - 1);
	} else if (strcmp(argv[1], "read-bump") == 0) {
		ret = read_bump(buf, sizeof(buf) - 1);
	} else if (strcmp(argv[1], "recvfrom") == 0) {
		ret = syscall(SYS_recvfrom, 3, buf, sizeof(buf) - 1, 0, NULL, NULL);
	} else if (strcmp(argv[1], "nanosleep") == 0) {
		struct timespec ts = {0, 600 * 1000000L}, rem = {0, 0};
		ret = syscall(SYS_nanosleep, &ts, &rem);
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	err = ret < 0 ? errno : 0;
	sigprocmask(SIG_SETMASK, NULL, &set);
	printf("{\"call\":\"%s\",\"ret\":%ld,\"errno\":%d,\"data\":\"%s\",\"elapsed_ms\":%ld,\"sigusr2_blocked\":%s,\"usr1\":%d,\"rt\":%d}\n",
	       argv[1], ret, err, ret > 0 ? buf : "", ms_since(&start),
	       sigismember(&set, SIGUSR2) ? "true" : "false", (int)usr1, (int)rt);
	fflush(stdout);
	execv(argv[2], argv + 2);
	perror("execv");
	return 127;
}
