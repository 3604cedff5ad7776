package main

import (
	"context"
	"errors"
	"testing"
)

// A wrong password stays the reported cause when the last attempt is cut short (issue seen under
// load: the log's last line said "operation was canceled" and hid the password error).
func TestPingCause(t *testing.T) {
	auth := errors.New(`pq: password authentication failed for user "coder"`)
	canceled := errors.New("dial tcp 10.213.43.1:15432: operation was canceled")
	if got := pingCause(nil, auth, nil); got != auth {
		t.Fatalf("first failure: got %v", got)
	}
	if got := pingCause(auth, canceled, context.Canceled); got != auth {
		t.Fatalf("cut short after a real failure: got %v, want the password error", got)
	}
	if got := pingCause(auth, canceled, context.DeadlineExceeded); got != auth {
		t.Fatalf("cut short by the deadline: got %v, want the password error", got)
	}
	if got := pingCause(nil, canceled, context.Canceled); got != canceled {
		t.Fatalf("cut short at the first attempt: got %v, want that error", got)
	}
	refused := errors.New("connection refused")
	if got := pingCause(auth, refused, nil); got != refused {
		t.Fatalf("a later attempt that ended by itself: got %v, want it", got)
	}
}
