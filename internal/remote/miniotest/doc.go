// Package miniotest tests package remote against a real MinIO server. It
// lives apart so that remote's own test binary, and the fuzz targets in
// it, carry neither the MinIO nor the Kubernetes clients testenv needs
// (instrumenting them slowed fuzzing a hundredfold).
package miniotest
