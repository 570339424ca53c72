/*
 * store_schema.c - the store's schema, as the list of migrations that
 * build it. store__migrations[i] takes a database from user_version i to
 * i + 1; store_open applies each missing step in its own transaction.
 *
 * Rules (docs/store.md): never edit a step that has shipped; append a new
 * one. A step may add tables, columns and indexes, or rebuild a table by
 * copying; it must leave every existing row readable by the new code.
 */
#include "store_int.h"

/* Version 1. Times are REAL seconds since the epoch.
 *
 * Metrics are the bulk of the file and the hot path. They are stored in
 * metric_data keyed by one integer, series << 41 | step << 10 | attempt
 * (a series is one metric of one run, metric_series), so a run's metric
 * read by step is one rowid range and an insert compares integers, not
 * records: the (run_id, name_id, step, attempt) WITHOUT ROWID key this
 * replaced cost 1.8x the instructions per value (docs/store.md has the
 * measurements). The view `metrics` gives back exactly those columns for
 * queries and the sqlite3 shell; a filter on run_id (and name_id) becomes
 * an index lookup plus a rowid range. metric_data has no other constraint,
 * NOT NULL included: any constraint that can abort makes SQLite keep a
 * statement journal for the store's multi-row INSERTs. A NaN value is
 * NULL (SQLite cannot hold a NaN), infinities are stored as they are.
 *
 * JSON columns are checked by the store's C code (json_parse), not by
 * json_valid() in a CHECK: under memory pressure json_valid() answers
 * "invalid" instead of failing, which would turn an allocation failure
 * into a refused row and a failed integrity_check. */
static const char v1[] =
"PRAGMA application_id = 1952804452;\n" /* 'tend' */
"CREATE TABLE runs (\n"
"  id INTEGER PRIMARY KEY,\n"
"  name TEXT NOT NULL UNIQUE CHECK (name <> ''),\n"
"  state TEXT NOT NULL CHECK (state <> ''),\n"
"  created_t REAL NOT NULL,\n"
"  started_t REAL,\n"
"  ended_t REAL,\n"
"  config TEXT NOT NULL,\n"
"  scaffold_commit TEXT,\n"
"  workdir TEXT NOT NULL,\n"
"  pid INTEGER,\n"
"  exit_status INTEGER,\n"
"  notes TEXT\n"
");\n"
"CREATE TABLE attempts (\n"
"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
"  n INTEGER NOT NULL CHECK (n >= 1),\n"
"  started_t REAL NOT NULL,\n"
"  ended_t REAL,\n"
"  exit_status INTEGER,\n"
"  signal INTEGER,\n"
"  reason TEXT NOT NULL,\n"
"  from_checkpoint TEXT,\n"
"  from_step INTEGER,\n"
"  pid INTEGER,\n"
"  PRIMARY KEY (run_id, n)\n"
") WITHOUT ROWID;\n"
"CREATE TABLE metric_names (\n"
"  id INTEGER PRIMARY KEY,\n"
"  name TEXT NOT NULL UNIQUE CHECK (name <> '')\n"
");\n"
"CREATE TABLE metric_series (\n"
"  id INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND 4194303),\n"
"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
"  name_id INTEGER NOT NULL REFERENCES metric_names(id),\n"
"  UNIQUE (run_id, name_id)\n"
");\n"
"CREATE TABLE metric_data (\n"
"  key INTEGER PRIMARY KEY,\n" /* series << 41 | step << 10 | attempt */
"  value REAL,\n"             /* NULL: NaN */
"  t REAL\n"
");\n"
"CREATE VIEW metrics (run_id, name_id, step, attempt, value, t) AS\n"
"  SELECT s.run_id, s.name_id, (d.key >> 10) & 2147483647, d.key & 1023,\n"
"         d.value, d.t\n"
"  FROM metric_series s\n"
"  JOIN metric_data d ON d.key BETWEEN s.id << 41 AND ((s.id + 1) << 41) - 1;\n"
"CREATE TABLE logs (\n"
"  id INTEGER PRIMARY KEY,\n"
"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
"  attempt INTEGER NOT NULL,\n"
"  t REAL NOT NULL,\n"
"  stream TEXT NOT NULL\n"
"    CHECK (stream IN ('stdout', 'stderr', 'event', 'malformed')),\n"
"  line TEXT NOT NULL\n"
");\n"
"CREATE INDEX logs_run ON logs (run_id, id);\n"
"CREATE TABLE events (\n"
"  id INTEGER PRIMARY KEY,\n"
"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
"  attempt INTEGER NOT NULL,\n"
"  t REAL NOT NULL,\n"
"  step INTEGER,\n"
"  kind TEXT NOT NULL CHECK (kind <> ''),\n"
"  reason TEXT,\n"
"  detail TEXT\n"
");\n"
"CREATE INDEX events_run ON events (run_id, id);\n"
"CREATE TABLE ingest_offsets (\n"
"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
"  source TEXT NOT NULL,\n"
"  byte_offset INTEGER NOT NULL CHECK (byte_offset >= 0),\n"
"  t REAL NOT NULL,\n"
"  PRIMARY KEY (run_id, source)\n"
") WITHOUT ROWID;\n"
"CREATE TABLE checkpoints (\n"
"  id INTEGER PRIMARY KEY,\n"
"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
"  attempt INTEGER NOT NULL,\n"
"  step INTEGER NOT NULL,\n"
"  path TEXT NOT NULL,\n"
"  sha256 TEXT,\n"
"  bytes INTEGER,\n"
"  t REAL NOT NULL,\n"
"  good INTEGER CHECK (good IN (0, 1)),\n"
"  UNIQUE (run_id, path)\n"
");\n"
"CREATE INDEX checkpoints_step ON checkpoints (run_id, step);\n"
"CREATE TABLE incidents (\n"
"  id INTEGER PRIMARY KEY,\n"
"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
"  kind TEXT NOT NULL,\n"
"  severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),\n"
"  signature TEXT NOT NULL,\n"
"  onset_step INTEGER,\n"
"  last_step INTEGER,\n"
"  first_t REAL NOT NULL,\n"
"  last_t REAL NOT NULL,\n"
"  count INTEGER NOT NULL DEFAULT 1,\n"
"  state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),\n"
"  summary TEXT,\n"
"  evidence TEXT,\n"
"  resolved_t REAL,\n"
"  resolution TEXT\n"
");\n"
/* At most one open incident per signature and run: new observations fold
 * into it (ON CONFLICT against this index). */
"CREATE UNIQUE INDEX incidents_open ON incidents (run_id, signature)\n"
"  WHERE state = 'open';\n"
"CREATE INDEX incidents_run ON incidents (run_id, id);\n"
"CREATE TABLE proposals (\n"
"  id INTEGER PRIMARY KEY,\n"
"  incident_id INTEGER REFERENCES incidents(id),\n"
"  n INTEGER NOT NULL CHECK (n >= 1),\n"
"  proposer TEXT NOT NULL,\n"
"  model TEXT,\n"
"  state TEXT NOT NULL CHECK (state <> ''),\n"
"  diagnosis TEXT,\n"
"  confidence REAL CHECK (confidence IS NULL OR confidence BETWEEN 0 AND 1),\n"
"  diff TEXT,\n"
"  rationale TEXT,\n"
"  expected_effect TEXT,\n"
"  prompt_sha256 TEXT,\n"
"  response_sha256 TEXT,\n"
"  branch TEXT,\n"
"  commit_id TEXT,\n"
"  reject_reason TEXT,\n"
"  created_t REAL NOT NULL,\n"
"  updated_t REAL NOT NULL,\n"
"  UNIQUE (incident_id, n)\n"
");\n"
"CREATE TABLE evaluations (\n"
"  id INTEGER PRIMARY KEY,\n"
"  proposal_id INTEGER NOT NULL REFERENCES proposals(id),\n"
"  stage TEXT NOT NULL,\n"
"  state TEXT NOT NULL CHECK (state <> ''),\n"
"  baseline_run_id INTEGER REFERENCES runs(id),\n"
"  candidate_run_id INTEGER REFERENCES runs(id),\n"
"  figures TEXT,\n"
"  gates_sha256 TEXT,\n"
"  verdict TEXT CHECK (verdict IS NULL OR verdict IN ('pass', 'fail')),\n"
"  reason TEXT,\n"
"  started_t REAL NOT NULL,\n"
"  ended_t REAL\n"
");\n"
"CREATE INDEX evaluations_proposal ON evaluations (proposal_id);\n"
"CREATE TABLE promotions (\n"
"  id INTEGER PRIMARY KEY,\n"
"  proposal_id INTEGER NOT NULL REFERENCES proposals(id),\n"
"  evaluation_id INTEGER REFERENCES evaluations(id),\n"
"  commit_id TEXT NOT NULL,\n"
"  merged_commit TEXT,\n"
"  approved_by TEXT NOT NULL,\n"
"  t REAL NOT NULL\n"
");\n"
"CREATE INDEX promotions_proposal ON promotions (proposal_id);\n"
/* The audit log. AUTOINCREMENT keeps the highest seq ever written in
 * sqlite_sequence, which is how verify notices that the last rows were
 * deleted. The triggers stop accidental edits; the hash chain catches
 * deliberate ones. */
"CREATE TABLE audit (\n"
"  seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
"  t REAL NOT NULL,\n"
"  actor TEXT NOT NULL,\n"
"  action TEXT NOT NULL,\n"
"  subject TEXT,\n"
"  detail TEXT,\n"
"  prev_hash TEXT NOT NULL,\n"
"  hash TEXT NOT NULL\n"
");\n"
"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"
"  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;\n"
"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit\n"
"  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;\n";

/* v2: a person's (or a past evaluation's) verdict on an incident, which
 * judging a patch to the monitors by replay needs: real incidents must
 * still be found, false ones must not come back. */
static const char v2[] =
"ALTER TABLE incidents ADD COLUMN label TEXT CHECK (label IN ('real', 'false'));\n"
"ALTER TABLE incidents ADD COLUMN label_by TEXT;\n";

const char *const store__migrations[] = {
	v1,
	v2,
};

const int store__schema_version =
	(int)(sizeof store__migrations / sizeof store__migrations[0]);
