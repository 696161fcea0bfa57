package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/store"
)

// UploadCmd uploads a disk image with its sha256.
type UploadCmd struct {
	File string `arg:"" name:"file" help:"Disk image to upload." type:"existingfile"`
	Dest string `arg:"" name:"dest" help:"Where: an object URI BUCKET_URL/KEY (s3://BUCKET/images/web.qcow2?endpoint=..., minio://..., file:///...), or a KEY in --bucket."`

	MaxSinglePutMiB int64 `name:"max-single-put-mib" help:"Largest image sent in one PUT, whose sha256 the store verifies and keeps; larger images go multipart, and only the sidecar carries their sha256." default:"5120" env:"GUESTKIT_UPLOAD_MAX_SINGLE_PUT_MIB"`
	PartSizeMiB     int64 `name:"part-size-mib" help:"Part size of multipart uploads (at least 5; grown to stay within 10,000 parts); one part is held in memory." default:"64" env:"GUESTKIT_UPLOAD_PART_SIZE_MIB"`
}

// Run hashes the file, uploads it with its sha256 (store.Upload), writes
// KEY.sha256 beside it, and prints what was uploaded and what the store
// attests. The printed sha256 is read back from the sidecar, so the line
// shows what a runner will find.
func (c *UploadCmd) Run(ctx context.Context, deps Deps) error {
	if c.MaxSinglePutMiB <= 0 || c.PartSizeMiB < 5 {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--max-single-put-mib must be positive and --part-size-mib at least 5 (got %d, %d)", c.MaxSinglePutMiB, c.PartSizeMiB)}
	}
	bucketURL, key := deps.Globals.Bucket, c.Dest
	if strings.Contains(c.Dest, "://") {
		var err error
		if bucketURL, key, err = store.SplitURI(c.Dest); err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("%s: an http(s) URL names no bucket: want s3://, minio:// or file://", redact.URL(c.Dest))
		}
	} else if err := store.ValidateKey(key); err != nil {
		return err
	}
	st, err := store.Open(ctx, bucketURL)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", redact.URL(bucketURL), err)
	}
	f, err := os.Open(c.File)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", c.File)
	}
	deps.Log.WithFields(map[string]any{"file": c.File, "uri": st.URI(key), "size": fi.Size()}).Info("uploading")
	o, err := store.Upload(ctx, st, key, f, fi.Size(), store.UploadOptions{
		MaxSinglePut: c.MaxSinglePutMiB << 20,
		PartSize:     c.PartSizeMiB << 20,
	})
	if err != nil {
		return err
	}
	if o.Size != fi.Size() {
		return fmt.Errorf("uploaded %s: the store holds %d bytes, the file has %d", st.URI(key), o.Size, fi.Size())
	}
	sum, err := store.ReadSidecar(ctx, st, key, o)
	if err != nil {
		return fmt.Errorf("uploaded %s, but its sidecar: %w", st.URI(key), err)
	}
	attest := "no sha256 (the sidecar carries it)"
	switch {
	case o.SHA256 == sum:
		attest = "sha256 " + o.SHA256
	case o.SHA256 != "":
		// Cannot happen unless the object changed under us: say so loudly.
		return fmt.Errorf("uploaded %s: the store attests sha256 %s, the sidecar says %s", st.URI(key), o.SHA256, sum)
	}
	w := deps.Stdout
	fmt.Fprintf(w, "uploaded %s to %s\n", c.File, st.URI(key))
	fmt.Fprintf(w, "key:     %s\n", key)
	fmt.Fprintf(w, "size:    %d\n", o.Size)
	fmt.Fprintf(w, "sha256:  %s\n", sum)
	fmt.Fprintf(w, "store:   %s\n", attest)
	if o.ETag != "" {
		fmt.Fprintf(w, "etag:    %s\n", o.ETag)
	}
	if o.VersionID != "" {
		fmt.Fprintf(w, "version: %s\n", o.VersionID)
	}
	fmt.Fprintf(w, "sidecar: %s\n", st.URI(key+store.SidecarSuffix))
	return nil
}
