package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"gcsafety.dev/gcsafety"
	"gcsafety.dev/gcsafety/internal/gsttest"
	"gcsafety.dev/gcsafety/metrics"
)

// Serve a manager's statistics to Prometheus.
func ExampleHandler() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{EnableStateChecking: true})
	defer gsm.Close()
	id, _ := gsm.Register(gsttest.NewFakesink(), gcsafety.RegisterOptions{})
	defer gsm.UnregisterObject(id)

	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(gsm.Prometheus))
	server := httptest.NewServer(mux) // http.ListenAndServe(":9090", mux) in a program
	defer server.Close()

	resp, err := http.Get(server.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "gcs_registrations_total ") || strings.HasPrefix(line, "gcs_type_live_handles{") {
			fmt.Println(line)
		}
	}
	// Output:
	// gcs_registrations_total 1
	// gcs_type_live_handles{type="GstFakeSink"} 1
}
