package localrun

import (
	"context"
	"slices"
	"sync"
)

// slots hands out process slots in the order they were requested, so
// that jobs start in the order the controller launched them (its dispatch
// order) and a retry waits behind jobs launched meanwhile.
type slots struct {
	mu      sync.Mutex
	free    int
	waiting []chan struct{} // closed when granted
}

func newSlots(n int) *slots { return &slots{free: n} }

// request asks for a slot; the channel is closed when it is granted.
func (s *slots) request() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.free > 0 && len(s.waiting) == 0 {
		s.free--
		close(ch)
		return ch
	}
	s.waiting = append(s.waiting, ch)
	return ch
}

// await waits for the slot of ticket; false, and no slot held, when ctx
// ended first.
func (s *slots) await(ctx context.Context, ticket chan struct{}) bool {
	select {
	case <-ticket:
		// Stopping frees slots too: the grant may be a stop's.
		if ctx.Err() != nil {
			s.release()
			return false
		}
		return true
	case <-ctx.Done():
		s.withdraw(ticket)
		return false
	}
}

// withdraw gives up a request, and its slot if it was granted meanwhile.
func (s *slots) withdraw(ticket chan struct{}) {
	s.mu.Lock()
	if i := slices.Index(s.waiting, ticket); i >= 0 {
		s.waiting = slices.Delete(s.waiting, i, i+1)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.release()
}

// release frees a slot: it goes to the first waiter, if any.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) > 0 {
		close(s.waiting[0])
		s.waiting = s.waiting[1:]
		return
	}
	s.free++
}
