package console

import (
	_ "embed"
	"net/http"
)

// openapiSpec documents the API; a test holds it to the handlers.
//
//go:embed openapi.json
var openapiSpec []byte

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiSpec)
}
