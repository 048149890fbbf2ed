// netnsd native helper, part 3: rtnetlink change requests off the event loop.
//
// nlRequestAsync(nsPath, request, timeoutMs?) sends one request that asks for an ACK on a socket
// made inside the namespace for it, and resolves with the reply's datagrams (Buffer[], up to
// and with the ACK or the error) once the kernel has answered. The work is done by one thread of
// this module's own per env, which takes the requests in the order they came (FIFO); the answers
// go back to the loop through a uv_async handle.
//
// Why: a change is the kernel's work within the send (creating a veth and its queues, bringing a
// link up and starting IPv6 on it), and it waits for the RTNL lock that other threads creating
// namespaces hold. Measured in the units benchmark (200 units, 16 clients), the loop spent ~0.7 ms
// per veth created and ~0.3 ms per link brought up inside these calls: a quarter of its time.
// Not libuv's thread pool: namespace creations (netnsAdd) wait there for their own thread, and
// four of them would hold up every change behind them.
//
// The thread enters the namespace only to create the socket (nn_in_netns, native/enter.c) and is
// back in the daemon's namespace before it sends. No N-API call is made off the loop thread: the
// thread fills plain memory, the loop turns it into Buffers and settles the promise.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <uv.h>

#include "netlink.h"

#define RQ_MAX_PATH 4096
#define RQ_RCVBUF (256 * 1024)

struct dgram {
  unsigned char *data;
  size_t len;
};

struct rq_job {
  struct rq_job *next;
  napi_deferred deferred;
  char path[RQ_MAX_PATH];
  unsigned char *req;
  size_t reqlen;
  int timeout_ms;
  int err;            // 0, or an errno
  const char *what;   // the step that failed
  struct dgram *dgrams;
  size_t ndgrams, cap;
};

// One per env (the main thread, each worker thread that loads the addon).
struct rq_env {
  napi_env env;
  uv_async_t async;
  napi_async_context ctx;
  napi_ref resource;
  pthread_t thread;
  int home;                 // the daemon's namespace, for the thread (opened at init: see request_init)
  int stopping;             // under mu
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct rq_job *todo, *todo_tail;  // under mu
  struct rq_job *done, *done_tail;  // under mu
  unsigned pending;         // loop thread only: submitted, not yet settled
};

static void fail(struct rq_job *j, const char *what, int err) {
  j->what = what;
  j->err = err;
}

static int keep(struct rq_job *j, unsigned char *data, size_t len) {
  if (j->ndgrams == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 4;
    struct dgram *d = realloc(j->dgrams, cap * sizeof *d);
    if (!d) return -ENOMEM;
    j->dgrams = d;
    j->cap = cap;
  }
  j->dgrams[j->ndgrams++] = (struct dgram){data, len};
  return 0;
}

// The worker thread: the request, and every reply datagram of its seq up to the ACK or error.
static void run(struct rq_job *j) {
  const char *what = NULL;
  int err = 0;
  int fd = nn_netlink_socket(j->path, RQ_RCVBUF, &what, &err);
  if (fd < 0) { fail(j, what, err); return; }
  struct nlmsghdr hdr;
  memcpy(&hdr, j->req, sizeof hdr);
  int sent = nn_send_request(fd, j->req, j->reqlen);
  if (sent < 0) { fail(j, "netlink send", -sent); close(fd); return; }
  long long deadline = nn_now_ms() + j->timeout_ms;
  for (;;) {
    ssize_t n;
    do n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT); while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = nn_wait_readable(fd, deadline);
      if (w == -ETIMEDOUT) { fail(j, "netlink request timed out", ETIMEDOUT); break; }
      if (w < 0) { fail(j, "poll", -w); break; }
      continue;
    }
    if (n < 0) { fail(j, "netlink receive", errno); break; }
    unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
    if (!data) { fail(j, "malloc", ENOMEM); break; }
    ssize_t m;
    do m = recv(fd, data, (size_t)n, MSG_DONTWAIT); while (m < 0 && errno == EINTR);
    if (m < 0) { free(data); fail(j, "netlink receive", errno); break; }
    int done = 0, ours = 0, interrupted = 0;
    nn_scan_reply(data, (size_t)m, hdr.nlmsg_seq, &ours, &done, &interrupted);
    if (!ours) {
      free(data);
    } else if (keep(j, data, (size_t)m) < 0) {
      // Not a datagram dropped quietly: it may be the refusal.
      free(data);
      fail(j, "malloc", ENOMEM);
      break;
    }
    if (done) break;
  }
  close(fd);
}

static void *worker(void *arg) {
  struct rq_env *r = arg;
  // Signals are the process's main thread's to take, never this one's.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  nn_enter_adopt(r->home);
  nn_background();
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->stopping && !r->todo) pthread_cond_wait(&r->cv, &r->mu);
    if (r->stopping) break;
    struct rq_job *j = r->todo;
    r->todo = j->next;
    if (!r->todo) r->todo_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    run(j);
    pthread_mutex_lock(&r->mu);
    j->next = NULL;
    if (r->done_tail) r->done_tail->next = j; else r->done = j;
    r->done_tail = j;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static void free_job(struct rq_job *j) {
  for (size_t i = 0; i < j->ndgrams; i++) free(j->dgrams[i].data);
  free(j->dgrams);
  free(j->req);
  free(j);
}


// Loop thread: settles every finished request, within a callback scope (so the promises'
// continuations run when it closes, as after any other callback).
static void on_done(uv_async_t *handle) {
  struct rq_env *r = handle->data;
  pthread_mutex_lock(&r->mu);
  struct rq_job *j = r->done;
  r->done = r->done_tail = NULL;
  pthread_mutex_unlock(&r->mu);
  if (!j) return;
  napi_env env = r->env;
  napi_handle_scope hs;
  napi_open_handle_scope(env, &hs);
  napi_value resource;
  napi_get_reference_value(env, r->resource, &resource);
  napi_callback_scope cs;
  napi_open_callback_scope(env, resource, r->ctx, &cs);
  while (j) {
    struct rq_job *next = j->next;
    if (j->err) {
      napi_reject_deferred(env, j->deferred, nn_errno_error(env, j->what, j->err));
    } else {
      napi_value list;
      napi_create_array_with_length(env, j->ndgrams, &list);
      for (size_t i = 0; i < j->ndgrams; i++) {
        napi_value buf;
        napi_create_buffer_copy(env, j->dgrams[i].len, j->dgrams[i].data, NULL, &buf);
        napi_set_element(env, list, (uint32_t)i, buf);
      }
      napi_resolve_deferred(env, j->deferred, list);
    }
    free_job(j);
    if (--r->pending == 0) uv_unref((uv_handle_t *)&r->async);
    j = next;
  }
  napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

static void on_closed(uv_handle_t *handle) {
  struct rq_env *r = handle->data;
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}

// The env going away (registered only once the thread runs): the thread finishes the request it
// is on and ends; nothing is settled any more (there is no JavaScript left to see it).
static void cleanup(void *arg) {
  struct rq_env *r = arg;
  pthread_mutex_lock(&r->mu);
  r->stopping = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL);
  close(r->home);
  for (struct rq_job *j = r->todo, *n; j; j = n) { n = j->next; free_job(j); }
  for (struct rq_job *j = r->done, *n; j; j = n) { n = j->next; free_job(j); }
  r->todo = r->done = NULL;
  napi_async_destroy(r->env, r->ctx);
  napi_delete_reference(r->env, r->resource);
  uv_close((uv_handle_t *)&r->async, on_closed);
}

/** nlRequestAsync(nsPath, request, timeoutMs?): a promise of the reply's datagrams (see the top). */
static napi_value nl_request_async(napi_env env, napi_callback_info info) {
  struct rq_env *r = NULL;
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&r) != napi_ok || argc < 2 || !r)
    return nn_throw_errno(env, "nlRequestAsync(nsPath, request, timeoutMs?)", EINVAL);
  struct rq_job *j = calloc(1, sizeof *j);
  if (!j) return nn_throw_errno(env, "calloc", ENOMEM);
  size_t len = 0;
  bool isbuf = false;
  void *req = NULL;
  if (napi_get_value_string_utf8(env, argv[0], j->path, sizeof j->path, &len) != napi_ok || len == 0 || len >= sizeof j->path - 1 ||
      napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf || napi_get_buffer_info(env, argv[1], &req, &j->reqlen) != napi_ok ||
      j->reqlen < sizeof(struct nlmsghdr)) {
    free(j);
    return nn_throw_errno(env, "nlRequestAsync(nsPath, request, timeoutMs?)", EINVAL);
  }
  j->req = malloc(j->reqlen);
  if (!j->req) { free(j); return nn_throw_errno(env, "malloc", ENOMEM); }
  memcpy(j->req, req, j->reqlen);
  j->timeout_ms = 5000;
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    int32_t ms = 0;
    if (t == napi_number && napi_get_value_int32(env, argv[2], &ms) == napi_ok && ms > 0) j->timeout_ms = ms;
  }
  napi_value promise;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) { free_job(j); return nn_throw_errno(env, "napi_create_promise", ENOMEM); }
  if (r->pending++ == 0) uv_ref((uv_handle_t *)&r->async);
  pthread_mutex_lock(&r->mu);
  if (r->todo_tail) r->todo_tail->next = j; else r->todo = j;
  r->todo_tail = j;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return promise;
}

napi_value request_init(napi_env env, napi_value exports) {
  struct rq_env *r = calloc(1, sizeof *r);
  uv_loop_t *loop = NULL;
  if (!r || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_async_init(loop, &r->async, on_done) != 0) {
    free(r);
    return exports;  // no nlRequestAsync: the TypeScript side then sends changes synchronously
  }
  r->env = env;
  r->async.data = r;
  // The thread and its descriptor of the daemon's namespace are made now, once, not at the first
  // request: descriptors and threads that appear later would look like leaks.
  r->home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  uv_unref((uv_handle_t *)&r->async);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  napi_value name, resource;
  napi_create_string_utf8(env, "netnsd:netlink-request", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &r->resource);
  napi_async_init(env, resource, name, &r->ctx);
  napi_property_descriptor props[] = {
      {"nlRequestAsync", NULL, nl_request_async, NULL, NULL, NULL, napi_default, r},
  };
  if (r->home < 0 || pthread_create(&r->thread, NULL, worker, r) != 0) {
    // No thread: no nlRequestAsync (changes are then sent synchronously).
    if (r->home >= 0) close(r->home);
    napi_async_destroy(env, r->ctx);
    napi_delete_reference(env, r->resource);
    uv_close((uv_handle_t *)&r->async, on_closed);
    return exports;
  }
  napi_define_properties(env, exports, 1, props);
  napi_add_env_cleanup_hook(env, cleanup, r);
  return exports;
}
