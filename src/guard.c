/* SPDX-License-Identifier: MIT */
/* guard.c - see guard.h. The technique is QEMU's for preallocation
 * (sigsetjmp in the guarded frame, siglongjmp from the handler). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "guard.h"

/* initial-exec: reading it from the handler must not allocate */
static __thread sigjmp_buf *guard_jmp __attribute__((tls_model("initial-exec")));
static __thread uintptr_t guard_addr __attribute__((tls_model("initial-exec")));

static struct sigaction previous;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_err;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *jb = guard_jmp;

	if (jb) {
		guard_jmp = NULL;
		guard_addr = (uintptr_t)si->si_addr;
		siglongjmp(*jb, 1);
	}
	/* not a guarded access: whoever handled SIGBUS before us */
	if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
		previous.sa_sigaction(sig, si, uc);
	} else if (previous.sa_handler != SIG_DFL &&
		   previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
	} else {
		/* returning re-runs the faulting access, which now takes
		 * the default action (a fault cannot be ignored) */
		signal(sig, SIG_DFL);
	}
}

static void install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &previous))
		install_err = -errno;
}

int mfd__guard_install(void)
{
	pthread_once(&once, install);
	return install_err;
}

int mfd__guarded(int (*fn)(void *), void *arg, uintptr_t *addr)
{
	sigjmp_buf jb;
	sigset_t bus;
	int r;

	/* no mask saved: a syscall per packet for the rare fault path,
	 * which unblocks SIGBUS itself below */
	if (sigsetjmp(jb, 0)) {
		sigemptyset(&bus);
		sigaddset(&bus, SIGBUS);
		pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
		*addr = guard_addr;
		return -EFAULT;
	}
	guard_jmp = &jb;
	r = fn(arg);
	guard_jmp = NULL;
	return r;
}
