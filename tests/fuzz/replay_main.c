/* A main() for the fuzz targets where libFuzzer is not available (gcc, the
 * plain and sanitizer test trees): runs each file named on the command line
 * (or each file in a named directory) through LLVMFuzzerTestOneInput once.
 * The seed corpora and the regressions (inputs that once crashed) replay
 * this way in every build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return 1;
  }
  size_t cap = 4096, size = 0, n;
  uint8_t *data = malloc(cap);
  while (data && (n = fread(data + size, 1, cap - size, f)) > 0) {
    size += n;
    if (size == cap) data = realloc(data, cap *= 2);
  }
  fclose(f);
  if (!data) return 1;
  LLVMFuzzerTestOneInput(data, size);
  free(data);
  return 0;
}

static int replay(const char *path, int *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: no such file or directory: %s\n", path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    ++*count;
    return replay_file(path);
  }
  DIR *d = opendir(path);
  if (!d) return 1;
  int bad = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    bad |= replay(child, count);
  }
  closedir(d);
  return bad;
}

int main(int argc, char **argv) {
  int bad = 0, count = 0;
  for (int i = 1; i < argc; i++) bad |= replay(argv[i], &count);
  printf("replayed %d inputs\n", count);
  return bad || count == 0;
}
