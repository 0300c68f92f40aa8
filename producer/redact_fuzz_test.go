package producer_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/producer"
)

func FuzzRedactJSON(f *testing.F) {
	seeds := []string{
		`{"username":"bob","password":"hunter2"}`,
		`{"api-key":"a","promptTokens":1,"auth":{"token":"t","user":"u"},"key":["a",{"secret":1}]}`,
		`[{"jwt":null},{"ssn":123456789},{"bearer":true}]`,
		`{"content":"{\"apiKey\":\"sk-123\"}","log":"[INFO] x","a":" [1, {\"token\": \"t\"}] "}`,
		`{"x":"{\"y\":\"{\\\"jwt\\\":\\\"j\\\"}\"}"}`,
		`{"p\u0061ssword":"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9","\u212Aey":"x"}`,
		`"{\"password\":\"x\"}"`,
		`{"password":"abc…efg","token":"[REDACTED]"}`,
		``,
		`   `,
		`null`,
		`{"password":"hun`,     // truncated
		`{"password":"p"`,      // truncated
		`{"a":[1,2`,            // truncated
		`{"token":"t"} xyz`,    // garbage after valid
		`{"token":"t"}{"a":1}`, // second value
		"{\"token\":\"\xff\xfe\"}",
		`{"token":"t","token":"u"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	full, err := producer.NewRedactor(producer.RedactConfig{})
	if err != nil {
		f.Fatal(err)
	}
	partial, err := producer.NewRedactor(producer.RedactConfig{Style: producer.RedactPartial})
	if err != nil {
		f.Fatal(err)
	}
	lenient := []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}
	f.Fuzz(func(t *testing.T, in []byte, usePartial bool) {
		r := full
		if usePartial {
			r = partial
		}
		orig := bytes.Clone(in)
		once := r.RedactJSON(jsontext.Value(in))
		if !bytes.Equal(in, orig) {
			t.Fatalf("RedactJSON(%q) modified its input to %q", orig, in)
		}
		// Valid JSON in (as strictly or as leniently as the store takes it) gives valid
		// JSON out.
		if jsontext.Value(in).IsValid() && !once.IsValid() {
			t.Fatalf("RedactJSON(%q) = %q, which is not valid JSON", in, once)
		}
		if jsontext.Value(in).IsValid(lenient...) && !once.IsValid(lenient...) {
			t.Fatalf("RedactJSON(%q) = %q, which is not valid JSON", in, once)
		}
		if jsontext.Value(in).IsValid(lenient...) {
			if path, ok := clean(once, usePartial); !ok {
				t.Fatalf("RedactJSON(%q) = %q, which leaves a sensitive value at %s", in, once, path)
			}
		}
		twice := r.RedactJSON(once)
		if !bytes.Equal(once, twice) {
			t.Fatalf("RedactJSON is not idempotent on %q:\n once %q\ntwice %q", in, once, twice)
		}
	})
}

// clean is an independent, slow check of the filter's output: it reports the first
// sensitive value left in v (valid JSON), looking into strings that hold JSON too.
// It uses the default keys and token.
func clean(v []byte, partial bool) (string, bool) {
	sensitive := map[string]bool{}
	for _, k := range producer.DefaultRedactKeys() {
		sensitive[k] = true
	}
	norm := func(s string) string {
		var b strings.Builder
		for _, c := range strings.ToLower(s) {
			if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				b.WriteRune(c)
			}
		}
		return b.String()
	}
	redacted := func(val jsontext.Value) bool {
		if val.Kind() != '"' {
			return false
		}
		s, err := jsontext.AppendUnquote(nil, val)
		if err != nil {
			return false
		}
		if string(s) == producer.DefaultRedactToken {
			return true
		}
		r := []rune(string(s))
		return partial && len(r) == 7 && r[3] == '…'
	}
	dec := jsontext.NewDecoder(bytes.NewReader(v), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var name string // name of the member whose value is next, or ""
	for {
		kind := dec.PeekKind()
		if kind == 0 {
			_, err := dec.ReadToken()
			return "", err == io.EOF
		}
		inObject := func() bool { k, n := dec.StackIndex(dec.StackDepth()); return k == '{' && n%2 == 0 }
		isName := kind == '"' && inObject()
		switch kind {
		case '{', '[', '}', ']':
			if _, err := dec.ReadToken(); err != nil {
				return "", false
			}
			name = ""
			continue
		}
		val, err := dec.ReadValue()
		if err != nil {
			return "", false
		}
		if isName {
			s, _ := jsontext.AppendUnquote(nil, val)
			name = string(s)
			continue
		}
		ptr := string(dec.StackPointer())
		if name != "" && sensitive[norm(name)] && kind != 'n' {
			if !redacted(val) {
				return ptr, false
			}
			name = ""
			continue
		}
		name = ""
		if kind != '"' {
			continue
		}
		s, err := jsontext.AppendUnquote(nil, val)
		if err != nil || !utf8.Valid(s) {
			continue
		}
		t := bytes.Trim(s, " \t\n\r")
		if len(t) == 0 || (t[0] != '{' && t[0] != '[') || !jsontext.Value(t).IsValid(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)) {
			continue
		}
		if p, ok := clean(t, partial); !ok {
			return ptr + " -> " + p, false
		}
	}
}
