package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/spanpipe/spanpipe/pipeline"
)

func ex(code int32, msg string) error {
	return &ch.Exception{Code: code, Name: "DB::Exception", Message: msg}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		permanent bool
	}{
		// Transient: returned as is, retried by the pipeline.
		{"timeout exceeded", ex(159, "Timeout exceeded: elapsed 30 seconds"), false},
		{"too many parts", ex(252, "Too many parts (3001). Merges are processing significantly slower than inserts"), false},
		{"unknown status of insert", ex(319, "Unknown status of insert"), false},
		{"keeper exception", ex(999, "Coordination::Exception: Connection loss"), false},
		{"no zookeeper", ex(225, "Cannot use ZooKeeper table engine without ZooKeeper"), false},
		{"memory limit", ex(241, "Memory limit (total) exceeded"), false},
		{"table is read only", ex(242, "Table is in readonly mode"), false},
		{"too few live replicas", ex(285, "Number of alive replicas (1) is less than requested quorum (2)"), false},
		{"network error", ex(210, "Connection refused"), false},
		{"socket timeout", ex(209, "Timeout exceeded while reading from socket"), false},
		{"simultaneous queries", ex(202, "Too many simultaneous queries"), false},
		{"access denied", ex(497, "default: Not enough privileges"), false},
		{"unknown code", ex(12345, "something new"), false},
		{"wrapped transient exception", fmt.Errorf("clickhouse: insert 10 rows into spans: %w", ex(252, "Too many parts")), false},
		{"context deadline", context.DeadlineExceeded, false},
		{"context canceled", fmt.Errorf("clickhouse: insert: %w", context.Canceled), false},
		{"EOF", io.EOF, false},
		{"unexpected EOF", io.ErrUnexpectedEOF, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"acquire conn timeout", ch.ErrAcquireConnTimeout, false},

		// Permanent: wrapped with pipeline.Permanent, message kept.
		{"unknown table", ex(60, "Table spanpipe.spans does not exist"), true},
		{"unknown database", ex(81, "Database spanpipe does not exist"), true},
		{"type mismatch", ex(53, "Type mismatch for column version"), true},
		{"cannot parse text", ex(6, "Cannot parse string 'x' as UInt64"), true},
		{"cannot parse datetime", ex(41, "Cannot parse datetime"), true},
		{"cannot parse number", ex(72, "Cannot parse number"), true},
		{"cannot parse input", ex(27, "Cannot parse input: expected ','"), true},
		{"illegal type of argument", ex(43, "Illegal type String of argument of function toDate"), true},
		{"no such column", ex(16, "No such column metadata_search in table spanpipe.spans"), true},
		{"not found column in block", ex(10, "Not found column trace_id in block"), true},
		{"number of columns", ex(20, "Number of columns doesn't match"), true},
		{"unknown setting", ex(115, "Unknown setting insert_deduplication_token"), true},
		{"too many partitions", ex(252, "Too many partitions for single INSERT block (more than 100)"), true},
		{"wrapped permanent exception", fmt.Errorf("clickhouse: insert: %w", ex(60, "Table x does not exist")), true},
		{"column conversion", &column.ColumnConverterError{Op: "Append", To: "UInt64", From: "string"}, true},
		{"already permanent", pipeline.Permanent(errors.New("bad row")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			if perm := errors.Is(got, pipeline.ErrPermanent); perm != tt.permanent {
				t.Fatalf("classify(%v): permanent %v, want %v", tt.err, perm, tt.permanent)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("classify(%v) = %v: does not wrap the input", tt.err, got)
			}
			if got.Error() != tt.err.Error() {
				t.Errorf("classify changed the message: got %q, want %q", got.Error(), tt.err.Error())
			}
			if !tt.permanent && got != tt.err {
				t.Errorf("a transient error must be returned as is, got %#v", got)
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
		if other, ok := transientCodes[code]; ok {
			t.Errorf("code %d is both permanent (%s) and transient (%s)", code, name, other)
		}
	}
}
