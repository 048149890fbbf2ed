{
  "targets": [
    {
      "target_name": "netns",
      "sources": ["netns.c", "netlink.c", "enter.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
