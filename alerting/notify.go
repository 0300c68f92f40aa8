package alerting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/prometheus/common/model"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/backoff"
)

// Receiver names, the receiver label of spanpipe_dropalerts_alerts_sent_total.
const (
	ReceiverAlertmanager = "alertmanager"
	ReceiverWebhook      = "webhook"
)

// Outcomes of a post, the outcome label of spanpipe_dropalerts_alerts_sent_total.
const (
	outcomeOK       = "ok"
	outcomeError    = "error"    // network error, timeout, 5xx, 429: retried
	outcomeRejected = "rejected" // other 4xx: retried too, but someone must look
)

// receiver is one destination with its own rate limit and backoff.
type receiver struct {
	name   string
	resend bool // re-post active alerts every ResendInterval (Alertmanager)
	post   func(ctx context.Context, views []alertView, now time.Time) (retryAfter time.Duration, err error)

	nextTry     time.Time // not before: rate limit or backoff
	lastSuccess time.Time
	failures    int
}

// due reports whether r should be posted to now.
func (r *receiver) due(now time.Time, news, active, force bool, resend time.Duration) bool {
	if force {
		return news
	}
	if now.Before(r.nextTry) {
		return false
	}
	return news || (r.resend && active && now.Sub(r.lastSuccess) >= resend)
}

func (r *receiver) succeeded(now time.Time, minInterval time.Duration) {
	r.failures = 0
	r.lastSuccess = now
	r.nextTry = now.Add(minInterval)
}

// failed schedules the next attempt on the one retry schedule, jittered by half so
// that alerters restarted together spread their retries; the server's Retry-After
// wins when it is longer (bounded, so a silly header cannot park a receiver).
func (r *receiver) failed(now time.Time, retryAfter time.Duration, cfg *Config) time.Duration {
	r.failures++
	p := backoff.Policy{Initial: cfg.RetryInitialInterval, Max: cfg.RetryMaxInterval, Jitter: 0.5}
	wait := p.Delay(r.failures, min(retryAfter, 10*cfg.RetryMaxInterval))
	r.nextTry = now.Add(wait)
	return wait
}

// httpError is a non-2xx answer.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("HTTP %d", e.status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

func outcomeOf(err error) string {
	var he *httpError
	switch {
	case err == nil:
		return outcomeOK
	case errors.As(err, &he) && he.status >= 400 && he.status < 500 && he.status != http.StatusTooManyRequests && he.status != http.StatusRequestTimeout:
		return outcomeRejected
	default:
		return outcomeError
	}
}

// postJSON posts body to u and reads the answer. Credentials in u never reach an error.
func postJSON(ctx context.Context, hc *http.Client, u *url.URL, body []byte, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", u.Redacted(), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "spanpipe-alert")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = u.Redacted()
			return 0, ue
		}
		return 0, fmt.Errorf("post %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		return 0, nil
	}
	return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("post %s: %w", u.Redacted(),
		&httpError{status: resp.StatusCode, body: strings.TrimSpace(dropalerts.SanitizeError(errors.New(string(msg))))})
}

func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// amAlert is Alertmanager's postableAlert (API v2).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// alertmanagerEndpoint is base/api/v2/alerts, unless base already names it.
func alertmanagerEndpoint(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v2/alerts") {
		return u, nil
	}
	return u.JoinPath("api", "v2", "alerts"), nil
}

// newAlertmanagerReceiver posts to every Alertmanager of a cluster at once; a post
// succeeds when one of them accepted it (they gossip, as with Prometheus).
func newAlertmanagerReceiver(cfg *Config, hc *http.Client, m *alerterMetrics) (*receiver, error) {
	var eps []*url.URL
	for _, s := range cfg.AlertmanagerURLs {
		u, err := alertmanagerEndpoint(s)
		if err != nil {
			return nil, err
		}
		eps = append(eps, u)
	}
	post := func(ctx context.Context, views []alertView, now time.Time) (time.Duration, error) {
		alerts := make([]amAlert, len(views))
		for i, v := range views {
			ends := v.endsAt
			if !v.resolved {
				// Active until re-posted: if the alerter dies, Alertmanager resolves
				// the alert by itself after four missed re-posts (Prometheus' rule).
				ends = now.Add(4 * cfg.ResendInterval)
			}
			alerts[i] = amAlert{Labels: v.labels, Annotations: v.annots, StartsAt: v.startsAt.UTC(), EndsAt: ends.UTC(), GeneratorURL: cfg.GeneratorURL}
		}
		body, err := json.Marshal(alerts, json.Deterministic(true))
		if err != nil {
			return 0, fmt.Errorf("encode alerts: %w", err)
		}
		errs := make([]error, len(eps))
		waits := make([]time.Duration, len(eps))
		var wg sync.WaitGroup
		for i, u := range eps {
			wg.Go(func() {
				waits[i], errs[i] = postJSON(ctx, hc, u, body, cfg.RequestTimeout)
				m.sent.WithLabelValues(ReceiverAlertmanager, outcomeOf(errs[i])).Add(float64(len(views)))
			})
		}
		wg.Wait()
		var wait time.Duration
		for i, err := range errs {
			if err == nil {
				return 0, nil
			}
			wait = max(wait, waits[i])
		}
		return wait, errors.Join(errs...)
	}
	return &receiver{name: ReceiverAlertmanager, resend: true, post: post}, nil
}

// WebhookPayload is the body posted to [Config.WebhookURL]: Alertmanager's
// webhook format (version "4"), so that receivers written for Alertmanager accept it,
// with spanpipe's details added to each alert.
type WebhookPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"` // "firing" if any alert is
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a [WebhookPayload]. EndsAt is the zero time while the
// alert is firing, as in Alertmanager's webhooks.
type WebhookAlert struct {
	Status       string            `json:"status"` // "firing" or "resolved"
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Spanpipe     AlertDetails      `json:"spanpipe"`
}

func newWebhookReceiver(cfg *Config, hc *http.Client, m *alerterMetrics) (*receiver, error) {
	u, err := url.Parse(cfg.WebhookURL)
	if err != nil {
		return nil, err
	}
	post := func(ctx context.Context, views []alertView, _ time.Time) (time.Duration, error) {
		body, err := json.Marshal(webhookPayload(cfg, views), json.Deterministic(true))
		if err != nil {
			return 0, fmt.Errorf("encode webhook: %w", err)
		}
		wait, err := postJSON(ctx, hc, u, body, cfg.RequestTimeout)
		m.sent.WithLabelValues(ReceiverWebhook, outcomeOf(err)).Add(float64(len(views)))
		return wait, err
	}
	return &receiver{name: ReceiverWebhook, post: post}, nil
}

func webhookPayload(cfg *Config, views []alertView) *WebhookPayload {
	p := &WebhookPayload{
		Version: "4", GroupKey: "spanpipe-alert", Status: "resolved", Receiver: "spanpipe-alert",
		GroupLabels: map[string]string{"alertname": "SpanpipeDrops"}, CommonAnnotations: map[string]string{},
		Alerts: make([]WebhookAlert, len(views)),
	}
	for i, v := range views {
		status := "resolved"
		if !v.resolved {
			status = "firing"
			p.Status = "firing"
		}
		p.Alerts[i] = WebhookAlert{
			Status: status, Labels: v.labels, Annotations: v.annots, StartsAt: v.startsAt.UTC(), EndsAt: v.endsAt.UTC(),
			GeneratorURL: cfg.GeneratorURL, Fingerprint: toLabelSet(v.labels).Fingerprint().String(),
			Spanpipe: v.details,
		}
		if i == 0 {
			p.CommonLabels = maps.Clone(v.labels)
		} else {
			for k, val := range p.CommonLabels {
				if v.labels[k] != val {
					delete(p.CommonLabels, k)
				}
			}
		}
	}
	if p.CommonLabels == nil {
		p.CommonLabels = map[string]string{}
	}
	return p
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}
