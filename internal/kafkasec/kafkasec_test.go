package kafkasec_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/kafkasec"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"
)

const secret = "s3cr3t-Pa55word"

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pki is a CA and a certificate it signed for 127.0.0.1/localhost, as PEM files.
type pki struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spanpipe test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	server, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pki{
		caFile:   writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))),
		certFile: writeFile(t, dir, "client.pem", string(certPEM)),
		keyFile:  writeFile(t, dir, "client.key", string(keyPEM)),
		server:   server,
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir)
	pwFile := writeFile(t, dir, "pw", secret+"\n")
	empty := writeFile(t, dir, "empty", "")
	notPEM := writeFile(t, dir, "garbage.pem", "not a certificate")
	cases := []struct {
		name string
		cfg  kafkasec.Config
		want []string // substrings of the error; none = valid
	}{
		{"zero value", kafkasec.Config{}, nil},
		{"tls with ca", kafkasec.Config{TLS: kafkasec.TLS{Enable: true, CAFile: p.caFile}}, nil},
		{"mtls", kafkasec.Config{TLS: kafkasec.TLS{Enable: true, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}}, nil},
		{"scram with file", kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "scram-sha-512", Username: "u", PasswordFile: pwFile}}, nil},
		{"plain over tls", kafkasec.Config{TLS: kafkasec.TLS{Enable: true}, SASL: kafkasec.SASL{Mechanism: "plain", Username: "u", Password: secret}}, nil},
		{"msk iam", kafkasec.Config{TLS: kafkasec.TLS{Enable: true}, SASL: kafkasec.SASL{Mechanism: "aws-msk-iam"}}, nil},
		{"tls keys without enable", kafkasec.Config{TLS: kafkasec.TLS{CAFile: p.caFile}}, []string{"kafka.tls.ca_file", "need tls.enable"}},
		{"cert without key", kafkasec.Config{TLS: kafkasec.TLS{Enable: true, CertFile: p.certFile}}, []string{"kafka.tls.cert_file and tls.key_file must be set together"}},
		{"missing ca", kafkasec.Config{TLS: kafkasec.TLS{Enable: true, CAFile: filepath.Join(dir, "nope.pem")}}, []string{"kafka.tls.ca_file", "no such file"}},
		{"ca not pem", kafkasec.Config{TLS: kafkasec.TLS{Enable: true, CAFile: notPEM}}, []string{"no PEM certificate found"}},
		{"unknown mechanism", kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "gssapi"}}, []string{`kafka.sasl.mechanism must be plain`, `"gssapi"`}},
		{"scram without user or password", kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "scram-sha-256"}}, []string{"kafka.sasl.username must be set", "set one of sasl.password"}},
		{"password and file", kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "scram-sha-256", Username: "u", Password: secret, PasswordFile: pwFile}}, []string{"set one of sasl.password"}},
		{"empty password file", kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "scram-sha-256", Username: "u", PasswordFile: empty}}, []string{"kafka.sasl.password_file", "is empty"}},
		{"plain without tls", kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "plain", Username: "u", Password: secret}}, []string{"replayable credentials"}},
		{"oauth without token file", kafkasec.Config{TLS: kafkasec.TLS{Enable: true}, SASL: kafkasec.SASL{Mechanism: "oauthbearer"}}, []string{"kafka.sasl.token_file must be set"}},
		{"credentials without mechanism", kafkasec.Config{SASL: kafkasec.SASL{Username: "u", Password: secret}}, []string{"need sasl.mechanism"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate("kafka.")
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := c.cfg.Opts(); err != nil {
					t.Fatalf("Opts() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Validate() error carries the secret: %q", err)
			}
		})
	}
}

// TestSecretNeverPrints: however a config is printed, logged or dumped, the password
// does not appear.
func TestSecretNeverPrints(t *testing.T) {
	cfg := kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "scram-sha-512", Username: "u", Password: secret}}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("config", "kafka", cfg, "password", cfg.SASL.Password)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("config", "kafka", cfg)
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%s": fmt.Sprintf("%s", cfg.SASL.Password), "slog": logBuf.String(), "yaml": string(y),
	} {
		if strings.Contains(s, secret) {
			t.Errorf("%s output carries the password: %s", name, s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("%s output does not say [redacted]: %s", name, s)
		}
	}
}

// TestLoadKafkaBlock: the keys sit in the kafka: block of the file and in
// SPANPIPE_KAFKA_TLS_* / SPANPIPE_KAFKA_SASL_* variables, next to brokers.
func TestLoadKafkaBlock(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.yaml", `kafka:
  brokers: [b:9093]
  tls:
    enable: true
    server_name: kafka.internal
  sasl:
    mechanism: scram-sha-512
    username: spanpipe
`)
	cfg, err := app.Load(path, []string{"SPANPIPE_KAFKA_SASL_PASSWORD=" + secret, "SPANPIPE_KAFKA_TLS_INSECURE_SKIP_VERIFY=true"})
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Kafka.Security
	want := kafkasec.Config{TLS: kafkasec.TLS{Enable: true, ServerName: "kafka.internal", InsecureSkipVerify: true},
		SASL: kafkasec.SASL{Mechanism: "scram-sha-512", Username: "spanpipe", Password: secret}}
	if got != want {
		t.Errorf("Load: got %+v, want %+v", got, want)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("Load warned: %q", cfg.Warnings)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestPreflight runs against kfake with TLS and SCRAM-SHA-512: the right settings
// pass, an untrusted certificate is ErrMisconfigured with a hint, and an unreachable
// broker is not an error. A wrong password is left to integration/secure_test.go:
// kfake closes the connection where Kafka answers SASL_AUTHENTICATION_FAILED.
func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir)
	other := newPKI(t, t.TempDir())
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "spanpipe", secret),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	good := kafkasec.Config{TLS: kafkasec.TLS{Enable: true, CAFile: p.caFile},
		SASL: kafkasec.SASL{Mechanism: "scram-sha-512", Username: "spanpipe", PasswordFile: writeFile(t, dir, "pw", secret+"\n")}}
	untrusted := good
	untrusted.TLS.CAFile = other.caFile
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := free.Addr().String()
	free.Close()

	cases := []struct {
		name    string
		cfg     kafkasec.Config
		brokers []string
		want    string // "" = nil
	}{
		{"right settings", good, c.ListenAddrs(), ""},
		{"untrusted certificate", untrusted, c.ListenAddrs(), "not trusted (check kafka.tls.ca_file)"},
		{"nobody listening", good, []string{closedAddr}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate("kafka."); err != nil {
				t.Fatal(err)
			}
			opts, err := tc.cfg.Opts()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			start := time.Now()
			err = kafkasec.Preflight(ctx, 5*time.Second, append(opts, kgo.SeedBrokers(tc.brokers...))...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Preflight = %v, want nil", err)
			case tc.want != "" && !errors.Is(err, kafkasec.ErrMisconfigured):
				t.Fatalf("Preflight = %v, want ErrMisconfigured", err)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Preflight = %q, want it to contain %q", err, tc.want)
			}
			t.Logf("%s: %v after %s", tc.name, err, time.Since(start).Round(time.Millisecond))
		})
	}
}
