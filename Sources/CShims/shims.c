// The accessors are static inline in include/CShims.h; only the preemption flag lives here,
// because a signal handler must be C to be async-signal-safe.
#include "CShims.h"
#include <pthread.h>
#include <signal.h>

static volatile sig_atomic_t preemption_requested = 0;
static volatile sig_atomic_t preemption_signal = 0;

static void on_preemption_signal(int signal_number) {
    preemption_signal = signal_number;
    preemption_requested = 1;
}

void lf_install_preemption_handlers(void) {
    struct sigaction action;
    action.sa_handler = on_preemption_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGUSR1, &action, NULL);
    // A launcher may have started us with these blocked (the mask is inherited): unblock them.
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &wanted, NULL);
}

int lf_preemption_requested(void) { return preemption_requested; }

// Installed when the binary loads, before main: a signal in the first milliseconds of a rank
// (loading, the Swift runtime, argument parsing, MPI_Init) is then seen at the first step
// boundary instead of ending the rank with the default action.
__attribute__((constructor)) static void install_at_load(void) { lf_install_preemption_handlers(); }

void lf_restore_default_termination(void) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    if (preemption_requested) raise(preemption_signal);
}
