// Package inspect builds the inspection report of a disk image: the OS
// facts libguestfs's inspection finds (what virt-inspector prints) plus what
// a platform or security team needs from the guest's own files.
package inspect

import "guestkit.io/batch/internal/guestconf"

// Report is the data of an inspect result.
type Report struct {
	OperatingSystems []OS    `json:"operating_systems"`
	Storage          Storage `json:"storage"`
	// Problems lists sections that could not be read; nothing is dropped
	// silently.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is a section or file that could not be read.
type Problem struct {
	Root    string `json:"root,omitempty"`
	Section string `json:"section"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// OS is one operating system root. The first block mirrors virt-inspector.
type OS struct {
	Root              string            `json:"root"`
	Type              string            `json:"type"`
	Distro            string            `json:"distro,omitempty"`
	ProductName       string            `json:"product_name,omitempty"`
	ProductVariant    string            `json:"product_variant,omitempty"`
	MajorVersion      int               `json:"major_version"`
	MinorVersion      int               `json:"minor_version"`
	Arch              string            `json:"arch,omitempty"`
	Hostname          string            `json:"hostname,omitempty"`
	PackageFormat     string            `json:"package_format,omitempty"`
	PackageManagement string            `json:"package_management,omitempty"`
	OSInfo            string            `json:"osinfo,omitempty"`
	Format            string            `json:"format,omitempty"` // installed, installer
	Live              bool              `json:"live,omitempty"`
	Netinst           bool              `json:"netinst,omitempty"`
	Multipart         bool              `json:"multipart,omitempty"`
	WindowsSystemroot string            `json:"windows_systemroot,omitempty"`
	WindowsCCS        string            `json:"windows_current_control_set,omitempty"`
	DriveMappings     map[string]string `json:"drive_mappings,omitempty"`
	Mountpoints       []Mountpoint      `json:"mountpoints"`
	Filesystems       []Filesystem      `json:"filesystems"`
	Applications      []Application     `json:"applications"`

	// Sections read from the guest's own files.
	Users      []User                 `json:"users,omitempty"`
	Groups     []Group                `json:"groups,omitempty"`
	Services   *Services              `json:"services,omitempty"`
	Kernels    *Kernels               `json:"kernels,omitempty"`
	Network    *Network               `json:"network,omitempty"`
	CloudInit  *CloudInit             `json:"cloud_init,omitempty"`
	MachineID  string                 `json:"machine_id,omitempty"`
	GuestTools []GuestTool            `json:"guest_tools,omitempty"`
	Security   *Security              `json:"security,omitempty"`
	Fstab      []guestconf.FstabEntry `json:"fstab,omitempty"`

	// Windows holds what the Windows sections read from the registry
	// hives of a Windows root (windows.go).
	Windows *Windows `json:"windows,omitempty"`
}

// Mountpoint maps a guest path to the device mounted there.
type Mountpoint struct {
	Path   string `json:"path"`
	Device string `json:"device"`
}

// Filesystem is a filesystem that belongs to an OS root (or, in Storage,
// any filesystem on the disk).
type Filesystem struct {
	Device string `json:"device"`
	Type   string `json:"type,omitempty"`
	Label  string `json:"label,omitempty"`
	UUID   string `json:"uuid,omitempty"`
	Size   int64  `json:"size,omitempty"`
}

// Application is an installed package, as libguestfs lists it.
type Application struct {
	Name          string `json:"name"`
	DisplayName   string `json:"display_name,omitempty"`
	Epoch         int    `json:"epoch,omitempty"`
	Version       string `json:"version,omitempty"`
	Release       string `json:"release,omitempty"`
	Arch          string `json:"arch,omitempty"`
	InstallPath   string `json:"install_path,omitempty"`
	Publisher     string `json:"publisher,omitempty"`
	URL           string `json:"url,omitempty"`
	SourcePackage string `json:"source_package,omitempty"`
	Summary       string `json:"summary,omitempty"`
	Description   string `json:"description,omitempty"`
}

// User is an /etc/passwd entry, with what shadow says about its password.
//
// System means a uid outside login.defs' UID_MIN..UID_MAX (1000..60000 by
// default); root is not a system account. CanLogin means an interactive
// shell and a way in the image shows: a password that is set or empty, or
// an SSH authorized_keys file sshd would read (a locked password does not
// stop key logins). Password says which way; it is never the hash.
type User struct {
	Name     string `json:"name"`
	UID      int64  `json:"uid"`
	GID      int64  `json:"gid"`
	Gecos    string `json:"gecos,omitempty"`
	Home     string `json:"home"`
	Shell    string `json:"shell"`
	System   bool   `json:"system"`
	CanLogin bool   `json:"can_login"`
	// Password is the state of the password: set, locked, empty, none
	// (no shadow entry) — never the hash.
	Password string   `json:"password,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// Group is an /etc/group entry.
type Group struct {
	Name    string   `json:"name"`
	GID     int64    `json:"gid"`
	Members []string `json:"members,omitempty"`
}

// Services lists what starts at boot.
type Services struct {
	InitSystem string    `json:"init_system,omitempty"` // systemd, sysv, openrc
	Enabled    []Service `json:"enabled"`
	Masked     []string  `json:"masked,omitempty"`
}

// Service is one enabled unit or init script.
type Service struct {
	Name   string `json:"name"`
	Source string `json:"source"` // systemd, sysv, openrc
	// WantedBy is the targets or runlevels that pull it in, space-separated
	// ("graphical.target multi-user.target", "runlevel 2 3 4 5").
	WantedBy string `json:"wanted_by,omitempty"`
	Path     string `json:"path,omitempty"`
}

// Kernels lists installed kernels and the boot default.
type Kernels struct {
	Installed []Kernel `json:"installed"`
	Default   string   `json:"default,omitempty"`
	// DefaultSource says how the default was found (file:line).
	DefaultSource string `json:"default_source,omitempty"`
	Cmdline       string `json:"cmdline,omitempty"`
}

// Kernel is one installed kernel image.
type Kernel struct {
	Version string `json:"version"`
	Path    string `json:"path"`
	Initrd  string `json:"initrd,omitempty"`
	Modules bool   `json:"modules"` // /lib/modules/<version> or /usr/lib/modules/<version> exists
}

// Network is the network configuration in the image's own files.
type Network struct {
	Interfaces  []Interface `json:"interfaces"`
	Nameservers []string    `json:"nameservers,omitempty"`
	Search      []string    `json:"search,omitempty"`
	// DNSSource is /etc/resolv.conf when it exists, with its link target
	// when it is a link (into /run, empty on a powered-off disk).
	DNSSource string   `json:"dns_source,omitempty"`
	Hosts     []string `json:"hosts,omitempty"`
}

// Interface is one configured interface or connection.
type Interface struct {
	Name      string   `json:"name"`
	Source    string   `json:"source"` // ifupdown, netplan, networkmanager, ifcfg, systemd-networkd
	File      string   `json:"file"`
	Method    string   `json:"method,omitempty"` // dhcp, static, manual (no address), loopback, or the tool's own word
	Addresses []string `json:"addresses,omitempty"`
	Gateway   string   `json:"gateway,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	MAC       string   `json:"mac,omitempty"`
	OnBoot    *bool    `json:"on_boot,omitempty"`
}

// CloudInit describes cloud-init's presence and configuration.
type CloudInit struct {
	Installed   bool     `json:"installed"`
	Version     string   `json:"version,omitempty"`
	Disabled    bool     `json:"disabled"`
	Datasources []string `json:"datasources,omitempty"`
	ConfigFiles []string `json:"config_files,omitempty"`
}

// GuestTool is a hypervisor or cloud agent found in the guest.
type GuestTool struct {
	Name    string `json:"name"`
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	Enabled bool   `json:"enabled"`
}

// Security holds the MAC, firewall and SSH configuration.
type Security struct {
	SELinux  *SELinux  `json:"selinux,omitempty"`
	AppArmor *AppArmor `json:"apparmor,omitempty"`
	Firewall *Firewall `json:"firewall,omitempty"`
	SSH      *SSH      `json:"ssh,omitempty"`
}

// SELinux is /etc/selinux/config.
type SELinux struct {
	Configured bool   `json:"configured"`
	Mode       string `json:"mode,omitempty"` // enforcing, permissive, disabled
	Type       string `json:"type,omitempty"`
	// KernelDisabled is set when the boot command line says selinux=0.
	KernelDisabled bool   `json:"kernel_disabled,omitempty"`
	Source         string `json:"source,omitempty"`
}

// AppArmor is AppArmor's presence and profiles.
type AppArmor struct {
	Installed      bool `json:"installed"`
	Profiles       int  `json:"profiles"`
	KernelDisabled bool `json:"kernel_disabled,omitempty"`
	Enabled        bool `json:"enabled"`
}

// Firewall is the host firewall found in the image.
type Firewall struct {
	Kind    string `json:"kind,omitempty"` // ufw, firewalld, nftables, iptables, none
	Enabled bool   `json:"enabled"`
	Source  string `json:"source,omitempty"`
	// Default is firewalld's default zone, or the input policy (lower case)
	// from ufw's DEFAULT_INPUT_POLICY or the nftables or iptables rules.
	Default string `json:"default,omitempty"`
}

// SSH is the effective sshd server configuration.
type SSH struct {
	Installed bool `json:"installed"`
	Enabled   bool `json:"enabled"`
	// Settings maps lower-case keywords to their effective value.
	Settings map[string]string `json:"settings,omitempty"`
	// Files lists the configuration files read, in order.
	Files []string `json:"files,omitempty"`
}

// Storage is the disk's layout, independent of OS roots.
type Storage struct {
	Devices     []Device     `json:"devices"`
	Partitions  []Partition  `json:"partitions"`
	LVM         *LVM         `json:"lvm,omitempty"`
	Filesystems []Filesystem `json:"filesystems"`
}

// Device is a whole disk as the appliance sees it.
type Device struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Partition string `json:"partition_table,omitempty"` // msdos, gpt
}

// Partition is one partition.
type Partition struct {
	Name   string `json:"name"`
	Device string `json:"device"`
	Number int    `json:"number"`
	Start  int64  `json:"start"`
	Size   int64  `json:"size"`
	// Type is the MBR type byte (hex) or GPT type GUID.
	Type string `json:"type,omitempty"`
	// Label is the GPT partition name.
	Label string `json:"label,omitempty"`
}

// LVM is the volume groups, physical and logical volumes.
type LVM struct {
	PVs []PV `json:"pvs"`
	VGs []VG `json:"vgs"`
	LVs []LV `json:"lvs"`
}

// PV is a physical volume.
type PV struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
	Size int64  `json:"size"`
}

// VG is a volume group.
type VG struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
	Size int64  `json:"size"`
	Free int64  `json:"free"`
}

// LV is a logical volume.
type LV struct {
	Name string `json:"name"`
	VG   string `json:"vg"`
	UUID string `json:"uuid"`
	Size int64  `json:"size"`
}
