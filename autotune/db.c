/* The tuning database: one SQLite file (WAL, busy timeout, retries), its
 * schema versioned by PRAGMA user_version and migrated step by step, marked
 * as mfx's by PRAGMA application_id. Tasks are keys (op, dims, dtypes,
 * target, arch, device, version); every trial of a task is kept. Each trial
 * is its own transaction, so a killed tuner loses nothing it committed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db_internal.h"

#define TUNE_DB_APP_ID 0x6d667874 /* "mfxt" */
#define TUNE_DB_BUSY_MS 10000
#define TUNE_DB_RETRIES 200

/* Migration i takes the schema from version i to i + 1. */
static const char *const tune_db_migrations[MFX_TUNE_DB_SCHEMA] = {
  "CREATE TABLE mfx_tasks("
  " id INTEGER PRIMARY KEY,"
  " op TEXT NOT NULL, dims TEXT NOT NULL, dtypes TEXT NOT NULL,"
  " target TEXT NOT NULL, arch TEXT NOT NULL, device TEXT NOT NULL, version TEXT NOT NULL,"
  " UNIQUE(op, dims, dtypes, target, arch, device, version));"
  "CREATE TABLE mfx_trials("
  " id INTEGER PRIMARY KEY,"
  " task INTEGER NOT NULL REFERENCES mfx_tasks(id),"
  " config TEXT NOT NULL,"
  " status TEXT NOT NULL CHECK(status IN ('ok', 'error', 'wrong')),"
  " median_s REAL, spread REAL, p10_s REAL, p90_s REAL,"
  " repeats INTEGER NOT NULL DEFAULT 0,"
  " error TEXT NOT NULL DEFAULT '',"
  " created REAL NOT NULL,"
  " session TEXT NOT NULL,"
  " UNIQUE(task, config, session));"
  "CREATE INDEX mfx_trials_best ON mfx_trials(task, status, median_s);",
  /* 2: which MPI rank ran a trial, and how long it took to build. */
  ("ALTER TABLE mfx_trials ADD COLUMN rank INTEGER NOT NULL DEFAULT 0;"
   "ALTER TABLE mfx_trials ADD COLUMN build_s REAL NOT NULL DEFAULT 0;"),
  /* 3: what a GPU candidate used (registers, spills, shared memory, occupancy). */
  "ALTER TABLE mfx_trials ADD COLUMN resources TEXT NOT NULL DEFAULT '';",
};

/* ---- statements ------------------------------------------------------------- */

mfx_status tune_db_error(mfx_tune_db *db, mfx_status st, const char *what) {
  int code = sqlite3_errcode(db->h) & 0xff;
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
    return mfx_fail(MFX_ERR_FORMAT, "tune database %s: %s: the file is corrupt (%s)", db->path,
                    what, sqlite3_errmsg(db->h));
  return mfx_fail(st, "tune database %s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

static int tune_db_busy(int rc) {
  rc &= 0xff;
  return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

static void tune_db_pause(int attempt) {
  struct timespec ts = {0, (long)(1 + attempt % 20) * 2000000L}; /* 2..40 ms */
  nanosleep(&ts, NULL);
}

mfx_status tune_db_prepare(mfx_tune_db *db, const char *sql, sqlite3_stmt **out) {
  int rc = SQLITE_OK;
  for (int attempt = 0; attempt < TUNE_DB_RETRIES; attempt++) {
    rc = sqlite3_prepare_v2(db->h, sql, -1, out, NULL);
    if (!tune_db_busy(rc)) break;
    tune_db_pause(attempt);
  }
  if (rc != SQLITE_OK) return tune_db_error(db, MFX_ERR_FORMAT, "preparing a query");
  return MFX_OK;
}

int tune_db_step(sqlite3_stmt *stmt) {
  int rc = SQLITE_OK;
  for (int attempt = 0; attempt < TUNE_DB_RETRIES; attempt++) {
    rc = sqlite3_step(stmt);
    if (!tune_db_busy(rc)) break;
    sqlite3_reset(stmt);
    tune_db_pause(attempt);
  }
  return rc;
}

mfx_status tune_db_exec(mfx_tune_db *db, const char *sql) {
  int rc = SQLITE_OK;
  for (int attempt = 0; attempt < TUNE_DB_RETRIES; attempt++) {
    rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
    if (!tune_db_busy(rc)) break;
    tune_db_pause(attempt);
  }
  if (rc == SQLITE_OK) return MFX_OK;
  int code = rc & 0xff;
  mfx_status st = code == SQLITE_NOTADB || code == SQLITE_CORRUPT ? MFX_ERR_FORMAT : MFX_ERR_IO;
  return tune_db_error(db, st, sql);
}

mfx_status tune_db_begin(mfx_tune_db *db) { return tune_db_exec(db, "BEGIN IMMEDIATE"); }
mfx_status tune_db_commit(mfx_tune_db *db) { return tune_db_exec(db, "COMMIT"); }
void tune_db_rollback(mfx_tune_db *db) {
  if (!sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

const char *tune_db_text(sqlite3_stmt *stmt, int col) {
  const unsigned char *t = sqlite3_column_text(stmt, col);
  return t != NULL ? (const char *)t : "";
}

/* One integer of a PRAGMA, or the error of reading it. */
static int tune_db_pragma_int(mfx_tune_db *db, const char *sql, sqlite3_int64 *out) {
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2(db->h, sql, -1, &stmt, NULL);
  if (rc == SQLITE_OK) {
    rc = tune_db_step(stmt);
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(stmt, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(stmt);
  return rc;
}

/* ---- what the file is ----------------------------------------------------------- */

typedef struct {
  sqlite3_int64 app_id, version;
  int n_tables, has_tasks, has_trials;
  char tables[160]; /* the first few names, for messages */
} tune_db_identity;

static mfx_status tune_db_read_error(mfx_tune_db *db, int rc) {
  int code = rc & 0xff;
  if (code == SQLITE_NOTADB)
    return mfx_fail(MFX_ERR_FORMAT,
                    "tune database %s: not an SQLite database (random bytes or another "
                    "format; give another --db or remove the file)",
                    db->path);
  if (code == SQLITE_CORRUPT)
    return mfx_fail(MFX_ERR_FORMAT, "tune database %s: the file is corrupt (%s)", db->path,
                    sqlite3_errmsg(db->h));
  return tune_db_error(db, MFX_ERR_IO, "reading its header");
}

static mfx_status tune_db_read_tables(mfx_tune_db *db, tune_db_identity *id) {
  sqlite3_stmt *stmt = NULL;
  const char *sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                    "'sqlite_%' ORDER BY name";
  int rc = sqlite3_prepare_v2(db->h, sql, -1, &stmt, NULL);
  while (rc == SQLITE_OK && (rc = tune_db_step(stmt)) == SQLITE_ROW) {
    const char *name = tune_db_text(stmt, 0);
    size_t used = strlen(id->tables);
    if (id->n_tables < 4 && used + strlen(name) + 3 < sizeof id->tables)
      snprintf(id->tables + used, sizeof id->tables - used, "%s%s", used ? ", " : "", name);
    id->n_tables++;
    id->has_tasks |= strcmp(name, "mfx_tasks") == 0;
    id->has_trials |= strcmp(name, "mfx_trials") == 0;
    rc = SQLITE_OK;
  }
  sqlite3_finalize(stmt);
  return rc == SQLITE_DONE ? MFX_OK : tune_db_read_error(db, rc);
}

/* The header fields and the table names, read in one transaction: a
 * snapshot, even while another process is creating the schema. */
static mfx_status tune_db_identify(mfx_tune_db *db, tune_db_identity *id) {
  memset(id, 0, sizeof *id);
  int rc = sqlite3_exec(db->h, "BEGIN", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = tune_db_pragma_int(db, "PRAGMA application_id", &id->app_id);
  if (rc == SQLITE_OK) rc = tune_db_pragma_int(db, "PRAGMA user_version", &id->version);
  mfx_status st = rc == SQLITE_OK ? tune_db_read_tables(db, id) : tune_db_read_error(db, rc);
  tune_db_rollback(db); /* only read */
  return st;
}

/* Whether this mfx may use the file: fresh, ours, ours but older. */
static mfx_status tune_db_accept(mfx_tune_db *db, const tune_db_identity *id) {
  int ours = id->app_id == TUNE_DB_APP_ID ||
             (id->app_id == 0 && id->has_tasks && id->has_trials && id->version > 0);
  if (id->app_id != 0 && id->app_id != TUNE_DB_APP_ID)
    return mfx_fail(MFX_ERR_FORMAT,
                    "tune database %s: the SQLite file belongs to another application "
                    "(application_id 0x%08llx); it is not an mfx tuning database",
                    db->path, (unsigned long long)id->app_id);
  if (!ours && id->n_tables > 0)
    return mfx_fail(MFX_ERR_FORMAT,
                    "tune database %s: the SQLite file holds other tables (%s%s) and none of "
                    "mfx's; it is not an mfx tuning database",
                    db->path, id->tables, id->n_tables > 4 ? ", ..." : "");
  if (id->version > MFX_TUNE_DB_SCHEMA)
    return mfx_fail(MFX_ERR_FORMAT,
                    "tune database %s: schema version %lld is newer than this mfx understands "
                    "(%d); use a newer mfx or another --db",
                    db->path, (long long)id->version, MFX_TUNE_DB_SCHEMA);
  return MFX_OK;
}

/* ---- schema migrations ------------------------------------------------------------ */

static mfx_status tune_db_migrate_locked(mfx_tune_db *db) {
  sqlite3_int64 version = 0;
  if (tune_db_pragma_int(db, "PRAGMA user_version", &version) != SQLITE_OK)
    return tune_db_error(db, MFX_ERR_IO, "reading the schema version");
  if (version > MFX_TUNE_DB_SCHEMA)
    return mfx_fail(MFX_ERR_FORMAT, "tune database %s: schema version %lld is newer than %d",
                    db->path, (long long)version, MFX_TUNE_DB_SCHEMA);
  for (sqlite3_int64 v = version; v < MFX_TUNE_DB_SCHEMA; v++)
    MFX_TRY(tune_db_exec(db, tune_db_migrations[v]));
  char sql[128];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
           MFX_TUNE_DB_SCHEMA, TUNE_DB_APP_ID);
  return tune_db_exec(db, sql);
}

static mfx_status tune_db_migrate(mfx_tune_db *db, const tune_db_identity *id) {
  if (id->version == MFX_TUNE_DB_SCHEMA && id->app_id == TUNE_DB_APP_ID) return MFX_OK;
  MFX_TRY(tune_db_begin(db));
  mfx_status st = tune_db_migrate_locked(db); /* re-reads: another process may have won */
  if (st == MFX_OK) st = tune_db_commit(db);
  if (st != MFX_OK) tune_db_rollback(db);
  return st;
}

/* ---- open / close ------------------------------------------------------------------- */

static mfx_status tune_db_configure(mfx_tune_db *db) {
  sqlite3_busy_timeout(db->h, TUNE_DB_BUSY_MS);
  tune_db_identity id;
  MFX_TRY(tune_db_identify(db, &id));
  MFX_TRY(tune_db_accept(db, &id));
  MFX_TRY(tune_db_exec(db, "PRAGMA journal_mode = WAL"));
  MFX_TRY(tune_db_exec(db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"));
  return tune_db_migrate(db, &id);
}

/* Read-only: nothing is written (no journal mode, no migration), so a
 * shared database that this user may only read still serves lookups. It
 * must be a complete mfx database of this schema version already. */
static mfx_status tune_db_configure_readonly(mfx_tune_db *db) {
  sqlite3_busy_timeout(db->h, TUNE_DB_BUSY_MS);
  tune_db_identity id;
  MFX_TRY(tune_db_identify(db, &id));
  MFX_TRY(tune_db_accept(db, &id));
  if (id.n_tables == 0)
    return mfx_fail(MFX_ERR_FORMAT, "tune database %s: the file is empty or holds no tables: "
                    "not an mfx tuning database (mfx tune creates one)", db->path);
  if (!id.has_tasks || !id.has_trials || id.version != MFX_TUNE_DB_SCHEMA)
    return mfx_fail(MFX_ERR_FORMAT, "tune database %s: schema version %lld, this mfx reads %d "
                    "(open it once read-write, with mfx tune or mfx db import, to upgrade it)",
                    db->path, (long long)id.version, MFX_TUNE_DB_SCHEMA);
  return MFX_OK;
}

typedef enum { TUNE_DB_CREATE, TUNE_DB_EXISTING, TUNE_DB_READONLY, TUNE_DB_IMMUTABLE } tune_db_mode;

/* "file:PATH?immutable=1" with the URI's special characters escaped. */
static int tune_db_immutable_uri(const char *path, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "file:");
  for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
    int plain = *p > 0x20 && *p < 0x7f && *p != '%' && *p != '?' && *p != '#';
    if (used + 4 >= size) return -1;
    used += (size_t)(plain ? snprintf(buf + used, size - used, "%c", *p)
                           : snprintf(buf + used, size - used, "%%%02X", *p));
  }
  return used + 13 < size ? (snprintf(buf + used, size - used, "?immutable=1"), 0) : -1;
}

static mfx_status tune_db_open_handle(mfx_tune_db *db, const char *path, tune_db_mode mode) {
  char uri[3200];
  int flags = SQLITE_OPEN_READONLY;
  if (mode == TUNE_DB_CREATE) flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (mode == TUNE_DB_EXISTING) flags = SQLITE_OPEN_READWRITE;
  if (mode == TUNE_DB_IMMUTABLE) {
    if (tune_db_immutable_uri(path, uri, sizeof uri) != 0)
      return mfx_fail(MFX_ERR_INVALID, "tune database %s: path too long", path);
    path = uri;
    flags |= SQLITE_OPEN_URI;
  }
  if (sqlite3_open_v2(path, &db->h, flags, NULL) == SQLITE_OK) return MFX_OK;
  return db->h != NULL ? tune_db_error(db, MFX_ERR_IO, "cannot open")
                       : mfx_fail(MFX_ERR_NOMEM, "tune database %s: out of memory", db->path);
}

static mfx_status tune_db_open_as(const char *path, tune_db_mode mode, mfx_tune_db **out) {
  mfx_tune_db *db = calloc(1, sizeof *db);
  if (db == NULL) return mfx_fail(MFX_ERR_NOMEM, "tune database: out of memory");
  tune_copy_text(db->path, sizeof db->path, path);
  mfx_status st = tune_db_open_handle(db, path, mode);
  if (st == MFX_OK)
    st = mode >= TUNE_DB_READONLY ? tune_db_configure_readonly(db) : tune_db_configure(db);
  if (st != MFX_OK) {
    mfx_tune_db_close(db);
    return st;
  }
  *out = db;
  return MFX_OK;
}

/* A WAL database in a directory this user cannot write: SQLite cannot make
 * the -shm file a reader needs. With no -wal file beside it everything
 * committed is in the main file, which is then read as immutable. */
static int tune_db_wal_absent(const char *path) {
  char wal[1100];
  if ((size_t)snprintf(wal, sizeof wal, "%s-wal", path) >= sizeof wal) return 0;
  return access(wal, F_OK) != 0;
}

static mfx_status tune_db_open_mode(const char *path, tune_db_mode mode, mfx_tune_db **out) {
  if (path == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune database: path and out must not be NULL");
  *out = NULL;
  if (mode != TUNE_DB_CREATE && access(path, F_OK) != 0)
    return mfx_fail(MFX_ERR_NOT_FOUND, "tune database %s: no such file", path);
  mfx_status st = tune_db_open_as(path, mode, out);
  if (st == MFX_ERR_IO && mode == TUNE_DB_READONLY && tune_db_wal_absent(path))
    st = tune_db_open_as(path, TUNE_DB_IMMUTABLE, out);
  return st;
}

mfx_status mfx_tune_db_open(const char *path, mfx_tune_db **out) {
  return tune_db_open_mode(path, TUNE_DB_CREATE, out);
}

mfx_status mfx_tune_db_open_existing(const char *path, mfx_tune_db **out) {
  return tune_db_open_mode(path, TUNE_DB_EXISTING, out);
}

mfx_status mfx_tune_db_open_readonly(const char *path, mfx_tune_db **out) {
  return tune_db_open_mode(path, TUNE_DB_READONLY, out);
}

void mfx_tune_db_close(mfx_tune_db *db) {
  if (db == NULL) return;
  sqlite3_close_v2(db->h);
  free(db);
}

const char *mfx_tune_db_path_of(const mfx_tune_db *db) { return db->path; }

/* ---- tasks ---------------------------------------------------------------------------- */

void tune_db_task_of_key(const mfx_tune_key *key, char *dims, size_t dims_size, char *dtypes,
                         size_t dtypes_size, tune_db_task *out) {
  mfx_tune_key_dims_text(key, dims, dims_size);
  mfx_tune_key_dtypes_text(key->op, dtypes, dtypes_size);
  out->op = key->op->name;
  out->dims = dims;
  out->dtypes = dtypes;
  out->target = &key->target;
}

static void tune_db_bind_task(sqlite3_stmt *stmt, const tune_db_task *t) {
  const char *values[7] = {t->op, t->dims, t->dtypes, t->target->target, t->target->arch,
                           t->target->device, t->target->version};
  for (int i = 0; i < 7; i++) sqlite3_bind_text(stmt, i + 1, values[i], -1, SQLITE_TRANSIENT);
}

static mfx_status tune_db_find_task(mfx_tune_db *db, const tune_db_task *task,
                                    sqlite3_int64 *id) {
  sqlite3_stmt *stmt;
  MFX_TRY(tune_db_prepare(db,
                           "SELECT id FROM mfx_tasks WHERE op = ?1 AND dims = ?2 AND dtypes = ?3 "
                           "AND target = ?4 AND arch = ?5 AND device = ?6 AND version = ?7",
                           &stmt));
  tune_db_bind_task(stmt, task);
  int rc = tune_db_step(stmt);
  *id = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return tune_db_error(db, MFX_ERR_IO, "finding a task");
  return MFX_OK;
}

mfx_status tune_db_task_id(mfx_tune_db *db, const tune_db_task *task, int create,
                           sqlite3_int64 *id) {
  MFX_TRY(tune_db_find_task(db, task, id));
  if (*id != 0 || !create) return MFX_OK;
  sqlite3_stmt *stmt;
  MFX_TRY(tune_db_prepare(db,
                           "INSERT INTO mfx_tasks(op, dims, dtypes, target, arch, device, version)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           &stmt));
  tune_db_bind_task(stmt, task);
  int rc = tune_db_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return tune_db_error(db, MFX_ERR_IO, "adding a task");
  *id = sqlite3_last_insert_rowid(db->h);
  return MFX_OK;
}

/* ---- trials ---------------------------------------------------------------------------- */

static void tune_db_bind_trial(sqlite3_stmt *stmt, sqlite3_int64 task, const char *config,
                               const mfx_trial *t, const char *session) {
  sqlite3_bind_int64(stmt, 1, task);
  sqlite3_bind_text(stmt, 2, config, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt, 3, mfx_trial_status_name(t->status), -1, SQLITE_STATIC);
  if (t->status == MFX_TRIAL_OK) {
    sqlite3_bind_double(stmt, 4, t->m.median_s);
    sqlite3_bind_double(stmt, 5, t->m.spread);
    sqlite3_bind_double(stmt, 6, t->m.p10_s);
    sqlite3_bind_double(stmt, 7, t->m.p90_s);
  }
  sqlite3_bind_int(stmt, 8, t->status == MFX_TRIAL_OK ? t->m.repeats : 0);
  sqlite3_bind_text(stmt, 9, t->error, -1, SQLITE_TRANSIENT);
  sqlite3_bind_double(stmt, 10, t->created > 0.0 ? t->created : tune_wall_seconds());
  sqlite3_bind_text(stmt, 11, session, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(stmt, 12, t->rank);
  sqlite3_bind_double(stmt, 13, t->build_s);
  sqlite3_bind_text(stmt, 14, t->resources, -1, SQLITE_TRANSIENT);
}

mfx_status tune_db_insert(mfx_tune_db *db, sqlite3_int64 task, const char *config,
                          const mfx_trial *t, const char *session, int ignore_duplicate,
                          int *inserted) {
  sqlite3_stmt *stmt;
  MFX_TRY(tune_db_prepare(db,
                           ignore_duplicate
                               ? "INSERT OR IGNORE INTO mfx_trials(task, config, status, "
                                 "median_s, spread, p10_s, p90_s, repeats, error, created, "
                                 "session, rank, build_s, resources) VALUES (?1, ?2, ?3, ?4, "
                                 "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                               : "INSERT INTO mfx_trials(task, config, status, median_s, spread,"
                                 " p10_s, p90_s, repeats, error, created, session, rank, "
                                 "build_s, resources) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                                 "?9, ?10, ?11, ?12, ?13, ?14)",
                           &stmt));
  tune_db_bind_trial(stmt, task, config, t, session);
  int rc = tune_db_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return tune_db_error(db, MFX_ERR_IO, "adding a trial");
  if (inserted != NULL) *inserted = sqlite3_changes(db->h) > 0;
  return MFX_OK;
}

static mfx_status tune_db_add_locked(mfx_tune_db *db, const mfx_tune_key *key,
                                     const char *session, const mfx_trial *t) {
  char dims[256], dtypes[256], config[1024];
  tune_db_task task;
  sqlite3_int64 id;
  tune_db_task_of_key(key, dims, sizeof dims, dtypes, sizeof dtypes, &task);
  MFX_TRY(tune_db_task_id(db, &task, 1, &id));
  mfx_config_to_json(&t->cfg, config, sizeof config);
  return tune_db_insert(db, id, config, t, session, 0, NULL);
}

mfx_status mfx_tune_db_add_trial(mfx_tune_db *db, const mfx_tune_key *key, const char *session,
                                 const mfx_trial *t) {
  if (db == NULL || key == NULL || key->op == NULL || session == NULL || t == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune database: bad arguments to add_trial");
  MFX_TRY(tune_db_begin(db));
  mfx_status st = tune_db_add_locked(db, key, session, t);
  if (st == MFX_OK) st = tune_db_commit(db);
  if (st != MFX_OK) tune_db_rollback(db);
  return st;
}

/* A trial from a row (config, status, median, spread, p10, p90, repeats,
 * error, created, rank, build_s, resources); 0 when its config no longer parses. */
static int tune_db_row_trial(const mfx_tune_key *key, sqlite3_stmt *stmt, mfx_trial *t) {
  memset(t, 0, sizeof *t);
  if (mfx_config_parse_json_for(key->op, key->target.target, tune_db_text(stmt, 0), &t->cfg) !=
          MFX_OK ||
      mfx_trial_status_from_name(tune_db_text(stmt, 1), &t->status) != 0) {
    mfx_clear_error();
    return 0;
  }
  t->m.median_s = sqlite3_column_double(stmt, 2);
  t->m.spread = sqlite3_column_double(stmt, 3);
  t->m.p10_s = sqlite3_column_double(stmt, 4);
  t->m.p90_s = sqlite3_column_double(stmt, 5);
  t->m.repeats = sqlite3_column_int(stmt, 6);
  tune_copy_text(t->error, sizeof t->error, tune_db_text(stmt, 7));
  t->created = sqlite3_column_double(stmt, 8);
  t->rank = sqlite3_column_int(stmt, 9);
  t->build_s = sqlite3_column_double(stmt, 10);
  tune_copy_text(t->resources, sizeof t->resources, tune_db_text(stmt, 11));
  return 1;
}

#define TUNE_DB_TRIAL_COLUMNS \
  "config, status, median_s, spread, p10_s, p90_s, repeats, error, created, rank, build_s, " \
  "resources"

/* Visit the trials of a task selected by `where` (after task = ?1). */
static mfx_status tune_db_visit(mfx_tune_db *db, const mfx_tune_key *key, const char *tail,
                                mfx_trial_visit_fn fn, void *user) {
  char dims[256], dtypes[256], sql[512];
  tune_db_task task;
  sqlite3_int64 id;
  tune_db_task_of_key(key, dims, sizeof dims, dtypes, sizeof dtypes, &task);
  MFX_TRY(tune_db_task_id(db, &task, 0, &id));
  if (id == 0) return MFX_OK;
  snprintf(sql, sizeof sql, "SELECT " TUNE_DB_TRIAL_COLUMNS " FROM mfx_trials WHERE task = ?1 %s",
           tail);
  sqlite3_stmt *stmt;
  MFX_TRY(tune_db_prepare(db, sql, &stmt));
  sqlite3_bind_int64(stmt, 1, id);
  int rc;
  mfx_trial t;
  while ((rc = tune_db_step(stmt)) == SQLITE_ROW)
    if (tune_db_row_trial(key, stmt, &t) && fn(user, &t) != 0) break;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return tune_db_error(db, MFX_ERR_IO, "reading trials");
  return MFX_OK;
}

mfx_status mfx_tune_db_trials(mfx_tune_db *db, const mfx_tune_key *key, mfx_trial_visit_fn fn,
                              void *user) {
  if (db == NULL || key == NULL || key->op == NULL || fn == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune database: bad arguments to trials");
  return tune_db_visit(db, key, "ORDER BY id", fn, user);
}

typedef struct {
  mfx_trial *best;
  int found;
} tune_db_best_visit;

static int tune_db_take_first(void *user, const mfx_trial *t) {
  tune_db_best_visit *v = user;
  *v->best = *t;
  v->found = 1;
  return 1;
}

mfx_status mfx_tune_db_best(mfx_tune_db *db, const mfx_tune_key *key, mfx_trial *best,
                            int *found) {
  if (db == NULL || key == NULL || key->op == NULL || best == NULL || found == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune database: bad arguments to best");
  tune_db_best_visit v = {best, 0};
  MFX_TRY(tune_db_visit(db, key, "AND status = 'ok' AND median_s > 0 ORDER BY median_s, id", tune_db_take_first,
                         &v));
  *found = v.found;
  return MFX_OK;
}

static int tune_db_count_one(void *user, const mfx_trial *t) {
  (void)t;
  (*(int *)user)++;
  return 0;
}

mfx_status mfx_tune_db_count(mfx_tune_db *db, const mfx_tune_key *key, int *trials) {
  if (db == NULL || key == NULL || key->op == NULL || trials == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune database: bad arguments to count");
  *trials = 0;
  return tune_db_visit(db, key, "", tune_db_count_one, trials);
}

/* ---- listing ------------------------------------------------------------------------------ */

static const char tune_db_list_sql[] =
    "SELECT t.op, t.dims, t.dtypes, t.target, t.arch, t.device, t.version,"
    " COUNT(r.id), TOTAL(r.status = 'ok' AND r.median_s > 0), TOTAL(r.status = 'error'),"
    " TOTAL(r.status = 'wrong'),"
    " (SELECT b.median_s FROM mfx_trials b WHERE b.task = t.id AND b.status = 'ok'"
    "  AND b.median_s > 0"
    "  ORDER BY b.median_s, b.id LIMIT 1),"
    " (SELECT b.config FROM mfx_trials b WHERE b.task = t.id AND b.status = 'ok'"
    "  AND b.median_s > 0"
    "  ORDER BY b.median_s, b.id LIMIT 1)"
    " FROM mfx_tasks t LEFT JOIN mfx_trials r ON r.task = t.id"
    " GROUP BY t.id ORDER BY t.op, t.dims, t.id";

static void tune_db_row_task(sqlite3_stmt *stmt, mfx_tune_task_info *info) {
  memset(info, 0, sizeof *info);
  tune_copy_text(info->op, sizeof info->op, tune_db_text(stmt, 0));
  tune_copy_text(info->dims, sizeof info->dims, tune_db_text(stmt, 1));
  tune_copy_text(info->dtypes, sizeof info->dtypes, tune_db_text(stmt, 2));
  tune_copy_text(info->target.target, sizeof info->target.target, tune_db_text(stmt, 3));
  tune_copy_text(info->target.arch, sizeof info->target.arch, tune_db_text(stmt, 4));
  tune_copy_text(info->target.device, sizeof info->target.device, tune_db_text(stmt, 5));
  tune_copy_text(info->target.version, sizeof info->target.version, tune_db_text(stmt, 6));
  info->trials = sqlite3_column_int(stmt, 7);
  info->ok = sqlite3_column_int(stmt, 8);
  info->errors = sqlite3_column_int(stmt, 9);
  info->wrong = sqlite3_column_int(stmt, 10);
  info->best_s = sqlite3_column_double(stmt, 11);
  tune_copy_text(info->best_config, sizeof info->best_config, tune_db_text(stmt, 12));
}

mfx_status mfx_tune_db_list(mfx_tune_db *db, mfx_task_visit_fn fn, void *user) {
  if (db == NULL || fn == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune database: bad arguments to list");
  sqlite3_stmt *stmt;
  MFX_TRY(tune_db_prepare(db, tune_db_list_sql, &stmt));
  int rc;
  mfx_tune_task_info info;
  while ((rc = tune_db_step(stmt)) == SQLITE_ROW) {
    tune_db_row_task(stmt, &info);
    if (fn(user, &info) != 0) break;
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return tune_db_error(db, MFX_ERR_IO, "listing tasks");
  return MFX_OK;
}

mfx_status tune_db_tuned_shapes(mfx_tune_db *db, const mfx_tune_key *key, tune_db_shape_fn fn,
                                void *user) {
  char dtypes[256];
  mfx_tune_key_dtypes_text(key->op, dtypes, sizeof dtypes);
  sqlite3_stmt *stmt;
  MFX_TRY(tune_db_prepare(db,
                           "SELECT t.dims, t.device, r.config, MIN(r.median_s) FROM mfx_tasks t"
                           " JOIN mfx_trials r ON r.task = t.id AND r.status = 'ok' AND r.median_s > 0"
                           " WHERE t.op = ?1 AND t.dtypes = ?2 AND t.target = ?3 AND t.arch = ?4"
                           " AND t.version = ?5 GROUP BY t.id ORDER BY t.id",
                           &stmt));
  const char *values[5] = {key->op->name, dtypes, key->target.target, key->target.arch,
                           key->target.version};
  for (int i = 0; i < 5; i++) sqlite3_bind_text(stmt, i + 1, values[i], -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = tune_db_step(stmt)) == SQLITE_ROW)
    if (fn(user, tune_db_text(stmt, 0), tune_db_text(stmt, 1), tune_db_text(stmt, 2),
           sqlite3_column_double(stmt, 3)) != 0)
      break;
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return tune_db_error(db, MFX_ERR_IO, "reading tuned shapes");
  return MFX_OK;
}
