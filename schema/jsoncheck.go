package schema

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// jsonCheck is a fast check of a binary record's JSON payloads. It accepts only
// values it can prove valid under the JSON codec's rules (RFC 8259 with UTF-8 strings
// and no duplicate member names, as jsontext checks them) and says "unsure" for
// anything else: a \u escape, a member name with an escape, more than 64 members in
// one object, nesting deeper than 64, and every invalid value. The caller then asks
// jsontext, which decides. FuzzJSONCheck holds it to that: whatever it accepts,
// jsontext accepts.
type jsonCheck struct {
	stack  []byte   // '{' or '[' of each open container
	names  [][2]int // member names of the open objects (positions in the value), innermost last
	starts []int    // for each open object, its first name in names
}

const (
	jsonCheckMaxDepth   = 64
	jsonCheckMaxMembers = 64
)

// valid reports whether v (without surrounding whitespace) is certainly one valid
// JSON value; false means "ask jsontext".
func (c *jsonCheck) valid(v []byte) bool {
	end := c.scan(v, 0)
	return end >= 0 && skipSpace(v, end) == len(v)
}

// scan returns the index just past the JSON value that starts at v[i] (after any
// whitespace) when it is certainly valid, and -1 for "ask jsontext". What follows
// the value is not looked at: the JSON codec's scanner reads the values of a record
// in place with it.
func (c *jsonCheck) scan(v []byte, i int) int {
	c.stack, c.names, c.starts = c.stack[:0], c.names[:0], c.starts[:0]
value:
	i = skipSpace(v, i)
	if i >= len(v) {
		return -1
	}
	switch b := v[i]; {
	case b == '{':
		if len(c.stack) >= jsonCheckMaxDepth {
			return -1
		}
		c.stack = append(c.stack, '{')
		c.starts = append(c.starts, len(c.names))
		i = skipSpace(v, i+1)
		if i < len(v) && v[i] == '}' {
			i++
			c.pop()
			goto after
		}
		if i = c.member(v, i); i < 0 {
			return -1
		}
		goto value
	case b == '[':
		if len(c.stack) >= jsonCheckMaxDepth {
			return -1
		}
		c.stack = append(c.stack, '[')
		i = skipSpace(v, i+1)
		if i < len(v) && v[i] == ']' {
			i++
			c.stack = c.stack[:len(c.stack)-1]
			goto after
		}
		goto value
	case b == '"':
		if i = scanString(v, i, true); i < 0 {
			return -1
		}
	case b == '-' || ('0' <= b && b <= '9'):
		if i = scanNumber(v, i); i < 0 {
			return -1
		}
	case bytes.HasPrefix(v[i:], []byte("true")):
		i += 4
	case bytes.HasPrefix(v[i:], []byte("false")):
		i += 5
	case bytes.HasPrefix(v[i:], []byte("null")):
		i += 4
	default:
		return -1
	}
after:
	if len(c.stack) == 0 {
		return i
	}
	i = skipSpace(v, i)
	if i >= len(v) {
		return -1
	}
	top := c.stack[len(c.stack)-1]
	switch {
	case v[i] == ',' && top == '{':
		if i = c.member(v, skipSpace(v, i+1)); i < 0 {
			return -1
		}
		goto value
	case v[i] == ',':
		i++
		goto value
	case v[i] == '}' && top == '{':
		i++
		c.pop()
		goto after
	case v[i] == ']' && top == '[':
		i++
		c.stack = c.stack[:len(c.stack)-1]
		goto after
	}
	return -1
}

// member reads a member name (no escapes) and its colon at v[i:], checking it is new
// in its object; it returns where the value starts, or -1.
func (c *jsonCheck) member(v []byte, i int) int {
	if i >= len(v) || v[i] != '"' {
		return -1
	}
	end := scanString(v, i, false)
	if end < 0 {
		return -1
	}
	name := v[i+1 : end-1]
	first := c.starts[len(c.starts)-1]
	if len(c.names)-first >= jsonCheckMaxMembers {
		return -1
	}
	for _, n := range c.names[first:] {
		if bytes.Equal(v[n[0]:n[1]], name) {
			return -1
		}
	}
	c.names = append(c.names, [2]int{i + 1, end - 1})
	i = skipSpace(v, end)
	if i >= len(v) || v[i] != ':' {
		return -1
	}
	return i + 1
}

func (c *jsonCheck) pop() {
	c.names = c.names[:c.starts[len(c.starts)-1]]
	c.starts = c.starts[:len(c.starts)-1]
	c.stack = c.stack[:len(c.stack)-1]
}

func skipSpace(v []byte, i int) int {
	for i < len(v) && isJSONSpace(v[i]) {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at v[i] ('"'), or -1
// when it is invalid or uses an escape this check leaves to jsontext (\u anywhere;
// any escape when escapes is false).
func scanString(v []byte, i int, escapes bool) int {
	i++
	for {
		i += plainPrefix(v[i:])
		if i >= len(v) {
			return -1
		}
		switch b := v[i]; {
		case b == '"':
			return i + 1
		case b == '\\':
			if !escapes || i+1 >= len(v) {
				return -1
			}
			switch v[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			default:
				return -1
			}
		case b < 0x20:
			return -1
		default: // ≥ 0x80
			r, n := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && n <= 1 {
				return -1
			}
			i += n
		}
	}
}

// plainPrefix returns how many leading bytes of b are 0x20..0x7f other than '"' and
// '\\', 32 and then eight at a time while it can: it is most of the time spent on
// a span's payload strings.
func plainPrefix(b []byte) int {
	n := 0
	// Four words per round: their flags are independent, so the CPU computes them
	// side by side, and one branch serves 32 bytes (twice the speed of one word per
	// round on prose, BenchmarkPlainPrefix).
	for ; len(b)-n >= 32; n += 32 {
		w := b[n : n+32 : n+32]
		if (plainFlags(binary.LittleEndian.Uint64(w)) | plainFlags(binary.LittleEndian.Uint64(w[8:])) |
			plainFlags(binary.LittleEndian.Uint64(w[16:])) | plainFlags(binary.LittleEndian.Uint64(w[24:]))) != 0 {
			break
		}
	}
	for ; len(b)-n >= 8; n += 8 {
		if plainFlags(binary.LittleEndian.Uint64(b[n:])) != 0 {
			break
		}
	}
	for n < len(b) {
		c := b[n]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			break
		}
		n++
	}
	return n
}

// plainFlags returns the eight bytes of x with the high bit of each one that is not
// plain flagged, at least: a byte is flagged when it is ≥ 0x80, below 0x20, or equal
// to '"' or '\\'. A subtraction borrows into the next byte only from a byte that is
// itself flagged, so a clean word is never flagged (0); plainPrefix finishes a
// flagged one byte by byte.
func plainFlags(x uint64) uint64 {
	const (
		lo  = 0x0101010101010101
		hi  = 0x8080808080808080
		quo = 0x2222222222222222 // '"'
		bsl = 0x5c5c5c5c5c5c5c5c // '\\'
		ctl = 0x2020202020202020 // below ' '
	)
	return (x | (x - ctl) | ((x ^ quo) - lo) | ((x ^ bsl) - lo)) & hi
}

// scanNumber returns the index just past the JSON number at v[i], or -1.
func scanNumber(v []byte, i int) int {
	digits := func(i int) int {
		j := i
		for j < len(v) && '0' <= v[j] && v[j] <= '9' {
			j++
		}
		return j
	}
	if v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && '1' <= v[i] && v[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(v) && v[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}
