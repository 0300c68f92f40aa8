package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints r for a reader: the figures, each ratio next to what it compares,
// then the issues' targets with PASS or FAIL.
func (r *Result) WriteTable(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("sink\t%s (%s, %s, %d consumer(s), %d partitions, max_buffer_size %d)", r.Sink, r.Strategy, r.Lifecycle, r.Consumers, r.Partitions, r.BufferSize)
	p("settings\t%s", r.Settings)
	p("workload\t%d spans, %d records, %d B average payload, codec %s", r.Spans, r.Records, r.PayloadAvgBytes, r.Codec)
	p("produce\t%.0f spans/s, %.1f MB/s", r.ProduceSpansPerSec, r.ProduceMBPerSec)
	p("raw fetch\t%.0f records/s", r.RawRecordsPerSec)
	if r.Sink != "null" {
		p("null sink drain\t%.0f records/s (%.0f%% of raw)", r.NullRecordsPerSec, 100*r.NullRatioToRaw)
	}
	p("%s drain\t%.0f spans/s (%.0f records/s, %.0f%% of raw); %.0f spans/s with the group join (first fetch after %.0f ms)",
		r.Sink, r.DrainSpansPerSec, r.DrainRecordsPerSec, 100*r.RatioToRaw, r.DrainWithJoinSpansPerSec, r.FirstFetchMs)
	if r.CeilingSpansPerSec > 0 {
		p("DuckDB append ceiling\t%.0f spans/s (same rows and settings, Appender, one connection, one commit per batch); drain = %.0f%% of it",
			r.CeilingSpansPerSec, 100*r.RatioToCeiling)
		p("DuckDB append ceiling CPU\t%.4f ms per span (the appends alone, DuckDB's threads included)", r.CeilingCPUMs)
		if r.CeilingCPUMs > ceilingCPULimitMs {
			p("\tthe ceiling alone spends more than the %g ms per span the consumer is allowed: the consumer CPU target cannot be met on this machine with this file format", ceilingCPULimitMs)
		}
	}
	p("consumer CPU\t%.4f ms per span", r.ConsumerCPUMs)
	if r.Sink == "clickhouse" {
		if r.ServerCPUMs != nil {
			p("ClickHouse server CPU\t%.4f ms per span", *r.ServerCPUMs)
		} else {
			p("ClickHouse server CPU\tunknown (a server the bench did not start)")
		}
		if r.TotalCPUMs != nil {
			p("total CPU\t%.4f ms per span (consumer + server)", *r.TotalCPUMs)
		} else {
			p("total CPU\tunknown")
		}
	}
	p("RSS\tpeak %.0f MB (highest 100 ms sample %.0f MB); at 25%% / 50%% / 100%% of the drain %.0f / %.0f / %.0f MB",
		r.PeakRSSMB, r.SampledPeakRSSMB, r.RSSMB[0], r.RSSMB[1], r.RSSMB[2])
	q, g, pool := r.RSSPeakByQuarterMB, r.GoMBAtQuarterPeaks, r.DuckDBPoolMBAtQuarterPeaks
	if r.Sink == "duckdb" && pool[0] >= 0 {
		p("RSS by quarter\thighest in each quarter of the drain %.0f / %.0f / %.0f / %.0f MB; then Go %.0f / %.0f / %.0f / %.0f MB, DuckDB buffer pool %.0f / %.0f / %.0f / %.0f MB",
			q[0], q[1], q[2], q[3], g[0], g[1], g[2], g[3], pool[0], pool[1], pool[2], pool[3])
	} else {
		p("RSS by quarter\thighest in each quarter of the drain %.0f / %.0f / %.0f / %.0f MB; then Go %.0f / %.0f / %.0f / %.0f MB",
			q[0], q[1], q[2], q[3], g[0], g[1], g[2], g[3])
	}
	p90, n := r.RSSP90ByQuarterMB, r.RSSSamplesByQuarter
	p("\t90th percentile of each quarter's samples %.0f / %.0f / %.0f / %.0f MB (%d / %d / %d / %d samples)",
		p90[0], p90[1], p90[2], p90[3], n[0], n[1], n[2], n[3])
	p("Go runtime memory\tpeak %.0f MB (the rest of the RSS is outside Go)", r.PeakGoMB)
	if r.AtPeakDuckDBPoolMB >= 0 && r.Sink == "duckdb" {
		p("at the highest sample\tGo %.0f MB, DuckDB buffer pool %.0f MB (%s), the rest %.0f MB (DuckDB outside its pool: allocator caches, checkpoint buffers; code)",
			r.AtPeakGoMB, r.AtPeakDuckDBPoolMB, r.AtPeakDuckDBTags, r.SampledPeakRSSMB-r.AtPeakGoMB-r.AtPeakDuckDBPoolMB)
	}
	if r.Stored >= 0 {
		p("rows written per span\t%.2f (stored %d)", r.RowsPerSpan, r.Stored)
	} else {
		// The null sink stores nothing, and a failed count must not read as a figure.
		p("rows written per span\t%.2f (spans stored: not counted)", r.RowsPerSpan)
	}
	if r.DuckDBBytes > 0 {
		p("DuckDB on disk\t%.1f MB after CHECKPOINT for the %d spans stored, %.0f B per span",
			float64(r.DuckDBBytes)/1e6, r.DuckDBSpans, r.DuckDBBytesPerSpan)
	}
	if r.LatencyRate > 0 {
		p("latency @ %.0f spans/s\tp50 %.0f ms, p95 %.0f ms, p99 %.0f ms", r.LatencyRate, r.LatencyP50ms, r.LatencyP95ms, r.LatencyP99ms)
	}
	for _, t := range r.Targets {
		op, verdict := "≥", "FAIL"
		if t.AtMost {
			op = "≤"
		}
		if t.Pass {
			verdict = "PASS"
		}
		p("target: %s\t%s  %.4g %s (want %s %g %s)", t.Name, verdict, t.Got, t.Unit, op, t.Limit, t.Unit)
	}
	if !rssGrowthJudged(r) && n != [4]int{} {
		p("target: %s\tnot judged: %d / %d samples in the 2nd / 4th quarter, %d needed (a longer drain, such as --spans 2000000, has them)",
			rssGrowthName, n[1], n[3], minQuarterSamples)
	}
	return tw.Flush()
}
