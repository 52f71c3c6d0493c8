package console

import (
	"context"
	"net/http"
	"strings"
)

// remote is a maintenance session from the vendor's centre: the operator
// the centre named in its signed grant, and the path the centre serves
// this unit's console under.
type remote struct{ operator, base string }

type remoteKey struct{}

func remoteOf(ctx context.Context) (remote, bool) {
	rm, ok := ctx.Value(remoteKey{}).(remote)
	return rm, ok
}

// Remote is the console as the vendor's operator sees it through the
// unit's own outbound link to the centre (package fleet serves it on the
// tunnel the unit opened; nothing listens for it). Every request acts as
// the maintenance role under the name "centre/OPERATOR", so each change
// is an evidence record naming the operator, and every request is
// refused the moment the office switches maintenance off.
//
// base is the path the centre serves this unit under; it is stripped
// from requests and put before every link and redirect.
//
// There is no cookie here, so nothing for a cross-site request to ride
// on at this end: the centre holds the operator's session and refuses
// cross-origin requests before they reach the tunnel. The network check
// does not apply either: the peer is the tunnel, which the unit opened.
func (s *Server) Remote(operator, base string) http.Handler {
	base = strings.TrimSuffix(base, "/")
	inner := http.StripPrefix(base, s.mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		rest := strings.TrimPrefix(r.URL.Path, base)
		if accountPaths[rest] {
			// The operator is who the centre's signed grant says: no
			// account of the office's is set up, logged into or out of
			// through the vendor's tunnel.
			http.Error(w, "not in a maintenance session: the centre says who you are", http.StatusNotFound)
			return
		}
		ctx := context.WithValue(r.Context(), remoteKey{}, remote{operator: operator, base: base})
		inner.ServeHTTP(w, r.WithContext(ctx))
	})
}

// accountPaths are the console's own logins, closed to a remote session.
var accountPaths = map[string]bool{
	"/setup": true, "/login": true, "/logout": true,
	"/api/setup": true, "/api/login": true, "/api/logout": true, "/api/totp/new": true,
}

// MaintenanceAllowed tells whether the office lets the vendor in now.
func (s *Server) MaintenanceAllowed(ctx context.Context) bool { return s.maintenanceAllowed(ctx) }

// redirect sends the browser to path on this console, under the
// centre's path in a maintenance session.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, path string) {
	if rm, ok := remoteOf(r.Context()); ok {
		path = rm.base + path
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}
