package main

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// logger writes one line per event, in the shape of Coder's human log
// (cdr.dev/slog): "2006-01-02 15:04:05.000 [info]  coderd: message  key=value ...".
// Every line passes through redact, so that no password, URL or DSN is written.
type logger struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
	now     func() time.Time
}

func newLogger(w io.Writer) *logger {
	return &logger{w: w, now: time.Now}
}

// setSecrets registers strings that must never appear in a log line.
// Secrets shorter than 4 characters are not replaced character-wise (that
// would garble every line); they are only ever present inside the full
// URL/DSN, which is registered too.
func (l *logger) setSecrets(s []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets = nil
	for _, x := range s {
		if len(x) >= 4 {
			l.secrets = append(l.secrets, x)
		}
	}
	// Longest first, so that a URL is replaced whole before its password.
	sort.Slice(l.secrets, func(i, j int) bool { return len(l.secrets[i]) > len(l.secrets[j]) })
}

func (l *logger) redact(s string) string {
	for _, x := range l.secrets {
		s = strings.ReplaceAll(s, x, "[redacted]")
	}
	return s
}

func (l *logger) log(level, msg string, kv ...any) {
	var b strings.Builder
	b.WriteString(l.now().Format("2006-01-02 15:04:05.000"))
	b.WriteString(" [")
	b.WriteString(level)
	b.WriteString("]  coderd: ")
	b.WriteString(msg)
	for i := 0; i+1 < len(kv); i += 2 {
		if i == 0 {
			b.WriteString(" ")
		}
		v := fmt.Sprint(kv[i+1])
		if strings.ContainsAny(v, " \t\"") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %v=%s", kv[i], v)
	}
	line := strings.ReplaceAll(b.String(), "\n", `\n`)
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, l.redact(line))
}

func (l *logger) Info(msg string, kv ...any)  { l.log("info", msg, kv...) }
func (l *logger) Warn(msg string, kv ...any)  { l.log("warn", msg, kv...) }
func (l *logger) Error(msg string, kv ...any) { l.log("erro", msg, kv...) }
func (l *logger) Fatal(msg string, kv ...any) { l.log("fata", msg, kv...) }

// migrateLog adapts the logger to golang-migrate's Logger interface and
// counts the migrations this process applied ("N/u name (duration)" lines).
type migrateLog struct {
	l       *logger
	applied *int
}

var appliedLine = regexp.MustCompile(`^[0-9]+/u `)

func (m migrateLog) Printf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if appliedLine.MatchString(msg) && m.applied != nil {
		*m.applied++
	}
	m.l.Info("migrate: " + msg)
}
func (m migrateLog) Verbose() bool { return false }
