package clickhouse

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	chgo "github.com/ClickHouse/ch-go"
	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/spanpipe/spanpipe/pipeline"
)

// Codes the migrator checks by number.
const (
	codeUnknownTable    = 60
	codeUnknownDatabase = 81
)

// ClickHouse error codes (src/Common/ErrorCodes.cpp) that a retry of the same insert
// cannot fix: the batch, or the schema it meets, is at fault.
var permanentCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	8:   "THERE_IS_NO_COLUMN",
	10:  "NOT_FOUND_COLUMN_IN_BLOCK",
	16:  "NO_SUCH_COLUMN_IN_TABLE",
	20:  "NUMBER_OF_COLUMNS_DOESNT_MATCH",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	36:  "BAD_ARGUMENTS",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	43:  "ILLEGAL_TYPE_OF_ARGUMENT",
	44:  "ILLEGAL_COLUMN",
	46:  "UNKNOWN_FUNCTION",
	47:  "UNKNOWN_IDENTIFIER",
	48:  "NOT_IMPLEMENTED",
	50:  "UNKNOWN_TYPE",
	53:  "TYPE_MISMATCH",
	60:  "UNKNOWN_TABLE",
	62:  "SYNTAX_ERROR",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	80:  "INCORRECT_QUERY",
	81:  "UNKNOWN_DATABASE",
	115: "UNKNOWN_SETTING",
	117: "INCORRECT_DATA",
	128: "TOO_LARGE_ARRAY_SIZE",
	131: "TOO_LARGE_STRING_SIZE",
	190: "SIZES_OF_ARRAYS_DONT_MATCH",
	344: "SUPPORT_IS_DISABLED",
	349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
	386: "NO_COMMON_TYPE",
	407: "DECIMAL_OVERFLOW",
	469: "VIOLATED_CONSTRAINT",
}

// Codes that say the server cannot take inserts right now, whatever the batch: the
// network and its timeouts, a server shutting down (queries aborted or cancelled),
// overload (memory, too many queries or parts, no free thread), a replica without
// Keeper or quorum, a full disk, and credentials the server refuses. The writer waits
// for these with backpressure (Kafka holds the data) instead of dead-lettering good
// batches: an operator fixes them without touching the data.
var unavailableCodes = map[int32]string{
	3:    "UNEXPECTED_END_OF_FILE",
	32:   "ATTEMPT_TO_READ_AFTER_EOF",
	33:   "CANNOT_READ_ALL_DATA",
	159:  "TIMEOUT_EXCEEDED",
	160:  "TOO_SLOW",
	164:  "READONLY",
	173:  "CANNOT_ALLOCATE_MEMORY",
	202:  "TOO_MANY_SIMULTANEOUS_QUERIES",
	203:  "NO_FREE_CONNECTION",
	209:  "SOCKET_TIMEOUT",
	210:  "NETWORK_ERROR",
	225:  "NO_ZOOKEEPER",
	236:  "ABORTED",
	241:  "MEMORY_LIMIT_EXCEEDED",
	242:  "TABLE_IS_READ_ONLY",
	243:  "NOT_ENOUGH_SPACE",
	252:  "TOO_MANY_PARTS",
	279:  "ALL_CONNECTION_TRIES_FAILED",
	285:  "TOO_FEW_LIVE_REPLICAS",
	286:  "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
	319:  "UNKNOWN_STATUS_OF_INSERT",
	394:  "QUERY_WAS_CANCELLED",
	439:  "CANNOT_SCHEDULE_TASK",
	497:  "ACCESS_DENIED",
	516:  "AUTHENTICATION_FAILED",
	999:  "KEEPER_EXCEPTION",
	1000: "POCO_EXCEPTION",
}

// Driver messages of a connection that broke, for the errors clickhouse-go creates
// without wrapping the socket's error ("attempted sending on closed connection").
var brokenConnection = []string{
	"closed connection",
	"connection refused",
	"connection reset",
	"broken pipe",
	"i/o timeout",
}

// classify sorts a failed insert into three kinds:
//
//   - [pipeline.Permanent]: the server rejects this batch, and a retry meets the same
//     answer. A code in permanentCodes (unknown table or column, type mismatch,
//     unparsable value, ...), TOO_MANY_PARTS raised for "too many partitions for
//     single INSERT block", or a driver error converting a Go value to a column type.
//   - [pipeline.Unavailable]: the store is down, unreachable or overloaded, whatever
//     the batch: a code in unavailableCodes, a network error (refused, reset, EOF, a
//     timeout), an HTTP 502/503/504, the pool's acquire timeout, a deadline.
//   - anything else (an unknown code, SYSTEM_ERROR, a cancelled context) is returned
//     as it is: retried, then handled by the on_retry_exhausted policy.
//
// Already-classified errors are returned as they are. The message is kept.
func classify(err error) error {
	if err == nil || errors.Is(err, pipeline.ErrPermanent) || errors.Is(err, pipeline.ErrUnavailable) {
		return err
	}
	if code, msg, ok := exception(err); ok {
		switch _, perm := permanentCodes[code]; {
		case perm:
			return pipeline.Permanent(err)
		case code == 252 && strings.Contains(strings.ToLower(msg), "too many partitions"):
			return pipeline.Permanent(err)
		}
		if _, ok := unavailableCodes[code]; ok {
			return pipeline.Unavailable(err)
		}
		return err
	}
	var (
		conv *column.ColumnConverterError
		col  *column.Error
		typ  *column.UnsupportedColumnTypeError
	)
	if errors.As(err, &conv) || errors.As(err, &col) || errors.As(err, &typ) {
		return pipeline.Permanent(err)
	}
	if unreachable(err) {
		return pipeline.Unavailable(err)
	}
	return err
}

// exception returns the code and message of the server's exception in err, from
// clickhouse-go or from ch-go (the native inserts).
func exception(err error) (code int32, msg string, ok bool) {
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return ex.Code, ex.Message, true
	}
	if ex, ok := chgo.AsException(err); ok {
		return int32(ex.Code), ex.Message, true
	}
	return 0, "", false
}

// unreachable reports whether err says the connection to the server failed.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // our caller gave up, the server said nothing
	}
	var (
		netErr  net.Error
		httpErr *ch.HTTPError
	)
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ch.ErrAcquireConnTimeout), errors.Is(err, chgo.ErrClosed):
		return true
	case errors.As(err, &httpErr):
		return httpErr.StatusCode == 502 || httpErr.StatusCode == 503 || httpErr.StatusCode == 504
	}
	msg := strings.ToLower(err.Error())
	for _, m := range brokenConnection {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
