package cli_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runnerenv"
)

// TestRunNetGuard: with --net-guard, a spec whose image URL points at
// loopback is rejected before any request reaches it; without the guard,
// with the address allowed, or through the dispatcher's --image-url, the
// image is downloaded.
func TestRunNetGuard(t *testing.T) {
	img, err := os.ReadFile(qcow2(t, t.TempDir(), "disk.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/moved.qcow2" {
			http.Redirect(w, r, "/x.qcow2", http.StatusFound)
			return
		}
		http.ServeContent(w, r, "x.qcow2", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, want 127.0.0.1", srv.URL)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")

	for _, tc := range []struct {
		name  string
		path  string // the spec's image URL's path
		args  []string
		env   map[string]string
		fetch string // the path that must have seen one request; "" none
		// rejected: the message must contain these.
		refusal []string
	}{
		{name: "guarded", path: "/x.qcow2", args: []string{"--net-guard"},
			refusal: []string{srv.URL + "/x.qcow2", "127.0.0.1 is loopback", "refused by the network guard"}},
		{name: "guarded by env", path: "/x.qcow2", env: map[string]string{runnerenv.NetGuard: "true"},
			refusal: []string{"127.0.0.1 is loopback"}},
		{name: "other CIDR allowed", path: "/x.qcow2", args: []string{"--net-guard", "--net-allow", "10.0.0.0/8,::1"},
			refusal: []string{"127.0.0.1 is loopback"}},
		{name: "redirect", path: "/moved.qcow2", args: []string{"--net-guard", "--net-allow", "127.0.0.0/8"}, fetch: "/moved.qcow2",
			refusal: []string{"redirect refused: HTTP 302 Found to " + srv.URL + "/x.qcow2"}},
		{name: "unguarded", path: "/x.qcow2", fetch: "/x.qcow2"},
		{name: "allowed", path: "/x.qcow2", args: []string{"--net-guard", "--net-allow", "127.0.0.0/8"}, fetch: "/x.qcow2"},
		{name: "allowed by env", path: "/x.qcow2", env: map[string]string{runnerenv.NetGuard: "1", runnerenv.NetAllow: "127.0.0.1"}, fetch: "/x.qcow2"},
		// The dispatcher's presigned URL is trusted; the spec's is not fetched.
		{name: "image-url", path: "/spec-only.qcow2", args: []string{"--net-guard", "--image-url", srv.URL + "/x.qcow2"}, fetch: "/x.qcow2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			clear(seen)
			mu.Unlock()
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			m := inspectSpec("")
			set(m, "payload.data.image.path", nil)
			set(m, "payload.data.image.uri", srv.URL+tc.path)
			specPath := writeJSON(t, dir, "spec.json", m)
			out := filepath.Join(dir, "result.json")
			var l *fakeLauncher // nil: launching fails the test
			if tc.refusal == nil {
				l = newFakeLauncher()
			}
			args := append([]string{"run", "--spec", specPath, "--result", out, "--scratch", dir}, tc.args...)
			o := runCLI(t, context.Background(), l, args...)
			res := readResult(t, out)
			mu.Lock()
			got := map[string]int{}
			for k, v := range seen {
				got[k] = v
			}
			mu.Unlock()
			// A streamed image takes a few range requests; a refused
			// redirect, exactly one.
			switch {
			case tc.fetch == "" && len(got) != 0,
				tc.fetch != "" && (len(got) != 1 || got[tc.fetch] == 0),
				tc.refusal != nil && tc.fetch != "" && got[tc.fetch] != 1:
				t.Errorf("the server at %s saw %v, want requests for %q only", addr, got, tc.fetch)
			}
			if tc.refusal == nil {
				if o.code != 0 || res.Status != result.StatusCompleted {
					t.Fatalf("exit %d, status %s, error %+v\n%s", o.code, res.Status, res.Error, o.stderr)
				}
				return
			}
			e := res.Error
			if o.code != result.ExitBadSpec || res.Status != result.StatusRejected || e == nil ||
				e.Code != result.CodeSpecInvalid || e.Phase != result.PhaseFetch || e.Retryable {
				t.Fatalf("exit %d, status %s, error %+v\n%s", o.code, res.Status, e, o.stderr)
			}
			for _, s := range tc.refusal {
				if !strings.Contains(e.Message, s) {
					t.Errorf("message lacks %q: %s", s, e.Message)
				}
			}
			if len(e.Fields) != 1 || e.Fields[0].Field != "payload.data.image.uri" || e.Fields[0].Value != srv.URL+tc.path {
				t.Errorf("fields = %+v", e.Fields)
			}
			if res.Image == nil || res.Image.URI != srv.URL+tc.path {
				t.Errorf("image = %+v", res.Image)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 2 {
				t.Errorf("scratch holds %v, want the spec and the result only", entries)
			}
		})
	}
}

// TestRunNetAllowInvalid: a bad --net-allow is a command-line error.
func TestRunNetAllowInvalid(t *testing.T) {
	o := runCLI(t, context.Background(), nil, "run", "--spec", "s.json", "--result", "r.json", "--net-guard", "--net-allow", "10.0.0.0/33")
	if o.code != result.ExitUsage || !strings.Contains(o.stderr, "--net-allow") || !strings.Contains(o.stderr, "10.0.0.0/33") {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
}
