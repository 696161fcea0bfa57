#!/usr/bin/perl
# mkhive.pl FILE NAME: writes an empty Windows registry hive (regf 1.3): a
# base block, one 4 KiB hbin holding the root key (nk) and its security
# descriptor (sk), and a free cell for the rest of the bin. hivexregedit
# --merge then fills it; hivex cannot create a hive, only edit one, and a
# new key inherits its parent's sk, so the root must have a valid one.
# NAME is the file name recorded in the base block (SYSTEM, SOFTWARE...).
use strict;
use warnings;
use Encode qw(encode);

die "usage: $0 FILE NAME\n" unless @ARGV == 2;
my ($file, $name) = @ARGV;

# 2024-02-01T00:00:00Z as a FILETIME (100 ns since 1601), like the Linux
# trees' fixed timestamp (lib.sh TI_EPOCH).
my $filetime = (1706745600 + 11644473600) * 10_000_000;
my $ft = pack("VV", $filetime % 2**32, int($filetime / 2**32));

sub sid {    # S-1-5-<sub>...
	my @sub = @_;
	return pack("CC", 1, scalar @sub) . pack("C6", 0, 0, 0, 0, 0, 5) . pack("V*", @sub);
}
# Security descriptor (self-relative): owner Administrators, group SYSTEM,
# a DACL granting KEY_ALL_ACCESS to SYSTEM and Administrators, inherited by
# subkeys, as on a real hive's root.
my @aces = map {
	my $s = $_;
	pack("CCv", 0, 0x02, 8 + length $s) . pack("V", 0x000F003F) . $s
} (sid(18), sid(32, 544));
my $acl_body = join("", @aces);
my $dacl = pack("CCvvv", 2, 0, 8 + length $acl_body, scalar @aces, 0) . $acl_body;
my $owner = sid(32, 544);
my $group = sid(18);
my $sd_hdr_len = 20;
my $dacl_off = $sd_hdr_len;
my $owner_off = $dacl_off + length $dacl;
my $group_off = $owner_off + length $owner;
my $sd = pack("CCvVVVV", 1, 0, 0x8004, $owner_off, $group_off, 0, $dacl_off) . $dacl . $owner . $group;

sub cell {    # allocated cell: negative size, padded to 8 bytes
	my $body = shift;
	my $len = 4 + length $body;
	my $pad = (8 - $len % 8) % 8;
	return pack("l<", -($len + $pad)) . $body . ("\0" x $pad);
}

my $root_off = 0x20;                  # first cell of the first hbin
my $key_name = "ROOT";
my $nk_len = length cell("x" x (76 + length $key_name));
my $sk_off = $root_off + $nk_len;
my $none = 0xFFFFFFFF;
my $nk = cell(
	"nk" . pack("v", 0x2C)            # KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME
	  . $ft . pack("V", 0)            # timestamp, access bits
	  . pack("V", 0)                  # parent
	  . pack("VV", 0, 0)              # subkeys, volatile subkeys
	  . pack("VV", $none, $none)      # subkey lists
	  . pack("V", 0) . pack("V", $none)    # values, value list
	  . pack("V", $sk_off) . pack("V", $none)    # sk, class name
	  . pack("vvVVVV", 0, 0, 0, 0, 0, 0)    # max lengths, work var
	  . pack("vv", length $key_name, 0) . $key_name
);
my $sk = cell("sk" . pack("v", 0) . pack("VVVV", $sk_off, $sk_off, 1, length $sd) . $sd);
my $cells = $nk . $sk;
my $free = 0x1000 - 0x20 - length $cells;
die "hive cells overflow the bin\n" if $free < 8;
my $hbin = "hbin" . pack("VV", 0, 0x1000) . ("\0" x 4) . $ft . ("\0" x 8) . $cells . pack("l<", $free) . ("\0" x ($free - 4));

my $fname = substr(encode("UTF-16LE", $name), 0, 64);
my $base = "regf" . pack("VV", 1, 1) . $ft . pack("VVVV", 1, 3, 0, 1) . pack("VVV", $root_off, 0x1000, 1) . $fname . ("\0" x (64 - length $fname));
$base .= "\0" x (0x1FC - length $base);
my $sum = 0;
$sum ^= $_ for unpack("V127", $base);
$base .= pack("V", $sum);
$base .= "\0" x (0x1000 - length $base);

open(my $fh, ">:raw", $file) or die "$file: $!\n";
print $fh $base, $hbin or die "$file: $!\n";
close($fh) or die "$file: $!\n";
