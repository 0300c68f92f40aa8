package clickhouse

import (
	"errors"
	"strings"

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
}

// Codes known to be transient: overload, timeouts, the network, Keeper and replication
// trouble, and conditions an operator fixes without touching the data (access, disk
// space). They are listed to document the choice; any code not in permanentCodes is
// retried, because dead-lettering a good batch is worse than retrying a bad one a few
// times.
var transientCodes = map[int32]string{
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
	373:  "SESSION_IS_LOCKED",
	394:  "QUERY_WAS_CANCELLED",
	425:  "SYSTEM_ERROR",
	439:  "CANNOT_SCHEDULE_TASK",
	473:  "DEADLOCK_AVOIDED",
	497:  "ACCESS_DENIED",
	516:  "AUTHENTICATION_FAILED",
	999:  "KEEPER_EXCEPTION",
	1000: "POCO_EXCEPTION",
}

// classify returns err wrapped with [pipeline.Permanent] when retrying the same batch
// cannot succeed, and err unchanged otherwise (the pipeline retries it):
//
//   - a ClickHouse exception with a code in permanentCodes (unknown table or column,
//     type mismatch, unparsable value, ...), or TOO_MANY_PARTS raised for "too many
//     partitions for single INSERT block", which a retry of the same block meets again;
//   - a driver error converting a Go value to a column type.
//
// Everything else stays retryable: timeouts, connection errors, context errors,
// TOO_MANY_PARTS, UNKNOWN_STATUS_OF_INSERT, memory limits, Keeper errors, unknown
// codes. Already-permanent errors are returned as they are. The message is kept.
func classify(err error) error {
	if err == nil || errors.Is(err, pipeline.ErrPermanent) {
		return err
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		if _, ok := permanentCodes[ex.Code]; ok {
			return pipeline.Permanent(err)
		}
		if ex.Code == 252 && strings.Contains(strings.ToLower(ex.Message), "too many partitions") {
			return pipeline.Permanent(err)
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
	return err
}
