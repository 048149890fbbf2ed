// netnsd native helper: the rtnetlink part (netlink.c), registered by netns.c's module init,
// and entering a namespace for one call (enter.c), which both use.
#ifndef NETNSD_NETLINK_H
#define NETNSD_NETLINK_H
#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

/** Adds nlOpen, nlDump, nlWatch and nlClose to the module's exports. */
napi_value netlink_init(napi_env env, napi_value exports);

/**
 * A NETLINK_ROUTE socket (non-blocking, bound, extended ACKs) made inside the namespace bound at
 * path, as nlOpen makes one without groups (native/netlink.c); any thread. The fd, or -1 with *what
 * and *err naming the step that failed.
 */
int nn_netlink_socket(const char *path, int rcvbuf, const char **what, int *err);

/** Milliseconds of CLOCK_MONOTONIC (netlink.c). */
long long nn_now_ms(void);

/** Sends one netlink request to the kernel: 0, or -errno (netlink.c). */
int nn_send_request(int fd, const unsigned char *req, size_t reqlen);

/** Waits until fd is readable or the deadline (nn_now_ms) passes: 0, -ETIMEDOUT or -errno (netlink.c). */
int nn_wait_readable(int fd, long long deadline);

/**
 * Walks the message headers of one received datagram: *ours when one has this seq, *done when
 * that is NLMSG_DONE or NLMSG_ERROR (the answer's end), *interrupted on NLM_F_DUMP_INTR (netlink.c).
 */
void nn_scan_reply(const unsigned char *data, size_t size, uint32_t seq, int *ours, int *done, int *interrupted);

/** One dump's answer in memory: its datagrams back to back, datagram i ending at ends[i]. */
struct nn_raw_dump {
  unsigned char *data;
  size_t len;
  size_t *ends;
  int count;
  int cap;
  int interrupted;  // NLM_F_DUMP_INTR: the tables changed meanwhile (dump again)
};

/**
 * Sends one dump request on fd (a socket of nn_netlink_socket) and keeps every datagram of its
 * answer up to NLMSG_DONE / NLMSG_ERROR in *d; no N-API, any thread (netlink.c). 0 or -errno;
 * *d is to be freed with nn_raw_dump_free either way.
 */
int nn_dump_raw(int fd, const unsigned char *req, size_t reqlen, int timeout_ms, struct nn_raw_dump *d);
void nn_raw_dump_free(struct nn_raw_dump *d);

/** The datagrams of *d as an array of Buffers (copies), or NULL when one could not be made (netlink.c). */
napi_value nn_raw_dump_buffers(napi_env env, const struct nn_raw_dump *d);

/** An Error "WHAT: strerror" with `code` (the errno's name, e.g. ENOENT) and `errno` (native/netns.c). */
napi_value nn_errno_error(napi_env env, const char *what, int err);

/** Throws nn_errno_error(env, what, err); returns NULL, for `return nn_throw_errno(...)` (native/netns.c). */
napi_value nn_throw_errno(napi_env env, const char *what, int err);

/** Adds nlRequestAsync (native/request.c) to the module's exports. */
napi_value request_init(napi_env env, napi_value exports);

/** Opens the calling thread's own namespace for nn_in_netns (module init; else on first use). 0 or an errno. */
int nn_enter_init(void);

/**
 * Makes the calling thread a background one (SCHED_BATCH): waking it never preempts the thread
 * that woke it (the event loop), it runs on a CPU that is free or at the next tick (enter.c). 0 or an errno.
 */
int nn_background(void);
/** The same for thread tid of this process (0: the calling one). 0 or an errno. */
int nn_background_thread(int tid);

/** Makes fd (of the daemon's own namespace, opened by another thread) the calling thread's own for nn_in_netns. */
void nn_enter_adopt(int fd);

/**
 * Runs fn(arg) with the calling thread inside the network namespace bound at path, then returns
 * the thread to its own namespace (native/enter.c). 0, or an errno with *what naming the step
 * that failed (fn has not run then). Aborts the process if the thread cannot return.
 */
int nn_in_netns(const char *path, void (*fn)(void *), void *arg, const char **what);

#endif
