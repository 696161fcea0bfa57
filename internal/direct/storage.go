package direct

import (
	"context"

	"guestkit.io/batch/internal/inspect"
)

// Storage describes the disk as the appliance backend does: the drive,
// every partition of its table, LVM, and the filesystems on the devices
// that may hold one (not extended partitions, not physical volumes).
func (b *Backend) Storage(ctx context.Context, known []inspect.Filesystem) (inspect.Storage, []inspect.Problem, error) {
	st := inspect.Storage{
		Devices:     []inspect.Device{{Name: wholeDisk, Size: b.disk.Size(), Partition: b.partTable}},
		Partitions:  []inspect.Partition{},
		Filesystems: []inspect.Filesystem{},
	}
	for _, p := range b.parts {
		st.Partitions = append(st.Partitions, inspect.Partition{
			Name: partName(wholeDisk, p.Number), Device: wholeDisk, Number: p.Number,
			Start: p.Start, Size: p.Size, Type: p.Type, Label: p.Name,
		})
	}
	if b.lvm != nil {
		l := &inspect.LVM{PVs: []inspect.PV{}, VGs: []inspect.VG{}, LVs: []inspect.LV{}}
		for _, pv := range b.lvm.PVs {
			l.PVs = append(l.PVs, inspect.PV{Name: pv.Name, UUID: pv.UUID, Size: pv.Size})
		}
		for _, vg := range b.lvm.VGs {
			l.VGs = append(l.VGs, inspect.VG{Name: vg.Name, UUID: vg.UUID, Size: vg.Size, Free: vg.Free})
		}
		for _, lv := range b.lvm.LVs {
			l.LVs = append(l.LVs, inspect.LV{Name: lv.Name, VG: lv.VG, UUID: lv.UUID, Size: lv.Size})
		}
		st.LVM = l
	}
	have := map[string]inspect.Filesystem{}
	for _, f := range known {
		have[f.Device] = f
	}
	for _, d := range b.devs {
		if d.isPV {
			continue
		}
		f, ok := have[d.name]
		if !ok {
			f = inspect.Filesystem{Device: d.name, Type: d.info.Type, Label: d.info.Label, UUID: d.info.UUID}
		}
		if f.Type == "" && f.UUID == "" {
			continue
		}
		st.Filesystems = append(st.Filesystems, f)
	}
	return st, nil, ctx.Err()
}
