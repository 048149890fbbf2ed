// netnsd native helper: running a few syscalls inside a namespace on the calling thread.
//
// setns(CLONE_NEWNET) moves only the calling thread (a multi-threaded process may do it: only
// user and mount namespaces refuse), and a socket or a /proc/sys/net file belongs to the
// namespace its thread was in when it was created or opened. So nn_in_netns() enters the
// namespace, runs the work, and returns the thread to where it was before it returns, within one
// synchronous call: no JavaScript and no other work of this thread runs in between.
//
// This replaced a short-lived pthread per call. Measured in the units benchmark (200 units, 16
// clients): a thread's creation and join blocked the event loop 285 µs on average (the new
// thread waits for a busy CPU), about 650 ms of the run; two setns calls cost a few µs.
// If the thread cannot return home, the process aborts: a loop thread left in another namespace
// would do everything after in the wrong one, which is worse than a restart.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "netlink.h"

// This thread's own namespace: opened when the module loads (the loop thread) or on a thread's
// first call, and kept (one descriptor per calling thread, of the daemon's own namespace).
static __thread int home_fd = -1;

int nn_enter_init(void) {
  if (home_fd < 0) home_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  return home_fd < 0 ? errno : 0;
}

int nn_background_thread(int tid) {
  struct sched_param none = {.sched_priority = 0};
  // Per thread on Linux (0: the calling one). Failing (a seccomp filter, say) changes nothing else.
  return sched_setscheduler(tid, SCHED_BATCH, &none) < 0 ? errno : 0;
}

int nn_background(void) { return nn_background_thread(0); }

void nn_enter_adopt(int fd) {
  if (home_fd < 0) home_fd = fd;
}

int nn_in_netns(const char *path, void (*fn)(void *), void *arg, const char **what) {
  if (home_fd < 0) {
    int e = nn_enter_init();
    if (e) { *what = "open own namespace"; return e; }
  }
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) { *what = "open namespace"; return errno; }
  if (setns(nsfd, CLONE_NEWNET) < 0) {
    int e = errno;
    close(nsfd);
    *what = "setns";
    return e;
  }
  close(nsfd);
  fn(arg);
  if (setns(home_fd, CLONE_NEWNET) < 0) {
    fprintf(stderr, "netnsd native: cannot return to the daemon's namespace (errno %d); aborting\n", errno);
    abort();
  }
  return 0;
}
