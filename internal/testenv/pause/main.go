// Command pause is the sandbox ("pause") container of StartCluster's node:
// it holds a pod's namespaces open until it is told to stop. containerd
// needs such an image; the upstream one is not reachable from the test
// machines, so testenv builds this one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
