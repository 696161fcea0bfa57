package kubejob

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"guestkit.io/batch/internal/spec"
)

func input(j *spec.Job) JobInput {
	return JobInput{
		Job: j, Bucket: "s3://jobs", SpecKey: "specs/" + j.JobID + ".json", ResultKey: "results/" + j.JobID + ".json",
		SpecURI:   "https://minio.example:9000/jobs/specs/" + j.JobID + ".json?X-Amz-Signature=abc&X-Amz-Expires=3600",
		ResultURI: "https://minio.example:9000/jobs/results/" + j.JobID + ".json?X-Amz-Signature=def",
	}
}

func mustBuilder(t *testing.T, cfg BuilderConfig) *Builder {
	t.Helper()
	if cfg.Namespace == "" {
		cfg.Namespace = "guestkit"
	}
	if cfg.RunnerImage == "" {
		cfg.RunnerImage = "registry.example/guestkit-runner:1.2.3"
	}
	b, err := NewBuilder(cfg)
	if err != nil {
		t.Fatalf("NewBuilder: %v", err)
	}
	return b
}

func runner(t *testing.T, job *batchv1.Job) *corev1.Container {
	t.Helper()
	for i := range job.Spec.Template.Spec.Containers {
		if c := &job.Spec.Template.Spec.Containers[i]; c.Name == ContainerName {
			return c
		}
	}
	t.Fatalf("no runner container")
	return nil
}

// envOf maps the runner's env: plain values, and "fieldRef:PATH" or
// "secret:NAME/KEY" for references.
func envOf(c *corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			m[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			m[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom.SecretKeyRef != nil:
			m[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return m
}

func ptr[T any](v T) *T { return &v }
