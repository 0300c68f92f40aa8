// Package query is spanpipe's read side: the [Reader] interface the sinks implement
// (sinks/duckdb.Reader, sinks/clickhouse.Reader), the HTTP JSON API under /api/v1
// (described by openapi.yaml, served at /api/v1/openapi.yaml) and the explorer page,
// embedded: plain HTML, CSS and JavaScript, no build step.
//
// Everything is read-only and bounded: every parameter has a limit (bad input is a
// 400 with a message), every store query a timeout ([QueryTimeout]). Span content is
// untrusted (LLM output, user input): the page inserts it as text only, under a
// Content-Security-Policy that allows this origin's script and nothing inline.
//
// [Serve] starts one goroutine (the HTTP server), stopped and waited for by
// [Server.Close]. The package emits no metrics and returns [ErrInvalid] (wrapped) for
// bad requests.
package query
