// Package metrics serves gcsafety's statistics to Prometheus over HTTP.
//
// It is a package of its own so that programs that do not serve metrics do
// not link net/http through gcsafety. Standard library only:
//
//	mux.Handle("/metrics", metrics.Handler(gsm.Prometheus))      // a GCSafetyManager
//	mux.Handle("/metrics", metrics.Handler(gcsafety.Prometheus)) // the default manager
package metrics

import (
	"io"
	"net/http"
	"strconv"
)

// ContentType is the content type of the Prometheus text exposition format
// (version 0.0.4), which the handler serves.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the text that text returns (GCSafetyManager.Prometheus or
// gcsafety.Prometheus, rendered anew at each scrape) to GET and HEAD
// requests, with ContentType; other methods get 405 Method Not Allowed, and
// an empty text (the library could not render it) 500.
func Handler(text func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body := text()
		if body == "" {
			http.Error(w, "gcsafety: the statistics could not be rendered", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		io.WriteString(w, body)
	})
}
