package server

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Matrix error codes this edge answers with.
const (
	codeNotFound     = "M_NOT_FOUND"
	codeUnrecognized = "M_UNRECOGNIZED"
	codeForbidden    = "M_FORBIDDEN"
	codeUnknown      = "M_UNKNOWN"
	codeTooLarge     = "M_TOO_LARGE"
	codeLimited      = "M_LIMIT_EXCEEDED"
)

// writeMatrixError answers with the JSON error body Matrix clients parse,
// {"errcode": ..., "error": ...}, and CORS headers: without them a browser
// client sees a network error instead of the status.
func writeMatrixError(w http.ResponseWriter, cors corsMethods, status int, errcode, msg string) {
	body, _ := json.Marshal(struct {
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}{errcode, msg})
	h := w.Header()
	setCORS(h, cors)
	h["Content-Type"] = headerJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = headerNoStore
	h["X-Content-Type-Options"] = headerNoSniff
	w.WriteHeader(status)
	w.Write(body)
}
