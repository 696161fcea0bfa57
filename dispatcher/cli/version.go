package cli

import (
	"context"
	"fmt"
)

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the version.
func (v *VersionCmd) Run(_ context.Context, deps Deps) error {
	_, err := fmt.Fprintf(deps.Stdout, "guestkit-dispatcher %s\n", deps.Version)
	return err
}
