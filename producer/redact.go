package producer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// RedactStyle selects how a [Redactor] rewrites a sensitive scalar value.
type RedactStyle string

// Redaction styles. They are Mastra's SensitiveDataFilter styles, less "indexed".
const (
	// RedactFull replaces the value with [RedactConfig.Token]. It is the default.
	RedactFull RedactStyle = "full"
	// RedactPartial keeps the first 3 and the last 3 characters of a string around
	// "…", so that "sk-live-abcdef123" becomes "sk-…123". Strings of 6 characters or
	// fewer, numbers and booleans are replaced with [RedactConfig.Token] as in
	// [RedactFull]. Characters are Unicode code points; Mastra counts UTF-16 code
	// units, which differs only for characters outside the Basic Multilingual Plane.
	RedactPartial RedactStyle = "partial"
)

// DefaultRedactToken is the default [RedactConfig.Token].
const DefaultRedactToken = "[REDACTED]"

// DefaultRedactKeys returns the keys redacted when [RedactConfig.Keys] is empty:
// Mastra's 15 default sensitive fields, plus the names under which OAuth tokens, API
// keys of the usual providers, HTTP credentials and cloud secrets travel in tool
// calls and request contexts, which exact matching would otherwise miss
// ("access_token" is not "token"). It returns a new slice on each call.
func DefaultRedactKeys() []string {
	return []string{
		// Mastra's.
		"password", "token", "secret", "key", "apikey", "auth", "authorization",
		"bearer", "bearertoken", "jwt", "credential", "clientsecret", "privatekey",
		"refresh", "ssn",
		// OAuth and session tokens.
		"access_token", "refresh_token", "id_token", "session_token", "x-auth-token",
		// HTTP credentials.
		"x-api-key", "cookie", "set-cookie", "proxy-authorization",
		// Provider and cloud keys.
		// (client_secret and private_key are Mastra's clientsecret and privatekey.)
		"openai_api_key", "anthropic_api_key", "google_api_key", "aws_secret_access_key",
		"aws_session_token",
	}
}

// maxRedactKeyLen bounds the normalised length of a configured key, so that key
// matching can normalise object names into a fixed-size stack buffer.
const maxRedactKeyLen = 64

// RedactConfig configures the sensitive-data filter, the Go counterpart of Mastra's
// SensitiveDataFilter span processor. The zero value is valid and means the defaults
// of [DefaultRedactConfig]: enabled, Mastra's default keys, [RedactFull] and
// [DefaultRedactToken].
type RedactConfig struct {
	// Disabled turns the filter off, so that payloads are sent as they are. Default
	// false: sensitive data is redacted (Mastra adds the filter unless told not to).
	Disabled bool `yaml:"disabled"`

	// Keys lists the sensitive object member names. A non-empty list replaces the
	// defaults ([DefaultRedactKeys]) rather than adding to them; empty means the
	// defaults. Names are compared after normalisation: lowercased, with every
	// character that is not an ASCII letter or digit removed, and matched by exact
	// equality. So "api-key", "API_KEY" and "ApiKey" all match "apikey", but
	// "promptTokens" does not match "token". Each entry must keep at least one letter
	// or digit, and at most 64, after normalisation.
	Keys []string `yaml:"keys"`

	// Style is how a sensitive scalar is rewritten: [RedactFull] or [RedactPartial].
	// Default (and empty) [RedactFull].
	Style RedactStyle `yaml:"style"`

	// Token is the string that replaces a redacted value. Default (and empty)
	// [DefaultRedactToken], "[REDACTED]". A string value already equal to Token is
	// left alone, which keeps redaction idempotent. Must be valid UTF-8.
	Token string `yaml:"token"`
}

// DefaultRedactConfig returns the default configuration with every default spelled
// out.
func DefaultRedactConfig() RedactConfig {
	return RedactConfig{
		Keys:  DefaultRedactKeys(),
		Style: RedactFull,
		Token: DefaultRedactToken,
	}
}

// Validate reports every problem in c, joined with [errors.Join], or nil. Zero values
// are valid and mean the defaults.
func (c RedactConfig) Validate() error {
	var errs []error
	switch c.Style {
	case "", RedactFull, RedactPartial:
	default:
		errs = append(errs, fmt.Errorf("redact.style must be %s or %s, got %q", RedactFull, RedactPartial, c.Style))
	}
	if !utf8.ValidString(c.Token) {
		errs = append(errs, errors.New("redact.token must be valid UTF-8"))
	}
	for i, k := range c.Keys {
		switch n := len(normalizeKey(k)); {
		case n == 0:
			errs = append(errs, fmt.Errorf("redact.keys[%d] (%q) must contain a letter or digit", i, k))
		case n > maxRedactKeyLen:
			errs = append(errs, fmt.Errorf("redact.keys[%d] must be at most %d letters and digits long", i, maxRedactKeyLen))
		}
	}
	return errors.Join(errs...)
}

// Redactor removes sensitive values from span payloads, as Mastra's
// SensitiveDataFilter does:
//
//   - An object member whose normalised name equals a normalised configured key (see
//     [RedactConfig.Keys]) is sensitive. If its value is a string, number or boolean,
//     the value is replaced according to [RedactConfig.Style]; null stays null. If
//     its value is an object or array, it is replaced whole by [RedactConfig.Token]
//     (whatever the style): `{"credentials":{"user":"bob","pass":"x"}}` or
//     `{"cookie":["a=1","b=2"]}` hold secrets under names no list can foresee. This
//     differs from Mastra, which recurses into them.
//   - Objects and arrays are walked recursively.
//   - A string value anywhere that, once trimmed of JSON whitespace, starts with { or
//     [ and parses as JSON is redacted in turn; when that changes it, it is replaced
//     by the compact redacted JSON text, still as a string. This catches tool results
//     embedded as JSON strings (mastra-ai/mastra#9846).
//   - A payload that is not valid JSON, or is nested deeper than 10000 levels, is
//     replaced as a whole by {"error":{"processor":"sensitive-data-filter"}}.
//
// Everything else, including member order, whitespace and the spelling of numbers
// and escapes, is kept byte for byte. Redaction is idempotent: redacting the result
// again changes nothing.
//
// A payload in which a cheap scan finds no member name that could match and no string
// that could hold JSON is returned as it is, without allocating; spans are usually
// large and most hold nothing to redact. That scan does not validate, so invalid JSON
// with nothing to redact in it is passed through unchanged.
//
// A nil *Redactor, or one built from a config with Disabled set, changes nothing.
// A Redactor is safe for concurrent use.
type Redactor struct {
	disabled bool
	partial  bool
	keys     map[string]struct{} // normalised
	maxKey   int                 // longest normalised key
	// lens[c] has bit n-1 set when a normalised key of length n starts with c. It
	// rules out most names before they are hashed.
	lens   [utf8.RuneSelf]uint64
	token  string
	quoted []byte // token as a JSON string
}

// NewRedactor validates cfg and returns a Redactor for it.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("producer: new redactor: %w", err)
	}
	r := &Redactor{
		disabled: cfg.Disabled,
		partial:  cfg.Style == RedactPartial,
		token:    cfg.Token,
	}
	if r.token == "" {
		r.token = DefaultRedactToken
	}
	r.quoted, _ = jsontext.AppendQuote(nil, r.token) // valid UTF-8, checked above
	keys := cfg.Keys
	if len(keys) == 0 {
		keys = DefaultRedactKeys()
	}
	r.keys = make(map[string]struct{}, len(keys))
	for _, k := range keys {
		n := normalizeKey(k)
		r.keys[string(n)] = struct{}{}
		r.lens[n[0]] |= 1 << (len(n) - 1)
		r.maxKey = max(r.maxKey, len(n))
	}
	return r, nil
}

// RedactSpan redacts, in place, the span's attributes, metadata, input, output,
// request context and error details (the error's message and stack are kept).
// Redacted fields get new backing arrays; the old ones are not written to.
func (r *Redactor) RedactSpan(s *schema.Span) {
	if r == nil || r.disabled || s == nil {
		return
	}
	s.Attributes = r.RedactJSON(s.Attributes)
	s.Metadata = r.RedactJSON(s.Metadata)
	s.Input = r.RedactJSON(s.Input)
	s.Output = r.RedactJSON(s.Output)
	s.RequestContext = r.RedactJSON(s.RequestContext)
	if s.ErrorInfo != nil {
		s.ErrorInfo.Details = r.RedactJSON(s.ErrorInfo.Details)
	}
}

// RedactJSON returns v with its sensitive values redacted, for the payloads of signals
// other than spans. It never modifies v: it returns either v itself, when there is
// nothing to redact, or a new value. An empty v is returned as it is.
func (r *Redactor) RedactJSON(v jsontext.Value) jsontext.Value {
	if r == nil || r.disabled || !r.mayRedact(v) || string(v) == redactErrorValue {
		return v // the marker too: custom keys could otherwise match "processor"
	}
	out, _, err := r.redact(v)
	if err != nil {
		return append(jsontext.Value(nil), redactErrorValue...)
	}
	return out
}

// redactErrorValue replaces a payload that cannot be processed, as Mastra does when
// its filter throws.
const redactErrorValue = `{"error":{"processor":"sensitive-data-filter"}}`

// errTrailingData reports input with more after its one JSON value.
var errTrailingData = errors.New("producer: redact: data after top-level value")

// asciiKey maps an ASCII byte to its normalised form: the lowercase letter or the
// digit, or 0 for a byte that normalisation removes.
var asciiKey = func() (t [utf8.RuneSelf]byte) {
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c
	}
	for c := byte('a'); c <= 'z'; c++ {
		t[c] = c
		t[c-'a'+'A'] = c
	}
	return t
}()

// normChar returns the normalised form of the character at s[i] (0 when
// normalisation removes it) and the character's width in bytes.
func normChar(s []byte, i int) (byte, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiKey[c], 1
	}
	c, size := utf8.DecodeRune(s[i:])
	// Mastra lowercases with JavaScript's toLowerCase before dropping everything but
	// [a-z0-9], so a few non-ASCII letters (KELVIN SIGN, the dotted capital I) turn
	// into ASCII ones.
	if c = unicode.ToLower(c); c < utf8.RuneSelf {
		return asciiKey[c], size
	}
	return 0, size
}

// normalizeKey returns the normalised form of a configured key.
func normalizeKey(key string) []byte {
	s := []byte(key)
	var dst []byte
	for i := 0; i < len(s); {
		c, size := normChar(s, i)
		if c != 0 {
			dst = append(dst, c)
		}
		i += size
	}
	return dst
}

// matchName reports whether the unescaped object name s is sensitive.
func (r *Redactor) matchName(s []byte) bool {
	var buf [maxRedactKeyLen]byte
	n := 0
	for i := 0; i < len(s); {
		c, size := normChar(s, i)
		i += size
		if c == 0 {
			continue
		}
		if n == r.maxKey {
			return false // longer than every key
		}
		buf[n] = c
		n++
	}
	if n == 0 || r.lens[buf[0]]&(1<<(n-1)) == 0 {
		return false
	}
	_, ok := r.keys[string(buf[:n])]
	return ok
}

// matchQuotedName is matchName for an object name as a raw JSON string.
func (r *Redactor) matchQuotedName(q []byte) bool {
	if bytes.IndexByte(q, '\\') < 0 {
		return r.matchName(q[1 : len(q)-1])
	}
	u, _ := jsontext.AppendUnquote(nil, q) // invalid UTF-8 comes back as U+FFFD
	return r.matchName(u)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// mayRedact is the fast path: it reports whether v may hold a sensitive member name
// or a string that holds JSON. It errs towards true and does not allocate.
func (r *Redactor) mayRedact(v []byte) bool {
	for i := 0; i < len(v); {
		q := bytes.IndexByte(v[i:], '"')
		if q < 0 {
			return false
		}
		start := i + q + 1
		end := start
		for {
			e := bytes.IndexByte(v[end:], '"')
			if e < 0 {
				return true // unterminated: let the parser reject it
			}
			end += e
			bs := 0
			for k := end - 1; k >= start && v[k] == '\\'; k-- {
				bs++
			}
			if bs%2 == 0 {
				break
			}
			end++
		}
		s := v[start:end]
		k := end + 1
		for k < len(v) && isJSONSpace(v[k]) {
			k++
		}
		if k < len(v) && v[k] == ':' {
			if bytes.IndexByte(s, '\\') >= 0 || r.matchName(s) {
				return true
			}
		} else if mayHoldJSON(s) {
			return true
		}
		i = end + 1
	}
	return false
}

// mayHoldJSON reports whether the raw JSON string s, given without its quotes, may
// decode to text that trimmed of JSON whitespace starts with { or [ and ends with }
// or ]. It errs towards true.
func mayHoldJSON(s []byte) bool {
	i := 0
start:
	for i < len(s) {
		switch c := s[i]; {
		case isJSONSpace(c):
			i++
		case c == '\\' && i+1 < len(s):
			switch s[i+1] {
			case 'n', 't', 'r':
				i += 2
			case 'u':
				break start // may be a space, '{' or '['
			default:
				return false
			}
		case c == '{' || c == '[':
			break start
		default:
			return false
		}
	}
	if i == len(s) {
		return false
	}
	// The decoded text ends in '}' or ']', possibly followed by whitespace. Any escape
	// among the last 6 bytes may be one of those (\n, \u007d...), so look no further.
	switch c := s[len(s)-1]; {
	case c == '}' || c == ']' || isJSONSpace(c):
		return true
	}
	return bytes.IndexByte(s[max(0, len(s)-6):], '\\') >= 0
}

// decoderState is a pooled decoder, reading directly from the input through a
// bytes.Buffer (jsontext does not copy from one).
type decoderState struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

var decoderPool = sync.Pool{New: func() any { return new(decoderState) }}

// redactDecodeOpts lets the walker redact every duplicate name rather than reject the
// payload, and keep invalid UTF-8 where it touches nothing: a filter should not drop a
// payload that the store can still take.
var redactDecodeOpts = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}

// redact walks src and returns it with its sensitive values replaced, whether that
// changed anything, or the error that made src impossible to process.
func (r *Redactor) redact(src []byte) ([]byte, bool, error) {
	st := decoderPool.Get().(*decoderState)
	defer func() {
		// Drop the references to src before pooling.
		st.buf = bytes.Buffer{}
		st.dec.Reset(&st.buf)
		decoderPool.Put(st)
	}()
	st.buf = *bytes.NewBuffer(src)
	st.dec.Reset(&st.buf, redactDecodeOpts...)

	w := walker{r: r, src: src, dec: &st.dec}
	if err := w.value(false); err != nil {
		return nil, false, err
	}
	if _, err := st.dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errTrailingData
		}
		return nil, false, err
	}
	if w.out == nil {
		return src, false, nil
	}
	return append(w.out, src[w.last:]...), true, nil
}

// walker copies src to out, replacing the values it redacts.
type walker struct {
	r    *Redactor
	src  []byte
	dec  *jsontext.Decoder
	out  []byte // nil until the first replacement
	last int    // src is copied to out up to here
}

// value walks the next value; sensitive says whether it belongs to a sensitive name.
func (w *walker) value(sensitive bool) error {
	switch k := w.dec.PeekKind(); {
	case sensitive && (k == '{' || k == '['):
		raw, err := w.dec.ReadValue()
		if err != nil {
			return err
		}
		w.replace(raw, w.r.quoted)
		return nil
	case k == '{':
		if _, err := w.dec.ReadToken(); err != nil {
			return err
		}
		for w.dec.PeekKind() != '}' {
			name, err := w.dec.ReadValue()
			if err != nil {
				return err
			}
			if err := w.value(w.r.matchQuotedName(name)); err != nil {
				return err
			}
		}
		_, err := w.dec.ReadToken()
		return err
	case k == '[':
		if _, err := w.dec.ReadToken(); err != nil {
			return err
		}
		for w.dec.PeekKind() != ']' {
			if err := w.value(false); err != nil {
				return err
			}
		}
		_, err := w.dec.ReadToken()
		return err
	case k == 'n':
		_, err := w.dec.ReadValue()
		return err
	}
	raw, err := w.dec.ReadValue()
	if err != nil {
		return err
	}
	var repl []byte
	switch {
	case sensitive:
		repl = w.r.redactScalar(raw)
	case raw[0] == '"':
		repl = w.r.redactEmbedded(raw)
	}
	if repl != nil {
		w.replace(raw, repl)
	}
	return nil
}

// replace substitutes repl for raw, the value just read.
func (w *walker) replace(raw, repl []byte) {
	end := int(w.dec.InputOffset())
	start := end - len(raw)
	if w.out == nil {
		w.out = make([]byte, 0, len(w.src)+len(repl))
	}
	w.out = append(w.out, w.src[w.last:start]...)
	w.out = append(w.out, repl...)
	w.last = end
}

// redactScalar returns the replacement for the raw string, number or boolean of a
// sensitive name, or nil to keep it.
func (r *Redactor) redactScalar(raw []byte) []byte {
	if bytes.Equal(raw, r.quoted) {
		return nil
	}
	if raw[0] != '"' || !r.partial {
		return r.quoted
	}
	s, _ := jsontext.AppendUnquote(nil, raw) // invalid UTF-8 comes back as U+FFFD
	if string(s) == r.token {
		return nil // already redacted, though spelt differently
	}
	if utf8.RuneCount(s) <= 6 {
		return r.quoted
	}
	head := 0
	for range 3 {
		_, n := utf8.DecodeRune(s[head:])
		head += n
	}
	tail := len(s)
	for range 3 {
		_, n := utf8.DecodeLastRune(s[:tail])
		tail -= n
	}
	p := make([]byte, 0, head+len("…")+len(s)-tail)
	p = append(append(append(p, s[:head]...), "…"...), s[tail:]...)
	q, _ := jsontext.AppendQuote(nil, p)
	if bytes.Equal(q, raw) {
		return nil
	}
	return q
}

// redactEmbedded returns the replacement for a raw string value that holds JSON with
// something to redact, or nil to keep it.
func (r *Redactor) redactEmbedded(raw []byte) []byte {
	if !mayHoldJSON(raw[1 : len(raw)-1]) {
		return nil
	}
	s, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return nil // invalid UTF-8: not JSON we would re-encode faithfully
	}
	s = bytes.TrimFunc(s, func(c rune) bool { return c < utf8.RuneSelf && isJSONSpace(byte(c)) })
	if len(s) == 0 || (s[0] != '{' && s[0] != '[') {
		return nil
	}
	out, changed, err := r.redact(s)
	if err != nil || !changed {
		return nil // not JSON after all, or nothing to redact
	}
	q, err := jsontext.AppendQuote(nil, out)
	if err != nil {
		return nil
	}
	return q
}
