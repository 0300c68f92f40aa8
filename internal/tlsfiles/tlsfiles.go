// Package tlsfiles builds a client TLS configuration from the files an operator names
// in a config (a CA bundle, a client certificate and key), the same way for every
// connection spanpipe makes: Kafka (kafka.tls) and ClickHouse (sink.clickhouse.tls).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Files names what a TLS client needs from disk. Empty fields are not used.
type Files struct {
	CAFile, CertFile, KeyFile string
	ServerName                string
	// InsecureSkipVerify turns certificate checks off: for tests only.
	InsecureSkipVerify bool
}

// Config reads the files and returns the client configuration (TLS 1.2 at least).
// Errors name the config key at fault (tls.ca_file, tls.cert_file/tls.key_file) and
// never carry key material.
func (f Files) Config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", f.CAFile)
		}
		tc.RootCAs = pool
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			// LoadX509KeyPair's errors describe the PEM blocks, never the key bytes.
			return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
