package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// ServerConfig says where the explorer listens and how it authenticates.
type ServerConfig struct {
	// Addr is host:port; default 127.0.0.1:7070. A host other than a loopback
	// address requires a token.
	Addr string
	// Token, when set, is required on every request (bearer, or the basic-auth
	// password). Read it with [ReadToken].
	Token string
	// Drops, when set, is served as the drop summary.
	Drops *Drops
}

// DefaultAddr is where the explorer listens unless told otherwise.
const DefaultAddr = "127.0.0.1:7070"

// TokenEnv is the environment variable [ReadToken] falls back to.
const TokenEnv = "SPANPIPE_UI_TOKEN"

// ReadToken returns the token in file (trimmed), else in $SPANPIPE_UI_TOKEN.
func ReadToken(file string, getenv func(string) string) (string, error) {
	if file == "" {
		return getenv(TokenEnv), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("explorer: read token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("explorer: token file %s is empty", file)
	}
	return t, nil
}

// Validate refuses a listener reachable from other machines without a token: traces
// hold prompts, outputs and user data.
func (c ServerConfig) Validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("explorer address %q: want host:port (127.0.0.1:7070): %w", c.Addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("explorer address %q: bad port: %w", c.Addr, err)
	}
	if c.Token == "" && !isLoopback(host) {
		return fmt.Errorf("explorer address %q listens beyond this machine: set a token (--ui-token-file FILE or %s), "+
			"or listen on 127.0.0.1 behind a reverse proxy", c.Addr, TokenEnv)
	}
	if c.Token != "" && len(c.Token) < 16 {
		return errors.New("explorer token: at least 16 characters")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is a running explorer.
type Server struct {
	// Addr is the address bound (useful with port 0).
	Addr string
	srv  *http.Server
	wg   sync.WaitGroup
}

// Serve validates cfg, listens and serves the explorer over r until Close. It starts
// one goroutine, which Close stops and waits for.
func Serve(cfg ServerConfig, r Reader, log *slog.Logger) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("explorer: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), srv: &http.Server{
		Handler:           NewHandler(r, cfg.Token, log, WithDrops(cfg.Drops)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      QueryTimeout + 10*time.Second,
		MaxHeaderBytes:    64 << 10,
	}}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	return s, nil
}

// URL is the page's address.
func (s *Server) URL() string { return "http://" + s.Addr + "/" }

// Close stops the server, waiting for requests in flight until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
