package direct

import (
	"debug/elf"
	"fmt"
	"path"
	"strings"
)

// archBinaries are the files libguestfs reads the architecture from.
var archBinaries = []string{"/bin/bash", "/bin/ls", "/bin/echo", "/bin/rm", "/bin/sh"}

// checkArchitecture is libguestfs's check_architecture: the architecture
// of the first of archBinaries that is a file (links followed) and an ELF
// executable, shared object or relocatable.
func checkArchitecture(f files) string {
	for _, bin := range archBinaries {
		if !f.isFile(bin, true) {
			continue
		}
		if a, err := fileArchitecture(f, bin); err == nil {
			return a
		}
	}
	return ""
}

// elfHeader is enough of an ELF file for its class, byte order, type
// and machine.
const elfHeader = 64

func fileArchitecture(f files, p string) (string, error) {
	file, err := f.fsys.Open(rel(p))
	if err != nil {
		return "", err
	}
	defer file.Close()
	var hdr [elfHeader]byte
	n, _ := readFull(file, hdr[:])
	return elfArch(hdr[:n])
}

func readFull(r interface{ Read([]byte) (int, error) }, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// elfArch maps an ELF header to libguestfs's architecture names (the
// names its canonical_elf_arch gives to file(1)'s descriptions).
func elfArch(h []byte) (string, error) {
	if len(h) < 20 || string(h[:4]) != elf.ELFMAG {
		return "", errNotELF
	}
	class, data := elf.Class(h[4]), elf.Data(h[5])
	var bits string
	switch class {
	case elf.ELFCLASS32:
		bits = "32"
	case elf.ELFCLASS64:
		bits = "64"
	default:
		return "", fmt.Errorf("ELF class %d: %w", h[4], errNotELF)
	}
	var u16 func([]byte) uint16
	switch data {
	case elf.ELFDATA2LSB:
		u16 = func(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
	case elf.ELFDATA2MSB:
		u16 = func(b []byte) uint16 { return uint16(b[1]) | uint16(b[0])<<8 }
	default:
		return "", fmt.Errorf("ELF data encoding %d: %w", h[5], errNotELF)
	}
	switch elf.Type(u16(h[16:18])) {
	case elf.ET_EXEC, elf.ET_DYN, elf.ET_REL:
	default:
		return "", fmt.Errorf("ELF type %d: %w", u16(h[16:18]), errNotELF)
	}
	switch m := elf.Machine(u16(h[18:20])); m {
	case elf.EM_386, elf.EM_486:
		return "i386", nil
	case elf.EM_X86_64:
		return "x86_64", nil
	case elf.EM_SPARC, elf.EM_SPARC32PLUS:
		return "sparc", nil
	case elf.EM_SPARCV9:
		return "sparc64", nil
	case elf.EM_IA_64:
		return "ia64", nil
	case elf.EM_PPC64:
		if data == elf.ELFDATA2MSB {
			return "ppc64", nil
		}
		return "ppc64le", nil
	case elf.EM_PPC:
		return "ppc", nil
	case elf.EM_AARCH64:
		return "aarch64", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_RISCV:
		return "riscv" + bits, nil
	case elf.EM_S390:
		if bits == "32" {
			return "s390", nil
		}
		return "s390x", nil
	case elf.EM_MIPS, elf.EM_MIPS_RS3_LE:
		return "MIPS", nil
	case elf.EM_LOONGARCH:
		return "LoongArch", nil
	default:
		// file(1)'s own name, as libguestfs passes unknown ones through.
		name := strings.TrimPrefix(m.String(), "EM_")
		return path.Base(name), nil
	}
}
