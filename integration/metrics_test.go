package integration

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricSet is a parsed /metrics page.
type metricSet []sample

// sum adds the samples named name whose labels match every "key=value" in match.
func (m metricSet) sum(name string, match ...string) float64 {
	var s float64
next:
	for _, x := range m {
		if x.name != name {
			continue
		}
		for _, kv := range match {
			k, v, _ := strings.Cut(kv, "=")
			if x.labels[k] != v {
				continue next
			}
		}
		s += x.value
	}
	return s
}

// sumAll adds name over several scrapes (one per process).
func sumAll(sets []metricSet, name string, match ...string) float64 {
	var s float64
	for _, m := range sets {
		s += m.sum(name, match...)
	}
	return s
}

// parseMetrics parses the Prometheus text exposition format, as much as the tests
// need: names, labels and values of counters, gauges and histogram series.
func parseMetrics(r io.Reader) (metricSet, error) {
	var out metricSet
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, ", ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return s, fmt.Errorf("bad label")
			}
			key := line[:eq]
			line = line[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
					switch line[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(line[j])
					}
					continue
				}
				val.WriteByte(line[j])
			}
			if j >= len(line) {
				return s, fmt.Errorf("unterminated label value")
			}
			s.labels[key] = val.String()
			line = line[j+1:]
		}
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

func TestParseMetrics(t *testing.T) {
	page := `# HELP x_total Things.
# TYPE x_total counter
x_total{reason="decode-error",component="consumer"} 3
x_total{reason="too-large",component="consumer"} 1
x_total{reason="a\"b,c}",component="producer"} 2
gauge_plain 7.5
hist_bucket{le="+Inf"} 4
`
	m, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, match []string, want float64) {
		t.Helper()
		if got := m.sum(name, match...); got != want {
			t.Errorf("sum(%s, %q) = %v, want %v", name, match, got, want)
		}
	}
	check("x_total", nil, 6)
	check("x_total", []string{"component=consumer"}, 4)
	check("x_total", []string{"reason=a\"b,c}"}, 2)
	check("gauge_plain", nil, 7.5)
	check("hist_bucket", []string{"le=+Inf"}, 4)
	check("missing", nil, 0)
}
