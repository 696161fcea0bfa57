package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/image"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/internal/spec"
)

// verify checks the spec's checksum and records how in
// res.Image.Verification; it never claims a check that was not done. A
// local file is hashed at once. A streamed image is checked against what
// its store attests, else hashed whole by a read in order that runs beside
// the inspection: the returned wait gives that verdict, and must be called
// before the job is reported as complete.
func verify(ctx context.Context, job *spec.Job, cfg *Config, src *source, res *result.Result, log *logrus.Entry) (wait func() error, err error) {
	none := func() error { return nil }
	checksum := job.Image().Checksum
	if checksum == "" {
		res.Image.Verification = &result.Verification{Method: result.NotVerified, Source: "the spec gives no checksum"}
		return none, nil
	}
	want, err := image.ParseChecksum(checksum)
	if err != nil {
		return none, phased(result.PhaseProbe, &image.Error{Code: result.CodeImageChecksum, Path: src.name, Msg: "cannot verify", Err: err})
	}
	if src.path != "" {
		// A local file, or a small image read whole into memory.
		done := timer(res, "checksum")
		sum, err := image.VerifySHA256(ctx, src.path, checksum)
		done()
		if err != nil {
			return none, phased(result.PhaseProbe, err)
		}
		res.Image.SHA256 = sum
		res.Image.Verification = &result.Verification{Method: result.VerifiedWholeObject, SHA256: sum}
		return none, nil
	}
	if a := src.attested; a.SHA256 != "" && cfg.Verify != runnerenv.VerifyFull {
		if a.SHA256 != want {
			return none, phased(result.PhaseProbe, &image.Error{Code: result.CodeImageChecksum, Path: src.name,
				Msg: fmt.Sprintf("sha256 is %s by %s (%s), spec says %s", a.SHA256, a.Method, a.Source, want)})
		}
		res.Image.SHA256 = a.SHA256
		res.Image.Verification = &result.Verification{Method: a.Method, SHA256: a.SHA256, Source: a.Source}
		return none, nil
	}
	if cfg.Verify == runnerenv.VerifyAttested {
		why := "the store attests no sha256 of this object, and --verify attested reads no whole object"
		res.Image.Verification = &result.Verification{Method: result.NotVerified, Source: why}
		res.Warnings = append(res.Warnings, "payload.data.image.checksum not verified: "+why)
		log.Warn("the image's checksum is not verified: " + why)
		return none, nil
	}
	log.Info("no checksum is attested for the image; hashing the whole object beside the inspection")
	type hashed struct {
		sum  string
		err  error
		took time.Duration
	}
	out := make(chan hashed, 1)
	go func() {
		// Only the hash here: res is the inspection's until wait.
		start := time.Now()
		sum, err := image.VerifySHA256Reader(ctx, src.obj.Reader(ctx), src.name, checksum)
		out <- hashed{sum: sum, err: err, took: time.Since(start)}
	}()
	return func() error {
		r := <-out
		observe(res, "checksum", r.took)
		if r.err != nil {
			if f := remoteFailure(r.err, result.PhaseProbe); f != nil {
				return f // the network or the object, not the image
			}
			return phased(result.PhaseProbe, r.err)
		}
		res.Image.SHA256 = r.sum
		res.Image.Verification = &result.Verification{Method: result.VerifiedWholeObject, SHA256: r.sum}
		return nil
	}, nil
}
