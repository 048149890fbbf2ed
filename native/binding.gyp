{
  "targets": [
    {
      "target_name": "netns",
      "sources": ["netns.c", "netlink.c", "enter.c", "request.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
