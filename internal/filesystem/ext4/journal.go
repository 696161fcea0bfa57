package ext4

import (
	"encoding/binary"
	"fmt"

	"guestkit.io/batch/internal/filesystem"
)

// The jbd2 journal (fs/jbd2/recovery.c). A filesystem that was not
// unmounted cleanly (needs_recovery) has committed transactions in its
// journal that are not yet in place; the kernel replays them at mount,
// read-only or not, so the appliance sees them. The reader replays them
// too, without writing: it records, for each filesystem block a committed
// transaction rewrote, where the last copy lies in the journal, and
// readBlocks reads that copy instead.

const (
	journalMagic = 0xC03B3998

	jbdDescriptor = 1
	jbdCommit     = 2
	jbdSuperV1    = 3
	jbdSuperV2    = 4
	jbdRevoke     = 5

	jbdIncompatRevoke      = 0x1
	jbdIncompat64bit       = 0x2
	jbdIncompatAsyncCommit = 0x4
	jbdIncompatCsumV2      = 0x8
	jbdIncompatCsumV3      = 0x10
	jbdIncompatFastCommit  = 0x20

	tagEscape   = 0x1
	tagSameUUID = 0x2
	tagLast     = 0x8

	// maxReplayBlocks bounds the blocks a replay remembers (16 bytes and
	// a map slot each): a 1 GiB journal of 4 KiB blocks holds 2^18.
	maxReplayBlocks = 1 << 18
)

// journalCopy is where the newest journalled copy of a block lies.
type journalCopy struct {
	phys    uint64 // filesystem block in the journal
	escaped bool   // its first four bytes were the journal magic
}

// journal is the journal inode's log, as the replay walks it.
type journal struct {
	f        *FS
	in       *inode
	first    uint64 // first log block
	maxLen   uint64 // log blocks, the journal superblock included
	incompat uint32
}

// block reads log block l of the journal and returns its place on disk.
func (j *journal) block(l uint64, b []byte) (uint64, error) {
	r, err := j.f.mapBlock(j.in, l)
	if err != nil {
		return 0, fmt.Errorf("journal block %d: %w", l, err)
	}
	if r.phys == 0 {
		return 0, fmt.Errorf("journal block %d: a hole: %w", l, filesystem.ErrCorrupt)
	}
	return r.phys, j.f.readBlocks(b, r.phys, "journal block", l)
}

func (j *journal) next(l uint64) uint64 {
	if l+1 >= j.maxLen {
		return j.first
	}
	return l + 1
}

type journalTag struct {
	blk   uint64
	flags uint32
}

// tags parses the block tags of a descriptor block.
func (j *journal) tags(b []byte) []journalTag {
	be := binary.BigEndian
	csum3 := j.incompat&jbdIncompatCsumV3 != 0
	is64 := j.incompat&jbdIncompat64bit != 0
	size := 16
	if !csum3 {
		size = 12
		if j.incompat&jbdIncompatCsumV2 != 0 {
			size += 2
		}
		if !is64 {
			size -= 4
		}
	}
	end := len(b)
	if j.incompat&(jbdIncompatCsumV2|jbdIncompatCsumV3) != 0 {
		end -= 4 // the block's checksum tail
	}
	var tags []journalTag
	for off := 12; off+size <= end; {
		t := journalTag{blk: uint64(be.Uint32(b[off:]))}
		if csum3 {
			t.flags = be.Uint32(b[off+4:])
		} else {
			t.flags = uint32(be.Uint16(b[off+6:]))
		}
		if is64 {
			t.blk |= uint64(be.Uint32(b[off+8:])) << 32
		}
		tags = append(tags, t)
		off += size
		if t.flags&tagSameUUID == 0 {
			off += 16
		}
		if t.flags&tagLast != 0 {
			break
		}
	}
	return tags
}

// replayJournal reads the journal of a needs_recovery filesystem and sets
// f.replay to the blocks its committed transactions rewrote.
func (f *FS) replayJournal() error {
	unsupported := func(what string) error {
		return fmt.Errorf("ext4 feature needs_recovery with %s: %w", what, filesystem.ErrUnsupported)
	}
	if f.sb.journalInum == 0 {
		return unsupported("an external journal")
	}
	in, err := f.inode(f.sb.journalInum)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	bs := uint64(f.sb.blockSize)
	b := make([]byte, bs)
	j := &journal{f: f, in: in}
	if _, err := j.block(0, b); err != nil {
		return err
	}
	be := binary.BigEndian
	bad := func(format string, a ...any) error {
		return fmt.Errorf("journal in inode %d: "+format+": %w", append([]any{in.ino}, append(a, filesystem.ErrCorrupt)...)...)
	}
	typ := be.Uint32(b[4:])
	if be.Uint32(b[0:]) != journalMagic || typ != jbdSuperV1 && typ != jbdSuperV2 {
		return bad("no journal superblock")
	}
	if be.Uint32(b[0x0C:]) != f.sb.blockSize {
		return bad("block size %d", be.Uint32(b[0x0C:]))
	}
	j.maxLen = uint64(be.Uint32(b[0x10:]))
	j.first = uint64(be.Uint32(b[0x14:]))
	seq := be.Uint32(b[0x18:])
	start := uint64(be.Uint32(b[0x1C:]))
	if start == 0 {
		return nil // nothing to replay
	}
	if j.maxLen > in.size/bs || j.first == 0 || j.first >= j.maxLen || start < j.first || start >= j.maxLen {
		return bad("log of %d blocks from %d, start %d, in %d bytes", j.maxLen, j.first, start, in.size)
	}
	if typ == jbdSuperV2 {
		j.incompat = be.Uint32(b[0x28:])
		known := uint32(jbdIncompatRevoke | jbdIncompat64bit | jbdIncompatAsyncCommit | jbdIncompatCsumV2 | jbdIncompatCsumV3)
		if j.incompat&jbdIncompatFastCommit != 0 {
			return unsupported("fast commits")
		}
		if unknown := j.incompat &^ known; unknown != 0 {
			return unsupported(fmt.Sprintf("journal feature %#x", unknown))
		}
	}

	// One pass finds the committed transactions, their descriptor blocks
	// and revocations (jbd2's PASS_SCAN and PASS_REVOKE).
	type descriptor struct {
		seq  uint32
		at   uint64 // log block
		tags []journalTag
	}
	var descs []descriptor
	pending := 0 // descriptors of the transaction not yet committed
	revoked := map[uint64]uint32{}
	var pendingRevokes []struct {
		blk uint64
		seq uint32
	}
	l := start
	for steps := uint64(0); steps < j.maxLen; steps++ {
		if _, err := j.block(l, b); err != nil {
			return err
		}
		if be.Uint32(b[0:]) != journalMagic || be.Uint32(b[8:]) != seq {
			break // the end of the log
		}
		switch be.Uint32(b[4:]) {
		case jbdDescriptor:
			tags := j.tags(b)
			descs = append(descs, descriptor{seq: seq, at: l, tags: tags})
			pending++
			for range tags {
				l = j.next(l)
			}
			steps += uint64(len(tags))
		case jbdRevoke:
			count := uint64(be.Uint32(b[12:]))
			rec := uint64(4)
			if j.incompat&jbdIncompat64bit != 0 {
				rec = 8
			}
			if count < 16 || count > bs {
				return bad("revoke block %d of %d bytes", l, count)
			}
			for off := uint64(16); off+rec <= count; off += rec {
				r := uint64(be.Uint32(b[off:]))
				if rec == 8 {
					r = be.Uint64(b[off:])
				}
				pendingRevokes = append(pendingRevokes, struct {
					blk uint64
					seq uint32
				}{r, seq})
			}
		case jbdCommit:
			for _, r := range pendingRevokes {
				if s, ok := revoked[r.blk]; !ok || int32(r.seq-s) > 0 {
					revoked[r.blk] = r.seq
				}
			}
			pendingRevokes = pendingRevokes[:0]
			pending = 0
			seq++
		default:
			steps = j.maxLen // an unknown block ends the log, as in jbd2
			continue
		}
		l = j.next(l)
	}
	descs = descs[:len(descs)-pending] // an uncommitted transaction is not replayed

	// Replay: later transactions win; a block revoked by its own or a
	// later transaction is not replayed (jbd2_journal_test_revoke).
	replay := map[uint64]journalCopy{}
	for _, d := range descs {
		at := d.at
		for _, t := range d.tags {
			at = j.next(at)
			if s, ok := revoked[t.blk]; ok && int32(d.seq-s) <= 0 {
				continue
			}
			if err := f.checkBlocks(t.blk, 1, "journalled block at log block", at); err != nil {
				return err
			}
			r, err := f.mapBlock(in, at)
			if err != nil {
				return fmt.Errorf("journal block %d: %w", at, err)
			}
			if r.phys == 0 {
				return bad("log block %d is a hole", at)
			}
			if _, ok := replay[t.blk]; !ok && len(replay) >= maxReplayBlocks {
				return unsupported(fmt.Sprintf("more than %d blocks to replay", maxReplayBlocks))
			}
			replay[t.blk] = journalCopy{phys: r.phys, escaped: t.flags&tagEscape != 0}
		}
	}
	f.replay = replay
	return nil
}

// patchReplayed overwrites the blocks of p (read from block blk on) that
// the journal replay holds newer copies of.
func (f *FS) patchReplayed(p []byte, blk uint64) error {
	bs := uint64(f.sb.blockSize)
	for i := uint64(0); i < uint64(len(p))/bs; i++ {
		c, ok := f.replay[blk+i]
		if !ok {
			continue
		}
		q := p[i*bs : (i+1)*bs]
		if _, err := f.dev.ReadAt(q, int64(c.phys*bs)); err != nil {
			return fmt.Errorf("read journalled copy of block %d at block %d: %w", blk+i, c.phys, err)
		}
		if c.escaped {
			binary.BigEndian.PutUint32(q, journalMagic)
		}
	}
	return nil
}
