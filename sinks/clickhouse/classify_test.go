package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	chgo "github.com/ClickHouse/ch-go"
	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/spanpipe/spanpipe/pipeline"
)

func ex(code int32, msg string) error {
	return &ch.Exception{Code: code, Name: "DB::Exception", Message: msg}
}

type kind int

const (
	retry kind = iota
	unavailable
	permanent
)

func (k kind) String() string { return [...]string{"retry", "unavailable", "permanent"}[k] }

func kindOf(err error) kind {
	switch {
	case errors.Is(err, pipeline.ErrPermanent):
		return permanent
	case errors.Is(err, pipeline.ErrUnavailable):
		return unavailable
	}
	return retry
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want kind
	}{
		// The native inserts' client (ch-go) wraps the server's exceptions its own way.
		{"ch-go: unknown table", fmt.Errorf("handle packet: %w", &chgo.Exception{Code: 60, Message: "Table x.spans does not exist"}), permanent},
		{"ch-go: too many parts", fmt.Errorf("handle packet: %w", &chgo.Exception{Code: 252, Message: "Too many parts (3000)"}), unavailable},
		{"ch-go: too many partitions", &chgo.Exception{Code: 252, Message: "Too many partitions for single INSERT block"}, permanent},
		{"ch-go: closed client", fmt.Errorf("insert: %w", chgo.ErrClosed), unavailable},
		// The store is down, unreachable or overloaded: wait, never dead-letter.
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, unavailable},
		{"wrapped connection refused", fmt.Errorf("clickhouse: prepare insert into spans: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), unavailable},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, unavailable},
		{"bare ECONNRESET", syscall.ECONNRESET, unavailable},
		{"broken pipe", fmt.Errorf("send data: connection broken (EPIPE): %w", syscall.EPIPE), unavailable},
		{"EOF", io.EOF, unavailable},
		{"read EOF", fmt.Errorf("read data: failed to read block name: %w", io.EOF), unavailable},
		{"unexpected EOF", io.ErrUnexpectedEOF, unavailable},
		{"closed connection (unwrapped driver error)", errors.New("attempted sending on closed connection"), unavailable},
		{"socket deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), unavailable},
		{"context deadline", context.DeadlineExceeded, unavailable},
		{"acquire conn timeout", ch.ErrAcquireConnTimeout, unavailable},
		{"HTTP 503", &ch.HTTPError{StatusCode: 503, Err: errors.New("service unavailable")}, unavailable},
		{"timeout exceeded", ex(159, "Timeout exceeded: elapsed 30 seconds"), unavailable},
		{"socket timeout", ex(209, "Timeout exceeded while reading from socket"), unavailable},
		{"network error", ex(210, "Connection refused"), unavailable},
		{"server shutting down: aborted", ex(236, "Server shutdown is called"), unavailable},
		{"server shutting down: cancelled", ex(394, "Query was cancelled"), unavailable},
		{"too many parts", ex(252, "Too many parts (3001). Merges are processing significantly slower than inserts"), unavailable},
		{"memory limit", ex(241, "Memory limit (total) exceeded"), unavailable},
		{"simultaneous queries", ex(202, "Too many simultaneous queries"), unavailable},
		{"unknown status of insert", ex(319, "Unknown status of insert"), unavailable},
		{"keeper exception", ex(999, "Coordination::Exception: Connection loss"), unavailable},
		{"no zookeeper", ex(225, "Cannot use ZooKeeper table engine without ZooKeeper"), unavailable},
		{"table is read only", ex(242, "Table is in readonly mode"), unavailable},
		{"too few live replicas", ex(285, "Number of alive replicas (1) is less than requested quorum (2)"), unavailable},
		{"not enough space", ex(243, "Cannot reserve 1.00 MiB, not enough space"), unavailable},
		{"access denied", ex(497, "default: Not enough privileges"), unavailable},
		{"authentication failed", ex(516, "default: Authentication failed"), unavailable},
		{"wrapped unavailable exception", fmt.Errorf("clickhouse: insert 10 rows into spans: %w", ex(252, "Too many parts")), unavailable},
		{"already unavailable", pipeline.Unavailable(errors.New("down")), unavailable},

		// Neither: retried, then the on_retry_exhausted policy.
		{"unknown code", ex(12345, "something new"), retry},
		{"system error", ex(425, "System error"), retry},
		{"context canceled", fmt.Errorf("clickhouse: insert: %w", context.Canceled), retry},
		{"HTTP 500", &ch.HTTPError{StatusCode: 500, Err: errors.New("internal")}, retry},
		{"some other error", errors.New("clickhouse: something odd"), retry},

		// The store rejects the batch: dead-lettered at once.
		{"unknown table", ex(60, "Table spanpipe.spans does not exist"), permanent},
		{"unknown database", ex(81, "Database spanpipe does not exist"), permanent},
		{"type mismatch", ex(53, "Type mismatch for column version"), permanent},
		{"cannot parse text", ex(6, "Cannot parse string 'x' as UInt64"), permanent},
		{"cannot parse datetime", ex(41, "Cannot parse datetime"), permanent},
		{"cannot parse number", ex(72, "Cannot parse number"), permanent},
		{"cannot parse input", ex(27, "Cannot parse input: expected ','"), permanent},
		{"illegal type of argument", ex(43, "Illegal type String of argument of function toDate"), permanent},
		{"no such column", ex(16, "No such column metadata_search in table spanpipe.spans"), permanent},
		{"not found column in block", ex(10, "Not found column trace_id in block"), permanent},
		{"number of columns", ex(20, "Number of columns doesn't match"), permanent},
		{"unknown setting", ex(115, "Unknown setting insert_deduplication_token"), permanent},
		{"violated constraint", ex(469, "Constraint `no_poison` for table spanpipe.spans is violated at row 3"), permanent},
		{"too many partitions", ex(252, "Too many partitions for single INSERT block (more than 100)"), permanent},
		{"wrapped permanent exception", fmt.Errorf("clickhouse: insert: %w", ex(60, "Table x does not exist")), permanent},
		{"column conversion", &column.ColumnConverterError{Op: "Append", To: "UInt64", From: "string"}, permanent},
		{"already permanent", pipeline.Permanent(errors.New("bad row")), permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			if k := kindOf(got); k != tt.want {
				t.Fatalf("classify(%v): %v, want %v", tt.err, k, tt.want)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("classify(%v) = %v: does not wrap the input", tt.err, got)
			}
			if got.Error() != tt.err.Error() {
				t.Errorf("classify changed the message: got %q, want %q", got.Error(), tt.err.Error())
			}
			if tt.want == retry && got != tt.err {
				t.Errorf("an error to retry must be returned as is, got %#v", got)
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) must be nil")
	}
}

// Every code is classified exactly once.
func TestCodeTablesDisjoint(t *testing.T) {
	for code, name := range permanentCodes {
		if other, ok := unavailableCodes[code]; ok {
			t.Errorf("code %d is both permanent (%s) and unavailable (%s)", code, name, other)
		}
	}
}
