package slidingsync

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Matrix error codes the service answers with.
const (
	codeMissingToken = "M_MISSING_TOKEN"
	codeUnknownToken = "M_UNKNOWN_TOKEN"
	codeUnknownPos   = "M_UNKNOWN_POS"
	codeBadJSON      = "M_BAD_JSON"
	codeNotJSON      = "M_NOT_JSON"
	codeInvalidParam = "M_INVALID_PARAM"
	codeUnknown      = "M_UNKNOWN"
	codeTooLarge     = "M_TOO_LARGE"
	codeLimited      = "M_LIMIT_EXCEEDED"
	codeUnrecognized = "M_UNRECOGNIZED"
)

// matrixError is an answer the client is meant to parse: the status and
// the {"errcode","error"} body.
type matrixError struct {
	status  int
	errcode string
	msg     string
}

func (e *matrixError) Error() string { return e.errcode + ": " + e.msg }

func errorf(status int, code, msg string) *matrixError {
	return &matrixError{status: status, errcode: code, msg: msg}
}

// writeError answers with a Matrix JSON error. CORS headers are the
// edge's (its CORS wrapper runs before the service).
func writeError(w http.ResponseWriter, e *matrixError) {
	body, _ := json.Marshal(struct {
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}{e.errcode, e.msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	w.Write(body)
}
