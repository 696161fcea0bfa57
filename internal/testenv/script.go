package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

type scriptResult struct {
	once sync.Once
	path string
	err  error
}

// scriptPaths memoizes ScriptPath per script: asking costs a process.
var scriptPaths sync.Map // script name → *scriptResult

// ScriptPath asks an install script (scripts/NAME --path), which pins the
// version, where what it installs lives: the last line it prints. The script
// is found from the working directory, which go test sets to the
// package's folder inside the module.
func ScriptPath(name string) (string, error) {
	v, _ := scriptPaths.LoadOrStore(name, &scriptResult{})
	r := v.(*scriptResult)
	r.once.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			r.err = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				r.err = errors.New("no go.mod above the working directory")
				return
			}
			dir = parent
		}
		script := filepath.Join(dir, "scripts", name)
		out, err := exec.Command("bash", script, "--path").Output()
		if err != nil {
			r.err = fmt.Errorf("%s --path: %w", script, err)
			return
		}
		for sc := bufio.NewScanner(strings.NewReader(string(out))); sc.Scan(); {
			if s := strings.TrimSpace(sc.Text()); s != "" {
				r.path = s
			}
		}
	})
	return r.path, r.err
}
