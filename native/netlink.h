// netnsd native helper: the rtnetlink part (netlink.c), registered by netns.c's module init.
#ifndef NETNSD_NETLINK_H
#define NETNSD_NETLINK_H
#include <node_api.h>

/** Adds nlOpen, nlDump, nlWatch and nlClose to the module's exports. */
napi_value netlink_init(napi_env env, napi_value exports);

#endif
