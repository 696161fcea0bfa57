package store

import (
	"context"
	"fmt"
	"strings"

	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/result"
)

// Attestation is an image's sha256 as someone other than its reader
// vouches for it: the bucket's own full-object checksum, or a sidecar.
type Attestation struct {
	SHA256 string // lower-case hex
	Method string // result.VerifiedStoreChecksum or result.VerifiedSidecar
	Source string // what attested it, for the result
}

// Attest is what st vouches for of the sha256 of the object o at key: its
// own full-object checksum, else a KEY.sha256 sidecar no older than the
// object. A sidecar that is missing, malformed or stale attests nothing.
func Attest(ctx context.Context, st Store, key string, o Object) Attestation {
	if o.SHA256 != "" {
		return Attestation{SHA256: o.SHA256, Method: result.VerifiedStoreChecksum, Source: "the bucket's full-object checksum of " + st.URI(key)}
	}
	if d, err := ReadSidecar(ctx, st, key, o); err == nil {
		return Attestation{SHA256: d, Method: result.VerifiedSidecar, Source: st.URI(key + SidecarSuffix)}
	}
	return Attestation{}
}

// String is the form ParseAttestation reads ("METHOD:HEX"); "" for none.
func (a Attestation) String() string {
	if a.SHA256 == "" {
		return ""
	}
	return a.Method + ":" + a.SHA256
}

// ParseAttestation reads "store_checksum:HEX" or "sidecar:HEX", as a
// dispatcher hands an attestation to a runner; "" is none.
func ParseAttestation(s string) (Attestation, error) {
	if s == "" {
		return Attestation{}, nil
	}
	method, digest, ok := strings.Cut(s, ":")
	if !ok || (method != result.VerifiedStoreChecksum && method != result.VerifiedSidecar) {
		return Attestation{}, fmt.Errorf("attestation %q: want %s:HEX or %s:HEX", redact.Printable(s), result.VerifiedStoreChecksum, result.VerifiedSidecar)
	}
	if len(digest) != 64 || strings.Trim(strings.ToLower(digest), "0123456789abcdef") != "" {
		return Attestation{}, fmt.Errorf("attestation %q: the digest is not 64 hex digits", redact.Printable(s))
	}
	return Attestation{SHA256: strings.ToLower(digest), Method: method}, nil
}
