package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// UIPath is where the dashboard is served (api.UIPath).
const UIPath = "/ui"

// static holds the dashboard: plain HTML, CSS and JavaScript modules, with
// no build step and nothing loaded from elsewhere.
//
//go:embed static
var static embed.FS

// uiPolicy is the dashboard's Content-Security-Policy: its own scripts,
// styles and API, and nothing else; no inline script or style, no frames,
// no forms posted anywhere.
const uiPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiFile is one embedded file, ready to serve.
type uiFile struct {
	body        []byte
	contentType string
	etag        string
}

// NewUI returns the dashboard's handler, to be served at UIPath without
// authentication: its files hold no data. The pages call the API for
// everything they show, with the token the user gives them, which they
// keep in the tab's sessionStorage and send as an Authorization header;
// they set no cookie.
func NewUI() http.Handler {
	files := map[string]uiFile{}
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		files[p] = uiFile{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, UIPath)
		switch {
		case !ok:
			http.NotFound(w, r)
			return
		case name == "":
			http.Redirect(w, r, UIPath+"/", http.StatusMovedPermanently)
			return
		}
		name = strings.TrimPrefix(name, "/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}
