package main

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"testing/fstest"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

//go:embed migrations/*.up.sql
var migrationFiles embed.FS

// maxMigration is the newest migration the program carries.
const maxMigration = 5

// lockTimeout mirrors Coder's: it raises golang-migrate's 15 s to 2 minutes.
const lockTimeout = 2 * time.Minute

var migrationName = regexp.MustCompile(`^([0-9]+)_(.+)\.up\.sql$`)

type migration struct {
	Version int
	Name    string // file name
	SQL     string
}

// loadMigrations returns the embedded migrations up to and including known, in order.
func loadMigrations(known int) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("unexpected migration file %s", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v > known {
			continue
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// knownFS is the embedded migration directory cut at known, for golang-migrate's iofs source.
func knownFS(known int) (fs.FS, error) {
	migs, err := loadMigrations(known)
	if err != nil {
		return nil, err
	}
	m := fstest.MapFS{}
	for _, x := range migs {
		m[x.Name] = &fstest.MapFile{Data: []byte(x.SQL), Mode: 0o444}
	}
	return m, nil
}

// errRefuse marks an error after which Coder refuses to start.
type refuseError struct{ msg string }

func (e *refuseError) Error() string { return e.msg }

func refuse(format string, a ...any) error { return &refuseError{fmt.Sprintf(format, a...)} }

func newerError(current, known int) error {
	return refuse("database schema version %d is newer than this version knows (latest migration %d); a newer Coder has migrated this database", current, known)
}

// migrateV2 does what Coder v2's migrations.Up does: refuse a v1 database,
// keep schema_migrations (version, dirty) in the current schema (the first
// schema of the search_path), take golang-migrate's advisory lock and run the
// pending migrations. The postgres driver runs on one dedicated connection of
// the pool, which goes back to the pool when done.
func migrateV2(ctx context.Context, db *sql.DB, known int, log *logger) (from, to, applied int, err error) {
	var one int
	row := db.QueryRowContext(ctx, "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'migration_cursor';")
	if row.Scan(&one) == nil {
		return 0, 0, applied, refuse("currently connected to a Coder v1 database, aborting database setup")
	}

	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, 0, applied, fmt.Errorf("get connection: %w", err)
	}
	drv, err := postgres.WithConnection(ctx, conn, &postgres.Config{})
	if err != nil {
		_ = conn.Close()
		return 0, 0, applied, fmt.Errorf("ensure version table: %w", err)
	}
	src, err := knownFS(known)
	if err != nil {
		_ = drv.Close()
		return 0, 0, applied, err
	}
	srcDrv, err := iofs.New(src, ".")
	if err != nil {
		_ = drv.Close()
		return 0, 0, applied, fmt.Errorf("create iofs: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", srcDrv, "postgres", drv)
	if err != nil {
		_ = drv.Close()
		return 0, 0, applied, fmt.Errorf("new migrate instance: %w", err)
	}
	defer m.Close() // closes the dedicated connection only (WithConnection keeps no *sql.DB)
	m.LockTimeout = lockTimeout
	m.Log = migrateLog{l: log, applied: &applied}

	cur, dirty, err := drv.Version()
	if err != nil {
		return 0, 0, applied, fmt.Errorf("get migration version: %w", err)
	}
	if cur == database.NilVersion {
		cur = 0
	}
	if dirty {
		return cur, cur, applied, refuse("database has not been cleanly migrated: schema_migrations version %d is dirty", cur)
	}
	if cur > known {
		return cur, cur, applied, newerError(cur, known)
	}
	if cur < known {
		log.Info("applying database migrations", "from_version", cur, "to_version", known)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var de migrate.ErrDirty
		if errors.As(err, &de) {
			return cur, cur, applied, refuse("database has not been cleanly migrated: %v", err)
		}
		return cur, cur, applied, fmt.Errorf("up: %w", err)
	}
	now, dirty, err := drv.Version()
	if err != nil {
		return cur, cur, applied, fmt.Errorf("get migration version: %w", err)
	}
	if dirty || now != known {
		return cur, now, applied, refuse("database needs migration: current version is %d (dirty=%t), this version knows %d", now, dirty, known)
	}
	return cur, now, applied, nil
}

// v1 keeps its state in migration_cursor (one row, id = 1):
const v1CursorDDL = `CREATE TABLE IF NOT EXISTS migration_cursor (
    id         smallint    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version    bigint      NOT NULL,
    dirty      boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
)`

// v1LockKey is the advisory lock that serialises v1 migrations
// (pg_advisory_xact_lock, released at commit or rollback).
const v1LockKey int64 = 0x436f64657231 // "Coder1"

// migrateV1 migrates (or, with check, only checks) a v1 database: in one
// transaction under a transaction-level advisory lock it reads
// migration_cursor, refuses a dirty or newer schema, applies the pending
// migrations and moves the cursor. With check (SKIP_MIGRATIONS=true) it changes
// nothing and refuses a schema that is behind.
func migrateV1(ctx context.Context, db *sql.DB, known int, check bool, log *logger) (from, to, applied int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, applied, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	var exists bool
	err = tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'migration_cursor')").Scan(&exists)
	if err != nil {
		return 0, 0, applied, fmt.Errorf("look for migration_cursor: %w", err)
	}
	if !check {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = '%ds'", int(lockTimeout.Seconds()))); err != nil {
			return 0, 0, applied, fmt.Errorf("set lock_timeout: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", v1LockKey); err != nil {
			return 0, 0, applied, fmt.Errorf("acquire migration lock: %w", err)
		}
		if _, err := tx.ExecContext(ctx, v1CursorDDL); err != nil {
			return 0, 0, applied, fmt.Errorf("ensure migration_cursor: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO migration_cursor (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"); err != nil {
			return 0, 0, applied, fmt.Errorf("ensure migration_cursor row: %w", err)
		}
		exists = true
	}
	cur, dirty := 0, false
	if exists {
		var v int64
		err := tx.QueryRowContext(ctx, "SELECT version, dirty FROM migration_cursor WHERE id = 1").Scan(&v, &dirty)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, 0, applied, fmt.Errorf("read migration_cursor: %w", err)
		}
		cur = int(v)
	}
	if dirty {
		return cur, cur, applied, refuse("database has not been cleanly migrated: migration_cursor version %d is dirty", cur)
	}
	if cur > known {
		return cur, cur, applied, newerError(cur, known)
	}
	if check {
		if cur < known {
			return cur, cur, applied, refuse("database needs migration: current version is %d, but later version %d exists (SKIP_MIGRATIONS=true: run \"coderd migrate up\" first)", cur, known)
		}
		return cur, cur, applied, nil
	}
	migs, err := loadMigrations(known)
	if err != nil {
		return cur, cur, applied, err
	}
	if cur < known {
		log.Info("applying database migrations", "from_version", cur, "to_version", known)
	}
	to = cur
	for _, m := range migs {
		if m.Version <= cur {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return cur, cur, applied, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE migration_cursor SET version = $1, updated_at = now() WHERE id = 1", m.Version); err != nil {
			return cur, cur, applied, fmt.Errorf("move migration_cursor: %w", err)
		}
		log.Info("migrate: applied migration", "version", m.Version, "name", m.Name)
		to = m.Version
		applied++
	}
	if err := tx.Commit(); err != nil {
		return cur, cur, applied, fmt.Errorf("commit: %w", err)
	}
	return cur, to, applied, nil
}
