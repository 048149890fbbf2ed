// netnsd native helper, part 2: rtnetlink sockets inside a namespace. Sockets and bytes only:
// requests are built and replies parsed in TypeScript (src/netlink/); this file opens sockets,
// sends, receives whole datagrams, and watches event sockets from the libuv loop.
//
// Safety: a socket is created with the calling thread inside the namespace for that one call
// (nn_in_netns, native/enter.c), which returns it to the daemon's namespace. A netlink socket
// belongs for good to the namespace it was created in (sock_net is fixed at creation), so once
// created it can be used, bound and read from any thread.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <node_api.h>
#include <uv.h>

#include "netlink.h"

#define NL_MAX_PATH 4096
#define NL_MAX_GROUPS 64
// Events may come in bursts (a namespace deleted with 1000 routes): a large receive buffer makes
// an overflow (ENOBUFS, events lost, resync needed) rare. SO_RCVBUFFORCE ignores rmem_max (root).
#define NL_DEFAULT_RCVBUF (8 * 1024 * 1024)
// Datagrams read per wakeup of an event socket, so one flood cannot starve the loop; the poll is
// level-triggered and fires again for the rest.
#define NL_MAX_PER_WAKEUP 1024

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

// ---- nlOpen: a socket created inside the namespace ----

struct open_job {
  const char *path;
  int groups[NL_MAX_GROUPS];
  int ngroups;
  int rcvbuf;  // bytes; 0 = NL_DEFAULT_RCVBUF
  int all_nsid;  // NETLINK_LISTEN_ALL_NSID: also every namespace that has an nsid here
  int fd;
  int err;
  const char *what;
};

// Inside the namespace (nn_in_netns).
static void open_inside(void *arg) {
  struct open_job *job = arg;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) { job->err = errno; job->what = "netlink socket"; return; }
  int size = job->rcvbuf > 0 ? job->rcvbuf : NL_DEFAULT_RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);  // not root: capped by rmem_max
  int one = 1;
  // Both exist since Linux 4.12 / 4.20; without them dumps still work (unfiltered, terse errors).
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};  // nl_pid 0: the kernel picks a port id
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    job->err = errno; job->what = "bind netlink"; close(fd); return;
  }
  if (job->all_nsid && setsockopt(fd, SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, &one, sizeof one) < 0) {
    job->err = errno; job->what = "NETLINK_LISTEN_ALL_NSID"; close(fd); return;
  }
  for (int i = 0; i < job->ngroups; i++) {
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &job->groups[i], sizeof job->groups[i]) < 0) {
      job->err = errno; job->what = "NETLINK_ADD_MEMBERSHIP"; close(fd); return;
    }
  }
  job->fd = fd;
}

// The socket of job, made inside its namespace: 0 (job->fd set), or -1 with job->err and job->what.
static int open_socket(struct open_job *job) {
  const char *what = NULL;
  int err = nn_in_netns(job->path, open_inside, job, &what);
  if (err) { job->err = err; job->what = what; }
  return job->fd < 0 ? -1 : 0;
}

int nn_netlink_socket(const char *path, int rcvbuf, const char **what, int *err) {
  struct open_job job;
  memset(&job, 0, sizeof job);
  job.path = path;
  job.fd = -1;
  job.rcvbuf = rcvbuf;
  if (open_socket(&job) < 0) {
    *what = job.what;
    *err = job.err;
    return -1;
  }
  return job.fd;
}

/**
 * nlOpen(nsPath, groups, rcvbuf?, allNsid?): a NETLINK_ROUTE socket inside the namespace; returns
 * the fd. allNsid: NETLINK_LISTEN_ALL_NSID, so the socket also gets the events of every namespace
 * that has an nsid in this one, each datagram tagged with that nsid (see nlWatch / nlRead).
 */
static napi_value nl_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char path[NL_MAX_PATH];
  size_t len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1)
    return nn_throw_errno(env, "nlOpen(nsPath, groups, rcvbuf?)", EINVAL);
  struct open_job job;
  memset(&job, 0, sizeof job);
  job.path = path;
  job.fd = -1;
  uint32_t n = 0;
  if (napi_get_array_length(env, argv[1], &n) != napi_ok || n > NL_MAX_GROUPS) return nn_throw_errno(env, "nlOpen groups", EINVAL);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int32_t g = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_int32(env, v, &g) != napi_ok || g <= 0 || g > 1024)
      return nn_throw_errno(env, "nlOpen group", EINVAL);
    job.groups[i] = g;
  }
  job.ngroups = (int)n;
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_number && (napi_get_value_int32(env, argv[2], &job.rcvbuf) != napi_ok || job.rcvbuf < 0))
      return nn_throw_errno(env, "nlOpen rcvbuf", EINVAL);
  }
  if (argc >= 4) {
    bool all = false;
    napi_valuetype t;
    napi_typeof(env, argv[3], &t);
    if (t == napi_boolean) napi_get_value_bool(env, argv[3], &all);
    job.all_nsid = all ? 1 : 0;
  }
  if (open_socket(&job) < 0) return nn_throw_errno(env, job.what, job.err);
  napi_value result;
  napi_create_int32(env, job.fd, &result);
  return result;
}

long long nn_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nn_send_request(int fd, const unsigned char *req, size_t reqlen) {
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t s;
  do s = sendto(fd, req, reqlen, 0, (struct sockaddr *)&kernel, sizeof kernel); while (s < 0 && errno == EINTR);
  return s < 0 ? -errno : 0;
}

int nn_wait_readable(int fd, long long deadline) {
  long long left = deadline - nn_now_ms();
  if (left <= 0) return -ETIMEDOUT;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, (int)left) < 0 && errno != EINTR) return -errno;
  return 0;
}

void nn_scan_reply(const unsigned char *data, size_t size, uint32_t seq, int *ours, int *done, int *interrupted) {
  // The headers only: where the answer ends, and whether a dump was interrupted.
  for (size_t off = 0; off + sizeof(struct nlmsghdr) <= size;) {
    struct nlmsghdr h;
    memcpy(&h, data + off, sizeof h);
    if (h.nlmsg_len < sizeof h || off + h.nlmsg_len > size) break;
    if (h.nlmsg_seq == seq) {
      *ours = 1;
      if (h.nlmsg_flags & NLM_F_DUMP_INTR) *interrupted = 1;
      if (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR) *done = 1;
    }
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
}

// ---- nlDump: one request, every reply datagram up to NLMSG_DONE / NLMSG_ERROR ----

int nn_dump_raw(int fd, const unsigned char *req, size_t reqlen, int timeout_ms, struct nn_raw_dump *d) {
  memset(d, 0, sizeof *d);
  if (reqlen < sizeof(struct nlmsghdr)) return -EINVAL;
  struct nlmsghdr hdr;
  memcpy(&hdr, req, sizeof hdr);
  // Replies to an earlier dump that timed out would be taken for this one's: drop them.
  unsigned char scratch[64];
  while (recv(fd, scratch, sizeof scratch, MSG_DONTWAIT | MSG_TRUNC) >= 0) {}
  int sent = nn_send_request(fd, req, reqlen);
  if (sent < 0) return sent;
  long long deadline = nn_now_ms() + timeout_ms;
  for (;;) {
    ssize_t n;
    do n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = nn_wait_readable(fd, deadline);
      if (w < 0) return w;
      continue;
    }
    if (n < 0) return -errno;
    if (d->count == d->cap) {
      int cap = d->cap ? d->cap * 2 : 8;
      size_t *ends = realloc(d->ends, (size_t)cap * sizeof *ends);
      if (!ends) return -ENOMEM;
      d->ends = ends;
      d->cap = cap;
    }
    unsigned char *data = realloc(d->data, d->len + (size_t)n + 1);
    if (!data) return -ENOMEM;
    d->data = data;
    ssize_t m;
    do m = recv(fd, d->data + d->len, (size_t)n, MSG_DONTWAIT); while (m < 0 && errno == EINTR);
    if (m < 0) return -errno;
    int done = 0, ours = 0;
    nn_scan_reply(d->data + d->len, (size_t)m, hdr.nlmsg_seq, &ours, &done, &d->interrupted);
    if (ours) {
      d->len += (size_t)m;
      d->ends[d->count++] = d->len;
    }
    if (done) return 0;
  }
}

void nn_raw_dump_free(struct nn_raw_dump *d) {
  free(d->data);
  free(d->ends);
  memset(d, 0, sizeof *d);
}

napi_value nn_raw_dump_buffers(napi_env env, const struct nn_raw_dump *d) {
  napi_value list;
  if (napi_create_array_with_length(env, (size_t)d->count, &list) != napi_ok) return NULL;
  for (int k = 0; k < d->count; k++) {
    size_t from = k == 0 ? 0 : d->ends[k - 1];
    napi_value buf;
    void *copy = NULL;
    if (napi_create_buffer_copy(env, d->ends[k] - from, d->data + from, &copy, &buf) != napi_ok) return NULL;
    napi_set_element(env, list, (uint32_t)k, buf);
  }
  return list;
}

/**
 * nlDump(fdOrNsPath, request, timeoutMs?): sends one request and returns
 * { datagrams: Buffer[], interrupted: boolean }. `interrupted` is NLM_F_DUMP_INTR: the kernel's
 * tables changed during the dump, which may then be inconsistent (retry it).
 */
static napi_value nl_dump(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return nn_throw_errno(env, "nlDump(fd, request, timeoutMs?)", EINVAL);
  bool isbuf = false;
  napi_is_buffer(env, argv[1], &isbuf);
  if (!isbuf) return nn_throw_errno(env, "nlDump request", EINVAL);
  void *req = NULL;
  size_t reqlen = 0;
  napi_get_buffer_info(env, argv[1], &req, &reqlen);
  int32_t timeout = 5000;
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_number) napi_get_value_int32(env, argv[2], &timeout);
    if (timeout <= 0) timeout = 5000;
  }
  napi_valuetype t0;
  napi_typeof(env, argv[0], &t0);
  int fd = -1, owned = 0;
  if (t0 == napi_number) {
    napi_get_value_int32(env, argv[0], &fd);
  } else if (t0 == napi_string) {
    struct open_job job;
    memset(&job, 0, sizeof job);
    char path[NL_MAX_PATH];
    size_t len = 0;
    napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len);
    if (len == 0 || len >= sizeof path - 1) return nn_throw_errno(env, "nlDump nsPath", EINVAL);
    job.path = path;
    job.fd = -1;
    job.rcvbuf = 1024 * 1024;
    if (open_socket(&job) < 0) return nn_throw_errno(env, job.what, job.err);
    fd = job.fd;
    owned = 1;
  }
  if (fd < 0) return nn_throw_errno(env, "nlDump fd", EBADF);
  struct nn_raw_dump d;
  int rc = nn_dump_raw(fd, req, reqlen, timeout, &d);
  if (owned) close(fd);
  napi_value datagrams = rc == 0 ? nn_raw_dump_buffers(env, &d) : NULL;
  int interrupted = d.interrupted;
  nn_raw_dump_free(&d);
  if (rc < 0) return nn_throw_errno(env, rc == -ETIMEDOUT ? "netlink dump timed out" : "netlink dump", -rc);
  if (!datagrams) return nn_throw_errno(env, "netlink dump", ENOMEM);
  napi_value result, intr;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "datagrams", datagrams);
  napi_get_boolean(env, interrupted, &intr);
  napi_set_named_property(env, result, "interrupted", intr);
  return result;
}

// ---- nlWatch / nlClose: event sockets read from the libuv loop ----

struct watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context ctx;
  int fd;
  int closing;
  struct watch *next;
};

static struct watch *watches = NULL;  // only touched on the loop thread of their env

static void call_back(struct watch *w, napi_value err, napi_value batch) {
  napi_env env = w->env;
  napi_value cb, recv, args[2], ret;
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &recv);  // napi_make_callback wants an object as `this`
  args[0] = err;
  args[1] = batch;
  if (napi_make_callback(env, w->ctx, recv, cb, 2, args, &ret) == napi_pending_exception) {
    // A throwing listener must not vanish silently: hand it to process 'uncaughtException'.
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
}

// What one read of an event socket took: its datagrams back to back in data (each at a 4-byte
// aligned offset), and for datagram i, index[3i] and index[3i+1] its bounds in data and
// index[3i+2] its nsid. One per thread, reused from read to read.
struct pending {
  unsigned char *data;
  size_t len, cap;
  int32_t *index;
  uint32_t count, slots;
};

static __thread struct pending pend;

// Room for one datagram: each is received straight into data, so at least this much is free
// before each recvmsg. An rtnetlink notification is one message of a few KiB at most (a link's,
// with every attribute); one larger would be cut short, and counts as lost (an overflow: the
// caller re-reads).
#define NL_DATAGRAM_ROOM (64 * 1024)
// Kept between reads up to this size; a flood that made it larger gives the memory back.
#define NL_PENDING_KEEP (4 * 1024 * 1024)

static int pending_room(struct pending *p, size_t at) {
  if (p->cap < at + NL_DATAGRAM_ROOM) {
    size_t cap = p->cap ? p->cap : 4 * NL_DATAGRAM_ROOM;
    while (cap < at + NL_DATAGRAM_ROOM) cap *= 2;
    unsigned char *data = realloc(p->data, cap);
    if (!data) return ENOMEM;
    p->data = data;
    p->cap = cap;
  }
  if (p->count == p->slots) {
    uint32_t slots = p->slots ? p->slots * 2 : 64;
    int32_t *index = realloc(p->index, (size_t)slots * 3 * sizeof *index);
    if (!index) return ENOMEM;
    p->index = index;
    p->slots = slots;
  }
  return 0;
}

// Reads every pending datagram (at most NL_MAX_PER_WAKEUP) into p, one recvmsg each, straight
// into p->data. (A peek for the size, then a recvmsg into a Buffer of its own, cost ~4 us a
// datagram, half of it the peek and the Buffer; recvmmsg, 32 at a time, measured no faster than
// this.) ENOBUFS (the receive queue overflowed and the kernel dropped events; the socket goes on
// working, the caller must resync from dumps) sets *overflow; another error is returned as a
// positive errno.
static int read_pending(int fd, struct pending *p, int *overflow) {
  p->len = 0;
  p->count = 0;
  for (int i = 0; i < NL_MAX_PER_WAKEUP; i++) {
    size_t at = (p->len + 3) & ~(size_t)3;
    int err = pending_room(p, at);
    if (err) return err;
    struct iovec iov = {.iov_base = p->data + at, .iov_len = p->cap - at};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t m;
    do m = recvmsg(fd, &msg, MSG_DONTWAIT); while (m < 0 && errno == EINTR);
    if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (m < 0 && errno == ENOBUFS) { *overflow = 1; continue; }
    if (m < 0) return errno;
    if (msg.msg_flags & MSG_TRUNC) { *overflow = 1; continue; }
    int nsid = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_NETLINK && c->cmsg_type == NETLINK_LISTEN_ALL_NSID && c->cmsg_len >= CMSG_LEN(sizeof(int)))
        memcpy(&nsid, CMSG_DATA(c), sizeof(int));
    int32_t *slot = p->index + 3 * p->count++;
    slot[0] = (int32_t)at;
    slot[1] = (int32_t)(at + (size_t)m);
    slot[2] = nsid;
    p->len = at + (size_t)m;
  }
  return 0;
}

// What read_pending took, for JavaScript: null when nothing (no datagram, no overflow), else
// { data: Buffer, index: Int32Array, overflow: boolean } (see struct pending). NULL: out of memory.
static napi_value pending_batch(napi_env env, struct pending *p, int overflow) {
  napi_value result;
  if (p->count == 0 && !overflow) {
    napi_get_null(env, &result);
  } else {
    napi_value data, ab, index, ov;
    void *copy = NULL, *slots = NULL;
    size_t bytes = (size_t)p->count * 3 * sizeof(int32_t);
    if (napi_create_buffer_copy(env, p->len, p->len ? (void *)p->data : (void *)"", &copy, &data) != napi_ok ||
        napi_create_arraybuffer(env, bytes, &slots, &ab) != napi_ok ||
        napi_create_typedarray(env, napi_int32_array, (size_t)p->count * 3, ab, 0, &index) != napi_ok)
      return NULL;
    if (bytes) memcpy(slots, p->index, bytes);
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "data", data);
    napi_set_named_property(env, result, "index", index);
    napi_get_boolean(env, overflow, &ov);
    napi_set_named_property(env, result, "overflow", ov);
  }
  if (p->cap > NL_PENDING_KEEP) {
    free(p->data);
    free(p->index);
    memset(p, 0, sizeof *p);
  }
  return result;
}

static void stop_watch(struct watch *w);

static void on_readable(uv_poll_t *handle, int status, int events) {
  struct watch *w = handle->data;
  if (w->closing) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value nul;
  napi_get_null(env, &nul);
  int overflow = 0, fatal = 0;
  pend.count = 0;
  pend.len = 0;
  if (status < 0) {
    // libuv reports EPOLLERR as UV_EBADF and stops the handle. On a netlink socket that error
    // is usually sk_err = ENOBUFS (an overflow): take it (SO_ERROR clears it), re-arm, read on.
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == ENOBUFS &&
        uv_poll_start(&w->poll, UV_READABLE, on_readable) == 0) {
      overflow = 1;
      status = 0;
    } else {
      fatal = soerr ? soerr : -status;
    }
  }
  if (status == 0) fatal = read_pending(w->fd, &pend, &overflow);
  if (pend.count > 0 || overflow) {
    napi_value batch = pending_batch(env, &pend, overflow);
    if (batch) call_back(w, nul, batch);
    else if (!fatal) fatal = ENOMEM;
  }
  if (fatal && !w->closing) {
    napi_value code, message, error;
    napi_create_string_utf8(env, strerrorname_np(fatal) ? strerrorname_np(fatal) : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, "netlink event socket failed", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    call_back(w, error, nul);
    stop_watch(w);
  }
  napi_close_handle_scope(env, scope);
}

static void on_closed(uv_handle_t *handle) { free(handle->data); }

// Stops polling (the fd stays open). The JS references go at once, while the env is surely alive
// (this may run from its cleanup hook); the struct is freed once libuv has closed the handle.
static void stop_watch(struct watch *w) {
  if (w->closing) return;
  w->closing = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->ctx);
  for (struct watch **p = &watches; *p; p = &(*p)->next)
    if (*p == w) { *p = w->next; break; }
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

static struct watch *find_watch(napi_env env, int fd) {
  for (struct watch *w = watches; w; w = w->next)
    if (w->fd == fd && w->env == env) return w;
  return NULL;
}

/**
 * nlWatch(fd, callback): calls callback(null, batch) from the event loop whenever the socket has
 * datagrams or overflowed: batch = { data, index, overflow } (pending_batch): every pending
 * datagram back to back in the Buffer data, datagram i at data[index[3i], index[3i+1]) from the
 * namespace of nsid index[3i+2] (LISTEN_ALL_NSID; -1: the socket's own); overflow: events were
 * lost. callback(err, null): the socket failed and is no longer watched.
 */
static napi_value nl_watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  napi_valuetype t = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return nn_throw_errno(env, "nlWatch(fd, callback)", EINVAL);
  if (find_watch(env, fd)) return nn_throw_errno(env, "nlWatch: already watched", EBUSY);
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return nn_throw_errno(env, "nlWatch: no loop", EINVAL);
  struct watch *w = calloc(1, sizeof *w);
  if (!w) return nn_throw_errno(env, "calloc", ENOMEM);
  w->env = env;
  w->fd = fd;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc < 0) { free(w); return nn_throw_errno(env, "uv_poll_init", -rc); }
  w->poll.data = w;
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_value name, resource;
  napi_create_string_utf8(env, "netnsd:netlink", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &w->ctx);
  w->next = watches;
  watches = w;
  rc = uv_poll_start(&w->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    stop_watch(w);
    return nn_throw_errno(env, "uv_poll_start", -rc);
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

// The one argument of nlRead / nlClose: a file descriptor, or -1 when it is not one.
static int32_t fd_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return -1;
  return fd;
}

/**
 * nlRead(fd): every datagram pending on the socket now, without waiting, as nlWatch gives them
 * (null: none). Lets a watcher catch up synchronously (what the kernel has sent before a change's
 * ACK is then seen).
 */
static napi_value nl_read(napi_env env, napi_callback_info info) {
  int32_t fd = fd_arg(env, info);
  if (fd < 0) return nn_throw_errno(env, "nlRead(fd)", EINVAL);
  int overflow = 0;
  int err = read_pending(fd, &pend, &overflow);
  if (err) return nn_throw_errno(env, "nlRead", err);
  napi_value batch = pending_batch(env, &pend, overflow);
  if (!batch) return nn_throw_errno(env, "nlRead", ENOMEM);
  return batch;
}

/** nlClose(fd): stops watching the socket (when watched) and closes it. */
static napi_value nl_close(napi_env env, napi_callback_info info) {
  int32_t fd = fd_arg(env, info);
  if (fd < 0) return nn_throw_errno(env, "nlClose(fd)", EINVAL);
  struct watch *w = find_watch(env, fd);
  // uv_poll_stop removes the fd from epoll at once, so closing it right after is safe.
  if (w) stop_watch(w);
  if (close(fd) < 0) return nn_throw_errno(env, "close", errno);
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

// A worker thread (or the process) going away: stop its env's watches so libuv does not call
// into a dead env. The fds are the TS side's to close; closing them here too would be a double
// close when it does.
static void cleanup_env(void *arg) {
  napi_env env = arg;
  for (struct watch *w = watches, *next; w; w = next) {
    next = w->next;
    if (w->env == env) stop_watch(w);
  }
}

napi_value netlink_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"nlOpen", NULL, nl_open, NULL, NULL, NULL, napi_default, NULL},
      {"nlDump", NULL, nl_dump, NULL, NULL, NULL, napi_default, NULL},
      {"nlWatch", NULL, nl_watch, NULL, NULL, NULL, napi_default, NULL},
      {"nlRead", NULL, nl_read, NULL, NULL, NULL, napi_default, NULL},
      {"nlClose", NULL, nl_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_add_env_cleanup_hook(env, cleanup_env, env);
  return exports;
}
