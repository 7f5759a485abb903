/* mfx cache: the kernel cache on disk (compiler/cache.c): info, clear. */
#include <stdio.h>
#include <string.h>

#include "../compiler/cache.h"
#include "mfx_cli.h"

int tool_cmd_cache(int argc, char **argv);

static const char tool_cache_usage[] =
    "usage: mfx cache info|clear\n"
    "\n"
    "The kernel cache: host objects of JIT-compiled kernels (*.mfxk) and the PTX\n"
    "of GPU kernels (*.mfxp), each keyed by its loop IR, target (CPU features, or\n"
    "the sm), LLVM and mfx versions, this mfx build and LLVM pipeline, in\n"
    "$MFX_CACHE_DIR, else $XDG_CACHE_HOME/mfx, else ~/.cache/mfx. MFX_CACHE=0\n"
    "turns it off; MFX_CACHE_MAX_MB bounds its size (default 256; least recently\n"
    "used go, of either kind).\n"
    "  info    directory, enabled, entries (cpu: host objects, gpu: PTX), bytes, limit,\n"
    "          build (the hash of this binary in every key: a rebuild starts afresh)\n"
    "  clear   remove every entry\n";

static int tool_cache_info(void) {
  const char *dir = mfx_cache_dir();
  long entries = 0, kinds[MFX_CACHE_KINDS] = {0};
  long long bytes = 0;
  if (dir != NULL &&
      (mfx_cache_scan(dir, &entries, &bytes) != 0 || mfx_cache_scan_kinds(dir, kinds) != 0)) {
    fprintf(stderr, "mfx cache info: cannot read the directory %s\n", dir);
    return 1;
  }
  printf("dir      %s\n", dir != NULL ? dir : "(none)");
  printf("enabled  %s\n", dir != NULL ? "yes" : "no");
  printf("entries  %ld\n", entries);
  printf("cpu      %ld\n", kinds[MFX_CACHE_OBJECT]);
  printf("gpu      %ld\n", kinds[MFX_CACHE_PTX]);
  printf("bytes    %lld\n", bytes);
  printf("limit    %lld\n", mfx_cache_limit_bytes());
  printf("build    %s\n", mfx_cache_build_id());
  return 0;
}

static int tool_cache_clear(void) {
  const char *dir = mfx_cache_dir();
  if (dir == NULL) {
    fprintf(stderr, "mfx cache clear: the kernel cache is off (MFX_CACHE=0 or no usable "
                    "directory); nothing removed\n");
    return 1;
  }
  long removed = 0;
  if (mfx_cache_clear(dir, &removed) != 0) {
    fprintf(stderr, "mfx cache clear: cannot read the directory %s\n", dir);
    return 1;
  }
  printf("removed %ld entries from %s\n", removed, dir);
  return 0;
}

int tool_cmd_cache(int argc, char **argv) {
  static const char *const commands[] = {"info", "clear", NULL};
  int which = -1;
  const tool_pos positionals[] = {
      {.name = "COMMAND", .required = 1, .choices = commands, .index = &which,
       .noun = "command", .hint = "; expected info or clear"},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "cache", .usage = tool_cache_usage,
                     .positionals = positionals};
  int rc = tool_args_parse(&cl, argc, argv);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  if (rc != 0) return rc;
  return which == 0 ? tool_cache_info() : tool_cache_clear();
}
