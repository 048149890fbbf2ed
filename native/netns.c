// netnsd native helper: the few namespace operations that iproute2 can only do by forking a
// process per namespace (`ip -n NS link set lo up`, `ip netns set NS auto`, `ip netns add NS`). Doing them here costs
// microseconds instead of a process spawn.
//
// Safety: setns(CLONE_NEWNET) changes the namespace of the *calling thread* only. Every function
// that must act inside a namespace does it within one synchronous call through nn_in_netns
// (native/enter.c), which returns the thread to the daemon's namespace before the call returns
// (or aborts the process if it cannot), so no JavaScript ever runs in another namespace.
// Functions that speak rtnetlink about a namespace (nsid) run from the daemon's own namespace and
// name the target by file descriptor, never by IFLA_TARGET_NETNSID (see DESIGN.md 7: dangerous).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <node_api.h>

#include "netlink.h"

#define NN_MAX_PATH 4096

// An Error with .code (the errno's name) and .errno, message "what: strerror". Loop thread only.
napi_value nn_errno_error(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, strerrorname_np(err) ? strerrorname_np(err) : "EUNKNOWN",
                          NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errnum;
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  return error;
}

napi_value nn_throw_errno(napi_env env, const char *what, int err) {
  napi_throw(env, nn_errno_error(env, what, err));
  return NULL;
}

static int get_path_arg(napi_env env, napi_callback_info info, char *path) {
  size_t argc = 1;
  napi_value argv[1];
  size_t len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return -1;
  if (napi_get_value_string_utf8(env, argv[0], path, NN_MAX_PATH, &len) != napi_ok) return -1;
  if (len == 0 || len >= NN_MAX_PATH - 1) return -1;
  return 0;
}

// ---- work done inside a namespace (nn_in_netns) ----

struct in_ns_job {
  const char *path;
  int op;  // 0 = loopback up, 1 = list link names, 2 = read sysctls, 3 = write sysctls
  int err;
  const char *what;
  int count;
  char (*names)[IF_NAMESIZE];  // malloc'ed by the thread, freed by the caller
  // sysctls: `n` paths under /proc/sys/net/ (checked by the caller), values in or out
  int n;
  char **keys;
  char **values;   // write: the values; read: malloc'ed by the thread (NULL = no such key)
  int failed;      // write: index of the key that failed
};

#define NN_MAX_SYSCTL 4096

// /proc/sys/net is resolved against the network namespace of the task that opens the file,
// so after setns() this thread reads and writes the namespace's values, never the host's.
static void sysctl_rw(struct in_ns_job *job) {
  char path[NN_MAX_PATH];
  for (int i = 0; i < job->n; i++) {
    snprintf(path, sizeof path, "/proc/sys/net/%s", job->keys[i]);
    if (job->op == 2) {
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) { if (errno == ENOENT) continue; job->err = errno; job->what = "open sysctl"; job->failed = i; return; }
      char *buf = malloc(NN_MAX_SYSCTL);
      ssize_t r = buf ? read(fd, buf, NN_MAX_SYSCTL - 1) : -1;
      int e = errno;
      close(fd);
      if (r < 0) { free(buf); job->err = buf ? e : ENOMEM; job->what = "read sysctl"; job->failed = i; return; }
      buf[r] = 0;
      job->values[i] = buf;
    } else {
      int fd = open(path, O_WRONLY | O_CLOEXEC);
      if (fd < 0) { job->err = errno; job->what = "open sysctl"; job->failed = i; return; }
      size_t len = strlen(job->values[i]);
      ssize_t w = write(fd, job->values[i], len);
      int e = errno;
      close(fd);
      if (w < 0 || (size_t)w != len) { job->err = w < 0 ? e : EIO; job->what = "write sysctl"; job->failed = i; return; }
    }
  }
}

// Inside the namespace (nn_in_netns).
static void in_ns(void *arg) {
  struct in_ns_job *job = arg;
  if (job->op >= 2) {
    sysctl_rw(job);
  } else if (job->op == 0) {
    // A socket belongs to the namespace its creating thread is in.
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) { job->err = errno; job->what = "socket"; return; }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) { job->err = errno; job->what = "SIOCGIFFLAGS lo"; close(s); return; }
    if (!(ifr.ifr_flags & IFF_UP)) {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) { job->err = errno; job->what = "SIOCSIFFLAGS lo"; close(s); return; }
    }
    close(s);
  } else {
    struct if_nameindex *list = if_nameindex();
    if (!list) { job->err = errno; job->what = "if_nameindex"; return; }
    int total = 0;
    for (struct if_nameindex *p = list; p->if_index != 0; p++) total++;
    job->names = malloc((size_t)(total ? total : 1) * IF_NAMESIZE);
    if (!job->names) { job->err = ENOMEM; job->what = "malloc"; if_freenameindex(list); return; }
    for (int n = 0; n < total; n++) {
      strncpy(job->names[n], list[n].if_name, IF_NAMESIZE - 1);
      job->names[n][IF_NAMESIZE - 1] = 0;
    }
    job->count = total;
    if_freenameindex(list);
  }
}

static int run_in_ns(struct in_ns_job *job) {
  const char *what = NULL;
  int err = nn_in_netns(job->path, in_ns, job, &what);
  if (err) { job->err = err; job->what = what; }
  return job->err ? -1 : 0;
}

/** loopbackUp(path): bring `lo` up inside the namespace bound at path. */
static napi_value loopback_up(napi_env env, napi_callback_info info) {
  char path[NN_MAX_PATH];
  if (get_path_arg(env, info, path) < 0) return nn_throw_errno(env, "loopbackUp(path)", EINVAL);
  struct in_ns_job *job = calloc(1, sizeof *job);
  if (!job) return nn_throw_errno(env, "calloc", ENOMEM);
  job->path = path;
  job->op = 0;
  napi_value result = NULL;
  if (run_in_ns(job) < 0) nn_throw_errno(env, job->what, job->err);
  else napi_get_undefined(env, &result);
  free(job);
  return result;
}

/** The link names an in_ns_job listed (op 1), as an array of strings. */
static napi_value names_array(napi_env env, char (*names)[IF_NAMESIZE], int count) {
  napi_value list;
  napi_create_array_with_length(env, (size_t)count, &list);
  for (int i = 0; i < count; i++) {
    napi_value name;
    napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, list, (uint32_t)i, name);
  }
  return list;
}

/** linkNames(path): names of every link inside the namespace bound at path. */
static napi_value link_names(napi_env env, napi_callback_info info) {
  char path[NN_MAX_PATH];
  if (get_path_arg(env, info, path) < 0) return nn_throw_errno(env, "linkNames(path)", EINVAL);
  struct in_ns_job *job = calloc(1, sizeof *job);
  if (!job) return nn_throw_errno(env, "calloc", ENOMEM);
  job->path = path;
  job->op = 1;
  napi_value result = NULL;
  if (run_in_ns(job) < 0) nn_throw_errno(env, job->what, job->err);
  else result = names_array(env, job->names, job->count);
  free(job->names);
  free(job);
  return result;
}

// sysctl keys come as paths relative to /proc/sys/net/; netns-sysctl.ts allowlists them, and
// this refuses anything that could leave that directory all the same.
static int safe_key(const char *k) {
  if (!*k || k[0] == '/' || strstr(k, "..")) return 0;
  for (const char *c = k; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.' || *c == '/')) return 0;
  return 1;
}

static char *dup_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= NN_MAX_PATH) return NULL;
  char *out = malloc(len + 1);
  if (out) napi_get_value_string_utf8(env, v, out, len + 1, &len);
  return out;
}

static void free_job_strings(struct in_ns_job *job) {
  for (int i = 0; i < job->n; i++) {
    if (job->keys) free(job->keys[i]);
    if (job->values) free(job->values[i]);
  }
  free(job->keys);
  free(job->values);
}

/**
 * sysctls(path, keys, values?): without values, reads each key (string, or null when the
 * namespace has no such key); with values, writes them in order and throws at the first failure
 * with `.index` set to it.
 */
static napi_value sysctls(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[NN_MAX_PATH];
  size_t len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, NN_MAX_PATH, &len) != napi_ok || len == 0)
    return nn_throw_errno(env, "sysctls(path, keys, values?)", EINVAL);
  int writing = argc >= 3;
  uint32_t n = 0;
  if (napi_get_array_length(env, argv[1], &n) != napi_ok || n > 100000) return nn_throw_errno(env, "sysctls keys", EINVAL);
  if (writing) {
    uint32_t m = 0;
    if (napi_get_array_length(env, argv[2], &m) != napi_ok || m != n) return nn_throw_errno(env, "sysctls values", EINVAL);
  }
  struct in_ns_job *job = calloc(1, sizeof *job);
  if (!job) return nn_throw_errno(env, "calloc", ENOMEM);
  job->path = path;
  job->op = writing ? 3 : 2;
  job->n = (int)n;
  job->keys = calloc(n ? n : 1, sizeof(char *));
  job->values = calloc(n ? n : 1, sizeof(char *));
  napi_value result = NULL;
  int bad = !job->keys || !job->values;
  for (uint32_t i = 0; !bad && i < n; i++) {
    napi_value k;
    napi_get_element(env, argv[1], i, &k);
    job->keys[i] = dup_string(env, k);
    if (!job->keys[i] || !safe_key(job->keys[i])) bad = 1;
    if (writing && !bad) {
      napi_value v;
      napi_get_element(env, argv[2], i, &v);
      job->values[i] = dup_string(env, v);
      if (!job->values[i]) bad = 1;
    }
  }
  if (bad) {
    nn_throw_errno(env, "sysctls: bad key or value", EINVAL);
  } else if (run_in_ns(job) < 0) {
    nn_throw_errno(env, job->what, job->err);
    napi_value exc, idx;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
      napi_create_int32(env, job->failed, &idx);
      napi_set_named_property(env, exc, "index", idx);
      napi_throw(env, exc);
    }
  } else if (writing) {
    napi_get_undefined(env, &result);
  } else {
    napi_create_array_with_length(env, n, &result);
    for (uint32_t i = 0; i < n; i++) {
      napi_value v;
      if (job->values[i]) napi_create_string_utf8(env, job->values[i], NAPI_AUTO_LENGTH, &v);
      else napi_get_null(env, &v);
      napi_set_element(env, result, i, v);
    }
  }
  free_job_strings(job);
  free(job);
  return result;
}

// ---- nsid: rtnetlink from the daemon's own namespace ----

struct nsid_req {
  struct nlmsghdr nh;
  struct rtgenmsg g;
  char pad[3];
  char attrs[64];
};

static void add_attr_u32(struct nsid_req *req, unsigned short type, unsigned int value) {
  struct rtattr *rta = (struct rtattr *)((char *)req + NLMSG_ALIGN(req->nh.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(sizeof value);
  memcpy(RTA_DATA(rta), &value, sizeof value);
  req->nh.nlmsg_len = NLMSG_ALIGN(req->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// Sends one request and reads its answer. Returns 0 and sets *nsid (when asked) or -errno.
static int nsid_talk(int nlfd, int type, int nsfd, int want_nsid, int *nsid) {
  // Several threads may talk at once (netnsAdd's pool threads), each on a socket of its own.
  static _Atomic unsigned int seq = 1;
  struct nsid_req req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtgenmsg));
  req.nh.nlmsg_type = type;
  req.nh.nlmsg_flags = NLM_F_REQUEST | (type == RTM_NEWNSID ? NLM_F_ACK : 0);
  req.nh.nlmsg_seq = ++seq;
  req.g.rtgen_family = AF_UNSPEC;
  add_attr_u32(&req, NETNSA_FD, (unsigned int)nsfd);
  if (type == RTM_NEWNSID) add_attr_u32(&req, NETNSA_NSID, (unsigned int)NETNSA_NSID_NOT_ASSIGNED);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(nlfd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
    return -errno;
  char buf[8192];
  for (;;) {
    ssize_t n = recv(nlfd, buf, sizeof buf, 0);
    if (n < 0) { if (errno == EINTR) continue; return errno == EAGAIN ? -ETIMEDOUT : -errno; }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned int)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != req.nh.nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        return e->error;  // 0 is the ACK
      }
      if (h->nlmsg_type == RTM_NEWNSID && want_nsid) {
        int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(struct rtgenmsg));
        struct rtattr *rta = (struct rtattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct rtgenmsg)));
        *nsid = NETNSA_NSID_NOT_ASSIGNED;
        for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
          if (rta->rta_type == NETNSA_NSID) memcpy(nsid, RTA_DATA(rta), sizeof *nsid);
        return 0;
      }
    }
  }
}

// The namespace bound at path's nsid in ours (-1: none), given one first with `assign` when it
// has none. No N-API: netnsAdd's pool thread calls it too. 0, or -errno with *what set.
static int nsid_of(const char *path, int assign, int *nsid, const char **what) {
  *nsid = NETNSA_NSID_NOT_ASSIGNED;
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) { *what = "open namespace"; return -errno; }
  int nlfd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nlfd < 0) { int e = errno; close(nsfd); *what = "netlink socket"; return -e; }
  // The kernel answers at once; a bound keeps a lost answer from blocking the thread forever.
  struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(nlfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int rc = 0;
  if (assign) {
    rc = nsid_talk(nlfd, RTM_NEWNSID, nsfd, 0, NULL);
    if (rc == -EEXIST) rc = 0;  // it already has one: fine, read it below
  }
  if (rc == 0) rc = nsid_talk(nlfd, RTM_GETNSID, nsfd, 1, nsid);
  close(nlfd);
  close(nsfd);
  if (rc < 0) *what = assign ? "RTM_NEWNSID" : "RTM_GETNSID";
  return rc;
}

// mode 0 = get only, 1 = assign (auto) when missing, then get.
static napi_value nsid_common(napi_env env, napi_callback_info info, int assign) {
  char path[NN_MAX_PATH];
  if (get_path_arg(env, info, path) < 0) return nn_throw_errno(env, "nsid(path)", EINVAL);
  int nsid;
  const char *what = NULL;
  int rc = nsid_of(path, assign, &nsid, &what);
  if (rc < 0) return nn_throw_errno(env, what, -rc);
  napi_value result;
  napi_create_int32(env, nsid, &result);
  return result;
}

/** assignNsid(path): give the namespace an nsid in ours when it has none; returns the nsid. */
static napi_value assign_nsid(napi_env env, napi_callback_info info) { return nsid_common(env, info, 1); }

/** getNsid(path): the namespace's nsid in ours, or -1. */
static napi_value get_nsid(napi_env env, napi_callback_info info) { return nsid_common(env, info, 0); }

// ---- netnsAdd: `ip netns add NAME` without a process ----
//
// What iproute2 6.1 ip/ipnetns.c netns_add does, step by step:
//  1. mkdir the run directory (0755) unless it is there;
//  2. make it a shared mount (`mount --make-rshared`), bind-mounting it on itself first when it
//     is not a mount point yet (the first mount answers EINVAL), so that unmounting a namespace
//     file in one mount namespace unmounts it in all of them and the namespace is freed sooner.
//     iproute2 holds an exclusive flock on the directory around this, because several `ip netns
//     add` racing here stacked bind mounts recursively until the machine locked up
//     (https://bugs.debian.org/949235); it proceeds without the lock when flock fails. We take
//     the same flock (other processes on the machine run `ip netns add` too) and do this once
//     per process and directory (the static below, under a mutex), not once per namespace;
//  3. create the namespace file, O_RDONLY|O_CREAT|O_EXCL mode 0: EEXIST is "the name is taken";
//  4. unshare(CLONE_NEWNET) and bind-mount the calling task's namespace file on it.
// Step 4 runs on a pthread of its own made for it: unshare() moves the calling *thread* into the
// new namespace for good, so it must be neither the event loop nor a libuv pool thread. The
// source is /proc/thread-self/ns/net (/proc/self/ns/net is the main thread's, the daemon's own
// namespace). The thread then exits; the bind mount keeps the namespace alive.
// On failure after step 3 the file is removed (nothing is mounted on it: the mount is the last
// step), as iproute2 removes it.
//
// The whole job runs as napi_async_work: steps 1-3 on a libuv pool thread, which waits for the
// step-4 thread; no N-API call is made off the loop thread, the answer is a promise settled in
// the completion callback (on the loop thread), which also frees the job. Several creations
// run at once, one pool thread each.

static pthread_mutex_t run_dir_mutex = PTHREAD_MUTEX_INITIALIZER;
static char shared_run_dir[NN_MAX_PATH];  // the directory made shared already (under the mutex)

#define NN_MAX_DUMPS 8

struct add_job {
  napi_async_work work;
  napi_deferred deferred;
  char path[NN_MAX_PATH];
  char dir[NN_MAX_PATH];
  int err;
  const char *what;
  int loopback;     // asked: bring lo up in the new namespace too
  int loopback_up;  // done (a failure there leaves the namespace made, lo down: the caller does it then)
  // With `more` asked: what the steps after the add would read, read here off the event loop. A
  // failure leaves them unset (nsid -1, names NULL): the caller then reads them itself.
  int more;
  int nsid;
  char (*names)[IF_NAMESIZE];  // malloc'ed by the thread, freed by the completion
  int count;
  // Dump requests to answer from inside the new namespace once it has its nsid (the monitor's
  // seed, taken here off the event loop): copies of the caller's, and the answers (or -errno).
  int ndumps;
  unsigned char *reqs[NN_MAX_DUMPS];
  size_t reqlens[NN_MAX_DUMPS];
  struct nn_raw_dump dumps[NN_MAX_DUMPS];
  int dump_err[NN_MAX_DUMPS];
};

static void free_add_job(struct add_job *job) {
  free(job->names);
  for (int i = 0; i < job->ndumps; i++) {
    free(job->reqs[i]);
    nn_raw_dump_free(&job->dumps[i]);
  }
  free(job);
}

static int fail(struct add_job *job, const char *what, int err) {
  job->err = err;
  job->what = what;
  return -1;
}

static int prepare_run_dir(struct add_job *job) {
  if (mkdir(job->dir, S_IRWXU | S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH) < 0 && errno != EEXIST)
    return fail(job, "mkdir netns directory", errno);
  pthread_mutex_lock(&run_dir_mutex);
  int rc = 0;
  if (strcmp(shared_run_dir, job->dir) != 0) {
    int lock = open(job->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0) {
      rc = fail(job, "open netns directory", errno);
    } else {
      int locked = flock(lock, LOCK_EX) == 0;
      int made_mount = 0;
      while (mount("", job->dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
        if (errno != EINVAL || made_mount) { rc = fail(job, "mount --make-shared netns directory", errno); break; }
        if (mount(job->dir, job->dir, "none", MS_BIND | MS_REC, NULL) < 0) { rc = fail(job, "mount --bind netns directory", errno); break; }
        made_mount = 1;
      }
      if (locked) flock(lock, LOCK_UN);
      close(lock);
      if (rc == 0) snprintf(shared_run_dir, sizeof shared_run_dir, "%s", job->dir);
    }
  }
  pthread_mutex_unlock(&run_dir_mutex);
  return rc;
}

static void *add_thread(void *arg) {
  struct add_job *job = arg;
  if (unshare(CLONE_NEWNET) < 0) { fail(job, "unshare(CLONE_NEWNET)", errno); return NULL; }
  if (mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND, NULL) < 0) { fail(job, "mount --bind namespace", errno); return NULL; }
  // This thread is inside the new namespace already: lo comes up here, with no trip of its own.
  if (job->loopback) {
    struct in_ns_job lo;
    memset(&lo, 0, sizeof lo);
    lo.op = 0;
    in_ns(&lo);
    job->loopback_up = lo.err == 0;
  }
  if (job->more) {
    struct in_ns_job list;
    memset(&list, 0, sizeof list);
    list.op = 1;
    in_ns(&list);
    if (list.err == 0) { job->names = list.names; job->count = list.count; }
  }
  return NULL;
}

static void add_work(struct add_job *job);

// libuv pool thread: no N-API here.
static void add_execute(napi_env env, void *data) {
  struct add_job *job = data;
  // A libuv pool thread: background from now on (add_thread inherits it), and it stays so. A
  // pool thread that went back to SCHED_OTHER after its work preempted the event loop on its next
  // wake-up (uv_queue_work signals it from the loop's own CPU): the loop, measured in the units
  // benchmark, then stood still 20-37 ms per 200 namespaces inside netnsAdd's call. What else
  // runs on the pool (fs, dns) is background work too.
  nn_background();
  add_work(job);
}

static void add_work(struct add_job *job) {
  if (prepare_run_dir(job) < 0) return;
  int fd = open(job->path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) { fail(job, "create namespace file", errno); return; }
  close(fd);
  pthread_t t;
  int rc = pthread_create(&t, NULL, add_thread, job);
  if (rc != 0) fail(job, "pthread_create", rc);
  else pthread_join(t, NULL);
  if (job->err) { unlink(job->path); return; }
  // From this (pool) thread, which is in the daemon's namespace: the new one's nsid in ours.
  const char *what = NULL;
  if (job->more && nsid_of(job->path, 1, &job->nsid, &what) < 0) job->nsid = NETNSA_NSID_NOT_ASSIGNED;
  // The dumps come after the nsid: from then on the monitor's socket hears the namespace, so
  // whatever changes after a dump arrives as an event, and nothing falls between.
  if (job->ndumps == 0) return;
  int err = 0;
  int nl = job->nsid >= 0 ? nn_netlink_socket(job->path, 1 << 20, &what, &err) : -1;
  for (int i = 0; i < job->ndumps; i++)
    job->dump_err[i] = nl < 0 ? -(err ? err : ENOENT) : nn_dump_raw(nl, job->reqs[i], job->reqlens[i], 2000, &job->dumps[i]);
  if (nl >= 0) close(nl);
}

// Loop thread.
static void add_complete(napi_env env, napi_status status, void *data) {
  struct add_job *job = data;
  if (status == napi_ok && job->err == 0) {
    napi_value answer;
    if (job->more) {
      napi_value v;
      napi_create_object(env, &answer);
      napi_get_boolean(env, job->loopback && job->loopback_up, &v);
      napi_set_named_property(env, answer, "loopbackUp", v);
      napi_create_int32(env, job->nsid, &v);
      napi_set_named_property(env, answer, "nsid", v);
      if (job->names) v = names_array(env, job->names, job->count);
      else napi_get_null(env, &v);
      napi_set_named_property(env, answer, "linkNames", v);
      if (job->ndumps > 0) {
        napi_value list;
        napi_create_array_with_length(env, job->ndumps, &list);
        for (int i = 0; i < job->ndumps; i++) {
          napi_value one, datagrams = job->dump_err[i] < 0 ? NULL : nn_raw_dump_buffers(env, &job->dumps[i]);
          if (!datagrams) {
            napi_get_null(env, &one);
          } else {
            napi_value flag;
            napi_create_object(env, &one);
            napi_set_named_property(env, one, "datagrams", datagrams);
            napi_get_boolean(env, job->dumps[i].interrupted, &flag);
            napi_set_named_property(env, one, "interrupted", flag);
          }
          napi_set_element(env, list, i, one);
        }
        napi_set_named_property(env, answer, "dumps", list);
      }
    } else if (job->loopback) {
      napi_get_boolean(env, job->loopback_up, &answer);
    } else {
      napi_get_undefined(env, &answer);
    }
    napi_resolve_deferred(env, job->deferred, answer);
  } else {
    int err = job->err ? job->err : ECANCELED;
    napi_reject_deferred(env, job->deferred, nn_errno_error(env, job->err ? job->what : "netnsAdd", err));
  }
  napi_delete_async_work(env, job->work);
  free_add_job(job);
}

/**
 * netnsAdd(path, loopbackUp?, more?): a promise; creates a network namespace bound at path (as
 * `ip netns add`). With loopbackUp, lo is brought up too and the promise says whether that
 * worked. With more, it resolves with {loopbackUp, nsid, linkNames}: the namespace is also given
 * an nsid in ours and its links' names are read (what namespace creation does next), on the same
 * threads; a failure of either leaves it -1 / null. `dumps` (with more): up to NN_MAX_DUMPS
 * rtnetlink dump requests answered from inside the new namespace after it has its nsid; the answer
 * then has `dumps`, for each {datagrams, interrupted} or null (it failed).
 */
static napi_value netns_add(napi_env env, napi_callback_info info) {
  struct add_job *job = calloc(1, sizeof *job);
  if (!job) return nn_throw_errno(env, "calloc", ENOMEM);
  {
    size_t argc = 4;
    napi_value argv[4];
    bool flags[2] = {false, false};
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok) {
      for (size_t i = 1; i < argc && i < 3; i++) {
        napi_valuetype t = napi_undefined;
        if (napi_typeof(env, argv[i], &t) == napi_ok && t == napi_boolean) napi_get_value_bool(env, argv[i], &flags[i - 1]);
      }
    }
    job->loopback = flags[0] ? 1 : 0;
    job->more = flags[1] ? 1 : 0;
    job->nsid = NETNSA_NSID_NOT_ASSIGNED;
    bool list = false;
    uint32_t n = 0;
    if (job->more && argc >= 4 && napi_is_array(env, argv[3], &list) == napi_ok && list && napi_get_array_length(env, argv[3], &n) == napi_ok) {
      if (n > NN_MAX_DUMPS) { free_add_job(job); return nn_throw_errno(env, "netnsAdd dumps", E2BIG); }
      for (uint32_t i = 0; i < n; i++) {
        napi_value el;
        bool isbuf = false;
        void *data = NULL;
        size_t len = 0;
        if (napi_get_element(env, argv[3], i, &el) != napi_ok || napi_is_buffer(env, el, &isbuf) != napi_ok || !isbuf ||
            napi_get_buffer_info(env, el, &data, &len) != napi_ok || len < sizeof(struct nlmsghdr)) {
          free_add_job(job);
          return nn_throw_errno(env, "netnsAdd dumps", EINVAL);
        }
        job->reqs[i] = malloc(len);
        if (!job->reqs[i]) { free_add_job(job); return nn_throw_errno(env, "malloc", ENOMEM); }
        memcpy(job->reqs[i], data, len);
        job->reqlens[i] = len;
        job->ndumps = (int)i + 1;
      }
    }
  }
  const char *slash;
  if (get_path_arg(env, info, job->path) < 0 || job->path[0] != '/' || !(slash = strrchr(job->path, '/')) ||
      slash == job->path || !slash[1] || !strcmp(slash + 1, ".") || !strcmp(slash + 1, "..")) {
    free_add_job(job);
    return nn_throw_errno(env, "netnsAdd(path)", EINVAL);
  }
  memcpy(job->dir, job->path, (size_t)(slash - job->path));
  job->dir[slash - job->path] = 0;
  napi_value promise, name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) { free_add_job(job); return nn_throw_errno(env, "napi_create_promise", ENOMEM); }
  napi_create_string_utf8(env, "netnsAdd", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, add_execute, add_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    // The promise was made: settle it rather than leave it pending.
    napi_reject_deferred(env, job->deferred, nn_errno_error(env, "napi_queue_async_work", ENOMEM));
    if (job->work) napi_delete_async_work(env, job->work);
    free_add_job(job);
  }
  return promise;
}

/**
 * background(tid?): the thread tid of this process (default: the calling one) SCHED_BATCH from
 * now on, for a helper thread such as the event log's writer: waking it then never preempts the
 * event loop. Whether that worked. (By tid, so that the writer thread need not load the addon,
 * with the request thread and sockets that each env loading it gets.)
 */
static napi_value background(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ok;
  int32_t tid = 0;
  napi_valuetype t = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1 && napi_typeof(env, argv[0], &t) == napi_ok && t == napi_number)
    napi_get_value_int32(env, argv[0], &tid);
  napi_get_boolean(env, tid >= 0 && nn_background_thread(tid) == 0, &ok);
  return ok;
}

// Keeps this library mapped for good. Node unloads an addon when the last env that loaded it
// ends, which for one loaded by a worker thread is that worker's end; but the close callbacks of
// the handles this addon closes in its env cleanup hooks (request.c's async, netlink.c's polls)
// run after that, in the worker's last loop turn, and jumped into unmapped code (a segfault when
// any worker that had loaded the addon ended). RTLD_NODELETE on the library already loaded.
static void pin_self(void) {
  Dl_info info;
  if (dladdr((void *)pin_self, &info) && info.dli_fname) dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static napi_value init(napi_env env, napi_value exports) {
  pin_self();
  napi_property_descriptor props[] = {
      {"background", NULL, background, NULL, NULL, NULL, napi_default, NULL},
      {"loopbackUp", NULL, loopback_up, NULL, NULL, NULL, napi_default, NULL},
      {"linkNames", NULL, link_names, NULL, NULL, NULL, napi_default, NULL},
      {"assignNsid", NULL, assign_nsid, NULL, NULL, NULL, napi_default, NULL},
      {"getNsid", NULL, get_nsid, NULL, NULL, NULL, napi_default, NULL},
      {"sysctls", NULL, sysctls, NULL, NULL, NULL, napi_default, NULL},
      {"netnsAdd", NULL, netns_add, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  nn_enter_init();  // a failure shows at the first call that needs it
  return request_init(env, netlink_init(env, exports));
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
