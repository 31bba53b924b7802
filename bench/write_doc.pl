#!/usr/bin/env perl
# Splice a benchmark report into doc/performance.md.
#
#   perl bench/write_doc.pl DOC REPORT COMMAND
#
# Run by bench/run.sh --write-doc.  Replaces what lies between the lines
# <!-- bench:begin --> and <!-- bench:end --> of DOC with a line naming the
# extension's version, the server's, the date and COMMAND, then the lines
# of REPORT (as bench/bench.pl wrote them) in a code block.  Everything
# outside the markers, the explanations of the figures, is left as it is,
# so updating the figures is one command and one commit.

use strict;
use warnings;
use File::Basename qw(dirname);
use POSIX qw(strftime);

die "usage: $0 DOC REPORT COMMAND\n" unless @ARGV == 3;
my ($doc, $report, $command) = @ARGV;

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or die "could not read $path: $!\n";
	local $/;
	my $text = <$fh>;
	close($fh);
	return $text;
}

my @lines = split /\n/, slurp($report);
die "$report is empty: nothing written\n" unless @lines;

# The server's version, from the report's last line ("== machine: ...,
# postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)").
my ($machine) = grep { /^== machine: / } @lines;
die "$report has no \"== machine:\" line: nothing written\n"
  unless defined $machine;
my ($server) = $machine =~ /\(PostgreSQL\) (.*)$/;
$server //= 'an unknown server';

# The extension's version, from the control file beside this script's
# directory.
my ($version) = slurp(dirname($0) . '/../kill_session.control')
  =~ /^default_version\s*=\s*'([^']+)'/m;
$version //= 'unknown';

my $date = strftime('%Y-%m-%d', gmtime);
my $block = "<!-- bench:begin -->\n"
  . "<!-- written by bench/run.sh --write-doc: edit outside the markers -->\n"
  . "kill_session $version on PostgreSQL $server, $date, `$command`:\n"
  . "\n```\n"
  . join('', map { "$_\n" } @lines)
  . "```\n"
  . "<!-- bench:end -->";

my $text = slurp($doc);
my $begins = () = $text =~ /^<!-- bench:begin -->$/mg;
my $ends = () = $text =~ /^<!-- bench:end -->$/mg;
die "$doc must hold one <!-- bench:begin --> and one <!-- bench:end --> line"
  . " (it has $begins and $ends): nothing written\n"
  unless $begins == 1 && $ends == 1;
$text =~ s/^<!-- bench:begin -->\n.*?^<!-- bench:end -->(?=\n|\z)/$block/ms
  or die "$doc: <!-- bench:end --> comes before <!-- bench:begin -->\n";

# A new file renamed over the old one: an interrupted run leaves the doc
# as it was.
my $tmp = "$doc.tmp.$$";
open(my $out, '>', $tmp) or die "could not write $tmp: $!\n";
print $out $text;
close($out) or die "could not write $tmp: $!\n";
chmod((stat($doc))[2] & 07777, $tmp);
rename($tmp, $doc) or die "could not rename $tmp to $doc: $!\n";
print "wrote the report into $doc\n";
