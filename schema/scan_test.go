package schema_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spanpipe/spanpipe/schema"
)

// plainPrefixRef is plainPrefix one byte at a time.
func plainPrefixRef(b []byte) int {
	for n, c := range b {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return n
		}
	}
	return len(b)
}

// FuzzPlainPrefix checks the word-at-a-time scan against the byte loop, with the
// stop byte at every position of the words it reads.
func FuzzPlainPrefix(f *testing.F) {
	f.Add([]byte(strings.Repeat("plain text ", 10)), byte('"'), uint8(40))
	f.Add([]byte(strings.Repeat("a", 64)), byte(0x80), uint8(33))
	f.Add([]byte("é\\\x1f\x7f"), byte(0x1f), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, stop byte, at uint8) {
		check := func(b []byte) {
			if got, want := schema.PlainPrefix(b), plainPrefixRef(b); got != want {
				t.Fatalf("plainPrefix(%q) = %d, want %d", b, got, want)
			}
		}
		check(b)
		if int(at) < len(b) {
			b = append([]byte(nil), b...)
			b[at] = stop
			check(b)
		}
	})
}

// scanStringRef is scanString one byte at a time.
func scanStringRef(v []byte, i int, escapes bool) int {
	for i++; i < len(v); {
		switch b := v[i]; {
		case b == '"':
			return i + 1
		case b == '\\':
			if !escapes || i+1 >= len(v) || !strings.ContainsRune(`"\\/bfnrt`, rune(v[i+1])) {
				return -1
			}
			i += 2
		case b < 0x20:
			return -1
		case b < 0x80:
			i++
		default:
			r, n := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && n <= 1 {
				return -1
			}
			i += n
		}
	}
	return -1
}

// FuzzScanString checks the string scan of the JSON check and the scan decoder
// against the byte loop, with a stop byte put anywhere.
func FuzzScanString(f *testing.F) {
	f.Add([]byte(`"`+strings.Repeat("plain text ", 10)+`"`), byte('"'), uint8(40))
	f.Add([]byte(`"`+strings.Repeat("a", 64)+`\n\"x"`), byte(0x80), uint8(33))
	f.Add([]byte(`"é\\\x1f\x7f\u0041"`), byte(0x1f), uint8(0))
	f.Add([]byte(`"日本語のテキスト、絵文字😀も"`), byte('\\'), uint8(5))
	f.Fuzz(func(t *testing.T, b []byte, stop byte, at uint8) {
		check := func(b []byte) {
			if len(b) == 0 || b[0] != '"' {
				return
			}
			for _, escapes := range []bool{false, true} {
				if got, want := schema.ScanString(b, 0, escapes), scanStringRef(b, 0, escapes); got != want {
					t.Fatalf("scanString(%q, %v) = %d, want %d", b, escapes, got, want)
				}
			}
		}
		check(b)
		if int(at) < len(b) {
			b = append([]byte(nil), b...)
			b[at] = stop
			check(b)
		}
	})
}

// TestPlainPrefix puts each kind of stop byte at every offset of a 100-byte plain run.
func TestPlainPrefix(t *testing.T) {
	for _, stop := range []byte{0, 0x1f, '"', '\\', 0x80, 0xff} {
		for at := range 100 {
			b := []byte(strings.Repeat("~ !#[]", 17))[:100]
			b[at] = stop
			if got := schema.PlainPrefix(b); got != at {
				t.Fatalf("stop %#x at %d: got %d", stop, at, got)
			}
		}
	}
	if got := schema.PlainPrefix([]byte(strings.Repeat("x", 77))); got != 77 {
		t.Fatalf("all plain: got %d, want 77", got)
	}
}

// BenchmarkPlainPrefix is the scan over the prose of a payload string.
func BenchmarkPlainPrefix(b *testing.B) {
	s := []byte(strings.Repeat("lorem ipsum dolor sit amet consectetur ", 26) + `"`)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if schema.PlainPrefix(s) != len(s)-1 {
			b.Fatal("short")
		}
	}
}

// FuzzMayHaveUpper holds lowerIDs' shortcut to strings.ToLower: whenever it says
// there is nothing to lower, ToLower changes nothing.
func FuzzMayHaveUpper(f *testing.F) {
	for _, s := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", "00F067AA0BA902B7", "", "Z", "ǅ", "Ａ", "abc@[_`{", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !schema.MayHaveUpper(s) && strings.ToLower(s) != s {
			t.Fatalf("mayHaveUpper(%q) = false, but ToLower changes it to %q", s, strings.ToLower(s))
		}
		if strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && !schema.MayHaveUpper(s) {
			t.Fatalf("mayHaveUpper(%q) = false", s)
		}
	})
}

// TestMayHaveUpper: lower-case hex ids of every length take the shortcut.
func TestMayHaveUpper(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	for n := range len(id) + 1 {
		if schema.MayHaveUpper(id[:n]) {
			t.Errorf("mayHaveUpper(%q) = true", id[:n])
		}
		if n > 0 && !schema.MayHaveUpper(id[:n-1]+"A") {
			t.Errorf("mayHaveUpper(%q) = false", id[:n-1]+"A")
		}
	}
}
