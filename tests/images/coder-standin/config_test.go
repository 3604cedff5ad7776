package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func noFile(p string) ([]byte, error) { return nil, errors.New("no file " + p) }

func mustLoad(t *testing.T, env map[string]string, readFile func(string) ([]byte, error)) *Config {
	t.Helper()
	if readFile == nil {
		readFile = noFile
	}
	c, err := Load(envOf(env), readFile)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"2.31.0":      {2, 31, 0, ""},
		"v2.29.4":     {2, 29, 4, ""},
		"2.30.0-rc.1": {2, 30, 0, "-rc.1"},
		"1.44.3+abc":  {1, 44, 3, "+abc"},
	} {
		got, err := ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "2.31", "latest", "2.x.0", "v"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q): want an error", bad)
		}
	}
}

func TestKnownMigrations(t *testing.T) {
	for in, want := range map[string]int{
		"2.25.0": 1, "2.27.9": 1, "2.28.0": 2, "2.29.0": 3, "2.30.0": 4, "2.31.0": 5, "2.40.1": 5, "3.0.0": 5,
		"1.40.0": 1, "1.42.0": 1, "1.43.2": 2, "1.44.0": 3, "1.44.3": 3, "1.45.0": 4, "1.46.0": 5, "1.50.0": 5,
	} {
		v, err := ParseVersion(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := KnownMigrations(v); got != want {
			t.Errorf("KnownMigrations(%s) = %d, want %d", in, got, want)
		}
	}
	// The program carries exactly maxMigration migrations, numbered 1..maxMigration.
	migs, err := loadMigrations(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) != maxMigration {
		t.Fatalf("%d migration files, want %d", len(migs), maxMigration)
	}
	for i, m := range migs {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d", i, m.Version)
		}
	}
	cut, _ := loadMigrations(3)
	if len(cut) != 3 || cut[2].Version != 3 {
		t.Errorf("loadMigrations(3) = %v", cut)
	}
	f, err := knownFS(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Open("000002_standin_templates.up.sql"); err != nil {
		t.Errorf("knownFS(2) lacks migration 2: %v", err)
	}
	if _, err := f.Open("000003_standin_workspaces.up.sql"); err == nil {
		t.Errorf("knownFS(2) has migration 3")
	}
}

func TestLoadV2(t *testing.T) {
	url := "postgres://coder:s3cr%40t-pass@db.example:6432/coderdb?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca.crt"
	c := mustLoad(t, map[string]string{"STANDIN_VERSION": "2.31.0", "CODER_PG_CONNECTION_URL": url}, nil)
	if c.Flavour != FlavourV2 || c.Auth != AuthPassword || c.Known != 5 {
		t.Errorf("flavour/auth/known = %s/%s/%d", c.Flavour, c.Auth, c.Known)
	}
	if c.DSN != url {
		t.Errorf("DSN %q: the URL must reach lib/pq as it is", c.DSN)
	}
	want := Target{Host: "db.example", Port: "6432", User: "coder", Database: "coderdb", SSLMode: "verify-full"}
	if c.Target != want {
		t.Errorf("target %+v, want %+v", c.Target, want)
	}
	if c.Listen != ":8080" || c.AppName != "coder-standin" {
		t.Errorf("listen %q app %q", c.Listen, c.AppName)
	}
	joined := strings.Join(c.Secrets, "\n")
	for _, s := range []string{url, "s3cr@t-pass", "s3cr%40t-pass"} {
		if !strings.Contains(joined, s) {
			t.Errorf("secret %q not registered", s)
		}
	}
}

func TestV2PoolRuleByVersion(t *testing.T) {
	url := "postgres://u:p@h/d?sslmode=disable"
	cases := []struct {
		version, open, idle string
		wantOpen, wantIdle  int
	}{
		{"2.29.0", "25", "7", 10, 3}, // before 2.30: the variables do not exist
		{"2.25.0", "", "", 10, 3},
		{"2.30.0", "", "", 10, 3}, // defaults: 10, auto = 10/3
		{"2.30.0", "25", "", 25, 8},
		{"2.30.0", "25", "auto", 25, 8},
		{"2.31.0", "25", "7", 25, 7},
		{"2.31.0", "25", "0", 25, 0},
		{"2.31.0", "4", "9", 4, 4}, // database/sql caps idle at open
	}
	for _, tc := range cases {
		c := mustLoad(t, map[string]string{"STANDIN_VERSION": tc.version, "CODER_PG_CONNECTION_URL": url,
			"CODER_PG_CONN_MAX_OPEN": tc.open, "CODER_PG_CONN_MAX_IDLE": tc.idle}, nil)
		if c.MaxOpen != tc.wantOpen || c.MaxIdle != tc.wantIdle {
			t.Errorf("%s open=%q idle=%q: got %d/%d, want %d/%d", tc.version, tc.open, tc.idle, c.MaxOpen, c.MaxIdle, tc.wantOpen, tc.wantIdle)
		}
	}
	for _, bad := range []map[string]string{
		{"CODER_PG_CONN_MAX_OPEN": "0"}, {"CODER_PG_CONN_MAX_OPEN": "x"},
		{"CODER_PG_CONN_MAX_IDLE": "-1"}, {"CODER_PG_CONN_MAX_IDLE": "many"},
		{"CODER_PG_AUTH": "kerberos"},
	} {
		bad["STANDIN_VERSION"], bad["CODER_PG_CONNECTION_URL"] = "2.31.0", url
		if _, err := Load(envOf(bad), noFile); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
	// Before 2.30 even an invalid value is ignored: the variable does not exist.
	c := mustLoad(t, map[string]string{"STANDIN_VERSION": "2.29.0", "CODER_PG_CONNECTION_URL": url, "CODER_PG_CONN_MAX_OPEN": "x"}, nil)
	if c.MaxOpen != 10 {
		t.Errorf("2.29 with an invalid pool: %d", c.MaxOpen)
	}
}

func TestLoadV2AWSIAMRDS(t *testing.T) {
	c := mustLoad(t, map[string]string{"STANDIN_VERSION": "2.31.0", "CODER_PG_CONNECTION_URL": "postgres://coder@rds.example:5432/coder?sslmode=require", "CODER_PG_AUTH": "awsiamrds"}, nil)
	if c.Auth != AuthAWSIAMRDS {
		t.Errorf("auth %s", c.Auth)
	}
}

func TestLoadV1(t *testing.T) {
	env := map[string]string{
		"STANDIN_VERSION": "1.44.3", "DB_HOST": "pg.example", "DB_PORT": "6543", "DB_USER": "coder",
		"DB_NAME": "coder", "DB_PASSWORD": "it's a pass\\word", "DB_SSL_MODE": "verify-ca",
		"DB_CERT": "/etc/ssl/certs/pg/cert/tls.crt", "DB_KEY": "/etc/ssl/certs/pg/key/tls.key",
		"DB_ROOT_CERT": "/etc/ssl/certs/pg/rootcert/ca.crt", "DB_SEARCH_PATH": "coder_v1",
	}
	c := mustLoad(t, env, nil)
	if c.Flavour != FlavourV1 || c.Auth != AuthPassword || c.Known != 3 || c.Skip {
		t.Errorf("flavour/auth/known/skip = %s/%s/%d/%t", c.Flavour, c.Auth, c.Known, c.Skip)
	}
	want := `host=pg.example port=6543 user=coder password='it\'s a pass\\word' dbname=coder sslmode=verify-ca ` +
		`sslcert=/tmp/pgcerts/sslcert sslkey=/tmp/pgcerts/sslkey ` +
		`sslrootcert=/tmp/pgcerts/sslrootcert search_path=coder_v1`
	if c.DSN != want {
		t.Errorf("DSN\n got %s\nwant %s", c.DSN, want)
	}
	copies := [][2]string{{"/etc/ssl/certs/pg/cert/tls.crt", "/tmp/pgcerts/sslcert"},
		{"/etc/ssl/certs/pg/key/tls.key", "/tmp/pgcerts/sslkey"}, {"/etc/ssl/certs/pg/rootcert/ca.crt", "/tmp/pgcerts/sslrootcert"}}
	if fmt.Sprint(c.CertCopies) != fmt.Sprint(copies) {
		t.Errorf("copies %v, want %v", c.CertCopies, copies)
	}
	if c.MaxOpen != 30 || c.MaxIdle != 2 {
		t.Errorf("pool %d/%d, want 30/2", c.MaxOpen, c.MaxIdle)
	}
	if c.Target.SearchPath != "coder_v1" || c.Target.Port != "6543" {
		t.Errorf("target %+v", c.Target)
	}

	// Defaults, the pool and SKIP_MIGRATIONS.
	c = mustLoad(t, map[string]string{"STANDIN_VERSION": "1.45.0", "DB_HOST": "h", "DB_USER": "u", "DB_NAME": "d",
		"CODER_MAX_DB_CONNECTIONS": "12", "SKIP_MIGRATIONS": "true", "DB_CONNECTOR": "postgres"}, nil)
	if c.DSN != "host=h port=5432 user=u dbname=d" || c.MaxOpen != 12 || c.MaxIdle != 2 || !c.Skip || c.Known != 4 {
		t.Errorf("got DSN %q pool %d/%d skip %t known %d", c.DSN, c.MaxOpen, c.MaxIdle, c.Skip, c.Known)
	}
	c = mustLoad(t, map[string]string{"STANDIN_VERSION": "1.45.0", "DB_HOST": "h", "CODER_MAX_DB_CONNECTIONS": "1"}, nil)
	if c.MaxOpen != 1 || c.MaxIdle != 1 {
		t.Errorf("pool %d/%d, want 1/1", c.MaxOpen, c.MaxIdle)
	}
	c = mustLoad(t, map[string]string{"STANDIN_VERSION": "1.44.0", "DB_HOST": "h", "DB_CONNECTOR": "awsiamrds"}, nil)
	if c.Auth != AuthAWSIAMRDS {
		t.Errorf("auth %s", c.Auth)
	}
	for _, bad := range []map[string]string{
		{"DB_CONNECTOR": "mysql"}, {"DB_PORT": "five"}, {"CODER_MAX_DB_CONNECTIONS": "0"}, {"SKIP_MIGRATIONS": "maybe"},
	} {
		bad["STANDIN_VERSION"], bad["DB_HOST"] = "1.44.0", "h"
		if _, err := Load(envOf(bad), noFile); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestV1PasswordPathUsedAsIs(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/password"
	if err := os.WriteFile(p, []byte("from-file pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, map[string]string{"STANDIN_VERSION": "1.44.0", "DB_HOST": "h", "DB_USER": "u",
		"DB_PASSWORD": "ignored-env", "DB_PASSWORD_PATH": p}, os.ReadFile)
	// The trailing newline is part of the password: the file is used as is.
	if want := "host=h port=5432 user=u password='from-file pass\n'"; c.DSN != want {
		t.Errorf("DSN %q, want %q", c.DSN, want)
	}
	if _, err := Load(envOf(map[string]string{"STANDIN_VERSION": "1.44.0", "DB_HOST": "h", "DB_PASSWORD_PATH": dir + "/missing"}), os.ReadFile); err == nil {
		t.Error("missing DB_PASSWORD_PATH: want an error")
	}
}

func TestFlavourAndVersionMustAgree(t *testing.T) {
	if _, err := Load(envOf(map[string]string{"STANDIN_VERSION": "2.31.0", "DB_HOST": "h"}), noFile); err == nil {
		t.Error("v2 version with v1 env: want an error")
	}
	if _, err := Load(envOf(map[string]string{"STANDIN_VERSION": "1.44.0", "CODER_PG_CONNECTION_URL": "postgres://h/d"}), noFile); err == nil {
		t.Error("v1 version with v2 env: want an error")
	}
	if _, err := Load(envOf(map[string]string{"STANDIN_VERSION": "2.31.0"}), noFile); err == nil {
		t.Error("no database: want an error")
	}
	if _, err := Load(envOf(map[string]string{"CODER_PG_CONNECTION_URL": "postgres://h/d"}), noFile); err == nil {
		t.Error("no version: want an error")
	}
	// Both sets: the version's generation wins, as each Coder reads only its own.
	both := map[string]string{"DB_HOST": "h", "CODER_PG_CONNECTION_URL": "postgres://h/d"}
	both["STANDIN_VERSION"] = "2.31.0"
	if c := mustLoad(t, both, nil); c.Flavour != FlavourV2 {
		t.Errorf("flavour %s", c.Flavour)
	}
	both["STANDIN_VERSION"] = "1.44.0"
	if c := mustLoad(t, both, nil); c.Flavour != FlavourV1 {
		t.Errorf("flavour %s", c.Flavour)
	}
}

func TestFailAndListen(t *testing.T) {
	base := map[string]string{"STANDIN_VERSION": "2.31.0", "CODER_PG_CONNECTION_URL": "postgres://h/d", "STANDIN_LISTEN": "127.0.0.1:0"}
	for _, f := range []string{"", "before-migrate", "after-migrate"} {
		base["STANDIN_FAIL"] = f
		if c := mustLoad(t, base, nil); c.Fail != f || c.Listen != "127.0.0.1:0" {
			t.Errorf("fail %q listen %q", c.Fail, c.Listen)
		}
	}
	base["STANDIN_FAIL"] = "sometimes"
	if _, err := Load(envOf(base), noFile); err == nil {
		t.Error("unknown STANDIN_FAIL: want an error")
	}
}

func TestLogRedactsSecrets(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf)
	url := "postgres://coder:hunter2-long@db:5432/coder?sslmode=disable"
	c := mustLoad(t, map[string]string{"STANDIN_VERSION": "2.31.0", "CODER_PG_CONNECTION_URL": url}, nil)
	l.setSecrets(c.Secrets)
	l.Error("connect", "error", errors.New(`parse "`+url+`": bad`), "also", "hunter2-long")
	out := buf.String()
	if strings.Contains(out, "hunter2-long") || strings.Contains(out, url) {
		t.Errorf("secret in log: %s", out)
	}
	if !strings.Contains(out, "[erro]  coderd: connect") || strings.Count(out, "\n") != 1 {
		t.Errorf("log line shape: %q", out)
	}
}

func TestRunFailBeforeMigrateTouchesNothing(t *testing.T) {
	var buf bytes.Buffer
	env := map[string]string{"STANDIN_VERSION": "2.31.0", "STANDIN_FAIL": "before-migrate",
		"CODER_PG_CONNECTION_URL": "postgres://u:pw-secret@127.0.0.1:1/d?sslmode=disable"}
	code := run(t.Context(), nil, envOf(env), noFile, newLogger(&buf), nil)
	if code == 0 || !strings.Contains(buf.String(), "before-migrate") || strings.Contains(buf.String(), "pw-secret") {
		t.Errorf("exit %d, log:\n%s", code, buf.String())
	}
}

func TestHTTP(t *testing.T) {
	c := mustLoad(t, map[string]string{"STANDIN_VERSION": "2.31.0", "CODER_PG_CONNECTION_URL": "postgres://h/d", "CODER_ACCESS_URL": "https://coder.example"}, nil)
	st := &state{cfg: c}
	srv := httptest.NewServer(handler(st))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, p := range []string{"/healthz", "/readyz", "/cem-healthz"} {
		if code, _ := get(p); code != http.StatusServiceUnavailable {
			t.Errorf("%s before ready: %d", p, code)
		}
	}
	if code, body := get("/livez"); code != 200 || body != "OK" {
		t.Errorf("/livez: %d %q", code, body)
	}
	st.setReady("dep-1")
	for _, p := range []string{"/healthz", "/readyz", "/cem-healthz"} {
		if code, body := get(p); code != 200 || body != "OK" {
			t.Errorf("%s when ready: %d %q", p, code, body)
		}
	}
	code, body := get("/api/v2/buildinfo")
	var bi map[string]any
	if err := json.Unmarshal([]byte(body), &bi); err != nil || code != 200 {
		t.Fatalf("buildinfo %d %q: %v", code, body, err)
	}
	for k, want := range map[string]any{"version": "v2.31.0", "dashboard_url": "https://coder.example",
		"deployment_id": "dep-1", "external_url": "https://github.com/coder/coder/releases/tag/v2.31.0",
		"telemetry": false, "workspace_proxy": false} {
		if bi[k] != want {
			t.Errorf("buildinfo %s = %v, want %v", k, bi[k], want)
		}
	}
}
