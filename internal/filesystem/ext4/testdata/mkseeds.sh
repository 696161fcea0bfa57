#!/bin/sh
# Kept small (64 KiB, 32 inodes, no lost+found) for the fuzzer's sake.
# Rebuilds the small images that seed FuzzOpen and TestSeeds (run as root,
# from this directory, with e2fsprogs): the same tree as ext2 with block
# maps, ext4 with extents (an index node, an htree directory), and ext4
# with inline data and metadata_csum.
set -eu
src=$(mktemp -d)
trap 'rm -rf "$src" seed.img' EXIT
mkdir -p "$src/dir" "$src/many"
printf 'hello world\n' >"$src/hello"
awk 'BEGIN { for (i = 0; i < 14000; i++) printf "%c", 65 + i % 26 }' >"$src/blocks"
# Five data stretches with holes between: five extents, so an index node.
for i in 0 1 2 3 4; do
	printf 'stretch %d\n' "$i" | dd of="$src/sparse" bs=1 seek=$((i * 8192)) conv=notrunc 2>/dev/null
done
ln -s hello "$src/link"
ln -s "$(printf 'a%.0s' $(seq 100))" "$src/longlink"
printf 'a\n' >"$src/dir/a"
: >"$src/many/entry-1"
for i in $(seq 2 90); do ln "$src/many/entry-1" "$src/many/entry-$i"; done
mkfifo "$src/fifo"
chown 1000:100 "$src/hello"
chmod 4755 "$src/dir/a"
mk() {
	name=$1
	shift
	rm -f seed.img
	truncate -s 64k seed.img # mke2fs leaves a new file short of its size
	mke2fs -q -F -b 1024 -N 32 -m 0 -U 0b3c1c8a-1d53-4c63-9a0b-2b3a3e1f0001 -E hash_seed=0b3c1c8a-1d53-4c63-9a0b-2b3a3e1f0002 -L seed "$@" -d "$src" seed.img 64k
	debugfs -w -R "rmdir lost+found" seed.img 2>/dev/null
	e2fsck -fyD seed.img >/dev/null 2>&1 || [ $? -eq 1 ]
	gzip -9n <seed.img >"$name.img.gz"
}
E2FSPROGS_FAKE_TIME=1700000000 export E2FSPROGS_FAKE_TIME
mk ext2 -t ext2 -I 128
mk ext4 -t ext4 -I 128 -O ^has_journal,^metadata_csum
mk ext4-inline -t ext4 -O ^has_journal,inline_data,metadata_csum

# A filesystem that needs recovery: an ext3 journal (block-mapped) holding
# transactions written by debugfs, one of them revoking a block, one whose
# copy begins with the journal magic (escaped). FuzzJournal mutates its
# journal's first blocks.
rm -f seed.img
truncate -s 4m seed.img
mke2fs -q -F -t ext3 -b 1024 -N 32 -m 0 -J size=1 -U 0b3c1c8a-1d53-4c63-9a0b-2b3a3e1f0003 -L journal -d "$src" seed.img
blk=$(debugfs -R "bmap /hello 0" seed.img 2>/dev/null)
big0=$(debugfs -R "bmap /blocks 0" seed.img 2>/dev/null)
big1=$(debugfs -R "bmap /blocks 1" seed.img 2>/dev/null)
printf '\300\073\071\230journalled hello\n' | dd of="$src.1" bs=1024 conv=sync 2>/dev/null
head -c 2048 /dev/zero | tr '\0' 'J' >"$src.2"
debugfs -w -f - seed.img >/dev/null 2>&1 <<EOC
jo
jw -b $blk $src.1
jw -b $big0,$big1 $src.2
jw -r $big1
jc
EOC
rm -f "$src.1" "$src.2"
gzip -9n <seed.img >journal.img.gz
