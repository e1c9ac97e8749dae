package providers

import "net/http"

// writeStray answers a call with a stray non-decline answer, applying
// nothing: a 401 as after a credential rotation, or a gateway's 404, on a
// coin flip. The contract calls such answers unexpected: they say nothing
// about the effect, and a client must not take them for a decline.
func (s *Simulator) writeStray(w http.ResponseWriter) {
	if s.rand.hit(0.5) {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "")
		return
	}
	writeError(w, http.StatusNotFound, CodeNotFound, "")
}
