// Package kafkasec turns the `kafka.tls` and `kafka.sasl` settings every spanpipe
// command shares into franz-go options: TLS (CA, client certificate, server name) and
// SASL PLAIN, SCRAM-SHA-256/512, OAUTHBEARER and AWS MSK IAM through franz-go's sasl
// packages.
//
// Secrets never live in a printable value: [Secret] formats and logs as "[redacted]",
// and file-held secrets (password_file, token_file) are read when a connection
// authenticates, so a rotated file is picked up by the next connection or
// re-authentication (KIP-368) without a restart. Errors name keys and files, never
// their contents.
//
// Preflight tells a misconfiguration (wrong password, untrusted certificate) from a
// broker that is merely not up yet, so that commands exit at once on the former and
// keep retrying on the latter. The package starts no goroutines and emits no metrics.
package kafkasec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spanpipe/spanpipe/internal/tlsfiles"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config is the security part of a `kafka:` block. Its zero value is a plaintext,
// unauthenticated connection (the default).
type Config struct {
	// TLS encrypts connections to the brokers. Default: disabled.
	TLS TLS `yaml:"tls"`
	// SASL authenticates to the brokers. Default: none.
	SASL SASL `yaml:"sasl"`
}

// TLS configures TLS to the brokers.
type TLS struct {
	// Enable turns TLS on. Default false.
	Enable bool `yaml:"enable"`
	// CAFile is a PEM file of the CAs that sign the broker certificates. Empty uses
	// the system roots (right for Confluent Cloud, MSK, Aiven). Default "".
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS); set both
	// or neither. Default "".
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked against every broker's certificate. Empty
	// checks each broker's own host name. Default "".
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate. For tests only. Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASL mechanisms: the values of [SASL.Mechanism].
const (
	MechPlain       = "plain"
	MechScramSHA256 = "scram-sha-256"
	MechScramSHA512 = "scram-sha-512"
	MechOAuthBearer = "oauthbearer"
	MechAWSMSKIAM   = "aws-msk-iam"
)

// SASL configures SASL authentication.
type SASL struct {
	// Mechanism is plain, scram-sha-256, scram-sha-512, oauthbearer or aws-msk-iam.
	// Empty disables SASL. plain, oauthbearer and aws-msk-iam send credentials the
	// broker can replay, so they require tls.enable. Default "".
	Mechanism string `yaml:"mechanism"`
	// Username for plain and scram-*. Default "".
	Username string `yaml:"username"`
	// Password for plain and scram-*: prefer SPANPIPE_KAFKA_SASL_PASSWORD or
	// PasswordFile to writing it into a config file. Set one of the two. Default "".
	Password Secret `yaml:"password"`
	// PasswordFile holds the password (a trailing newline is ignored); it is read on
	// every authentication, so a rotated Secret volume takes effect without a
	// restart. Default "".
	PasswordFile string `yaml:"password_file"`
	// TokenFile holds the OAUTHBEARER token, re-read whenever the client
	// authenticates: on each new connection and when the broker's session lifetime
	// for the previous token runs out. Whatever refreshes the token (a sidecar, a
	// projected volume) rewrites this file. Default "".
	TokenFile string `yaml:"token_file"`
	// AWS MSK IAM reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and, when set,
	// AWS_SESSION_TOKEN from the environment on every authentication; the region
	// comes from the broker host name.
}

// redacted replaces a secret wherever it would be printed.
const redacted = "[redacted]"

// Secret is a string that never prints itself: fmt, slog and YAML see "[redacted]"
// (or "" when empty, so that "not set" stays visible).
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue implements [slog.LogValuer].
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML keeps a dumped config from carrying the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText does the same for JSON (slog's JSON handler included).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Enabled reports whether any security setting is on.
func (c Config) Enabled() bool { return c.TLS.Enable || c.SASL.Mechanism != "" }

// Validate reports every problem, each naming its key under prefix ("kafka."); it
// also loads the TLS files, so that `--check` catches an unreadable or malformed CA
// or key.
func (c Config) Validate(prefix string) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(prefix+format, a...)) }
	t := c.TLS
	if !t.Enable && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		bad("tls.ca_file, tls.cert_file, tls.key_file, tls.server_name and tls.insecure_skip_verify need tls.enable: true")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("tls.cert_file and tls.key_file must be set together")
	}
	if t.Enable {
		if _, err := t.config(); err != nil {
			bad("%w", err)
		}
	}
	s := c.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.TokenFile != "" {
			bad("sasl.username, sasl.password, sasl.password_file and sasl.token_file need sasl.mechanism")
		}
	case MechPlain, MechScramSHA256, MechScramSHA512:
		if s.Username == "" {
			bad("sasl.username must be set for sasl.mechanism %s", s.Mechanism)
		}
		if (s.Password == "") == (s.PasswordFile == "") {
			bad("set one of sasl.password (or SPANPIPE_KAFKA_SASL_PASSWORD) and sasl.password_file for sasl.mechanism %s", s.Mechanism)
		}
		if s.PasswordFile != "" {
			if _, err := readSecretFile(s.PasswordFile); err != nil {
				bad("sasl.password_file: %w", err)
			}
		}
	case MechOAuthBearer:
		if s.TokenFile == "" {
			bad("sasl.token_file must be set for sasl.mechanism oauthbearer")
		} else if _, err := readSecretFile(s.TokenFile); err != nil {
			bad("sasl.token_file: %w", err)
		}
	case MechAWSMSKIAM:
	default:
		bad("sasl.mechanism must be plain, scram-sha-256, scram-sha-512, oauthbearer or aws-msk-iam, got %q", s.Mechanism)
	}
	switch s.Mechanism {
	case MechPlain, MechOAuthBearer, MechAWSMSKIAM:
		if !t.Enable {
			bad("sasl.mechanism %s sends replayable credentials and needs tls.enable: true", s.Mechanism)
		}
	}
	return errors.Join(errs...)
}

// Opts returns the franz-go options for c: a TLS dialer and a SASL mechanism, none
// when c is the zero value. Call Validate first; Opts re-reads the TLS files.
func (c Config) Opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if c.TLS.Enable {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := c.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// config builds the TLS configuration, reading the files it names.
func (t TLS) config() (*tls.Config, error) {
	return tlsfiles.Files{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}.Config()
}

// mechanism returns the SASL mechanism, nil without one. Each authenticates with
// credentials read at that moment.
func (s SASL) mechanism() sasl.Mechanism {
	userPass := func() (string, string, error) {
		if s.PasswordFile == "" {
			return s.Username, string(s.Password), nil
		}
		pw, err := readSecretFile(s.PasswordFile)
		if err != nil {
			return "", "", fmt.Errorf("kafka.sasl.password_file: %w", err)
		}
		return s.Username, pw, nil
	}
	scramAuth := func(context.Context) (scram.Auth, error) {
		u, p, err := userPass()
		return scram.Auth{User: u, Pass: p}, err
	}
	switch s.Mechanism {
	case MechPlain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			u, p, err := userPass()
			return plain.Auth{User: u, Pass: p}, err
		})
	case MechScramSHA256:
		return scram.Sha256(scramAuth)
	case MechScramSHA512:
		return scram.Sha512(scramAuth)
	case MechOAuthBearer:
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			tok, err := readSecretFile(s.TokenFile)
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("kafka.sasl.token_file: %w", err)
			}
			return oauth.Auth{Token: tok}, nil
		})
	case MechAWSMSKIAM:
		return aws.ManagedStreamingIAM(func(context.Context) (aws.Auth, error) {
			a := aws.Auth{AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
				SessionToken: os.Getenv("AWS_SESSION_TOKEN"), UserAgent: "spanpipe"}
			if a.AccessKey == "" || a.SecretKey == "" {
				return a, errors.New("kafka.sasl.mechanism aws-msk-iam: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
			}
			return a, nil
		})
	}
	return nil
}

// readSecretFile reads a one-line secret; an empty file is an error (a Secret volume
// not yet populated), and the error never carries the content.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// ErrMisconfigured marks a Preflight failure that retrying cannot fix.
var ErrMisconfigured = errors.New("kafka security misconfigured")

// Preflight connects to the seed brokers once with opts (those of [Config.Opts] plus
// the seeds) and returns an error wrapping [ErrMisconfigured] when the broker refused
// the credentials or its certificate, or the TLS handshake failed: settings that no
// retry fixes, so a command should exit. A broker that is unreachable or slow is not
// an error here (nil is returned after timeout): the clients keep retrying, as they
// do without security.
func Preflight(ctx context.Context, timeout time.Duration, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(timeout))...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return Classify(cl.Ping(ctx))
}

// Classify wraps err with [ErrMisconfigured] and a hint naming the keys to check when
// it is an authentication or certificate failure, and returns nil otherwise.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		unknownAuth x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
		alert       tls.AlertError
		recordHdr   tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("%w: the broker rejected the SASL credentials (check kafka.sasl.username, kafka.sasl.password / password_file / token_file): %w", ErrMisconfigured, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("%w: the broker does not enable this SASL mechanism (check kafka.sasl.mechanism): %w", ErrMisconfigured, err)
	case errors.As(err, &unknownAuth), errors.As(err, &verify):
		return fmt.Errorf("%w: the broker's TLS certificate is not trusted (check kafka.tls.ca_file): %w", ErrMisconfigured, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w: the broker's TLS certificate does not match its address (check kafka.tls.server_name): %w", ErrMisconfigured, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("%w: the broker's TLS certificate is invalid: %w", ErrMisconfigured, err)
	case errors.As(err, &alert):
		return fmt.Errorf("%w: the broker aborted the TLS handshake (a client certificate it requires? check kafka.tls.cert_file): %w", ErrMisconfigured, err)
	case errors.As(err, &recordHdr):
		return fmt.Errorf("%w: the broker does not speak TLS on this port (check kafka.tls.enable and the listener): %w", ErrMisconfigured, err)
	}
	return nil
}
