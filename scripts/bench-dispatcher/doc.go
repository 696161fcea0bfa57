// Package benchdispatcher is the dispatcher's benchmark: `make
// bench-dispatcher` runs the real guestkit-dispatcher binary in watch mode
// against a real kube-apiserver and a real MinIO (internal/testenv) and
// prints a report: throughput at 1000 and 5000 specs against the client
// QPS, Kubernetes API and bucket requests per Job, peak RSS, and
// spec-to-Job latency with MinIO's webhook notifications and with polling
// only.
//
// It is a report, not a pass/fail test: targets that are missed are
// printed as such. Its one test is behind the build tag bench (it takes
// minutes), and lives in a test because internal/testenv starts its
// servers for a testing.TB. Settings come from the environment:
//
//	GUESTKIT_BENCH_DISPATCHER       the binary, an absolute path (default: built into a temporary folder)
//	GUESTKIT_BENCH_SIZES            spec counts of the throughput runs (1000,5000; none: no run)
//	GUESTKIT_BENCH_QPS              the dispatcher's --qps (50)
//	GUESTKIT_BENCH_BURST            the dispatcher's --burst (100)
//	GUESTKIT_BENCH_LATENCY_SPECS    specs uploaded one at a time per latency run (20)
//	GUESTKIT_BENCH_LATENCY_PAUSE    the pause between those uploads (1.3s)
//	GUESTKIT_BENCH_GOMEMLIMIT       the dispatcher's GOMEMLIMIT (96MiB, as manifests/base/deployment.yaml; off: none)
//	GUESTKIT_BENCH_LOGS             a folder to keep the dispatcher logs in (default: deleted)
package benchdispatcher
