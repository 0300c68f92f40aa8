// Package promx holds small helpers for registering Prometheus collectors that several
// components of one process share.
package promx

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or returns the collector already
// registered under the same descriptor. The producer and the consumer both count
// spanpipe_dropped_records_total; in `spanpipe dev` they share one registry. A nil reg
// returns c unregistered, which keeps metrics optional for library users.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: two different metrics with one name
	}
	return c
}

// DroppedRecords is spanpipe_dropped_records_total, the one counter every loss path
// increments, whichever component sees it.
func DroppedRecords(reg prometheus.Registerer) *prometheus.CounterVec {
	return Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spanpipe_dropped_records_total",
		Help: "Records that could not be stored, by signal, drop reason and component. Every one is also a drop event on the drop topic.",
	}, []string{"signal", "reason", "component"}))
}
