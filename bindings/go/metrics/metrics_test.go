package metrics_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"gcsafety.dev/gcsafety"
	"gcsafety.dev/gcsafety/internal/gsttest"
	"gcsafety.dev/gcsafety/metrics"
)

func TestHandler(t *testing.T) {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{EnableStateChecking: true})
	defer gsm.Close()
	id, err := gsm.Register(gsttest.NewFakesink(), gcsafety.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer gsm.UnregisterObject(id)
	gsm.SafeAccess(id, func() error { return errors.New("counted") })

	h := metrics.Handler(gsm.Prometheus)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != metrics.ContentType {
		t.Fatalf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	if body != gsm.Prometheus() || !strings.Contains(body, "gcs_callback_failures_total 1\n") ||
		!strings.Contains(body, `gcs_type_live_handles{type="GstFakeSink"} 1`) {
		t.Fatalf("body:\n%s", body)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/metrics", nil))
	if n := rec.Header().Get("Content-Length"); rec.Code != http.StatusOK || rec.Body.Len() != 0 || n == "" || n == "0" {
		t.Fatalf("HEAD: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	metrics.Handler(func() string { return "" }).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("empty text: %d", rec.Code)
	}

	// The default manager's, through a real server on the loopback.
	server := httptest.NewServer(metrics.Handler(gcsafety.Prometheus))
	defer server.Close()
	resp, err := http.Get(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(text), "gcs_registrations_total ") {
		t.Fatalf("default manager: %d\n%s", resp.StatusCode, text)
	}
}
