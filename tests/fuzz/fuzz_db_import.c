/* The tuning-record importer (autotune/db_io.c, `mfx db import`): JSON
 * lines into a fresh in-memory database; any input is imported or refused
 * as a whole, never a crash. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "mfx/autotune.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > 1 << 16) return 0;
  mfx_tune_db *db;
  if (mfx_tune_db_open(":memory:", &db) != MFX_OK) abort();
  FILE *in = fmemopen((void *)data, size, "r");
  if (in) {
    int added = -1, skipped = -1;
    mfx_status rc = mfx_tune_db_import(db, in, "fuzz.jsonl", &added, &skipped);
    if (rc != MFX_OK && (added != 0 || skipped != 0)) abort(); /* all or nothing */
    fclose(in);
  }
  mfx_tune_db_close(db);
  return 0;
}
