/* The tuning database's internals, shared by db.c, db_io.c and lookup.c. */
#ifndef MFX_AUTOTUNE_DB_INTERNAL_H
#define MFX_AUTOTUNE_DB_INTERNAL_H

#include <sqlite3.h>

#include "autotune_internal.h"

struct mfx_tune_db {
  sqlite3 *h;
  char path[1024];
};

/* "tune database PATH: what: sqlite's message", returned as st. */
mfx_status tune_db_error(mfx_tune_db *db, mfx_status st, const char *what);
mfx_status tune_db_prepare(mfx_tune_db *db, const char *sql, sqlite3_stmt **out);
/* sqlite3_step, retrying while another connection holds a lock. */
int tune_db_step(sqlite3_stmt *stmt);
/* Statements that return no rows (retrying while busy). */
mfx_status tune_db_exec(mfx_tune_db *db, const char *sql);
/* A write transaction (BEGIN IMMEDIATE, retrying while busy). */
mfx_status tune_db_begin(mfx_tune_db *db);
mfx_status tune_db_commit(mfx_tune_db *db);
void tune_db_rollback(mfx_tune_db *db);
/* Column text, "" for NULL. */
const char *tune_db_text(sqlite3_stmt *stmt, int col);

/* The id of a task (key); create it when asked, else *id = 0 if absent. */
typedef struct {
  const char *op, *dims, *dtypes;
  const mfx_tune_target *target;
} tune_db_task;
mfx_status tune_db_task_id(mfx_tune_db *db, const tune_db_task *task, int create,
                           sqlite3_int64 *id);
void tune_db_task_of_key(const mfx_tune_key *key, char *dims, size_t dims_size, char *dtypes,
                         size_t dtypes_size, tune_db_task *out);

/* Insert a trial row; with ignore_duplicate an identical (task, config,
 * session) row is skipped and *inserted says which happened. */
mfx_status tune_db_insert(mfx_tune_db *db, sqlite3_int64 task, const char *config,
                          const mfx_trial *t, const char *session, int ignore_duplicate,
                          int *inserted);

/* Best OK trial of every task that shares key's op, dtypes, target, arch
 * and version (any dims, any device). */
typedef int (*tune_db_shape_fn)(void *user, const char *dims, const char *device,
                                const char *config, double median_s);
mfx_status tune_db_tuned_shapes(mfx_tune_db *db, const mfx_tune_key *key, tune_db_shape_fn fn,
                                void *user);

#endif
