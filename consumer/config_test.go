package consumer

import (
	"strings"
	"testing"
)

func TestConfigValidateFetchBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"partition bytes equal to fetch bytes", func(c *Config) { c.FetchMaxBytes, c.FetchMaxPartitionBytes = 2<<20, 2<<20 }, ""},
		{"concurrent fetches bounded", func(c *Config) { c.MaxConcurrentFetches = 1 }, ""},
		{"concurrent fetches per broker", func(c *Config) { c.MaxConcurrentFetches = -1 }, ""},
		{"negative fetch bytes", func(c *Config) { c.FetchMaxBytes = -1 }, "kafka.fetch_max_bytes must be 0 (derived) or > 0, got -1"},
		{"zero partition bytes", func(c *Config) { c.FetchMaxPartitionBytes = 0 }, "kafka.fetch_max_partition_bytes must be > 0"},
		{"partition bytes above fetch bytes", func(c *Config) { c.FetchMaxBytes, c.FetchMaxPartitionBytes = 2<<20, 2<<20+1 },
			"kafka.fetch_max_partition_bytes (2097153) must be <= kafka.fetch_max_bytes (2097152)"},
		{"partition bytes above the fetch bytes 0 stands for", func(c *Config) { c.FetchMaxPartitionBytes = DefaultFetchMaxBytes + 1 },
			"kafka.fetch_max_partition_bytes (4194305) must be <= kafka.fetch_max_bytes (4194304)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Brokers = []string{"127.0.0.1:9092"}
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A poll never takes more than the buffer has room for (what does not fit would wait
// decoded beside a full buffer), and always at least one record.
func TestPollSize(t *testing.T) {
	for _, c := range []struct{ maxPoll, room, want int }{
		{10000, 10000, 10000},
		{10000, 2500, 2500},
		{500, 2500, 500},
		{10000, 0, 1},
	} {
		if got := pollSize(c.maxPoll, c.room); got != c.want {
			t.Errorf("pollSize(%d, %d) = %d, want %d", c.maxPoll, c.room, got, c.want)
		}
	}
}
