// Package benchsweep is the incremental sweep's benchmark: `make
// bench-sweep` puts GUESTKIT_BENCH_SWEEP_IMAGES (300) tiny Debian images
// (sweeptest.DebianImage, 4 MiB raw ext4) in a real MinIO
// (internal/testenv), sweeps them once with the real guestkit-dispatcher
// and guestkit-runner (local executor, direct backend), changes
// GUESTKIT_BENCH_SWEEP_CHANGED percent of them (10), and then sweeps the
// same objects twice: incrementally, and with --full. It prints, for
// both, the Jobs launched (specs submitted), the bytes the runners read
// (the results' image.fetch.bytes), the wall time, and the ratios.
//
// It is a report, not a pass/fail test, behind the build tag bench.
// GUESTKIT_BENCH_SWEEP_PARALLEL is the dispatcher's --parallel (2).
package benchsweep
