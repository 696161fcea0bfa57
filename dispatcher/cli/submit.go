package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/spec"
	"guestkit.io/batch/internal/store"
)

// SubmitCmd validates specs and uploads them.
type SubmitCmd struct {
	Files  []string `arg:"" name:"file" help:"Spec files (JSON or YAML); - reads standard input." type:"string"`
	DryRun bool     `name:"dry-run" help:"Validate only; upload nothing." env:"GUESTKIT_SUBMIT_DRY_RUN"`
}

// Run validates every file first and uploads only when all are valid, so
// a batch is never half submitted. Each spec goes to jobs/<job_id>.json
// (or .yaml), created only if absent: resubmitting the same content is a
// no-op, different content under a used job_id is a conflict.
func (c *SubmitCmd) Run(ctx context.Context, deps Deps) error {
	type item struct {
		file, key string
		data      []byte
		job       *spec.Job
	}
	var items []item
	bad := 0
	seen := map[string]string{}
	for _, f := range c.Files {
		data, err := readSpecFile(f)
		if err == nil {
			var j *spec.Job
			j, _, err = spec.Load(data)
			if err == nil {
				if other, dup := seen[j.JobID]; dup {
					err = fmt.Errorf("job_id %q is also the job_id of %s", j.JobID, other)
				} else {
					seen[j.JobID] = f
					items = append(items, item{file: f, key: store.SpecsPrefix + j.JobID + extension(data), data: data, job: j})
					continue
				}
			}
		}
		bad++
		fmt.Fprintf(deps.Stderr, "%s: %v\n", f, err)
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				fmt.Fprintf(deps.Stderr, "  %s %q: %s\n", p.Field, p.Value, p.Message)
			}
		}
	}
	if bad > 0 {
		return &ExitError{Code: ExitJobsFailed, Err: fmt.Errorf("%d of %d specs are invalid; nothing uploaded", bad, len(c.Files)), logged: true}
	}
	if c.DryRun {
		for _, it := range items {
			fmt.Fprintf(deps.Stdout, "%s: valid (%s)\n", it.file, it.job.JobID)
		}
		return nil
	}
	st, err := store.Open(ctx, deps.Globals.Bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", redact.URL(deps.Globals.Bucket), err)
	}
	conflicts := 0
	for _, it := range items {
		err := st.Create(ctx, it.key, it.data)
		switch {
		case err == nil:
			fmt.Fprintf(deps.Stdout, "%s: submitted as %s\n", it.file, st.URI(it.key))
		case errors.Is(err, store.ErrExists):
			old, gerr := st.Get(ctx, it.key, spec.MaxSize)
			if gerr != nil {
				return fmt.Errorf("%s: %s exists and cannot be read: %w", it.file, st.URI(it.key), gerr)
			}
			if j, _, perr := spec.Parse(old); perr == nil && j.Digest() == it.job.Digest() {
				fmt.Fprintf(deps.Stdout, "%s: already submitted as %s\n", it.file, st.URI(it.key))
				continue
			}
			conflicts++
			fmt.Fprintf(deps.Stderr, "%s: conflict: %s holds a different spec with job_id %q\n", it.file, st.URI(it.key), it.job.JobID)
		default:
			return fmt.Errorf("%s: upload %s: %w", it.file, st.URI(it.key), err)
		}
	}
	if conflicts > 0 {
		return &ExitError{Code: ExitJobsFailed, Err: fmt.Errorf("%d specs conflict with specs in the bucket", conflicts), logged: true}
	}
	return nil
}

func readSpecFile(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, spec.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > spec.MaxSize {
		return nil, fmt.Errorf("over the %d-byte (1 MiB) limit: %w", spec.MaxSize, spec.ErrTooLarge)
	}
	return data, nil
}

// extension keeps the submitted format: the spec is stored as written.
func extension(data []byte) string {
	t := strings.TrimLeft(string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))), " \t\r\n")
	if strings.HasPrefix(t, "{") {
		return ".json"
	}
	return ".yaml"
}
