/*
 * A single-threaded stand-in for a container's init: it blocks in one
 * system call the way runc's and crun's inits wait on their sync pipe,
 * reports how the call ended, then execs the program given after the mode
 * (which reports its session keyring). Built by the tests with cc.
 *
 *   standin read|recvfrom|nanosleep PROGRAM [ARGS...]
 *
 * read and recvfrom read from fd 3 (a pipe or a socket); SIGUSR2 is
 * blocked first so the tests can check the signal mask survives.
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

	if (strcmp(argv[1], "read") == 0) {
		ret = syscall(SYS_read, 3, buf, sizeof(buf) - 1);
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
	printf("{\"call\":\"%s\",\"ret\":%ld,\"errno\":%d,\"data\":\"%s\",\"elapsed_ms\":%ld,\"sigusr2_blocked\":%s}\n",
	       argv[1], ret, err, ret > 0 ? buf : "", ms_since(&start),
	       sigismember(&set, SIGUSR2) ? "true" : "false");
	fflush(stdout);
	execv(argv[2], argv + 2);
	perror("execv");
	return 127;
}
