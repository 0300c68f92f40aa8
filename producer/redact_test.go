package producer_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
)

const redactErr = `{"error":{"processor":"sensitive-data-filter"}}`

func mustRedactor(t testing.TB, cfg producer.RedactConfig) *producer.Redactor {
	t.Helper()
	r, err := producer.NewRedactor(cfg)
	if err != nil {
		t.Fatalf("NewRedactor(%+v): %v", cfg, err)
	}
	return r
}

func TestRedactJSON(t *testing.T) {
	partial := producer.RedactConfig{Style: producer.RedactPartial}
	tests := []struct {
		name string
		cfg  producer.RedactConfig
		in   string
		want string
	}{
		// Mastra's examples and key matching.
		{
			name: "password redacted, username kept",
			in:   `{"username":"bob","password":"hunter2"}`,
			want: `{"username":"bob","password":"[REDACTED]"}`,
		},
		{
			name: "key spellings normalise to apikey",
			in:   `{"api-key":"a","API_KEY":"b","ApiKey":"c","apiKey":"d","api.key":"e"}`,
			want: `{"api-key":"[REDACTED]","API_KEY":"[REDACTED]","ApiKey":"[REDACTED]","apiKey":"[REDACTED]","api.key":"[REDACTED]"}`,
		},
		{
			name: "exact match only: promptTokens is not token",
			in:   `{"promptTokens":12,"completionTokens":3,"tokenizer":"bpe","keys":["a"],"x-api-key-id":"k"}`,
			want: `{"promptTokens":12,"completionTokens":3,"tokenizer":"bpe","keys":["a"],"x-api-key-id":"k"}`,
		},
		{
			name: "exact match only: compound names are matched only when listed",
			in:   `{"refresh_token":"r","access_token":"a","refresh":"r2","refresh_rate":5,"cookies_enabled":true}`,
			want: `{"refresh_token":"[REDACTED]","access_token":"[REDACTED]","refresh":"[REDACTED]","refresh_rate":5,"cookies_enabled":true}`,
		},
		{
			name: "every default key",
			in:   `{"password":1,"token":1,"secret":1,"key":1,"apikey":1,"auth":1,"authorization":1,"bearer":1,"bearertoken":1,"jwt":1,"credential":1,"clientsecret":1,"privatekey":1,"refresh":1,"ssn":1,"credentials":1}`,
			want: `{"password":"[REDACTED]","token":"[REDACTED]","secret":"[REDACTED]","key":"[REDACTED]","apikey":"[REDACTED]","auth":"[REDACTED]","authorization":"[REDACTED]","bearer":"[REDACTED]","bearertoken":"[REDACTED]","jwt":"[REDACTED]","credential":"[REDACTED]","clientsecret":"[REDACTED]","privatekey":"[REDACTED]","refresh":"[REDACTED]","ssn":"[REDACTED]","credentials":1}`,
		},
		{
			name: "snake, kebab and upper case variants",
			in:   `{"Client_Secret":"a","private-key":"b","BEARER_TOKEN":"c","Authorization":"Bearer x"}`,
			want: `{"Client_Secret":"[REDACTED]","private-key":"[REDACTED]","BEARER_TOKEN":"[REDACTED]","Authorization":"[REDACTED]"}`,
		},
		{
			name: "escaped name",
			in:   `{"p\u0061ssword":"x","\u0074oken":"y"}`,
			want: `{"p\u0061ssword":"[REDACTED]","\u0074oken":"[REDACTED]"}`,
		},
		{
			name: "non-ascii letters lowercasing to ascii",
			in:   `{"\u212Aey":"x","KEY\u00e9":"y"}`, // KELVIN SIGN; é is dropped
			want: `{"\u212Aey":"[REDACTED]","KEY\u00e9":"[REDACTED]"}`,
		},
		{
			name: "duplicate names all redacted",
			in:   `{"token":"a","token":"b"}`,
			want: `{"token":"[REDACTED]","token":"[REDACTED]"}`,
		},
		{
			name: "string value equal to a key is kept",
			in:   `{"field":"password","list":["token"]}`,
			want: `{"field":"password","list":["token"]}`,
		},

		// Value kinds.
		{
			name: "numbers and booleans redacted, null kept",
			in:   `{"ssn":123456789,"jwt":true,"secret":false,"token":null,"key":-1.5e3}`,
			want: `{"ssn":"[REDACTED]","jwt":"[REDACTED]","secret":"[REDACTED]","token":null,"key":"[REDACTED]"}`,
		},
		{
			name: "empty string redacted",
			in:   `{"password":""}`,
			want: `{"password":"[REDACTED]"}`,
		},
		{
			name: "already redacted value kept",
			in:   `{"password":"[REDACTED]"}`,
			want: `{"password":"[REDACTED]"}`,
		},

		// Recursion.
		{
			name: "object under a sensitive key is redacted whole",
			in:   `{"auth":{"user":"bob","pass":"abc","scopes":["read"]},"next":1}`,
			want: `{"auth":"[REDACTED]","next":1}`,
		},
		{
			name: "arrays under sensitive keys are redacted whole, empty ones too",
			in:   `{"key":["a","b",{"x":"s"}],"token":[],"cookie":["a=1","b=2"]}`,
			want: `{"key":"[REDACTED]","token":"[REDACTED]","cookie":"[REDACTED]"}`,
		},
		{
			name: "object under a sensitive key, partial style: whole token",
			cfg:  producer.RedactConfig{Style: producer.RedactPartial},
			in:   `{"credential":{"user":"bob-the-builder"}}`,
			want: `{"credential":"[REDACTED]"}`,
		},
		{
			name: "object under a sensitive key inside an embedded JSON string",
			in:   `{"result":"{\"headers\":{\"set-cookie\":[\"sid=1\"]}}"}`,
			want: `{"result":"{\"headers\":{\"set-cookie\":\"[REDACTED]\"}}"}`,
		},
		{
			name: "arrays of objects",
			in:   `[{"password":"a"},{"password":"b"},[[{"jwt":"c"}]]]`,
			want: `[{"password":"[REDACTED]"},{"password":"[REDACTED]"},[[{"jwt":"[REDACTED]"}]]]`,
		},
		{
			name: "deeply nested",
			in:   `{"a":{"b":{"c":{"d":{"Secret":"s","e":1}}}}}`,
			want: `{"a":{"b":{"c":{"d":{"Secret":"[REDACTED]","e":1}}}}}`,
		},
		{
			name: "order, whitespace and number spelling kept",
			in:   " {\n  \"b\": 1.50,\n  \"password\" : \"x\" ,\n  \"a\": \"\\u00e9\"\n} ",
			want: " {\n  \"b\": 1.50,\n  \"password\" : \"[REDACTED]\" ,\n  \"a\": \"\\u00e9\"\n} ",
		},
		{
			name: "scalar top level kept",
			in:   `"password"`,
			want: `"password"`,
		},

		// JSON held in strings.
		{
			name: "object in a string",
			in:   `{"content":"{\"apiKey\":\"sk-123\",\"q\":\"hi\"}"}`,
			want: `{"content":"{\"apiKey\":\"[REDACTED]\",\"q\":\"hi\"}"}`,
		},
		{
			name: "array in a string, in an array",
			in:   `["[{\"token\":\"t\"}]"]`,
			want: `["[{\"token\":\"[REDACTED]\"}]"]`,
		},
		{
			name: "tool result in model input (mastra#9846)",
			in:   `{"messages":[{"role":"tool","content":[{"type":"tool-result","result":"{\"user\":\"bob\",\"password\":\"p4ss\"}"}]}]}`,
			want: `{"messages":[{"role":"tool","content":[{"type":"tool-result","result":"{\"user\":\"bob\",\"password\":\"[REDACTED]\"}"}]}]}`,
		},
		{
			name: "surrounding whitespace trimmed when rewritten",
			in:   `{"x":" \n {\"secret\": \"s\"} \t"}`,
			want: `{"x":"{\"secret\": \"[REDACTED]\"}"}`,
		},
		{
			name: "JSON in a string in a string",
			in:   `{"x":"{\"y\":\"{\\\"jwt\\\":\\\"j\\\"}\"}"}`,
			want: `{"x":"{\"y\":\"{\\\"jwt\\\":\\\"[REDACTED]\\\"}\"}"}`,
		},
		{
			name: "top-level string holding JSON",
			in:   `"{\"password\":\"x\"}"`,
			want: `"{\"password\":\"[REDACTED]\"}"`,
		},
		{
			name: "embedded JSON with nothing to redact kept as written",
			in:   `{"x":"{ \"a\" : 1 }","y":"[1, 2]"}`,
			want: `{"x":"{ \"a\" : 1 }","y":"[1, 2]"}`,
		},
		{
			name: "strings that only look like JSON kept",
			in:   `{"log":"[INFO] {\"password\":\"x\"}","b":"{not json}","c":"{\"password\":\"x\"} trailing","d":"[1] [2]"}`,
			want: `{"log":"[INFO] {\"password\":\"x\"}","b":"{not json}","c":"{\"password\":\"x\"} trailing","d":"[1] [2]"}`,
		},
		{
			name: "JSON string under a sensitive key redacted whole",
			in:   `{"token":"{\"a\":1}"}`,
			want: `{"token":"[REDACTED]"}`,
		},
		{
			name: "escaped braces in a string",
			in:   `{"x":"\u007b\"token\":\"t\"\u007d"}`,
			want: `{"x":"{\"token\":\"[REDACTED]\"}"}`,
		},

		// Partial style.
		{
			name: "partial: 6 characters fully redacted",
			cfg:  partial,
			in:   `{"password":"abcdef"}`,
			want: `{"password":"[REDACTED]"}`,
		},
		{
			name: "partial: 7 characters keep 3 and 3",
			cfg:  partial,
			in:   `{"password":"abcdefg"}`,
			want: `{"password":"abc…efg"}`,
		},
		{
			name: "partial: long value",
			cfg:  partial,
			in:   `{"apiKey":"sk-live-0123456789xyz"}`,
			want: `{"apiKey":"sk-…xyz"}`,
		},
		{
			name: "partial: counts characters, not bytes",
			cfg:  partial,
			in:   `{"password":"ééééééé","token":"éééééé"}`,
			want: `{"password":"ééé…ééé","token":"[REDACTED]"}`,
		},
		{
			name: "partial: escapes decoded before counting",
			cfg:  partial,
			in:   `{"password":"\u0061\u0062cdefgh\n"}`,
			want: `{"password":"abc…gh\n"}`,
		},
		{
			name: "partial: non-strings fully redacted, null kept",
			cfg:  partial,
			in:   `{"ssn":123456789,"jwt":true,"key":null}`,
			want: `{"ssn":"[REDACTED]","jwt":"[REDACTED]","key":null}`,
		},
		{
			name: "partial: token and partial values kept",
			cfg:  partial,
			in:   `{"password":"[REDACTED]","token":"abc…efg"}`,
			want: `{"password":"[REDACTED]","token":"abc…efg"}`,
		},
		{
			name: "partial: custom token",
			cfg:  producer.RedactConfig{Style: producer.RedactPartial, Token: "***"},
			in:   `{"password":"abc","token":"***"}`,
			want: `{"password":"***","token":"***"}`,
		},

		// Configuration.
		{
			name: "custom keys replace the defaults",
			cfg:  producer.RedactConfig{Keys: []string{"session-id", "Email"}},
			in:   `{"sessionId":"s","SESSION_ID":"s","email":"e@x","password":"p","token":"t"}`,
			want: `{"sessionId":"[REDACTED]","SESSION_ID":"[REDACTED]","email":"[REDACTED]","password":"p","token":"t"}`,
		},
		{
			name: "custom token",
			cfg:  producer.RedactConfig{Token: "<hidden \"x\">"},
			in:   `{"password":"p"}`,
			want: `{"password":"<hidden \"x\">"}`,
		},
		{
			name: "disabled",
			cfg:  producer.RedactConfig{Disabled: true},
			in:   `{"password":"p","x":"{\"token\":1}"}`,
			want: `{"password":"p","x":"{\"token\":1}"}`,
		},

		// Payloads that cannot be processed.
		{
			name: "invalid JSON with a sensitive name",
			in:   `{"password":"p"`,
			want: redactErr,
		},
		{
			name: "valid JSON followed by garbage",
			in:   `{"password":"p"} x`,
			want: redactErr,
		},
		{
			name: "two values",
			in:   `{"token":1} {}`,
			want: redactErr,
		},
		{
			name: "invalid JSON with nothing to redact passes the fast path",
			in:   `{"a":1`,
			want: `{"a":1`,
		},
		{
			name: "empty",
			in:   ``,
			want: ``,
		},
		{
			name: "whitespace only",
			in:   "  \n",
			want: "  \n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRedactor(t, tt.cfg)
			in := []byte(tt.in)
			got := r.RedactJSON(jsontext.Value(in))
			if string(got) != tt.want {
				t.Fatalf("RedactJSON(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
			if string(in) != tt.in {
				t.Errorf("RedactJSON(%s) modified its input to %s", tt.in, in)
			}
			if again := r.RedactJSON(got); !bytes.Equal(again, got) {
				t.Errorf("RedactJSON is not idempotent on %s: got %s", got, again)
			}
		})
	}
}

func TestRedactJSONDepth(t *testing.T) {
	r := mustRedactor(t, producer.RedactConfig{})
	deep := strings.Repeat(`{"a":`, 20000) + `{"token":1}` + strings.Repeat(`}`, 20000)
	if got := r.RedactJSON(jsontext.Value(deep)); string(got) != redactErr {
		t.Errorf("RedactJSON(20000 levels) = %.60s..., want %s", got, redactErr)
	}
	ok := strings.Repeat(`[`, 500) + `{"token":1}` + strings.Repeat(`]`, 500)
	want := strings.Repeat(`[`, 500) + `{"token":"[REDACTED]"}` + strings.Repeat(`]`, 500)
	if got := r.RedactJSON(jsontext.Value(ok)); string(got) != want {
		t.Errorf("RedactJSON(500 levels) = %.60s..., want %.60s...", got, want)
	}
}

func TestRedactJSONFastPath(t *testing.T) {
	r := mustRedactor(t, producer.RedactConfig{})
	tests := []struct {
		name string
		in   string
	}{
		{name: "no strings", in: `[1,2,{"":null}]`},
		{name: "names that do not match", in: `{"promptTokens":1,"model":"gpt","messages":[{"role":"user","content":"hello {world}"}]}`},
		{name: "escapes in values", in: `{"content":"line\n\"quoted\" \\ [x]"}`},
		{name: "long name", in: `{"` + strings.Repeat("password", 20) + `":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := jsontext.Value(tt.in)
			var got jsontext.Value
			allocs := testing.AllocsPerRun(100, func() { got = r.RedactJSON(in) })
			if allocs != 0 {
				t.Errorf("RedactJSON(%s) allocated %v times, want 0", tt.in, allocs)
			}
			if len(got) != len(in) || (len(in) > 0 && &got[0] != &in[0]) {
				t.Errorf("RedactJSON(%s) = %s, want its input back", tt.in, got)
			}
		})
	}
}

func TestRedactSpan(t *testing.T) {
	r := mustRedactor(t, producer.RedactConfig{})
	s := &schema.Span{
		TraceID:        "t1",
		SpanID:         "s1",
		Name:           "password reset",
		Attributes:     jsontext.Value(`{"model":"m","apiKey":"a"}`),
		Metadata:       jsontext.Value(`{"userId":"u","token":"t"}`),
		Input:          jsontext.Value(`{"password":"p"}`),
		Output:         jsontext.Value(`["{\"secret\":\"s\"}"]`),
		RequestContext: jsontext.Value(`{"authorization":"Bearer b"}`),
		ErrorInfo: &schema.ErrorInfo{
			Message: `login failed for {"password":"p"}`,
			Stack:   `token=t at main.go:1`,
			Details: jsontext.Value(`{"jwt":"j","code":401}`),
		},
	}
	r.RedactSpan(s)
	for _, c := range []struct {
		field string
		got   jsontext.Value
		want  string
	}{
		{"attributes", s.Attributes, `{"model":"m","apiKey":"[REDACTED]"}`},
		{"metadata", s.Metadata, `{"userId":"u","token":"[REDACTED]"}`},
		{"input", s.Input, `{"password":"[REDACTED]"}`},
		{"output", s.Output, `["{\"secret\":\"[REDACTED]\"}"]`},
		{"requestContext", s.RequestContext, `{"authorization":"[REDACTED]"}`},
		{"errorInfo.details", s.ErrorInfo.Details, `{"jwt":"[REDACTED]","code":401}`},
	} {
		if string(c.got) != c.want {
			t.Errorf("%s: got %s, want %s", c.field, c.got, c.want)
		}
	}
	if s.Name != "password reset" || s.ErrorInfo.Message != `login failed for {"password":"p"}` || s.ErrorInfo.Stack != `token=t at main.go:1` {
		t.Errorf("RedactSpan changed name, message or stack: %q %q %q", s.Name, s.ErrorInfo.Message, s.ErrorInfo.Stack)
	}

	t.Run("invalid field", func(t *testing.T) {
		s := &schema.Span{Input: jsontext.Value(`{"token":`), Output: jsontext.Value(`{"a":1}`)}
		r.RedactSpan(s)
		if string(s.Input) != redactErr || string(s.Output) != `{"a":1}` {
			t.Errorf("got input %s, output %s; want input %s, output unchanged", s.Input, s.Output, redactErr)
		}
	})
	t.Run("no error info, empty fields", func(t *testing.T) {
		s := &schema.Span{}
		r.RedactSpan(s)
		if s.Input != nil || s.ErrorInfo != nil {
			t.Errorf("RedactSpan(empty span) = %+v, want it unchanged", s)
		}
	})
	t.Run("nil", func(t *testing.T) {
		var nilR *producer.Redactor
		s := &schema.Span{Input: jsontext.Value(`{"password":"p"}`)}
		nilR.RedactSpan(s)
		if string(s.Input) != `{"password":"p"}` {
			t.Errorf("nil Redactor changed input to %s", s.Input)
		}
		if got := nilR.RedactJSON(s.Input); string(got) != `{"password":"p"}` {
			t.Errorf("nil Redactor: RedactJSON = %s", got)
		}
		r.RedactSpan(nil) // must not panic
	})
	t.Run("disabled", func(t *testing.T) {
		d := mustRedactor(t, producer.RedactConfig{Disabled: true})
		s := &schema.Span{Input: jsontext.Value(`{"password":"p"}`), ErrorInfo: &schema.ErrorInfo{Details: jsontext.Value(`{"jwt":1}`)}}
		d.RedactSpan(s)
		if string(s.Input) != `{"password":"p"}` || string(s.ErrorInfo.Details) != `{"jwt":1}` {
			t.Errorf("disabled Redactor changed the span: %s %s", s.Input, s.ErrorInfo.Details)
		}
	})
}

func TestRedactErrorMarkerStable(t *testing.T) {
	r := mustRedactor(t, producer.RedactConfig{Keys: []string{"error", "processor"}})
	got := r.RedactJSON(jsontext.Value(`{"error":`))
	if string(got) != redactErr {
		t.Fatalf("RedactJSON(invalid) = %s, want %s", got, redactErr)
	}
	if again := r.RedactJSON(got); string(again) != redactErr {
		t.Errorf("RedactJSON(%s) = %s, want it unchanged", got, again)
	}
}

func TestRedactorConcurrent(t *testing.T) {
	r := mustRedactor(t, producer.RedactConfig{Style: producer.RedactPartial})
	in := jsontext.Value(`{"a":[{"password":"abcdefgh"},"{\"token\":\"t\"}"]}`)
	want := `{"a":[{"password":"abc…fgh"},"{\"token\":\"[REDACTED]\"}"]}`
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if got := r.RedactJSON(in); string(got) != want {
					t.Errorf("RedactJSON(%s) = %s, want %s", in, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRedactConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  producer.RedactConfig
		want []string // substrings of the error; none means valid
	}{
		{name: "zero value", cfg: producer.RedactConfig{}},
		{name: "defaults", cfg: producer.DefaultRedactConfig()},
		{name: "partial", cfg: producer.RedactConfig{Style: producer.RedactPartial, Keys: []string{"x"}, Token: "#"}},
		{name: "bad style", cfg: producer.RedactConfig{Style: "indexed"}, want: []string{"redact.style must be full or partial"}},
		{name: "key without letters", cfg: producer.RedactConfig{Keys: []string{"ok", "-_-"}}, want: []string{"redact.keys[1]"}},
		{name: "key too long", cfg: producer.RedactConfig{Keys: []string{strings.Repeat("k", 65)}}, want: []string{"redact.keys[0] must be at most 64"}},
		{name: "token not UTF-8", cfg: producer.RedactConfig{Token: "\xff"}, want: []string{"redact.token must be valid UTF-8"}},
		{
			name: "all problems reported",
			cfg:  producer.RedactConfig{Style: "x", Keys: []string{""}, Token: "\xff"},
			want: []string{"redact.style", "redact.keys[0]", "redact.token"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", tt.cfg, err)
				}
				if _, err := producer.NewRedactor(tt.cfg); err != nil {
					t.Fatalf("NewRedactor(%+v) = %v, want nil", tt.cfg, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error", tt.cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %q, want it to contain %q", tt.cfg, err, w)
				}
			}
			if _, err := producer.NewRedactor(tt.cfg); err == nil {
				t.Errorf("NewRedactor(%+v) = nil error, want one", tt.cfg)
			}
		})
	}
}

var mastraKeys = []string{
	"password", "token", "secret", "key", "apikey", "auth", "authorization",
	"bearer", "bearertoken", "jwt", "credential", "clientsecret", "privatekey",
	"refresh", "ssn",
}

// TestRedactCommonSecretKeys: the names secrets commonly travel under in tool calls,
// headers and environments are redacted by default, in the spellings apps use.
func TestRedactCommonSecretKeys(t *testing.T) {
	r := mustRedactor(t, producer.RedactConfig{})
	for _, name := range []string{
		"access_token", "accessToken", "refresh_token", "RefreshToken", "id_token", "session_token",
		"x-api-key", "X-API-Key", "x-auth-token", "openai_api_key", "OPENAI_API_KEY", "anthropic_api_key",
		"google_api_key", "cookie", "Cookie", "set-cookie", "Set-Cookie", "proxy-authorization",
		"aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", "aws_session_token", "client_secret", "clientSecret",
		"private_key", "privateKey",
	} {
		for _, value := range []string{`"s3cr3t-value"`, `12345`, `true`, `{"nested":"v"}`, `["a","b"]`} {
			in := `{"` + name + `":` + value + `,"kept":"v"}`
			want := `{"` + name + `":"[REDACTED]","kept":"v"}`
			if got := string(r.RedactJSON(jsontext.Value(in))); got != want {
				t.Errorf("RedactJSON(%s)\n got %s\nwant %s", in, got, want)
			}
		}
	}
}

func TestDefaultRedactConfig(t *testing.T) {
	c := producer.DefaultRedactConfig()
	if c.Disabled || c.Style != producer.RedactFull || c.Token != "[REDACTED]" || !slices.Equal(c.Keys[:15], mastraKeys) {
		t.Errorf("DefaultRedactConfig() = %+v, want enabled, full, [REDACTED] and Mastra's 15 keys first", c)
	}
	c.Keys[0] = "changed"
	if producer.DefaultRedactKeys()[0] == "changed" {
		t.Error("DefaultRedactKeys shares its slice between calls")
	}
}

func ExampleRedactor_RedactJSON() {
	r, err := producer.NewRedactor(producer.RedactConfig{Style: producer.RedactPartial})
	if err != nil {
		panic(err)
	}
	in := jsontext.Value(`{"user":"bob","apiKey":"sk-live-1234567890","pin":1234,"auth":{"token":"abc"},"usage":{"promptTokens":12}}`)
	fmt.Println(string(r.RedactJSON(in)))
	// Output:
	// {"user":"bob","apiKey":"sk-…890","pin":1234,"auth":"[REDACTED]","usage":{"promptTokens":12}}
}

// benchPayload builds a model-call input of about size bytes, shaped like the spans
// Mastra sends: messages with long text, usage counters whose names nearly match, and
// optionally one sensitive member at the end.
func benchPayload(size int, sensitive bool) jsontext.Value {
	var b strings.Builder
	b.WriteString(`{"model":"gpt-4o","usage":{"promptTokens":1200,"completionTokens":300},"messages":[`)
	text := `Summarise the attached report. It covers revenue, costs and the \"outlook\" for next year.\nKeep it short. `
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"role":"user","id":%d,"content":[{"type":"text","text":"%s"}]}`, i, text)
	}
	b.WriteString(`]`)
	if sensitive {
		b.WriteString(`,"headers":{"authorization":"Bearer abcdefghijklmnop"}`)
	}
	b.WriteString(`}`)
	return jsontext.Value(b.String())
}

// BenchmarkRedactJSON measures the fast path (clean: nothing to redact, returned as
// it is) and the slow path (sensitive: one member to redact, so the payload is parsed
// and copied) over payload sizes.
func BenchmarkRedactJSON(b *testing.B) {
	r := mustRedactor(b, producer.RedactConfig{})
	for _, path := range []string{"clean", "sensitive"} {
		for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
			v := benchPayload(size, path == "sensitive")
			b.Run(fmt.Sprintf("%s/%dKiB", path, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(v)))
				b.ReportAllocs()
				for b.Loop() {
					_ = r.RedactJSON(v)
				}
			})
		}
	}
}
