package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"guestkit.io/batch/internal/block"
	"guestkit.io/batch/internal/filesystem/xfs"
	"guestkit.io/batch/internal/guest"
)

type dev struct {
	*os.File
	n int64
}

func (d dev) Size() int64 { return d.n }

func main() {
	f, _ := os.Open(os.Args[1])
	st, _ := f.Stat()
	off, _ := strconv.ParseInt(os.Args[2], 10, 64)
	d, err := block.Section(dev{f, st.Size()}, off, st.Size()-off)
	if err != nil {
		panic(err)
	}
	fmt.Println(xfs.Probe(d))
	t0 := time.Now()
	v, err := xfs.Open(d)
	if err != nil {
		panic(err)
	}
	n := 0
	var walk func(p string)
	walk = func(p string) {
		ents, err := v.ReadDir(p)
		if err != nil {
			fmt.Println("ERR", err)
			return
		}
		for _, e := range ents {
			cp := e.Name()
			if p != "." {
				cp = p + "/" + e.Name()
			}
			fi, err := v.Lstat(cp)
			if err != nil {
				fmt.Println("ERR", err)
				continue
			}
			n++
			o := fi.Sys().(guest.Owner)
			extra := ""
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				extra, err = v.ReadLink(cp)
			case fi.Mode().IsRegular():
				fh, err2 := v.Open(cp)
				if err2 != nil {
					err = err2
					break
				}
				h := sha256.New()
				_, err = io.Copy(h, fh.(io.Reader))
				extra = fmt.Sprintf("%x", h.Sum(nil))[:16]
			}
			if err != nil {
				fmt.Println("ERR", cp, err)
			}
			if len(os.Args) > 3 {
				fmt.Printf("%s %v %d %d %d %s\n", cp, fi.Mode(), o.UID, o.GID, fi.Size(), extra)
			}
			if e.IsDir() {
				walk(cp)
			}
		}
	}
	walk(".")
	fmt.Println(n, "entries", time.Since(t0))
}
