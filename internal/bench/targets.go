package bench

import (
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
)

// Target is one goal of issues 14 and 16, checked against this run's figures.
type Target struct {
	Name string  `json:"name"`
	Got  float64 `json:"got"`
	// AtMost tells whether Got must be at most Limit (else at least).
	AtMost bool    `json:"at_most"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit"`
	Pass   bool    `json:"pass"`
}

// rssGrowthMax is how much the RSS of the drain's last quarter may exceed its second
// quarter's (the 90th percentile of each, see rssSampler.quarterP90) and still count
// as flat: a bounded consumer levels off once its buffers are full.
const rssGrowthMax = 0.10

const rssGrowthName = "RSS growth, p90 of 2nd to 4th quarter"

// minQuarterSamples is how many RSS samples the second and the last quarter of the
// drain need for the flatness check: the 90th percentile of fewer (a drain shorter
// than about 3 s, such as the null sink's at 200k spans) is one sample of the Go
// heap's sawtooth against another, and a run printed +29% that way.
const minQuarterSamples = 8

// rssGrowthJudged tells whether r's RSS quarters hold enough samples to judge
// flatness.
func rssGrowthJudged(r *Result) bool {
	return r.RSSP90ByQuarterMB[1] > 0 && r.RSSP90ByQuarterMB[3] > 0 &&
		r.RSSSamplesByQuarter[1] >= minQuarterSamples && r.RSSSamplesByQuarter[3] >= minQuarterSamples
}

// ceilingCPULimitMs is the consumer CPU per span allowed with DuckDB (issue 14); the
// report says so when DuckDB's bare appends already cost more.
const ceilingCPULimitMs = 0.015

// latencyBound is the p99 the issues allow: a batch waits up to maxBatchWait, and
// writing it may take 500 ms more.
func latencyBound(maxBatchWait time.Duration) time.Duration {
	return maxBatchWait + 500*time.Millisecond
}

// targets lists the issues' goals that apply to r (its sink and strategy).
func targets(r *Result) []Target {
	var ts []Target
	add := func(name string, got float64, atMost bool, limit float64, unit string) {
		pass := got >= limit
		if atMost {
			pass = got <= limit
		}
		ts = append(ts, Target{Name: name, Got: got, AtMost: atMost, Limit: limit, Unit: unit, Pass: pass})
	}
	switch r.Sink {
	case "null":
		add("drain / raw fetch", 100*r.RatioToRaw, false, 60, "%")
	case "duckdb":
		share := 70.0
		if r.Strategy != string(pipeline.InsertOnly) {
			share = 50
		}
		add("drain / DuckDB append ceiling", 100*r.RatioToCeiling, false, share, "%")
		add("consumer CPU per span", r.ConsumerCPUMs, true, ceilingCPULimitMs, "ms")
		add("DuckDB bytes on disk per span", r.DuckDBBytesPerSpan, true, 1150, "B")
	case "clickhouse":
		add("consumer CPU per span", r.ConsumerCPUMs, true, 0.012, "ms")
	}
	add("peak RSS", r.PeakRSSMB, true, 250, "MB")
	if rssGrowthJudged(r) {
		from, to := r.RSSP90ByQuarterMB[1], r.RSSP90ByQuarterMB[3]
		add(rssGrowthName, 100*(to/from-1), true, 100*rssGrowthMax, "%")
	}
	if r.LatencyRate > 0 {
		add("p99 latency at half the drain rate", r.LatencyP99ms, true, r.LatencyBoundMs, "ms")
	}
	return ts
}
