// Package integration tests package remote against real parts: a MinIO
// server, and the direct reader over the project's test images. It
// lives apart so that remote's own test binary, and the fuzz targets in
// it, carry neither the MinIO nor the Kubernetes clients testenv needs
// (instrumenting them slowed fuzzing a hundredfold).
package integration
