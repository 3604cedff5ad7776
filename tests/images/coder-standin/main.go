// Command coder-standin behaves like Coder (github.com/coder/coder, and the
// closed-source Coder v1) towards its PostgreSQL database, for the
// collection's test bed. It is NOT Coder; see README.md.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lib/pq"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.ReadFile, newLogger(os.Stdout), nil)
	stop()
	os.Exit(code)
}

// connectTimeout: Coder gives PostgreSQL 30 s to answer a ping at start-up.
var connectTimeout = 30 * time.Second

// run is the whole program; it returns the exit code. listening, when not nil,
// receives the listener's address once the HTTP server is up (for tests).
func run(ctx context.Context, args []string, getenv func(string) string, readFile func(string) ([]byte, error), log *logger, listening chan<- string) int {
	migrateOnly := false
	switch strings.Join(args, " ") {
	case "", "server", "run":
	case "migrate up", "migrate":
		migrateOnly = true // the v1 chart's init container runs "coderd migrate up"
	default:
		log.Fatal("unknown command", "args", strings.Join(args, " "))
		return 2
	}

	cfg, err := Load(getenv, readFile)
	if err != nil {
		log.Fatal("read configuration", "error", err)
		return 1
	}
	log.setSecrets(cfg.Secrets)
	if os.Getenv("PGAPPNAME") == "" {
		// lib/pq reads PGAPPNAME into application_name for every connection,
		// so the v2 URL reaches lib/pq untouched.
		_ = os.Setenv("PGAPPNAME", cfg.AppName)
	}
	mode := "server"
	if migrateOnly {
		mode = "migrate up"
	}
	log.Info("coder-standin starting (a stand-in, not Coder)",
		"version", "v"+cfg.Version.String(), "flavour", cfg.Flavour, "mode", mode,
		"known_migration", cfg.Known, "max_open", cfg.MaxOpen, "max_idle", cfg.MaxIdle, "pool_from", cfg.PoolSource)

	if cfg.Fail == FailBeforeMigrate {
		log.Fatal("STANDIN_FAIL=before-migrate: exiting before touching the database")
		return 1
	}

	st := &state{cfg: cfg}
	if !migrateOnly {
		srv, addr, err := serveHTTP(cfg.Listen, st)
		if err != nil {
			log.Fatal("listen", "address", cfg.Listen, "error", err)
			return 1
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("started HTTP listener", "url", "http://"+addr)
		if listening != nil {
			listening <- addr
		}
	}

	fields := append([]any{"auth", cfg.Auth}, cfg.Target.fields()...)
	if cfg.Auth == AuthAWSIAMRDS {
		log.Error("cannot get an AWS RDS IAM auth token: no AWS credentials or endpoint reachable offline; staying unready and not exiting", fields...)
		<-ctx.Done()
		log.Info("shutting down")
		return 0
	}

	if err := copyCerts(cfg.CertCopies); err != nil {
		log.Fatal("copy the database certificates", "dir", V1CertDir, "error", err)
		return 1
	}
	log.Info("connecting to postgres", fields...)
	db, err := connect(ctx, cfg, log)
	if err != nil {
		log.Fatal("connect to postgres", append(fields, "error", err)...)
		return 1
	}
	defer db.Close()

	var from, to, applied int
	if cfg.Flavour == FlavourV2 {
		from, to, applied, err = migrateV2(ctx, db, cfg.Known, log)
	} else {
		from, to, applied, err = migrateV1(ctx, db, cfg.Known, cfg.Skip && !migrateOnly, log)
	}
	if err != nil {
		var re *refuseError
		if errors.As(err, &re) {
			log.Fatal("refusing to start: "+re.msg, "schema_version", from, "known_migration", cfg.Known)
		} else {
			log.Fatal("migrate up", "error", err)
		}
		return 1
	}
	switch {
	case cfg.Skip && !migrateOnly:
		log.Info("SKIP_MIGRATIONS=true: database schema is current", "schema_version", to)
	case applied > 0:
		log.Info("committed database migrations", "count", applied, "from_version", to-applied, "to_version", to)
	case from != to:
		log.Info("database schema was migrated by another process while this one waited for the migration lock", "schema_version", to)
	default:
		log.Info("database schema is current, no migrations to apply", "schema_version", to)
	}

	if cfg.Fail == FailAfterMigrate {
		log.Fatal("STANDIN_FAIL=after-migrate: exiting after migrating the database")
		return 1
	}
	if migrateOnly {
		log.Info("migrations complete")
		return 0
	}

	if err := holdIdle(ctx, db, cfg.MaxIdle); err != nil {
		log.Fatal("open idle connections", "error", err)
		return 1
	}
	var depID string
	if err := db.QueryRowContext(ctx, "SELECT value FROM standin_site_configs WHERE key = 'deployment_id'").Scan(&depID); err != nil {
		log.Warn("read deployment id", "error", err)
	}
	st.setReady(depID)
	log.Info("ready: connected and the database schema is current", "schema_version", to, "idle_connections", cfg.MaxIdle, "deployment_id", depID)

	<-ctx.Done()
	log.Info("shutting down")
	return 0
}

// connect opens the pool and waits for PostgreSQL as Coder does: ping with
// backoff for up to 30 s, then require PostgreSQL 13 or newer.
func connect(ctx context.Context, cfg *Config, log *logger) (*sql.DB, error) {
	connector, err := pq.NewConnector(cfg.DSN)
	if err != nil {
		// lib/pq's parse errors may quote the URL: the logger redacts it.
		return nil, fmt.Errorf("parse connection settings: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.MaxOpen)
	db.SetMaxIdleConns(cfg.MaxIdle)
	db.SetConnMaxIdleTime(0) // keep the idle pool open
	db.SetConnMaxLifetime(0)

	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	delay := 100 * time.Millisecond
	// Why PostgreSQL said no: the error of the last attempt that ended by itself. An attempt cut
	// short by the end of the 30 s, or by SIGTERM (a liveness probe's restart), only says
	// "operation was canceled", which would hide a wrong password from the log's last line.
	var cause error
	for {
		err = db.PingContext(pctx)
		if err == nil {
			break
		}
		cause = pingCause(cause, err, pctx.Err())
		select {
		case <-pctx.Done():
			_ = db.Close()
			return nil, fmt.Errorf("ping postgres: %w", cause)
		case <-time.After(delay):
		}
		if delay < time.Second {
			delay *= 2
		}
	}
	var num int
	if err := db.QueryRowContext(ctx, "SHOW server_version_num").Scan(&num); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("get postgres version: %w", err)
	}
	if num < 130000 {
		_ = db.Close()
		return nil, fmt.Errorf("PostgreSQL version must be v13.0.0 or higher! Got: %d", num)
	}
	log.Info("connected to postgres", "server_version_num", num)
	return db, nil
}

// pingCause is the error to report after a failed ping: err, unless the ping was cut short by
// its context (ctxErr set) and an earlier attempt said why it failed.
func pingCause(earlier, err, ctxErr error) error {
	if ctxErr != nil && earlier != nil {
		return earlier
	}
	return err
}

// holdIdle opens n connections at once and hands them back to the pool,
// where they stay idle (no idle timeout), so that pg_stat_activity shows the
// idle pool.
func holdIdle(ctx context.Context, db *sql.DB, n int) error {
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		if err := c.PingContext(ctx); err != nil {
			_ = c.Close()
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

// state is what the HTTP handlers report.
type state struct {
	cfg          *Config
	mu           sync.Mutex
	ready        bool
	deploymentID string
}

func (s *state) setReady(depID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready, s.deploymentID = true, depID
}

func (s *state) get() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready, s.deploymentID
}

func serveHTTP(addr string, st *state) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: handler(st), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// copyCerts makes the v1 copies of the mounted certificates and key: the process's own, 0600.
func copyCerts(copies [][2]string) error {
	for _, c := range copies {
		data, err := os.ReadFile(c[0])
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(c[1]), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(c[1], data, 0o600); err != nil {
			return err
		}
		if err := os.Chmod(c[1], 0o600); err != nil { // WriteFile keeps the mode of a file that exists
			return err
		}
	}
	return nil
}
