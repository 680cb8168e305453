/* SPDX-License-Identifier: MIT */
/* tmpfiles.c - temporary files removed on SIGINT, SIGTERM and SIGHUP; see
 * tmpfiles.h. */
#include "tmpfiles.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The commands and examples write one file at a time; a few slots spare. */
#define TMP_SLOTS 4

/* The handler may run on any thread (the library's workers do not block
 * signals) and at any moment: it reads only these, and a flag is set only
 * after its name is complete. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "the signal handler needs lock-free atomic flags");
static char names[TMP_SLOTS][PATH_MAX + 16];
static atomic_int in_use[TMP_SLOTS];

static const int SIGNALS[] = {SIGHUP, SIGINT, SIGTERM};
#define N_SIGNALS (sizeof SIGNALS / sizeof SIGNALS[0])

static void on_fatal_signal(int sig)
{
    for (int k = 0; k < TMP_SLOTS; k++)
        if (atomic_load(&in_use[k]))
            unlink(names[k]);
    /* End as the signal would have: its default action, raised again.
     * It is blocked while this handler runs, so it arrives on return. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

/* Once, for each signal still at its default action. */
static void install(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigfillset(&sa.sa_mask); /* nothing interrupts the clean-up */
    for (size_t i = 0; i < N_SIGNALS; i++) {
        struct sigaction old;
        if (sigaction(SIGNALS[i], NULL, &old) == 0 &&
            !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)
            sigaction(SIGNALS[i], &sa, NULL);
    }
}

int tmp_create(char *templ, int *slot)
{
    install();
    *slot = -1;
    /* No signal on this thread between making the file and watching it. */
    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < N_SIGNALS; i++)
        sigaddset(&block, SIGNALS[i]);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    const int fd = mkstemp(templ);
    const int e = errno;
    if (fd >= 0 && strlen(templ) < sizeof names[0])
        for (int k = 0; k < TMP_SLOTS; k++)
            if (!atomic_load(&in_use[k])) {
                strcpy(names[k], templ);
                atomic_store(&in_use[k], 1);
                *slot = k;
                break;
            }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return fd;
}

void tmp_release(int slot)
{
    if (slot >= 0 && slot < TMP_SLOTS)
        atomic_store(&in_use[slot], 0);
}
