package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Flavours: which generation of Coder the environment describes.
const (
	FlavourV1 = "v1" // Coder v1 ("classic", coder/enterprise-helm): DB_* variables
	FlavourV2 = "v2" // Coder v2 (coder/coder): CODER_PG_* variables
)

// Connection auth: a password (in the URL, DB_PASSWORD or DB_PASSWORD_PATH) or AWS RDS IAM.
const (
	AuthPassword  = "password"
	AuthAWSIAMRDS = "awsiamrds"
)

// Faults on demand (STANDIN_FAIL).
const (
	FailBeforeMigrate = "before-migrate"
	FailAfterMigrate  = "after-migrate"
)

const (
	defaultListen    = ":8080"
	defaultAppName   = "coder-standin"
	v1DefaultMaxOpen = 30 // CODER_MAX_DB_CONNECTIONS unset
	v1MaxIdle        = 2  // database/sql's default idle pool; v1 sets no idle limit of its own (assumed)
	v2FixedMaxOpen   = 10 // Coder 2.x before 2.30: fixed pool
	v2FixedMaxIdle   = 3
	v2DefaultMaxOpen = 10 // Coder 2.30 and later: CODER_PG_CONN_MAX_OPEN default
)

// Version is the Coder version the stand-in plays (STANDIN_VERSION, later the image tag).
type Version struct {
	Major, Minor, Patch int
	Suffix              string // "-rc.1", "+abc", ... kept for display only
}

// ParseVersion accepts "2.31.0", "v2.31.0", "2.31.0-rc.1", "1.44.3+build".
func ParseVersion(s string) (Version, error) {
	raw := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if raw == "" {
		return Version{}, errors.New("STANDIN_VERSION is not set")
	}
	core, suffix := raw, ""
	if i := strings.IndexAny(raw, "-+"); i >= 0 {
		core, suffix = raw[:i], raw[i:]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("STANDIN_VERSION %q is not MAJOR.MINOR.PATCH", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("STANDIN_VERSION %q is not MAJOR.MINOR.PATCH", s)
		}
		n[i] = v
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2], Suffix: suffix}, nil
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d%s", v.Major, v.Minor, v.Patch, v.Suffix)
}

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	if v.Major != major {
		return v.Major > major
	}
	return v.Minor >= minor
}

// KnownMigrations is the highest migration a version knows (see README.md):
//
//	v2: 2.27 and older -> 1, 2.28 -> 2, 2.29 -> 3, 2.30 -> 4, 2.31 and newer -> 5
//	v1: 1.42 and older -> 1, 1.43 -> 2, 1.44 -> 3, 1.45 -> 4, 1.46 and newer -> 5
//
// so that every minor upgrade in the ranges the tests use brings a migration,
// and every downgrade meets a schema newer than it knows.
func KnownMigrations(v Version) int {
	var n int
	switch {
	case v.Major >= 2:
		n = v.Minor - 26
		if v.Major > 2 {
			n = maxMigration
		}
	default:
		n = v.Minor - 41
	}
	if n < 1 {
		n = 1
	}
	if n > maxMigration {
		n = maxMigration
	}
	return n
}

// Config is everything the stand-in reads from its environment.
type Config struct {
	Flavour    string
	Version    Version
	Known      int    // highest migration this version knows
	DSN        string // what lib/pq gets: the v2 URL as is, or the v1 key=value string. Secret.
	Auth       string
	MaxOpen    int
	MaxIdle    int
	PoolSource string // how MaxOpen/MaxIdle were chosen, for the log
	Skip       bool   // v1 SKIP_MIGRATIONS: check only
	Listen     string
	Fail       string
	AppName    string // PGAPPNAME for lib/pq, unless the environment sets one
	AccessURL  string
	Target     Target      // what may be logged
	Secrets    []string    // what must never be logged
	CertCopies [][2]string // v1: {mounted file, copy in V1CertDir} to make before connecting
}

// V1CertDir is where Coder v1 copies its database certificates before it connects: its chart
// gives both containers an emptyDir there (tmp-pgcerts at /tmp/pgcerts). The copies are the
// process's own, mode 0600, so lib/pq's key-permission rule holds whatever mode the Secret
// volume has (the v1 chart sets no defaultMode: 0644, which lib/pq refuses for a key).
var V1CertDir = "/tmp/pgcerts"

// Target is the loggable part of the connection settings.
type Target struct {
	Host, Port, User, Database, SSLMode, SearchPath string
}

func (t Target) fields() []any {
	f := []any{"host", t.Host, "port", t.Port, "user", t.User, "database", t.Database, "sslmode", orUnset(t.SSLMode)}
	if t.SearchPath != "" {
		f = append(f, "search_path", t.SearchPath)
	}
	return f
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// Load reads the environment the way Coder v1 or v2 would. getenv returns ""
// for an unset variable; readFile reads DB_PASSWORD_PATH.
func Load(getenv func(string) string, readFile func(string) ([]byte, error)) (*Config, error) {
	ver, err := ParseVersion(getenv("STANDIN_VERSION"))
	if err != nil {
		return nil, err
	}
	c := &Config{
		Version:   ver,
		Known:     KnownMigrations(ver),
		Listen:    getenv("STANDIN_LISTEN"),
		Fail:      getenv("STANDIN_FAIL"),
		AppName:   defaultAppName,
		AccessURL: getenv("CODER_ACCESS_URL"),
	}
	if c.Listen == "" {
		c.Listen = defaultListen
	}
	if a := getenv("PGAPPNAME"); a != "" {
		c.AppName = a
	}
	switch c.Fail {
	case "", FailBeforeMigrate, FailAfterMigrate:
	default:
		return nil, fmt.Errorf("STANDIN_FAIL %q: want %q or %q", c.Fail, FailBeforeMigrate, FailAfterMigrate)
	}

	hasV1 := getenv("DB_HOST") != ""
	hasV2 := getenv("CODER_PG_CONNECTION_URL") != ""
	switch {
	case hasV1 && hasV2:
		// A real Coder reads only its own generation's variables.
		if ver.Major >= 2 {
			c.Flavour = FlavourV2
		} else {
			c.Flavour = FlavourV1
		}
	case hasV1:
		c.Flavour = FlavourV1
	case hasV2:
		c.Flavour = FlavourV2
	default:
		return nil, errors.New("no database configured: set DB_HOST (Coder v1) or CODER_PG_CONNECTION_URL (Coder v2)")
	}
	if c.Flavour == FlavourV1 && ver.Major != 1 {
		return nil, fmt.Errorf("version %s is a Coder v2: it does not read the v1 DB_* environment (set CODER_PG_CONNECTION_URL)", ver)
	}
	if c.Flavour == FlavourV2 && ver.Major < 2 {
		return nil, fmt.Errorf("version %s is a Coder v1: it does not read CODER_PG_CONNECTION_URL (set DB_HOST and the other DB_* variables)", ver)
	}
	if c.Flavour == FlavourV1 {
		err = loadV1(c, getenv, readFile)
	} else {
		err = loadV2(c, getenv)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func loadV1(c *Config, getenv func(string) string, readFile func(string) ([]byte, error)) error {
	t := Target{
		Host:       getenv("DB_HOST"),
		Port:       getenv("DB_PORT"),
		User:       getenv("DB_USER"),
		Database:   getenv("DB_NAME"),
		SSLMode:    getenv("DB_SSL_MODE"),
		SearchPath: getenv("DB_SEARCH_PATH"),
	}
	if t.Port == "" {
		t.Port = "5432"
	}
	if _, err := strconv.Atoi(t.Port); err != nil {
		return fmt.Errorf("DB_PORT %q is not a number", t.Port)
	}
	auth, err := authFrom("DB_CONNECTOR", getenv("DB_CONNECTOR"), "postgres")
	if err != nil {
		return err
	}
	c.Auth = auth
	password := getenv("DB_PASSWORD")
	if p := getenv("DB_PASSWORD_PATH"); p != "" {
		b, err := readFile(p)
		if err != nil {
			// The path is not secret; the error names only the path.
			return fmt.Errorf("read DB_PASSWORD_PATH %s: %w", p, err)
		}
		password = string(b) // used as is: no trimming of a trailing newline
	}

	certs := map[string]string{"sslcert": getenv("DB_CERT"), "sslkey": getenv("DB_KEY"), "sslrootcert": getenv("DB_ROOT_CERT")}
	for _, key := range []string{"sslcert", "sslkey", "sslrootcert"} {
		if certs[key] != "" {
			dst := V1CertDir + "/" + key
			c.CertCopies = append(c.CertCopies, [2]string{certs[key], dst})
			certs[key] = dst
		}
	}
	kv := [][2]string{
		{"host", t.Host}, {"port", t.Port}, {"user", t.User}, {"password", password},
		{"dbname", t.Database}, {"sslmode", t.SSLMode},
		{"sslcert", certs["sslcert"]}, {"sslkey", certs["sslkey"]}, {"sslrootcert", certs["sslrootcert"]},
		{"search_path", t.SearchPath},
	}
	var b strings.Builder
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p[0])
		b.WriteByte('=')
		b.WriteString(quoteDSNValue(p[1]))
	}
	c.DSN = b.String()
	c.Target = t
	c.Secrets = append(c.Secrets, c.DSN)
	if password != "" {
		c.Secrets = append(c.Secrets, password, quoteDSNValue(password))
	}

	c.MaxOpen = v1DefaultMaxOpen
	if s := getenv("CODER_MAX_DB_CONNECTIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("CODER_MAX_DB_CONNECTIONS %q: want a number of 1 or more", s)
		}
		c.MaxOpen = n
	}
	c.MaxIdle = min(v1MaxIdle, c.MaxOpen)
	c.PoolSource = "CODER_MAX_DB_CONNECTIONS"

	if s := getenv("SKIP_MIGRATIONS"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("SKIP_MIGRATIONS %q: want true or false", s)
		}
		c.Skip = v
	}
	return nil
}

// quoteDSNValue quotes a value for a libpq key=value connection string:
// single quotes when empty or when it holds a space, a quote or a backslash,
// with backslash escapes inside.
func quoteDSNValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

func loadV2(c *Config, getenv func(string) string) error {
	raw := getenv("CODER_PG_CONNECTION_URL")
	c.DSN = raw // handed to lib/pq as it is
	c.Secrets = append(c.Secrets, raw)
	c.Target = v2Target(raw)
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			c.Secrets = append(c.Secrets, pw, url.QueryEscape(pw), url.PathEscape(pw), u.User.String())
		}
		if pw := u.Query().Get("password"); pw != "" {
			c.Secrets = append(c.Secrets, pw, url.QueryEscape(pw))
		}
	}

	auth, err := authFrom("CODER_PG_AUTH", getenv("CODER_PG_AUTH"), "password")
	if err != nil {
		return err
	}
	c.Auth = auth

	if !c.Version.AtLeast(2, 30) {
		// CODER_PG_CONN_MAX_OPEN and _IDLE do not exist before 2.30: ignored.
		c.MaxOpen, c.MaxIdle = v2FixedMaxOpen, v2FixedMaxIdle
		c.PoolSource = "fixed before 2.30"
		return nil
	}
	c.PoolSource = "CODER_PG_CONN_MAX_OPEN/CODER_PG_CONN_MAX_IDLE"
	c.MaxOpen = v2DefaultMaxOpen
	if s := getenv("CODER_PG_CONN_MAX_OPEN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("CODER_PG_CONN_MAX_OPEN %q: want a number of 1 or more", s)
		}
		c.MaxOpen = n
	}
	switch s := getenv("CODER_PG_CONN_MAX_IDLE"); s {
	case "", "auto":
		c.MaxIdle = c.MaxOpen / 3
	default:
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("CODER_PG_CONN_MAX_IDLE %q: want \"auto\" or a number of 0 or more", s)
		}
		c.MaxIdle = n
	}
	// database/sql caps the idle pool at the open limit.
	c.MaxIdle = min(c.MaxIdle, c.MaxOpen)
	return nil
}

// v2Target extracts the loggable settings from a postgres:// URL or a
// key=value string, never the password.
func v2Target(raw string) Target {
	t := Target{Port: "5432"}
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err != nil {
			t.Host = "(unparseable URL)"
			return t
		}
		t.Host = u.Hostname()
		if p := u.Port(); p != "" {
			t.Port = p
		}
		if u.User != nil {
			t.User = u.User.Username()
		}
		t.Database = strings.TrimPrefix(u.Path, "/")
		q := u.Query()
		t.SSLMode = q.Get("sslmode")
		t.SearchPath = q.Get("search_path")
		return t
	}
	for _, f := range strings.Fields(raw) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, "'")
		switch k {
		case "host":
			t.Host = v
		case "port":
			t.Port = v
		case "user":
			t.User = v
		case "dbname":
			t.Database = v
		case "sslmode":
			t.SSLMode = v
		case "search_path":
			t.SearchPath = v
		}
	}
	return t
}

// authFrom reads the login method: v1's DB_CONNECTOR calls a password login "postgres", v2's
// CODER_PG_AUTH "password"; both call the IAM token login "awsiamrds". Empty is a password login.
func authFrom(name, value, passwordWord string) (string, error) {
	switch value {
	case "", passwordWord:
		return AuthPassword, nil
	case AuthAWSIAMRDS:
		return AuthAWSIAMRDS, nil
	}
	return "", fmt.Errorf("%s %q: want %s or %s", name, value, passwordWord, AuthAWSIAMRDS)
}
